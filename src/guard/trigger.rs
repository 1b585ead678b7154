//! The event triggers. `ddl_command_start` reads the parse tree, bounds the statement's lock
//! wait with `migrate.lock_timeout`, and applies the rules before the statement asks for its
//! lock; `ddl_command_end` restores lock_timeout; `table_rewrite` is the catch-all for any
//! rewrite of a guarded table, whatever syntax caused it.
//!
//! pgrx has no event-trigger support, so these are plain V1 C functions declared in
//! src/sql/guard.sql (`RETURNS event_trigger`). They run as the user whose statement fired
//! them, never as the extension owner: the guard resolves names and analyses expressions
//! exactly as that statement will, with no privilege the statement does not have. Its own
//! bookkeeping (guard_log) switches to the registry owner (see `crate::pg::security`).

use migrate_core::rules::{self, Action, Severity};
use pgrx::pg_sys;
use pgrx::prelude::*;

use super::facts::{self, Fact, StatementFacts};
use super::log::{self, Entry};
use super::schema_changes;
use super::state;
use crate::error::UserError;
use crate::gucs::{self, GuardMode};
use crate::pg::backend;

use crate::v1_function_info;

v1_function_info!(pg_finfo_migrate_guard_ddl_start);
v1_function_info!(pg_finfo_migrate_guard_ddl_end);
v1_function_info!(pg_finfo_migrate_guard_table_rewrite);
v1_function_info!(pg_finfo_migrate_guard_sql_drop);

/// The parse tree of the statement that fired an event trigger.
unsafe fn trigger_parse_tree(fcinfo: pg_sys::FunctionCallInfo) -> *mut pg_sys::Node {
    // SAFETY: PostgreSQL calls event trigger functions with an EventTriggerData context.
    unsafe {
        let context = (*fcinfo).context;
        if context.is_null() || (*context).type_ != pg_sys::NodeTag::T_EventTriggerData {
            error!("migrate: guard functions can only be called as event triggers");
        }
        (*(context as *mut pg_sys::EventTriggerData)).parsetree
    }
}

/// The command tag of the statement that fired an event trigger (`ALTER TABLE`).
unsafe fn trigger_tag(fcinfo: pg_sys::FunctionCallInfo) -> String {
    // SAFETY: as in trigger_parse_tree (which checks the context first); the tag's name is a
    // static string of PostgreSQL's.
    unsafe {
        trigger_parse_tree(fcinfo);
        let data = (*fcinfo).context as *mut pg_sys::EventTriggerData;
        std::ffi::CStr::from_ptr(pg_sys::GetCommandTagName((*data).tag))
            .to_string_lossy()
            .into_owned()
    }
}

/// The role running the DDL (the trigger itself runs as its owner).
fn acting_role() -> String {
    crate::pg::security::role_name(backend::outer_user()).unwrap_or_default()
}

/// The SQL of the running statement: the migration statement when the registry runs one,
/// otherwise what the client sent.
fn statement_text() -> String {
    crate::pg::script::current_statement().unwrap_or_else(backend::client_query)
}

fn lock_timeout_text() -> String {
    backend::setting(c"lock_timeout").expect("lock_timeout is a built-in setting")
}

fn set_lock_timeout(value: &str) {
    let value = std::ffi::CString::new(value).expect("no NUL in a GUC value");
    // A plain SET: it outlives this SECURITY DEFINER function's own GUC scope (as SET does
    // inside functions) and is undone by transaction abort.
    crate::pg::security::set_config(c"lock_timeout", &value, pg_sys::GucAction::GUC_ACTION_SET);
}

/// Lowers lock_timeout to migrate.lock_timeout for this statement; returns the old value.
fn bound_lock_wait() -> Option<String> {
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
pub(super) fn effective_mode() -> GuardMode {
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
pub(super) fn judge(facts: &[Fact], mode: GuardMode) {
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

/// `ddl_command_start`.
#[pg_guard]
#[no_mangle]
pub unsafe extern "C-unwind" fn migrate_guard_ddl_start(
    fcinfo: pg_sys::FunctionCallInfo,
) -> pg_sys::Datum {
    state::init();
    // SAFETY: called as an event trigger.
    let tree = unsafe { trigger_parse_tree(fcinfo) };
    let mode = effective_mode();
    if mode == GuardMode::Off {
        state::push_saved_timeout(None);
        return pg_sys::Datum::from(0);
    }
    // As the statement's own user, sandboxed: analysis can run user code (see facts::analyse).
    // SAFETY: the parse tree of the statement being run.
    let StatementFacts {
        mut facts,
        concurrent,
    } = crate::pg::security::restricted(|| unsafe { facts::analyse(tree) });
    state::push_saved_timeout(if concurrent { None } else { bound_lock_wait() });
    // A statement on a table the role may not alter fails PostgreSQL's own check right after
    // this trigger: nothing to judge, and nothing to log on behalf of a role that cannot act.
    facts.retain(facts::may_act);
    judge(&facts, mode);
    pg_sys::Datum::from(0)
}

/// `ddl_command_end`: puts lock_timeout back as it was before the statement, and records the
/// statement in `migrate.schema_changes`.
#[pg_guard]
#[no_mangle]
pub unsafe extern "C-unwind" fn migrate_guard_ddl_end(
    fcinfo: pg_sys::FunctionCallInfo,
) -> pg_sys::Datum {
    state::init();
    if let Some(previous) = state::pop_saved_timeout() {
        set_lock_timeout(&previous);
    }
    state::set_statement_reported(Vec::new());
    // SAFETY: called as an event trigger.
    schema_changes::record(&unsafe { trigger_tag(fcinfo) });
    pg_sys::Datum::from(0)
}

/// `sql_drop`: what the statement dropped, for its `migrate.schema_changes` row.
#[pg_guard]
#[no_mangle]
pub unsafe extern "C-unwind" fn migrate_guard_sql_drop(
    fcinfo: pg_sys::FunctionCallInfo,
) -> pg_sys::Datum {
    state::init();
    // SAFETY: called as an event trigger (checked before anything is read).
    unsafe { trigger_parse_tree(fcinfo) };
    schema_changes::remember_dropped();
    pg_sys::Datum::from(0)
}

/// `table_rewrite`: blocks a rewrite of a guarded table unless a rule that predicted it was
/// already reported for this statement (permitted, or warned in warn mode), or `table_rewrite`
/// itself is permitted.
#[pg_guard]
#[no_mangle]
pub unsafe extern "C-unwind" fn migrate_guard_table_rewrite(
    _fcinfo: pg_sys::FunctionCallInfo,
) -> pg_sys::Datum {
    state::init();
    let mode = effective_mode();
    if mode == GuardMode::Off
        || state::statement_reported()
            .iter()
            .any(|id| rules::rule(id).is_some_and(|r| r.rewrites))
    {
        return pg_sys::Datum::from(0);
    }
    // Read as "no table", a failed query would let the rewrite through unjudged.
    let relid = crate::pg::query::one::<pg_sys::Oid>(
        "SELECT pg_catalog.pg_event_trigger_table_rewrite_oid()",
        &[],
    );
    if let Some((relid, table)) = relid.and_then(|r| Some((r, facts::table_facts(r)?))) {
        judge(
            &[Fact {
                relid,
                table,
                action: Action::TableRewrite,
                domain: None,
            }],
            mode,
        );
    }
    pg_sys::Datum::from(0)
}
