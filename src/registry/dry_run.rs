//! Dry runs that leave nothing behind: `migrate.plan()` (what a deploy would do, statement by
//! statement, observed on the real schema) and `migrate.verify()` (does the down script undo
//! the up script). Both run migrations in a subtransaction that is always rolled back; the
//! guard runs in dry-run mode (it reports every finding, blocks nothing, logs nothing).

use std::collections::{BTreeSet, HashMap};
use std::time::Instant;

use migrate_core::route::{self, Step};
use migrate_core::{options, rules, version};
use pgrx::pg_sys;
use pgrx::prelude::*;

use super::api::checked_version;
use super::catalog::{self, Migration};
use super::execute::{self, Direction};
use crate::error::{caught_parts, sqlstate_text, OrRaise, Result, UserError};
use crate::guard::{self, facts};
use crate::gucs;
use crate::pg::{script, security, subxact};

/// The SQL name of a lock mode as pg_locks spells it.
fn lock_mode_name(mode: &str) -> (u8, &'static str) {
    match mode {
        "AccessShareLock" => (1, "ACCESS SHARE"),
        "RowShareLock" => (2, "ROW SHARE"),
        "RowExclusiveLock" => (3, "ROW EXCLUSIVE"),
        "ShareUpdateExclusiveLock" => (4, "SHARE UPDATE EXCLUSIVE"),
        "ShareLock" => (5, "SHARE"),
        "ShareRowExclusiveLock" => (6, "SHARE ROW EXCLUSIVE"),
        "ExclusiveLock" => (7, "EXCLUSIVE"),
        "AccessExclusiveLock" => (8, "ACCESS EXCLUSIVE"),
        _ => (0, "unknown"),
    }
}

/// What the catalog looks like around one statement.
struct Observation {
    /// Relation locks this backend holds: (relation oid, name, mode).
    locks: BTreeSet<(u32, String, String)>,
    /// User tables and materialized views: oid -> (name, relfilenode).
    files: HashMap<u32, (String, u32)>,
    /// Tuples read by scans of user tables in this transaction so far.
    scanned: i64,
}

fn observe() -> Observation {
    Spi::connect(|client| {
        let locks = client
            .select(
                "SELECT l.relation::pg_catalog.oid, l.relation::pg_catalog.regclass::pg_catalog.text, l.mode \
                 FROM pg_catalog.pg_locks l \
                 JOIN pg_catalog.pg_class c ON c.oid OPERATOR(pg_catalog.=) l.relation \
                 JOIN pg_catalog.pg_namespace n ON n.oid OPERATOR(pg_catalog.=) c.relnamespace \
                 WHERE l.locktype OPERATOR(pg_catalog.=) 'relation' AND l.granted \
                   AND l.pid OPERATOR(pg_catalog.=) pg_catalog.pg_backend_pid() \
                   AND n.nspname OPERATOR(pg_catalog.<>) ALL (ARRAY['pg_catalog', 'information_schema', 'migrate']) \
                   AND c.relkind OPERATOR(pg_catalog.<>) 'i'",
                None,
                &[],
            )
            .map(|rows| {
                rows.into_iter()
                    .filter_map(|r| {
                        Some((
                            r.get::<pg_sys::Oid>(1).ok().flatten()?.to_u32(),
                            r.get::<String>(2).ok().flatten()?,
                            r.get::<String>(3).ok().flatten()?,
                        ))
                    })
                    .collect()
            })
            .unwrap_or_default();
        let files = client
            .select(
                "SELECT c.oid, c.oid::pg_catalog.regclass::pg_catalog.text, c.relfilenode \
                 FROM pg_catalog.pg_class c \
                 JOIN pg_catalog.pg_namespace n ON n.oid OPERATOR(pg_catalog.=) c.relnamespace \
                 WHERE c.relkind OPERATOR(pg_catalog.=) ANY (ARRAY['r', 'm']) \
                   AND n.nspname OPERATOR(pg_catalog.<>) ALL (ARRAY['pg_catalog', 'information_schema', 'migrate']) \
                   AND n.nspname OPERATOR(pg_catalog.!~) '^pg_toast'",
                None,
                &[],
            )
            .map(|rows| {
                rows.into_iter()
                    .filter_map(|r| {
                        Some((
                            r.get::<pg_sys::Oid>(1).ok().flatten()?.to_u32(),
                            (
                                r.get::<String>(2).ok().flatten()?,
                                r.get::<pg_sys::Oid>(3).ok().flatten()?.to_u32(),
                            ),
                        ))
                    })
                    .collect()
            })
            .unwrap_or_default();
        let scanned = client
            .select(
                "SELECT COALESCE(pg_catalog.sum(seq_tup_read OPERATOR(pg_catalog.+) COALESCE(idx_tup_fetch, 0)), 0)::pg_catalog.int8 \
                 FROM pg_catalog.pg_stat_xact_user_tables WHERE schemaname OPERATOR(pg_catalog.<>) 'migrate'",
                None,
                &[],
            )
            .ok()
            .and_then(|rows| rows.first().get::<i64>(1).ok().flatten())
            .unwrap_or(0);
        Observation {
            locks,
            files,
            scanned,
        }
    })
}

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
        }
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
        )
    }
}

