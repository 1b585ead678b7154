//! `CALL migrate.deploy(target)`: moves the database to `target` (default: the newest
//! migration), forward or back, one migration per transaction, committing after each. Also
//! `migrate.resolve()` and `migrate.remove()`, which look at the jobs as well as the registry.
//!
//! - A transactional migration runs in the procedure's own transaction and is committed with
//!   its registry row and history event. If it gives up waiting for a lock (55P03, bounded by
//!   `migrate.lock_timeout`), the transaction is rolled back (so it holds no lock and nothing
//!   queues behind it), the deploy sleeps with exponential backoff and jitter, and tries again,
//!   up to `migrate.lock_retries` times.
//! - A non-transactional migration is handed to a job worker that runs it statement by
//!   statement, top-level (see [`crate::worker::migration`]); the deploy waits for it while
//!   committing between polls, so it holds no snapshot a concurrent index build would wait for.
//! - A migration whose `migrate.contract_column()` is refused because the expansion's backfill
//!   is still queued or running (the finalize gate) is rolled back; the deploy waits for that
//!   job, committing between polls (no snapshot held), and runs the migration again.
//! - Any other failure is appended to the history (SQLSTATE and message) and raised. Running
//!   `deploy()` again resumes: a failed transactional migration left nothing behind, a failed
//!   non-transactional one resumes at the statement that failed.
//!
//! Deploys in one database run one at a time: a running deploy holds a session-level lock that
//! only the extension can take (see [`crate::pg::locks`]), so no role can squat it to stall
//! deploys or fake one to make `apply()` refuse.

use std::time::Duration;

use migrate_core::route;
use migrate_core::{retry, version};
use pgrx::pg_sys;
use pgrx::prelude::*;
use pgrx::PgSqlErrorCode::*;
use pgrx::PgTryBuilder;

use crate::error::{caught_parts, sqlstate_from_text, OrRaise, Result, UserError};
use crate::gucs;
use crate::pg::locks::{self, Mode, Namespace};
use crate::pg::procedure::nonatomic_call;
use crate::pg::{procedure, script, xact};
use crate::registry::api::{checked_version, current_role_name, null_argument};
use crate::registry::catalog::{self, Action, Event, Migration, MigrationState};
use crate::registry::execute::{self, Direction, Run};
use crate::worker::api::{wait_for_job, JobEnd};
use crate::worker::{launch, queue};

/// `migrate.lock_retry_delay` as a wait.
fn lock_retry_delay() -> u64 {
    u64::try_from(gucs::lock_retry_delay_ms()).unwrap_or(1)
}

crate::v1_function_info!(pg_finfo_migrate_deploy);

/// `CALL migrate.deploy(target text DEFAULT NULL, allow_out_of_order boolean DEFAULT false)`.
/// The flag is an argument because a procedure that commits cannot see a `SET LOCAL`, and a
/// session `SET` leaks through a transaction-mode pooler; a 0.1.0 schema passes only `target`.
#[pg_guard]
#[no_mangle]
pub unsafe extern "C-unwind" fn migrate_deploy(fcinfo: pg_sys::FunctionCallInfo) -> pg_sys::Datum {
    // SAFETY: called by the executor of CALL with its arguments and context.
    let (target, allow_flag, nonatomic) = unsafe {
        (
            pgrx::fcinfo::pg_getarg::<String>(fcinfo, 0),
            ((*fcinfo).nargs > 1)
                .then(|| pgrx::fcinfo::pg_getarg::<bool>(fcinfo, 1))
                .flatten()
                .unwrap_or(false),
            nonatomic_call(fcinfo),
        )
    };
    let allow_out_of_order = allow_flag || gucs::allow_out_of_order();
    execute::registry_call("deploy").or_raise();
    if let Some(t) = target.as_deref() {
        checked_version(Some(t), "target", "deploy").or_raise();
    }
    if !nonatomic {
        UserError::new(
            ERRCODE_ACTIVE_SQL_TRANSACTION,
            "migrate.deploy() must be called with CALL outside a transaction block",
        )
        .detail("A deploy commits after every migration and waits for background workers without holding a snapshot.")
        .hint("Run CALL migrate.deploy(); on its own (autocommit), not inside BEGIN ... COMMIT or a function. migrate.apply() runs migrations inside your transaction.")
        .raise();
    }
    procedure::connect("migrate.deploy");
    take_deploy_lock();
    PgTryBuilder::new(|| deploy(target.as_deref(), allow_out_of_order).or_raise())
        .finally(release_deploy_lock)
        .execute();
    procedure::finish();
    pg_sys::Datum::from(0)
}

