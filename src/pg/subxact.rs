//! Internal subtransactions, the way PL/pgSQL runs a block with an EXCEPTION clause.

use std::panic::AssertUnwindSafe;

use pgrx::pg_sys;
use pgrx::pg_sys::panic::CaughtError;
use pgrx::PgTryBuilder;

/// Runs `f` in a subtransaction. On success the subtransaction is released (its work becomes
/// part of the caller's transaction); on any error it is rolled back and the error returned, so
/// the caller can report it with more context and nothing `f` did remains.
pub fn run<R>(f: impl FnOnce() -> R) -> Result<R, Box<CaughtError>> {
    in_subtransaction(f, true)
}

/// Runs `f` in a subtransaction that is always rolled back: nothing `f` did remains, whether it
/// returned or raised (the error is returned). Dry runs use it.
pub fn run_and_roll_back<R>(f: impl FnOnce() -> R) -> Result<R, Box<CaughtError>> {
    in_subtransaction(f, false)
}

fn in_subtransaction<R>(f: impl FnOnce() -> R, keep: bool) -> Result<R, Box<CaughtError>> {
    // SAFETY: we read the current memory context and resource owner to restore them after the
    // subtransaction ends, as PL/pgSQL's exec_stmt_block does.
    // Kept as addresses so the catch handler stays UnwindSafe.
    let (memory_context, resource_owner) = unsafe {
        (
            pg_sys::CurrentMemoryContext as usize,
            pg_sys::CurrentResourceOwner as usize,
        )
    };
    let restore = move || unsafe {
        // SAFETY: both were valid when saved and outlive the subtransaction.
        pg_sys::MemoryContextSwitchTo(memory_context as pg_sys::MemoryContext);
        pg_sys::CurrentResourceOwner = resource_owner as pg_sys::ResourceOwner;
    };
    let roll_back = move || unsafe {
        // SAFETY: called inside the subtransaction started below; rolling it back releases its
        // locks, memory, SPI connections, user id switches and GUC changes.
        pg_sys::MemoryContextSwitchTo(memory_context as pg_sys::MemoryContext);
        pg_sys::RollbackAndReleaseCurrentSubTransaction();
    };
    // SAFETY: starting a subtransaction is allowed wherever a function runs.
    unsafe {
        pg_sys::BeginInternalSubTransaction(std::ptr::null());
        pg_sys::MemoryContextSwitchTo(memory_context as pg_sys::MemoryContext);
    }
    let mut f = Some(f);
    let result = PgTryBuilder::new(AssertUnwindSafe(|| {
        let result = (f.take().expect("runs once"))();
        if keep {
            // SAFETY: we are in the subtransaction started above, with no error pending.
            unsafe { pg_sys::ReleaseCurrentSubTransaction() };
            restore();
        }
        Ok(result)
    }))
    .catch_others(move |error| {
        roll_back();
        restore();
        Err(Box::new(error))
    })
    .execute();
    // Outside the try block, so a failing rollback is never rolled back a second time.
    if !keep && result.is_ok() {
        roll_back();
        restore();
    }
    result
}
