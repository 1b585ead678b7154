//! The statements only the `ProcessUtility` hook sees (event triggers do not fire for them,
//! or, for REINDEX, only from PostgreSQL 17 on): `VACUUM FULL`, `CLUSTER`, `REINDEX`,
//! `REFRESH MATERIALIZED VIEW`, `TRUNCATE`, `LOCK TABLE`. [`judged`] says from the parse tree
//! alone, without reading the catalog, whether the hook judges a statement; [`analyse`] then
//! turns it into rule facts.
//!
//! Like [`super::facts`], nothing here takes a lock or a snapshot: relations resolve with
//! `NoLock`, sizes are relcache estimates, partitions come from `pg_inherits` through the
//! catalog snapshot. That matters for `LOCK TABLE`, the classic first statement of a
//! serializable transaction, whose snapshot must be taken after the lock is granted. Only the
//! forms that name no table (`VACUUM FULL`, `CLUSTER`, `REINDEX SCHEMA/DATABASE`), which cannot
//! run in a transaction block, look for the biggest table with a query.
//!
//! A table a statement recurses into (the partitions of a partitioned table, and for
//! `TRUNCATE` and `LOCK TABLE` without `ONLY` the inheritance children) counts with the sum of
//! their estimates.

use migrate_core::rules::{Action, ReindexTarget, TableFacts};
use pgrx::pg_sys;

use super::facts::{relation_oid, Fact};
use crate::pg::list::items as list_items;

/// What the hook does with a statement, decided from the parse tree alone.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum Seen {
    /// One of ours: judged, its lock wait bounded, a lock timeout explained.
    Judged {
        /// It commits internally (VACUUM, REINDEX SCHEMA/DATABASE, CLUSTER of every table):
        /// it must run outside a transaction block, at top level.
        own_transactions: bool,
    },
    /// DDL the event triggers judge: a lock timeout the guard set for it is explained.
    Ddl,
    /// Everything else: the hook does nothing.
    Other,
}

unsafe fn text(ptr: *const std::ffi::c_char) -> Option<String> {
    (!ptr.is_null()).then(|| {
        // SAFETY: parse trees hold NUL-terminated strings or NULL (checked above).
        unsafe { std::ffi::CStr::from_ptr(ptr) }
            .to_string_lossy()
            .into_owned()
    })
}

/// True if a DefElem list has option `name` switched on (a bare `FULL` or `FULL true`).
unsafe fn option_on(options: *mut pg_sys::List, name: &str) -> bool {
    // SAFETY: option lists hold DefElem nodes; defGetBoolean reads one (it raises for a value
    // that is no boolean, as the statement itself would).
    unsafe {
        list_items::<pg_sys::DefElem>(options).into_iter().any(|d| {
            text((*d).defname).as_deref() == Some(name)
                && ((*d).arg.is_null() || pg_sys::defGetBoolean(d))
        })
    }
}

/// What the hook does with `node`. Reads only the parse tree.
///
/// # Safety
/// `node` is NULL or a valid utility statement node.
pub unsafe fn judged(node: *mut pg_sys::Node) -> Seen {
    use pg_sys::NodeTag::*;
    if node.is_null() {
        return Seen::Other;
    }
    let judged = |own_transactions| Seen::Judged { own_transactions };
    // SAFETY: each branch casts `node` to the struct its tag names.
    unsafe {
        match (*node).type_ {
            T_VacuumStmt => {
                let stmt = node as *mut pg_sys::VacuumStmt;
                if (*stmt).is_vacuumcmd && option_on((*stmt).options, "full") {
                    return judged(true);
                }
                Seen::Other
            }
            // Every table clustered before, when none is named; a partitioned table's
            // partitions each in a transaction of their own (decided with the catalog, later).
            T_ClusterStmt => judged((*(node as *mut pg_sys::ClusterStmt)).relation.is_null()),
            T_ReindexStmt => {
                let stmt = node as *mut pg_sys::ReindexStmt;
                use pg_sys::ReindexObjectType::*;
                if option_on((*stmt).params, "concurrently")
                    || (*stmt).kind == REINDEX_OBJECT_SYSTEM
                {
                    // CONCURRENTLY is the safe form (and waits for old snapshots by design);
                    // SYSTEM rebuilds the catalogs, which are no application's tables.
                    return Seen::Other;
                }
                judged(matches!(
                    (*stmt).kind,
                    REINDEX_OBJECT_SCHEMA | REINDEX_OBJECT_DATABASE
                ))
            }
            T_RefreshMatViewStmt => {
                let stmt = node as *mut pg_sys::RefreshMatViewStmt;
                // CONCURRENTLY is the safe form; WITH NO DATA empties the view at once.
                if (*stmt).concurrent || (*stmt).skipData {
                    Seen::Other
                } else {
                    judged(false)
                }
            }
            T_TruncateStmt => judged(false),
            T_LockStmt => {
                if (*(node as *mut pg_sys::LockStmt)).mode >= pg_sys::ShareLock as i32 {
                    judged(false)
                } else {
                    Seen::Other
                }
            }
            _ if pg_sys::command_tag_event_trigger_ok(pg_sys::CreateCommandTag(node)) => Seen::Ddl,
            _ => Seen::Other,
        }
    }
}

