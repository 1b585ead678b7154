//! Waiting before trying again: one backoff rule for every retry in the extension (a deploy's
//! lock retries, a migration job's, a backfill batch's), and the randomness behind jitter and
//! lock keys. Pure, so it is tested without a server.

use std::hash::{BuildHasher, Hasher};

/// The longest wait between two lock retries of a migration (deploy() and migration jobs).
pub const LOCK_RETRY_CAP_MS: u64 = 60_000;

/// The wait before retry number `attempt` (1-based): `base_ms` doubled per earlier retry,
/// capped at `cap_ms`, then scaled by `jitter` in [0, 1] to between half and all of it (so
/// competing retries do not align; `jitter = 1.0` gives the full wait).
pub fn backoff_ms(base_ms: u64, attempt: u32, cap_ms: u64, jitter: f64) -> u64 {
    let full = base_ms
        .max(1)
        .saturating_mul(1u64 << attempt.saturating_sub(1).min(30))
        .min(cap_ms) as f64;
    (full * (0.5 + 0.5 * jitter.clamp(0.0, 1.0))) as u64
}

/// 64 random bits (std's per-process random hash keys, mixed with the pid and the time).
pub fn random_u64() -> u64 {
    let mut hasher = std::collections::hash_map::RandomState::new().build_hasher();
    hasher.write_u32(std::process::id());
    hasher.write_u128(
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos()),
    );
    hasher.finish()
}

/// A random number in [0, 1) for backoff jitter.
pub fn jitter() -> f64 {
    (random_u64() >> 11) as f64 / (1u64 << 53) as f64
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_with_jitter_and_a_cap() {
        assert_eq!(backoff_ms(500, 1, 60_000, 1.0), 500);
        assert_eq!(backoff_ms(500, 1, 60_000, 0.0), 250);
        assert_eq!(backoff_ms(500, 3, 60_000, 1.0), 2000);
        assert_eq!(backoff_ms(500, 40, 60_000, 1.0), 60_000);
        assert_eq!(backoff_ms(100, 8, 10_000, 1.0), 10_000);
        assert_eq!(backoff_ms(0, 1, 10, 1.0), 1);
    }

    #[test]
    fn jitter_stays_in_range() {
        for _ in 0..1000 {
            let j = jitter();
            assert!((0.0..1.0).contains(&j));
        }
    }
}
