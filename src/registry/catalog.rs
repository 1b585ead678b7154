//! Reads and writes of the registry tables (`migrate.migrations`, `migrate.events`). Every
//! function here runs as the registry owner with a pinned `search_path`; callers decide when.

use migrate_core::{checksum, route, version};
use pgrx::datum::{DatumWithOid, Interval, TimestampWithTimeZone};
use pgrx::prelude::*;
use pgrx::spi::{SpiClient, SpiHeapTupleData};

use crate::pg::security::as_registry_owner;

/// One row of `migrate.migrations`.
#[derive(Debug, Clone)]
pub struct Migration {
    pub version: String,
    pub name: Option<String>,
    pub up_sql: String,
    pub down_sql: Option<String>,
    pub checksum: String,
    pub transactional: bool,
    pub requires: Vec<String>,
    pub added_by: String,
    /// The role that wrote the down script when it was amended after the migration was
    /// registered (None: the role that registered it).
    pub down_by: Option<String>,
    pub state: MigrationState,
    pub applied_checksum: Option<String>,
    /// Runs again whenever its script changes (see [`route::Entry::repeatable`]).
    pub repeatable: bool,
    /// Its `safe` option (None: `migrate.safe_by_default` decides; see
    /// [`crate::registry::safe`]).
    pub safe: Option<bool>,
    /// The script safe mode last ran for it in a worker (its first line names the direction
    /// and the checksum of the script it was made from): the only text besides the registered
    /// scripts a migration job may run as the author ([`crate::worker::launch::login_role`]).
    pub safe_script: Option<String>,
}

/// `migrate.migrations.state`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MigrationState {
    Pending,
    /// Its up script ran (apply, deploy, or set by hand with resolve()).
    Applied,
    /// Marked applied by baseline() without running: the schema already had it.
    Baselined,
}

impl MigrationState {
    /// The state as the table's CHECK constraint spells it.
    pub fn as_str(self) -> &'static str {
        match self {
            MigrationState::Pending => "pending",
            MigrationState::Applied => "applied",
            MigrationState::Baselined => "baselined",
        }
    }

    /// The state a row holds; the CHECK constraint allows nothing else, so anything else
    /// raises rather than being read as some default.
    fn from_column(text: &str) -> Self {
        match text {
            "pending" => MigrationState::Pending,
            "applied" => MigrationState::Applied,
            "baselined" => MigrationState::Baselined,
            other => error!("migrate: migrate.migrations has an unknown state \"{other}\""),
        }
    }
}

impl std::fmt::Display for MigrationState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// `migrate.events.action`: what a history row records.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    Add,
    Replace,
    Amend,
    Apply,
    Rollback,
    Baseline,
    /// deploy() refused before a step ran.
    Deploy,
    Resolve,
    /// A pending migration unregistered with remove().
    Remove,
    /// Marked applied by adopt(): another tool's table says that tool applied it.
    Adopt,
}

impl Action {
    pub fn as_str(self) -> &'static str {
        match self {
            Action::Add => "add",
            Action::Replace => "replace",
            Action::Amend => "amend",
            Action::Apply => "apply",
            Action::Rollback => "rollback",
            Action::Baseline => "baseline",
            Action::Deploy => "deploy",
            Action::Resolve => "resolve",
            Action::Remove => "remove",
            Action::Adopt => "adopt",
        }
    }
}

impl Migration {
    /// The role that wrote the script that runs in `direction`; it runs as that role.
    pub fn author(&self, direction: super::execute::Direction) -> &str {
        match (direction, &self.down_by) {
            (super::execute::Direction::Down, Some(by)) => by,
            _ => &self.added_by,
        }
    }

    pub fn is_applied(&self) -> bool {
        self.state != MigrationState::Pending
    }

    fn route_entry(&self) -> route::Entry {
        route::Entry {
            version: self.version.clone(),
            applied: self.is_applied(),
            transactional: self.transactional,
            reversible: self.down_sql.is_some(),
            requires: self.requires.clone(),
            repeatable: self.repeatable,
        }
    }
}

