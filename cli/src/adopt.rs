//! `adopt --from TOOL DIR`: takes over a database that TOOL migrated. The folder is read with
//! TOOL's layout and registered as `load` registers it, then `migrate.adopt()` marks exactly
//! what TOOL's own table lists as applied, in the same transaction: a mismatch (TOOL applied
//! something the folder lacks, a checksum differs, TOOL left a failed migration) rolls back the
//! load too, so nothing changes. `--dry-run` shows the same table and rolls back.

use std::path::Path;

use migrate_core::adopt::Tool;
use serde_json::Value;

use crate::connect::{self, Settings};
use crate::error::CliError;
use crate::layout::Layout;
use crate::load::{self, Folder};
use crate::output::{self, sql_literal, Format, Table};

/// The layout TOOL's folders are read with (Alembic's and Django's come with their loaders).
fn layout_of(tool: Tool) -> Result<Layout, CliError> {
    Layout::from_name(tool.name()).ok_or_else(|| {
        CliError::Failed(format!(
            "this migrate-cli cannot read {} folders yet (no {} layout); register the migrations with migrate.add() and run SELECT * FROM migrate.adopt('{}') in psql",
            tool.display(),
            tool.name(),
            tool.name()
        ))
    })
}

/// How many rows of `table` have `outcome`.
fn count(table: &Table, outcome: &str) -> usize {
    let Some(i) = table.columns.iter().position(|c| c == "outcome") else {
        return 0;
    };
    table
        .rows
        .iter()
        .filter(|r| r[i] == Value::String(outcome.into()))
        .count()
}

/// `migrate-cli adopt --from TOOL DIR [--table T] [--dry-run]`.
pub fn adopt(
    config: &Settings,
    tool: Tool,
    dir: &Path,
    table: Option<&str>,
    dry_run: bool,
    format: Format,
) -> Result<(), CliError> {
    let folder = Folder::read(dir, Some(layout_of(tool)?))?;
    // NOTICEs on stderr: stdout is the table (or the JSON).
    let mut client = connect::connect(config, connect::to_stderr())?;
    let mut tx = client.transaction()?;
    let refused = load::register(&mut tx, &folder, true)?;
    if refused > 0 {
        tx.rollback()?;
        return Err(load::refused_error(refused, &folder));
    }
    let sql = format!(
        "SELECT * FROM migrate.adopt({}, dry_run => {dry_run}, tool_table => {})",
        sql_literal(tool.name()),
        table.map_or_else(|| "NULL".to_string(), sql_literal)
    );
    let shown = match output::show(&mut tx, &sql, format) {
        Ok(shown) => shown,
        Err(e) => {
            // The load is taken back with the refusal: nothing changed.
            let _ = tx.rollback();
            return Err(e.into());
        }
    };
    let (adopted, pending, mismatches) = (
        count(&shown, "adopted"),
        count(&shown, "pending"),
        count(&shown, "mismatch"),
    );
    if dry_run {
        tx.rollback()?;
        if mismatches > 0 {
            return Err(CliError::Failed(format!(
                "{mismatches} mismatch(es) between {} and the folder: adopt would refuse; nothing was changed",
                tool.display()
            )));
        }
        if format == Format::Table {
            println!(
                "dry run: would adopt {adopted} migration(s) from {}, {pending} left pending; nothing was changed",
                tool.display()
            );
        }
        return Ok(());
    }
    tx.commit()?;
    if format == Format::Table {
        println!(
            "adopted {adopted} migration(s) from {} ({} layout, {}); {pending} pending: migrate-cli deploy {} applies them",
            tool.display(),
            folder.layout,
            folder.dir.display(),
            folder.dir.display()
        );
    }
    Ok(())
}

/// The drift problems `validate()` reports for an adopted database, as lines for `status`
/// (on stderr, so that `--format json` output stays one JSON document); nothing on a server
/// without adoptions.
pub fn drift_lines(client: &mut postgres::Client) -> Result<Vec<String>, postgres::Error> {
    // Unnamed statements in one round trip each (query_typed): behind a transaction-mode
    // pooler the session may move to another server connection between them.
    let first = |client: &mut postgres::Client, sql: &str| -> Result<i64, postgres::Error> {
        Ok(client
            .query_typed(sql, &[])?
            .first()
            .map_or(0, |r| r.get::<_, i64>(0)))
    };
    let exists = first(
        client,
        "SELECT CASE WHEN pg_catalog.to_regclass('migrate.adoptions') IS NULL \
                THEN 0::pg_catalog.int8 ELSE 1::pg_catalog.int8 END",
    )?;
    if exists == 0
        || first(
            client,
            "SELECT pg_catalog.count(*) FROM migrate.adoptions WHERE ended_at IS NULL",
        )? == 0
    {
        return Ok(Vec::new());
    }
    let rows = client.query_typed(
        "SELECT v.version, v.problem, v.detail FROM migrate.validate() v \
         WHERE v.problem LIKE 'drift\\_%'",
        &[],
    )?;
    Ok(rows
        .iter()
        .map(|r| {
            let version: Option<String> = r.get(0);
            let problem: String = r.get(1);
            let detail: String = r.get(2);
            match version {
                Some(v) => format!("drift: {v}: {problem}: {detail}"),
                None => format!("drift: {problem}: {detail}"),
            }
        })
        .collect())
}
