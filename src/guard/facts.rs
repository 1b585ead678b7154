//! From a DDL parse tree to rule facts: which table each statement touches, what it does to it
//! (an [`Action`]), and what the catalog says about that table. Works on the raw parse trees
//! seen at `ddl_command_start` and produced by `raw_parser` for `migrate.check()`.
//!
//! Nothing here takes a lock: relations are resolved with `NoLock` and sizes come from
//! `pg_class` estimates (the planner's `estimate_rel_size`), so looking never queues behind the
//! very lock the guard is trying to protect.

use std::ffi::CStr;

use migrate_core::rules::{self, Action, ConstraintKind, TableFacts, Volatility};
use pgrx::pg_sys;
use pgrx::prelude::*;

use crate::pg::subxact;

/// One thing a statement does to one table.
pub struct Fact {
    pub relid: pg_sys::Oid,
    pub table: TableFacts,
    pub action: Action,
}

/// True if the current user owns the relation (or has its owner's privileges): every statement
/// the guard judges needs that, so for anyone else PostgreSQL refuses it anyway and the guard
/// has nothing to judge, log or block.
pub fn may_alter(relid: pg_sys::Oid) -> bool {
    // SAFETY: a relcache read without a lock, as in table_facts; the owner is copied out before
    // the reference is closed.
    let owner = unsafe {
        let rel = pg_sys::RelationIdGetRelation(relid);
        if rel.is_null() {
            return false;
        }
        let owner = (*(*rel).rd_rel).relowner;
        pg_sys::RelationClose(rel);
        owner
    };
    crate::pg::security::has_privileges_of(crate::pg::security::current_user(), owner)
}

/// What the guard needs to know about one statement.
#[derive(Default)]
pub struct StatementFacts {
    pub facts: Vec<Fact>,
    /// CREATE INDEX CONCURRENTLY (and friends) wait for old snapshots by design; the guard's
    /// lock_timeout must not cut that wait short.
    pub concurrent: bool,
}

use crate::pg::list::items as list_items;

unsafe fn is_a(node: *mut pg_sys::Node, tag: pg_sys::NodeTag) -> bool {
    // SAFETY: every Node starts with its tag.
    !node.is_null() && unsafe { (*node).type_ } == tag
}

unsafe fn text(ptr: *const std::ffi::c_char) -> Option<String> {
    (!ptr.is_null()).then(|| {
        // SAFETY: parse trees hold NUL-terminated strings or NULL (checked above).
        unsafe { CStr::from_ptr(ptr) }
            .to_string_lossy()
            .into_owned()
    })
}

/// The last name of a qualified name list (`pg_catalog.int4` -> `int4`).
unsafe fn last_name(names: *mut pg_sys::List) -> Option<String> {
    // SAFETY: name lists hold String nodes.
    unsafe {
        let items = list_items::<pg_sys::String>(names);
        items.last().and_then(|s| text((**s).sval))
    }
}

/// Resolves a relation without locking it; None if it does not exist.
unsafe fn relation_oid(rv: *mut pg_sys::RangeVar) -> Option<pg_sys::Oid> {
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
    (oid != pg_sys::InvalidOid).then_some(oid)
}

/// Catalog facts for an ordinary table or materialized view; None for other relation kinds and
/// for temporary tables.
pub fn table_facts(relid: pg_sys::Oid) -> Option<TableFacts> {
    // SAFETY: RelationIdGetRelation only reads (or builds) the relcache entry, without a lock;
    // we hold its refcount until RelationClose. The namespace and name come from syscache.
    unsafe {
        let rel = pg_sys::RelationIdGetRelation(relid);
        if rel.is_null() {
            return None;
        }
        let kind = (*(*rel).rd_rel).relkind as u8;
        // Only this session sees a temporary table: nothing it does to one blocks anyone else.
        let temporary = (*(*rel).rd_rel).relpersistence as u8 == pg_sys::RELPERSISTENCE_TEMP;
        if (kind != pg_sys::RELKIND_RELATION && kind != pg_sys::RELKIND_MATVIEW) || temporary {
            pg_sys::RelationClose(rel);
            return None;
        }
        // In a migration: created in the unit deploy() commits it in (see guard::unit).
        let created_in_transaction =
            super::unit::judged_created_in_transaction((*rel).rd_createSubid);
        let (mut pages, mut tuples, mut allvisfrac) = (0, 0.0, 0.0);
        pg_sys::estimate_rel_size(
            rel,
            std::ptr::null_mut(),
            &mut pages,
            &mut tuples,
            &mut allvisfrac,
        );
        let namespace = pg_sys::get_namespace_name((*(*rel).rd_rel).relnamespace);
        let name =
            pg_sys::quote_qualified_identifier(namespace, (*(*rel).rd_rel).relname.data.as_ptr());
        let name = text(name).unwrap_or_default();
        pg_sys::RelationClose(rel);
        Some(TableFacts {
            name,
            estimated_rows: tuples.round(),
            created_in_transaction,
        })
    }
}

