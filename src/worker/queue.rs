//! `migrate.job_queue`: reading and writing jobs. Every write runs as the registry owner (the
//! table is not writable by anyone else) with a pinned search_path.

use pgrx::pg_sys;
use pgrx::prelude::*;
use pgrx::spi::SpiHeapTupleData;

use super::backfill::Key;
use crate::pg::locks;
use crate::pg::security::as_registry_owner;

// The worker's locks (job, range, slot, control) are object locks only this extension can take:
// see crate::pg::locks.
pub use crate::pg::locks::{Mode, Namespace};

/// States a job can be in.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum JobState {
    Queued,
    Running,
    Paused,
    Succeeded,
    Failed,
    Cancelled,
}

impl JobState {
    /// The state as `migrate.job_queue.state` spells it.
    pub fn as_str(self) -> &'static str {
        match self {
            JobState::Queued => "queued",
            JobState::Running => "running",
            JobState::Paused => "paused",
            JobState::Succeeded => "succeeded",
            JobState::Failed => "failed",
            JobState::Cancelled => "cancelled",
        }
    }

    /// The state of its spelling; the table's CHECK constraint allows no other.
    pub fn parse(text: &str) -> Option<JobState> {
        [QUEUED, RUNNING, PAUSED, SUCCEEDED, FAILED, CANCELLED]
            .into_iter()
            .find(|s| s.as_str() == text)
    }
}

impl std::fmt::Display for JobState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

pub const QUEUED: JobState = JobState::Queued;
pub const RUNNING: JobState = JobState::Running;
pub const PAUSED: JobState = JobState::Paused;
pub const SUCCEEDED: JobState = JobState::Succeeded;
pub const FAILED: JobState = JobState::Failed;
pub const CANCELLED: JobState = JobState::Cancelled;

/// The kinds of job, as `migrate.job_queue.kind` spells them.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum JobKind {
    /// A batched `UPDATE` queued by `backfill()`.
    Backfill,
    /// A non-transactional migration script that `deploy()` hands to a worker.
    Migration,
}

impl JobKind {
    pub fn as_str(self) -> &'static str {
        match self {
            JobKind::Backfill => "backfill",
            JobKind::Migration => "migration",
        }
    }

    /// The kind of its spelling; the table's CHECK constraint allows no other.
    pub fn parse(text: &str) -> Option<JobKind> {
        [JobKind::Backfill, JobKind::Migration]
            .into_iter()
            .find(|k| k.as_str() == text)
    }
}

/// One job as stored: what every job has, and what it runs.
#[derive(Debug, Clone)]
pub struct Job {
    pub id: i64,
    pub state: JobState,
    pub search_path: String,
    /// The role the job runs as.
    pub owner: pg_sys::Oid,
    pub owner_name: String,
    pub allow_superuser: bool,
    /// A worker took it at least once.
    pub started: bool,
    pub spec: JobSpec,
}

/// What a job runs.
#[derive(Debug, Clone)]
pub enum JobSpec {
    Backfill(BackfillJob),
    Migration(MigrationJob),
}

impl Job {
    pub fn kind(&self) -> JobKind {
        match self.spec {
            JobSpec::Backfill(_) => JobKind::Backfill,
            JobSpec::Migration(_) => JobKind::Migration,
        }
    }

    /// The migration a migration job runs; None for a backfill.
    pub fn migration(&self) -> Option<&MigrationJob> {
        match &self.spec {
            JobSpec::Migration(m) => Some(m),
            JobSpec::Backfill(_) => None,
        }
    }
}

/// A batched `UPDATE table SET set_sql WHERE where_sql`, walked along `key`.
#[derive(Debug, Clone)]
pub struct BackfillJob {
    pub relid: pg_sys::Oid,
    /// The table's name when the job was queued (it may have been renamed since).
    pub table_name: String,
    pub set_sql: String,
    pub where_sql: Option<String>,
    /// None for a table without a key: then where_sql alone says which rows are left.
    pub key: Option<Key>,
    /// Pinned by the caller, or None: adapted to `migrate.backfill_batch_time`.
    pub batch_size: Option<i32>,
    pub current_batch_size: i32,
    pub workers: i32,
    pub pause_ms: f64,
    /// The duration an adaptive batch aims for (set by `alter_job()`), or None:
    /// `migrate.backfill_batch_time`.
    pub batch_time_ms: Option<f64>,
    /// It has a start_after or a window: the walk checks them before every batch.
    pub scheduled: bool,
    /// The lock_timeout of its batches when it is not `migrate.lock_timeout`: a safe-mode
    /// fill's, the deploy's (see [`set_lock_timeout`]).
    pub lock_timeout_ms: Option<i32>,
}

/// A non-transactional migration script that a worker runs top-level for `deploy()`.
#[derive(Debug, Clone)]
pub struct MigrationJob {
    pub version: String,
    pub up: bool,
    pub script: String,
    /// Statements already done (committed) and the script's statement count.
    pub statements_done: i64,
    pub statements: i64,
    /// The statement (1-based) a worker was running when it stopped, if any.
    pub current_statement: Option<i32>,
    pub run_id: i64,
    pub requested_by: String,
    pub lock_timeout_ms: i32,
    pub lock_retries: i32,
    pub lock_retry_delay_ms: i32,
    /// `migrate.snapshot_wait_timeout` of the deploying session (ms, 0: no limit).
    pub snapshot_wait_timeout_ms: i32,
}

/// Where migration jobs count their statements in this database. The library runs against a
/// database still at 0.1.0 until `ALTER EXTENSION migrate UPDATE` (UPDATING.md), and 0.1.0
/// counted a migration job's statements in the backfill's row counters.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum StatementCounters {
    /// `statements_done` and `statements_total` (0.2.0 on).
    Own,
    /// `rows_done` (and `rows_updated`) and `rows_estimated` (0.1.0).
    InRowCounters,
}

impl StatementCounters {
    /// The counters of this database's job queue (and jobs view).
    pub fn here() -> StatementCounters {
        let own = Spi::get_one::<bool>(
            "SELECT EXISTS (SELECT FROM pg_catalog.pg_attribute a \
             WHERE a.attrelid OPERATOR(pg_catalog.=) 'migrate.job_queue'::pg_catalog.regclass \
               AND a.attname OPERATOR(pg_catalog.=) 'statements_done' AND NOT a.attisdropped)",
        )
        .unwrap_or_else(|e| error!("migrate: could not read the job queue's columns: {e}"))
        .expect("EXISTS is never NULL");
        if own {
            StatementCounters::Own
        } else {
            StatementCounters::InRowCounters
        }
    }

