//! Migration jobs: a non-transactional migration (`-- migrate:no-transaction`) that a job
//! worker runs for `deploy()`, one statement at a time, each top-level in a transaction of its
//! own (see [`crate::pg::toplevel`]), as the role that registered the migration.
//!
//! Progress is checkpointed after every statement, so a failed or interrupted job resumes at
//! the statement that did not finish. A concurrent index build that fails leaves an invalid
//! index behind: the worker drops it (concurrently) before it reports the failure, and drops
//! one left by a crashed attempt before it builds the index again. A lock timeout (55P03) is
//! retried with backoff, like `deploy()` retries a transactional migration.

use std::time::Duration;

use migrate_core::retry;
use pgrx::datum::TimestampWithTimeZone;
use pgrx::pg_sys;
use pgrx::pg_sys::panic::CaughtError;
use pgrx::prelude::*;
use pgrx::PgSqlErrorCode::*;

use super::blockers;
use super::queue::{self, Job, MigrationJob, RUNNING};
use crate::error::{caught_parts, sqlstate_text, OrRaise};
use crate::partition_index::{self, Recipe};
use crate::pg::security::set_config;
use crate::pg::snapshot_wait::{self, Expired};
use crate::pg::{script, toplevel, xact};
use crate::registry::catalog;
use crate::registry::execute::{Direction, Run};
use migrate_core::partition_index::Step;

/// Which script of its migration a job runs.
fn direction(m: &MigrationJob) -> Direction {
    if m.up {
        Direction::Up
    } else {
        Direction::Down
    }
}

/// Runs migration job `id` to its end (or until it is paused, cancelled or fails).
pub fn run(id: i64) {
    let started = match xact::run(|| start(id)) {
        Ok(Some(started)) => started,
        Ok(None) => return,
        Err(caught) => return fail(id, None, &caught, None, &[]),
    };
    let (job, m, started_at) = started;
    // Its DDL (and the cleanup of what a failed build left) is the migration's in
    // migrate.schema_changes.
    let _migration = crate::guard::schema_changes::MigrationScope::enter(&m.version);
    crate::pg::backend::report_appname(&format!(
        "migrate job {id}: migration {} ({})",
        m.version,
        direction(&m).label()
    ));
    let statements = match xact::run(|| {
        // Session-wide for this worker: the deploying session's search_path and lock_timeout.
        let path = std::ffi::CString::new(job.search_path.as_str()).unwrap_or_default();
        set_config(c"search_path", &path, pg_sys::GucAction::GUC_ACTION_SET);
        let timeout = std::ffi::CString::new(m.lock_timeout_ms.to_string()).expect("digits");
        set_config(
            c"migrate.lock_timeout",
            &timeout,
            pg_sys::GucAction::GUC_ACTION_SET,
        );
        // Its -- migrate:allow lines, for the statements that run in transactions of their
        // own (VACUUM FULL, REINDEX SCHEMA, ... judged by the ProcessUtility hook).
        crate::guard::state::set_job_allowances(migrate_core::options::allow_directives(&m.script));
        script::split(&m.script)
    }) {
        Ok(statements) => statements,
        Err(caught) => return fail(id, Some(&m), &caught, None, &[]),
    };
    let resumed_at = m.current_statement;
    // The steps of safe mode's ADD COLUMN ... DEFAULT <volatile> that queue a backfill job.
    let fills = crate::registry::safe::fill_statements(&m.script);
    // A script safe mode rewrote runs with safe mode on for the code its statements reach
    // (gucs::safe_mode()), as the deploy that rewrote it had.
    let safe = (!crate::registry::safe::header_lines(&m.script).is_empty()).then_some(true);
    let _safe = crate::gucs::MigrationSafe::enter(safe);
    // What the worker did besides the statements (invalid indexes dropped), for the record.
    let mut notes: Vec<String> = Vec::new();
    for (index, statement) in statements
        .iter()
        .enumerate()
        .skip(m.statements_done.max(0) as usize)
    {
        let number = index as i32 + 1;
        let line = script::line_and_column(
            &m.script,
            m.script[..statement.offset + script::first_token(&statement.text)]
                .chars()
                .count()
                + 1,
        )
        .0;
        let label = format!("statement {number} of {} (line {line})", statements.len());
        // Only a statement of the fill's own form (a marker line alone, which any script could
        // carry, changes nothing).
        let ran = if fills.contains(&number)
            && migrate_core::safe::fill_table(
                &statement.text[script::first_token(&statement.text)..],
            )
            .is_some()
        {
            run_fill(&job, number, &label, &statement.text, m.lock_timeout_ms)
        } else {
            run_statement(&job, &m, number, &label, &statement.text, resumed_at)
        };
        match ran {
            Ok(done) => notes.extend(done),
            Err(Stop::Stopped) => return,
            Err(Stop::Failed(caught, failed_notes)) => {
                notes.extend(failed_notes);
                return fail(id, Some(&m), &caught, Some(&label), &notes);
            }
        }
    }
    let finished = xact::run(|| {
        let note = (!notes.is_empty()).then(|| notes.join("; "));
        let safe = crate::registry::safe::header_lines(&m.script);
        let mut detail = if safe.is_empty() {
            format!("deploy: non-transactional, run top-level by job {id}")
        } else {
            format!(
                "deploy: safe mode, run step by step by job {id}: {}",
                safe.join("; ")
            )
        };
        if let Some(n) = &note {
            detail = format!("{detail}; {n}");
        }
        Run::resume(m.run_id, &m.requested_by).record(
            &m.version,
            direction(&m),
            started_at,
            Some(&detail),
        );
        queue::set_state(id, queue::SUCCEEDED, note.as_deref());
    });
    if let Err(caught) = finished {
        fail(id, Some(&m), &caught, None, &[]);
    }
}

