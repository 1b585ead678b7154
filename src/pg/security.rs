//! Who runs what. The registry tables belong to the extension owner and nobody else may write
//! them, so the API switches to the owner for its own bookkeeping (with `search_path` pinned to
//! `pg_catalog, pg_temp`), and runs migration SQL as the role that registered it.
//!
//! Errors raised inside these scopes need no cleanup here: (sub)transaction abort restores the
//! user id and pops GUC nest levels, exactly as for a `SECURITY DEFINER` function.

use std::ffi::{CStr, CString};

use pgrx::pg_sys;
use pgrx::prelude::*;

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
pub fn run_as<R>(role: pg_sys::Oid, f: impl FnOnce() -> R) -> R {
    let (mut saved_user, mut saved_context) = (pg_sys::InvalidOid, 0);
    // SAFETY: reads two backend-local variables into our out-parameters.
    unsafe { pg_sys::GetUserIdAndSecContext(&mut saved_user, &mut saved_context) };
    if saved_user == role {
        return f();
    }
    // SAFETY: `role` exists (callers resolve it first); on error, transaction or subtransaction
    // abort restores the saved user id and context.
    unsafe {
        pg_sys::SetUserIdAndSecContext(
            role,
            saved_context | pg_sys::SECURITY_LOCAL_USERID_CHANGE as i32,
        )
    };
    let result = f();
    // SAFETY: restores exactly what we read above.
    unsafe { pg_sys::SetUserIdAndSecContext(saved_user, saved_context) };
    result
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