    /// The column of the statements done.
    pub fn done(self) -> &'static str {
        match self {
            StatementCounters::Own => "statements_done",
            StatementCounters::InRowCounters => "rows_done",
        }
    }

    /// The column of the script's statement count.
    pub fn total(self) -> &'static str {
        match self {
            StatementCounters::Own => "statements_total",
            StatementCounters::InRowCounters => "rows_estimated",
        }
    }
}

/// The columns of `migrate.job_queue` added in 0.2.0 that this database has, read in one
/// catalog query: (statements_done, batch_time).
fn columns_since_0_1() -> (bool, bool) {
    let found = Spi::get_two::<bool, bool>(
        "SELECT pg_catalog.bool_or(a.attname OPERATOR(pg_catalog.=) 'statements_done'), \
                pg_catalog.bool_or(a.attname OPERATOR(pg_catalog.=) 'batch_time') \
         FROM pg_catalog.pg_attribute a \
         WHERE a.attrelid OPERATOR(pg_catalog.=) 'migrate.job_queue'::pg_catalog.regclass \
           AND a.attname OPERATOR(pg_catalog.=) ANY (ARRAY['statements_done', 'batch_time']::pg_catalog.name[]) \
           AND NOT a.attisdropped",
    )
    .unwrap_or_else(|e| error!("migrate: could not read the job queue's columns: {e}"));
    (found.0.unwrap_or(false), found.1.unwrap_or(false))
}

/// True if this database's job queue has the 0.2.0 settings alter_job() changes.
pub fn has_batch_time() -> bool {
    columns_since_0_1().1
}

/// The columns a job is read with, each under the name [`from_row`] reads it by.
fn columns() -> String {
    let (own, batch_time) = columns_since_0_1();
    let counters = if own {
        StatementCounters::Own
    } else {
        StatementCounters::InRowCounters
    };
    // The columns of 0.2.0's job control come in one upgrade step: batch_time stands for all.
    format!(
        "{COLUMNS}, {} AS statements_done, {} AS statements_total, {} AS batch_time_ms, {} AS scheduled",
        counters.done(),
        counters.total(),
        if batch_time {
            "(EXTRACT(epoch FROM batch_time) OPERATOR(pg_catalog.*) 1000)::pg_catalog.float8"
        } else {
            "NULL::pg_catalog.float8"
        },
        if batch_time {
            "(start_after IS NOT NULL OR window_start IS NOT NULL)"
        } else {
            "false"
        }
    )
}

const COLUMNS: &str = "id, state, kind, relid::pg_catalog.oid AS relid, table_name, set_sql, \
    where_sql, key_columns, key_types, search_path, batch_size, current_batch_size, workers, \
    (EXTRACT(epoch FROM pause) OPERATOR(pg_catalog.*) 1000)::pg_catalog.float8 AS pause_ms, \
    owner_oid, owner_name::pg_catalog.text AS owner_name, \
    allow_superuser, started_at IS NOT NULL AS started, version, direction, script, \
    current_statement, run_id, requested_by::pg_catalog.text AS requested_by, \
    (settings OPERATOR(pg_catalog.->>) 'lock_timeout_ms')::pg_catalog.int4 AS lock_timeout_ms, \
    (settings OPERATOR(pg_catalog.->>) 'lock_retries')::pg_catalog.int4 AS lock_retries, \
    (settings OPERATOR(pg_catalog.->>) 'lock_retry_delay_ms')::pg_catalog.int4 AS lock_retry_delay_ms, \
    (settings OPERATOR(pg_catalog.->>) 'snapshot_wait_timeout_ms')::pg_catalog.int4 AS snapshot_wait_timeout_ms";

/// One row read by column name. A column that is missing or of another type is a bug in the
/// query's select list: it raises rather than reading as NULL.
struct Columns<'a, 'conn>(&'a SpiHeapTupleData<'conn>);

impl Columns<'_, '_> {
    fn get<T: IntoDatum + FromDatum>(&self, name: &str) -> Option<T> {
        self.0
            .get_by_name::<T, _>(name)
            .unwrap_or_else(|e| error!("migrate: could not read column {name}: {e}"))
    }

    /// A column the table's constraints keep NOT NULL (for the row's kind).
    fn required<T: IntoDatum + FromDatum>(&self, name: &str) -> T {
        self.get(name)
            .unwrap_or_else(|| error!("migrate: column {name} is NULL"))
    }
}

/// The first column of a query's first row; None if it returns no row or NULL. For queries
/// whose answer decides what a job does: an SPI error raises, it never reads as "no row".
pub fn first_value<T: IntoDatum + FromDatum>(
    what: &str,
    sql: &str,
    args: &[pgrx::datum::DatumWithOid],
) -> Option<T> {
    Spi::connect(|client| {
        let mut rows = client
            .select(sql, Some(1), args)
            .unwrap_or_else(|e| error!("migrate: could not {what}: {e}"));
        rows.next().and_then(|row| {
            row.get::<T>(1)
                .unwrap_or_else(|e| error!("migrate: could not {what}: {e}"))
        })
    })
}

/// The values of a one-column query, for the same kind of query as [`first_value`]: a NULL is
/// skipped, an SPI error raises.
pub fn column_values<T: IntoDatum + FromDatum>(
    what: &str,
    sql: &str,
    args: &[pgrx::datum::DatumWithOid],
) -> Vec<T> {
    Spi::connect(|client| {
        client
            .select(sql, None, args)
            .unwrap_or_else(|e| error!("migrate: could not {what}: {e}"))
            .filter_map(|row| {
                row.get::<T>(1)
                    .unwrap_or_else(|e| error!("migrate: could not {what}: {e}"))
            })
            .collect()
    })
}

