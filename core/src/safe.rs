//! Safe mode's text work: where a statement's text changes when `deploy()` runs its safe form
//! instead of the form the guard would block, and the statements of each safe form. The
//! extension reads the parse tree and the catalog (which statement, which table, which names);
//! this module only edits the statement's own text at token boundaries, never by a pattern over
//! the script, so comments, string literals and quoted identifiers are never touched.

use crate::partition_index::skip_blank;

/// The SQL text of a keyword-or-identifier token at `i` (ASCII letters, digits, `_`, `$`), or
/// None if none starts there.
fn word_at(bytes: &[u8], i: usize) -> Option<(usize, usize)> {
    let start = i;
    let mut end = i;
    while end < bytes.len() && (bytes[end].is_ascii_alphanumeric() || bytes[end] == b'_') {
        end += 1;
    }
    (end > start).then_some((start, end))
}

/// Byte offset just after the `INDEX` keyword of `CREATE [UNIQUE] INDEX ...`, where
/// `CONCURRENTLY` goes; comments may stand between the keywords. None if the text does not
/// start that way (the parse tree said it is an index build, so that is never expected).
pub fn concurrently_insertion(text: &str) -> Option<usize> {
    let b = text.as_bytes();
    let mut i = skip_blank(b, 0);
    let expect = |i: &mut usize, words: &[&str]| -> Option<&'static str> {
        let (s, e) = word_at(b, *i)?;
        let w = &text[s..e];
        let found = words.iter().find(|k| k.eq_ignore_ascii_case(w))?;
        *i = e;
        Some(if found.eq_ignore_ascii_case("UNIQUE") {
            "UNIQUE"
        } else {
            "other"
        })
    };
    expect(&mut i, &["CREATE"])?;
    i = skip_blank(b, i);
    if expect(&mut i, &["UNIQUE", "INDEX"])? == "UNIQUE" {
        i = skip_blank(b, i);
        expect(&mut i, &["INDEX"])?;
    }
    Some(i)
}

/// `CREATE [UNIQUE] INDEX ...` as `CREATE [UNIQUE] INDEX CONCURRENTLY ...`.
pub fn create_index_concurrently(text: &str) -> Option<String> {
    let at = concurrently_insertion(text)?;
    Some(format!("{} CONCURRENTLY{}", &text[..at], &text[at..]))
}

/// Byte offset just after the statement's last token: trailing whitespace and comments (a
/// `--` comment before the `;` would swallow anything appended after it) are not part of it.
/// String literals, quoted identifiers and dollar quotes are skipped whole.
pub fn last_token_end(text: &str) -> usize {
    let b = text.as_bytes();
    let mut i = 0;
    let mut end = 0;
    loop {
        i = skip_blank(b, i);
        if i >= b.len() {
            return end;
        }
        i = token_end(text, i);
        end = i;
    }
}

/// End of the token at `i` (not blank): a quoted literal or identifier, a dollar quote, or a
/// single character (a word's characters one by one is enough to find the last token's end).
fn token_end(text: &str, i: usize) -> usize {
    crate::options::quoted_token_end(text, i)
        .unwrap_or_else(|| i + text[i..].chars().next().map_or(1, char::len_utf8))
}

/// `ALTER TABLE ... ADD [CONSTRAINT name] FOREIGN KEY/CHECK ...` added `NOT VALID`: the name
/// PostgreSQL would choose is written in at `unnamed_at` (the constraint's own location,
/// `FOREIGN`/`CHECK`) when the statement names none, so that the next step can name it.
pub fn add_not_valid(text: &str, unnamed_at: Option<(usize, &str)>) -> String {
    let end = last_token_end(text);
    match unnamed_at {
        Some((at, quoted_name)) if at <= end => format!(
            "{}CONSTRAINT {quoted_name} {} NOT VALID{}",
            &text[..at],
            &text[at..end],
            &text[end..]
        ),
        _ => format!("{} NOT VALID{}", &text[..end], &text[end..]),
    }
}

