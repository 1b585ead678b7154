//! What a backfill batch runs, and the checks a backfill passes before it is queued.
//!
//! A job walks the table's key (primary key, or a unique index on NOT NULL columns) in key
//! order, one key range per batch: the batch's upper key is found first, then one `UPDATE`
//! covers the range `(last, upper]`. The range's upper key is the checkpoint, committed with the
//! batch, so a resumed job starts exactly after the last committed range. Rows whose key is
//! above the largest key at the job's start are out of its scope.
//!
//! A job with several workers is first split into disjoint key ranges at keys sampled from the
//! table (more ranges than workers, so a worker that finishes early takes another); each range
//! is walked as above with its own checkpoint.
//!
//! A table without such a key is walked by `where_sql` alone: each batch updates rows that
//! still match it, and the batch fails unless the SET made every one of them stop matching
//! (otherwise the job would never end, or update a row twice).

use pgrx::pg_sys;
use pgrx::prelude::*;
use pgrx::PgSqlErrorCode::*;

use crate::error::{Result, UserError};
use crate::pg::script;

/// The key a job walks: column names (as in the catalog) and their types, each type with the
/// column's collation so that comparisons order exactly like `ORDER BY`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Key {
    pub columns: Vec<String>,
    pub types: Vec<String>,
}

/// Double-quotes an identifier (always, so no keyword or case can change its meaning).
pub fn quote_ident(name: &str) -> String {
    format!("\"{}\"", name.replace('"', "\"\""))
}

impl Key {
    fn list(&self) -> String {
        let cols: Vec<String> = self.columns.iter().map(|c| quote_ident(c)).collect();
        cols.join(", ")
    }

    fn descending(&self) -> String {
        let cols: Vec<String> = self
            .columns
            .iter()
            .map(|c| format!("{} DESC", quote_ident(c)))
            .collect();
        cols.join(", ")
    }

    /// The key as a text array, the form checkpoints are stored in.
    fn as_text_array(&self) -> String {
        let cols: Vec<String> = self
            .columns
            .iter()
            .map(|c| format!("{}::pg_catalog.text", quote_ident(c)))
            .collect();
        format!("ARRAY[{}]", cols.join(", "))
    }

    /// A stored key (text array parameter `$n`) cast back to the key's types.
    fn values(&self, param: usize) -> String {
        let vals: Vec<String> = self
            .types
            .iter()
            .enumerate()
            .map(|(i, t)| format!("(${param}::pg_catalog.text[])[{}]::{t}", i + 1))
            .collect();
        vals.join(", ")
    }

    /// `(key) > ($1)` when there is a lower bound, always `(key) <= ($2)`.
    fn range(&self, has_lower: bool) -> String {
        let upper = format!("({}) <= ({})", self.list(), self.values(2));
        if has_lower {
            format!("({}) > ({}) AND {upper}", self.list(), self.values(1))
        } else {
            upper
        }
    }
}

/// The largest key in the table now: the end of the job's scope.
pub fn upper_key_sql(table: &str, key: &Key) -> String {
    format!(
        "SELECT {} FROM {table} ORDER BY {} LIMIT 1",
        key.as_text_array(),
        key.descending()
    )
}

/// Keys that split `($1, $2]` (with `has_lower`; else `(first key, $2]`) into about `ranges`
/// parts holding equal numbers of rows, taken from a sample of `percent` of the table's
/// blocks: ascending, each above `$1` and below `$2`. A job's scope is split so when it first
/// starts, and an unfinished range when `alter_job()` adds workers.
pub fn boundaries_sql(
    table: &str,
    key: &Key,
    percent: f64,
    ranges: i32,
    has_lower: bool,
) -> String {
    format!(
        "SELECT k FROM (SELECT {} AS k, pg_catalog.row_number() OVER (ORDER BY {}) AS rn, \
         pg_catalog.count(*) OVER () AS n FROM {table} TABLESAMPLE SYSTEM ({percent}) \
         WHERE {}) s \
         WHERE rn < n AND (rn * {ranges}) / n <> ((rn - 1) * {ranges}) / n ORDER BY rn",
        key.as_text_array(),
        key.list(),
        key.range(has_lower),
    )
}

/// The table's blocks on disk, partitions included. `pg_partition_tree()` returns no row for a
/// table that is not partitioned, so the table itself is added (a plain table used to count 0
/// blocks, and its boundaries were sampled from all of it: 0.5 s at 1M rows).
pub const BLOCKS_SQL: &str = "SELECT (COALESCE(pg_catalog.sum(pg_catalog.pg_relation_size(t.r)), 0) \
    OPERATOR(pg_catalog./) pg_catalog.current_setting('block_size')::pg_catalog.int8)::pg_catalog.int8 \
    FROM (SELECT p.relid FROM pg_catalog.pg_partition_tree($1) p \
          UNION SELECT $1::pg_catalog.regclass) t(r)";

