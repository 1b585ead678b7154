//! Adopting a database that another migration tool migrated: what the tool's own bookkeeping
//! table says about each registered migration, and what `migrate.adopt()` makes of it.
//!
//! The extension reads the tool's table as data only (versions, times, checksums: [`Rows`]) and
//! the registry ([`Registered`]); [`assess`] decides, migration by migration, whether the tool
//! applied it, and whether `adopt()` marks it applied ([`Outcome::Adopted`]), finds it applied
//! already, leaves it pending, or refuses ([`Outcome::Mismatch`]: the tool applied something the
//! folder lacks, a checksum differs, the tool left a failed migration behind, or the registry
//! already disagrees). [`drift`] turns the same assessment into `validate()`'s problems for a
//! database adopted earlier.
//!
//! How each tool records what it applied (from the tools' own sources):
//! - diesel: a row per migration in `__diesel_schema_migrations(version, run_on)`; its version
//!   is the folder's prefix without `-` (the registry keeps diesel 2.3's counter apart after a
//!   `-`, so the registry version without `-` is diesel's);
//! - golang-migrate: one row in `schema_migrations(version bigint, dirty boolean)`: every
//!   version up to it is applied; `dirty` means a migration failed half-way;
//! - Flyway: `flyway_schema_history`, one row per run: successful `SQL`/`JDBC` rows apply a
//!   version, `UNDO_SQL` rows take it back (the latest row of a version decides), failed rows
//!   apply nothing, a `BASELINE` row stands for every version up to it, repeatable rows
//!   (`version IS NULL`) are matched by description and count as applied only if their checksum
//!   (Flyway's CRC-32) is the file's;
//! - sqlx: a row per migration in `_sqlx_migrations` with the SHA-384 of the file, compared;
//!   `success = false` is a migration sqlx left half-applied;
//! - dbmate: a row per version in `schema_migrations(version varchar)`;
//! - Prisma: rows in `_prisma_migrations` by folder name: applied when one is finished and not
//!   rolled back (checksum: SHA-256 of `migration.sql`, compared with either line ending, as
//!   Prisma compares); an unfinished row that is not rolled back is a failed migration;
//! - Drizzle: `drizzle.__drizzle_migrations(hash, created_at)`: `created_at` is the journal's
//!   `when` (the registry version), `hash` the SHA-256 of the file, compared;
//! - Alembic: `alembic_version(version_num)` holds the heads; every ancestor of a head through
//!   the registered `requires` is applied;
//! - Django: a row per migration in `django_migrations(app, name, applied)`; the version is
//!   `app.name`. Rows of apps the folder has no migration of (Django's own `auth`,
//!   `contenttypes`, ...) are not the folder's: they are shown as `ignored`.

use std::cmp::Ordering;
use std::collections::{BTreeMap, BTreeSet};

use sha2::{Digest, Sha256, Sha384};

use crate::version;

/// A tool whose bookkeeping table `adopt()` reads: the tools of [`crate::tools::Tool`] that
/// have one migrate can read (not Rails), so adopt code never meets a tool it cannot adopt.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Tool {
    Diesel,
    GolangMigrate,
    Flyway,
    Sqlx,
    Dbmate,
    Prisma,
    Drizzle,
    Alembic,
    Django,
}

/// A column the tool's table must have to be read: its name and the built-in types (names in
/// `pg_catalog`) it may have.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Column {
    pub name: &'static str,
    pub types: &'static [&'static str],
}

const TEXT: &[&str] = &["varchar", "text", "bpchar"];
const TIME: &[&str] = &["timestamptz", "timestamp"];

const fn col(name: &'static str, types: &'static [&'static str]) -> Column {
    Column { name, types }
}

impl Tool {
    pub const ALL: &'static [Tool] = &[
        Tool::Diesel,
        Tool::GolangMigrate,
        Tool::Flyway,
        Tool::Sqlx,
        Tool::Dbmate,
        Tool::Prisma,
        Tool::Drizzle,
        Tool::Alembic,
        Tool::Django,
    ];

    /// The tool in general (hint wording, `migrate.tool`): the same names.
    pub fn general(self) -> crate::tools::Tool {
        use crate::tools::Tool as General;
        match self {
            Tool::Diesel => General::Diesel,
            Tool::GolangMigrate => General::GolangMigrate,
            Tool::Flyway => General::Flyway,
            Tool::Sqlx => General::Sqlx,
            Tool::Dbmate => General::Dbmate,
            Tool::Prisma => General::Prisma,
            Tool::Drizzle => General::Drizzle,
            Tool::Alembic => General::Alembic,
            Tool::Django => General::Django,
        }
    }

    /// The name `adopt()` and `migrate-cli adopt --from` take (the layout's name too).
    pub fn name(self) -> &'static str {
        self.general().name()
    }

    /// How the tool is written in messages.
    pub fn display(self) -> &'static str {
        self.general().title()
    }

    pub fn from_name(name: &str) -> Option<Tool> {
        Tool::ALL.iter().copied().find(|t| t.name() == name)
    }

    /// Where the tool keeps its table unless configured otherwise: a schema (None: the first
    /// schema of the search_path that has it, as the tool resolves the unqualified name) and
    /// the table's name.
    pub fn default_table(self) -> (Option<&'static str>, &'static str) {
        match self {
            Tool::Diesel => (None, "__diesel_schema_migrations"),
            Tool::GolangMigrate | Tool::Dbmate => (None, "schema_migrations"),
            Tool::Flyway => (None, "flyway_schema_history"),
            Tool::Sqlx => (None, "_sqlx_migrations"),
            Tool::Prisma => (None, "_prisma_migrations"),
            Tool::Drizzle => (Some("drizzle"), "__drizzle_migrations"),
            Tool::Alembic => (None, "alembic_version"),
            Tool::Django => (None, "django_migrations"),
        }
    }

    /// The columns `adopt()` reads, with the types the tool creates them with (and the ones a
    /// hand-made or older table may have).
    pub fn columns(self) -> &'static [Column] {
        const DIESEL: &[Column] = &[col("version", TEXT), col("run_on", TIME)];
        const GOLANG: &[Column] = &[col("version", &["int8", "int4"]), col("dirty", &["bool"])];
        const FLYWAY: &[Column] = &[
            col("installed_rank", &["int4", "int8"]),
            col("version", TEXT),
            col("description", TEXT),
            col("type", TEXT),
            col("script", TEXT),
            col("checksum", &["int4"]),
            col("installed_on", TIME),
            col("execution_time", &["int4", "int8"]),
            col("success", &["bool"]),
        ];
        const SQLX: &[Column] = &[
            col("version", &["int8"]),
            col("description", TEXT),
            col("installed_on", TIME),
            col("success", &["bool"]),
            col("checksum", &["bytea"]),
            col("execution_time", &["int8"]),
        ];
        const DBMATE: &[Column] = &[col("version", TEXT)];
        const PRISMA: &[Column] = &[
            col("checksum", TEXT),
            col("finished_at", TIME),
            col("migration_name", TEXT),
            col("rolled_back_at", TIME),
            col("started_at", TIME),
        ];
        const DRIZZLE: &[Column] = &[
            col("id", &["int4", "int8"]),
            col("hash", TEXT),
            col("created_at", &["int8", "int4"]),
        ];
        const ALEMBIC: &[Column] = &[col("version_num", TEXT)];
        const DJANGO: &[Column] = &[col("app", TEXT), col("name", TEXT), col("applied", TIME)];
        match self {
            Tool::Diesel => DIESEL,
            Tool::GolangMigrate => GOLANG,
            Tool::Flyway => FLYWAY,
            Tool::Sqlx => SQLX,
            Tool::Dbmate => DBMATE,
            Tool::Prisma => PRISMA,
            Tool::Drizzle => DRIZZLE,
            Tool::Alembic => ALEMBIC,
            Tool::Django => DJANGO,
        }
    }

    /// Why a table with `columns` (name, type name in `pg_catalog`, or None for another type)
    /// is not this tool's, or None if `adopt()` can read it.
    pub fn shape_problem(
        self,
        table: &str,
        columns: &[(String, Option<String>)],
    ) -> Option<String> {
        for want in self.columns() {
            let found = columns.iter().find(|(name, _)| name == want.name);
            let problem = match found {
                None => format!("it has no column {}", want.name),
                Some((_, Some(t))) if want.types.contains(&t.as_str()) => continue,
                Some((_, t)) => format!(
                    "its column {} is {}, not {}",
                    want.name,
                    t.as_deref().unwrap_or("of a type outside pg_catalog"),
                    want.types.join(" or ")
                ),
            };
            let twin = match self {
                Tool::Dbmate if columns.iter().any(|(n, _)| n == "dirty") => {
                    " (it looks like golang-migrate's: version bigint and dirty boolean)"
                }
                Tool::GolangMigrate if !columns.iter().any(|(n, _)| n == "dirty") => {
                    " (it looks like dbmate's: version text without dirty)"
                }
                _ => "",
            };
            return Some(format!(
                "{table} is not {}'s table: {problem}{twin}",
                self.display()
            ));
        }
        None
    }

    /// What to do about a mismatch, in the tool's own terms.
    pub fn mismatch_hint(self) -> &'static str {
        match self {
            Tool::GolangMigrate => "Make the folder hold exactly what golang-migrate applied; for a dirty version, repair the schema by hand and run `migrate force VERSION` first. SELECT * FROM migrate.adopt('golang-migrate', dry_run => true) lists every difference.",
            Tool::Sqlx => "Restore the files sqlx applied (its checksum is the SHA-384 of each file), or fix a failed migration and delete its row (success = false) as sqlx asks; then adopt again. SELECT * FROM migrate.adopt('sqlx', dry_run => true) lists every difference.",
            Tool::Prisma => "Restore the migration folders Prisma applied, or settle a failed one with `prisma migrate resolve --applied NAME` or `--rolled-back NAME` first. SELECT * FROM migrate.adopt('prisma', dry_run => true) lists every difference.",
            Tool::Drizzle => "Restore the files and journal entries Drizzle applied (its hash is the SHA-256 of each file, its created_at the journal's when). SELECT * FROM migrate.adopt('drizzle', dry_run => true) lists every difference.",
            Tool::Flyway => "Restore the scripts Flyway applied (its checksum is a CRC-32 of each script's lines), or run `flyway repair` if the history is what is wrong. SELECT * FROM migrate.adopt('flyway', dry_run => true) lists every difference.",
            Tool::Diesel => "Restore the migration folders diesel applied, then adopt again. SELECT * FROM migrate.adopt('diesel', dry_run => true) lists every difference.",
            Tool::Dbmate => "Restore the migration files dbmate applied, then adopt again. SELECT * FROM migrate.adopt('dbmate', dry_run => true) lists every difference.",
            Tool::Alembic => "Load every revision up to Alembic's heads (with their down_revision as requires), then adopt again. SELECT * FROM migrate.adopt('alembic', dry_run => true) lists every difference.",
            Tool::Django => "Load every migration Django applied in the folder's apps (with their dependencies as requires), then adopt again. SELECT * FROM migrate.adopt('django', dry_run => true) lists every difference.",
        }
    }

    /// Tools that order migrations by a dependency graph rather than by version.
    fn is_graph(self) -> bool {
        matches!(self, Tool::Alembic | Tool::Django)
    }
}