/// PostgreSQL's `ChooseForeignKeyConstraintNameAddition`: the key's column names joined with
/// `_`, stopping once the name would reach NAMEDATALEN (63 bytes; the caller truncates).
pub fn foreign_key_name_addition(columns: &[String]) -> String {
    const NAMEDATALEN: usize = 64;
    let mut out = String::new();
    for c in columns {
        if !out.is_empty() {
            out.push('_');
        }
        out.push_str(c);
        if out.len() >= NAMEDATALEN {
            break;
        }
    }
    // Cut at NAMEDATALEN - 1 bytes on a character boundary, as strlcpy into the buffer would
    // (the server then clips the whole name again, multibyte-aware).
    while out.len() > NAMEDATALEN - 1 {
        out.pop();
    }
    out
}

/// The steps of `SET NOT NULL` without the scan under ACCESS EXCLUSIVE: a `NOT VALID` CHECK
/// (brief lock, no scan), validated under SHARE UPDATE EXCLUSIVE (writes go on), the original
/// `SET NOT NULL` (PostgreSQL 12+ proves it from the valid CHECK and skips the scan), and the
/// CHECK dropped. `table`, `column` and `check` are quoted already.
pub fn set_not_null_steps(table: &str, column: &str, check: &str, original: &str) -> Vec<String> {
    vec![
        format!(
            "ALTER TABLE {table} ADD CONSTRAINT {check} CHECK ({column} IS NOT NULL) NOT VALID"
        ),
        format!("ALTER TABLE {table} VALIDATE CONSTRAINT {check}"),
        original.trim().to_string(),
        format!("ALTER TABLE {table} DROP CONSTRAINT {check}"),
    ]
}

/// `ALTER TABLE table VALIDATE CONSTRAINT name` (both quoted already).
pub fn validate_step(table: &str, name: &str) -> String {
    format!("ALTER TABLE {table} VALIDATE CONSTRAINT {name}")
}

/// The script a worker runs for a rewritten migration: every statement on its own, `;` after
/// each. Leading comments of the original statements stay with them.
pub fn join_script(statements: &[String]) -> String {
    let mut out = String::new();
    for s in statements {
        // The `;` right after the last token: a trailing `--` comment would swallow it.
        let end = last_token_end(s);
        out.push_str(&s[..end]);
        out.push(';');
        out.push_str(s[end..].trim_end());
        out.push('\n');
    }
    out
}

/// A clause of a column definition inside a statement's text: `[start, end)` in bytes.
pub type Span = (usize, usize);

/// Where the column clause starting at `start` ends: at the next clause of the column (the
/// first of `others` after it) or the statement's last token, without the blanks and comments
/// before that.
pub fn clause_span(text: &str, start: usize, others: &[usize]) -> Span {
    let next = others
        .iter()
        .copied()
        .filter(|&o| o > start)
        .min()
        .unwrap_or_else(|| last_token_end(text))
        .min(text.len());
    (start, start + last_token_end(&text[start..next]))
}

/// The expression of a `DEFAULT expr` clause (its span in `text`), or None if the clause does
/// not start with the `DEFAULT` keyword (a named `CONSTRAINT c DEFAULT ...`).
pub fn default_expression(text: &str, span: Span) -> Option<&str> {
    let clause = &text[span.0..span.1];
    let (s, e) = word_at(clause.as_bytes(), 0)?;
    if !clause[s..e].eq_ignore_ascii_case("DEFAULT") {
        return None;
    }
    let expr = clause[e..].trim();
    (!expr.is_empty()).then_some(expr)
}

/// The statement's text without the clauses in `spans` (which do not overlap).
pub fn without_spans(text: &str, spans: &[Span]) -> String {
    let mut spans = spans.to_vec();
    spans.sort_unstable();
    let mut out = String::new();
    let mut at = 0;
    for (s, e) in spans {
        out.push_str(text[at..s].trim_end());
        at = e;
    }
    out.push_str(&text[at..]);
    out
}

