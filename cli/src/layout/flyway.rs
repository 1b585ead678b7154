//! Flyway: `V<version>__<description>.sql` (versioned), `U<version>__<description>.sql` (the
//! undo script of that version), `R__<description>.sql` (repeatable), read as Flyway's
//! resource-name parser reads a location with its default settings:
//! - files anywhere below DIR (Flyway scans a location recursively) whose names start with a
//!   prefix and end in `.sql` (any case); names that do not parse (`V1_x.sql`, `V1.a__x.sql`,
//!   `R1__x.sql`) are skipped, as Flyway does unless `validateMigrationNaming` is set;
//! - the version is the text before the first `__`, `_` read as `.` (`V1_1__` is `1.1`);
//!   its parts are integers, leading and trailing zeros do not count (`1.0` = `1`, a
//!   duplicate), versioned migrations run in that numeric order;
//! - the description is the text after `__`, `_` shown as a space;
//! - repeatable migrations run after all versioned ones, in description order; the registry
//!   version of one is `R__` and its description with `_` for anything a version cannot hold;
//! - `<script>.conf` next to a script may say `executeInTransaction=false`; otherwise Flyway
//!   decides per script, and so does the server (`transactional` left unset).
//!
//! Flyway has no command that creates a migration; `new` writes `V<next>__<Description>.sql`
//! in DIR itself, the description's case kept and its words joined by `_`, where `<next>` is
//! the highest version with its last part one more, written as that version is (`1_2` ->
//! `1_3`, `1.09` -> `1.10`, none -> `1`), and `U<next>__<Description>.sql` next to it if the
//! folder has undo scripts.

use std::cmp::Ordering;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use super::{
    check_versions, description_part, file_name, read, LayoutError, MigrationFile, NewFile,
};

#[derive(Debug, PartialEq)]
enum Kind {
    Versioned,
    Undo,
    Repeatable,
}

#[derive(Debug)]
struct Parsed {
    kind: Kind,
    /// The version as Flyway displays it (`_` as `.`); empty for repeatables.
    version: String,
    /// The description with `_` as spaces.
    description: String,
    /// The description as written in the file name.
    raw_description: String,
}

fn parse(file: &str) -> Option<Parsed> {
    if file.len() < 4 || !file[file.len() - 4..].eq_ignore_ascii_case(".sql") {
        return None;
    }
    let stem = &file[..file.len() - 4];
    let kind = match stem.as_bytes().first()? {
        b'V' => Kind::Versioned,
        b'U' => Kind::Undo,
        b'R' => Kind::Repeatable,
        _ => return None,
    };
    let (version, raw) = stem[1..].split_once("__").unwrap_or((&stem[1..], ""));
    match kind {
        Kind::Repeatable if !version.is_empty() => return None,
        Kind::Versioned | Kind::Undo if parts(version).is_none() => return None,
        _ => {}
    }
    Some(Parsed {
        kind,
        version: version.replace('_', "."),
        description: raw.replace('_', " "),
        raw_description: raw.to_string(),
    })
}

/// The numeric parts of a version, trailing zeros dropped (how Flyway compares), or None if
/// Flyway cannot read it: parts are split at a `.` (or `_`) followed by a digit.
fn parts(version: &str) -> Option<Vec<String>> {
    if version.is_empty() {
        return None;
    }
    let normal = version.replace('_', ".");
    let mut out = Vec::new();
    let mut part = String::new();
    let bytes = normal.as_bytes();
    for (i, &b) in bytes.iter().enumerate() {
        if b == b'.' && bytes.get(i + 1).is_some_and(u8::is_ascii_digit) {
            out.push(std::mem::take(&mut part));
        } else {
            part.push(b as char);
        }
    }
    out.push(part);
    let mut out: Vec<String> = out
        .into_iter()
        .map(|p| {
            let digits = !p.is_empty() && p.bytes().all(|b| b.is_ascii_digit());
            digits.then(|| {
                let t = p.trim_start_matches('0');
                if t.is_empty() { "0" } else { t }.to_string()
            })
        })
        .collect::<Option<_>>()?;
    while out.len() > 1 && out.last().is_some_and(|p| p == "0") {
        out.pop();
    }
    Some(out)
}

