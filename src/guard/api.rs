//! The guard's SQL API: `migrate.allow()`, `migrate.check()` and the rows of `migrate.rules`.

use migrate_core::rules;
use pgrx::prelude::*;

use super::{facts, state};
use crate::error::{OrRaise, UserError};
use crate::gucs;
use crate::pg::subxact;

fn known_rule(rule: Option<&str>, function: &str) -> Result<&'static rules::Rule, UserError> {
    let rule = rule.ok_or_else(|| {
        UserError::new(
            PgSqlErrorCode::ERRCODE_NULL_VALUE_NOT_ALLOWED,
            "rule must not be NULL",
        )
        .hint(format!(
            "Pass a rule id from migrate.rules to migrate.{function}()."
        ))
    })?;
    rules::rule(rule).ok_or_else(|| {
        UserError::new(
            PgSqlErrorCode::ERRCODE_UNDEFINED_OBJECT,
            format!("unknown guard rule \"{rule}\""),
        )
        .hint("SELECT id FROM migrate.rules lists the rules.")
    })
}

/// Checks a `-- migrate:allow RULE reason` line (at `migrate.add()`).
pub fn check_allow_directive(version: &str, rule: &str, reason: &str) -> Result<(), UserError> {
    known_rule(Some(rule), "add").map_err(|e| {
        UserError::new(
            PgSqlErrorCode::ERRCODE_INVALID_PARAMETER_VALUE,
            format!("migration {version}: {}", e.message),
        )
        .hint("Write the line as -- migrate:allow RULE reason, with a rule id from migrate.rules.")
    })?;
    if reason.trim().is_empty() {
        return Err(UserError::new(
            PgSqlErrorCode::ERRCODE_INVALID_PARAMETER_VALUE,
            format!("migration {version}: -- migrate:allow {rule} needs a reason"),
        )
        .hint("Say why the rule is safe to break here, e.g. -- migrate:allow index_not_concurrent table is empty in production."));
    }
    Ok(())
}

/// Permits one rule for the rest of the transaction; the reason goes to migrate.guard_log with
/// every statement it lets through.
#[pg_extern(volatile)]
fn allow(rule: Option<&str>, reason: Option<&str>) {
    state::init();
    let rule = known_rule(rule, "allow").or_raise();
    let reason = reason
        .map(str::trim)
        .filter(|r| !r.is_empty())
        .ok_or_else(|| {
            UserError::new(
                PgSqlErrorCode::ERRCODE_INVALID_PARAMETER_VALUE,
                format!("migrate.allow('{}') needs a reason", rule.id),
            )
            .hint("Say why breaking the rule is safe here; it is recorded in migrate.guard_log.")
        });
    let reason = reason.or_raise();
    if !gucs::may_weaken_guard() {
        UserError::new(
            PgSqlErrorCode::ERRCODE_INSUFFICIENT_PRIVILEGE,
            format!("permission denied to allow guard rule {}", rule.id),
        )
        .hint("Only superusers and members of migrate_admin may permit guard rules.")
        .raise();
    }
    if !crate::pg::backend::in_transaction_block() {
        warning!(
            "migrate.allow('{}') outside a transaction block ends with this statement",
            rule.id
        );
    }
    state::allow(rule.id, reason, false);
    notice!(
        "migrate guard: rule {} permitted until the end of the transaction",
        rule.id
    );
}

/// Lints SQL without running it: parses it, then applies every rule with the current catalog
/// (table sizes, column types). One row per finding, exempt tables included with their reason.
#[pg_extern(volatile)]
fn check(
    sql: Option<&str>,
) -> TableIterator<
    'static,
    (
        name!(statement, i32),
        name!(rule, String),
        name!(severity, String),
        name!(table_name, String),
        name!(message, String),
        name!(hint, String),
    ),
