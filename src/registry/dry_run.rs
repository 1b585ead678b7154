//! Dry runs that leave nothing behind: `migrate.plan()` (what a deploy would do, statement by
//! statement, observed on the real schema) and `migrate.verify()` (does the down script undo
//! the up script). Both run migrations in a subtransaction that is always rolled back; the
//! guard runs in dry-run mode (it reports every finding, blocks nothing, logs nothing).

use std::cell::Cell;
use std::collections::BTreeSet;
use std::time::Instant;

use migrate_core::route;
use migrate_core::rules;
use pgrx::pg_sys;
use pgrx::prelude::*;

use super::api::checked_version;
use super::catalog::{self, Migration};
use super::execute::{self, Direction};
use crate::error::{caught_parts, sqlstate_text, OrRaise, Result, UserError};
use crate::guard::{self, facts};
use crate::gucs;
use crate::pg::observe::Observer;
use crate::pg::{script, security, subxact};

/// One row of `plan()`: a statement and what running it did.
struct PlanRow {
    version: String,
    direction: String,
    statement: i32,
    sql: String,
    executed: bool,
    locks: Vec<String>,
    rewrites: Vec<String>,
    rows_scanned: Option<i64>,
    guard: Vec<String>,
    duration_ms: Option<f64>,
    error: Option<String>,
    /// Locks this statement took that block writes (SHARE or stronger) on big tables: they
    /// stay held until the step commits, through every later statement of the migration.
    held_locks: Vec<String>,
    /// How long those were then held: the later statements' time until the step's commit.
    held_ms: Option<f64>,
}

/// `plan()`'s result columns, in order (pgrx declares them as a tuple).
type PlanColumns = (
    String,
    String,
    i32,
    String,
    bool,
    Vec<String>,
    Vec<String>,
    Option<i64>,
    Vec<String>,
    Option<f64>,
    Option<String>,
    Vec<String>,
    Option<f64>,
);

/// The columns of 0.1.0's `plan()`, for a database not yet updated (UPDATING.md).
type PlanColumns010 = (
    String,
    String,
    i32,
    String,
    bool,
    Vec<String>,
    Vec<String>,
    Option<i64>,
    Vec<String>,
    Option<f64>,
    Option<String>,
);

impl PlanRow {
    /// A row for statement `statement` of `m`'s `direction` script, nothing observed yet.
    fn new(m: &Migration, direction: &str, statement: i32, sql: &str) -> Self {
        PlanRow {
            version: m.version.clone(),
            direction: direction.into(),
            statement,
            sql: sql.trim().to_string(),
            executed: true,
            locks: Vec::new(),
            rewrites: Vec::new(),
            rows_scanned: None,
            guard: Vec::new(),
            duration_ms: None,
            error: None,
            held_locks: Vec::new(),
            held_ms: None,
        }
    }

    fn into_columns_010(self) -> PlanColumns010 {
        let c = self.into_columns();
        (c.0, c.1, c.2, c.3, c.4, c.5, c.6, c.7, c.8, c.9, c.10)
    }

    fn into_columns(self) -> PlanColumns {
        (
            self.version,
            self.direction,
            self.statement,
            self.sql,
            self.executed,
            self.locks,
            self.rewrites,
            self.rows_scanned,
            self.guard,
            self.duration_ms,
            self.error,
            self.held_locks,
            self.held_ms,
        )
    }
}

/// The migrations a deploy would run, in order: (index in the registry, direction).
type Path = Vec<(usize, Direction)>;

fn steps(target: Option<&str>) -> Result<(Vec<Migration>, Path)> {
    let all = catalog::load_all(false);
    let path = route::deploy_path(
        &catalog::route_entries(&all),
        target,
        gucs::allow_out_of_order(),
    )?
    .into_iter()
    .map(Direction::of)
    .collect();
    Ok((all, path))
}

/// `migrate.plan(target)`: every statement `deploy(target)` would run, executed in a
/// subtransaction that is rolled back, with what it did.
#[pg_extern(sql = r#"
CREATE FUNCTION migrate.plan(target text DEFAULT NULL)
RETURNS TABLE (version text, direction text, statement integer, sql text, executed boolean,
               locks text[], rewrites text[], rows_scanned bigint, guard text[],
               duration_ms double precision, error text, held_locks text[],
               held_ms double precision)
