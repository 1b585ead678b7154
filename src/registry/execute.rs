//! Running one migration step (an up or a down script plus its bookkeeping) in its own
//! subtransaction, as the right role, and turning a failure into an error that names the
//! version, the statement and the position.

use migrate_core::{options, transaction};
use pgrx::pg_sys;
use pgrx::pg_sys::panic::CaughtError;
use pgrx::PgSqlErrorCode;

use std::borrow::Cow;

use pgrx::datum::{Interval, TimestampWithTimeZone};

use super::catalog::{self, Action, Event, Migration, MigrationState};
use crate::error::{caught_parts, sqlstate_text, UserError};
use crate::guard;
use crate::pg::{script, security, statement, subxact};
use migrate_core::route;

/// Which script of a migration runs.
#[derive(Clone, Copy, PartialEq, Eq)]
pub enum Direction {
    Up,
    Down,
}

impl Direction {
    /// The script of `m` that runs in this direction, as it runs: without the `BEGIN;` /
    /// `COMMIT;` wrapper the registry keeps (the stored text is the file's, so its checksum
    /// is the file's). Planners refuse to roll back an irreversible migration, so a missing
    /// down script here is a bug.
    pub fn script(self, m: &Migration) -> Cow<'_, str> {
        let stored = match self {
            Direction::Up => &m.up_sql,
            Direction::Down => m
                .down_sql
                .as_deref()
                .expect("planners refuse irreversible migrations"),
        };
        without_wrapper(stored)
    }

    pub fn label(self) -> &'static str {
        match self {
            Direction::Up => "up",
            Direction::Down => "down",
        }
    }

    /// What a step in this direction is in the history.
    pub fn action(self) -> Action {
        match self {
            Direction::Up => Action::Apply,
            Direction::Down => Action::Rollback,
        }
    }

    /// A planned step: which migration (its index in the registry) and which way.
    pub fn of(step: route::Step) -> (usize, Direction) {
        match step {
            route::Step::Up(i) => (i, Direction::Up),
            route::Step::Down(i) => (i, Direction::Down),
        }
    }
}

/// The role a migration's script runs as: the role that wrote that script (the up script's is
/// the role that registered the migration; a down script amended later is its amender's), so
/// the SQL never gets more privilege than its author had. The caller must have that role's
/// privileges, so applying never gives the SQL more privilege than the caller either.
pub fn executing_role(m: &Migration, direction: Direction) -> Result<pg_sys::Oid, UserError> {
    let author_name = m.author(direction);
    let author = security::role_oid(author_name).ok_or_else(|| {
        UserError::new(
            PgSqlErrorCode::ERRCODE_UNDEFINED_OBJECT,
            format!(
                "the {} script of migration {} was written by role \"{author_name}\", which no longer exists",
                direction.label(),
                m.version
            ),
        )
        .hint("Register the script again with migrate.add() as an existing role.")
    })?;
    let caller = security::current_user();
    if !security::has_privileges_of(caller, author) {
        let caller_name = security::role_name(caller).unwrap_or_default();
        return Err(UserError::new(
            PgSqlErrorCode::ERRCODE_INSUFFICIENT_PRIVILEGE,
            format!(
                "permission denied to run the {} script of migration {} as role \"{author_name}\"",
                direction.label(),
                m.version
            ),
        )
        .detail(format!(
            "Migration SQL runs as the role that wrote it; \"{caller_name}\" does not have the privileges of \"{author_name}\"."
        ))
        .hint(format!(
            "Run it as \"{author_name}\" (or a member of it), or register it again as \"{caller_name}\"."
        )));
    }
    Ok(author)
}

/// One call of `apply()`, `rollback()` or `deploy()` (or the worker running a deploy's step):
/// the run id its history rows share, and who asked for it.
pub struct Run {
    pub id: i64,
    /// The role that called (the history's `role`, the migration's `applied_by`).
    pub role: String,
    /// `Some("deploy")` for deploy()'s steps: the history's `detail` for the steps it runs.
    via: Option<&'static str>,
}

impl Run {
    /// A new run, as the current user.
    pub fn begin(via: Option<&'static str>) -> Self {
        Run {
            id: catalog::next_run_id(),
            role: super::api::current_role_name(),
            via,
        }
    }