fn compare_parts(a: &[String], b: &[String]) -> Ordering {
    for i in 0..a.len().max(b.len()) {
        let x = a.get(i).map_or("0", String::as_str);
        let y = b.get(i).map_or("0", String::as_str);
        let ord = x.len().cmp(&y.len()).then_with(|| x.cmp(y));
        if ord != Ordering::Equal {
            return ord;
        }
    }
    Ordering::Equal
}

/// Every `.sql` file below `dir` (hidden folders skipped), as (path, file name).
fn scan(dir: &Path, out: &mut Vec<(PathBuf, String)>) -> Result<(), LayoutError> {
    for name in super::names(dir, true)? {
        out.push((dir.join(&name), name));
    }
    for sub in super::names(dir, false)? {
        if !sub.starts_with('.') {
            scan(&dir.join(sub), out)?;
        }
    }
    Ok(())
}

pub fn matches(dir: &Path) -> bool {
    let mut files = Vec::new();
    scan(dir, &mut files).is_ok()
        && files
            .iter()
            .any(|(_, f)| parse(f).is_some_and(|p| p.kind != Kind::Undo))
}

pub fn load(dir: &Path) -> Result<Vec<MigrationFile>, LayoutError> {
    let mut files = Vec::new();
    scan(dir, &mut files)?;
    files.sort();
    let mut versioned: Vec<(Vec<String>, Parsed, PathBuf)> = Vec::new();
    let mut undo: Vec<(Vec<String>, PathBuf)> = Vec::new();
    let mut repeatable: BTreeMap<String, (Parsed, PathBuf)> = BTreeMap::new();
    for (path, file) in files {
        let Some(p) = parse(&file) else { continue };
        match p.kind {
            Kind::Versioned | Kind::Undo => {
                let key = parts(&p.version).expect("parse checked the version");
                let other = if p.kind == Kind::Undo {
                    undo.iter()
                        .find(|(k, _)| compare_parts(k, &key).is_eq())
                        .map(|(_, path)| path.clone())
                } else {
                    versioned
                        .iter()
                        .find(|(k, _, _)| compare_parts(k, &key).is_eq())
                        .map(|(_, _, path)| path.clone())
                };
                if let Some(other) = other {
                    return Err(LayoutError::Invalid(
                        path,
                        0,
                        format!(
                            "more than one {} migration with version {} (also {})",
                            if p.kind == Kind::Undo {
                                "undo"
                            } else {
                                "versioned"
                            },
                            p.version,
                            other.display()
                        ),
                    ));
                }
                if p.kind == Kind::Undo {
                    undo.push((key, path));
                } else {
                    versioned.push((key, p, path));
                }
            }
            Kind::Repeatable => {
                if let Some((_, other)) = repeatable.get(&p.description) {
                    return Err(LayoutError::Invalid(
                        path,
                        0,
                        format!(
                            "more than one repeatable migration with description {:?} (also {})",
                            p.description,
                            other.display()
                        ),
                    ));
                }
                repeatable.insert(p.description.clone(), (p, path));
            }
        }
    }
    versioned.sort_by(|a, b| compare_parts(&a.0, &b.0));
    let mut out = Vec::new();
    for (key, p, up_path) in versioned {
        let down_path = undo
            .iter()
            .position(|(k, _)| compare_parts(k, &key).is_eq())
            .map(|i| undo.swap_remove(i).1);
        out.push(MigrationFile {
            version: p.version,
            name: (!p.description.is_empty()).then_some(p.description),
            up: read(&up_path)?,
            down: down_path.as_deref().map(read).transpose()?,
            transactional: transactional(&up_path)?,
            repeatable: false,
            requires: Vec::new(),
            up_path,
            up_line: 1,
            down_path,
            down_line: 1,
        });
    }
    if let Some((_, path)) = undo.first() {
        return Err(LayoutError::Invalid(
            path.clone(),
            0,
            "an undo script without a versioned migration of its version".into(),
        ));
    }
    // BTreeMap order is Flyway's description order (Java compares UTF-16 units; the same
    // for the descriptions file names carry, short of characters beyond the BMP).
    for (description, (p, up_path)) in repeatable {
        let version: String = p
            .raw_description
            .chars()
            .map(|c| {
                if c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-') {
                    c
                } else {
                    '_'
                }
            })
            .collect();
        out.push(MigrationFile {
            version: format!("R__{version}"),
            name: Some(description),
            up: read(&up_path)?,
            down: None,
            transactional: transactional(&up_path)?,
            repeatable: true,
            requires: Vec::new(),
            up_path,
            up_line: 1,
            down_path: None,
            down_line: 1,
        });
    }
    check_versions("Flyway", &out)?;
    Ok(out)
}

