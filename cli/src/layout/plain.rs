//! The project's own layout: `VERSION_name.up.sql` with an optional `VERSION_name.down.sql`
//! next to it (`VERSION.up.sql` without a name works too). The version is everything before
//! the first `_`; order is the registry's natural version order.

use std::path::Path;

use super::{name_part, read, utc_timestamp, LayoutError, MigrationFile, NewFile};

const UP: &str = ".up.sql";
const DOWN: &str = ".down.sql";

pub fn matches(dir: &Path) -> bool {
    entries(dir).is_ok_and(|names| names.iter().any(|n| n.ends_with(UP)))
}

pub fn load(dir: &Path) -> Result<Vec<MigrationFile>, LayoutError> {
    let names = entries(dir)?;
    let mut out = Vec::new();
    for up_name in names.iter().filter(|n| n.ends_with(UP)) {
        let stem = &up_name[..up_name.len() - UP.len()];
        let (version, name) = match stem.split_once('_') {
            Some((v, n)) => (v, Some(n.to_string())),
            None => (stem, None),
        };
        if version.is_empty() {
            return Err(LayoutError::Invalid(
                dir.join(up_name),
                0,
                "the file name has no version before the first '_'".into(),
            ));
        }
        let up_path = dir.join(up_name);
        let down_name = format!("{stem}{DOWN}");
        let down_path = names.contains(&down_name).then(|| dir.join(&down_name));
        out.push(MigrationFile {
            version: version.to_string(),
            name,
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
    for down_name in names.iter().filter(|n| n.ends_with(DOWN)) {
        let stem = &down_name[..down_name.len() - DOWN.len()];
        if !names.contains(&format!("{stem}{UP}")) {
            return Err(LayoutError::Invalid(
                dir.join(down_name),
                0,
                format!("a down script without its up script {stem}{UP}"),
            ));
        }
    }
    out.sort_by(|a, b| migrate_core::version::compare(&a.version, &b.version));
    Ok(out)
}

/// `VERSION_name.up.sql` and `.down.sql` for a new migration: VERSION is `now` (a UTC
/// `YYYYMMDDHHMMSS`), or the next integer (same width) if the folder numbers its migrations
/// 1, 2, 3 (digits shorter than a timestamp); never at or before the newest version there.
pub fn plan(
    dir: &Path,
    existing: &[MigrationFile],
    name: &str,
    now: std::time::SystemTime,
) -> Result<Vec<NewFile>, LayoutError> {
    let name = name_part(dir, name)?;
    let now = utc_timestamp(now);
    let versions: Vec<&str> = existing.iter().map(|m| m.version.as_str()).collect();
    let newest = existing.last();
    let integers = !versions.is_empty()
        && versions
            .iter()
            .all(|v| v.len() < now.len() && v.bytes().all(|b| b.is_ascii_digit()));
    let version = match newest {
        Some(newest) if integers => next_integer(&newest.version),
        Some(newest) if migrate_core::version::compare(&now, &newest.version).is_le() => {
            if newest.version.bytes().all(|b| b.is_ascii_digit()) {
                next_integer(&newest.version)
            } else {
                return Err(LayoutError::Invalid(
                    newest.up_path.clone(),
                    0,
                    format!(
                        "the newest version {} is after {now}; pass a name to a folder with timestamp versions",
                        newest.version
                    ),
                ));
            }
        }
        _ => now,
    };
    Ok(vec![
        NewFile::new(
            dir.join(format!("{version}_{name}{UP}")),
            format!("-- {version} {name}: the change.\n"),
        ),
        NewFile::new(
            dir.join(format!("{version}_{name}{DOWN}")),
            format!("-- {version} {name}: what undoes it (delete this file if nothing can).\n"),
        ),
    ])
}

/// `0041` -> `0042`, `9` -> `10`.
fn next_integer(version: &str) -> String {
    let next = version.parse::<u128>().unwrap_or(0) + 1;
    format!("{next:0width$}", width = version.len())
}

/// File names in `dir`, sorted.
fn entries(dir: &Path) -> Result<Vec<String>, LayoutError> {
    let read_dir = std::fs::read_dir(dir).map_err(|e| LayoutError::Io(dir.to_path_buf(), e))?;
    let mut names = Vec::new();
    for entry in read_dir {
        let entry = entry.map_err(|e| LayoutError::Io(dir.to_path_buf(), e))?;
        if entry.file_type().is_ok_and(|t| t.is_file()) {
            if let Some(name) = entry.file_name().to_str() {
                names.push(name.to_string());
            }
        }
    }
    names.sort();
    Ok(names)
}

#[cfg(test)]
mod tests {
    use super::*;

    use crate::layout::testdir::{self, TestDir};
    use crate::layout::{scaffold_at, Layout};

    fn names(dir: &Path) -> Vec<String> {
        entries(dir).unwrap()
    }

    #[test]
    fn scaffolds_timestamps_then_integers() {
        let dir = TestDir::new(&[]);
        let (made, _) = testdir::scaffold(&dir, Layout::Plain, "Create users", "20240101120000");
        assert_eq!(
            made[0].path,
            dir.path().join("20240101120000_create_users.up.sql")
        );
        assert_eq!(
            names(dir.path()),
            [
                "20240101120000_create_users.down.sql",
                "20240101120000_create_users.up.sql"
            ]
        );
        // The same second again: the next version, never a clash.
        let (_, loaded) = testdir::scaffold(&dir, Layout::Plain, "more", "20240101120000");
        assert_eq!(loaded[1].version, "20240101120001");
        assert_eq!(loaded[1].name.as_deref(), Some("more"));

        let dir = TestDir::new(&[("0009_a.up.sql", "SELECT 1;")]);
        testdir::scaffold(&dir, Layout::Plain, "b", "20240101120000");
        assert!(names(dir.path()).contains(&"0010_b.up.sql".to_string()));
        let at = testdir::at("20240101120000");
        assert!(scaffold_at(dir.path(), Layout::Plain, "!!", at).is_err());

        // A folder that does not exist yet is created.
        let dir = TestDir::new(&[]);
        let sub = dir.path().join("migrations");
        scaffold_at(&sub, Layout::Plain, "first", at).unwrap();
        assert_eq!(load(&sub).unwrap().len(), 1);
    }

    #[test]
    fn next_integers_keep_their_width() {
        assert_eq!(next_integer("0041"), "0042");
        assert_eq!(next_integer("9"), "10");
        assert_eq!(next_integer("099"), "100");
    }
}