fn from_row(row: &SpiHeapTupleData) -> Job {
    let row = Columns(row);
    let kind = row
        .get::<String>("kind")
        .as_deref()
        .and_then(JobKind::parse)
        .unwrap_or_else(|| error!("migrate: job with an unknown kind"));
    let spec = match kind {
        JobKind::Backfill => JobSpec::Backfill(BackfillJob {
            relid: row.required("relid"),
            table_name: row.get("table_name").unwrap_or_default(),
            set_sql: row.required("set_sql"),
            where_sql: row.get("where_sql"),
            key: match (row.get("key_columns"), row.get("key_types")) {
                (Some(columns), Some(types)) => Some(Key { columns, types }),
                _ => None,
            },
            batch_size: row.get("batch_size"),
            current_batch_size: row.required("current_batch_size"),
            workers: row.required("workers"),
            pause_ms: row.required("pause_ms"),
            batch_time_ms: row.get("batch_time_ms"),
            scheduled: row.required("scheduled"),
            lock_timeout_ms: row.get("lock_timeout_ms"),
        }),
        JobKind::Migration => JobSpec::Migration(MigrationJob {
            version: row.required("version"),
            up: row.required::<String>("direction") == "up",
            script: row.required("script"),
            statements_done: row.required("statements_done"),
            statements: row.get("statements_total").unwrap_or_default(),
            current_statement: row.get("current_statement"),
            run_id: row.get("run_id").unwrap_or_default(),
            requested_by: row.get("requested_by").unwrap_or_default(),
            lock_timeout_ms: row.get("lock_timeout_ms").unwrap_or(1000),
            lock_retries: row.get("lock_retries").unwrap_or(0),
            lock_retry_delay_ms: row.get("lock_retry_delay_ms").unwrap_or(500),
            // A job queued before the setting existed gets its default.
            snapshot_wait_timeout_ms: row.get("snapshot_wait_timeout_ms").unwrap_or(3_600_000),
        }),
    };
    Job {
        id: row.required("id"),
        state: row
            .get::<String>("state")
            .as_deref()
            .and_then(JobState::parse)
            .unwrap_or_else(|| error!("migrate: job with an unknown state")),
        search_path: row.required("search_path"),
        owner: row.required("owner_oid"),
        owner_name: row.required("owner_name"),
        allow_superuser: row.required("allow_superuser"),
        started: row.required("started"),
        spec,
    }
}

/// Reads a job; with `lock`, row-locks it FOR UPDATE for the rest of the transaction.
pub fn load(id: i64, lock: bool) -> Option<Job> {
    let sql = format!(
        "SELECT {} FROM migrate.job_queue WHERE id OPERATOR(pg_catalog.=) $1{}",
        columns(),
        if lock { " FOR UPDATE" } else { "" }
    );
    as_registry_owner(|| {
        Spi::connect_mut(|client| {
            let rows = client
                .update(&sql, None, &[id.into()])
                .unwrap_or_else(|e| error!("migrate: could not read job {id}: {e}"));
            rows.into_iter().next().map(|row| from_row(&row))
        })
    })
}

/// What `backfill()` stores.
pub struct NewBackfill<'a> {
    pub relid: pg_sys::Oid,
    pub table_name: &'a str,
    pub set_sql: &'a str,
    pub where_sql: Option<&'a str>,
    pub key: Option<&'a Key>,
    pub search_path: &'a str,
    pub batch_size: Option<i32>,
    pub first_batch_size: i32,
    pub workers: i32,
    pub pause_ms: f64,
    pub owner: pg_sys::Oid,
    pub owner_name: &'a str,
    pub allow_superuser: bool,
    /// Empty when the library runs on a database still at 0.1.0 (its backfill() has none).
    pub schedule: super::api::Schedule,
}

pub fn insert_backfill(b: &NewBackfill<'_>) -> i64 {
    const SQL: &str = "INSERT INTO migrate.job_queue (kind, relid, table_name, set_sql, where_sql, \
        key_columns, key_types, search_path, batch_size, current_batch_size, pause, owner_oid, \
        owner_name, allow_superuser, workers) \
        VALUES ('backfill', $1::pg_catalog.oid::pg_catalog.regclass, $2, $3, $4, $5, $6, $7, $8, $9, \
        pg_catalog.make_interval(secs => $10 OPERATOR(pg_catalog./) 1000), $11, $12, $13, $14) \
        RETURNING id";
    let (columns, types) = match b.key {
        Some(k) => (Some(k.columns.clone()), Some(k.types.clone())),
        None => (None, None),
    };
    let id = as_registry_owner(|| {
        Spi::get_one_with_args::<i64>(
            SQL,
            &[
                b.relid.into(),
                b.table_name.into(),
                b.set_sql.into(),
                b.where_sql.into(),
                columns.into(),
                types.into(),
                b.search_path.into(),
                b.batch_size.into(),
                b.first_batch_size.into(),
                b.pause_ms.into(),
                b.owner.into(),
                b.owner_name.into(),
                b.allow_superuser.into(),
                b.workers.into(),
            ],
        )
        .ok()
        .flatten()
        .unwrap_or_else(|| error!("migrate: could not queue the backfill"))
    });
    if !b.schedule.is_empty() {
        set_schedule(id, &b.schedule);
    }
    id
}

/// Stores a job's start time and window; the window's times are in the TimeZone in force now
/// (the caller's), which is stored with them. Equal window ends remove the window.
pub fn set_schedule(id: i64, s: &super::api::Schedule) {
    let tz = super::api::current_setting("TimeZone");
    write(
        "schedule a job",
        "UPDATE migrate.job_queue SET start_after = COALESCE($2, start_after), \
         window_start = CASE WHEN $3::pg_catalog.time IS NULL THEN window_start \
                             WHEN $3 OPERATOR(pg_catalog.=) $4 THEN NULL ELSE $3 END, \
         window_end = CASE WHEN $4::pg_catalog.time IS NULL THEN window_end \
                           WHEN $3 OPERATOR(pg_catalog.=) $4 THEN NULL ELSE $4 END, \
         window_tz = CASE WHEN $3::pg_catalog.time IS NULL THEN window_tz \
                          WHEN $3 OPERATOR(pg_catalog.=) $4 THEN NULL ELSE $5 END \
         WHERE id OPERATOR(pg_catalog.=) $1",
        &[
            id.into(),
            s.start_after.into(),
            s.window_start.into(),
            s.window_end.into(),
            tz.into(),
        ],
    );
}

/// Why job `id` may not run a batch now (its start_after or window, with until when), or None.
pub fn schedule_wait(id: i64) -> Option<String> {
    as_registry_owner(|| {
        first_value::<String>(
            "read a job's schedule",
            include_str!("../queries/job_schedule.sql"),
            &[id.into()],
        )
    })
}

/// What `deploy()` stores to have a worker run a non-transactional migration.
pub struct NewMigrationJob<'a> {
    pub version: &'a str,
    pub up: bool,
    pub script: &'a str,
    pub statements: i64,
    /// Statements known to be done already (resuming a changed script after a failure).
    pub statements_done: i64,
    pub search_path: &'a str,
    pub owner: pg_sys::Oid,
    pub owner_name: &'a str,
    pub run_id: i64,
    pub requested_by: &'a str,
    pub lock_timeout_ms: i32,
    pub lock_retries: i32,
    pub lock_retry_delay_ms: i32,
    pub snapshot_wait_timeout_ms: i32,
}

