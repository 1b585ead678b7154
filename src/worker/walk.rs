//! The backfill walk: how a job's workers update its rows. A keyed backfill is split into key
//! ranges when it first starts; every worker of the job (its leader, which holds the job lock,
//! and its helpers) claims ranges (a lock each) until none is left, and walks each in batches,
//! with the job's pause between batches and a wait while a standby lags
//! (`migrate.max_replication_lag`). A keyless backfill is walked by its leader alone.
//!
//! Each batch is a transaction of its own that takes the job's control lock (shared, see
//! `queue::lock_control`), row-locks its range, re-checks the owner's privileges, updates the next keys of the range as the owner, and writes
//! the range's and the job's checkpoint, so a crash at any point loses at most the batches in
//! flight, which roll back as a whole. A batch that times out, deadlocks or hits a
//! serialization failure is retried smaller after a backoff.

use std::time::{Duration, Instant};

use migrate_core::{batch, retry};
use pgrx::pg_sys;
use pgrx::pg_sys::panic::CaughtError;
use pgrx::prelude::*;
use pgrx::PgSqlErrorCode::*;

use super::backfill::{self, check_owner, Key};
use super::launch;
use super::queue::{self, BackfillJob, Checkpoint, Job, JobSpec, Namespace, Range, RUNNING};
use crate::error::{caught_parts, sqlstate_text, OrRaise, UserError};
use crate::gucs;
use crate::pg::security::{run_as, set_config, SessionObjects};
use crate::pg::xact;

/// Consecutive retryable failures (lock or statement timeout, deadlock, serialization) a job
/// survives, each retried smaller after a backoff, before it is marked failed.
const MAX_RETRIES: u32 = 10;

/// Runs backfill job `id` as its leader (the worker holding the job lock) until it ends, is
/// paused or cancelled, or fails.
pub fn run(id: i64) {
    let job = match xact::run(|| start_job(id)) {
        Ok(Some(job)) => job,
        Ok(None) => return,
        Err(caught) => return record_failure(id, &caught),
    };
    let JobSpec::Backfill(b) = &job.spec else {
        return;
    };
    report_appname(&format!("migrate job {id}: backfill {}", b.table_name));
    if b.key.is_none() {
        // A keyless job is walked by where_sql alone: one worker, no ranges.
        Runner::new(id, None).run(b.pause_ms);
        return;
    }
    start_helpers(id, b);
    walk_ranges(id, b);
    // Helpers may still walk their last ranges. Stay the job's worker (the jobs view and
    // resume_job() go by this one) until the job ends, taking over any range a helper dropped.
    while still_running(id) {
        xact::sleep(Duration::from_millis(200));
        walk_ranges(id, b);
        let _ = xact::run(|| queue::finish_if_ranges_done(id));
    }
}

/// An extra worker of a backfill: takes the job's unclaimed ranges until none is left.
pub fn run_helper(id: i64) {
    let Some(job) = xact::run(|| queue::load(id, false)).ok().flatten() else {
        return;
    };
    let JobSpec::Backfill(b) = &job.spec else {
        return;
    };
    if job.state != RUNNING || b.key.is_none() {
        return;
    }
    report_appname(&format!(
        "migrate job {id}: backfill {} (helper)",
        b.table_name
    ));
    walk_ranges(id, b);
}

fn report_appname(name: &str) {
    crate::pg::backend::report_appname(name);
}

/// Starts the job's other workers: one fewer than it asked for, and no more than it has ranges
/// left. A helper that finds no slot free exits; the job's other workers take its ranges.
fn start_helpers(id: i64, b: &BackfillJob) {
    let ranges = match xact::run(|| queue::unfinished_ranges(id).len()) {
        Ok(ranges) => ranges,
        Err(caught) => {
            pgrx::log!(
                "migrate: job {id} starts no helpers: {}",
                caught_parts(&caught).1
            );
            0
        }
    };
    let helpers = batch::helper_count(b.workers, ranges);
    let started = xact::run(|| {
        (0..helpers)
            .take_while(|_| launch::start_helper(id))
            .count()
    })
    .unwrap_or(0);
    if started < helpers {
        pgrx::log!(
            "migrate: job {id} runs with {} of {} workers: no background worker slot free (max_worker_processes)",
            started + 1,
            b.workers
        );
    }
}

