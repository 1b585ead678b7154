//! Migration folders as each tool writes them. A layout reads a folder exactly as its own tool
//! does (versions, names, up and down scripts, non-transactional markers, order) and gives the
//! registry one [`MigrationFile`] per migration; the scripts are passed on byte for byte (the
//! server normalises line endings and a byte-order mark for the checksum, and drops a
//! `BEGIN;`/`COMMIT;` wrapper itself), so `sha256sum` of an LF file is its stored checksum.

use std::fmt;
use std::path::{Path, PathBuf};

pub mod alembic;
pub mod dbmate;
pub mod diesel;
pub mod django;
pub mod drizzle;
pub mod flyway;
pub mod golang_migrate;
pub mod plain;
pub mod prisma;
pub mod sqlx;
pub mod statements;

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
    /// An Alembic script directory (`env.py`, `versions/`) with Alembic's offline SQL,
    /// `upgrade.sql` (and `downgrade.sql`).
    Alembic,
    /// What `cli/django/export_migrations.py` writes: `meta.json`, `APP/NAME.up.sql`,
    /// `APP/NAME.down.sql`.
    Django,
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
        Layout::Alembic,
        Layout::Django,
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
            Layout::Alembic => "alembic",
            Layout::Django => "django",
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
            Layout::Alembic => alembic::matches(dir),
            Layout::Django => django::matches(dir),
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
}

impl fmt::Display for LayoutError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            LayoutError::Io(path, e) => write!(f, "{}: {e}", path.display()),
            LayoutError::Invalid(path, 0, why) => write!(f, "{}: {why}", path.display()),
            LayoutError::Invalid(path, line, why) => write!(f, "{}:{line}: {why}", path.display()),
            LayoutError::Unknown(path, why) => write!(f, "{}: {why}", path.display()),
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
        Layout::Alembic => alembic::load(dir),
        Layout::Django => django::load(dir),
    }
}

/// One file that `new` writes: a new file, or (Drizzle's journal) one it rewrites.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewFile {
    pub path: PathBuf,
    pub text: String,
    /// True when the file exists and is rewritten (`meta/_journal.json`).
    pub replaces: bool,
}

impl NewFile {
    pub(crate) fn new(path: PathBuf, text: impl Into<String>) -> NewFile {
        NewFile {
            path,
            text: text.into(),
            replaces: false,
        }
    }
}

/// Creates the files of a new migration named `name` in `dir` (created if missing), in the
/// layout's own naming, with the next version of the folder; returns the files written.
pub fn scaffold(dir: &Path, layout: Layout, name: &str) -> Result<Vec<NewFile>, LayoutError> {
    scaffold_at(dir, layout, name, std::time::SystemTime::now())
}

/// [`scaffold`] at the time `now`. Each layout plans its files (the new migration's up script
/// first); they are written, and the folder is read again: unless the new migration is then
/// the last one its tool runs, the files are taken back and the folder refused.
pub(crate) fn scaffold_at(
    dir: &Path,
    layout: Layout,
    name: &str,
    now: std::time::SystemTime,
) -> Result<Vec<NewFile>, LayoutError> {
    std::fs::create_dir_all(dir).map_err(|e| LayoutError::Io(dir.to_path_buf(), e))?;
    let before = match layout {
        // A folder drizzle-kit has not written to yet has no journal.
        Layout::Drizzle if !drizzle::matches(dir) => Vec::new(),
        _ => load(dir, layout)?,
    };
    let files = match layout {
        Layout::Plain => plain::plan(dir, &before, name, now)?,
        Layout::Diesel => diesel::plan(dir, &before, name, now)?,
        Layout::GolangMigrate => golang_migrate::plan(dir, &before, name, now)?,
        Layout::Flyway => flyway::plan(dir, &before, name, now)?,
        Layout::Sqlx => sqlx::plan(dir, &before, name, now)?,
        Layout::Dbmate => dbmate::plan(dir, &before, name, now)?,
        Layout::Prisma => prisma::plan(dir, &before, name, now)?,
        Layout::Drizzle => drizzle::plan(dir, &before, name, now)?,
        // These tools write their migrations themselves, from the models.
        Layout::Alembic => {
            return Err(LayoutError::Invalid(
                dir.to_path_buf(),
                0,
                "Alembic writes its revisions: `alembic revision -m NAME`, then write \
                 upgrade.sql and downgrade.sql again (docs/CLI.md#alembic)"
                    .into(),
            ))
        }
        Layout::Django => {
            return Err(LayoutError::Invalid(
                dir.to_path_buf(),
                0,
                "Django writes its migrations: `manage.py makemigrations`, then export them \
                 again with cli/django/export_migrations.py (docs/CLI.md#django)"
                    .into(),
            ))
        }
    };
    let mut undo = Undo::default();
    for file in &files {
        if let Err(e) = undo.write(file) {
            undo.run();
            return Err(e);
        }
    }
    let up = &files[0].path;
    let last = load(dir, layout).and_then(|after| {
        let last = after.into_iter().rfind(|m| !m.repeatable);
        match last {
            Some(m) if m.up_path == *up => Ok(()),
            _ => Err(LayoutError::Invalid(
                before
                    .iter()
                    .rfind(|m| !m.repeatable)
                    .map_or_else(|| dir.to_path_buf(), |m| m.up_path.clone()),
                0,
                format!(
                    "{layout} would not run a new migration {} after this one; \
                     rename it or pass another --layout",
                    up.display()
                ),
            )),
        }
    });
    if let Err(e) = last {
        undo.run();
        return Err(e);
    }
    Ok(files)
}

