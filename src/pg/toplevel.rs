//! Running one SQL statement top-level in a background worker, the way `exec_simple_query`
//! runs a client's query: its own transaction, parse, analyze, plan, and a portal run with
//! `isTopLevel = true`. That is what `CREATE INDEX CONCURRENTLY`, `REINDEX CONCURRENTLY`,
//! `DROP INDEX CONCURRENTLY` and `VACUUM` need; through SPI they fail ("cannot be executed from a
//! function"). No SPI is involved.
//!
//! A concurrent index build commits and starts transactions of its own while it runs, which
//! resets the transaction's memory: the parse and plan trees live in a memory context of our
//! own that only this function deletes.

use std::ffi::CString;
use std::panic::AssertUnwindSafe;

use pgrx::pg_sys;
use pgrx::pg_sys::panic::CaughtError;
use pgrx::PgTryBuilder;

/// Runs `sql` (exactly one statement) top-level, in a transaction of its own that is committed
/// when the statement ends, as the session's user. Must be called between transactions. On error
/// the transaction is aborted and the error returned.
///
/// There is deliberately no user switch here: a statement that commits internally must not run
/// inside a switched security context (`StartTransaction` requires none to be set), so a worker
/// that runs statements for a role logs in as that role.
pub fn execute(sql: &str) -> Result<(), Box<CaughtError>> {
    let c_sql = CString::new(sql).expect("statements come from a NUL-free script");
    // SAFETY: plain reads of backend-local state; the context is a child of TopMemoryContext
    // that outlives every transaction this statement starts or commits.
    let (statement_context, caller_context) = unsafe {
        let context = pg_sys::AllocSetContextCreateExtended(
            pg_sys::TopMemoryContext,
            c"migrate top-level statement".as_ptr(),
            pg_sys::ALLOCSET_DEFAULT_MINSIZE as usize,
            pg_sys::ALLOCSET_DEFAULT_INITSIZE as usize,
            pg_sys::ALLOCSET_DEFAULT_MAXSIZE as usize,
        );
        (context as usize, pg_sys::CurrentMemoryContext as usize)
    };
    let restore = move || unsafe {
        // SAFETY: the caller's context was valid before the statement and still is.
        pg_sys::MemoryContextSwitchTo(caller_context as pg_sys::MemoryContext);
        pg_sys::debug_query_string = std::ptr::null();
    };
    let result = PgTryBuilder::new(AssertUnwindSafe(|| {
        // SAFETY: the sequence of exec_simple_query for one statement; every pointer below was
        // just returned by the server and lives in `statement_context` or the portal.
        unsafe {
            pg_sys::SetCurrentStatementStartTimestamp();
            pg_sys::pgstat_report_activity(pg_sys::BackendState::STATE_RUNNING, c_sql.as_ptr());
            // Error reports and the server log name the statement.
            pg_sys::debug_query_string = c_sql.as_ptr();
            pg_sys::StartTransactionCommand();
            pg_sys::MemoryContextSwitchTo(statement_context as pg_sys::MemoryContext);
            let trees = pg_sys::pg_parse_query(c_sql.as_ptr());
            if trees.is_null() || (*trees).length != 1 {
                pgrx::error!("migrate: a top-level step must be exactly one statement");
            }
            let raw = (*(*trees).elements).ptr_value as *mut pg_sys::RawStmt;
            let tag = pg_sys::CreateCommandTag((*raw).stmt);
            let needs_snapshot = pg_sys::analyze_requires_snapshot(raw);
            if needs_snapshot {
                pg_sys::PushActiveSnapshot(pg_sys::GetTransactionSnapshot());
            }
            let queries = pg_sys::pg_analyze_and_rewrite_fixedparams(
                raw,
                c_sql.as_ptr(),
                std::ptr::null(),
                0,
                std::ptr::null_mut(),
            );
            let plans = pg_sys::pg_plan_queries(
                queries,
                c_sql.as_ptr(),
                pg_sys::CURSOR_OPT_PARALLEL_OK as i32,
                std::ptr::null_mut(),
            );
            if needs_snapshot {
                pg_sys::PopActiveSnapshot();
            }
            pgrx::check_for_interrupts!();
            let portal = pg_sys::CreatePortal(c"".as_ptr(), true, true);
            (*portal).visible = false;
            pg_sys::PortalDefineQuery(
                portal,
                std::ptr::null(),
                c_sql.as_ptr(),
                tag,
                plans,
                std::ptr::null_mut(),
            );
            pg_sys::PortalStart(portal, std::ptr::null_mut(), 0, std::ptr::null_mut());
            let receiver = pg_sys::CreateDestReceiver(pg_sys::CommandDest::DestNone);
            let mut completion: pg_sys::QueryCompletion = std::mem::zeroed();
            #[cfg(feature = "pg15")]
            pg_sys::PortalRun(
                portal,
                i64::MAX as std::ffi::c_long,
                true,
                true,
                receiver,
                receiver,
                &mut completion,
            );
            #[cfg(feature = "pg18")]
            pg_sys::PortalRun(
                portal,
                i64::MAX as std::ffi::c_long,
                true,
                receiver,
                receiver,
                &mut completion,
            );
            if let Some(destroy) = (*receiver).rDestroy {
                destroy(receiver);
            }
            pg_sys::PortalDrop(portal, false);
            pg_sys::CommitTransactionCommand();
            restore();
            pg_sys::pgstat_report_stat(false);
            pg_sys::pgstat_report_activity(pg_sys::BackendState::STATE_IDLE, std::ptr::null());
        }
        Ok(())
    }))
    .catch_others(move |error| {
        // SAFETY: as PostgresMain's error recovery: abort whatever transaction the statement
        // was in (it may be one a concurrent build started), which drops the portal.
        unsafe {
            pg_sys::AbortCurrentTransaction();
            pg_sys::pgstat_report_activity(pg_sys::BackendState::STATE_IDLE, std::ptr::null());
        }
        restore();
        Err(Box::new(error))
    })
    .execute();
    // SAFETY: nothing refers to the trees any more: the portal was dropped (or the abort dropped it).
    unsafe { pg_sys::MemoryContextDelete(statement_context as pg_sys::MemoryContext) };
    result
}
