//! Migration versions: validation and natural ordering.
//!
//! Digit runs compare numerically and everything else as text, so `2` < `10`, `001` = `1`,
//! `1.2` < `1.10` and `2024-01-02_x` < `2024-01-10_y`. Two spellings of the same version
//! (`001` and `1`) share one [`sort_key`], which the registry keeps unique.

use std::cmp::Ordering;

/// Longest version accepted; long enough for timestamps plus a slug.
pub const MAX_VERSION_LEN: usize = 200;

/// Why a version string is not acceptable.
#[derive(Debug, PartialEq, Eq)]
pub enum VersionProblem {
    Empty,
    TooLong,
    BadCharacter(char),
    /// Only separators (`.`, `_`, `-`): nothing to order by.
    NoLetterOrDigit,
}

/// Versions are made of ASCII letters, digits, `.`, `_` and `-`: safe in file names, URLs and
/// psql output, and unambiguous to order.
pub fn check(version: &str) -> Result<(), VersionProblem> {
    if version.is_empty() {
        return Err(VersionProblem::Empty);
    }
    if version.len() > MAX_VERSION_LEN {
        return Err(VersionProblem::TooLong);
    }
    match version
        .chars()
        .find(|c| !(c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-')))
    {
        Some(c) => Err(VersionProblem::BadCharacter(c)),
        None if !version.chars().any(|c| c.is_ascii_alphanumeric()) => {
            Err(VersionProblem::NoLetterOrDigit)
        }
        None => Ok(()),
    }
}

#[derive(Debug, PartialEq, Eq)]
enum Segment<'a> {
    /// Digits without leading zeros ("0" stays "0").
    Number(&'a str),
    Text(&'a str),
}

fn segments(version: &str) -> Vec<Segment<'_>> {
    let bytes = version.as_bytes();
    let mut out = Vec::new();
    let mut start = 0;
    while start < bytes.len() {
        let digits = bytes[start].is_ascii_digit();
        let mut end = start;
        while end < bytes.len() && bytes[end].is_ascii_digit() == digits {
            end += 1;
        }
        let run = &version[start..end];
        out.push(if digits {
            let trimmed = run.trim_start_matches('0');
            Segment::Number(if trimmed.is_empty() { "0" } else { trimmed })
        } else {
            Segment::Text(run)
        });
        start = end;
    }
    out
}

fn compare_segment(a: &Segment<'_>, b: &Segment<'_>) -> Ordering {
    match (a, b) {
        // Without leading zeros, a longer digit run is a bigger number.
        (Segment::Number(x), Segment::Number(y)) => x.len().cmp(&y.len()).then_with(|| x.cmp(y)),
        (Segment::Text(x), Segment::Text(y)) => x.cmp(y),
        (Segment::Number(_), Segment::Text(_)) => Ordering::Less,
        (Segment::Text(_), Segment::Number(_)) => Ordering::Greater,
    }
}

/// Natural order of two versions.
pub fn compare(a: &str, b: &str) -> Ordering {
    let (sa, sb) = (segments(a), segments(b));
    for (x, y) in sa.iter().zip(sb.iter()) {
        let ord = compare_segment(x, y);
        if ord != Ordering::Equal {
            return ord;
        }
    }
    sa.len().cmp(&sb.len())
}

/// A byte string whose bytewise order is the natural order, stored as `sort_key` so that SQL can
/// `ORDER BY` it and keep it unique (equal versions such as `001` and `1` share a key).
///
/// A number is `0x01`, its digit count (two bytes, big endian) and its digits; text is `0x02`,
/// its bytes and a `0x00` terminator (versions never contain NUL), so a shorter text run sorts
/// before any longer one it prefixes, as in [`compare`].
pub fn sort_key(version: &str) -> Vec<u8> {
    let mut key = Vec::with_capacity(version.len() + 8);
    for segment in segments(version) {
        match segment {
            Segment::Number(n) => {
                key.push(0x01);
                key.extend_from_slice(&(n.len() as u16).to_be_bytes());
                key.extend_from_slice(n.as_bytes());
            }
            Segment::Text(t) => {
                key.push(0x02);
                key.extend_from_slice(t.as_bytes());
                key.push(0x00);
            }
        }
    }
    key
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn orders_naturally() {
        let cases = [
            ("2", "10"),
            ("1.2", "1.10"),
            ("2024-01-02_x", "2024-01-10_y"),
            ("1", "1a"),
            ("1_2", "1_a"),
            ("9", "10_init"),
            ("20240101", "20240101000000"),
            ("V1", "V2"),
        ];
        for (lo, hi) in cases {
            assert_eq!(compare(lo, hi), Ordering::Less, "{lo} < {hi}");
            assert_eq!(compare(hi, lo), Ordering::Greater, "{hi} > {lo}");
        }
    }

    #[test]
    fn leading_zeros_are_equal() {
        assert_eq!(compare("001", "1"), Ordering::Equal);
        assert_eq!(compare("0", "000"), Ordering::Equal);
        assert_eq!(sort_key("001"), sort_key("1"));
        assert_eq!(sort_key("v01.002"), sort_key("v1.2"));
        assert_ne!(sort_key("1.2"), sort_key("1.20"));
    }

    #[test]
    fn huge_numbers_do_not_overflow() {
        let big = "99999999999999999999999999999999";
        assert_eq!(compare(big, &format!("1{big}")), Ordering::Less);
    }

    #[test]
    fn sorting_is_total_and_stable() {
        let mut v = vec!["10", "2", "1.10", "1.2", "001", "a", "1a", "0"];
        v.sort_by(|a, b| compare(a, b));
        assert_eq!(v, vec!["0", "001", "1.2", "1.10", "1a", "2", "10", "a"]);
    }

    #[test]
    fn sort_key_agrees_with_compare() {
        let vs = [
            "0",
            "001",
            "1",
            "1.2",
            "1.10",
            "1.02",
            "1a",
            "1aa",
            "1a1",
            "1_2",
            "1_a",
            "2",
            "10",
            "10_init",
            "a",
            "ab1",
            "abA",
            "abA1",
            "V1",
            "V2",
            "v1",
            "2024-01-02_x",
            "2024-01-10_y",
            "20240101000000",
            "1-",
            "1.",
            "-1",
            "_",
            "z9z",
            "z10z",
        ];
        for a in vs {
            for b in vs {
                assert_eq!(sort_key(a).cmp(&sort_key(b)), compare(a, b), "{a} vs {b}");
            }
        }
    }

    #[test]
    fn sort_key_bytes_are_stable() {
        // Stored in migrate.migrations.sort_key: a new format would need an upgrade script.
        assert_eq!(
            sort_key("v01.10"),
            b"\x02v\x00\x01\x00\x011\x02.\x00\x01\x00\x0210".to_vec()
        );
    }

    #[test]
    fn validates() {
        assert_eq!(check(""), Err(VersionProblem::Empty));
        assert_eq!(check("1 2"), Err(VersionProblem::BadCharacter(' ')));
        assert_eq!(check("1;drop"), Err(VersionProblem::BadCharacter(';')));
        assert_eq!(check(&"1".repeat(201)), Err(VersionProblem::TooLong));
        for v in [".", "-", "_", "._-"] {
            assert_eq!(check(v), Err(VersionProblem::NoLetterOrDigit));
        }
        assert!(check("2024-01-02_add_users.v2").is_ok());
    }
}
