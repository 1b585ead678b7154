//! Safe mode (`{"safe": true}`, `migrate.safe_by_default`): before `deploy()` runs a migration,
//! every statement the guard would block is replaced by its safe form, each part a statement of
//! its own that commits on its own:
//!
//! - `CREATE [UNIQUE] INDEX` → `CREATE [UNIQUE] INDEX CONCURRENTLY` (a worker step; an invalid
//!   index left by a failed or killed build is dropped, as for every concurrent build);
//! - `ALTER TABLE t ADD [CONSTRAINT c] FOREIGN KEY/CHECK ...` → the same `NOT VALID` (named as
//!   PostgreSQL would name it), then `ALTER TABLE t VALIDATE CONSTRAINT c`;
//! - `ALTER TABLE t ALTER COLUMN c SET NOT NULL` → a `NOT VALID` CHECK `(c IS NOT NULL)`,
//!   `VALIDATE`, the `SET NOT NULL` (no scan: the valid CHECK proves it), the CHECK dropped;
//! - `ALTER TABLE t ADD [CONSTRAINT c] UNIQUE/PRIMARY KEY (cols)` → `CREATE UNIQUE INDEX
//!   CONCURRENTLY` (under the name PostgreSQL would give the constraint's index), for a primary
//!   key each nullable key column made NOT NULL as above, then `ADD CONSTRAINT c ... USING
//!   INDEX`.
//!
//! A migration with at least one rewrite runs as a non-transactional one: its (rewritten)
//! script goes to a job worker that runs and checkpoints statement by statement, so a failure
//! or a crash resumes at the step that did not finish. A blocked statement with no safe form
//! (or an `ALTER TABLE` with several subcommands) is refused before anything runs, with the
//! guard's reason. Statements are analysed as their author, in a rolled-back, restricted
//! subtransaction (as `plan()` does): never as the deploying role.

use std::ffi::{CStr, CString};

use migrate_core::rules::{self, Severity};
use migrate_core::safe as text;
use pgrx::pg_sys;
use pgrx::prelude::*;

use super::catalog::Migration;
use super::execute::Direction;
use crate::error::{caught_parts, Result, UserError};
use crate::guard::facts;
use crate::pg::list::items;
use crate::pg::{script, security, subxact};

/// A migration's script as safe mode runs it.
pub struct SafeForm {
    /// The script the worker runs: the untouched statements and the safe forms' steps.
    pub script: String,
    /// One line per rewritten statement: what it was and the steps that replace it.
    pub rewrites: Vec<String>,
}

/// The first line of a rewritten script: the worker's history row and the jobs view show it.
pub const HEADER: &str = "-- migrate:safe";

/// Whether safe mode is on for this migration (its option, else the setting); off on a 0.1.0
/// schema, which has nowhere to record the script a worker may run (UPDATING.md).
pub fn on_for(m: &Migration) -> bool {
    crate::gucs::safe_mode_for(m.safe) && super::catalog::has_safe_columns()
}