/// The migrations a deploy would run, in order: (index in the registry, direction).
type Path = Vec<(usize, Direction)>;

fn steps(target: Option<&str>) -> Result<(Vec<Migration>, Path)> {
    let all = catalog::load_all(false);
    let entries: Vec<route::Entry> = all.iter().map(Migration::route_entry).collect();
    let path = route::deploy_path(&entries, target, gucs::allow_out_of_order())?
        .into_iter()
        .map(|s| match s {
            Step::Up(i) => (i, Direction::Up),
            Step::Down(i) => (i, Direction::Down),
        })
        .collect();
    Ok((all, path))
}

/// `migrate.plan(target)`: every statement `deploy(target)` would run, executed in a
/// subtransaction that is rolled back, with what it did.
// pgrx declares a function's result columns in its signature.
#[allow(clippy::type_complexity)]
#[pg_extern(volatile)]
fn plan(
    target: default!(Option<&str>, "NULL"),
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
    let rows = (|| {
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
            for (&(i, direction), role) in path.iter().zip(roles) {
                let m = &all[i];
                if !plan_step(m, direction.label(), direction.script(m), role, &mut rows) {
                    break;
                }
            }
        });
        if let Err(caught) = dry_run {
            caught.rethrow();
        }
        Ok(rows)
    })();
    TableIterator::new(rows.or_raise().into_iter().map(PlanRow::into_columns))
}

