//! Migration folders as each tool writes them. A layout reads a folder exactly as its own tool
//! does (versions, names, up and down scripts, non-transactional markers, order) and gives the
//! registry one [`MigrationFile`] per migration; the scripts are passed on byte for byte (the
//! server normalises line endings and a byte-order mark for the checksum, and drops a
//! `BEGIN;`/`COMMIT;` wrapper itself), so `sha256sum` of an LF file is its stored checksum.

use std::fmt;
use std::path::{Path, PathBuf};

pub mod dbmate;
pub mod diesel;
pub mod drizzle;
pub mod flyway;
pub mod golang_migrate;
pub mod plain;
pub mod prisma;
pub mod sqlx;

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

/// The folder layouts `migrate-cli` reads. DIR is always the folder that holds the migrations
/// themselves (diesel's and sqlx's `migrations/`, dbmate's `db/migrations/`, Prisma's
/// `prisma/migrations/`, Drizzle's `out` folder, Flyway's location), not the project root.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Layout {
    /// `VERSION_name.up.sql` / `VERSION_name.down.sql`: the project's own.
    Plain,
    /// `VERSION_name/up.sql`, `down.sql`, `metadata.toml`.
    Diesel,
    /// `N_name.up.sql` / `N_name.down.sql`, N an unsigned integer.
    GolangMigrate,
    /// `V1__name.sql`, `U1__name.sql` (undo), `R__name.sql` (repeatable).
    Flyway,
    /// `VERSION_name.sql`, or `VERSION_name.up.sql` / `.down.sql`; `-- no-transaction`.
    Sqlx,
    /// `VERSION_name.sql` with `-- migrate:up` / `-- migrate:down` sections.
    Dbmate,
    /// `TIMESTAMP_name/migration.sql` next to `migration_lock.toml`.
    Prisma,
    /// `NNNN_name.sql` listed in `meta/_journal.json`.
    Drizzle,
}