/// The registered migration `version` (in any spelling: `01` is `1`), or 42704.
pub fn find<'a>(all: &'a [Migration], version: &str) -> crate::error::Result<&'a Migration> {
    all.iter()
        .find(|m| version::compare(&m.version, version).is_eq())
        .ok_or_else(|| {
            crate::error::UserError::new(
                PgSqlErrorCode::ERRCODE_UNDEFINED_OBJECT,
                format!("migration {version} is not registered"),
            )
            .hint("See SELECT * FROM migrate.status() for registered versions.")
        })
}

/// What the router needs to know of each migration, in the same order as `all`.
pub fn route_entries(all: &[Migration]) -> Vec<route::Entry> {
    all.iter().map(Migration::route_entry).collect()
}

fn spi<T>(result: pgrx::spi::Result<T>) -> T {
    result.unwrap_or_else(|e| error!("migrate: registry query failed: {e}"))
}

/// Waits for, then holds until the end of the transaction, the registry lock: concurrent
/// `apply()`, `add()`, `rollback()` and `baseline()` calls in one database run one at a time.
/// It is a row lock on `migrate.locks`, which only the extension's own functions can take, so
/// its holder is always another registry call, never a role squatting a public advisory key.
pub fn lock_registry() {
    lock_row("registry")
}

/// The backend running a deploy in this database, if any: the holder of the deploy lock.
pub fn running_deploy() -> Option<i32> {
    use crate::pg::locks::{self, Namespace};
    let holder = Spi::get_one::<i32>(&format!(
        "SELECT l.pid FROM pg_catalog.pg_locks l WHERE {} LIMIT 1",
        locks::held_sql(Namespace::Deploy)
    ));
    match holder {
        Ok(pid) => pid,
        // No row: nobody holds it.
        Err(pgrx::spi::SpiError::InvalidPosition) => None,
        // Read as "no deploy", a failed query would let apply() race a running deploy.
        Err(e) => error!("migrate: could not check for a running deploy: {e}"),
    }
}

/// Refuses a registry change while a deploy runs in another session: it would interleave with
/// the deploy's steps (which commit one by one) or race its background worker.
pub fn refuse_while_deploying(what: &str) -> crate::error::Result<()> {
    let pid = running_deploy().filter(|&pid| pid != crate::pg::backend::pid());
    match pid {
        Some(pid) => Err(crate::error::UserError::new(
            PgSqlErrorCode::ERRCODE_OBJECT_IN_USE,
            format!(
                "migrate.{what}() refused: a deploy is running in this database (backend {pid})"
            ),
        )
        .hint("Wait for the deploy to finish (or cancel it), then try again.")),
        None => Ok(()),
    }
}

/// Locks row `name` of `migrate.locks` for the rest of the transaction.
pub fn lock_row(name: &str) {
    as_registry_owner(|| {
        spi(Spi::run_with_args(
            "SELECT 1 FROM migrate.locks WHERE name OPERATOR(pg_catalog.=) $1 FOR UPDATE",
            &[name.into()],
        ))
    })
}

const COLUMNS: &str = "version, name, up_sql, down_sql, checksum, transactional, requires, \
                       added_by::text AS added_by, state, applied_checksum, down_by::text AS down_by";

fn optional<T: FromDatum + IntoDatum>(row: &SpiHeapTupleData<'_>, column: &str) -> Option<T> {
    spi(row.get_by_name::<T, _>(column))
}

/// A NOT NULL column: a NULL would be a corrupted registry, never read as a default.
fn required<T: FromDatum + IntoDatum>(row: &SpiHeapTupleData<'_>, column: &str) -> T {
    optional(row, column)
        .unwrap_or_else(|| error!("migrate: migrate.migrations.{column} is NULL in a registry row"))
}

