//! SQL API of background jobs: `backfill()`, `pause_job()`, `resume_job()`, `cancel_job()` and
//! the `wait_job()` procedure.

use std::time::{Duration, Instant};

use migrate_core::batch::FIRST_BATCH_SIZE;
use pgrx::datum::{Interval, Time, TimestampWithTimeZone};
use pgrx::pg_sys;
use pgrx::prelude::*;
use pgrx::PgSqlErrorCode::*;

use super::backfill::{self, check_owner};
use super::launch;
use super::queue::{
    self, Job, JobKind, JobSpec, JobState, CANCELLED, FAILED, PAUSED, QUEUED, RUNNING, SUCCEEDED,
};
use crate::error::{OrRaise, Result, UserError};
use crate::gucs;
use crate::pg::procedure::{self, nonatomic_call};
use crate::pg::security::{current_user, has_privileges_of, role_name, role_oid};
use crate::v1_function_info;

/// Jobs one role may have queued, running or paused at once: the queue starts jobs oldest
/// first, so one role's flood must not push every other role's jobs back for good.
const MAX_UNFINISHED_JOBS: i64 = 100;

/// The longest pause between batches: longer is a paused job, which pause_job() does.
const MAX_PAUSE_MS: f64 = 3_600_000.0;

/// Milliseconds in an interval (months count as 30 days, as PostgreSQL's own arithmetic does).
pub(super) fn interval_ms(i: &Interval) -> f64 {
    let days = f64::from(i.months()) * 30.0 + f64::from(i.days());
    days * 86_400_000.0 + i.micros() as f64 / 1000.0
}

/// `migrate.backfill(tbl, set_sql, where_sql, batch_size, pause, workers)` of 0.1.0: what a
/// database not yet updated calls (UPDATING.md); 0.2.0 declares [`backfill_v2`].
#[pg_extern(sql = false)]
fn backfill(
    tbl: Option<pg_sys::Oid>,
    set_sql: Option<&str>,
    where_sql: Option<&str>,
    batch_size: Option<i32>,
    pause: Option<Interval>,
    workers: Option<i32>,
) -> i64 {
    backfill_v2(
        tbl, set_sql, where_sql, batch_size, pause, workers, None, None, None,
    )
}

/// `migrate.backfill(tbl, set_sql, where_sql, batch_size, pause, workers, start_after,
/// window_start, window_end)`: queues a batched `UPDATE tbl SET set_sql WHERE where_sql`; its
/// workers start when the caller commits, and run batches only after `start_after` and inside
/// the daily window (in the caller's TimeZone).
#[allow(clippy::too_many_arguments)]
#[pg_extern(sql = r#"
CREATE FUNCTION migrate.backfill(tbl regclass, set_sql text, where_sql text DEFAULT NULL,
                                 batch_size integer DEFAULT NULL, pause interval DEFAULT NULL,
                                 workers integer DEFAULT NULL,
                                 start_after timestamptz DEFAULT NULL,
                                 window_start time DEFAULT NULL, window_end time DEFAULT NULL)
RETURNS bigint VOLATILE LANGUAGE c AS 'MODULE_PATHNAME', 'backfill_v2_wrapper';
COMMENT ON FUNCTION migrate.backfill(regclass, text, text, integer, interval, integer, timestamptz, time, time) IS
    'Queues a batched UPDATE tbl SET set_sql WHERE where_sql, run by background workers after commit (after start_after, inside the daily window); returns the job id.';
"#)]
fn backfill_v2(
    tbl: Option<pg_sys::Oid>,
    set_sql: Option<&str>,
    where_sql: Option<&str>,
    batch_size: Option<i32>,
    pause: Option<Interval>,
    workers: Option<i32>,
    start_after: Option<TimestampWithTimeZone>,
    window_start: Option<Time>,
    window_end: Option<Time>,
) -> i64 {
    let args = BackfillArgs {
        tbl,
        set_sql,
        where_sql,
        batch_size,
        pause,
        workers,
        schedule: Schedule {
            start_after,
            window_start,
            window_end,
        },
    };
    queue_backfill(&args).or_raise()
}

