//! `migrate.expand_column()`, `migrate.contract_column()` and `migrate.undo_expand_column()`.

use std::ffi::CStr;

use pgrx::pg_sys;
use pgrx::prelude::*;
use pgrx::PgSqlErrorCode::*;

use super::column::{self, Expansion, NewExpansion, TableFacts};
use super::sync::{identifier, SyncFunction, RESERVED_COLUMNS};
use crate::error::{OrRaise, Result, UserError};
use crate::pg::security::{current_user, has_privileges_of, role_name, run_as};
use crate::worker::backfill::quote_ident;

/// What a refused contract_column() waits for, so that deploy() can see to it outside the
/// migration's transaction and run the migration again.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Gate {
    /// The expansion's backfill job, queued or running: deploy() waits for it (no snapshot).
    Job(i64),
    /// The NOT NULL check on the new column is not validated, and this transaction already
    /// holds a lock on the table that blocks writers, so validating here would block them for
    /// the whole scan: deploy() validates it in a transaction of its own.
    Validate { table: String, constraint: String },
}

thread_local! {
    /// The gate the last contract_column() of this backend refused at.
    static GATE: std::cell::RefCell<Option<Gate>> = const { std::cell::RefCell::new(None) };
}

/// The gate a refused contract_column() is waiting for, if that was the last refusal (and
/// forgets it).
pub fn take_gate() -> Option<Gate> {
    GATE.with(|g| g.borrow_mut().take())
}

fn set_gate(gate: Option<Gate>) {
    GATE.with(|g| *g.borrow_mut() = gate);
}

fn text_arg(value: Option<&CStr>) -> Option<&str> {
    value.map(|v| {
        v.to_str().unwrap_or_else(|_| {
            UserError::new(
                ERRCODE_CHARACTER_NOT_IN_REPERTOIRE,
                "migrate: a name is not valid UTF-8",
            )
            .hint("Pass names in UTF-8.")
            .raise()
        })
    })
}

/// `migrate.expand_column(tbl, col, new_name, new_type, up, down)`: adds the new column, the
/// sync trigger and a backfill job for existing rows. Returns the backfill job's id.
#[pg_extern(sql = r#"
CREATE FUNCTION migrate.expand_column(tbl regclass, col name, new_name name DEFAULT NULL,
                                      new_type text DEFAULT NULL, up text DEFAULT NULL,
                                      down text DEFAULT NULL)
RETURNS bigint VOLATILE LANGUAGE c AS 'MODULE_PATHNAME', 'expand_column_wrapper';
COMMENT ON FUNCTION migrate.expand_column(regclass, name, name, text, text, text) IS
    'Expand: adds new_name (or a shadow column of new_type), a trigger that keeps it and col in sync (up: old to new, down: new to old), and a backfill job for existing rows; returns the job id.';
"#)]
fn expand_column(
    tbl: Option<pg_sys::Oid>,
    col: Option<&CStr>,
    new_name: Option<&CStr>,
    new_type: Option<&str>,
    up: Option<&str>,
    down: Option<&str>,
) -> i64 {
    expand(
        tbl,
        text_arg(col),
        text_arg(new_name),
        new_type.filter(|t| !t.trim().is_empty()),
        up,
        down,
    )
    .or_raise()
}

/// `migrate.contract_column(tbl, col)`: the finalize gate, then the switch in the caller's
/// transaction.
#[pg_extern(sql = r#"
CREATE FUNCTION migrate.contract_column(tbl regclass, col name)
RETURNS void VOLATILE LANGUAGE c AS 'MODULE_PATHNAME', 'contract_column_wrapper';
COMMENT ON FUNCTION migrate.contract_column(regclass, name) IS
    'Contract: once the expansion''s backfill succeeded, drops the sync trigger and the old column col, moves the name to the new column (a type change), promotes its NOT NULL check and sets its default.';
"#)]
fn contract_column(tbl: Option<pg_sys::Oid>, col: Option<&CStr>) {
    set_gate(None);
    contract(tbl, text_arg(col)).or_raise()
}

