//! Migration scripts: split into statements with the server's own parser, run one statement at
//! a time through SPI, and on failure say which statement, line and column broke and why.
//!
//! pgrx turns a caught PostgreSQL error into a Rust value that keeps the SQLSTATE (when it is a
//! standard one), message, detail and hint but not the error position or a non-standard
//! SQLSTATE. An error-context callback records both while the error is being raised.

use std::cell::Cell;
use std::ffi::CString;

use pgrx::pg_sys;
use pgrx::prelude::*;

use super::security;

/// One statement of a script: its text and where it starts.
#[derive(Debug, Clone)]
pub struct Statement {
    pub text: String,
    /// Byte offset of the statement's text in the script.
    pub offset: usize,
}

/// Where in the script an error happened, as PostgreSQL reported it.
#[derive(Debug, Clone, Copy, Default)]
pub struct ErrorSite {
    /// The raw SQLSTATE integer, kept because pgrx maps non-standard codes to XX000.
    pub sqlstate: i32,
    /// 1-based character position in the script, 0 when the error has none.
    pub position: usize,
    /// Index of the statement that was running and the 0-based character offset of its first
    /// token in the script, if the script was split already.
    pub statement: Option<(usize, usize)>,
}

thread_local! {
    static LAST_SITE: Cell<ErrorSite> = const { Cell::new(ErrorSite { sqlstate: 0, position: 0, statement: None }) };
    /// Character offset of the running statement's text in the script, and the statement.
    static RUNNING: Cell<(usize, Option<(usize, usize)>)> = const { Cell::new((0, None)) };
    /// Text of the migration statement running now, for the guard's log.
    static CURRENT: std::cell::RefCell<Option<String>> = const { std::cell::RefCell::new(None) };
}

/// Error-context callback: runs while an error (or notice) is being raised inside the script
/// and records its SQLSTATE and position relative to the whole script.
#[pg_guard]
unsafe extern "C-unwind" fn record_error_site(_arg: *mut std::ffi::c_void) {
    // SAFETY: these read the error being raised, which is what context callbacks are for.
    let (code, position, internal) = unsafe {
        (
            pg_sys::geterrcode(),
            pg_sys::geterrposition(),
            pg_sys::getinternalerrposition(),
        )
    };
    let (statement_start, statement) = RUNNING.get();
    // Syntax errors from our own parse of the whole script carry a plain position; errors from
    // SPI carry an "internal" position relative to the statement text SPI was given.
    let position = if internal > 0 {
        statement_start + internal as usize
    } else if position > 0 && statement.is_none() {
        position as usize
    } else {
        0
    };
    LAST_SITE.set(ErrorSite {
        sqlstate: code,
        position,
        statement,
    });
}

/// Pushes [`record_error_site`] on the error context stack for as long as it lives, and pops it
/// on drop, also while an error unwinds through it.
struct SiteRecorder {
    callback: Box<pg_sys::ErrorContextCallback>,
}

impl SiteRecorder {
    fn push() -> Self {
        LAST_SITE.set(ErrorSite::default());
        RUNNING.set((0, None));
        // SAFETY: the callback struct is boxed, so its address is stable until drop unlinks it.
        unsafe {
            let mut callback = Box::new(pg_sys::ErrorContextCallback {
                previous: pg_sys::error_context_stack,
                callback: Some(record_error_site),
                arg: std::ptr::null_mut(),
            });
            pg_sys::error_context_stack = &mut *callback;
            Self { callback }
        }
    }
}

impl Drop for SiteRecorder {
    fn drop(&mut self) {
        // SAFETY: restores the stack as it was before push(); pgrx's FFI guard already reset it
        // to point at our entry when an error was caught below us.
        unsafe { pg_sys::error_context_stack = self.callback.previous };
    }
}

/// The error site recorded for the last error raised in [`run`].
pub fn last_error_site() -> ErrorSite {
    LAST_SITE.get()
}

/// The migration statement running now, if the registry is running one.
pub fn current_statement() -> Option<String> {
    CURRENT.with(|c| c.borrow().clone())
}