/// What safe mode makes of the script that runs in `direction`: None when no statement needs a
/// safe form (the migration runs as it would without safe mode), the rewritten script
/// otherwise, or the refusal of a blocked statement that has no safe form.
pub fn rewrite(m: &Migration, direction: Direction, role: pg_sys::Oid) -> Result<Option<SafeForm>> {
    let sql = &*direction.script(m);
    let allowed: Vec<String> = migrate_core::options::allow_directives(sql)
        .into_iter()
        .map(|(rule, _)| rule)
        .collect();
    let statements = subxact::run(|| script::split(sql))
        .map_err(|caught| UserError::new(caught_parts(&caught).0, caught_parts(&caught).1))?;
    let mut out = Vec::new();
    let mut rewrites = Vec::new();
    let mut fills = Vec::new();
    let mut previous_end = 0;
    for (i, statement) in statements.iter().enumerate() {
        let number = i + 1;
        // The comments between this statement and the one before (PostgreSQL 18 starts a
        // statement at its first token, 15 at the end of the previous one): kept with it, so
        // -- migrate:allow lines and the author's notes stay in the script the worker runs.
        let gap = &sql[previous_end.min(statement.offset)..statement.offset];
        // It starts with the `;` that ended the statement before (join_script writes its own).
        let gap = gap.strip_prefix(';').unwrap_or(gap).to_string();
        previous_end = statement.offset + statement.text.len();
        match safe_form(&statement.text, role, &allowed) {
            Ok(None) => out.push(format!("{gap}{}", statement.text)),
            Ok(Some((what, mut steps))) => {
                // The fill steps' numbers in the worker's script: it waits for their jobs.
                for (k, step) in steps.iter().enumerate() {
                    if step.starts_with(FILL_PREFIX) {
                        fills.push(out.len() + k + 1);
                    }
                }
                steps[0] = format!("{gap}{}", steps[0]);
                rewrites.push(format!(
                    "statement {number} ({what}) -> {}",
                    steps
                        .iter()
                        .map(|s| s.trim())
                        .collect::<Vec<_>>()
                        .join("; ")
                ));
                out.extend(steps);
            }
            Err(refusal) => {
                let mut e = UserError::new(
                    PgSqlErrorCode::ERRCODE_TRIGGERED_ACTION_EXCEPTION,
                    format!(
                        "migrate safe mode: migration {} statement {number}: {}",
                        m.version, refusal.message
                    ),
                )
                .hint(refusal.hint);
                if let Some(d) = refusal.detail {
                    e = e.detail(d);
                }
                return Err(e);
            }
        }
    }
    if rewrites.is_empty() {
        return Ok(None);
    }
    // Each line of the header is a comment: the script still runs exactly its statements.
    let mut header = format!(
        "{HEADER} form of the {} script sha256:{}\n",
        direction.label(),
        migrate_core::checksum::checksum(sql)
    );
    for r in &rewrites {
        header.push_str(&format!("{HEADER} {}\n", r.replace(['\n', '\r'], " ")));
    }
    for n in &fills {
        header.push_str(&format!("{HEADER} {FILL_MARK}{n}\n"));
    }
    Ok(Some(SafeForm {
        script: format!("{header}{}", text::join_script(&out)),
        rewrites,
    }))
}

/// The header line that marks statement N of the worker's script as a fill (`ADD COLUMN ...
/// DEFAULT <volatile>`): the worker queues its backfill job and waits for it.
const FILL_MARK: &str = "fill statement ";

/// How a fill step starts (see [`text::fill_step`]).
const FILL_PREFIX: &str = "SELECT migrate.backfill(";

/// Every line of a worker's script header after the first.
fn header(script: &str) -> impl Iterator<Item = &str> {
    script
        .lines()
        .take_while(|l| l.starts_with(HEADER))
        .skip(1)
        .map(|l| l[HEADER.len()..].trim())
}

/// The lines of a worker's script that say what safe mode rewrote (empty for other scripts).
pub fn header_lines(script: &str) -> Vec<String> {
    header(script)
        .filter(|l| !l.starts_with(FILL_MARK))
        .map(str::to_string)
        .collect()
}

/// The numbers (1-based) of the statements of a worker's script that are fills.
pub fn fill_statements(script: &str) -> Vec<i32> {
    header(script)
        .filter_map(|l| l.strip_prefix(FILL_MARK)?.parse().ok())
        .collect()
}

/// The first line of the script safe mode makes of this script.
fn source_line(m: &Migration, direction: Direction) -> Option<String> {
    if direction == Direction::Down && m.down_sql.is_none() {
        return None;
    }
    Some(format!(
        "{HEADER} form of the {} script sha256:{}",
        direction.label(),
        migrate_core::checksum::checksum(&direction.script(m))
    ))
}

/// True if `script` is the safe form deploy() recorded for the registered script of `m` that
/// runs in `direction` (the registered script unchanged since).
pub fn is_recorded_form(m: &Migration, direction: Direction, script: &str) -> bool {
    m.safe_script.as_deref() == Some(script)
        && source_line(m, direction).is_some_and(|l| script.lines().next() == Some(l.as_str()))
}

