//! Background jobs: batched backfills run by background workers inside the server.
//!
//! - [`api`]: `backfill()`, `pause_job()`, `resume_job()`, `cancel_job()`, `wait_job()`.
//! - [`backfill`]: the checks a backfill passes before it is queued, and the SQL of a batch.
//! - [`queue`]: the `migrate.job_queue` table (jobs, checkpoints, states).
//! - [`launch`]: starting workers at commit, the per-database worker limit, the launcher.
//! - [`runner`]: the worker process and its batch loop.

pub mod api;
pub mod backfill;
pub mod launch;
pub mod migration;
pub mod queue;
pub mod runner;
