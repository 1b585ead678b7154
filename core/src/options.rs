//! Per-migration options: the `options` jsonb of `migrate.add` and the directives written as
//! SQL comments inside the script (`-- migrate:no-transaction`).

use serde_json::Value;

use crate::version;

/// The options a migration was registered with, after merging the jsonb and the directives.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Options {
    /// What the migration says of how it runs: `Some(false)` for `{"transaction": false}` or
    /// a `-- migrate:no-transaction` line, `Some(true)` for `{"transaction": true}`, None when
    /// it says nothing (then its statements decide: see [`crate::transaction::decide`]).
    pub transaction: Option<bool>,
    /// Versions that must be applied before this one.
    pub requires: Vec<String>,
    /// Run again whenever its script changes, after the versioned migrations (Flyway's `R__`).
    pub repeatable: bool,
    /// `{"safe": true}`: `deploy()` runs the safe form of a statement the guard would block;
    /// `{"safe": false}`: never, whatever `migrate.safe_by_default` says; None: that setting
    /// decides (see [`safe_mode`]).
    pub safe: Option<bool>,
}

/// Whether a migration runs in safe mode: its own `safe` option when it has one, otherwise
/// the `migrate.safe_by_default` setting. The one rule, shared by every reader of the mode.
pub fn safe_mode(option: Option<bool>, safe_by_default: bool) -> bool {
    option.unwrap_or(safe_by_default)
}

/// What is wrong with an options object; each names the offending key.
#[derive(Debug, PartialEq, Eq)]
pub enum OptionsProblem {
    NotAnObject,
    UnknownKey(String),
    WrongType {
        key: &'static str,
        expected: &'static str,
    },
    BadRequirement(String),
    DirectiveConflict,
}

impl std::fmt::Display for OptionsProblem {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::NotAnObject => write!(f, "options must be a JSON object"),
            Self::UnknownKey(k) => write!(f, "unknown option \"{k}\""),
            Self::WrongType { key, expected } => {
                write!(f, "option \"{key}\" must be {expected}")
            }
            Self::BadRequirement(v) => {
                write!(f, "option \"requires\" names an invalid version \"{v}\"")
            }
            Self::DirectiveConflict => write!(
                f,
                "option \"transaction\": true contradicts the -- migrate:no-transaction line"
            ),
        }
    }
}

/// The directive line that marks a script non-transactional.
pub const NO_TRANSACTION_DIRECTIVE: &str = "-- migrate:no-transaction";

/// The prefix of a line that permits one guard rule for the migration.
pub const ALLOW_DIRECTIVE: &str = "-- migrate:allow";

/// The `--` comments of a script that stand on a line of their own (only whitespace before
/// them), as the server's lexer sees them with `standard_conforming_strings = on`: text inside
/// string literals (`'...'`, `E'...'` with backslash escapes), dollar quotes (`$tag$...$tag$`),
/// quoted identifiers and block comments (which nest) is not a comment, so a directive cannot
/// be smuggled in through data.
pub fn line_comments(sql: &str) -> Vec<&str> {
    let b = sql.as_bytes();
    let mut out = Vec::new();
    let mut line_blank = true;
    let mut i = 0;
    while i < b.len() {
        if let Some(end) = quoted_token_end(sql, i) {
            line_blank = false;
            i = end;
            continue;
        }
        let c = b[i];
        match c {
            // The server's lexer ends a `--` comment at a carriage return too.
            b'\n' | b'\r' => {
                line_blank = true;
                i += 1;
                continue;
            }
            b'-' if b.get(i + 1) == Some(&b'-') => {
                let end = sql[i..].find(['\n', '\r']).map_or(b.len(), |n| i + n);
                if line_blank {
                    out.push(sql[i..end].trim_end());
                }
                i = end;
                continue;
            }
            b'/' if b.get(i + 1) == Some(&b'*') => {
                let mut depth = 1;
                i += 2;
                while i < b.len() && depth > 0 {
                    if b[i..].starts_with(b"/*") {
                        depth += 1;
                        i += 2;
                    } else if b[i..].starts_with(b"*/") {
                        depth -= 1;
                        i += 2;
                    } else {
                        i += 1;
                    }
                }
            }
            _ => i += 1,
        }
        if !c.is_ascii_whitespace() {
            line_blank = false;
        }
    }
    out
}