/// When a backfill may run batches: after `start_after`, inside the daily window
/// `[window_start, window_end)` (wrapping midnight when start > end), in the TimeZone of the
/// session that set it.
#[derive(Default, Clone, Copy)]
pub struct Schedule {
    pub start_after: Option<TimestampWithTimeZone>,
    pub window_start: Option<Time>,
    pub window_end: Option<Time>,
}

impl Schedule {
    pub fn is_empty(&self) -> bool {
        self.start_after.is_none() && self.window_start.is_none() && self.window_end.is_none()
    }
}

/// A window is both ends or neither, and not empty (`alter_job()` removes one with equal ends).
pub(super) fn check_window(what: &str, table: &str, s: &Schedule, may_clear: bool) -> Result<()> {
    match (s.window_start, s.window_end) {
        (None, None) => Ok(()),
        (Some(a), Some(b)) if a != b || may_clear => Ok(()),
        (Some(_), Some(_)) => Err(UserError::new(
            ERRCODE_INVALID_PARAMETER_VALUE,
            format!("migrate.{what}: the window for {table} is empty (window_start = window_end)"),
        )
        .hint("Pass window_start => '01:00', window_end => '05:00' (a window may wrap midnight: '22:00' to '04:00'), or neither for no window.")),
        _ => Err(UserError::new(
            ERRCODE_INVALID_PARAMETER_VALUE,
            format!("migrate.{what}: the window for {table} needs both window_start and window_end"),
        )
        .hint("Pass both, e.g. window_start => '01:00', window_end => '05:00' (times in this session's TimeZone).")),
    }
}

pub(crate) struct BackfillArgs<'a> {
    pub tbl: Option<pg_sys::Oid>,
    pub set_sql: Option<&'a str>,
    pub where_sql: Option<&'a str>,
    pub batch_size: Option<i32>,
    pub pause: Option<Interval>,
    pub workers: Option<i32>,
    pub schedule: Schedule,
}

pub(crate) fn queue_backfill(args: &BackfillArgs<'_>) -> Result<i64> {
    let BackfillArgs {
        tbl,
        set_sql,
        where_sql,
        batch_size,
        ref pause,
        workers,
        schedule,
    } = *args;
    let (Some(relid), Some(set_sql)) = (tbl, set_sql) else {
        return Err(UserError::new(
            ERRCODE_NULL_VALUE_NOT_ALLOWED,
            "migrate.backfill: tbl and set_sql must not be NULL",
        )
        .hint("Pass the table and the SET list, e.g. migrate.backfill('orders', 'total = price * qty')."));
    };
    let table = describe_table(relid)?;
    if let Some(size) = batch_size {
        if size <= 0 {
            return Err(UserError::new(
                ERRCODE_INVALID_PARAMETER_VALUE,
                format!("migrate.backfill: batch_size for {table} must be positive, not {size}"),
            )
            .hint("Pass a positive batch_size, or NULL to let the batch size adapt to migrate.backfill_batch_time."));
        }
    }
    let workers = workers.unwrap_or_else(gucs::backfill_workers);
    check_workers("backfill", &table, workers)?;
    let pause_ms = pause.as_ref().map(interval_ms).unwrap_or(0.0);
    check_pause_ms("backfill", &table, pause_ms)?;
    check_window("backfill", &table, &schedule, false)?;
    let where_sql = where_sql.filter(|w| !w.trim().is_empty());
    let owner = current_user();
    let owner_name = role_name(owner).unwrap_or_default();
    let is_superuser = crate::pg::security::is_superuser();
    let allow_superuser = is_superuser && gucs::allow_superuser_jobs();
    check_owner(owner, relid, &table, allow_superuser)?;

    let key = backfill::find_key(relid);
    backfill::check_set_sql(&table, set_sql, key.as_ref())?;
    if let Some(w) = where_sql {
        backfill::check_where_sql(&table, w)?;
    }
    if key.is_none() && where_sql.is_none() {
        return Err(UserError::new(
            ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE,
            format!("migrate.backfill: {table} has no primary key or unique NOT NULL key to walk"),
        )
        .detail("Without a key a resumed job cannot know which rows it already updated.")
        .hint("Add a primary key, or pass a where_sql that the SET makes false (e.g. SET total = ... with where_sql 'total IS NULL'); the job then checks every batch for that."));
    }
    if key.is_none() {
        check_keyless_workers("backfill", &table, workers)?;
    }
    check_statement(&table, set_sql, where_sql, key.as_ref())?;
    let unfinished = queue::unfinished_jobs(owner);
    if unfinished >= MAX_UNFINISHED_JOBS {
        return Err(UserError::new(
            ERRCODE_CONFIGURATION_LIMIT_EXCEEDED,
            format!("migrate.backfill: role \"{owner_name}\" already has {unfinished} unfinished jobs"),
        )
        .hint("Wait for them to finish, or cancel some; each role may have at most 100 jobs queued, running or paused."));
    }

    let search_path = current_setting("search_path");
    let id = queue::insert_backfill(&queue::NewBackfill {
        relid,
        table_name: &table,
        set_sql,
        where_sql,
        key: key.as_ref(),
        search_path: &search_path,
        batch_size,
        first_batch_size: batch_size.unwrap_or(FIRST_BATCH_SIZE),
        workers,
        pause_ms,
        owner,
        owner_name: &owner_name,
        allow_superuser,
        schedule,
    });
    launch::start_at_commit(id);
    Ok(id)
}

