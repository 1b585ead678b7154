//! Migration folders as each tool writes them. A layout reads a folder exactly as its own tool
//! does (versions, names, up and down scripts, non-transactional markers, order) and gives the
//! registry one [`MigrationFile`] per migration; the scripts are passed on byte for byte (the
//! server normalises line endings and a byte-order mark for the checksum, and drops a
//! `BEGIN;`/`COMMIT;` wrapper itself), so `sha256sum` of an LF file is its stored checksum.

use std::fmt;
use std::path::{Path, PathBuf};

pub mod plain;

/// One migration of a folder.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MigrationFile {
    /// The registry version (the tool's own version string, e.g. `20240101120000`, `1.1`).
    pub version: String,
    pub name: Option<String>,
    /// The up script exactly as in the file (for one-file layouts, the up section).
    pub up: String,
    pub down: Option<String>,
    /// `Some(false)` when the layout's own marker says "not in a transaction" (diesel's
    /// `run_in_transaction = false`, dbmate's `transaction:false`, sqlx's `-- no-transaction`);
    /// None leaves it to the script's `-- migrate:no-transaction` line and the server's
    /// detection of statements that cannot run in a transaction.
    pub transactional: Option<bool>,
    /// Re-run whenever its checksum changes (Flyway's `R__` files).
    pub repeatable: bool,
    /// Versions that must be applied first, beyond version order (graph-ordered tools).
    pub requires: Vec<String>,
    /// Where the up script came from, and the 1-based line of the file where it starts (so a
    /// server error at script line L is file line `up_line + L - 1`).
    pub up_path: PathBuf,
    pub up_line: usize,
    pub down_path: Option<PathBuf>,
    pub down_line: usize,
}

impl MigrationFile {
    /// The `options` argument of `migrate.add()` for this migration.
    pub fn options(&self) -> serde_json::Value {
        let mut options = serde_json::Map::new();
        if let Some(transactional) = self.transactional {
            options.insert("transaction".into(), transactional.into());
        }
        if self.repeatable {
            options.insert("repeatable".into(), true.into());
        }
        if !self.requires.is_empty() {
            options.insert("requires".into(), self.requires.clone().into());
        }
        serde_json::Value::Object(options)
    }
}

/// The folder layouts `migrate-cli` reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Layout {
    /// `VERSION_name.up.sql` / `VERSION_name.down.sql`: the project's own.
    Plain,
}

impl Layout {
    pub const ALL: &'static [Layout] = &[Layout::Plain];

    /// The name used by `--layout`.
    pub fn name(self) -> &'static str {
        match self {
            Layout::Plain => "plain",
        }
    }

    pub fn from_name(name: &str) -> Option<Layout> {
        Layout::ALL.iter().copied().find(|l| l.name() == name)
    }

    /// True if `dir` looks like this layout's folder (used by [`detect`]).
    fn matches(self, dir: &Path) -> bool {
        match self {
            Layout::Plain => plain::matches(dir),
        }
    }
}

impl fmt::Display for Layout {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// Why a folder could not be read.
#[derive(Debug)]
pub enum LayoutError {
    Io(PathBuf, std::io::Error),
    /// A file the layout cannot make sense of: path, 1-based line (0: the whole file), why.
    Invalid(PathBuf, usize, String),
    /// No layout matches the folder, or several do.
    Unknown(PathBuf, String),
    /// What `migrate-cli` cannot do yet for this layout (e.g. `new`).
    Unsupported(Layout, &'static str),
}

impl fmt::Display for LayoutError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            LayoutError::Io(path, e) => write!(f, "{}: {e}", path.display()),
            LayoutError::Invalid(path, 0, why) => write!(f, "{}: {why}", path.display()),
            LayoutError::Invalid(path, line, why) => write!(f, "{}:{line}: {why}", path.display()),
            LayoutError::Unknown(path, why) => write!(f, "{}: {why}", path.display()),
            LayoutError::Unsupported(layout, what) => {
                write!(f, "{what} is not supported yet for {layout}")
            }
        }
    }
}

impl std::error::Error for LayoutError {}

