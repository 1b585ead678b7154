//! What the commands print: aligned tables (values as psql shows them), JSON (an array of
//! objects, the SQL columns as keys, in column order, values typed as `to_json` types them)
//! and GitHub Actions annotations.

use postgres::{GenericClient, SimpleQueryMessage};
use serde_json::Value;

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Format {
    Table,
    Json,
}

/// Rows with named columns. Table output holds strings (the server's text form) and nulls.
#[derive(Debug, Clone, PartialEq)]
pub struct Table {
    pub columns: Vec<String>,
    pub rows: Vec<Vec<Value>>,
}

/// Runs `sql` (no parameters) and keeps the server's text form of every value.
pub fn query_text(client: &mut impl GenericClient, sql: &str) -> Result<Table, postgres::Error> {
    let mut table = Table {
        columns: Vec::new(),
        rows: Vec::new(),
    };
    for message in client.simple_query(sql)? {
        match message {
            SimpleQueryMessage::RowDescription(columns) => {
                table.columns = columns.iter().map(|c| c.name().to_string()).collect();
            }
            SimpleQueryMessage::Row(row) => table.rows.push(
                (0..row.len())
                    .map(|i| row.get(i).map_or(Value::Null, |v| Value::String(v.into())))
                    .collect(),
            ),
            _ => {}
        }
    }
    Ok(table)
}

/// Runs `sql` (no parameters) and keeps every value as `to_json` types it.
pub fn query_json(client: &mut impl GenericClient, sql: &str) -> Result<Table, postgres::Error> {
    // A named prepared statement lives on one server connection: behind a transaction-mode
    // pooler (pgbouncer) the statement and its execution must share a transaction (inside one
    // already, this is a savepoint).
    let mut tx = client.transaction()?;
    let table = query_json_in(&mut tx, sql)?;
    tx.commit()?;
    Ok(table)
}

fn query_json_in(client: &mut impl GenericClient, sql: &str) -> Result<Table, postgres::Error> {
    let columns: Vec<String> = client
        .prepare(sql)?
        .columns()
        .iter()
        .map(|c| c.name().to_string())
        .collect();
    let wrapped = format!("SELECT pg_catalog.to_json(t)::text FROM ({sql}) t");
    let mut rows = Vec::new();
    for row in client.query(wrapped.as_str(), &[])? {
        let text: String = row.get(0);
        let object: Value = serde_json::from_str(&text).unwrap_or(Value::Null);
        rows.push(
            columns
                .iter()
                .map(|c| object.get(c).cloned().unwrap_or(Value::Null))
                .collect(),
        );
    }
    Ok(Table { columns, rows })
}

/// Runs `sql`, prints its rows in `format` and returns them (as that format holds them).
pub fn show(
    client: &mut impl GenericClient,
    sql: &str,
    format: Format,
) -> Result<Table, postgres::Error> {
    let table = match format {
        Format::Table => query_text(client, sql)?,
        Format::Json => query_json(client, sql)?,
    };
    match format {
        Format::Table => print!("{}", render_table(&table)),
        Format::Json => print!("{}", render_json(&table)),
    }
    Ok(table)
}

impl Table {
    /// True if some row's `column` is `want` (a boolean, or psql's `t`/`f` in text).
    pub fn any_bool(&self, column: &str, want: bool) -> bool {
        let Some(i) = self.columns.iter().position(|c| c == column) else {
            return false;
        };
        let text = if want { "t" } else { "f" };
        self.rows
            .iter()
            .any(|r| r[i] == Value::Bool(want) || r[i] == Value::String(text.into()))
    }

    /// True if some row's `column` is not null.
    pub fn any_set(&self, column: &str) -> bool {
        let Some(i) = self.columns.iter().position(|c| c == column) else {
            return false;
        };
        self.rows.iter().any(|r| !r[i].is_null())
    }
}

/// A value as one table cell: text as is (line breaks shown as spaces), null as nothing.
fn cell(value: &Value) -> String {
    let text = match value {
        Value::Null => String::new(),
        Value::String(s) => s.clone(),
        Value::Bool(b) => if *b { "t" } else { "f" }.to_string(),
        other => other.to_string(),
    };
    text.split_whitespace().collect::<Vec<_>>().join(" ")
}

/// An aligned table with a header, a rule and a row count, as psql prints one.
pub fn render_table(table: &Table) -> String {
    let cells: Vec<Vec<String>> = table
        .rows
        .iter()
        .map(|r| r.iter().map(cell).collect())
        .collect();
    let widths: Vec<usize> = (0..table.columns.len())
        .map(|i| {
            cells
                .iter()
                .map(|r| r[i].chars().count())
                .chain([table.columns[i].chars().count()])
                .max()
                .unwrap_or(0)
        })
        .collect();
    let line = |values: &[String]| {
        let padded: Vec<String> = values
            .iter()
            .zip(&widths)
            .map(|(v, w)| format!("{v:<w$}"))
            .collect();
        format!("{}\n", padded.join(" | ").trim_end())
    };
    let mut out = line(&table.columns);
    let rule: Vec<String> = widths.iter().map(|w| "-".repeat(*w)).collect();
    out.push_str(&format!("{}\n", rule.join("-+-")));
    for row in &cells {
        out.push_str(&line(row));
    }
    let n = table.rows.len();
    out.push_str(&format!("({n} row{})\n", if n == 1 { "" } else { "s" }));
    out
}

