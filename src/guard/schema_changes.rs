//! `migrate.schema_changes`: a record of every DDL statement that commits in the database, who
//! ran it and from where, and the migration it belonged to (none: drift).
//!
//! Written by the `ddl_command_end` event trigger in the statement's own transaction, so a
//! statement that rolls back leaves no row. Objects dropped by the statement come from a
//! `sql_drop` trigger that fires just before. DML never fires an event trigger, so it never
//! pays for the record. Temporary objects and an extension's member objects are not recorded
//! (a session's scratch tables are not schema; `CREATE EXTENSION` is, as one row).
//!
//! Who runs what: the trigger functions run as the user whose statement fired them; the two
//! catalog reads (`pg_event_trigger_ddl_commands()`, `pg_event_trigger_dropped_objects()`) are
//! built-in functions that evaluate nothing user-defined, and they and the insert run as the
//! registry owner with `search_path = pg_catalog, pg_temp` (`as_registry_owner`), so nothing a
//! role planted on its own search_path is reached.

use std::cell::RefCell;

use pgrx::prelude::*;

use crate::pg::backend;
use crate::pg::security::{self, as_registry_owner};

thread_local! {
    /// The migration whose script or worker step is running now, if any.
    static MIGRATION: RefCell<Option<String>> = const { RefCell::new(None) };
}

/// The migration `version` is running for as long as this lives (also when an error unwinds):
/// the DDL it does is recorded as that migration's, not as drift.
pub struct MigrationScope(Option<String>);

impl MigrationScope {
    pub fn enter(version: &str) -> Self {
        MigrationScope(MIGRATION.with(|m| m.borrow_mut().replace(version.to_string())))
    }
}

impl Drop for MigrationScope {
    fn drop(&mut self) {
        MIGRATION.with(|m| *m.borrow_mut() = self.0.take());
    }
}

fn current_migration() -> Option<String> {
    MIGRATION.with(|m| m.borrow().clone())
}

/// The record exists from 0.2.0 on; a 0.1.0 schema not yet updated has no table to write to.
fn record_installed() -> bool {
    crate::pg::query::required::<bool>(
        "SELECT pg_catalog.to_regclass('migrate.schema_change_log') IS NOT NULL",
        &[],
    )
}

/// `sql_drop`: remembers the objects the running statement dropped (not the ones dropped with
/// them, like a table's indexes, and not temporary ones) for `ddl_command_end` to record.
pub fn remember_dropped() {
    let dropped = as_registry_owner(|| {
        Spi::connect(|client| {
            let mut dropped = super::state::Dropped::default();
            for row in client.select(
                "SELECT d.object_type, d.object_identity, d.is_temporary \
                 FROM pg_catalog.pg_event_trigger_dropped_objects() d WHERE d.original",
                None,
                &[],
            )? {
                if row.get_by_name::<bool, _>("is_temporary")?.unwrap_or(false) {
                    continue;
                }
                dropped.objects.push(describe(
                    row.get_by_name::<String, _>("object_type")?,
                    row.get_by_name::<String, _>("object_identity")?,
                ));
            }
            Ok::<_, pgrx::spi::SpiError>(dropped)
        })
        .unwrap_or_else(|e| error!("migrate: could not read the dropped objects: {e}"))
    });
    super::state::remember_dropped(dropped);
}

fn describe(object_type: Option<String>, identity: Option<String>) -> String {
    match (object_type, identity) {
        (Some(t), Some(i)) => format!("{t} {i}"),
        (Some(t), None) => t,
        (None, Some(i)) => i,
        (None, None) => String::new(),
    }
}