/// `workers` of a backfill (at queue time, or changed by `alter_job()`): 1 to
/// `migrate.max_job_workers`.
pub(super) fn check_workers(what: &str, table: &str, workers: i32) -> Result<()> {
    if workers <= 0 || workers > gucs::max_job_workers() {
        return Err(UserError::new(
            ERRCODE_INVALID_PARAMETER_VALUE,
            format!(
                "migrate.{what}: workers for {table} must be between 1 and migrate.max_job_workers ({}), not {workers}",
                gucs::max_job_workers()
            ),
        )
        .hint("Pass fewer workers, or have a superuser raise migrate.max_job_workers."));
    }
    Ok(())
}

/// A table without a key is walked by where_sql alone, which one worker does.
pub(super) fn check_keyless_workers(what: &str, table: &str, workers: i32) -> Result<()> {
    if workers > 1 {
        return Err(UserError::new(
            ERRCODE_FEATURE_NOT_SUPPORTED,
            format!("migrate.{what}: {table} has no key to split among {workers} workers"),
        )
        .detail("Several workers walk disjoint ranges of the primary key or a unique NOT NULL key.")
        .hint("Pass workers => 1, or add a primary key."));
    }
    Ok(())
}

/// The pause between batches: 0 to 1 hour.
pub(super) fn check_pause_ms(what: &str, table: &str, pause_ms: f64) -> Result<()> {
    if !(0.0..=MAX_PAUSE_MS).contains(&pause_ms) {
        return Err(UserError::new(
            ERRCODE_INVALID_PARAMETER_VALUE,
            format!("migrate.{what}: pause for {table} must be between 0 and 1 hour"),
        )
        .hint("Pass a pause such as '50 ms', or NULL for none; pause the job with migrate.pause_job() to stop it for longer."));
    }
    Ok(())
}

/// The table's qualified name; refuses anything but a table.
fn describe_table(relid: pg_sys::Oid) -> Result<String> {
    let row = Spi::get_two_with_args::<String, String>(
        "SELECT pg_catalog.format('%I.%I', n.nspname, c.relname), c.relkind::pg_catalog.text \
         FROM pg_catalog.pg_class c JOIN pg_catalog.pg_namespace n \
           ON n.oid OPERATOR(pg_catalog.=) c.relnamespace \
         WHERE c.oid OPERATOR(pg_catalog.=) $1",
        &[relid.into()],
    );
    // No row: no relation has that OID.
    let row = match row {
        Err(pgrx::spi::SpiError::InvalidPosition) => None,
        row => Some(row.unwrap_or_else(|e| error!("migrate: could not read table {relid:?}: {e}"))),
    };
    match row {
        Some((Some(name), Some(kind))) if kind == "r" || kind == "p" => Ok(name),
        Some((Some(name), _)) => Err(UserError::new(
            ERRCODE_WRONG_OBJECT_TYPE,
            format!("migrate.backfill: {name} is not a table"),
        )
        .hint("Backfill the table itself, not a view, index, sequence or foreign table.")),
        _ => Err(UserError::new(
            ERRCODE_UNDEFINED_TABLE,
            format!("migrate.backfill: no table with OID {}", relid.to_u32()),
        )
        .hint("Pass an existing table name, e.g. 'public.orders'.")),
    }
}

