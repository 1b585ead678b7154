//! golang-migrate: `N_name.up.sql` with an optional `N_name.down.sql`, read as its `source`
//! package reads a folder:
//! - a file is a migration when its name is `N_name.up.EXT` or `N_name.down.EXT`: N digits, a
//!   `_`, then anything (the name may contain dots; the direction is the last `.up.`/`.down.`);
//!   every other name, and N too big for an unsigned 64-bit integer, is ignored;
//! - the version is N as that integer (`000001` is `1`, as stored in `schema_migrations`);
//!   two files with one version and direction are an error; migrations run in numeric order;
//! - golang-migrate has no per-file transaction marker (the server detects statements that
//!   cannot run in one).
//!
//! `new` writes `N_name.up.sql` and `N_name.down.sql` as `migrate create -ext sql` does: N is
//! the next integer, zero-padded to the width the folder's files use (`-seq -digits`), or a
//! UTC `YYYYMMDDHHMMSS` when the folder's newest version is one (or the folder is empty: the
//! tool's default format).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use super::{
    check_versions, file_name, name_part, names, next_timestamp, parse_timestamp, read,
    LayoutError, MigrationFile, NewFile,
};

/// One parsed file name.
struct Parsed<'a> {
    version: u64,
    name: &'a str,
    up: bool,
}

/// A version's up file (with its name) and down file.
type Pair = (Option<(String, PathBuf)>, Option<PathBuf>);

fn parse(file: &str) -> Option<Parsed<'_>> {
    let digits = file.bytes().take_while(u8::is_ascii_digit).count();
    let rest = file[digits..].strip_prefix('_')?;
    if digits == 0 {
        return None;
    }
    let (at, up) = match (rest.rfind(".up."), rest.rfind(".down.")) {
        (Some(u), Some(d)) if d > u => (d, false),
        (Some(u), _) => (u, true),
        (None, Some(d)) => (d, false),
        (None, None) => return None,
    };
    // Whatever follows the direction is the extension; golang-migrate reads any.
    Some(Parsed {
        version: file[..digits].parse().ok()?,
        name: &rest[..at],
        up,
    })
}

/// Every `*.up.sql` / `*.down.sql` file is one golang-migrate reads, and there is one up.
pub fn matches(dir: &Path) -> bool {
    let Ok(files) = names(dir, true) else {
        return false;
    };
    let sql: Vec<&String> = files
        .iter()
        .filter(|f| f.ends_with(".up.sql") || f.ends_with(".down.sql"))
        .collect();
    !sql.is_empty()
        && sql.iter().all(|f| parse(f).is_some())
        && sql.iter().any(|f| parse(f).is_some_and(|p| p.up))
}

pub fn load(dir: &Path) -> Result<Vec<MigrationFile>, LayoutError> {
    let mut by_version: BTreeMap<u64, Pair> = BTreeMap::new();
    for file in names(dir, true)? {
        let Some(p) = parse(&file) else { continue };
        let entry = by_version.entry(p.version).or_default();
        let path = dir.join(&file);
        let slot_taken = if p.up {
            entry
                .0
                .replace((p.name.to_string(), path.clone()))
                .is_some()
        } else {
            entry.1.replace(path.clone()).is_some()
        };
        if slot_taken {
            return Err(LayoutError::Invalid(
                path,
                0,
                format!(
                    "a second {} file for version {}",
                    if p.up { "up" } else { "down" },
                    p.version
                ),
            ));
        }
    }
    let mut out = Vec::new();
    for (version, (up, down_path)) in by_version {
        let Some((name, up_path)) = up else {
            return Err(LayoutError::Invalid(
                down_path.expect("an entry has a file"),
                0,
                format!("a down script without an up script for version {version}"),
            ));
        };
        out.push(MigrationFile {
            version: version.to_string(),
            name: (!name.is_empty()).then_some(name),
            up: read(&up_path)?,
            down: down_path.as_deref().map(read).transpose()?,
            transactional: None,
            repeatable: false,
            requires: Vec::new(),
            up_path,
            up_line: 1,
            down_path,
            down_line: 1,
        });
    }
    check_versions("golang-migrate", &out)?;
    Ok(out)
}

