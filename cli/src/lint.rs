//! `lint DIR`: `migrate.check()` on every pending script of the folder, in order, with each
//! finding placed at the file and line of its statement; an applied migration whose file
//! changed since is a finding too (the registry would refuse it).

use std::path::Path;

use postgres::Client;

use crate::connect::Settings;
use serde_json::{json, Value};

use crate::connect;
use crate::error::{self, CliError};
use crate::layout::{statements, Layout, MigrationFile};
use crate::load::Folder;
use crate::output::{self, Table};

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum LintFormat {
    Table,
    Json,
    /// GitHub Actions annotations (`::error file=...,line=...::message`).
    Github,
}

/// One finding, where it is and what `migrate.check()` said.
#[derive(Debug, Clone, PartialEq)]
pub struct Finding {
    pub file: String,
    pub line: usize,
    pub version: String,
    pub statement: Option<i32>,
    pub rule: String,
    /// `block`, `warn`, `exempt`, `info` (static advice) or `error` (a statement that would
    /// fail as written), as `migrate.check()` reports them.
    pub severity: String,
    pub table_name: String,
    pub message: String,
    pub hint: String,
}

impl Finding {
    /// Only `block` blocks: `error` is judged against today's catalog, before the pending
    /// migrations ahead of it have run, so it may be a type they create.
    pub fn blocks(&self) -> bool {
        self.severity == "block"
    }
}

pub fn lint(
    config: &Settings,
    dir: &Path,
    layout: Option<Layout>,
    format: LintFormat,
) -> Result<(), CliError> {
    let folder = Folder::read(dir, layout)?;
    let mut client = connect::connect(config, connect::to_stderr())?;
    let applied = applied(&mut client)?;
    let mut findings = Vec::new();
    let mut checked = 0;
    for file in &folder.files {
        let registered = applied
            .iter()
            .find(|(v, _)| migrate_core::version::compare(v, &file.version).is_eq());
        match registered {
            Some((_, checksum)) => findings.extend(changed_since_applied(file, checksum)),
            None => {
                checked += 1;
                findings.extend(check(&mut client, file)?);
            }
        }
    }
    print!("{}", render(&findings, format));
    let blocking = findings.iter().filter(|f| f.blocks()).count();
    eprintln!(
        "lint: {checked} pending script(s) checked, {} finding(s), {blocking} blocking",
        findings.len()
    );
    if blocking > 0 {
        return Err(CliError::Failed(format!("{blocking} blocking finding(s)")));
    }
    Ok(())
}

/// (version, checksum) of every applied or baselined migration. A role that may not read the
/// registry (only `migrate_admin` may) lints every script: `check()` itself is public.
fn applied(client: &mut Client) -> Result<Vec<(String, String)>, CliError> {
    // Unnamed statements in one round trip (query_typed): a transaction-mode pooler may move
    // the session to another server connection between two transactions.
    let rows = client.query_typed(
        "SELECT version, checksum FROM migrate.migrations WHERE state <> 'pending'",
        &[],
    );
    match rows {
        Ok(rows) => Ok(rows.iter().map(|r| (r.get(0), r.get(1))).collect()),
        Err(e) if e.code() == Some(&postgres::error::SqlState::INSUFFICIENT_PRIVILEGE) => {
            eprintln!("lint: cannot read migrate.migrations (not in migrate_admin): every script is checked as pending");
            Ok(Vec::new())
        }
        Err(e) => Err(e.into()),
    }
}

/// A finding if the file's up script is no longer the one that was applied.
fn changed_since_applied(file: &MigrationFile, registered: &str) -> Option<Finding> {
    let now = migrate_core::checksum::checksum(&file.up);
    (now != registered).then(|| Finding {
        file: file.up_path.display().to_string(),
        line: file.up_line,
        version: file.version.clone(),
        statement: None,
        rule: "applied_changed".into(),
        severity: "block".into(),
        table_name: String::new(),
        message: format!(
            "migration {} is applied and its up script changed since (applied sha256:{registered}, file sha256:{now})",
            file.version
        ),
        hint: "Applied migrations are immutable: restore the file and register the change as a new migration.".into(),
    })
}

/// `migrate.check()` of one up script; a script that does not parse is one blocking finding.
fn check(client: &mut Client, file: &MigrationFile) -> Result<Vec<Finding>, CliError> {
    let rows = client.query_typed(
        "SELECT statement, rule, severity, table_name, message, hint FROM migrate.check($1)",
        &[(&file.up, postgres::types::Type::TEXT)],
    );
    let rows = match rows {
        Ok(rows) => rows,
        Err(e) => {
            // Only a script that does not parse is the script's finding; anything else (no
            // extension, a lost connection) is the run's failure.
            let Some(db) = e
                .as_db_error()
                .filter(|db| db.message().starts_with("the SQL does not parse"))
            else {
                return Err(e.into());
            };
            let at = error::locate(db.message(), db.detail(), file);
            return Ok(vec![Finding {
                file: at.path.display().to_string(),
                line: at.line,
                version: file.version.clone(),
                statement: None,
                rule: format!("sqlstate_{}", db.code().code()),
                severity: "block".into(),
                table_name: String::new(),
                message: db.message().to_string(),
                hint: db.hint().unwrap_or("").to_string(),
            }]);
        }
    };
    let starts = statement_lines(&file.up);
    Ok(rows
        .iter()
        .map(|r| {
            let statement: i32 = r.get(0);
            let in_script = usize::try_from(statement - 1)
                .ok()
                .and_then(|i| starts.get(i).copied())
                .unwrap_or(1);
            Finding {
                file: file.up_path.display().to_string(),
                line: file.up_line + in_script - 1,
                version: file.version.clone(),
                statement: Some(statement),
                rule: r.get(1),
                severity: r.get(2),
                table_name: r.get(3),
                message: r.get(4),
                hint: r.get(5),
            }
        })
        .collect())
}

