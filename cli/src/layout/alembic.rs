//! Alembic: the script directory of an Alembic project (the folder `script_location` names in
//! `alembic.ini`, with `env.py` and `versions/`; the project folder itself, with `alembic.ini`,
//! stands for it), holding the offline SQL Alembic itself writes:
//!
//! ```sh
//! alembic upgrade --sql base:heads > migrations/upgrade.sql
//! alembic downgrade --sql head:base > migrations/downgrade.sql   # optional: the down scripts
//! ```
//!
//! read as Alembic applies it:
//! - `upgrade.sql` is split at Alembic's `-- Running upgrade A -> B` comments: each part is
//!   revision `B`'s up script, `A` (`A, C` for a merge, nothing for a base) its down
//!   revisions; `downgrade.sql` likewise at `-- Running downgrade B -> A` (a revision missing
//!   there has no down script);
//! - the version is the revision id; the requirements are the down revisions and, from the
//!   revision's file in `versions/` when there is one, its `depends_on`; the name is the
//!   file's slug (`<rev>_<slug>.py`, else the docstring's first line); a revision file that
//!   `upgrade.sql` lacks, or down revisions that disagree with it, mean the SQL is stale;
//! - Alembic's own bookkeeping (`CREATE TABLE alembic_version`, `INSERT`/`UPDATE`/`DELETE` of
//!   `alembic_version`) and the `BEGIN;`/`COMMIT;` around the run are dropped: the registry
//!   keeps its own;
//! - a revision whose statements Alembic runs between a `COMMIT;` and a `BEGIN;` (an
//!   `autocommit_block()`, e.g. `op.create_index(..., postgresql_concurrently=True)`) is
//!   non-transactional; one that also has statements inside the transaction is refused:
//!   a migration runs in one transaction or statement by statement, not both.
//!
//! The loader reads files only: it never runs Alembic or the project's `env.py` (Python code
//! of the project), so what is registered is exactly what the committed SQL says. `new` is
//! refused: Alembic writes its revisions (`alembic revision -m NAME`).

use std::collections::{HashMap, HashSet};
use std::path::{Path, PathBuf};

use super::statements;
use super::{check_versions, file_name_part, line_at, names, read, LayoutError, MigrationFile};

pub const UPGRADE: &str = "upgrade.sql";
pub const DOWNGRADE: &str = "downgrade.sql";
const VERSION_TABLE: &str = "alembic_version";

pub fn matches(dir: &Path) -> bool {
    let dir = script_dir(dir);
    dir.join("versions").is_dir() && (dir.join(UPGRADE).is_file() || dir.join("env.py").is_file())
}

/// The script directory: `dir` itself, or for a project folder (`alembic.ini`, no
/// `versions/`), the `script_location` its `alembic.ini` names (`%(here)s/migrations` or a
/// path relative to it).
fn script_dir(dir: &Path) -> PathBuf {
    let ini = dir.join("alembic.ini");
    if dir.join("versions").is_dir() || !ini.is_file() {
        return dir.to_path_buf();
    }
    let location = std::fs::read_to_string(&ini).ok().and_then(|text| {
        text.lines().find_map(|l| {
            let (key, value) = l.split_once('=')?;
            (key.trim() == "script_location").then(|| value.trim().to_string())
        })
    });
    match location {
        Some(l) if !l.contains(':') || l.starts_with("%(here)s") => {
            let relative = l.trim_start_matches("%(here)s").trim_start_matches('/');
            dir.join(relative)
        }
        _ => dir.to_path_buf(),
    }
}

/// One part of the offline SQL: one revision's script.
#[derive(Debug)]
struct Section {
    revision: String,
    /// The other side of the arrow: the down revisions of an upgrade.
    other: Vec<String>,
    script: String,
    /// The 1-based line of the file where the script starts.
    line: usize,
    transactional: Option<bool>,
}

/// What a statement of the offline SQL is to the loader.
#[derive(Debug, PartialEq)]
enum Kind {
    Begin,
    Commit,
    /// Alembic's `alembic_version` bookkeeping.
    Bookkeeping,
    Script,
}

fn kind(statement: &str) -> Kind {
    let words = statements::first_words(statement.trim_end_matches(';'), 3);
    let w: Vec<&str> = words.iter().map(String::as_str).collect();
    let version_table = |name: &str| name.rsplit('.').next() == Some(VERSION_TABLE);
    match w.as_slice() {
        ["begin"] | ["begin", "transaction"] | ["start", "transaction"] => Kind::Begin,
        ["commit"] | ["end"] | ["commit", "transaction"] => Kind::Commit,
        ["insert", "into", t]
        | ["delete", "from", t]
        | ["create", "table", t]
        | ["drop", "table", t]
            if version_table(t) =>
        {
            Kind::Bookkeeping
        }
        ["update", t, ..] if version_table(t) => Kind::Bookkeeping,
        _ => Kind::Script,
    }
}