/// Where the string literal, quoted identifier or dollar-quoted string that opens at `sql[i]`
/// ends (just after its closing quote, or the end of the text), as the server's lexer reads it
/// with `standard_conforming_strings = on`: backslash escapes only in `E'...'`, a `$tag$` whose
/// tag does not start with a digit (`$1` is a parameter) and that does not continue a word.
/// None if no such token opens at `i`. The one lexer of quoted text every script scan uses.
pub fn quoted_token_end(sql: &str, i: usize) -> Option<usize> {
    let b = sql.as_bytes();
    let ident = |c: u8| c.is_ascii_alphanumeric() || c == b'_' || c == b'$' || c >= 0x80;
    match *b.get(i)? {
        b'\'' => {
            let escapes = i > 0 && matches!(b[i - 1], b'e' | b'E') && (i < 2 || !ident(b[i - 2]));
            Some(after_quoted(b, i, b'\'', escapes))
        }
        b'"' => Some(after_quoted(b, i, b'"', false)),
        b'$' if i == 0 || !ident(b[i - 1]) => {
            // The tag's characters as the lexer's: ASCII letters, digits, `_`, any non-ASCII.
            let t = sql[i + 1..]
                .find(|ch: char| !(ch.is_ascii_alphanumeric() || ch == '_' || !ch.is_ascii()))
                .map(|n| i + 1 + n)?;
            if b[t] != b'$' || b.get(i + 1).is_some_and(|d| d.is_ascii_digit()) {
                return None;
            }
            let tag = &sql[i..=t];
            Some(
                sql[t + 1..]
                    .find(tag)
                    .map_or(b.len(), |n| t + 1 + n + tag.len()),
            )
        }
        _ => None,
    }
}

/// The index just after the literal or quoted identifier that opens at `b[start]` with `quote`
/// (doubled quotes inside it; backslash escapes with `escapes`), or the end of the text.
fn after_quoted(b: &[u8], start: usize, quote: u8, escapes: bool) -> usize {
    let mut i = start + 1;
    while i < b.len() {
        if escapes && b[i] == b'\\' {
            i += 2;
        } else if b[i] == quote {
            if b.get(i + 1) != Some(&quote) {
                return i + 1;
            }
            i += 2;
        } else {
            i += 1;
        }
    }
    b.len()
}

/// `(rule, reason)` of every `-- migrate:allow RULE reason` line.
pub fn allow_directives(sql: &str) -> Vec<(String, String)> {
    line_comments(sql)
        .into_iter()
        .filter_map(|line| line.trim().strip_prefix(ALLOW_DIRECTIVE))
        .filter(|rest| rest.is_empty() || rest.starts_with(char::is_whitespace))
        .map(|rest| {
            let rest = rest.trim();
            let (rule, reason) = rest.split_once(char::is_whitespace).unwrap_or((rest, ""));
            (rule.to_string(), reason.trim().to_string())
        })
        .collect()
}

/// True when the script has `-- migrate:no-transaction` on a line of its own.
pub fn has_no_transaction_directive(sql: &str) -> bool {
    line_comments(sql)
        .into_iter()
        .any(|line| line.trim() == NO_TRANSACTION_DIRECTIVE)
}

