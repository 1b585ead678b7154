//! Drizzle: `NNNN_name.sql` files listed in `meta/_journal.json` (DIR is drizzle-kit's `out`
//! folder), read as drizzle-orm's migrator reads them:
//! - the journal's `entries`, in array order, are the migrations; each is the file
//!   `<tag>.sql`, which must exist; `.sql` files the journal does not list are ignored;
//! - the file's statements are separated by `--> statement-breakpoint` lines; these are SQL
//!   comments, so the registry gets the file text unchanged (and its SHA-256 is the `hash`
//!   Drizzle stores);
//! - the registry version is the entry's `when` (milliseconds since 1970), not the tag's
//!   `NNNN` prefix: `when` is what Drizzle itself stores (`__drizzle_migrations.created_at`) and
//!   compares to decide what is applied, so adopting a Drizzle database can match rows to
//!   versions without the journal, and it exists whatever tag prefix drizzle-kit was set to
//!   write (`index`, `timestamp`, `unix`, `none`). The name is the tag;
//! - Drizzle applies pending migrations whose `when` is later than the last applied one, so
//!   `when` must grow along the journal (checked, as the registry orders by version).

use std::path::Path;

use serde_json::Value;

use super::{check_versions, line_at, read, LayoutError, MigrationFile};

pub fn matches(dir: &Path) -> bool {
    dir.join("meta").join("_journal.json").is_file()
}

pub fn load(dir: &Path) -> Result<Vec<MigrationFile>, LayoutError> {
    let journal_path = dir.join("meta").join("_journal.json");
    let text = read(&journal_path)?;
    let journal: Value = serde_json::from_str(&text).map_err(|e| {
        LayoutError::Invalid(journal_path.clone(), e.line(), format!("not JSON: {e}"))
    })?;
    // serde_json keeps no positions: an entry's line is where its tag is written.
    let line_of = |tag: &str| {
        text.find(&format!("\"{tag}\""))
            .map_or(0, |at| line_at(&text, at))
    };
    if let Some(dialect) = journal.get("dialect").and_then(Value::as_str) {
        if !matches!(dialect, "postgresql" | "pg") {
            return Err(LayoutError::Invalid(
                journal_path.clone(),
                text.find("\"dialect\"").map_or(0, |at| line_at(&text, at)),
                format!("these migrations are for dialect {dialect:?}, not PostgreSQL"),
            ));
        }
    }
    let Some(entries) = journal.get("entries").and_then(Value::as_array) else {
        return Err(LayoutError::Invalid(
            journal_path,
            0,
            "no \"entries\" array".into(),
        ));
    };
    let mut out = Vec::new();
    for (i, entry) in entries.iter().enumerate() {
        let Some(tag) = entry.get("tag").and_then(Value::as_str) else {
            return Err(LayoutError::Invalid(
                journal_path,
                0,
                format!("entry {i} has no \"tag\" string"),
            ));
        };
        let Some(when) = entry.get("when").and_then(Value::as_u64) else {
            return Err(LayoutError::Invalid(
                journal_path.clone(),
                line_of(tag),
                format!("entry {tag:?} has no \"when\" timestamp"),
            ));
        };
        let up_path = dir.join(format!("{tag}.sql"));
        if !up_path.is_file() {
            return Err(LayoutError::Invalid(
                journal_path.clone(),
                line_of(tag),
                format!("entry {tag:?}: no file {tag}.sql"),
            ));
        }
        if let Some(prev) = out.last().map(|m: &MigrationFile| m.version.clone()) {
            if prev.parse::<u64>().is_ok_and(|p| p >= when) {
                return Err(LayoutError::Invalid(
                    journal_path.clone(),
                    line_of(tag),
                    format!(
                        "entry {tag:?} has \"when\" {when}, not after the entry before it \
                         ({prev}): Drizzle would skip it on a database that has the other"
                    ),
                ));
            }
        }
        out.push(MigrationFile {
            version: when.to_string(),
            name: Some(tag.to_string()),
            up: read(&up_path)?,
            down: None,
            transactional: None,
            repeatable: false,
            requires: Vec::new(),
            up_path,
            up_line: 1,
            down_path: None,
            down_line: 1,
        });
    }
    check_versions("Drizzle", &out)?;
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::layout::testdir::TestDir;
    use crate::layout::{detect, Layout};

    const JOURNAL: &str = r#"{
  "version": "7",
  "dialect": "postgresql",
  "entries": [
    { "idx": 0, "version": "7", "when": 1700000000000, "tag": "0000_init", "breakpoints": true },
    { "idx": 1, "version": "7", "when": 1700000100000, "tag": "0001_more", "breakpoints": true }
  ]
}"#;

    #[test]
    fn follows_the_journal() {
        let first = "CREATE TABLE a();\n--> statement-breakpoint\nCREATE TABLE b();\n";
        let dir = TestDir::new(&[
            ("meta/_journal.json", JOURNAL),
            ("0000_init.sql", first),
            ("0001_more.sql", "CREATE TABLE c();"),
            ("0002_unlisted.sql", "ignored"),
        ]);
        assert_eq!(detect(dir.path()).unwrap(), Layout::Drizzle);
        let m = load(dir.path()).unwrap();
        assert_eq!(m.len(), 2);
        assert_eq!(m[0].version, "1700000000000");
        assert_eq!(m[0].name.as_deref(), Some("0000_init"));
        assert_eq!(m[0].up, first);
        assert_eq!(m[1].version, "1700000100000");
    }

    #[test]
    fn refuses_broken_journals() {
        let dir = TestDir::new(&[("meta/_journal.json", JOURNAL), ("0000_init.sql", "x")]);
        let Err(LayoutError::Invalid(path, line, why)) = load(dir.path()) else {
            panic!()
        };
        assert!(path.ends_with("meta/_journal.json"));
        assert_eq!(line, 6);
        assert!(why.contains("no file 0001_more.sql"), "{why}");

        let backwards = JOURNAL.replace("1700000100000", "1600000000000");
        let dir = TestDir::new(&[
            ("meta/_journal.json", &backwards),
            ("0000_init.sql", "x"),
            ("0001_more.sql", "y"),
        ]);
        assert!(load(dir.path())
            .unwrap_err()
            .to_string()
            .contains("not after"));

        let dir = TestDir::new(&[("meta/_journal.json", "{ nope")]);
        assert!(load(dir.path())
            .unwrap_err()
            .to_string()
            .contains("not JSON"));

        let mysql = JOURNAL.replace("postgresql", "mysql");
        let dir = TestDir::new(&[("meta/_journal.json", &mysql)]);
        assert!(load(dir.path()).unwrap_err().to_string().contains("mysql"));
    }
}
