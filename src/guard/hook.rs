//! The `ProcessUtility` hook, installed only when the library is preloaded
//! (`shared_preload_libraries = 'migrate'`); without it the event triggers are the guard.
//!
//! - For the statements event triggers never see ([`super::utility`]: `VACUUM FULL`,
//!   `CLUSTER`, `REINDEX`, `REFRESH MATERIALIZED VIEW`, `TRUNCATE`, `LOCK TABLE` in a strong
//!   mode) it judges them on the same path as the event triggers ([`super::judge`]), then runs
//!   them with their lock wait bounded by `migrate.lock_timeout`, and restores `lock_timeout`
//!   after them, on success and on error.
//! - For DDL (which the event triggers judge and bound) it only watches: a lock timeout the
//!   guard gave the statement gets the guard's HINT.
//! - Everything else, DML never even reaches a `ProcessUtility` hook, passes straight on:
//!   no catalog read, no state.
//!
//! The hook runs in the caller's context, as the statement's own user: nothing is judged
//! with more privilege than the statement has; the guard_log bookkeeping switches to the
//! registry owner, as for the event triggers.

use std::cell::RefCell;

use migrate_core::rules::Action;
use pgrx::pg_sys;

use super::judge::{effective_mode, judge};
use super::log;
use super::state;
use super::utility::{self, Seen};
use crate::gucs::{self, GuardMode};
use crate::pg::utility_hook::{self as raw, Callbacks};

/// How a statement's lock_timeout is put back.
#[derive(Clone, Copy)]
enum Restore {
    /// Not changed by the hook.
    Nothing,
    /// Set in a GUC nest level of the statement's own (popped after it; on error, by the
    /// abort), within transaction `lxid`.
    Level { level: i32, lxid: u32 },
    /// Written to the variable (a statement with transactions of its own); the old value.
    Variable(i32),
}

/// One statement the hook runs (they nest: a TRUNCATE trigger can run a LOCK TABLE).
struct Frame {
    restore: Restore,
    /// What the guard bounded and to how many ms, for a lock timeout's HINT; for DDL, the
    /// event trigger decides (see `ddl_depth`).
    bounded: Option<(String, i32)>,
    /// For DDL: the depth of the event triggers' lock_timeout records before it ran.
    ddl: Option<(pg_sys::CommandTag::Type, usize)>,
    /// True if its guard_log rows wait for the statement to succeed (`LOCK TABLE`).
    deferred: bool,
}

thread_local! {
    static FRAMES: RefCell<Vec<Frame>> = const { RefCell::new(Vec::new()) };
}

/// Installs the hook: from `_PG_init`, only while the postmaster loads
/// `shared_preload_libraries` (a hook installed by a later `LOAD` would guard one backend).
pub fn install() {
    raw::install(Callbacks {
        before,
        after,
        failed,
    });
}

/// True if the hook guards this backend's statements.
pub fn active() -> bool {
    raw::installed()
}

/// True if the extension is installed in this database (the hook is server-wide; the guard's
/// tables and settings exist only where `CREATE EXTENSION migrate` ran).
fn extension_installed() -> bool {
    // SAFETY: a pg_extension lookup by name; missing_ok.
    unsafe { pg_sys::get_extension_oid(c"migrate".as_ptr(), true) != pg_sys::InvalidOid }
}

fn before(pstmt: *mut pg_sys::PlannedStmt, context: pg_sys::ProcessUtilityContext::Type) -> bool {
    // SAFETY: PostgreSQL passes a valid PlannedStmt of a utility statement.
    let node = unsafe { (*pstmt).utilityStmt };
    // SAFETY: the statement's parse tree.
    match unsafe { utility::judged(node) } {
        Seen::Other => false,
        Seen::Ddl => {
            // SAFETY: the statement's parse tree.
            let tag = unsafe { pg_sys::CreateCommandTag(node) };
            push(Frame {
                restore: Restore::Nothing,
                bounded: None,
                ddl: Some((tag, state::saved_timeouts_len())),
                deferred: false,
            });
            true
        }
        Seen::Judged { own_transactions } => judged(node, context, own_transactions),
    }
}

fn push(frame: Frame) {
    FRAMES.with(|f| f.borrow_mut().push(frame));
}

fn judged(
    node: *mut pg_sys::Node,
    context: pg_sys::ProcessUtilityContext::Type,
    own_transactions: bool,
) -> bool {
    // A statement that commits internally refuses to run in a transaction block or a function
    // (PreventInTransactionBlock): PostgreSQL's error comes next; nothing to judge.
    let top_level = context == pg_sys::ProcessUtilityContext::PROCESS_UTILITY_TOPLEVEL
        && !crate::pg::backend::in_transaction_block();
    if own_transactions && !top_level {
        return false;
    }
    if !extension_installed() {
        return false;
    }
    state::init();
    let mode = effective_mode();
    if mode == GuardMode::Off {
        return false;
    }
    // As the statement's own user; restricted, as the event triggers analyse.
    // SAFETY: the statement's parse tree.
    let facts = crate::pg::security::restricted(|| unsafe { utility::analyse(node) });
    // LOCK TABLE takes its lock before the transaction's snapshot: no row is written (which
    // would take the snapshot) until it has.
    // SAFETY: every Node starts with its tag.
    let deferred = unsafe { (*node).type_ } == pg_sys::NodeTag::T_LockStmt;
    if deferred {
        log::defer();
    }
    judge(&facts, mode);
    let what = facts.first().map(|f| {
        let statement = match f.action {
            Action::VacuumFull { .. } => "VACUUM FULL".to_string(),
            // SAFETY: the statement's parse tree.
            _ => unsafe { tag_name(pg_sys::CreateCommandTag(node)) },
        };
        format!("{statement} on {}", f.table.name)
    });
    // A partitioned table's CLUSTER or REINDEX runs partition by partition, each in a
    // transaction of its own.
    // SAFETY: the statement's parse tree.
    let own_transactions =
        own_transactions || (top_level && unsafe { utility::recurses_in_own_transactions(node) });
    let (restore, bounded) = bound_lock_wait(own_transactions);
    push(Frame {
        restore,
        bounded: bounded.map(|ms| {
            // SAFETY: the statement's parse tree.
            let tag = unsafe { tag_name(pg_sys::CreateCommandTag(node)) };
            (what.unwrap_or(tag), ms)
        }),
        ddl: None,
        deferred,
    });
    true
}

