//! sqlx: `VERSION_description.sql` (simple, up only) or `VERSION_description.up.sql` with
//! `VERSION_description.down.sql` (reversible), read as `sqlx-core`'s migration source does:
//! - a file is a migration when its name has a `_` and ends in `.sql`; others are ignored;
//! - the part before the first `_` must then be an `i64` (sqlx refuses the folder otherwise);
//!   migrations run in numeric order; the description is the rest without the suffix,
//!   `_` shown as a space (as in `_sqlx_migrations.description`);
//! - a file whose text starts with `-- no-transaction` runs outside a transaction;
//! - a down script belongs to the up script of the same version.
//!
//! `new` names files as `sqlx migrate add` does, inferring what sqlx-cli infers: reversible
//! (`.up.sql` + `.down.sql`) when the newest migration is, else one `.sql` file; sequential
//! (`{:04}` of the newest version plus one) when the two newest versions differ by one or the
//! only one is 0 or 1, else a UTC `YYYYMMDDHHMMSS` (after the newest); the scripts hold the
//! comment sqlx-cli writes.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use super::{
    check_versions, name_part, names, next_timestamp, read, LayoutError, MigrationFile, NewFile,
};

const NO_TX: &str = "-- no-transaction";

#[derive(Clone, Copy, PartialEq)]
enum Kind {
    Simple,
    Up,
    Down,
}

/// `(version text, rest)` of a name sqlx looks at.
fn split(file: &str) -> Option<(&str, &str)> {
    let (version, rest) = file.split_once('_')?;
    rest.ends_with(".sql").then_some((version, rest))
}

fn kind(rest: &str) -> (Kind, &'static str) {
    if rest.ends_with(".up.sql") {
        (Kind::Up, ".up.sql")
    } else if rest.ends_with(".down.sql") {
        (Kind::Down, ".down.sql")
    } else {
        (Kind::Simple, ".sql")
    }
}

/// A one-file migration, or a `-- no-transaction` line, that only sqlx has; not a folder
/// that dbmate or Drizzle claims (their files are named alike).
pub fn matches(dir: &Path) -> bool {
    if dir.join("meta").join("_journal.json").is_file() || super::dbmate::matches(dir) {
        return false;
    }
    let Ok(files) = names(dir, true) else {
        return false;
    };
    let ours: Vec<(&String, Kind)> = files
        .iter()
        .filter_map(|f| {
            let (v, rest) = split(f)?;
            v.parse::<i64>().ok()?;
            Some((f, kind(rest).0))
        })
        .collect();
    ours.iter().any(|(_, k)| *k == Kind::Simple)
        || ours.iter().any(|(f, k)| {
            *k == Kind::Up
                && std::fs::read(dir.join(f)).is_ok_and(|b| b.starts_with(NO_TX.as_bytes()))
        })
}