VOLATILE LANGUAGE c AS 'MODULE_PATHNAME', 'plan_v2_wrapper';
"#)]
// pgrx declares a function's result columns in its signature.
#[allow(clippy::type_complexity)]
fn plan_v2(
    target: Option<&str>,
) -> TableIterator<
    'static,
    (
        name!(version, String),
        name!(direction, String),
        name!(statement, i32),
        name!(sql, String),
        name!(executed, bool),
        name!(locks, Vec<String>),
        name!(rewrites, Vec<String>),
        name!(rows_scanned, Option<i64>),
        name!(guard, Vec<String>),
        name!(duration_ms, Option<f64>),
        name!(error, Option<String>),
        name!(held_locks, Vec<String>),
        name!(held_ms, Option<f64>),
    ),
> {
    TableIterator::new(
        plan_rows(target)
            .or_raise()
            .into_iter()
            .map(PlanRow::into_columns),
    )
}

/// 0.1.0's `migrate.plan()` (symbol `plan_wrapper`), until `ALTER EXTENSION migrate UPDATE`
/// declares the one with `held_locks` and `held_ms`.
#[allow(clippy::type_complexity)]
#[pg_extern(sql = false)]
fn plan(
    target: Option<&str>,
) -> TableIterator<
    'static,
    (
        name!(version, String),
        name!(direction, String),
        name!(statement, i32),
        name!(sql, String),
        name!(executed, bool),
        name!(locks, Vec<String>),
        name!(rewrites, Vec<String>),
        name!(rows_scanned, Option<i64>),
        name!(guard, Vec<String>),
        name!(duration_ms, Option<f64>),
        name!(error, Option<String>),
    ),
> {
    TableIterator::new(
        plan_rows(target)
            .or_raise()
            .into_iter()
            .map(PlanRow::into_columns_010),
    )
}

fn plan_rows(target: Option<&str>) -> Result<Vec<PlanRow>> {
    execute::registry_call("plan")?;
    let target = target
        .map(|t| checked_version(Some(t), "target", "plan"))
        .transpose()?;
    let (all, path) = steps(target)?;
    let roles = path
        .iter()
        .map(|&(i, direction)| execute::executing_role(&all[i], direction))
        .collect::<Result<Vec<_>>>()?;
    let mut rows: Vec<PlanRow> = Vec::new();
    // The dry run's own failures (a cancel, a catalog query) are raised, never mistaken
    // for a clean plan; a statement's failure is a row.
    let dry_run = subxact::run_and_roll_back(|| {
        let mut observer = Observer::start();
        for (&(i, direction), role) in path.iter().zip(roles) {
            let m = &all[i];
            if !plan_step(m, direction, role, &mut observer, &mut rows) {
                break;
            }
        }
    });
    if let Err(caught) = dry_run {
        caught.rethrow();
    }
    Ok(rows)
}

/// Each row's `held_ms`, for the rows of one step: a lock is held from the statement that took
/// it until the step commits, so through the later statements' time.
fn fill_held(step: &mut [PlanRow]) {
    let mut later = 0.0;
    for row in step.iter_mut().rev() {
        if !row.held_locks.is_empty() {
            row.held_ms = Some((later * 1000.0_f64).round() / 1000.0);
        }
        later += row.duration_ms.unwrap_or(0.0);
    }
}

/// The locks of `taken` that block writes on tables the guard does not exempt by size (or as
/// created in this step), as "table: MODE".
fn strong_big_locks(taken: &[(pg_sys::Oid, usize)]) -> Vec<String> {
    let min_rows = gucs::guard_min_rows();
    taken
        .iter()
        .filter(|&&(_, mode)| rules::blocks_writes(mode))
        .filter_map(|&(oid, mode)| {
            let table = facts::table_facts(oid)?;
            rules::exemption(&table, min_rows)
                .is_none()
                .then(|| format!("{}: {}", table.name, rules::LOCK_MODES[mode]))
        })
        .collect()
}