/// One row of a tool table that lists versions (diesel, dbmate).
#[derive(Debug, Clone)]
pub struct VersionRow<T> {
    pub version: String,
    pub at: Option<T>,
}

/// golang-migrate's one row.
#[derive(Debug, Clone)]
pub struct GolangRow {
    pub version: i64,
    pub dirty: bool,
}

/// One row of `flyway_schema_history`.
#[derive(Debug, Clone)]
pub struct FlywayRow<T> {
    pub rank: i64,
    pub version: Option<String>,
    pub description: String,
    pub kind: String,
    pub script: String,
    pub checksum: Option<i32>,
    pub at: Option<T>,
    pub duration_ms: Option<f64>,
    pub success: bool,
}

/// One row of `_sqlx_migrations`.
#[derive(Debug, Clone)]
pub struct SqlxRow<T> {
    pub version: i64,
    pub description: String,
    pub success: bool,
    pub checksum: Vec<u8>,
    pub at: Option<T>,
    pub duration_ms: Option<f64>,
}

/// One row of `_prisma_migrations`.
#[derive(Debug, Clone)]
pub struct PrismaRow<T> {
    pub migration_name: String,
    pub checksum: String,
    pub finished_at: Option<T>,
    pub rolled_back: bool,
    pub duration_ms: Option<f64>,
}

/// One row of `drizzle.__drizzle_migrations`.
#[derive(Debug, Clone)]
pub struct DrizzleRow {
    pub id: i64,
    pub hash: String,
    /// Nullable in Drizzle's table (Drizzle itself always writes it).
    pub created_at: Option<i64>,
}

/// One row of `django_migrations`.
#[derive(Debug, Clone)]
pub struct DjangoRow<T> {
    pub app: String,
    pub name: String,
    pub at: Option<T>,
}

/// What the tool's table holds, per tool. `T` is the server's timestamp type.
#[derive(Debug, Clone)]
pub enum Rows<T> {
    Diesel(Vec<VersionRow<T>>),
    GolangMigrate(Vec<GolangRow>),
    Flyway(Vec<FlywayRow<T>>),
    Sqlx(Vec<SqlxRow<T>>),
    Dbmate(Vec<VersionRow<T>>),
    Prisma(Vec<PrismaRow<T>>),
    Drizzle(Vec<DrizzleRow>),
    /// The heads.
    Alembic(Vec<String>),
    Django(Vec<DjangoRow<T>>),
}

/// A registered migration's state, as far as adopting cares.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum State {
    Pending,
    /// `applied`: migrate ran it (or `resolve()` said so).
    Ran,
    /// `baselined`: marked applied without running it (`baseline()`, or an earlier `adopt()`).
    Marked,
}

/// A registered migration.
#[derive(Debug, Clone)]
pub struct Registered<'a> {
    pub version: &'a str,
    pub name: Option<&'a str>,
    /// The up script as stored (the file's text, without a leading byte-order mark).
    pub script: &'a str,
    pub requires: &'a [String],
    pub state: State,
    pub repeatable: bool,
}

/// What the tool's table says about a migration.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Says {
    Applied,
    NotApplied,
    /// Flyway's failed run, sqlx's `success = false`, Prisma's unfinished row.
    Failed,
    /// Prisma: rolled back with `prisma migrate resolve --rolled-back`.
    RolledBack,
    /// golang-migrate: `dirty`.
    Dirty,
    /// Flyway: its latest row is an undo.
    Undone,
    /// Flyway: a repeatable migration whose file changed since Flyway last ran it.
    Outdated,
}

impl Says {
    pub fn as_str(self) -> &'static str {
        match self {
            Says::Applied => "applied",
            Says::NotApplied => "not_applied",
            Says::Failed => "failed",
            Says::RolledBack => "rolled_back",
            Says::Dirty => "dirty",
            Says::Undone => "undone",
            Says::Outdated => "outdated",
        }
    }
}

/// What `adopt()` does (or, with `dry_run`, would do) with a migration.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// Marked applied without running: the tool applied it.
    Adopted,
    /// Applied in the registry already.
    AlreadyApplied,
    /// The tool has not applied it: it stays pending, and `deploy()` runs it.
    Pending,
    /// The tool and the registry or the folder disagree: `adopt()` refuses.
    Mismatch,
    /// A row of the tool's table about something the folder does not manage (Django apps).
    Ignored,
}

impl Outcome {
    pub fn as_str(self) -> &'static str {
        match self {
            Outcome::Adopted => "adopted",
            Outcome::AlreadyApplied => "already_applied",
            Outcome::Pending => "pending",
            Outcome::Mismatch => "mismatch",
            Outcome::Ignored => "ignored",
        }
    }
}