/// Volatility of a column default: analysed the way ALTER TABLE will analyse it. None if it
/// does not analyse (the statement will fail by itself with a better message).
///
/// Analysis folds constants, which runs type input functions and domain CHECKs: the caller
/// runs it in [`crate::pg::security::restricted`], and the subtransaction is rolled back so
/// whatever that code did is undone.
unsafe fn default_volatility(raw: *mut pg_sys::Node) -> Option<Volatility> {
    if raw.is_null() {
        return None;
    }
    subxact::run_and_roll_back(|| unsafe {
        // SAFETY: transformExpr works on a copy; column defaults cannot reference columns, so
        // an empty ParseState is enough.
        let pstate = pg_sys::make_parsestate(std::ptr::null_mut());
        let copy = pg_sys::copyObjectImpl(raw.cast()) as *mut pg_sys::Node;
        let expr = pg_sys::transformExpr(
            pstate,
            copy,
            pg_sys::ParseExprKind::EXPR_KIND_COLUMN_DEFAULT,
        );
        if pg_sys::contain_volatile_functions(expr) {
            Volatility::Volatile
        } else if pg_sys::contain_mutable_functions(expr) {
            Volatility::Stable
        } else {
            Volatility::Immutable
        }
    })
    .ok()
}

const SERIAL_TYPES: &[&str] = &[
    "serial",
    "serial4",
    "bigserial",
    "serial8",
    "smallserial",
    "serial2",
];

/// True if changing a column from (old type, typmod) to (new type, typmod) needs no rewrite.
fn binary_coercible(old: (pg_sys::Oid, i32), new: (pg_sys::Oid, i32)) -> bool {
    let ((old_type, old_mod), (new_type, new_mod)) = (old, new);
    if old_type == new_type {
        return rules::typmod_change_is_free(old_type.to_u32(), old_mod, new_mod);
    }
    // SAFETY: a pg_cast lookup.
    new_mod == -1 && unsafe { pg_sys::IsBinaryCoercible(old_type, new_type) }
}

fn attribute_type(relid: pg_sys::Oid, column: &str) -> Option<(pg_sys::Oid, i32)> {
    Spi::get_two_with_args::<pg_sys::Oid, i32>(
        "SELECT atttypid, atttypmod FROM pg_catalog.pg_attribute \
         WHERE attrelid OPERATOR(pg_catalog.=) $1 AND attname OPERATOR(pg_catalog.=) $2 \
           AND NOT attisdropped",
        &[relid.into(), column.into()],
    )
    .ok()
    .and_then(|(t, m)| Some((t?, m?)))
}

fn has_validated_not_null_check(relid: pg_sys::Oid, column: &str) -> bool {
    Spi::get_one_with_args::<bool>(
        "SELECT EXISTS (SELECT FROM pg_catalog.pg_constraint c \
           JOIN pg_catalog.pg_attribute a ON a.attrelid OPERATOR(pg_catalog.=) c.conrelid \
            AND a.attname OPERATOR(pg_catalog.=) $2 \
         WHERE c.conrelid OPERATOR(pg_catalog.=) $1 AND c.contype OPERATOR(pg_catalog.=) 'c' \
           AND c.convalidated AND c.conkey OPERATOR(pg_catalog.=) ARRAY[a.attnum] \
           AND pg_catalog.pg_get_constraintdef(c.oid) OPERATOR(pg_catalog.=) \
               pg_catalog.format('CHECK ((%s IS NOT NULL))', pg_catalog.quote_ident($2)))",
        &[relid.into(), column.into()],
    )
    .ok()
    .flatten()
    .unwrap_or(false)
}