/// The script safe mode runs for this step: the one an unfinished job already runs for the same
/// script (its constraint names were chosen then, and the constraints it added may exist now:
/// choosing again would pick other names), or a new rewrite; None if nothing needs a safe form.
pub fn script_for(
    m: &Migration,
    direction: Direction,
    role: pg_sys::Oid,
) -> Result<Option<String>> {
    let up = direction == Direction::Up;
    let source = source_line(m, direction).unwrap_or_default();
    if let Some(prev) = crate::worker::queue::latest_migration_job(&m.version, up) {
        if let Some(job) = prev.migration() {
            if prev.state != crate::worker::queue::SUCCEEDED
                && job.script.lines().next() == Some(source.as_str())
            {
                return Ok(Some(job.script.clone()));
            }
        }
    }
    Ok(rewrite(m, direction, role)?.map(|form| form.script))
}

/// Why a blocked statement has no safe form.
struct Refusal {
    message: String,
    detail: Option<String>,
    hint: String,
}

/// What the guard would block in one statement, judged as deploy() will judge it; then its safe
/// form: None (nothing blocked), (what it was, its steps), or the refusal.
fn safe_form(
    statement: &str,
    role: pg_sys::Oid,
    allowed: &[String],
) -> std::result::Result<Option<(String, Vec<String>)>, Refusal> {
    let min_rows = crate::gucs::guard_min_rows();
    let judged = subxact::run_and_roll_back(|| {
        let tree = *script::parse_trees(statement).first()?;
        let analysed = security::run_as(role, || {
            // SAFETY: a raw parse tree built just now, in this memory context.
            security::restricted(|| unsafe { facts::analyse(tree) })
        });
        let mut blocked = Vec::new();
        for fact in &analysed.facts {
            for f in rules::evaluate(&fact.action, &fact.table, min_rows) {
                if f.rule.severity == Severity::Block && !allowed.iter().any(|a| a == f.rule.id) {
                    blocked.push((f, fact.relid, fact.table.descendants));
                }
            }
        }
        if blocked.is_empty() {
            return Some(Ok(None));
        }
        let rules_hit: Vec<&str> = blocked.iter().map(|(f, _, _)| f.rule.id).collect();
        let (first, relid, descendants) = &blocked[0];
        let refuse = |why: &str| Refusal {
            message: format!("rule {}: {}", first.rule.id, first.message),
            detail: Some(format!("Safe mode has no safe form for it: {why}.")),
            hint: format!(
                "{} Or permit the rule with a -- migrate:allow {} reason line in the migration.",
                first.hint, first.rule.id
            ),
        };
        // SAFETY: the tree is the raw parse tree of this statement; tags are read before casts.
        let form = unsafe { rewrite_tree(tree, statement, *relid, *descendants, &rules_hit) };
        Some(match form {
            Ok(form) => Ok(Some(form)),
            Err(why) => Err(refuse(&why)),
        })
    });
    match judged {
        Ok(Some(result)) => result,
        Ok(None) => Ok(None),
        // The statement does not analyse (an unknown type, a missing function): it will fail
        // by itself when it runs, with its own error; safe mode leaves it as it is.
        Err(_) => Ok(None),
    }
}

/// Every rule in `hit` is one that `cured` takes care of.
fn only(hit: &[&str], cured: &[&str]) -> bool {
    hit.iter().all(|r| cured.contains(r))
}