/// Parses the options object and merges the script's directive into it.
pub fn parse(options: &Value, up_sql: &str) -> Result<Options, OptionsProblem> {
    let map = match options {
        Value::Null => return merge(None, Vec::new(), up_sql),
        Value::Object(map) => map,
        _ => return Err(OptionsProblem::NotAnObject),
    };
    let mut transaction = None;
    let mut requires = Vec::new();
    let mut repeatable = false;
    let mut safe = None;
    for (key, value) in map {
        match key.as_str() {
            "transaction" => {
                transaction = Some(value.as_bool().ok_or(OptionsProblem::WrongType {
                    key: "transaction",
                    expected: "a boolean",
                })?)
            }
            "requires" => {
                let wrong = OptionsProblem::WrongType {
                    key: "requires",
                    expected: "an array of version strings",
                };
                let items = value.as_array().ok_or(wrong)?;
                for item in items {
                    let v = item.as_str().ok_or(OptionsProblem::WrongType {
                        key: "requires",
                        expected: "an array of version strings",
                    })?;
                    version::check(v).map_err(|_| OptionsProblem::BadRequirement(v.to_string()))?;
                    // 01 and 1 are one version: keep the first spelling only.
                    if !requires
                        .iter()
                        .any(|r: &String| version::compare(r, v).is_eq())
                    {
                        requires.push(v.to_string());
                    }
                }
            }
            "repeatable" => {
                repeatable = value.as_bool().ok_or(OptionsProblem::WrongType {
                    key: "repeatable",
                    expected: "a boolean",
                })?
            }
            "safe" => {
                safe = Some(value.as_bool().ok_or(OptionsProblem::WrongType {
                    key: "safe",
                    expected: "a boolean",
                })?)
            }
            other => return Err(OptionsProblem::UnknownKey(other.to_string())),
        }
    }
    let mut options = merge(transaction, requires, up_sql)?;
    options.repeatable = repeatable;
    options.safe = safe;
    Ok(options)
}

