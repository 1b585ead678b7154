//! `CREATE INDEX CONCURRENTLY` on a partitioned table, which PostgreSQL refuses, done by the
//! online recipe (the steps are decided in [`migrate_core::partition_index`]): this module
//! recognises the statement and reads the partition tree and what exists of its indexes from
//! the catalog. The worker that runs a deploy's non-transactional step runs the steps; `plan()`
//! shows them. Both read with their own role's view of the catalog and take no lock.

use migrate_core::partition_index::{self as recipe, IndexState, Node, Step};
use pgrx::pg_sys;
use pgrx::prelude::*;
use pgrx::PgSqlErrorCode::*;

use crate::error::{Result, UserError};

/// A concurrent index build on a partitioned table, and the steps that do it.
#[derive(Debug, Clone)]
pub struct Recipe {
    /// The partitioned table as SQL text.
    pub table_name: String,
    /// The index asked for, schema-qualified.
    pub index_name: String,
    pub unique: bool,
    /// The statement's text after the table name (`USING ... (columns) ...`).
    pub definition: String,
    pub root: Node,
}

impl Recipe {
    /// What is left to do, from the state read when the recipe was loaded.
    pub fn steps(&self) -> Vec<Step> {
        recipe::steps(&self.root)
    }

    pub fn sql(&self, step: &Step) -> String {
        step.sql(self.unique, &self.definition)
    }

    /// Reads the state again (after some steps ran).
    pub fn reload(&self, table: pg_sys::Oid, index: &str) -> Result<Recipe> {
        load(table, index, self.unique, &self.definition)
    }
}

/// The statement `tree` (parsed from `text`) as a recipe: Some when it is a `CREATE INDEX
/// CONCURRENTLY` on a partitioned table (not `ONLY`), with the table's oid and the index name
/// asked for; an error when it is one the recipe cannot do (no index name, a name it cannot
/// read back from the text).
///
/// # Safety
/// `tree` must be a raw parse tree node of `text`.
pub unsafe fn recognise(
    tree: *mut pg_sys::Node,
    text: &str,
) -> Option<Result<(pg_sys::Oid, String, Recipe)>> {
    // SAFETY: the tag is checked before the cast; RangeVarGetRelidExtended with missing_ok
    // takes no lock and raises nothing for a missing table.
    let (table, name, unique, location) = unsafe {
        if (*tree).type_ != pg_sys::NodeTag::T_IndexStmt {
            return None;
        }
        let stmt = tree as *mut pg_sys::IndexStmt;
        let relation = (*stmt).relation;
        if !(*stmt).concurrent || relation.is_null() || !(*relation).inh {
            return None;
        }
        let table = pg_sys::RangeVarGetRelidExtended(
            relation,
            pg_sys::NoLock as i32,
            pg_sys::RVROption::RVR_MISSING_OK,
            None,
            std::ptr::null_mut(),
        );
        if table == pg_sys::InvalidOid
            || pg_sys::get_rel_relkind(table)
                != pg_sys::RELKIND_PARTITIONED_TABLE as std::ffi::c_char
        {
            return None;
        }
        let name = (!(*stmt).idxname.is_null()).then(|| {
            std::ffi::CStr::from_ptr((*stmt).idxname)
                .to_string_lossy()
                .into_owned()
        });
        (table, name, (*stmt).unique, (*relation).location)
    };
    let table_name = crate::pg::query::required::<String>(
        "SELECT $1::pg_catalog.regclass::pg_catalog.text",
        &[table.into()],
    );
    let Some(name) = name else {
        return Some(Err(UserError::new(
            ERRCODE_FEATURE_NOT_SUPPORTED,
            format!("CREATE INDEX CONCURRENTLY on partitioned table {table_name} needs an index name"),
        )
        .detail("deploy() builds it partition by partition, and names each partition's index after it, so a rerun finds what an earlier attempt built.")
        .hint("Name the index: CREATE INDEX CONCURRENTLY name ON table (...).")));
    };
    let definition = usize::try_from(location)
        .ok()
        .and_then(|at| recipe::index_definition(text, at));
    let Some(definition) = definition else {
        return Some(Err(UserError::new(
            ERRCODE_FEATURE_NOT_SUPPORTED,
            format!("cannot read the index definition after the table name {table_name}"),
        )
        .hint("Write the table name as a plain or double-quoted identifier (not U&\"...\"), followed by USING or the column list.")));
    };
    let definition = definition.to_string();
    Some(load(table, &name, unique, &definition).map(|r| (table, name, r)))
}

/// One table of the tree as the catalog has it.
struct Member {
    relid: pg_sys::Oid,
    parent: pg_sys::Oid,
    relkind: String,
    qualified: String,
    relname: String,
    schema: String,
}

