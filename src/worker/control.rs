//! Live job control: `migrate.alter_job()` changes a backfill's batch size, batch time,
//! workers, pause, start time and window from its next batch on, and logs every change
//! (`migrate.job_changes`).
//!
//! The change is made under the job's exclusive control lock (the one `pause_job()` takes), so
//! it waits for the batches in flight and every later batch reads the new settings: the walk
//! (`walk.rs`) reads the job again before each batch. More workers are started by the job's
//! leader, which splits an unfinished key range when fewer are free than workers are missing;
//! a surplus helper stops between two batches, after its range's checkpoint committed, so
//! every row is still updated exactly once.

use pgrx::datum::{Interval, Time, TimestampWithTimeZone};
use pgrx::prelude::*;
use pgrx::PgSqlErrorCode::*;

use super::api::{
    check_keyless_workers, check_pause_ms, check_window, check_workers, interval_ms,
    job_for_control, job_id, wrong_state, Schedule,
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
#[allow(clippy::too_many_arguments)]
#[pg_extern(sql = r#"
CREATE FUNCTION migrate.alter_job(job_id bigint, batch_time interval DEFAULT NULL,
                                  batch_size integer DEFAULT NULL, workers integer DEFAULT NULL,
                                  pause interval DEFAULT NULL,
                                  start_after timestamptz DEFAULT NULL,
                                  window_start time DEFAULT NULL, window_end time DEFAULT NULL)
RETURNS void VOLATILE LANGUAGE c AS 'MODULE_PATHNAME', 'alter_job_wrapper';
COMMENT ON FUNCTION migrate.alter_job(bigint, interval, integer, integer, interval, timestamptz, time, time) IS
    'Changes a backfill job''s batch_time, batch_size (0: adaptive), workers, pause, start_after or window from its next batch on; logged in migrate.job_changes.';
"#)]
fn alter_job(
    job_id: Option<i64>,
    batch_time: Option<Interval>,
    batch_size: Option<i32>,
    workers: Option<i32>,
    pause: Option<Interval>,
    start_after: Option<TimestampWithTimeZone>,
    window_start: Option<Time>,
    window_end: Option<Time>,
) {
    let changes = Changes {
        batch_time_ms: batch_time.as_ref().map(interval_ms),
        batch_size,
        workers,
        pause_ms: pause.as_ref().map(interval_ms),
        schedule: Schedule {
            start_after,
            window_start,
            window_end,
        },
    };
    alter(job_id, &changes).or_raise();
}

/// The settings to change; None leaves one as it is.
struct Changes {
    batch_time_ms: Option<f64>,
    batch_size: Option<i32>,
    workers: Option<i32>,
    pause_ms: Option<f64>,
    /// Equal window ends remove the window.
    schedule: Schedule,
}

/// A job's start_after (in UTC) and window ("01:00:00-05:00:00 Europe/Paris") as the change
/// log shows them: the same text whatever the reader's TimeZone and DateStyle.
const SCHEDULE_TEXT: &str = "SELECT pg_catalog.to_char(pg_catalog.timezone('UTC', start_after), \
        'YYYY-MM-DD HH24:MI:SS') OPERATOR(pg_catalog.||) ' UTC', \
    CASE WHEN window_start IS NOT NULL THEN window_start::pg_catalog.text OPERATOR(pg_catalog.||) '-' \
        OPERATOR(pg_catalog.||) window_end::pg_catalog.text OPERATOR(pg_catalog.||) ' ' \
        OPERATOR(pg_catalog.||) window_tz END \
    FROM migrate.job_queue WHERE id OPERATOR(pg_catalog.=) $1";

fn schedule_text(id: i64) -> (Option<String>, Option<String>) {
    as_registry_owner(|| {
        Spi::get_two_with_args::<String, String>(SCHEDULE_TEXT, &[id.into()])
            .unwrap_or_else(|e| error!("migrate: could not read the schedule of job {id}: {e}"))
    })
}

/// Changes the job's schedule; returns the settings that changed, logged like the others.
fn alter_schedule(id: i64, schedule: &Schedule, who: &str) -> Vec<String> {
    let (start_before, window_before) = schedule_text(id);
    super::queue::set_schedule(id, schedule);
    let (start_after, window_after) = schedule_text(id);
    let mut changed = Vec::new();
    for (setting, old, new) in [
        ("start_after", start_before, start_after),
        ("window", window_before, window_after),
    ] {
        if old == new {
            continue;
        }
        as_registry_owner(|| {
            Spi::run_with_args(
                "INSERT INTO migrate.job_change_log (job_id, changed_by, setting, old_value, new_value) \
                 VALUES ($1, $2, $3, $4, $5)",
                &[id.into(), who.into(), setting.into(), old.into(), new.into()],
            )
            .unwrap_or_else(|e| error!("migrate: could not log a change of job {id}: {e}"))
        });
        changed.push(setting.to_string());
    }
    changed
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
    check_window(WHAT, table, &changes.schedule, true)?;
    let who = role_name(current_user()).unwrap_or_default();
    let mut changed: Vec<String> = as_registry_owner(|| {
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
                        who.as_str().into(),
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
    if !changes.schedule.is_empty() {
        changed.extend(alter_schedule(id, &changes.schedule, &who));
    }
    if !changed.is_empty() && job.state == RUNNING {
        pgrx::notice!(
            "migrate.{WHAT}: job {id} runs with the new {} from its next batch",
            changed.join(", ")
        );
    }
    Ok(())
}