/// Plans one migration's statements; false if one failed (later steps would depend on it).
fn plan_step(
    m: &Migration,
    label: &str,
    sql: &str,
    role: pg_sys::Oid,
    rows: &mut Vec<PlanRow>,
) -> bool {
    let statements = match subxact::run(|| script::split(sql)) {
        Ok(s) => s,
        Err(caught) => {
            rows.push(error_row(m, label, 0, sql, &caught));
            return false;
        }
    };
    for (rule, reason) in options::allow_directives(sql) {
        guard::state::allow(&rule, &reason, true);
    }
    let what = format!("the {label} script of migration {}", m.version);
    let mut walk = || {
        let mut ok = true;
        for (n, statement) in statements.iter().enumerate() {
            let text = statement.text[script::first_token(&statement.text)..]
                .trim_end()
                .to_string();
            let number = n as i32 + 1;
            if !m.transactional {
                rows.push(analyse_only(m, label, number, &text));
                continue;
            }
            let before = observe();
            let started = Instant::now();
            let (result, findings) =
                guard::state::collect_findings(|| subxact::run(|| script::run(&statement.text)));
            let ms = (started.elapsed().as_secs_f64() * 1_000_000.0).round() / 1000.0;
            if let Err(caught) = result {
                let caught = reraise_cancel(caught);
                let mut row = error_row(m, label, number, &text, &caught);
                row.guard = findings;
                row.duration_ms = Some(ms);
                rows.push(row);
                ok = false;
                break;
            }
            let after = observe();
            let mut strongest: HashMap<String, (u8, &'static str)> = HashMap::new();
            for (oid, name, mode) in after.locks.difference(&before.locks) {
                // Relations the statement created are nobody else's concern.
                if !before.files.contains_key(oid) && !before.locks.iter().any(|l| l.0 == *oid) {
                    continue;
                }
                let rank = lock_mode_name(mode);
                let entry = strongest.entry(name.clone()).or_insert(rank);
                if rank.0 > entry.0 {
                    *entry = rank;
                }
            }
            let mut locks: Vec<String> = strongest
                .into_iter()
                .map(|(name, (_, mode))| format!("{name}: {mode}"))
                .collect();
            locks.sort();
            let rewrites: Vec<String> = before
                .files
                .iter()
                .filter(|(oid, (_, file))| after.files.get(oid).is_some_and(|(_, f)| f != file))
                .map(|(_, (name, _))| name.clone())
                .collect();
            rows.push(PlanRow {
                locks,
                rewrites,
                rows_scanned: Some(after.scanned - before.scanned),
                guard: findings,
                duration_ms: Some(ms),
                ..PlanRow::new(m, label, number, &text)
            });
        }
        ok
    };
    let ok = if m.transactional {
        // As the script's author, isolated like a real step (settings, deferred triggers,
        // objects left in the session); a refusal of the isolation itself is the step's row.
        let _nested = execute::NestedStep::enter();
        match subxact::run(|| security::run_isolated(role, &what, &mut walk)) {
            Ok(ok) => ok,
            Err(caught) => {
                rows.push(error_row(m, label, 0, sql, &reraise_cancel(caught)));
                false
            }
        }
    } else {
        walk()
    };
    guard::state::end_migration_scope();
    script::clear_current_statement();
    ok
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
    let (code, message, _, _) = caught_parts(caught);
    PlanRow {
        error: Some(format!("{}: {message}", sqlstate_text(code as i32))),
        ..PlanRow::new(m, label, number, sql)
    }
}

/// A statement of a non-transactional migration: it cannot run in a transaction, so it is only
/// analysed: the guard's findings and the lock a concurrent build or VACUUM takes.
fn analyse_only(m: &Migration, label: &str, number: i32, text: &str) -> PlanRow {
    let min_rows = gucs::guard_min_rows();
    let analysed = subxact::run(|| {
        let tree = *script::parse_trees(text).first()?;
        // SAFETY: a raw parse tree built just now, in this memory context.
        let statement = security::restricted(|| unsafe { facts::analyse(tree) });
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
        // SAFETY: the node's tag is read before it is cast.
        let locks = unsafe { concurrent_lock(tree) };
        Some((findings, locks))
    });
    let (findings, locks) = match analysed {
        Ok(Some(found)) => found,
        Ok(None) => (Vec::new(), Vec::new()),
        Err(caught) => {
            return error_row(m, label, number, text, &caught);
        }
    };
    PlanRow {
        executed: false,
        locks,
        guard: findings,
        ..PlanRow::new(m, label, number, text)
    }
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
        let name = Spi::get_one_with_args::<String>(
            "SELECT $1::pg_catalog.regclass::pg_catalog.text",
            &[oid.into()],
        )
        .ok()
        .flatten()
        .unwrap_or_default();
        vec![format!("{name}: {mode}")]
    }
}