/// Takes the job: it must be runnable and its role must still exist.
fn start(id: i64) -> Option<(Job, MigrationJob, TimestampWithTimeZone)> {
    let job = queue::load(id, true)?;
    if job.state != queue::QUEUED && job.state != RUNNING {
        return None;
    }
    let m = job.migration().cloned()?;
    if crate::pg::security::role_name(job.owner).is_none() {
        crate::error::UserError::new(
            ERRCODE_UNDEFINED_OBJECT,
            format!(
                "role \"{}\", which registered migration {}, no longer exists",
                job.owner_name, m.version
            ),
        )
        .hint("Register the migration again as an existing role, then deploy again.")
        .raise();
    }
    queue::mark_running(id, None, None);
    Some((job, m, catalog::clock_now()))
}

enum Stop {
    /// Paused or cancelled between statements.
    Stopped,
    /// The statement failed for good: the error and what the worker did about it.
    Failed(Box<CaughtError>, Vec<String>),
}

/// What a statement of the script is, for how the worker runs it.
enum Kind {
    /// Anything but a concurrent index build the worker knows about.
    Plain,
    /// A concurrent build on a table: transactions it will wait for are reported first, and an
    /// invalid index it leaves is dropped.
    Build(IndexBuild),
    /// `CREATE INDEX CONCURRENTLY` on a partitioned table: run by the online recipe.
    Partitioned(Box<(pg_sys::Oid, String, Recipe)>),
}

/// Runs statement `number` with its lock-timeout retries and invalid-index cleanup, then
/// checkpoints it. Returns notes on what was cleaned up.
fn run_statement(
    job: &Job,
    m: &MigrationJob,
    number: i32,
    label: &str,
    sql: &str,
    resumed_at: Option<i32>,
) -> Result<Vec<String>, Stop> {
    let mut notes = Vec::new();
    let shown: String = sql.trim().chars().take(120).collect();
    let prepared = xact::run(|| {
        let current = queue::load(job.id, true)?;
        if current.state != RUNNING {
            return None;
        }
        queue::statement_started(job.id, number, &format!("running {label}: {shown}"));
        Some(Kind::of(sql))
    });
    let kind = match prepared {
        Ok(Some(kind)) => kind,
        Ok(None) => return Err(Stop::Stopped),
        Err(caught) => return Err(Stop::Failed(caught, notes)),
    };
    let build = match kind {
        Kind::Partitioned(found) => {
            let (table, index, recipe) = *found;
            run_partitioned(job, m, label, table, &index, recipe, &mut notes)?;
            checkpoint(job.id, number);
            return Ok(notes);
        }
        Kind::Build(b) => Some(b),
        Kind::Plain => None,
    };
    if let Some(b) = &build {
        let existing = match b.existing() {
            Ok(existing) => existing,
            Err(caught) => return Err(Stop::Failed(caught, notes)),
        };
        match existing {
            // The attempt that a crash interrupted here had committed its build.
            Some((name, true)) if resumed_at == Some(number) => {
                checkpoint(job.id, number);
                notes.push(format!(
                    "index {name} was already built by the interrupted attempt"
                ));
                return Ok(notes);
            }
            Some((name, false)) => drop_index(
                &name,
                &mut notes,
                "left by an earlier attempt",
                m.snapshot_wait_timeout_ms,
            ),
            _ => {}
        }
    }
    run_step(job, m, label, sql, build.as_ref(), &mut notes)?;
    checkpoint(job.id, number);
    Ok(notes)
}

