//! Catalog facts for expand/contract (read as the caller under a pinned `search_path`) and the
//! registry rows in `migrate.expansion_registry` (written as the registry owner).

use pgrx::pg_sys;
use pgrx::prelude::*;
use pgrx::spi::SpiHeapTupleData;

use crate::pg::security::{as_registry_owner, with_safe_search_path};

/// The table and (if it exists) the column, as `expand_column.sql` reads them.
pub struct TableFacts {
    /// `schema.table`, quoted.
    pub table: String,
    pub schema: String,
    pub relname: String,
    pub kind: String,
    pub owner: pg_sys::Oid,
    pub in_inheritance_tree: bool,
    pub column: Option<ColumnFacts>,
}

pub struct ColumnFacts {
    pub attnum: i32,
    /// format_type, qualified where off pg_catalog.
    pub type_name: String,
    pub not_null: bool,
    /// An identity or generated column.
    pub identity_or_generated: bool,
    pub default: Option<String>,
}

fn read<T: FromDatum + IntoDatum>(row: &SpiHeapTupleData, n: usize) -> Option<T> {
    row.get::<T>(n)
        .unwrap_or_else(|e| error!("migrate: could not read a table's catalog entry: {e}"))
}

/// The table `relid` and its column `column`; None if no relation has that OID.
pub fn table_facts(relid: pg_sys::Oid, column: &str) -> Option<TableFacts> {
    const SQL: &str = include_str!("../queries/expand_column.sql");
    with_safe_search_path(|| {
        Spi::connect(|client| {
            let rows = client
                .select(SQL, None, &[relid.into(), column.into()])
                .unwrap_or_else(|e| error!("migrate: could not read table {relid:?}: {e}"));
            rows.into_iter().next().map(|row| {
                let table: String = read(&row, 1).unwrap_or_default();
                let relname = read::<String>(&row, 11).unwrap_or_default();
                TableFacts {
                    table,
                    schema: read(&row, 2).unwrap_or_default(),
                    relname,
                    kind: read(&row, 3).unwrap_or_default(),
                    owner: read(&row, 4).unwrap_or(pg_sys::InvalidOid),
                    in_inheritance_tree: read(&row, 5).unwrap_or(false),
                    column: read::<i32>(&row, 6).map(|attnum| ColumnFacts {
                        attnum,
                        type_name: read(&row, 7).unwrap_or_default(),
                        not_null: read(&row, 8).unwrap_or(false),
                        identity_or_generated: read(&row, 9).unwrap_or(false),
                        default: read(&row, 10),
                    }),
                }
            })
        })
    })
}

/// Every live column of the table: (name, type).
pub fn table_columns(relid: pg_sys::Oid) -> Vec<(String, String)> {
    const SQL: &str = include_str!("../queries/table_columns.sql");
    with_safe_search_path(|| {
        Spi::connect(|client| {
            client
                .select(SQL, None, &[relid.into()])
                .unwrap_or_else(|e| error!("migrate: could not read the columns of a table: {e}"))
                .map(|row| {
                    (
                        read::<String>(&row, 1).unwrap_or_default(),
                        read::<String>(&row, 2).unwrap_or_default(),
                    )
                })
                .collect()
        })
    })
}

/// What depends on the column besides its default and NOT NULL: (views, everything else).
pub fn dependents(
    relid: pg_sys::Oid,
    attnum: i32,
    recreated: &[String],
) -> (Vec<String>, Vec<String>) {
    const SQL: &str = include_str!("../queries/column_dependents.sql");
    let rows: Vec<(String, String)> = with_safe_search_path(|| {
        Spi::connect(|client| {
            client
                .select(
                    SQL,
                    None,
                    &[relid.into(), attnum.into(), recreated.to_vec().into()],
                )
                .unwrap_or_else(|e| error!("migrate: could not read what depends on a column: {e}"))
                .map(|row| {
                    (
                        read::<String>(&row, 1).unwrap_or_default(),
                        read::<String>(&row, 2).unwrap_or_default(),
                    )
                })
                .collect()
        })
    });
    let (views, others): (Vec<_>, Vec<_>) = rows.into_iter().partition(|(k, _)| k == "view");
    (
        views.into_iter().map(|(_, o)| o).collect(),
        others.into_iter().map(|(_, o)| o).collect(),
    )
}

/// True if the table has a column of that name (live).
pub fn has_column(relid: pg_sys::Oid, name: &str) -> bool {
    with_safe_search_path(|| {
        crate::pg::query::required::<bool>(
            "SELECT EXISTS (SELECT FROM pg_catalog.pg_attribute a \
             WHERE a.attrelid OPERATOR(pg_catalog.=) $1 AND a.attname OPERATOR(pg_catalog.=) $2 \
               AND a.attnum OPERATOR(pg_catalog.>) 0 AND NOT a.attisdropped)",
            &[relid.into(), name.into()],
        )
    })
}