/// Plans the batch statement as the caller (EXPLAIN, nothing runs): unknown columns, type
/// errors and missing privileges surface now, with their own SQLSTATE, instead of in the worker.
fn check_statement(
    table: &str,
    set_sql: &str,
    where_sql: Option<&str>,
    key: Option<&backfill::Key>,
) -> Result<()> {
    let sql = match (key, where_sql) {
        (Some(key), w) => backfill::update_sql(table, key, set_sql, w, true),
        (None, Some(w)) => backfill::keyless_update_sql(table, set_sql, w, 1),
        (None, None) => unreachable!("refused above"),
    };
    let explain = format!("EXPLAIN (COSTS OFF) {sql}");
    let none: Option<Vec<String>> = None;
    // Lexed as the worker will lex it (see security::SQL_DIALECT), as one statement.
    crate::pg::subxact::run(|| {
        crate::pg::security::with_own_settings(crate::pg::security::SQL_DIALECT, || {
            crate::pg::script::ensure_single_statement(&sql);
            Spi::run_with_args(&explain, &[none.clone().into(), none.clone().into()])
                .unwrap_or_else(|e| error!("{e}"))
        })
    })
    .map_err(|caught| {
        let (code, message, detail, hint) = crate::error::caught_parts(&caught);
        let mut e = UserError::new(
            code,
            format!("migrate.backfill: the UPDATE of {table} is not valid: {message}"),
        )
        .hint(
            hint.unwrap_or_else(|| "Fix set_sql or where_sql and queue the backfill again.".into()),
        );
        if let Some(d) = detail {
            e = e.detail(d);
        }
        e
    })
}

/// A setting's value now (jobs store the caller's search_path: an error must not store "").
pub fn current_setting(name: &str) -> String {
    Spi::get_one_with_args::<String>("SELECT pg_catalog.current_setting($1)", &[name.into()])
        .unwrap_or_else(|e| error!("migrate: could not read setting {name}: {e}"))
        .unwrap_or_else(|| error!("migrate: setting {name} has no value"))
}

/// Loads a job for a control function, locked, after checking the caller may control it: the
/// job's owner (or a role with its privileges) or a member of migrate_admin.
pub(super) fn job_for_control(id: i64, what: &str, may_stop_workers: bool) -> Result<Job> {
    let missing = || {
        UserError::new(
            ERRCODE_UNDEFINED_OBJECT,
            format!("migrate.{what}: job {id} does not exist"),
        )
        .hint("See SELECT * FROM migrate.jobs for job ids.")
    };
    // Who may control it is checked before anything waits.
    let job = queue::load(id, false).ok_or_else(missing)?;
    let me = current_user();
    let admin = role_oid("migrate_admin").is_some_and(|a| has_privileges_of(me, a));
    if !admin && !has_privileges_of(me, job.owner) {
        return Err(UserError::new(
            ERRCODE_INSUFFICIENT_PRIVILEGE,
            format!(
                "migrate.{what}: permission denied for job {id} of role \"{}\"",
                job.owner_name
            ),
        )
        .hint("Only the role that queued a job, roles with its privileges, and migrate_admin may control it."));
    }
    // Waits for every batch in flight; batches that start later wait for this transaction. A
    // batch that does not end (a job's SQL can catch its own statement timeout) would hold the
    // lock for ever: to cancel or pause, stop the job's workers (their batches roll back).
    if !queue::lock_control_within(id, true) {
        let stopped = if may_stop_workers {
            queue::terminate_workers(id)
        } else {
            Vec::new()
        };
        if stopped.is_empty() {
            return Err(queue::control_lock_unavailable(id));
        }
        pgrx::log!("migrate.{what}: terminated worker(s) {stopped:?} of job {id}");
        pgrx::notice!(
            "migrate.{what}: a batch of job {id} did not end within 10 s; stopped its {} worker(s) (the batch rolled back)",
            stopped.len()
        );
        queue::lock_control(id, true);
    }
    queue::load(id, true).ok_or_else(missing)
}