/// The safe form of a blocked statement from its parse tree, or why there is none.
///
/// # Safety
/// `tree` is the raw parse tree of `statement`.
unsafe fn rewrite_tree(
    tree: *mut pg_sys::Node,
    statement: &str,
    relid: pg_sys::Oid,
    descendants: usize,
    hit: &[&str],
) -> std::result::Result<(String, Vec<String>), String> {
    use pg_sys::NodeTag::*;
    // SAFETY: each cast follows the check of the node's tag.
    unsafe {
        match (*tree).type_ {
            T_IndexStmt if only(hit, &["index_not_concurrent"]) => {
                let concurrent = text::create_index_concurrently(statement)
                    .ok_or("its text does not start with CREATE [UNIQUE] INDEX")?;
                Ok(("CREATE INDEX".into(), vec![concurrent]))
            }
            T_AlterTableStmt => {
                let stmt = tree as *mut pg_sys::AlterTableStmt;
                let cmds = items::<pg_sys::AlterTableCmd>((*stmt).cmds);
                if cmds.len() != 1 {
                    return Err(format!(
                        "it is one ALTER TABLE with {} subcommands; split it into one ALTER TABLE per subcommand and safe mode rewrites the ones it can",
                        cmds.len()
                    ));
                }
                let cmd = cmds[0];
                let table = qualified_name(relid).ok_or("the table is not found")?;
                match (*cmd).subtype {
                    pg_sys::AlterTableType::AT_AddConstraint
                        if only(hit, &["add_unique_constraint", "set_not_null"])
                            && matches!(
                                (*((*cmd).def as *mut pg_sys::Constraint)).contype,
                                pg_sys::ConstrType::CONSTR_UNIQUE
                                    | pg_sys::ConstrType::CONSTR_PRIMARY
                            ) =>
                    {
                        if descendants > 0 || relkind(relid) != Some(pg_sys::RELKIND_RELATION) {
                            return Err("the table has partitions or inheritance children".into());
                        }
                        unique_steps(relid, &table, (*cmd).def as *mut pg_sys::Constraint)
                    }
                    pg_sys::AlterTableType::AT_AddConstraint
                        if only(hit, &["add_foreign_key", "add_check"]) =>
                    {
                        if descendants > 0 || relkind(relid) != Some(pg_sys::RELKIND_RELATION) {
                            return Err("the table has partitions or inheritance children".into());
                        }
                        let con = (*cmd).def as *mut pg_sys::Constraint;
                        let (label, addition, what) = match (*con).contype {
                            pg_sys::ConstrType::CONSTR_FOREIGN => {
                                let columns: Vec<String> = items::<pg_sys::String>((*con).fk_attrs)
                                    .into_iter()
                                    .map(|s| cstr((*s).sval))
                                    .collect();
                                (
                                    "fkey",
                                    Some(text::foreign_key_name_addition(&columns)),
                                    "ADD FOREIGN KEY",
                                )
                            }
                            pg_sys::ConstrType::CONSTR_CHECK => {
                                let mut columns = Vec::new();
                                if !check_columns((*con).raw_expr, &mut columns) {
                                    return Err("its CHECK expression is beyond what safe mode reads to name it; name the constraint (ADD CONSTRAINT name CHECK ...)".into());
                                }
                                (
                                    "check",
                                    (columns.len() == 1).then(|| columns.remove(0)),
                                    "ADD CHECK",
                                )
                            }
                            _ => return Err("it is not a FOREIGN KEY or CHECK".into()),
                        };
                        let (name, unnamed_at) = if (*con).conname.is_null() {
                            let name = choose_constraint_name(relid, addition.as_deref(), label);
                            let at = usize::try_from((*con).location)
                                .map_err(|_| "the constraint has no source location")?;
                            (name, Some(at))
                        } else {
                            (cstr((*con).conname), None)
                        };
                        let quoted = quote(&name);
                        let added = text::add_not_valid(
                            statement,
                            unnamed_at.map(|at| (at, quoted.as_str())),
                        );
                        Ok((
                            what.into(),
                            vec![added, text::validate_step(&table, &quoted)],
                        ))
                    }
                    // The column's other clauses hit their own rules (UNIQUE, REFERENCES,
                    // ...): refused below with the reason, not as "not implemented".
                    pg_sys::AlterTableType::AT_AddColumn
                        if hit.contains(&"add_column_volatile_default")
                            && only(
                                hit,
                                &[
                                    "add_column_volatile_default",
                                    "add_unique_constraint",
                                    "add_foreign_key",
                                    "add_check",
                                    "set_not_null",
                                ],
                            ) =>
                    {
                        if descendants > 0 || relkind(relid) != Some(pg_sys::RELKIND_RELATION) {
                            return Err("the table has partitions or inheritance children".into());
                        }
                        if (*cmd).missing_ok {
                            return Err("it says IF NOT EXISTS: on an existing column the safe form would set its default and fill it; drop IF NOT EXISTS".into());
                        }
                        if crate::worker::backfill::find_key(relid).is_none() {
                            return Err("the table has no primary key or unique NOT NULL key for the fill to walk, so a resumed fill could not tell the rows it filled (add a primary key first)".into());
                        }
                        add_column_steps(
                            relid,
                            &table,
                            statement,
                            (*cmd).def as *mut pg_sys::ColumnDef,
                        )
                    }
                    pg_sys::AlterTableType::AT_SetNotNull if only(hit, &["set_not_null"]) => {
                        if descendants > 0 {
                            return Err("the table has partitions or inheritance children".into());
                        }
                        let column = cstr((*cmd).name);
                        // Not "not_null": PostgreSQL 18 names its own NOT NULL constraint that way.
                        let check = choose_constraint_name(relid, Some(&column), "not_null_check");
                        Ok((
                            "SET NOT NULL".into(),
                            text::set_not_null_steps(
                                &table,
                                &quote(&column),
                                &quote(&check),
                                statement,
                            ),
                        ))
                    }
                    _ => Err("no safe form is implemented for it yet".into()),
                }
            }
            _ => Err("no safe form is implemented for it yet".into()),
        }
    }
}

