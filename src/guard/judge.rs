//! Judging a statement: the one path from facts to a verdict, shared by the event triggers
//! (DDL, [`super::trigger`]) and the `ProcessUtility` hook (maintenance statements, only when
//! the library is preloaded, [`super::hook`]). Both ask the same mode (off, warn, enforce;
//! dry run for `migrate.plan()`; a privileged `pg_restore` is not guarded), apply the rules,
//! log to `migrate.guard_log` and raise the same errors.

use std::cell::Cell;

use migrate_core::rules::{self, Severity};
use pgrx::pg_sys;
use pgrx::prelude::*;

use super::facts::Fact;
use super::log::{self, Entry};
use super::state;
use crate::error::UserError;
use crate::gucs::{self, GuardMode};
use crate::pg::backend;

thread_local! {
    /// How many statements this backend judged: lets tests show that DML and the statements
    /// the hook does not judge never get here.
    static JUDGED: Cell<u64> = const { Cell::new(0) };
}

/// The number of times [`judge`] ran in this backend.
pub fn judged_count() -> u64 {
    JUDGED.with(Cell::get)
}

/// The role running the statement (an event trigger itself runs as its owner).
pub fn acting_role() -> String {
    crate::pg::security::role_name(backend::outer_user()).unwrap_or_default()
}

/// The SQL of the running statement: the migration statement when the registry runs one,
/// otherwise what the client sent.
pub fn statement_text() -> String {
    crate::pg::script::current_statement().unwrap_or_else(backend::client_query)
}

pub fn lock_timeout_text() -> String {
    backend::setting(c"lock_timeout").expect("lock_timeout is a built-in setting")
}

pub fn set_lock_timeout(value: &str) {
    let value = std::ffi::CString::new(value).expect("no NUL in a GUC value");
    // A plain SET: it outlives this SECURITY DEFINER function's own GUC scope (as SET does
    // inside functions) and is undone by transaction abort.
    crate::pg::security::set_config(c"lock_timeout", &value, pg_sys::GucAction::GUC_ACTION_SET);
}

/// Lowers lock_timeout to migrate.lock_timeout for this statement; returns the old value.
pub fn bound_lock_wait() -> Option<String> {
    let target = gucs::lock_timeout_ms();
    let current = backend::lock_timeout_ms();
    if target == 0 || (current != 0 && current <= target) {
        return None;
    }
    let previous = lock_timeout_text();
    set_lock_timeout(&format!("{target}ms"));
    Some(previous)
}

/// The guard's mode for the running statement. A privileged `pg_restore` is not guarded: a
/// restore builds indexes and constraints on freshly loaded tables, which is its job, and
/// whoever may restore may also turn the guard off.
pub fn effective_mode() -> GuardMode {
    if state::dry_run() {
        return GuardMode::Warn;
    }
    let mode = gucs::guard_mode();
    if mode == GuardMode::Off {
        return mode;
    }
    if backend::application_name() == "pg_restore" && gucs::may_weaken_guard() {
        GuardMode::Off
    } else {
        mode
    }
}

/// Applies the rules to a statement's facts: permitted findings are logged as `allowed`,
/// warnings as `warned`, and in enforce mode the first blocking finding stops the statement.
pub fn judge(facts: &[Fact], mode: GuardMode) {
    JUDGED.with(|n| n.set(n.get() + 1));
    let min_rows = gucs::guard_min_rows();
    // Rules reported (warned or permitted) for this statement: a rewrite they predicted is not
    // reported again by the table_rewrite catch-all.
    let mut reported = Vec::new();
    let mut blocked = None;
    for fact in facts {
        super::unit::note_deploy_would_block(fact, mode, min_rows);
        for finding in rules::evaluate(&fact.action, &fact.table, min_rows) {
            let mut entry = Entry {
                action: String::new(),
                rule: finding.rule.id.to_string(),
                table_name: finding.table.clone(),
                statement: log::bounded(&statement_text()),
                message: finding.message.clone(),
                reason: None,
                estimated_rows: fact.table.estimated_rows,
                mode: mode.as_str().to_string(),
                role: acting_role(),
            };
            if state::dry_run() {
                // migrate.plan(): report every finding, log nothing, block nothing.
                let verdict = match (state::allowance(finding.rule.id), finding.rule.severity) {
                    (Some(a), _) => format!("allowed ({})", a.reason),
                    (None, Severity::Block) => "would block".into(),
                    (None, _) => "warning".into(),
                };
                state::collect(format!(
                    "{} {verdict}: {}",
                    finding.rule.id, finding.message
                ));
                reported.push(finding.rule.id);
            } else if let Some(allowance) = state::allowance(finding.rule.id) {
                entry.action = "allowed".into();
                entry.reason = Some(allowance.reason.clone());
                log::record(&entry);
                notice!(
                    "migrate guard: rule {} permitted ({}): {}",
                    finding.rule.id,
                    allowance.reason,
                    finding.message
                );
                reported.push(finding.rule.id);
            } else if finding.rule.severity == Severity::Block && mode == GuardMode::Enforce {
                if blocked.is_none() {
                    blocked = Some((finding, entry));
                }
            } else {
                entry.action = "warned".into();
                log::record(&entry);
                reported.push(finding.rule.id);
                warning!(
                    "migrate guard: rule {}: {}. {}",
                    finding.rule.id,
                    finding.message,
                    finding.hint
                );
            }
        }
    }
    state::set_statement_reported(reported);
    if let Some((finding, mut entry)) = blocked {
        entry.action = "blocked".into();
        let rows = entry.estimated_rows;
        log::record_autonomously(entry);
        UserError::new(
            PgSqlErrorCode::ERRCODE_TRIGGERED_ACTION_EXCEPTION,
            format!("migrate guard: rule {}: {}", finding.rule.id, finding.message),
        )
        .detail(format!(
            "{} is estimated at {rows} rows (migrate.guard_min_rows = {min_rows}); migrate.guard = enforce.",
            finding.table
        ))
        .hint(format!(
            "{}{} To proceed anyway, SELECT migrate.allow('{}', 'why') in the same transaction.",
            finding.hint,
            migrate_core::tools::hint_tail(finding.rule.id, crate::gucs::tool()),
            finding.rule.id
        ))
        .raise();
    }
}
