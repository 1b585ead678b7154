//! The pure logic of the `migrate` extension: decisions made from plain values, with no
//! PostgreSQL server and no pgrx, so `cargo test -p migrate-core` runs in seconds anywhere.
//! The extension crate loads the facts (catalog rows, settings, parse trees), asks this crate,
//! and turns the answers into SQL, errors and catalog writes.
//!
//! - [`version`]: version validation and natural order.
//! - [`route`]: which migrations apply, rollback, baseline and deploy act on, in which order,
//!   and every reason to refuse; the registry's order and dependency checks.
//! - [`checksum`]: script checksums.
//! - [`options`]: migration options and the directives written in scripts.
//! - [`retry`]: the one backoff rule and the randomness behind jitter.
//! - [`rules`]: the guard rules: facts about a DDL statement and its table in, findings out.
//! - [`tools`]: each rule's safe form in the terms of Django, Alembic, Rails and the SQL-file tools.
//! - [`transaction`]: whether a script runs in a transaction, and the `BEGIN`/`COMMIT` wrapper.
//! - [`batch`]: a backfill's batch sizes, its split among workers, the replication-lag throttle.
//! - [`adopt`]: what another tool's bookkeeping table says was applied, and what adopting does.
//! - [`partition_index`]: the steps of a concurrent index build on a partitioned table.

#![forbid(unsafe_code)]

pub mod adopt;
pub mod batch;
pub mod checksum;
pub mod options;
pub mod partition_index;
pub mod retry;
pub mod route;
pub mod rules;
pub mod safe;
pub mod tools;
pub mod transaction;
pub mod version;
