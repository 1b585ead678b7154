//! The job worker process: the background worker's entry point. It decodes its arguments,
//! connects to the job's database (as the role the job runs as), waits for the transaction that
//! queued the job to commit, checks the extension and the role, takes a worker slot and the
//! job's lock, and hands the job to what runs it: [`super::walk`] for a backfill (the job's
//! leader, or a helper of a backfill with several workers), [`super::migration`] for a deploy's
//! non-transactional step. Job id 0 is the recovery sweep of a database instead (see
//! [`super::launch`]).
//!
//! A job's worker logs in as the role the job runs as (the recovery sweep, which runs no user
//! SQL, as the bootstrap superuser); its bookkeeping on the queue switches to the registry
//! owner, and the job's SQL runs with the job's privileges and search_path.

use std::time::Duration;

use pgrx::bgworkers::BackgroundWorker;
use pgrx::pg_sys;
use pgrx::prelude::*;

use super::launch::{self, RECOVERY};
use super::queue::{self, JobKind, Namespace};
use super::walk;
use crate::gucs;
use crate::pg::security::set_config;
use crate::pg::xact;

/// Entry point of every job worker (and of the recovery sweep, job id 0).
#[pg_guard]
#[no_mangle]
pub extern "C-unwind" fn migrate_job_worker(arg: pg_sys::Datum) {
    xact::install_worker_signal_handlers();
    let job = arg.value() as i64;
    let args = match WorkerArgs::decode(BackgroundWorker::get_extra()) {
        Ok(args) => args,
        Err(why) => {
            pgrx::log!("migrate job {job}: not running it: {why}");
            return;
        }
    };
    connect(args.database, args.role);
    if xact::run(pin_session_settings).is_err() {
        return;
    }
    if args.wait_for.is_some_and(|xid| !wait_for_commit(xid)) {
        pgrx::debug1!("migrate job {job}: the transaction that queued it did not commit");
        return;
    }
    // Any database owner can create a schema named migrate with tables that look like ours:
    // read nothing unless the extension is installed and owns what we read.
    match xact::run(queue::extension_installed) {
        Ok(true) => {}
        Ok(false) => {
            pgrx::debug1!("migrate job {job}: extension not installed in this database");
            return;
        }
        Err(caught) => {
            pgrx::log!(
                "migrate job {job}: could not check the extension, not running it: {}",
                crate::error::caught_parts(&caught).1
            );
            return;
        }
    }
    // The role we logged in as was checked against the registry when the worker was started;
    // check again now that this process can read it, before running anything as it.
    if job != RECOVERY {
        let checked = xact::run(|| launch::login_role(job));
        match checked {
            Ok(Ok(expected)) if Some(expected) == args.role => {}
            Ok(Ok(_)) => {
                pgrx::log!(
                    "migrate job {job}: logged in as another role than the job's; not running it"
                );
                return;
            }
            Ok(Err(why)) => {
                pgrx::log!("migrate job {job}: not running it: {why}");
                return;
            }
            Err(_) => return,
        }
    }
    if job == RECOVERY {
        let _ = xact::run(|| {
            let requeued = queue::requeue_interrupted();
            if requeued > 0 {
                pgrx::log!("migrate: resuming {requeued} interrupted job(s)");
            }
            launch::start_queued();
        });
        return;
    }
    let Some(slot) = take_slot(job) else {
        // Every slot is busy: the job stays queued and a finishing worker starts it (a helper
        // is simply not needed: the job's other workers take its ranges).
        pgrx::debug1!("migrate job {job}: every worker slot is busy");
        return;
    };
    if args.helper {
        walk::run_helper(job);
        let _ = xact::run(|| {
            queue::unlock(Namespace::Slot, slot);
            launch::start_queued();
        });
        return;
    }
    if !xact::run(|| queue::try_lock(Namespace::Job, job as i32)).unwrap_or(false) {
        let _ = xact::run(|| queue::unlock(Namespace::Slot, slot));
        pgrx::debug1!("migrate job {job}: another worker runs it");
        return;
    }
    run_job(job);
    // Release the slot before looking for queued jobs, so a job queued meanwhile is seen here
    // or its own worker finds the slot free.
    let _ = xact::run(|| {
        queue::unlock(Namespace::Job, job as i32);
        queue::unlock(Namespace::Slot, slot);
        launch::start_queued();
    });
}