/// The steps of `ADD COLUMN c type DEFAULT <volatile>` without the table rewrite: the column
/// added without its default (instant), the default set (new rows get it from now on), the
/// existing rows filled by a backfill job that walks the key and skips rows that have a value
/// already (written since the default was set), then, for a NOT NULL column, the NOT NULL
/// recipe. `add` is the statement without its DEFAULT and NOT NULL clauses; `table` and
/// `column` are quoted already; `literal` quotes an SQL string literal; `check` names the NOT
/// NULL recipe's CHECK (None: the column is nullable).
pub fn add_column_default_steps(
    table: &str,
    column: &str,
    add: &str,
    expression: &str,
    check: Option<&str>,
    literal: &dyn Fn(&str) -> String,
) -> Vec<String> {
    let mut steps = vec![
        add.trim_end().to_string(),
        format!("ALTER TABLE {table} ALTER COLUMN {column} SET DEFAULT {expression}"),
        fill_step(table, column, expression, literal),
    ];
    if let Some(check) = check {
        let set = format!("ALTER TABLE {table} ALTER COLUMN {column} SET NOT NULL");
        steps.extend(set_not_null_steps(table, column, check, &set));
    }
    steps
}

/// The statement that queues the fill: `migrate.backfill(table, 'c = expr', 'c IS NULL')`.
/// The migration worker runs it and waits for the job (its step's checkpoint records the id).
pub fn fill_step(
    table: &str,
    column: &str,
    expression: &str,
    literal: &dyn Fn(&str) -> String,
) -> String {
    format!(
        "SELECT migrate.backfill({}::pg_catalog.regclass, {}, {})",
        literal(table),
        literal(&format!("{column} = {expression}")),
        literal(&format!("{column} IS NULL"))
    )
}