/// Waits (committing between tries, so without a snapshot) until no other deploy runs, then
/// holds the deploy lock (a session-level lock only the extension can take).
fn take_deploy_lock() {
    use crate::registry::catalog::running_deploy;
    let mut noted = false;
    while !locks::try_lock(Namespace::Deploy, 0, Mode::Exclusive, true) {
        if !noted {
            pgrx::notice!(
                "migrate.deploy: another deploy is running in this database (backend {}); waiting for it",
                running_deploy().unwrap_or_default()
            );
            noted = true;
        }
        procedure::commit();
        xact::sleep(Duration::from_millis(200));
    }
}

fn release_deploy_lock() {
    locks::unlock(Namespace::Deploy, 0, Mode::Exclusive);
}

/// Runs the deploy's steps; each ends with a commit.
fn deploy(target: Option<&str>, allow_out_of_order: bool) -> Result<()> {
    let run = Run::begin(Some("deploy"));
    // The whole path first: a refusal half-way (a pending migration older than one that stays
    // applied, found only after rolling back) would leave the database between two states.
    catalog::lock_registry();
    let all = catalog::load_all(true);
    let path = refused_unless(
        &run,
        route::deploy_path(&catalog::route_entries(&all), target, allow_out_of_order),
    )?;
    for step in path {
        if let (i, Direction::Down) = Direction::of(step) {
            if let Err(e) = execute::check_down_script(&all[i]) {
                record_refusal(&run, &all[i].version, &e);
                return Err(e);
            }
        }
    }
    let mut retries: Option<(String, u32)> = None;
    let mut gate_waits = 0;
    let mut steps = 0;
    loop {
        catalog::lock_registry();
        let all = catalog::load_all(true);
        let step = refused_unless(
            &run,
            route::deploy_next(&catalog::route_entries(&all), target, allow_out_of_order),
        )?;
        let Some(step) = step else { break };
        let (index, direction) = Direction::of(step);
        let m = &all[index];
        let executor = match execute::executing_role(m, direction) {
            Ok(executor) => executor,
            Err(e) => {
                record_refusal(&run, &m.version, &e);
                return Err(e);
            }
        };
        // Safe mode: the script with the safe form of every statement the guard would block,
        // run step by step by a worker; or the refusal of one that has none, before anything runs.
        let safe_script = if crate::registry::safe::on_for(m) {
            match crate::registry::safe::script_for(m, direction, executor) {
                Ok(script) => script,
                Err(e) => {
                    record_refusal(&run, &m.version, &e);
                    return Err(e);
                }
            }
        } else {
            None
        };
        let attempt = match &retries {
            Some((v, n)) if *v == m.version => *n,
            _ => 0,
        };
        if attempt == 0 {
            pgrx::notice!(
                "migrate: {} {}{}{}",
                if direction == Direction::Up {
                    "applying"
                } else {
                    "rolling back"
                },
                m.version,
                m.name
                    .as_deref()
                    .map(|n| format!(" ({n})"))
                    .unwrap_or_default(),
                if safe_script.is_some() {
                    " in safe mode, step by step in a background worker"
                } else if m.transactional {
                    ""
                } else {
                    " top-level in a background worker"
                }
            );
            if let Some(script) = &safe_script {
                for line in crate::registry::safe::header_lines(script) {
                    pgrx::notice!("migrate: safe mode: {line}");
                }
            }
        }
        // A transactional migration that safe mode rewrote runs in a worker like a
        // non-transactional one (which records its own failures and retries its own locks).
        let in_transaction = m.transactional && safe_script.is_none();
        // Set by a contract_column() the step runs and refuses for its gate.
        crate::expand::take_gate();
        let outcome = if in_transaction {
            // Committed with its registry row and history event.
            run.step(m, direction, executor)
                .map(|took| {
                    procedure::commit();
                    format_interval(&took)
                })
                .map_err(|failure| {
                    // apply()'s generic hint does not fit a deploy, which says its own below;
                    // the failure's own hint (the guard's, a transaction-control one) stays.
                    let mut e = failure.error;
                    if !failure.specific_hint {
                        e.hint = None;
                    }
                    e
                })
        } else {
            worker_step(m, direction, executor, &run, safe_script.as_deref())
        };
        // A script could have called pg_advisory_unlock_all(), which also drops the deploy lock.
        if !locks::held(Namespace::Deploy, 0, Mode::Exclusive)
            && !locks::try_lock(Namespace::Deploy, 0, Mode::Exclusive, true)
        {
            return Err(UserError::new(
                ERRCODE_OBJECT_IN_USE,
                format!("migration {} released the deploy's lock, and another deploy took it", m.version),
            )
            .hint("Do not call pg_advisory_unlock_all() in migrations; CALL migrate.deploy() again when the other deploy ends."));
        }
        match outcome {
            Ok(took) => {
                pgrx::notice!(
                    "migrate: {} {} in {took}",
                    if direction == Direction::Up {
                        "applied"
                    } else {
                        "rolled back"
                    },
                    m.version
                );
                retries = None;
                steps += 1;
            }
            Err(e)
                if e.code == ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE
                    && in_transaction
                    && gate_waits < MAX_GATE_WAITS
                    && crate::expand::take_gate().is_some_and(|gate| {
                        // Nothing of the step is left, and no snapshot while we wait.
                        procedure::rollback();
                        open_gate(&m.version, &gate, executor)
                    }) =>
            {
                gate_waits += 1;
            }
            Err(e)
                if e.code == ERRCODE_LOCK_NOT_AVAILABLE
                    && in_transaction
                    && attempt < gucs::lock_retries().max(0) as u32 =>
            {
                // Rolls back the step (already undone) and our registry lock: between tries this
                // session holds no lock at all.
                procedure::rollback();
                let wait = retry::backoff_ms(
                    lock_retry_delay(),
                    attempt + 1,
                    retry::LOCK_RETRY_CAP_MS,
                    retry::jitter(),
                );
                pgrx::notice!(
                    "migrate: migration {} gave up waiting for a lock (lock_timeout {} ms); retry {} of {} in {wait} ms",
                    m.version,
                    gucs::lock_timeout_ms(),
                    attempt + 1,
                    gucs::lock_retries()
                );
                xact::sleep(Duration::from_millis(wait));
                retries = Some((m.version.clone(), attempt + 1));
            }
            Err(mut e) => {
                // A worker step's job recorded its own failure.
                if in_transaction {
                    let message = match &e.detail {
                        Some(d) => format!("{} ({d})", e.message),
                        None => e.message.clone(),
                    };
                    run.record_failure(
                        &m.version,
                        direction.action(),
                        "deploy",
                        &crate::error::sqlstate_text(e.code as i32),
                        &message,
                    );
                    procedure::commit();
                    let own = format!(
                        "Migration {} left nothing behind; the ones before it stay {}. Fix the cause (a pending migration can be replaced with migrate.add()) and CALL migrate.deploy() again.",
                        m.version,
                        if direction == Direction::Up { "applied" } else { "rolled back" }
                    );
                    // The failure's own hint first (what to do about this error), then the
                    // deploy's (what state it left and how to go on).
                    e.hint = Some(match e.hint.take() {
                        Some(inner) => format!("{inner}\n{own}"),
                        None => own,
                    });
                }
                return Err(e);
            }
        }
    }
    if steps == 0 {
        pgrx::notice!("migrate: nothing to deploy");
    }
    Ok(())
}