/// `ADD COLUMN c type [NULL | NOT NULL] DEFAULT <volatile>`: the column added without its
/// default and NOT NULL, the default set, the existing rows filled by a backfill job, then NOT
/// NULL the safe way. Any other clause on the column (CHECK, REFERENCES, UNIQUE, a named
/// constraint, identity, generated) is refused: added later it would need its own safe form.
///
/// # Safety
/// `def` is the raw ColumnDef node of the statement.
unsafe fn add_column_steps(
    relid: pg_sys::Oid,
    table: &str,
    statement: &str,
    def: *mut pg_sys::ColumnDef,
) -> std::result::Result<(String, Vec<String>), String> {
    // SAFETY: the fields of a raw ColumnDef node; its constraints are Constraint nodes.
    unsafe {
        let column = cstr((*def).colname);
        let mut starts = Vec::new();
        let (mut default_at, mut not_null_at, mut null_at) = (None, None, None);
        for con in items::<pg_sys::Constraint>((*def).constraints) {
            let at = usize::try_from((*con).location)
                .map_err(|_| "a clause of the column has no source location")?;
            starts.push(at);
            if !(*con).conname.is_null() {
                return Err("a clause of the column is a named constraint; add the column with DEFAULT and NOT NULL only, and the constraint in a statement of its own".into());
            }
            match (*con).contype {
                pg_sys::ConstrType::CONSTR_DEFAULT => default_at = Some(at),
                pg_sys::ConstrType::CONSTR_NOTNULL => not_null_at = Some(at),
                pg_sys::ConstrType::CONSTR_NULL => null_at = Some(at),
                _ => return Err("the column has a clause besides DEFAULT, NULL and NOT NULL (CHECK, REFERENCES, UNIQUE, PRIMARY KEY, identity or generated); add it in a statement of its own after this one".into()),
            }
        }
        if !(*def).collClause.is_null() {
            if let Ok(at) = usize::try_from((*(*def).collClause).location) {
                starts.push(at);
            }
        }
        let default_at = default_at.ok_or("the column has no DEFAULT clause")?;
        let default = text::clause_span(statement, default_at, &starts);
        let expression = text::default_expression(statement, default)
            .ok_or("its DEFAULT clause is not where the parse tree says")?;
        let mut cut = vec![default];
        if let Some(at) = not_null_at {
            cut.push(text::clause_span(statement, at, &starts));
        }
        if let Some(at) = null_at {
            cut.push(text::clause_span(statement, at, &starts));
        }
        let add = text::without_spans(statement, &cut);
        let check = not_null_at.map(|_| {
            quote(&choose_constraint_name(
                relid,
                Some(&column),
                "not_null_check",
            ))
        });
        Ok((
            "ADD COLUMN ... DEFAULT <volatile>".into(),
            text::add_column_default_steps(
                table,
                &quote(&column),
                &add,
                expression,
                check.as_deref(),
                &quote_literal,
            ),
        ))
    }
}

