//! Failures and how they are shown: a server error with its SQLSTATE, message, DETAIL and HINT
//! (and, when it is about a script of the folder, the file and line it points at), a folder
//! that cannot be read, a connection that cannot be made. Every one of them exits 1.

use std::fmt;
use std::path::PathBuf;

use postgres::error::DbError;

use crate::layout::{LayoutError, MigrationFile};

#[derive(Debug)]
pub enum CliError {
    /// Where we tried to connect (no password), and why it failed.
    Connect(String, postgres::Error),
    /// A server error, with the file and line of the script it is about when known.
    Db(postgres::Error, Option<Location>),
    Layout(LayoutError),
    /// Reported already in detail (e.g. per migration); this is the summary line.
    Failed(String),
    /// Settings that cannot be used as given (an invalid URL): exit 2, like clap's errors.
    Usage(String),
}

impl CliError {
    pub fn exit_code(&self) -> u8 {
        match self {
            CliError::Usage(_) => 2,
            _ => 1,
        }
    }
}

impl From<postgres::Error> for CliError {
    fn from(e: postgres::Error) -> Self {
        CliError::Db(e, None)
    }
}

impl From<LayoutError> for CliError {
    fn from(e: LayoutError) -> Self {
        CliError::Layout(e)
    }
}

impl fmt::Display for CliError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            CliError::Connect(target, e) => match e.as_db_error() {
                Some(db) => write!(f, "could not connect to {target}: {}", server_error(db)),
                None => write!(f, "could not connect to {target}: {e}"),
            },
            CliError::Db(e, location) => {
                if let Some(location) = location {
                    write!(f, "{location}: ")?;
                }
                match e.as_db_error() {
                    Some(db) => f.write_str(&server_error(db)),
                    None => write!(f, "{e}"),
                }
            }
            CliError::Layout(e) => write!(f, "{e}"),
            CliError::Failed(message) | CliError::Usage(message) => f.write_str(message),
        }
    }
}

/// `SEVERITY SQLSTATE: message` plus the DETAIL and HINT lines, as psql's verbose mode shows.
pub fn server_error(db: &DbError) -> String {
    let mut out = format!("{} {}: {}", db.severity(), db.code().code(), db.message());
    if let Some(detail) = db.detail() {
        out.push_str(&format!("\nDETAIL:  {detail}"));
    }
    if let Some(hint) = db.hint() {
        out.push_str(&format!("\nHINT:  {hint}"));
    } else if missing_extension(db.code().code(), db.message()) {
        out.push_str(
            "\nHINT:  Is the extension installed in this database? CREATE EXTENSION migrate;",
        );
    }
    out
}

/// True for the errors of a database without the extension: no schema `migrate`, or no
/// `migrate.*` function or view.
fn missing_extension(sqlstate: &str, message: &str) -> bool {
    match sqlstate {
        "3F000" => message.contains("\"migrate\""),
        "42883" | "42P01" => message.contains("migrate."),
        _ => false,
    }
}

/// A place in a migration file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Location {
    pub path: PathBuf,
    /// 1-based line of the file.
    pub line: usize,
}

impl fmt::Display for Location {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}", self.path.display(), self.line)
    }
}

/// Which script of a migration an error is about, and the line in it if the server said.
#[derive(Debug, PartialEq, Eq)]
pub struct ScriptPosition {
    pub down: bool,
    pub line: Option<usize>,
}

/// Reads the script and line from a server error: the DETAIL's `At line L, column C` (a parse
/// error at `add`) or `In statement N of the up script, at line L, column C` (a failed step);
/// the message says which script a parse error is about (`down script of migration ...`).
pub fn script_position(message: &str, detail: Option<&str>) -> ScriptPosition {
    let first = detail.and_then(|d| d.lines().next()).unwrap_or("");
    let down = first.contains("the down script")
        || message.starts_with("down script of")
        || message.starts_with("down_sql of")
        || message.contains(" failed (down)");
    let line = ["At line ", "at line "].iter().find_map(|marker| {
        let rest = &first[first.find(marker)? + marker.len()..];
        let digits: String = rest.chars().take_while(char::is_ascii_digit).collect();
        digits.parse().ok()
    });
    ScriptPosition { down, line }
}

