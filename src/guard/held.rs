//! Rule `lock_held_across_statements` (eugene's E4): a strong lock taken by one statement of a
//! migration is held until the migration commits, so every later statement of the migration
//! runs with it held. When an earlier statement took a lock that blocks writes (SHARE or
//! stronger, [`rules::blocks_writes`]) on a big table and the statement about to run is not
//! instant ([`Work::is_instant`]: DML, CALL/DO, a scan, rewrite or index build of a big
//! table), everyone using that table waits for the slow statement too.
//!
//! Checked before every statement a migration step runs (apply, rollback, deploy, plan,
//! verify; [`crate::pg::script`] calls [`before_statement`]), DML included, which the event
//! triggers never see. Costs one read of this backend's own lock records per statement
//! ([`crate::pg::observe::own_relation_locks`]); the statement is only parsed and classified
//! when such a lock is held.

use migrate_core::rules::{self, Action, Work};
use pgrx::pg_sys;

use super::facts::{self, Fact};
use super::{judge, unit};
use crate::gucs::{self, GuardMode};
use crate::pg::{list::items as list_items, script, security};

/// Called with each statement's text right before a migration script runs it: warns (through
/// the guard's usual judging: logged, permitted by `migrate.allow`, collected by `plan()`)
/// for each big table an earlier statement of the step locked strongly, if this statement is
/// not instant.
pub fn before_statement(text: &str) {
    if !unit::active() {
        return;
    }
    let mode = judge::effective_mode();
    if mode == GuardMode::Off {
        return;
    }
    let Some(taken) = unit::strong_locks_taken() else {
        return;
    };
    let min_rows = gucs::guard_min_rows();
    let locked: Vec<Fact> = taken
        .into_iter()
        .filter_map(|(relid, lock)| {
            let table = facts::table_facts(relid)?;
            rules::exemption(&table, min_rows).is_none().then(|| Fact {
                relid,
                table,
                action: Action::LockHeldAcrossStatements {
                    mode: rules::LOCK_MODES[lock].to_string(),
                    work: String::new(),
                },
                domain: None,
            })
        })
        .collect();
    if locked.is_empty() {
        return;
    }
    let Some(&tree) = script::parse_trees(text).first() else {
        return;
    };
    // As the statement's own user, sandboxed, as the event trigger analyses DDL.
    // SAFETY: a raw parse tree built just now, in this memory context.
    let work = security::restricted(|| unsafe { work_of(tree) });
    if work.is_instant(min_rows) {
        return;
    }
    let described = work.describe();
    let facts: Vec<Fact> = locked
        .into_iter()
        .map(|mut f| {
            if let Action::LockHeldAcrossStatements { work, .. } = &mut f.action {
                *work = described.clone();
            }
            f
        })
        .collect();
    judge::judge(&facts, mode);
}

/// Resolves a relation without locking it (None if it does not exist) and reads its facts.
unsafe fn table(rv: *mut pg_sys::RangeVar) -> Option<rules::TableFacts> {
    if rv.is_null() {
        return None;
    }
    // SAFETY: NoLock with RVR_MISSING_OK neither waits nor raises for a missing relation.
    let oid = unsafe {
        pg_sys::RangeVarGetRelidExtended(
            rv,
            pg_sys::NoLock as _,
            pg_sys::RVROption::RVR_MISSING_OK as _,
            None,
            std::ptr::null_mut(),
        )
    };
    (oid != pg_sys::InvalidOid)
        .then(|| facts::table_facts(oid))
        .flatten()
}

/// Work on one table, or unbounded work if the table is not one the guard can size.
unsafe fn on_table(what: &str, rv: *mut pg_sys::RangeVar) -> Work {
    // SAFETY: per the caller, a RangeVar of the parse tree or NULL.
    match unsafe { table(rv) } {
        Some(table) => Work::Table {
            what: what.into(),
            table,
        },
        None => Work::Unbounded {
            what: format!("{what} a relation whose size is not known"),
        },
    }
}

fn unbounded(what: &str) -> Work {
    Work::Unbounded { what: what.into() }
}

/// A SELECT (or VALUES) that reads no table: no FROM, no WITH, no set operation.
unsafe fn reads_nothing(select: *mut pg_sys::SelectStmt) -> bool {
    // SAFETY: a SelectStmt of the parse tree.
    unsafe {
        (*select).fromClause.is_null()
            && (*select).withClause.is_null()
            && (*select).op == pg_sys::SetOperation::SETOP_NONE
    }
}

unsafe fn is_a(node: *mut pg_sys::Node, tag: pg_sys::NodeTag) -> bool {
    // SAFETY: every Node starts with its tag.
    !node.is_null() && unsafe { (*node).type_ } == tag
}

