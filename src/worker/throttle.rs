//! The health throttles a backfill worker checks between batches: it waits, with the reason in
//! the job's `note`, while a standby lags (`migrate.max_replication_lag`), while the server
//! writes WAL faster than `migrate.max_wal_rate`, while autovacuum vacuums the job's table to
//! prevent wraparound, and while more client sessions than `migrate.max_active_backends` are
//! active. After a batch that made other sessions wait on its locks it stands back for as
//! long as the batch held them. The limits are decided in `migrate_core::batch`.
//!
//! The server's activity is read as the registry owner: pg_stat_activity, pg_stat_replication
//! and pg_stat_progress_vacuum show other roles' sessions only to pg_read_all_stats.

use std::collections::VecDeque;
use std::time::{Duration, Instant};

use migrate_core::batch;
use pgrx::pg_sys;
use pgrx::prelude::*;

use super::queue;
use super::walk::{record_failure, still_running};
use crate::gucs;
use crate::pg::security::as_registry_owner;
use crate::pg::xact;

/// How long a throttled worker sleeps before it looks again.
const RECHECK: Duration = Duration::from_millis(500);

/// One worker's throttle state: the WAL positions it saw over the last few seconds, and the
/// note it wrote (None: the note is not its own).
pub struct Health {
    job: i64,
    relid: pg_sys::Oid,
    wal_samples: VecDeque<(i64, Instant)>,
    wal_rate: f64,
    /// The WAL the server wrote during this worker's last batch: what the next one is expected
    /// to add, so a batch starts only if the rate stays within the limit with it.
    batch_wal: i64,
    noted: Option<String>,
}

impl Health {
    pub fn new(job: i64, relid: pg_sys::Oid) -> Self {
        Health {
            job,
            relid,
            wal_samples: VecDeque::new(),
            wal_rate: 0.0,
            batch_wal: 0,
            noted: None,
        }
    }

    /// Waits until every throttle lets the next batch run. False if the job stopped meanwhile
    /// or failed: a condition that cannot be read is not taken for a healthy one.
    pub fn wait_until_healthy(&mut self) -> bool {
        // The first look follows a batch (or the start); the others follow a wait.
        let mut after_batch = true;
        loop {
            let reason = match xact::run(|| as_registry_owner(|| self.reason_to_wait(after_batch)))
            {
                Ok(reason) => reason,
                Err(caught) => {
                    record_failure(self.job, &caught);
                    return false;
                }
            };
            let Some(note) = reason else {
                if self.noted.take().is_some() {
                    let _ = xact::run(|| queue::set_note(self.job, None));
                }
                return true;
            };
            self.note(&note);
            after_batch = false;
            xact::sleep(RECHECK);
            if !still_running(self.job) {
                return false;
            }
        }
    }

    /// After a batch that `waiters` sessions waited on for its locks (it held them for
    /// `batch_ms`): stands back so they run. False if the job stopped meanwhile.
    pub fn yield_to_waiters(&mut self, waiters: i64, batch_ms: f64) -> bool {
        if waiters == 0 {
            return true;
        }
        let pause = batch::yield_after_waiters_ms(batch_ms);
        self.note(&format!(
            "yielded {pause} ms to {waiters} session(s) that waited on the last batch's locks"
        ));
        let _ = xact::run(|| queue::shrink_batch(self.job));
        xact::sleep(Duration::from_millis(pause));
        still_running(self.job)
    }

    /// Writes the note unless it is already the job's (a write per recheck would be WAL too).
    fn note(&mut self, note: &str) {
        if self.noted.as_deref() != Some(note) {
            let _ = xact::run(|| queue::set_note(self.job, Some(note)));
            self.noted = Some(note.to_owned());
        }
    }

