//! What kind of statement each statement of a script is, from its raw parse tree: whether it
//! controls the transaction, must run outside a transaction block, or only changes a setting.
//! The registry uses it at `add()` to drop a `BEGIN;`...`COMMIT;` wrapper and to recognise
//! scripts that can only run top-level.

use std::ffi::CStr;
use std::ops::Range;

use pgrx::pg_sys;

use super::list::items;

/// What a statement is, for deciding how its script runs (core decides from it).
pub use migrate_core::transaction::Class as Kind;

/// One statement of a script: its kind and its bytes in the script (from its first token).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Classified {
    pub kind: Kind,
    pub bytes: Range<usize>,
}

/// Every statement of `script`, classified; raises the syntax error if it does not parse.
pub fn classify(script: &str) -> Vec<Classified> {
    let statements = super::script::split(script);
    let trees = super::script::parse_trees(script);
    statements
        .iter()
        .zip(trees)
        .map(|(statement, tree)| {
            let start = statement.offset + super::script::first_token(&statement.text);
            let end = statement.offset + statement.text.trim_end().len();
            Classified {
                // SAFETY: a node of the raw parse tree just built.
                kind: unsafe { kind(tree) },
                bytes: start..end.max(start),
            }
        })
        .collect()
}

/// # Safety
/// `node` is a raw parse tree node.
unsafe fn kind(node: *mut pg_sys::Node) -> Kind {
    use pg_sys::NodeTag::*;
    // SAFETY: every cast follows the check of the node's tag; lists hold the node types the
    // grammar puts there (DefElem options, AlterTableCmd commands).
    unsafe {
        match (*node).type_ {
            T_TransactionStmt => {
                let s = &*(node as *const pg_sys::TransactionStmt);
                use pg_sys::TransactionStmtKind::*;
                match s.kind {
                    TRANS_STMT_BEGIN | TRANS_STMT_START if s.options.is_null() => Kind::Begin,
                    TRANS_STMT_COMMIT if !s.chain => Kind::Commit,
                    _ => Kind::OtherTransactionControl,
                }
            }
            T_VariableSetStmt => Kind::Setting,
            T_IndexStmt if (*(node as *const pg_sys::IndexStmt)).concurrent => {
                Kind::OutsideTransaction("CREATE INDEX CONCURRENTLY")
            }
            T_DropStmt if (*(node as *const pg_sys::DropStmt)).concurrent => {
                Kind::OutsideTransaction("DROP INDEX CONCURRENTLY")
            }
            T_ReindexStmt => {
                let s = &*(node as *const pg_sys::ReindexStmt);
                use pg_sys::ReindexObjectType::*;
                if has_option(s.params, c"concurrently") {
                    Kind::OutsideTransaction("REINDEX CONCURRENTLY")
                } else if matches!(
                    s.kind,
                    REINDEX_OBJECT_SCHEMA | REINDEX_OBJECT_SYSTEM | REINDEX_OBJECT_DATABASE
                ) {
                    Kind::OutsideTransaction("REINDEX SCHEMA, SYSTEM or DATABASE")
                } else {
                    Kind::Other
                }
            }
            T_VacuumStmt if (*(node as *const pg_sys::VacuumStmt)).is_vacuumcmd => {
                Kind::OutsideTransaction("VACUUM")
            }
            T_ClusterStmt if (*(node as *const pg_sys::ClusterStmt)).relation.is_null() => {
                Kind::OutsideTransaction("CLUSTER of every table")
            }
            T_CreatedbStmt => Kind::OutsideTransaction("CREATE DATABASE"),
            T_DropdbStmt => Kind::OutsideTransaction("DROP DATABASE"),
            T_CreateTableSpaceStmt => Kind::OutsideTransaction("CREATE TABLESPACE"),
            T_DropTableSpaceStmt => Kind::OutsideTransaction("DROP TABLESPACE"),
            T_AlterSystemStmt => Kind::OutsideTransaction("ALTER SYSTEM"),
            T_CreateSubscriptionStmt => Kind::OutsideTransaction("CREATE SUBSCRIPTION"),
            T_DropSubscriptionStmt => Kind::OutsideTransaction("DROP SUBSCRIPTION"),
            T_AlterDatabaseStmt
                if has_option(
                    (*(node as *const pg_sys::AlterDatabaseStmt)).options,
                    c"tablespace",
                ) =>
            {
                Kind::OutsideTransaction("ALTER DATABASE SET TABLESPACE")
            }
            T_AlterTableStmt => {
                let s = &*(node as *const pg_sys::AlterTableStmt);
                let detaches_concurrently =
                    items::<pg_sys::AlterTableCmd>(s.cmds)
                        .into_iter()
                        .any(|cmd| {
                            (*cmd).subtype == pg_sys::AlterTableType::AT_DetachPartition
                                && !(*cmd).def.is_null()
                                && (*(*cmd).def).type_ == T_PartitionCmd
                                && (*((*cmd).def as *const pg_sys::PartitionCmd)).concurrent
                        });
                if detaches_concurrently {
                    Kind::OutsideTransaction("DETACH PARTITION CONCURRENTLY")
                } else {
                    Kind::Other
                }
            }
            _ => Kind::Other,
        }
    }
}

/// True if a list of `DefElem` options has one named `name`.
///
/// # Safety
/// `options` is NULL or a List of DefElem nodes.
unsafe fn has_option(options: *mut pg_sys::List, name: &CStr) -> bool {
    // SAFETY: the caller's promise; defname is NULL or a NUL-terminated string.
    unsafe {
        items::<pg_sys::DefElem>(options).into_iter().any(|d| {
            !(*d).defname.is_null() && CStr::from_ptr((*d).defname).to_bytes() == name.to_bytes()
        })
    }
}