pub(super) fn job_id(id: Option<i64>, what: &str) -> Result<i64> {
    id.ok_or_else(|| {
        UserError::new(
            ERRCODE_NULL_VALUE_NOT_ALLOWED,
            format!("migrate.{what}: job id must not be NULL"),
        )
        .hint("Pass a job id from migrate.jobs.")
    })
}

pub(super) fn wrong_state(
    id: i64,
    what: &str,
    state: impl std::fmt::Display,
    hint: &str,
) -> UserError {
    UserError::new(
        ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE,
        format!("migrate.{what}: job {id} is {state}"),
    )
    .hint(hint.to_string())
}

/// Pauses a queued or running job after its current batch (which commits).
#[pg_extern]
fn pause_job(id: Option<i64>) {
    let id = job_id(id, "pause_job").or_raise();
    let job = job_for_control(id, "pause_job", true).or_raise();
    match job.state {
        QUEUED | RUNNING => queue::set_state(id, PAUSED, None),
        PAUSED => {}
        state => wrong_state(
            id,
            "pause_job",
            state,
            "Only queued or running jobs can be paused.",
        )
        .raise(),
    }
}

/// Resumes a paused, failed or interrupted job from its last checkpoint; its worker starts when
/// the caller commits.
#[pg_extern]
fn resume_job(id: Option<i64>) {
    let id = job_id(id, "resume_job").or_raise();
    let job = job_for_control(id, "resume_job", false).or_raise();
    match job.state {
        RUNNING | QUEUED if queue::has_worker(id) => wrong_state(
            id,
            "resume_job",
            format!("{} by a live worker", job.state),
            "Nothing to resume; watch it in migrate.jobs.",
        )
        .raise(),
        PAUSED | FAILED | RUNNING | QUEUED => {
            // A failed job's role must still qualify; the worker checks again before it runs.
            match &job.spec {
                JobSpec::Migration(_) => launch::login_role(id)
                    .map_err(|why| {
                        UserError::new(
                            ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE,
                            format!("migrate.resume_job: job {id} cannot run: {why}"),
                        )
                        .hint("CALL migrate.deploy() again: it queues the migration's registered script.")
                    })
                    .map(|_| ())
                    .or_raise(),
                JobSpec::Backfill(b) => {
                    check_owner(job.owner, b.relid, &b.table_name, job.allow_superuser).or_raise()
                }
            }
            queue::set_state(id, QUEUED, None);
            launch::start_at_commit(id);
        }
        state => wrong_state(
            id,
            "resume_job",
            state,
            "Succeeded and cancelled jobs are finished; queue a new backfill instead.",
        )
        .raise(),
    }
}

/// Cancels a job: it stops after its current batch. Rows already updated stay updated.
#[pg_extern]
fn cancel_job(id: Option<i64>) {
    let id = job_id(id, "cancel_job").or_raise();
    let job = job_for_control(id, "cancel_job", true).or_raise();
    match job.state {
        QUEUED | RUNNING | PAUSED | FAILED => queue::set_state(id, CANCELLED, None),
        CANCELLED => {}
        state => wrong_state(
            id,
            "cancel_job",
            state,
            "A succeeded job has nothing left to cancel.",
        )
        .raise(),
    }
}

/// Cancels job `id` unless it already ended, with the checks and waits of cancel_job() (the
/// caller may control it; batches in flight end first). For undo_expand_column().
pub fn cancel_unfinished(id: i64) {
    if queue::load(id, false).is_none() {
        return;
    }
    let job = job_for_control(id, "cancel_job", true).or_raise();
    if matches!(job.state, QUEUED | RUNNING | PAUSED | FAILED) {
        queue::set_state(id, CANCELLED, None);
    }
}

v1_function_info!(pg_finfo_migrate_wait_job);

