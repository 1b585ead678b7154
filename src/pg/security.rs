//! Who runs what. The registry tables belong to the extension owner and nobody else may write
//! them, so the API switches to the owner for its own bookkeeping (with `search_path` pinned to
//! `pg_catalog, pg_temp`), and runs migration SQL as the role that registered it.
//!
//! Errors raised inside these scopes need no cleanup here: (sub)transaction abort restores the
//! user id and pops GUC nest levels, exactly as for a `SECURITY DEFINER` function.

use std::collections::BTreeSet;
use std::ffi::{CStr, CString};

use pgrx::pg_sys;
use pgrx::prelude::*;

use crate::error::UserError;

/// The search_path our own SQL runs with, as in a `SECURITY DEFINER ... SET search_path`.
const SAFE_SEARCH_PATH: &CStr = c"pg_catalog, pg_temp";

/// The current user's OID.
pub fn current_user() -> pg_sys::Oid {
    // SAFETY: GetUserId only reads a backend-local variable.
    unsafe { pg_sys::GetUserId() }
}

/// A role's name, or None if it does not exist.
pub fn role_name(role: pg_sys::Oid) -> Option<String> {
    // SAFETY: with noerr = true GetUserNameFromId returns NULL instead of raising; the result is
    // a palloc'd C string that we copy at once.
    unsafe {
        let name = pg_sys::GetUserNameFromId(role, true);
        (!name.is_null()).then(|| CStr::from_ptr(name).to_string_lossy().into_owned())
    }
}

/// A role's OID by name, or None if there is no such role.
pub fn role_oid(name: &str) -> Option<pg_sys::Oid> {
    let cname = CString::new(name).ok()?;
    // SAFETY: missing_ok = true, so a missing role returns InvalidOid instead of raising.
    let oid = unsafe { pg_sys::get_role_oid(cname.as_ptr(), true) };
    (oid != pg_sys::InvalidOid).then_some(oid)
}

/// True if `role` has LOGIN. PostgreSQL 15 lets a background worker act for such roles only.
pub fn can_login(role: pg_sys::Oid) -> bool {
    Spi::get_one_with_args::<bool>(
        "SELECT rolcanlogin FROM pg_catalog.pg_roles WHERE oid OPERATOR(pg_catalog.=) $1",
        &[role.into()],
    )
    .ok()
    .flatten()
    .unwrap_or(false)
}

/// True if `member` has the privileges of `role` (directly, by inheritance, or as superuser).
pub fn has_privileges_of(member: pg_sys::Oid, role: pg_sys::Oid) -> bool {
    // SAFETY: a catalog lookup that raises only on catalog corruption.
    unsafe { pg_sys::has_privs_of_role(member, role) }
}

/// Runs `f` with `role` as the current user. `SET ROLE` inside is refused while switched, as in
/// a `SECURITY DEFINER` function. A no-op switch when `role` is already the current user, so
/// migration scripts that use `SET ROLE` keep working in the common case.
///
/// This only switches the identity: a caller that runs another role's SQL must also keep that
/// SQL's settings and end-of-transaction work from escaping, which [`run_isolated`] does.
pub fn run_as<R>(role: pg_sys::Oid, f: impl FnOnce() -> R) -> R {
    let (mut saved_user, mut saved_context) = (pg_sys::InvalidOid, 0);
    // SAFETY: reads two backend-local variables into our out-parameters.
    unsafe { pg_sys::GetUserIdAndSecContext(&mut saved_user, &mut saved_context) };
    if saved_user == role {
        return f();
    }
    switched(
        role,
        saved_context | pg_sys::SECURITY_LOCAL_USERID_CHANGE as i32,
        f,
    )
}

/// Runs `f` as `role` with security context `context`, then restores the caller's.
fn switched<R>(role: pg_sys::Oid, context: i32, f: impl FnOnce() -> R) -> R {
    let (mut saved_user, mut saved_context) = (pg_sys::InvalidOid, 0);
    // SAFETY: reads two backend-local variables; `role` exists (callers resolve it first); on
    // error, transaction or subtransaction abort restores the saved user id and context.
    unsafe {
        pg_sys::GetUserIdAndSecContext(&mut saved_user, &mut saved_context);
        pg_sys::SetUserIdAndSecContext(role, context);
    }
    let result = f();
    // SAFETY: restores exactly what we read above.
    unsafe { pg_sys::SetUserIdAndSecContext(saved_user, saved_context) };
    result
}

/// Runs `f` with a GUC nest level of its own that is rolled back when `f` returns, the way
/// PostgreSQL runs index expressions and `REFRESH MATERIALIZED VIEW`: no `SET` or `SET LOCAL`
/// inside outlives it. `settings` are applied inside the level first.
pub fn with_own_settings<R>(settings: &[(&CStr, &CStr)], f: impl FnOnce() -> R) -> R {
    // SAFETY: NewGUCNestLevel/AtEOXact_GUC(false) is how PostgreSQL sandboxes settings around
    // user code (index builds, REFRESH MATERIALIZED VIEW); on error, (sub)transaction abort pops
    // the level instead.
    unsafe {
        let nest_level = pg_sys::NewGUCNestLevel();
        for (name, value) in settings {
            set_config(name, value, pg_sys::GucAction::GUC_ACTION_SAVE);
        }
        let result = f();
        pg_sys::AtEOXact_GUC(false, nest_level);
        result
    }
}