/// How often a fill step looks at its backfill job.
const FILL_POLL: Duration = Duration::from_millis(200);

/// How long a running fill job may have no worker before the step restarts it (its worker
/// takes a moment to start; without `shared_preload_libraries` nobody else restarts it).
const FILL_ORPHAN_GRACE: Duration = Duration::from_secs(10);

/// Safe mode's fill of a column added without its volatile default (see
/// [`crate::registry::safe`]): the step's statement (`SELECT migrate.backfill(...)`) runs once,
/// as this job's role with its search_path, and the backfill job's id is recorded with this job
/// in the same transaction. The step then waits for that job, committing between polls (no
/// snapshot held), and is checkpointed when it succeeded. Resumed after a crash or a failure,
/// the step finds the recorded job and waits for it again, restarting it from its own
/// checkpoint if it failed or lost its worker: no row is filled twice. A cancelled fill job is
/// replaced by a new one, which fills only the rows still NULL.
fn run_fill(
    job: &Job,
    number: i32,
    label: &str,
    sql: &str,
    lock_timeout_ms: i32,
) -> Result<Vec<String>, Stop> {
    let shown: String = sql.trim().chars().take(120).collect();
    let queued = xact::run(|| {
        let current = queue::load(job.id, true)?;
        if current.state != RUNNING {
            return None;
        }
        queue::statement_started(job.id, number, &format!("running {label}: {shown}"));
        let recorded = queue::fill_job(job.id, number)
            .and_then(|fill| queue::load(fill, false).map(|f| (fill, f.state)));
        let fill = match recorded {
            Some((fill, state)) if state != queue::CANCELLED => {
                if state == queue::FAILED || (state == RUNNING && !queue::has_worker(fill)) {
                    restart_fill(fill);
                }
                fill
            }
            _ => {
                // This worker holds a job slot while the fill needs another one.
                if crate::gucs::max_job_workers() < 2 {
                    crate::error::UserError::new(
                        ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE,
                        format!("{label}: the fill's backfill job needs a second job worker, and migrate.max_job_workers is 1"),
                    )
                    .hint("Have a superuser raise migrate.max_job_workers to 2 or more, then CALL migrate.deploy() again.")
                    .raise();
                }
                // A migration a superuser registered runs as that superuser (deploy() allows
                // it): its fill runs as the same role, allowed for this transaction only.
                if job.allow_superuser && crate::pg::security::is_superuser() {
                    set_config(
                        c"migrate.allow_superuser_jobs",
                        c"on",
                        pg_sys::GucAction::GUC_ACTION_LOCAL,
                    );
                }
                let fill = Spi::get_one::<i64>(sql)
                    .unwrap_or_else(|e| error!("{e}"))
                    .unwrap_or_else(|| error!("migrate: the fill step queued no job"));
                queue::record_fill_job(job.id, number, fill);
                // Its batches wait for locks as long as this deploy's steps do.
                queue::set_lock_timeout(fill, lock_timeout_ms);
                fill
            }
        };
        queue::set_note(
            job.id,
            Some(&format!(
                "running {label}: waiting for backfill job {fill} to fill the column"
            )),
        );
        Some(fill)
    });
    let fill = match queued {
        Ok(Some(fill)) => fill,
        Ok(None) => return Err(Stop::Stopped),
        Err(caught) => return Err(Stop::Failed(caught, Vec::new())),
    };
    let mut orphaned: Option<std::time::Instant> = None;
    loop {
        xact::sleep(FILL_POLL);
        let seen = xact::run(|| poll_fill(job.id, fill, label));
        match seen {
            Ok(Poll::Done) => {
                checkpoint(job.id, number);
                return Ok(vec![format!("{label}: filled by backfill job {fill}")]);
            }
            Ok(Poll::Waiting) => orphaned = None,
            Ok(Poll::Orphaned) => {
                let since = *orphaned.get_or_insert_with(std::time::Instant::now);
                if since.elapsed() > FILL_ORPHAN_GRACE {
                    log_if_failed("restart a fill job", xact::run(|| restart_fill(fill)));
                    orphaned = None;
                }
            }
            Ok(Poll::Stopped) => return Err(Stop::Stopped),
            Ok(Poll::Ended(message, hint)) => {
                return Err(Stop::Failed(
                    raised(
                        crate::error::UserError::new(
                            ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE,
                            message,
                        )
                        .hint(hint),
                    ),
                    Vec::new(),
                ))
            }
            Err(caught) => return Err(Stop::Failed(caught, Vec::new())),
        }
    }
}

