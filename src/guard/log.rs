//! `migrate.guard_log`: every violation, warning and permitted override.
//!
//! Warnings and overrides are written in the statement's own transaction (if it rolls back, the
//! DDL never happened either). A blocked statement aborts its transaction, so its row is written
//! by a short-lived background worker in a transaction of its own; if no worker slot is free
//! (`max_worker_processes`), the block is written to the server log instead.

use pgrx::bgworkers::{BackgroundWorker, BackgroundWorkerBuilder};
use pgrx::pg_sys;
use pgrx::prelude::*;
use serde::{Deserialize, Serialize};

use crate::pg::security::as_registry_owner;

/// One guard_log row.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Entry {
    pub action: String,
    pub rule: String,
    pub table_name: String,
    pub statement: String,
    pub message: String,
    pub reason: Option<String>,
    pub estimated_rows: f64,
    pub mode: String,
    pub role: String,
}

const INSERT: &str = "INSERT INTO migrate.guard_log \
    (action, rule, table_name, statement, message, reason, estimated_rows, mode, role, client_addr) \
    VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10::inet)";

fn insert(e: &Entry, client_addr: Option<String>) {
    Spi::run_with_args(
        INSERT,
        &[
            e.action.as_str().into(),
            e.rule.as_str().into(),
            e.table_name.as_str().into(),
            e.statement.as_str().into(),
            e.message.as_str().into(),
            e.reason.as_deref().into(),
            e.estimated_rows.into(),
            e.mode.as_str().into(),
            e.role.as_str().into(),
            client_addr.into(),
        ],
    )
    .unwrap_or_else(|err| pgrx::error!("migrate: could not write migrate.guard_log: {err}"));
}

/// The longest statement text the log keeps (a role could otherwise fill it with megabytes).
const MAX_STATEMENT_CHARS: usize = 2000;

/// `text` cut to `MAX_STATEMENT_CHARS` characters, saying how much was cut.
pub fn bounded(text: &str) -> String {
    match text.char_indices().nth(MAX_STATEMENT_CHARS) {
        None => text.to_string(),
        Some((cut, _)) => format!(
            "{}... ({} more characters)",
            &text[..cut],
            text[cut..].chars().count()
        ),
    }
}

thread_local! {
    /// Rows held back until the running statement has done its work (see [`defer`]).
    static DEFERRED: std::cell::RefCell<Option<Vec<Entry>>> = const { std::cell::RefCell::new(None) };
}

/// Holds the rows of the statement about to run until [`write_deferred`]: `LOCK TABLE` must
/// take its lock before the transaction's snapshot (REPEATABLE READ's "lock first" idiom),
/// and writing a row takes one.
pub fn defer() {
    DEFERRED.with(|d| *d.borrow_mut() = Some(Vec::new()));
}

/// Writes the rows [`defer`] held back (the statement succeeded).
pub fn write_deferred() {
    for e in DEFERRED.with(|d| d.borrow_mut().take()).unwrap_or_default() {
        record(&e);
    }
}

/// Drops the rows [`defer`] held back (the statement failed: its transaction aborts).
pub fn discard_deferred() {
    DEFERRED.with(|d| d.borrow_mut().take());
}

/// Writes a row in the current transaction. In a read-only transaction (a warning on `LOCK
/// TABLE` or `REINDEX` there) it goes to the server log instead: the statement is allowed,
/// the insert would not be.
pub fn record(e: &Entry) {
    let held = DEFERRED.with(|d| {
        d.borrow_mut()
            .as_mut()
            .map(|rows| rows.push(e.clone()))
            .is_some()
    });
    if held {
        return;
    }
    if crate::pg::backend::read_only_transaction() {
        pgrx::log!(
            "migrate guard {} (not recorded in migrate.guard_log: read-only transaction): rule {} on {} by {}: {}",
            e.action, e.rule, e.table_name, e.role, e.statement
        );
        return;
    }
    as_registry_owner(|| insert(e, client_addr()));
}

fn client_addr() -> Option<String> {
    crate::pg::query::one("SELECT pg_catalog.inet_client_addr()::text", &[])
}

/// What the worker needs: where to write, and what.
#[derive(Serialize, Deserialize)]
struct Payload {
    database: u32,
    client_addr: Option<String>,
    entry: Entry,
}

thread_local! {
    /// Token bucket of autonomous writes: (tokens left, when it was last refilled).
    static WRITE_TOKENS: std::cell::Cell<(f64, Option<std::time::Instant>)> =
        const { std::cell::Cell::new((BURST, None)) };
}

/// Each autonomous write costs a background worker: a session may start a burst of them (a
/// migration file full of blocked statements) and then a few per second, so a loop of blocked
/// statements cannot take every worker slot. Beyond that, blocks go to the server log only.
const BURST: f64 = 50.0;
const MAX_WRITES_PER_SECOND: f64 = 5.0;