/// `migrate.undo_expand_column(tbl, col)`: the down script of an expand: cancels the backfill
/// and drops the trigger, its function and the new column.
#[pg_extern(sql = r#"
CREATE FUNCTION migrate.undo_expand_column(tbl regclass, col name)
RETURNS void VOLATILE LANGUAGE c AS 'MODULE_PATHNAME', 'undo_expand_column_wrapper';
COMMENT ON FUNCTION migrate.undo_expand_column(regclass, name) IS
    'Undoes an open expand_column() of col: cancels its backfill job and drops the sync trigger, its function and the new column.';
"#)]
fn undo_expand_column(tbl: Option<pg_sys::Oid>, col: Option<&CStr>) {
    undo(tbl, text_arg(col)).or_raise()
}

/// The table and column, checked: both given, a table outside an inheritance tree, a plain
/// column, the caller with the owner's privileges.
fn target(what: &str, tbl: Option<pg_sys::Oid>, col: Option<&str>) -> Result<TableFacts> {
    let (Some(relid), Some(col)) = (tbl, col) else {
        return Err(UserError::new(
            ERRCODE_NULL_VALUE_NOT_ALLOWED,
            format!("migrate.{what}: tbl and col must not be NULL"),
        )
        .hint(format!(
            "Pass the table and the column, e.g. migrate.{what}('orders', 'total')."
        )));
    };
    let Some(facts) = column::table_facts(relid, col) else {
        return Err(UserError::new(
            ERRCODE_UNDEFINED_TABLE,
            format!("migrate.{what}: no table with OID {}", relid.to_u32()),
        )
        .hint("Pass an existing table name, e.g. 'public.orders'."));
    };
    let t = &facts.table;
    if facts.kind != "r" {
        return Err(UserError::new(
            ERRCODE_WRONG_OBJECT_TYPE,
            format!("migrate.{what}: {t} is not a plain table"),
        )
        .hint(
            "Expand and contract columns of a table; partitioned tables are not supported yet.",
        ));
    }
    // A temporary table is this session's: the backfill's worker cannot read it (the job
    // failed and the expansion stayed registered after the table was gone).
    let temporary = crate::pg::security::with_safe_search_path(|| {
        crate::pg::query::one::<bool>(
            "SELECT c.relpersistence OPERATOR(pg_catalog.=) 't'::pg_catalog.\"char\" \
             FROM pg_catalog.pg_class c WHERE c.oid OPERATOR(pg_catalog.=) $1",
            &[relid.into()],
        )
    });
    if temporary == Some(true) {
        return Err(UserError::new(
            ERRCODE_FEATURE_NOT_SUPPORTED,
            format!("migrate.{what}: {t} is a temporary table"),
        )
        .detail("The backfill runs in a background worker, which cannot read this session's temporary tables.")
        .hint("Change a temporary table's column with ALTER TABLE."));
    }
    if facts.in_inheritance_tree {
        return Err(UserError::new(
            ERRCODE_FEATURE_NOT_SUPPORTED,
            format!("migrate.{what}: {t} is a partition or in an inheritance tree"),
        )
        .detail("The sync trigger and the backfill would cover one table of the tree only.")
        .hint("Change the column with ALTER TABLE on the whole tree, in a migration of its own."));
    }
    let me = current_user();
    if !has_privileges_of(me, facts.owner) {
        return Err(UserError::new(
            ERRCODE_INSUFFICIENT_PRIVILEGE,
            format!(
                "migrate.{what}: role \"{}\" is not the owner of {t}",
                role_name(me).unwrap_or_default()
            ),
        )
        .hint(format!(
            "Run it as the owner of {t} (role \"{}\") or a member of it.",
            role_name(facts.owner).unwrap_or_default()
        )));
    }
    Ok(facts)
}

/// Whether the (lower-cased) text of up and down may name column `name`: as written, or
/// quoted (a `"` in the name is doubled there, as in the defaults built from quote_ident).
fn may_name(texts: &str, name: &str) -> bool {
    let name = name.to_lowercase();
    texts.contains(&name) || texts.contains(&name.replace('"', "\"\""))
}

/// The name of an old column's index recreated on the new column.
fn recreated_index_name(old: &str) -> String {
    identifier(format!("{old}_migrate_new"))
}

fn qualified(facts: &TableFacts, name: &str) -> String {
    format!("{}.{}", quote_ident(&facts.schema), quote_ident(name))
}