pub fn render(findings: &[Finding], format: LintFormat) -> String {
    match format {
        LintFormat::Github => findings
            .iter()
            .map(|f| {
                let level = match f.severity.as_str() {
                    "block" => "error",
                    "exempt" | "info" => "notice",
                    _ => "warning",
                };
                let message = if f.hint.is_empty() {
                    f.message.clone()
                } else {
                    format!("{}\n{}", f.message, f.hint)
                };
                let title = format!("migrate: {}", f.rule);
                output::github_annotation(level, &f.file, f.line, &title, &message) + "\n"
            })
            .collect(),
        LintFormat::Json => output::render_json(&table(findings, true)),
        LintFormat::Table => output::render_table(&table(findings, false)),
    }
}

/// The findings as rows: `file` and `line` apart for JSON, one `location` for a table.
fn table(findings: &[Finding], json: bool) -> Table {
    let place: &[&str] = if json {
        &["file", "line"]
    } else {
        &["location"]
    };
    let rest = [
        "version",
        "statement",
        "rule",
        "severity",
        "table_name",
        "message",
        "hint",
    ];
    let columns = place.iter().chain(rest.iter()).map(|c| c.to_string());
    let rows = findings
        .iter()
        .map(|f| {
            let mut row: Vec<Value> = if json {
                vec![json!(f.file), json!(f.line)]
            } else {
                vec![json!(format!("{}:{}", f.file, f.line))]
            };
            row.extend([
                json!(f.version),
                json!(f.statement),
                json!(f.rule),
                json!(f.severity),
                json!(f.table_name),
                json!(f.message),
                json!(f.hint),
            ]);
            row
        })
        .collect();
    Table {
        columns: columns.collect(),
        rows,
    }
}

/// The 1-based line where each statement of `sql` starts, counted as the server's parser
/// counts them (`migrate.check()` numbers statements so): the statements
/// [`statements::split`] finds, less the empty ones (a lone `;`).
pub fn statement_lines(sql: &str) -> Vec<usize> {
    let (mut line, mut counted) = (1, 0);
    statements::split(sql)
        .into_iter()
        .filter(|r| sql[r.clone()].trim() != ";")
        .map(|r| {
            line += sql[counted..r.start].matches('\n').count();
            counted = r.start;
            line
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn statements_start_where_their_first_token_is() {
        let sql = "-- header\n\nCREATE TABLE a (id int);\nCREATE INDEX ON a (id);  -- trailing\n\n/* block\n comment */ ALTER TABLE a\n  ADD COLUMN b int;\n";
        assert_eq!(statement_lines(sql), [3, 4, 7]);
        // A last statement without a semicolon counts; empty statements do not.
        assert_eq!(statement_lines(";;SELECT 1;\n;\nSELECT 2"), [1, 3]);
        assert_eq!(statement_lines("-- only a comment\n"), Vec::<usize>::new());
    }

    #[test]
    fn quoted_text_does_not_split() {
        let sql = "INSERT INTO t VALUES ('a;\nb', E'it\\'s;', \"x;y\");\nDO $body$ BEGIN\n PERFORM 1; END $body$;\nSELECT $$;$$, $1;\nSELECT 3;";
        assert_eq!(statement_lines(sql), [1, 3, 5, 6]);
        // Nested block comments.
        assert_eq!(
            statement_lines("/* a /* b; */ ; */ SELECT 1;\nSELECT 2;"),
            [1, 2]
        );
    }

    #[test]
    fn begin_atomic_bodies_and_rules() {
        let sql = "CREATE FUNCTION f() RETURNS int LANGUAGE sql\nBEGIN ATOMIC\n  SELECT CASE WHEN true THEN 1 END;\n  SELECT 2;\nEND;\nCREATE RULE r AS ON INSERT TO t DO ALSO (NOTIFY a; NOTIFY b);\nBEGIN;\nSELECT 1;\nEND;";
        assert_eq!(statement_lines(sql), [1, 6, 7, 8, 9]);
    }

    #[test]
    fn findings_render_in_every_format() {
        let f = Finding {
            file: "db/1_x.up.sql".into(),
            line: 4,
            version: "1".into(),
            statement: Some(2),
            rule: "index_not_concurrent".into(),
            severity: "block".into(),
            table_name: "public.big".into(),
            message: "CREATE INDEX on public.big blocks writes".into(),
            hint: "Use CREATE INDEX CONCURRENTLY".into(),
        };
        let warn = Finding {
            severity: "warn".into(),
            statement: None,
            ..f.clone()
        };
        assert!(f.blocks() && !warn.blocks());
        assert_eq!(
            render(&[f.clone(), warn], LintFormat::Github),
            "::error file=db/1_x.up.sql,line=4,title=migrate%3A index_not_concurrent::CREATE INDEX on public.big blocks writes%0AUse CREATE INDEX CONCURRENTLY\n\
             ::warning file=db/1_x.up.sql,line=4,title=migrate%3A index_not_concurrent::CREATE INDEX on public.big blocks writes%0AUse CREATE INDEX CONCURRENTLY\n"
        );
        let json: Value =
            serde_json::from_str(&render(std::slice::from_ref(&f), LintFormat::Json)).unwrap();
        assert_eq!(json[0]["line"], 4);
        assert_eq!(json[0]["statement"], 2);
        assert_eq!(json[0]["rule"], "index_not_concurrent");
        assert!(render(&[f], LintFormat::Table).contains("db/1_x.up.sql:4 | 1"));
    }
}
