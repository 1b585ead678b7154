//! How a script runs: in one transaction, or statement by statement outside any (for the
//! statements PostgreSQL refuses in a transaction block), and what to do with the `BEGIN;` ...
//! `COMMIT;` wrapper that tools such as Alembic's `--sql`, Django's `sqlmigrate`, Prisma and
//! Drizzle write around a script. The extension classifies each statement from its parse tree;
//! this module decides.

/// What a statement is, as far as transactions go.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Class {
    /// `BEGIN` / `START TRANSACTION` with no options.
    Begin,
    /// `COMMIT` / `END` without `AND CHAIN`.
    Commit,
    /// Any other transaction control.
    OtherTransactionControl,
    /// A statement that cannot run in a transaction block; what it is.
    OutsideTransaction(&'static str),
    /// `SET` / `RESET`.
    Setting,
    Other,
}

/// How a script will run.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Decision {
    /// Indexes of the statements to drop: the wrapper's `BEGIN` and `COMMIT`.
    pub drop: Vec<usize>,
    pub transactional: bool,
    /// Set when the script was found to need running outside a transaction: the index and
    /// kind of the first statement that needs it.
    pub detected: Option<(usize, &'static str)>,
}

/// Why a script cannot run the way it would have to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Problem {
    /// Transaction control other than a plain wrapper (statement index).
    TransactionControl(usize),
    /// A wrapper around a script declared to run outside a transaction.
    WrapperWithoutTransaction(usize),
    /// Statements that must run outside a transaction mixed with others, and the script does
    /// not say which way it runs: (the first outside statement, its kind, the first other).
    Mixed(usize, &'static str, usize),
    /// A statement that cannot run in a transaction block in a script declared transactional.
    OutsideInTransaction(usize, &'static str),
}

/// Decides how a script of `classes` runs. `declared` is what the migration says: its
/// `transaction` option or `-- migrate:no-transaction` line (`Some(false)`), or nothing.
pub fn decide(classes: &[Class], declared: Option<bool>) -> Result<Decision, Problem> {
    let n = classes.len();
    let wrapped = n >= 2 && classes[0] == Class::Begin && classes[n - 1] == Class::Commit;
    if wrapped && declared == Some(false) {
        return Err(Problem::WrapperWithoutTransaction(0));
    }
    let drop = if wrapped { vec![0, n - 1] } else { Vec::new() };
    let body: Vec<(usize, Class)> = classes
        .iter()
        .copied()
        .enumerate()
        .filter(|(i, _)| !drop.contains(i))
        .collect();
    if let Some(&(i, _)) = body.iter().find(|(_, c)| {
        matches!(
            c,
            Class::Begin | Class::Commit | Class::OtherTransactionControl
        )
    }) {
        return Err(Problem::TransactionControl(i));
    }
    let outside = body.iter().find_map(|&(i, c)| match c {
        Class::OutsideTransaction(what) => Some((i, what)),
        _ => None,
    });
    let other = body
        .iter()
        .find(|(_, c)| *c == Class::Other)
        .map(|&(i, _)| i);
    let transactional = match (declared, outside, other) {
        (Some(false), _, _) => false,
        (Some(true), Some((i, what)), _) => return Err(Problem::OutsideInTransaction(i, what)),
        (Some(true), None, _) | (None, None, _) => true,
        (None, Some((i, what)), Some(o)) => return Err(Problem::Mixed(i, what, o)),
        (None, Some(_), None) => false,
    };
    let detected = if declared.is_none() && !transactional {
        outside
    } else {
        None
    };
    Ok(Decision {
        drop,
        transactional,
        detected,
    })
}

/// `script` with the byte ranges `spans` (each a statement, and the `;` right after it)
/// replaced by spaces, newlines kept: the statements are gone, but every other statement keeps
/// its line and column, so errors still point into the file as written.
pub fn blank_out(script: &str, spans: &[std::ops::Range<usize>]) -> String {
    let mut bytes = script.as_bytes().to_vec();
    for span in spans {
        let mut end = span.end.min(bytes.len());
        let after = script[end..].trim_start();
        if after.starts_with(';') {
            end = script.len() - after.len() + 1;
        }
        for b in &mut bytes[span.start..end] {
            if *b != b'\n' {
                *b = b' ';
            }
        }
    }
    // Only ASCII statement keywords and `;` were replaced, by ASCII spaces.
    String::from_utf8(bytes).expect("blanking keeps UTF-8 intact")
}

#[cfg(test)]
mod tests {
    use super::Class::*;
    use super::*;

    const CIC: Class = OutsideTransaction("CREATE INDEX CONCURRENTLY");

    #[test]
    fn a_wrapper_is_dropped() {
        let d = decide(&[Begin, Other, Other, Commit], None).unwrap();
        assert_eq!(d.drop, vec![0, 3]);
        assert!(d.transactional);
        assert_eq!(decide(&[Begin, Commit], None).unwrap().drop, vec![0, 1]);
    }

    #[test]
    fn other_transaction_control_is_refused() {
        assert_eq!(
            decide(&[Other, Commit], None),
            Err(Problem::TransactionControl(1))
        );
        assert_eq!(
            decide(&[Begin, Other, Begin, Other, Commit], None),
            Err(Problem::TransactionControl(2))
        );
        assert_eq!(
            decide(&[Begin, OtherTransactionControl, Commit], None),
            Err(Problem::TransactionControl(1))
        );
        assert_eq!(
            decide(&[Begin, Other], None),
            Err(Problem::TransactionControl(0))
        );
        assert_eq!(
            decide(&[Begin, Other, Commit], Some(false)),
            Err(Problem::WrapperWithoutTransaction(0))
        );
    }

    #[test]
    fn statements_that_need_no_transaction_are_detected() {
        let d = decide(&[Setting, CIC, CIC], None).unwrap();
        assert!(!d.transactional);
        assert_eq!(d.detected, Some((1, "CREATE INDEX CONCURRENTLY")));
        assert_eq!(
            decide(&[Other, CIC], None),
            Err(Problem::Mixed(1, "CREATE INDEX CONCURRENTLY", 0))
        );
        // Declared either way, the script's word counts.
        let d = decide(&[Other, CIC], Some(false)).unwrap();
        assert!(!d.transactional && d.detected.is_none());
        assert_eq!(
            decide(&[CIC], Some(true)),
            Err(Problem::OutsideInTransaction(
                0,
                "CREATE INDEX CONCURRENTLY"
            ))
        );
        // Empty and comment-only scripts run as (empty) transactions.
        assert!(decide(&[], None).unwrap().transactional);
    }

    #[test]
    fn blanking_keeps_lines_and_columns() {
        let script = "BEGIN;\nCREATE TABLE t (id int);\nCOMMIT;\n";
        let out = blank_out(script, &[0..5, 32..38]);
        assert_eq!(out, "      \nCREATE TABLE t (id int);\n       \n");
        assert_eq!(out.len(), script.len());
        let script = "begin ;  -- é\nSELECT 1;\nend\n";
        assert_eq!(
            blank_out(script, &[0..5, 25..28]),
            "         -- é\nSELECT 1;\n   \n"
        );
    }
}