fn read_rows(client: &mut SpiClient<'_>, sql: &str, params: &[DatumWithOid<'_>]) -> Vec<Migration> {
    let table = spi(client.update(sql, None, params));
    table
        .map(|row| Migration {
            version: required(&row, "version"),
            name: optional(&row, "name"),
            up_sql: required(&row, "up_sql"),
            down_sql: optional(&row, "down_sql"),
            checksum: required(&row, "checksum"),
            transactional: required(&row, "transactional"),
            requires: required(&row, "requires"),
            added_by: required(&row, "added_by"),
            state: MigrationState::from_column(&required::<String>(&row, "state")),
            applied_checksum: optional(&row, "applied_checksum"),
            down_by: optional(&row, "down_by"),
            repeatable: required(&row, "repeatable"),
            safe: optional(&row, "safe"),
            safe_script: optional(&row, "safe_script"),
        })
        .collect()
}

/// Every registered migration in the registry's order (`route::order`: requirements first,
/// then natural version order; natural version order when nothing declares requirements), so
/// that whoever walks the list (verify(), validate()) walks it as apply() does. With `lock`,
/// the rows are locked `FOR UPDATE`: under REPEATABLE READ a concurrent change then fails with
/// a serialization error instead of being missed.
pub fn load_all(lock: bool) -> Vec<Migration> {
    let rows = load_sorted(lock);
    let order = route::order(&route_entries(&rows));
    let mut slots: Vec<Option<Migration>> = rows.into_iter().map(Some).collect();
    order.into_iter().filter_map(|i| slots[i].take()).collect()
}

/// Every registered migration in natural version order (`sort_key`).
fn load_sorted(lock: bool) -> Vec<Migration> {
    let repeatable = if has_repeatable_column() {
        "repeatable"
    } else {
        "false AS repeatable"
    };
    let safe = if has_column("safe") {
        "safe, safe_script"
    } else {
        "NULL::pg_catalog.bool AS safe, NULL::pg_catalog.text AS safe_script"
    };
    let sql = format!(
        "SELECT {COLUMNS}, {repeatable}, {safe} FROM migrate.migrations ORDER BY sort_key{}",
        if lock { " FOR UPDATE" } else { "" }
    );
    as_registry_owner(|| Spi::connect_mut(|client| read_rows(client, &sql, &[])))
}

/// The definition of a migration as given to `migrate.add`.
pub struct Definition<'a> {
    pub version: &'a str,
    pub name: Option<&'a str>,
    pub up_sql: &'a str,
    pub down_sql: Option<&'a str>,
    pub transactional: bool,
    pub requires: &'a [String],
    pub added_by: &'a str,
    pub repeatable: bool,
    pub safe: Option<bool>,
}

/// True once `ALTER EXTENSION migrate UPDATE` has added `migrations.repeatable` (0.2.0): the
/// library runs against a 0.1.0 schema until then (UPDATING.md).
fn has_repeatable_column() -> bool {
    has_column("repeatable")
}

/// True once the schema has safe mode's columns (0.2.0): until then safe mode is off, since a
/// worker may only run a rewritten script recorded in `migrations.safe_script`.
pub fn has_safe_columns() -> bool {
    has_column("safe_script")
}

/// True if `migrate.migrations` has this column: the library also runs against the schema of
/// an older version until `ALTER EXTENSION migrate UPDATE` (UPDATING.md).
fn has_column(column: &str) -> bool {
    as_registry_owner(|| {
        crate::pg::query::required::<bool>(
            "SELECT EXISTS (SELECT FROM pg_catalog.pg_attribute a \
               WHERE a.attrelid OPERATOR(pg_catalog.=) 'migrate.migrations'::pg_catalog.regclass \
                 AND a.attname OPERATOR(pg_catalog.=) $1::pg_catalog.name AND NOT a.attisdropped)",
            &[column.into()],
        )
    })
}

