//! User-facing errors: every one carries a standard SQLSTATE, a message naming the object, and
//! a hint saying what to do. The SQLSTATE of each situation is documented in docs/ERRORS.md and
//! asserted by the SQL regression tests.

use pgrx::pg_sys::panic::{CaughtError, ErrorReport};
use pgrx::{PgLogLevel, PgSqlErrorCode};

/// An error to report to the user.
#[derive(Debug)]
pub struct UserError {
    pub code: PgSqlErrorCode,
    pub message: String,
    pub detail: Option<String>,
    pub hint: Option<String>,
}

impl UserError {
    pub fn new(code: PgSqlErrorCode, message: impl Into<String>) -> Self {
        Self {
            code,
            message: message.into(),
            detail: None,
            hint: None,
        }
    }

    pub fn detail(mut self, detail: impl Into<String>) -> Self {
        self.detail = Some(detail.into());
        self
    }

    pub fn hint(mut self, hint: impl Into<String>) -> Self {
        self.hint = Some(hint.into());
        self
    }

    /// Raises the error; the current (sub)transaction is aborted by PostgreSQL as usual.
    pub fn raise(self) -> ! {
        let mut report = ErrorReport::new(self.code, self.message, "migrate");
        if let Some(detail) = self.detail {
            report = report.set_detail(detail);
        }
        if let Some(hint) = self.hint {
            report = report.set_hint(hint);
        }
        report.report(PgLogLevel::ERROR);
        unreachable!("ERROR does not return")
    }
}

/// SQLSTATE, message, detail and hint of an error caught by [`crate::pg::subxact::run`].
pub fn caught_parts(
    caught: &CaughtError,
) -> (PgSqlErrorCode, String, Option<String>, Option<String>) {
    let report = match caught {
        CaughtError::PostgresError(r) | CaughtError::ErrorReport(r) => r,
        CaughtError::RustPanic { ereport, .. } => ereport,
    };
    (
        report.sql_error_code(),
        report.message().to_string(),
        report.detail().map(str::to_string),
        report.hint().map(str::to_string),
    )
}

/// Shorthand for functions whose errors are user errors.
pub type Result<T> = std::result::Result<T, UserError>;

/// Raises the error of a failed [`Result`].
pub trait OrRaise<T> {
    fn or_raise(self) -> T;
}

impl<T> OrRaise<T> for Result<T> {
    fn or_raise(self) -> T {
        self.unwrap_or_else(|e| e.raise())
    }
}

/// Formats a raw SQLSTATE integer as its five characters (PostgreSQL's unpack_sql_state).
pub fn sqlstate_text(code: i32) -> String {
    (0..5)
        .map(|i| (((code >> (6 * i)) & 0x3F) as u8 + b'0') as char)
        .collect()
}

/// The SQLSTATE for its five-character text form (a non-standard code maps to XX000).
pub fn sqlstate_from_text(text: &str) -> PgSqlErrorCode {
    let packed = text.bytes().take(5).enumerate().fold(0i32, |acc, (i, b)| {
        acc | ((b.wrapping_sub(b'0') as i32 & 0x3F) << (6 * i))
    });
    PgSqlErrorCode::from(packed)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sqlstate_round_trip() {
        assert_eq!(
            sqlstate_from_text("23505"),
            PgSqlErrorCode::ERRCODE_UNIQUE_VIOLATION
        );
        assert_eq!(
            sqlstate_from_text("55P03"),
            PgSqlErrorCode::ERRCODE_LOCK_NOT_AVAILABLE
        );
        assert_eq!(
            sqlstate_text(PgSqlErrorCode::ERRCODE_UNIQUE_VIOLATION as i32),
            "23505"
        );
        assert_eq!(
            sqlstate_text(PgSqlErrorCode::ERRCODE_SYNTAX_ERROR as i32),
            "42601"
        );
    }
}
