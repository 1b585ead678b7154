//! Live job control: `migrate.alter_job()` changes a backfill's batch size, batch time,
//! workers and pause from its next batch on, and logs every change (`migrate.job_changes`).
//!
//! The change is made under the job's exclusive control lock (the one `pause_job()` takes), so
//! it waits for the batches in flight and every later batch reads the new settings: the walk
//! (`walk.rs`) reads the job again before each batch. More workers are started by the job's
//! leader, which splits an unfinished key range when fewer are free than workers are missing;
//! a surplus helper stops between two batches, after its range's checkpoint committed, so
//! every row is still updated exactly once.

use pgrx::datum::Interval;
use pgrx::prelude::*;
use pgrx::PgSqlErrorCode::*;

use super::api::{
    check_keyless_workers, check_pause_ms, check_workers, interval_ms, job_for_control, job_id,
    wrong_state,
};
use super::queue::{JobSpec, FAILED, PAUSED, QUEUED, RUNNING};
use crate::error::{OrRaise, Result, UserError};
use crate::pg::security::{as_registry_owner, current_user, role_name};

/// The bounds of `migrate.backfill_batch_time` (ms), which a job's own batch_time keeps to.
const MIN_BATCH_TIME_MS: f64 = 10.0;
const MAX_BATCH_TIME_MS: f64 = 60_000.0;

/// `migrate.alter_job(job_id, batch_time, batch_size, workers, pause)`: NULL leaves a setting
/// as it is; `batch_size => 0` makes the batch size adaptive again, `batch_time => '0'` goes
/// back to `migrate.backfill_batch_time`.
#[pg_extern(sql = r#"
CREATE FUNCTION migrate.alter_job(job_id bigint, batch_time interval DEFAULT NULL,
                                  batch_size integer DEFAULT NULL, workers integer DEFAULT NULL,
                                  pause interval DEFAULT NULL)
RETURNS void VOLATILE LANGUAGE c AS 'MODULE_PATHNAME', 'alter_job_wrapper';
COMMENT ON FUNCTION migrate.alter_job(bigint, interval, integer, integer, interval) IS
    'Changes a backfill job''s batch_time, batch_size (0: adaptive), workers or pause from its next batch on; logged in migrate.job_changes.';
"#)]
fn alter_job(
    job_id: Option<i64>,
    batch_time: Option<Interval>,
    batch_size: Option<i32>,
    workers: Option<i32>,
    pause: Option<Interval>,
) {
    let changes = Changes {
        batch_time_ms: batch_time.as_ref().map(interval_ms),
        batch_size,
        workers,
        pause_ms: pause.as_ref().map(interval_ms),
    };
    alter(job_id, &changes).or_raise();
}

/// The settings to change; None leaves one as it is.
struct Changes {
    batch_time_ms: Option<f64>,
    batch_size: Option<i32>,
    workers: Option<i32>,
    pause_ms: Option<f64>,
}

fn alter(id: Option<i64>, changes: &Changes) -> Result<()> {
    const WHAT: &str = "alter_job";
    let id = job_id(id, WHAT)?;
    // Owner or migrate_admin; waits (bounded) for the batches in flight.
    let job = job_for_control(id, WHAT, false)?;
    let JobSpec::Backfill(b) = &job.spec else {
        return Err(UserError::new(
            ERRCODE_WRONG_OBJECT_TYPE,
            format!("migrate.{WHAT}: job {id} is a migration job, not a backfill"),
        )
        .hint("A deploy step has no batches to tune; see it in migrate.jobs."));
    };
    match job.state {
        QUEUED | RUNNING | PAUSED | FAILED => {}
        state => {
            return Err(wrong_state(
                id,
                WHAT,
                state,
                "Only queued, running, paused or failed jobs can be changed; queue a new backfill instead.",
            ))
        }
    }
    let table = &b.table_name;
    // Every value is checked before anything is written: bad input changes nothing.
    if let Some(size) = changes.batch_size {
        if size < 0 {
            return Err(UserError::new(
                ERRCODE_INVALID_PARAMETER_VALUE,
                format!("migrate.{WHAT}: batch_size for {table} must be positive (or 0 for adaptive), not {size}"),
            )
            .hint("Pass a positive batch_size to pin it, 0 to let it adapt to the batch time again, or NULL to leave it."));
        }
    }
    if let Some(ms) = changes.batch_time_ms {
        if ms != 0.0 && !(MIN_BATCH_TIME_MS..=MAX_BATCH_TIME_MS).contains(&ms) {
            return Err(UserError::new(
                ERRCODE_INVALID_PARAMETER_VALUE,
                format!("migrate.{WHAT}: batch_time for {table} must be between 10 ms and 1 min"),
            )
            .hint("Pass a batch_time such as '200 ms', '0' to follow migrate.backfill_batch_time again, or NULL to leave it."));
        }
    }
    if let Some(workers) = changes.workers {
        check_workers(WHAT, table, workers)?;
        if b.key.is_none() {
            check_keyless_workers(WHAT, table, workers)?;
        }
    }
    if let Some(ms) = changes.pause_ms {
        check_pause_ms(WHAT, table, ms)?;
    }
    let who = role_name(current_user()).unwrap_or_default();
    let changed: Vec<String> = as_registry_owner(|| {
        Spi::connect_mut(|client| {
            client
                .update(
                    include_str!("../queries/alter_job.sql"),
                    None,
                    &[
                        id.into(),
                        changes.batch_size.into(),
                        changes.batch_time_ms.into(),
                        changes.workers.into(),
                        changes.pause_ms.into(),
                        who.into(),
                    ],
                )
                .unwrap_or_else(|e| error!("migrate: could not change job {id}: {e}"))
                .filter_map(|row| {
                    row.get::<String>(1)
                        .unwrap_or_else(|e| error!("migrate: could not change job {id}: {e}"))
                })
                .collect()
        })
    });
    if !changed.is_empty() && job.state == RUNNING {
        pgrx::notice!(
            "migrate.{WHAT}: job {id} runs with the new {} from its next batch",
            changed.join(", ")
        );
    }
    Ok(())
}
