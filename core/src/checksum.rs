//! Checksums of migration scripts: SHA-256 of the text with CRLF normalised to LF and a
//! leading byte-order mark removed, so that editors and git settings cannot churn them.

use sha2::{Digest, Sha256};

/// The algorithm name stored next to every checksum.
pub const ALGORITHM: &str = "sha256";

/// The text that is hashed: no leading BOM, `\r\n` as `\n`.
pub fn normalise(sql: &str) -> String {
    sql.strip_prefix('\u{feff}')
        .unwrap_or(sql)
        .replace("\r\n", "\n")
}

/// Lower-case hex SHA-256 of the normalised text.
pub fn checksum(sql: &str) -> String {
    let digest = Sha256::digest(normalise(sql).as_bytes());
    digest.iter().map(|b| format!("{b:02x}")).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn known_digest() {
        // sha256("") and sha256("abc") from FIPS 180-2.
        assert_eq!(
            checksum(""),
            "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
        );
        assert_eq!(
            checksum("abc"),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
    }

    #[test]
    fn line_endings_and_bom_do_not_matter() {
        let lf = "CREATE TABLE t (id int);\nSELECT 1;\n";
        assert_eq!(
            checksum(lf),
            checksum("CREATE TABLE t (id int);\r\nSELECT 1;\r\n")
        );
        assert_eq!(checksum(lf), checksum(&format!("\u{feff}{lf}")));
        // Only a leading BOM is dropped, and a lone CR is content.
        assert_ne!(
            checksum(lf),
            checksum("CREATE TABLE t (id int);\rSELECT 1;\r")
        );
        assert_ne!(checksum(lf), checksum(&format!("{lf}\u{feff}")));
    }
}
