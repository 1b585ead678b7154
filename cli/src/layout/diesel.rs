//! diesel: one folder per migration, `VERSION_name/up.sql` with an optional `down.sql` and
//! `metadata.toml`, read as `diesel_migrations` reads it:
//! - every non-hidden, non-empty sub-folder is a migration and must have `up.sql`; files and
//!   empty or hidden folders next to them are ignored;
//! - diesel's version is the folder name up to the first `_`, with `-` removed
//!   (`2015-12-19-180527_create_users` is `20151219180527`, as stored in
//!   `__diesel_schema_migrations`), and migrations run in text order of that version;
//! - diesel_cli 2.3 appends a sub-second counter, four hex digits: `2025-12-29-110242-0000`
//!   is `202512291102420000` to diesel. Histories that span the upgrade mix both lengths,
//!   which text order sorts by date but the registry's natural order would sort by length
//!   (crates.io's does), so the registry version keeps that counter apart:
//!   `20251229110242-0000`. Removing the `-` gives diesel's version back;
//! - `metadata.toml`: a missing or unreadable file means "in a transaction"; a readable one
//!   without `run_in_transaction` means not (diesel's field default is `false`);
//! - a missing `down.sql` means the migration cannot be reverted; an empty `up.sql` or
//!   `down.sql` is a no-op, as the migrations that applications embed with
//!   `embed_migrations!` run it (the `diesel migration` command alone refuses empty files;
//!   crates.io's history has such a migration).
//!
//! `00000000000000_diesel_initial_setup` is a migration like any other: diesel applies it.
//!
//! `new` writes `YYYY-MM-DD-HHMMSS_name/up.sql` and `down.sql` with the comments
//! `diesel migration generate` writes, in its classic form without 2.3's counter: a
//! 14-digit version sorts after a `-0000` one of an earlier second both in diesel's text
//! order and in the registry's, where the counter form of the same second would not.

use std::path::Path;

use super::{
    check_versions, name_part, names, next_timestamp, read, LayoutError, MigrationFile, NewFile,
};

pub fn matches(dir: &Path) -> bool {
    if dir.join("migration_lock.toml").is_file() {
        return false; // Prisma's per-migration folders
    }
    names(dir, false).is_ok_and(|subdirs| {
        subdirs
            .iter()
            .any(|d| !d.starts_with('.') && dir.join(d).join("up.sql").is_file())
    })
}

pub fn load(dir: &Path) -> Result<Vec<MigrationFile>, LayoutError> {
    let mut out = Vec::new();
    for folder in names(dir, false)? {
        let path = dir.join(&folder);
        if folder.starts_with('.') || is_empty(&path)? {
            continue;
        }
        let up_path = path.join("up.sql");
        if !up_path.is_file() {
            return Err(LayoutError::Invalid(
                path,
                0,
                "a migration folder without up.sql (diesel refuses the whole folder)".into(),
            ));
        }
        let (prefix, name) = match folder.split_once('_') {
            Some((v, n)) => (v, Some(n.to_string())),
            None => (folder.as_str(), None),
        };
        let up = read(&up_path)?;
        let down_path = path.join("down.sql");
        let down_path = down_path.is_file().then_some(down_path);
        let down = down_path.as_deref().map(read).transpose()?;
        let metadata = path.join("metadata.toml");
        let in_transaction = !metadata.is_file() || run_in_transaction(&read(&metadata)?);
        out.push(MigrationFile {
            version: registry_version(prefix),
            name,
            up,
            down,
            transactional: (!in_transaction).then_some(false),
            repeatable: false,
            requires: Vec::new(),
            up_path,
            up_line: 1,
            down_path,
            down_line: 1,
        });
    }
    // diesel sorts by its version string (bytewise); a stable sort keeps folder order for ties
    // so that the duplicate is the one reported.
    out.sort_by_key(|m| m.version.replace('-', ""));
    check_versions("diesel", &out)?;
    Ok(out)
}

/// The registry version of a folder whose name starts with `prefix`: diesel's (without
/// dashes), the counter of diesel_cli 2.3's `YYYY-MM-DD-HHMMSS-NNNN` kept apart.
fn registry_version(prefix: &str) -> String {
    let groups: Vec<&str> = prefix.split('-').collect();
    if let [year, month, day, time, counter] = groups[..] {
        let digits = |g: &str, n: usize| g.len() == n && g.bytes().all(|b| b.is_ascii_digit());
        if digits(year, 4)
            && digits(month, 2)
            && digits(day, 2)
            && digits(time, 6)
            && counter.len() == 4
            && counter.bytes().all(|b| b.is_ascii_hexdigit())
        {
            return format!("{year}{month}{day}{time}-{counter}");
        }
    }
    prefix.replace('-', "")
}