/// Inserts a new migration, or replaces the definition of a pending one (or of a repeatable
/// one, which then is pending again: it runs again with its new script).
pub fn upsert(def: &Definition<'_>) -> crate::error::Result<()> {
    let sum = checksum::checksum(def.up_sql);
    let key = version::sort_key(def.version);
    let (column, value) = if has_repeatable_column() {
        (", repeatable", ", $11")
    } else if def.repeatable {
        return Err(crate::error::UserError::new(
            PgSqlErrorCode::ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE,
            format!(
                "migration {} is repeatable, which needs migrate 0.2.0's schema",
                def.version
            ),
        )
        .hint("Run ALTER EXTENSION migrate UPDATE first."));
    } else {
        // 0.1.0's table has no such column (and the migration is not repeatable).
        ("", "")
    };
    // The safe option (0.2.0's column): NULL when the migration says nothing.
    let (safe_column, safe_value, safe_update) = if has_column("safe") {
        (
            ", safe",
            ", $12",
            "safe = excluded.safe, safe_script = NULL, ",
        )
    } else if def.safe.is_some() {
        return Err(crate::error::UserError::new(
            PgSqlErrorCode::ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE,
            format!(
                "migration {} has the safe option, which needs migrate 0.2.0's schema",
                def.version
            ),
        )
        .hint("Run ALTER EXTENSION migrate UPDATE first."));
    } else {
        ("", "", "")
    };
    let sql = format!(
        "INSERT INTO migrate.migrations AS m \
           (version, sort_key, name, up_sql, down_sql, checksum, checksum_algorithm, \
            transactional, requires, added_by{column}{safe_column}) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10{value}{safe_value}) \
         ON CONFLICT (version) DO UPDATE SET {safe_update}\
           name = excluded.name, up_sql = excluded.up_sql, down_sql = excluded.down_sql, \
           checksum = excluded.checksum, checksum_algorithm = excluded.checksum_algorithm, \
           transactional = excluded.transactional, requires = excluded.requires, \
           added_by = excluded.added_by, down_by = NULL, added_at = pg_catalog.now(), \
           state = 'pending', applied_at = NULL, applied_by = NULL, applied_checksum = NULL, \
           run_id = NULL, duration = NULL \
         WHERE m.state OPERATOR(pg_catalog.=) 'pending' OR $11"
    );
    as_registry_owner(|| {
        spi(Spi::run_with_args(
            &sql,
            &[
                def.version.into(),
                key.as_slice().into(),
                def.name.into(),
                def.up_sql.into(),
                def.down_sql.into(),
                sum.as_str().into(),
                checksum::ALGORITHM.into(),
                def.transactional.into(),
                def.requires.to_vec().into(),
                def.added_by.into(),
                def.repeatable.into(),
                def.safe.into(),
            ],
        ))
    });
    Ok(())
}

/// Records the script safe mode runs for `version` in a worker (see [`Migration::safe_script`]).
pub fn set_safe_script(version: &str, script: &str) {
    as_registry_owner(|| {
        spi(Spi::run_with_args(
            "UPDATE migrate.migrations SET safe_script = $2 WHERE version OPERATOR(pg_catalog.=) $1",
            &[version.into(), script.into()],
        ))
    });
}

/// Updates the parts of an applied migration that may still change: its name and down script.
/// `down_by` is the role that wrote a changed down script: from now on it runs as that role.
pub fn amend(version: &str, name: Option<&str>, down_sql: Option<&str>, down_by: Option<&str>) {
    as_registry_owner(|| {
        spi(Spi::run_with_args(
            "UPDATE migrate.migrations SET name = $2, down_sql = $3, \
               down_by = COALESCE($4, down_by) WHERE version = $1",
            &[version.into(), name.into(), down_sql.into(), down_by.into()],
        ))
    })
}

/// The current time from the server's clock (not the transaction start).
pub fn clock_now() -> TimestampWithTimeZone {
    spi(Spi::get_one::<TimestampWithTimeZone>(
        "SELECT pg_catalog.clock_timestamp()",
    ))
    .expect("clock_timestamp() is never NULL")
}

/// A new run id, shared by the events of one API call.
pub fn next_run_id() -> i64 {
    as_registry_owner(|| {
        spi(Spi::get_one::<i64>(
            "SELECT pg_catalog.nextval('migrate.run_id_seq')",
        ))
        .expect("nextval is never NULL")
    })
}

