//! A backfill's arithmetic: how big each batch is, how a job is split among its workers, and
//! when the health throttles (replication lag, WAL rate, active sessions, lock waiters) hold
//! the next batch back. The worker measures and asks; the numbers are decided here.

/// The first adaptive batch: small enough for any row width, then it grows.
pub const FIRST_BATCH_SIZE: i32 = 1000;

/// The largest adaptive batch, however fast batches run.
const MAX_BATCH_SIZE: i32 = 100_000;

/// Next adaptive batch size: scaled toward the target duration, at most doubling or halving per
/// batch so one odd batch (a checkpoint, a lock wait) does not swing it.
pub fn next_batch_size(current: i32, elapsed_ms: f64, target_ms: f64) -> i32 {
    let current = f64::from(current.max(1));
    let scaled = if elapsed_ms <= 0.0 {
        current * 2.0
    } else {
        current * target_ms / elapsed_ms
    };
    scaled
        .clamp(current / 2.0, current * 2.0)
        .clamp(1.0, f64::from(MAX_BATCH_SIZE)) as i32
}

/// The sample a job's range boundaries are taken from: about 1000 of the table's blocks (its
/// size on disk, so no statistics are needed), at least 0.01 %, at most the table.
pub fn sample_percent(blocks: i64) -> f64 {
    (100.0 * 1000.0 / blocks.max(1) as f64).clamp(0.01, 100.0)
}

/// Key ranges for a job with `workers` workers: a few per worker on a big table, so one that
/// finishes early takes over ranges instead of idling; one per worker on a small one.
pub fn range_count(workers: i32, estimated_rows: i64) -> i32 {
    if workers <= 1 {
        1
    } else if estimated_rows >= 100_000 {
        workers * 4
    } else {
        workers
    }
}

/// Helpers the leading worker starts: one fewer than the workers the job asked for (the leader
/// is one), and no more than there are unfinished ranges for them to take.
pub fn helper_count(workers: i32, unfinished_ranges: usize) -> usize {
    (workers.max(1) as usize)
        .min(unfinished_ranges)
        .saturating_sub(1)
}

/// True when the next batch may run: the standbys' replay lag (bytes) is within
/// `migrate.max_replication_lag` (kB), or the throttle is off (0).
pub fn standby_lag_within_limit(lag_bytes: i64, limit_kb: i32) -> bool {
    limit_kb == 0 || lag_bytes <= i64::from(limit_kb) * 1024
}

/// The WAL a worker lets through before its first measurement, in seconds at the limit: a
/// token bucket's size, so a job that starts does not write a burst above the limit.
pub const WAL_BURST_MS: f64 = 1000.0;

/// The stretch the WAL rate is averaged over (a sliding window), so a worker that waited catches
/// up only to the limit, not with a burst.
pub const WAL_RATE_SPAN_MS: f64 = 5000.0;

/// The server's WAL rate in bytes per second: `bytes` written over the last `span_ms` (at least
/// [`WAL_BURST_MS`], so a short span does not make one commit look like a flood).
pub fn wal_rate(bytes: i64, span_ms: f64) -> f64 {
    bytes.max(0) as f64 * 1000.0 / span_ms.max(WAL_BURST_MS)
}

/// True when the next batch may run: the WAL rate (bytes/s) is within `migrate.max_wal_rate`
/// (kB/s), or the throttle is off (0).
pub fn wal_rate_within_limit(rate: f64, limit_kb: i32) -> bool {
    limit_kb == 0 || rate <= f64::from(limit_kb) * 1024.0
}

/// True when the next batch may run: at most `limit` client sessions are active, or the
/// throttle is off (0).
pub fn active_backends_within_limit(active: i64, limit: i32) -> bool {
    limit == 0 || active <= i64::from(limit)
}

/// How long a worker stands back after a batch that made other sessions wait on its locks:
/// as long as the batch held them, so waiters get at least half the time, within 100 ms..10 s.
pub fn yield_after_waiters_ms(batch_ms: f64) -> u64 {
    batch_ms.clamp(100.0, 10_000.0) as u64
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn batch_size_moves_toward_target_within_bounds() {
        assert_eq!(next_batch_size(1000, 50.0, 150.0), 2000);
        assert_eq!(next_batch_size(1000, 150.0, 150.0), 1000);
        assert_eq!(next_batch_size(1000, 200.0, 150.0), 750);
        assert_eq!(next_batch_size(1000, 10_000.0, 150.0), 500);
        assert_eq!(next_batch_size(1, 10_000.0, 150.0), 1);
        assert_eq!(next_batch_size(80_000, 1.0, 150.0), 100_000);
        assert_eq!(next_batch_size(1000, 0.0, 150.0), 2000);
    }

    #[test]
    fn parallel_jobs_split_into_sampled_ranges() {
        assert_eq!(sample_percent(200_000), 0.5);
        assert_eq!(sample_percent(1000), 100.0);
        assert_eq!(sample_percent(0), 100.0);
        assert_eq!(sample_percent(i64::MAX), 0.01);
        assert_eq!(range_count(1, 10_000_000), 1);
        assert_eq!(range_count(2, 10_000_000), 8);
        assert_eq!(range_count(3, 5000), 3);
    }

    #[test]
    fn helpers_fill_the_job_but_never_outnumber_its_ranges() {
        assert_eq!(helper_count(4, 16), 3);
        assert_eq!(helper_count(4, 2), 1);
        assert_eq!(helper_count(4, 1), 0);
        assert_eq!(helper_count(4, 0), 0);
        assert_eq!(helper_count(1, 8), 0);
        assert_eq!(helper_count(0, 8), 0);
    }

    #[test]
    fn wal_rate_spans_at_least_the_burst_and_compares_with_kilobytes_per_second() {
        assert_eq!(wal_rate(1_000_000, 10.0), 1_000_000.0);
        assert_eq!(wal_rate(2_048_000, 2000.0), 1_024_000.0);
        assert_eq!(wal_rate(-5, 1000.0), 0.0);
        assert!(wal_rate_within_limit(f64::MAX, 0));
        assert!(wal_rate_within_limit(1024.0, 1));
        assert!(!wal_rate_within_limit(1025.0, 1));
    }

    #[test]
    fn active_backends_and_yield() {
        assert!(active_backends_within_limit(1000, 0));
        assert!(active_backends_within_limit(3, 3));
        assert!(!active_backends_within_limit(4, 3));
        assert_eq!(yield_after_waiters_ms(5.0), 100);
        assert_eq!(yield_after_waiters_ms(450.0), 450);
        assert_eq!(yield_after_waiters_ms(1e9), 10_000);
    }

    #[test]
    fn throttle_compares_bytes_with_kilobytes() {
        assert!(standby_lag_within_limit(i64::MAX, 0));
        assert!(standby_lag_within_limit(0, 1));
        assert!(standby_lag_within_limit(1024, 1));
        assert!(!standby_lag_within_limit(1025, 1));
        assert!(standby_lag_within_limit(
            i64::from(i32::MAX) * 1024,
            i32::MAX
        ));
    }
}