/// `CALL migrate.wait_job(id, timeout)`: polls the job, committing between polls so this
/// session holds no snapshot while it waits (a concurrent index build waits for every older
/// snapshot in the database, including a waiter's). Raises if the job failed or was cancelled,
/// or if the timeout passes first.
#[pg_guard]
#[no_mangle]
pub unsafe extern "C-unwind" fn migrate_wait_job(
    fcinfo: pg_sys::FunctionCallInfo,
) -> pg_sys::Datum {
    // SAFETY: called by the executor of CALL with its arguments and context. A database not
    // yet updated to 0.2.0 declares two arguments, without progress_every.
    let (id, timeout, progress_every, nonatomic) = unsafe {
        (
            pgrx::fcinfo::pg_getarg::<i64>(fcinfo, 0),
            pgrx::fcinfo::pg_getarg::<Interval>(fcinfo, 1),
            ((*fcinfo).nargs > 2)
                .then(|| pgrx::fcinfo::pg_getarg::<Interval>(fcinfo, 2))
                .flatten(),
            nonatomic_call(fcinfo),
        )
    };
    let Some(id) = id else {
        UserError::new(
            ERRCODE_NULL_VALUE_NOT_ALLOWED,
            "migrate.wait_job: job id must not be NULL",
        )
        .hint("CALL migrate.wait_job(42);")
        .raise()
    };
    if !nonatomic {
        UserError::new(
            ERRCODE_ACTIVE_SQL_TRANSACTION,
            format!("migrate.wait_job({id}) must be called with CALL outside a transaction block"),
        )
        .detail("Waiting inside a transaction would hold a snapshot that concurrent index builds must wait for.")
        .hint("Run CALL migrate.wait_job(...) on its own (autocommit), not inside BEGIN ... COMMIT or a function.")
        .raise();
    }
    let deadline = timeout
        .as_ref()
        .map(|t| Instant::now() + Duration::from_secs_f64(interval_ms(t).max(0.0) / 1000.0));
    if progress_every
        .as_ref()
        .is_some_and(|e| interval_ms(e) < 0.0)
    {
        UserError::new(
            ERRCODE_INVALID_PARAMETER_VALUE,
            format!("migrate.wait_job({id}): progress_every must not be negative"),
        )
        .hint("Pass an interval such as '10 s', or NULL (the default) for no progress notices.")
        .raise();
    }
    // NULL or 0: no progress notices (what golden files pass: their timing varies).
    let every = progress_every
        .as_ref()
        .map(interval_ms)
        .filter(|&ms| ms > 0.0)
        .map(|ms| Duration::from_secs_f64(ms / 1000.0));
    // Committing releases the CALL's own snapshot; each poll below takes and drops its own.
    procedure::connect("migrate.wait_job");
    let mut next_report = every.map(|e| Instant::now() + e);
    let mut report = || {
        if let (Some(every), Some(at)) = (every, next_report) {
            if Instant::now() >= at {
                pgrx::notice!("migrate.wait_job: {}", progress_report(id));
                next_report = Some(Instant::now() + every);
            }
        }
    };
    match wait_for_job(id, deadline, "migrate.wait_job", &mut report) {
        Ok(()) => {}
        Err(JobEnd::Missing) => UserError::new(
            ERRCODE_UNDEFINED_OBJECT,
            format!("migrate.wait_job: job {id} does not exist"),
        )
        .hint("See SELECT * FROM migrate.jobs for job ids.")
        .raise(),
        Err(JobEnd::Failed(error)) => UserError::new(
            ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE,
            format!("migrate.wait_job: job {id} failed: {error}"),
        )
        .hint(format!("Fix the cause, then SELECT migrate.resume_job({id}); it resumes from its last checkpoint."))
        .raise(),
        Err(JobEnd::Cancelled) => UserError::new(
            ERRCODE_QUERY_CANCELED,
            format!("migrate.wait_job: job {id} was cancelled"),
        )
        .hint("Rows it updated before it was cancelled stay updated; queue a new backfill to finish the rest.")
        .raise(),
        Err(JobEnd::NoWorker { state }) => UserError::new(
            ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE,
            format!("migrate.wait_job: job {id} is {state} and no worker runs it"),
        )
        .hint(format!("SELECT migrate.resume_job({id}) to start it again; it resumes from its last checkpoint."))
        .raise(),
        Err(JobEnd::TimedOut { state, progress }) => UserError::new(
            ERRCODE_QUERY_CANCELED,
            format!("migrate.wait_job: timed out waiting for job {id} ({state}, {progress})"),
        )
        .hint("The job goes on in the background; wait again or watch migrate.jobs.")
        .raise(),
    }
    procedure::finish();
    pg_sys::Datum::from(0)
}