/// One relation as the relcache has it, without a lock.
struct Relation {
    kind: u8,
    name: String,
    owner: pg_sys::Oid,
    created_in_transaction: bool,
    has_children: bool,
    /// The planner's estimate; 0 for relations without storage (a partitioned table).
    rows: f64,
}

fn relation(relid: pg_sys::Oid) -> Option<Relation> {
    // SAFETY: as facts::table_facts: a relcache reference held until RelationClose; the name
    // comes from syscache; estimate_rel_size only reads.
    unsafe {
        let rel = pg_sys::RelationIdGetRelation(relid);
        if rel.is_null() {
            return None;
        }
        // Everything read from the relcache entry is copied first: a catalog lookup below
        // can process invalidations, which rebuild the entry and free its old rd_rel.
        let form = (*rel).rd_rel;
        // Only its own session sees a temporary table: nothing done to it blocks anyone else.
        if (*form).relpersistence as u8 == pg_sys::RELPERSISTENCE_TEMP {
            pg_sys::RelationClose(rel);
            return None;
        }
        let kind = (*form).relkind as u8;
        let owner = (*form).relowner;
        let has_children = (*form).relhassubclass;
        let namespace_oid = (*form).relnamespace;
        let relname = (*form).relname;
        let created_in_transaction = (*rel).rd_createSubid != 0; /* InvalidSubTransactionId */
        let mut tuples = 0.0;
        if kind == pg_sys::RELKIND_RELATION || kind == pg_sys::RELKIND_MATVIEW {
            let (mut pages, mut allvisfrac) = (0, 0.0);
            pg_sys::estimate_rel_size(
                rel,
                std::ptr::null_mut(),
                &mut pages,
                &mut tuples,
                &mut allvisfrac,
            );
        }
        let namespace = pg_sys::get_namespace_name(namespace_oid);
        let name = text(pg_sys::quote_qualified_identifier(
            namespace,
            relname.data.as_ptr(),
        ))
        .unwrap_or_default();
        let out = Relation {
            kind,
            name,
            owner,
            created_in_transaction,
            has_children,
            rows: tuples.max(0.0).round(),
        };
        pg_sys::RelationClose(rel);
        Some(out)
    }
}

unsafe extern "C-unwind" {
    /// catalog/pg_inherits.h (not in pgrx's bindings).
    fn find_all_inheritors(
        parent: pg_sys::Oid,
        lockmode: pg_sys::LOCKMODE,
        numparents: *mut *mut pg_sys::List,
    ) -> *mut pg_sys::List;
}

/// `relid` and every partition or inheritance child below it.
fn inheritors(relid: pg_sys::Oid) -> Vec<pg_sys::Oid> {
    // SAFETY: find_all_inheritors scans pg_inherits with the catalog snapshot; NoLock takes no
    // lock. It returns an OID list (or raises, caught by the FFI guard and re-raised).
    unsafe {
        let list = pg_sys::ffi::pg_guard_ffi_boundary(|| {
            find_all_inheritors(relid, pg_sys::NoLock as _, std::ptr::null_mut())
        });
        if list.is_null() {
            return vec![relid];
        }
        (0..(*list).length as usize)
            .map(|i| (*(*list).elements.add(i)).oid_value)
            .collect()
    }
}

