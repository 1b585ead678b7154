//! The registry's SQL API: `migrate.add`, `apply`, `rollback`, `rollback_to`, `validate` and
//! `baseline`, and `migration_order()`, the order `status()` lists in. (`status()` itself is
//! plain SQL in src/sql/finalize.sql, the `history` view in src/sql/registry.sql.)
//!
//! Every function validates all input before it changes anything, takes the registry lock,
//! plans with [`route`], and only then runs SQL; any error aborts the whole call.

use migrate_core::{checksum, options, route, version};
use pgrx::datum::Interval;
use pgrx::prelude::*;
use pgrx::JsonB;

use super::catalog::{self, Action, Event, Migration, MigrationState};
use super::execute::{self, Direction, Run};
use crate::error::{OrRaise, Result, UserError};
use crate::gucs;
use crate::pg::security;

/// One row per migration a call ran: version, name and how long its script took.
type StepRow = (String, Option<String>, Interval);

pub(crate) fn null_argument(argument: &str, function: &str) -> UserError {
    UserError::new(
        PgSqlErrorCode::ERRCODE_NULL_VALUE_NOT_ALLOWED,
        format!("{argument} must not be NULL"),
    )
    .hint(format!(
        "Pass a value for {argument} to migrate.{function}()."
    ))
}

/// Validates a version argument: not NULL, not empty, only letters, digits, `.`, `_`, `-`.
pub(crate) fn checked_version<'a>(
    value: Option<&'a str>,
    argument: &str,
    function: &str,
) -> Result<&'a str> {
    let v = value.ok_or_else(|| null_argument(argument, function))?;
    version::check(v).map_err(|problem| {
        let why = match problem {
            version::VersionProblem::Empty => "must not be empty".to_string(),
            version::VersionProblem::TooLong => {
                return UserError::new(
                    PgSqlErrorCode::ERRCODE_INVALID_PARAMETER_VALUE,
                    format!(
                        "invalid {argument} \"{}...\": longer than {} characters",
                        v.chars().take(20).collect::<String>(),
                        version::MAX_VERSION_LEN
                    ),
                )
                .hint("Use a shorter version, such as a timestamp: 20240102153000.");
            }
            version::VersionProblem::BadCharacter(c) => format!("contains {c:?}"),
            version::VersionProblem::NoLetterOrDigit => "has no letter or digit".to_string(),
        };
        UserError::new(
            PgSqlErrorCode::ERRCODE_INVALID_PARAMETER_VALUE,
            format!("invalid {argument} \"{v}\": {why}"),
        )
        .hint("Versions are made of letters, digits, '.', '_' and '-', such as 20240102_01 or 1.2.")
    })?;
    Ok(v)
}

pub(crate) fn current_role_name() -> String {
    security::role_name(security::current_user()).unwrap_or_default()
}