fn constraint_kind(contype: pg_sys::ConstrType::Type) -> ConstraintKind {
    use pg_sys::ConstrType::*;
    match contype {
        CONSTR_FOREIGN => ConstraintKind::ForeignKey,
        CONSTR_CHECK => ConstraintKind::Check,
        CONSTR_UNIQUE => ConstraintKind::Unique,
        CONSTR_PRIMARY => ConstraintKind::PrimaryKey,
        CONSTR_EXCLUSION => ConstraintKind::Exclusion,
        _ => ConstraintKind::Other,
    }
}

unsafe fn constraint_action(c: *mut pg_sys::Constraint) -> Action {
    // SAFETY: c is a Constraint node from the parse tree.
    unsafe {
        Action::AddConstraint {
            name: text((*c).conname),
            kind: constraint_kind((*c).contype),
            not_valid: (*c).skip_validation,
            using_index: !(*c).indexname.is_null(),
        }
    }
}

#[cfg(feature = "pg18")]
unsafe fn is_stored_generated(c: *mut pg_sys::Constraint) -> bool {
    // SAFETY: c is a CONSTR_GENERATED Constraint; PostgreSQL 18 also has VIRTUAL columns.
    unsafe { (*c).generated_kind as u8 == pg_sys::ATTRIBUTE_GENERATED_STORED }
}

#[cfg(not(feature = "pg18"))]
unsafe fn is_stored_generated(_c: *mut pg_sys::Constraint) -> bool {
    true
}

/// Facts for ADD COLUMN: the column itself plus any inline constraint.
unsafe fn add_column(def: *mut pg_sys::ColumnDef) -> Vec<Action> {
    // SAFETY: def is a ColumnDef from ALTER TABLE ... ADD COLUMN.
    unsafe {
        let column = text((*def).colname).unwrap_or_default();
        let serial =
            last_name((*(*def).typeName).names).is_some_and(|t| SERIAL_TYPES.contains(&t.as_str()));
        let mut default = default_volatility((*def).raw_default);
        let (mut identity, mut stored_generated) = (false, false);
        let mut actions = Vec::new();
        for c in list_items::<pg_sys::Constraint>((*def).constraints) {
            match (*c).contype {
                pg_sys::ConstrType::CONSTR_DEFAULT => default = default_volatility((*c).raw_expr),
                pg_sys::ConstrType::CONSTR_IDENTITY => identity = true,
                pg_sys::ConstrType::CONSTR_GENERATED => stored_generated = is_stored_generated(c),
                pg_sys::ConstrType::CONSTR_FOREIGN
                | pg_sys::ConstrType::CONSTR_CHECK
                | pg_sys::ConstrType::CONSTR_UNIQUE
                | pg_sys::ConstrType::CONSTR_PRIMARY => actions.push(constraint_action(c)),
                _ => {}
            }
        }
        actions.insert(
            0,
            Action::AddColumn {
                column,
                default,
                serial,
                identity,
                stored_generated,
            },
        );
        actions
    }
}

unsafe fn alter_table_actions(
    relid: pg_sys::Oid,
    stmt: *mut pg_sys::AlterTableStmt,
) -> Vec<Action> {
    use pg_sys::AlterTableType as AT;
    let mut out = Vec::new();
    // SAFETY: stmt is an AlterTableStmt; each command's `def` has the node type its subtype
    // implies.
    unsafe {
        for cmd in list_items::<pg_sys::AlterTableCmd>((*stmt).cmds) {
            let column = text((*cmd).name).unwrap_or_default();
            match (*cmd).subtype {
                AT::AT_AddColumn => out.extend(add_column((*cmd).def.cast())),
                AT::AT_AlterColumnType => {
                    let def = (*cmd).def as *mut pg_sys::ColumnDef;
                    let (mut typid, mut typmod) = (pg_sys::InvalidOid, -1);
                    pg_sys::typenameTypeIdAndMod(
                        std::ptr::null_mut(),
                        (*def).typeName,
                        &mut typid,
                        &mut typmod,
                    );
                    let new_type =
                        text(pg_sys::format_type_with_typemod(typid, typmod)).unwrap_or_default();
                    let binary_coercible = attribute_type(relid, &column)
                        .is_some_and(|old| binary_coercible(old, (typid, typmod)));
                    out.push(Action::AlterColumnType {
                        column,
                        new_type,
                        has_using: !(*def).raw_default.is_null(),
                        binary_coercible,
                    });
                }
                AT::AT_SetNotNull => {
                    let has_validated_check = has_validated_not_null_check(relid, &column);
                    out.push(Action::SetNotNull {
                        column,
                        has_validated_check,
                    });
                }
                AT::AT_AddConstraint if is_a((*cmd).def, pg_sys::NodeTag::T_Constraint) => {
                    out.push(constraint_action((*cmd).def.cast()));
                }
                AT::AT_SetLogged => out.push(Action::SetPersistence { logged: true }),
                AT::AT_SetUnLogged => out.push(Action::SetPersistence { logged: false }),
                AT::AT_DropColumn => out.push(Action::DropColumn { column }),
                _ => {}
            }
        }
    }
    out
}

