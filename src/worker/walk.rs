//! The backfill walk: how a job's workers update its rows. A keyed backfill is split into key
//! ranges when it first starts; every worker of the job (its leader, which holds the job lock,
//! and its helpers) claims ranges (a lock each) until none is left, and walks each in batches,
//! with the job's pause between batches and the health throttles' waits (throttle.rs: standby
//! lag, WAL rate, wraparound vacuum, active sessions, lock waiters). A keyless backfill is
//! walked by its leader alone.
//!
//! Each batch is a transaction of its own that takes the job's control lock (shared, see
//! `queue::lock_control`), row-locks its range, re-checks the owner's privileges, updates the next keys of the range as the owner, and writes
//! the range's and the job's checkpoint, so a crash at any point loses at most the batches in
//! flight, which roll back as a whole. A batch that times out, deadlocks or hits a
//! serialization failure is retried smaller after a backoff.

use std::cell::Cell;
use std::time::{Duration, Instant};

use migrate_core::{batch, retry};
use pgrx::pg_sys;
use pgrx::pg_sys::panic::CaughtError;
use pgrx::prelude::*;
use pgrx::PgSqlErrorCode::*;

use super::backfill::{self, check_owner, Key};
use super::launch;
use super::queue::{self, BackfillJob, Checkpoint, Job, JobSpec, Namespace, Range, RUNNING};
use super::throttle::{self, Health};
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
    // A job with a start_after or window waits (queued, its note says until when) before it
    // takes its scope and ranges.
    if !wait_for_schedule(id) {
        return;
    }
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
        Runner::new(id, None, None, b.relid).run();
        return;
    }
    // The leader starts the job's other workers, and more whenever alter_job() raises
    // `workers` (see Leader::staff).
    let leader = Leader::default();
    walk_ranges(id, Some(&leader));
    // Helpers may still walk their last ranges. Stay the job's worker (the jobs view and
    // resume_job() go by this one) until the job ends, taking over any range a helper dropped.
    while still_running(id) {
        xact::sleep(Duration::from_millis(200));
        leader.staff_if_changed(id, None);
        walk_ranges(id, Some(&leader));
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
    walk_ranges(id, None);
}

fn report_appname(name: &str) {
    crate::pg::backend::report_appname(name);
}

/// What the job's leader knows about its helpers: the `workers` it last staffed the job for.
#[derive(Default)]
struct Leader {
    staffed_for: Cell<Option<i32>>,
}

impl Leader {
    /// Staffs the job for its `workers` if that changed since the leader last did (at first,
    /// and after alter_job()): see [`Leader::staff`]. `walking`: the range the leader walks.
    fn staff_if_changed(&self, id: i64, walking: Option<i32>) {
        let workers = match xact::run(|| queue::load(id, false)) {
            Ok(Some(Job {
                spec: JobSpec::Backfill(b),
                state: RUNNING,
                ..
            })) => b.workers,
            _ => return,
        };
        self.staff(id, workers, walking);
    }

    /// Starts helpers until `workers` processes walk the job, splitting an unfinished range
    /// (sampled, as the job's owner) when fewer ranges are free than helpers are missing.
    /// Surplus workers stop by themselves between batches (see [`surplus`]). A helper that
    /// finds no slot free exits; the job's other workers take its ranges.
    fn staff(&self, id: i64, workers: i32, walking: Option<i32>) {
        if self.staffed_for.get() == Some(workers) {
            return;
        }
        // Split first and commit: a helper must find the new ranges when it looks.
        let to_start = xact::run(|| {
            let walkers = queue::range_walkers(id);
            // The leader counts as one even between ranges: it claims the next one itself.
            let busy = walkers.len() + usize::from(walking.is_none());
            let missing = batch::missing_helpers(workers, busy);
            if missing == 0 {
                return 0;
            }
            let free = queue::unfinished_ranges(id)
                .into_iter()
                .filter(|r| !walkers.contains(r))
                .count();
            if let Some(parts) = batch::split_parts(missing, free) {
                // The leader's own range, else the first another worker walks.
                if let Some(range) = walking.or_else(|| walkers.first().copied()) {
                    split(id, range, parts);
                }
            }
            let free = queue::unfinished_ranges(id)
                .into_iter()
                .filter(|r| !walkers.contains(r))
                .count();
            missing.min(free)
        });
        let started = to_start
            .and_then(|n| xact::run(|| (0..n).take_while(|_| launch::start_helper(id)).count()));
        // Tried again at the next batch if it failed (a range's batch that held its lock).
        match started {
            Ok(n) => {
                self.staffed_for.set(Some(workers));
                if n > 0 {
                    pgrx::log!("migrate: job {id} started {n} helper(s) for {workers} workers");
                }
            }
            Err(caught) => pgrx::log!(
                "migrate: job {id} starts no helpers: {}",
                caught_parts(&caught).1
            ),
        }
    }
}

