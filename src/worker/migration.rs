//! Migration jobs: a non-transactional migration (`-- migrate:no-transaction`) that a job
//! worker runs for `deploy()`, one statement at a time, each top-level in a transaction of its
//! own (see [`crate::pg::toplevel`]), as the role that registered the migration.
//!
//! Progress is checkpointed after every statement, so a failed or interrupted job resumes at
//! the statement that did not finish. A concurrent index build that fails leaves an invalid
//! index behind: the worker drops it (concurrently) before it reports the failure, and drops
//! one left by a crashed attempt before it builds the index again. A lock timeout (55P03) is
//! retried with backoff, like `deploy()` retries a transactional migration.

use std::time::Duration;

use migrate_core::retry;
use pgrx::datum::TimestampWithTimeZone;
use pgrx::pg_sys;
use pgrx::pg_sys::panic::CaughtError;
use pgrx::prelude::*;
use pgrx::PgSqlErrorCode::*;

use super::queue::{self, Job, MigrationJob, RUNNING};
use crate::error::{caught_parts, sqlstate_text};
use crate::pg::security::set_config;
use crate::pg::{script, toplevel, xact};
use crate::registry::catalog;
use crate::registry::execute::{Direction, Run};

/// Which script of its migration a job runs.
fn direction(m: &MigrationJob) -> Direction {
    if m.up {
        Direction::Up
    } else {
        Direction::Down
    }
}

/// Runs migration job `id` to its end (or until it is paused, cancelled or fails).
pub fn run(id: i64) {
    let started = match xact::run(|| start(id)) {
        Ok(Some(started)) => started,
        Ok(None) => return,
        Err(caught) => return fail(id, None, &caught, None, &[]),
    };
    let (job, m, started_at) = started;
    crate::pg::backend::report_appname(&format!(
        "migrate job {id}: migration {} ({})",
        m.version,
        direction(&m).label()
    ));
    let statements = match xact::run(|| {
        // Session-wide for this worker: the deploying session's search_path and lock_timeout.
        let path = std::ffi::CString::new(job.search_path.as_str()).unwrap_or_default();
        set_config(c"search_path", &path, pg_sys::GucAction::GUC_ACTION_SET);
        let timeout = std::ffi::CString::new(m.lock_timeout_ms.to_string()).expect("digits");
        set_config(
            c"migrate.lock_timeout",
            &timeout,
            pg_sys::GucAction::GUC_ACTION_SET,
        );
        // Its -- migrate:allow lines, for the statements that run in transactions of their
        // own (VACUUM FULL, REINDEX SCHEMA, ... judged by the ProcessUtility hook).
        crate::guard::state::set_job_allowances(migrate_core::options::allow_directives(&m.script));
        script::split(&m.script)
    }) {
        Ok(statements) => statements,
        Err(caught) => return fail(id, Some(&m), &caught, None, &[]),
    };
    let resumed_at = m.current_statement;
    // What the worker did besides the statements (invalid indexes dropped), for the record.
    let mut notes: Vec<String> = Vec::new();
    for (index, statement) in statements
        .iter()
        .enumerate()
        .skip(m.statements_done.max(0) as usize)
    {
        let number = index as i32 + 1;
        let line = script::line_and_column(
            &m.script,
            m.script[..statement.offset + script::first_token(&statement.text)]
                .chars()
                .count()
                + 1,
        )
        .0;
        let label = format!("statement {number} of {} (line {line})", statements.len());
        match run_statement(&job, &m, number, &label, &statement.text, resumed_at) {
            Ok(done) => notes.extend(done),
            Err(Stop::Stopped) => return,
            Err(Stop::Failed(caught, failed_notes)) => {
                notes.extend(failed_notes);
                return fail(id, Some(&m), &caught, Some(&label), &notes);
            }
        }
    }
    let finished = xact::run(|| {
        let note = (!notes.is_empty()).then(|| notes.join("; "));
        let mut detail = format!("deploy: non-transactional, run top-level by job {id}");
        if let Some(n) = &note {
            detail = format!("{detail}; {n}");
        }
        Run::resume(m.run_id, &m.requested_by).record(
            &m.version,
            direction(&m),
            started_at,
            Some(&detail),
        );
        queue::set_state(id, queue::SUCCEEDED, note.as_deref());
    });
    if let Err(caught) = finished {
        fail(id, Some(&m), &caught, None, &[]);
    }
}