/// Splits Alembic's offline SQL for `direction` (`upgrade` or `downgrade`) into revisions.
fn sections(path: &Path, text: &str, direction: &str) -> Result<Vec<Section>, LayoutError> {
    let marker = format!("-- Running {direction} ");
    // (offset of the marker line, offset after it, revision, other side)
    let mut markers: Vec<(usize, usize, String, Vec<String>)> = Vec::new();
    let mut offset = 0;
    for line in text.split_inclusive('\n') {
        if let Some(rest) = line.trim_end().strip_prefix(&marker) {
            let invalid = || {
                LayoutError::Invalid(
                    path.to_path_buf(),
                    line_at(text, offset),
                    format!("not an Alembic \"{marker}A -> B\" line"),
                )
            };
            let (left, right) = rest.split_once("->").ok_or_else(invalid)?;
            let list = |s: &str| -> Vec<String> {
                s.split(',')
                    .map(str::trim)
                    .filter(|r| !r.is_empty())
                    .map(String::from)
                    .collect()
            };
            let (revision, other) = if direction == "upgrade" {
                (list(right), list(left))
            } else {
                (list(left), list(right))
            };
            let [revision] = revision.as_slice() else {
                return Err(invalid());
            };
            markers.push((offset, offset + line.len(), revision.clone(), other));
        }
        offset += line.len();
    }
    let ranges = statements::split(text);
    let mut in_transaction = false;
    let mut out: Vec<Section> = Vec::new();
    let mut statement = ranges.iter().peekable();
    for k in 0..=markers.len() {
        // The part before the first marker, then each revision's.
        let (from, to) = match k {
            0 => (0, markers.first().map_or(text.len(), |m| m.0)),
            _ => (markers[k - 1].1, markers.get(k).map_or(text.len(), |m| m.0)),
        };
        let mut script = text[from..to].to_string();
        let (mut inside, mut outside) = (None, None);
        while let Some(r) = statement.next_if(|r| r.start < to) {
            let sql = &text[r.clone()];
            let kind = kind(sql);
            match kind {
                Kind::Begin => in_transaction = true,
                Kind::Commit => in_transaction = false,
                Kind::Bookkeeping => {}
                Kind::Script if k == 0 => {
                    return Err(LayoutError::Invalid(
                        path.to_path_buf(),
                        line_at(text, r.start),
                        format!(
                            "a statement before the first \"{marker}\" line belongs to no revision"
                        ),
                    ))
                }
                Kind::Script if in_transaction => {
                    inside.get_or_insert(r.start);
                }
                Kind::Script => {
                    outside.get_or_insert(r.start);
                }
            }
            if kind != Kind::Script {
                // Blanked, lines kept: an error at line L of the script is still line L here.
                let blank: String = sql
                    .chars()
                    .map(|c| match c {
                        '\n' => "\n".to_string(),
                        c => " ".repeat(c.len_utf8()),
                    })
                    .collect();
                let (a, b) = (r.start - from, r.end.min(to) - from);
                script.replace_range(a..b, &blank[..b - a]);
            }
        }
        if k == 0 {
            continue;
        }
        let (_, after, revision, other) = &markers[k - 1];
        let transactional = match (inside, outside) {
            (Some(_), Some(at)) => {
                return Err(LayoutError::Invalid(
                    path.to_path_buf(),
                    line_at(text, at),
                    format!(
                        "revision {revision} runs statements in an autocommit_block() and others \
                         in its transaction; a migration runs in one transaction or statement \
                         by statement, not both: move the autocommit block into a revision of \
                         its own"
                    ),
                ))
            }
            (None, Some(_)) => Some(false),
            _ => None,
        };
        let script = format!("{}\n", script.trim_end());
        out.push(Section {
            revision: revision.clone(),
            other: other.clone(),
            script,
            line: line_at(text, *after),
            transactional,
        });
    }
    Ok(out)
}

/// A revision file of `versions/`.
#[derive(Debug, Default)]
struct Revision {
    id: String,
    down: Vec<String>,
    depends_on: Vec<String>,
    name: Option<String>,
    path: PathBuf,
}