/// How many times one deploy opens an expansion's gate before a contract (a wait ends only
/// when the job succeeded, so more than a few means something else refuses).
const MAX_GATE_WAITS: u32 = 16;

/// Sees to what a contract_column() in migration `version` waited for, outside the
/// migration's transaction: waits for the backfill job (committing between polls), or
/// validates the NOT NULL check in a transaction of its own as the migration's executor. True
/// when done (run the migration again); false when it cannot be (the contract's error stands).
fn open_gate(version: &str, gate: &crate::expand::Gate, executor: pg_sys::Oid) -> bool {
    match gate {
        crate::expand::Gate::Job(job) => {
            pgrx::notice!(
                "migrate: migration {version} contracts a column whose backfill (job {job}) has not finished; waiting for it"
            );
            // A job waiting for its start_after or window keeps its worker, and its owner may
            // set either to any time (alter_job(start_after => 'infinity')): waiting for it
            // would hold the deploy lock, and every other deploy, until then. The wait is cut
            // in spans long enough for wait_for_job() to see a job that lost its worker, and
            // ends (the contract's error stands) when the job waits for its schedule.
            const SPAN: Duration = Duration::from_secs(15);
            loop {
                let deadline = std::time::Instant::now() + SPAN;
                match wait_for_job(*job, Some(deadline), "migrate.deploy", &mut || {}) {
                    Ok(()) => return true,
                    Err(JobEnd::TimedOut { .. }) => {
                        if let Some(why) = crate::worker::queue::schedule_wait(*job) {
                            pgrx::notice!(
                                "migrate: backfill job {job} is {why}; deploy again once it succeeded (migrate.alter_job() changes its schedule)"
                            );
                            return false;
                        }
                    }
                    Err(_) => {
                        pgrx::notice!(
                            "migrate: backfill job {job} did not succeed; see migrate.jobs"
                        );
                        return false;
                    }
                }
            }
        }
        crate::expand::Gate::Validate { table, constraint } => {
            pgrx::notice!(
                "migrate: migration {version} contracts a column of {table}: validating its NOT NULL check first, in a transaction of its own"
            );
            let sql = format!(
                "ALTER TABLE {table} VALIDATE CONSTRAINT {}",
                crate::worker::backfill::quote_ident(constraint)
            );
            let done = crate::pg::subxact::run(|| {
                crate::pg::security::run_isolated(executor, "migrate.deploy", || {
                    script::ensure_single_statement(&sql);
                    Spi::run(&sql).unwrap_or_else(|e| error!("migrate: {e}"))
                })
            });
            match done {
                Ok(()) => {
                    procedure::commit();
                    true
                }
                Err(caught) => {
                    let (_, message, _, _) = caught_parts(&caught);
                    pgrx::notice!("migrate: validating {constraint} on {table} failed: {message}");
                    procedure::rollback();
                    false
                }
            }
        }
    }
}