/// guard_log writer workers that may run at once in the whole cluster: however many sessions
/// block statements, they never take more of max_worker_processes than this.
const MAX_WRITERS: i64 = 2;

/// guard_log writer workers running now, in any database.
fn writers_running() -> i64 {
    as_registry_owner(|| {
        // Read as 0, a failed count would start writers past the bound.
        crate::pg::query::required::<i64>(
            "SELECT pg_catalog.count(*) FROM pg_catalog.pg_stat_activity \
             WHERE backend_type OPERATOR(pg_catalog.=) 'migrate guard_log writer'",
            &[],
        )
    })
}

/// Waits up to a second for fewer than MAX_WRITERS writers to run; false if none got free.
fn writer_free() -> bool {
    for _ in 0..50 {
        if writers_running() < MAX_WRITERS {
            return true;
        }
        crate::pg::backend::sleep_us(20_000);
    }
    false
}

fn within_rate() -> bool {
    let now = std::time::Instant::now();
    WRITE_TOKENS.with(|t| {
        let (tokens, last) = t.get();
        let refilled = last.map_or(BURST, |last| {
            (tokens + now.duration_since(last).as_secs_f64() * MAX_WRITES_PER_SECOND).min(BURST)
        });
        let allowed = refilled >= 1.0;
        t.set((if allowed { refilled - 1.0 } else { refilled }, Some(now)));
        allowed
    })
}

/// Writes a row that survives the abort of the current transaction.
pub fn record_autonomously(e: Entry) {
    // Each autonomous row costs a background worker, which max_worker_processes limits for the
    // whole cluster: only superusers and members of migrate_admin (who run migrations, and
    // whose blocks the log is for) may spend them. Anyone else's blocks go to the server log.
    if !crate::pg::security::is_migrate_admin() {
        pgrx::log!(
            "migrate guard blocked: rule {} on {} by {}: {}",
            e.rule,
            e.table_name,
            e.role,
            e.statement
        );
        return;
    }
    if !within_rate() || !writer_free() {
        pgrx::log!(
            "migrate guard blocked (not recorded in migrate.guard_log: too many blocks at once, more than {MAX_WRITES_PER_SECOND} per second from this session or {MAX_WRITERS} writers busy): rule {} on {} by {}: {}",
            e.rule, e.table_name, e.role, e.statement
        );
        return;
    }
    let client_addr = as_registry_owner(client_addr);
    let database = crate::pg::backend::database().to_u32();
    let payload = serde_json::to_vec(&Payload {
        database,
        client_addr,
        entry: e,
    })
    .expect("the entry serialises");
    let handle = crate::pg::dsm::publish(&payload);
    // Blocks can come in bursts (a migration file full of them) while max_worker_processes is
    // small: wait up to a second for a slot before falling back to the server log.
    let mut started = Err(());
    for _ in 0..50 {
        started = BackgroundWorkerBuilder::new("migrate guard_log writer")
            .set_type("migrate guard_log writer")
            .set_library("migrate")
            .set_function("migrate_guard_log_writer")
            .enable_spi_access()
            .set_argument(Some(pg_sys::Datum::from(handle as usize)))
            .load_dynamic()
            .map(|_| ())
            .map_err(|_| ());
        if started.is_ok() {
            break;
        }
        crate::pg::backend::sleep_us(20_000);
    }
    if started.is_err() {
        crate::pg::dsm::discard(handle);
        let entry = serde_json::from_slice::<Payload>(&payload)
            .expect("round trip")
            .entry;
        pgrx::log!(
            "migrate guard blocked (no background worker slot to record it in migrate.guard_log): rule {} on {} by {}: {}",
            entry.rule, entry.table_name, entry.role, entry.statement
        );
    }
}

/// Entry point of the guard_log writer worker.
#[pg_guard]
#[no_mangle]
pub extern "C-unwind" fn migrate_guard_log_writer(arg: pg_sys::Datum) {
    let handle = arg.value() as pg_sys::dsm_handle;
    let Some(payload) = crate::pg::dsm::take(handle) else {
        return;
    };
    let Ok(payload) = serde_json::from_slice::<Payload>(&payload) else {
        return;
    };
    BackgroundWorker::connect_worker_to_spi_by_oid(Some(pg_sys::Oid::from(payload.database)), None);
    BackgroundWorker::transaction(|| {
        // The extension may have been dropped meanwhile (and a look-alike schema put in its
        // place): then there is nothing of ours to write to.
        if crate::worker::queue::extension_installed() {
            as_registry_owner(|| insert(&payload.entry, payload.client_addr.clone()));
        }
    });
}