/// The key that ends a batch of `size` keys after `$1` (none: fewer keys are left). The keys
/// are turned into text in an outer query, for the one row found: a projection in the scan
/// would build the array for every key the OFFSET skips (half the search's time).
pub fn batch_end_sql(table: &str, key: &Key, has_lower: bool, size: i32) -> String {
    let names: Vec<String> = (1..=key.columns.len()).map(|i| format!("k{i}")).collect();
    let texts: Vec<String> = names
        .iter()
        .map(|n| format!("s.{n}::pg_catalog.text"))
        .collect();
    format!(
        "SELECT ARRAY[{}] FROM (SELECT {} FROM {table} WHERE {} ORDER BY {} OFFSET {} LIMIT 1) s({})",
        texts.join(", "),
        key.list(),
        key.range(has_lower),
        key.list(),
        size.max(1) - 1,
        names.join(", ")
    )
}

/// How many keys are left in `($1, $2]` (the last batch).
pub fn remaining_sql(table: &str, key: &Key, has_lower: bool) -> String {
    format!(
        "SELECT pg_catalog.count(*) FROM {table} WHERE {}",
        key.range(has_lower)
    )
}

/// The batch itself: the user's SET for the rows in `($1, $2]` that match `where_sql`.
/// The user's text sits on lines of its own so a trailing `--` comment cannot swallow ours.
pub fn update_sql(
    table: &str,
    key: &Key,
    set_sql: &str,
    where_sql: Option<&str>,
    has_lower: bool,
) -> String {
    let filter = where_sql
        .map(|w| format!(" AND (\n{w}\n)"))
        .unwrap_or_default();
    format!(
        "UPDATE {table} SET\n{set_sql}\nWHERE {}{filter}",
        key.range(has_lower)
    )
}

/// A batch on a table without a key: up to `size` rows that match `where_sql`, and how many of
/// them still match it after the SET (which must be none).
pub fn keyless_update_sql(table: &str, set_sql: &str, where_sql: &str, size: i32) -> String {
    format!(
        "WITH batch AS (UPDATE {table} SET\n{set_sql}\n\
         WHERE ctid OPERATOR(pg_catalog.=) ANY (ARRAY(SELECT ctid FROM {table} WHERE (\n{where_sql}\n) LIMIT {size})) \
         AND (\n{where_sql}\n) RETURNING (\n{where_sql}\n) AS still_matches) \
         SELECT pg_catalog.count(*), pg_catalog.count(*) FILTER (WHERE still_matches) FROM batch"
    )
}

/// Finds the key a job walks: the primary key, else the narrowest unique, non-partial index on
/// plain NOT NULL columns. None if the table has neither.
pub fn find_key(relid: pg_sys::Oid) -> Option<Key> {
    const SQL: &str = include_str!("../queries/table_key.sql");
    Spi::connect(|client| {
        let rows = client
            .select(SQL, None, &[relid.into()])
            .unwrap_or_else(|e| error!("migrate: could not read the indexes of a table: {e}"));
        let column = |row: &pgrx::spi::SpiHeapTupleData, n: usize| {
            row.get::<Vec<String>>(n)
                .unwrap_or_else(|e| error!("migrate: could not read a table's key: {e}"))
                .unwrap_or_else(|| error!("migrate: a table's key has no columns"))
        };
        rows.into_iter().next().map(|row| Key {
            columns: column(&row, 1),
            types: column(&row, 2),
        })
    })
}