/// The next migration's pair of files; see the module comment.
pub fn plan(
    dir: &Path,
    existing: &[MigrationFile],
    name: &str,
    now: std::time::SystemTime,
) -> Result<Vec<NewFile>, LayoutError> {
    let name = name_part(dir, name)?;
    let digits = |m: &MigrationFile| {
        let file = file_name(&m.up_path);
        file[..file.bytes().take_while(u8::is_ascii_digit).count()].to_string()
    };
    let version = match existing.last() {
        None => next_timestamp(now, None),
        Some(last) if parse_timestamp(&digits(last)).is_some() => {
            next_timestamp(now, Some(&digits(last)))
        }
        Some(last) => {
            let width = digits(last).len();
            let padded = existing.iter().any(|m| {
                let d = digits(m);
                d.len() > 1 && d.starts_with('0')
            });
            // Zero-padded files of different widths: which one is the folder's?
            if let Some(other) = existing.iter().find(|m| digits(m).len() != width) {
                if padded {
                    return Err(LayoutError::Invalid(
                        other.up_path.clone(),
                        0,
                        format!(
                            "its version is {} digits wide, the newest's {width}: \
                             rename the files to one width",
                            digits(other).len()
                        ),
                    ));
                }
            }
            let next = last
                .version
                .parse::<u64>()
                .unwrap_or(u64::MAX)
                .checked_add(1);
            let Some(next) = next else {
                return Err(LayoutError::Invalid(
                    last.up_path.clone(),
                    0,
                    "no version after this one".into(),
                ));
            };
            let width = if padded { width } else { 1 };
            format!("{next:0width$}")
        }
    };
    Ok(vec![
        NewFile::new(
            dir.join(format!("{version}_{name}.up.sql")),
            format!("-- {version} {name}: the change.\n"),
        ),
        NewFile::new(
            dir.join(format!("{version}_{name}.down.sql")),
            format!("-- {version} {name}: what undoes it.\n"),
        ),
    ])
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::layout::testdir::TestDir;
    use crate::layout::{detect, Layout};

    #[test]
    fn parses_names_like_the_regex() {
        let p = parse("000001_create_users.up.sql").unwrap();
        assert_eq!((p.version, p.name, p.up), (1, "create_users", true));
        let p = parse("2_a.up.b.down.sql").unwrap();
        assert_eq!((p.name, p.up), ("a.up.b", false));
        let p = parse("3_.up.sql").unwrap();
        assert_eq!(p.name, "");
        assert!(parse("1.up.sql").is_none(), "no _ after the version");
        assert!(parse("v1_a.up.sql").is_none());
        assert!(parse("1_a.sql").is_none());
        assert!(parse("99999999999999999999_a.up.sql").is_none(), "over u64");
    }

    #[test]
    fn loads_in_numeric_order() {
        let dir = TestDir::new(&[
            ("000010_ten.up.sql", "SELECT 10;\n"),
            ("000002_two.up.sql", "SELECT 2;\n"),
            ("000002_two.down.sql", "SELECT -2;\n"),
            ("README.md", "ignored"),
            ("notes.sql", "ignored"),
        ]);
        assert_eq!(detect(dir.path()).unwrap(), Layout::GolangMigrate);
        let m = load(dir.path()).unwrap();
        assert_eq!(m.len(), 2);
        assert_eq!(m[0].version, "2");
        assert_eq!(m[0].name.as_deref(), Some("two"));
        assert_eq!(m[0].down.as_deref(), Some("SELECT -2;\n"));
        assert_eq!(m[1].version, "10");
        assert_eq!(m[1].down, None);
    }

    #[test]
    fn refuses_duplicates_and_orphan_downs() {
        let dir = TestDir::new(&[("1_a.up.sql", "x"), ("01_b.up.sql", "y")]);
        let err = load(dir.path()).unwrap_err().to_string();
        assert!(err.contains("second up"), "{err}");
        let dir = TestDir::new(&[("1_a.up.sql", "x"), ("2_b.down.sql", "y")]);
        let err = load(dir.path()).unwrap_err().to_string();
        assert!(err.contains("without an up"), "{err}");
    }

    #[test]
    fn scaffolds_the_next_integer_or_a_timestamp() {
        use crate::layout::testdir::scaffold;
        let dir = TestDir::new(&[
            ("000001_a.up.sql", "SELECT 1;\n"),
            ("000001_a.down.sql", "SELECT 2;\n"),
            ("000009_b.up.sql", "SELECT 3;\n"),
        ]);
        let (files, m) = scaffold(&dir, Layout::GolangMigrate, "Add orders", "20240101000000");
        assert_eq!(files[0].path, dir.path().join("000010_add_orders.up.sql"));
        assert_eq!(files[1].path, dir.path().join("000010_add_orders.down.sql"));
        let last = m.last().unwrap();
        assert_eq!(
            (last.version.as_str(), last.name.as_deref()),
            ("10", Some("add_orders"))
        );
        assert!(last.down.is_some());
        // Unpadded numbers stay unpadded.
        let dir = TestDir::new(&[("9_a.up.sql", "x"), ("10_b.up.sql", "y")]);
        let (files, _) = scaffold(&dir, Layout::GolangMigrate, "c", "20240101000000");
        assert_eq!(files[0].path, dir.path().join("11_c.up.sql"));
        // Timestamps.
        let dir = TestDir::new(&[("20240101000000_a.up.sql", "x")]);
        let (_, m) = scaffold(&dir, Layout::GolangMigrate, "b", "20240101000000");
        assert_eq!(m[1].version, "20240101000001");
        // Two paddings: refused, naming the odd file.
        let dir = TestDir::new(&[("01_a.up.sql", "x"), ("0002_b.up.sql", "y")]);
        let at = crate::layout::testdir::at("20240101000000");
        let err = crate::layout::scaffold_at(dir.path(), Layout::GolangMigrate, "c", at)
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("01_a.up.sql") && err.contains("one width"),
            "{err}"
        );
    }

    #[test]
    fn non_numeric_versions_are_plain() {
        let dir = TestDir::new(&[("2024-01-01_a.up.sql", "x"), ("1_b.up.sql", "y")]);
        assert!(!matches(dir.path()));
        assert_eq!(detect(dir.path()).unwrap(), Layout::Plain);
    }
}