fn merge(
    transaction: Option<bool>,
    requires: Vec<String>,
    up_sql: &str,
) -> Result<Options, OptionsProblem> {
    let directive = has_no_transaction_directive(up_sql);
    if directive && transaction == Some(true) {
        return Err(OptionsProblem::DirectiveConflict);
    }
    Ok(Options {
        transaction: if directive { Some(false) } else { transaction },
        requires,
        repeatable: false,
        safe: None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn defaults() {
        let o = parse(&json!({}), "SELECT 1").unwrap();
        assert_eq!(
            o,
            Options {
                transaction: None,
                requires: vec![],
                repeatable: false,
                safe: None,
            }
        );
        assert_eq!(parse(&Value::Null, "SELECT 1").unwrap(), o);
    }

    #[test]
    fn directive_and_option() {
        let sql = "-- migrate:no-transaction\nCREATE INDEX CONCURRENTLY i ON t (a);";
        assert_eq!(parse(&json!({}), sql).unwrap().transaction, Some(false));
        let declared = |options: Value, sql: &str| parse(&options, sql).unwrap().transaction;
        assert_eq!(
            declared(json!({"transaction": false}), "SELECT 1"),
            Some(false)
        );
        assert_eq!(
            declared(json!({"transaction": true}), "SELECT 1"),
            Some(true)
        );
        assert_eq!(
            parse(&json!({"transaction": true}), sql),
            Err(OptionsProblem::DirectiveConflict)
        );
        // Only a line of its own counts, not a mention inside other text.
        assert_eq!(
            declared(json!({}), "SELECT '-- migrate:no-transaction'"),
            None
        );
        assert_eq!(
            declared(json!({}), "  -- migrate:no-transaction  \r\nVACUUM t;"),
            Some(false)
        );
    }

    #[test]
    fn repeatable_option() {
        assert!(
            parse(&json!({"repeatable": true}), "SELECT 1")
                .unwrap()
                .repeatable
        );
        assert_eq!(
            parse(&json!({"repeatable": 1}), "SELECT 1"),
            Err(OptionsProblem::WrongType {
                key: "repeatable",
                expected: "a boolean"
            })
        );
    }

    #[test]
    fn safe_option() {
        let safe = |options: Value| parse(&options, "SELECT 1").map(|o| o.safe);
        assert_eq!(safe(json!({"safe": true})), Ok(Some(true)));
        assert_eq!(safe(json!({"safe": false})), Ok(Some(false)));
        assert_eq!(safe(json!({})), Ok(None));
        assert_eq!(
            safe(json!({"safe": "yes"})),
            Err(OptionsProblem::WrongType {
                key: "safe",
                expected: "a boolean"
            })
        );
        assert_eq!(
            safe(json!({"saf": true})),
            Err(OptionsProblem::UnknownKey("saf".into()))
        );
        // The option wins over the setting, both ways.
        assert!(safe_mode(Some(true), false));
        assert!(!safe_mode(Some(false), true));
        assert!(safe_mode(None, true));
        assert!(!safe_mode(None, false));
    }

    #[test]
    fn allow_lines() {
        let sql = "-- migrate:allow index_not_concurrent table is empty in prod\nCREATE INDEX i ON t (a);\n  -- migrate:allow set_not_null\n-- migrate:allowance x";
        assert_eq!(
            allow_directives(sql),
            vec![
                (
                    "index_not_concurrent".to_string(),
                    "table is empty in prod".to_string()
                ),
                ("set_not_null".to_string(), String::new()),
            ]
        );
    }

    #[test]
    fn requires() {
        let o = parse(&json!({"requires": ["1", "2", "1", "01"]}), "SELECT 1").unwrap();
        assert_eq!(o.requires, vec!["1", "2"]);
    }

    #[test]
    fn directives_only_in_real_comments() {
        let hidden = [
            "SELECT '\n-- migrate:no-transaction\n'",
            "SELECT E'it\\'s\n-- migrate:no-transaction\n'",
            "SELECT $$\n-- migrate:no-transaction\n$$",
            "SELECT $x$\n-- migrate:no-transaction\n$x$",
            "SELECT 1 AS \"\n-- migrate:no-transaction\n\"",
            "/* a /* nested */\n-- migrate:no-transaction\n */ SELECT 1",
            "SELECT 1 -- migrate:no-transaction",
        ];
        for sql in hidden {
            assert!(!has_no_transaction_directive(sql), "{sql:?}");
        }
        let real = [
            "-- migrate:no-transaction\nVACUUM t",
            "SELECT 'a''b';\n  -- migrate:no-transaction\nVACUUM t",
            "SELECT $$x$$;\n-- migrate:no-transaction",
            "SELECT a$b$ FROM t;\n-- migrate:no-transaction",
            "SELECT $1;\n-- migrate:no-transaction",
            "SELECT 'it''s' -- c\n-- migrate:no-transaction",
        ];
        for sql in real {
            assert!(has_no_transaction_directive(sql), "{sql:?}");
        }
        assert!(allow_directives("SELECT $$\n-- migrate:allow set_not_null x\n$$").is_empty());
    }

    #[test]
    fn wrong_types() {
        assert_eq!(parse(&json!([]), "x"), Err(OptionsProblem::NotAnObject));
        assert!(matches!(
            parse(&json!({"transaction": "no"}), "x"),
            Err(OptionsProblem::WrongType {
                key: "transaction",
                ..
            })
        ));
        assert!(matches!(
            parse(&json!({"requires": "1"}), "x"),
            Err(OptionsProblem::WrongType {
                key: "requires",
                ..
            })
        ));
        assert!(matches!(
            parse(&json!({"requires": [1]}), "x"),
            Err(OptionsProblem::WrongType {
                key: "requires",
                ..
            })
        ));
        assert_eq!(
            parse(&json!({"requires": ["a b"]}), "x"),
            Err(OptionsProblem::BadRequirement("a b".into()))
        );
        assert_eq!(
            parse(&json!({"transactoin": false}), "x"),
            Err(OptionsProblem::UnknownKey("transactoin".into()))
        );
    }
}