/// Runs one DDL statement built by us (every name quoted, the author's text checked) as the
/// caller, under the guard: the guard's lock_timeout bounds its lock wait.
fn ddl(sql: &str) {
    crate::pg::security::with_own_settings(crate::pg::security::SQL_DIALECT, || {
        crate::pg::script::ensure_single_statement(sql);
        Spi::run(sql).unwrap_or_else(|e| error!("migrate: {e}"))
    })
}

/// One expression of the author's (`up`, `down`), checked to be one expression.
fn expression(what: &str, t: &str, name: &str, text: &str) -> Result<()> {
    let bad = || {
        UserError::new(
            ERRCODE_SYNTAX_ERROR,
            format!("migrate.{what}: {name} for {t} must be one SQL expression"),
        )
        .detail(format!("{name}: {text}"))
        .hint("Pass a value expression over the table's columns, e.g. '(total * 100)::bigint'; no SELECT list, FROM or second statement.")
    };
    if text.trim().is_empty() {
        return Err(bad());
    }
    match crate::pg::expr::is_one_expression(text) {
        Ok(true) => Ok(()),
        Ok(false) => Err(bad()),
        Err(caught) => {
            let (code, message, _, _) = crate::error::caught_parts(&caught);
            Err(UserError::new(
                code,
                format!("migrate.{what}: {name} for {t} does not parse: {message}"),
            )
            .detail(format!("{name}: {text}"))
            .hint(format!("Fix {name}: it must be one SQL expression.")))
        }
    }
}

/// Plans `UPDATE t SET column = (expr)` as the caller (EXPLAIN: nothing runs): an unknown
/// column, a type the expression cannot be assigned to, a missing function surface now with
/// their own SQLSTATE.
fn check_assignable(t: &str, column: &str, name: &str, expr: &str) -> Result<()> {
    let sql = format!(
        "EXPLAIN (COSTS OFF) UPDATE {t} SET {} = (\n{expr}\n)",
        quote_ident(column)
    );
    crate::pg::subxact::run(|| {
        crate::pg::security::with_own_settings(crate::pg::security::SQL_DIALECT, || {
            crate::pg::script::ensure_single_statement(&sql);
            Spi::run(&sql).unwrap_or_else(|e| error!("{e}"))
        })
    })
    .map_err(|caught| {
        let (code, message, _, _) = crate::error::caught_parts(&caught);
        UserError::new(
            code,
            format!(
                "migrate.expand_column: {name} for {t} cannot set {}: {message}",
                quote_ident(column)
            ),
        )
        .detail(format!("{name}: {expr}"))
        .hint(format!(
            "Write {name} so that it gives a value of {}'s type (add a cast), over the table's columns.",
            quote_ident(column)
        ))
    })
}

