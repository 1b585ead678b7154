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
//!
//! `new` does what `drizzle-kit generate --custom --name NAME` does to the migrations: the
//! file `NNNN_name.sql` (NNNN the entry's index, four digits) holding drizzle-kit's comment,
//! and an entry appended to the journal (`idx`, `version` as the entry before it, `when` in
//! milliseconds, after the last one, `tag`, `breakpoints: true`), the rest of the journal's
//! text kept as it is. Journals whose tags have another prefix (drizzle-kit's `prefix`
//! setting: `timestamp`, `unix`, `none`) are refused. drizzle-kit's schema snapshot
//! (`meta/NNNN_snapshot.json`) is not written: a custom migration's is a copy of the one
//! before, which drizzle-kit reads in its place.

use std::path::Path;

use serde_json::Value;

use super::{check_versions, line_at, name_part, read, LayoutError, MigrationFile, NewFile};

/// A journal as drizzle-kit starts one (`JSON.stringify(journal, null, 2)`, no final newline).
const NEW_JOURNAL: &str =
    "{\n  \"version\": \"7\",\n  \"dialect\": \"postgresql\",\n  \"entries\": []\n}";

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

/// The new migration's file and the journal with its entry.
pub fn plan(
    dir: &Path,
    existing: &[MigrationFile],
    name: &str,
    now: std::time::SystemTime,
) -> Result<Vec<NewFile>, LayoutError> {
    let name = name_part(dir, name)?;
    let journal_path = dir.join("meta").join("_journal.json");
    let (text, replaces) = if journal_path.is_file() {
        (read(&journal_path)?, true)
    } else {
        (NEW_JOURNAL.to_string(), false)
    };
    let journal: Value = serde_json::from_str(&text).map_err(|e| {
        LayoutError::Invalid(journal_path.clone(), e.line(), format!("not JSON: {e}"))
    })?;
    let entries = journal
        .get("entries")
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default();
    let refuse = |why: String| LayoutError::Invalid(journal_path.clone(), 0, why);
    for (i, entry) in entries.iter().enumerate() {
        let tag = entry.get("tag").and_then(Value::as_str).unwrap_or("");
        let idx = entry.get("idx").and_then(Value::as_u64);
        if idx != Some(i as u64) || !tag.starts_with(&format!("{i:04}_")) {
            return Err(refuse(format!(
                "entry {i} ({tag:?}) is not the index-prefixed tag drizzle-kit writes by \
                 default (\"{i:04}_...\" with \"idx\": {i}); write this migration with drizzle-kit"
            )));
        }
    }
    let idx = entries.len();
    let version = entries
        .last()
        .and_then(|e| e.get("version"))
        .or_else(|| journal.get("version"))
        .and_then(Value::as_str)
        .unwrap_or("7");
    let millis = now
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64);
    let last_when = existing.last().and_then(|m| m.version.parse::<u64>().ok());
    let when = match last_when {
        Some(last) if last >= millis => last + 1,
        _ => millis,
    };
    let tag = format!("{idx:04}_{name}");
    let entry = format!(
        "{{\n      \"idx\": {idx},\n      \"version\": {},\n      \"when\": {when},\n      \
         \"tag\": {},\n      \"breakpoints\": true\n    }}",
        Value::from(version),
        Value::from(tag.as_str()),
    );
    let journal_text = append_entry(&text, &entry)
        .ok_or_else(|| refuse("cannot find the end of its \"entries\" array".into()))?;
    Ok(vec![
        NewFile::new(
            dir.join(format!("{tag}.sql")),
            "-- Custom SQL migration file, put your code below! --\n",
        ),
        NewFile {
            path: journal_path,
            text: journal_text,
            replaces,
        },
    ])
}