/// What [`scaffold_at`] has written so far, to take back.
#[derive(Default)]
struct Undo {
    created: Vec<PathBuf>,
    folders: Vec<PathBuf>,
    replaced: Vec<(PathBuf, Vec<u8>)>,
}

impl Undo {
    fn write(&mut self, file: &NewFile) -> Result<(), LayoutError> {
        let io = |e| LayoutError::Io(file.path.clone(), e);
        if let Some(parent) = file.path.parent() {
            if !parent.exists() {
                std::fs::create_dir_all(parent).map_err(io)?;
                self.folders.push(parent.to_path_buf());
            }
        }
        if file.replaces {
            let old = std::fs::read(&file.path).map_err(io)?;
            std::fs::write(&file.path, &file.text).map_err(io)?;
            self.replaced.push((file.path.clone(), old));
        } else {
            std::fs::OpenOptions::new()
                .write(true)
                .create_new(true)
                .open(&file.path)
                .and_then(|mut f| std::io::Write::write_all(&mut f, file.text.as_bytes()))
                .map_err(io)?;
            self.created.push(file.path.clone());
        }
        Ok(())
    }

    fn run(self) {
        for (path, old) in self.replaced {
            let _ = std::fs::write(path, old);
        }
        for path in self.created {
            let _ = std::fs::remove_file(path);
        }
        for folder in self.folders.into_iter().rev() {
            let _ = std::fs::remove_dir(folder);
        }
    }
}

/// A UTC timestamp version for a new migration: `now` as `YYYYMMDDHHMMSS`, or the second
/// after `newest` when that is a timestamp not before `now` (a clock behind, or two
/// migrations in one second), so that the new one sorts last.
pub(crate) fn next_timestamp(now: std::time::SystemTime, newest: Option<&str>) -> String {
    let now = utc_timestamp(now);
    match newest.and_then(|v| Some((v, parse_timestamp(v)?))) {
        Some((newest, secs)) if newest >= now.as_str() => {
            utc_timestamp(std::time::UNIX_EPOCH + std::time::Duration::from_secs(secs + 1))
        }
        _ => now,
    }
}

/// Seconds since 1970 of a `YYYYMMDDHHMMSS` UTC timestamp, or None if it is not one.
pub(crate) fn parse_timestamp(text: &str) -> Option<u64> {
    if text.len() != 14 || !text.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let n = |r: std::ops::Range<usize>| text[r].parse::<i64>().ok();
    let (year, month, day) = (n(0..4)?, n(4..6)?, n(6..8)?);
    let (hour, minute, second) = (n(8..10)?, n(10..12)?, n(12..14)?);
    if year < 1970
        || !(1..=12).contains(&month)
        || !(1..=31).contains(&day)
        || hour > 23
        || minute > 59
        || second > 59
    {
        return None;
    }
    // Civil date to days since 1970-01-01 (Howard Hinnant's algorithm).
    let y = if month <= 2 { year - 1 } else { year };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (month + 9) % 12;
    let doy = (153 * mp + 2) / 5 + day - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    let days = era * 146_097 + doe - 719_468;
    let secs = days * 86_400 + hour * 3600 + minute * 60 + second;
    let secs = u64::try_from(secs).ok()?;
    // 20240231 is not a date: it must come back as written.
    let back = utc_timestamp(std::time::UNIX_EPOCH + std::time::Duration::from_secs(secs));
    (back == text).then_some(secs)
}

