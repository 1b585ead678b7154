//! Connection settings as psql users expect them: `--database-url` (or `DATABASE_URL`), a URL
//! or a `key=value` string, with what it leaves unset taken from the libpq variables
//! (`PGHOST`, `PGPORT`, `PGUSER`, `PGDATABASE`, `PGPASSWORD`, `PGPASSFILE` or `~/.pgpass`,
//! `PGAPPNAME`, `PGSSLMODE`, `PGSSLROOTCERT`) and then libpq's defaults (a local socket, port 5432, the OS user, a
//! database named like the user, `sslmode=prefer`). TLS is native-tls (the system's OpenSSL).

use std::path::{Path, PathBuf};

use postgres::config::{Host, SslMode};
use postgres::error::DbError;
use postgres::{Client, Config};
use postgres_native_tls::MakeTlsConnector;

/// The application_name the server shows for our sessions unless the settings name one.
pub const APPLICATION_NAME: &str = "migrate-cli";

/// Where the server's NOTICEs and WARNINGs go while a command runs.
pub type NoticeSink = std::sync::Arc<dyn Fn(&DbError) + Send + Sync>;

/// libpq's `sslmode`s: what is encrypted and what is checked.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Tls {
    Disable,
    /// TLS if the server offers it, certificate unchecked (libpq's default).
    Prefer,
    /// TLS or no connection; the certificate is checked only against `sslrootcert` if given.
    Require,
    /// The certificate must chain to a trusted root.
    VerifyCa,
    /// ... and name the host.
    VerifyFull,
}

impl Tls {
    fn parse(mode: &str) -> Result<Tls, String> {
        Ok(match mode {
            "disable" => Tls::Disable,
            "allow" | "prefer" => Tls::Prefer,
            "require" => Tls::Require,
            "verify-ca" => Tls::VerifyCa,
            "verify-full" => Tls::VerifyFull,
            other => return Err(format!("invalid sslmode: {other}")),
        })
    }
}

/// Everything needed to open a session.
#[derive(Clone)]
pub struct Settings {
    pub config: Config,
    pub tls: Tls,
    /// CA certificates (PEM) to check the server's against, instead of the system's.
    pub root_cert: Option<PathBuf>,
}

/// The full settings: the URL's, completed from `env` (a lookup such as `std::env::var`).
pub fn settings(
    url: Option<&str>,
    env: &dyn Fn(&str) -> Option<String>,
) -> Result<Settings, String> {
    let env = |name: &str| env(name).filter(|v| !v.is_empty());
    // The parser knows only some of libpq's sslmodes and no sslrootcert: we read them.
    let (url, sslmode) = match url {
        Some(u) => {
            let (rest, mode) = take_param(u, "sslmode");
            (Some(rest), mode)
        }
        None => (None, None),
    };
    let (url, root_cert) = match url {
        Some(u) => {
            let (rest, root) = take_param(&u, "sslrootcert");
            (Some(rest), root)
        }
        None => (None, None),
    };
    let mode = sslmode.or_else(|| env("PGSSLMODE"));
    let tls = Tls::parse(mode.as_deref().unwrap_or("prefer"))?;
    let root_cert = root_cert
        .or_else(|| env("PGSSLROOTCERT"))
        .map(PathBuf::from);
    // The URL parser gives a host without a port 5432 at once; PGPORT must come first.
    let url = match (url, env("PGPORT")) {
        (Some(url), Some(port)) => Some(with_default_port(&url, port.trim())),
        (url, _) => url,
    };
    let mut config = match url {
        Some(url) => url
            .parse::<Config>()
            .map_err(|e| format!("invalid --database-url / DATABASE_URL: {e}"))?,
        None => Config::new(),
    };
    if config.get_hosts().is_empty() {
        match env("PGHOST") {
            // A comma-separated list, as libpq takes it; a leading `/` is a socket directory.
            Some(hosts) => hosts.split(',').for_each(|h| {
                config.host(h.trim());
            }),
            None => {
                config.host(&default_host());
            }
        }
    }
    if config.get_ports().is_empty() {
        if let Some(port) = env("PGPORT") {
            let port = port
                .trim()
                .parse::<u16>()
                .map_err(|_| format!("invalid PGPORT: {port}"))?;
            config.port(port);
        }
    }
    if config.get_user().is_none() {
        let user = env("PGUSER")
            .or_else(os_user)
            .ok_or("no user name: set PGUSER or put the user in the URL")?;
        config.user(&user);
    }
    if config.get_dbname().is_none() {
        let dbname = env("PGDATABASE").unwrap_or_else(|| config.get_user().unwrap_or("").into());
        config.dbname(&dbname);
    }
    if config.get_password().is_none() {
        let file = env("PGPASSFILE")
            .map(PathBuf::from)
            .or_else(|| env("HOME").map(|home| Path::new(&home).join(".pgpass")));
        let password =
            env("PGPASSWORD").or_else(|| file.and_then(|f| from_password_file(&config, &f)));
        if let Some(password) = password {
            config.password(&password);
        }
    }
    if config.get_application_name().is_none() {
        config.application_name(&env("PGAPPNAME").unwrap_or_else(|| APPLICATION_NAME.into()));
    }
    config.ssl_mode(match tls {
        Tls::Disable => SslMode::Disable,
        Tls::Prefer => SslMode::Prefer,
        Tls::Require | Tls::VerifyCa | Tls::VerifyFull => SslMode::Require,
    });
    Ok(Settings {
        config,
        tls,
        root_cert,
    })
}