/// The strings of a Python literal: `None`, `'x'`, `"x"`, or a tuple or list of strings.
fn strings(value: &str) -> Option<Vec<String>> {
    let value = value.trim();
    if value == "None" {
        return Some(Vec::new());
    }
    let inner = value
        .strip_prefix('(')
        .and_then(|v| v.strip_suffix(')'))
        .or_else(|| value.strip_prefix('[').and_then(|v| v.strip_suffix(']')));
    let items: Vec<&str> = match inner {
        Some(inner) => inner
            .split(',')
            .map(str::trim)
            .filter(|s| !s.is_empty())
            .collect(),
        None => vec![value],
    };
    items
        .into_iter()
        .map(|item| {
            let item = item.trim_start_matches(['r', 'u']);
            let q = item.chars().next()?;
            (matches!(q, '\'' | '"') && item.len() >= 2 && item.ends_with(q))
                .then(|| item[1..item.len() - 1].to_string())
        })
        .collect()
}

/// Reads a revision file as Alembic's template writes it: the module docstring, then
/// top-level `revision`, `down_revision` and `depends_on` assignments (with or without a type
/// annotation). None for a file that assigns no `revision` (not a revision).
fn revision(path: &Path, text: &str) -> Result<Option<Revision>, LayoutError> {
    let mut values: HashMap<&str, String> = HashMap::new();
    let mut pending: Option<(&str, String)> = None;
    for line in text.lines() {
        if let Some((key, mut value)) = pending.take() {
            value.push_str(line.trim());
            let open = value.matches(['(', '[']).count() > value.matches([')', ']']).count();
            if open {
                pending = Some((key, value));
            } else {
                values.insert(key, value);
            }
            continue;
        }
        for key in ["revision", "down_revision", "depends_on"] {
            let Some(rest) = line.strip_prefix(key) else {
                continue;
            };
            let rest = rest.trim_start();
            if !(rest.starts_with(':') || rest.starts_with('=')) {
                continue;
            }
            let Some((_, value)) = rest.split_once('=') else {
                continue;
            };
            let value = value.split(" #").next().unwrap_or("").trim().to_string();
            let open = value.matches(['(', '[']).count() > value.matches([')', ']']).count();
            if open {
                pending = Some((key, value));
            } else {
                values.insert(key, value);
            }
        }
    }
    let Some(id) = values.get("revision") else {
        return Ok(None);
    };
    let bad = |key: &str| {
        LayoutError::Invalid(
            path.to_path_buf(),
            0,
            format!("{key} is not a string, a tuple of strings or None"),
        )
    };
    let id = match strings(id).ok_or_else(|| bad("revision"))?.as_slice() {
        [one] => one.clone(),
        _ => return Err(bad("revision")),
    };
    let list = |key: &str| match values.get(key) {
        None => Ok(Vec::new()),
        Some(v) => strings(v).ok_or_else(|| bad(key)),
    };
    let file = super::file_name(path).trim_end_matches(".py");
    let message = ["\"\"\"", "'''"].iter().find_map(|q| {
        let rest = text.trim_start().strip_prefix(q)?;
        rest.lines().next().map(str::trim).filter(|l| !l.is_empty())
    });
    let name = match file.strip_prefix(&format!("{id}_")) {
        Some(slug) if !slug.is_empty() => Some(slug.to_string()),
        _ => message.and_then(|m| file_name_part(m).ok()),
    };
    Ok(Some(Revision {
        down: list("down_revision")?,
        depends_on: list("depends_on")?,
        id,
        name,
        path: path.to_path_buf(),
    }))
}