/// The file name of `path` (for layouts that read names back from [`MigrationFile::up_path`]).
pub(crate) fn file_name(path: &Path) -> &str {
    path.file_name().and_then(|n| n.to_str()).unwrap_or("")
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

/// A migration name as a file name carries it, the case kept: words joined by `_`
/// (Flyway's descriptions, `Add_users`).
pub fn description_part(name: &str) -> Result<String, String> {
    let words: Vec<&str> = name
        .split(|c: char| !c.is_ascii_alphanumeric())
        .filter(|w| !w.is_empty())
        .collect();
    if words.is_empty() {
        return Err(format!("the name {name:?} has no letters or digits"));
    }
    Ok(words.join("_"))
}

/// [`file_name_part`] with the error a layout returns.
pub(crate) fn name_part(dir: &Path, name: &str) -> Result<String, LayoutError> {
    file_name_part(name).map_err(|why| LayoutError::Invalid(dir.to_path_buf(), 0, why))
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
/// them: every version acceptable, no two equal, and the tool's order the registry's order
/// (without requirements: natural version order; the registry applies by version, so a tool
/// that sorts by text, e.g. `9_` before `10_` for dbmate, would otherwise be replayed in
/// another order; with them, requirements first). Repeatable migrations run after all others
/// by name, so only their versions are checked.
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
    if ordered.iter().any(|m| !m.requires.is_empty()) {
        // Graph-ordered tools: the registry's order is the requirements', then versions'.
        let registry: Vec<&MigrationFile> = route_order(migrations)
            .into_iter()
            .map(|i| &migrations[i])
            .filter(|m| !m.repeatable)
            .collect();
        if let Some(k) = (0..ordered.len()).find(|&k| ordered[k].version != registry[k].version) {
            return Err(LayoutError::Invalid(
                registry[k].up_path.clone(),
                0,
                format!(
                    "{tool} runs version {} before {}, but the registry orders by requirements, \
                     then versions, and would run {} first",
                    ordered[k].version, registry[k].version, registry[k].version
                ),
            ));
        }
        return Ok(());
    }
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

/// Indexes of `migrations` in the order the registry runs them (`migrate_core::route`).
fn route_order(migrations: &[MigrationFile]) -> Vec<usize> {
    let entries: Vec<migrate_core::route::Entry> = migrations
        .iter()
        .map(|m| migrate_core::route::Entry {
            version: m.version.clone(),
            applied: false,
            transactional: true,
            reversible: true,
            requires: m.requires.clone(),
            repeatable: m.repeatable,
        })
        .collect();
    migrate_core::route::order(&entries)
}

/// `migrations` in the order the registry runs them: a graph-ordered tool (Alembic, Django)
/// may run independent migrations in either order, the registry in version order.
pub(crate) fn in_registry_order(migrations: Vec<MigrationFile>) -> Vec<MigrationFile> {
    let order = route_order(&migrations);
    let mut slots: Vec<Option<MigrationFile>> = migrations.into_iter().map(Some).collect();
    order.into_iter().filter_map(|i| slots[i].take()).collect()
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

    /// The instant of a `YYYYMMDDHHMMSS` UTC timestamp.
    pub fn at(timestamp: &str) -> std::time::SystemTime {
        let secs = super::parse_timestamp(timestamp).expect("a timestamp");
        std::time::UNIX_EPOCH + std::time::Duration::from_secs(secs)
    }

    /// Scaffolds `name` into `dir` at `timestamp`, then loads the folder: the new migration
    /// must be its last (versioned) one.
    pub fn scaffold(
        dir: &TestDir,
        layout: super::Layout,
        name: &str,
        timestamp: &str,
    ) -> (Vec<super::NewFile>, Vec<super::MigrationFile>) {
        let files = super::scaffold_at(dir.path(), layout, name, at(timestamp))
            .unwrap_or_else(|e| panic!("{layout}: {e}"));
        for file in &files {
            assert_eq!(std::fs::read_to_string(&file.path).unwrap(), file.text);
        }
        let loaded: Vec<_> = super::load(dir.path(), layout)
            .unwrap()
            .into_iter()
            .filter(|m| !m.repeatable)
            .collect();
        assert_eq!(loaded.last().unwrap().up_path, files[0].path);
        (files, loaded)
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
        assert_eq!(parse_timestamp("20240229134507"), Some(1_709_214_307));
        assert_eq!(parse_timestamp("19700101000000"), Some(0));
        assert_eq!(parse_timestamp("20230229000000"), None, "not a leap year");
        assert_eq!(parse_timestamp("2024022913450"), None);
        assert_eq!(parse_timestamp("20240101240000"), None);
    }

    #[test]
    fn next_timestamps_sort_last() {
        let now = UNIX_EPOCH + Duration::from_secs(1_709_214_307);
        assert_eq!(next_timestamp(now, None), "20240229134507");
        assert_eq!(
            next_timestamp(now, Some("20240101000000")),
            "20240229134507"
        );
        assert_eq!(
            next_timestamp(now, Some("20240229134507")),
            "20240229134508"
        );
        assert_eq!(
            next_timestamp(now, Some("20240229235959")),
            "20240301000000"
        );
        assert_eq!(next_timestamp(now, Some("0042")), "20240229134507");
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
        assert_eq!(
            description_part("Add users.Email").unwrap(),
            "Add_users_Email"
        );
        assert!(description_part(" ").is_err());
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