/// The file and line a server error about `file`'s scripts points at: script line L is file
/// line `up_line + L - 1` (or the down script's); without a line, where the script starts.
pub fn locate(message: &str, detail: Option<&str>, file: &MigrationFile) -> Location {
    let position = script_position(message, detail);
    let (path, start) = match (&file.down_path, position.down) {
        (Some(down), true) => (down.clone(), file.down_line),
        _ => (file.up_path.clone(), file.up_line),
    };
    Location {
        path,
        line: start + position.line.unwrap_or(1) - 1,
    }
}

/// The version a failed step's message names: `migration V failed (up): ...`.
pub fn failed_version(message: &str) -> Option<&str> {
    let rest = message.strip_prefix("migration ")?;
    let end = rest.find(" failed (")?;
    Some(&rest[..end])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_missing_extension_gets_a_hint() {
        assert!(missing_extension(
            "3F000",
            "schema \"migrate\" does not exist"
        ));
        assert!(missing_extension(
            "42883",
            "function migrate.status() does not exist"
        ));
        assert!(missing_extension(
            "42P01",
            "relation \"migrate.jobs\" does not exist"
        ));
        assert!(!missing_extension(
            "42P01",
            "relation \"users\" does not exist"
        ));
    }

    #[test]
    fn parse_errors_at_add() {
        assert_eq!(
            script_position(
                "up script of migration 7 does not parse: syntax error at or near \"CREAT\"",
                Some("At line 2, column 1: CREAT TABLE t7 (id int);")
            ),
            ScriptPosition {
                down: false,
                line: Some(2)
            }
        );
        assert_eq!(
            script_position(
                "down script of migration 7 does not parse: syntax error at or near \"t7\"",
                Some("At line 13, column 15: DROP TABLE t7 t7")
            ),
            ScriptPosition {
                down: true,
                line: Some(13)
            }
        );
    }

    #[test]
    fn failed_steps() {
        let message = "migration 20240101 failed (down): relation \"x\" does not exist";
        assert_eq!(
            script_position(
                message,
                Some(
                    "In statement 3 of the down script, at line 7, column 12: DROP TABLE x;\nmore"
                )
            ),
            ScriptPosition {
                down: true,
                line: Some(7)
            }
        );
        assert_eq!(failed_version(message), Some("20240101"));
        assert_eq!(
            failed_version("migration 1.2 failed (up) in job 4: duplicate key"),
            Some("1.2")
        );
        assert_eq!(failed_version("something else"), None);
        assert_eq!(
            script_position("up_sql of migration 7 contains no SQL statement", None),
            ScriptPosition {
                down: false,
                line: None
            }
        );
    }

    #[test]
    fn file_lines_count_from_where_the_script_starts() {
        let file = MigrationFile {
            version: "1".into(),
            name: None,
            up: String::new(),
            down: Some(String::new()),
            transactional: None,
            repeatable: false,
            requires: vec![],
            up_path: "m/1.sql".into(),
            up_line: 3,
            down_path: Some("m/1.sql".into()),
            down_line: 10,
        };
        let at = |message: &str, detail: Option<&str>| locate(message, detail, &file).to_string();
        assert_eq!(
            at(
                "up script of migration 1 does not parse: x",
                Some("At line 2, column 1: x")
            ),
            "m/1.sql:4"
        );
        assert_eq!(
            at(
                "down script of migration 1 does not parse: x",
                Some("At line 1, column 1: x")
            ),
            "m/1.sql:10"
        );
        assert_eq!(
            at("up_sql of migration 1 contains no SQL statement", None),
            "m/1.sql:3"
        );
    }
}