impl From<route::PlanError> for UserError {
    fn from(e: route::PlanError) -> Self {
        use route::PlanError::*;
        use PgSqlErrorCode::*;
        match e {
        UnknownTarget(t) => UserError::new(
            ERRCODE_UNDEFINED_OBJECT,
            format!("migration {t} is not registered"),
        )
        .hint("See migrate.status() for the registered versions."),
        RepeatableTarget(t) => UserError::new(
            ERRCODE_INVALID_PARAMETER_VALUE,
            format!("migration {t} is repeatable and cannot be a target"),
        )
        .hint("Repeatable migrations run after every versioned one when everything is applied; name a versioned migration, or none."),
        OutOfOrder { version, newest_applied } => UserError::new(
            ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE,
            format!(
                "pending migration {version} is older than the newest applied migration {newest_applied}"
            ),
        )
        .detail("Applying it now would run migrations out of version order.")
        .hint("If that is intended (a branch merged late), run CALL migrate.deploy(allow_out_of_order => true), or SET LOCAL migrate.allow_out_of_order = on in the transaction that calls apply(); otherwise give it a newer version."),
        NonTransactional { version } => UserError::new(
            ERRCODE_FEATURE_NOT_SUPPORTED,
            format!("migration {version} is non-transactional and cannot run inside apply() or rollback()"),
        )
        .hint("Run it with CALL migrate.deploy(), which runs such migrations top-level in a background worker."),
        MissingRequirement { version, requires } => UserError::new(
            ERRCODE_FOREIGN_KEY_VIOLATION,
            format!("migration {version} requires migration {requires}, which is not registered"),
        )
        .hint(format!("Register {requires} with migrate.add(), or remove it from the \"requires\" option of {version}.")),
        RequirementNotReady { version, requires } => UserError::new(
            ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE,
            format!("migration {version} requires migration {requires}, which would not be applied before it"),
        )
        .hint(format!("Apply {requires} first, or give {version} a version after {requires}.")),
        TooManySteps { requested, applied } => UserError::new(
            ERRCODE_INVALID_PARAMETER_VALUE,
            format!("cannot roll back {requested} migrations: {applied} applied"),
        )
        .hint("Pass a number of steps no larger than the number of applied migrations."),
        Irreversible { version } => UserError::new(
            ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE,
            format!("migration {version} is irreversible: it has no down script"),
        )
        .hint(format!("Register a down script for {version} with migrate.add() (same up script), or roll back to a later version.")),
        StillRequired { version, required_by } => UserError::new(
            ERRCODE_DEPENDENT_OBJECTS_STILL_EXIST,
            format!("cannot roll back migration {version}: applied migration {required_by} requires it"),
        )
        .hint(format!("Roll back {required_by} too (for example with migrate.rollback_to()).")),
        MultipleHeads { heads } => UserError::new(
            ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE,
            format!("the migrations have {} heads: {}", heads.len(), heads.join(", ")),
        )
        .detail("A head is a migration that no other migration of its branch requires: without a target there is no one newest migration to move to.")
        .hint(format!(
            "Add a merge migration that requires all of them (alembic merge heads; Django: makemigrations --merge), or name a target: CALL migrate.deploy('{}') moves to that head and what it requires.",
            heads.first().map(String::as_str).unwrap_or_default()
        )),
        AlreadyApplied { version } => UserError::new(
            ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE,
            format!("cannot baseline: migration {version} is already applied"),
        )
        .hint("baseline() adopts a database that has no applied migrations; use apply() from here on."),
    }
    }
}

/// Registers a migration. Returns what happened: `added`, `unchanged`, `replaced` (a pending
/// migration with new text) or `amended` (an applied migration's name or down script).
#[pg_extern(volatile)]
fn add(
    version: Option<&str>,
    up_sql: Option<&str>,
    down_sql: default!(Option<&str>, "NULL"),
    name: default!(Option<&str>, "NULL"),
    options: default!(Option<JsonB>, "'{}'"),
) -> &'static str {
    add_migration(version, up_sql, down_sql, name, options).or_raise()
}