fn format_interval(i: &pgrx::datum::Interval) -> String {
    let ms = i.as_micros() as f64 / 1000.0;
    if ms < 1000.0 {
        format!("{ms:.0} ms")
    } else {
        format!("{:.1} s", ms / 1000.0)
    }
}

/// The route, or its refusal recorded in the history and raised.
fn refused_unless<T>(run: &Run, route: std::result::Result<T, route::PlanError>) -> Result<T> {
    route.map_err(|e| {
        let version = e.version().unwrap_or_default().to_string();
        let e = UserError::from(e);
        record_refusal(run, &version, &e);
        e
    })
}

/// Appends a refusal that stopped the deploy before its next step ran (action `deploy`) and
/// commits it, so it survives the error raised next.
fn record_refusal(run: &Run, version: &str, e: &UserError) {
    run.record_failure(
        version,
        Action::Deploy,
        "refused before the step ran",
        &crate::error::sqlstate_text(e.code as i32),
        &e.message,
    );
    procedure::commit();
}

/// Hands a non-transactional migration to a job worker (or resumes the job that ran it
/// before) and waits for it.
fn worker_step(
    m: &Migration,
    direction: Direction,
    executor: pg_sys::Oid,
    run: &Run,
    safe_script: Option<&str>,
) -> Result<String> {
    let up = direction == Direction::Up;
    let own = direction.script(m);
    let sql = safe_script.unwrap_or(&own);
    check_no_transaction_control(m, direction, sql)?;
    check_worker_may_log_in(m, direction, executor)?;
    if let Some(script) = safe_script {
        // What the worker may run as the author (see worker::launch::login_role).
        catalog::set_safe_script(&m.version, script);
    }
    let started = std::time::Instant::now();
    let job = queue_job(m, up, sql, executor, run);
    procedure::commit();
    let mut watch = BuildWatch::new(job);
    let failed = match wait_for_job(job, None, "migrate.deploy", &mut || watch.poll()) {
        Ok(()) => {
            let note = crate::pg::query::one::<String>(
                "SELECT note FROM migrate.jobs WHERE id OPERATOR(pg_catalog.=) $1",
                &[job.into()],
            );
            if let Some(note) = note {
                pgrx::notice!("migrate: job {job}: {note}");
            }
            return Ok(format!("{:.1} s", started.elapsed().as_secs_f64()));
        }
        Err(JobEnd::Failed(error)) => error,
        Err(JobEnd::Cancelled) => "the job was cancelled".into(),
        Err(JobEnd::Missing) => "the job disappeared".into(),
        Err(JobEnd::NoWorker { state }) => format!(
            "the job is {state} and no worker runs it (SELECT migrate.resume_job({job}) or CALL migrate.deploy() again)"
        ),
        Err(JobEnd::TimedOut { .. }) => unreachable!("no deadline"),
    };
    // The failed statement's own HINT comes first, deploy's second.
    let (failed, inner_hint) = match failed.split_once(crate::worker::migration::FAILURE_HINT) {
        Some((failed, hint)) => (failed.to_string(), Some(hint.to_string())),
        None => (failed, None),
    };
    let with_inner = |own: String| match &inner_hint {
        Some(inner) => format!("{inner}\n{own}"),
        None => own,
    };
    let (code, message) = match failed.split_once(": ") {
        Some((state, rest)) if state.len() == 5 => (sqlstate_from_text(state), rest.to_string()),
        _ => (ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE, failed.clone()),
    };
    if code == ERRCODE_LOCK_NOT_AVAILABLE && message.contains("migrate.snapshot_wait_timeout") {
        return Err(UserError::new(
            code,
            format!("migration {} failed ({}) in job {job}: {message}", m.version, direction.label()),
        )
        .detail("Statements before the failing one are done; the failure is in migrate.history and migrate.jobs.")
        .hint(watch.hint()));
    }
    Err(UserError::new(
        code,
        format!(
            "migration {} failed ({}) in job {job}: {message}",
            m.version,
            direction.label()
        ),
    )
    .detail("Statements before the failing one are done; the failure is in migrate.history and migrate.jobs.")
    .hint(with_inner("Fix the cause (a pending migration can be replaced with migrate.add()), then CALL migrate.deploy() again: it resumes at the statement that failed.".into())))
}

