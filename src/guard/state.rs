//! Backend-local guard state that lives for a transaction: rules permitted with
//! `migrate.allow()` (or a `-- migrate:allow` line), the lock_timeout values to restore after
//! each guarded statement, and which rules were already reported for the running statement (so
//! the `table_rewrite` catch-all does not report a rewrite that was permitted or warned about).
//! Everything is cleared when the transaction ends; aborted subtransactions drop their part.

use std::cell::RefCell;
use std::sync::Once;

use pgrx::pg_sys;

use crate::dependent_views::SavedViews;

/// A rule permitted for the rest of the transaction (or the running migration).
#[derive(Clone, Debug)]
pub struct Allowance {
    pub rule: String,
    pub reason: String,
    /// Subtransaction nesting level at which it was granted.
    level: i32,
    /// True for `-- migrate:allow` lines: removed when their migration step ends.
    scoped_to_migration: bool,
}

/// lock_timeout as it was before a guarded statement changed it.
struct SavedTimeout {
    previous: Option<String>,
    level: i32,
}

#[derive(Default)]
struct GuardState {
    allowances: Vec<Allowance>,
    saved_timeouts: Vec<SavedTimeout>,
    /// Rules already reported (permitted or warned) for the running statement.
    statement_reported: Vec<&'static str>,
    /// What the running statement dropped (`sql_drop`), for its schema-change row, with the
    /// subtransaction level it was seen at.
    dropped: Option<(Dropped, i32)>,
    /// One entry per DDL statement between its `ddl_command_start` and `ddl_command_end`
    /// (nested statements push their own): the views dropped at its start, to recreate at
    /// its end, with the subtransaction level.
    view_rebuilds: Vec<(Option<SavedViews>, i32)>,
}

/// Objects a statement dropped, as `schema_changes` records them.
#[derive(Default)]
pub struct Dropped {
    pub objects: Vec<String>,
}

thread_local! {
    static STATE: RefCell<GuardState> = RefCell::new(GuardState::default());
    /// While `migrate.plan()` runs statements: every finding the guard makes, as text. The
    /// guard then judges in warn mode and neither reports nor logs anything.
    static DRY_RUN: RefCell<Option<Vec<String>>> = const { RefCell::new(None) };
    /// The `-- migrate:allow` lines of the migration a job worker runs statement by statement,
    /// top-level: each statement is a transaction of its own (VACUUM FULL several), which the
    /// transaction-scoped allowances would not outlive.
    static JOB_ALLOWANCES: RefCell<Vec<(String, String)>> = const { RefCell::new(Vec::new()) };
}

/// Permits the rules of a non-transactional migration's `-- migrate:allow` lines for every
/// statement the job worker runs from now on (`migrate.add()` checked rule and reason).
pub fn set_job_allowances(allowances: Vec<(String, String)>) {
    JOB_ALLOWANCES.with(|a| *a.borrow_mut() = allowances);
}

/// Runs `f` with the guard in dry-run mode; returns what `f` returned and the findings.
pub fn collect_findings<R>(f: impl FnOnce() -> R) -> (R, Vec<String>) {
    let findings = Findings::collect();
    let result = f();
    (result, findings.drain())
}

/// The guard in dry-run mode for as long as this lives, also when an error unwinds; the
/// findings are taken out as they come (one statement's at a time), so the ones of a statement
/// that failed are still there after its error is caught outside.
pub struct Findings;

impl Findings {
    pub fn collect() -> Self {
        DRY_RUN.with(|d| *d.borrow_mut() = Some(Vec::new()));
        Findings
    }

    /// The findings made since the last drain.
    pub fn drain(&self) -> Vec<String> {
        DRY_RUN.with(|d| {
            d.borrow_mut()
                .as_mut()
                .map(std::mem::take)
                .unwrap_or_default()
        })
    }
}

impl Drop for Findings {
    fn drop(&mut self) {
        DRY_RUN.with(|d| d.borrow_mut().take());
    }
}

/// True while findings are being collected for `migrate.plan()`.
pub fn dry_run() -> bool {
    DRY_RUN.with(|d| d.borrow().is_some())
}

/// Records a finding for `migrate.plan()`.
pub fn collect(finding: String) {
    DRY_RUN.with(|d| {
        if let Some(v) = d.borrow_mut().as_mut() {
            v.push(finding);
        }
    });
}

fn nest_level() -> i32 {
    crate::pg::backend::nest_level()
}

#[pgrx::pg_guard]
unsafe extern "C-unwind" fn on_xact_event(
    _event: pg_sys::XactEvent::Type,
    _arg: *mut std::ffi::c_void,
) {
    // Commit, abort or prepare: nothing carries over to the next transaction. Every
    // transaction ends here, DML ones too, so those (with nothing recorded) cost one check.
    super::log::discard_deferred();
    STATE.with(|s| {
        let mut s = s.borrow_mut();
        if !(s.allowances.is_empty()
            && s.saved_timeouts.is_empty()
            && s.statement_reported.is_empty()
            && s.dropped.is_none()
            && s.view_rebuilds.is_empty())
        {
            *s = GuardState::default();
        }
    });
}