/// The next versioned migration (and its undo script if the folder uses them).
pub fn plan(
    dir: &Path,
    existing: &[MigrationFile],
    name: &str,
    _now: std::time::SystemTime,
) -> Result<Vec<NewFile>, LayoutError> {
    let description =
        description_part(name).map_err(|why| LayoutError::Invalid(dir.to_path_buf(), 0, why))?;
    let version = match existing.iter().rfind(|m| !m.repeatable) {
        None => "1".to_string(),
        Some(last) => {
            // The version as the file name writes it: after the prefix, up to `__`.
            let stem = file_name(&last.up_path);
            let stem = &stem[1..stem.len() - 4];
            let written = stem.split_once("__").map_or(stem, |(v, _)| v);
            next_version(written).ok_or_else(|| {
                LayoutError::Invalid(
                    last.up_path.clone(),
                    0,
                    format!("cannot tell the version after {written}"),
                )
            })?
        }
    };
    let mut files = vec![NewFile::new(
        dir.join(format!("V{version}__{description}.sql")),
        format!("-- Flyway migration {version}: the change.\n"),
    )];
    if existing.iter().any(|m| m.down.is_some()) {
        files.push(NewFile::new(
            dir.join(format!("U{version}__{description}.sql")),
            format!("-- Undo of {version}: what undoes it.\n"),
        ));
    }
    Ok(files)
}

/// `1_2` -> `1_3`, `1.09` -> `1.10`, `7` -> `8`: the last numeric part plus one, its width and
/// the separators kept.
fn next_version(written: &str) -> Option<String> {
    let digits = written.bytes().rev().take_while(u8::is_ascii_digit).count();
    if digits == 0 {
        return None;
    }
    let (head, last) = written.split_at(written.len() - digits);
    let next = last.parse::<u128>().ok()?.checked_add(1)?;
    Some(format!("{head}{next:0digits$}"))
}