/// How a wait for a job ended other than with its success.
pub enum JobEnd {
    Missing,
    Failed(String),
    Cancelled,
    /// Nobody runs the job and nobody will: its worker died (or never started) or it is paused.
    NoWorker {
        state: JobState,
    },
    TimedOut {
        state: JobState,
        /// "3 of about 10 rows done", "1 of 2 statements done".
        progress: String,
    },
}

/// Polls job `id` until it succeeds, fails, is cancelled or `deadline` passes, committing
/// between polls so this session holds no snapshot while it waits. Needs a non-atomic SPI
/// connection (a procedure's). `who` names the caller in notices; `observe` runs on every
/// poll of a job still running (in a transaction, before the commit).
pub fn wait_for_job(
    id: i64,
    deadline: Option<Instant>,
    who: &str,
    observe: &mut dyn FnMut(),
) -> std::result::Result<(), JobEnd> {
    /// How long a job may have no worker (and no free slot to get one) before waiting ends.
    const NO_WORKER_GRACE: Duration = Duration::from_secs(10);
    let started = Instant::now();
    let mut warned = false;
    let mut orphaned: Option<Instant> = None;
    loop {
        let Some(status) = job_status(id) else {
            return Err(JobEnd::Missing);
        };
        let state = status.state;
        match state {
            SUCCEEDED => return Ok(()),
            FAILED => return Err(JobEnd::Failed(status.error.unwrap_or_default())),
            CANCELLED => return Err(JobEnd::Cancelled),
            _ => {}
        }
        // A worker takes a moment to start after commit: only then is "no worker" news. Still
        // none well after that (a worker that died, a job paused meanwhile): stop waiting.
        if started.elapsed() > Duration::from_secs(2) && !has_worker_or_slot(id, state) {
            let since = *orphaned.get_or_insert_with(Instant::now);
            if !warned {
                pgrx::notice!(
                    "{who}: job {id} is {state} and no worker runs it; SELECT migrate.resume_job({id}) to restart it"
                );
                warned = true;
            }
            if since.elapsed() > NO_WORKER_GRACE {
                return Err(JobEnd::NoWorker { state });
            }
        } else {
            orphaned = None;
        }
        if deadline.is_some_and(|d| Instant::now() >= d) {
            return Err(JobEnd::TimedOut {
                state,
                progress: progress(id),
            });
        }
        observe();
        // The caller holds a non-atomic SPI connection; we hold no snapshot of our own.
        procedure::commit();
        crate::pg::xact::sleep(Duration::from_millis(100));
    }
}

/// A job as the jobs view shows it, for a waiter.
struct JobStatus {
    state: JobState,
    error: Option<String>,
}

/// The job's status; None if there is no such job. A status that cannot be read raises: a
/// waiter must not take it for a job that ended or lost its worker.
fn job_status(id: i64) -> Option<JobStatus> {
    Spi::connect(|client| {
        let rows = client
            .select(
                "SELECT state, error FROM migrate.jobs \
                 WHERE id OPERATOR(pg_catalog.=) $1",
                None,
                &[id.into()],
            )
            .unwrap_or_else(|e| error!("migrate.wait_job: {e}"));
        rows.into_iter().next().map(|r| {
            let read = |e: pgrx::spi::SpiError| -> ! {
                error!("migrate: could not read the status of job {id}: {e}")
            };
            let state = r
                .get_by_name::<String, _>("state")
                .unwrap_or_else(|e| read(e));
            JobStatus {
                state: state
                    .as_deref()
                    .and_then(JobState::parse)
                    .unwrap_or_else(|| error!("migrate: job {id} has an unknown state")),
                error: r.get_by_name("error").unwrap_or_else(|e| read(e)),
            }
        })
    })
}

