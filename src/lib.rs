//! `migrate`: safe schema migrations run by PostgreSQL itself.
//!
//! - [`registry`]: migrations in the database's own catalog, applied and rolled back atomically.
//! - [`deploy`]: `CALL migrate.deploy()` and `migrate.resolve()`, which drive the registry and
//!   the workers (neither imports it).
//! - [`guard`]: event triggers that bound lock waits and stop outage-causing DDL.
//! - [`worker`]: background jobs (batched backfills) run by background workers.
//! - [`expand`]: expand/contract columns (sync trigger, backfill, finalize gate).
//! - [`partition_index`]: `CREATE INDEX CONCURRENTLY` on a partitioned table, by the online
//!   recipe (read by the worker that runs it and by `plan()`).
//! - [`pg`]: the small, fenced layer over server internals (roles, subtransactions, scripts).
//! - [`gucs`]: every `migrate.*` setting.
//! - [`retry`]: the one backoff rule and the randomness behind jitter and lock keys.

use pgrx::prelude::*;

pub mod dependent_views;
pub mod deploy;
pub mod error;
pub mod expand;
pub mod guard;
pub mod gucs;
pub mod partition_index;
pub mod pg;
pub mod registry;
pub mod worker;

::pgrx::pg_module_magic!(name, version);

extension_sql_file!("sql/registry.sql", name = "registry_schema", bootstrap);
extension_sql_file!(
    "sql/guard.sql",
    name = "guard_schema",
    requires = ["registry_schema"]
);
extension_sql_file!(
    "sql/jobs.sql",
    name = "jobs_schema",
    requires = ["registry_schema"]
);
extension_sql_file!(
    "sql/deploy.sql",
    name = "deploy_schema",
    requires = ["jobs_schema"]
);
extension_sql_file!(
    "sql/expand.sql",
    name = "expand_schema",
    requires = ["jobs_schema"]
);
extension_sql_file!("sql/finalize.sql", name = "finalize", finalize);

#[pg_guard]
pub extern "C-unwind" fn _PG_init() {
    // A Rust backtrace in an error's DETAIL would show users our internals (and a server
    // started with RUST_BACKTRACE set would add one to every error): errors say what happened.
    std::env::remove_var("RUST_BACKTRACE");
    std::env::remove_var("RUST_LIB_BACKTRACE");
    gucs::init();
    guard::state::init();
    pg::script::set_statement_check(guard::held::before_statement);
    if pg::backend::preloading() {
        worker::launch::register_launcher();
        // Only while preloading: every backend then has it from the start. Without it the
        // event triggers are the guard (the rules that need it say so in migrate.rules).
        guard::hook::install();
    }
}

/// SHA-256 (hex) of a migration script as the registry computes it: CRLF normalised to LF and
/// a leading byte-order mark removed.
#[pg_extern(immutable, parallel_safe)]
fn checksum(sql: &str) -> String {
    migrate_core::checksum::checksum(sql)
}

#[cfg(any(test, feature = "pg_test"))]
mod in_server_tests;

/// Required by `cargo pgrx test`. The in-server tests run with the library preloaded, as
/// production does (the launcher and the postmaster-level setting exist only then).
#[cfg(test)]
pub mod pg_test {
    pub fn setup(_options: Vec<&str>) {}

    #[must_use]
    pub fn postgresql_conf_options() -> Vec<&'static str> {
        vec!["shared_preload_libraries = 'migrate'"]
    }
}