/// Claims the job's unfinished ranges one after the other (a range another process holds is
/// skipped) and walks each to its end; returns when none is left to claim or the job stopped.
fn walk_ranges(id: i64, b: &BackfillJob) {
    loop {
        let claimed = xact::run(|| {
            if queue::load(id, false).is_none_or(|j| j.state != RUNNING) {
                return None;
            }
            queue::unfinished_ranges(id)
                .into_iter()
                .find(|&range| queue::try_lock(Namespace::Range, range))
        });
        let Ok(Some(range)) = claimed else {
            return;
        };
        let finished = Runner::new(id, Some(range)).run(b.pause_ms);
        let _ = xact::run(|| queue::unlock(Namespace::Range, range));
        if !finished {
            return;
        }
    }
}

/// True while the job is running. If its state cannot be read, the worker stops (as if the job
/// were paused) and says why in the server log: the job stays running without this worker,
/// which the jobs view shows as interrupted and `resume_job()` restarts.
fn still_running(id: i64) -> bool {
    match xact::run(|| queue::load(id, false).map(|j| j.state == RUNNING)) {
        Ok(running) => running.unwrap_or(false),
        Err(caught) => {
            pgrx::log!(
                "migrate: job {id}: could not read its state, so this worker stops: {}",
                caught_parts(&caught).1
            );
            false
        }
    }
}

/// The qualified, quoted name of the job's table now (it may have been renamed since).
fn table_name(relid: pg_sys::Oid) -> Option<String> {
    queue::first_value(
        "read the name of a job's table",
        "SELECT pg_catalog.format('%I.%I', n.nspname, c.relname) FROM pg_catalog.pg_class c \
         JOIN pg_catalog.pg_namespace n ON n.oid OPERATOR(pg_catalog.=) c.relnamespace \
         WHERE c.oid OPERATOR(pg_catalog.=) $1",
        &[relid.into()],
    )
}

/// The job's table as it is named now, after checking (as before every batch) that it still
/// exists and that the job's owner still qualifies; raises otherwise.
fn checked_table(job: &Job, b: &BackfillJob) -> String {
    let table = table_name(b.relid).unwrap_or_else(|| {
        UserError::new(
            ERRCODE_UNDEFINED_TABLE,
            format!("table {} of job {} no longer exists", b.table_name, job.id),
        )
        .raise()
    });
    check_owner(job.owner, b.relid, &table, job.allow_superuser).or_raise();
    table
}

/// Takes the job: checks it is runnable and its owner still qualifies, fixes its scope (upper
/// key) and splits it into key ranges on first start, and marks it running.
fn start_job(id: i64) -> Option<Job> {
    let job = queue::load(id, true)?;
    if job.state != queue::QUEUED && job.state != RUNNING {
        return None;
    }
    let JobSpec::Backfill(b) = &job.spec else {
        return None;
    };
    let table = checked_table(&job, b);
    let (upper, estimate) = if job.started {
        (None, None)
    } else {
        as_owner(&job, || {
            // No row: the table is empty.
            let upper = b.key.as_ref().and_then(|key| {
                queue::first_value::<Vec<String>>(
                    "find the largest key",
                    &backfill::upper_key_sql(&table, key),
                    &[],
                )
            });
            (upper, Some(estimate_rows(b.relid)))
        })
    };
    if let (Some(key), Some(upper)) = (&b.key, &upper) {
        let ranges = batch::range_count(b.workers, estimate.unwrap_or(0));
        let boundaries = if ranges > 1 {
            as_owner(&job, || {
                sample_boundaries(&table, b.relid, key, upper, ranges)
            })
        } else {
            Vec::new()
        };
        queue::create_ranges(id, &boundaries, upper);
    }
    if !job.started && b.key.is_some() && upper.is_none() {
        // An empty table: nothing is in scope.
        queue::mark_running(id, None, Some(0));
        queue::checkpoint(&Checkpoint {
            id,
            last_key: None,
            visited: 0,
            updated: 0,
            next_batch_size: b.current_batch_size,
            finished: true,
        });
        return None;
    }
    queue::mark_running(id, upper.as_deref(), estimate);
    queue::load(id, false)
}

