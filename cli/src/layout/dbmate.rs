//! dbmate: one file per migration, `VERSION_name.sql`, with a `-- migrate:up` and a
//! `-- migrate:down` section, read as dbmate's `migration.go` reads it:
//! - a file is a migration when its name is digits, anything, `.sql`; the version is those
//!   digits as written (`schema_migrations.version` is text) and files run in name order;
//! - a directive is a line starting `--`, optional whitespace, `migrate:up` or `migrate:down`,
//!   then the end of the line or whitespace and options such as `transaction:false`;
//! - only comments and blank lines may precede `-- migrate:up`; both directives are required,
//!   one of each, the down directive after the up one (a down line above the up line is
//!   only a comment to dbmate);
//! - the up script is the text after the up directive's line up to the down directive, the
//!   down script the text after the down directive's line (dbmate executes the directive
//!   lines too; they are comments, so the scripts are equivalent, and `up_line`/`down_line`
//!   give each script's first line in the file).
//!
//! dbmate 2.28 and later also accept several up/down pairs in one file, each run on its own;
//! one registry migration has one up and one down script, so such files are refused with a
//! hint to split them.
//!
//! `new` writes `<UTC YYYYMMDDHHMMSS>_name.sql` as `dbmate new` does, its two sections each
//! holding a comment.

use std::path::Path;

use super::{
    check_versions, line_at, name_part, names, next_timestamp, read, LayoutError, MigrationFile,
    NewFile,
};

/// The version digits of a name dbmate reads, or None.
fn version_of(file: &str) -> Option<&str> {
    let digits = file.bytes().take_while(u8::is_ascii_digit).count();
    (digits > 0 && file.ends_with(".sql") && file.len() > digits).then(|| &file[..digits])
}

/// Byte offsets of the `-- migrate:<word>` directives at line starts.
fn directives(text: &str, word: &str) -> Vec<usize> {
    let mut out = Vec::new();
    let mut start = 0;
    loop {
        if is_directive(&text[start..], word) {
            out.push(start);
        }
        match text[start..].find('\n') {
            Some(n) => start += n + 1,
            None => return out,
        }
    }
}

fn is_directive(line: &str, word: &str) -> bool {
    let Some(rest) = line.strip_prefix("--") else {
        return false;
    };
    let Some(rest) = rest
        .trim_start_matches(char::is_whitespace)
        .strip_prefix("migrate:")
        .and_then(|r| r.strip_prefix(word))
    else {
        return false;
    };
    rest.is_empty() || rest.starts_with(char::is_whitespace)
}

/// The `transaction:false` option of the directive line starting at `at`.
fn in_transaction(text: &str, at: usize) -> bool {
    let line = text[at..].split('\n').next().unwrap_or("");
    let options = line.split_once("migrate:").map_or("", |(_, r)| r);
    let options = options.trim_start_matches("up").trim_start_matches("down");
    !options
        .split_whitespace()
        .any(|pair| pair.split(':').collect::<Vec<_>>() == ["transaction", "false"])
}

/// Offset just past the line starting at `at`.
fn after_line(text: &str, at: usize) -> usize {
    text[at..].find('\n').map_or(text.len(), |n| at + n + 1)
}

/// A file of dbmate's name whose text has a `-- migrate:up` directive.
pub fn matches(dir: &Path) -> bool {
    names(dir, true).is_ok_and(|files| {
        files.iter().any(|f| {
            version_of(f).is_some()
                && std::fs::read_to_string(dir.join(f))
                    .is_ok_and(|text| !directives(&text, "up").is_empty())
        })
    })
}

pub fn load(dir: &Path) -> Result<Vec<MigrationFile>, LayoutError> {
    let mut out = Vec::new();
    for file in names(dir, true)? {
        let Some(version) = version_of(&file) else {
            continue;
        };
        let path = dir.join(&file);
        let text = read(&path)?;
        let invalid = |offset: Option<usize>, why: &str| {
            LayoutError::Invalid(
                path.clone(),
                offset.map_or(0, |o| line_at(&text, o)),
                why.to_string(),
            )
        };
        let ups = directives(&text, "up");
        let Some(&up_at) = ups.first() else {
            return Err(invalid(
                None,
                "no '-- migrate:up' line (dbmate requires one)",
            ));
        };
        let mut offset = 0;
        for line in text[..up_at].split_inclusive('\n') {
            let line_text = line.trim_start();
            if !line_text.is_empty() && !line_text.starts_with("--") {
                return Err(invalid(Some(offset), "a statement before '-- migrate:up'"));
            }
            offset += line.len();
        }
        if ups.len() > 1 {
            return Err(invalid(
                Some(ups[1]),
                "a second '-- migrate:up' section: migrate-cli takes one up/down pair \
                 per file; split this file in two",
            ));
        }
        // A section starts at its up directive: a down line above it is only a comment.
        let downs: Vec<usize> = directives(&text, "down")
            .into_iter()
            .filter(|&d| d > up_at)
            .collect();
        let Some(&down_at) = downs.first() else {
            return Err(invalid(
                None,
                "no '-- migrate:down' line after '-- migrate:up' (dbmate requires one)",
            ));
        };
        if downs.len() > 1 {
            return Err(invalid(Some(downs[1]), "a second '-- migrate:down' line"));
        }
        let up_start = after_line(&text, up_at).min(down_at);
        let down_start = after_line(&text, down_at);
        let name = file[version.len()..file.len() - ".sql".len()].trim_start_matches('_');
        out.push(MigrationFile {
            version: version.to_string(),
            name: (!name.is_empty()).then(|| name.to_string()),
            up: text[up_start..down_at].to_string(),
            down: Some(text[down_start..].to_string()),
            transactional: (!in_transaction(&text, up_at)).then_some(false),
            repeatable: false,
            requires: Vec::new(),
            up_path: path.clone(),
            up_line: line_at(&text, up_start),
            down_path: Some(path.clone()),
            down_line: line_at(&text, down_start),
        });
    }
    check_versions("dbmate", &out)?;
    Ok(out)
}