/// What `deploy()` shows of a job's concurrent index build while it waits for the job: the
/// worker's note listing the transactions the build will wait for (as the job's role sees
/// them), and the sessions the worker is actually waiting for, as the deploy's caller sees
/// them in pg_stat_activity (with their query when the caller may see it).
struct BuildWatch {
    job: i64,
    polls: u32,
    note: Option<String>,
    /// Blocking the worker at the previous look.
    blocking: Vec<i32>,
    /// Named in a NOTICE already.
    reported: Vec<i32>,
}

impl BuildWatch {
    fn new(job: i64) -> Self {
        BuildWatch {
            job,
            polls: 0,
            note: None,
            blocking: Vec::new(),
            reported: Vec::new(),
        }
    }

    /// About once a second (the waiter polls every 100 ms).
    fn poll(&mut self) {
        self.polls += 1;
        if !self.polls.is_multiple_of(10) {
            return;
        }
        let row = Spi::connect(|client| {
            client
                .select(
                    "SELECT note, worker_pid FROM migrate.jobs WHERE id OPERATOR(pg_catalog.=) $1",
                    None,
                    &[self.job.into()],
                )
                .and_then(|rows| rows.first().get_two::<String, i32>())
                .unwrap_or_else(|e| error!("migrate: could not read job {}: {e}", self.job))
        });
        let (note, pid) = row;
        if note != self.note {
            if let Some(n) = note
                .as_deref()
                .filter(|n| n.contains(crate::worker::migration::PREFLIGHT))
            {
                pgrx::notice!("migrate: job {}: {n}", self.job);
            }
            self.note = note;
        }
        let Some(pid) = pid else { return };
        let blocking = crate::worker::blockers::blocking_pids(pid);
        // Blocking at two looks in a row (a second or more), and not named yet: writers that
        // come and go are not news.
        let lasting: Vec<i32> = blocking
            .iter()
            .copied()
            .filter(|p| self.blocking.contains(p) && !self.reported.contains(p))
            .collect();
        self.blocking = blocking;
        if lasting.is_empty() {
            return;
        }
        let holders = crate::worker::blockers::holders(None, Some(&lasting));
        if !holders.is_empty() {
            pgrx::notice!(
                "migrate: job {} is waiting for {} transaction(s) to end: {}",
                self.job,
                holders.len(),
                crate::worker::blockers::summary(&holders, true)
            );
        }
        self.reported.extend(lasting);
    }

