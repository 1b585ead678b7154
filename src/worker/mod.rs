//! Background jobs: batched backfills and deploy's non-transactional steps, run by background
//! workers inside the server.
//!
//! - [`api`]: `backfill()`, `pause_job()`, `resume_job()`, `cancel_job()`, `wait_job()`.
//! - [`backfill`]: the checks a backfill passes before it is queued (and before every batch),
//!   and the SQL of a batch.
//! - [`blockers`]: the transactions a concurrent index build waits for, as a role may see them.
//! - [`queue`]: the `migrate.job_queue` table (jobs, checkpoints, states, worker slots).
//! - [`launch`]: starting workers at commit, the per-database worker limit, the launcher.
//! - [`process`]: the worker process: entry point, arguments, connecting, taking a slot.
//! - [`walk`]: the backfill walk: key ranges, batches, pauses, throttles, retries.
//! - [`migration`]: a deploy's non-transactional script, statement by statement.

pub mod api;
pub mod backfill;
pub mod blockers;
pub mod launch;
pub mod migration;
pub mod process;
pub mod queue;
pub mod throttle;
pub mod walk;
