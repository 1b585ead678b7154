//! The event triggers. `ddl_command_start` reads the parse tree, bounds the statement's lock
//! wait with `migrate.lock_timeout`, and applies the rules before the statement asks for its
//! lock; `ddl_command_end` restores lock_timeout and records the statement in
//! `migrate.schema_changes` (with `sql_drop`); `table_rewrite` is the catch-all for any
//! rewrite of a guarded table, whatever syntax caused it. In safe mode the two DDL triggers
//! also drop and recreate the views around an `ALTER COLUMN ... TYPE` ([`super::views`]).
//!
//! pgrx has no event-trigger support, so these are plain V1 C functions declared in
//! src/sql/guard.sql (`RETURNS event_trigger`). They run as the user whose statement fired
//! them, never as the extension owner: the guard resolves names and analyses expressions
//! exactly as that statement will, with no privilege the statement does not have. Its own
//! bookkeeping (guard_log) switches to the registry owner (see `crate::pg::security`).

use migrate_core::rules::{self, Action};
use pgrx::pg_sys;
use pgrx::prelude::*;

use super::facts::{self, Fact, StatementFacts};
use super::judge::{bound_lock_wait, effective_mode, judge, set_lock_timeout};
use super::schema_changes;
use super::state;
use super::views;
use crate::gucs::GuardMode;

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
        // SAFETY: the parse tree of the statement being run.
        state::push_view_rebuild(unsafe { views::drop_dependents(tree) });
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
    // Safe mode: after the verdict, with the statement's lock wait already bounded, drop the
    // views that would make PostgreSQL refuse a column type change (recreated at the end).
    // SAFETY: the parse tree of the statement being run.
    state::push_view_rebuild(unsafe { views::drop_dependents(tree) });
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
    // Before lock_timeout is restored: recreating reads the tables under the same bound.
    if let Some(saved) = state::pop_view_rebuild() {
        views::recreate(saved);
    }
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