    /// The HINT of a build cancelled by `migrate.snapshot_wait_timeout`: the sessions it was
    /// waiting for, and those a new build would wait for (every snapshot older than now).
    fn hint(&self) -> String {
        let mut pids: Vec<i32> = self
            .reported
            .iter()
            .copied()
            .filter(|p| self.blocking.contains(p))
            .collect();
        for h in crate::worker::blockers::holders(None, None) {
            if h.holds_snapshot && !pids.contains(&h.pid) {
                pids.push(h.pid);
            }
        }
        let ended = match pids.len() {
            0 => "End the sessions named in the error (pg_terminate_backend(pid)) or wait until they end".to_string(),
            n => format!(
                "pid {} {} the build up: SELECT {} ends {}, or wait until {}",
                pids.iter().map(|p| p.to_string()).collect::<Vec<_>>().join(", "),
                if n == 1 { "holds" } else { "hold" },
                pids.iter()
                    .map(|p| format!("pg_terminate_backend({p})"))
                    .collect::<Vec<_>>()
                    .join(", "),
                if n == 1 { "it" } else { "them" },
                if n == 1 { "it ends" } else { "they end" },
            ),
        };
        format!(
            "{ended}; then CALL migrate.deploy() again (the index is built anew). migrate.snapshot_wait_timeout sets how long a build waits ({} ms now; 0: no limit).",
            gucs::snapshot_wait_timeout_ms()
        )
    }
}

/// The worker logs in as the migration's role. PostgreSQL 15 lets a background worker log in
/// only as a role with LOGIN (17 and later can bypass that), so refuse before anything runs.
fn check_worker_may_log_in(
    m: &Migration,
    direction: Direction,
    executor: pg_sys::Oid,
) -> Result<()> {
    #[cfg(feature = "pg15")]
    {
        if !crate::pg::security::can_login(executor) {
            let author = m.author(direction);
            return Err(UserError::new(
                ERRCODE_INSUFFICIENT_PRIVILEGE,
                format!(
                    "migration {} is non-transactional and its role \"{author}\" may not log in",
                    m.version
                ),
            )
            .detail("Its statements run in a background worker that logs in as that role; on PostgreSQL 15 a worker may only log in as a role with LOGIN.")
            .hint(format!("ALTER ROLE \"{author}\" LOGIN, or register the migration as a role with LOGIN.")));
        }
    }
    #[cfg(not(feature = "pg15"))]
    let _ = (m, direction, executor);
    Ok(())
}

/// Non-transactional scripts run statement by statement, each committed: BEGIN/COMMIT in them
/// would change that meaning, so they are refused before anything runs.
fn check_no_transaction_control(m: &Migration, direction: Direction, sql: &str) -> Result<()> {
    let trees = crate::pg::subxact::run(|| script::has_transaction_control(sql))
        .map_err(|caught| UserError::new(caught_parts(&caught).0, caught_parts(&caught).1))?;
    if trees {
        return Err(UserError::new(
            ERRCODE_INVALID_TRANSACTION_TERMINATION,
            format!(
                "migration {} is non-transactional but its {} script has transaction control statements",
                m.version,
                direction.label()
            ),
        )
        .hint("Remove BEGIN/COMMIT/ROLLBACK: each statement of a non-transactional migration commits on its own."));
    }
    Ok(())
}

