//! The `ProcessUtility` hook's plumbing: installing it (chained to the previous hook), running
//! the statement inside a `PG_TRY` of our own, and handing an error back to PostgreSQL exactly
//! as it was raised, or with a HINT added.
//!
//! The hook runs for every utility statement of every backend, so it is written the way a C
//! hook is: the hook function itself holds nothing with a destructor (a plain old frame, which
//! a `longjmp` may skip), asks the guard (through [`Callbacks::before`], a guarded call) whether
//! the statement is its business, and otherwise calls the next hook directly: its errors reach
//! PostgreSQL's own handler untouched (pgrx's guarded calls would turn them into Rust panics and
//! back, losing their CONTEXT, cursor position and field names).
//!
//! For the statements the guard does care about, the statement runs under `sigsetjmp`, as
//! `PG_TRY()` does: on success [`Callbacks::after`] runs; on error [`Callbacks::failed`] runs
//! (with the error still pending) and may return a HINT, in which case the error is re-thrown
//! with it (`ReThrowError`: every other field kept), else re-thrown as it is (`PG_RE_THROW`).

use std::ffi::c_char;
use std::sync::OnceLock;

use pgrx::pg_guard;
use pgrx::pg_sys;

/// What the guard does around a statement.
#[derive(Clone, Copy)]
pub struct Callbacks {
    /// Before the statement: true to run it under [`Callbacks::after`] / [`Callbacks::failed`],
    /// false to pass it straight on. May raise (a blocked statement).
    pub before: fn(*mut pg_sys::PlannedStmt, pg_sys::ProcessUtilityContext::Type) -> bool,
    /// After the statement succeeded.
    pub after: fn(),
    /// After it failed with (SQLSTATE, untranslated message, HINT so far): the HINT to raise it
    /// with instead, if any.
    pub failed: fn(i32, Option<&str>, Option<&str>) -> Option<String>,
}

static CALLBACKS: OnceLock<Callbacks> = OnceLock::new();
static mut PREVIOUS: pg_sys::ProcessUtility_hook_type = None;

/// Installs the hook in front of the one installed before (call from `_PG_init` while
/// preloading; once per process).
pub fn install(callbacks: Callbacks) {
    if CALLBACKS.set(callbacks).is_err() {
        return;
    }
    // SAFETY: _PG_init runs single-threaded, before any statement; we keep the previous hook
    // and call it in our place, as every chained hook does.
    unsafe {
        PREVIOUS = pg_sys::ProcessUtility_hook;
        pg_sys::ProcessUtility_hook = Some(process_utility);
    }
}

/// True if this backend has the hook (the library was preloaded).
pub fn installed() -> bool {
    CALLBACKS.get().is_some()
}

// The raw symbols: pgrx's bindings of these catch a longjmp themselves, which must not happen
// here (see the module comment).
#[allow(clashing_extern_declarations)]
unsafe extern "C-unwind" {
    #[link_name = "standard_ProcessUtility"]
    fn raw_standard_process_utility(
        pstmt: *mut pg_sys::PlannedStmt,
        query_string: *const c_char,
        read_only_tree: bool,
        context: pg_sys::ProcessUtilityContext::Type,
        params: pg_sys::ParamListInfo,
        query_env: *mut pg_sys::QueryEnvironment,
        dest: *mut pg_sys::DestReceiver,
        qc: *mut pg_sys::QueryCompletion,
    );
    #[link_name = "ReThrowError"]
    fn raw_rethrow_error(edata: *mut pg_sys::ErrorData) -> !;
    #[link_name = "pg_re_throw"]
    fn raw_pg_re_throw() -> !;
}

#[pg_guard]
extern "C-unwind" fn call_before(
    pstmt: *mut pg_sys::PlannedStmt,
    context: pg_sys::ProcessUtilityContext::Type,
) -> bool {
    CALLBACKS.get().is_some_and(|c| (c.before)(pstmt, context))
}

#[pg_guard]
extern "C-unwind" fn call_after() {
    if let Some(c) = CALLBACKS.get() {
        (c.after)();
    }
}

/// The HINT to re-raise `edata` with (palloc'd in the current context), or NULL.
#[pg_guard]
extern "C-unwind" fn call_failed(edata: *mut pg_sys::ErrorData) -> *mut c_char {
    let text = |p: *const c_char| {
        // SAFETY: ErrorData strings are NULL or NUL-terminated.
        (!p.is_null()).then(|| unsafe { std::ffi::CStr::from_ptr(p) }.to_string_lossy())
    };
    // SAFETY: edata is the copy of the pending error made by the hook.
    let (code, message_id, hint) =
        unsafe { ((*edata).sqlerrcode, (*edata).message_id, (*edata).hint) };
    let Some(c) = CALLBACKS.get() else {
        return std::ptr::null_mut();
    };
    match (c.failed)(code, text(message_id).as_deref(), text(hint).as_deref()) {
        Some(hint) => {
            let hint = std::ffi::CString::new(hint.replace('\0', " ")).unwrap_or_default();
            // SAFETY: pstrdup copies the string into the current memory context.
            unsafe { pg_sys::pstrdup(hint.as_ptr()) }
        }
        None => std::ptr::null_mut(),
    }
}

