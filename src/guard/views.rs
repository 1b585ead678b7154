//! Safe mode's dependent-view rebuild for `ALTER TABLE ... ALTER COLUMN ... TYPE`: at
//! `ddl_command_start` the views that use the changed columns (in the table and every
//! partition or child the statement reaches) are saved and dropped, at `ddl_command_end`
//! recreated ([`crate::dependent_views`]), instead of PostgreSQL's "cannot alter type of a
//! column used by a view or rule". Outside safe mode nothing changes (with the library
//! preloaded, that error gets a HINT naming safe mode: [`hint_for_failure`]).

use pgrx::pg_sys;

use crate::dependent_views::{self, SavedViews};
use crate::error::OrRaise;
use crate::pg::list::items as list_items;

/// The `message_id` of PostgreSQL's refusal (tablecmds.c).
const USED_BY_VIEW_MESSAGE: &str = "cannot alter type of a column used by a view or rule";

/// The table and the columns an `ALTER [FOREIGN] TABLE` changes the type of, if any.
unsafe fn type_changes(tree: *mut pg_sys::Node) -> Option<(pg_sys::Oid, bool, Vec<String>)> {
    // SAFETY: tree is the statement's parse tree; an AlterTableStmt's cmds are AlterTableCmds
    // whose `name` is the column (a C string or NULL).
    unsafe {
        if tree.is_null() || (*tree).type_ != pg_sys::NodeTag::T_AlterTableStmt {
            return None;
        }
        let stmt = tree as *mut pg_sys::AlterTableStmt;
        if !matches!(
            (*stmt).objtype,
            pg_sys::ObjectType::OBJECT_TABLE | pg_sys::ObjectType::OBJECT_FOREIGN_TABLE
        ) {
            return None;
        }
        let columns: Vec<String> = list_items::<pg_sys::AlterTableCmd>((*stmt).cmds)
            .into_iter()
            .filter(|cmd| (**cmd).subtype == pg_sys::AlterTableType::AT_AlterColumnType)
            .filter_map(|cmd| {
                let name = (*cmd).name;
                (!name.is_null()).then(|| {
                    std::ffi::CStr::from_ptr(name)
                        .to_string_lossy()
                        .into_owned()
                })
            })
            .collect();
        if columns.is_empty() {
            return None;
        }
        let relid = super::facts::relation_oid((*stmt).relation)?;
        Some((relid, (*(*stmt).relation).inh, columns))
    }
}

/// At `ddl_command_start`: in safe mode, saves and drops the views that use the columns the
/// statement changes the type of; returns them for `ddl_command_end`. Raises (changing
/// nothing) if one cannot be rebuilt as it is.
///
/// # Safety
/// `tree` is the parse tree of the statement that fired the trigger.
pub unsafe fn drop_dependents(tree: *mut pg_sys::Node) -> Option<SavedViews> {
    if !crate::gucs::safe_mode() {
        return None;
    }
    // SAFETY: the caller passes the statement's parse tree.
    let (relid, inh, columns) = unsafe { type_changes(tree) }?;
    // PostgreSQL refuses a table the role may not alter right after this trigger.
    if !super::facts::may_alter(relid) {
        return None;
    }
    let tables = super::partition::members(relid, inh);
    let targets = dependent_views::columns_by_name(&tables, &columns);
    let saved = dependent_views::save(&targets).or_raise();
    if saved.is_empty() {
        return None;
    }
    saved.drop_all().or_raise();
    Some(saved)
}

/// At `ddl_command_end`: recreates what [`drop_dependents`] dropped for this statement.
pub fn recreate(saved: SavedViews) {
    saved.recreate().or_raise();
}

/// The HINT for PostgreSQL's refusal to change the type of a column a view uses, outside safe
/// mode (the ProcessUtility hook adds it, so only with the library preloaded).
pub fn hint_for_failure(code: i32, message_id: Option<&str>) -> Option<String> {
    (code == pgrx::PgSqlErrorCode::ERRCODE_FEATURE_NOT_SUPPORTED as i32
        && message_id == Some(USED_BY_VIEW_MESSAGE)
        && !crate::gucs::safe_mode())
    .then(|| {
        "With migrate.safe_by_default = on (safe mode), migrate drops the dependent views and \
         recreates them after the change, in the same transaction, with their owners, options, \
         grants and comments (docs/GUARD.md, \"Dependent views\")."
            .to_string()
    })
}
