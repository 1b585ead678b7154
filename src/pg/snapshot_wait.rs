//! A bound on how long a concurrent index build waits for other transactions
//! (`migrate.snapshot_wait_timeout`).
//!
//! `CREATE INDEX CONCURRENTLY` and `REINDEX CONCURRENTLY` wait, between their phases, for
//! transactions to end: the ones holding locks on the table (writers, before the build and
//! before validation), the ones whose snapshot is older than the build's (before the index
//! becomes valid), and for `REINDEX`, readers of the old index. Each wait is a lock wait on the
//! other transaction's virtual transaction id, so a forgotten session `idle in transaction`
//! makes the build sit there for as long as it lives.
//!
//! The build reports which of these waits it is in through its own progress slot (the row of
//! `pg_stat_progress_create_index`): the phase, and the pid it waits for. While a statement
//! runs under [`watch`], a periodic timer (PostgreSQL's timeout machinery, SIGALRM) reads that
//! slot: when the build has been in one waiting phase for longer than the limit, it asks for
//! a query cancel, exactly as `statement_timeout` does. The build's lock wait serves the
//! interrupt and raises; the caller sees that [`watch`] fired and reports the wait, not a
//! cancel. Nothing else is touched from the signal handler: it reads this backend's own
//! progress slot and sets flags.

use std::ffi::c_int;
use std::sync::atomic::{AtomicBool, AtomicI32, AtomicI64, Ordering};
use std::sync::OnceLock;

use pgrx::pg_sys;

// From utils/timeout.h, which pgrx does not bind.
mod ffi {
    use std::ffi::c_int;
    /// `USER_TIMEOUT`, the first user-definable timeout id: PostgreSQL 17 added
    /// TRANSACTION_TIMEOUT before it.
    #[cfg(feature = "pg15")]
    pub const USER_TIMEOUT: c_int = 12;
    #[cfg(feature = "pg18")]
    pub const USER_TIMEOUT: c_int = 13;
    extern "C-unwind" {
        pub fn RegisterTimeout(id: c_int, handler: Option<unsafe extern "C" fn()>) -> c_int;
        pub fn enable_timeout_every(id: c_int, fin_time: i64, delay_ms: c_int);
        pub fn disable_timeout(id: c_int, keep_indicator: bool);
    }
    // Called from the signal handler: declared raw, without pgrx's error boundary (which
    // would sigsetjmp and rewrite PG_exception_stack inside a signal handler). Neither raises.
    extern "C" {
        #[link_name = "GetCurrentTimestamp"]
        pub fn current_timestamp() -> i64;
        #[link_name = "SetLatch"]
        pub fn set_latch(latch: *mut pgrx::pg_sys::Latch);
    }
}

/// How often the timer looks at the build's phase.
const TICK_MS: c_int = 250;

/// The waiting phases of `pg_stat_progress_create_index` (commands/progress.h).
const WAIT_PHASES: [i64; 5] = [
    pg_sys::PROGRESS_CREATEIDX_PHASE_WAIT_1 as i64,
    pg_sys::PROGRESS_CREATEIDX_PHASE_WAIT_2 as i64,
    pg_sys::PROGRESS_CREATEIDX_PHASE_WAIT_3 as i64,
    pg_sys::PROGRESS_CREATEIDX_PHASE_WAIT_4 as i64,
    pg_sys::PROGRESS_CREATEIDX_PHASE_WAIT_5 as i64,
];

// State shared with the signal handler: this backend only, lock-free.
static ARMED: AtomicBool = AtomicBool::new(false);
static LIMIT_US: AtomicI64 = AtomicI64::new(0);
static PHASE: AtomicI64 = AtomicI64::new(0);
static SINCE: AtomicI64 = AtomicI64::new(0);
static FIRED: AtomicBool = AtomicBool::new(false);
static FIRED_PHASE: AtomicI64 = AtomicI64::new(0);
static HOLDER: AtomicI32 = AtomicI32::new(0);

/// The timeout id PostgreSQL gave us (registered once per process).
static TIMEOUT_ID: OnceLock<c_int> = OnceLock::new();

/// A wait that ran out: which phase and which pid it was waiting for when it did.
#[derive(Debug, Clone, Copy)]
pub struct Expired {
    pub phase: i64,
    pub holder: i32,
}

impl Expired {
    /// The phase as `pg_stat_progress_create_index` names it.
    pub fn phase_name(&self) -> &'static str {
        phase_name(self.phase)
    }

    /// True for the wait on older snapshots (the one a session idle in transaction causes
    /// without touching the table).
    pub fn for_snapshots(&self) -> bool {
        self.phase == pg_sys::PROGRESS_CREATEIDX_PHASE_WAIT_3 as i64
    }
}

pub fn phase_name(phase: i64) -> &'static str {
    match phase as u32 {
        pg_sys::PROGRESS_CREATEIDX_PHASE_WAIT_1 => "waiting for writers before build",
        pg_sys::PROGRESS_CREATEIDX_PHASE_WAIT_2 => "waiting for writers before validation",
        pg_sys::PROGRESS_CREATEIDX_PHASE_WAIT_3 => "waiting for old snapshots",
        pg_sys::PROGRESS_CREATEIDX_PHASE_WAIT_4 => "waiting for readers before marking dead",
        pg_sys::PROGRESS_CREATEIDX_PHASE_WAIT_5 => "waiting for readers before dropping",
        _ => "waiting",
    }
}