fn add_migration(
    version: Option<&str>,
    up_sql: Option<&str>,
    down_sql: Option<&str>,
    name: Option<&str>,
    options: Option<JsonB>,
) -> Result<&'static str> {
    execute::registry_call("add")?;
    let version = checked_version(version, "version", "add")?;
    // A byte-order mark is an editor artefact, never SQL: the checksum ignores it, and so do
    // the stored text and the parser.
    let strip_bom = |s: &'_ str| s.strip_prefix('\u{feff}').unwrap_or(s).to_string();
    let up_sql: &str = &strip_bom(up_sql.ok_or_else(|| null_argument("up_sql", "add"))?);
    let down_sql = down_sql.map(strip_bom);
    let down_sql = down_sql.as_deref();
    let options = options.map(|j| j.0).unwrap_or(serde_json::Value::Null);
    let opts = options::parse(&options, up_sql).map_err(|p| {
        UserError::new(
            PgSqlErrorCode::ERRCODE_INVALID_PARAMETER_VALUE,
            format!("invalid options for migration {version}: {p}"),
        )
        .hint("Options are {\"transaction\": false}, {\"requires\": [\"version\", ...]}, {\"repeatable\": true} and {\"safe\": true} (or false).")
    })?;
    if opts.repeatable && down_sql.is_some() {
        return Err(UserError::new(
            PgSqlErrorCode::ERRCODE_INVALID_PARAMETER_VALUE,
            format!("repeatable migration {version} has a down script"),
        )
        .hint("Repeatable migrations are run again when they change and never rolled back: pass NULL as down_sql."));
    }
    // Stored as given (so the checksum is the file's); a wrapper is dropped when it runs.
    let up = execute::prepare(version, Direction::Up, up_sql, opts.transaction)?;
    let mut notices = up.notices.clone();
    let mut warning = None;
    // A down script that cannot run does not stop the migration from registering (a history
    // may have one that rotted): it is stored as given, flagged, and refused when needed.
    if let Some(sql) = down_sql {
        match execute::prepare(version, Direction::Down, sql, Some(up.transactional)) {
            Ok(prepared) => notices.extend(prepared.notices),
            Err(e) => {
                warning = Some(format!(
                    "migrate: {}{}. It is registered anyway; rolling back migration {version} is refused until it is fixed",
                    e.message,
                    e.detail.as_deref().map(|d| format!("; {d}")).unwrap_or_default()
                ))
            }
        }
    }
    // Said when the registry changes, not on every identical re-add of a folder.
    let announce = || {
        for n in &notices {
            pgrx::notice!("{n}");
        }
        if let Some(w) = &warning {
            pgrx::warning!("{w}");
        }
    };

    catalog::lock_registry();
    let all = catalog::load_all(true);
    let key = version::sort_key(version);
    if let Some(other) = all
        .iter()
        .find(|m| version::sort_key(&m.version) == key && m.version != version)
    {
        return Err(UserError::new(
            PgSqlErrorCode::ERRCODE_DUPLICATE_OBJECT,
            format!(
                "version \"{version}\" is the same as registered version \"{}\"",
                other.version
            ),
        )
        .hint(format!(
            "Use the spelling \"{}\", or choose another version.",
            other.version
        )));
    }
    let entries = catalog::route_entries(&all);
    if let Some(cycle) = route::find_cycle(&entries, version, &opts.requires) {
        return Err(UserError::new(
            PgSqlErrorCode::ERRCODE_INVALID_RECURSION,
            format!(
                "migration {version} would create a dependency cycle: {}",
                cycle.join(" -> ")
            ),
        )
        .hint("Remove one of the requirements in the cycle."));
    }

    let role = current_role_name();
    let def = catalog::Definition {
        version,
        name,
        up_sql,
        down_sql,
        transactional: up.transactional,
        requires: &opts.requires,
        added_by: &role,
        repeatable: opts.repeatable,
        safe: opts.safe,
    };
    let existing = all.iter().find(|m| m.version == version);
    if let Some(m) = existing.filter(|m| m.is_applied() && m.repeatable != opts.repeatable) {
        return Err(UserError::new(
            PgSqlErrorCode::ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE,
            format!("migration {version} is already applied and its options differ"),
        )
        .detail(format!(
            "It was registered as {}.",
            if m.repeatable {
                "repeatable"
            } else {
                "versioned"
            }
        ))
        .hint("Applied migrations are immutable: keep the options they were applied with."));
    }
    let outcome = match existing {
        None => "added",
        // A repeatable migration takes a new script at any time, and runs it again.
        Some(m)
            if !m.is_applied() || (m.repeatable && m.checksum != checksum::checksum(up_sql)) =>
        {
            if same_definition(m, &def) {
                return Ok("unchanged");
            }
            "replaced"
        }
        Some(m) => {
            let new_sum = checksum::checksum(up_sql);
            if new_sum != m.checksum {
                return Err(UserError::new(
                    PgSqlErrorCode::ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE,
                    format!("migration {version} is already applied and its up script differs"),
                )
                .detail(format!("Applied checksum sha256:{}, new checksum sha256:{new_sum}.", m.checksum))
                .hint("Applied migrations are immutable: register the change as a new migration with a newer version."));
            }
            if m.transactional != up.transactional || m.requires != opts.requires {
                return Err(UserError::new(
                    PgSqlErrorCode::ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE,
                    format!("migration {version} is already applied and its options differ"),
                )
                .hint(
                    "Applied migrations are immutable: keep the options they were applied with.",
                ));
            }
            if m.name.as_deref() == name
                && m.down_sql.as_deref().map(checksum::normalise)
                    == down_sql.map(checksum::normalise)
            {
                return Ok("unchanged");
            }
            let down_changed =
                m.down_sql.as_deref().map(checksum::normalise) != down_sql.map(checksum::normalise);
            catalog::amend(
                version,
                name,
                down_sql,
                down_changed.then_some(role.as_str()),
            );
            let run_id = catalog::next_run_id();
            let started = catalog::clock_now();
            let detail = if down_changed {
                format!("down script changed; it now runs as role \"{role}\"")
            } else {
                "name changed".to_string()
            };
            catalog::log_event(&Event {
                run_id,
                version,
                action: Action::Amend,
                started,
                role: &role,
                detail: Some(&detail),
            });
            announce();
            return Ok("amended");
        }
    };
    let run_id = catalog::next_run_id();
    let started = catalog::clock_now();
    catalog::upsert(&def)?;
    catalog::log_event(&Event {
        run_id,
        version,
        action: if outcome == "added" {
            Action::Add
        } else {
            Action::Replace
        },
        started,
        role: &role,
        detail: None,
    });
    announce();
    Ok(outcome)
}

