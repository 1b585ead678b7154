//! Per-migration options: the `options` jsonb of `migrate.add` and the directives written as
//! SQL comments inside the script (`-- migrate:no-transaction`).

use serde_json::Value;

use super::version;

/// The options a migration was registered with, after merging the jsonb and the directives.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Options {
    /// False for scripts that must run outside a transaction (`CREATE INDEX CONCURRENTLY`).
    pub transactional: bool,
    /// Versions that must be applied before this one.
    pub requires: Vec<String>,
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

/// `(rule, reason)` of every `-- migrate:allow RULE reason` line.
pub fn allow_directives(sql: &str) -> Vec<(String, String)> {
    sql.lines()
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
    sql.lines()
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
                    if !requires.iter().any(|r: &String| r == v) {
                        requires.push(v.to_string());
                    }
                }
            }
            other => return Err(OptionsProblem::UnknownKey(other.to_string())),
        }
    }
    merge(transaction, requires, up_sql)
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
        transactional: transaction.unwrap_or(true) && !directive,
        requires,
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
                transactional: true,
                requires: vec![]
            }
        );
        assert_eq!(parse(&Value::Null, "SELECT 1").unwrap(), o);
    }

    #[test]
    fn directive_and_option() {
        let sql = "-- migrate:no-transaction\nCREATE INDEX CONCURRENTLY i ON t (a);";
        assert!(!parse(&json!({}), sql).unwrap().transactional);
        assert!(
            !parse(&json!({"transaction": false}), "SELECT 1")
                .unwrap()
                .transactional
        );
        assert_eq!(
            parse(&json!({"transaction": true}), sql),
            Err(OptionsProblem::DirectiveConflict)
        );
        // Only a line of its own counts, not a mention inside other text.
        assert!(
            parse(&json!({}), "SELECT '-- migrate:no-transaction'")
                .unwrap()
                .transactional
        );
        assert!(
            !parse(&json!({}), "  -- migrate:no-transaction  \r\nVACUUM t;")
                .unwrap()
                .transactional
        );
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
        let o = parse(&json!({"requires": ["1", "2", "1"]}), "SELECT 1").unwrap();
        assert_eq!(o.requires, vec!["1", "2"]);
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