pub fn insert_migration(m: &NewMigrationJob<'_>) -> i64 {
    let counters = StatementCounters::here();
    let sql = format!(
        "INSERT INTO migrate.job_queue (kind, version, direction, script, \
         {total}, {done}, search_path, current_batch_size, owner_oid, owner_name, \
         allow_superuser, run_id, requested_by, settings) \
         VALUES ('migration', $1, $2, $3, $4, $5, $6, 1, $7, $8, true, $9, $10, \
         pg_catalog.jsonb_build_object('lock_timeout_ms', $11, 'lock_retries', $12, \
                                       'lock_retry_delay_ms', $13, \
                                       'snapshot_wait_timeout_ms', $14)) \
         RETURNING id",
        total = counters.total(),
        done = counters.done(),
    );
    as_registry_owner(|| {
        Spi::get_one_with_args::<i64>(
            &sql,
            &[
                m.version.into(),
                (if m.up { "up" } else { "down" }).into(),
                m.script.into(),
                m.statements.into(),
                m.statements_done.into(),
                m.search_path.into(),
                m.owner.into(),
                m.owner_name.into(),
                m.run_id.into(),
                m.requested_by.into(),
                m.lock_timeout_ms.into(),
                m.lock_retries.into(),
                m.lock_retry_delay_ms.into(),
                m.snapshot_wait_timeout_ms.into(),
            ],
        )
        .ok()
        .flatten()
        .unwrap_or_else(|| error!("migrate: could not queue the migration job"))
    })
}

/// The newest job of a migration in one direction, if any.
pub fn latest_migration_job(version: &str, up: bool) -> Option<Job> {
    let sql = format!(
        "SELECT {} FROM migrate.job_queue WHERE kind OPERATOR(pg_catalog.=) 'migration' \
         AND version OPERATOR(pg_catalog.=) $1 AND direction OPERATOR(pg_catalog.=) $2 \
         ORDER BY id DESC LIMIT 1",
        columns()
    );
    as_registry_owner(|| {
        Spi::connect(|client| {
            let rows = client
                .select(
                    &sql,
                    None,
                    &[version.into(), (if up { "up" } else { "down" }).into()],
                )
                .unwrap_or_else(|e| error!("migrate: could not read migration jobs: {e}"));
            rows.into_iter().next().map(|row| from_row(&row))
        })
    })
}

/// A migration job's worker is about to run statement `number` (1-based).
pub fn statement_started(id: i64, number: i32, note: &str) {
    write(
        "update a job",
        "UPDATE migrate.job_queue SET current_statement = $2, note = $3, \
         updated_at = pg_catalog.clock_timestamp() WHERE id OPERATOR(pg_catalog.=) $1",
        &[id.into(), number.into(), note.into()],
    );
}

/// A migration job's statement `number` (1-based) committed.
pub fn statement_done(id: i64, number: i32) {
    let counters = match StatementCounters::here() {
        StatementCounters::Own => "statements_done = $2",
        StatementCounters::InRowCounters => "rows_done = $2, rows_updated = $2",
    };
    write(
        "checkpoint a job",
        &format!(
            "UPDATE migrate.job_queue SET {counters}, current_statement = NULL, \
             batches = batches OPERATOR(pg_catalog.+) 1, updated_at = pg_catalog.clock_timestamp() \
             WHERE id OPERATOR(pg_catalog.=) $1"
        ),
        &[id.into(), i64::from(number).into()],
    );
}

/// Records that statement `number` of migration job `id` (a safe-mode fill) queued backfill
/// job `fill`: in the transaction that queues it, so a crash after the commit finds the job
/// and waits for it again instead of queueing a second one.
pub fn record_fill_job(id: i64, number: i32, fill: i64) {
    write(
        "record a fill job",
        "UPDATE migrate.job_queue SET settings = settings OPERATOR(pg_catalog.||) \
           pg_catalog.jsonb_build_object('fill_jobs', \
             COALESCE(settings OPERATOR(pg_catalog.->) 'fill_jobs', '{}'::pg_catalog.jsonb) \
             OPERATOR(pg_catalog.||) pg_catalog.jsonb_build_object($2::pg_catalog.text, $3)) \
         WHERE id OPERATOR(pg_catalog.=) $1",
        &[id.into(), number.into(), fill.into()],
    );
}

/// Backfill job `id`'s batches run with this lock_timeout instead of `migrate.lock_timeout`
/// (a safe-mode fill runs with its deploy's).
pub fn set_lock_timeout(id: i64, ms: i32) {
    write(
        "set the lock_timeout of a job",
        "UPDATE migrate.job_queue SET settings = settings OPERATOR(pg_catalog.||) \
           pg_catalog.jsonb_build_object('lock_timeout_ms', $2) \
         WHERE id OPERATOR(pg_catalog.=) $1",
        &[id.into(), ms.into()],
    );
}

/// The backfill job that statement `number` of migration job `id` queued, if it did.
pub fn fill_job(id: i64, number: i32) -> Option<i64> {
    as_registry_owner(|| {
        first_value(
            "read a fill job",
            "SELECT (settings OPERATOR(pg_catalog.->) 'fill_jobs' \
                     OPERATOR(pg_catalog.->>) $2::pg_catalog.text)::pg_catalog.int8 \
               FROM migrate.job_queue WHERE id OPERATOR(pg_catalog.=) $1",
            &[id.into(), number.into()],
        )
    })
}

/// Runs one bookkeeping statement on a job as the registry owner.
fn write(what: &str, sql: &str, args: &[pgrx::datum::DatumWithOid]) {
    as_registry_owner(|| {
        Spi::run_with_args(sql, args).unwrap_or_else(|e| error!("migrate: could not {what}: {e}"))
    });
}

/// Moves a job to `state` with a note (clearing the error when it goes back to queued).
pub fn set_state(id: i64, state: JobState, note: Option<&str>) {
    write(
        "change the state of a job",
        "UPDATE migrate.job_queue SET state = $2, note = $3, updated_at = pg_catalog.clock_timestamp(), \
         finished_at = CASE WHEN $2 OPERATOR(pg_catalog.=) ANY (ARRAY['succeeded', 'failed', 'cancelled']) \
                            THEN pg_catalog.clock_timestamp() END, \
         error_sqlstate = CASE WHEN $2 OPERATOR(pg_catalog.=) 'queued' THEN NULL ELSE error_sqlstate END, \
         error_message = CASE WHEN $2 OPERATOR(pg_catalog.=) 'queued' THEN NULL ELSE error_message END \
         WHERE id OPERATOR(pg_catalog.=) $1",
        &[id.into(), state.as_str().into(), note.into()],
    );
}