/// What a fill step saw of its backfill job.
enum Poll {
    Done,
    Waiting,
    /// Running, but no worker runs it.
    Orphaned,
    /// This migration job was paused or cancelled.
    Stopped,
    /// The fill job failed, was cancelled or is gone: the message and the hint.
    Ended(String, String),
}

fn poll_fill(id: i64, fill: i64, label: &str) -> Poll {
    let mine = queue::load(id, false).map(|j| j.state);
    if mine != Some(RUNNING) {
        // A cancelled deploy step cancels its fill; a paused one leaves it running.
        if mine == Some(queue::CANCELLED) {
            if let Some(f) = queue::load(fill, false) {
                if matches!(
                    f.state,
                    queue::QUEUED | RUNNING | queue::PAUSED | queue::FAILED
                ) {
                    queue::set_state(fill, queue::CANCELLED, None);
                }
            }
        }
        return Poll::Stopped;
    }
    let Some(f) = queue::load(fill, false) else {
        return Poll::Ended(
            format!("{label}: backfill job {fill}, which fills the column, is gone"),
            "CALL migrate.deploy() again: it queues a new fill for the rows still NULL.".into(),
        );
    };
    match f.state {
        queue::SUCCEEDED => Poll::Done,
        queue::FAILED => Poll::Ended(
            format!(
                "{label}: backfill job {fill}, which fills the column, failed: {}",
                fill_error(fill)
            ),
            format!("Fix the cause, then CALL migrate.deploy() again: it resumes job {fill} from its checkpoint."),
        ),
        queue::CANCELLED => Poll::Ended(
            format!("{label}: backfill job {fill}, which fills the column, was cancelled"),
            "The rows it filled keep their value; CALL migrate.deploy() again: it queues a new fill for the rows still NULL.".into(),
        ),
        RUNNING if !queue::has_worker(fill) => Poll::Orphaned,
        _ => Poll::Waiting,
    }
}

/// Starts a failed or orphaned fill job again from its checkpoint, as `resume_job()` does.
fn restart_fill(fill: i64) {
    queue::set_state(fill, queue::QUEUED, None);
    super::launch::start_at_commit(fill);
}

/// A failed job's SQLSTATE and message.
fn fill_error(fill: i64) -> String {
    crate::pg::security::as_registry_owner(|| {
        queue::first_value::<String>(
            "read the error of a fill job",
            "SELECT pg_catalog.concat_ws(': ', error_sqlstate, error_message) \
               FROM migrate.job_queue WHERE id OPERATOR(pg_catalog.=) $1",
            &[fill.into()],
        )
    })
    .unwrap_or_default()
}