/// The facts of a table (or materialized view) the statement works on, with the rows of the
/// partitions (always) and inheritance children (when `children`) it recurses into. None for
/// other relation kinds (views, indexes, foreign tables, sequences).
fn tree_facts(relid: pg_sys::Oid, children: bool) -> Option<(Relation, TableFacts)> {
    let top = relation(relid)?;
    let partitioned = top.kind == pg_sys::RELKIND_PARTITIONED_TABLE;
    if !(partitioned || top.kind == pg_sys::RELKIND_RELATION || top.kind == pg_sys::RELKIND_MATVIEW)
    {
        return None;
    }
    let (mut rows, mut descendants) = (top.rows, 0);
    if partitioned || (children && top.has_children) {
        let members: Vec<_> = inheritors(relid)
            .into_iter()
            .filter(|&oid| oid != relid)
            .filter_map(relation)
            .collect();
        descendants = members.len();
        rows += members.iter().map(|r| r.rows).sum::<f64>();
    }
    let facts = TableFacts {
        name: top.name.clone(),
        estimated_rows: rows,
        created_in_transaction: top.created_in_transaction,
        descendants,
    };
    Some((top, facts))
}

/// What running the statement on a relation needs.
#[derive(Clone, Copy)]
enum Privilege {
    /// Owner; from PostgreSQL 17, the MAINTAIN privilege too (VACUUM, CLUSTER, REINDEX,
    /// REFRESH). On 15, VACUUM also lets the database owner.
    Maintain {
        vacuum: bool,
    },
    Truncate,
    /// LOCK TABLE in SHARE mode or stronger: UPDATE, DELETE or TRUNCATE (or MAINTAIN on 17+).
    Lock,
}

/// True if the current user may run the statement on the relation: PostgreSQL refuses (or,
/// for VACUUM, skips) it otherwise, so there is nothing to judge or log on behalf of a role
/// that cannot act.
fn permitted(relid: pg_sys::Oid, owner: pg_sys::Oid, privilege: Privilege) -> bool {
    use crate::pg::security::{current_user, has_privileges_of};
    let user = current_user();
    if has_privileges_of(user, owner) {
        return true;
    }
    let mask = match privilege {
        Privilege::Maintain { vacuum } => {
            #[cfg(feature = "pg15")]
            {
                // SAFETY: a pg_database lookup for the current database.
                return vacuum
                    && unsafe {
                        pg_sys::pg_database_ownercheck(crate::pg::backend::database(), user)
                    };
            }
            #[cfg(not(feature = "pg15"))]
            {
                let _ = vacuum;
                pg_sys::ACL_MAINTAIN
            }
        }
        Privilege::Truncate => pg_sys::ACL_TRUNCATE,
        Privilege::Lock => {
            let mask = pg_sys::ACL_UPDATE | pg_sys::ACL_DELETE | pg_sys::ACL_TRUNCATE;
            #[cfg(not(feature = "pg15"))]
            let mask = mask | pg_sys::ACL_MAINTAIN;
            mask
        }
    };
    // SAFETY: a syscache ACL check; ANY of the bits in the mask suffices, as in PostgreSQL's
    // own checks for these statements.
    unsafe {
        pg_sys::pg_class_aclcheck(relid, user, mask as pg_sys::AclMode)
            == pg_sys::AclResult::ACLCHECK_OK
    }
}

fn push(
    out: &mut Vec<Fact>,
    relid: Option<pg_sys::Oid>,
    children: bool,
    privilege: Privilege,
    action: Action,
) {
    let Some(relid) = relid else { return };
    let Some((rel, table)) = tree_facts(relid, children) else {
        return;
    };
    if permitted(relid, rel.owner, privilege) {
        out.push(Fact {
            relid,
            table,
            action,
            domain: None,
        });
    }
}