/// A worker takes the job: running, with its scope (upper key) and estimate on first start.
pub fn mark_running(id: i64, upper_key: Option<&[String]>, rows_estimated: Option<i64>) {
    write(
        "start a job",
        "UPDATE migrate.job_queue SET state = 'running', note = NULL, \
         started_at = COALESCE(started_at, pg_catalog.clock_timestamp()), \
         upper_key = COALESCE(upper_key, $2), rows_estimated = COALESCE(rows_estimated, $3), \
         updated_at = pg_catalog.clock_timestamp() WHERE id OPERATOR(pg_catalog.=) $1",
        &[
            id.into(),
            upper_key.map(|k| k.to_vec()).into(),
            rows_estimated.into(),
        ],
    );
}

pub fn set_note(id: i64, note: Option<&str>) {
    write(
        "update a job",
        "UPDATE migrate.job_queue SET note = $2, updated_at = pg_catalog.clock_timestamp() \
         WHERE id OPERATOR(pg_catalog.=) $1",
        &[id.into(), note.into()],
    );
}

/// The job-wide part of one batch's checkpoint, written in the batch's own transaction
/// (increments, so the batches of several workers add up).
pub struct Checkpoint<'a> {
    pub id: i64,
    pub last_key: Option<&'a [String]>,
    pub visited: i64,
    pub updated: i64,
    pub next_batch_size: i32,
    /// The whole job is done (keyless jobs; keyed jobs end with `finish_if_ranges_done`).
    pub finished: bool,
    /// The batch's size and how long its statements took (ms), for the jobs view's time
    /// efficiency and batch history; None for a checkpoint without a batch.
    pub batch: Option<(i32, f64)>,
}

/// How many batches `migrate.job_queue.batch_history` keeps, newest last.
pub const BATCH_HISTORY: i32 = 20;

/// Rows per second since the job's previous checkpoint, whichever worker wrote it (so several
/// workers add up), smoothed over batches; pauses and throttling count as time. (`OPERATOR()`
/// has no precedence of its own: every product is parenthesised.)
const RATE: &str = "CASE WHEN rate OPERATOR(pg_catalog.>) 0 \
    THEN (0.7 OPERATOR(pg_catalog.*) rate) OPERATOR(pg_catalog.+) (0.3 OPERATOR(pg_catalog.*) {instant}) \
    ELSE {instant} END";
const INSTANT_RATE: &str = "($3 OPERATOR(pg_catalog./) GREATEST(0.001, EXTRACT(epoch FROM \
    pg_catalog.clock_timestamp() OPERATOR(pg_catalog.-) updated_at)::pg_catalog.float8))";

pub fn checkpoint(c: &Checkpoint<'_>) {
    let rate = RATE.replace("{instant}", INSTANT_RATE);
    // A database not yet updated to 0.2.0 has no columns for the batch statistics.
    let stats = match c.batch {
        Some((size, ms)) if has_batch_time() => format!(
            "batch_ms = batch_ms OPERATOR(pg_catalog.+) {ms}::pg_catalog.float8, \
             batch_history = (SELECT COALESCE(pg_catalog.jsonb_agg(h.e ORDER BY h.i), '[]') \
                 FROM pg_catalog.jsonb_array_elements(batch_history \
                      OPERATOR(pg_catalog.||) pg_catalog.jsonb_build_array(pg_catalog.jsonb_build_object( \
                          'size', {size}, 'rows', $3, 'ms', pg_catalog.round({ms}::pg_catalog.numeric, 1)))) \
                      WITH ORDINALITY h (e, i) \
                 WHERE h.i OPERATOR(pg_catalog.>) (pg_catalog.jsonb_array_length(batch_history) \
                       OPERATOR(pg_catalog.-) {keep})), ",
            keep = BATCH_HISTORY - 1
        ),
        _ => String::new(),
    };
    write(
        "checkpoint a job",
        &format!("UPDATE migrate.job_queue SET {stats}last_key = COALESCE($2, last_key), \
         rows_done = rows_done OPERATOR(pg_catalog.+) $3, \
         rows_updated = rows_updated OPERATOR(pg_catalog.+) $4, \
         batches = batches OPERATOR(pg_catalog.+) 1, current_batch_size = $5, rate = {rate}, note = NULL, \
         state = CASE WHEN $6 THEN 'succeeded' ELSE state END, \
         finished_at = CASE WHEN $6 THEN pg_catalog.clock_timestamp() END, \
         rows_estimated = CASE WHEN $6 THEN rows_done OPERATOR(pg_catalog.+) $3 ELSE rows_estimated END, \
         updated_at = pg_catalog.clock_timestamp() WHERE id OPERATOR(pg_catalog.=) $1"),
        &[
            c.id.into(),
            c.last_key.map(|k| k.to_vec()).into(),
            c.visited.into(),
            c.updated.into(),
            c.next_batch_size.into(),
            c.finished.into(),
        ],
    );
}

/// One key range of a keyed backfill: `(lower_key, upper_key]`, walked from `last_key` on.
#[derive(Debug, Clone)]
pub struct Range {
    pub id: i32,
    pub lower_key: Option<Vec<String>>,
    pub upper_key: Vec<String>,
    pub last_key: Option<Vec<String>>,
    pub done: bool,
}

impl Range {
    /// Where the next batch starts (exclusive): the checkpoint, else the range's lower bound.
    pub fn resume_after(&self) -> Option<&Vec<String>> {
        self.last_key.as_ref().or(self.lower_key.as_ref())
    }
}

/// Splits a job's scope `(-inf, upper]` at `boundaries` (ascending keys below `upper`).
pub fn create_ranges(job: i64, boundaries: &[Vec<String>], upper: &[String]) {
    let mut lower: Option<Vec<String>> = None;
    let uppers = boundaries
        .iter()
        .cloned()
        .chain(std::iter::once(upper.to_vec()));
    for (number, range_upper) in uppers.enumerate() {
        write(
            "split a job into key ranges",
            "INSERT INTO migrate.job_ranges (job_id, range_no, lower_key, upper_key) \
             VALUES ($1, $2, $3, $4)",
            &[
                job.into(),
                (number as i32 + 1).into(),
                lower.clone().into(),
                range_upper.clone().into(),
            ],
        );
        lower = Some(range_upper);
    }
}