/// Removes `key=value` from a URL's query or a `key=value` string; returns the rest and the
/// value.
fn take_param(conninfo: &str, key: &str) -> (String, Option<String>) {
    /// The pairs other than `key`, and the value of `key` (the last one wins, as in libpq).
    fn split<'a>(pairs: Vec<&'a str>, key: &str) -> (Vec<&'a str>, Option<String>) {
        let value = pairs
            .iter()
            .rev()
            .find_map(|p| p.split_once('=').filter(|(k, _)| *k == key))
            .map(|(_, v)| v.to_string());
        let kept = pairs
            .into_iter()
            .filter(|p| p.split_once('=').is_none_or(|(k, _)| k != key))
            .collect();
        (kept, value)
    }
    if conninfo.starts_with("postgres://") || conninfo.starts_with("postgresql://") {
        let Some((base, query)) = conninfo.split_once('?') else {
            return (conninfo.to_string(), None);
        };
        let (kept, value) = split(query.split('&').collect(), key);
        let rest = if kept.is_empty() {
            base.to_string()
        } else {
            format!("{base}?{}", kept.join("&"))
        };
        (rest, value)
    } else {
        // key = value pairs separated by spaces (sslmode and paths are never quoted here).
        let normalised = conninfo.replace(" =", "=").replace("= ", "=");
        let (kept, value) = split(normalised.split_whitespace().collect(), key);
        (kept.join(" "), value)
    }
}

/// The password for `config`'s first host in libpq's password file (the client connects to
/// its hosts with one password).
fn from_password_file(config: &Config, file: &Path) -> Option<String> {
    let host = match config.get_hosts().first()? {
        Host::Tcp(name) => name.clone(),
        // libpq matches a socket in the default directory as `localhost`.
        Host::Unix(dir) if dir == Path::new(&default_host()) => "localhost".into(),
        Host::Unix(dir) => dir.display().to_string(),
    };
    let target = crate::pgpass::Target {
        host: &host,
        port: config.get_ports().first().copied().unwrap_or(5432),
        database: config.get_dbname()?,
        user: config.get_user()?,
    };
    crate::pgpass::lookup(file, &target)
}

/// A `postgres://` URL with `:port` added to each of its hosts that has none.
fn with_default_port(url: &str, port: &str) -> String {
    let Some(scheme_end) = ["postgres://", "postgresql://"]
        .iter()
        .find_map(|s| url.starts_with(s).then_some(s.len()))
    else {
        return url.to_string();
    };
    let rest = &url[scheme_end..];
    let authority_end = rest.find(['/', '?']).unwrap_or(rest.len());
    let authority = &rest[..authority_end];
    let hosts_start = authority.rfind('@').map_or(0, |i| i + 1);
    let hosts: Vec<String> = authority[hosts_start..]
        .split(',')
        .map(|h| {
            let has_port = match h.strip_prefix('[') {
                Some(v6) => v6.contains("]:"),
                None => h.contains(':'),
            };
            if has_port || h.is_empty() {
                h.to_string()
            } else {
                format!("{h}:{port}")
            }
        })
        .collect();
    format!(
        "{}{}{}{}",
        &url[..scheme_end],
        &authority[..hosts_start],
        hosts.join(","),
        &rest[authority_end..]
    )
}