/// A string as an SQL literal, as the server quotes it (`E'...'` when it holds a backslash).
fn quote_literal(value: &str) -> String {
    crate::pg::query::required::<String>("SELECT pg_catalog.quote_literal($1)", &[value.into()])
}

/// `ADD [CONSTRAINT c] UNIQUE/PRIMARY KEY (cols)`: the unique index built concurrently under
/// the name PostgreSQL would give the constraint's index, for a primary key every nullable
/// key column made NOT NULL the safe way first, then the constraint made from the index
/// (`USING INDEX`: a catalog change, no build, no scan).
///
/// # Safety
/// `con` is the raw Constraint node of the statement.
unsafe fn unique_steps(
    relid: pg_sys::Oid,
    table: &str,
    con: *mut pg_sys::Constraint,
) -> std::result::Result<(String, Vec<String>), String> {
    // SAFETY: the fields of a raw Constraint node; its key lists hold String nodes.
    unsafe {
        let primary = (*con).contype == pg_sys::ConstrType::CONSTR_PRIMARY;
        if !(*con).options.is_null() || !(*con).indexspace.is_null() || (*con).deferrable {
            return Err("it has WITH options, a tablespace or DEFERRABLE; build the index yourself (CREATE UNIQUE INDEX CONCURRENTLY) and add the constraint USING INDEX".into());
        }
        let names = |list: *mut pg_sys::List| -> Vec<String> {
            // SAFETY: a list of String nodes (the grammar's columnList).
            items::<pg_sys::String>(list)
                .into_iter()
                .map(|s| cstr((*s).sval))
                .collect()
        };
        let keys = names((*con).keys);
        let including = names((*con).including);
        let name = if (*con).conname.is_null() {
            let addition = text::foreign_key_name_addition(&keys);
            choose_index_name(
                relid,
                (!primary).then_some(addition.as_str()),
                if primary { "pkey" } else { "key" },
            )
        } else {
            cstr((*con).conname)
        };
        let quoted = quote(&name);
        let quote_all = |v: &[String]| v.iter().map(|c| quote(c)).collect::<Vec<_>>().join(", ");
        let mut build = format!(
            "CREATE UNIQUE INDEX CONCURRENTLY {quoted} ON {table} ({})",
            quote_all(&keys)
        );
        if !including.is_empty() {
            build.push_str(&format!(" INCLUDE ({})", quote_all(&including)));
        }
        if (*con).nulls_not_distinct {
            build.push_str(" NULLS NOT DISTINCT");
        }
        let mut steps = vec![build];
        if primary {
            for key in &keys {
                let nullable = crate::pg::query::one::<bool>(
                    "SELECT NOT attnotnull FROM pg_catalog.pg_attribute \
                      WHERE attrelid OPERATOR(pg_catalog.=) $1 \
                        AND attname OPERATOR(pg_catalog.=) $2::pg_catalog.name AND NOT attisdropped",
                    &[relid.into(), key.as_str().into()],
                )
                .ok_or_else(|| format!("the table has no column {key}"))?;
                if nullable {
                    let check = choose_constraint_name(relid, Some(key), "not_null_check");
                    let set = format!(
                        "ALTER TABLE {table} ALTER COLUMN {} SET NOT NULL",
                        quote(key)
                    );
                    steps.extend(text::set_not_null_steps(
                        table,
                        &quote(key),
                        &quote(&check),
                        &set,
                    ));
                }
            }
        }
        steps.push(format!(
            "ALTER TABLE {table} ADD CONSTRAINT {quoted} {} USING INDEX {quoted}",
            if primary { "PRIMARY KEY" } else { "UNIQUE" }
        ));
        Ok((
            if primary {
                "ADD PRIMARY KEY"
            } else {
                "ADD UNIQUE"
            }
            .into(),
            steps,
        ))
    }
}