fn push(out: &mut StatementFacts, relid: Option<pg_sys::Oid>, actions: Vec<Action>) {
    let Some(relid) = relid else { return };
    let Some(table) = table_facts(relid) else {
        return;
    };
    out.facts.extend(actions.into_iter().map(|action| Fact {
        relid,
        table: table.clone(),
        action,
    }));
}

/// Everything the rules need about one parse tree. Statements the guard does not know are
/// returned empty. Names resolve as the current user with the session's search_path, exactly
/// as the statement itself will resolve them; call it inside
/// [`crate::pg::security::restricted`], since analysing an expression can run user code.
///
/// # Safety
/// `node` must be a valid parse tree (a utility statement node) in the current memory context.
pub unsafe fn analyse(node: *mut pg_sys::Node) -> StatementFacts {
    use pg_sys::NodeTag::*;
    let mut out = StatementFacts::default();
    if node.is_null() {
        return out;
    }
    // SAFETY: each branch casts `node` to the struct its tag names.
    unsafe {
        match (*node).type_ {
            T_IndexStmt => {
                let stmt = node as *mut pg_sys::IndexStmt;
                out.concurrent = (*stmt).concurrent;
                let columns = list_items::<pg_sys::IndexElem>((*stmt).indexParams)
                    .into_iter()
                    .map(|e| text((*e).name).unwrap_or_else(|| "(...)".into()))
                    .collect();
                let action = Action::CreateIndex {
                    name: text((*stmt).idxname),
                    columns,
                    unique: (*stmt).unique,
                    concurrent: (*stmt).concurrent,
                    partial: !(*stmt).whereClause.is_null(),
                };
                push(&mut out, relation_oid((*stmt).relation), vec![action]);
            }
            T_AlterTableStmt => {
                let stmt = node as *mut pg_sys::AlterTableStmt;
                if (*stmt).objtype == pg_sys::ObjectType::OBJECT_TABLE {
                    if let Some(relid) = relation_oid((*stmt).relation) {
                        let actions = alter_table_actions(relid, stmt);
                        push(&mut out, Some(relid), actions);
                    }
                }
            }
            T_RenameStmt => {
                let stmt = node as *mut pg_sys::RenameStmt;
                let new_name = text((*stmt).newname).unwrap_or_default();
                let action = match (*stmt).renameType {
                    pg_sys::ObjectType::OBJECT_TABLE => Some(Action::RenameTable { new_name }),
                    pg_sys::ObjectType::OBJECT_COLUMN
                        if (*stmt).relationType == pg_sys::ObjectType::OBJECT_TABLE =>
                    {
                        Some(Action::RenameColumn {
                            column: text((*stmt).subname).unwrap_or_default(),
                            new_name,
                        })
                    }
                    _ => None,
                };
                if let Some(action) = action {
                    push(&mut out, relation_oid((*stmt).relation), vec![action]);
                }
            }
            T_DropStmt => {
                let stmt = node as *mut pg_sys::DropStmt;
                if (*stmt).removeType == pg_sys::ObjectType::OBJECT_TABLE {
                    for names in list_items::<pg_sys::List>((*stmt).objects) {
                        let rv = pg_sys::makeRangeVarFromNameList(names);
                        push(&mut out, relation_oid(rv), vec![Action::DropTable]);
                    }
                }
            }
            T_ReindexStmt => {
                // REINDEX ... CONCURRENTLY waits for old snapshots like CREATE INDEX CONCURRENTLY.
                let stmt = node as *mut pg_sys::ReindexStmt;
                out.concurrent = list_items::<pg_sys::DefElem>((*stmt).params)
                    .into_iter()
                    .any(|d| text((*d).defname).as_deref() == Some("concurrently"));
            }
            _ => {}
        }
    }
    out
}