/// The table a fill step (see [`fill_step`]) fills: its first argument, a plain `'...'`
/// literal; None for any other text.
pub fn fill_table(step: &str) -> Option<String> {
    let rest = step.trim().strip_prefix("SELECT migrate.backfill('")?;
    let mut out = String::new();
    let mut chars = rest.chars().peekable();
    while let Some(c) = chars.next() {
        if c == '\'' {
            if chars.peek() == Some(&'\'') {
                chars.next();
            } else {
                return Some(out);
            }
        }
        out.push(c);
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn concurrently_goes_after_index() {
        let c = |t: &str| create_index_concurrently(t).unwrap();
        assert_eq!(
            c("CREATE INDEX i ON t (a)"),
            "CREATE INDEX CONCURRENTLY i ON t (a)"
        );
        assert_eq!(
            c("create unique index if not exists i on only t (a)"),
            "create unique index CONCURRENTLY if not exists i on only t (a)"
        );
        assert_eq!(
            c("\n-- make it fast\nCREATE /* c */ UNIQUE -- x\n INDEX \"INDEX\" ON t (a)"),
            "\n-- make it fast\nCREATE /* c */ UNIQUE -- x\n INDEX CONCURRENTLY \"INDEX\" ON t (a)"
        );
        assert_eq!(
            c("CREATE INDEX ON t (a)"),
            "CREATE INDEX CONCURRENTLY ON t (a)"
        );
        assert!(create_index_concurrently("CREATE TABLE t (a int)").is_none());
        assert!(create_index_concurrently("CREATE INDEXES").is_none());
    }

    #[test]
    fn last_token() {
        assert_eq!(last_token_end("ALTER TABLE t ADD CHECK (a > 0)"), 31);
        assert_eq!(
            last_token_end("ALTER TABLE t ADD CHECK (a > 0) -- why\n"),
            31
        );
        assert_eq!(last_token_end("CHECK (a <> '-- no') /* c */ "), 20);
        assert_eq!(last_token_end("CHECK (a <> $q$ -- $q$)\n"), 23);
        assert_eq!(last_token_end("x \"a -- b\""), 10);
        assert_eq!(last_token_end("-- only"), 0);
        // The server's lexer: a CR ends a comment; `date'\'` is a standard string; `x$y$` is
        // one identifier; a dollar tag may hold any non-ASCII character.
        assert_eq!(
            last_token_end("CREATE SCHEMA s --\rCREATE TABLE t (a int)"),
            41
        );
        assert_eq!(last_token_end("SELECT date'\\' -- '\n"), 14);
        assert_eq!(last_token_end("SELECT name'\\' -- '"), 14);
        assert_eq!(last_token_end("SELECT e'\\'' -- '"), 12);
        assert_eq!(last_token_end("CREATE TABLE t2 (x$y$ int) -- $y$"), 26);
        assert_eq!(last_token_end("SELECT $\u{20ac}$ ' $\u{20ac}$ -- '"), 20);
    }

    #[test]
    fn not_valid() {
        assert_eq!(
            add_not_valid(
                "ALTER TABLE t ADD CHECK (a > 0) -- c\n",
                Some((18, "\"t_a_check\""))
            ),
            "ALTER TABLE t ADD CONSTRAINT \"t_a_check\" CHECK (a > 0) NOT VALID -- c\n"
        );
        assert_eq!(
            add_not_valid(
                "ALTER TABLE t ADD CONSTRAINT c FOREIGN KEY (a) REFERENCES p",
                None
            ),
            "ALTER TABLE t ADD CONSTRAINT c FOREIGN KEY (a) REFERENCES p NOT VALID"
        );
    }

    #[test]
    fn foreign_key_names() {
        assert_eq!(foreign_key_name_addition(&["a".into(), "b".into()]), "a_b");
        let long = "x".repeat(40);
        assert_eq!(foreign_key_name_addition(&[long.clone(), long]).len(), 63);
    }

    #[test]
    fn steps() {
        let s = set_not_null_steps(
            "public.t",
            "a",
            "t_a_not_null",
            "ALTER TABLE t ALTER a SET NOT NULL ",
        );
        assert_eq!(s.len(), 4);
        assert_eq!(
            s[0],
            "ALTER TABLE public.t ADD CONSTRAINT t_a_not_null CHECK (a IS NOT NULL) NOT VALID"
        );
        assert_eq!(s[2], "ALTER TABLE t ALTER a SET NOT NULL");
        assert_eq!(join_script(&s[..2]), format!("{};\n{};\n", s[0], s[1]));
        assert_eq!(join_script(&["SELECT 1 -- c\n".into()]), "SELECT 1; -- c\n");
    }

    #[test]
    fn add_column_default() {
        let t = "ALTER TABLE big ADD COLUMN r float8 DEFAULT random() NOT NULL -- why\n";
        let d = t.find("DEFAULT").unwrap();
        let n = t.find("NOT NULL").unwrap();
        let span = clause_span(t, d, &[d, n]);
        assert_eq!(&t[span.0..span.1], "DEFAULT random()");
        assert_eq!(default_expression(t, span), Some("random()"));
        let nn = clause_span(t, n, &[d, n]);
        assert_eq!(&t[nn.0..nn.1], "NOT NULL");
        assert_eq!(
            without_spans(t, &[nn, span]),
            "ALTER TABLE big ADD COLUMN r float8 -- why\n"
        );
        assert_eq!(default_expression("CONSTRAINT c DEFAULT 1", (0, 22)), None);
        let lit = |s: &str| format!("'{}'", s.replace('\'', "''"));
        let steps = add_column_default_steps(
            "public.big",
            "r",
            "ALTER TABLE big ADD COLUMN r float8",
            "random()",
            Some("big_r_not_null_check"),
            &lit,
        );
        assert_eq!(steps.len(), 7);
        assert_eq!(
            steps[1],
            "ALTER TABLE public.big ALTER COLUMN r SET DEFAULT random()"
        );
        assert_eq!(
            steps[2],
            "SELECT migrate.backfill('public.big'::pg_catalog.regclass, 'r = random()', 'r IS NULL')"
        );
        assert_eq!(
            steps[5],
            "ALTER TABLE public.big ALTER COLUMN r SET NOT NULL"
        );
        assert_eq!(fill_table(&steps[2]).as_deref(), Some("public.big"));
        assert_eq!(
            fill_table(&fill_step("s.\"it's\"", "c", "1", &lit)).as_deref(),
            Some("s.\"it's\"")
        );
        assert_eq!(fill_table("SELECT migrate.backfill(E'x')"), None);
    }
}