/// libpq's default: the local socket directory (Debian's, else the upstream one).
fn default_host() -> String {
    ["/var/run/postgresql", "/tmp"]
        .into_iter()
        .find(|d| Path::new(d).is_dir())
        .unwrap_or("localhost")
        .to_string()
}

/// The name of the OS user we run as, as libpq finds it (the password database, not `$USER`).
fn os_user() -> Option<String> {
    use std::os::unix::fs::MetadataExt;
    let uid = std::fs::metadata("/proc/self").ok()?.uid();
    let passwd = std::fs::read_to_string("/etc/passwd").ok();
    passwd
        .as_deref()
        .and_then(|p| user_of(p, uid))
        .or_else(|| std::env::var("USER").ok())
}

/// The user name of `uid` in the text of /etc/passwd.
fn user_of(passwd: &str, uid: u32) -> Option<String> {
    passwd.lines().find_map(|line| {
        let mut fields = line.split(':');
        let name = fields.next()?;
        let id = fields.nth(1)?.parse::<u32>().ok()?;
        (id == uid).then(|| name.to_string())
    })
}

/// A short description of where `config` connects, for error messages (never the password).
pub fn describe(config: &Config) -> String {
    let host = match config.get_hosts().first() {
        Some(Host::Tcp(h)) => h.clone(),
        Some(Host::Unix(p)) => p.display().to_string(),
        None => String::new(),
    };
    let port = config.get_ports().first().copied().unwrap_or(5432);
    format!(
        "host={host} port={port} user={} dbname={}",
        config.get_user().unwrap_or(""),
        config.get_dbname().unwrap_or("")
    )
}

/// Opens a session whose NOTICEs go to `notices` as they arrive.
pub fn connect(settings: &Settings, notices: NoticeSink) -> Result<Client, CliError> {
    let mut config = settings.config.clone();
    config.notice_callback(move |notice| notices(&notice));
    config
        .connect(tls_connector(settings)?)
        .map_err(|e| CliError::Connect(describe(&config), e))
}

/// Ctrl-C while a long CALL runs sends the server a cancel request, as psql does, so the
/// migration in flight rolls back instead of running on after we are gone; a second Ctrl-C
/// quits at once.
pub fn cancel_on_interrupt(client: &Client, settings: &Settings) {
    let token = client.cancel_token();
    let settings = settings.clone();
    let pressed = std::sync::atomic::AtomicBool::new(false);
    let installed = ctrlc::set_handler(move || {
        if pressed.swap(true, std::sync::atomic::Ordering::SeqCst) {
            std::process::exit(130);
        }
        eprintln!("migrate-cli: cancelling (Ctrl-C again to quit without waiting)");
        if let Ok(tls) = tls_connector(&settings) {
            if let Err(e) = token.cancel_query(tls) {
                eprintln!("migrate-cli: could not send the cancel request: {e}");
            }
        }
    });
    if let Err(e) = installed {
        eprintln!("migrate-cli: Ctrl-C will not cancel the server's work: {e}");
    }
}

/// The TLS connector for the sslmode: as libpq, prefer and require only encrypt (unless a root
/// certificate is given), verify-ca checks the chain, verify-full the host name too.
fn tls_connector(settings: &Settings) -> Result<MakeTlsConnector, CliError> {
    let mut builder = native_tls::TlsConnector::builder();
    let verify_chain = match settings.tls {
        Tls::Disable | Tls::Prefer => false,
        Tls::Require => settings.root_cert.is_some(),
        Tls::VerifyCa | Tls::VerifyFull => true,
    };
    builder.danger_accept_invalid_certs(!verify_chain);
    builder.danger_accept_invalid_hostnames(settings.tls != Tls::VerifyFull);
    if let Some(path) = &settings.root_cert {
        let pem = std::fs::read(path)
            .map_err(|e| CliError::Usage(format!("sslrootcert {}: {e}", path.display())))?;
        let cert = native_tls::Certificate::from_pem(&pem)
            .map_err(|e| CliError::Usage(format!("sslrootcert {}: {e}", path.display())))?;
        builder.add_root_certificate(cert);
        builder.disable_built_in_roots(true);
    }
    let connector = builder
        .build()
        .map_err(|e| CliError::Failed(format!("TLS: {e}")))?;
    Ok(MakeTlsConnector::new(connector))
}

use crate::error::CliError;

/// Prints notices as psql does, without the `NOTICE:` prefix (ours already say `migrate: `).
pub fn print_notice(notice: &DbError) -> String {
    match notice.severity() {
        "NOTICE" | "INFO" | "LOG" | "DEBUG" => notice.message().to_string(),
        severity => format!("{severity}: {}", notice.message()),
    }
}

