//! `migrate.adopt(tool, dry_run, tool_table)`: takes over a database another tool migrated.
//! The folder's migrations are registered first (`migrate.add()`, `migrate-cli load`); adopt
//! reads the tool's own bookkeeping table ([`super::tool_table`]) and marks exactly the
//! migrations that tool applied as applied (state `baselined`, history `adopt`, the tool's
//! applied-at time where it has one), or, if the tool and the registry disagree anywhere,
//! changes nothing and raises. `migrate.end_adoption(tool)` says the tool no longer migrates
//! the database; until then `validate()` reports drift between the two ([`drift_problems`]).
//!
//! Who may adopt: as `baseline()`, members of `migrate_admin`; and, as `apply()` would require,
//! only if the caller has the privileges of the role that registered each migration it marks,
//! and every role that could have written the tool's table could have applied every pending
//! migration itself (a planted row must not skip or run a migration for a role that could not).

use migrate_core::adopt::{self, Outcome, Registered, Rows, State, Tool};
use pgrx::datum::TimestampWithTimeZone;
use pgrx::pg_sys;
use pgrx::prelude::*;

use super::catalog::{self, Action, Event, Migration, MigrationState};
use super::execute::{self, Direction};
use super::tool_table::{self, Time, ToolTable};
use crate::error::{OrRaise, Result, UserError};

type AdoptRow = (
    String,
    Option<String>,
    String,
    String,
    Option<TimestampWithTimeZone>,
    Option<String>,
);

fn tool_argument(tool: Option<&str>, function: &str) -> Result<Tool> {
    let name = tool.ok_or_else(|| super::api::null_argument("tool", function))?;
    Tool::from_name(name).ok_or_else(|| {
        let names: Vec<&str> = Tool::ALL.iter().map(|t| t.name()).collect();
        UserError::new(
            PgSqlErrorCode::ERRCODE_INVALID_PARAMETER_VALUE,
            format!("unknown tool \"{name}\" for migrate.{function}()"),
        )
        .hint(format!("The tools are {}.", names.join(", ")))
    })
}

fn state(m: &Migration) -> State {
    match m.state {
        MigrationState::Pending => State::Pending,
        MigrationState::Applied => State::Ran,
        MigrationState::Baselined => State::Marked,
    }
}

fn registered(all: &[Migration]) -> Vec<Registered<'_>> {
    all.iter()
        .map(|m| Registered {
            version: &m.version,
            name: m.name.as_deref(),
            script: &m.up_sql,
            requires: &m.requires,
            state: state(m),
            repeatable: m.repeatable,
        })
        .collect()
}

/// True if the database was adopted from `table` by `tool` and that adoption is in force.
fn adopted_before(tool: Tool, table: &ToolTable) -> bool {
    catalog::adoptions()
        .iter()
        .any(|a| a.tool == tool.name() && a.schema == table.schema && a.table == table.name)
}

/// Refuses a table that a role could have written which could not apply every pending
/// migration itself: a row it wrote would mark one applied (so it never runs), a row it deleted
/// would leave one the tool ran to run again. (Applied migrations are safe from its rows:
/// adopt() never makes one pending, it refuses.)
fn check_writers(tool: Tool, table: &ToolTable, all: &[Migration]) -> Result<()> {
    let mut authors: Vec<String> = all
        .iter()
        .filter(|m| !m.is_applied())
        .map(|m| m.added_by.clone())
        .collect();
    authors.sort();
    authors.dedup();
    if authors.is_empty() {
        return Ok(());
    }
    let Some((writer, author)) = tool_table::untrusted_writer(table, &authors) else {
        return Ok(());
    };
    let qualified = table.qualified();
    Err(UserError::new(
        PgSqlErrorCode::ERRCODE_INSUFFICIENT_PRIVILEGE,
        format!(
            "cannot adopt from {qualified}: role \"{writer}\" can write it but cannot run migrations as role \"{author}\""
        ),
    )
    .detail(format!(
        "What {} recorded there decides which migrations are marked applied and which run; \"{writer}\" could mark applied, or leave to run, migrations that \"{author}\" registered and \"{writer}\" could not apply itself.",
        tool.display()
    ))
    .hint(format!(
        "Find out who made the table. If \"{writer}\" is the role {} runs as, register the folder and adopt as it; otherwise take its write privileges away (REVOKE INSERT, UPDATE, DELETE, TRUNCATE ON {qualified} FROM \"{writer}\", and from PUBLIC) or give the table to the adopting role (ALTER TABLE {qualified} OWNER TO ...).",
        tool.display()
    )))
}