> {
    let sql = sql
        .ok_or_else(|| {
            UserError::new(
                PgSqlErrorCode::ERRCODE_NULL_VALUE_NOT_ALLOWED,
                "sql must not be NULL",
            )
            .hint("Pass the SQL to check to migrate.check().")
        })
        .or_raise();
    let min_rows = gucs::guard_min_rows();
    let trees = crate::registry::parse_for_check(sql).or_raise();
    let mut rows = Vec::new();
    // The static advice (severity info): what each statement declares, judged over the
    // whole script at the end.
    let mut items = Vec::new();
    for (i, tree) in trees.into_iter().enumerate() {
        if let Ok(found) = subxact::run(|| {
            // SAFETY: trees come from raw_parser in this call's memory context; reading them
            // changes nothing.
            crate::pg::security::restricted(|| unsafe { facts::script_items(tree) })
        }) {
            items.extend(found.into_iter().map(|item| (i + 1, item)));
        }
        // Looking a type or function up can fail; that is the statement's problem, reported
        // as a row, not a reason to stop checking the others.
        // SAFETY: trees come from raw_parser in this call's memory context.
        match subxact::run(|| crate::pg::security::restricted(|| unsafe { facts::analyse(tree) })) {
            Ok(analysed) => {
                for fact in &analysed.facts {
                    let exempt = rules::exemption(&fact.table, min_rows);
                    let findings = rules::evaluate(&fact.action, &fact.table, 0.0);
                    for f in findings {
                        let (severity, hint) = match (&exempt, f.rule.size_dependent) {
                            (Some(why), true) => ("exempt".to_string(), format!("Exempt: {why}.")),
                            _ => (
                                f.rule.severity.as_str().to_string(),
                                format!(
                                    "{}{}",
                                    f.hint,
                                    migrate_core::tools::hint_tail(f.rule.id, crate::gucs::tool())
                                ),
                            ),
                        };
                        rows.push((
                            i as i32 + 1,
                            f.rule.id.to_string(),
                            severity,
                            f.table,
                            f.message,
                            hint,
                        ));
                    }
                }
            }
            Err(e) => {
                let (_, message, _, _) = crate::error::caught_parts(&e);
                rows.push((
                    i as i32 + 1,
                    "error".into(),
                    "error".into(),
                    String::new(),
                    message,
                    "The statement would fail as written.".into(),
                ));
            }
        }
    }
    for (statement, f) in rules::advise(&items) {
        rows.push((
            statement as i32,
            f.rule.id.to_string(),
            f.rule.severity.as_str().to_string(),
            f.table,
            f.message,
            f.hint,
        ));
    }
    // Statement order, the advice after the statement's other findings.
    rows.sort_by_key(|r| r.0);
    TableIterator::new(rows)
}

/// The rows of the `migrate.rules` view.
#[allow(clippy::type_complexity)] // pgrx needs the column names spelled inline
#[pg_extern(immutable, parallel_safe)]
fn rule_list() -> TableIterator<
    'static,
    (
        name!(id, String),
        name!(severity, String),
        name!(detects, String),
        name!(lock, String),
        name!(rewrites, bool),
        name!(scans, bool),
        name!(size_dependent, bool),
        name!(safe_alternative, String),
        name!(versions, String),
    ),
> {
    TableIterator::new(rules::RULES.iter().map(|r| {
        (
            r.id.to_string(),
            r.severity.as_str().to_string(),
            r.detects.to_string(),
            r.lock.to_string(),
            r.rewrites,
            r.scans,
            r.size_dependent,
            r.safe_alternative.to_string(),
            r.versions.to_string(),
        )
    }))
}

/// The `needs_preload` and `active` columns of `migrate.rules` for one rule: whether it is
/// enforced only with `shared_preload_libraries = 'migrate'` (its statements are seen by the
/// `ProcessUtility` hook, not by event triggers), and whether it is enforced in this session.
/// A function of its own (not two more columns of `rule_list()`) so that a 0.1.0 schema, whose
/// view reads `rule_list()` with its 0.1.0 columns, keeps working with this library.
#[pg_extern(stable, parallel_safe)]
fn rule_preload(
    rule: &str,
) -> TableIterator<'static, (name!(needs_preload, bool), name!(active, bool))> {
    let row =
        rules::rule(rule).map(|r| (r.needs_preload, !r.needs_preload || super::hook::active()));
    TableIterator::new(row)
}

/// The rows of the `migrate.rule_advice` view: each rule's safe form in each tool's terms.
#[pg_extern(immutable, parallel_safe)]
fn rule_advice_list() -> TableIterator<
    'static,
    (
        name!(rule, String),
        name!(tool, String),
        name!(advice, String),
    ),
> {
    use migrate_core::tools::{advice, TOOLS};
    TableIterator::new(rules::RULES.iter().flat_map(|r| {
        TOOLS.into_iter().filter_map(move |t| {
            advice(r.id, t).map(|a| (r.id.to_string(), t.name().to_string(), a))
        })
    }))
}