/// The new migration's folder: the UTC second `now`, or the one after the newest migration's.
pub fn plan(
    dir: &Path,
    existing: &[MigrationFile],
    name: &str,
    now: std::time::SystemTime,
) -> Result<Vec<NewFile>, LayoutError> {
    let name = name_part(dir, name)?;
    // A 2.3 version's second is the part before its counter.
    let newest = existing
        .last()
        .map(|m| m.version.split('-').next().unwrap_or(""));
    let t = next_timestamp(now, newest);
    let folder = dir.join(format!(
        "{}-{}-{}-{}_{name}",
        &t[..4],
        &t[4..6],
        &t[6..8],
        &t[8..]
    ));
    if folder.exists() {
        return Err(LayoutError::Invalid(folder, 0, "already exists".into()));
    }
    Ok(vec![
        NewFile::new(folder.join("up.sql"), "-- Your SQL goes here\n"),
        NewFile::new(
            folder.join("down.sql"),
            "-- This file should undo anything in `up.sql`\n",
        ),
    ])
}

fn is_empty(path: &Path) -> Result<bool, LayoutError> {
    let mut entries =
        std::fs::read_dir(path).map_err(|e| LayoutError::Io(path.to_path_buf(), e))?;
    Ok(entries.next().is_none())
}

/// What diesel makes of `metadata.toml`: the top-level `run_in_transaction` boolean; `false`
/// when the key is absent; `true` (its fallback) when the file is not TOML it can read. Reads
/// the flat `key = value` subset that such files use; a table header ends the top level.
fn run_in_transaction(toml: &str) -> bool {
    let mut found = None;
    for raw in toml.lines() {
        let line = strip_comment(raw).trim();
        if line.is_empty() {
            continue;
        }
        if line.starts_with('[') {
            break;
        }
        let Some((key, value)) = line.split_once('=') else {
            return true; // not TOML: diesel falls back to its default
        };
        let key = key.trim().trim_matches('"');
        if key != "run_in_transaction" {
            continue;
        }
        let value = match value.trim() {
            "true" => true,
            "false" => false,
            _ => return true, // not a boolean: deserialising fails, the default applies
        };
        if found.is_some() {
            return true; // a duplicate key is a TOML error
        }
        found = Some(value);
    }
    found.unwrap_or(false)
}