/// Runs one top-level statement: the transactions a concurrent build will wait for are noted
/// first; its waits for them are bounded by `migrate.snapshot_wait_timeout`; a lock timeout is
/// retried with backoff; an invalid index a failed build leaves is dropped.
fn run_step(
    job: &Job,
    m: &MigrationJob,
    label: &str,
    sql: &str,
    build: Option<&IndexBuild>,
    notes: &mut Vec<String>,
) -> Result<(), Stop> {
    let mut attempt = 0u32;
    loop {
        if attempt > 0 {
            match xact::run(|| queue::load(job.id, false).map(|j| j.state)) {
                Ok(Some(RUNNING)) => {}
                Ok(_) => return Err(Stop::Stopped),
                Err(caught) => return Err(Stop::Failed(caught, std::mem::take(notes))),
            }
        }
        if let Some(b) = build {
            preflight(job.id, label, b);
        }
        let (result, expired) =
            snapshot_wait::watch(m.snapshot_wait_timeout_ms, || toplevel::execute(sql));
        let caught = match result {
            Ok(()) => return Ok(()),
            Err(caught) => caught,
        };
        match build {
            Some(b @ IndexBuild { name: Some(_), .. }) => match b.existing() {
                Ok(Some((name, false))) => drop_index(
                    &name,
                    notes,
                    "left by the failed build",
                    m.snapshot_wait_timeout_ms,
                ),
                Ok(_) => {}
                Err(look) => notes.push(format!(
                    "could not look for an invalid index left by the failed build: {}",
                    caught_parts(&look).1
                )),
            },
            Some(IndexBuild {
                name: None,
                table_name,
                reindex: false,
                ..
            }) => notes.push(format!(
                "an unnamed concurrent index build on {table_name} failed: drop the invalid index it may have left (DROP INDEX CONCURRENTLY), or name the index in the migration so deploy() cleans it up"
            )),
            Some(IndexBuild { reindex: true, table_name, .. }) => notes.push(format!(
                "a failed REINDEX CONCURRENTLY may leave invalid indexes named *_ccnew on {table_name}: drop them with DROP INDEX CONCURRENTLY"
            )),
            None => {}
        }
        if let Some(expired) = expired {
            return Err(Stop::Failed(
                snapshot_wait_error(m, &expired),
                std::mem::take(notes),
            ));
        }
        let (code, message, _, _) = caught_parts(&caught);
        if code == ERRCODE_LOCK_NOT_AVAILABLE && attempt < m.lock_retries.max(0) as u32 {
            attempt += 1;
            let wait = retry::backoff_ms(
                u64::try_from(m.lock_retry_delay_ms).unwrap_or(1),
                attempt,
                retry::LOCK_RETRY_CAP_MS,
                retry::jitter(),
            );
            let note = format!(
                "{label}: {message}; lock retry {attempt} of {} in {wait} ms",
                m.lock_retries
            );
            log_if_failed(
                "note a lock retry",
                xact::run(|| queue::set_note(job.id, Some(&note))),
            );
            xact::sleep(Duration::from_millis(wait));
            continue;
        }
        return Err(Stop::Failed(caught, std::mem::take(notes)));
    }
}

/// Notes in the job the transactions the build will wait for, as the job's role sees them
/// (deploy() shows the note as a NOTICE). The query text is left out: the note is shown to
/// `migrate_admin` too, who may not see those sessions' queries; deploy() adds each one's query
/// when its caller may see it.
fn preflight(id: i64, label: &str, build: &IndexBuild) {
    let listed = xact::run(|| {
        let holders = blockers::holders(Some(build.table), None);
        if holders.is_empty() {
            return;
        }
        let note = format!(
            "{label}: {PREFLIGHT} of {} waits for {} transaction(s) to end: {}",
            build.table_name,
            holders.len(),
            blockers::summary(&holders, false)
        );
        queue::set_note(id, Some(&note));
    });
    log_if_failed("list the transactions a concurrent build waits for", listed);
}

/// The words that mark a preflight note (deploy() shows such notes as NOTICEs).
pub const PREFLIGHT: &str = "the concurrent index build";