/// The biggest table the user may maintain, in the whole database or one schema; with
/// `clustered`, only tables with a clustered index (what a bare CLUSTER rewrites).
fn biggest_table(schema: Option<pg_sys::Oid>, clustered: bool) -> Option<pg_sys::Oid> {
    let sql = format!(
        "SELECT c.oid FROM pg_catalog.pg_class c \
         WHERE c.relkind OPERATOR(pg_catalog.=) ANY (ARRAY['r', 'm']::pg_catalog.\"char\"[]) \
           AND c.relpersistence OPERATOR(pg_catalog.<>) 't' \
           AND c.relnamespace OPERATOR(pg_catalog.<>) ALL (ARRAY['pg_catalog', 'information_schema', 'pg_toast']::pg_catalog.regnamespace[]::pg_catalog.oid[]) \
           AND NOT pg_catalog.pg_is_other_temp_schema(c.relnamespace) \
           AND ($1::pg_catalog.oid IS NULL OR c.relnamespace OPERATOR(pg_catalog.=) $1) \
           {} \
         ORDER BY GREATEST(c.reltuples, 0) DESC, c.relpages DESC LIMIT 20",
        if clustered {
            "AND EXISTS (SELECT FROM pg_catalog.pg_index i \
               WHERE i.indrelid OPERATOR(pg_catalog.=) c.oid AND i.indisclustered)"
        } else {
            ""
        }
    );
    let candidates: Vec<pg_sys::Oid> = pgrx::Spi::connect(|client| {
        client.select(&sql, None, &[schema.into()]).map(|rows| {
            rows.filter_map(|r| r.get::<pg_sys::Oid>(1).ok().flatten())
                .collect()
        })
    })
    .unwrap_or_default();
    // The catalog's numbers are the last ANALYZE's; the relcache's estimate (what the rules
    // use) can differ, so the biggest of the first few by that estimate wins.
    candidates
        .into_iter()
        .filter_map(|oid| Some((oid, relation(oid)?)))
        .filter(|(oid, r)| permitted(*oid, r.owner, Privilege::Maintain { vacuum: !clustered }))
        .max_by(|a, b| {
            a.1.rows
                .total_cmp(&b.1.rows)
                .then_with(|| b.1.name.cmp(&a.1.name))
        })
        .map(|(oid, _)| oid)
}