/// One row of `adopt()`'s answer.
#[derive(Debug, Clone)]
pub struct Row<T> {
    pub version: String,
    pub name: Option<String>,
    /// The registered migration (index into the `registered` slice), or None for a row only
    /// the tool has.
    pub index: Option<usize>,
    pub says: Says,
    pub outcome: Outcome,
    /// When the tool applied it, if its table says.
    pub at: Option<T>,
    /// How long the tool took, if its table says (milliseconds).
    pub duration_ms: Option<f64>,
    pub detail: Option<String>,
}

/// What the tool's rows say about one registered migration.
#[derive(Debug, Clone)]
struct Claim<T> {
    says: Says,
    at: Option<T>,
    duration_ms: Option<f64>,
    /// A reason to refuse.
    problem: Option<String>,
    note: Option<String>,
}

impl<T> Default for Claim<T> {
    fn default() -> Self {
        Claim {
            says: Says::NotApplied,
            at: None,
            duration_ms: None,
            problem: None,
            note: None,
        }
    }
}

impl<T> Claim<T> {
    fn applied(at: Option<T>, duration_ms: Option<f64>) -> Self {
        Claim {
            says: Says::Applied,
            at,
            duration_ms,
            ..Claim::default()
        }
    }

    fn says(says: Says, note: impl Into<String>) -> Self {
        Claim {
            says,
            note: Some(note.into()),
            ..Claim::default()
        }
    }
}