/// Keys that split the job's scope into `ranges` parts of about equal row counts, from a
/// block sample of the table.
fn sample_boundaries(
    table: &str,
    relid: pg_sys::Oid,
    key: &Key,
    upper: &[String],
    ranges: i32,
) -> Vec<Vec<String>> {
    let blocks = Spi::get_one_with_args::<i64>(backfill::BLOCKS_SQL, &[relid.into()])
        .unwrap_or_else(|e| error!("migrate: could not read the size of {table}: {e}"))
        .expect("COALESCE(sum, 0) is never NULL");
    let sql = backfill::boundaries_sql(table, key, batch::sample_percent(blocks), ranges);
    let none: Option<Vec<String>> = None;
    queue::column_values(
        &format!("sample the keys of {table}"),
        &sql,
        &[none.into(), upper.to_vec().into()],
    )
}

/// Rows the planner believes the table has (no scan); for a partitioned table, the sum over
/// its partitions' statistics.
fn estimate_rows(relid: pg_sys::Oid) -> i64 {
    if let Some(t) = crate::guard::facts::table_facts(relid) {
        return t.estimated_rows as i64;
    }
    Spi::get_one_with_args::<f64>(
        "SELECT pg_catalog.sum(GREATEST(c.reltuples, 0))::pg_catalog.float8 \
         FROM pg_catalog.pg_partition_tree($1) p \
         JOIN pg_catalog.pg_class c ON c.oid OPERATOR(pg_catalog.=) p.relid WHERE p.isleaf",
        &[relid.into()],
    )
    .unwrap_or_else(|e| error!("migrate: could not estimate the rows of a table: {e}"))
    // No leaf partition has statistics yet.
    .unwrap_or(0.0) as i64
}

/// Runs `f` as the job's owner with the search_path it was queued with, in a GUC level of its
/// own: a setting the job's SQL changes (`set_config(..., false)`) does not reach the worker's
/// own queries or the next batch.
fn as_owner<R>(job: &Job, f: impl FnOnce() -> R) -> R {
    let path = std::ffi::CString::new(job.search_path.as_str()).unwrap_or_default();
    crate::pg::security::with_own_settings(&[(c"search_path", &path)], || run_as(job.owner, f))
}

enum Outcome {
    Continue,
    /// The range (a keyless job: the job) has no rows left.
    Finished,
    /// Paused, cancelled or removed by someone else.
    Stopped,
}

/// Runs the batches of one key range of a job (a keyless job: of the whole job).
struct Runner {
    id: i64,
    range: Option<i32>,
    retries: u32,
    /// The phases of the batch in flight, logged (DEBUG1) once its commit returned.
    timing: Option<BatchTiming>,
}

/// Where one batch's time went, for `log_min_messages = debug1` (the benchmark reads it).
struct BatchTiming {
    rows: i64,
    end_key_ms: f64,
    update_ms: f64,
    /// From the batch's start to the end of its bookkeeping, before the commit.
    batch_ms: f64,
    /// When the bookkeeping ended: the commit's time is measured from here.
    committing: Instant,
}

impl Runner {
    fn new(id: i64, range: Option<i32>) -> Self {
        Runner {
            id,
            range,
            retries: 0,
            timing: None,
        }
    }

