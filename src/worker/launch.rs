//! Starting workers.
//!
//! - A job queued (or resumed) in a transaction gets its worker just before that transaction
//!   commits; the worker waits until the commit is visible and exits if it rolled back, so a
//!   rolled-back caller leaves neither a job nor a worker behind.
//! - At most `migrate.max_job_workers` job workers run per database (each holds a slot lock);
//!   a job beyond that stays queued, and every worker that finishes starts the next one.
//! - With `shared_preload_libraries = 'migrate'` a launcher starts with the server (again after
//!   a crash) and starts one short recovery worker per database, which puts interrupted jobs
//!   back in the queue and starts them.

use std::cell::RefCell;
use std::sync::Once;
use std::time::Duration;

use pgrx::bgworkers::{BackgroundWorker, BackgroundWorkerBuilder};
use pgrx::pg_sys;
use pgrx::prelude::*;
use pgrx::PgSqlErrorCode::*;

use super::process::WorkerArgs;
use super::queue::{self, JobSpec};
use crate::error::UserError;
use crate::gucs;
use crate::pg::backend;

/// The library's own name, for the postmaster to load worker entry points from.
const LIBRARY: &str = "migrate";

/// Job id 0 asks a worker for the recovery sweep of its database instead of a job.
pub const RECOVERY: i64 = 0;

thread_local! {
    /// Jobs queued or resumed by the running transaction, to start at its commit, with the
    /// subtransaction level that queued each (a rolled-back subtransaction takes its jobs along).
    static PENDING: RefCell<Vec<(i64, i32)>> = const { RefCell::new(Vec::new()) };
}

static CALLBACK: Once = Once::new();

/// Starts a worker for `job` when the current transaction commits.
pub fn start_at_commit(job: i64) {
    CALLBACK.call_once(|| {
        backend::register_transaction_callbacks(Some(on_xact_event), Some(on_subxact_event));
    });
    let level = backend::nest_level();
    PENDING.with(|p| p.borrow_mut().push((job, level)));
}

#[pg_guard]
unsafe extern "C-unwind" fn on_subxact_event(
    event: pg_sys::SubXactEvent::Type,
    _my: pg_sys::SubTransactionId,
    _parent: pg_sys::SubTransactionId,
    _arg: *mut std::ffi::c_void,
) {
    let level = backend::nest_level();
    match event {
        pg_sys::SubXactEvent::SUBXACT_EVENT_ABORT_SUB => {
            PENDING.with(|p| p.borrow_mut().retain(|&(_, l)| l < level));
        }
        // A released subtransaction's jobs belong to its parent from now on.
        pg_sys::SubXactEvent::SUBXACT_EVENT_COMMIT_SUB => PENDING.with(|p| {
            for entry in p.borrow_mut().iter_mut().filter(|(_, l)| *l >= level) {
                entry.1 = level - 1;
            }
        }),
        _ => {}
    }
}

#[pg_guard]
unsafe extern "C-unwind" fn on_xact_event(
    event: pg_sys::XactEvent::Type,
    _arg: *mut std::ffi::c_void,
) {
    use pg_sys::XactEvent::*;
    match event {
        // Still inside the transaction: an error here (no worker slot) rolls the caller back
        // with a clear message instead of leaving a job nobody runs.
        XACT_EVENT_PRE_COMMIT => {
            let jobs: Vec<i64> = PENDING
                .with(|p| std::mem::take(&mut *p.borrow_mut()))
                .into_iter()
                .map(|(job, _)| job)
                .collect();
            if !jobs.is_empty() {
                crate::pg::xact::with_active_snapshot(|| start_pending(&jobs));
            }
        }
        XACT_EVENT_ABORT | XACT_EVENT_PARALLEL_ABORT | XACT_EVENT_COMMIT => {
            PENDING.with(|p| p.borrow_mut().clear());
        }
        _ => {}
    }
}