/// The command tag's name (`VACUUM`, `ALTER TABLE`).
///
/// # Safety
/// A valid command tag.
unsafe fn tag_name(tag: pg_sys::CommandTag::Type) -> String {
    // SAFETY: GetCommandTagName returns a static string for every tag.
    unsafe { std::ffi::CStr::from_ptr(pg_sys::GetCommandTagName(tag)) }
        .to_string_lossy()
        .into_owned()
}

/// Lowers lock_timeout to migrate.lock_timeout for the statement, as `ddl_command_start` does
/// for DDL (unless the session's own is lower and not 0); returns how to restore it and the
/// bound in ms.
fn bound_lock_wait(own_transactions: bool) -> (Restore, Option<i32>) {
    let target = gucs::lock_timeout_ms();
    let current = raw::lock_timeout_variable();
    if target == 0 || (current != 0 && current <= target) {
        return (Restore::Nothing, None);
    }
    if own_transactions {
        raw::set_lock_timeout_variable(target);
        return (Restore::Variable(current), Some(target));
    }
    let level = raw::new_guc_level();
    let value = std::ffi::CString::new(format!("{target}ms")).expect("digits");
    crate::pg::security::set_config(c"lock_timeout", &value, pg_sys::GucAction::GUC_ACTION_SAVE);
    (
        Restore::Level {
            level,
            lxid: raw::local_transaction_id(),
        },
        Some(target),
    )
}

fn pop() -> Option<Frame> {
    FRAMES.with(|f| f.borrow_mut().pop())
}

fn after() {
    let Some(frame) = pop() else { return };
    if frame.deferred {
        log::write_deferred();
    }
    match frame.restore {
        Restore::Nothing => {}
        // Had the statement committed (it does not), that commit popped the level already.
        Restore::Level { level, lxid } if lxid == raw::local_transaction_id() => {
            raw::end_guc_level(level)
        }
        Restore::Level { .. } => {}
        Restore::Variable(previous) => raw::set_lock_timeout_variable(previous),
    }
    if frame.ddl.is_none() {
        // Nothing of this statement is left for the table_rewrite catch-all.
        state::set_statement_reported(Vec::new());
    }
}

/// `message_id` of the error the lock manager raises when lock_timeout expires.
const LOCK_TIMEOUT_MESSAGE: &str = "canceling statement due to lock timeout";

fn failed(code: i32, message_id: Option<&str>, hint: Option<&str>) -> Option<String> {
    let frame = pop()?;
    if frame.deferred {
        log::discard_deferred();
    }
    // A GUC level is popped by the abort that follows; a written variable is ours to restore.
    if let Restore::Variable(previous) = frame.restore {
        raw::set_lock_timeout_variable(previous);
    }
    if let Some(ours) = super::views::hint_for_failure(code, message_id) {
        return Some(match hint {
            Some(h) => format!("{h}\n{ours}"),
            None => ours,
        });
    }
    if code != pgrx::PgSqlErrorCode::ERRCODE_LOCK_NOT_AVAILABLE as i32
        || message_id != Some(LOCK_TIMEOUT_MESSAGE)
        || hint.is_some_and(|h| h.contains("migrate.lock_timeout"))
    {
        return None;
    }
    let (what, ms) = match (frame.bounded, frame.ddl) {
        (Some(bounded), _) => bounded,
        // The event trigger of this DDL bounded it (its record is still there: ddl_command_end
        // did not run).
        (None, Some((tag, depth))) if state::saved_timeout_bounded(depth) => {
            // SAFETY: a tag taken from the statement.
            (unsafe { tag_name(tag) }, gucs::lock_timeout_ms())
        }
        _ => return None,
    };
    let ours = lock_timeout_hint(&what, ms);
    Some(match hint {
        Some(h) => format!("{h}\n{ours}"),
        None => ours,
    })
}

/// The HINT of a lock timeout the guard set.
pub fn lock_timeout_hint(what: &str, ms: i32) -> String {
    format!(
        "{what} gave up after waiting {ms} ms for its lock: migrate set lock_timeout for it \
         (migrate.lock_timeout = {ms}ms), so that it fails instead of making every later query \
         on the table queue behind it. Another transaction holds a conflicting lock \
         (pg_locks and pg_stat_activity show which); run it again when that one ends. CALL \
         migrate.deploy() does that itself: it retries a migration that gives up on a lock up \
         to migrate.lock_retries = {} times, waiting migrate.lock_retry_delay = {} ms, \
         doubled each time, in between.",
        gucs::lock_retries(),
        gucs::lock_retry_delay_ms()
    )
}
