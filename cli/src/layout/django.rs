//! Django: a folder exported from a Django project by `cli/django/export_migrations.py`
//! (run with the project's settings; see docs/CLI.md#django), since Django keeps its
//! migrations as Python and only `sqlmigrate` turns them into SQL:
//! - `meta.json`: `{"format": "migrate-django-export 1", "django": VERSION, "migrations":
//!   [{"app", "name", "requires", "atomic", "reversible", "runs_python"}, ...]}` in Django's
//!   own plan order; `requires` are Django's resolved dependencies (`__first__`, `__latest__`
//!   and swappable settings resolved, squashed migrations as Django chose them for the
//!   database the export ran against), as `app.name`;
//! - `APP/NAME.up.sql`: `manage.py sqlmigrate APP NAME`; `APP/NAME.down.sql`: `sqlmigrate
//!   --backwards`, absent when Django cannot reverse it (a `RunPython` or `RunSQL` without a
//!   reverse): registered without a down script;
//! - the version is `app.name` (`blog.0001_initial`), the name the migration's name without
//!   its number (`initial`); `atomic = False` makes it non-transactional (where Django's
//!   `AddIndexConcurrently` must be);
//! - `runs_python`: the migration has operations Django cannot write as SQL (`RunPython`);
//!   `sqlmigrate` writes a comment for them, and so the registry runs only the SQL.
//!
//! Nothing runs Python at load time. `new` is refused: Django writes migrations
//! (`manage.py makemigrations`).

use std::path::Path;

use super::{check_versions, read, LayoutError, MigrationFile};

pub const META: &str = "meta.json";
pub const FORMAT: &str = "migrate-django-export 1";

pub fn matches(dir: &Path) -> bool {
    let path = dir.join(META);
    path.is_file()
        && std::fs::read_to_string(path).is_ok_and(|text| {
            serde_json::from_str::<serde_json::Value>(&text)
                .is_ok_and(|v| v.get("format").and_then(|f| f.as_str()) == Some(FORMAT))
        })
}

pub fn load(dir: &Path) -> Result<Vec<MigrationFile>, LayoutError> {
    let meta_path = dir.join(META);
    let invalid = |why: String| LayoutError::Invalid(meta_path.clone(), 0, why);
    let meta: serde_json::Value =
        serde_json::from_str(&read(&meta_path)?).map_err(|e| invalid(format!("not JSON: {e}")))?;
    if meta.get("format").and_then(|f| f.as_str()) != Some(FORMAT) {
        return Err(invalid(format!(
            "not an export of cli/django/export_migrations.py (\"format\": \"{FORMAT}\")"
        )));
    }
    let list = meta
        .get("migrations")
        .and_then(|m| m.as_array())
        .ok_or_else(|| invalid("no \"migrations\" list".into()))?;
    let mut out = Vec::new();
    for (k, m) in list.iter().enumerate() {
        let text = |key: &str| {
            m.get(key)
                .and_then(|v| v.as_str())
                .filter(|s| !s.is_empty() && !s.contains(['/', '\\']) && *s != "..")
                .ok_or_else(|| invalid(format!("migration {k}: \"{key}\" is not a name")))
        };
        let flag = |key: &str, default: bool| {
            m.get(key).map_or(Ok(default), |v| {
                v.as_bool()
                    .ok_or_else(|| invalid(format!("migration {k}: \"{key}\" is not a boolean")))
            })
        };
        let (app, name) = (text("app")?, text("name")?);
        let requires = m
            .get("requires")
            .and_then(|r| r.as_array())
            .ok_or_else(|| invalid(format!("migration {app}.{name}: no \"requires\" list")))?
            .iter()
            .map(|r| {
                r.as_str().map(String::from).ok_or_else(|| {
                    invalid(format!(
                        "migration {app}.{name}: a requirement is not a string"
                    ))
                })
            })
            .collect::<Result<Vec<_>, _>>()?;
        let up_path = dir.join(app).join(format!("{name}.up.sql"));
        let down_path = dir.join(app).join(format!("{name}.down.sql"));
        let reversible = flag("reversible", true)?;
        let down_path = (reversible && down_path.is_file()).then_some(down_path);
        if reversible && down_path.is_none() {
            return Err(LayoutError::Invalid(
                dir.join(app).join(format!("{name}.down.sql")),
                0,
                "missing, but meta.json says the migration is reversible".into(),
            ));
        }
        // `0001_initial` is named `initial`.
        let label = name
            .trim_start_matches(|c: char| c.is_ascii_digit())
            .trim_start_matches('_');
        out.push(MigrationFile {
            version: format!("{app}.{name}"),
            name: Some(if label.is_empty() { name } else { label }.to_string()),
            up: read(&up_path)?,
            down: down_path.as_deref().map(read).transpose()?,
            transactional: (!flag("atomic", true)?).then_some(false),
            repeatable: false,
            requires,
            up_path,
            up_line: 1,
            down_path,
            down_line: 1,
        });
    }
    let out = super::in_registry_order(out);
    check_versions("django", &out)?;
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::super::testdir::TestDir;
    use super::*;

    #[test]
    fn reads_an_export() {
        let meta = r#"{"format": "migrate-django-export 1", "django": "5.2", "migrations": [
            {"app": "shop", "name": "0001_initial", "requires": ["blog.0001_initial"], "atomic": true, "reversible": true, "runs_python": false},
            {"app": "blog", "name": "0001_initial", "requires": [], "atomic": true, "reversible": true, "runs_python": false},
            {"app": "blog", "name": "0002_index", "requires": ["blog.0001_initial"], "atomic": false, "reversible": false, "runs_python": false}
        ]}"#;
        let dir = TestDir::new(&[
            ("meta.json", meta),
            (
                "blog/0001_initial.up.sql",
                "BEGIN;\nCREATE TABLE b ();\nCOMMIT;\n",
            ),
            ("blog/0001_initial.down.sql", "DROP TABLE b;\n"),
            ("shop/0001_initial.up.sql", "CREATE TABLE s ();\n"),
            ("shop/0001_initial.down.sql", "DROP TABLE s;\n"),
            (
                "blog/0002_index.up.sql",
                "CREATE INDEX CONCURRENTLY i ON b ((1));\n",
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
                    m.down.is_some(),
                    m.transactional,
                )
            })
            .collect();
        // Requirements first, then version order.
        assert_eq!(
            got,
            [
                ("blog.0001_initial", Some("initial"), true, None),
                ("blog.0002_index", Some("index"), false, Some(false)),
                ("shop.0001_initial", Some("initial"), true, None),
            ]
        );
        assert_eq!(m[0].up, "BEGIN;\nCREATE TABLE b ();\nCOMMIT;\n");
        let dir = TestDir::new(&[("meta.json", "{\"format\": \"other\"}")]);
        assert!(!matches(dir.path()));
        let dir = TestDir::new(&[(
            "meta.json",
            r#"{"format": "migrate-django-export 1", "migrations": [{"app": "../x", "name": "1", "requires": []}]}"#,
        )]);
        assert!(load(dir.path())
            .unwrap_err()
            .to_string()
            .contains("\"app\" is not a name"));
    }
}