/// How far the job got, as the jobs view counts it: rows for a backfill, statements for a
/// migration job.
fn progress(id: i64) -> String {
    let counters = queue::StatementCounters::here();
    let sql = format!(
        "SELECT kind, rows_done, rows_estimated, {} AS statements_done, {} AS statements_total \
         FROM migrate.jobs WHERE id OPERATOR(pg_catalog.=) $1",
        counters.done(),
        counters.total()
    );
    Spi::connect(|client| {
        let rows = client
            .select(&sql, None, &[id.into()])
            .unwrap_or_else(|e| error!("migrate.wait_job: {e}"));
        let Some(r) = rows.into_iter().next() else {
            return "gone".to_string();
        };
        let count = |name: &str| -> i64 {
            r.get_by_name::<i64, _>(name)
                .unwrap_or_else(|e| error!("migrate: could not read the progress of job {id}: {e}"))
                .unwrap_or(0)
        };
        let kind = r
            .get_by_name::<String, _>("kind")
            .unwrap_or_else(|e| error!("migrate: could not read the kind of job {id}: {e}"));
        match kind.as_deref().and_then(JobKind::parse) {
            Some(JobKind::Migration) => format!(
                "{} of {} statements done",
                count("statements_done"),
                count("statements_total")
            ),
            Some(JobKind::Backfill) => format!(
                "{} of about {} rows done",
                count("rows_done"),
                count("rows_estimated")
            ),
            None => error!("migrate: job {id} has an unknown kind"),
        }
    })
}

/// One progress line for a waiter, from the jobs view: "job 7 running: 42.0% (420000 of
/// about 1000000 rows), 85000 rows/s, ETA 00:00:07"; a job whose size or rate is not known yet
/// says so. Its note (a throttle, a retry) is added when the caller may see it.
fn progress_report(id: i64) -> String {
    let row = Spi::get_three_with_args::<String, String, String>(
        "SELECT j.state, \
                CASE WHEN j.percent_done IS NOT NULL \
                     THEN j.percent_done::pg_catalog.text OPERATOR(pg_catalog.||) '% (' END, \
                pg_catalog.concat_ws(', ', \
                    CASE WHEN j.rate IS NOT NULL \
                         THEN j.rate::pg_catalog.text OPERATOR(pg_catalog.||) ' rows/s' END, \
                    CASE WHEN j.eta IS NOT NULL \
                         THEN 'ETA ' OPERATOR(pg_catalog.||) \
                              pg_catalog.date_trunc('second', j.eta)::pg_catalog.text END, \
                    j.note) \
         FROM migrate.jobs j WHERE j.id OPERATOR(pg_catalog.=) $1",
        &[id.into()],
    );
    let (state, percent, rest) = match row {
        Ok((state, percent, rest)) => (state.unwrap_or_default(), percent, rest),
        Err(e) => return format!("job {id}: progress unknown ({e})"),
    };
    let done = progress(id);
    let head = match percent {
        Some(p) => format!("job {id} {state}: {p}{done})"),
        None => format!("job {id} {state}: {done}"),
    };
    match rest.filter(|r| !r.is_empty()) {
        Some(rest) => format!("{head}, {rest}"),
        None => head,
    }
}

/// False when the job is waiting for something that will not happen by itself: running or
/// queued without a worker and with a free slot (its worker is gone), or paused.
fn has_worker_or_slot(id: i64, state: JobState) -> bool {
    match state {
        PAUSED => false,
        RUNNING => queue::has_worker(id),
        QUEUED => {
            let max = i64::from(gucs::max_job_workers());
            // Waiting for a slot, or for one of its role's own (a role's backfills get all
            // slots but one): a finishing worker will start it.
            queue::has_worker(id)
                || queue::busy_slots() >= max
                || queue::load(id, false).is_some_and(|j| {
                    j.kind() == JobKind::Backfill
                        && queue::role_slots(j.owner) >= queue::per_role_slots(max)
                })
        }
        _ => true,
    }
}