/// The job that runs this step: the running one, the previous one resumed (same script), or a
/// new one that skips the statements a failed earlier version of the script had done.
fn queue_job(m: &Migration, up: bool, sql: &str, executor: pg_sys::Oid, run: &Run) -> i64 {
    let statements: Vec<String> = script::split(sql)
        .into_iter()
        .map(|s| normalise(&s.text))
        .collect();
    let mut skip = 0;
    if let Some(prev) = queue::latest_migration_job(&m.version, up) {
        let prev_m = prev.migration().cloned().expect("a migration job");
        let alive = queue::has_worker(prev.id);
        match prev.state {
            queue::RUNNING | queue::QUEUED if alive => {
                pgrx::notice!(
                    "migrate: job {} is already running it; waiting for it",
                    prev.id
                );
                return prev.id;
            }
            queue::SUCCEEDED => {}
            _ if prev_m.script == sql => {
                queue::set_state(prev.id, queue::QUEUED, Some("resumed by deploy()"));
                launch::start_at_commit(prev.id);
                pgrx::notice!(
                    "migrate: resuming job {} at statement {} of {}",
                    prev.id,
                    prev_m.statements_done + 1,
                    prev_m.statements
                );
                return prev.id;
            }
            _ => {
                // The script changed after a failure: statements it still starts with, and
                // that the earlier job finished, are not run again.
                let done: Vec<String> = script::split(&prev_m.script)
                    .into_iter()
                    .take(prev_m.statements_done.max(0) as usize)
                    .map(|s| normalise(&s.text))
                    .collect();
                skip = done
                    .iter()
                    .zip(&statements)
                    .take_while(|(a, b)| a == b)
                    .count();
            }
        }
    }
    let search_path = crate::worker::api::current_setting("search_path");
    let id = queue::insert_migration(&queue::NewMigrationJob {
        version: &m.version,
        up,
        script: sql,
        statements: statements.len() as i64,
        statements_done: skip as i64,
        search_path: &search_path,
        owner: executor,
        owner_name: m.author(if up { Direction::Up } else { Direction::Down }),
        run_id: run.id,
        requested_by: &run.role,
        lock_timeout_ms: gucs::lock_timeout_ms(),
        lock_retries: gucs::lock_retries(),
        lock_retry_delay_ms: gucs::lock_retry_delay_ms(),
        snapshot_wait_timeout_ms: gucs::snapshot_wait_timeout_ms(),
    });
    launch::start_at_commit(id);
    if skip > 0 {
        pgrx::notice!(
            "migrate: job {id} runs statements {} to {} (the first {skip} were done by an earlier attempt)",
            skip + 1,
            statements.len()
        );
    } else {
        pgrx::notice!(
            "migrate: job {id} runs its {} statement(s)",
            statements.len()
        );
    }
    id
}

/// A statement's text with comments kept but whitespace runs collapsed, for comparing scripts.
fn normalise(statement: &str) -> String {
    statement.split_whitespace().collect::<Vec<_>>().join(" ")
}