fn expand(
    tbl: Option<pg_sys::Oid>,
    col: Option<&str>,
    new_name: Option<&str>,
    new_type: Option<&str>,
    up: Option<&str>,
    down: Option<&str>,
) -> Result<i64> {
    let what = "expand_column";
    let facts = target(what, tbl, col)?;
    let (relid, col) = (tbl.expect("checked"), col.expect("checked"));
    let t = facts.table.clone();
    let c = quote_ident(col);
    let Some(old) = facts.column.as_ref() else {
        return Err(UserError::new(
            ERRCODE_UNDEFINED_COLUMN,
            format!("migrate.{what}: {t} has no column {c}"),
        )
        .hint("Pass the name of an existing column (as in the catalog: case matters)."));
    };
    if new_name.is_none() && new_type.is_none() {
        return Err(UserError::new(
            ERRCODE_INVALID_PARAMETER_VALUE,
            format!("migrate.{what}: neither new_name nor new_type given for {t}.{c}"),
        )
        .hint(
            "Pass new_name => '...' for a rename, new_type => '...' for a type change, or both.",
        ));
    }
    if new_name == Some(col) && new_type.is_none() {
        return Err(UserError::new(
            ERRCODE_INVALID_PARAMETER_VALUE,
            format!("migrate.{what}: new_name for {t}.{c} is its own name"),
        )
        .hint("Pass another name, or a new_type for a type change that keeps the name."));
    }
    if old.identity_or_generated {
        return Err(UserError::new(
            ERRCODE_FEATURE_NOT_SUPPORTED,
            format!("migrate.{what}: {t}.{c} is an identity or generated column"),
        )
        .hint("Expand plain columns; an identity or generated column cannot be written through a sync trigger."));
    }
    if let Some(open) = column::open_expansion(relid, col, false) {
        return Err(UserError::new(
            ERRCODE_DUPLICATE_OBJECT,
            format!(
                "migrate.{what}: {t}.{c} is already in an open expansion ({} -> {})",
                quote_ident(&open.old_column),
                quote_ident(&open.new_column)
            ),
        )
        .hint(format!(
            "Finish it first: SELECT migrate.contract_column('{t}', '{}'), or undo it with migrate.undo_expand_column().",
            open.old_column
        )));
    }
    // The new column: new_name, or a shadow that takes the old name at contract.
    let shadow = new_name.is_none() || new_name == Some(col);
    let new_column = match new_name {
        Some(n) if !shadow => n.to_string(),
        _ => identifier(format!("{col}_migrate_new")),
    };
    let n = quote_ident(&new_column);
    if column::has_column(relid, &new_column) {
        return Err(UserError::new(
            ERRCODE_DUPLICATE_COLUMN,
            format!("migrate.{what}: {t} already has a column {n}"),
        )
        .hint("Pass a new_name that is not taken."));
    }
    let type_sql = match new_type {
        None => old.type_name.clone(),
        Some(ty) => {
            let bad = || {
                UserError::new(
                    ERRCODE_SYNTAX_ERROR,
                    format!("migrate.{what}: new_type for {t}.{c} must be a type name"),
                )
                .detail(format!("new_type: {ty}"))
                .hint("Pass a type such as 'bigint', 'numeric(12,2)' or 'text[]', without COLLATE, DEFAULT or constraints.")
            };
            match crate::pg::expr::is_type_name(ty) {
                Ok(true) => ty.to_string(),
                Ok(false) => return Err(bad()),
                Err(_) => return Err(bad()),
            }
        }
    };
    let up = match up {
        Some(u) => {
            expression(what, &t, "up", u)?;
            u.to_string()
        }
        None if new_type.is_none() => c.clone(),
        None => format!("CAST({c} AS {type_sql})"),
    };
    let down = match down {
        Some(d) => {
            expression(what, &t, "down", d)?;
            d.to_string()
        }
        None if new_type.is_none() => n.clone(),
        None => format!("CAST({n} AS {})", old.type_name),
    };
    // Only the columns the expressions may name (a superset: any whose name occurs in their
    // text) become the trigger's variables: a column dropped later, or another expansion's
    // contract, must not break it.
    let texts = format!("{up}\n{down}").to_lowercase();
    let referenced: Vec<(String, String)> = column::table_columns(relid)
        .into_iter()
        .filter(|(name, _)| may_name(&texts, name))
        .collect();
    if let Some((reserved, _)) = referenced
        .iter()
        .find(|(name, _)| RESERVED_COLUMNS.contains(&name.as_str()))
    {
        // Declared as a variable it would hide the trigger's own NEW, OLD or TG_OP.
        return Err(UserError::new(
            ERRCODE_FEATURE_NOT_SUPPORTED,
            format!(
                "migrate.{what}: up or down for {t} names column {}",
                quote_ident(reserved)
            ),
        )
        .detail("The sync trigger reads the columns up and down name as PL/pgSQL variables; this one would hide the trigger's own NEW, OLD or TG_OP.")
        .hint("Rename that column first, or keep the columns in sync with a trigger of your own."));
    }
    // The trigger runs as every writer of the table, with the caller's schemas pinned: none
    // of them may be one any role can plant an operator or function in.
    let open_schemas = column::public_writable_schemas();
    if !open_schemas.is_empty() {
        return Err(UserError::new(
            ERRCODE_INSUFFICIENT_PRIVILEGE,
            format!(
                "migrate.{what}: schema(s) {} on the search_path are writable by every role",
                open_schemas.join(", ")
            ),
        )
        .detail("The sync trigger runs as whoever writes the table, resolving names through this search_path: a function or operator any role planted there would run with a writer's privileges.")
        .hint("REVOKE CREATE ON SCHEMA ... FROM PUBLIC, or SET search_path to schemas only trusted roles may create in, then expand again."));
    }
    // The trigger function goes in the table's schema, created by the caller.
    let may_create = crate::pg::query::required::<bool>(
        "SELECT pg_catalog.has_schema_privilege($1::pg_catalog.text, 'CREATE')",
        &[facts.schema.as_str().into()],
    );
    if !may_create {
        return Err(UserError::new(
            ERRCODE_INSUFFICIENT_PRIVILEGE,
            format!(
                "migrate.{what}: role \"{}\" may not create the sync trigger's function in schema {}",
                role_name(current_user()).unwrap_or_default(),
                quote_ident(&facts.schema)
            ),
        )
        .detail("The function that keeps both columns in sync lives next to the table, owned by the table owner.")
        .hint(format!(
            "GRANT CREATE ON SCHEMA {} to the role that runs the expand, or run it as a role that has it.",
            quote_ident(&facts.schema)
        )));
    }

    // The new column, nullable and without a default while the expansion is open (a NULL new
    // value means "not written"; see sync.rs); NOT NULL as a CHECK that holds for new writes.
    ddl(&format!("ALTER TABLE {t} ADD COLUMN {n} {type_sql}"));
    let check_name = old.not_null.then(|| {
        // Not `<table>_<column>_not_null`: PostgreSQL 18 gives that name to the NOT NULL
        // constraint SET NOT NULL creates at contract.
        let name = identifier(format!("{}_{}_migrate_not_null", facts.relname, new_column));
        ddl(&format!(
            "ALTER TABLE {t} ADD CONSTRAINT {} CHECK ({n} IS NOT NULL) NOT VALID",
            quote_ident(&name)
        ));
        name
    });
    let columns = column::table_columns(relid);
    let new_type_name = columns
        .iter()
        .find(|(name, _)| *name == new_column)
        .map(|(_, ty)| ty.clone())
        .unwrap_or_else(|| error!("migrate: the new column {n} of {t} is missing"));
    check_assignable(&t, &new_column, "up", &up)?;
    check_assignable(&t, col, "down", &down)?;
    if let Some(default) = &old.default {
        check_assignable(&t, &new_column, "the default of the old column", default)?;
    }

    // The sync trigger: SECURITY INVOKER, owned by the table owner, path pinned now.
    let function_name = identifier(format!("migrate_sync_{}_{}", facts.relname, col));
    let trigger_name = identifier(format!("migrate_sync_{col}"));
    let function = qualified(&facts, &function_name);
    let search_path = column::pinned_search_path();
    // The new column's variable has its type now.
    let referenced: Vec<(String, String)> = columns
        .into_iter()
        .filter(|(name, _)| may_name(&texts, name))
        .collect();
    ddl(&SyncFunction {
        function: &function,
        columns: &referenced,
        old_column: col,
        new_column: &new_column,
        up: &up,
        down: &down,
        search_path: &search_path,
    }
    .create_sql());
    if current_user() != facts.owner {
        let owner = role_name(facts.owner).unwrap_or_default();
        ddl(&format!(
            "ALTER FUNCTION {function}() OWNER TO {}",
            quote_ident(&owner)
        ));
    }
    ddl(&format!("REVOKE ALL ON FUNCTION {function}() FROM PUBLIC"));
    ddl(&format!(
        "CREATE TRIGGER {} BEFORE INSERT OR UPDATE ON {t} FOR EACH ROW EXECUTE FUNCTION {function}()",
        quote_ident(&trigger_name)
    ));

    // The old column's plain indexes: their equivalents on the new column are built
    // concurrently (outside any transaction: a non-transactional migration between expand and
    // contract), and the contract waits for them to be valid.
    let (mut index_names, mut index_sql) = (Vec::new(), Vec::new());
    for index in column::plain_indexes(relid, old.attnum) {
        let list = |cols: &[String]| -> String {
            cols.iter()
                .map(|k| quote_ident(if k == col { &new_column } else { k }))
                .collect::<Vec<_>>()
                .join(", ")
        };
        let include = if index.include.is_empty() {
            String::new()
        } else {
            format!(" INCLUDE ({})", list(&index.include))
        };
        index_sql.push(format!(
            "CREATE {}INDEX CONCURRENTLY {} ON {t} USING {} ({}){include}",
            if index.unique { "UNIQUE " } else { "" },
            quote_ident(&recreated_index_name(&index.name)),
            quote_ident(&index.method),
            list(&index.keys)
        ));
        index_names.push(index.name);
    }
    if !index_sql.is_empty() {
        pgrx::notice!(
            "migrate.{what}: build the old column's indexes on {n} before the contract, outside a transaction (a non-transactional migration): {}",
            index_sql.join("; ")
        );
    }
    let (views, others) = column::dependents(relid, old.attnum, &index_names);
    if !views.is_empty() || !others.is_empty() {
        let mut all = views;
        all.extend(others);
        pgrx::notice!(
            "migrate.{what}: {} depend(s) on {t}.{c}: recreate them on {n} before the contract, which refuses to drop {c} while they exist",
            all.join(", ")
        );
    }

    // Existing rows, by the backfill job, as the table owner; rows already in sync (written
    // through the trigger since) are skipped.
    let set_sql = format!("{n} = (\n{up}\n)");
    let where_sql = format!("{n} IS DISTINCT FROM (\n{up}\n)");
    // The job stores the search_path it is queued with and its worker resolves it as the
    // owner: the caller's path as text would name other schemas there ("$user" is the owner,
    // a schema missing now may be created by then), ones the check above never saw. It gets
    // the trigger's path instead: the caller's schemas as resolved and checked now.
    let pinned = std::ffi::CString::new(search_path.as_str()).expect("no NUL in a search_path");
    let job_id =
        crate::pg::security::with_own_settings(&[(c"search_path", pinned.as_c_str())], || {
            run_as(facts.owner, || {
                crate::worker::api::queue_backfill(&crate::worker::api::BackfillArgs {
                    tbl: Some(relid),
                    set_sql: Some(&set_sql),
                    where_sql: Some(&where_sql),
                    batch_size: None,
                    pause: None,
                    workers: None,
                    schedule: Default::default(),
                })
            })
        })
        .map_err(|mut e| {
            e.message = format!(
                "migrate.{what}: the backfill of {t}.{n} cannot be queued: {}",
                e.message
            );
            e
        })?;
    let created_by = role_name(current_user()).unwrap_or_default();
    column::insert(&NewExpansion {
        relid,
        old_column: col,
        new_column: &new_column,
        shadow,
        old_type: &old.type_name,
        new_type: &new_type_name,
        up: &up,
        down: &down,
        trigger_name: &trigger_name,
        function_name: &function_name,
        old_default: old.default.as_deref(),
        check_name: check_name.as_deref(),
        job_id,
        created_by: &created_by,
        index_names,
        index_sql,
    });
    Ok(job_id)
}