/// A fingerprint of the user-visible schema: one line per table, column, constraint, index,
/// function, trigger, view and sequence (outside the system schemas and `migrate`).
fn fingerprint() -> BTreeSet<String> {
    const SQL: &str = "
        WITH ns AS (
            SELECT oid, nspname FROM pg_catalog.pg_namespace
            WHERE nspname OPERATOR(pg_catalog.<>) ALL (ARRAY['pg_catalog', 'information_schema', 'migrate'])
              AND nspname OPERATOR(pg_catalog.!~) '^pg_(toast|temp)')
        SELECT 'relation ' OPERATOR(pg_catalog.||) c.oid::pg_catalog.regclass::pg_catalog.text
               OPERATOR(pg_catalog.||) ' (' OPERATOR(pg_catalog.||) c.relkind::pg_catalog.text
               OPERATOR(pg_catalog.||) ', ' OPERATOR(pg_catalog.||) c.relpersistence::pg_catalog.text
               OPERATOR(pg_catalog.||) ')'
        FROM pg_catalog.pg_class c JOIN ns ON ns.oid OPERATOR(pg_catalog.=) c.relnamespace
        WHERE c.relkind OPERATOR(pg_catalog.=) ANY (ARRAY['r', 'p', 'v', 'm', 'S', 'f'])
        UNION ALL
        SELECT 'column ' OPERATOR(pg_catalog.||) c.oid::pg_catalog.regclass::pg_catalog.text
               OPERATOR(pg_catalog.||) '.' OPERATOR(pg_catalog.||) pg_catalog.quote_ident(a.attname)
               OPERATOR(pg_catalog.||) ' ' OPERATOR(pg_catalog.||) pg_catalog.format_type(a.atttypid, a.atttypmod)
               OPERATOR(pg_catalog.||) CASE WHEN a.attnotnull THEN ' NOT NULL' ELSE '' END
               OPERATOR(pg_catalog.||) COALESCE(' DEFAULT ' OPERATOR(pg_catalog.||) pg_catalog.pg_get_expr(d.adbin, d.adrelid), '')
        FROM pg_catalog.pg_attribute a
        JOIN pg_catalog.pg_class c ON c.oid OPERATOR(pg_catalog.=) a.attrelid
        JOIN ns ON ns.oid OPERATOR(pg_catalog.=) c.relnamespace
        LEFT JOIN pg_catalog.pg_attrdef d ON d.adrelid OPERATOR(pg_catalog.=) a.attrelid AND d.adnum OPERATOR(pg_catalog.=) a.attnum
        WHERE a.attnum OPERATOR(pg_catalog.>) 0 AND NOT a.attisdropped
          AND c.relkind OPERATOR(pg_catalog.=) ANY (ARRAY['r', 'p', 'v', 'm', 'f'])
        UNION ALL
        SELECT 'constraint ' OPERATOR(pg_catalog.||) co.conrelid::pg_catalog.regclass::pg_catalog.text
               OPERATOR(pg_catalog.||) ' ' OPERATOR(pg_catalog.||) pg_catalog.quote_ident(co.conname)
               OPERATOR(pg_catalog.||) ': ' OPERATOR(pg_catalog.||) pg_catalog.pg_get_constraintdef(co.oid)
        FROM pg_catalog.pg_constraint co JOIN ns ON ns.oid OPERATOR(pg_catalog.=) co.connamespace
        WHERE co.conrelid OPERATOR(pg_catalog.<>) 0
        UNION ALL
        SELECT 'index ' OPERATOR(pg_catalog.||) pg_catalog.pg_get_indexdef(i.indexrelid)
               OPERATOR(pg_catalog.||) CASE WHEN i.indisvalid THEN '' ELSE ' (invalid)' END
        FROM pg_catalog.pg_index i
        JOIN pg_catalog.pg_class c ON c.oid OPERATOR(pg_catalog.=) i.indexrelid
        JOIN ns ON ns.oid OPERATOR(pg_catalog.=) c.relnamespace
        UNION ALL
        SELECT 'function ' OPERATOR(pg_catalog.||) p.oid::pg_catalog.regprocedure::pg_catalog.text
               OPERATOR(pg_catalog.||) ' ' OPERATOR(pg_catalog.||) pg_catalog.md5(pg_catalog.pg_get_functiondef(p.oid))
        FROM pg_catalog.pg_proc p JOIN ns ON ns.oid OPERATOR(pg_catalog.=) p.pronamespace
        WHERE p.prokind OPERATOR(pg_catalog.<>) 'a'
        UNION ALL
        SELECT 'trigger ' OPERATOR(pg_catalog.||) pg_catalog.pg_get_triggerdef(t.oid)
        FROM pg_catalog.pg_trigger t
        JOIN pg_catalog.pg_class c ON c.oid OPERATOR(pg_catalog.=) t.tgrelid
        JOIN ns ON ns.oid OPERATOR(pg_catalog.=) c.relnamespace
        WHERE NOT t.tgisinternal
        UNION ALL
        SELECT 'view ' OPERATOR(pg_catalog.||) c.oid::pg_catalog.regclass::pg_catalog.text
               OPERATOR(pg_catalog.||) ': ' OPERATOR(pg_catalog.||) pg_catalog.md5(pg_catalog.pg_get_viewdef(c.oid))
        FROM pg_catalog.pg_class c JOIN ns ON ns.oid OPERATOR(pg_catalog.=) c.relnamespace
        WHERE c.relkind OPERATOR(pg_catalog.=) ANY (ARRAY['v', 'm'])";
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
                let m = all
                    .iter()
                    .find(|m| version::compare(&m.version, v).is_eq())
                    .ok_or_else(|| {
                        UserError::new(
                            PgSqlErrorCode::ERRCODE_UNDEFINED_OBJECT,
                            format!("migration {v} is not registered"),
                        )
                        .hint("See SELECT * FROM migrate.status() for registered versions.")
                    })?;
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
    TableIterator::new(rows.or_raise())
}