/// The operator's escape hatch: records that migration `version` is `applied` (fixed or run by
/// hand) or `pending` (undone by hand) without running anything. Logged with the old state.
#[pg_extern(volatile)]
fn resolve(version: Option<&str>, state: Option<&str>) {
    (|| {
        execute::registry_call("resolve")?;
        let version = checked_version(version, "version", "resolve")?;
        let state = state.ok_or_else(|| null_argument("state", "resolve"))?;
        let state = match state {
            "applied" => MigrationState::Applied,
            "pending" => MigrationState::Pending,
            _ => {
            return Err(UserError::new(
                PgSqlErrorCode::ERRCODE_INVALID_PARAMETER_VALUE,
                format!("invalid state \"{state}\" for migrate.resolve()"),
            )
            .hint("Use 'applied' (the migration's changes are in place) or 'pending' (they are not)."));
            }
        };
        catalog::lock_registry();
        let all = catalog::load_all(true);
        let m = catalog::find(&all, version)?;
        for up in [true, false] {
            if let Some(job) = queue::latest_migration_job(&m.version, up) {
                let live = job.state == queue::RUNNING
                    || job.state == queue::QUEUED;
                if live && queue::has_worker(job.id) {
                    return Err(UserError::new(
                        PgSqlErrorCode::ERRCODE_OBJECT_IN_USE,
                        format!("migration {} is being run by job {} right now", m.version, job.id),
                    )
                    .hint(format!("Wait for it (CALL migrate.wait_job({})) or cancel it with migrate.cancel_job({}) first.", job.id, job.id)));
                }
            }
        }
        if (state == MigrationState::Applied) == m.is_applied() {
            pgrx::notice!("migrate: migration {} is already {}", m.version, m.state);
            return Ok(());
        }
        let role = current_role_name();
        let run_id = catalog::next_run_id();
        let started = catalog::clock_now();
        if state == MigrationState::Applied {
            catalog::mark_applied(&m.version, state, &role, run_id, started);
        } else {
            catalog::mark_pending(&m.version);
        }
        let detail = format!("{} -> {state}, set by hand", m.state);
        catalog::log_event(&Event {
            run_id,
            version: &m.version,
            action: Action::Resolve,
            started,
            role: &role,
            detail: Some(&detail),
        });
        Ok(())
    })()
    .or_raise()
}

/// Unregisters a pending migration that was added by mistake (logged as `remove`, with the
/// checksum of what it was). An applied one is refused (roll it back first), as is one that a
/// registered migration requires, or one a job ran part of and did not finish (its first
/// statements may be in place: finish it, or record the truth with resolve()).
#[pg_extern(volatile)]
fn remove(version: Option<&str>) {
    (|| {
        execute::registry_call("remove")?;
        let version = checked_version(version, "version", "remove")?;
        catalog::lock_registry();
        catalog::refuse_while_deploying("remove")?;
        let all = catalog::load_all(true);
        let m = catalog::find(&all, version)?;
        if m.is_applied() {
            return Err(UserError::new(
                PgSqlErrorCode::ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE,
                format!("migration {} is {} and cannot be removed", m.version, m.state),
            )
            .hint(format!(
                "Roll it back first (SELECT migrate.rollback_to(...) or CALL migrate.deploy(...) to an earlier version), or resolve('{}', 'pending') if its changes are not in place.",
                m.version
            )));
        }
        let dependents: Vec<&str> = all
            .iter()
            .filter(|other| {
                other
                    .requires
                    .iter()
                    .any(|r| version::compare(r, &m.version).is_eq())
            })
            .map(|other| other.version.as_str())
            .collect();
        if !dependents.is_empty() {
            return Err(UserError::new(
                PgSqlErrorCode::ERRCODE_DEPENDENT_OBJECTS_STILL_EXIST,
                format!(
                    "migration {} is required by {}",
                    m.version,
                    dependents.join(", ")
                ),
            )
            .hint("Remove those first, or register them again without the requirement."));
        }
        if let Some(job) = queue::latest_migration_job(&m.version, true) {
            if !matches!(job.state, queue::JobState::Succeeded | queue::JobState::Cancelled) {
                return Err(UserError::new(
                    PgSqlErrorCode::ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE,
                    format!(
                        "migration {} was run in part by job {}, which is {}",
                        m.version, job.id, job.state
                    ),
                )
                .detail("Its first statements may be in place, committed one by one.")
                .hint(format!(
                    "Finish it with CALL migrate.deploy(), or undo what it did by hand and migrate.cancel_job({}) first.",
                    job.id
                )));
            }
        }
        let started = catalog::clock_now();
        catalog::delete(&m.version);
        let detail = format!(
            "unregistered while pending; its up script had checksum sha256:{}",
            m.checksum
        );
        catalog::log_event(&Event {
            run_id: catalog::next_run_id(),
            version: &m.version,
            action: Action::Remove,
            started,
            role: &current_role_name(),
            detail: Some(&detail),
        });
        Ok(())
    })()
    .or_raise()
}