fn start_pending(jobs: &[i64]) {
    // The transaction has (or is about to get) an xid: it wrote the job row.
    let xid = backend::top_full_transaction_id();
    let mut free = i64::from(gucs::max_job_workers()) - queue::busy_slots();
    for &job in jobs {
        // Queued and then deleted (or rolled back by a path we did not see): nothing to start.
        if queue::load(job, false).is_none() {
            continue;
        }
        if free <= 0 {
            pgrx::notice!(
                "migrate: job {job} is queued; it starts when one of the {} running job workers of this database finishes (migrate.max_job_workers)",
                gucs::max_job_workers()
            );
            continue;
        }
        if !start_worker(job, Some(xid)) {
            UserError::new(
                ERRCODE_CONFIGURATION_LIMIT_EXCEEDED,
                format!("migrate: no background worker slot free to run job {job}"),
            )
            .detail(format!(
                "All max_worker_processes ({}) background worker slots are in use.",
                max_worker_processes()
            ))
            .hint("Raise max_worker_processes (needs a restart) or retry when fewer workers run; nothing was queued.")
            .raise();
        }
        free -= 1;
    }
}

fn max_worker_processes() -> i32 {
    backend::max_worker_processes()
}

/// Registers a dynamic worker for `job` in this database; false if no slot was free.
/// `wait_for` is the full transaction id the worker must see committed before it starts.
pub fn start_worker(job: i64, wait_for: Option<u64>) -> bool {
    register(job, wait_for, false)
}

/// Registers one more worker for a running backfill: it takes key ranges nobody walks.
pub fn start_helper(job: i64) -> bool {
    register(job, None, true)
}

fn register(job: i64, wait_for: Option<u64>, helper: bool) -> bool {
    let database = backend::database();
    let name = if job == RECOVERY {
        "migrate job recovery".to_string()
    } else {
        format!("migrate job {job}")
    };
    // A job's worker logs in as the role the job runs as, so every transaction it runs, its
    // COMMIT (deferred triggers) included, has that identity; only the recovery sweep, which
    // runs no user SQL, logs in as the bootstrap superuser.
    let role = if job == RECOVERY {
        None
    } else {
        match login_role(job) {
            Ok(role) => Some(role),
            Err(why) => {
                pgrx::log!("migrate: job {job} is not started: {why}");
                return false;
            }
        }
    };
    BackgroundWorkerBuilder::new(&name)
        .set_type("migrate job worker")
        .set_library(LIBRARY)
        .set_function("migrate_job_worker")
        .enable_spi_access()
        .set_argument(Some(pg_sys::Datum::from(job)))
        .set_extra(
            &WorkerArgs {
                database,
                wait_for,
                role,
                helper,
            }
            .encode(),
        )
        .load_dynamic()
        .is_ok()
}