impl Layout {
    pub const ALL: &'static [Layout] = &[
        Layout::Plain,
        Layout::Diesel,
        Layout::GolangMigrate,
        Layout::Flyway,
        Layout::Sqlx,
        Layout::Dbmate,
        Layout::Prisma,
        Layout::Drizzle,
    ];

    /// The name used by `--layout`.
    pub fn name(self) -> &'static str {
        match self {
            Layout::Plain => "plain",
            Layout::Diesel => "diesel",
            Layout::GolangMigrate => "golang-migrate",
            Layout::Flyway => "flyway",
            Layout::Sqlx => "sqlx",
            Layout::Dbmate => "dbmate",
            Layout::Prisma => "prisma",
            Layout::Drizzle => "drizzle",
        }
    }

    pub fn from_name(name: &str) -> Option<Layout> {
        Layout::ALL.iter().copied().find(|l| l.name() == name)
    }

    /// True if `dir` looks like this layout's folder (used by [`detect`]). Three layouts name
    /// files alike (`N_name.up.sql`): sqlx wins where it has a feature of its own (a one-file
    /// `N_name.sql` migration or a `-- no-transaction` line), golang-migrate where every
    /// version is the unsigned integer it requires, plain otherwise. The three read such a
    /// folder the same way, so the choice only shows in names and leading zeros.
    fn matches(self, dir: &Path) -> bool {
        match self {
            Layout::Plain => {
                plain::matches(dir) && !golang_migrate::matches(dir) && !sqlx::matches(dir)
            }
            Layout::GolangMigrate => golang_migrate::matches(dir) && !sqlx::matches(dir),
            Layout::Sqlx => sqlx::matches(dir),
            Layout::Diesel => diesel::matches(dir),
            Layout::Flyway => flyway::matches(dir),
            Layout::Dbmate => dbmate::matches(dir),
            Layout::Prisma => prisma::matches(dir),
            Layout::Drizzle => drizzle::matches(dir),
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
        Layout::Diesel => diesel::load(dir),
        Layout::GolangMigrate => golang_migrate::load(dir),
        Layout::Flyway => flyway::load(dir),
        Layout::Sqlx => sqlx::load(dir),
        Layout::Dbmate => dbmate::load(dir),
        Layout::Prisma => prisma::load(dir),
        Layout::Drizzle => drizzle::load(dir),
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

/// Names of the regular files (`files: true`) or folders in `dir`, sorted bytewise.
pub(crate) fn names(dir: &Path, files: bool) -> Result<Vec<String>, LayoutError> {
    let read_dir = std::fs::read_dir(dir).map_err(|e| LayoutError::Io(dir.to_path_buf(), e))?;
    let mut out = Vec::new();
    for entry in read_dir {
        let entry = entry.map_err(|e| LayoutError::Io(dir.to_path_buf(), e))?;
        // Follows symlinks, as the tools' own directory walks do.
        let Ok(meta) = std::fs::metadata(entry.path()) else {
            continue;
        };
        if (files && meta.is_file()) || (!files && meta.is_dir()) {
            if let Some(name) = entry.file_name().to_str() {
                out.push(name.to_string());
            }
        }
    }
    out.sort();
    Ok(out)
}

/// The 1-based line of `text` that byte `offset` is on.
pub(crate) fn line_at(text: &str, offset: usize) -> usize {
    text.as_bytes()[..offset]
        .iter()
        .filter(|&&b| b == b'\n')
        .count()
        + 1
}

/// Checks what the registry will require of `migrations`, given in the order the tool runs
/// them: every version acceptable, no two equal, and the tool's order the registry's natural
/// version order (the registry applies by version, so a tool that sorts by text, e.g. `9_` before
/// `10_` for dbmate, would otherwise be replayed in another order). Repeatable migrations run
/// after all others by name, so only their versions are checked.
pub(crate) fn check_versions(tool: &str, migrations: &[MigrationFile]) -> Result<(), LayoutError> {
    use migrate_core::version;
    use std::cmp::Ordering;
    for m in migrations {
        if let Err(problem) = version::check(&m.version) {
            let why = match problem {
                version::VersionProblem::Empty => "it is empty".to_string(),
                version::VersionProblem::TooLong => {
                    format!("it is longer than {} bytes", version::MAX_VERSION_LEN)
                }
                version::VersionProblem::BadCharacter(c) => format!("it contains {c:?}"),
                version::VersionProblem::NoLetterOrDigit => "it has no letter or digit".into(),
            };
            return Err(LayoutError::Invalid(
                m.up_path.clone(),
                0,
                format!("version {:?} cannot be registered: {why}", m.version),
            ));
        }
    }
    // Equal versions share a sort key (`001` and `1`): one hash look-up each.
    let mut seen: std::collections::HashMap<Vec<u8>, &MigrationFile> = Default::default();
    for m in migrations {
        if let Some(other) = seen.insert(version::sort_key(&m.version), m) {
            return Err(LayoutError::Invalid(
                m.up_path.clone(),
                0,
                format!(
                    "version {} is the same registry version as {} ({})",
                    m.version,
                    other.version,
                    other.up_path.display()
                ),
            ));
        }
    }
    let ordered: Vec<&MigrationFile> = migrations.iter().filter(|m| !m.repeatable).collect();
    for pair in ordered.windows(2) {
        if version::compare(&pair[0].version, &pair[1].version) != Ordering::Less {
            return Err(LayoutError::Invalid(
                pair[1].up_path.clone(),
                0,
                format!(
                    "{tool} runs version {} after {}, but the registry orders versions \
                     naturally and would run it first; rename one so both orders agree",
                    pair[1].version, pair[0].version
                ),
            ));
        }
    }
    Ok(())
}

/// Small throw-away folders for the layouts' unit tests (std only).
#[cfg(test)]
pub(crate) mod testdir {
    use std::path::{Path, PathBuf};
    use std::sync::atomic::{AtomicUsize, Ordering};

    pub struct TestDir(PathBuf);

    impl TestDir {
        /// A new empty folder with `files` (path relative to it, contents) written in it.
        pub fn new(files: &[(&str, &str)]) -> TestDir {
            static NEXT: AtomicUsize = AtomicUsize::new(0);
            let path = std::env::temp_dir().join(format!(
                "migrate-cli-layout-{}-{}",
                std::process::id(),
                NEXT.fetch_add(1, Ordering::Relaxed)
            ));
            let _ = std::fs::remove_dir_all(&path);
            std::fs::create_dir_all(&path).unwrap();
            let dir = TestDir(path);
            for (name, text) in files {
                dir.write(name, text);
            }
            dir
        }

        pub fn write(&self, name: &str, text: &str) {
            let path = self.0.join(name);
            std::fs::create_dir_all(path.parent().unwrap()).unwrap();
            std::fs::write(path, text).unwrap();
        }

        pub fn path(&self) -> &Path {
            &self.0
        }
    }

    impl Drop for TestDir {
        fn drop(&mut self) {
            let _ = std::fs::remove_dir_all(&self.0);
        }
    }
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