/// Marks a migration applied (or baselined), run from `started` until now.
pub fn mark_applied(
    version: &str,
    state: MigrationState,
    applied_by: &str,
    run_id: i64,
    started: TimestampWithTimeZone,
) {
    as_registry_owner(|| {
        spi(Spi::run_with_args(
            "UPDATE migrate.migrations SET state = $2, applied_at = $5, applied_by = $3, \
               applied_checksum = checksum, run_id = $4, \
               duration = pg_catalog.clock_timestamp() - $5 \
             WHERE version = $1",
            &[
                version.into(),
                state.as_str().into(),
                applied_by.into(),
                run_id.into(),
                started.into(),
            ],
        ))
    })
}

/// Unregisters a migration (remove(); callers checked it is pending).
pub fn delete(version: &str) {
    as_registry_owner(|| {
        spi(Spi::run_with_args(
            "DELETE FROM migrate.migrations WHERE version OPERATOR(pg_catalog.=) $1",
            &[version.into()],
        ))
    })
}

/// Marks a migration pending again after its down script ran.
pub fn mark_pending(version: &str) {
    as_registry_owner(|| {
        spi(Spi::run_with_args(
            "UPDATE migrate.migrations SET state = 'pending', applied_at = NULL, \
               applied_by = NULL, applied_checksum = NULL, run_id = NULL, duration = NULL \
             WHERE version = $1",
            &[version.into()],
        ))
    })
}

/// One row for the append-only event log.
pub struct Event<'a> {
    pub run_id: i64,
    pub version: &'a str,
    pub action: Action,
    pub started: TimestampWithTimeZone,
    pub role: &'a str,
    pub detail: Option<&'a str>,
}

/// Appends an event; returns its duration.
pub fn log_event(event: &Event<'_>) -> Interval {
    as_registry_owner(|| {
        spi(Spi::get_one_with_args::<Interval>(
            "INSERT INTO migrate.events \
               (run_id, version, action, started_at, finished_at, role, client_addr, detail) \
             VALUES ($1, $2, $3, $4, pg_catalog.clock_timestamp(), $5, \
                     pg_catalog.inet_client_addr(), $6) \
             RETURNING finished_at - started_at",
            &[
                event.run_id.into(),
                event.version.into(),
                event.action.as_str().into(),
                event.started.into(),
                event.role.into(),
                event.detail.into(),
            ],
        ))
        .expect("RETURNING gives a row")
    })
}

/// Appends a failed action (with the error that stopped it) to the event log.
pub fn log_failure(event: &Event<'_>, sqlstate: &str, message: &str) {
    as_registry_owner(|| {
        spi(Spi::run_with_args(
            "INSERT INTO migrate.events (run_id, version, action, started_at, finished_at, role, \
               client_addr, error_sqlstate, error_message, detail) \
             VALUES ($1, $2, $3, $4, pg_catalog.clock_timestamp(), $5, \
                     pg_catalog.inet_client_addr(), $6, $7, $8)",
            &[
                event.run_id.into(),
                event.version.into(),
                event.action.as_str().into(),
                event.started.into(),
                event.role.into(),
                sqlstate.into(),
                message.into(),
                event.detail.into(),
            ],
        ))
    })
}

/// Marks a migration applied without running it because another tool applied it: state
/// `baselined`, applied at `at` (the tool's time, or now), taking `duration_ms` (the tool's,
/// if it says).
pub fn mark_adopted(
    version: &str,
    applied_by: &str,
    run_id: i64,
    at: TimestampWithTimeZone,
    duration_ms: Option<f64>,
) {
    as_registry_owner(|| {
        spi(Spi::run_with_args(
            "UPDATE migrate.migrations SET state = 'baselined', applied_at = $4, applied_by = $2, \
               applied_checksum = checksum, run_id = $3, \
               duration = pg_catalog.make_interval(secs => $5 OPERATOR(pg_catalog./) 1000) \
             WHERE version OPERATOR(pg_catalog.=) $1",
            &[
                version.into(),
                applied_by.into(),
                run_id.into(),
                at.into(),
                duration_ms.into(),
            ],
        ))
    })
}