pub fn load(dir: &Path) -> Result<Vec<MigrationFile>, LayoutError> {
    let dir = &script_dir(dir);
    let up_path = dir.join(UPGRADE);
    if !up_path.is_file() {
        return Err(LayoutError::Invalid(
            up_path,
            0,
            "missing: write it with `alembic upgrade --sql base:heads > upgrade.sql` \
             (and the down scripts with `alembic downgrade --sql head:base > downgrade.sql`) \
             from the project's folder"
                .into(),
        ));
    }
    let ups = sections(&up_path, &read(&up_path)?, "upgrade")?;
    let down_path = dir.join(DOWNGRADE);
    let downs: HashMap<String, Section> = if down_path.is_file() {
        sections(&down_path, &read(&down_path)?, "downgrade")?
            .into_iter()
            .map(|s| (s.revision.clone(), s))
            .collect()
    } else {
        HashMap::new()
    };

    let mut revisions: HashMap<String, Revision> = HashMap::new();
    let versions = dir.join("versions");
    for file in names(&versions, true)? {
        if !file.ends_with(".py") || file.starts_with('.') {
            continue;
        }
        let path = versions.join(&file);
        if let Some(r) = revision(&path, &read(&path)?)? {
            revisions.insert(r.id.clone(), r);
        }
    }
    let stale = |path: &Path, why: String| {
        LayoutError::Invalid(
            path.to_path_buf(),
            0,
            format!("{why}: {UPGRADE} is out of date; write it again with `alembic upgrade --sql base:heads`"),
        )
    };
    let ids: Vec<String> = ups.iter().map(|s| s.revision.clone()).collect();
    let in_sql: HashSet<&str> = ids.iter().map(String::as_str).collect();
    if let Some(r) = revisions.values().find(|r| !in_sql.contains(r.id.as_str())) {
        return Err(stale(
            &r.path,
            format!("revision {} is not in {UPGRADE}", r.id),
        ));
    }
    if let Some(d) = downs.keys().find(|d| !in_sql.contains(d.as_str())) {
        return Err(LayoutError::Invalid(
            down_path.clone(),
            0,
            format!("revision {d} is not in {UPGRADE}"),
        ));
    }

    let mut out: Vec<MigrationFile> = Vec::new();
    let mut seen = HashSet::new();
    for up in ups {
        if !seen.insert(up.revision.clone()) {
            return Err(LayoutError::Invalid(
                up_path.clone(),
                up.line.saturating_sub(1),
                format!("revision {} is upgraded twice", up.revision),
            ));
        }
        let file = revisions.get(&up.revision);
        let mut requires = up.other.clone();
        if let Some(r) = file {
            let mut a = r.down.clone();
            let mut b = up.other.clone();
            a.sort();
            b.sort();
            if a != b {
                return Err(stale(
                    &r.path,
                    format!(
                        "revision {} revises {} here and {} in {UPGRADE}",
                        r.id,
                        if a.is_empty() {
                            "nothing".into()
                        } else {
                            a.join(", ")
                        },
                        if b.is_empty() {
                            "nothing".into()
                        } else {
                            b.join(", ")
                        }
                    ),
                ));
            }
            for d in &r.depends_on {
                let target = resolve(&in_sql, d).ok_or_else(|| {
                    LayoutError::Invalid(
                        r.path.clone(),
                        0,
                        format!("depends_on names {d}, which is not a revision of {UPGRADE}"),
                    )
                })?;
                if !requires.iter().any(|x| x == target) {
                    requires.push(target.to_string());
                }
            }
        }
        let down = downs.get(&up.revision);
        out.push(MigrationFile {
            version: up.revision.clone(),
            name: file.and_then(|r| r.name.clone()),
            up: up.script,
            down: down.map(|d| d.script.clone()),
            transactional: up.transactional,
            repeatable: false,
            requires,
            up_path: up_path.clone(),
            up_line: up.line,
            down_path: down.map(|_| down_path.clone()),
            down_line: down.map_or(1, |d| d.line),
        });
    }
    let out = super::in_registry_order(out);
    check_versions("alembic", &out)?;
    Ok(out)
}