/// A `migrate.expansion_registry` row.
pub struct Expansion {
    pub id: i64,
    pub old_column: String,
    pub new_column: String,
    pub shadow: bool,
    pub trigger_name: String,
    pub function_name: String,
    pub old_default: Option<String>,
    pub check_name: Option<String>,
    pub job_id: Option<i64>,
    /// The old column's indexes recreated on the new one, and each one's statement.
    pub index_names: Vec<String>,
    pub index_sql: Vec<String>,
}

/// What a new registry row records.
pub struct NewExpansion<'a> {
    pub relid: pg_sys::Oid,
    pub old_column: &'a str,
    pub new_column: &'a str,
    pub shadow: bool,
    pub old_type: &'a str,
    pub new_type: &'a str,
    pub up: &'a str,
    pub down: &'a str,
    pub trigger_name: &'a str,
    pub function_name: &'a str,
    pub old_default: Option<&'a str>,
    pub check_name: Option<&'a str>,
    pub job_id: i64,
    pub created_by: &'a str,
    pub index_names: Vec<String>,
    pub index_sql: Vec<String>,
}

/// The open expansion in which `column` of table `relid` is the old or the new column (locked
/// with `FOR UPDATE` when `lock`: contract and undo take it so only one of them runs).
pub fn open_expansion(relid: pg_sys::Oid, column: &str, lock: bool) -> Option<Expansion> {
    let sql = format!(
        "SELECT id, old_column::pg_catalog.text, new_column::pg_catalog.text, shadow, \
                trigger_name::pg_catalog.text, function_name::pg_catalog.text, old_default, \
                check_name::pg_catalog.text, job_id, index_names, index_sql \
         FROM migrate.expansion_registry \
         WHERE relid OPERATOR(pg_catalog.=) $1::pg_catalog.oid \
           AND state OPERATOR(pg_catalog.=) 'expanded' \
           AND (old_column OPERATOR(pg_catalog.=) $2 OR new_column OPERATOR(pg_catalog.=) $2) \
         ORDER BY old_column OPERATOR(pg_catalog.<>) $2 LIMIT 1{}",
        if lock { " FOR UPDATE" } else { "" }
    );
    as_registry_owner(|| {
        Spi::connect_mut(|client| {
            let rows = client
                .update(&sql, None, &[relid.into(), column.into()])
                .unwrap_or_else(|e| error!("migrate: could not read the expansion registry: {e}"));
            rows.into_iter().next().map(|row| Expansion {
                id: read(&row, 1).unwrap_or_default(),
                old_column: read(&row, 2).unwrap_or_default(),
                new_column: read(&row, 3).unwrap_or_default(),
                shadow: read(&row, 4).unwrap_or(false),
                trigger_name: read(&row, 5).unwrap_or_default(),
                function_name: read(&row, 6).unwrap_or_default(),
                old_default: read(&row, 7),
                check_name: read(&row, 8),
                job_id: read(&row, 9),
                index_names: read(&row, 10).unwrap_or_default(),
                index_sql: read(&row, 11).unwrap_or_default(),
            })
        })
    })
}

/// Records a new expansion; returns its id.
pub fn insert(e: &NewExpansion) -> i64 {
    as_registry_owner(|| {
        crate::pg::query::required::<i64>(
            "INSERT INTO migrate.expansion_registry (relid, old_column, new_column, shadow, old_type, \
               new_type, up_sql, down_sql, trigger_name, function_name, old_default, check_name, \
               job_id, created_by, index_names, index_sql) \
             VALUES ($1::pg_catalog.oid::pg_catalog.regclass, $2, $3, $4, $5, $6, $7, $8, $9, $10, \
               $11, $12, $13, $14, $15, $16) RETURNING id",
            &[
                e.relid.into(),
                e.old_column.into(),
                e.new_column.into(),
                e.shadow.into(),
                e.old_type.into(),
                e.new_type.into(),
                e.up.into(),
                e.down.into(),
                e.trigger_name.into(),
                e.function_name.into(),
                e.old_default.into(),
                e.check_name.into(),
                e.job_id.into(),
                e.created_by.into(),
                e.index_names.clone().into(),
                e.index_sql.clone().into(),
            ],
        )
    })
}

/// Ends an expansion: `contracted` or `undone`.
pub fn finish(id: i64, state: &str) {
    as_registry_owner(|| {
        Spi::run_with_args(
            "UPDATE migrate.expansion_registry SET state = $2, \
               finished_at = pg_catalog.clock_timestamp() WHERE id OPERATOR(pg_catalog.=) $1",
            &[id.into(), state.into()],
        )
        .unwrap_or_else(|e| error!("migrate: could not update the expansion registry: {e}"))
    })
}