/// The next migration's file: `now` (or the second after the newest version).
pub fn plan(
    dir: &Path,
    existing: &[MigrationFile],
    name: &str,
    now: std::time::SystemTime,
) -> Result<Vec<NewFile>, LayoutError> {
    let name = name_part(dir, name)?;
    let version = next_timestamp(now, existing.last().map(|m| m.version.as_str()));
    Ok(vec![NewFile::new(
        dir.join(format!("{version}_{name}.sql")),
        "-- migrate:up\n-- The change.\n\n-- migrate:down\n-- What undoes it.\n",
    )])
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::layout::testdir::TestDir;
    use crate::layout::{detect, Layout};

    const USERS: &str = "-- a leading comment\n\n-- migrate:up\ncreate table users (id int);\n\n\
                         -- migrate:down\ndrop table users;\n";

    #[test]
    fn splits_sections() {
        let dir = TestDir::new(&[
            ("20240101000000_create_users.sql", USERS),
            (
                "20240102000000_index.sql",
                "--migrate:up transaction:false\nCREATE INDEX CONCURRENTLY i ON users(id);\n\
                 --   migrate:down\nDROP INDEX CONCURRENTLY i;",
            ),
            ("README.md", "ignored"),
        ]);
        assert_eq!(detect(dir.path()).unwrap(), Layout::Dbmate);
        let m = load(dir.path()).unwrap();
        assert_eq!(m[0].version, "20240101000000");
        assert_eq!(m[0].name.as_deref(), Some("create_users"));
        assert_eq!(m[0].up, "create table users (id int);\n\n");
        assert_eq!(m[0].up_line, 4);
        assert_eq!(m[0].down.as_deref(), Some("drop table users;\n"));
        assert_eq!(m[0].down_line, 7);
        assert_eq!(m[0].transactional, None);
        assert_eq!(m[1].transactional, Some(false));
        assert_eq!(m[1].down.as_deref(), Some("DROP INDEX CONCURRENTLY i;"));
    }

    #[test]
    fn directive_rules() {
        assert!(is_directive("-- migrate:up", "up"));
        assert!(is_directive("-- migrate:up\r\n", "up"));
        assert!(is_directive("--migrate:up transaction:false", "up"));
        assert!(!is_directive("-- migrate:upgrade", "up"));
        assert!(!is_directive(" -- migrate:up", "up"));
        assert!(!in_transaction("-- migrate:up transaction:false\n", 0));
        assert!(in_transaction("-- migrate:up transaction:true\n", 0));
        assert!(in_transaction("-- migrate:up\ntransaction:false\n", 0));
    }

    #[test]
    fn refuses_what_dbmate_refuses() {
        let cases = [
            ("SELECT 1;\n", "no '-- migrate:up'"),
            ("-- migrate:up\nSELECT 1;\n", "no '-- migrate:down'"),
            ("SELECT 0;\n-- migrate:up\n-- migrate:down\n", "before"),
            ("-- migrate:down\n-- migrate:up\n", "no '-- migrate:down'"),
            (
                "-- migrate:up\n-- migrate:down\n-- migrate:down\n",
                "second '-- migrate:down'",
            ),
            (
                "-- migrate:up\n-- migrate:down\n-- migrate:up\n-- migrate:down\n",
                "split",
            ),
        ];
        for (text, why) in cases {
            let dir = TestDir::new(&[("1_a.sql", text)]);
            let err = load(dir.path()).unwrap_err().to_string();
            assert!(err.contains(why), "{text:?}: {err}");
        }
        let dir = TestDir::new(&[("1_a.sql", "x\n-- migrate:up\n-- migrate:down\n")]);
        let Err(LayoutError::Invalid(_, line, _)) = load(dir.path()) else {
            panic!()
        };
        assert_eq!(line, 1);
    }

    #[test]
    fn scaffolds_one_file_with_both_sections() {
        use crate::layout::testdir::scaffold;
        let dir = TestDir::new(&[("20240101000000_create_users.sql", USERS)]);
        let (files, m) = scaffold(&dir, Layout::Dbmate, "Add orders", "20240301000000");
        assert_eq!(
            files[0].path,
            dir.path().join("20240301000000_add_orders.sql")
        );
        let last = m.last().unwrap();
        assert_eq!(last.name.as_deref(), Some("add_orders"));
        assert_eq!(last.up, "-- The change.\n\n");
        assert_eq!(last.down.as_deref(), Some("-- What undoes it.\n"));
        assert_eq!(detect(dir.path()).unwrap(), Layout::Dbmate);
        // dbmate runs `9_a.sql` after any timestamp: refused, nothing left behind.
        let dir = TestDir::new(&[("9_a.sql", USERS)]);
        let at = crate::layout::testdir::at("20240301000000");
        let err = crate::layout::scaffold_at(dir.path(), Layout::Dbmate, "b", at).unwrap_err();
        assert!(err.to_string().contains("9_a.sql"), "{err}");
        assert_eq!(load(dir.path()).unwrap().len(), 1);
    }

    #[test]
    fn name_order_must_agree_with_version_order() {
        let body = "-- migrate:up\n-- migrate:down\n";
        let dir = TestDir::new(&[("9_a.sql", body), ("10_b.sql", body)]);
        assert!(load(dir.path())
            .unwrap_err()
            .to_string()
            .contains("registry orders"));
    }
}