pub fn load(dir: &Path) -> Result<Vec<MigrationFile>, LayoutError> {
    let mut ups: BTreeMap<i64, (String, PathBuf, String)> = BTreeMap::new();
    let mut downs: BTreeMap<i64, (PathBuf, String)> = BTreeMap::new();
    for file in names(dir, true)? {
        let Some((version, rest)) = split(&file) else {
            continue;
        };
        let path = dir.join(&file);
        let Ok(number) = version.parse::<i64>() else {
            return Err(LayoutError::Invalid(
                path,
                0,
                "sqlx expects an integer version before the first '_' (e.g. 01_foo.sql)".into(),
            ));
        };
        if number < 0 {
            // sqlx would take it, but the registry orders "-5" as text, after every number.
            return Err(LayoutError::Invalid(
                path,
                0,
                "a negative version cannot be ordered by the registry".into(),
            ));
        }
        let (kind, suffix) = kind(rest);
        // sqlx trims the suffix as often as it repeats.
        let mut description = rest;
        while let Some(d) = description.strip_suffix(suffix) {
            description = d;
        }
        let description = description.replace('_', " ");
        let text = read(&path)?;
        let taken = if kind == Kind::Down {
            downs.insert(number, (path.clone(), text)).is_some()
        } else {
            ups.insert(number, (description, path.clone(), text))
                .is_some()
        };
        if taken {
            return Err(LayoutError::Invalid(
                path,
                0,
                format!(
                    "a second {} script for version {number}",
                    if kind == Kind::Down { "down" } else { "up" }
                ),
            ));
        }
    }
    if let Some((version, (path, _))) = downs.iter().find(|(v, _)| !ups.contains_key(v)) {
        return Err(LayoutError::Invalid(
            path.clone(),
            0,
            format!("a down script without an up script for version {version}"),
        ));
    }
    let mut out = Vec::new();
    for (version, (description, up_path, up)) in ups {
        let down = downs.remove(&version);
        out.push(MigrationFile {
            version: version.to_string(),
            name: (!description.is_empty()).then_some(description),
            transactional: up.starts_with(NO_TX).then_some(false),
            up,
            down_path: down.as_ref().map(|d| d.0.clone()),
            down: down.map(|d| d.1),
            repeatable: false,
            requires: Vec::new(),
            up_path,
            up_line: 1,
            down_line: 1,
        });
    }
    check_versions("sqlx", &out)?;
    Ok(out)
}