/// The line without a `#` comment (outside a basic string).
fn strip_comment(line: &str) -> &str {
    let mut in_string = false;
    for (i, c) in line.char_indices() {
        match c {
            '"' => in_string = !in_string,
            '#' if !in_string => return &line[..i],
            _ => {}
        }
    }
    line
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::layout::testdir::TestDir;
    use crate::layout::{detect, Layout};

    #[test]
    fn reads_folders_as_diesel_does() {
        let dir = TestDir::new(&[
            ("00000000000000_diesel_initial_setup/up.sql", "SELECT 1;\n"),
            (
                "00000000000000_diesel_initial_setup/down.sql",
                "SELECT 2;\n",
            ),
            (
                "2024-01-02-030405_create_users/up.sql",
                "CREATE TABLE u();\n",
            ),
            ("2024-01-02-030405_create_users/down.sql", "DROP TABLE u;\n"),
            (
                "2024-02-01-000000_index/up.sql",
                "CREATE INDEX CONCURRENTLY i ON u();\n",
            ),
            (
                "2024-02-01-000000_index/metadata.toml",
                "# comment\nrun_in_transaction = false # why\n",
            ),
            ("2024-03-01-000000_empty_down/up.sql", ""),
            ("2024-03-01-000000_empty_down/down.sql", ""),
            ("README.md", "ignored"),
            (".hidden/up.sql", "ignored"),
        ]);
        std::fs::create_dir(dir.path().join("empty_folder")).unwrap();
        assert_eq!(detect(dir.path()).unwrap(), Layout::Diesel);
        let m = load(dir.path()).unwrap();
        let versions: Vec<_> = m.iter().map(|m| m.version.as_str()).collect();
        assert_eq!(
            versions,
            [
                "00000000000000",
                "20240102030405",
                "20240201000000",
                "20240301000000"
            ]
        );
        assert_eq!(m[0].name.as_deref(), Some("diesel_initial_setup"));
        assert_eq!(m[1].up, "CREATE TABLE u();\n");
        assert_eq!(m[1].down.as_deref(), Some("DROP TABLE u;\n"));
        assert_eq!(m[1].transactional, None);
        assert_eq!(m[2].transactional, Some(false));
        assert_eq!(m[2].down, None);
        assert_eq!(m[3].up, "", "an empty script is a no-op");
        assert_eq!(m[3].down.as_deref(), Some(""));
    }

    #[test]
    fn diesel_2_3_counters_stay_apart() {
        assert_eq!(registry_version("2015-12-19-180527"), "20151219180527");
        assert_eq!(registry_version("20151219180527"), "20151219180527");
        assert_eq!(
            registry_version("2025-12-29-110242-0000"),
            "20251229110242-0000"
        );
        assert_eq!(
            registry_version("2025-12-29-110242-00a1"),
            "20251229110242-00a1"
        );
        assert_eq!(registry_version("2025-12-29"), "20251229");
        // Both spellings of one second, and a later date, in diesel's order.
        let dir = TestDir::new(&[
            ("2026-05-27-120000-0000_b/up.sql", "SELECT 2;\n"),
            ("2026-05-27-120000_a/up.sql", "SELECT 1;\n"),
            ("2026-01-20-162913_old_style/up.sql", "SELECT 0;\n"),
            ("2025-12-29-110242-0000_new_style/up.sql", "SELECT -1;\n"),
        ]);
        let versions: Vec<String> = load(dir.path())
            .unwrap()
            .into_iter()
            .map(|m| m.version)
            .collect();
        assert_eq!(
            versions,
            [
                "20251229110242-0000",
                "20260120162913",
                "20260527120000",
                "20260527120000-0000"
            ]
        );
    }

    #[test]
    fn metadata_follows_diesel_defaults() {
        assert!(run_in_transaction("run_in_transaction = true\n"));
        assert!(!run_in_transaction("run_in_transaction = false\n"));
        assert!(
            !run_in_transaction("# nothing set\n"),
            "field default is false"
        );
        assert!(!run_in_transaction("other = 1\n"));
        assert!(run_in_transaction("run_in_transaction = \"no\"\n"));
        assert!(run_in_transaction("this is not toml\n"));
        assert!(run_in_transaction(
            "run_in_transaction = false\nrun_in_transaction = false\n"
        ));
        assert!(!run_in_transaction("[table]\nrun_in_transaction = true\n"));
    }

    #[test]
    fn refuses_what_diesel_refuses() {
        let dir = TestDir::new(&[("2024_a/down.sql", "SELECT 1;\n")]);
        assert!(matches!(load(dir.path()), Err(LayoutError::Invalid(..))));
        // Two spellings of one version: diesel would silently keep one of them.
        let dir = TestDir::new(&[
            ("2024-01-01_a/up.sql", "SELECT 1;\n"),
            ("20240101_b/up.sql", "SELECT 2;\n"),
        ]);
        assert!(matches!(load(dir.path()), Err(LayoutError::Invalid(..))));
        // Text order and natural order disagree.
        let dir = TestDir::new(&[
            ("9_a/up.sql", "SELECT 1;\n"),
            ("10_b/up.sql", "SELECT 2;\n"),
        ]);
        let err = load(dir.path()).unwrap_err().to_string();
        assert!(err.contains("registry orders"), "{err}");
    }

    #[test]
    fn scaffolds_after_classic_and_counter_versions() {
        use crate::layout::testdir::scaffold;
        let dir = TestDir::new(&[
            ("00000000000000_diesel_initial_setup/up.sql", "SELECT 1;\n"),
            (
                "2026-12-01-234029-0000_add_users_name/up.sql",
                "SELECT 2;\n",
            ),
        ]);
        // The newest migration's second: the next one, classic form.
        let (files, m) = scaffold(&dir, Layout::Diesel, "Add orders", "20261201234029");
        assert_eq!(
            files[0].path,
            dir.path().join("2026-12-01-234030_add_orders/up.sql")
        );
        assert_eq!(
            files[1].text,
            "-- This file should undo anything in `up.sql`\n"
        );
        let last = m.last().unwrap();
        assert_eq!(last.version, "20261201234030");
        assert_eq!(last.name.as_deref(), Some("add_orders"));
        assert_eq!(last.down.as_deref(), Some(files[1].text.as_str()));
        let (_, m) = scaffold(&dir, Layout::Diesel, "later", "20270105000000");
        assert_eq!(m.len(), 4);
        assert_eq!(m[3].version, "20270105000000");

        // A version no timestamp sorts after: refused, the folder left as it was.
        let dir = TestDir::new(&[("99999999999999999_x/up.sql", "SELECT 1;\n")]);
        let at = crate::layout::testdir::at("20270105000000");
        let err = crate::layout::scaffold_at(dir.path(), Layout::Diesel, "y", at).unwrap_err();
        assert!(err.to_string().contains("99999999999999999_x"), "{err}");
        assert_eq!(load(dir.path()).unwrap().len(), 1);
        assert!(!dir.path().join("2027-01-05-000000_y").exists());
    }

    #[test]
    fn prisma_folders_are_not_diesel() {
        let dir = TestDir::new(&[
            ("migration_lock.toml", "provider = \"postgresql\"\n"),
            ("20240101000000_init/migration.sql", "SELECT 1;\n"),
        ]);
        assert!(!matches(dir.path()));
    }
}
