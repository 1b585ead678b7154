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
    // A dropped role has no row: it cannot log in.
    crate::pg::query::one::<bool>(
        "SELECT rolcanlogin FROM pg_catalog.pg_roles WHERE oid OPERATOR(pg_catalog.=) $1",
        &[role.into()],
    )
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
    is_superuser_role(current_user())
}

/// True if `role` is a superuser.
pub fn is_superuser_role(role: pg_sys::Oid) -> bool {
    // SAFETY: a catalog lookup, inside a transaction.
    unsafe { pg_sys::superuser_arg(role) }
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

/// Runs `f` as the current user with `search_path = pg_catalog, pg_temp` in a GUC level of its
/// own: catalog reads in the caller's session that must not resolve anything the caller (or
/// anyone with CREATE on a schema on its path) planted, and that qualify every name they print.
pub fn with_safe_search_path<R>(f: impl FnOnce() -> R) -> R {
    with_own_settings(&[(c"search_path", SAFE_SEARCH_PATH)], f)
}

/// The owner of the registry tables: the role that created the extension (or was given it).
pub fn registry_owner() -> pg_sys::Oid {
    crate::pg::query::required(
        "SELECT c.relowner FROM pg_catalog.pg_class c \
         WHERE c.oid OPERATOR(pg_catalog.=) 'migrate.migrations'::pg_catalog.regclass",
        &[],
    )
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

/// What a script could leave in the session for code that runs after it, with another
/// identity or outside its GUC scope: open cursors (a `WITH HOLD` one runs its query at
/// COMMIT), prepared statements (run by whoever EXECUTEs the name next), temporary objects
/// (found first on every search_path: a temporary table with a trigger shadows the caller's
/// table) and session-level advisory locks (which survive a rollback and could fake a deploy).
/// Cursors and prepared statements are identified with their creation time, so one replaced
/// under the same name is a new one.
#[derive(Default, PartialEq)]
pub struct SessionObjects {
    cursors: BTreeSet<(String, String)>,
    prepared: BTreeSet<(String, String)>,
    temporary: BTreeSet<(String, String)>,
    advisory: BTreeSet<(i64, i64, i32, String)>,
}

impl SessionObjects {
    pub fn capture() -> Self {
        const SQL: &str = include_str!("../queries/session_objects.sql");
        let mut out = SessionObjects::default();
        // The portal running this very call is not the script's business (any other, the
        // client's unnamed one included, is the caller's).
        let running = crate::pg::backend::active_portal_name().unwrap_or_default();
        as_registry_owner(|| {
            Spi::connect(|client| {
                let args = [running.as_str().into()];
                let rows = client.select(SQL, None, &args).unwrap_or_else(|e| {
                    error!("migrate: could not read the session's objects: {e}")
                });
                for r in rows {
                    let text = |n| r.get::<String>(n).ok().flatten().unwrap_or_default();
                    let kind = text(1);
                    let pair = (text(2), text(3));
                    match kind.as_str() {
                        "c" => out.cursors.insert(pair),
                        "p" => out.prepared.insert(pair),
                        "t" => out.temporary.insert(pair),
                        _ => out.advisory.insert((
                            r.get::<i64>(4).ok().flatten().unwrap_or(0),
                            r.get::<i64>(5).ok().flatten().unwrap_or(0),
                            r.get::<i32>(6).ok().flatten().unwrap_or(0),
                            pair.0,
                        )),
                    };
                }
            })
        });
        out
    }

    /// What is in `self` (after the script) and was not in `before`, described.
    /// What is in `self` and was not in `before`, described in a few words (the first five).
    pub fn describe_left_since(&self, before: &SessionObjects) -> Option<String> {
        let left = self.left_since(before);
        match left.len() {
            0 => None,
            n if n <= 5 => Some(left.join(", ")),
            n => Some(format!("{} and {} more", left[..5].join(", "), n - 5)),
        }
    }

    fn left_since(&self, before: &SessionObjects) -> Vec<String> {
        let mut left = Vec::new();
        left.extend(
            self.cursors
                .difference(&before.cursors)
                .map(|(n, _)| format!("cursor {n}")),
        );
        // A statement of the caller's replaced under its name (same prepare time when done in
        // the caller's own query message) differs in its text.
        left.extend(
            self.prepared
                .difference(&before.prepared)
                .map(|(n, _)| format!("prepared statement {n}")),
        );
        left.extend(
            self.temporary
                .difference(&before.temporary)
                .map(|(what, _)| what.clone()),
        );
        let key = |(c, o, sub, _): &(i64, i64, i32, String)| match sub {
            1 => format!("{}", (c << 32) | o),
            _ => format!("({c}, {o})"),
        };
        left.extend(
            self.advisory
                .difference(&before.advisory)
                .map(|l| format!("advisory lock {}", key(l))),
        );
        // Taking things away from the caller is refused too (pg_advisory_unlock_all() releases
        // the caller's locks, DEALLOCATE ALL its statements), though it cannot be undone.
        left.extend(
            before
                .advisory
                .difference(&self.advisory)
                .map(|l| format!("(released) the caller's advisory lock {}", key(l))),
        );
        left
    }

    /// Removes what the script added that a rollback does not remove (cursors it left open,
    /// prepared statements, session-level advisory locks), whether it succeeded or failed.
    pub fn remove_added(&self, before: &SessionObjects) {
        as_registry_owner(|| {
            with_own_settings(&[(c"client_min_messages", c"error")], || {
                // Quoted by format(%I) and run as utility statements; failures (a cursor the
                // caller closed meanwhile) are of no consequence.
                let run_for = |template: &str, name: &str| {
                    let sql = Spi::get_one_with_args::<String>(
                        "SELECT pg_catalog.format($1, $2::pg_catalog.text)",
                        &[template.into(), name.into()],
                    );
                    if let Ok(Some(sql)) = sql {
                        let _ = crate::pg::subxact::run(|| Spi::run(&sql));
                    }
                };
                for (name, _) in self.cursors.difference(&before.cursors) {
                    run_for("CLOSE %I", name);
                }
                for (name, _) in self.prepared.difference(&before.prepared) {
                    run_for("DEALLOCATE %I", name);
                }
                for (classid, objid, subid, mode) in self.advisory.difference(&before.advisory) {
                    let shared = mode == "ShareLock";
                    // Held as often as the script took it: release until it is gone (a
                    // transaction-level lock cannot be released and goes at transaction end).
                    loop {
                        let released = if *subid == 1 {
                            let key = (classid << 32) | objid;
                            let f = if shared {
                                "SELECT pg_catalog.pg_advisory_unlock_shared($1)"
                            } else {
                                "SELECT pg_catalog.pg_advisory_unlock($1)"
                            };
                            Spi::get_one_with_args::<bool>(f, &[key.into()])
                        } else {
                            let f = if shared {
                                "SELECT pg_catalog.pg_advisory_unlock_shared($1::pg_catalog.int4, $2::pg_catalog.int4)"
                            } else {
                                "SELECT pg_catalog.pg_advisory_unlock($1::pg_catalog.int4, $2::pg_catalog.int4)"
                            };
                            Spi::get_one_with_args::<bool>(
                                f,
                                &[(*classid as i32).into(), (*objid as i32).into()],
                            )
                        };
                        if released.ok().flatten() != Some(true) {
                            break;
                        }
                    }
                }
            })
        })
    }
}

/// Capabilities the session holds that SQL running in it could use with the rights of whoever
/// acquired them, and that no identity switch takes away: dblink connections (named or the
/// unnamed one) and open large-object descriptors (permission is checked at lo_open only).
/// Described, or None.
fn session_capabilities() -> Option<String> {
    let mut held = Vec::new();
    let dblink = crate::pg::query::one::<String>(
        "SELECT pg_catalog.quote_ident(n.nspname) FROM pg_catalog.pg_extension e \
         JOIN pg_catalog.pg_namespace n ON n.oid OPERATOR(pg_catalog.=) e.extnamespace \
         WHERE e.extname OPERATOR(pg_catalog.=) 'dblink'",
        &[],
    );
    if let Some(schema) = dblink {
        // As the registry owner: the connections are the backend's, whoever opened them, so a
        // caller without EXECUTE on dblink (its connections opened before a SET ROLE) must not
        // make them look absent; an error raises rather than reading as "none".
        let named = as_registry_owner(|| {
            crate::pg::query::one::<Vec<String>>(
                &format!("SELECT {schema}.dblink_get_connections()"),
                &[],
            )
        })
        .unwrap_or_default();
        if !named.is_empty() {
            held.push(format!("dblink connection(s) {}", named.join(", ")));
        }
        // The unnamed connection is not listed: probe it with a harmless statement.
        let unnamed = crate::pg::subxact::run_and_roll_back(|| {
            as_registry_owner(|| {
                // Typed exactly, so no overload planted in dblink's schema can be picked instead.
                Spi::run(&format!(
                    "SELECT {schema}.dblink_exec('SELECT 1'::pg_catalog.text)"
                ))
            })
        });
        let open = match unnamed {
            Ok(_) => true,
            // 08003: there is no unnamed connection; anything else counts as one.
            Err(caught) => {
                crate::error::caught_parts(&caught).0
                    != PgSqlErrorCode::ERRCODE_CONNECTION_DOES_NOT_EXIST
            }
        };
        if open {
            held.push("the unnamed dblink connection".to_string());
        }
    }
    // Descriptors are numbered from 0 and reused lowest first; a session rarely holds many.
    let descriptors: Vec<i32> = (0..64)
        .filter(|fd| {
            crate::pg::subxact::run_and_roll_back(|| {
                Spi::run_with_args("SELECT pg_catalog.lo_tell64($1)", &[(*fd).into()])
            })
            .is_ok_and(|r| r.is_ok())
        })
        .collect();
    if !descriptors.is_empty() {
        held.push(format!("open large object descriptor(s) {descriptors:?}"));
    }
    (!held.is_empty()).then(|| held.join(", "))
}

/// Refuses (before anything changed) to run another role's code in this session while the
/// session has something that code could use with the rights of whoever acquired it: an open
/// cursor (FETCH needs no privilege), a dblink connection, an open large object. `what` names
/// the step, `whose` the role whose code would run.
pub fn refuse_exposed_session(what: &str, whose: &str) {
    let open = SessionObjects::capture();
    if !open.cursors.is_empty() {
        let names: Vec<&str> = open.cursors.iter().map(|(n, _)| n.as_str()).collect();
        UserError::new(
            PgSqlErrorCode::ERRCODE_INVALID_CURSOR_STATE,
            format!("{what} cannot run while the session has open cursors ({})", names.join(", ")),
        )
        .detail(format!("It runs code of {whose} in this session, which could read an open cursor with the privileges of the role that opened it."))
        .hint("CLOSE the cursors first.")
        .raise();
    }
    if let Some(held) = session_capabilities() {
        UserError::new(
            PgSqlErrorCode::ERRCODE_OBJECT_IN_USE,
            format!("{what} cannot run while the session holds {held}"),
        )
        .detail(format!("It runs code of {whose} in this session, which could use what the session holds (a dblink connection, an open large object) with the rights of whoever opened it."))
        .hint("Disconnect dblink connections and close large objects first, or run the change from a session of its own.")
        .raise();
    }
}

/// Runs `f`, another role's SQL (a migration script), as `role`, so that nothing it does
/// outlives it in another scope or with another identity:
/// - it does not start while the session has cursors open (a script could FETCH from them,
///   with the caller's snapshot and privileges, or close one and open another of that name);
/// - deferred triggers the caller queued before fire first, as the caller; within the script
///   every deferrable constraint is deferred, and at its end its own deferred triggers fire as
///   `role` (`SET CONSTRAINTS ALL IMMEDIATE`), never at a COMMIT that may run as someone else;
/// - it runs in a GUC nest level of its own, with [`SQL_DIALECT`]: every `SET` and `SET LOCAL`
///   inside is undone when it ends, so it cannot change what the next step or the caller resolves;
/// - cursors, prepared statements and advisory locks it leaves are removed, whether it succeeded
///   or failed; if it succeeded and left any of those or a temporary object, it fails (42501).
///
/// `what` names the step in errors.
pub fn run_isolated<R>(role: pg_sys::Oid, what: &str, f: impl FnOnce() -> R) -> R {
    let caller = current_user();
    let before = SessionObjects::capture();
    if !before.cursors.is_empty() {
        let names: Vec<&str> = before.cursors.iter().map(|(n, _)| n.as_str()).collect();
        UserError::new(
            PgSqlErrorCode::ERRCODE_INVALID_CURSOR_STATE,
            format!("{what} cannot run while the session has open cursors ({})", names.join(", ")),
        )
        .detail("A migration script could read an open cursor with the privileges of the role that opened it.")
        .hint("CLOSE the cursors first.")
        .raise();
    }
    if let Some(held) = session_capabilities() {
        UserError::new(
            PgSqlErrorCode::ERRCODE_OBJECT_IN_USE,
            format!("{what} cannot run while the session holds {held}"),
        )
        .detail("A migration script runs in this session: it could use what the session holds (a dblink connection, an open large object) with the rights of whoever opened it.")
        .hint("Disconnect dblink connections and close large objects first, or run migrations from a session of their own.")
        .raise();
    }
    Spi::run("SET CONSTRAINTS ALL IMMEDIATE")
        .unwrap_or_else(|e| error!("migrate: SET CONSTRAINTS failed: {e}"));
    // The script may not SET ROLE, RESET ROLE or SET SESSION AUTHORIZATION (PostgreSQL refuses
    // them inside a local user id change) unless the session itself is the author's all the way
    // down: after `SET ROLE deployer` by a superuser, RESET ROLE in the deployer's script would
    // reach the superuser. So switch, even to the same role, unless nothing is above it.
    // SAFETY: reads backend-local variables.
    let (session, authenticated) =
        unsafe { (pg_sys::GetSessionUserId(), pg_sys::GetAuthenticatedUserId()) };
    let must_switch = !(role == caller && role == session && role == authenticated);
    let outcome = crate::pg::subxact::run(|| {
        with_own_settings(SQL_DIALECT, || {
            let run = || {
                Spi::run("SET CONSTRAINTS ALL DEFERRED")
                    .unwrap_or_else(|e| error!("migrate: SET CONSTRAINTS failed: {e}"));
                let result = f();
                // The script's deferred triggers fire now, as its author, and every
                // deferrable constraint is immediate for the rest of the transaction. In a
                // security-restricted operation, so a trigger fired here cannot defer new work
                // past this point (PostgreSQL refuses to queue a deferred event in one).
                restricted(|| {
                    Spi::run("SET CONSTRAINTS ALL IMMEDIATE")
                        .unwrap_or_else(|e| error!("migrate: SET CONSTRAINTS failed: {e}"))
                });
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
        })
    });
    let after = SessionObjects::capture();
    let left = after.describe_left_since(&before);
    after.remove_added(&before);
    let result = match outcome {
        Ok(result) => result,
        Err(caught) => caught.rethrow(),
    };
    if let Some(left) = left {
        let author = role_name(role).unwrap_or_default();
        let caller = role_name(caller).unwrap_or_default();
        UserError::new(
            PgSqlErrorCode::ERRCODE_INSUFFICIENT_PRIVILEGE,
            format!(
                "{what} ran as role \"{author}\" and left {left} in the session of role \"{caller}\""
            ),
        )
        .detail("Cursors, prepared statements, temporary objects and advisory locks outlive the script; whatever runs next in the session (another migration's author, or the caller) would run or find them with its own privileges.")
        .hint("Close cursors, DEALLOCATE prepared statements, release session advisory locks and drop temporary objects (ON COMMIT DROP is not enough) before the script ends.")
        .raise();
    }
    result
}
