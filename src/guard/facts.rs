//! From a DDL parse tree to rule facts: which table each statement touches, what it does to it
//! (an [`Action`]), and what the catalog says about that table. Works on the raw parse trees
//! seen at `ddl_command_start` and produced by `raw_parser` for `migrate.check()`.
//!
//! Nothing here takes a lock: relations are resolved with `NoLock` and sizes come from
//! `pg_class` estimates (the planner's `estimate_rel_size`), so looking never queues behind the
//! very lock the guard is trying to protect.

use std::ffi::CStr;

use migrate_core::rules::{
    self, Action, ColumnType, ConstraintKind, ScriptItem, TableFacts, Volatility,
};
use pgrx::pg_sys;
use pgrx::prelude::*;

use crate::pg::subxact;

/// One thing a statement does to one table.
pub struct Fact {
    pub relid: pg_sys::Oid,
    pub table: TableFacts,
    pub action: Action,
    /// For ALTER DOMAIN: the domain (relid is then InvalidOid).
    pub domain: Option<pg_sys::Oid>,
}

/// True if the current user may run the statement the fact is about: owns the table
/// ([`may_alter`]) or the domain.
pub fn may_act(fact: &Fact) -> bool {
    match fact.domain {
        Some(domain) => crate::pg::query::one::<pg_sys::Oid>(
            "SELECT typowner FROM pg_catalog.pg_type WHERE oid OPERATOR(pg_catalog.=) $1",
            &[domain.into()],
        )
        .is_some_and(|owner| {
            crate::pg::security::has_privileges_of(crate::pg::security::current_user(), owner)
        }),
        None => may_alter(fact.relid),
    }
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

/// Resolves a relation as the current user with the session's search_path, without locking
/// it; None if it does not exist (the statement reports that itself).
pub(super) unsafe fn relation_oid(rv: *mut pg_sys::RangeVar) -> Option<pg_sys::Oid> {
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

/// One relation's own facts and kind (no recursion); None for a relation that is not an
/// ordinary, partitioned or materialized table, or that is
/// temporary (only its own session sees it: nothing done to it blocks anyone else).
fn relation_facts(relid: pg_sys::Oid) -> Option<(TableFacts, u8)> {
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
        if (kind != pg_sys::RELKIND_RELATION
            && kind != pg_sys::RELKIND_MATVIEW
            && kind != pg_sys::RELKIND_PARTITIONED_TABLE)
            || temporary
        {
            pg_sys::RelationClose(rel);
            return None;
        }
        // In a migration: created in the unit deploy() commits it in (see guard::unit).
        let created_in_transaction =
            super::unit::judged_created_in_transaction((*rel).rd_createSubid);
        let (mut pages, mut tuples, mut allvisfrac) = (0, 0.0, 0.0);
        if kind != pg_sys::RELKIND_PARTITIONED_TABLE {
            pg_sys::estimate_rel_size(
                rel,
                std::ptr::null_mut(),
                &mut pages,
                &mut tuples,
                &mut allvisfrac,
            );
        }
        let namespace = pg_sys::get_namespace_name((*(*rel).rd_rel).relnamespace);
        let name =
            pg_sys::quote_qualified_identifier(namespace, (*(*rel).rd_rel).relname.data.as_ptr());
        let name = text(name).unwrap_or_default();
        pg_sys::RelationClose(rel);
        Some((
            TableFacts {
                name,
                estimated_rows: tuples.round(),
                created_in_transaction,
                descendants: 0,
            },
            kind,
        ))
    }
}

/// Facts for a statement on `relid` that reaches `members` (relid first): the rows summed
/// over every table with storage, "created in this transaction" only if all of them were.
fn reach(relid: pg_sys::Oid, recurse: bool) -> Option<TableFacts> {
    let (mut facts, _) = relation_facts(relid)?;
    if recurse {
        for member in super::partition::members(relid, true).into_iter().skip(1) {
            let Some((m, kind)) = relation_facts(member) else {
                continue;
            };
            if kind == pg_sys::RELKIND_PARTITIONED_TABLE {
                continue;
            }
            facts.estimated_rows += m.estimated_rows;
            facts.created_in_transaction &= m.created_in_transaction;
            facts.descendants += 1;
        }
    }
    Some(facts)
}

/// The kind of a relation (`pg_class.relkind`), if it is a table.
fn relkind(relid: pg_sys::Oid) -> Option<u8> {
    relation_facts(relid).map(|(_, k)| k)
}

/// Catalog facts for an ordinary, partitioned or materialized table; None for other relation
/// kinds. A partitioned table has no rows of its own: its facts are its partitions' sum.
pub fn table_facts(relid: pg_sys::Oid) -> Option<TableFacts> {
    let partitioned = relkind(relid)? == pg_sys::RELKIND_PARTITIONED_TABLE;
    reach(relid, partitioned)
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

unsafe fn constraint_action(c: *mut pg_sys::Constraint, column: Option<String>) -> Action {
    // SAFETY: c is a Constraint node from the parse tree.
    unsafe {
        Action::AddConstraint {
            name: text((*c).conname),
            kind: constraint_kind((*c).contype),
            not_valid: (*c).skip_validation,
            using_index: !(*c).indexname.is_null(),
            column,
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
        // PostgreSQL checks an inline REFERENCES only when the column is added with a DEFAULT
        // (any, DEFAULT NULL included: it looks at the clause, not the value) or as serial
        // (transformAlterTableStmt, per ADD COLUMN); otherwise the new column is all NULL and
        // the foreign key is marked valid unchecked.
        let mut has_default = !(*def).raw_default.is_null() || serial;
        let (mut identity, mut stored_generated) = (false, false);
        let mut constraints = Vec::new();
        for c in list_items::<pg_sys::Constraint>((*def).constraints) {
            match (*c).contype {
                pg_sys::ConstrType::CONSTR_DEFAULT => {
                    has_default = true;
                    default = default_volatility((*c).raw_expr);
                }
                pg_sys::ConstrType::CONSTR_IDENTITY => identity = true,
                pg_sys::ConstrType::CONSTR_GENERATED => stored_generated = is_stored_generated(c),
                pg_sys::ConstrType::CONSTR_FOREIGN
                | pg_sys::ConstrType::CONSTR_CHECK
                | pg_sys::ConstrType::CONSTR_UNIQUE
                | pg_sys::ConstrType::CONSTR_PRIMARY => constraints.push(c),
                _ => {}
            }
        }
        let mut actions = vec![Action::AddColumn {
            column: column.clone(),
            default,
            serial,
            identity,
            stored_generated,
        }];
        for c in constraints {
            let mut action = constraint_action(c, Some(column.clone()));
            if let Action::AddConstraint {
                kind: ConstraintKind::ForeignKey,
                not_valid,
                ..
            } = &mut action
            {
                *not_valid |= !has_default;
            }
            actions.push(action);
        }
        actions
    }
}

/// One ALTER TABLE subcommand's action, and whether it reaches the table's partitions or
/// inheritance children.
struct Subcommand {
    action: Action,
    /// Facts of its own (ATTACH PARTITION: the partition), instead of the table's.
    facts: Option<TableFacts>,
}

unsafe fn alter_table_actions(
    relid: pg_sys::Oid,
    inh: bool,
    stmt: *mut pg_sys::AlterTableStmt,
) -> Vec<Subcommand> {
    use pg_sys::AlterTableType as AT;
    let partitioned = relkind(relid) == Some(pg_sys::RELKIND_PARTITIONED_TABLE);
    let mut out = Vec::new();
    let sub = |action: Action| Subcommand {
        action,
        facts: None,
    };
    // SAFETY: stmt is an AlterTableStmt; each command's `def` has the node type its subtype
    // implies.
    unsafe {
        for cmd in list_items::<pg_sys::AlterTableCmd>((*stmt).cmds) {
            let column = text((*cmd).name).unwrap_or_default();
            match (*cmd).subtype {
                AT::AT_AddColumn => out.extend(add_column((*cmd).def.cast()).into_iter().map(sub)),
                AT::AT_AlterColumnType => {
                    let members = super::partition::members(relid, inh);
                    let def = (*cmd).def as *mut pg_sys::ColumnDef;
                    if let Some((new_type, change)) =
                        super::type_change::analyse(relid, &members, &column, def)
                    {
                        out.push(sub(Action::AlterColumnType {
                            column,
                            new_type,
                            change,
                        }));
                    }
                }
                AT::AT_SetNotNull => {
                    let has_validated_check = has_validated_not_null_check(relid, &column);
                    out.push(sub(Action::SetNotNull {
                        column,
                        has_validated_check,
                    }));
                }
                AT::AT_AddConstraint if is_a((*cmd).def, pg_sys::NodeTag::T_Constraint) => {
                    out.push(sub(constraint_action((*cmd).def.cast(), None)));
                }
                AT::AT_AttachPartition if partitioned => {
                    if let Some(scan) = super::partition::attach(relid, (*cmd).def.cast()) {
                        out.push(attach_fact(relid, scan));
                    }
                }
                AT::AT_SetLogged => out.push(sub(Action::SetPersistence { logged: true })),
                AT::AT_SetUnLogged => out.push(sub(Action::SetPersistence { logged: false })),
                AT::AT_DropColumn => out.push(sub(Action::DropColumn { column })),
                _ => {}
            }
        }
    }
    out
}

/// ATTACH PARTITION's facts: the partition's name, the rows of what is scanned.
fn attach_fact(parent: pg_sys::Oid, scan: super::partition::AttachScan) -> Subcommand {
    let name = |oid| relation_facts(oid).map(|(f, _)| f.name).unwrap_or_default();
    let partition_facts = table_facts(scan.partition).unwrap_or_default();
    let mut facts = TableFacts {
        name: partition_facts.name.clone(),
        estimated_rows: 0.0,
        created_in_transaction: true,
        descendants: partition_facts.descendants,
    };
    let mut scanned = |f: &TableFacts| {
        facts.estimated_rows += f.estimated_rows;
        facts.created_in_transaction &= f.created_in_transaction;
    };
    if scan.scans_partition {
        scanned(&partition_facts);
    }
    let scans_default = match scan.default_partition {
        Some(d) if scan.scans_default => {
            let f = table_facts(d).unwrap_or_default();
            scanned(&f);
            Some(f.name)
        }
        _ => None,
    };
    Subcommand {
        action: Action::AttachPartition {
            parent: name(parent),
            partition: partition_facts.name,
            scans_partition: scan.scans_partition,
            scans_default,
            bound_check: scan.bound_check,
        },
        facts: Some(facts),
    }
}

/// ALTER DOMAIN ... ADD CONSTRAINT / SET NOT NULL: the domain and every table using it.
unsafe fn alter_domain(stmt: *mut pg_sys::AlterDomainStmt) -> Option<Fact> {
    // SAFETY: stmt is an AlterDomainStmt of a parse tree.
    unsafe {
        let (name, not_null, not_valid) = match (*stmt).subtype as u8 {
            b'O' => (None, true, false),
            b'C' if is_a((*stmt).def, pg_sys::NodeTag::T_Constraint) => {
                let c = (*stmt).def as *mut pg_sys::Constraint;
                let not_null = (*c).contype == pg_sys::ConstrType::CONSTR_NOTNULL;
                if !not_null && (*c).contype != pg_sys::ConstrType::CONSTR_CHECK {
                    return None;
                }
                (text((*c).conname), not_null, (*c).skip_validation)
            }
            _ => return None,
        };
        let type_name = pg_sys::makeTypeNameFromNameList((*stmt).typeName);
        let domain = pg_sys::LookupTypeNameOid(std::ptr::null_mut(), type_name, true);
        if domain == pg_sys::InvalidOid
            || pg_sys::get_typtype(domain) as u8 != pg_sys::TYPTYPE_DOMAIN
        {
            return None;
        }
        let tables: Vec<pg_sys::Oid> = Spi::connect(|client| {
            client
                .select(
                    include_str!("../queries/domain_tables.sql"),
                    None,
                    &[domain.into()],
                )
                .map(|rows| {
                    rows.into_iter()
                        .filter_map(|r| r.get::<pg_sys::Oid>(1).ok().flatten())
                        .collect()
                })
                .unwrap_or_else(|e| error!("migrate: internal query failed: {e}"))
        });
        let mut facts = TableFacts {
            name: text(pg_sys::format_type_be_qualified(domain)).unwrap_or_default(),
            estimated_rows: 0.0,
            created_in_transaction: true,
            descendants: 0,
        };
        let mut names = Vec::new();
        for t in tables {
            if let Some((f, _)) = relation_facts(t) {
                facts.estimated_rows += f.estimated_rows;
                facts.created_in_transaction &= f.created_in_transaction;
                facts.descendants += 1;
                names.push(f.name);
            }
        }
        Some(Fact {
            relid: pg_sys::InvalidOid,
            table: facts,
            action: Action::AddDomainConstraint {
                name,
                not_null,
                not_valid,
                tables: names,
            },
            domain: Some(domain),
        })
    }
}

fn push(out: &mut StatementFacts, relid: Option<pg_sys::Oid>, inh: bool, actions: Vec<Subcommand>) {
    let Some(relid) = relid else { return };
    let Some(kind) = relkind(relid) else {
        return;
    };
    let partitioned = kind == pg_sys::RELKIND_PARTITIONED_TABLE;
    for Subcommand { action, facts } in actions {
        let table = match facts {
            Some(f) => f,
            None => match reach(relid, inh && rules::recurses(&action, partitioned)) {
                Some(f) => f,
                None => continue,
            },
        };
        out.facts.push(Fact {
            relid,
            table,
            action,
            domain: None,
        });
    }
}

fn plain(actions: Vec<Action>) -> Vec<Subcommand> {
    actions
        .into_iter()
        .map(|action| Subcommand {
            action,
            facts: None,
        })
        .collect()
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
                let relid = relation_oid((*stmt).relation);
                let partitioned =
                    relid.and_then(relkind) == Some(pg_sys::RELKIND_PARTITIONED_TABLE);
                // CREATE INDEX ... ON ONLY a partitioned table builds nothing: instant.
                if partitioned && !(*(*stmt).relation).inh {
                    return out;
                }
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
                    partitioned,
                };
                push(&mut out, relid, true, plain(vec![action]));
            }
            T_AlterTableStmt => {
                let stmt = node as *mut pg_sys::AlterTableStmt;
                if (*stmt).objtype == pg_sys::ObjectType::OBJECT_TABLE {
                    if let Some(relid) = relation_oid((*stmt).relation) {
                        let inh = (*(*stmt).relation).inh;
                        let actions = alter_table_actions(relid, inh, stmt);
                        push(&mut out, Some(relid), inh, actions);
                    }
                }
            }
            T_AlterDomainStmt => {
                out.facts
                    .extend(alter_domain(node as *mut pg_sys::AlterDomainStmt));
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
                    let inh = (*(*stmt).relation).inh;
                    push(
                        &mut out,
                        relation_oid((*stmt).relation),
                        inh,
                        plain(vec![action]),
                    );
                }
            }
            T_DropStmt => {
                let stmt = node as *mut pg_sys::DropStmt;
                if (*stmt).removeType == pg_sys::ObjectType::OBJECT_TABLE {
                    for names in list_items::<pg_sys::List>((*stmt).objects) {
                        let rv = pg_sys::makeRangeVarFromNameList(names);
                        push(
                            &mut out,
                            relation_oid(rv),
                            false,
                            plain(vec![Action::DropTable]),
                        );
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

/// The static-advice view of a column type, from the type name as written (the raw parser
/// spells built-in types `pg_catalog.int4`, `pg_catalog.varchar(n)`, ...).
unsafe fn column_type(t: *mut pg_sys::TypeName) -> ColumnType {
    // SAFETY: t is a TypeName of a raw parse tree; its typmods are A_Const nodes.
    unsafe {
        if t.is_null() || !(*t).arrayBounds.is_null() {
            return ColumnType::Other;
        }
        let typmod = || {
            list_items::<pg_sys::Node>((*t).typmods)
                .first()
                .filter(|n| is_a(**n, pg_sys::NodeTag::T_A_Const))
                .map(|n| (*(*n as *mut pg_sys::A_Const)).val.ival.ival)
        };
        match last_name((*t).names).as_deref() {
            Some("int4") => ColumnType::Int4,
            Some("int2") => ColumnType::Int2,
            Some("timestamp") => ColumnType::Timestamp,
            Some("varchar") => typmod().map_or(ColumnType::Other, ColumnType::Varchar),
            Some("bpchar") => ColumnType::Char(typmod().unwrap_or(1)),
            Some(s) if SERIAL_TYPES.contains(&s) => ColumnType::Serial(s.to_string()),
            _ => ColumnType::Other,
        }
    }
}

unsafe fn name_list(list: *mut pg_sys::List) -> Vec<String> {
    // SAFETY: a list of String nodes (constraint key columns).
    unsafe {
        list_items::<pg_sys::String>(list)
            .into_iter()
            .filter_map(|s| text((*s).sval))
            .collect()
    }
}

/// The name the advice calls a table by: the catalog's for an existing table, else as written.
unsafe fn written_name(rv: *mut pg_sys::RangeVar) -> (Option<pg_sys::Oid>, String) {
    // SAFETY: rv is a RangeVar of a raw parse tree.
    unsafe {
        let relid = relation_oid(rv);
        if let Some(f) = relid.and_then(relation_facts) {
            return (relid, f.0.name);
        }
        let name = text((*rv).relname).unwrap_or_default();
        let name = match text((*rv).schemaname) {
            Some(schema) => format!("{schema}.{name}"),
            None => name,
        };
        (relid, name)
    }
}

fn foreign_key_indexed(relid: Option<pg_sys::Oid>, columns: &[String]) -> bool {
    relid.is_some_and(|relid| {
        crate::pg::query::one::<bool>(
            include_str!("../queries/foreign_key_indexed.sql"),
            &[relid.into(), columns.to_vec().into()],
        ) == Some(true)
    })
}

/// Items for one constraint of `table` (`column`: written inline on that column).
unsafe fn constraint_items(
    relid: Option<pg_sys::Oid>,
    table: &str,
    column: Option<&str>,
    c: *mut pg_sys::Constraint,
    out: &mut Vec<ScriptItem>,
) {
    use pg_sys::ConstrType::*;
    // SAFETY: c is a Constraint node of a raw parse tree.
    unsafe {
        let keys = match column {
            Some(col) => vec![col.to_string()],
            None => name_list((*c).keys),
        };
        match (*c).contype {
            CONSTR_PRIMARY | CONSTR_UNIQUE if (*c).indexname.is_null() => {
                out.push(ScriptItem::Index {
                    table: table.into(),
                    columns: keys,
                });
            }
            CONSTR_FOREIGN => {
                let columns = match column {
                    Some(col) => vec![col.to_string()],
                    None => name_list((*c).fk_attrs),
                };
                let indexed = foreign_key_indexed(relid, &columns);
                out.push(ScriptItem::ForeignKey {
                    table: table.into(),
                    columns,
                    indexed,
                });
            }
            _ => {}
        }
    }
}

/// Items for a column definition (CREATE TABLE or ADD COLUMN); `pk`: the table's primary key
/// is exactly this column.
unsafe fn column_items(
    relid: Option<pg_sys::Oid>,
    table: &str,
    def: *mut pg_sys::ColumnDef,
    pk: bool,
    out: &mut Vec<ScriptItem>,
) {
    // SAFETY: def is a ColumnDef of a raw parse tree.
    unsafe {
        let column = text((*def).colname).unwrap_or_default();
        let constraints = list_items::<pg_sys::Constraint>((*def).constraints);
        let inline_pk = constraints
            .iter()
            .any(|c| (**c).contype == pg_sys::ConstrType::CONSTR_PRIMARY);
        out.push(ScriptItem::Column {
            table: table.into(),
            column: column.clone(),
            ty: column_type((*def).typeName),
            primary_key: pk || inline_pk,
        });
        for c in constraints {
            constraint_items(relid, table, Some(&column), c, out);
        }
    }
}

/// What one statement declares, for `migrate.check()`'s static advice (type choices, foreign
/// keys and the indexes on them, ALTER TABLE statements): see [`rules::advise`].
///
/// # Safety
/// `node` must be a valid raw parse tree.
pub unsafe fn script_items(node: *mut pg_sys::Node) -> Vec<ScriptItem> {
    use pg_sys::NodeTag::*;
    let mut out = Vec::new();
    if node.is_null() {
        return out;
    }
    // SAFETY: each branch casts `node` to the struct its tag names.
    unsafe {
        match (*node).type_ {
            T_CreateStmt => {
                let stmt = node as *mut pg_sys::CreateStmt;
                let (relid, table) = written_name((*stmt).relation);
                let elements = list_items::<pg_sys::Node>((*stmt).tableElts);
                // A table-level PRIMARY KEY of one column makes that column the key.
                let pk: Option<String> = elements
                    .iter()
                    .filter(|e| is_a(**e, T_Constraint))
                    .map(|e| *e as *mut pg_sys::Constraint)
                    .find(|c| (**c).contype == pg_sys::ConstrType::CONSTR_PRIMARY)
                    .map(|c| name_list((*c).keys))
                    .filter(|k| k.len() == 1)
                    .map(|mut k| k.remove(0));
                for e in elements {
                    if is_a(e, T_ColumnDef) {
                        let def = e as *mut pg_sys::ColumnDef;
                        let is_pk = pk.is_some() && text((*def).colname) == pk;
                        column_items(relid, &table, def, is_pk, &mut out);
                    } else if is_a(e, T_Constraint) {
                        constraint_items(relid, &table, None, e.cast(), &mut out);
                    }
                }
            }
            T_AlterTableStmt => {
                let stmt = node as *mut pg_sys::AlterTableStmt;
                if (*stmt).objtype != pg_sys::ObjectType::OBJECT_TABLE {
                    return out;
                }
                let (relid, table) = written_name((*stmt).relation);
                out.push(ScriptItem::AlterTable {
                    table: table.clone(),
                });
                for cmd in list_items::<pg_sys::AlterTableCmd>((*stmt).cmds) {
                    match (*cmd).subtype {
                        pg_sys::AlterTableType::AT_AddColumn => {
                            column_items(relid, &table, (*cmd).def.cast(), false, &mut out)
                        }
                        pg_sys::AlterTableType::AT_AddConstraint
                            if is_a((*cmd).def, T_Constraint) =>
                        {
                            constraint_items(relid, &table, None, (*cmd).def.cast(), &mut out)
                        }
                        _ => {}
                    }
                }
            }
            T_IndexStmt => {
                let stmt = node as *mut pg_sys::IndexStmt;
                let (_, table) = written_name((*stmt).relation);
                let columns = list_items::<pg_sys::IndexElem>((*stmt).indexParams)
                    .into_iter()
                    .map(|e| text((*e).name).unwrap_or_else(|| "(expression)".into()))
                    .collect();
                if (*stmt).whereClause.is_null() {
                    out.push(ScriptItem::Index { table, columns });
                }
            }
            _ => {}
        }
    }
    out
}