type VerifyRow = (String, bool, Option<String>, Option<String>);

/// Verifies one migration; leaves it applied (inside the caller's rolled-back subtransaction)
/// so the next one builds on it. False if it could not be applied.
fn verify_one(m: &Migration) -> (Vec<VerifyRow>, bool) {
    let row = |ok: bool, problem: &str, detail: Option<String>| {
        (
            m.version.clone(),
            ok,
            Some(problem.to_string()).filter(|p| !p.is_empty()),
            detail,
        )
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
    let Some(down) = m.down_sql.as_deref() else {
        return (
            vec![row(
                true,
                "",
                Some("not verified: irreversible (no down script)".into()),
            )],
            up(m, role).is_ok(),
        );
    };
    let down_role = match execute::executing_role(m, Direction::Down) {
        Ok(r) => r,
        Err(e) => return (vec![row(false, "cannot run", Some(e.message))], false),
    };
    let before = fingerprint();
    if let Err(e) = up(m, role) {
        return (vec![row(false, "up failed", Some(e))], false);
    }
    if let Err(e) = run(
        down,
        down_role,
        &format!("the down script of migration {}", m.version),
    ) {
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
    run(
        &m.up_sql,
        role,
        &format!("the up script of migration {}", m.version),
    )
}

/// Runs a script as `role` (isolated like a real step) with the guard in dry-run mode; the
/// error as text.
fn run(sql: &str, role: pg_sys::Oid, what: &str) -> std::result::Result<(), String> {
    for (rule, reason) in options::allow_directives(sql) {
        guard::state::allow(&rule, &reason, true);
    }
    let _nested = execute::NestedStep::enter();
    let (result, _) = guard::state::collect_findings(|| {
        subxact::run(|| security::run_isolated(role, what, || script::run(sql)))
    });
    guard::state::end_migration_scope();
    script::clear_current_statement();
    result.map_err(|caught| {
        let caught = reraise_cancel(caught);
        let (code, message, _, _) = caught_parts(&caught);
        format!("{}: {message}", sqlstate_text(code as i32))
    })
}