    /// A run begun earlier, continued elsewhere (a deploy's step in a job worker).
    pub fn resume(id: i64, role: &str) -> Self {
        Run {
            id,
            role: role.to_string(),
            via: None,
        }
    }

    /// Runs one step of the run and records it, in one subtransaction: the script as its
    /// author ([`executing_role`]), then the migration's new state and the history row. Either
    /// all of it happens or none of it, and a [`UserError`] names the version, the statement
    /// and the position. Returns how long the step took.
    pub fn step(
        &self,
        m: &Migration,
        direction: Direction,
        executor: pg_sys::Oid,
    ) -> Result<Interval, StepFailure> {
        let sql = direction.script(m);
        let started = catalog::clock_now();
        subxact::run(|| {
            // What the migration says of safe mode holds for the code that runs its statements
            // (gucs::safe_mode()), in apply() as in deploy().
            crate::gucs::with_migration_safe(m.safe, || {
                in_script(m, direction, executor, || script::run(&sql))
            });
            self.record(&m.version, direction, started, self.via)
        })
        .map_err(|caught| describe_failure(m, direction, &sql, caught))
    }

    /// Records that `version` ran in `direction` from `started` until now: its state and a
    /// history row (`detail`: how it ran). Steps run elsewhere (a deploy's worker) record
    /// themselves with this too.
    pub fn record(
        &self,
        version: &str,
        direction: Direction,
        started: TimestampWithTimeZone,
        detail: Option<&str>,
    ) -> Interval {
        match direction {
            Direction::Up => {
                catalog::mark_applied(
                    version,
                    MigrationState::Applied,
                    &self.role,
                    self.id,
                    started,
                );
            }
            Direction::Down => catalog::mark_pending(version),
        }
        catalog::log_event(&Event {
            run_id: self.id,
            version,
            action: direction.action(),
            started,
            role: &self.role,
            detail,
        })
    }

    /// Appends a failure to the history: of a step (`action` of its direction), or of the
    /// deploy itself ([`Action::Deploy`], refused before a step ran).
    pub fn record_failure(
        &self,
        version: &str,
        action: Action,
        detail: &str,
        sqlstate: &str,
        message: &str,
    ) {
        catalog::log_failure(
            &Event {
                run_id: self.id,
                version,
                action,
                started: catalog::clock_now(),
                role: &self.role,
                detail: Some(detail),
            },
            sqlstate,
            message,
        );
    }
}

/// Runs `body` as migration script `sql` of `m` runs, whatever runs it (a step, plan(),
/// verify()): as `executor`, isolated from the caller's session ([`security::run_isolated`]),
/// with the script's `-- migrate:allow` lines permitting their rules and registry calls
/// refused, until it returns or an error unwinds through it.
pub fn in_script<R>(
    m: &Migration,
    direction: Direction,
    executor: pg_sys::Oid,
    body: impl FnOnce() -> R,
) -> R {
    let what = format!(
        "the {} script of migration {}",
        direction.label(),
        m.version
    );
    let _scope = ScriptScope::enter(&direction.script(m));
    let _migration = guard::schema_changes::MigrationScope::enter(&m.version);
    // Called in the step's own subtransaction: where the unit deploy() commits starts.
    let _unit = guard::unit::Scope::step();
    security::run_isolated(executor, &what, body)
}

thread_local! {
    /// True while a migration script runs: registry calls from inside one are refused.
    static IN_SCRIPT: std::cell::Cell<bool> = const { std::cell::Cell::new(false) };
}

/// A migration script's scope, from [`ScriptScope::enter`] until drop (also when an error
/// unwinds through it): its `-- migrate:allow` lines permit their guard rules, and registry
/// calls are refused (`SELECT migrate.apply()` in a migration would recurse into the step that
/// is recording itself).
pub struct ScriptScope(bool);

impl ScriptScope {
    pub fn enter(sql: &str) -> Self {
        for (rule, reason) in options::allow_directives(sql) {
            guard::state::allow(&rule, &reason, true);
        }
        ScriptScope(IN_SCRIPT.replace(true))
    }
}