/// The layout of `dir`: the one layout whose files it has.
pub fn detect(dir: &Path) -> Result<Layout, LayoutError> {
    let found: Vec<Layout> = Layout::ALL
        .iter()
        .copied()
        .filter(|l| l.matches(dir))
        .collect();
    match found.as_slice() {
        [one] => Ok(*one),
        [] => Err(LayoutError::Unknown(
            dir.to_path_buf(),
            "no known migration layout here; pass --layout".into(),
        )),
        many => Err(LayoutError::Unknown(
            dir.to_path_buf(),
            format!(
                "looks like several layouts ({}); pass --layout",
                many.iter().map(|l| l.name()).collect::<Vec<_>>().join(", ")
            ),
        )),
    }
}

/// Every migration of `dir` in the order its tool applies them.
pub fn load(dir: &Path, layout: Layout) -> Result<Vec<MigrationFile>, LayoutError> {
    match layout {
        Layout::Plain => plain::load(dir),
    }
}

/// Creates the files of a new migration named `name` in `dir` (created if missing), in the
/// layout's own naming, with the next version of the folder; returns the files' paths.
pub fn scaffold(dir: &Path, layout: Layout, name: &str) -> Result<Vec<PathBuf>, LayoutError> {
    let now = utc_timestamp(std::time::SystemTime::now());
    // Layouts without a scaffold yet fall through to the error.
    #[allow(unreachable_patterns)]
    match layout {
        Layout::Plain => plain::scaffold(dir, name, &now),
        other => Err(LayoutError::Unsupported(other, "new")),
    }
}

/// `YYYYMMDDHHMMSS` in UTC, the timestamp version most tools use.
pub fn utc_timestamp(at: std::time::SystemTime) -> String {
    let secs = at
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    let (days, rest) = (secs / 86_400, secs % 86_400);
    // Days since 1970-01-01 to a civil date (Howard Hinnant's algorithm).
    let z = days as i64 + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!(
        "{year:04}{month:02}{day:02}{:02}{:02}{:02}",
        rest / 3600,
        rest % 3600 / 60,
        rest % 60
    )
}

/// A migration name as file names carry it: lower case, words joined by `_`.
pub fn file_name_part(name: &str) -> Result<String, String> {
    let words: Vec<String> = name
        .split(|c: char| !c.is_ascii_alphanumeric())
        .filter(|w| !w.is_empty())
        .map(str::to_ascii_lowercase)
        .collect();
    if words.is_empty() {
        return Err(format!("the name {name:?} has no letters or digits"));
    }
    Ok(words.join("_"))
}

/// Reads a file as UTF-8 text, exactly (no newline handling).
pub(crate) fn read(path: &Path) -> Result<String, LayoutError> {
    let bytes = std::fs::read(path).map_err(|e| LayoutError::Io(path.to_path_buf(), e))?;
    String::from_utf8(bytes)
        .map_err(|_| LayoutError::Invalid(path.to_path_buf(), 0, "not UTF-8 text".into()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::{Duration, UNIX_EPOCH};

    #[test]
    fn timestamps_are_utc() {
        assert_eq!(utc_timestamp(UNIX_EPOCH), "19700101000000");
        // 2024-02-29 13:45:07 UTC: a leap day.
        let leap = UNIX_EPOCH + Duration::from_secs(1_709_214_307);
        assert_eq!(utc_timestamp(leap), "20240229134507");
        let end = UNIX_EPOCH + Duration::from_secs(4_102_444_799);
        assert_eq!(utc_timestamp(end), "20991231235959");
    }

    #[test]
    fn names_for_files() {
        assert_eq!(
            file_name_part("Add users table").unwrap(),
            "add_users_table"
        );
        assert_eq!(
            file_name_part("  orders.total-cents ").unwrap(),
            "orders_total_cents"
        );
        assert!(file_name_part("--").is_err());
    }

    #[test]
    fn options_use_the_registry_keys() {
        let mut file = MigrationFile {
            version: "1".into(),
            name: None,
            up: "SELECT 1".into(),
            down: None,
            transactional: None,
            repeatable: false,
            requires: vec![],
            up_path: "1.up.sql".into(),
            up_line: 1,
            down_path: None,
            down_line: 1,
        };
        assert_eq!(file.options(), serde_json::json!({}));
        file.transactional = Some(false);
        file.requires = vec!["0".into()];
        assert_eq!(
            file.options(),
            serde_json::json!({"transaction": false, "requires": ["0"]})
        );
    }
}