fn mismatch_error(tool: Tool, table: &ToolTable, rows: &[adopt::Row<Time>]) -> UserError {
    let bad: Vec<&adopt::Row<Time>> = rows
        .iter()
        .filter(|r| r.outcome == Outcome::Mismatch)
        .collect();
    let first = bad[0];
    let shown = |r: &adopt::Row<Time>| {
        if r.version.is_empty() {
            "the table".to_string()
        } else {
            format!("migration {}", r.version)
        }
    };
    // A folder of another project could disagree everywhere: the first ones say enough.
    const SHOWN: usize = 50;
    let mut detail: Vec<String> = bad
        .iter()
        .take(SHOWN)
        .map(|r| {
            format!(
                "{}: {}",
                shown(r),
                r.detail.as_deref().unwrap_or("disagrees")
            )
        })
        .collect();
    if bad.len() > SHOWN {
        detail.push(format!(
            "... and {} more (adopt(..., dry_run => true) shows them all)",
            bad.len() - SHOWN
        ));
    }
    UserError::new(
        PgSqlErrorCode::ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE,
        format!(
            "cannot adopt from {}: {} and the registry disagree on {}{}",
            table.qualified(),
            tool.display(),
            shown(first),
            if bad.len() > 1 {
                format!(" and {} more", bad.len() - 1)
            } else {
                String::new()
            }
        ),
    )
    .detail(detail.join("\n"))
    .hint(format!("Nothing was changed. {}", tool.mismatch_hint()))
}

/// `migrate.adopt(tool, dry_run, tool_table)`: one row per registered migration, then one per
/// row only the tool has: what the tool says, and what adopt did (or, with `dry_run`, would
/// do): `adopted`, `already_applied`, `pending`, `mismatch` or `ignored`.
#[pg_extern(sql = r#"
CREATE FUNCTION migrate.adopt(tool text, dry_run boolean DEFAULT false,
                              tool_table regclass DEFAULT NULL)
RETURNS TABLE (version text, name text, tool_says text, outcome text,
               applied_at timestamptz, detail text)
VOLATILE LANGUAGE c AS 'MODULE_PATHNAME', 'adopt_wrapper';
COMMENT ON FUNCTION migrate.adopt(text, boolean, regclass) IS
    'Takes over a database another tool migrated: marks applied exactly the registered migrations that tool''s table lists as applied, or changes nothing if they disagree.';
"#)]
#[allow(clippy::type_complexity)] // pgrx reads the column names from the signature
fn adopt(
    tool: Option<&str>,
    dry_run: Option<bool>,
    tool_table: Option<pg_sys::Oid>,
) -> TableIterator<
    'static,
    (
        name!(version, String),
        name!(name, Option<String>),
        name!(tool_says, String),
        name!(outcome, String),
        name!(applied_at, Option<TimestampWithTimeZone>),
        name!(detail, Option<String>),
    ),
> {
    TableIterator::new(adopt_database(tool, dry_run, tool_table).or_raise())
}

fn adopt_database(
    tool: Option<&str>,
    dry_run: Option<bool>,
    tool_table: Option<pg_sys::Oid>,
) -> Result<Vec<AdoptRow>> {
    execute::registry_call("adopt")?;
    let tool = tool_argument(tool, "adopt")?;
    let dry_run = dry_run.ok_or_else(|| super::api::null_argument("dry_run", "adopt"))?;
    if !dry_run && !catalog::has_adoptions() {
        return Err(UserError::new(
            PgSqlErrorCode::ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE,
            "migrate.adopt() needs migrate 0.2.0's schema",
        )
        .hint("Run ALTER EXTENSION migrate UPDATE first."));
    }
    let table = tool_table::locate(tool, tool_table)?;
    catalog::lock_registry();
    if !dry_run {
        catalog::refuse_while_deploying("adopt")?;
    }
    let all = catalog::load_all(true);
    let shape = tool_table::open(tool, &table)?;
    check_writers(tool, &table, &all)?;
    let rows = tool_table::read(tool, &table, &shape);
    let assessed = adopt::assess(
        tool,
        &table.qualified(),
        &registered(&all),
        &rows,
        adopted_before(tool, &table),
    );
    // Marking a migration applied is as good as applying it: only for a role that could.
    for row in assessed.iter().filter(|r| r.outcome == Outcome::Adopted) {
        let m = &all[row.index.expect("adopted rows are registered")];
        execute::executing_role(m, Direction::Up).map_err(|e| UserError {
            message: format!(
                "permission denied to adopt migration {}: {}",
                m.version, e.message
            ),
            ..e
        })?;
    }
    if !dry_run {
        if assessed.iter().any(|r| r.outcome == Outcome::Mismatch) {
            return Err(mismatch_error(tool, &table, &assessed));
        }
        record(tool, &table, &all, &assessed);
    }
    Ok(assessed
        .into_iter()
        .map(|r| {
            (
                r.version,
                r.name,
                r.says.as_str().to_string(),
                r.outcome.as_str().to_string(),
                r.at,
                r.detail,
            )
        })
        .collect())
}

