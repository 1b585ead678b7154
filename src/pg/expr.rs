//! Is a text one SQL expression? The expand/contract expressions (`up`, `down`) are spliced
//! into a trigger function and a backfill: they must be one value expression and nothing that
//! could end it (a `)`, a `FROM`, a second statement).

use pgrx::pg_sys;
use pgrx::pg_sys::panic::CaughtError;

use super::script;

/// Parses `SELECT\n<text>\n` with the server's raw parser (no analysis, nothing runs): true if
/// it is one SELECT with exactly one unnamed target and no other clause. A syntax error is
/// returned as caught.
pub fn is_one_expression(text: &str) -> Result<bool, Box<CaughtError>> {
    let trees = super::subxact::run(|| script::parse_trees(&format!("SELECT\n{text}\n")))?;
    let [tree] = trees.as_slice() else {
        return Ok(false);
    };
    // SAFETY: a raw parse tree just built by raw_parser, read only.
    unsafe {
        if (**tree).type_ != pg_sys::NodeTag::T_SelectStmt {
            return Ok(false);
        }
        let s = &*(*tree as *const pg_sys::SelectStmt);
        let targets = super::list::items::<pg_sys::ResTarget>(s.targetList);
        let [target] = targets.as_slice() else {
            return Ok(false);
        };
        Ok((**target).name.is_null() && s.whereClause.is_null() && only_targets_and_where(s))
    }
}

/// True if a raw SELECT has no clause but its target list and WHERE: no set operation,
/// DISTINCT, INTO, FROM, GROUP BY, HAVING, WINDOW, VALUES, ORDER BY, LIMIT/OFFSET, FOR UPDATE
/// or WITH. How a text spliced after `SELECT` (or `SELECT WHERE`) is checked to be one
/// expression (or one condition) that nothing could end early.
pub fn only_targets_and_where(s: &pg_sys::SelectStmt) -> bool {
    s.op == pg_sys::SetOperation::SETOP_NONE
        && s.distinctClause.is_null()
        && s.intoClause.is_null()
        && s.fromClause.is_null()
        && s.groupClause.is_null()
        && s.havingClause.is_null()
        && s.windowClause.is_null()
        && s.valuesLists.is_null()
        && s.sortClause.is_null()
        && s.limitOffset.is_null()
        && s.limitCount.is_null()
        && s.lockingClause.is_null()
        && s.withClause.is_null()
}

/// Parses `SELECT NULL::\n<text>\n`: true if `text` is one type name (with modifiers or array
/// bounds) and nothing else (no COLLATE, constraint, or anything after it).
pub fn is_type_name(text: &str) -> Result<bool, Box<CaughtError>> {
    // A comment would swallow what follows the type where it is spliced into DDL; no type
    // name needs one.
    if text.contains("--") || text.contains("/*") {
        return Ok(false);
    }
    let trees = super::subxact::run(|| script::parse_trees(&format!("SELECT NULL::\n{text}\n")))?;
    let [tree] = trees.as_slice() else {
        return Ok(false);
    };
    // SAFETY: a raw parse tree just built by raw_parser, read only.
    unsafe {
        if (**tree).type_ != pg_sys::NodeTag::T_SelectStmt {
            return Ok(false);
        }
        let s = &*(*tree as *const pg_sys::SelectStmt);
        let targets = super::list::items::<pg_sys::ResTarget>(s.targetList);
        let [target] = targets.as_slice() else {
            return Ok(false);
        };
        let val = (**target).val;
        if val.is_null() || (*val).type_ != pg_sys::NodeTag::T_TypeCast {
            return Ok(false);
        }
        let cast = &*(val as *const pg_sys::TypeCast);
        let arg_is_null_const = !cast.arg.is_null()
            && (*cast.arg).type_ == pg_sys::NodeTag::T_A_Const
            && (*(cast.arg as *const pg_sys::A_Const)).isnull;
        Ok(arg_is_null_const
            && (**target).name.is_null()
            && s.fromClause.is_null()
            && s.whereClause.is_null()
            && s.sortClause.is_null()
            && s.limitCount.is_null()
            && s.op == pg_sys::SetOperation::SETOP_NONE)
    }
}