/// The timer's handler: runs inside SIGALRM, so it only reads this backend's own progress slot
/// and sets flags (PostgreSQL's `handle_sig_alarm` sets the latch after handlers run).
unsafe extern "C" fn tick() {
    if !ARMED.load(Ordering::Relaxed) {
        return;
    }
    // SAFETY: MyBEEntry is this backend's own status slot (or null before it has one); only
    // this process writes it, so between two of its own writes the fields are stable, and a
    // torn read of one aligned 8-byte integer is impossible on the platforms we build for.
    let (command, kind, phase, holder) = unsafe {
        let entry = pg_sys::MyBEEntry;
        if entry.is_null() {
            return;
        }
        let params = &(*entry).st_progress_param;
        (
            (*entry).st_progress_command,
            params[pg_sys::PROGRESS_CREATEIDX_COMMAND as usize],
            params[pg_sys::PROGRESS_CREATEIDX_PHASE as usize],
            params[pg_sys::PROGRESS_WAITFOR_CURRENT_PID as usize],
        )
    };
    let concurrent = kind == pg_sys::PROGRESS_CREATEIDX_COMMAND_CREATE_CONCURRENTLY as i64
        || kind == pg_sys::PROGRESS_CREATEIDX_COMMAND_REINDEX_CONCURRENTLY as i64;
    if command != pg_sys::ProgressCommandType::PROGRESS_COMMAND_CREATE_INDEX
        || !concurrent
        || !WAIT_PHASES.contains(&phase)
    {
        PHASE.store(0, Ordering::Relaxed);
        return;
    }
    // SAFETY: gettimeofday, as PostgreSQL's own timeout handler calls it.
    let now = unsafe { ffi::current_timestamp() };
    if PHASE.load(Ordering::Relaxed) != phase {
        PHASE.store(phase, Ordering::Relaxed);
        SINCE.store(now, Ordering::Relaxed);
        return;
    }
    if now - SINCE.load(Ordering::Relaxed) < LIMIT_US.load(Ordering::Relaxed) {
        return;
    }
    ARMED.store(false, Ordering::Relaxed);
    FIRED_PHASE.store(phase, Ordering::Relaxed);
    HOLDER.store(i32::try_from(holder).unwrap_or(0), Ordering::Relaxed);
    FIRED.store(true, Ordering::Relaxed);
    // SAFETY: what StatementTimeoutHandler does: the lock wait's CHECK_FOR_INTERRUPTS raises.
    unsafe {
        pg_sys::QueryCancelPending = 1;
        pg_sys::InterruptPending = 1;
        ffi::set_latch(pg_sys::MyLatch);
    }
}

/// Runs `f` (a top-level statement) with every waiting phase of a concurrent index build in it
/// bounded by `limit_ms` (0: no bound). Returns what `f` returned, and the expired wait if the
/// bound cancelled it.
pub fn watch<R>(limit_ms: i32, f: impl FnOnce() -> R) -> (R, Option<Expired>) {
    if limit_ms <= 0 {
        return (f(), None);
    }
    // SAFETY: registering a timeout handler is how extensions add timeouts; once per process.
    let id = *TIMEOUT_ID.get_or_init(|| unsafe {
        pg_sys::ffi::pg_guard_ffi_boundary(|| ffi::RegisterTimeout(ffi::USER_TIMEOUT, Some(tick)))
    });
    FIRED.store(false, Ordering::Relaxed);
    PHASE.store(0, Ordering::Relaxed);
    LIMIT_US.store(i64::from(limit_ms) * 1000, Ordering::Relaxed);
    ARMED.store(true, Ordering::Relaxed);
    let tick_ms = TICK_MS.min(limit_ms.max(10));
    // SAFETY: arms the registered timeout; disarmed below whatever `f` does (it returns: the
    // statement runner catches errors).
    unsafe {
        let first = pg_sys::GetCurrentTimestamp() + i64::from(tick_ms) * 1000;
        pg_sys::ffi::pg_guard_ffi_boundary(|| ffi::enable_timeout_every(id, first, tick_ms));
    }
    let result = f();
    ARMED.store(false, Ordering::Relaxed);
    // SAFETY: disabling our own timeout; a no-op if it is not armed.
    unsafe { pg_sys::ffi::pg_guard_ffi_boundary(|| ffi::disable_timeout(id, false)) };
    if !FIRED.swap(false, Ordering::Relaxed) {
        return (result, None);
    }
    // The build may have finished between the request and its next interrupt check: then the
    // cancel must not hit whatever runs next.
    // SAFETY: a plain store of this backend's flag, outside any signal handler's window (the
    // timer is off).
    unsafe { pg_sys::QueryCancelPending = 0 };
    let expired = Expired {
        phase: FIRED_PHASE.load(Ordering::Relaxed),
        holder: HOLDER.load(Ordering::Relaxed),
    };
    (result, Some(expired))
}