/// Splits unfinished range `range` of job `id` into about `parts` ranges of equal row counts
/// (from a block sample, as the job's owner). Waits (bounded) for the range's batch in
/// flight; a range too small for the sample to split stays whole.
fn split(id: i64, range: i32, parts: usize) {
    let Some(job) = queue::load(id, false) else {
        return;
    };
    let JobSpec::Backfill(b) = &job.spec else {
        return;
    };
    let Some(key) = &b.key else {
        return;
    };
    // The row lock orders this split after the range's batch in flight and before its next.
    let loaded = crate::pg::security::with_own_settings(&[(c"lock_timeout", c"10s")], || {
        queue::load_range(range)
    });
    let Some(r) = loaded.filter(|r| !r.done) else {
        return;
    };
    let table = checked_table(&job, b);
    let lower = r.resume_after().cloned();
    let boundaries: Vec<Vec<String>> = as_owner(&job, || {
        let blocks = Spi::get_one_with_args::<i64>(backfill::BLOCKS_SQL, &[b.relid.into()])
            .unwrap_or_else(|e| error!("migrate: could not read the size of {table}: {e}"))
            .expect("COALESCE(sum, 0) is never NULL");
        let sql = backfill::boundaries_sql(
            &table,
            key,
            batch::sample_percent(blocks),
            parts as i32,
            lower.is_some(),
        );
        queue::column_values(
            &format!("sample the keys of {table}"),
            &sql,
            &[lower.clone().into(), Some(r.upper_key.clone()).into()],
        )
    });
    queue::split_range(id, range, &boundaries, &r.upper_key);
}

/// True if this worker, walking `range`, is one more than the job's `workers`: the walkers
/// beyond `workers` in [`queue::range_walkers`]' order (the leader first) stop.
fn surplus(id: i64, range: i32, workers: i32) -> bool {
    let walkers = match xact::run(|| queue::range_walkers(id)) {
        Ok(walkers) => walkers,
        Err(_) => return false,
    };
    walkers
        .iter()
        .position(|&r| r == range)
        .is_some_and(|position| position >= workers.max(1) as usize)
}

/// Claims the job's unfinished ranges one after the other (a range another process holds is
/// skipped) and walks each to its end; returns when none is left to claim, the job stopped,
/// or `workers` other processes walk it already (alter_job() lowered it).
fn walk_ranges(id: i64, leader: Option<&Leader>) {
    loop {
        let claimed = xact::run(|| {
            let Some(Job {
                spec: JobSpec::Backfill(b),
                state: RUNNING,
                ..
            }) = queue::load(id, false)
            else {
                return None;
            };
            let walkers = queue::range_walkers(id);
            if walkers.len() >= b.workers.max(1) as usize {
                return None;
            }
            queue::unfinished_ranges(id)
                .into_iter()
                .find(|&range| queue::try_lock(Namespace::Range, range))
                .map(|range| (range, b.relid))
        });
        let Ok(Some((range, relid))) = claimed else {
            return;
        };
        let finished = Runner::new(id, Some(range), leader, relid).run();
        let _ = xact::run(|| queue::unlock(Namespace::Range, range));
        if !finished {
            return;
        }
    }
}

/// Waits while the job's start_after or window says no batch may run now, with the reason in
/// its note; checks again every second (alter_job() may change the schedule). False if the
/// job stopped meanwhile (paused, cancelled) or its schedule cannot be read (the job fails).
fn wait_for_schedule(id: i64) -> bool {
    // The note is written when it changes, and once a minute (another worker's last batch may
    // have cleared it), not every second: a job may wait for hours.
    let mut noted: Option<String> = None;
    let mut written = Instant::now();
    loop {
        let waiting = xact::run(|| {
            let job = queue::load(id, false)?;
            if job.state != RUNNING && job.state != queue::QUEUED {
                return None;
            }
            // Unscheduled (always so on a database still at 0.1.0, which has no schedule).
            match &job.spec {
                JobSpec::Backfill(b) if b.scheduled => Some(queue::schedule_wait(id)),
                _ => Some(None),
            }
        });
        match waiting {
            Ok(None) => return false,
            Ok(Some(None)) => {
                if noted.is_some() {
                    let _ = xact::run(|| queue::set_note(id, None));
                }
                return true;
            }
            Ok(Some(Some(note))) => {
                if noted.as_ref() != Some(&note) || written.elapsed() > Duration::from_secs(60) {
                    let _ = xact::run(|| queue::set_note(id, Some(&note)));
                    noted = Some(note);
                    written = Instant::now();
                }
                xact::sleep(Duration::from_secs(1));
            }
            Err(caught) => {
                record_failure(id, &caught);
                return false;
            }
        }
    }
}