/// Runs the job by what it is.
fn run_job(id: i64) {
    match xact::run(|| queue::load(id, false).map(|j| j.kind())) {
        Ok(Some(JobKind::Migration)) => super::migration::run(id),
        Ok(Some(JobKind::Backfill)) => walk::run(id),
        Ok(None) => {}
        Err(caught) => walk::record_failure(id, &caught),
    }
}

/// What a job worker is started with, besides its job id (`bgw_main_arg`), as it travels in
/// `bgw_extra`: `encode()` where a worker is registered, `decode()` in the worker.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct WorkerArgs {
    /// The database the job is in.
    pub database: pg_sys::Oid,
    /// The full id of the transaction that queued the job: the worker runs it only once that
    /// committed. None: run at once.
    pub wait_for: Option<u64>,
    /// The role the worker logs in as. None: the bootstrap superuser (the recovery sweep, which
    /// runs no user SQL).
    pub role: Option<pg_sys::Oid>,
    /// An extra worker of a backfill (see `launch::start_helper`), not the job's leader.
    pub helper: bool,
}

impl WorkerArgs {
    /// `bgw_extra` is a NUL-terminated string of at most this many bytes, NUL included.
    const CAPACITY: usize = pg_sys::BGW_EXTRALEN as usize;

    /// "database-oid queueing-full-xid role-oid helper", 0 for None and false: the form 0.1.0
    /// starts job workers with, since a backend that loaded the old library before an upgrade
    /// can register a worker that loads the new one.
    pub fn encode(&self) -> String {
        let text = format!(
            "{} {} {} {}",
            self.database.to_u32(),
            self.wait_for.unwrap_or(0),
            self.role.map_or(0, pg_sys::Oid::to_u32),
            u8::from(self.helper)
        );
        assert!(
            text.len() < Self::CAPACITY,
            "worker arguments longer than bgw_extra"
        );
        text
    }

    /// The arguments [`encode`](Self::encode) wrote; anything else is refused, never read as
    /// defaults (a worker for the wrong database or role must not start).
    pub fn decode(text: &str) -> Result<WorkerArgs, String> {
        let malformed = || format!("malformed worker arguments {text:?}");
        let fields: Vec<&str> = text.split(' ').collect();
        let [database, wait_for, role, helper] = fields[..] else {
            return Err(malformed());
        };
        // Digits only: parse() would also take a sign.
        let number = |field: &str| -> Result<u64, String> {
            if field.is_empty() || !field.bytes().all(|b| b.is_ascii_digit()) {
                return Err(malformed());
            }
            field.parse().map_err(|_| malformed())
        };
        let oid = |field: &str| -> Result<u32, String> {
            u32::try_from(number(field)?).map_err(|_| malformed())
        };
        let database = match oid(database)? {
            0 => return Err(malformed()),
            oid => pg_sys::Oid::from(oid),
        };
        Ok(WorkerArgs {
            database,
            wait_for: Some(number(wait_for)?).filter(|&xid| xid != 0),
            role: Some(oid(role)?)
                .filter(|&oid| oid != 0)
                .map(pg_sys::Oid::from),
            helper: match helper {
                "0" => false,
                "1" => true,
                _ => return Err(malformed()),
            },
        })
    }
}

/// Connects to the job's database, as `role` when one is given. A migration job's worker logs in
/// as the migration's role rather than switching to it: its statements commit internally (a
/// concurrent index build does), which must not happen inside a switched security context.
fn connect(database: pg_sys::Oid, role: Option<pg_sys::Oid>) {
    match role {
        None => BackgroundWorker::connect_worker_to_spi_by_oid(Some(database), None),
        Some(role) => xact::connect_worker(database, role),
    }
}