/// The server's raw parser, always with the lexer settings of [`security::SQL_DIALECT`]: the
/// statements a script splits into must not depend on the session that happens to look.
fn raw_parse(sql: &CString) -> *mut pg_sys::List {
    security::with_own_settings(security::SQL_DIALECT, || {
        // SAFETY: a NUL-terminated string; errors are raised as usual.
        unsafe { pg_sys::raw_parser(sql.as_ptr(), pg_sys::RawParseMode::RAW_PARSE_DEFAULT) }
    })
}

/// Raises unless `sql` is exactly one statement (as the lexer of [`security::SQL_DIALECT`]
/// sees it). Code that builds a statement around a user's text checks it with this right
/// before running it, in the session that runs it.
pub fn ensure_single_statement(sql: &str) {
    if parse_trees(sql).len() != 1 {
        crate::error::UserError::new(
            PgSqlErrorCode::ERRCODE_SYNTAX_ERROR,
            "migrate: a statement built from user SQL is not exactly one statement",
        )
        .detail(format!("Statement: {sql}"))
        .hint("Check the quoting of the SQL you passed; it must not end the statement.")
        .raise();
    }
}

/// True if `script` has a `BEGIN`, `COMMIT`, `ROLLBACK`, `SAVEPOINT`... statement; raises a
/// syntax error like [`parse_trees`].
pub fn has_transaction_control(script: &str) -> bool {
    parse_trees(script)
        .iter()
        // SAFETY: nodes of the raw parse tree just built; only the tag is read.
        .any(|&n| unsafe { (*n).type_ == pg_sys::NodeTag::T_TransactionStmt })
}

/// Parse trees of every statement in `script` (raw_parser output, in the current memory
/// context); raises the syntax error, with its position recorded, if it does not parse.
pub fn parse_trees(script: &str) -> Vec<*mut pg_sys::Node> {
    let _recorder = SiteRecorder::push();
    let c_script =
        CString::new(script).unwrap_or_else(|_| error!("SQL must not contain NUL characters"));
    // SAFETY: raw_parser returns a List of RawStmt; we return their statement nodes, which
    // live in the current memory context.
    unsafe {
        super::list::items::<pg_sys::RawStmt>(raw_parse(&c_script))
            .into_iter()
            .map(|raw| (*raw).stmt)
            .collect()
    }
}

/// Splits a script into statements with the server's raw parser; raises the parser's syntax
/// error (position recorded) if it does not parse.
pub fn split(script: &str) -> Vec<Statement> {
    let c_script = CString::new(script)
        .unwrap_or_else(|_| error!("migration SQL must not contain NUL characters"));
    let mut out = Vec::new();
    // SAFETY: raw_parser returns a List of RawStmt allocated in the current memory context; we
    // copy out byte offsets at once and do not keep the nodes.
    unsafe {
        for raw in super::list::items::<pg_sys::RawStmt>(raw_parse(&c_script)) {
            let start = (*raw).stmt_location.max(0) as usize;
            let end = match (*raw).stmt_len {
                0 => script.len(),
                len => start + len as usize,
            };
            out.push(Statement {
                text: script[start..end].to_string(),
                offset: start,
            });
        }
    }
    out
}

/// Runs every statement of `script` through SPI as the current user, recording error sites.
/// SPI runs statements as non-top-level: transaction control and `CONCURRENTLY` fail here and
/// must go through `migrate.deploy()`.
pub fn run(script: &str) {
    let _recorder = SiteRecorder::push();
    let statements = split(script);
    let _spi = SpiConnection::open();
    // Character offsets (error positions count characters), advanced statement by statement:
    // counting from the start of the script each time made a big script quadratic.
    let mut counted = (0, 0); // (byte offset, characters before it)
    let mut chars_before = |byte: usize| {
        counted.1 += script[counted.0..byte].chars().count();
        counted.0 = byte;
        counted.1
    };
    for (i, statement) in statements.iter().enumerate() {
        let char_offset = chars_before(statement.offset);
        let token = chars_before(statement.offset + first_token(&statement.text));
        execute(&statement.text, (char_offset, Some((i, token))));
    }
    CURRENT.with(|c| *c.borrow_mut() = None);
}

/// Runs one statement that [`split`] gave, as [`run`] runs each: for `plan()`, which runs and
/// observes them one at a time, without splitting each again.
pub fn run_one(statement: &str) {
    let _recorder = SiteRecorder::push();
    let _spi = SpiConnection::open();
    let token = statement[..first_token(statement)].chars().count();
    execute(statement, (0, Some((0, token))));
    CURRENT.with(|c| *c.borrow_mut() = None);
}