/// The open expansion of `col` (its old column), locked; refuses a new column's name.
fn locked_expansion(
    what: &str,
    facts: &TableFacts,
    relid: pg_sys::Oid,
    col: &str,
) -> Result<Expansion> {
    let t = &facts.table;
    let c = quote_ident(col);
    match column::open_expansion(relid, col, true) {
        Some(e) if e.old_column == col => Ok(e),
        Some(e) => Err(UserError::new(
            ERRCODE_UNDEFINED_OBJECT,
            format!(
                "migrate.{what}: {t}.{c} is the new column of the expansion of {}",
                quote_ident(&e.old_column)
            ),
        )
        .hint(format!(
            "Pass the old column: migrate.{what}('{t}', '{}').",
            e.old_column
        ))),
        None => Err(UserError::new(
            ERRCODE_UNDEFINED_OBJECT,
            format!("migrate.{what}: {t}.{c} has no open expansion"),
        )
        .hint(
            "See SELECT * FROM migrate.expansions; expand it first with migrate.expand_column().",
        )),
    }
}

fn contract(tbl: Option<pg_sys::Oid>, col: Option<&str>) -> Result<()> {
    let what = "contract_column";
    let facts = target(what, tbl, col)?;
    let (relid, col) = (tbl.expect("checked"), col.expect("checked"));
    let t = facts.table.clone();
    let e = locked_expansion(what, &facts, relid, col)?;
    let (c, n) = (quote_ident(col), quote_ident(&e.new_column));

    // The gate: the backfill succeeded.
    let job = e.job_id.unwrap_or_default();
    let status = crate::worker::queue::load(job, false);
    match status.as_ref().map(|j| j.state) {
        Some(crate::worker::queue::SUCCEEDED) => {}
        Some(state @ (crate::worker::queue::QUEUED | crate::worker::queue::RUNNING)) => {
            set_gate(Some(Gate::Job(job)));
            return Err(UserError::new(
                ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE,
                format!("migrate.{what}: the backfill of {t}.{n} (job {job}) is {state}"),
            )
            .detail("The old column is dropped only once every row has the new column's value.")
            .hint(format!(
                "CALL migrate.wait_job({job}); then contract again. CALL migrate.deploy() waits for it by itself."
            )));
        }
        Some(state) => {
            return Err(UserError::new(
                ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE,
                format!("migrate.{what}: the backfill of {t}.{n} (job {job}) is {state}"),
            )
            .detail("The old column is dropped only once every row has the new column's value.")
            .hint(format!(
                "SELECT migrate.resume_job({job}) (it resumes from its checkpoint), CALL migrate.wait_job({job}), then contract again; or undo the expansion with migrate.undo_expand_column()."
            )));
        }
        None => {
            return Err(UserError::new(
                ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE,
                format!("migrate.{what}: the backfill job {job} of {t}.{n} does not exist"),
            )
            .hint("Undo the expansion with migrate.undo_expand_column() and expand again."));
        }
    }
    let attnum = facts
        .column
        .as_ref()
        .map(|a| a.attnum)
        .unwrap_or_else(|| error!("migrate: the old column {c} of {t} is missing"));
    // The old column's indexes, recreated on the new one: each must be built and valid.
    let pending: Vec<&String> = e
        .index_names
        .iter()
        .zip(&e.index_sql)
        .filter(|(name, _)| column::index_valid(relid, &recreated_index_name(name)) != Some(true))
        .map(|(_, sql)| sql)
        .collect();
    if !pending.is_empty() {
        return Err(UserError::new(
            ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE,
            format!(
                "migrate.{what}: {} of {t}'s indexes on {n} not built (or not valid) yet",
                pending.len()
            ),
        )
        .detail("The old column's indexes are dropped with it; their equivalents on the new column must be valid first.")
        .hint(format!(
            "Build them outside a transaction (a migration with -- migrate:no-transaction before the contract; DROP INDEX CONCURRENTLY an invalid one first): {}",
            pending.iter().map(|s| format!("{s};")).collect::<Vec<_>>().join(" ")
        )));
    }
    // Views on the old column are rebuilt on the new one (crate::dependent_views), below.
    let (views, others) = column::dependents(relid, attnum, &e.index_names);
    if !others.is_empty() {
        return Err(UserError::new(
            ERRCODE_DEPENDENT_OBJECTS_STILL_EXIST,
            format!(
                "migrate.{what}: {} depend(s) on {t}.{c}",
                others.join(", ")
            ),
        )
        .detail("Dropping the old column would drop them with it.")
        .hint(format!(
            "Create their equivalents on {n} (CREATE INDEX CONCURRENTLY, constraints NOT VALID then VALIDATE), drop these, then contract."
        )));
    }

    // The CHECK first: it scans under SHARE UPDATE EXCLUSIVE, which writers do not wait for;
    // then the brief ACCESS EXCLUSIVE part (the trigger's drop takes it). Not if this
    // transaction already blocks writers (a contract before this one in the same migration):
    // the scan would then block them all along.
    if let Some(check) = &e.check_name {
        if !column::check_validated(relid, check) {
            if column::blocks_writers_here(relid) {
                set_gate(Some(Gate::Validate {
                    table: t.clone(),
                    constraint: check.clone(),
                }));
                return Err(UserError::new(
                    ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE,
                    format!(
                        "migrate.{what}: the NOT NULL check {} of {t}.{n} is not validated, and this transaction already holds a lock on {t} that blocks writers",
                        quote_ident(check)
                    ),
                )
                .detail("Validating it here would block every writer for the whole scan.")
                .hint(format!(
                    "ALTER TABLE {t} VALIDATE CONSTRAINT {} in a transaction of its own (it does not block writers), then contract; CALL migrate.deploy() does it by itself.",
                    quote_ident(check)
                )));
            }
            ddl(&format!(
                "ALTER TABLE {t} VALIDATE CONSTRAINT {}",
                quote_ident(check)
            ));
        }
    }
    let reason = format!("migrate.contract_column of {t}.{c}");
    // The views that read the old column are saved and dropped first, and recreated after the
    // swap from their saved definitions, which name the old column: for a type change the
    // shadow column has that name by then; for a rename the new column takes it for the
    // moment of the recreation, and its rename back carries the views along (PostgreSQL
    // binds a view to the column, not its name). Refused before anything changes if one
    // cannot be rebuilt exactly (see dependent_views).
    let rebind = !views.is_empty() && !e.shadow;
    crate::dependent_views::around_column_change(relid, &[attnum as i16], || {
        swap_columns(&reason, &facts, &e, &t, &c, &n);
        if rebind {
            crate::guard::state::allow_during(&["rename_column"], &reason, || {
                ddl(&format!("ALTER TABLE {t} RENAME COLUMN {n} TO {c}"))
            });
        }
        Ok(())
    })?;
    if rebind {
        crate::guard::state::allow_during(&["rename_column"], &reason, || {
            ddl(&format!("ALTER TABLE {t} RENAME COLUMN {c} TO {n}"))
        });
    }
    column::finish(e.id, "contracted");
    Ok(())
}