/// `Some(false)` when `<script>.conf` says `executeInTransaction=false` (a Java properties
/// file: `key=value`, `key: value` or `key value`; `#` and `!` start comments).
fn transactional(script: &Path) -> Result<Option<bool>, LayoutError> {
    let mut conf = script.as_os_str().to_owned();
    conf.push(".conf");
    let conf = PathBuf::from(conf);
    if !conf.is_file() {
        return Ok(None);
    }
    for line in read(&conf)?.lines() {
        let line = line.trim_start();
        if line.starts_with('#') || line.starts_with('!') {
            continue;
        }
        let Some(rest) = line.strip_prefix("executeInTransaction") else {
            continue;
        };
        let value = rest.trim_start().trim_start_matches(['=', ':']).trim();
        if value.eq_ignore_ascii_case("false") {
            return Ok(Some(false));
        }
    }
    Ok(None)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::layout::testdir::TestDir;
    use crate::layout::{detect, Layout};

    #[test]
    fn parses_names() {
        let p = parse("V1_1__Add_users.sql").unwrap();
        assert_eq!((p.kind, p.version.as_str()), (Kind::Versioned, "1.1"));
        assert_eq!(p.description, "Add users");
        let p = parse("R__views.SQL").unwrap();
        assert_eq!(
            (p.kind, p.description.as_str()),
            (Kind::Repeatable, "views")
        );
        assert_eq!(parse("U2__x.sql").unwrap().kind, Kind::Undo);
        assert_eq!(parse("V3.sql").unwrap().description, "");
        for skipped in [
            "V1_x.sql",
            "V1.a__x.sql",
            "R1__x.sql",
            "V__x.sql",
            "x.sql",
            "V1__x.txt",
        ] {
            assert!(parse(skipped).is_none(), "{skipped}");
        }
        assert_eq!(parts("1.0.0").unwrap(), ["1"]);
        assert_eq!(parts("01.010").unwrap(), ["1", "10"]);
        assert_eq!(parts("1..2"), None);
    }

    #[test]
    fn orders_versioned_then_repeatable() {
        let dir = TestDir::new(&[
            ("V1.10__ten.sql", "SELECT 110;\n"),
            ("V1.9__nine.sql", "SELECT 19;\n"),
            ("sub/V2__in_sub_folder.sql", "SELECT 2;\n"),
            ("U1.9__nine.sql", "SELECT -19;\n"),
            ("R__views.sql", "CREATE OR REPLACE VIEW v AS SELECT 1;\n"),
            ("R__a_function.sql", "SELECT 'f';\n"),
            (
                "V2__in_sub_folder.sql.conf",
                "ignored: belongs to another path",
            ),
            (
                "sub/V2__in_sub_folder.sql.conf",
                "# why\nexecuteInTransaction=false\n",
            ),
            ("V1_x.sql", "skipped"),
            ("README.md", "ignored"),
        ]);
        assert_eq!(detect(dir.path()).unwrap(), Layout::Flyway);
        let m = load(dir.path()).unwrap();
        let got: Vec<_> = m
            .iter()
            .map(|m| (m.version.as_str(), m.name.as_deref().unwrap(), m.repeatable))
            .collect();
        assert_eq!(
            got,
            [
                ("1.9", "nine", false),
                ("1.10", "ten", false),
                ("2", "in sub folder", false),
                ("R__a_function", "a function", true),
                ("R__views", "views", true),
            ]
        );
        assert_eq!(m[0].down.as_deref(), Some("SELECT -19;\n"));
        assert_eq!(m[1].down, None);
        assert_eq!(m[2].transactional, Some(false));
        assert_eq!(m[0].transactional, None);
    }

    #[test]
    fn scaffolds_the_next_version() {
        use crate::layout::testdir::scaffold;
        assert_eq!(next_version("1_2").as_deref(), Some("1_3"));
        assert_eq!(next_version("1.09").as_deref(), Some("1.10"));
        assert_eq!(next_version("7").as_deref(), Some("8"));
        let dir = TestDir::new(&[
            ("V1__Create_users.sql", "SELECT 1;\n"),
            ("U1__Create_users.sql", "SELECT -1;\n"),
            ("V1_2__Index.sql", "SELECT 2;\n"),
            ("R__views.sql", "SELECT 3;\n"),
        ]);
        let (files, m) = scaffold(&dir, Layout::Flyway, "Add orders", "20240101000000");
        assert_eq!(files[0].path, dir.path().join("V1_3__Add_orders.sql"));
        assert_eq!(files[1].path, dir.path().join("U1_3__Add_orders.sql"));
        let last = m.last().unwrap();
        assert_eq!(
            (last.version.as_str(), last.name.as_deref()),
            ("1.3", Some("Add orders"))
        );
        assert!(last.down.is_some());
        // Dotted, in a sub-folder, no undo scripts: only the V file.
        let dir = TestDir::new(&[("V1__a.sql", "x"), ("release/V1.9__b.sql", "y")]);
        let (files, m) = scaffold(&dir, Layout::Flyway, "c", "20240101000000");
        assert_eq!(files.len(), 1);
        assert_eq!(files[0].path, dir.path().join("V1.10__c.sql"));
        assert_eq!(m.last().unwrap().version, "1.10");
        let dir = TestDir::new(&[]);
        let (files, _) = scaffold(&dir, Layout::Flyway, "init", "20240101000000");
        assert_eq!(files[0].path, dir.path().join("V1__init.sql"));
    }

    #[test]
    fn refuses_what_flyway_refuses() {
        let dir = TestDir::new(&[("V1__a.sql", "x"), ("V1.0__b.sql", "y")]);
        assert!(load(dir.path())
            .unwrap_err()
            .to_string()
            .contains("more than one"));
        let dir = TestDir::new(&[("R__a.sql", "x"), ("sub/R__a.sql", "y")]);
        assert!(load(dir.path())
            .unwrap_err()
            .to_string()
            .contains("more than one"));
        let dir = TestDir::new(&[("V1__a.sql", "x"), ("U2__b.sql", "y")]);
        assert!(load(dir.path())
            .unwrap_err()
            .to_string()
            .contains("undo script without"));
    }
}