/// A revision named in full or by a unique prefix, as Alembic accepts them.
fn resolve<'a>(revisions: &HashSet<&'a str>, name: &str) -> Option<&'a str> {
    if let Some(r) = revisions.get(name) {
        return Some(r);
    }
    let mut matching = revisions.iter().filter(|r| r.starts_with(name));
    match (matching.next(), matching.next()) {
        (Some(r), None) => Some(r),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::super::testdir::TestDir;
    use super::*;

    const UP: &str = "BEGIN;

CREATE TABLE alembic_version (
    version_num VARCHAR(32) NOT NULL, 
    CONSTRAINT alembic_version_pkc PRIMARY KEY (version_num)
);

-- Running upgrade  -> ffe1

CREATE TABLE a (id int);

INSERT INTO alembic_version (version_num) VALUES ('ffe1') RETURNING alembic_version.version_num;

-- Running upgrade ffe1 -> 0ab2

COMMIT;

CREATE INDEX CONCURRENTLY a_id ON a (id);

BEGIN;

UPDATE alembic_version SET version_num='0ab2' WHERE alembic_version.version_num = 'ffe1';

-- Running upgrade ffe1 -> 1cd3

ALTER TABLE a ADD COLUMN b text;

INSERT INTO alembic_version (version_num) VALUES ('1cd3') RETURNING alembic_version.version_num;

-- Running upgrade 0ab2, 1cd3 -> 0ef4

DELETE FROM alembic_version WHERE alembic_version.version_num = '0ab2';

UPDATE alembic_version SET version_num='0ef4' WHERE alembic_version.version_num = '1cd3';

COMMIT;
";

    #[test]
    fn reads_the_offline_sql() {
        let dir = TestDir::new(&[
            ("upgrade.sql", UP),
            ("versions/ffe1_create_a.py", "\"\"\"create a\n\"\"\"\nrevision = 'ffe1'\ndown_revision = None\n"),
            (
                "versions/1cd3_add_b.py",
                "\"\"\"add b\"\"\"\nrevision: str = \"1cd3\"\ndown_revision: Union[str, None] = 'ffe1'\ndepends_on = (\n    '0ab2',\n)\n",
            ),
        ]);
        assert!(matches(dir.path()));
        let m = load(dir.path()).unwrap();
        let got: Vec<_> = m
            .iter()
            .map(|m| {
                (
                    m.version.as_str(),
                    m.name.as_deref(),
                    m.transactional,
                    m.requires.clone(),
                )
            })
            .collect();
        assert_eq!(
            got,
            [
                ("ffe1", Some("create_a"), None, vec![]),
                ("0ab2", None, Some(false), vec!["ffe1".to_string()]),
                (
                    "1cd3",
                    Some("add_b"),
                    None,
                    vec!["ffe1".to_string(), "0ab2".to_string()]
                ),
                (
                    "0ef4",
                    None,
                    None,
                    vec!["0ab2".to_string(), "1cd3".to_string()]
                ),
            ]
        );
        // Bookkeeping and the wrapper are gone, lines are kept.
        assert_eq!(m[0].up.trim(), "CREATE TABLE a (id int);");
        assert_eq!(m[0].up_line, 9);
        assert_eq!(m[0].up.lines().nth(1), Some("CREATE TABLE a (id int);"));
        assert_eq!(m[1].up.trim(), "CREATE INDEX CONCURRENTLY a_id ON a (id);");
        assert_eq!(m[3].up.trim(), "");
        assert!(m.iter().all(|m| m.down.is_none()));
    }

    #[test]
    fn refuses_what_it_cannot_run_as_alembic_does() {
        let mixed = UP.replace(
            "COMMIT;\n\nCREATE INDEX",
            "ALTER TABLE a ADD COLUMN c int;\n\nCOMMIT;\n\nCREATE INDEX",
        );
        let dir = TestDir::new(&[("upgrade.sql", &mixed), ("versions/.keep", "")]);
        let e = load(dir.path()).unwrap_err().to_string();
        assert!(
            e.contains("upgrade.sql:20: revision 0ab2 runs statements in an autocommit_block()"),
            "{e}"
        );
        // A revision file the SQL does not have: stale.
        let dir = TestDir::new(&[
            ("upgrade.sql", UP),
            (
                "versions/99_new.py",
                "revision = '99'\ndown_revision = '0ef4'\n",
            ),
        ]);
        let e = load(dir.path()).unwrap_err().to_string();
        assert!(e.contains("revision 99 is not in upgrade.sql"), "{e}");
        let dir = TestDir::new(&[
            ("upgrade.sql", UP),
            (
                "versions/0ab2_x.py",
                "revision = '0ab2'\ndown_revision = '1cd3'\n",
            ),
        ]);
        let e = load(dir.path()).unwrap_err().to_string();
        assert!(
            e.contains("revises 1cd3 here and ffe1 in upgrade.sql"),
            "{e}"
        );
        let dir = TestDir::new(&[("env.py", ""), ("versions/.keep", "")]);
        assert!(matches(dir.path()));
        assert!(load(dir.path())
            .unwrap_err()
            .to_string()
            .contains("alembic upgrade --sql base:heads"));
    }

    #[test]
    fn down_scripts_come_from_the_downgrade_sql() {
        let down = "BEGIN;\n\n-- Running downgrade 0ef4 -> 0ab2, 1cd3\n\nINSERT INTO alembic_version (version_num) VALUES ('0ab2') RETURNING alembic_version.version_num;\n\n-- Running downgrade 1cd3 -> ffe1\n\nALTER TABLE a DROP COLUMN b;\n\nDELETE FROM alembic_version WHERE alembic_version.version_num = '1cd3';\n\nCOMMIT;\n";
        let dir = TestDir::new(&[
            ("upgrade.sql", UP),
            ("downgrade.sql", down),
            ("versions/.keep", ""),
        ]);
        let m = load(dir.path()).unwrap();
        let b = m.iter().find(|m| m.version == "1cd3").unwrap();
        assert_eq!(
            b.down.as_deref().map(str::trim),
            Some("ALTER TABLE a DROP COLUMN b;")
        );
        assert_eq!(b.down_line, 8);
        assert!(m
            .iter()
            .find(|m| m.version == "ffe1")
            .unwrap()
            .down
            .is_none());
    }
}