/// The job's ranges that a worker holds now (a live process walks each), the leader's first,
/// then in range order: when the job has more walkers than `workers`, the last ones stop.
pub fn range_walkers(job: i64) -> Vec<i32> {
    let sql = format!(
        "WITH held AS ({}) \
         SELECT r.id FROM migrate.job_ranges r \
         JOIN held l ON l.namespace OPERATOR(pg_catalog.=) {range} \
          AND l.key OPERATOR(pg_catalog.=) r.id \
         WHERE r.job_id OPERATOR(pg_catalog.=) $1 \
         ORDER BY EXISTS (SELECT FROM held j WHERE j.namespace OPERATOR(pg_catalog.=) {leader} \
                          AND j.key OPERATOR(pg_catalog.=) $1 \
                          AND j.pid OPERATOR(pg_catalog.=) l.pid) DESC, r.range_no",
        locks::held_locks_sql(),
        range = Namespace::Range as i32,
        leader = Namespace::Job as i32,
    );
    as_registry_owner(|| {
        column_values(
            &format!("read the workers of job {job}"),
            &sql,
            &[job.into()],
        )
    })
}

/// Splits range `id` of `job` at `boundaries` (ascending keys above its checkpoint and below
/// `upper`, its end): the range ends at the first, new ranges take the rest. The caller holds
/// the range's row lock (see [`load_range`]), so no batch of it runs meanwhile and the
/// checkpoint it read is the range's last: every key is in exactly one range afterwards.
pub fn split_range(job: i64, id: i32, boundaries: &[Vec<String>], upper: &[String]) {
    let Some(first) = boundaries.first() else {
        return;
    };
    write(
        "split a key range",
        "UPDATE migrate.job_ranges SET upper_key = $2 WHERE id OPERATOR(pg_catalog.=) $1",
        &[id.into(), first.clone().into()],
    );
    let uppers = boundaries[1..]
        .iter()
        .cloned()
        .chain(std::iter::once(upper.to_vec()));
    let mut lower = first.clone();
    for range_upper in uppers {
        write(
            "split a key range",
            "INSERT INTO migrate.job_ranges (job_id, range_no, lower_key, upper_key) \
             SELECT $1, COALESCE(pg_catalog.max(range_no), 0) OPERATOR(pg_catalog.+) 1, $2, $3 \
             FROM migrate.job_ranges WHERE job_id OPERATOR(pg_catalog.=) $1",
            &[job.into(), lower.clone().into(), range_upper.clone().into()],
        );
        lower = range_upper;
    }
}

/// Ranges of the job not done yet, in key order.
pub fn unfinished_ranges(job: i64) -> Vec<i32> {
    as_registry_owner(|| {
        column_values(
            &format!("read the ranges of job {job}"),
            "SELECT id FROM migrate.job_ranges WHERE job_id OPERATOR(pg_catalog.=) $1 \
             AND NOT done ORDER BY range_no",
            &[job.into()],
        )
    })
}

/// Reads a range, row-locked until the batch commits.
pub fn load_range(id: i32) -> Option<Range> {
    as_registry_owner(|| {
        Spi::connect_mut(|client| {
            let rows = client
                .update(
                    "SELECT id, lower_key, upper_key, last_key, done FROM migrate.job_ranges \
                     WHERE id OPERATOR(pg_catalog.=) $1 FOR UPDATE",
                    None,
                    &[id.into()],
                )
                .unwrap_or_else(|e| error!("migrate: could not read key range {id}: {e}"));
            rows.into_iter().next().map(|row| {
                let row = Columns(&row);
                Range {
                    id,
                    lower_key: row.get("lower_key"),
                    upper_key: row.required("upper_key"),
                    last_key: row.get("last_key"),
                    done: row.required("done"),
                }
            })
        })
    })
}

/// The range's checkpoint, written in the batch's transaction.
pub fn range_checkpoint(id: i32, last_key: &[String], visited: i64, done: bool) {
    write(
        "checkpoint a key range",
        "UPDATE migrate.job_ranges SET last_key = $2, rows_done = rows_done OPERATOR(pg_catalog.+) $3, \
         done = $4 WHERE id OPERATOR(pg_catalog.=) $1",
        &[id.into(), last_key.to_vec().into(), visited.into(), done.into()],
    );
}

/// Marks a running job succeeded if none of its ranges is left. Called after the job row was
/// updated in the same transaction: that row lock orders the workers finishing their last
/// ranges, so the last one to commit sees every other range done.
pub fn finish_if_ranges_done(job: i64) -> bool {
    as_registry_owner(|| {
        Spi::connect_mut(|client| {
            client
                .update(
                    "UPDATE migrate.job_queue j SET state = 'succeeded', \
                     finished_at = pg_catalog.clock_timestamp(), rows_estimated = j.rows_done, \
                     note = NULL, updated_at = pg_catalog.clock_timestamp() \
                     WHERE j.id OPERATOR(pg_catalog.=) $1 AND j.state OPERATOR(pg_catalog.=) 'running' \
                     AND NOT EXISTS (SELECT FROM migrate.job_ranges r \
                         WHERE r.job_id OPERATOR(pg_catalog.=) $1 AND NOT r.done) RETURNING 1",
                    None,
                    &[job.into()],
                )
                .map(|rows| !rows.is_empty())
                .unwrap_or_else(|e| error!("migrate: could not finish job {job}: {e}"))
        })
    })
}

/// Backfill jobs of `owner` that are queued, running or paused.
pub fn unfinished_jobs(owner: pg_sys::Oid) -> i64 {
    as_registry_owner(|| {
        Spi::get_one_with_args::<i64>(
            "SELECT pg_catalog.count(*) FROM migrate.job_queue \
             WHERE owner_oid OPERATOR(pg_catalog.=) $1 AND kind OPERATOR(pg_catalog.=) 'backfill' \
               AND state OPERATOR(pg_catalog.=) ANY (ARRAY['queued', 'running', 'paused'])",
            &[owner.into()],
        )
        .unwrap_or_else(|e| error!("migrate: could not count jobs: {e}"))
        .unwrap_or(0)
    })
}

/// Marks a job failed with the error that stopped it.
pub fn fail(id: i64, sqlstate: &str, message: &str) {
    write(
        "record a job failure",
        "UPDATE migrate.job_queue SET state = 'failed', error_sqlstate = $2, error_message = $3, \
         note = NULL, current_statement = NULL, finished_at = pg_catalog.clock_timestamp(), updated_at = pg_catalog.clock_timestamp() \
         WHERE id OPERATOR(pg_catalog.=) $1",
        &[id.into(), sqlstate.into(), message.into()],
    );
}