/// Plans one migration's statements; false if one failed (later steps would depend on it).
fn plan_step(
    m: &Migration,
    direction: Direction,
    role: pg_sys::Oid,
    observer: &mut Observer,
    rows: &mut Vec<PlanRow>,
) -> bool {
    let label = direction.label();
    let own = direction.script(m);
    // Safe mode: the steps deploy() will really run (or its refusal, which ends the plan).
    let safe_script = if super::safe::on_for(m) {
        match super::safe::script_for(m, direction, role) {
            Ok(script) => script,
            Err(e) => {
                let mut text = format!("{}: {}", sqlstate_text(e.code as i32), e.message);
                if let Some(detail) = &e.detail {
                    text.push_str(&format!("\nDETAIL: {detail}"));
                }
                if let Some(hint) = &e.hint {
                    text.push_str(&format!("\nHINT: {hint}"));
                }
                rows.push(PlanRow {
                    error: Some(text),
                    ..PlanRow::new(m, label, 0, &own)
                });
                return false;
            }
        }
    } else {
        None
    };
    let sql: &str = safe_script.as_deref().unwrap_or(&own);
    let statements = match subxact::run(|| script::split(sql)) {
        Ok(s) => s,
        Err(caught) => {
            rows.push(error_row(m, label, 0, sql, &caught));
            return false;
        }
    };
    let text_of = |n: usize| {
        let text = &statements[n].text;
        text[script::first_token(text)..].trim_end().to_string()
    };
    if !m.transactional || safe_script.is_some() {
        // Only analysed, nothing runs; the script's allow lines still count for its findings.
        let _scope = execute::ScriptScope::enter(sql);
        // Each statement commits on its own: every table there is is an existing one.
        let _unit = guard::unit::Scope::each_statement();
        let fills = super::safe::fill_statements(sql);
        for n in 0..statements.len() {
            let mut found = analyse_only(m, role, label, n as i32 + 1, &text_of(n));
            // A fill queues a backfill job: its batches take ROW EXCLUSIVE, row by row.
            if fills.contains(&(n as i32 + 1)) {
                if let Some(table) = migrate_core::safe::fill_table(&text_of(n)) {
                    let shown = crate::pg::query::one::<String>(
                        "SELECT pg_catalog.to_regclass($1)::pg_catalog.text",
                        &[table.as_str().into()],
                    )
                    .unwrap_or(table);
                    for row in &mut found {
                        row.locks = vec![format!(
                            "{shown}: ROW EXCLUSIVE (batches of a backfill job)"
                        )];
                    }
                }
            }
            rows.extend(found);
        }
        return true;
    }
    // Statements run one after another in the step's own subtransaction, with no savepoint
    // each (one per statement doubled plan()'s cost): the first error ends the step, and the
    // statement it came from is known from `running`.
    let findings = guard::state::Findings::collect();
    let first_row = rows.len();
    let running: Cell<Option<(usize, Instant)>> = Cell::new(None);
    let elapsed_ms =
        |started: Instant| (started.elapsed().as_secs_f64() * 1_000_000.0).round() / 1000.0;
    let mut walk = || {
        for (n, statement) in statements.iter().enumerate() {
            running.set(Some((n, Instant::now())));
            script::run_one(&statement.text);
            let (_, started) = running.take().unwrap_or((n, Instant::now()));
            let ms = elapsed_ms(started);
            let seen = observer.after_statement();
            rows.push(PlanRow {
                held_locks: strong_big_locks(&seen.taken),
                locks: seen.locks,
                rewrites: seen.rewrites,
                rows_scanned: Some(seen.rows_scanned),
                guard: findings.drain(),
                duration_ms: Some(ms),
                ..PlanRow::new(m, label, n as i32 + 1, &text_of(n))
            });
        }
    };
    // As the script's author, isolated like a real step (settings, deferred triggers, objects
    // left in the session). An error outside any statement (the isolation refused, a deferred
    // constraint at the step's end) is the step's row, statement 0.
    let outcome = match subxact::run(|| execute::in_script(m, direction, role, &mut walk)) {
        Ok(()) => true,
        Err(caught) => {
            let caught = reraise_cancel(caught);
            let row = match running.take() {
                Some((n, started)) => PlanRow {
                    guard: findings.drain(),
                    duration_ms: Some(elapsed_ms(started)),
                    ..error_row(m, label, n as i32 + 1, &text_of(n), &caught)
                },
                None => error_row(m, label, 0, sql, &caught),
            };
            rows.push(row);
            false
        }
    };
    fill_held(&mut rows[first_row..]);
    outcome
}