/// The lexer setting every SQL text `migrate` stores is checked and run with, whatever the
/// session that wrote it or the worker that runs it has: with `standard_conforming_strings =
/// off` the same text splits into different statements.
pub const SQL_DIALECT: &[(&CStr, &CStr)] = &[(c"standard_conforming_strings", c"on")];

/// Runs `f` as the current user inside a security-restricted operation (no `SET ROLE`, no temp
/// tables, no deferred triggers or `WITH HOLD` cursors that would outlive it) with its own,
/// rolled-back settings. Analysis of user SQL (expression folding runs type input functions
/// and domain checks, which can call user functions) happens here: never with more privilege
/// than the statement's own author, and without side effects that outlive the analysis.
pub fn restricted<R>(f: impl FnOnce() -> R) -> R {
    let (mut user, mut context) = (pg_sys::InvalidOid, 0);
    // SAFETY: reads two backend-local variables into our out-parameters.
    unsafe { pg_sys::GetUserIdAndSecContext(&mut user, &mut context) };
    with_own_settings(&[], || {
        switched(
            user,
            context | pg_sys::SECURITY_RESTRICTED_OPERATION as i32,
            f,
        )
    })
}

/// True if the current user is a superuser.
pub fn is_superuser() -> bool {
    // SAFETY: a catalog lookup of the current user, inside a transaction.
    unsafe { pg_sys::superuser_arg(pg_sys::GetUserId()) }
}

/// True if the current user is a superuser or has the privileges of `migrate_admin`.
pub fn is_migrate_admin() -> bool {
    is_superuser()
        || role_oid("migrate_admin").is_some_and(|admin| has_privileges_of(current_user(), admin))
}

/// Sets a GUC for the current session as `SET` would (`GUC_ACTION_SET`: undone by transaction
/// abort) or as a function's SET clause would (`GUC_ACTION_SAVE`, within a nest level).
pub fn set_config(name: &CStr, value: &CStr, action: pg_sys::GucAction::Type) {
    // SAFETY: both strings are NUL-terminated; errors (a bad value) are raised as usual.
    unsafe {
        pg_sys::set_config_option(
            name.as_ptr(),
            value.as_ptr(),
            pg_sys::GucContext::PGC_USERSET,
            pg_sys::GucSource::PGC_S_SESSION,
            action,
            true,
            0,
            false,
        );
    }
}

/// The owner of the registry tables: the role that created the extension (or was given it).
pub fn registry_owner() -> pg_sys::Oid {
    Spi::get_one::<pg_sys::Oid>(
        "SELECT c.relowner FROM pg_catalog.pg_class c \
         WHERE c.oid OPERATOR(pg_catalog.=) 'migrate.migrations'::pg_catalog.regclass",
    )
    .ok()
    .flatten()
    .unwrap_or_else(|| error!("migrate: registry table migrate.migrations is missing"))
}

/// Runs the extension's own bookkeeping `f` as the registry owner with a safe `search_path`,
/// so callers' `search_path` and objects they planted cannot redirect our SQL.
pub fn as_registry_owner<R>(f: impl FnOnce() -> R) -> R {
    let owner = registry_owner();
    // SAFETY: NewGUCNestLevel/GUC_ACTION_SAVE/AtEOXact_GUC is how fmgr applies a function's
    // SET clause: the saved value is restored by AtEOXact_GUC below on success, or by
    // (sub)transaction abort on error.
    unsafe {
        let nest_level = pg_sys::NewGUCNestLevel();
        set_config(
            c"search_path",
            SAFE_SEARCH_PATH,
            pg_sys::GucAction::GUC_ACTION_SAVE,
        );
        let result = run_as(owner, f);
        pg_sys::AtEOXact_GUC(true, nest_level);
        result
    }
}