    /// Batches until the range is done (true) or the job stopped or failed (false).
    fn run(&mut self, pause_ms: f64) -> bool {
        loop {
            xact::check_for_interrupts();
            if !self.wait_for_standbys() {
                return false;
            }
            let outcome = xact::run(|| self.batch());
            // A batch that failed (at its commit too) has no phases to report.
            let timing = self.timing.take();
            if outcome.is_ok() {
                log_timing(self.id, timing);
            }
            match outcome {
                Ok(Outcome::Continue) => {
                    self.retries = 0;
                    if pause_ms > 0.0 && !self.pause(Duration::from_secs_f64(pause_ms / 1000.0)) {
                        return false;
                    }
                }
                Ok(Outcome::Finished) => return true,
                Ok(Outcome::Stopped) => return false,
                Err(caught) if retryable(&caught) && self.retries < MAX_RETRIES => {
                    self.retries += 1;
                    let (code, message, _, _) = caught_parts(&caught);
                    let note = format!(
                        "batch retry {}/{MAX_RETRIES} after {}: {message}",
                        self.retries,
                        sqlstate_text(code as i32)
                    );
                    let _ = xact::run(|| {
                        queue::set_note(self.id, Some(&note));
                        queue::shrink_batch(self.id);
                    });
                    // 100 ms, 200 ms, ... up to 10 s, with jitter so several workers spread out.
                    let backoff = retry::backoff_ms(100, self.retries, 10_000, retry::jitter());
                    xact::sleep(Duration::from_millis(backoff));
                }
                Err(caught) => {
                    record_failure(self.id, &caught);
                    return false;
                }
            }
        }
    }

    /// Sleeps the job's pause in slices, stopping early if the job was paused or cancelled.
    fn pause(&self, total: Duration) -> bool {
        let deadline = Instant::now() + total;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return true;
            }
            xact::sleep(left.min(Duration::from_secs(1)));
            if !still_running(self.id) {
                return false;
            }
        }
    }

    /// Throttle: waits while a standby lags more than `migrate.max_replication_lag`. False if
    /// the job stopped meanwhile, or failed: a lag that cannot be read is not taken for none.
    fn wait_for_standbys(&self) -> bool {
        let mut noted = false;
        loop {
            let limit_kb = gucs::max_replication_lag_kb();
            if limit_kb == 0 {
                return true;
            }
            // pg_stat_replication shows positions only to pg_read_all_stats.
            let lag = xact::run(|| {
                crate::pg::security::as_registry_owner(|| {
                    Spi::get_one::<i64>(
                    "SELECT COALESCE(pg_catalog.max(pg_catalog.pg_wal_lsn_diff(pg_catalog.pg_current_wal_lsn(), replay_lsn)), 0)::pg_catalog.int8 \
                     FROM pg_catalog.pg_stat_replication",
                )
                .unwrap_or_else(|e| error!("migrate: could not read the standbys' replay lag: {e}"))
                .expect("COALESCE(max, 0) is never NULL")
                })
            });
            let lag = match lag {
                Ok(lag) => lag,
                Err(caught) => {
                    record_failure(self.id, &caught);
                    return false;
                }
            };
            if batch::standby_lag_within_limit(lag, limit_kb) {
                if noted {
                    let _ = xact::run(|| queue::set_note(self.id, None));
                }
                return true;
            }
            let note = format!(
                "waiting for standbys: replay lag {} kB > migrate.max_replication_lag {} kB",
                lag / 1024,
                limit_kb
            );
            let _ = xact::run(|| queue::set_note(self.id, Some(&note)));
            noted = true;
            xact::sleep(Duration::from_secs(1));
            if !still_running(self.id) {
                return false;
            }
        }
    }

    /// One batch in the current transaction.
    fn batch(&mut self) -> Outcome {
        let begun = Instant::now();
        // After any pause/cancel/resume in progress (see queue::lock_control); the job is read
        // after the lock, so its state is the one they left.
        queue::lock_control(self.id, false);
        let Some(job) = queue::load(self.id, false) else {
            return Outcome::Stopped;
        };
        let JobSpec::Backfill(b) = &job.spec else {
            return Outcome::Stopped;
        };
        if job.state != RUNNING {
            return Outcome::Stopped;
        }
        let range = match self.range.map(queue::load_range) {
            None => None,
            Some(Some(range)) if !range.done => Some(range),
            Some(_) => return Outcome::Finished,
        };
        let table = checked_table(&job, b);
        let size = b.batch_size.unwrap_or(b.current_batch_size);
        let lock_timeout =
            std::ffi::CString::new(gucs::lock_timeout_ms().to_string()).expect("digits");
        set_config(
            c"lock_timeout",
            &lock_timeout,
            pg_sys::GucAction::GUC_ACTION_LOCAL,
        );
        let started = Instant::now();
        // The job's SQL runs in this worker's session: what it could leave there (advisory
        // locks that would pass for this worker's, prepared statements, temporary objects) is
        // removed, and the job fails, so no job's SQL can pose as the extension's worker.
        let session_before = SessionObjects::capture();
        // xact::run disarms it if the batch fails.
        xact::arm_statement_timeout(gucs::backfill_statement_timeout_ms());
        let done = as_owner(&job, || match (&b.key, &range) {
            (Some(key), Some(range)) => keyed_batch(b, &table, key, range, size),
            _ => keyless_batch(b, &table, size),
        });
        xact::disarm_statement_timeout();
        let session_after = SessionObjects::capture();
        // pg_advisory_unlock_all() also drops the worker's own locks (see pg::locks).
        let lock_kept = match &range {
            Some(r) => crate::pg::locks::held(Namespace::Range, r.id, queue::Mode::Exclusive),
            None => crate::pg::locks::held(Namespace::Job, job.id as i32, queue::Mode::Exclusive),
        };
        if !lock_kept {
            UserError::new(
                ERRCODE_INSUFFICIENT_PRIVILEGE,
                format!("backfill of {table}: the job's SQL released its worker's locks"),
            )
            .hint("Do not call pg_advisory_unlock_all() in set_sql or where_sql; the batch was rolled back.")
            .raise();
        }
        if let Some(left) = session_after.describe_left_since(&session_before) {
            session_after.remove_added(&session_before);
            UserError::new(
                ERRCODE_INSUFFICIENT_PRIVILEGE,
                format!("backfill of {table}: the job's SQL left {left} in its worker's session"),
            )
            .detail("A job's set_sql and where_sql run in the extension's worker; locks, prepared statements and temporary objects they take would outlive the batch there.")
            .hint("Use set_sql and where_sql that only compute values; the batch was rolled back.")
            .raise();
        }
        // The bookkeeping below waits for other workers' checkpoints of the job row, which
        // their commits release; a slow commit must not roll back this finished batch.
        set_config(c"lock_timeout", c"0", pg_sys::GucAction::GUC_ACTION_LOCAL);
        let elapsed_ms = started.elapsed().as_secs_f64() * 1000.0;
        let next_batch_size = match b.batch_size {
            Some(pinned) => pinned,
            None => {
                batch::next_batch_size(size, elapsed_ms, f64::from(gucs::backfill_batch_time_ms()))
            }
        };
        if let (Some(range), Some(last_key)) = (&range, &done.last_key) {
            queue::range_checkpoint(range.id, last_key, done.visited, done.finished);
        }
        queue::checkpoint(&Checkpoint {
            id: job.id,
            last_key: done.last_key.as_deref(),
            visited: done.visited,
            updated: done.updated,
            next_batch_size,
            finished: done.finished && range.is_none(),
        });
        if done.finished && range.is_some() {
            queue::finish_if_ranges_done(job.id);
        }
        self.timing = Some(BatchTiming {
            rows: done.visited,
            end_key_ms: done.end_key_ms,
            update_ms: done.update_ms,
            batch_ms: begun.elapsed().as_secs_f64() * 1000.0,
            committing: Instant::now(),
        });
        if done.finished {
            Outcome::Finished
        } else {
            Outcome::Continue
        }
    }
}

