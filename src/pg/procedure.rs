//! C procedures that commit: `CALL migrate.deploy()` and `CALL migrate.wait_job()` run in a
//! non-atomic context, open a non-atomic SPI connection and commit (or roll back) between
//! their steps, the way PL/pgSQL procedures do.

use pgrx::pg_sys;
use pgrx::prelude::*;

/// True when a C function was called by `CALL` outside a transaction block, the only place a
/// procedure may commit.
///
/// # Safety
/// `fcinfo` must be the call's own.
pub unsafe fn nonatomic_call(fcinfo: pg_sys::FunctionCallInfo) -> bool {
    // SAFETY: the caller passes the executor's fcinfo; context is a Node or NULL.
    unsafe {
        let context = (*fcinfo).context;
        !context.is_null()
            && (*context).type_ == pg_sys::NodeTag::T_CallContext
            && !(*(context as *mut pg_sys::CallContext)).atomic
    }
}

/// Opens the non-atomic SPI connection a committing procedure needs; `who` names it in the
/// (internal) error if that fails. Pair with [`finish`].
pub fn connect(who: &str) {
    // SAFETY: called from a procedure invoked non-atomically (callers check nonatomic_call).
    let rc = unsafe { pg_sys::SPI_connect_ext(pg_sys::SPI_OPT_NONATOMIC as i32) };
    if rc != pg_sys::SPI_OK_CONNECT as i32 {
        error!("{who}: SPI_connect_ext failed");
    }
}

/// Closes the connection [`connect`] opened.
pub fn finish() {
    // SAFETY: closes the connection opened by connect().
    unsafe { pg_sys::SPI_finish() };
}

/// Commits the procedure's transaction and starts a new one (no snapshot is held after it).
pub fn commit() {
    // SAFETY: only called while a non-atomic SPI connection is open (connect()); SPI_commit
    // raises 25001-class errors itself when a subtransaction is active.
    unsafe { pg_sys::SPI_commit() };
}

/// Rolls the procedure's transaction back and starts a new one: every lock it held is released.
pub fn rollback() {
    // SAFETY: as commit().
    unsafe { pg_sys::SPI_rollback() };
}