fn load(table: pg_sys::Oid, index: &str, unique: bool, definition: &str) -> Result<Recipe> {
    let members = tree_members(table);
    if let Some(foreign) = members.iter().find(|m| m.relkind == "f") {
        return Err(UserError::new(
            ERRCODE_FEATURE_NOT_SUPPORTED,
            format!(
                "partition {} of {} is a foreign table: it cannot get an index",
                foreign.qualified,
                members[0].qualified
            ),
        )
        .hint("Detach the foreign table, or build the index of each other partition by hand and attach it."));
    }
    let root_member = &members[0];
    let (root_state, root_oid, root_names) = index_state(root_member, index, pg_sys::InvalidOid);
    let root = Node {
        table: root_member.qualified.clone(),
        index: root_names.0,
        index_qualified: root_names.1.clone(),
        partitioned: true,
        state: match root_state {
            IndexState::Invalid => IndexState::Attached { valid: false },
            IndexState::Detached => IndexState::Attached { valid: true },
            other => other,
        },
        children: children(&members, table, root_oid, index),
    };
    Ok(Recipe {
        table_name: root_member.qualified.clone(),
        index_name: root_names.1,
        unique,
        definition: definition.to_string(),
        root,
    })
}

/// The children of `parent` in the tree (recursively), with the state of each one's index
/// relative to `parent_index` (the parent's index, InvalidOid if it does not exist yet).
fn children(
    members: &[Member],
    parent: pg_sys::Oid,
    parent_index: pg_sys::Oid,
    index: &str,
) -> Vec<Node> {
    members
        .iter()
        .filter(|m| m.parent == parent)
        .map(|m| {
            let name = recipe::child_index_name(index, &m.relname);
            let (state, oid, names) = index_state(m, &name, parent_index);
            let partitioned = m.relkind == "p";
            Node {
                table: m.qualified.clone(),
                index: names.0,
                index_qualified: names.1,
                partitioned,
                state,
                children: if partitioned {
                    children(members, m.relid, oid, index)
                } else {
                    Vec::new()
                },
            }
        })
        .collect()
}

/// The partitioned table and every table under it, the root first, then by depth and name.
fn tree_members(table: pg_sys::Oid) -> Vec<Member> {
    const SQL: &str = include_str!("queries/partition_tree.sql");
    Spi::connect(|client| {
        let what = "read the partitions of a table";
        let rows = client
            .select(SQL, None, &[table.into()])
            .unwrap_or_else(|e| error!("migrate: could not {what}: {e}"));
        rows.into_iter()
            .map(|row| {
                let text = |name: &str| -> String {
                    row.get_by_name::<String, _>(name)
                        .unwrap_or_else(|e| error!("migrate: could not {what}: {e}"))
                        .unwrap_or_default()
                };
                let oid = |name: &str| -> pg_sys::Oid {
                    row.get_by_name::<pg_sys::Oid, _>(name)
                        .unwrap_or_else(|e| error!("migrate: could not {what}: {e}"))
                        .unwrap_or(pg_sys::InvalidOid)
                };
                Member {
                    relid: oid("relid"),
                    parent: oid("parent"),
                    relkind: text("relkind"),
                    qualified: text("qualified"),
                    relname: text("relname"),
                    schema: text("schema"),
                }
            })
            .collect()
    })
}

/// The state of `member`'s index for the recipe: attached to `parent_index` (any name), or
/// else the one named `name`; with its oid and its (quoted, qualified) names.
fn index_state(
    member: &Member,
    name: &str,
    parent_index: pg_sys::Oid,
) -> (IndexState, pg_sys::Oid, (String, String)) {
    const SQL: &str = include_str!("queries/partition_index_state.sql");
    Spi::connect(|client| {
        let what = "read the state of a partition's index";
        let rows = client
            .select(
                SQL,
                None,
                &[
                    member.relid.into(),
                    name.into(),
                    parent_index.into(),
                    member.schema.as_str().into(),
                ],
            )
            .unwrap_or_else(|e| error!("migrate: could not {what}: {e}"));
        let row = rows
            .into_iter()
            .next()
            .unwrap_or_else(|| error!("migrate: could not {what}: no row"));
        let get_text = |n: &str| -> Option<String> {
            row.get_by_name::<String, _>(n)
                .unwrap_or_else(|e| error!("migrate: could not {what}: {e}"))
        };
        let get_bool = |n: &str| -> Option<bool> {
            row.get_by_name::<bool, _>(n)
                .unwrap_or_else(|e| error!("migrate: could not {what}: {e}"))
        };
        let oid = row
            .get_by_name::<pg_sys::Oid, _>("indexrelid")
            .unwrap_or_else(|e| error!("migrate: could not {what}: {e}"))
            .unwrap_or(pg_sys::InvalidOid);
        let names = (
            get_text("quoted").unwrap_or_default(),
            get_text("qualified").unwrap_or_default(),
        );
        let state = match (
            oid == pg_sys::InvalidOid,
            get_bool("attached"),
            get_bool("valid"),
        ) {
            (true, _, _) => IndexState::Missing,
            (false, Some(true), valid) => IndexState::Attached {
                valid: valid.unwrap_or(false),
            },
            (false, _, Some(true)) => IndexState::Detached,
            (false, _, _) => IndexState::Invalid,
        };
        (state, oid, names)
    })
}