/// The next migration's file or files; see the module comment.
pub fn plan(
    dir: &Path,
    existing: &[MigrationFile],
    name: &str,
    now: std::time::SystemTime,
) -> Result<Vec<NewFile>, LayoutError> {
    let name = name_part(dir, name)?;
    // `load` has checked that every version is a non-negative i64.
    let versions: Vec<i64> = existing
        .iter()
        .map(|m| m.version.parse().unwrap_or(0))
        .collect();
    let sequential = match versions[..] {
        [.., before, last] => last.checked_sub(before) == Some(1),
        [last] => last == 0 || last == 1,
        [] => false,
    };
    let prefix = match versions.last() {
        Some(&last) if sequential => format!("{:04}", last.saturating_add(1)),
        _ => next_timestamp(now, existing.last().map(|m| m.version.as_str())),
    };
    let reversible = existing
        .last()
        .is_some_and(|m| m.down.is_some() || m.up_path.to_string_lossy().ends_with(".up.sql"));
    Ok(if reversible {
        vec![
            NewFile::new(
                dir.join(format!("{prefix}_{name}.up.sql")),
                "-- Add up migration script here\n",
            ),
            NewFile::new(
                dir.join(format!("{prefix}_{name}.down.sql")),
                "-- Add down migration script here\n",
            ),
        ]
    } else {
        vec![NewFile::new(
            dir.join(format!("{prefix}_{name}.sql")),
            "-- Add migration script here\n",
        )]
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::layout::testdir::TestDir;
    use crate::layout::{detect, Layout};

    #[test]
    fn simple_migrations() {
        let dir = TestDir::new(&[
            ("20240102000000_add_posts.sql", "CREATE TABLE p();\n"),
            ("20240101000000_create_users.sql", "CREATE TABLE u();\n"),
            (
                "20240103000000_index.sql",
                "-- no-transaction\nCREATE INDEX CONCURRENTLY i ON u();\n",
            ),
            ("README.md", "ignored"),
            ("schema.sql", "ignored: no '_'"),
        ]);
        assert_eq!(detect(dir.path()).unwrap(), Layout::Sqlx);
        let m = load(dir.path()).unwrap();
        let got: Vec<_> = m
            .iter()
            .map(|m| {
                (
                    m.version.as_str(),
                    m.name.as_deref().unwrap(),
                    m.transactional,
                )
            })
            .collect();
        assert_eq!(
            got,
            [
                ("20240101000000", "create users", None),
                ("20240102000000", "add posts", None),
                ("20240103000000", "index", Some(false)),
            ]
        );
        assert!(m.iter().all(|m| m.down.is_none()));
    }

    #[test]
    fn reversible_migrations() {
        let dir = TestDir::new(&[
            ("1_init.up.sql", "-- no-transaction\nSELECT 1;\n"),
            ("1_init.down.sql", "SELECT 2;\n"),
            ("2_more.up.sql", "SELECT 3;\n"),
        ]);
        assert_eq!(detect(dir.path()).unwrap(), Layout::Sqlx);
        let m = load(dir.path()).unwrap();
        assert_eq!(m.len(), 2);
        assert_eq!(m[0].name.as_deref(), Some("init"));
        assert_eq!(m[0].down.as_deref(), Some("SELECT 2;\n"));
        assert_eq!(m[0].transactional, Some(false));
        assert_eq!(m[1].down, None);
    }

    #[test]
    fn refuses_what_sqlx_refuses() {
        let dir = TestDir::new(&[("v1_init.sql", "x")]);
        assert!(matches!(load(dir.path()), Err(LayoutError::Invalid(..))));
        let dir = TestDir::new(&[("1_a.sql", "x"), ("1_b.up.sql", "y")]);
        assert!(load(dir.path())
            .unwrap_err()
            .to_string()
            .contains("second up"));
        let dir = TestDir::new(&[("1_a.sql", "x"), ("2_b.down.sql", "y")]);
        assert!(load(dir.path())
            .unwrap_err()
            .to_string()
            .contains("without an up"));
    }

    #[test]
    fn scaffolds_as_sqlx_cli_infers() {
        use crate::layout::testdir::scaffold;
        // Simple, timestamps.
        let dir = TestDir::new(&[
            ("20240101000000_a.sql", "SELECT 1;\n"),
            ("20240102000000_b.sql", "SELECT 2;\n"),
        ]);
        let (files, m) = scaffold(&dir, Layout::Sqlx, "Add orders", "20240301000000");
        assert_eq!(files.len(), 1);
        assert_eq!(
            files[0].path,
            dir.path().join("20240301000000_add_orders.sql")
        );
        let last = m.last().unwrap();
        assert_eq!(last.name.as_deref(), Some("add orders"));
        assert_eq!(last.down, None);
        // Reversible, sequential.
        let dir = TestDir::new(&[
            ("0001_a.up.sql", "SELECT 1;\n"),
            ("0001_a.down.sql", "SELECT -1;\n"),
            ("0002_b.up.sql", "SELECT 2;\n"),
            ("0002_b.down.sql", "SELECT -2;\n"),
        ]);
        let (files, m) = scaffold(&dir, Layout::Sqlx, "c", "20240301000000");
        assert_eq!(files[0].path, dir.path().join("0003_c.up.sql"));
        assert_eq!(files[1].path, dir.path().join("0003_c.down.sql"));
        let last = m.last().unwrap();
        assert_eq!(
            (last.version.as_str(), last.name.as_deref()),
            ("3", Some("c"))
        );
        assert_eq!(
            last.down.as_deref(),
            Some("-- Add down migration script here\n")
        );
        // One migration numbered 1: sequential, like sqlx-cli.
        let dir = TestDir::new(&[("1_a.sql", "SELECT 1;\n")]);
        let (files, _) = scaffold(&dir, Layout::Sqlx, "b", "20240301000000");
        assert_eq!(files[0].path, dir.path().join("0002_b.sql"));
    }

    #[test]
    fn dbmate_and_drizzle_folders_are_not_sqlx() {
        let dir = TestDir::new(&[("1_a.sql", "-- migrate:up\nSELECT 1;\n-- migrate:down\n")]);
        assert!(!matches(dir.path()));
        let dir = TestDir::new(&[("0000_a.sql", "SELECT 1;\n"), ("meta/_journal.json", "{}")]);
        assert!(!matches(dir.path()));
    }
}