/// Appends an event that took place from `started` to `finished` (an adopted migration: when
/// the other tool ran it).
pub fn log_event_between(event: &Event<'_>, finished: TimestampWithTimeZone) {
    as_registry_owner(|| {
        spi(Spi::run_with_args(
            "INSERT INTO migrate.events \
               (run_id, version, action, started_at, finished_at, role, client_addr, detail) \
             VALUES ($1, $2, $3, $4, $7, $5, pg_catalog.inet_client_addr(), $6)",
            &[
                event.run_id.into(),
                event.version.into(),
                event.action.as_str().into(),
                event.started.into(),
                event.role.into(),
                event.detail.into(),
                finished.into(),
            ],
        ))
    })
}

/// One row of `migrate.adoptions` still in force: a database adopted from a tool's table.
#[derive(Debug, Clone)]
pub struct Adoption {
    pub tool: String,
    pub schema: String,
    pub table: String,
}

/// True once `ALTER EXTENSION migrate UPDATE` has created `migrate.adoptions` (0.2.0).
pub fn has_adoptions() -> bool {
    as_registry_owner(|| {
        crate::pg::query::required::<bool>(
            "SELECT pg_catalog.to_regclass('migrate.adoptions') IS NOT NULL",
            &[],
        )
    })
}

/// The adoptions in force (not ended), oldest first; none on a 0.1.0 schema.
pub fn adoptions() -> Vec<Adoption> {
    if !has_adoptions() {
        return Vec::new();
    }
    as_registry_owner(|| {
        Spi::connect(|client| {
            let rows = client.select(
                "SELECT tool, table_schema::pg_catalog.text, table_name::pg_catalog.text \
                 FROM migrate.adoptions WHERE ended_at IS NULL ORDER BY id",
                None,
                &[],
            )?;
            rows.map(|row| {
                Ok(Adoption {
                    tool: row.get::<String>(1)?.unwrap_or_default(),
                    schema: row.get::<String>(2)?.unwrap_or_default(),
                    table: row.get::<String>(3)?.unwrap_or_default(),
                })
            })
            .collect::<pgrx::spi::Result<Vec<_>>>()
        })
    })
    .unwrap_or_else(|e| error!("migrate: registry query failed: {e}"))
}

/// Records that the database was adopted from `tool`'s table `schema.table`, unless that
/// adoption is in force already (adopting again is a sync).
pub fn record_adoption(tool: &str, schema: &str, table: &str, role: &str, run_id: i64) {
    as_registry_owner(|| {
        spi(Spi::run_with_args(
            "INSERT INTO migrate.adoptions \
               (tool, table_schema, table_name, adopted_at, adopted_by, run_id) \
             SELECT $1, $2, $3, pg_catalog.now(), $4, $5 \
             WHERE NOT EXISTS (SELECT FROM migrate.adoptions a \
                               WHERE a.tool OPERATOR(pg_catalog.=) $1 \
                                 AND a.table_schema OPERATOR(pg_catalog.=) $2::pg_catalog.name \
                                 AND a.table_name OPERATOR(pg_catalog.=) $3::pg_catalog.name \
                                 AND a.ended_at IS NULL)",
            &[
                tool.into(),
                schema.into(),
                table.into(),
                role.into(),
                run_id.into(),
            ],
        ))
    })
}

/// Ends the adoptions in force from `tool` (of `schema.table` only, if given); returns how
/// many.
pub fn end_adoptions(tool: &str, place: Option<(&str, &str)>, role: &str) -> i32 {
    let (schema, table) = place.unzip();
    as_registry_owner(|| {
        crate::pg::query::required::<i64>(
            "WITH ended AS ( \
               UPDATE migrate.adoptions SET ended_at = pg_catalog.now(), ended_by = $4 \
               WHERE tool OPERATOR(pg_catalog.=) $1 AND ended_at IS NULL \
                 AND ($2::pg_catalog.text IS NULL \
                      OR (table_schema OPERATOR(pg_catalog.=) $2::pg_catalog.name \
                          AND table_name OPERATOR(pg_catalog.=) $3::pg_catalog.name)) \
               RETURNING 1) \
             SELECT pg_catalog.count(*) FROM ended",
            &[tool.into(), schema.into(), table.into(), role.into()],
        )
    }) as i32
}