/// `ddl_command_end`: writes the statement's row. `tag` is its command tag.
pub fn record(tag: &str) {
    let dropped = super::state::take_dropped();
    // A superuser's pg_restore re-creates every object of a dump: that is a restore, not a
    // change, and the dump carries the record of the original changes. (Anyone may claim the
    // application_name; only a superuser session, which could disable the triggers anyway,
    // is believed.)
    if backend::application_name() == "pg_restore"
        && security::is_superuser_role(backend::session_user())
    {
        return;
    }
    // The statements of an extension's script: CREATE/ALTER EXTENSION is recorded as one row.
    if backend::creating_extension() {
        return;
    }
    // A statement allowed in a read-only transaction (REINDEX on PostgreSQL 17 and later fires
    // the event triggers) changes no schema object the record would name.
    if backend::read_only_transaction() {
        return;
    }
    let role = security::role_name(security::current_user()).unwrap_or_default();
    let session_role = security::role_name(backend::session_user()).unwrap_or_default();
    as_registry_owner(|| {
        if !record_installed() {
            return;
        }
        let mut objects = Spi::connect(|client| {
            let mut objects = Vec::new();
            for row in client.select(
                "SELECT c.object_type, c.object_identity, c.schema_name, c.in_extension \
                 FROM pg_catalog.pg_event_trigger_ddl_commands() c",
                None,
                &[],
            )? {
                let schema = row.get_by_name::<String, _>("schema_name")?;
                let member = row.get_by_name::<bool, _>("in_extension")?.unwrap_or(false);
                if member || schema.as_deref() == Some("pg_temp") {
                    continue;
                }
                objects.push(describe(
                    row.get_by_name::<String, _>("object_type")?,
                    row.get_by_name::<String, _>("object_identity")?,
                ));
            }
            Ok::<_, pgrx::spi::SpiError>(objects)
        })
        .unwrap_or_else(|e| error!("migrate: could not read the DDL commands: {e}"));
        objects.extend(dropped.objects);
        // Keep the first mention of each object (CREATE TABLE with a serial column names
        // its sequence twice).
        let mut seen = std::collections::HashSet::new();
        objects.retain(|o| !o.is_empty() && seen.insert(o.clone()));
        // Only temporary objects or an extension's members; or no object at all (DROP ... IF
        // EXISTS of nothing, a command the catalog keeps no object of): nothing changed that
        // a record could name, and a role could otherwise write rows without end.
        if objects.is_empty() {
            return;
        }
        Spi::run_with_args(
            "INSERT INTO migrate.schema_change_log \
             (role, session_role, client_addr, application_name, backend_pid, command_tag, \
              objects, migration_version) \
             VALUES ($1, $2, pg_catalog.inet_client_addr(), $3, pg_catalog.pg_backend_pid(), \
                     $4, $5, $6)",
            &[
                role.as_str().into(),
                session_role.as_str().into(),
                backend::application_name().as_str().into(),
                tag.into(),
                objects.into(),
                current_migration().into(),
            ],
        )
        .unwrap_or_else(|e| error!("migrate: could not write migrate.schema_change_log: {e}"));
    });
}

/// At most this many drift rows in `validate()`; one more row says how many were left out.
const MAX_DRIFT_ROWS: i64 = 20;

/// `validate()`'s `schema_drift` rows: DDL that committed outside any migration since the
/// registry and the schema were last brought in line (when the last successful apply,
/// rollback, baseline or adopt was recorded: `events.recorded_at`, since an adopted
/// migration's `finished_at` is when the other tool ran it). Nothing before the first of those: without one there is no baseline to
/// drift from.
pub fn drift_problems() -> Vec<(Option<String>, String, String)> {
    as_registry_owner(|| {
        if !record_installed() {
            return Vec::new();
        }
        Spi::connect(|client| {
            let rows = client.select(
                "WITH last_sync AS (
                     SELECT pg_catalog.max(COALESCE(e.recorded_at, e.finished_at)) AS at
                     FROM migrate.events e
                     WHERE e.error_sqlstate IS NULL
                       AND e.action OPERATOR(pg_catalog.=) ANY
                           (ARRAY['apply', 'rollback', 'baseline', 'adopt']))
                 SELECT c.id, c.role::text AS role, c.application_name, c.command_tag,
                        pg_catalog.array_to_string(c.objects, ', ') AS objects,
                        pg_catalog.count(*) OVER () AS total
                 FROM migrate.schema_change_log c, last_sync s
                 WHERE c.migration_version IS NULL AND c.at OPERATOR(pg_catalog.>) s.at
                   AND c.objects OPERATOR(pg_catalog.<>) ARRAY['extension migrate']
                 ORDER BY c.id
                 LIMIT $1",
                None,
                &[MAX_DRIFT_ROWS.into()],
            )?;
            let mut out = Vec::new();
            let mut total = 0;
            for row in rows {
                total = row.get_by_name::<i64, _>("total")?.unwrap_or(0);
                let app = row
                    .get_by_name::<String, _>("application_name")?
                    .filter(|a| !a.is_empty())
                    .map(|a| format!(" (application_name {a})"))
                    .unwrap_or_default();
                out.push((
                    None,
                    "schema_drift".to_string(),
                    format!(
                        "{} ({}) by {}{app} outside any migration",
                        row.get_by_name::<String, _>("command_tag")?.unwrap_or_default(),
                        row.get_by_name::<String, _>("objects")?.unwrap_or_default(),
                        row.get_by_name::<String, _>("role")?.unwrap_or_default(),
                    ),
                ));
            }
            if total > MAX_DRIFT_ROWS {
                out.push((
                    None,
                    "schema_drift".to_string(),
                    format!(
                        "and {} more changes outside any migration: SELECT * FROM migrate.schema_changes WHERE migration_version IS NULL",
                        total - MAX_DRIFT_ROWS
                    ),
                ));
            }
            Ok::<_, pgrx::spi::SpiError>(out)
        })
        .unwrap_or_else(|e| error!("migrate: could not read migrate.schema_change_log: {e}"))
    })
}