/// The role a job's worker may log in as, checked against the registry's rules rather than
/// taken from the job row: a backfill's owner (never a superuser unless the superuser allowed
/// it when queueing), a migration job's registered author of exactly that script.
pub fn login_role(job: i64) -> Result<pg_sys::Oid, String> {
    let j = queue::load(job, false).ok_or_else(|| "it does not exist".to_string())?;
    let m = match &j.spec {
        JobSpec::Migration(m) => m,
        JobSpec::Backfill(_) => {
            // The role is stored by OID: after pg_dump/pg_restore into another cluster the same
            // number can name another role. Only the role the job was queued by may run it.
            let name = crate::pg::security::role_name(j.owner);
            if name.as_deref() != Some(j.owner_name.as_str()) {
                return Err(format!(
                    "it was queued by role \"{}\", and OID {} is now {}",
                    j.owner_name,
                    j.owner.to_u32(),
                    name.map_or("no role".to_string(), |n| format!("role \"{n}\""))
                ));
            }
            super::backfill::check_job_role(j.owner, j.allow_superuser).map_err(|e| e.message)?;
            return Ok(j.owner);
        }
    };
    let direction = if m.up {
        crate::registry::execute::Direction::Up
    } else {
        crate::registry::execute::Direction::Down
    };
    let registered = crate::registry::catalog::load_all(false)
        .into_iter()
        .find(|r| r.version == m.version)
        .ok_or_else(|| format!("migration {} is not registered", m.version))?;
    // A script safe mode made from the registered one (recorded by deploy(), which checked
    // that its caller has the author's privileges) runs like the registered one.
    let safe_form = crate::registry::safe::is_recorded_form(&registered, direction, &m.script);
    if (registered.transactional && !safe_form)
        || (direction == crate::registry::execute::Direction::Down && registered.down_sql.is_none())
        || (direction.script(&registered) != m.script && !safe_form)
    {
        return Err(format!(
            "its script is not the registered {} script of non-transactional migration {}",
            direction.label(),
            m.version
        ));
    }
    let author = crate::pg::security::role_oid(registered.author(direction))
        .ok_or_else(|| format!("the author of migration {} no longer exists", m.version))?;
    if author != j.owner {
        return Err(format!(
            "its role is not the author of migration {}",
            m.version
        ));
    }
    Ok(author)
}

/// Starts workers for queued jobs nobody runs, as many as there are free slots. Called by a
/// worker after it released its slot, by the recovery sweep, and by `resume_job()`.
pub fn start_queued() {
    let free = i64::from(gucs::max_job_workers()) - queue::busy_slots();
    if free <= 0 {
        return;
    }
    for job in queue::unclaimed_queued(free) {
        if !start_worker(job, None) {
            pgrx::log!(
                "migrate: no background worker slot free for queued job {job} (max_worker_processes = {})",
                max_worker_processes()
            );
            break;
        }
    }
}

/// Registers the launcher; called from `_PG_init` while shared_preload_libraries loads.
pub fn register_launcher() {
    BackgroundWorkerBuilder::new("migrate launcher")
        .set_type("migrate launcher")
        .set_library(LIBRARY)
        .set_function("migrate_launcher")
        .enable_spi_access()
        .set_restart_time(Some(Duration::from_secs(10)))
        .load();
}

/// The launcher: one recovery worker per database that allows connections, then idle until
/// shutdown (it runs again after a crash restart, which is when recovery is needed again).
#[pg_guard]
#[no_mangle]
pub extern "C-unwind" fn migrate_launcher(_arg: pg_sys::Datum) {
    crate::pg::xact::install_worker_signal_handlers();
    let database = gucs::launcher_database();
    BackgroundWorker::connect_worker_to_spi(Some(&database), None);
    // Without the list no database would be recovered: fail, and the postmaster starts the
    // launcher again (set_restart_time).
    let databases = crate::pg::xact::run(|| {
        queue::column_values::<pg_sys::Oid>(
            "list the databases",
            "SELECT oid FROM pg_catalog.pg_database WHERE datallowconn AND NOT datistemplate",
            &[],
        )
    })
    .unwrap_or_else(|caught| {
        error!(
            "migrate launcher: could not list the databases to resume jobs in: {}",
            crate::error::caught_parts(&caught).1
        )
    });
    for db in databases {
        let started = BackgroundWorkerBuilder::new("migrate job recovery")
            .set_type("migrate job worker")
            .set_library(LIBRARY)
            .set_function("migrate_job_worker")
            .enable_spi_access()
            .set_argument(Some(pg_sys::Datum::from(RECOVERY)))
            .set_extra(
                &WorkerArgs {
                    database: db,
                    wait_for: None,
                    role: None,
                    helper: false,
                }
                .encode(),
            )
            .load_dynamic()
            .is_ok();
        if !started {
            pgrx::log!(
                "migrate launcher: no background worker slot to resume jobs in database {}",
                db.to_u32()
            );
        }
    }
    loop {
        crate::pg::xact::sleep(Duration::from_secs(3600));
    }
}