/// An SPI connection for as long as it lives; on an error the enclosing subtransaction's abort
/// cleans it up (AtEOSubXact_SPI), so drop only finishes it when no error unwinds.
struct SpiConnection;

impl SpiConnection {
    fn open() -> Self {
        // SAFETY: a plain SPI connection around our statements.
        if unsafe { pg_sys::SPI_connect() } != pg_sys::SPI_OK_CONNECT as i32 {
            error!("migrate: SPI_connect failed");
        }
        SpiConnection
    }
}

impl Drop for SpiConnection {
    fn drop(&mut self) {
        if !std::thread::panicking() {
            // SAFETY: matches the SPI_connect in open().
            unsafe { pg_sys::SPI_finish() };
        }
    }
}

/// A check run with each statement's text right before [`run`] or [`run_one`] runs it (the
/// guard's `lock_held_across_statements`), set once when the library loads.
static STATEMENT_CHECK: std::sync::OnceLock<fn(&str)> = std::sync::OnceLock::new();

/// Sets the check [`run`] and [`run_one`] call before each statement.
pub fn set_statement_check(check: fn(&str)) {
    let _ = STATEMENT_CHECK.set(check);
}

/// Runs one statement (`running`: its place in the script, for error sites).
fn execute(text: &str, running: (usize, Option<(usize, usize)>)) {
    // PostgreSQL 15 starts a statement after the previous semicolon, 18 at its first token:
    // log it from the first token on either way.
    let logged = text[first_token(text)..].trim_end().to_string();
    CURRENT.with(|c| *c.borrow_mut() = Some(logged));
    if let Some(check) = STATEMENT_CHECK.get() {
        // Before the statement's error site is set: the check may parse it again.
        check(text);
    }
    RUNNING.set(running);
    let c_text = CString::new(text).expect("split from a NUL-free script");
    // SAFETY: SPI is connected; read_only = false gives each statement a fresh snapshot.
    let rc = unsafe { pg_sys::SPI_execute(c_text.as_ptr(), false, 0) };
    if rc == pg_sys::SPI_ERROR_TRANSACTION {
        LAST_SITE.set(ErrorSite {
            sqlstate: 0,
            position: 0,
            statement: RUNNING.get().1,
        });
        crate::error::UserError::new(
            PgSqlErrorCode::ERRCODE_INVALID_TRANSACTION_TERMINATION,
            "transaction control statements are not allowed in a migration script",
        )
        .hint("Remove BEGIN/COMMIT/ROLLBACK: each migration already runs in its own transaction.")
        .raise();
    } else if rc < 0 {
        error!("migrate: SPI_execute failed with code {rc}");
    }
}

/// Forgets the running statement (after a script failed half-way).
pub fn clear_current_statement() {
    CURRENT.with(|c| *c.borrow_mut() = None);
}

/// 1-based line and column of a 1-based character position in `text`.
pub fn line_and_column(text: &str, char_position: usize) -> (usize, usize) {
    let mut line = 1;
    let mut column = 1;
    for c in text.chars().take(char_position.saturating_sub(1)) {
        if c == '\n' {
            line += 1;
            column = 1;
        } else {
            column += 1;
        }
    }
    (line, column)
}

/// Byte offset of the first token of a statement: skips whitespace and comments, so the line
/// reported for a statement is where its SQL starts, not the comment above it.
pub fn first_token(text: &str) -> usize {
    migrate_core::partition_index::skip_blank(text.as_bytes(), 0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn positions() {
        assert_eq!(line_and_column("abc", 1), (1, 1));
        assert_eq!(line_and_column("ab\ncd", 4), (2, 1));
        assert_eq!(line_and_column("é\nxyz", 5), (2, 3));
    }

    #[test]
    fn first_tokens() {
        assert_eq!(first_token("  SELECT 1"), 2);
        assert_eq!(first_token("\n-- hi\n/* c */ SELECT"), 15);
        assert_eq!(first_token("-- only a comment"), 17);
        // Nested block comments end where the outermost does.
        assert_eq!(first_token("/* /* */ BEGIN */ BEGIN;"), 18);
        assert_eq!(first_token("/* /* */"), 8);
    }
}