/// A sink that prints every notice on stderr (commands whose stdout is data: tables, json).
pub fn to_stderr() -> NoticeSink {
    std::sync::Arc::new(|n| eprintln!("{}", print_notice(n)))
}

/// A sink that prints every notice on stdout (commands whose output is a log: load).
pub fn to_stdout() -> NoticeSink {
    std::sync::Arc::new(|n| println!("{}", print_notice(n)))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn with_env(url: Option<&str>, vars: &[(&str, &str)]) -> Result<Config, String> {
        settings_with_env(url, vars).map(|s| s.config)
    }

    fn settings_with_env(url: Option<&str>, vars: &[(&str, &str)]) -> Result<Settings, String> {
        let vars: HashMap<String, String> = vars
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        settings(url, &|name| vars.get(name).cloned())
    }

    fn host(config: &Config) -> String {
        match &config.get_hosts()[0] {
            Host::Tcp(h) => h.clone(),
            Host::Unix(p) => format!("unix:{}", p.display()),
        }
    }

    #[test]
    fn the_password_file_fills_a_missing_password() {
        use std::os::unix::fs::PermissionsExt;
        let path =
            std::env::temp_dir().join(format!("migrate-connect-pgpass-{}", std::process::id()));
        std::fs::write(&path, "db.example:6000:app:*:from-file\n*:*:*:*:other\n").unwrap();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600)).unwrap();
        let file = path.to_str().unwrap();
        let c = with_env(
            Some("postgres://bob@db.example:6000/app"),
            &[("PGPASSFILE", file)],
        )
        .unwrap();
        assert_eq!(c.get_password(), Some(&b"from-file"[..]));
        // PGPASSWORD and the URL come first.
        let c = with_env(
            Some("postgres://bob@db.example:6000/app"),
            &[("PGPASSFILE", file), ("PGPASSWORD", "env")],
        )
        .unwrap();
        assert_eq!(c.get_password(), Some(&b"env"[..]));
        let c = with_env(
            Some("postgres://bob:url@db.example:6000/app"),
            &[("PGPASSFILE", file)],
        )
        .unwrap();
        assert_eq!(c.get_password(), Some(&b"url"[..]));
        // ~/.pgpass when PGPASSFILE is unset.
        let home =
            std::env::temp_dir().join(format!("migrate-connect-home-{}", std::process::id()));
        std::fs::create_dir_all(&home).unwrap();
        std::fs::copy(&path, home.join(".pgpass")).unwrap();
        let c = with_env(
            Some("postgres://bob@elsewhere/app"),
            &[("HOME", home.to_str().unwrap())],
        )
        .unwrap();
        assert_eq!(c.get_password(), Some(&b"other"[..]));
        std::fs::remove_file(&path).unwrap();
        std::fs::remove_dir_all(&home).unwrap();
    }

    #[test]
    fn url_wins_over_the_environment() {
        let c = with_env(
            Some("postgres://alice:secret@db.example:6543/app?application_name=deployer"),
            &[
                ("PGHOST", "other"),
                ("PGPORT", "1"),
                ("PGUSER", "bob"),
                ("PGDATABASE", "x"),
                ("PGPASSWORD", "y"),
                ("PGAPPNAME", "z"),
            ],
        )
        .unwrap();
        assert_eq!(host(&c), "db.example");
        assert_eq!(c.get_ports(), [6543]);
        assert_eq!(c.get_user(), Some("alice"));
        assert_eq!(c.get_dbname(), Some("app"));
        assert_eq!(c.get_password(), Some(&b"secret"[..]));
        assert_eq!(c.get_application_name(), Some("deployer"));
    }

    #[test]
    fn the_environment_fills_what_the_url_leaves_out() {
        let c = with_env(
            Some("postgres://db.example"),
            &[("PGUSER", "bob"), ("PGPASSWORD", "pw"), ("PGPORT", "6000")],
        )
        .unwrap();
        assert_eq!(host(&c), "db.example");
        assert_eq!(c.get_ports(), [6000]);
        assert_eq!(c.get_user(), Some("bob"));
        // libpq's default database is the user's name.
        assert_eq!(c.get_dbname(), Some("bob"));
        assert_eq!(c.get_password(), Some(&b"pw"[..]));
        assert_eq!(c.get_application_name(), Some(APPLICATION_NAME));
    }

    #[test]
    fn libpq_variables_alone() {
        let c = with_env(
            None,
            &[
                ("PGHOST", "/run/pg"),
                ("PGUSER", "carol"),
                ("PGDATABASE", "shop"),
                ("PGAPPNAME", "ci"),
            ],
        )
        .unwrap();
        assert_eq!(host(&c), "unix:/run/pg");
        assert_eq!(c.get_user(), Some("carol"));
        assert_eq!(c.get_dbname(), Some("shop"));
        assert_eq!(c.get_application_name(), Some("ci"));
        let two = with_env(None, &[("PGHOST", "a,b"), ("PGUSER", "u")]).unwrap();
        assert_eq!(two.get_hosts().len(), 2);
    }

    #[test]
    fn key_value_strings_and_empty_variables() {
        let c = with_env(
            Some("host=127.0.0.1 port=5433 user=postgres"),
            &[("PGDATABASE", ""), ("PGAPPNAME", "")],
        )
        .unwrap();
        assert_eq!(host(&c), "127.0.0.1");
        assert_eq!(c.get_dbname(), Some("postgres"));
        assert_eq!(c.get_application_name(), Some(APPLICATION_NAME));
    }

    #[test]
    fn bad_settings_are_errors() {
        assert!(with_env(Some("postgres://h:notaport/db"), &[])
            .unwrap_err()
            .contains("DATABASE_URL"));
        assert!(with_env(None, &[("PGPORT", "x"), ("PGUSER", "u")])
            .unwrap_err()
            .contains("PGPORT"));
    }

    #[test]
    fn ports_are_added_where_the_url_has_none() {
        assert_eq!(
            with_default_port("postgres://u:p@a,b:7,[::1]/db?x=1", "6"),
            "postgres://u:p@a:6,b:7,[::1]:6/db?x=1"
        );
        assert_eq!(
            with_default_port("postgresql:///db", "6"),
            "postgresql:///db"
        );
        assert_eq!(with_default_port("host=a", "6"), "host=a");
    }

    #[test]
    fn sslmodes() {
        let tls = |url: Option<&str>, vars: &[(&str, &str)]| {
            let s = settings_with_env(url, vars).unwrap();
            (s.tls, s.config.get_ssl_mode(), s.root_cert)
        };
        assert_eq!(tls(None, &[("PGUSER", "u")]).0, Tls::Prefer);
        let (mode, ssl, root) = tls(
            Some("postgres://u@h/d?sslmode=verify-full&sslrootcert=/ca.pem&application_name=x"),
            &[("PGSSLMODE", "disable")],
        );
        assert_eq!((mode, ssl), (Tls::VerifyFull, SslMode::Require));
        assert_eq!(root, Some(PathBuf::from("/ca.pem")));
        let (mode, ssl, root) = tls(
            Some("host=h user=u"),
            &[("PGSSLMODE", "disable"), ("PGSSLROOTCERT", "/r.pem")],
        );
        assert_eq!((mode, ssl), (Tls::Disable, SslMode::Disable));
        assert_eq!(root, Some(PathBuf::from("/r.pem")));
        assert_eq!(
            tls(Some("host=h sslmode = verify-ca user=u"), &[]).0,
            Tls::VerifyCa
        );
        assert!(settings_with_env(Some("host=h sslmode=sometimes"), &[]).is_err());
    }

    #[test]
    fn params_are_taken_out() {
        assert_eq!(
            take_param("postgres://h/d?sslmode=require", "sslmode"),
            ("postgres://h/d".into(), Some("require".into()))
        );
        assert_eq!(
            take_param("postgres://h/d?a=1&sslmode=require&b=2", "sslmode"),
            ("postgres://h/d?a=1&b=2".into(), Some("require".into()))
        );
        assert_eq!(
            take_param("postgres://h/d", "sslmode"),
            ("postgres://h/d".into(), None)
        );
        assert_eq!(
            take_param("host=h sslmode=verify-ca port=1", "sslmode"),
            ("host=h port=1".into(), Some("verify-ca".into()))
        );
    }

    #[test]
    fn os_user_from_passwd() {
        let passwd =
            "root:x:0:0:root:/root:/bin/bash\npostgres:x:104:110::/var/lib/postgresql:/bin/bash\n";
        assert_eq!(user_of(passwd, 104).as_deref(), Some("postgres"));
        assert_eq!(user_of(passwd, 0).as_deref(), Some("root"));
        assert_eq!(user_of(passwd, 7), None);
    }
}