/// A cancel (Ctrl-C, statement_timeout) ends the whole dry run, as it would a PL/pgSQL block's
/// `WHEN OTHERS`; any other error is the statement's and becomes a row.
fn reraise_cancel(
    caught: Box<pgrx::pg_sys::panic::CaughtError>,
) -> Box<pgrx::pg_sys::panic::CaughtError> {
    if caught_parts(&caught).0 == PgSqlErrorCode::ERRCODE_QUERY_CANCELED {
        caught.rethrow();
    }
    caught
}

fn error_row(
    m: &Migration,
    label: &str,
    number: i32,
    sql: &str,
    caught: &pgrx::pg_sys::panic::CaughtError,
) -> PlanRow {
    let mut text = error_text(caught);
    // The error's own DETAIL and HINT come first; then what it means for the deploy.
    text.push_str(&if m.transactional {
        format!(
            "\nHINT: CALL migrate.deploy() would stop here and leave nothing of migration {} behind; the migrations after it are not planned.",
            m.version
        )
    } else {
        format!(
            "\nHINT: CALL migrate.deploy() would stop at this statement of migration {}; the statements before it would stay done, and a later deploy resumes here.",
            m.version
        )
    });
    PlanRow {
        error: Some(text),
        ..PlanRow::new(m, label, number, sql)
    }
}

/// "SQLSTATE: message", then the error's DETAIL and HINT lines, if it has them.
fn error_text(caught: &pgrx::pg_sys::panic::CaughtError) -> String {
    let (code, message, detail, hint) = caught_parts(caught);
    let mut text = format!("{}: {message}", sqlstate_text(code as i32));
    if let Some(detail) = detail {
        text.push_str(&format!("\nDETAIL: {detail}"));
    }
    if let Some(hint) = hint {
        text.push_str(&format!("\nHINT: {hint}"));
    }
    text
}

/// A statement of a non-transactional migration: it cannot run in a transaction, so it is only
/// analysed: the guard's findings and the lock a concurrent build or VACUUM takes. A
/// `CREATE INDEX CONCURRENTLY` on a partitioned table is followed by one row per step of the
/// recipe `deploy()` runs for it (same statement number), from the catalog as it is now.
fn analyse_only(
    m: &Migration,
    role: pg_sys::Oid,
    label: &str,
    number: i32,
    text: &str,
) -> Vec<PlanRow> {
    let min_rows = gucs::guard_min_rows();
    // As the statement's author, as deploy()'s worker will run it (never as plan()'s caller:
    // analysis can reach code the author wrote), sandboxed, and rolled back.
    let analysed = subxact::run_and_roll_back(|| {
        let tree = *script::parse_trees(text).first()?;
        let statement = security::run_as(role, || {
            // SAFETY: a raw parse tree built just now, in this memory context.
            security::restricted(|| unsafe { facts::analyse(tree) })
        });
        let mut findings = Vec::new();
        for fact in &statement.facts {
            for f in rules::evaluate(&fact.action, &fact.table, min_rows) {
                findings.push(format!(
                    "{} {}: {}",
                    f.rule.id,
                    f.rule.severity.as_str(),
                    f.message
                ));
            }
        }
        // SAFETY: as above; the node's tag is read before it is cast.
        let recipe = unsafe { crate::partition_index::recognise(tree, text) };
        let steps = match recipe {
            Some(Ok((_, _, recipe))) => Some(Ok(recipe_rows(&recipe))),
            Some(Err(e)) => Some(Err(e)),
            None => None,
        };
        // SAFETY: the node's tag is read before it is cast.
        let locks = unsafe { concurrent_lock(tree) };
        Some((findings, locks, steps))
    });
    let (findings, locks, steps) = match analysed {
        Ok(Some(found)) => found,
        Ok(None) => (Vec::new(), Vec::new(), None),
        Err(caught) => {
            return vec![error_row(m, label, number, text, &caught)];
        }
    };
    let row = PlanRow {
        executed: false,
        locks,
        guard: findings,
        ..PlanRow::new(m, label, number, text)
    };
    match steps {
        None => vec![row],
        Some(Err(e)) => vec![PlanRow {
            error: Some(format!("{}: {}", sqlstate_text(e.code as i32), e.message)),
            ..row
        }],
        Some(Ok(steps)) => std::iter::once(PlanRow {
            locks: Vec::new(),
            ..row
        })
        .chain(steps.into_iter().map(|(sql, locks)| PlanRow {
            executed: false,
            locks,
            ..PlanRow::new(m, label, number, &sql)
        }))
        .collect(),
    }
}