/// True when a re-add changes nothing; scripts compare as the checksum sees them (line endings
/// and a byte-order mark do not count).
fn same_definition(m: &Migration, def: &catalog::Definition<'_>) -> bool {
    m.checksum == checksum::checksum(def.up_sql)
        && m.down_sql.as_deref().map(checksum::normalise) == def.down_sql.map(checksum::normalise)
        && m.name.as_deref() == def.name
        && m.transactional == def.transactional
        && m.requires == def.requires
        && m.added_by == def.added_by
        && m.repeatable == def.repeatable
        && m.safe == def.safe
}

/// Applies pending migrations in version order up to `target` (default: all), atomically in the
/// caller's transaction. Returns one row per migration applied.
#[pg_extern(volatile)]
fn apply(
    target: default!(Option<&str>, "NULL"),
) -> TableIterator<
    'static,
    (
        name!(version, String),
        name!(name, Option<String>),
        name!(duration, Interval),
    ),
> {
    TableIterator::new(apply_pending(target).or_raise())
}

fn apply_pending(target: Option<&str>) -> Result<Vec<StepRow>> {
    execute::registry_call("apply")?;
    let target = target
        .map(|t| checked_version(Some(t), "target", "apply"))
        .transpose()?;
    catalog::lock_registry();
    catalog::refuse_while_deploying("apply")?;
    let all = catalog::load_all(true);
    let entries = catalog::route_entries(&all);
    let chosen = route::apply(&entries, target, gucs::allow_out_of_order())?;
    let roles = chosen
        .iter()
        .map(|&i| execute::executing_role(&all[i], Direction::Up))
        .collect::<Result<Vec<_>>>()?;

    let run = Run::begin(None);
    let mut out = Vec::with_capacity(chosen.len());
    for (&i, executor) in chosen.iter().zip(roles) {
        let m = &all[i];
        let duration = run.step(m, Direction::Up, executor)?;
        out.push((m.version.clone(), m.name.clone(), duration));
    }
    if out.is_empty() {
        pgrx::notice!("migrate: nothing to apply");
    }
    Ok(out)
}

/// Rolls back the newest `steps` applied migrations, newest first, atomically.
#[pg_extern(volatile)]
fn rollback(
    steps: default!(Option<i32>, "1"),
) -> TableIterator<
    'static,
    (
        name!(version, String),
        name!(name, Option<String>),
        name!(duration, Interval),
    ),
> {
    let rows = (|| {
        let steps = steps.ok_or_else(|| null_argument("steps", "rollback"))?;
        if steps < 1 {
            return Err(UserError::new(
                PgSqlErrorCode::ERRCODE_INVALID_PARAMETER_VALUE,
                format!("steps must be at least 1, not {steps}"),
            )
            .hint("Pass how many of the newest applied migrations to roll back."));
        }
        roll_back(Some(steps as i64), None)
    })();
    TableIterator::new(rows.or_raise())
}

/// Rolls back every applied migration newer than `target`, newest first, atomically.
#[pg_extern(volatile)]
fn rollback_to(
    target: Option<&str>,
) -> TableIterator<
    'static,
    (
        name!(version, String),
        name!(name, Option<String>),
        name!(duration, Interval),
    ),
> {
    let rows =
        checked_version(target, "target", "rollback_to").and_then(|t| roll_back(None, Some(t)));
    TableIterator::new(rows.or_raise())
}

fn roll_back(steps: Option<i64>, target: Option<&str>) -> Result<Vec<StepRow>> {
    execute::registry_call("rollback")?;
    catalog::lock_registry();
    catalog::refuse_while_deploying("rollback")?;
    let all = catalog::load_all(true);
    let entries = catalog::route_entries(&all);
    let chosen = route::rollback(&entries, steps, target)?;
    for &i in &chosen {
        execute::check_down_script(&all[i])?;
    }
    let roles = chosen
        .iter()
        .map(|&i| execute::executing_role(&all[i], Direction::Down))
        .collect::<Result<Vec<_>>>()?;
    let run = Run::begin(None);
    let mut out = Vec::with_capacity(chosen.len());
    for (&i, executor) in chosen.iter().zip(roles) {
        let m = &all[i];
        let duration = run.step(m, Direction::Down, executor)?;
        out.push((m.version.clone(), m.name.clone(), duration));
    }
    if out.is_empty() {
        pgrx::notice!("migrate: nothing to roll back");
    }
    Ok(out)
}