/// Settings of the worker's session. Our own SQL runs with search_path = pg_catalog, pg_temp
/// (a job's SQL gets the job's search_path, set around it). SQL the job stores was checked with
/// `standard_conforming_strings = on` and runs with it. Checkpointed keys are stored as text:
/// every setting that changes a type's text form is pinned so a key written by one worker reads
/// back identically in the next. (No session-wide lock_timeout: a concurrent index build's wait
/// for older transactions is a lock wait too. The locks a worker waits for are either row locks
/// only the extension can take, or bounded where they are taken.)
fn pin_session_settings() {
    for (name, value) in [
        (c"search_path", c"pg_catalog, pg_temp"),
        (c"standard_conforming_strings", c"on"),
        (c"DateStyle", c"ISO, YMD"),
        (c"IntervalStyle", c"postgres"),
        (c"extra_float_digits", c"1"),
        (c"bytea_output", c"hex"),
    ] {
        set_config(name, value, pg_sys::GucAction::GUC_ACTION_SET);
    }
}

/// Waits until the transaction that queued the job ends; true if it committed.
fn wait_for_commit(full_xid: u64) -> bool {
    loop {
        let status = xact::run(|| {
            // NULL: too old for the commit log to know, so not the transaction that queued us.
            Spi::get_one_with_args::<String>(
                "SELECT pg_catalog.pg_xact_status($1::pg_catalog.text::pg_catalog.xid8)",
                &[full_xid.to_string().into()],
            )
            .unwrap_or_else(|e| error!("{e}"))
        })
        .unwrap_or_else(|e| {
            pgrx::log!(
                "migrate: could not read the status of transaction {full_xid}: {}",
                crate::error::caught_parts(&e).1
            );
            None
        });
        match status.as_deref() {
            Some("committed") => return true,
            Some("in progress") => xact::sleep(Duration::from_millis(20)),
            _ => return false,
        }
    }
}

/// A worker slot's key, or None if every slot is busy or none could be taken (said in the log).
fn take_slot(job: i64) -> Option<i32> {
    xact::run(|| {
        let backfill = job != RECOVERY
            && queue::load(job, false).is_some_and(|j| j.kind() == JobKind::Backfill);
        queue::take_slot(i64::from(gucs::max_job_workers()), backfill)
    })
    .unwrap_or_else(|caught| {
        pgrx::log!(
            "migrate job {job}: could not take a worker slot: {}",
            crate::error::caught_parts(&caught).1
        );
        None
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn worker_args_round_trip() {
        for args in [
            WorkerArgs {
                database: pg_sys::Oid::from(16384),
                wait_for: Some(743),
                role: Some(pg_sys::Oid::from(16390)),
                helper: false,
            },
            WorkerArgs {
                database: pg_sys::Oid::from(5),
                wait_for: None,
                role: None,
                helper: true,
            },
        ] {
            assert_eq!(WorkerArgs::decode(&args.encode()), Ok(args));
        }
        assert_eq!(
            WorkerArgs {
                database: pg_sys::Oid::from(16384),
                wait_for: Some(743),
                role: Some(pg_sys::Oid::from(16390)),
                helper: true,
            }
            .encode(),
            "16384 743 16390 1"
        );
    }

    #[test]
    fn worker_args_fit_bgw_extra() {
        let largest = WorkerArgs {
            database: pg_sys::Oid::from(u32::MAX),
            wait_for: Some(u64::MAX),
            role: Some(pg_sys::Oid::from(u32::MAX)),
            helper: true,
        };
        let text = largest.encode();
        assert!(text.len() < pg_sys::BGW_EXTRALEN as usize, "{text}");
        assert_eq!(WorkerArgs::decode(&text), Ok(largest));
    }

    #[test]
    fn malformed_worker_args_are_refused() {
        for text in [
            "",
            "16384",
            "16384 0",
            "16384 0 10",
            "16384 0 10 1 extra",
            "16384  0 10 1",
            " 16384 0 10 1",
            "0 0 10 0",
            "x 0 10 0",
            "16384 -1 10 0",
            "16384 +1 10 0",
            "16384 0 4294967296 0",
            "16384 0 10 2",
            "16384 0 10 yes",
            "16384 18446744073709551616 10 0",
        ] {
            assert!(WorkerArgs::decode(text).is_err(), "{text:?} was accepted");
        }
    }
}