#[pgrx::pg_guard]
unsafe extern "C-unwind" fn on_subxact_event(
    event: pg_sys::SubXactEvent::Type,
    _my: pg_sys::SubTransactionId,
    _parent: pg_sys::SubTransactionId,
    _arg: *mut std::ffi::c_void,
) {
    if event == pg_sys::SubXactEvent::SUBXACT_EVENT_ABORT_SUB {
        // PostgreSQL undoes the subtransaction's GUC changes; forget our records of them.
        let level = nest_level();
        STATE.with(|s| {
            let mut s = s.borrow_mut();
            s.allowances.retain(|a| a.level < level);
            s.saved_timeouts.retain(|t| t.level < level);
            s.view_rebuilds.retain(|(_, l)| *l < level);
            if s.dropped.as_ref().is_some_and(|(_, l)| *l >= level) {
                s.dropped = None;
            }
        });
    }
}

/// Registers the transaction callbacks once per backend.
pub fn init() {
    static REGISTER: Once = Once::new();
    REGISTER.call_once(|| {
        crate::pg::backend::register_transaction_callbacks(
            Some(on_xact_event),
            Some(on_subxact_event),
        )
    });
}

/// Permits `rule` for the rest of the transaction.
pub fn allow(rule: &str, reason: &str, scoped_to_migration: bool) {
    let level = nest_level();
    STATE.with(|s| {
        s.borrow_mut().allowances.push(Allowance {
            rule: rule.to_string(),
            reason: reason.to_string(),
            level,
            scoped_to_migration,
        })
    });
}

/// Permits `rules` while `f` runs (the extension's own DDL that is the safe form of what the
/// rule warns about, such as contract_column's DROP COLUMN), and no longer.
pub fn allow_during<R>(rules: &[&str], reason: &str, f: impl FnOnce() -> R) -> R {
    let before = STATE.with(|s| s.borrow().allowances.len());
    for rule in rules {
        allow(rule, reason, false);
    }
    let result = f();
    STATE.with(|s| s.borrow_mut().allowances.truncate(before));
    result
}

/// Removes the allowances of a migration's `-- migrate:allow` lines.
pub fn end_migration_scope() {
    STATE.with(|s| s.borrow_mut().allowances.retain(|a| !a.scoped_to_migration));
}

/// The allowance for `rule`, if any.
pub fn allowance(rule: &str) -> Option<Allowance> {
    STATE
        .with(|s| {
            s.borrow()
                .allowances
                .iter()
                .rev()
                .find(|a| a.rule == rule)
                .cloned()
        })
        .or_else(|| {
            JOB_ALLOWANCES.with(|a| {
                a.borrow()
                    .iter()
                    .find(|(r, _)| r == rule)
                    .map(|(rule, reason)| Allowance {
                        rule: rule.clone(),
                        reason: reason.clone(),
                        level: 0,
                        scoped_to_migration: true,
                    })
            })
        })
}

/// Remembers the rules reported (permitted or warned) for the running statement.
pub fn set_statement_reported(rules: Vec<&'static str>) {
    STATE.with(|s| s.borrow_mut().statement_reported = rules);
}

pub fn statement_reported() -> Vec<&'static str> {
    STATE.with(|s| s.borrow().statement_reported.clone())
}

/// Records lock_timeout before a guarded statement changes it (None: it was not changed).
pub fn push_saved_timeout(previous: Option<String>) {
    let level = nest_level();
    STATE.with(|s| {
        s.borrow_mut()
            .saved_timeouts
            .push(SavedTimeout { previous, level })
    });
}

/// The lock_timeout to restore after the statement that just ended, if it changed it.
pub fn pop_saved_timeout() -> Option<String> {
    STATE.with(|s| s.borrow_mut().saved_timeouts.pop().and_then(|t| t.previous))
}

/// Remembers the views the starting statement dropped (None: it dropped none), until its
/// `ddl_command_end`.
pub fn push_view_rebuild(saved: Option<SavedViews>) {
    let level = nest_level();
    STATE.with(|s| s.borrow_mut().view_rebuilds.push((saved, level)));
}

/// The views to recreate now that the statement ended, if it dropped any.
pub fn pop_view_rebuild() -> Option<SavedViews> {
    STATE.with(|s| s.borrow_mut().view_rebuilds.pop().and_then(|(v, _)| v))
}

/// Remembers what the running statement dropped, until its `ddl_command_end`.
pub fn remember_dropped(dropped: Dropped) {
    let level = nest_level();
    STATE.with(|s| s.borrow_mut().dropped = Some((dropped, level)));
}

/// What the statement that just ended dropped (nothing for most statements).
pub fn take_dropped() -> Dropped {
    STATE.with(|s| {
        s.borrow_mut()
            .dropped
            .take()
            .map(|(d, _)| d)
            .unwrap_or_default()
    })
}

/// How many lock_timeout records the running statements left (see [`saved_timeout_bounded`]).
pub fn saved_timeouts_len() -> usize {
    STATE.with(|s| s.borrow().saved_timeouts.len())
}

/// True if the record at `index` (pushed by a statement's `ddl_command_start`) says the guard
/// lowered lock_timeout for that statement.
pub fn saved_timeout_bounded(index: usize) -> bool {
    STATE.with(|s| {
        s.borrow()
            .saved_timeouts
            .get(index)
            .is_some_and(|t| t.previous.is_some())
    })
}