/// A JSON array of objects, one per row, keys in column order, one object per line.
pub fn render_json(table: &Table) -> String {
    let objects: Vec<String> = table
        .rows
        .iter()
        .map(|row| {
            let fields: Vec<String> = table
                .columns
                .iter()
                .zip(row)
                .map(|(c, v)| format!("{}: {v}", Value::String(c.clone())))
                .collect();
            format!("{{{}}}", fields.join(", "))
        })
        .collect();
    if objects.is_empty() {
        "[]\n".into()
    } else {
        format!("[\n  {}\n]\n", objects.join(",\n  "))
    }
}

/// `s` as an SQL string literal, for the few calls that must be simple queries (`CALL`).
pub fn sql_literal(s: &str) -> String {
    if s.contains('\\') {
        format!("E'{}'", s.replace('\\', "\\\\").replace('\'', "''"))
    } else {
        format!("'{}'", s.replace('\'', "''"))
    }
}

/// One GitHub Actions workflow command: `::error file=PATH,line=N,title=T::message`.
pub fn github_annotation(
    level: &str,
    file: &str,
    line: usize,
    title: &str,
    message: &str,
) -> String {
    format!(
        "::{level} file={},line={line},title={}::{}",
        escape_property(file),
        escape_property(title),
        escape_data(message)
    )
}

/// The escaping GitHub's runner undoes in a command's message.
fn escape_data(s: &str) -> String {
    s.replace('%', "%25")
        .replace('\r', "%0D")
        .replace('\n', "%0A")
}

/// The escaping GitHub's runner undoes in a command's properties.
fn escape_property(s: &str) -> String {
    escape_data(s).replace(':', "%3A").replace(',', "%2C")
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn sample() -> Table {
        Table {
            columns: vec!["version".into(), "state".into(), "n".into()],
            rows: vec![
                vec![json!("1"), json!("applied"), json!(3)],
                vec![json!("20240101_x"), Value::Null, json!(true)],
            ],
        }
    }

    #[test]
    fn tables_are_aligned() {
        assert_eq!(
            render_table(&sample()),
            "version    | state   | n\n\
             -----------+---------+--\n\
             1          | applied | 3\n\
             20240101_x |         | t\n\
             (2 rows)\n"
        );
        let empty = Table {
            columns: vec!["a".into()],
            rows: vec![],
        };
        assert_eq!(render_table(&empty), "a\n-\n(0 rows)\n");
    }

    #[test]
    fn cells_are_one_line() {
        assert_eq!(
            cell(&json!("CREATE TABLE t (\n  id int\n)")),
            "CREATE TABLE t ( id int )"
        );
        assert_eq!(cell(&json!(["a", "b"])), "[\"a\",\"b\"]");
    }

    #[test]
    fn json_keeps_column_order_and_types() {
        let out = render_json(&sample());
        assert_eq!(
            out,
            "[\n  {\"version\": \"1\", \"state\": \"applied\", \"n\": 3},\n  {\"version\": \"20240101_x\", \"state\": null, \"n\": true}\n]\n"
        );
        let parsed: Value = serde_json::from_str(&out).unwrap();
        assert_eq!(parsed[1]["n"], json!(true));
        let empty = Table {
            columns: vec!["a".into()],
            rows: vec![],
        };
        assert_eq!(render_json(&empty), "[]\n");
    }

    #[test]
    fn row_checks() {
        let t = sample();
        assert!(t.any_bool("n", true));
        assert!(!t.any_bool("n", false));
        assert!(!t.any_bool("missing", true));
        assert!(t.any_set("state"));
        let text = Table {
            columns: vec!["ok".into(), "error".into()],
            rows: vec![vec![json!("f"), Value::Null]],
        };
        assert!(text.any_bool("ok", false));
        assert!(!text.any_set("error"));
    }

    #[test]
    fn literals() {
        assert_eq!(sql_literal("1.2"), "'1.2'");
        assert_eq!(sql_literal("it's"), "'it''s'");
        assert_eq!(sql_literal(r"a\b'"), r"E'a\\b'''");
    }

    #[test]
    fn github_annotations_are_escaped() {
        assert_eq!(
            github_annotation("error", "db/m,1.sql", 3, "rule: x", "50% of\nrows"),
            "::error file=db/m%2C1.sql,line=3,title=rule%3A x::50%25 of%0Arows"
        );
    }
}
