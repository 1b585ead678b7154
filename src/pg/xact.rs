//! Top-level transactions for background workers, which (unlike a client backend) have no
//! `postgres.c` main loop to start, commit and abort them.

use std::panic::AssertUnwindSafe;
use std::time::Duration;

use pgrx::pg_sys;
use pgrx::pg_sys::panic::CaughtError;
use pgrx::PgTryBuilder;

/// Runs `f` in a transaction of its own: committed if `f` returns, aborted if it raises (the
/// error is returned so the caller can record it in a new transaction).
pub fn run<R>(f: impl FnOnce() -> R) -> Result<R, Box<CaughtError>> {
    // SAFETY: called from a background worker between transactions.
    unsafe {
        pg_sys::SetCurrentStatementStartTimestamp();
        pg_sys::StartTransactionCommand();
        // SPI wants an outer snapshot, as a client query's portal would have. Each statement
        // still takes its own (READ COMMITTED), so every batch sees rows committed before it.
        pg_sys::PushActiveSnapshot(pg_sys::GetTransactionSnapshot());
    }
    let mut f = Some(f);
    PgTryBuilder::new(AssertUnwindSafe(|| {
        let result = (f.take().expect("runs once"))();
        // SAFETY: inside the transaction started above, with no error pending.
        unsafe {
            pg_sys::PopActiveSnapshot();
            pg_sys::CommitTransactionCommand();
        }
        Ok(result)
    }))
    .catch_others(|error| {
        // SAFETY: the error left the transaction in an aborted state; abort it fully before
        // the worker starts another one. Timeouts armed inside are disarmed.
        unsafe {
            disarm_statement_timeout();
            pg_sys::AbortCurrentTransaction();
        }
        Err(Box::new(error))
    })
    .execute()
}

/// Sleeps up to `timeout` on the process latch, serving interrupts: a SIGTERM (PostgreSQL's own
/// `die` handler) ends the process here, a SIGHUP reloads the configuration.
pub fn sleep(timeout: Duration) {
    // SAFETY: the standard latch wait of a background worker; WL_EXIT_ON_PM_DEATH exits if the
    // postmaster is gone.
    unsafe {
        pg_sys::WaitLatch(
            pg_sys::MyLatch,
            (pg_sys::WL_LATCH_SET | pg_sys::WL_TIMEOUT | pg_sys::WL_EXIT_ON_PM_DEATH) as i32,
            timeout.as_millis().min(i64::MAX as u128) as i64,
            pg_sys::PG_WAIT_EXTENSION,
        );
        pg_sys::ResetLatch(pg_sys::MyLatch);
    }
    check_for_interrupts();
}

/// Serves pending interrupts (die, cancel) and configuration reloads.
pub fn check_for_interrupts() {
    pgrx::check_for_interrupts!();
    // SAFETY: ConfigReloadPending is set by SignalHandlerForConfigReload; ProcessConfigFile is
    // how every auxiliary process applies a SIGHUP.
    unsafe {
        if pg_sys::ConfigReloadPending != 0 {
            pg_sys::ConfigReloadPending = 0;
            pg_sys::ProcessConfigFile(pg_sys::GucContext::PGC_SIGHUP);
        }
    }
}

// From utils/timeout.h and the signal handlers of tcop/postgres.c and postmaster/interrupt.c,
// which pgrx does not bind (or binds only as Rust wrappers, not as C function pointers).
mod ffi {
    use std::ffi::c_int;
    /// `TimeoutId` value of STATEMENT_TIMEOUT (the same in PostgreSQL 15 and 18).
    pub const STATEMENT_TIMEOUT: c_int = 3;
    extern "C-unwind" {
        pub fn enable_timeout_after(id: c_int, delay_ms: c_int);
        pub fn disable_timeout(id: c_int, keep_indicator: bool);
        pub fn die(signal: c_int);
        pub fn SignalHandlerForConfigReload(signal: c_int);
    }
}

/// Arms statement_timeout for the statements that follow. postgres.c arms it only for a
/// client's queries, so a worker does it itself.
pub fn arm_statement_timeout(ms: i32) {
    // SAFETY: the timeout handlers are registered by InitPostgres for every backend.
    unsafe {
        pg_sys::ffi::pg_guard_ffi_boundary(|| ffi::enable_timeout_after(ffi::STATEMENT_TIMEOUT, ms))
    };
}

pub fn disarm_statement_timeout() {
    // SAFETY: disabling a timeout that is not armed is a no-op.
    unsafe {
        pg_sys::ffi::pg_guard_ffi_boundary(|| ffi::disable_timeout(ffi::STATEMENT_TIMEOUT, false))
    };
}

/// Signal handlers of a worker: SIGTERM runs PostgreSQL's `die` (a running statement is
/// cancelled at its next interrupt check and the process exits, aborting its transaction),
/// SIGHUP marks the configuration for reload.
pub fn install_worker_signal_handlers() {
    // SAFETY: standard handlers from the server, installed before signals are unblocked.
    unsafe {
        #[cfg(feature = "pg15")]
        {
            pg_sys::pqsignal(pg_sys::SIGTERM as i32, Some(ffi::die));
            pg_sys::pqsignal(
                pg_sys::SIGHUP as i32,
                Some(ffi::SignalHandlerForConfigReload),
            );
        }
        #[cfg(feature = "pg18")]
        {
            pg_sys::pqsignal_be(pg_sys::SIGTERM as i32, Some(ffi::die));
            pg_sys::pqsignal_be(
                pg_sys::SIGHUP as i32,
                Some(ffi::SignalHandlerForConfigReload),
            );
        }
        pg_sys::BackgroundWorkerUnblockSignals();
    }
}

/// Runs `f` with the transaction's snapshot pushed as the active one (SPI needs one, and at
/// PRE_COMMIT the statement's own is gone). An error aborts the transaction, which pops it.
pub fn with_active_snapshot<R>(f: impl FnOnce() -> R) -> R {
    // SAFETY: inside a transaction; the pushed snapshot is popped below or by abort.
    unsafe { pg_sys::PushActiveSnapshot(pg_sys::GetTransactionSnapshot()) };
    let result = f();
    // SAFETY: pops what we pushed.
    unsafe { pg_sys::PopActiveSnapshot() };
    result
}

/// Connects a background worker to `database` as `role` (once, before any transaction). On
/// PostgreSQL 17 and later it may act for a role without LOGIN; 15 refuses that (callers check
/// first).
pub fn connect_worker(database: pg_sys::Oid, role: pg_sys::Oid) {
    #[cfg(feature = "pg18")]
    let flags = pg_sys::BGWORKER_BYPASS_ROLELOGINCHECK;
    #[cfg(feature = "pg15")]
    let flags = 0;
    // SAFETY: called once, from a registered background worker, before any transaction.
    unsafe { pg_sys::BackgroundWorkerInitializeConnectionByOid(database, role, flags) };
}