/// Logs a committed batch's phases at DEBUG1 (the commit: from the end of its bookkeeping to now).
fn log_timing(id: i64, timing: Option<BatchTiming>) {
    if let Some(t) = timing {
        pgrx::debug1!(
            "migrate: job {id} batch: {} rows, {:.3} ms (end key {:.3} ms, update {:.3} ms), commit {:.3} ms",
            t.rows,
            t.batch_ms,
            t.end_key_ms,
            t.update_ms,
            t.committing.elapsed().as_secs_f64() * 1000.0
        );
    }
}

/// What one batch did.
struct BatchDone {
    last_key: Option<Vec<String>>,
    visited: i64,
    updated: i64,
    finished: bool,
    end_key_ms: f64,
    update_ms: f64,
}

fn keyed_batch(b: &BackfillJob, table: &str, key: &Key, range: &Range, size: i32) -> BatchDone {
    let lower = range.resume_after().cloned();
    let has_lower = lower.is_some();
    let args = || [lower.clone().into(), Some(range.upper_key.clone()).into()];
    let searching = Instant::now();
    // No row: fewer than `size` keys are left.
    let end = Spi::connect(|client| {
        client
            .select(
                &backfill::batch_end_sql(table, key, has_lower, size),
                None,
                &args(),
            )
            .unwrap_or_else(|e| error!("{e}"))
            .next()
            .and_then(|row| {
                row.get::<Vec<String>>(1)
                    .unwrap_or_else(|e| error!("migrate: could not read a batch's end key: {e}"))
            })
    });
    let (last_key, visited, finished) = match end {
        Some(end) => (end, i64::from(size), false),
        None => {
            let left = Spi::get_one_with_args::<i64>(
                &backfill::remaining_sql(table, key, has_lower),
                &args(),
            )
            .unwrap_or_else(|e| error!("{e}"))
            .unwrap_or(0);
            (range.upper_key.clone(), left, true)
        }
    };
    let end_key_ms = searching.elapsed().as_secs_f64() * 1000.0;
    let update = backfill::update_sql(table, key, &b.set_sql, b.where_sql.as_deref(), has_lower);
    crate::pg::script::ensure_single_statement(&update);
    let updating = Instant::now();
    let updated = Spi::connect_mut(|client| {
        client
            .update(
                &update,
                None,
                &[lower.clone().into(), Some(last_key.clone()).into()],
            )
            .map(|t| t.len() as i64)
            .unwrap_or_else(|e| error!("{e}"))
    });
    BatchDone {
        last_key: Some(last_key),
        visited,
        updated,
        finished,
        end_key_ms,
        update_ms: updating.elapsed().as_secs_f64() * 1000.0,
    }
}