/// What a statement costs (see [`Work`] for what counts as instant).
///
/// # Safety
/// `node` is a raw parse tree (a statement node) in the current memory context; run it in
/// [`security::restricted`], since analysing an ALTER TABLE can run user code.
pub unsafe fn work_of(node: *mut pg_sys::Node) -> Work {
    use pg_sys::NodeTag::*;
    if node.is_null() {
        return Work::Catalog;
    }
    // SAFETY: each branch casts `node` to the struct its tag names.
    unsafe {
        match (*node).type_ {
            T_SelectStmt => {
                let s = node as *mut pg_sys::SelectStmt;
                if reads_nothing(s) && (*s).intoClause.is_null() {
                    Work::Catalog
                } else {
                    unbounded("runs a query that reads tables")
                }
            }
            T_InsertStmt => {
                let s = node as *mut pg_sys::InsertStmt;
                let source = (*s).selectStmt;
                let from_nothing = source.is_null()
                    || (is_a(source, T_SelectStmt) && reads_nothing(source.cast()));
                if from_nothing && (*s).withClause.is_null() {
                    Work::Catalog
                } else {
                    unbounded("inserts the result of a query")
                }
            }
            T_UpdateStmt => {
                let s = node as *mut pg_sys::UpdateStmt;
                if (*s).fromClause.is_null() && (*s).withClause.is_null() {
                    on_table("updates", (*s).relation)
                } else {
                    unbounded("runs an UPDATE ... FROM")
                }
            }
            T_DeleteStmt => {
                let s = node as *mut pg_sys::DeleteStmt;
                if (*s).usingClause.is_null() && (*s).withClause.is_null() {
                    on_table("deletes from", (*s).relation)
                } else {
                    unbounded("runs a DELETE ... USING")
                }
            }
            T_MergeStmt => unbounded("runs MERGE"),
            T_CallStmt => unbounded("runs CALL (a procedure)"),
            T_DoStmt => unbounded("runs a DO block"),
            T_CopyStmt => unbounded("runs COPY"),
            T_ExecuteStmt => unbounded("runs EXECUTE (a prepared statement)"),
            T_ExplainStmt => {
                let s = node as *mut pg_sys::ExplainStmt;
                let analyze = list_items::<pg_sys::DefElem>((*s).options)
                    .into_iter()
                    .any(|d| {
                        !(*d).defname.is_null()
                            && std::ffi::CStr::from_ptr((*d).defname).to_bytes() == b"analyze"
                    });
                if analyze {
                    unbounded("runs EXPLAIN ANALYZE")
                } else {
                    Work::Catalog
                }
            }
            T_CreateTableAsStmt => {
                let s = node as *mut pg_sys::CreateTableAsStmt;
                if !(*s).into.is_null() && (*(*s).into).skipData {
                    Work::Catalog
                } else {
                    unbounded("creates a table or materialized view from a query")
                }
            }
            T_RefreshMatViewStmt => {
                let s = node as *mut pg_sys::RefreshMatViewStmt;
                if (*s).skipData {
                    Work::Catalog
                } else {
                    on_table("refreshes", (*s).relation)
                }
            }
            T_ClusterStmt => on_table(
                "rewrites (CLUSTER)",
                (*node.cast::<pg_sys::ClusterStmt>()).relation,
            ),
            T_VacuumStmt => {
                let s = node as *mut pg_sys::VacuumStmt;
                let rels = list_items::<pg_sys::VacuumRelation>((*s).rels);
                match rels.as_slice() {
                    [one] if !(*s).is_vacuumcmd => on_table("analyzes", (**one).relation),
                    _ => unbounded("runs VACUUM or ANALYZE"),
                }
            }
            T_ReindexStmt => unbounded("runs REINDEX"),
            T_IndexStmt => on_table(
                "builds an index on",
                (*node.cast::<pg_sys::IndexStmt>()).relation,
            ),
            T_AlterTableStmt => alter_table_work(node.cast()),
            _ => Work::Catalog,
        }
    }
}

/// An ALTER TABLE is instant unless a subcommand reads the table: one a guard rule says scans
/// or rewrites it, VALIDATE CONSTRAINT, SET TABLESPACE, SET ACCESS METHOD, or ATTACH
/// PARTITION (which scans the partition unless a CHECK proves its bound).
unsafe fn alter_table_work(stmt: *mut pg_sys::AlterTableStmt) -> Work {
    use pg_sys::AlterTableType as AT;
    // SAFETY: stmt is an AlterTableStmt; each command's `def` has the node type its subtype
    // implies.
    unsafe {
        for cmd in list_items::<pg_sys::AlterTableCmd>((*stmt).cmds) {
            match (*cmd).subtype {
                AT::AT_ValidateConstraint => {
                    return on_table("validates a constraint of", (*stmt).relation)
                }
                #[cfg(feature = "pg15")]
                AT::AT_ValidateConstraintRecurse => {
                    return on_table("validates a constraint of", (*stmt).relation)
                }
                AT::AT_SetTableSpace => {
                    return on_table("copies (SET TABLESPACE)", (*stmt).relation)
                }
                AT::AT_SetAccessMethod => {
                    return on_table("rewrites (SET ACCESS METHOD)", (*stmt).relation)
                }
                AT::AT_AttachPartition if is_a((*cmd).def, pg_sys::NodeTag::T_PartitionCmd) => {
                    let partition = (*(*cmd).def.cast::<pg_sys::PartitionCmd>()).name;
                    return on_table("attaches (and may scan) partition", partition);
                }
                _ => {}
            }
        }
        let statement = facts::analyse(stmt.cast());
        for fact in statement.facts {
            let costly = rules::evaluate(&fact.action, &fact.table, 0.0)
                .iter()
                .any(|f| f.rule.scans || f.rule.rewrites);
            if costly {
                return Work::Table {
                    what: "scans or rewrites".into(),
                    table: fact.table,
                };
            }
        }
        Work::Catalog
    }
}