/// The rule facts of a statement [`judged`] said the hook judges. Call it as the statement's
/// own user (it resolves names with the session's search_path and checks that user's
/// privileges).
///
/// # Safety
/// `node` must be a valid utility statement node.
pub unsafe fn analyse(node: *mut pg_sys::Node) -> Vec<Fact> {
    use pg_sys::NodeTag::*;
    let mut out = Vec::new();
    // SAFETY: each branch casts `node` to the struct its tag names; list cells hold the node
    // types the grammar puts there.
    unsafe {
        match (*node).type_ {
            T_VacuumStmt => {
                let stmt = node as *mut pg_sys::VacuumStmt;
                let rels = list_items::<pg_sys::VacuumRelation>((*stmt).rels);
                let privilege = Privilege::Maintain { vacuum: true };
                if rels.is_empty() {
                    let action = Action::VacuumFull { every_table: true };
                    push(
                        &mut out,
                        biggest_table(None, false),
                        false,
                        privilege,
                        action,
                    );
                }
                for r in rels {
                    let action = Action::VacuumFull { every_table: false };
                    push(
                        &mut out,
                        relation_oid((*r).relation),
                        false,
                        privilege,
                        action,
                    );
                }
            }
            T_ClusterStmt => {
                let stmt = node as *mut pg_sys::ClusterStmt;
                let privilege = Privilege::Maintain { vacuum: false };
                let every_table = (*stmt).relation.is_null();
                let relid = if every_table {
                    biggest_table(None, true)
                } else {
                    relation_oid((*stmt).relation)
                };
                push(
                    &mut out,
                    relid,
                    false,
                    privilege,
                    Action::Cluster { every_table },
                );
            }
            T_ReindexStmt => {
                let stmt = node as *mut pg_sys::ReindexStmt;
                let privilege = Privilege::Maintain { vacuum: false };
                use pg_sys::ReindexObjectType::*;
                let (relid, target) = match (*stmt).kind {
                    REINDEX_OBJECT_INDEX => {
                        let index = relation_oid((*stmt).relation);
                        let table = index
                            .map(|i| pg_sys::IndexGetRelation(i, true))
                            .filter(|&t| t != pg_sys::InvalidOid);
                        let name = index.and_then(relation).map(|r| r.name);
                        (table, name.map(ReindexTarget::Index))
                    }
                    REINDEX_OBJECT_TABLE => {
                        (relation_oid((*stmt).relation), Some(ReindexTarget::Table))
                    }
                    REINDEX_OBJECT_SCHEMA => {
                        let name = text((*stmt).name).unwrap_or_default();
                        let cname = std::ffi::CString::new(name.clone()).unwrap_or_default();
                        let schema = pg_sys::get_namespace_oid(cname.as_ptr(), true);
                        let quoted = text(pg_sys::quote_identifier(cname.as_ptr())).unwrap_or(name);
                        (
                            (schema != pg_sys::InvalidOid)
                                .then(|| biggest_table(Some(schema), false))
                                .flatten(),
                            Some(ReindexTarget::Schema(quoted)),
                        )
                    }
                    REINDEX_OBJECT_DATABASE => {
                        (biggest_table(None, false), Some(ReindexTarget::Database))
                    }
                    _ => (None, None),
                };
                if let Some(target) = target {
                    push(
                        &mut out,
                        relid,
                        false,
                        privilege,
                        Action::Reindex { target },
                    );
                }
            }
            T_RefreshMatViewStmt => {
                let stmt = node as *mut pg_sys::RefreshMatViewStmt;
                let relid = relation_oid((*stmt).relation)
                    .filter(|&r| pg_sys::get_rel_relkind(r) as u8 == pg_sys::RELKIND_MATVIEW);
                let privilege = Privilege::Maintain { vacuum: false };
                push(&mut out, relid, false, privilege, Action::RefreshMatview);
            }
            T_TruncateStmt => {
                let stmt = node as *mut pg_sys::TruncateStmt;
                let cascade = (*stmt).behavior == pg_sys::DropBehavior::DROP_CASCADE;
                for rv in list_items::<pg_sys::RangeVar>((*stmt).relations) {
                    let action = Action::Truncate { cascade };
                    push(
                        &mut out,
                        relation_oid(rv),
                        (*rv).inh,
                        Privilege::Truncate,
                        action,
                    );
                }
            }
            T_LockStmt => {
                let stmt = node as *mut pg_sys::LockStmt;
                let mode = (*stmt).mode;
                for rv in list_items::<pg_sys::RangeVar>((*stmt).relations) {
                    let action = Action::LockTable { mode };
                    push(
                        &mut out,
                        relation_oid(rv),
                        (*rv).inh,
                        Privilege::Lock,
                        action,
                    );
                }
            }
            _ => {}
        }
    }
    out
}

/// True if the named relation of a `CLUSTER` or `REINDEX INDEX/TABLE` is partitioned: then the
/// statement works partition by partition in transactions of its own, like VACUUM.
///
/// # Safety
/// `node` must be a valid utility statement node.
pub unsafe fn recurses_in_own_transactions(node: *mut pg_sys::Node) -> bool {
    use pg_sys::NodeTag::*;
    // SAFETY: each branch casts `node` to the struct its tag names.
    let rv = unsafe {
        match (*node).type_ {
            T_ClusterStmt => (*(node as *mut pg_sys::ClusterStmt)).relation,
            T_ReindexStmt => (*(node as *mut pg_sys::ReindexStmt)).relation,
            _ => return false,
        }
    };
    // SAFETY: rv is NULL or a RangeVar of the statement.
    unsafe { relation_oid(rv) }.is_some_and(|oid| {
        // SAFETY: a syscache lookup.
        let kind = unsafe { pg_sys::get_rel_relkind(oid) } as u8;
        kind == pg_sys::RELKIND_PARTITIONED_TABLE || kind == pg_sys::RELKIND_PARTITIONED_INDEX
    })
}