/// The `search_path` the sync trigger function runs with: the caller's schemas as resolved now
/// (`$user` resolved, missing schemas left out), `pg_catalog` first unless the caller placed
/// it, and `pg_temp` last, so no writer's temporary objects are found before them.
pub fn pinned_search_path() -> String {
    let schemas: Vec<String> = crate::pg::query::one::<Vec<String>>(
        "SELECT pg_catalog.array_agg(pg_catalog.quote_ident(s)) \
         FROM pg_catalog.unnest(pg_catalog.current_schemas(false)) AS s",
        &[],
    )
    .unwrap_or_default();
    let mut path = Vec::new();
    if !schemas.iter().any(|s| s == "pg_catalog") {
        path.push("pg_catalog".to_string());
    }
    path.extend(schemas.into_iter().filter(|s| !s.starts_with("pg_temp")));
    path.push("pg_temp".to_string());
    path.join(", ")
}

/// True if the check constraint `name` of the table is validated.
pub fn check_validated(relid: pg_sys::Oid, name: &str) -> bool {
    with_safe_search_path(|| {
        crate::pg::query::one::<bool>(
            "SELECT k.convalidated FROM pg_catalog.pg_constraint k \
             WHERE k.conrelid OPERATOR(pg_catalog.=) $1 AND k.conname OPERATOR(pg_catalog.=) $2",
            &[relid.into(), name.into()],
        )
        .unwrap_or(false)
    })
}

/// True if this backend already holds a lock on the table that blocks its writers (SHARE or
/// stronger).
pub fn blocks_writers_here(relid: pg_sys::Oid) -> bool {
    with_safe_search_path(|| {
        crate::pg::query::required::<bool>(
            "SELECT EXISTS (SELECT FROM pg_catalog.pg_locks l \
             WHERE l.pid OPERATOR(pg_catalog.=) pg_catalog.pg_backend_pid() AND l.granted \
               AND l.locktype OPERATOR(pg_catalog.=) 'relation' \
               AND l.relation OPERATOR(pg_catalog.=) $1 \
               AND l.mode OPERATOR(pg_catalog.=) ANY (ARRAY['ShareLock', 'ShareRowExclusiveLock', \
                   'ExclusiveLock', 'AccessExclusiveLock']))",
            &[relid.into()],
        )
    })
}

/// Schemas on the caller's path (as the trigger's pinned path will have them) that every role
/// may CREATE in: an object planted there (an operator that matches `up` better than the
/// built-in one) would run as every writer of the table.
pub fn public_writable_schemas() -> Vec<String> {
    // Under the caller's own search_path (that is what it reads); every name is qualified.
    {
        crate::pg::query::one::<Vec<String>>(
            "SELECT pg_catalog.array_agg(pg_catalog.quote_ident(s)) \
             FROM pg_catalog.unnest(pg_catalog.current_schemas(false)) AS s \
             WHERE s OPERATOR(pg_catalog.!~) '^pg_' \
               AND pg_catalog.has_schema_privilege('public', s, 'CREATE')",
            &[],
        )
        .unwrap_or_default()
    }
}

/// A plain index on the old column, as `column_indexes.sql` reads it.
pub struct PlainIndex {
    pub name: String,
    pub unique: bool,
    pub method: String,
    pub keys: Vec<String>,
    pub include: Vec<String>,
}

/// The plain indexes on column `attnum` the expansion recreates on the new column.
pub fn plain_indexes(relid: pg_sys::Oid, attnum: i32) -> Vec<PlainIndex> {
    const SQL: &str = include_str!("../queries/column_indexes.sql");
    with_safe_search_path(|| {
        Spi::connect(|client| {
            client
                .select(SQL, None, &[relid.into(), (attnum as i16).into()])
                .unwrap_or_else(|e| error!("migrate: could not read the indexes of a table: {e}"))
                .map(|row| PlainIndex {
                    name: read(&row, 1).unwrap_or_default(),
                    unique: read(&row, 2).unwrap_or(false),
                    method: read(&row, 3).unwrap_or_default(),
                    keys: read(&row, 4).unwrap_or_default(),
                    include: read(&row, 5).unwrap_or_default(),
                })
                .collect()
        })
    })
}

/// Whether the index `name` on the table exists and is valid: None if it does not exist.
pub fn index_valid(relid: pg_sys::Oid, name: &str) -> Option<bool> {
    with_safe_search_path(|| {
        crate::pg::query::one::<bool>(
            "SELECT i.indisvalid FROM pg_catalog.pg_index i \
             JOIN pg_catalog.pg_class c ON c.oid OPERATOR(pg_catalog.=) i.indexrelid \
             WHERE i.indrelid OPERATOR(pg_catalog.=) $1 AND c.relname OPERATOR(pg_catalog.=) $2",
            &[relid.into(), name.into()],
        )
    })
}