/// What a step could leave in the session for code that runs after it, with another identity
/// or outside its GUC scope: open cursors (a `WITH HOLD` one runs its query at COMMIT),
/// prepared statements (run by whoever EXECUTEs the name next) and temporary objects (found
/// first on every search_path: a temporary table with a trigger shadows the caller's table).
///
/// Each as (identity, description): a prepared statement replaced under the same name is a new
/// one (its prepare time differs).
fn session_objects() -> BTreeSet<(String, String)> {
    const SQL: &str = "\
        SELECT 'c' OPERATOR(pg_catalog.||) name, 'cursor ' OPERATOR(pg_catalog.||) name \
            FROM pg_catalog.pg_cursors \
        UNION ALL SELECT 'p' OPERATOR(pg_catalog.||) name OPERATOR(pg_catalog.||) ' ' \
                OPERATOR(pg_catalog.||) prepare_time::pg_catalog.text, \
            'prepared statement ' OPERATOR(pg_catalog.||) name \
            FROM pg_catalog.pg_prepared_statements \
        UNION ALL SELECT 'r' OPERATOR(pg_catalog.||) c.oid::pg_catalog.text, \
            'temporary relation ' OPERATOR(pg_catalog.||) c.relname \
            FROM pg_catalog.pg_class c \
            WHERE c.relnamespace OPERATOR(pg_catalog.=) pg_catalog.pg_my_temp_schema() \
        UNION ALL SELECT 'f' OPERATOR(pg_catalog.||) p.oid::pg_catalog.text, \
            'temporary function ' OPERATOR(pg_catalog.||) p.oid::pg_catalog.regprocedure::pg_catalog.text \
            FROM pg_catalog.pg_proc p \
            WHERE p.pronamespace OPERATOR(pg_catalog.=) pg_catalog.pg_my_temp_schema() \
        UNION ALL SELECT 't' OPERATOR(pg_catalog.||) t.oid::pg_catalog.text, \
            'temporary type ' OPERATOR(pg_catalog.||) t.typname \
            FROM pg_catalog.pg_type t \
            WHERE t.typnamespace OPERATOR(pg_catalog.=) pg_catalog.pg_my_temp_schema() \
              AND t.typrelid OPERATOR(pg_catalog.=) 0 AND t.typelem OPERATOR(pg_catalog.=) 0";
    as_registry_owner(|| {
        Spi::connect(|client| {
            client
                .select(SQL, None, &[])
                .map(|rows| {
                    rows.into_iter()
                        .filter_map(|r| {
                            Some((r.get::<String>(1).ok()??, r.get::<String>(2).ok()??))
                        })
                        .collect()
                })
                .unwrap_or_else(|e| error!("migrate: could not read the session's objects: {e}"))
        })
    })
}

/// Runs `f`, another role's SQL (a migration script), as `role`, so that nothing it does
/// outlives it in another scope or with another identity:
/// - in a GUC nest level of its own, with [`SQL_DIALECT`]: every `SET` and `SET LOCAL` inside
///   is undone when it ends, so it cannot change what the next step or the caller resolves;
/// - deferred triggers it queued fire before it ends (`SET CONSTRAINTS ALL IMMEDIATE`), as
///   `role`, instead of at a COMMIT that may run as someone else (another step's author, or the
///   caller after a `RESET ROLE`);
/// - it fails (42501) if it leaves a cursor, a prepared statement or a temporary object in the
///   session, where later code with another identity would run or find it.
///
/// `what` names the step in errors.
pub fn run_isolated<R>(role: pg_sys::Oid, what: &str, f: impl FnOnce() -> R) -> R {
    let caller = current_user();
    let before = session_objects();
    // The script may not SET ROLE, RESET ROLE or SET SESSION AUTHORIZATION (PostgreSQL refuses
    // them inside a local user id change) unless the session itself is the author's all the way
    // down: after `SET ROLE deployer` by a superuser, RESET ROLE in the deployer's script would
    // reach the superuser. So switch, even to the same role, unless nothing is above it.
    // SAFETY: reads backend-local variables.
    let (session, authenticated) =
        unsafe { (pg_sys::GetSessionUserId(), pg_sys::GetAuthenticatedUserId()) };
    let must_switch = !(role == caller && role == session && role == authenticated);
    let result = with_own_settings(SQL_DIALECT, || {
        let run = || {
            let result = f();
            // Also the state of every deferrable constraint for the rest of the transaction:
            // checked at statement end from here on, never later as someone else.
            Spi::run("SET CONSTRAINTS ALL IMMEDIATE")
                .unwrap_or_else(|e| error!("migrate: SET CONSTRAINTS failed: {e}"));
            result
        };
        if must_switch {
            let (mut user, mut context) = (pg_sys::InvalidOid, 0);
            // SAFETY: reads two backend-local variables into our out-parameters.
            unsafe { pg_sys::GetUserIdAndSecContext(&mut user, &mut context) };
            switched(
                role,
                context | pg_sys::SECURITY_LOCAL_USERID_CHANGE as i32,
                run,
            )
        } else {
            run()
        }
    });
    let left: Vec<String> = session_objects()
        .difference(&before)
        .map(|(_, what)| what.clone())
        .collect();
    if !left.is_empty() {
        let author = role_name(role).unwrap_or_default();
        let caller = role_name(caller).unwrap_or_default();
        UserError::new(
                PgSqlErrorCode::ERRCODE_INSUFFICIENT_PRIVILEGE,
                format!("{what} ran as role \"{author}\" and left {} in the session of role \"{caller}\"", left.join(", ")),
            )
            .detail("Cursors, prepared statements and temporary objects outlive the script; whatever runs next in the session (another migration's author, or the caller) would run or find them with its own privileges.")
            .hint("Close cursors, DEALLOCATE prepared statements and drop temporary objects (ON COMMIT DROP is not enough) before the script ends.")
            .raise();
    }
    result
}