    /// The first throttle that holds the next batch back, as the job's note; None if none does.
    fn reason_to_wait(&mut self, after_batch: bool) -> Option<String> {
        let lag_limit_kb = gucs::max_replication_lag_kb();
        if lag_limit_kb > 0 {
            let lag = count(
                "the standbys' replay lag",
                "SELECT COALESCE(pg_catalog.max(pg_catalog.pg_wal_lsn_diff(pg_catalog.pg_current_wal_lsn(), replay_lsn)), 0)::pg_catalog.int8 \
                 FROM pg_catalog.pg_stat_replication",
                &[],
            );
            if !batch::standby_lag_within_limit(lag, lag_limit_kb) {
                return Some(format!(
                    "waiting for standbys: replay lag {} kB > migrate.max_replication_lag {lag_limit_kb} kB",
                    lag / 1024
                ));
            }
        }
        let wal_limit_kb = gucs::max_wal_rate_kb();
        if wal_limit_kb > 0 {
            self.measure_wal_rate(after_batch);
            if !batch::wal_rate_within_limit(self.wal_rate, wal_limit_kb) {
                return Some(format!(
                    "waiting for the WAL rate: {:.1} MB/s > migrate.max_wal_rate {:.1} MB/s",
                    self.wal_rate / 1_048_576.0,
                    f64::from(wal_limit_kb) / 1024.0
                ));
            }
        } else {
            self.wal_samples.clear();
            self.wal_rate = 0.0;
            self.batch_wal = 0;
        }
        const WRAPAROUND_SQL: &str = include_str!("../queries/wraparound_vacuum.sql");
        if count(
            "the autovacuum workers on the job's table",
            WRAPAROUND_SQL,
            &[self.relid.into()],
        ) > 0
        {
            return Some(
                "waiting for autovacuum: it is vacuuming the table to prevent wraparound".into(),
            );
        }
        let active_limit = gucs::max_active_backends();
        if active_limit > 0 {
            const ACTIVE_SQL: &str = include_str!("../queries/active_backends.sql");
            let active = count("the active sessions", ACTIVE_SQL, &[]);
            if !batch::active_backends_within_limit(active, active_limit) {
                return Some(format!(
                    "waiting for the server: {active} active sessions > migrate.max_active_backends {active_limit}"
                ));
            }
        }
        None
    }

    /// The WAL rate over the last few seconds (a sliding window of the positions this worker
    /// saw; from its first check on, as a token bucket of a second's worth at the limit),
    /// counting the next batch as writing what the last one did: a batch that would take the
    /// rate past the limit waits, so the job overshoots by no more than the estimate misses.
    fn measure_wal_rate(&mut self, after_batch: bool) {
        let lsn = count(
            "the WAL position",
            "SELECT pg_catalog.pg_wal_lsn_diff(pg_catalog.pg_current_wal_lsn(), '0/0')::pg_catalog.int8",
            &[],
        );
        let now = Instant::now();
        let span = Duration::from_secs_f64(batch::WAL_RATE_SPAN_MS / 1000.0);
        while self
            .wal_samples
            .front()
            .is_some_and(|&(_, at)| now.duration_since(at) > span)
        {
            self.wal_samples.pop_front();
        }
        if after_batch {
            if let Some(&(previous, _)) = self.wal_samples.back() {
                self.batch_wal = lsn - previous;
            }
        }
        self.wal_samples.push_back((lsn, now));
        let (first_lsn, first_at) = self.wal_samples[0];
        self.wal_rate = batch::wal_rate(
            lsn - first_lsn + self.batch_wal,
            now.duration_since(first_at).as_secs_f64() * 1000.0,
        );
    }
}

/// Sessions waiting for a lock the current backend holds (called inside a batch, before it
/// commits, when its row locks are still held).
pub fn lock_waiters() -> i64 {
    const SQL: &str = include_str!("../queries/lock_waiters.sql");
    as_registry_owner(|| count("the sessions waiting on a batch's locks", SQL, &[]))
}

fn count(what: &str, sql: &str, args: &[pgrx::datum::DatumWithOid]) -> i64 {
    Spi::get_one_with_args::<i64>(sql, args)
        .unwrap_or_else(|e| error!("migrate: could not read {what}: {e}"))
        .unwrap_or(0)
}