/// `journal` with `entry` (indented for its place) appended to the top-level `entries`
/// array, every other byte kept.
fn append_entry(journal: &str, entry: &str) -> Option<String> {
    let bytes = journal.as_bytes();
    let (mut depth, mut in_string, mut escaped) = (0usize, false, false);
    let (mut string_start, mut last_string) = (0, "");
    let mut open = None;
    for (i, &b) in bytes.iter().enumerate() {
        if in_string {
            match b {
                _ if escaped => escaped = false,
                b'\\' => escaped = true,
                b'"' => {
                    in_string = false;
                    last_string = &journal[string_start..i];
                }
                _ => {}
            }
            continue;
        }
        match b {
            b'"' => {
                in_string = true;
                string_start = i + 1;
            }
            b'{' | b'[' => {
                if b == b'[' && depth == 1 && last_string == "entries" && open.is_none() {
                    open = Some(i);
                }
                depth += 1;
            }
            b'}' | b']' => {
                depth = depth.checked_sub(1)?;
                if let (Some(start), b']', 1) = (open, b, depth) {
                    let inside = journal[start + 1..i].trim_end();
                    return Some(if inside.trim().is_empty() {
                        format!(
                            "{}[\n    {entry}\n  ]{}",
                            &journal[..start],
                            &journal[i + 1..]
                        )
                    } else {
                        let end = start + 1 + inside.len();
                        format!("{},\n    {entry}{}", &journal[..end], &journal[end..])
                    });
                }
            }
            _ => {}
        }
    }
    None
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
    fn scaffolds_a_file_and_a_journal_entry() {
        use crate::layout::testdir::scaffold;
        let pretty = r#"{
  "version": "7",
  "dialect": "postgresql",
  "entries": [
    {
      "idx": 0,
      "version": "7",
      "when": 1700000000000,
      "tag": "0000_init",
      "breakpoints": true
    }
  ]
}"#;
        let dir = TestDir::new(&[("meta/_journal.json", pretty), ("0000_init.sql", "x")]);
        // A clock behind the last entry: one millisecond after it.
        let (files, m) = scaffold(&dir, Layout::Drizzle, "Add orders", "20231101000000");
        assert_eq!(files[0].path, dir.path().join("0001_add_orders.sql"));
        assert!(files[1].replaces);
        let last = m.last().unwrap();
        assert_eq!(
            (last.version.as_str(), last.name.as_deref()),
            ("1700000000001", Some("0001_add_orders"))
        );
        let want = pretty.replace(
            "    }\n  ]",
            "    },\n    {\n      \"idx\": 1,\n      \"version\": \"7\",\n      \
             \"when\": 1700000000001,\n      \"tag\": \"0001_add_orders\",\n      \
             \"breakpoints\": true\n    }\n  ]",
        );
        assert_eq!(files[1].text, want);
        // The clock ahead: its milliseconds.
        let (_, m) = scaffold(&dir, Layout::Drizzle, "next", "20240301000000");
        assert_eq!(m[2].version, "1709251200000");
        assert_eq!(m[2].name.as_deref(), Some("0002_next"));

        // A new folder: the journal drizzle-kit starts, then the entry.
        let dir = TestDir::new(&[]);
        let (files, m) = scaffold(&dir, Layout::Drizzle, "init", "20240301000000");
        assert!(!files[1].replaces);
        assert_eq!(m.len(), 1);
        assert_eq!(detect(dir.path()).unwrap(), Layout::Drizzle);
        let journal: Value = serde_json::from_str(&files[1].text).unwrap();
        assert_eq!(journal["entries"][0]["tag"], "0000_init");
        assert!(files[1]
            .text
            .contains("  \"entries\": [\n    {\n      \"idx\": 0,"));

        // Tags drizzle-kit wrote with another prefix: refused.
        let odd = JOURNAL.replace("0000_init", "1700000000_init");
        let dir = TestDir::new(&[
            ("meta/_journal.json", &odd),
            ("1700000000_init.sql", "x"),
            ("0001_more.sql", "y"),
        ]);
        let at = crate::layout::testdir::at("20240301000000");
        let err = crate::layout::scaffold_at(dir.path(), Layout::Drizzle, "b", at)
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("_journal.json") && err.contains("1700000000_init"),
            "{err}"
        );
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