impl Drop for ScriptScope {
    fn drop(&mut self) {
        IN_SCRIPT.set(self.0);
        guard::state::end_migration_scope();
        script::clear_current_statement();
    }
}

/// The checks every registry call makes first: the caller is a superuser or a member of
/// migrate_admin (EXECUTE is granted to PUBLIC so that everyone else gets this error, with its
/// hint, rather than PostgreSQL's bare "permission denied for function"), and the call is not
/// made by a migration script (`SELECT migrate.apply()` as a migration would run inside the
/// step that is recording itself, and recurse).
pub fn registry_call(function: &str) -> Result<(), UserError> {
    if !security::is_migrate_admin() {
        return Err(UserError::new(
            PgSqlErrorCode::ERRCODE_INSUFFICIENT_PRIVILEGE,
            format!(
                "permission denied for migrate.{function}(): role \"{}\" is not a member of migrate_admin",
                security::role_name(security::current_user()).unwrap_or_default()
            ),
        )
        .hint("Running migrations needs superuser or membership in migrate_admin: GRANT migrate_admin TO the deploying role."));
    }
    if IN_SCRIPT.get() {
        return Err(UserError::new(
            PgSqlErrorCode::ERRCODE_OBJECT_IN_USE,
            format!("migrate.{function}() cannot be called from a migration script"),
        )
        .hint("A migration runs inside apply(), rollback(), deploy(), plan() or verify(); call registry functions from the client instead."));
    }
    Ok(())
}

/// `sql` with a `BEGIN;` first and `COMMIT;` last blanked out (lines and columns kept); `add()`
/// refused every other transaction control. Only a script whose first word is `BEGIN` or
/// `START` is parsed to find out.
pub fn without_wrapper(sql: &str) -> Cow<'_, str> {
    let first = &sql[script::first_token(sql)..];
    let word: String = first
        .chars()
        .take_while(char::is_ascii_alphabetic)
        .collect::<String>()
        .to_ascii_lowercase();
    if word != "begin" && word != "start" {
        return Cow::Borrowed(sql);
    }
    let statements = statement::classify(sql);
    let classes: Vec<transaction::Class> = statements.iter().map(|s| s.kind).collect();
    match transaction::decide(&classes, None) {
        Ok(decision) if !decision.drop.is_empty() => {
            let spans: Vec<_> = decision
                .drop
                .iter()
                .map(|&i| statements[i].bytes.clone())
                .collect();
            let blanked = transaction::blank_out(sql, &spans);
            // What runs must be exactly what add() checked, minus the wrapper: the same
            // statements, of the same kinds. Anything else (a lexer disagreement) is refused.
            let remaining: Vec<transaction::Class> = statement::classify(&blanked)
                .into_iter()
                .map(|s| s.kind)
                .collect();
            let expected: Vec<transaction::Class> = classes
                .iter()
                .enumerate()
                .filter(|(i, _)| !decision.drop.contains(i))
                .map(|(_, c)| *c)
                .collect();
            if remaining != expected {
                UserError::new(
                    PgSqlErrorCode::ERRCODE_INVALID_TRANSACTION_TERMINATION,
                    "migrate: the BEGIN/COMMIT around this script cannot be removed safely",
                )
                .hint("Remove the BEGIN; and COMMIT; from the script and register it again.")
                .raise();
            }
            Cow::Owned(blanked)
        }
        _ => Cow::Borrowed(sql),
    }
}

/// A script given to `add()`, checked, and how it runs.
pub struct Prepared {
    pub transactional: bool,
    /// What was changed or decided, for NOTICEs when the migration is registered.
    pub notices: Vec<String>,
}