/// The registered, non-repeatable migration with version `v`: the same text, else the same
/// version in another spelling (`0001` is `1`).
fn find(registered: &[Registered<'_>], v: &str) -> Option<usize> {
    registered
        .iter()
        .position(|r| !r.repeatable && r.version == v)
        .or_else(|| {
            registered
                .iter()
                .position(|r| !r.repeatable && version::compare(r.version, v).is_eq())
        })
}

fn tool_only<T>(version: String, at: Option<T>, detail: String) -> Row<T> {
    Row {
        version,
        name: None,
        index: None,
        says: Says::Applied,
        outcome: Outcome::Mismatch,
        at,
        duration_ms: None,
        detail: Some(detail),
    }
}

fn lacks(tool: Tool) -> String {
    format!(
        "{} applied it, but the folder has no migration with this version",
        tool.display()
    )
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// Lower-case hex SHA-256 of the exact text (Prisma's and Drizzle's checksum).
pub fn sha256_hex(text: &str) -> String {
    hex(&Sha256::digest(text.as_bytes()))
}

/// sqlx's checksum of a migration: SHA-384 of the file's text.
pub fn sqlx_checksum(text: &str) -> Vec<u8> {
    Sha384::digest(text.as_bytes()).to_vec()
}

/// Flyway's checksum of a script: CRC-32 of its lines without their line terminators (Java's
/// `readLine()` splits at `\n`, `\r\n` and `\r`), a leading byte-order mark removed, as a
/// signed 32-bit integer (`flyway_schema_history.checksum`).
pub fn flyway_checksum(text: &str) -> i32 {
    let text = text.strip_prefix('\u{feff}').unwrap_or(text);
    let mut crc = !0u32;
    for &b in text
        .as_bytes()
        .iter()
        .filter(|&&b| b != b'\r' && b != b'\n')
    {
        crc = CRC_TABLE[((crc ^ u32::from(b)) & 0xff) as usize] ^ (crc >> 8);
    }
    (!crc) as i32
}

/// The CRC-32 (IEEE 802.3, reflected, polynomial 0xEDB88320) lookup table.
const CRC_TABLE: [u32; 256] = {
    let mut table = [0u32; 256];
    let mut i = 0;
    while i < 256 {
        let mut c = i as u32;
        let mut k = 0;
        while k < 8 {
            c = if c & 1 != 0 {
                0xEDB8_8320 ^ (c >> 1)
            } else {
                c >> 1
            };
            k += 1;
        }
        table[i] = c;
        i += 1;
    }
    table
};

/// The stored script and the file it may have come from with a byte-order mark (the registry
/// strips one; the tools hash the file as read).
fn file_texts(script: &str) -> [String; 2] {
    [script.to_string(), format!("\u{feff}{script}")]
}

/// A Flyway version's numeric parts as Flyway compares them (leading zeros and trailing zero
/// parts do not count), or None if it is not a Flyway version.
fn flyway_parts(v: &str) -> Option<Vec<String>> {
    let mut parts: Vec<String> = v
        .split(['.', '_'])
        .map(|p| {
            (!p.is_empty() && p.bytes().all(|b| b.is_ascii_digit())).then(|| {
                let t = p.trim_start_matches('0');
                if t.is_empty() { "0" } else { t }.to_string()
            })
        })
        .collect::<Option<_>>()?;
    while parts.len() > 1 && parts.last().is_some_and(|p| p == "0") {
        parts.pop();
    }
    Some(parts)
}

fn compare_flyway(a: &str, b: &str) -> Ordering {
    match (flyway_parts(a), flyway_parts(b)) {
        (Some(x), Some(y)) => {
            for i in 0..x.len().max(y.len()) {
                let p = x.get(i).map_or("0", String::as_str);
                let q = y.get(i).map_or("0", String::as_str);
                let ord = p.len().cmp(&q.len()).then_with(|| p.cmp(q));
                if ord != Ordering::Equal {
                    return ord;
                }
            }
            Ordering::Equal
        }
        _ => version::compare(a, b),
    }
}

/// What the tool's rows say about each registered migration, and the rows about migrations
/// the registry does not have.
fn claims<T: Clone>(
    tool: Tool,
    registered: &[Registered<'_>],
    rows: &Rows<T>,
) -> (Vec<Claim<T>>, Vec<Row<T>>) {
    let mut claims: Vec<Claim<T>> = registered.iter().map(|_| Claim::default()).collect();
    let mut extra = Vec::new();
    match rows {
        Rows::Diesel(rows) | Rows::Dbmate(rows) => {
            for row in rows {
                let found = if tool == Tool::Diesel {
                    // diesel's version is the registry's without the `-` before 2.3's counter.
                    registered
                        .iter()
                        .position(|r| !r.repeatable && r.version.replace('-', "") == row.version)
                } else {
                    find(registered, &row.version)
                };
                match found {
                    Some(i) => claims[i] = Claim::applied(row.at.clone(), None),
                    None => extra.push(tool_only(row.version.clone(), row.at.clone(), lacks(tool))),
                }
            }
        }
        Rows::GolangMigrate(rows) => golang(registered, rows, &mut claims, &mut extra),
        Rows::Flyway(rows) => flyway(registered, rows, &mut claims, &mut extra),
        Rows::Sqlx(rows) => {
            for row in rows {
                let v = row.version.to_string();
                let Some(i) = find(registered, &v) else {
                    extra.push(tool_only(v, row.at.clone(), lacks(tool)));
                    continue;
                };
                let mut claim = Claim::applied(row.at.clone(), row.duration_ms);
                if !row.success {
                    claim.says = Says::Failed;
                    claim.problem = Some(
                        "sqlx recorded it as failed (success = false): it may be partly applied"
                            .into(),
                    );
                } else if !file_texts(registered[i].script)
                    .iter()
                    .any(|t| sqlx_checksum(t) == row.checksum)
                {
                    claim.problem = Some(format!(
                        "sqlx applied a different file: its checksum (SHA-384) is {}, the registered script's {}",
                        hex(&row.checksum),
                        hex(&sqlx_checksum(registered[i].script))
                    ));
                }
                claims[i] = claim;
            }
        }
        Rows::Prisma(rows) => prisma(registered, rows, &mut claims, &mut extra),
        Rows::Drizzle(rows) => drizzle(registered, rows, &mut claims, &mut extra),
        Rows::Alembic(heads) => alembic(registered, heads, &mut claims, &mut extra),
        Rows::Django(rows) => {
            let apps: BTreeSet<&str> = registered
                .iter()
                .filter_map(|r| r.version.split_once('.').map(|(app, _)| app))
                .collect();
            let recorded: BTreeSet<String> = rows
                .iter()
                .map(|row| format!("{}.{}", row.app, row.name))
                .collect();
            for row in rows {
                let v = format!("{}.{}", row.app, row.name);
                match registered.iter().position(|r| r.version == v) {
                    Some(i) => claims[i] = Claim::applied(row.at.clone(), None),
                    // Django records the migrations a squashed one replaces (and, once all
                    // are, the squashed one): the folder has only the squashed migration.
                    None if squashed_into(registered, &row.app, &row.name).is_some() => {
                        let squashed =
                            squashed_into(registered, &row.app, &row.name).unwrap_or_default();
                        extra.push(if recorded.contains(&squashed) {
                            Row {
                                outcome: Outcome::Ignored,
                                detail: Some(format!("replaced by the squashed migration {squashed}")),
                                ..tool_only(v, row.at.clone(), String::new())
                            }
                        } else {
                            tool_only(
                                v,
                                row.at.clone(),
                                format!("Django applied it, which {squashed} replaces, but not {squashed} itself: apply the rest of what it replaces with manage.py migrate first"),
                            )
                        });
                    }
                    None if !apps.contains(row.app.as_str()) => extra.push(Row {
                        outcome: Outcome::Ignored,
                        detail: Some(format!(
                            "no migration of app {} is registered: not this folder's",
                            row.app
                        )),
                        ..tool_only(v, row.at.clone(), String::new())
                    }),
                    None => extra.push(tool_only(v, row.at.clone(), lacks(tool))),
                }
            }
        }
    }
    (claims, extra)
}

/// The registered squashed migration of `app` (Django's default name
/// `FIRST_squashed_LAST_...`) whose number range covers migration `name`, if any.
fn squashed_into(registered: &[Registered<'_>], app: &str, name: &str) -> Option<String> {
    let number = |s: &str| -> Option<u64> {
        let digits: String = s.chars().take_while(|c| c.is_ascii_digit()).collect();
        digits.parse().ok()
    };
    let n = number(name)?;
    registered.iter().find_map(|r| {
        let (a, migration) = r.version.split_once('.')?;
        let (first, last) = migration.split_once("_squashed_")?;
        (a == app && number(first)? <= n && n <= number(last)?).then(|| r.version.to_string())
    })
}

fn golang<T: Clone>(
    registered: &[Registered<'_>],
    rows: &[GolangRow],
    claims: &mut [Claim<T>],
    extra: &mut Vec<Row<T>>,
) {
    let row = match rows {
        [] => return,
        [row] => row,
        _ => {
            extra.push(tool_only(
                String::new(),
                None,
                format!(
                    "the table has {} rows; golang-migrate keeps exactly one",
                    rows.len()
                ),
            ));
            return;
        }
    };
    let v = row.version.to_string();
    let at_version = find(registered, &v);
    if row.dirty {
        let problem = if row.version < 0 {
            "golang-migrate is dirty at no version: a first migration failed half-way, or its down script did".to_string()
        } else {
            format!("golang-migrate left version {v} dirty: a migration failed half-way, and the schema may be partly changed")
        };
        match at_version {
            Some(i) => {
                claims[i] = Claim {
                    says: Says::Dirty,
                    problem: Some(problem),
                    ..Claim::default()
                }
            }
            None => extra.push(Row {
                says: Says::Dirty,
                ..tool_only(v, None, problem)
            }),
        }
        return;
    }
    if row.version < 0 {
        return;
    }
    if at_version.is_none() {
        extra.push(tool_only(
            v.clone(),
            None,
            format!("golang-migrate is at version {v}, which the folder does not have"),
        ));
    }
    for (i, r) in registered.iter().enumerate() {
        if !r.repeatable && version::compare(r.version, &v) != Ordering::Greater {
            claims[i] = Claim::applied(None, None);
            if r.version != v {
                claims[i].note = Some(format!("below golang-migrate's version {v}"));
            }
        }
    }
}

fn flyway<T: Clone>(
    registered: &[Registered<'_>],
    rows: &[FlywayRow<T>],
    claims: &mut [Claim<T>],
    extra: &mut Vec<Row<T>>,
) {
    let mut rows: Vec<&FlywayRow<T>> = rows.iter().collect();
    rows.sort_by_key(|r| r.rank);
    // Per version (its Flyway parts), the row that decides; per repeatable description, its
    // latest successful run.
    let mut versioned: Vec<(&str, &FlywayRow<T>)> = Vec::new();
    let mut failed: Vec<(&str, &FlywayRow<T>)> = Vec::new();
    let mut repeatable: BTreeMap<&str, &FlywayRow<T>> = BTreeMap::new();
    let mut baseline: Option<&FlywayRow<T>> = None;
    let same = |a: &str, b: &str| compare_flyway(a, b).is_eq();
    for row in rows {
        match (row.kind.as_str(), row.version.as_deref()) {
            ("SCHEMA", _) => {}
            ("BASELINE" | "SQL_BASELINE", Some(_)) if row.success => baseline = Some(row),
            (_, None) if row.success => {
                repeatable.insert(row.description.as_str(), row);
            }
            (_, None) => {}
            (_, Some(v)) if row.success => {
                versioned.retain(|(k, _)| !same(k, v));
                failed.retain(|(k, _)| !same(k, v));
                versioned.push((v, row));
            }
            (_, Some(v)) => {
                failed.retain(|(k, _)| !same(k, v));
                failed.push((v, row));
            }
        }
    }
    let is_undo = |row: &FlywayRow<T>| row.kind.starts_with("UNDO") || row.kind == "DELETE";
    let mut matched = vec![false; versioned.len()];
    let mut matched_repeatable = BTreeSet::new();
    for (i, r) in registered.iter().enumerate() {
        if r.repeatable {
            let Some(row) = r.name.and_then(|n| repeatable.get(n)) else {
                continue;
            };
            matched_repeatable.insert(row.description.as_str());
            let ours = flyway_checksum(r.script);
            claims[i] = match row.checksum {
                Some(theirs) if theirs != ours => Claim::says(
                    Says::Outdated,
                    format!("changed since Flyway last ran it (checksum {theirs}, the script's {ours}): it runs again"),
                ),
                _ => Claim::applied(row.at.clone(), row.duration_ms),
            };
            continue;
        }
        if let Some(k) = versioned.iter().position(|(v, _)| same(v, r.version)) {
            matched[k] = true;
            let row = versioned[k].1;
            if is_undo(row) {
                claims[i] = Claim::says(
                    Says::Undone,
                    format!(
                        "Flyway's latest run of it is {} (rank {})",
                        row.kind, row.rank
                    ),
                );
                continue;
            }
            let mut claim = Claim::applied(row.at.clone(), row.duration_ms);
            let ours = flyway_checksum(r.script);
            if let Some(theirs) = row.checksum.filter(|&c| c != ours) {
                claim.problem = Some(format!(
                    "Flyway applied a different script: its checksum is {theirs}, the registered script's {ours}"
                ));
            }
            claims[i] = claim;
        } else if let Some(b) = baseline.filter(|b| {
            b.version
                .as_deref()
                .is_some_and(|bv| compare_flyway(r.version, bv) != Ordering::Greater)
        }) {
            let bv = b.version.as_deref().unwrap_or_default();
            claims[i] = Claim::applied(b.at.clone(), None);
            claims[i].note = Some(format!("at or below Flyway's baseline {bv}"));
        } else if let Some((_, row)) = failed.iter().find(|(v, _)| same(v, r.version)) {
            claims[i] = Claim::says(
                Says::Failed,
                format!(
                    "Flyway recorded a failed run (rank {}): not applied",
                    row.rank
                ),
            );
        }
    }
    for (k, (v, row)) in versioned.iter().enumerate() {
        if !matched[k] && !is_undo(row) {
            extra.push(tool_only(
                v.to_string(),
                row.at.clone(),
                format!(
                    "Flyway applied {} ({}), but the folder has no migration with this version",
                    row.script, row.kind
                ),
            ));
        }
    }
    for (description, row) in &repeatable {
        if !matched_repeatable.contains(description) {
            extra.push(tool_only(
                format!("R__{description}"),
                row.at.clone(),
                format!(
                    "Flyway ran the repeatable migration {}, but the folder has none with the description \"{description}\"",
                    row.script
                ),
            ));
        }
    }
}

fn prisma<T: Clone>(
    registered: &[Registered<'_>],
    rows: &[PrismaRow<T>],
    claims: &mut [Claim<T>],
    extra: &mut Vec<Row<T>>,
) {
    let mut by_name: BTreeMap<&str, Vec<&PrismaRow<T>>> = BTreeMap::new();
    for row in rows {
        by_name
            .entry(row.migration_name.as_str())
            .or_default()
            .push(row);
    }
    // Prisma's identity of a migration is its folder name, `version_name`.
    let folder = |r: &Registered<'_>| match r.name {
        Some(n) => format!("{}_{n}", r.version),
        None => r.version.to_string(),
    };
    for (name, rows) in by_name {
        let applied = rows
            .iter()
            .find(|r| r.finished_at.is_some() && !r.rolled_back);
        let failed = rows
            .iter()
            .any(|r| r.finished_at.is_none() && !r.rolled_back);
        let Some(i) = registered
            .iter()
            .position(|r| !r.repeatable && folder(r) == name)
        else {
            if applied.is_some() || failed {
                let version = name.split_once('_').map_or(name, |(v, _)| v).to_string();
                let detail = if applied.is_some() {
                    format!("Prisma applied {name}, but the folder has no such migration")
                } else {
                    format!(
                        "Prisma recorded {name} as failed, and the folder has no such migration"
                    )
                };
                extra.push(tool_only(
                    version,
                    applied.and_then(|r| r.finished_at.clone()),
                    detail,
                ));
            }
            continue;
        };
        claims[i] = if let Some(row) = applied {
            let mut claim = Claim::applied(row.finished_at.clone(), row.duration_ms);
            if !prisma_matches(registered[i].script, &row.checksum) {
                claim.problem = Some(format!(
                    "Prisma applied a different migration.sql: its checksum (SHA-256) is {}, the registered script's {}",
                    row.checksum,
                    sha256_hex(registered[i].script)
                ));
            }
            claim
        } else if failed {
            Claim {
                says: Says::Failed,
                problem: Some("Prisma recorded it as failed (finished_at and rolled_back_at are NULL): it may be partly applied".into()),
                ..Claim::default()
            }
        } else {
            Claim::says(
                Says::RolledBack,
                "rolled back in Prisma's history: not applied",
            )
        };
    }
}

/// True if Prisma's `checksum` is the script's, with the line endings it was written with or
/// the other ones (Prisma compares both, since git may convert them).
fn prisma_matches(script: &str, checksum: &str) -> bool {
    let lf = script.replace("\r\n", "\n");
    let crlf = lf.replace('\n', "\r\n");
    let wanted = checksum.to_ascii_lowercase();
    file_texts(script)
        .iter()
        .chain([lf, crlf].iter())
        .any(|t| sha256_hex(t) == wanted)
}

fn drizzle<T: Clone>(
    registered: &[Registered<'_>],
    all_rows: &[DrizzleRow],
    claims: &mut [Claim<T>],
    extra: &mut Vec<Row<T>>,
) {
    let mut rows: Vec<(i64, &DrizzleRow)> = Vec::new();
    for row in all_rows {
        match row.created_at {
            Some(at) => rows.push((at, row)),
            None => extra.push(tool_only(
                String::new(),
                None,
                format!(
                    "row id {} has no created_at: not a row Drizzle writes",
                    row.id
                ),
            )),
        }
    }
    rows.sort_by_key(|(at, r)| (*at, r.id));
    let hash_of = |r: &Registered<'_>| sha256_hex(r.script);
    for (created_at, row) in &rows {
        let v = created_at.to_string();
        if let Some(i) = find(registered, &v) {
            let mut claim = Claim::applied(None, None);
            let hashes: Vec<String> = file_texts(registered[i].script)
                .iter()
                .map(|t| sha256_hex(t))
                .collect();
            if !hashes.contains(&row.hash.to_ascii_lowercase()) {
                claim.problem = Some(format!(
                    "Drizzle applied a different file: its hash (SHA-256) is {}, the registered script's {}",
                    row.hash, hashes[0]
                ));
            }
            claims[i] = claim;
        } else if let Some(r) = registered.iter().find(|r| hash_of(r) == row.hash) {
            extra.push(tool_only(
                v.clone(),
                None,
                format!(
                    "Drizzle applied this file as created_at {v}, but the journal now gives it when = {}",
                    r.version
                ),
            ));
        } else {
            extra.push(tool_only(v, None, lacks(Tool::Drizzle)));
        }
    }
    // Drizzle runs only what is newer than its newest row: an older entry without a row was
    // never run, and Drizzle never will.
    if let Some((newest, _)) = rows.last() {
        let newest = newest.to_string();
        for (i, r) in registered.iter().enumerate() {
            if claims[i].says == Says::NotApplied
                && !r.repeatable
                && version::compare(r.version, &newest) == Ordering::Less
            {
                claims[i].note = Some(format!(
                    "older than Drizzle's newest migration ({newest}), which Drizzle would never run"
                ));
            }
        }
    }
}

fn alembic<T: Clone>(
    registered: &[Registered<'_>],
    heads: &[String],
    claims: &mut [Claim<T>],
    extra: &mut Vec<Row<T>>,
) {
    for head in heads {
        let Some(start) = registered
            .iter()
            .position(|r| !r.repeatable && r.version == *head)
        else {
            extra.push(tool_only(
                head.clone(),
                None,
                "Alembic's head, but the folder has no such revision".into(),
            ));
            continue;
        };
        let mut stack = vec![start];
        while let Some(i) = stack.pop() {
            if claims[i].says == Says::Applied {
                continue;
            }
            claims[i] = Claim::applied(None, None);
            claims[i].note = Some(if i == start {
                "Alembic's head".to_string()
            } else {
                format!("an ancestor of Alembic's head {head}")
            });
            for req in registered[i].requires {
                match find(registered, req) {
                    Some(j) => stack.push(j),
                    None => extra.push(tool_only(
                        req.clone(),
                        None,
                        format!(
                            "an ancestor of Alembic's head {head} (required by {}), but not registered",
                            registered[i].version
                        ),
                    )),
                }
            }
        }
    }
}

/// Decides, for every registered migration and every row only the tool has, what `adopt()`
/// does. `table` names the tool's table in messages; `adopted_before` is true when this
/// database was adopted from this table earlier (then migrations that migrate applied since,
/// which the tool's table cannot list, are no disagreement).
pub fn assess<T: Clone>(
    tool: Tool,
    table: &str,
    registered: &[Registered<'_>],
    rows: &Rows<T>,
    adopted_before: bool,
) -> Vec<Row<T>> {
    let (claims, extra) = claims(tool, registered, rows);
    let mut out: Vec<Row<T>> = registered
        .iter()
        .zip(claims)
        .enumerate()
        .map(|(i, (r, claim))| {
            let applied = claim.says == Says::Applied;
            let (outcome, detail) = match (&claim.problem, applied, r.state) {
                (Some(problem), _, _) => (Outcome::Mismatch, Some(problem.clone())),
                (None, true, State::Pending) => (Outcome::Adopted, claim.note.clone()),
                (None, true, _) => (Outcome::AlreadyApplied, claim.note.clone()),
                (None, false, State::Pending) => (Outcome::Pending, claim.note.clone()),
                (None, false, State::Ran) if adopted_before => (
                    Outcome::AlreadyApplied,
                    Some(format!("applied by migrate; {table} does not list it")),
                ),
                (None, false, State::Ran) => (
                    Outcome::Mismatch,
                    Some(format!(
                        "migrate has applied it, but {table} does not list it as applied"
                    )),
                ),
                (None, false, State::Marked) => (
                    Outcome::Mismatch,
                    Some(format!(
                        "marked applied in migrate's registry (by baseline() or an earlier adopt()), but {table} does not list it as applied: {} may have reverted it",
                        tool.display()
                    )),
                ),
            };
            Row {
                version: r.version.to_string(),
                name: r.name.map(str::to_string),
                index: Some(i),
                says: claim.says,
                outcome,
                at: claim.at,
                duration_ms: claim.duration_ms,
                detail,
            }
        })
        .collect();
    // What the tool applied must have what it requires applied too.
    let applied: BTreeSet<usize> = out
        .iter()
        .filter(|r| matches!(r.outcome, Outcome::Adopted | Outcome::AlreadyApplied))
        .filter_map(|r| r.index)
        .collect();
    for row in out.iter_mut().filter(|r| r.outcome == Outcome::Adopted) {
        let r = &registered[row.index.expect("registered rows have an index")];
        let missing = r
            .requires
            .iter()
            .find(|req| find(registered, req).is_none_or(|j| !applied.contains(&j)));
        if let Some(req) = missing {
            row.outcome = Outcome::Mismatch;
            row.detail = Some(format!(
                "{} applied it, but not {req}, which it requires",
                tool.display()
            ));
        }
    }
    // A pending migration older than an applied one is a branch merged late: the tool never
    // ran it, and deploy() refuses it until told (graph tools order by requires instead).
    if !tool.is_graph() {
        let newest = out
            .iter()
            .filter(|r| matches!(r.outcome, Outcome::Adopted | Outcome::AlreadyApplied))
            .filter(|r| r.index.is_some_and(|i| !registered[i].repeatable))
            .map(|r| r.version.clone())
            .max_by(|a, b| version::compare(a, b));
        if let Some(newest) = newest {
            for row in out.iter_mut().filter(|r| r.outcome == Outcome::Pending) {
                let i = row.index.expect("registered rows have an index");
                if !registered[i].repeatable
                    && registered[i].requires.is_empty()
                    && version::compare(&row.version, &newest) == Ordering::Less
                    && row.detail.is_none()
                {
                    row.detail = Some(format!(
                        "older than applied migration {newest}: {} never ran it; deploy() applies it only with migrate.allow_out_of_order",
                        tool.display()
                    ));
                }
            }
        }
    }
    out.extend(extra);
    out
}

/// One of `validate()`'s drift problems for an adopted database.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Drift {
    pub version: String,
    pub problem: &'static str,
    pub detail: String,
}

/// What `validate()` reports for a database adopted from `table`: [`assess`]'s answer (with
/// `adopted_before`) turned into drift problems, each saying which side is ahead and how to
/// reconcile.
pub fn drift<T>(tool: Tool, table: &str, rows: &[Row<T>]) -> Vec<Drift> {
    let name = tool.name();
    let shown = tool.display();
    rows.iter()
        .filter_map(|row| {
            let (problem, detail) = match row.outcome {
                Outcome::Adopted => (
                    "drift_applied_by_tool",
                    format!(
                        "{table} lists it as applied, but migrate has it pending: {shown} applied it on its own. \
                         SELECT * FROM migrate.adopt('{name}') (or migrate-cli adopt --from {name} DIR) marks it applied"
                    ),
                ),
                Outcome::AlreadyApplied if row.says != Says::Applied => (
                    "drift_not_in_tool",
                    format!(
                        "migrate has applied it, but {table} does not list it: {shown}, if it still migrates this database, would run it again. \
                         Once {shown} no longer does, SELECT migrate.end_adoption('{name}')"
                    ),
                ),
                Outcome::Mismatch => (
                    "drift_mismatch",
                    format!(
                        "{}; SELECT * FROM migrate.adopt('{name}', dry_run => true) shows every difference",
                        row.detail.as_deref().unwrap_or("the tool and the registry disagree")
                    ),
                ),
                _ => return None,
            };
            Some(Drift {
                version: row.version.clone(),
                problem,
                detail,
            })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn reg<'a>(version: &'a str, script: &'a str, state: State) -> Registered<'a> {
        Registered {
            version,
            name: None,
            script,
            requires: &[],
            state,
            repeatable: false,
        }
    }

    fn outcomes<T>(rows: &[Row<T>]) -> Vec<(String, &'static str, &'static str)> {
        rows.iter()
            .map(|r| (r.version.clone(), r.says.as_str(), r.outcome.as_str()))
            .collect()
    }

    fn v(
        version: &str,
        says: &'static str,
        outcome: &'static str,
    ) -> (String, &'static str, &'static str) {
        (version.to_string(), says, outcome)
    }

    #[test]
    fn checksums_match_the_tools() {
        // The CRC-32 check value, and Flyway's ignoring of line terminators and a BOM.
        assert_eq!(flyway_checksum("123456789"), 0xCBF4_3926_u32 as i32);
        assert_eq!(
            flyway_checksum("12345\r\n6789\n"),
            flyway_checksum("123456789")
        );
        assert_eq!(
            flyway_checksum("\u{feff}123\r456789"),
            flyway_checksum("123456789")
        );
        assert_eq!(flyway_checksum(""), 0);
        assert_eq!(
            sha256_hex("abc"),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
        // FIPS 180-2's SHA-384 of "abc".
        assert_eq!(
            hex(&sqlx_checksum("abc")),
            "cb00753f45a35e8bb5a03d699ac65007272c32ab0eded1631a8b605a43ff5bed\
             8086072ba1e7cc2358baeca134c825a7"
        );
        assert!(prisma_matches("SELECT 1;\r\n", &sha256_hex("SELECT 1;\n")));
        assert!(prisma_matches("SELECT 1;\n", &sha256_hex("SELECT 1;\r\n")));
        assert!(!prisma_matches("SELECT 2;\n", &sha256_hex("SELECT 1;\n")));
    }

    #[test]
    fn diesel_rows_adopt_by_version_without_dashes() {
        let r = [
            reg("00000000000000", "", State::Pending),
            reg("20261201234025-0000", "a", State::Pending),
            reg("20261201234026-0000", "b", State::Pending),
        ];
        let rows = Rows::Diesel(vec![
            VersionRow {
                version: "00000000000000".into(),
                at: Some(1),
            },
            VersionRow {
                version: "202612012340250000".into(),
                at: Some(2),
            },
            VersionRow {
                version: "20990101000000".into(),
                at: Some(3),
            },
        ]);
        let out = assess(Tool::Diesel, "t", &r, &rows, false);
        assert_eq!(
            outcomes(&out),
            [
                v("00000000000000", "applied", "adopted"),
                v("20261201234025-0000", "applied", "adopted"),
                v("20261201234026-0000", "not_applied", "pending"),
                v("20990101000000", "applied", "mismatch"),
            ]
        );
        assert_eq!(out[1].at, Some(2));
    }

    #[test]
    fn registry_states_that_disagree_are_refused_unless_adopted_before() {
        let r = [
            reg("1", "", State::Ran),
            reg("2", "", State::Marked),
            reg("3", "", State::Ran),
        ];
        let rows: Rows<i32> = Rows::Dbmate(vec![VersionRow {
            version: "3".into(),
            at: None,
        }]);
        let first = assess(Tool::Dbmate, "t", &r, &rows, false);
        assert_eq!(
            outcomes(&first),
            [
                v("1", "not_applied", "mismatch"),
                v("2", "not_applied", "mismatch"),
                v("3", "applied", "already_applied"),
            ]
        );
        let again = assess(Tool::Dbmate, "t", &r, &rows, true);
        assert_eq!(again[0].outcome, Outcome::AlreadyApplied);
        assert_eq!(again[1].outcome, Outcome::Mismatch, "a reverted adoption");
        let problems: Vec<_> = drift(Tool::Dbmate, "t", &again)
            .into_iter()
            .map(|d| (d.version, d.problem))
            .collect();
        assert_eq!(
            problems,
            [
                ("1".to_string(), "drift_not_in_tool"),
                ("2".to_string(), "drift_mismatch")
            ]
        );
    }

    #[test]
    fn golang_migrate_applies_a_prefix_and_refuses_dirty() {
        let r = [
            reg("1", "", State::Pending),
            reg("2", "", State::Pending),
            reg("10", "", State::Pending),
        ];
        let at = |version, dirty| -> Rows<i32> {
            Rows::GolangMigrate(vec![GolangRow { version, dirty }])
        };
        assert_eq!(
            outcomes(&assess(Tool::GolangMigrate, "t", &r, &at(2, false), false)),
            [
                v("1", "applied", "adopted"),
                v("2", "applied", "adopted"),
                v("10", "not_applied", "pending"),
            ]
        );
        let dirty = assess(Tool::GolangMigrate, "t", &r, &at(2, true), false);
        assert_eq!(dirty[1].says, Says::Dirty);
        assert_eq!(dirty[1].outcome, Outcome::Mismatch);
        assert!(dirty[1]
            .detail
            .as_deref()
            .unwrap()
            .contains("version 2 dirty"));
        let beyond = assess(Tool::GolangMigrate, "t", &r, &at(11, false), false);
        assert_eq!(beyond.len(), 4);
        assert_eq!(beyond[3].outcome, Outcome::Mismatch);
        assert!(assess(
            Tool::GolangMigrate,
            "t",
            &r,
            &Rows::<i32>::GolangMigrate(vec![]),
            false
        )
        .iter()
        .all(|r| r.outcome == Outcome::Pending));
    }

    fn fw(
        rank: i64,
        version: Option<&str>,
        description: &str,
        kind: &str,
        checksum: Option<i32>,
        success: bool,
    ) -> FlywayRow<i32> {
        FlywayRow {
            rank,
            version: version.map(str::to_string),
            description: description.into(),
            kind: kind.into(),
            script: format!("{}.sql", description),
            checksum,
            at: Some(rank as i32),
            duration_ms: Some(5.0),
            success,
        }
    }

    #[test]
    fn flyway_history_undo_failed_baseline_and_repeatables() {
        let (s1, s11, s12, s2, view) = (
            "CREATE TABLE a ();\n",
            "B\n",
            "C\n",
            "D\n",
            "CREATE VIEW v AS SELECT 1;\n",
        );
        let mut repeatable = reg("R__View", view, State::Pending);
        repeatable.repeatable = true;
        repeatable.name = Some("View");
        let r = [
            reg("1", s1, State::Pending),
            reg("1.1", s11, State::Pending),
            reg("1.2", s12, State::Pending),
            reg("2", s2, State::Pending),
            repeatable.clone(),
        ];
        let rows = Rows::Flyway(vec![
            fw(1, Some("1"), "a", "SQL", Some(flyway_checksum(s1)), true),
            fw(2, Some("1.1"), "b", "SQL", Some(flyway_checksum(s11)), true),
            fw(3, Some("1.2"), "c", "SQL", Some(flyway_checksum(s12)), true),
            fw(4, Some("1.2"), "c", "UNDO_SQL", None, true),
            fw(5, Some("2"), "d", "SQL", Some(flyway_checksum(s2)), false),
            fw(6, None, "View", "SQL", Some(flyway_checksum(view)), true),
        ]);
        let out = assess(Tool::Flyway, "t", &r, &rows, false);
        assert_eq!(
            outcomes(&out),
            [
                v("1", "applied", "adopted"),
                v("1.1", "applied", "adopted"),
                v("1.2", "undone", "pending"),
                v("2", "failed", "pending"),
                v("R__View", "applied", "adopted"),
            ]
        );
        assert_eq!(out[0].duration_ms, Some(5.0));
        // The view's script changed since: Flyway would run it again, so it stays pending.
        let mut changed = repeatable;
        changed.script = "CREATE VIEW v AS SELECT 2;\n";
        let out = assess(Tool::Flyway, "t", &[changed], &rows, false);
        assert_eq!(out[0].says, Says::Outdated);
        assert_eq!(out[0].outcome, Outcome::Pending);
        // A baseline at 1.1 stands for 1 and 1.1; a checksum that differs is a mismatch.
        let rows = Rows::Flyway(vec![
            fw(
                1,
                Some("1.1"),
                "<< Flyway Baseline >>",
                "BASELINE",
                None,
                true,
            ),
            fw(2, Some("1.2"), "c", "SQL", Some(42), true),
        ]);
        assert_eq!(
            outcomes(&assess(Tool::Flyway, "t", &r[..3], &rows, false)),
            [
                v("1", "applied", "adopted"),
                v("1.1", "applied", "adopted"),
                v("1.2", "applied", "mismatch"),
            ]
        );
        // 1.0 is Flyway's 1; a version the folder lacks is a mismatch.
        let rows = Rows::Flyway(vec![
            fw(1, Some("1.0"), "a", "SQL", None, true),
            fw(2, Some("3"), "e", "SQL", None, true),
        ]);
        let out = assess(Tool::Flyway, "t", &r[..1], &rows, false);
        assert_eq!(
            outcomes(&out),
            [v("1", "applied", "adopted"), v("3", "applied", "mismatch")]
        );
    }

    #[test]
    fn sqlx_checksums_and_failures() {
        let r = [
            reg("1", "A;\n", State::Pending),
            reg("2", "B;\n", State::Pending),
        ];
        let row = |version, script: &str, success| SqlxRow {
            version,
            description: "x".into(),
            success,
            checksum: sqlx_checksum(script),
            at: Some(version),
            duration_ms: Some(1.5),
        };
        let ok = Rows::Sqlx(vec![row(1, "A;\n", true), row(2, "\u{feff}B;\n", true)]);
        assert!(assess(Tool::Sqlx, "t", &r, &ok, false)
            .iter()
            .all(|r| r.outcome == Outcome::Adopted));
        let bad = Rows::Sqlx(vec![row(1, "A; -- edited\n", true), row(2, "B;\n", false)]);
        let out = assess(Tool::Sqlx, "t", &r, &bad, false);
        assert_eq!(
            outcomes(&out),
            [v("1", "applied", "mismatch"), v("2", "failed", "mismatch")]
        );
        assert!(out[0].detail.as_deref().unwrap().contains("SHA-384"));
    }

    #[test]
    fn prisma_rows_by_folder_name() {
        let mut a = reg("20240101000000", "A;\n", State::Pending);
        a.name = Some("init");
        let mut b = reg("20240102000000", "B;\n", State::Pending);
        b.name = Some("posts");
        let mut c = reg("20240103000000", "C;\n", State::Pending);
        c.name = Some("tags");
        let row = |name: &str, script: &str, finished: bool, rolled_back| PrismaRow {
            migration_name: name.into(),
            checksum: sha256_hex(script),
            finished_at: finished.then_some(7),
            rolled_back,
            duration_ms: None,
        };
        let r = [a, b, c];
        let rows = Rows::Prisma(vec![
            row("20240101000000_init", "A;\n", true, false),
            row("20240102000000_posts", "B;\n", false, true),
            row("20240102000000_posts", "B;\n", true, false),
            row("20240103000000_tags", "C;\n", false, true),
        ]);
        assert_eq!(
            outcomes(&assess(Tool::Prisma, "t", &r, &rows, false)),
            [
                v("20240101000000", "applied", "adopted"),
                v("20240102000000", "applied", "adopted"),
                v("20240103000000", "rolled_back", "pending"),
            ]
        );
        let rows = Rows::Prisma(vec![
            row("20240101000000_init", "A; -- edited\n", true, false),
            row("20240102000000_posts", "B;\n", false, false),
            row("20240109000000_gone", "X;\n", true, false),
        ]);
        assert_eq!(
            outcomes(&assess(Tool::Prisma, "t", &r, &rows, false)),
            [
                v("20240101000000", "applied", "mismatch"),
                v("20240102000000", "failed", "mismatch"),
                v("20240103000000", "not_applied", "pending"),
                v("20240109000000", "applied", "mismatch"),
            ]
        );
    }

    #[test]
    fn drizzle_rows_by_created_at_and_hash() {
        let r = [
            reg("1700000000000", "A;\n", State::Pending),
            reg("1700000000500", "B;\n", State::Pending),
            reg("1700000000900", "C;\n", State::Pending),
        ];
        let row = |id, script: &str, created_at| DrizzleRow {
            id,
            hash: sha256_hex(script),
            created_at: Some(created_at),
        };
        let rows: Rows<i32> = Rows::Drizzle(vec![
            row(1, "A;\n", 1_700_000_000_000),
            row(2, "B;\n", 1_700_000_000_500),
        ]);
        assert_eq!(
            outcomes(&assess(Tool::Drizzle, "t", &r, &rows, false)),
            [
                v("1700000000000", "applied", "adopted"),
                v("1700000000500", "applied", "adopted"),
                v("1700000000900", "not_applied", "pending"),
            ]
        );
        // A skipped older entry, an edited file, a journal whose when changed.
        let rows: Rows<i32> = Rows::Drizzle(vec![
            row(1, "B; -- edited\n", 1_700_000_000_500),
            row(2, "C;\n", 1_700_000_000_777),
        ]);
        let out = assess(Tool::Drizzle, "t", &r, &rows, false);
        assert_eq!(
            outcomes(&out),
            [
                v("1700000000000", "not_applied", "pending"),
                v("1700000000500", "applied", "mismatch"),
                v("1700000000900", "not_applied", "pending"),
                v("1700000000777", "applied", "mismatch"),
            ]
        );
        assert!(out[0].detail.as_deref().unwrap().contains("never run"));
        assert!(out[3]
            .detail
            .as_deref()
            .unwrap()
            .contains("when = 1700000000900"));
    }

    #[test]
    fn alembic_heads_apply_their_ancestors() {
        let none: Vec<String> = vec![];
        let base = vec!["ae1027a6acf".to_string()];
        let b1 = vec!["1975ea83b712".to_string()];
        let both = vec!["27c6a30d7c24".to_string(), "3cd0a6f2e0d1".to_string()];
        let mk = |version, requires| Registered {
            version,
            name: None,
            script: "",
            requires,
            state: State::Pending,
            repeatable: false,
        };
        let r = [
            mk("ae1027a6acf", &none),
            mk("1975ea83b712", &base),
            mk("27c6a30d7c24", &b1),
            mk("3cd0a6f2e0d1", &b1),
            mk("4f2e9c1ab000", &both),
        ];
        // Two heads, the merge not applied yet.
        let rows: Rows<i32> = Rows::Alembic(both.clone());
        assert_eq!(
            outcomes(&assess(Tool::Alembic, "t", &r, &rows, false)),
            [
                v("ae1027a6acf", "applied", "adopted"),
                v("1975ea83b712", "applied", "adopted"),
                v("27c6a30d7c24", "applied", "adopted"),
                v("3cd0a6f2e0d1", "applied", "adopted"),
                v("4f2e9c1ab000", "not_applied", "pending"),
            ]
        );
        // One branch only: the other stays pending, with no out-of-order note.
        let out = assess(
            Tool::Alembic,
            "t",
            &r,
            &Rows::<i32>::Alembic(vec!["27c6a30d7c24".into()]),
            false,
        );
        assert_eq!(out[3].outcome, Outcome::Pending);
        assert_eq!(out[3].detail, None);
        let out = assess(
            Tool::Alembic,
            "t",
            &r,
            &Rows::<i32>::Alembic(vec!["ffff".into()]),
            false,
        );
        assert_eq!(out.last().unwrap().outcome, Outcome::Mismatch);
    }

    #[test]
    fn django_rows_of_other_apps_are_ignored() {
        let none: Vec<String> = vec![];
        let first = vec!["blog.0001_initial".to_string()];
        let mk = |version, requires| Registered {
            version,
            name: None,
            script: "",
            requires,
            state: State::Pending,
            repeatable: false,
        };
        let r = [mk("blog.0001_initial", &none), mk("blog.0002_tags", &first)];
        let row = |app: &str, name: &str| DjangoRow {
            app: app.into(),
            name: name.into(),
            at: Some(1),
        };
        let rows = Rows::Django(vec![
            row("contenttypes", "0001_initial"),
            row("blog", "0001_initial"),
            row("blog", "0003_gone"),
        ]);
        assert_eq!(
            outcomes(&assess(Tool::Django, "t", &r, &rows, false)),
            [
                v("blog.0001_initial", "applied", "adopted"),
                v("blog.0002_tags", "not_applied", "pending"),
                v("contenttypes.0001_initial", "applied", "ignored"),
                v("blog.0003_gone", "applied", "mismatch"),
            ]
        );
        // A squashed migration: Django records what it replaces, and then itself.
        let sq = [mk("blog.0001_squashed_0002_tags", &none)];
        let rows = Rows::Django(vec![
            row("blog", "0001_initial"),
            row("blog", "0002_tags"),
            row("blog", "0001_squashed_0002_tags"),
        ]);
        assert_eq!(
            outcomes(&assess(Tool::Django, "t", &sq, &rows, false)),
            [
                v("blog.0001_squashed_0002_tags", "applied", "adopted"),
                v("blog.0001_initial", "applied", "ignored"),
                v("blog.0002_tags", "applied", "ignored"),
            ]
        );
        // Part of what it replaces, not the squashed one: refused.
        let rows = Rows::Django(vec![row("blog", "0001_initial")]);
        let out = assess(Tool::Django, "t", &sq, &rows, false);
        assert!(out.iter().any(|r| r.outcome == Outcome::Mismatch));
        // Applied without what it requires: refused.
        let rows = Rows::Django(vec![row("blog", "0002_tags")]);
        let out = assess(Tool::Django, "t", &r, &rows, false);
        assert_eq!(out[1].outcome, Outcome::Mismatch);
        assert!(out[1]
            .detail
            .as_deref()
            .unwrap()
            .contains("blog.0001_initial"));
    }

    #[test]
    fn late_branches_are_pointed_out() {
        let r = [
            reg("1", "", State::Pending),
            reg("2", "", State::Pending),
            reg("3", "", State::Pending),
        ];
        let rows: Rows<i32> = Rows::Dbmate(vec![
            VersionRow {
                version: "1".into(),
                at: None,
            },
            VersionRow {
                version: "3".into(),
                at: None,
            },
        ]);
        let out = assess(Tool::Dbmate, "t", &r, &rows, false);
        assert_eq!(out[1].outcome, Outcome::Pending);
        assert!(out[1]
            .detail
            .as_deref()
            .unwrap()
            .contains("allow_out_of_order"));
    }

    #[test]
    fn table_shapes() {
        let cols = |list: &[(&str, &str)]| -> Vec<(String, Option<String>)> {
            list.iter()
                .map(|(n, t)| (n.to_string(), Some(t.to_string())))
                .collect()
        };
        let golang = cols(&[("version", "int8"), ("dirty", "bool")]);
        let dbmate = cols(&[("version", "varchar")]);
        assert_eq!(Tool::GolangMigrate.shape_problem("t", &golang), None);
        assert_eq!(Tool::Dbmate.shape_problem("t", &dbmate), None);
        let wrong = Tool::Dbmate.shape_problem("t", &golang).unwrap();
        assert!(wrong.contains("golang-migrate's"), "{wrong}");
        let wrong = Tool::GolangMigrate.shape_problem("t", &dbmate).unwrap();
        assert!(wrong.contains("dbmate's"), "{wrong}");
        let domain = vec![
            ("version".to_string(), None),
            ("run_on".to_string(), Some("timestamp".to_string())),
        ];
        assert!(Tool::Diesel
            .shape_problem("t", &domain)
            .unwrap()
            .contains("outside pg_catalog"));
        for tool in Tool::ALL {
            assert_eq!(Tool::from_name(tool.name()), Some(*tool));
        }
    }
}