/// Takes the job: it must be runnable and its role must still exist.
fn start(id: i64) -> Option<(Job, MigrationJob, TimestampWithTimeZone)> {
    let job = queue::load(id, true)?;
    if job.state != queue::QUEUED && job.state != RUNNING {
        return None;
    }
    let m = job.migration().cloned()?;
    if crate::pg::security::role_name(job.owner).is_none() {
        crate::error::UserError::new(
            ERRCODE_UNDEFINED_OBJECT,
            format!(
                "role \"{}\", which registered migration {}, no longer exists",
                job.owner_name, m.version
            ),
        )
        .hint("Register the migration again as an existing role, then deploy again.")
        .raise();
    }
    queue::mark_running(id, None, None);
    Some((job, m, catalog::clock_now()))
}

enum Stop {
    /// Paused or cancelled between statements.
    Stopped,
    /// The statement failed for good: the error and what the worker did about it.
    Failed(Box<CaughtError>, Vec<String>),
}

/// Runs statement `number` with its lock-timeout retries and invalid-index cleanup, then
/// checkpoints it. Returns notes on what was cleaned up.
fn run_statement(
    job: &Job,
    m: &MigrationJob,
    number: i32,
    label: &str,
    sql: &str,
    resumed_at: Option<i32>,
) -> Result<Vec<String>, Stop> {
    let mut attempt = 0u32;
    let mut notes = Vec::new();
    loop {
        let shown: String = sql.trim().chars().take(120).collect();
        let prepared = xact::run(|| {
            let current = queue::load(job.id, true)?;
            if current.state != RUNNING {
                return None;
            }
            queue::statement_started(job.id, number, &format!("running {label}: {shown}"));
            Some(IndexBuild::find(sql))
        });
        let build = match prepared {
            Ok(Some(build)) => build,
            Ok(None) => return Err(Stop::Stopped),
            Err(caught) => return Err(Stop::Failed(caught, notes)),
        };
        if let Some(b) = &build {
            let existing = match b.existing() {
                Ok(existing) => existing,
                Err(caught) => return Err(Stop::Failed(caught, notes)),
            };
            match existing {
                // The attempt that a crash interrupted here had committed its build.
                Some((name, true)) if resumed_at == Some(number) => {
                    checkpoint(job.id, number);
                    notes.push(format!(
                        "index {name} was already built by the interrupted attempt"
                    ));
                    return Ok(notes);
                }
                Some((name, false)) => drop_index(&name, &mut notes, "left by an earlier attempt"),
                _ => {}
            }
        }
        match toplevel::execute(sql) {
            Ok(()) => {
                checkpoint(job.id, number);
                return Ok(notes);
            }
            Err(caught) => {
                match &build {
                    Some(b @ IndexBuild { name: Some(_), .. }) => match b.existing() {
                        Ok(Some((name, false))) => {
                            drop_index(&name, &mut notes, "left by the failed build")
                        }
                        Ok(_) => {}
                        Err(look) => notes.push(format!(
                            "could not look for an invalid index left by the failed build: {}",
                            caught_parts(&look).1
                        )),
                    },
                    Some(IndexBuild {
                        name: None,
                        table_name,
                        ..
                    }) => notes.push(format!(
                        "an unnamed concurrent index build on {table_name} failed: drop the invalid index it may have left (DROP INDEX CONCURRENTLY), or name the index in the migration so deploy() cleans it up"
                    )),
                    None => {}
                }
                let (code, message, _, _) = caught_parts(&caught);
                if code == ERRCODE_LOCK_NOT_AVAILABLE && attempt < m.lock_retries.max(0) as u32 {
                    attempt += 1;
                    let wait = retry::backoff_ms(
                        u64::try_from(m.lock_retry_delay_ms).unwrap_or(1),
                        attempt,
                        retry::LOCK_RETRY_CAP_MS,
                        retry::jitter(),
                    );
                    let note = format!(
                        "{label}: {message}; lock retry {attempt} of {} in {wait} ms",
                        m.lock_retries
                    );
                    log_if_failed(
                        "note a lock retry",
                        xact::run(|| queue::set_note(job.id, Some(&note))),
                    );
                    xact::sleep(Duration::from_millis(wait));
                    continue;
                }
                return Err(Stop::Failed(caught, notes));
            }
        }
    }
}

/// Records that statement `number` committed. If this fails the statement runs again after a
/// restart, so say so in the server log.
fn checkpoint(id: i64, number: i32) {
    log_if_failed(
        "checkpoint a statement",
        xact::run(|| queue::statement_done(id, number)),
    );
}

fn log_if_failed(what: &str, result: Result<(), Box<CaughtError>>) {
    if let Err(caught) = result {
        pgrx::log!("migrate: could not {what}: {}", caught_parts(&caught).1);
    }
}

/// Drops an invalid index concurrently (top-level) and notes it.
fn drop_index(name: &str, notes: &mut Vec<String>, why: &str) {
    match toplevel::execute(&format!("DROP INDEX CONCURRENTLY IF EXISTS {name}")) {
        Ok(()) => notes.push(format!("dropped invalid index {name} {why}")),
        Err(caught) => notes.push(format!(
            "could not drop invalid index {name} {why}: {}",
            caught_parts(&caught).1
        )),
    }
}