/// The table's name (for the server's name choosers) and its schema.
fn relation_name_and_schema(relid: pg_sys::Oid) -> (CString, pg_sys::Oid) {
    let relname = crate::pg::query::required::<String>(
        "SELECT relname::pg_catalog.text FROM pg_catalog.pg_class WHERE oid OPERATOR(pg_catalog.=) $1",
        &[relid.into()],
    );
    let namespace = crate::pg::query::required::<pg_sys::Oid>(
        "SELECT relnamespace FROM pg_catalog.pg_class WHERE oid OPERATOR(pg_catalog.=) $1",
        &[relid.into()],
    );
    (
        CString::new(relname).expect("no NUL in a relation name"),
        namespace,
    )
}

/// PostgreSQL's name for a constraint's index: `ChooseRelationName(rel, cols, label, ns,
/// true)`, unused by any relation or constraint of the schema.
fn choose_index_name(relid: pg_sys::Oid, name2: Option<&str>, label: &str) -> String {
    let (name1, namespace) = relation_name_and_schema(relid);
    let name2 = name2.map(|n| CString::new(n).expect("no NUL in a column name"));
    let label = CString::new(label).expect("no NUL in a label");
    // SAFETY: NUL-terminated strings; the function reads the catalogs and palloc's its result.
    unsafe {
        cstr(pg_sys::ChooseRelationName(
            name1.as_ptr(),
            name2.as_ref().map_or(std::ptr::null(), |n| n.as_ptr()),
            label.as_ptr(),
            namespace,
            true,
        ))
    }
}

/// Collects the distinct column names a raw CHECK expression refers to; false when it holds a
/// node this reader does not know (then the name PostgreSQL would choose is not certain).
///
/// # Safety
/// `node` is NULL or a node of a raw expression tree.
unsafe fn check_columns(node: *mut pg_sys::Node, out: &mut Vec<String>) -> bool {
    use pg_sys::NodeTag::*;
    if node.is_null() {
        return true;
    }
    let all = |nodes: Vec<*mut pg_sys::Node>, out: &mut Vec<String>| {
        // SAFETY: the nodes of the same raw tree.
        nodes.into_iter().all(|n| unsafe { check_columns(n, out) })
    };
    // SAFETY: each cast follows the check of the node's tag.
    unsafe {
        match (*node).type_ {
            T_ColumnRef => {
                let fields = items::<pg_sys::Node>((*(node as *mut pg_sys::ColumnRef)).fields);
                match fields.last() {
                    Some(&f) if (*f).type_ == T_String => {
                        let name = cstr((*(f as *mut pg_sys::String)).sval);
                        if !out.contains(&name) {
                            out.push(name);
                        }
                        true
                    }
                    _ => false,
                }
            }
            T_A_Const | T_ParamRef | T_SQLValueFunction => true,
            T_List => all(items((node as *mut pg_sys::List).cast()), out),
            T_A_Expr => {
                let e = node as *mut pg_sys::A_Expr;
                all(vec![(*e).lexpr, (*e).rexpr], out)
            }
            T_BoolExpr => all(items((*(node as *mut pg_sys::BoolExpr)).args), out),
            T_NullTest => all(vec![(*(node as *mut pg_sys::NullTest)).arg.cast()], out),
            T_BooleanTest => all(vec![(*(node as *mut pg_sys::BooleanTest)).arg.cast()], out),
            T_TypeCast => all(vec![(*(node as *mut pg_sys::TypeCast)).arg], out),
            T_CollateClause => all(vec![(*(node as *mut pg_sys::CollateClause)).arg], out),
            T_FuncCall => {
                let f = node as *mut pg_sys::FuncCall;
                (*f).agg_order.is_null()
                    && (*f).agg_filter.is_null()
                    && (*f).over.is_null()
                    && all(items((*f).args), out)
            }
            T_CoalesceExpr => all(items((*(node as *mut pg_sys::CoalesceExpr)).args), out),
            T_MinMaxExpr => all(items((*(node as *mut pg_sys::MinMaxExpr)).args), out),
            T_A_ArrayExpr => all(items((*(node as *mut pg_sys::A_ArrayExpr)).elements), out),
            T_RowExpr => all(items((*(node as *mut pg_sys::RowExpr)).args), out),
            T_CaseExpr => {
                let c = node as *mut pg_sys::CaseExpr;
                let mut parts = vec![(*c).arg.cast(), (*c).defresult.cast()];
                for w in items::<pg_sys::CaseWhen>((*c).args) {
                    parts.push((*w).expr.cast());
                    parts.push((*w).result.cast());
                }
                all(parts, out)
            }
            _ => false,
        }
    }
}