fn keyless_batch(b: &BackfillJob, table: &str, size: i32) -> BatchDone {
    let where_sql = b.where_sql.as_deref().unwrap_or("false");
    let update = backfill::keyless_update_sql(table, &b.set_sql, where_sql, size);
    crate::pg::script::ensure_single_statement(&update);
    let updating = Instant::now();
    let (updated, still) = Spi::get_two::<i64, i64>(&update).unwrap_or_else(|e| error!("{e}"));
    let update_ms = updating.elapsed().as_secs_f64() * 1000.0;
    let (updated, still) = (updated.unwrap_or(0), still.unwrap_or(0));
    if still > 0 {
        UserError::new(
            ERRCODE_INVALID_PARAMETER_VALUE,
            format!("backfill of {table}: {still} row(s) still match where_sql after the SET"),
        )
        .detail("A table without a primary key or unique NOT NULL key is walked by where_sql alone, so the SET must make where_sql false for every row it updates; otherwise rows would be updated again, forever. The batch was rolled back.")
        .hint("Make where_sql exclude updated rows (e.g. 'new_col IS NULL' with SET new_col = ...), or add a primary key.")
        .raise();
    }
    BatchDone {
        last_key: None,
        visited: updated,
        updated,
        finished: updated == 0,
        end_key_ms: 0.0,
        update_ms,
    }
}

/// Errors worth retrying: a lock wait or batch that ran too long, a deadlock, a serialization
/// failure. Anything else (bad SQL, a constraint, permissions) fails the job.
fn retryable(caught: &CaughtError) -> bool {
    let (code, _, _, _) = caught_parts(caught);
    matches!(
        code,
        ERRCODE_LOCK_NOT_AVAILABLE
            | ERRCODE_QUERY_CANCELED
            | ERRCODE_T_R_DEADLOCK_DETECTED
            | ERRCODE_T_R_SERIALIZATION_FAILURE
    )
}

/// Marks the job failed with the error that stopped it, and says so in the server log.
pub fn record_failure(id: i64, caught: &CaughtError) {
    let (code, message, detail, _) = caught_parts(caught);
    let message = match detail {
        Some(d) => format!("{message} ({d})"),
        None => message,
    };
    pgrx::log!("migrate: job {id} failed: {message}");
    let _ = xact::run(|| queue::fail(id, &sqlstate_text(code as i32), &message));
}