/// The extension's locks held in this database, by which backend, for the jobs view
/// (`migrate.held_locks()`, declared in src/sql/jobs.sql): `namespace` is the lock's
/// [`Namespace`], `key` its job, range or slot key. Our own queries use the same definition
/// directly ([`locks::held_sql`]), so they work on a database not yet updated to declare it.
#[allow(clippy::type_complexity)] // pgrx needs the column names spelled inline
#[pg_extern(sql = false)]
fn held_locks() -> TableIterator<
    'static,
    (
        name!(namespace, i32),
        name!(key, i64),
        name!(pid, Option<i32>),
    ),
> {
    let rows = Spi::connect(|client| {
        client
            .select(&locks::held_locks_sql(), None, &[])
            .unwrap_or_else(|e| error!("migrate: could not read the extension's locks: {e}"))
            .map(|row| {
                let row = Columns(&row);
                (
                    row.required("namespace"),
                    row.required("key"),
                    // NULL for a prepared transaction's lock, as in pg_locks.
                    row.get("pid"),
                )
            })
            .collect::<Vec<_>>()
    });
    TableIterator::new(rows)
}

/// SQL condition: no live worker runs job `j`. The jobs view is the one place that knows how
/// a worker is recognised (it holds the job's lock).
const NO_WORKER: &str = "j.id OPERATOR(pg_catalog.<>) ALL (SELECT w.id FROM migrate.jobs w \
    WHERE w.worker_pid IS NOT NULL)";

/// True if a live worker is running the job.
pub fn has_worker(id: i64) -> bool {
    Spi::get_one_with_args::<bool>(
        "SELECT pg_catalog.count(*) OPERATOR(pg_catalog.>) 0 FROM migrate.jobs \
         WHERE id OPERATOR(pg_catalog.=) $1 AND worker_pid IS NOT NULL",
        &[id.into()],
    )
    .unwrap_or_else(|e| error!("migrate: could not tell whether a worker runs job {id}: {e}"))
    .expect("count(*) is never NULL")
}

/// Queued jobs that no worker has taken, oldest first.
pub fn unclaimed_queued(limit: i64) -> Vec<i64> {
    let sql = format!(
        "SELECT j.id FROM migrate.job_queue j WHERE j.state OPERATOR(pg_catalog.=) 'queued' \
         AND {NO_WORKER} ORDER BY j.id LIMIT $1"
    );
    as_registry_owner(|| column_values("read the queued jobs", &sql, &[limit.into()]))
}

/// After a crash or restart: running jobs without a worker go back to the queue.
pub fn requeue_interrupted() -> i64 {
    let sql = format!(
        "WITH r AS (UPDATE migrate.job_queue j SET state = 'queued', \
         note = 'resumed after an interrupted worker', updated_at = pg_catalog.clock_timestamp() \
         WHERE j.state OPERATOR(pg_catalog.=) 'running' AND {NO_WORKER} RETURNING 1) \
         SELECT pg_catalog.count(*) FROM r"
    );
    as_registry_owner(|| {
        Spi::get_one::<i64>(&sql)
            .unwrap_or_else(|e| error!("migrate: could not requeue interrupted jobs: {e}"))
            .expect("count(*) is never NULL")
    })
}

/// Worker slots in use in this database: job worker processes that took one. A process
/// counts when it is one of the extension's job workers (`backend_type`, set by the postmaster:
/// no SQL can change it) and holds its slot lock, or is in a batch (the batch's control lock):
/// a job's SQL can drop the worker's session locks with pg_advisory_unlock_all(), but only
/// inside a batch, and the worker fails the job when the batch ends. A worker still starting up
/// does not count, so two starting at once cannot both refuse and strand a queued job (their
/// claims are serialised by the 'slots' row lock).
pub fn busy_slots() -> i64 {
    count_workers(
        "a.datname OPERATOR(pg_catalog.=) pg_catalog.current_database()",
        None,
    )
}

/// Worker slots held by workers logged in as `role`: in this database as for [`busy_slots`],
/// and every job worker of the role in other databases (one allowance for a role, however
/// many databases it can reach).
pub fn role_slots(role: pg_sys::Oid) -> i64 {
    count_workers("a.usesysid OPERATOR(pg_catalog.=) $1", Some(role))
}

fn count_workers(condition: &str, role: Option<pg_sys::Oid>) -> i64 {
    let sql = format!(
        "SELECT pg_catalog.count(*) FROM pg_catalog.pg_stat_activity a \
         WHERE a.backend_type OPERATOR(pg_catalog.=) 'migrate job worker' \
           AND a.pid OPERATOR(pg_catalog.<>) pg_catalog.pg_backend_pid() AND {condition} \
           AND (a.datname OPERATOR(pg_catalog.<>) pg_catalog.current_database() \
                OR a.pid OPERATOR(pg_catalog.=) ANY (ARRAY(SELECT l.pid FROM pg_catalog.pg_locks l \
                   WHERE ({slot}) OR ({control}))))",
        slot = locks::held_sql(Namespace::Slot),
        control = locks::held_sql(Namespace::Control),
    );
    // pg_stat_activity shows other roles' backend types only to pg_read_all_stats.
    crate::pg::security::as_registry_owner(|| {
        let count = match role {
            Some(role) => Spi::get_one_with_args::<i64>(&sql, &[role.into()]),
            None => Spi::get_one::<i64>(&sql),
        };
        count.unwrap_or_else(|e| error!("migrate: could not count job workers: {e}"))
    })
    .unwrap_or(0)
}

/// How many of `max` slots one role's backfills may hold: all but one, so no role (whatever
/// its jobs do) keeps every other role's jobs and every deploy step waiting.
pub fn per_role_slots(max: i64) -> i64 {
    (max - 1).max(1)
}

/// Takes a worker slot if fewer than `max` of this database's job workers hold one (and, for
/// a backfill, fewer than [`per_role_slots`] of its role's): returns the slot's key. The count
/// and the claim are serialised by the 'slots' row of migrate.locks.
pub fn take_slot(max: i64, backfill: bool) -> Option<i32> {
    crate::registry::catalog::lock_row("slots");
    // Both counts exclude this process: it takes the slot if fewer than the limit run now.
    if busy_slots() >= max {
        return None;
    }
    let me = crate::pg::security::current_user();
    if backfill && role_slots(me) >= per_role_slots(max) {
        return None;
    }
    let key = crate::pg::backend::pid();
    try_lock(Namespace::Slot, key).then_some(key)
}