/// Marks the adopted migrations and records the adoption.
fn record(tool: Tool, table: &ToolTable, all: &[Migration], rows: &[adopt::Row<Time>]) {
    let role = super::api::current_role_name();
    let run_id = catalog::next_run_id();
    let now = catalog::clock_now();
    let qualified = table.qualified();
    for row in rows.iter().filter(|r| r.outcome == Outcome::Adopted) {
        let m = &all[row.index.expect("adopted rows are registered")];
        let at = row.at.unwrap_or(now);
        catalog::mark_adopted(&m.version, &role, run_id, at, row.duration_ms);
        let finished = match row.duration_ms {
            Some(ms) => as_time_plus(at, ms),
            None => at,
        };
        let when = if row.at.is_some() {
            format!("{} applied it", tool.display())
        } else {
            format!("{} applied it (its table has no time)", tool.display())
        };
        let detail = format!(
            "adopted from {qualified}: {when}; marked applied without running{}",
            row.detail
                .as_deref()
                .map(|d| format!(" ({d})"))
                .unwrap_or_default()
        );
        catalog::log_event_between(
            &Event {
                run_id,
                version: &m.version,
                action: Action::Adopt,
                started: at,
                role: &role,
                detail: Some(&detail),
            },
            finished,
        );
    }
    catalog::record_adoption(tool.name(), &table.schema, &table.name, &role, run_id);
    let adopted = rows
        .iter()
        .filter(|r| r.outcome == Outcome::Adopted)
        .count();
    if adopted > 0 {
        pgrx::notice!(
            "migrate: adopted {adopted} migration(s) from {qualified}; validate() compares it with the registry until migrate.end_adoption('{}')",
            tool.name()
        );
    } else {
        pgrx::notice!("migrate: nothing new to adopt from {qualified}");
    }
}

/// `at` plus `ms` milliseconds, by the server's own arithmetic.
fn as_time_plus(at: TimestampWithTimeZone, ms: f64) -> TimestampWithTimeZone {
    crate::pg::query::required(
        "SELECT $1 OPERATOR(pg_catalog.+) pg_catalog.make_interval(secs => $2 OPERATOR(pg_catalog./) 1000)",
        &[at.into(), ms.into()],
    )
}

/// `migrate.end_adoption(tool, tool_table)`: the tool no longer migrates this database, so
/// `validate()` stops comparing its table with the registry. Returns how many adoptions ended.
#[pg_extern(sql = r#"
CREATE FUNCTION migrate.end_adoption(tool text, tool_table regclass DEFAULT NULL)
RETURNS integer
VOLATILE LANGUAGE c AS 'MODULE_PATHNAME', 'end_adoption_wrapper';
COMMENT ON FUNCTION migrate.end_adoption(text, regclass) IS
    'Says the tool a database was adopted from no longer migrates it: validate() stops reporting drift against its table.';
"#)]
fn end_adoption(tool: Option<&str>, tool_table: Option<pg_sys::Oid>) -> i32 {
    (|| {
        execute::registry_call("end_adoption")?;
        let tool = tool_argument(tool, "end_adoption")?;
        if !catalog::has_adoptions() {
            return Ok(0);
        }
        let place = tool_table
            .map(|oid| tool_table::locate(tool, Some(oid)))
            .transpose()?;
        catalog::lock_registry();
        let role = super::api::current_role_name();
        let ended = catalog::end_adoptions(
            tool.name(),
            place.as_ref().map(|t| (t.schema.as_str(), t.name.as_str())),
            &role,
        );
        if ended == 0 {
            pgrx::notice!("migrate: no adoption from {} is in force", tool.display());
        }
        Ok(ended)
    })()
    .or_raise()
}

/// `validate()`'s drift problems: for every adoption in force, the migrations the tool's
/// table and the registry disagree on, each saying which side is ahead and how to reconcile.
pub fn drift_problems(all: &[Migration]) -> Vec<(Option<String>, String, String)> {
    let mut out = Vec::new();
    for a in catalog::adoptions() {
        let Some(tool) = Tool::from_name(&a.tool) else {
            continue;
        };
        let shown = format!(
            "{}.{}",
            pgrx::spi::quote_identifier(&a.schema),
            pgrx::spi::quote_identifier(&a.table)
        );
        let Some(table) = tool_table::find(&a.schema, &a.table) else {
            out.push((
                None,
                "drift_table_missing".to_string(),
                format!(
                    "this database was adopted from {shown}, which no longer exists; if {} no longer migrates it, SELECT migrate.end_adoption('{}')",
                    tool.display(),
                    tool.name()
                ),
            ));
            continue;
        };
        // A table that cannot be read or trusted now is a problem to report, not an error
        // that hides every other finding.
        let read = crate::pg::subxact::run(|| -> Result<Rows<Time>> {
            let shape = tool_table::open(tool, &table)?;
            check_writers(tool, &table, all)?;
            Ok(tool_table::read(tool, &table, &shape))
        });
        let rows = match read {
            Ok(Ok(rows)) => rows,
            Ok(Err(e)) => {
                out.push((None, "drift_unreadable".to_string(), e.message));
                continue;
            }
            Err(caught) => {
                let (_, message, _, _) = crate::error::caught_parts(&caught);
                out.push((None, "drift_unreadable".to_string(), message));
                continue;
            }
        };
        let assessed = adopt::assess(tool, &shown, &registered(all), &rows, true);
        out.extend(adopt::drift(tool, &shown, &assessed).into_iter().map(|d| {
            (
                Some(d.version).filter(|v| !v.is_empty()),
                d.problem.to_string(),
                d.detail,
            )
        }));
    }
    out
}