/// Marks every registered migration up to `version` applied without running it, to adopt a
/// database whose schema already has them. Returns how many were marked.
#[pg_extern(volatile)]
fn baseline(version: Option<&str>) -> i32 {
    (|| {
        execute::registry_call("baseline")?;
        let target = checked_version(version, "version", "baseline")?;
        catalog::lock_registry();
        let all = catalog::load_all(true);
        let entries = catalog::route_entries(&all);
        let chosen = route::baseline(&entries, target)?;
        let role = current_role_name();
        let run_id = catalog::next_run_id();
        for &i in &chosen {
            let started = catalog::clock_now();
            catalog::mark_applied(
                &all[i].version,
                MigrationState::Baselined,
                &role,
                run_id,
                started,
            );
            catalog::log_event(&Event {
                run_id,
                version: &all[i].version,
                action: Action::Baseline,
                started,
                role: &role,
                detail: Some("marked applied without running"),
            });
        }
        Ok(chosen.len() as i32)
    })()
    .or_raise()
}

/// Problems with the registry; no rows means healthy. Order and dependency problems (out of
/// order, requirements, several heads) come from `route::problems`; for a database adopted
/// from another tool, also where that tool's table and the registry drift apart (version NULL:
/// about the table itself).
#[pg_extern(stable)]
fn validate() -> TableIterator<
    'static,
    (
        name!(version, Option<String>),
        name!(problem, String),
        name!(detail, String),
    ),
> {
    execute::registry_call("validate").or_raise();
    let all = catalog::load_all(false);
    let mut rows = Vec::new();
    for m in &all {
        let actual = checksum::checksum(&m.up_sql);
        if actual != m.checksum {
            rows.push((
                m.version.clone(),
                "checksum_mismatch".to_string(),
                format!(
                    "stored checksum sha256:{} but the up script hashes to sha256:{actual}",
                    m.checksum
                ),
            ));
        } else if let Some(applied) = m.applied_checksum.as_ref().filter(|a| **a != actual) {
            rows.push((
                m.version.clone(),
                "checksum_mismatch".to_string(),
                format!(
                    "applied with sha256:{applied} but the up script now hashes to sha256:{actual}"
                ),
            ));
        }
        if let Err(e) = execute::check_down_script(m) {
            rows.push((
                m.version.clone(),
                "down_script_unusable".to_string(),
                e.message,
            ));
        }
    }
    let entries = catalog::route_entries(&all);
    rows.extend(
        route::problems(&entries)
            .into_iter()
            .map(|p| (p.version, p.problem.to_string(), p.detail)),
    );
    let mut rows: Vec<_> = rows.into_iter().map(|(v, p, d)| (Some(v), p, d)).collect();
    rows.extend(super::adopt::drift_problems(&all));
    rows.extend(crate::guard::schema_changes::drift_problems());
    TableIterator::new(rows)
}

/// Internal: the position (1, 2, ...) of every registered migration in the registry's order
/// (requirements first, then natural version order: `migrate_core::route::Graph`), which
/// `status()` lists in. Reads the registry as the caller, who needs what `status()` needs:
/// SELECT on `migrate.migrations` (migrate_admin).
#[pg_extern(stable)]
fn migration_order() -> TableIterator<'static, (name!(version, String), name!(position, i32))> {
    let entries: Vec<route::Entry> = Spi::connect(|client| {
        let rows = client.select(
            "SELECT version, requires, repeatable FROM migrate.migrations",
            None,
            &[],
        )?;
        rows.map(|row| {
            Ok(route::Entry {
                version: row.get_by_name::<String, _>("version")?.unwrap_or_default(),
                applied: false,
                transactional: true,
                reversible: true,
                requires: row
                    .get_by_name::<Vec<String>, _>("requires")?
                    .unwrap_or_default(),
                repeatable: row.get_by_name::<bool, _>("repeatable")?.unwrap_or(false),
            })
        })
        .collect::<std::result::Result<Vec<_>, pgrx::spi::SpiError>>()
    })
    .unwrap_or_else(|e| error!("migrate: could not read migrate.migrations: {e}"));
    let order = route::order(&entries);
    TableIterator::new(
        order
            .into_iter()
            .enumerate()
            .map(|(p, i)| (entries[i].version.clone(), p as i32 + 1))
            .collect::<Vec<_>>(),
    )
}