/// The error of a build that waited longer than `migrate.snapshot_wait_timeout`: 55P03, like a
/// lock wait that ran out (each of these waits is a lock wait on another transaction).
fn snapshot_wait_error(m: &MigrationJob, expired: &Expired) -> Box<CaughtError> {
    let holder = if expired.holder > 0 {
        format!(" for the transaction of pid {}", expired.holder)
    } else {
        String::new()
    };
    let message = format!(
        "the concurrent build was cancelled after waiting {} ms ({}){holder} to end (migrate.snapshot_wait_timeout)",
        m.snapshot_wait_timeout_ms,
        expired.phase_name()
    );
    let hint = match expired.holder {
        0 => "End the transactions that hold it up, then CALL migrate.deploy() again.".to_string(),
        pid => format!(
            "SELECT pg_terminate_backend({pid}) ends that session (or wait until it ends), then CALL migrate.deploy() again; migrate.snapshot_wait_timeout sets how long a build waits (0: no limit)."
        ),
    };
    raised(crate::error::UserError::new(ERRCODE_LOCK_NOT_AVAILABLE, message).hint(hint))
}

/// Runs the partitioned-table recipe (see [`crate::partition_index`]) step by step, each step
/// top-level and committed; a rerun reads the catalog again and does only what is left.
fn run_partitioned(
    job: &Job,
    m: &MigrationJob,
    label: &str,
    table: pg_sys::Oid,
    index: &str,
    recipe: Recipe,
    notes: &mut Vec<String>,
) -> Result<(), Stop> {
    let steps = recipe.steps();
    let (mut built, total) = (0, steps.iter().filter(|s| s.concurrent_build()).count());
    for step in &steps {
        let sql = recipe.sql(step);
        let step_label = format!("{label}, partition step: {sql}");
        let prepared = xact::run(|| {
            let current = queue::load(job.id, true)?;
            if current.state != RUNNING {
                return None;
            }
            let what = if step.concurrent_build() {
                format!(
                    "running {label}: partitioned index {} ({} of {total} partition builds): {sql}",
                    recipe.index_name,
                    built + 1
                )
            } else {
                format!(
                    "running {label}: partitioned index {}: {sql}",
                    recipe.index_name
                )
            };
            queue::set_note(job.id, Some(&what));
            Some(match step {
                Step::Build { .. } | Step::Rebuild { .. } => IndexBuild::find(&sql),
                _ => None,
            })
        });
        let build = match prepared {
            Ok(Some(build)) => build,
            Ok(None) => return Err(Stop::Stopped),
            Err(caught) => return Err(Stop::Failed(caught, std::mem::take(notes))),
        };
        if let Step::DropInvalid { index } = step {
            drop_index(
                index,
                notes,
                "left by an earlier attempt",
                m.snapshot_wait_timeout_ms,
            );
            continue;
        }
        run_step(job, m, &step_label, &sql, build.as_ref(), notes)?;
        if step.concurrent_build() {
            built += 1;
        }
    }
    // The parent is valid once every partition's index is attached and valid.
    let valid = xact::run(|| {
        let now = recipe.reload(table, index).or_raise();
        (now.steps().is_empty(), now.index_name)
    });
    match valid {
        Ok((true, name)) => {
            notes.push(format!(
                "partitioned index {name} built partition by partition ({built} concurrent build(s))"
            ));
            Ok(())
        }
        Ok((false, name)) => Err(Stop::Failed(
            raised(crate::error::UserError::new(
                ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE,
                format!("{label}: partitioned index {name} is not valid after its steps ran"),
            )
            .hint("A partition was added or changed meanwhile: CALL migrate.deploy() again to finish it.")),
            std::mem::take(notes),
        )),
        Err(caught) => Err(Stop::Failed(caught, std::mem::take(notes))),
    }
}

/// A user error as the worker records failures (a caught error).
fn raised(e: crate::error::UserError) -> Box<CaughtError> {
    match xact::run(|| e.raise()) {
        Err(caught) => caught,
        Ok(never) => never,
    }
}

/// Records that statement `number` committed. If this fails the statement runs again after a
/// restart, so say so in the server log.
fn checkpoint(id: i64, number: i32) {
    log_if_failed(
        "checkpoint a statement",
        xact::run(|| queue::statement_done(id, number)),
    );
}

fn log_if_failed(what: &str, result: Result<(), Box<CaughtError>>) {
    if let Err(caught) = result {
        pgrx::log!("migrate: could not {what}: {}", caught_parts(&caught).1);
    }
}