/// PostgreSQL's `ChooseConstraintName(relname, name2, label, namespace, NIL)`: the first of
/// `rel_name2_label`, `rel_name2_label1`, ... (each clipped to NAMEDATALEN as the server clips
/// it) that no constraint in the table's schema has.
fn choose_constraint_name(relid: pg_sys::Oid, name2: Option<&str>, label: &str) -> String {
    let (name1, namespace) = relation_name_and_schema(relid);
    let name2 = name2.map(|n| CString::new(n).expect("no NUL in a column name"));
    let mut pass = 0;
    loop {
        let modlabel = if pass == 0 {
            label.to_string()
        } else {
            format!("{label}{pass}")
        };
        let modlabel = CString::new(modlabel).expect("no NUL in a label");
        // SAFETY: NUL-terminated strings; makeObjectName palloc's its result.
        let name = unsafe {
            cstr(pg_sys::makeObjectName(
                name1.as_ptr(),
                name2.as_ref().map_or(std::ptr::null(), |n| n.as_ptr()),
                modlabel.as_ptr(),
            ))
        };
        let used = crate::pg::query::required::<bool>(
            "SELECT EXISTS (SELECT FROM pg_catalog.pg_constraint \
               WHERE conname OPERATOR(pg_catalog.=) $1::pg_catalog.name \
                 AND connamespace OPERATOR(pg_catalog.=) $2)",
            &[name.as_str().into(), namespace.into()],
        );
        if !used {
            return name;
        }
        pass += 1;
    }
}

/// `schema.table`, each part quoted as needed.
fn qualified_name(relid: pg_sys::Oid) -> Option<String> {
    crate::pg::query::one::<String>(
        "SELECT pg_catalog.quote_ident(n.nspname::pg_catalog.text) OPERATOR(pg_catalog.||) '.' \
                OPERATOR(pg_catalog.||) pg_catalog.quote_ident(c.relname::pg_catalog.text) \
           FROM pg_catalog.pg_class c JOIN pg_catalog.pg_namespace n \
             ON n.oid OPERATOR(pg_catalog.=) c.relnamespace \
          WHERE c.oid OPERATOR(pg_catalog.=) $1",
        &[relid.into()],
    )
}

fn relkind(relid: pg_sys::Oid) -> Option<u8> {
    crate::pg::query::one::<i8>(
        "SELECT relkind FROM pg_catalog.pg_class WHERE oid OPERATOR(pg_catalog.=) $1",
        &[relid.into()],
    )
    .map(|k| k as u8)
}

/// An identifier quoted as the server quotes it.
fn quote(name: &str) -> String {
    let c = CString::new(name).expect("no NUL in an identifier");
    // SAFETY: a NUL-terminated string; the result is the input or a palloc'd copy.
    unsafe { cstr(pg_sys::quote_identifier(c.as_ptr())) }
}

/// # Safety
/// `p` is NULL or a NUL-terminated string.
unsafe fn cstr(p: *const std::ffi::c_char) -> String {
    if p.is_null() {
        return String::new();
    }
    // SAFETY: the caller's promise.
    unsafe { CStr::from_ptr(p) }.to_string_lossy().into_owned()
}