/// The recipe's steps as plan() shows them: each statement and the lock it takes.
fn recipe_rows(recipe: &crate::partition_index::Recipe) -> Vec<(String, Vec<String>)> {
    use migrate_core::partition_index::Step;
    recipe
        .steps()
        .iter()
        .map(|step| {
            let locks = match step {
                Step::CreateOnly { table, .. } => vec![format!("{table}: SHARE")],
                Step::Build { table, .. } => vec![format!("{table}: SHARE UPDATE EXCLUSIVE")],
                Step::Rebuild { index } | Step::DropInvalid { index } => {
                    vec![format!("{index}: SHARE UPDATE EXCLUSIVE")]
                }
                // Observed in pg_locks: the parent's index and the partition's (which writers
                // to that partition wait for, for the catalog change only).
                Step::Attach { parent, index } => vec![
                    format!("{parent}: SHARE UPDATE EXCLUSIVE"),
                    format!("{index}: ACCESS EXCLUSIVE"),
                ],
            };
            (recipe.sql(step), locks)
        })
        .collect()
}

/// The table lock of the top-level statements a non-transactional migration typically has.
///
/// # Safety
/// `tree` must be a raw parse tree node.
unsafe fn concurrent_lock(tree: *mut pg_sys::Node) -> Vec<String> {
    // SAFETY: each cast follows the tag check; RangeVarGetRelidExtended with missing_ok takes no
    // lock and raises nothing for a missing table.
    unsafe {
        let (relation, mode) = match (*tree).type_ {
            pg_sys::NodeTag::T_IndexStmt => {
                let s = tree as *mut pg_sys::IndexStmt;
                let mode = if (*s).concurrent {
                    "SHARE UPDATE EXCLUSIVE"
                } else {
                    "SHARE"
                };
                ((*s).relation, mode)
            }
            pg_sys::NodeTag::T_ReindexStmt => (
                (*(tree as *mut pg_sys::ReindexStmt)).relation,
                "SHARE UPDATE EXCLUSIVE",
            ),
            // The table lock ALTER TABLE takes for these subcommands, as PostgreSQL computes it
            // before it opens the table (safe mode's steps: NOT VALID, VALIDATE, ...).
            pg_sys::NodeTag::T_AlterTableStmt => {
                let s = tree as *mut pg_sys::AlterTableStmt;
                let mode = pg_sys::AlterTableGetLockLevel((*s).cmds) as usize;
                (
                    (*s).relation,
                    rules::LOCK_MODES
                        .get(mode)
                        .copied()
                        .unwrap_or("ACCESS EXCLUSIVE"),
                )
            }
            _ => return Vec::new(),
        };
        if relation.is_null() {
            return Vec::new();
        }
        let oid = pg_sys::RangeVarGetRelidExtended(
            relation,
            pg_sys::NoLock as i32,
            pg_sys::RVROption::RVR_MISSING_OK,
            None,
            std::ptr::null_mut(),
        );
        if oid == pg_sys::InvalidOid {
            return Vec::new();
        }
        let name = crate::pg::query::required::<String>(
            "SELECT $1::pg_catalog.regclass::pg_catalog.text",
            &[oid.into()],
        );
        vec![format!("{name}: {mode}")]
    }
}

/// A fingerprint of the user-visible schema: one line per table, column, constraint, index,
/// function, trigger, view and sequence (outside the system schemas and `migrate`).
fn fingerprint() -> BTreeSet<String> {
    const SQL: &str = include_str!("../queries/schema_fingerprint.sql");
    Spi::connect(|client| {
        client
            .select(SQL, None, &[])
            .map(|rows| {
                rows.into_iter()
                    .filter_map(|r| r.get::<String>(1).ok().flatten())
                    .collect()
            })
            .unwrap_or_else(|e| error!("migrate.verify: could not read the schema: {e}"))
    })
}

/// `migrate.verify(version)`: for each pending migration (or just `version`), in a
/// subtransaction that is rolled back: fingerprint the schema, run up, run down, fingerprint
/// again and report every difference; then run up again to prove it re-applies.
#[pg_extern(volatile)]
fn verify(
    version: default!(Option<&str>, "NULL"),
) -> TableIterator<
    'static,
    (
        name!(version, String),
        name!(ok, bool),
        name!(problem, Option<String>),
        name!(detail, Option<String>),
    ),