/// True while the job is running. If its state cannot be read, the worker stops (as if the job
/// were paused) and says why in the server log: the job stays running without this worker,
/// which the jobs view shows as interrupted and `resume_job()` restarts.
pub(super) fn still_running(id: i64) -> bool {
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
            batch: None,
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
    let sql = backfill::boundaries_sql(table, key, batch::sample_percent(blocks), ranges, false);
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

/// Runs the batches of one key range of a job (a keyless job: of the whole job). The job's
/// settings (batch size and time, pause, workers) are read again by every batch, so what
/// alter_job() changes applies from the next batch on.
struct Runner<'a> {
    id: i64,
    range: Option<i32>,
    /// Set when this worker leads the job: it starts helpers when `workers` goes up.
    leader: Option<&'a Leader>,
    retries: u32,
    /// The job's pause between batches and workers, as the last batch read them.
    pause_ms: f64,
    workers: Option<i32>,
    /// The job has a start_after or window (as the last batch read it; at first: check).
    scheduled: bool,
    health: Health,
    /// Sessions that waited on the last batch's locks, and how long that batch held them.
    waiters: (i64, f64),
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

impl<'a> Runner<'a> {
    fn new(id: i64, range: Option<i32>, leader: Option<&'a Leader>, relid: pg_sys::Oid) -> Self {
        Runner {
            id,
            range,
            leader,
            retries: 0,
            pause_ms: 0.0,
            workers: None,
            scheduled: true,
            health: Health::new(id, relid),
            waiters: (0, 0.0),
            timing: None,
        }
    }

    /// Batches until the range is done (true) or the job stopped or failed, or this worker is
    /// one more than the job's workers (false).
    fn run(&mut self) -> bool {
        loop {
            xact::check_for_interrupts();
            if let Some(leader) = self.leader {
                match self.workers {
                    Some(workers) => leader.staff(self.id, workers, self.range),
                    None => leader.staff_if_changed(self.id, self.range),
                }
            }
            if !self.health.wait_until_healthy() {
                return false;
            }
            if self.scheduled && !wait_for_schedule(self.id) {
                return false;
            }
            self.waiters = (0, 0.0);
            let outcome = xact::run(|| self.batch());
            // A batch that failed (at its commit too) has no phases to report.
            let timing = self.timing.take();
            if outcome.is_ok() {
                log_timing(self.id, timing);
            }
            match outcome {
                Ok(Outcome::Continue) => {
                    self.retries = 0;
                    let (waiters, batch_ms) = self.waiters;
                    if !self.health.yield_to_waiters(waiters, batch_ms) {
                        return false;
                    }
                    // A helper beyond the job's workers stops here, between batches: its
                    // range's checkpoint is committed, and another worker resumes from it.
                    if let (None, Some(range), Some(workers)) =
                        (self.leader, self.range, self.workers)
                    {
                        if surplus(self.id, range, workers) {
                            return false;
                        }
                    }
                    let pause_ms = self.pause_ms;
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
        self.pause_ms = b.pause_ms;
        self.workers = Some(b.workers);
        self.scheduled = b.scheduled;
        let table = checked_table(&job, b);
        let size = b.batch_size.unwrap_or(b.current_batch_size);
        // A safe-mode fill's own (its deploy's), else the setting.
        let lock_timeout = std::ffi::CString::new(
            b.lock_timeout_ms
                .unwrap_or_else(gucs::lock_timeout_ms)
                .to_string(),
        )
        .expect("digits");
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
        // While the batch's row locks are still held: did it make anyone wait?
        self.waiters = (throttle::lock_waiters(), elapsed_ms);
        let next_batch_size = match b.batch_size {
            Some(pinned) => pinned,
            None => {
                let target_ms = b
                    .batch_time_ms
                    .unwrap_or_else(|| f64::from(gucs::backfill_batch_time_ms()));
                batch::next_batch_size(size, elapsed_ms, target_ms)
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
            batch: Some((size, elapsed_ms)),
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