/// Who holds lock (namespace, key) other than this backend, for error messages:
/// "backend 123 (role app)".
pub fn lock_holders(namespace: Namespace, key: i32) -> String {
    Spi::get_one_with_args::<String>(
        &format!(
            "SELECT pg_catalog.string_agg(pg_catalog.format('backend %s (role %s)', l.pid, \
                    COALESCE(a.usename::pg_catalog.text, '?')), ', ') \
             FROM pg_catalog.pg_locks l \
             LEFT JOIN pg_catalog.pg_stat_activity a ON a.pid OPERATOR(pg_catalog.=) l.pid \
             WHERE {} AND l.objid OPERATOR(pg_catalog.=) $1::pg_catalog.int8::pg_catalog.oid \
               AND l.pid OPERATOR(pg_catalog.<>) pg_catalog.pg_backend_pid()",
            locks::held_sql(namespace)
        ),
        &[key.into()],
    )
    .ok()
    .flatten()
    .unwrap_or_else(|| "nobody any more".into())
}

/// Takes the job's control lock for the rest of the transaction: shared by a batch, exclusive
/// by a control call. The lock manager queues a new shared request behind a waiting exclusive
/// one, so a control call waits for the batches in flight and no new batch of any worker
/// overtakes it (row locks would not: FOR KEY SHARE never queues behind a waiting FOR UPDATE).
/// The wait is bounded (10 s: batches and control calls are short); a timeout names the holder.
pub fn lock_control(id: i64, exclusive: bool) {
    if !lock_control_within(id, exclusive) {
        control_lock_unavailable(id).raise();
    }
}

/// The error of a control lock that stayed taken: who holds it.
pub fn control_lock_unavailable(id: i64) -> crate::error::UserError {
    let key = i32::try_from(id).unwrap_or_default();
    crate::error::UserError::new(
        PgSqlErrorCode::ERRCODE_LOCK_NOT_AVAILABLE,
        format!("job {id}: gave up after 10 s waiting for its control lock"),
    )
    .detail(format!(
        "It is held by {}.",
        lock_holders(Namespace::Control, key)
    ))
    .hint("A batch or a control call of this job is in a long transaction; try again when it ends.")
}

/// Takes the job's control lock like [`lock_control`]; false if it was not free within 10 s.
pub fn lock_control_within(id: i64, exclusive: bool) -> bool {
    // Job ids stay in int4 range (job_id_seq); a larger id names no job and needs no lock.
    let Ok(key) = i32::try_from(id) else {
        return true;
    };
    let mode = if exclusive {
        Mode::Exclusive
    } else {
        Mode::Shared
    };
    let locked = crate::pg::security::with_own_settings(&[(c"lock_timeout", c"10s")], || {
        crate::pg::subxact::run(|| locks::lock(Namespace::Control, key, mode))
    });
    match locked {
        Ok(()) => true,
        Err(caught)
            if crate::error::caught_parts(&caught).0
                == PgSqlErrorCode::ERRCODE_LOCK_NOT_AVAILABLE =>
        {
            false
        }
        Err(caught) => caught.rethrow(),
    }
}

/// Terminates the workers running job `id` (its leader, the workers walking its ranges, and any
/// worker in a batch of it: a job's SQL can drop a worker's session locks, not the batch's
/// transaction lock) and waits up to 5 s for each to exit; their batches roll back. Returns
/// the pids.
/// Runs as the registry owner: whoever may cancel or pause a job may stop its workers.
pub fn terminate_workers(id: i64) -> Vec<i32> {
    // First the pids, then the signals: the planner may evaluate a WHERE clause's terms in any
    // order, so a side effect must never sit in one.
    let sql = format!(
        "SELECT DISTINCT l.pid FROM pg_catalog.pg_locks l \
         JOIN pg_catalog.pg_stat_activity a ON a.pid OPERATOR(pg_catalog.=) l.pid \
         WHERE l.pid OPERATOR(pg_catalog.<>) pg_catalog.pg_backend_pid() \
           AND a.backend_type OPERATOR(pg_catalog.=) 'migrate job worker' \
           AND (({job} AND l.objid::pg_catalog.int8 OPERATOR(pg_catalog.=) $1) \
             OR ({control} AND l.objid::pg_catalog.int8 OPERATOR(pg_catalog.=) $1) \
             OR ({range} AND l.objid::pg_catalog.int8 OPERATOR(pg_catalog.=) ANY (ARRAY( \
                 SELECT r.id::pg_catalog.int8 FROM migrate.job_ranges r \
                 WHERE r.job_id OPERATOR(pg_catalog.=) $1))))",
        job = locks::held_sql(Namespace::Job),
        control = locks::held_sql(Namespace::Control),
        range = locks::held_sql(Namespace::Range),
    );
    crate::pg::security::as_registry_owner(|| {
        let pids: Vec<i32> =
            column_values(&format!("find the workers of job {id}"), &sql, &[id.into()]);
        for &pid in &pids {
            let _ = Spi::run_with_args(
                "SELECT pg_catalog.pg_terminate_backend($1, 5000)",
                &[pid.into()],
            );
        }
        pids
    })
}

/// Session-level try-lock of one of the worker's locks (held until released or exit).
pub fn try_lock(namespace: Namespace, key: i32) -> bool {
    locks::try_lock(namespace, key, Mode::Exclusive, true)
}

pub fn unlock(namespace: Namespace, key: i32) {
    locks::unlock(namespace, key, Mode::Exclusive)
}

/// True if this database has the extension and every table a worker reads belongs to it and
/// to a superuser (a worker may outlive a DROP EXTENSION; and any database owner can create a
/// schema named migrate whose tables look like ours, to make a worker run what they contain).
pub fn extension_installed() -> bool {
    const SQL: &str = include_str!("../queries/extension_trust.sql");
    crate::pg::security::with_own_settings(&[(c"search_path", c"pg_catalog, pg_temp")], || {
        Spi::get_one::<bool>(SQL)
            .unwrap_or_else(|e| error!("migrate: could not check the extension's tables: {e}"))
            .expect("a comparison of count(*) is never NULL")
    })
}

/// Halves an adaptive job's batch size (after a batch timed out).
pub fn shrink_batch(id: i64) {
    write(
        "shrink a job's batch size",
        "UPDATE migrate.job_queue SET current_batch_size = \
         GREATEST(1, current_batch_size OPERATOR(pg_catalog./) 2) \
         WHERE id OPERATOR(pg_catalog.=) $1 AND batch_size IS NULL",
        &[id.into()],
    );
}