/// Drops an invalid index concurrently (top-level) and notes it. DROP INDEX CONCURRENTLY waits
/// for every transaction using the table; that wait is bounded by `limit_ms` (the job's
/// `migrate.snapshot_wait_timeout`, as lock_timeout) so a session that held the build up cannot
/// hold the cleanup up for longer (the next deploy drops what is left).
fn drop_index(name: &str, notes: &mut Vec<String>, why: &str, limit_ms: i32) {
    let sql = format!("DROP INDEX CONCURRENTLY IF EXISTS {name}");
    match with_lock_timeout(limit_ms, || toplevel::execute(&sql)) {
        Ok(()) => notes.push(format!("dropped invalid index {name} {why}")),
        Err(caught) => notes.push(format!(
            "could not drop invalid index {name} {why}: {} (the next deploy drops it)",
            caught_parts(&caught).1
        )),
    }
}

/// Runs `f` (between transactions) with the session's lock_timeout set to `ms` when that is
/// lower than the current one (or the current one is 0), then puts it back.
fn with_lock_timeout<R>(ms: i32, f: impl FnOnce() -> R) -> R {
    let current = crate::pg::backend::lock_timeout_ms();
    if ms <= 0 || (current > 0 && current <= ms) {
        return f();
    }
    let previous = crate::pg::backend::setting(c"lock_timeout").unwrap_or_else(|| "0".into());
    let set = |value: &str| {
        let value = std::ffi::CString::new(value).unwrap_or_default();
        log_if_failed(
            "set lock_timeout",
            xact::run(|| set_config(c"lock_timeout", &value, pg_sys::GucAction::GUC_ACTION_SET)),
        );
    };
    set(&format!("{ms}ms"));
    let result = f();
    set(&previous);
    result
}

impl Kind {
    /// Recognises the statement (in a transaction, as the job's role). A partitioned-table
    /// build the recipe cannot do raises (the job fails with it before anything ran).
    fn of(sql: &str) -> Kind {
        let Some(&tree) = script::parse_trees(sql).first() else {
            return Kind::Plain;
        };
        // SAFETY: a raw parse tree of `sql`, just built in this memory context.
        if let Some(found) = unsafe { partition_index::recognise(tree, sql) } {
            return Kind::Partitioned(Box::new(found.or_raise()));
        }
        IndexBuild::find(sql).map_or(Kind::Plain, Kind::Build)
    }
}

/// A concurrent index build: `CREATE INDEX CONCURRENTLY` (its table and the index name it
/// asks for) or `REINDEX CONCURRENTLY` of a table or an index. Only a named index is ever
/// dropped: an unnamed build's leftover cannot be told apart from another session's build in
/// progress.
struct IndexBuild {
    table: pg_sys::Oid,
    table_name: String,
    name: Option<String>,
    reindex: bool,
}

impl IndexBuild {
    /// Recognises a concurrent index build (in a transaction, as the job's role).
    fn find(sql: &str) -> Option<IndexBuild> {
        let tree = *script::parse_trees(sql).first()?;
        // SAFETY: a node of the raw parse tree just built; IndexStmt and ReindexStmt fields are
        // read only after its tag was checked; RangeVarGetRelidExtended with missing_ok raises
        // nothing for a missing relation and takes no lock.
        let (relid, name, reindex) = unsafe {
            let (relation, name, reindex) = match (*tree).type_ {
                pg_sys::NodeTag::T_IndexStmt => {
                    let stmt = tree as *mut pg_sys::IndexStmt;
                    if !(*stmt).concurrent {
                        return None;
                    }
                    let name = (!(*stmt).idxname.is_null()).then(|| {
                        std::ffi::CStr::from_ptr((*stmt).idxname)
                            .to_string_lossy()
                            .into_owned()
                    });
                    ((*stmt).relation, name, false)
                }
                pg_sys::NodeTag::T_ReindexStmt => {
                    let stmt = tree as *mut pg_sys::ReindexStmt;
                    let concurrent = crate::pg::list::items::<pg_sys::DefElem>((*stmt).params)
                        .into_iter()
                        .any(|d| {
                            !(*d).defname.is_null()
                                && std::ffi::CStr::from_ptr((*d).defname).to_bytes()
                                    == b"concurrently"
                        });
                    if !concurrent || (*stmt).relation.is_null() {
                        return None;
                    }
                    ((*stmt).relation, None, true)
                }
                _ => return None,
            };
            let relid = pg_sys::RangeVarGetRelidExtended(
                relation,
                pg_sys::NoLock as i32,
                pg_sys::RVROption::RVR_MISSING_OK,
                None,
                std::ptr::null_mut(),
            );
            (relid, name, reindex)
        };
        if relid == pg_sys::InvalidOid {
            return None;
        }
        // REINDEX INDEX names the index: the build waits on its table.
        let (table, table_name) = Spi::connect(|client| {
            let row = client
                .select(
                    "SELECT COALESCE(i.indrelid, c.oid), COALESCE(i.indrelid, c.oid)::pg_catalog.regclass::pg_catalog.text \
                     FROM pg_catalog.pg_class c \
                     LEFT JOIN pg_catalog.pg_index i ON i.indexrelid OPERATOR(pg_catalog.=) c.oid \
                     WHERE c.oid OPERATOR(pg_catalog.=) $1",
                    None,
                    &[relid.into()],
                )
                .unwrap_or_else(|e| error!("migrate: could not name the table of an index build: {e}"))
                .first()
                .get_two::<pg_sys::Oid, String>()
                .unwrap_or_else(|e| error!("migrate: could not name the table of an index build: {e}"));
            row
        });
        Some(IndexBuild {
            table: table?,
            table_name: table_name?,
            name,
            reindex,
        })
    }