/// Checks that `set_sql` is a SET list and nothing else (no WHERE, FROM or RETURNING smuggled
/// in), and that it does not assign a key column (which would move rows across the walk).
pub fn check_set_sql(table: &str, set_sql: &str, key: Option<&Key>) -> Result<()> {
    if set_sql.trim().is_empty() {
        return Err(UserError::new(
            ERRCODE_INVALID_PARAMETER_VALUE,
            format!("migrate.backfill: set_sql for {table} is empty"),
        )
        .hint("Pass the SET list of the UPDATE, e.g. 'total = price * quantity'."));
    }
    let trees = parse(
        &format!("UPDATE {table} SET\n{set_sql}\n"),
        "set_sql",
        table,
    )?;
    let not_a_set_list = || {
        UserError::new(
            ERRCODE_SYNTAX_ERROR,
            format!("migrate.backfill: set_sql for {table} must be only a SET list"),
        )
        .detail(format!("set_sql: {set_sql}"))
        .hint("Pass the assignments alone, e.g. 'a = 1, b = lower(c)'; give the WHERE condition as where_sql.")
    };
    let [tree] = trees.as_slice() else {
        return Err(not_a_set_list());
    };
    // SAFETY: a raw parse tree from raw_parser, read only.
    unsafe {
        if (**tree).type_ != pg_sys::NodeTag::T_UpdateStmt {
            return Err(not_a_set_list());
        }
        let stmt = &*(*tree as *const pg_sys::UpdateStmt);
        #[cfg(feature = "pg15")]
        let returning = !stmt.returningList.is_null();
        #[cfg(feature = "pg18")]
        let returning = !stmt.returningClause.is_null();
        if !stmt.whereClause.is_null()
            || !stmt.fromClause.is_null()
            || returning
            || !stmt.withClause.is_null()
        {
            return Err(not_a_set_list());
        }
        if let Some(key) = key {
            for target in crate::pg::list::items::<pg_sys::Node>(stmt.targetList) {
                let res = &*(target as *const pg_sys::ResTarget);
                if res.name.is_null() {
                    continue;
                }
                let name = std::ffi::CStr::from_ptr(res.name).to_string_lossy();
                if key.columns.iter().any(|c| *c == name) {
                    return Err(UserError::new(
                        ERRCODE_INVALID_COLUMN_REFERENCE,
                        format!("migrate.backfill: set_sql assigns key column \"{name}\" of {table}"),
                    )
                    .detail("A backfill walks the table in key order; changing the key would move rows across the walk.")
                    .hint("Backfill other columns; change keys with an expand/contract migration (new column, backfill, swap)."));
                }
            }
        }
    }
    Ok(())
}

/// Checks that `where_sql` is one boolean condition: it must parse as the WHERE of a SELECT
/// with nothing after it (no `) OR (`, ORDER BY, LIMIT, UNION or second statement).
pub fn check_where_sql(table: &str, where_sql: &str) -> Result<()> {
    let trees = parse(&format!("SELECT WHERE {where_sql}\n"), "where_sql", table)?;
    let not_a_condition = || {
        UserError::new(
            ERRCODE_SYNTAX_ERROR,
            format!("migrate.backfill: where_sql for {table} must be a single condition"),
        )
        .detail(format!("where_sql: {where_sql}"))
        .hint("Pass a boolean expression, e.g. 'total IS NULL'.")
    };
    let [tree] = trees.as_slice() else {
        return Err(not_a_condition());
    };
    // SAFETY: a raw parse tree from raw_parser, read only.
    unsafe {
        if (**tree).type_ != pg_sys::NodeTag::T_SelectStmt {
            return Err(not_a_condition());
        }
        let s = &*(*tree as *const pg_sys::SelectStmt);
        let only_where = !s.whereClause.is_null()
            && s.targetList.is_null()
            && crate::pg::expr::only_targets_and_where(s);
        if !only_where {
            return Err(not_a_condition());
        }
    }
    Ok(())
}

fn parse(sql: &str, what: &str, table: &str) -> Result<Vec<*mut pg_sys::Node>> {
    crate::pg::subxact::run(|| script::parse_trees(sql)).map_err(|caught| {
        let (code, message, _, _) = crate::error::caught_parts(&caught);
        UserError::new(
            code,
            format!("migrate.backfill: {what} for {table} does not parse: {message}"),
        )
        .hint(format!("Fix {what} and queue the backfill again."))
    })
}

/// The checks a job passes before it is queued and again before every batch: the owner still
/// exists, may log in (PostgreSQL 15, where background workers could only act for roles with
/// LOGIN), is not a superuser unless that was allowed when it was queued, and may update the
/// table.
pub fn check_owner(
    owner: pg_sys::Oid,
    relid: pg_sys::Oid,
    table: &str,
    allow_superuser: bool,
) -> Result<()> {
    let name = check_job_role(owner, allow_superuser)?;
    // NULL: the table is gone.
    let may_update = Spi::get_one_with_args::<bool>(
        "SELECT pg_catalog.has_table_privilege($1, $2, 'UPDATE')",
        &[owner.into(), relid.into()],
    )
    .unwrap_or_else(|e| error!("migrate: could not check the privileges of role {name}: {e}"))
    .unwrap_or(false);
    if !may_update {
        return Err(UserError::new(
            ERRCODE_INSUFFICIENT_PRIVILEGE,
            format!("permission denied: role \"{name}\" may not UPDATE {table}"),
        )
        .hint(format!(
            "GRANT UPDATE ON {table} TO \"{name}\", or queue the job as a role that may update it."
        )));
    }
    Ok(())
}