/// Checks a script given to `add()` and prepares it: it must parse, its `-- migrate:allow`
/// lines must name real rules, and its statements must be able to run the way the migration
/// runs (`declared`: its `transaction` option or `-- migrate:no-transaction` line; None lets
/// the statements decide). A wrapper is dropped, and a script whose statements cannot run in a
/// transaction block becomes non-transactional, each with a NOTICE.
pub fn prepare(
    version: &str,
    direction: Direction,
    sql: &str,
    declared: Option<bool>,
) -> Result<Prepared, UserError> {
    for (rule, reason) in options::allow_directives(sql) {
        guard::api::check_allow_directive(version, &rule, &reason)?;
    }
    let what = format!("the {} script of migration {version}", direction.label());
    parse(sql, &what)?;
    let statements = subxact::run(|| statement::classify(sql))
        .map_err(|caught| UserError::new(caught_parts(&caught).0, caught_parts(&caught).1))?;
    let classes: Vec<transaction::Class> = statements.iter().map(|s| s.kind).collect();
    let at = |i: usize| {
        let (line, _) =
            script::line_and_column(sql, sql[..statements[i].bytes.start].chars().count() + 1);
        format!("at line {line}: {}", line_text(sql, line))
    };
    let decision = transaction::decide(&classes, declared).map_err(|problem| match problem {
        transaction::Problem::TransactionControl(i) => UserError::new(
            PgSqlErrorCode::ERRCODE_INVALID_TRANSACTION_TERMINATION,
            format!("{what} has a transaction control statement {}", at(i)),
        )
        .hint("A migration runs in a transaction of its own: only a BEGIN; first and a COMMIT; last are accepted (and dropped); remove the others."),
        transaction::Problem::WrapperWithoutTransaction(i) => UserError::new(
            PgSqlErrorCode::ERRCODE_INVALID_TRANSACTION_TERMINATION,
            format!("{what} runs outside a transaction but is wrapped in BEGIN/COMMIT ({})", at(i)),
        )
        .hint("Remove the BEGIN; and COMMIT;: each statement of a non-transactional migration commits on its own."),
        transaction::Problem::Mixed(i, kind, other) => UserError::new(
            PgSqlErrorCode::ERRCODE_ACTIVE_SQL_TRANSACTION,
            format!("{what} mixes {kind}, which cannot run in a transaction block ({}), with statements that run in one ({})", at(i), at(other)),
        )
        .detail("Run in one transaction, the script would fail; run statement by statement, a failure half-way would leave its first statements committed.")
        .hint(format!("Move the {kind} into a migration of its own (it then runs outside a transaction by itself), or add a -- migrate:no-transaction line to run every statement on its own.")),
        transaction::Problem::OutsideInTransaction(i, kind) => UserError::new(
            PgSqlErrorCode::ERRCODE_ACTIVE_SQL_TRANSACTION,
            format!("{what} runs in a transaction (the migration is transactional) but has {kind}, which cannot run in one ({})", at(i)),
        )
        .hint("Drop the {\"transaction\": true} option, or move the statement into a migration of its own."),
    })?;
    let mut notices = Vec::new();
    if !decision.drop.is_empty() {
        notices.push(format!(
            "migrate: dropped the BEGIN/COMMIT around {what}: a migration runs in a transaction of its own"
        ));
    }
    if let Some((i, kind)) = decision.detected {
        notices.push(format!(
            "migrate: {what} has {kind} ({}), which cannot run in a transaction block: migration {version} runs outside one, statement by statement, with CALL migrate.deploy()",
            at(i)
        ));
    }
    Ok(Prepared {
        transactional: decision.transactional,
        notices,
    })
}

/// Refuses a down script registered although it cannot run (`add()` warned): the error
/// `add()` gave, so that rollback and deploy stop before their first step instead of half-way.
pub fn check_down_script(m: &Migration) -> Result<(), UserError> {
    let Some(down) = m.down_sql.as_deref() else {
        return Ok(());
    };
    // Without NOTICEs: prepare() describes what it would drop, which add() said already.
    let checked =
        subxact::run(|| prepare(&m.version, Direction::Down, down, Some(m.transactional)))
            .map_err(|caught| UserError::new(caught_parts(&caught).0, caught_parts(&caught).1))?;
    checked.map(|_| ()).map_err(|e| {
        let hint = format!(
            "Register a working down script with migrate.add('{}', <up script>, <down script>).",
            m.version
        );
        e.hint(hint)
    })
}

/// Parses SQL for `migrate.check()`.
pub fn parse_for_check(sql: &str) -> Result<Vec<*mut pg_sys::Node>, UserError> {
    parse(sql, "the SQL")
}