/// The hook. A plain old frame: nothing here has a destructor, so PostgreSQL's `longjmp` past
/// it (from the next hook, or from our re-throw) is sound, as for a C hook.
#[allow(clippy::too_many_arguments)]
unsafe extern "C-unwind" fn process_utility(
    pstmt: *mut pg_sys::PlannedStmt,
    query_string: *const c_char,
    read_only_tree: bool,
    context: pg_sys::ProcessUtilityContext::Type,
    params: pg_sys::ParamListInfo,
    query_env: *mut pg_sys::QueryEnvironment,
    dest: *mut pg_sys::DestReceiver,
    qc: *mut pg_sys::QueryCompletion,
) {
    // SAFETY: PostgreSQL calls the hook with a valid statement and its arguments, which are
    // passed on unchanged; PREVIOUS was set once in _PG_init.
    let next = move || unsafe {
        match PREVIOUS {
            Some(previous) => previous(
                pstmt,
                query_string,
                read_only_tree,
                context,
                params,
                query_env,
                dest,
                qc,
            ),
            None => raw_standard_process_utility(
                pstmt,
                query_string,
                read_only_tree,
                context,
                params,
                query_env,
                dest,
                qc,
            ),
        }
    };
    if !call_before(pstmt, context) {
        next();
        return;
    }
    // SAFETY: PG_TRY()/PG_CATCH() as elog.h writes them, with cee-scape's sigsetjmp (as pgrx's
    // own FFI guard does); the closure only calls the next hook, so the frames a longjmp
    // skips hold nothing with a destructor.
    unsafe {
        let caller_context = pg_sys::CurrentMemoryContext;
        let saved_exception_stack = pg_sys::PG_exception_stack;
        let saved_context_stack = pg_sys::error_context_stack;
        let jumped = cee_scape::call_with_sigsetjmp(false, |jump_buffer| {
            pg_sys::PG_exception_stack =
                jump_buffer as *const cee_scape::SigJmpBufFields as *mut pg_sys::sigjmp_buf;
            next();
            0
        });
        pg_sys::PG_exception_stack = saved_exception_stack;
        pg_sys::error_context_stack = saved_context_stack;
        if jumped == 0 {
            call_after();
            return;
        }
        // PG_CATCH(): the error is pending, we are in ErrorContext.
        pg_sys::MemoryContextSwitchTo(caller_context);
        let edata = pg_sys::CopyErrorData();
        let hint = call_failed(edata);
        if hint.is_null() {
            pg_sys::FreeErrorData(edata);
            raw_pg_re_throw();
        }
        pg_sys::FlushErrorState();
        (*edata).hint = hint;
        raw_rethrow_error(edata);
    }
}

/// This backend's local transaction id: it changes when a statement commits and starts
/// transactions of its own.
pub fn local_transaction_id() -> u32 {
    // SAFETY: MyProc is set for every backend that runs statements; a plain read.
    unsafe {
        #[cfg(feature = "pg15")]
        {
            (*pg_sys::MyProc).lxid
        }
        #[cfg(not(feature = "pg15"))]
        {
            (*pg_sys::MyProc).vxid.lxid
        }
    }
}

/// A GUC nest level for a statement's own settings (see [`with_lock_timeout`]).
pub fn new_guc_level() -> i32 {
    // SAFETY: as a function's SET clause: the level is popped by end_guc_level, or by
    // (sub)transaction abort on error.
    unsafe { pg_sys::NewGUCNestLevel() }
}

/// Pops a level made by [`new_guc_level`], restoring what was saved in it.
pub fn end_guc_level(level: i32) {
    // SAFETY: the level was made in this transaction by new_guc_level and not popped yet.
    unsafe { pg_sys::AtEOXact_GUC(true, level) }
}

/// `lock_timeout` (ms) as the lock manager reads it.
pub fn lock_timeout_variable() -> i32 {
    // SAFETY: a plain read of a GUC variable.
    unsafe { pg_sys::LockTimeout }
}

/// Sets the lock manager's `lock_timeout` (ms) behind the GUC machinery's back, for a
/// statement that commits and starts transactions of its own (VACUUM): a `SET` would be made
/// permanent by its first internal commit and could not be undone after an error in a later
/// one. The caller restores the value it read, on success and on error. Such statements run
/// user code (index expressions) only in a GUC level of their own, so nothing reads or sets
/// lock_timeout through the GUC machinery meanwhile.
pub fn set_lock_timeout_variable(ms: i32) {
    // SAFETY: a plain write of a GUC variable; no assign hook exists for lock_timeout.
    unsafe { pg_sys::LockTimeout = ms }
}