/// The checks on the role a backfill runs as (its worker logs in as it): it exists, may log in
/// on PostgreSQL 15, and is not a superuser unless that was allowed when the job was queued.
/// Returns its name.
pub fn check_job_role(owner: pg_sys::Oid, allow_superuser: bool) -> Result<String> {
    let Some(name) = crate::pg::security::role_name(owner) else {
        return Err(UserError::new(
            ERRCODE_UNDEFINED_OBJECT,
            format!(
                "the role that queued the job (OID {}) no longer exists",
                owner.to_u32()
            ),
        )
        .hint("Queue the job again as an existing role."));
    };
    #[cfg(feature = "pg15")]
    {
        if !crate::pg::security::can_login(owner) {
            return Err(UserError::new(
                ERRCODE_INSUFFICIENT_PRIVILEGE,
                format!("role \"{name}\" may not log in, so background jobs cannot run as it"),
            )
            .detail("On PostgreSQL 15 a background worker may only act for a role with LOGIN.")
            .hint(format!(
                "Queue the job as a role with LOGIN, or ALTER ROLE \"{name}\" LOGIN."
            )));
        }
    }
    if crate::pg::security::is_superuser_role(owner) && !allow_superuser {
        return Err(UserError::new(
            ERRCODE_INSUFFICIENT_PRIVILEGE,
            format!("background jobs do not run as superuser \"{name}\""),
        )
        .detail("A job runs with the privileges of the role that queued it.")
        .hint("Queue it as the role that owns the table (SET ROLE), or have a superuser SET LOCAL migrate.allow_superuser_jobs = on in the transaction that queues it."));
    }
    Ok(name)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn composite() -> Key {
        Key {
            columns: vec!["tenant".into(), "Id".into()],
            types: vec!["integer".into(), "text COLLATE pg_catalog.\"C\"".into()],
        }
    }

    #[test]
    fn batch_statements_walk_key_ranges() {
        let key = composite();
        assert_eq!(
            batch_end_sql("public.t", &key, true, 500),
            "SELECT ARRAY[s.k1::pg_catalog.text, s.k2::pg_catalog.text] FROM (SELECT \"tenant\", \"Id\" FROM public.t \
             WHERE (\"tenant\", \"Id\") > (($1::pg_catalog.text[])[1]::integer, ($1::pg_catalog.text[])[2]::text COLLATE pg_catalog.\"C\") \
             AND (\"tenant\", \"Id\") <= (($2::pg_catalog.text[])[1]::integer, ($2::pg_catalog.text[])[2]::text COLLATE pg_catalog.\"C\") \
             ORDER BY \"tenant\", \"Id\" OFFSET 499 LIMIT 1) s(k1, k2)"
        );
        let first = update_sql("public.t", &key, "n = n + 1", Some("n < 5 -- c"), false);
        assert!(
            first.starts_with("UPDATE public.t SET\nn = n + 1\nWHERE (\"tenant\", \"Id\") <= (")
        );
        assert!(first.ends_with(" AND (\nn < 5 -- c\n)"));
        assert!(!first.contains("$1"));
        assert!(upper_key_sql("public.t", &key)
            .ends_with("ORDER BY \"tenant\" DESC, \"Id\" DESC LIMIT 1"));
    }

    #[test]
    fn parallel_jobs_split_into_sampled_ranges() {
        let key = composite();
        let sql = boundaries_sql("public.t", &key, 0.5, 8, false);
        assert!(sql.contains("FROM public.t TABLESAMPLE SYSTEM (0.5)"));
        assert!(sql.contains("ORDER BY \"tenant\", \"Id\") AS rn"));
        assert!(sql.contains("(rn * 8) / n <> ((rn - 1) * 8) / n"));
        assert!(!sql.contains("$1"));
        // A range split for an added worker: above its checkpoint, up to its end.
        let split = boundaries_sql("public.t", &key, 0.5, 3, true);
        assert!(split.contains("WHERE (\"tenant\", \"Id\") > (($1::pg_catalog.text[])[1]"));
        assert!(split.contains("(rn * 3) / n <> ((rn - 1) * 3) / n"));
    }

    #[test]
    fn identifiers_are_always_quoted() {
        assert_eq!(quote_ident("select"), "\"select\"");
        assert_eq!(quote_ident("a\"b"), "\"a\"\"b\"");
    }
}