/// A `CREATE INDEX CONCURRENTLY`: its table and the index name it asks for. Only a named
/// index is ever dropped: an unnamed build's leftover cannot be told apart from another
/// session's build in progress.
struct IndexBuild {
    table: pg_sys::Oid,
    table_name: String,
    name: Option<String>,
}

impl IndexBuild {
    /// Recognises a concurrent index build (in a transaction, as the job's role).
    fn find(sql: &str) -> Option<IndexBuild> {
        let tree = *script::parse_trees(sql).first()?;
        // SAFETY: a node of the raw parse tree just built; IndexStmt fields are read only after
        // its tag was checked; RangeVarGetRelidExtended with missing_ok raises nothing for a
        // missing table and takes no lock.
        let (table, name) = unsafe {
            if (*tree).type_ != pg_sys::NodeTag::T_IndexStmt {
                return None;
            }
            let stmt = tree as *mut pg_sys::IndexStmt;
            if !(*stmt).concurrent {
                return None;
            }
            let table = pg_sys::RangeVarGetRelidExtended(
                (*stmt).relation,
                pg_sys::NoLock as i32,
                pg_sys::RVROption::RVR_MISSING_OK,
                None,
                std::ptr::null_mut(),
            );
            let name = (!(*stmt).idxname.is_null()).then(|| {
                std::ffi::CStr::from_ptr((*stmt).idxname)
                    .to_string_lossy()
                    .into_owned()
            });
            (table, name)
        };
        if table == pg_sys::InvalidOid {
            return None;
        }
        let table_name = Spi::get_one_with_args::<String>(
            "SELECT $1::pg_catalog.regclass::pg_catalog.text",
            &[table.into()],
        )
        .unwrap_or_else(|e| error!("migrate: could not name the table of an index build: {e}"))
        .expect("a regclass of an existing table has a name");
        Some(IndexBuild {
            table,
            table_name,
            name,
        })
    }

    /// The index of the requested name on the build's table, if it exists: (qualified name,
    /// valid). An error is returned, not read as "no index": what the worker drops or skips
    /// depends on it.
    fn existing(&self) -> Result<Option<(String, bool)>, Box<CaughtError>> {
        let Some(name) = self.name.as_deref() else {
            return Ok(None);
        };
        xact::run(|| {
            Spi::connect(|client| {
                let what = "look for the index of a concurrent build";
                let rows = client
                    .select(
                        "SELECT pg_catalog.format('%I.%I', n.nspname, c.relname), i.indisvalid \
                         FROM pg_catalog.pg_index i \
                         JOIN pg_catalog.pg_class c ON c.oid OPERATOR(pg_catalog.=) i.indexrelid \
                         JOIN pg_catalog.pg_namespace n ON n.oid OPERATOR(pg_catalog.=) c.relnamespace \
                         WHERE i.indrelid OPERATOR(pg_catalog.=) $1 AND c.relname OPERATOR(pg_catalog.=) $2",
                        None,
                        &[self.table.into(), name.into()],
                    )
                    .unwrap_or_else(|e| error!("migrate: could not {what}: {e}"));
                let row = rows.into_iter().next()?;
                let column = |n| {
                    row.get::<String>(n)
                        .unwrap_or_else(|e| error!("migrate: could not {what}: {e}"))
                };
                let valid = row
                    .get::<bool>(2)
                    .unwrap_or_else(|e| error!("migrate: could not {what}: {e}"));
                Some((column(1)?, valid?))
            })
        })
    }
}

/// Marks the job failed and appends the failure to the registry's event log.
/// `statement` names the statement that failed; `notes` say what the worker did about it.
fn fail(
    id: i64,
    m: Option<&MigrationJob>,
    caught: &CaughtError,
    statement: Option<&str>,
    notes: &[String],
) {
    let (code, message, detail, _) = caught_parts(caught);
    let sqlstate = sqlstate_text(code as i32);
    let mut full = match statement {
        Some(s) => format!("{s}: {message}"),
        None => message,
    };
    if let Some(d) = detail {
        full = format!("{full} ({d})");
    }
    if !notes.is_empty() {
        full = format!("{full}; {}", notes.join("; "));
    }
    pgrx::log!("migrate: job {id} failed: {full}");
    let _ = xact::run(|| {
        queue::fail(id, &sqlstate, &full);
        if let Some(m) = m {
            Run::resume(m.run_id, &m.requested_by).record_failure(
                &m.version,
                direction(m).action(),
                &format!("deploy: job {id}"),
                &sqlstate,
                &full,
            );
        }
    });
}
