//! TLS as libpq's sslmodes do it, against a server with a self-signed certificate: `require`
//! encrypts without checking, `verify-full` checks against `sslrootcert` and fails without it.

mod common;

use std::path::Path;
use std::process::Command;

use common::{cli, folder, path, write, Cluster};

/// A self-signed certificate for 127.0.0.1 and its key, readable by the server only.
fn certificate(dir: &Path) {
    let made = Command::new("openssl")
        .args([
            "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1",
        ])
        .args([
            "-subj",
            "/CN=localhost",
            "-addext",
            "subjectAltName=IP:127.0.0.1,DNS:localhost",
        ])
        .arg("-keyout")
        .arg(dir.join("server.key"))
        .arg("-out")
        .arg(dir.join("server.crt"))
        .output()
        .unwrap();
    assert!(
        made.status.success(),
        "{}",
        String::from_utf8_lossy(&made.stderr)
    );
    // The server refuses a key others can read; as root, it must be the postgres user's.
    let _ = Command::new("chown")
        .arg("postgres")
        .arg(dir.join("server.key"))
        .output();
    let _ = Command::new("chmod")
        .arg("600")
        .arg(dir.join("server.key"))
        .output();
}

/// True if the PostgreSQL under test was built with TLS (the PyPI build of 18 is not).
fn server_has_tls() -> bool {
    let bindir = std::env::var("MIGRATE_PG_BINDIR").expect("MIGRATE_PG_BINDIR");
    let configure = Command::new(Path::new(&bindir).join("pg_config"))
        .arg("--configure")
        .output()
        .unwrap();
    let flags = String::from_utf8_lossy(&configure.stdout);
    flags.contains("--with-openssl") || flags.contains("--with-ssl=openssl")
}

#[test]
fn sslmodes_require_and_verify_full() {
    if !server_has_tls() {
        println!("skipped: this PostgreSQL was built without TLS support");
        return;
    }
    let certs = folder("tls-certs");
    certificate(&certs);
    let cluster = Cluster::start(
        "cli-tls",
        &[
            "ssl = on",
            &format!("ssl_cert_file = '{}'", certs.join("server.crt").display()),
            &format!("ssl_key_file = '{}'", certs.join("server.key").display()),
        ],
    );
    let mut c = cluster.connect("postgres");
    c.batch_execute("CREATE EXTENSION migrate").unwrap();
    let dir = folder("tls");
    write(
        &dir,
        &[(
            "1_tls.up.sql",
            "CREATE TABLE seen AS SELECT ssl FROM pg_stat_ssl WHERE pid = pg_backend_pid();\n",
        )],
    );
    let url = |query: &str| {
        format!(
            "postgres://postgres@127.0.0.1:{}/postgres?{query}",
            cluster.port
        )
    };
    let run = |url: String, args: &[&str]| {
        let mut all = vec!["--database-url", url.as_str()];
        all.extend_from_slice(args);
        cli(&cluster, &all)
    };
    run(url("sslmode=require"), &["deploy", path(&dir)]).expect(0);
    let ssl: bool = c.query_one("SELECT ssl FROM seen", &[]).unwrap().get(0);
    assert!(ssl, "the deploy's session was not encrypted");

    let root = format!(
        "sslmode=verify-full&sslrootcert={}",
        certs.join("server.crt").display()
    );
    run(url(&root), &["status"]).expect(0);
    // The system's roots do not know a self-signed certificate.
    let refused = run(url("sslmode=verify-full"), &["status"]).expect(1);
    assert!(
        refused.stderr.contains("could not connect"),
        "{}",
        refused.stderr
    );
    run(url("sslmode=disable"), &["status"]).expect(0);
    let bad = run(url("sslmode=sometimes"), &["status"]).expect(2);
    assert!(bad.stderr.contains("invalid sslmode"), "{}", bad.stderr);
}