/// Parses `sql` in a subtransaction, so a syntax error leaves nothing behind and is reported
/// with its line and column.
fn parse(sql: &str, what: &str) -> Result<Vec<*mut pg_sys::Node>, UserError> {
    subxact::run(|| script::parse_trees(sql)).map_err(|caught| {
        let (code, message, detail, hint) = caught_parts(&caught);
        let site = script::last_error_site();
        let mut e = UserError::new(code, format!("{what} does not parse: {message}"));
        let mut details: Vec<String> = Vec::new();
        if site.position > 0 {
            let (line, column) = script::line_and_column(sql, site.position);
            details.push(format!(
                "At line {line}, column {column}: {}",
                line_text(sql, line)
            ));
        }
        details.extend(detail);
        if !details.is_empty() {
            e = e.detail(details.join("\n"));
        }
        e.hint(hint.unwrap_or_else(|| "Fix the SQL and try again.".into()))
    })
}

fn line_text(sql: &str, line: usize) -> String {
    sql.lines().nth(line - 1).unwrap_or("").trim().to_string()
}

/// A failed step: the error, and whether its hint is the failure's own (the inner error's, or
/// one for its kind) rather than apply()'s generic one, so that `deploy()` keeps it and adds
/// its own as a second line.
#[derive(Debug)]
pub struct StepFailure {
    pub error: UserError,
    pub specific_hint: bool,
}

impl From<StepFailure> for UserError {
    fn from(f: StepFailure) -> Self {
        f.error
    }
}

fn describe_failure(
    m: &Migration,
    direction: Direction,
    sql: &str,
    caught: Box<CaughtError>,
) -> StepFailure {
    let (code, message, detail, hint) = caught_parts(&caught);
    let site = script::last_error_site();
    let mut details = Vec::new();
    let location = if site.position > 0 {
        Some(script::line_and_column(sql, site.position))
    } else {
        site.statement
            .map(|(_, start)| script::line_and_column(sql, start + 1))
    };
    match (site.statement, location) {
        (Some((index, _)), Some((line, column))) => details.push(format!(
            "In statement {} of the {} script, at line {line}, column {column}: {}",
            index + 1,
            direction.label(),
            line_text(sql, line)
        )),
        (None, Some((line, column))) => details.push(format!(
            "In the {} script, at line {line}, column {column}: {}",
            direction.label(),
            line_text(sql, line)
        )),
        _ => {}
    }
    // pgrx reports non-standard SQLSTATEs (RAISE ... USING ERRCODE) as XX000: keep the original.
    if site.sqlstate != 0 && site.sqlstate != code as i32 {
        details.push(format!(
            "Original SQLSTATE: {}",
            sqlstate_text(site.sqlstate)
        ));
    }
    details.extend(detail);
    // The inner error's own hint, else one for what kind of failure it is; only when neither
    // has anything to say does the caller's generic hint stand alone.
    let specific = hint.or_else(|| {
        if code == PgSqlErrorCode::ERRCODE_QUERY_CANCELED {
            Some("The migration was cancelled (a cancel request or statement_timeout) and nothing of it remains; run it again, with a longer statement_timeout if it needs one."
                .into())
        } else if code == PgSqlErrorCode::ERRCODE_ACTIVE_SQL_TRANSACTION {
            Some("This statement cannot run inside a transaction: move it to its own migration marked \
             -- migrate:no-transaction and run it with CALL migrate.deploy()."
                .into())
        } else {
            None
        }
    });
    let specific_hint = specific.is_some();
    let hint = specific.unwrap_or_else(|| {
        if direction == Direction::Up {
            "Nothing was applied. Fix the migration (a pending one can be replaced with \
             migrate.add()) and apply again."
                .into()
        } else {
            "Nothing was rolled back. Fix the down script with migrate.add() and try again.".into()
        }
    });
    let mut e = UserError::new(
        code,
        format!(
            "migration {} failed ({}): {message}",
            m.version,
            direction.label()
        ),
    )
    .hint(hint);
    if !details.is_empty() {
        e = e.detail(details.join("\n"));
    }
    StepFailure {
        error: e,
        specific_hint,
    }
}