/// The contract's short part: the trigger, its function and the old column dropped, the
/// recreated indexes renamed to the old names, NOT NULL promoted, the shadow column renamed
/// and the default carried over.
fn swap_columns(reason: &str, facts: &TableFacts, e: &Expansion, t: &str, c: &str, n: &str) {
    let (c, n) = (c.to_string(), n.to_string());
    crate::guard::state::allow_during(&["drop_column", "rename_column"], reason, || {
        ddl(&format!(
            "DROP TRIGGER {} ON {t}",
            quote_ident(&e.trigger_name)
        ));
        ddl(&format!(
            "DROP FUNCTION {}()",
            qualified(facts, &e.function_name)
        ));
        ddl(&format!("ALTER TABLE {t} DROP COLUMN {c}"));
        // The old indexes went with the column: their equivalents take their names.
        for old_index in &e.index_names {
            ddl(&format!(
                "ALTER INDEX {} RENAME TO {}",
                qualified(facts, &recreated_index_name(old_index)),
                quote_ident(old_index)
            ));
        }
        if let Some(check) = &e.check_name {
            ddl(&format!("ALTER TABLE {t} ALTER COLUMN {n} SET NOT NULL"));
            ddl(&format!(
                "ALTER TABLE {t} DROP CONSTRAINT {}",
                quote_ident(check)
            ));
        }
        let name = if e.shadow {
            ddl(&format!("ALTER TABLE {t} RENAME COLUMN {n} TO {c}"));
            c.clone()
        } else {
            n.clone()
        };
        if let Some(default) = &e.old_default {
            ddl(&format!(
                "ALTER TABLE {t} ALTER COLUMN {name} SET DEFAULT (\n{default}\n)"
            ));
        }
    });
}

fn undo(tbl: Option<pg_sys::Oid>, col: Option<&str>) -> Result<()> {
    let what = "undo_expand_column";
    let facts = target(what, tbl, col)?;
    let (relid, col) = (tbl.expect("checked"), col.expect("checked"));
    let t = facts.table.clone();
    let e = locked_expansion(what, &facts, relid, col)?;
    if let Some(job) = e.job_id {
        crate::worker::api::cancel_unfinished(job);
    }
    ddl(&format!(
        "DROP TRIGGER {} ON {t}",
        quote_ident(&e.trigger_name)
    ));
    ddl(&format!(
        "DROP FUNCTION {}()",
        qualified(&facts, &e.function_name)
    ));
    let reason = format!("migrate.undo_expand_column of {t}.{}", quote_ident(col));
    crate::guard::state::allow_during(&["drop_column"], &reason, || {
        ddl(&format!(
            "ALTER TABLE {t} DROP COLUMN {}",
            quote_ident(&e.new_column)
        ))
    });
    column::finish(e.id, "undone");
    Ok(())
}