> {
    let rows = (|| {
        execute::registry_call("verify")?;
        let wanted = version
            .map(|v| checked_version(Some(v), "version", "verify"))
            .transpose()?;
        let all = catalog::load_all(false);
        let chosen: Vec<&Migration> = match wanted {
            Some(v) => {
                let m = catalog::find(&all, v)?;
                if m.is_applied() {
                    return Err(UserError::new(
                        PgSqlErrorCode::ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE,
                        format!("migration {v} is already applied"),
                    )
                    .hint("verify() checks pending migrations against the current schema; roll it back first (in a test database) to verify it."));
                }
                vec![m]
            }
            None => all.iter().filter(|m| !m.is_applied()).collect(),
        };
        let mut rows = Vec::new();
        let dry_run = subxact::run_and_roll_back(|| {
            // Pending migrations build on each other: each is verified on top of the ones before.
            for m in chosen {
                let (found, keep_going) = verify_one(m);
                rows.extend(found);
                if !keep_going {
                    break;
                }
            }
        });
        if let Err(caught) = dry_run {
            caught.rethrow();
        }
        Ok(rows)
    })();
    TableIterator::new(rows.or_raise().into_iter().map(VerifyRow::into_columns))
}

/// One row of `migrate.verify()`.
struct VerifyRow {
    version: String,
    ok: bool,
    problem: Option<String>,
    detail: Option<String>,
}

impl VerifyRow {
    fn into_columns(self) -> (String, bool, Option<String>, Option<String>) {
        (self.version, self.ok, self.problem, self.detail)
    }
}

/// Verifies one migration; leaves it applied (inside the caller's rolled-back subtransaction)
/// so the next one builds on it. False if it could not be applied.
fn verify_one(m: &Migration) -> (Vec<VerifyRow>, bool) {
    let row = |ok: bool, problem: &str, detail: Option<String>| VerifyRow {
        version: m.version.clone(),
        ok,
        problem: Some(problem.to_string()).filter(|p| !p.is_empty()),
        detail,
    };
    let role = match execute::executing_role(m, Direction::Up) {
        Ok(r) => r,
        Err(e) => return (vec![row(false, "cannot run", Some(e.message))], false),
    };
    if !m.transactional {
        return (
            vec![row(
                true,
                "",
                Some("not verified: non-transactional (its statements run top-level); later migrations are checked without it".into()),
            )],
            true,
        );
    }
    if m.down_sql.is_none() {
        return (
            vec![row(
                true,
                "",
                Some("not verified: irreversible (no down script)".into()),
            )],
            up(m, role).is_ok(),
        );
    }
    let down_role = match execute::executing_role(m, Direction::Down) {
        Ok(r) => r,
        Err(e) => return (vec![row(false, "cannot run", Some(e.message))], false),
    };
    let before = fingerprint();
    if let Err(e) = up(m, role) {
        return (vec![row(false, "up failed", Some(e))], false);
    }
    if let Err(e) = run(m, Direction::Down, down_role) {
        return (vec![row(false, "down failed", Some(e))], false);
    }
    let after = fingerprint();
    let mut rows: Vec<VerifyRow> = Vec::new();
    for line in after.difference(&before) {
        rows.push(row(false, "left behind by down", Some(line.clone())));
    }
    for line in before.difference(&after) {
        rows.push(row(false, "missing after down", Some(line.clone())));
    }
    if let Err(e) = up(m, role) {
        rows.push(row(false, "up failed after down", Some(e)));
        return (rows, false);
    }
    if rows.is_empty() {
        rows.push(row(
            true,
            "",
            Some("up, down and up again: the schema round-trips".into()),
        ));
    }
    (rows, true)
}

fn up(m: &Migration, role: pg_sys::Oid) -> std::result::Result<(), String> {
    run(m, Direction::Up, role)
}

/// Runs a script of `m` as a step would, with the guard in dry-run mode; the error as text.
fn run(m: &Migration, direction: Direction, role: pg_sys::Oid) -> std::result::Result<(), String> {
    let sql = &*direction.script(m);
    let (result, _) = guard::state::collect_findings(|| {
        subxact::run(|| execute::in_script(m, direction, role, || script::run(sql)))
    });
    result.map_err(|caught| error_text(&reraise_cancel(caught)))
}
