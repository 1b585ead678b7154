//! The committed unit a migration statement belongs to, as `CALL migrate.deploy()` commits
//! them: one transactional migration (a step), or one statement of a non-transactional one.
//!
//! `deploy()` commits after every migration, so a table created by an earlier migration of the
//! same run is, when the next one runs, an existing table like any other. `apply()` and
//! `rollback()` run every migration in one transaction, and `plan()` and `verify()` in one
//! rolled-back subtransaction, where PostgreSQL's own "created in this transaction"
//! (`rd_createSubid`) covers the earlier migrations too. So each migration step marks where its
//! unit starts (the subtransaction it runs in, [`Scope::step`]), and:
//!
//! - `plan()` and `verify()` (the guard in dry-run mode) judge a table created before the
//!   running unit as deploy() will: an existing table, by its size;
//! - `apply()` and `rollback()` keep their one-transaction semantics (exempt), and say in a
//!   WARNING when a later deploy() would block the statement ([`note_deploy_would_block`]).
//!
//! The unit also knows the strong locks held when it started, so that the guard can tell the
//! ones its own earlier statements took (rule `lock_held_across_statements`, see
//! [`super::held`]).

use std::cell::RefCell;
use std::collections::HashMap;

use migrate_core::rules::{self, Severity, TableFacts};
use pgrx::pg_sys;

use super::facts::Fact;
use super::state;
use crate::gucs::GuardMode;
use crate::pg::observe::own_relation_locks;

/// The running unit.
#[derive(Clone)]
struct Unit {
    /// Relations whose `rd_createSubid` is at least this were created in the unit; those
    /// below it (but not 0) earlier in the transaction. `u32::MAX` for a unit that has run
    /// nothing yet (a statement of a non-transactional migration that plan() only analyses).
    first_subxact: pg_sys::SubTransactionId,
    /// Lock modes (bit masks) this backend held on each relation when the unit started.
    locks_before: HashMap<pg_sys::Oid, u32>,
}

thread_local! {
    static UNIT: RefCell<Option<Unit>> = const { RefCell::new(None) };
}

/// A unit, from [`Scope::step`] or [`Scope::each_statement`] until drop (also when an error
/// unwinds through it); the previous one is restored then.
pub struct Scope(Option<Unit>);

impl Scope {
    /// A migration step that runs in the current subtransaction and that deploy() commits as
    /// one transaction.
    pub fn step() -> Self {
        let mut locks_before: HashMap<pg_sys::Oid, u32> = HashMap::new();
        for (oid, mask) in own_relation_locks() {
            *locks_before.entry(oid).or_default() |= mask;
        }
        Self::enter(Unit {
            first_subxact: crate::pg::backend::subtransaction_id(),
            locks_before,
        })
    }

    /// Statements that each commit on their own (a non-transactional migration): every table
    /// that exists is an existing one.
    pub fn each_statement() -> Self {
        Self::enter(Unit {
            first_subxact: pg_sys::SubTransactionId::MAX,
            locks_before: HashMap::new(),
        })
    }

    fn enter(unit: Unit) -> Self {
        Scope(UNIT.with(|u| u.borrow_mut().replace(unit)))
    }
}

impl Drop for Scope {
    fn drop(&mut self) {
        let previous = self.0.take();
        UNIT.with(|u| *u.borrow_mut() = previous);
    }
}

/// True while a migration step (or a statement of one) runs.
pub fn active() -> bool {
    UNIT.with(|u| u.borrow().is_some())
}

/// Whether a relation with this `rd_createSubid` counts as created in this transaction for the
/// guard's exemption: outside a migration, PostgreSQL's answer; in one, created in the running
/// unit, except that `apply()`/`rollback()` (not a dry run) keep their one transaction and
/// exempt the earlier migrations' tables too (and [`note_deploy_would_block`] says so).
pub fn judged_created_in_transaction(create_subid: pg_sys::SubTransactionId) -> bool {
    if create_subid == 0 {
        return false;
    }
    match UNIT.with(|u| u.borrow().as_ref().map(|u| u.first_subxact)) {
        None => true,
        Some(first) if create_subid >= first => true,
        Some(_) => !state::dry_run(),
    }
}

/// True if `relid` was created in this transaction, but before the running unit.
fn created_before_unit(relid: pg_sys::Oid) -> bool {
    let Some(first) = UNIT.with(|u| u.borrow().as_ref().map(|u| u.first_subxact)) else {
        return false;
    };
    // SAFETY: a relcache read without a lock, as facts::table_facts does.
    let create_subid = unsafe {
        let rel = pg_sys::RelationIdGetRelation(relid);
        if rel.is_null() {
            return false;
        }
        let subid = (*rel).rd_createSubid;
        pg_sys::RelationClose(rel);
        subid
    };
    create_subid != 0 && create_subid < first
}

/// In `apply()` or `rollback()`: a statement on a table an earlier migration of the same
/// transaction created is exempt here, but `deploy()` commits that migration first and would
/// judge the table as an existing one. Each finding deploy() would block is a WARNING (not
/// logged: nothing was blocked or permitted), so the difference shows before a deploy fails.
pub fn note_deploy_would_block(fact: &Fact, mode: GuardMode, min_rows: f64) {
    if mode != GuardMode::Enforce
        || state::dry_run()
        || !fact.table.created_in_transaction
        || !created_before_unit(fact.relid)
    {
        return;
    }
    let as_deploy = TableFacts {
        created_in_transaction: false,
        ..fact.table.clone()
    };
    for finding in rules::evaluate(&fact.action, &as_deploy, min_rows) {
        if finding.rule.severity == Severity::Block && state::allowance(finding.rule.id).is_none() {
            pgrx::warning!("{}", rules::deploy_would_block(&finding));
        }
    }
}

/// Locks that block writes ([`rules::blocks_writes`]) this backend took on relations since the
/// running step started: (relation, the strongest such mode). None outside a step.
pub fn strong_locks_taken() -> Option<Vec<(pg_sys::Oid, usize)>> {
    let before = UNIT.with(|u| u.borrow().as_ref().map(|u| u.locks_before.clone()))?;
    let mut now: HashMap<pg_sys::Oid, u32> = HashMap::new();
    for (oid, mask) in own_relation_locks() {
        *now.entry(oid).or_default() |= mask;
    }
    let mut out: Vec<(pg_sys::Oid, usize)> = now
        .into_iter()
        .filter_map(|(oid, mask)| {
            let new = mask & !before.get(&oid).copied().unwrap_or(0);
            let strongest = (u32::BITS - 1).checked_sub(new.leading_zeros())? as usize;
            rules::blocks_writes(strongest).then_some((oid, strongest))
        })
        .collect();
    out.sort_by_key(|&(oid, _)| oid.to_u32());
    Some(out)
}
