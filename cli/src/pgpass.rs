//! libpq's password file (`~/.pgpass`, or the file `PGPASSFILE` names), read as libpq reads
//! it: `hostname:port:database:username:password` lines, the first that matches wins, `*`
//! matches anything, `\:` and `\\` escape, `#` starts a comment line, and a file that its group
//! or others can read is ignored with a warning.

use std::path::Path;

/// Where a connection goes, as the password file's first four fields name it.
pub struct Target<'a> {
    /// A host name or address; a socket in the default directory is `localhost`.
    pub host: &'a str,
    pub port: u16,
    pub database: &'a str,
    pub user: &'a str,
}

/// The password for `target` in the file at `path`, if the file exists, is private and has a
/// matching line.
pub fn lookup(path: &Path, target: &Target<'_>) -> Option<String> {
    use std::os::unix::fs::PermissionsExt;
    let meta = std::fs::metadata(path).ok()?;
    if !meta.is_file() {
        return None;
    }
    if meta.permissions().mode() & 0o077 != 0 {
        eprintln!(
            "WARNING: password file \"{}\" has group or world access; permissions should be u=rw (0600) or less",
            path.display()
        );
        return None;
    }
    let text = std::fs::read_to_string(path).ok()?;
    find(&text, target)
}

/// The password of the first line of `text` that matches `target`.
pub fn find(text: &str, target: &Target<'_>) -> Option<String> {
    let port = target.port.to_string();
    let wanted = [target.host, port.as_str(), target.database, target.user];
    text.lines()
        .map(|line| line.strip_suffix('\r').unwrap_or(line))
        .filter(|line| !line.is_empty() && !line.starts_with('#'))
        .find_map(|line| {
            let fields = split(line);
            // Four fields to match and a password.
            if fields.len() < 5 {
                return None;
            }
            let matches = fields[..4]
                .iter()
                .zip(wanted)
                .all(|(field, value)| field == "*" || field == value);
            matches.then(|| fields[4].clone())
        })
}

/// The fields of one line: split at unescaped `:`, `\x` unescaped to `x` (a backslash at the
/// end stays). As in libpq, the password ends at the next unescaped `:`.
fn split(line: &str) -> Vec<String> {
    let mut fields = vec![String::new()];
    let mut chars = line.chars();
    while let Some(c) = chars.next() {
        let field = fields.last_mut().expect("never empty");
        match c {
            '\\' => field.push(chars.next().unwrap_or('\\')),
            ':' => fields.push(String::new()),
            c => field.push(c),
        }
    }
    fields
}

#[cfg(test)]
mod tests {
    use super::*;

    fn target<'a>(host: &'a str, port: u16, database: &'a str, user: &'a str) -> Target<'a> {
        Target {
            host,
            port,
            database,
            user,
        }
    }

    #[test]
    fn first_matching_line_wins_with_wildcards() {
        let file = "# comment\n\
                    db.example:5432:app:alice:first\n\
                    *:5432:*:alice:second\n\
                    *:*:*:*:fallback\n";
        assert_eq!(
            find(file, &target("db.example", 5432, "app", "alice")).as_deref(),
            Some("first")
        );
        assert_eq!(
            find(file, &target("other", 5432, "x", "alice")).as_deref(),
            Some("second")
        );
        assert_eq!(
            find(file, &target("other", 6000, "x", "bob")).as_deref(),
            Some("fallback")
        );
        assert_eq!(find("h:1:d:u:p\n", &target("h", 2, "d", "u")), None);
    }

    #[test]
    fn escapes_and_colons_in_the_password() {
        let file = "we\\:ird:5432:d\\\\b:u:pa\\:ss:ignored\r\n";
        assert_eq!(
            find(file, &target("we:ird", 5432, "d\\b", "u")).as_deref(),
            Some("pa:ss")
        );
        assert_eq!(
            find("*:*:*:*:end\\\n", &target("h", 1, "d", "u")).as_deref(),
            Some("end\\")
        );
        // Too few fields: not a line that matches anything.
        assert_eq!(find("*:*:*:*\n", &target("h", 1, "d", "u")), None);
        assert_eq!(
            find("*:*:*:*:\n", &target("h", 1, "d", "u")).as_deref(),
            Some("")
        );
    }

    #[test]
    fn a_file_others_can_read_is_ignored() {
        use std::os::unix::fs::PermissionsExt;
        let dir = std::env::temp_dir().join(format!("migrate-pgpass-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("pgpass");
        std::fs::write(&path, "*:*:*:*:secret\n").unwrap();
        let t = target("h", 5432, "d", "u");
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).unwrap();
        assert_eq!(lookup(&path, &t), None);
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600)).unwrap();
        assert_eq!(lookup(&path, &t).as_deref(), Some("secret"));
        assert_eq!(lookup(&dir.join("missing"), &t), None);
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