    /// The index of the requested name on the build's table, if it exists: (qualified name,
    /// valid). An error is returned, not read as "no index": what the worker drops or skips
    /// depends on it.
    fn existing(&self) -> Result<Option<(String, bool)>, Box<CaughtError>> {
        let Some(name) = self.name.as_deref() else {
            return Ok(None);
        };
        xact::run(|| {
            Spi::connect(|client| {
                let what = "look for the index of a concurrent build";
                let rows = client
                    .select(
                        "SELECT pg_catalog.format('%I.%I', n.nspname, c.relname), i.indisvalid \
                         FROM pg_catalog.pg_index i \
                         JOIN pg_catalog.pg_class c ON c.oid OPERATOR(pg_catalog.=) i.indexrelid \
                         JOIN pg_catalog.pg_namespace n ON n.oid OPERATOR(pg_catalog.=) c.relnamespace \
                         WHERE i.indrelid OPERATOR(pg_catalog.=) $1 AND c.relname OPERATOR(pg_catalog.=) $2",
                        None,
                        &[self.table.into(), name.into()],
                    )
                    .unwrap_or_else(|e| error!("migrate: could not {what}: {e}"));
                let row = rows.into_iter().next()?;
                let column = |n| {
                    row.get::<String>(n)
                        .unwrap_or_else(|e| error!("migrate: could not {what}: {e}"))
                };
                let valid = row
                    .get::<bool>(2)
                    .unwrap_or_else(|e| error!("migrate: could not {what}: {e}"));
                Some((column(1)?, valid?))
            })
        })
    }
}

/// Marks the job failed and appends the failure to the registry's event log.
/// `statement` names the statement that failed; `notes` say what the worker did about it.
/// Where a job's error message ends and the failed statement's HINT begins.
pub const FAILURE_HINT: &str = "\nHINT: ";

fn fail(
    id: i64,
    m: Option<&MigrationJob>,
    caught: &CaughtError,
    statement: Option<&str>,
    notes: &[String],
) {
    let (code, message, detail, hint) = caught_parts(caught);
    let sqlstate = sqlstate_text(code as i32);
    let mut full = match statement {
        Some(s) => format!("{s}: {message}"),
        None => message,
    };
    if let Some(d) = detail {
        full = format!("{full} ({d})");
    }
    if !notes.is_empty() {
        full = format!("{full}; {}", notes.join("; "));
    }
    // The error's own advice (the guard's safe alternative, ...): deploy() shows it first.
    if let Some(h) = hint {
        full = format!("{full}{FAILURE_HINT}{h}");
    }
    pgrx::log!("migrate: job {id} failed: {full}");
    let _ = xact::run(|| {
        queue::fail(id, &sqlstate, &full);
        if let Some(m) = m {
            Run::resume(m.run_id, &m.requested_by).record_failure(
                &m.version,
                direction(m).action(),
                &format!("deploy: job {id}"),
                &sqlstate,
                &full,
            );
        }
    });
}
