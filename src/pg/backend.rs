//! Facts about this backend and its server that live in C globals, and the few things a
//! backend tells the server about itself.

use std::ffi::CString;

use pgrx::pg_sys;

/// This backend's process id.
pub fn pid() -> i32 {
    // SAFETY: set at process start, never changed.
    unsafe { pg_sys::MyProcPid }
}

/// The database this backend is connected to.
pub fn database() -> pg_sys::Oid {
    // SAFETY: set at connection, never changed.
    unsafe { pg_sys::MyDatabaseId }
}

/// `max_worker_processes`.
pub fn max_worker_processes() -> i32 {
    // SAFETY: a plain read of a GUC variable.
    unsafe { pg_sys::max_worker_processes }
}

/// The current transaction's subtransaction depth (1 at top level).
pub fn nest_level() -> i32 {
    // SAFETY: reads the current transaction's nesting depth.
    unsafe { pg_sys::GetCurrentTransactionNestLevel() }
}

/// The current subtransaction's id (1 at top level; what a relation's `rd_createSubid` holds).
pub fn subtransaction_id() -> pg_sys::SubTransactionId {
    // SAFETY: reads the current transaction state.
    unsafe { pg_sys::GetCurrentSubTransactionId() }
}

/// The full transaction id of the current top-level transaction, assigning one if needed.
pub fn top_full_transaction_id() -> u64 {
    // SAFETY: inside a transaction (callers are); assigning an xid is allowed outside recovery.
    unsafe { pg_sys::GetTopFullTransactionId() }.value
}

/// Shows `name` as this backend's `application_name` in pg_stat_activity.
pub fn report_appname(name: &str) {
    let name = CString::new(name.replace('\0', " ")).unwrap_or_default();
    // SAFETY: pgstat_report_appname copies the string into shared memory.
    unsafe { pg_sys::pgstat_report_appname(name.as_ptr()) };
}

/// Registers callbacks for the end of every transaction and subtransaction of this backend,
/// for the rest of its life. Call once (guard it with a `Once`).
pub fn register_transaction_callbacks(
    xact: pg_sys::XactCallback,
    subxact: pg_sys::SubXactCallback,
) {
    // SAFETY: the callbacks are 'static functions; registration only appends to a list.
    unsafe {
        pg_sys::RegisterXactCallback(xact, std::ptr::null_mut());
        pg_sys::RegisterSubXactCallback(subxact, std::ptr::null_mut());
    }
}

/// True inside `BEGIN ... COMMIT` (not a single implicit statement).
pub fn in_transaction_block() -> bool {
    // SAFETY: reads transaction state.
    unsafe { pg_sys::IsTransactionBlock() }
}

/// True while the postmaster loads `shared_preload_libraries`.
pub fn preloading() -> bool {
    // SAFETY: reads a flag the postmaster sets while loading shared_preload_libraries.
    unsafe { pg_sys::process_shared_preload_libraries_in_progress }
}

/// Sleeps without serving interrupts or touching the latch (for sub-second waits in code that
/// must not be interrupted half-way).
pub fn sleep_us(us: i64) {
    // SAFETY: a plain sleep.
    unsafe { pg_sys::pg_usleep(us as std::ffi::c_long) };
}

/// The name of the portal running the current client statement (a protocol-level cursor that
/// is running the extension's own call), if any.
pub fn active_portal_name() -> Option<String> {
    // SAFETY: ActivePortal is NULL or the portal being run; its name is a NUL-terminated string
    // that lives as long as the portal.
    unsafe {
        let portal = pg_sys::ActivePortal;
        if portal.is_null() || (*portal).name.is_null() {
            return None;
        }
        Some(
            std::ffi::CStr::from_ptr((*portal).name)
                .to_string_lossy()
                .into_owned(),
        )
    }
}

/// The outer user id: the session user or the role of the last `SET ROLE` (what a
/// SECURITY DEFINER function's caller is).
pub fn outer_user() -> pg_sys::Oid {
    // SAFETY: reads a backend global.
    unsafe { pg_sys::GetOuterUserId() }
}

/// True while an extension's script runs (CREATE EXTENSION, ALTER EXTENSION UPDATE).
pub fn creating_extension() -> bool {
    // SAFETY: a plain read of a backend global.
    unsafe { pg_sys::creating_extension }
}

/// True in a read-only transaction (`SET TRANSACTION READ ONLY`, a standby).
pub fn read_only_transaction() -> bool {
    // SAFETY: a plain read of a backend global.
    unsafe { pg_sys::XactReadOnly }
}

/// The role the session logged in as (`session_user`).
pub fn session_user() -> pg_sys::Oid {
    // SAFETY: reads a backend global.
    unsafe { pg_sys::GetSessionUserId() }
}

/// The text of the query the client sent (`debug_query_string`), or "" when there is none.
pub fn client_query() -> String {
    // SAFETY: debug_query_string is NULL or the current query's NUL-terminated text.
    unsafe { c_string(pg_sys::debug_query_string) }
}

/// `application_name`.
pub fn application_name() -> String {
    // SAFETY: application_name is NULL or a NUL-terminated GUC string.
    unsafe { c_string(pg_sys::application_name) }
}

/// The backend's `lock_timeout` in milliseconds (0: none).
pub fn lock_timeout_ms() -> i32 {
    // SAFETY: a plain read of a GUC variable.
    unsafe { pg_sys::LockTimeout }
}

/// The current value of setting `name` as `SHOW` prints it; None for an unknown setting.
pub fn setting(name: &std::ffi::CStr) -> Option<String> {
    // SAFETY: missing_ok returns NULL for an unknown name; otherwise a pointer into GUC storage
    // that is copied before anything can change it.
    unsafe {
        let value = pg_sys::GetConfigOption(name.as_ptr(), true, false);
        (!value.is_null()).then(|| c_string(value))
    }
}

/// Copies a C string that may be NULL.
///
/// # Safety
/// `p` is NULL or points to a NUL-terminated string.
unsafe fn c_string(p: *const std::ffi::c_char) -> String {
    if p.is_null() {
        String::new()
    } else {
        // SAFETY: non-NULL and NUL-terminated, as the caller promises.
        unsafe { std::ffi::CStr::from_ptr(p) }
            .to_string_lossy()
            .into_owned()
    }
}
