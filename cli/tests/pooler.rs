//! Behind pgbouncer in transaction pooling, with one server connection shared by every client:
//! the client deploys (a worker step included), lints and shows status through the pooler, the
//! out-of-order permission is an argument, and nothing the extension sets (the guard's
//! lock_timeout, `SET LOCAL migrate.*`) reaches the next client of the same server connection.

mod common;
use common::*;

use std::path::{Path, PathBuf};
use std::process::{Child, Command};
use std::time::{Duration, Instant};

const PGBOUNCER: &str = "/usr/sbin/pgbouncer";

struct Pooler {
    child: Child,
    port: u16,
    dir: PathBuf,
}

impl Drop for Pooler {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// pgbouncer in transaction mode in front of `server_port`, one server connection per pool.
fn pgbouncer(server_port: u16) -> Pooler {
    let dir = folder("pgbouncer");
    let port = free_port();
    std::fs::write(dir.join("users.txt"), "\"postgres\" \"\"\n").unwrap();
    std::fs::write(
        dir.join("pgbouncer.ini"),
        format!(
            "[databases]\npostgres = host=127.0.0.1 port={server_port} dbname=postgres\n\
             [pgbouncer]\nlisten_addr = 127.0.0.1\nlisten_port = {port}\nunix_socket_dir =\n\
             auth_type = trust\nauth_file = {users}\npool_mode = transaction\n\
             default_pool_size = 1\nmax_client_conn = 50\nlogfile = {log}\n\
             ignore_startup_parameters = extra_float_digits\n",
            users = dir.join("users.txt").display(),
            log = dir.join("pgbouncer.log").display(),
        ),
    )
    .unwrap();
    std::fs::set_permissions(&dir, std::os::unix::fs::PermissionsExt::from_mode(0o777)).unwrap();
    // pgbouncer refuses to run as root, as PostgreSQL does: run it as postgres, itself the
    // child (so killing the child stops it), quiet on stderr (it logs to its file).
    let mut command = Command::new(PGBOUNCER);
    command
        .arg("-q")
        .arg(dir.join("pgbouncer.ini"))
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null());
    if let Some((uid, gid)) = postgres_ids().filter(|_| running_as_root()) {
        use std::os::unix::process::CommandExt;
        command.uid(uid).gid(gid);
    }
    let child = command.spawn().unwrap();
    let pooler = Pooler { child, port, dir };
    let started = Instant::now();
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(
            started.elapsed() < Duration::from_secs(20),
            "pgbouncer did not start: {}",
            std::fs::read_to_string(pooler.dir.join("pgbouncer.log")).unwrap_or_default()
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    pooler
}

fn running_as_root() -> bool {
    std::fs::metadata("/proc/self")
        .map(|m| std::os::unix::fs::MetadataExt::uid(&m) == 0)
        .unwrap_or(false)
}

/// The uid and gid of the OS user postgres, from /etc/passwd.
fn postgres_ids() -> Option<(u32, u32)> {
    let passwd = std::fs::read_to_string("/etc/passwd").ok()?;
    passwd.lines().find_map(|line| {
        let fields: Vec<&str> = line.split(':').collect();
        (fields.first() == Some(&"postgres") && fields.len() > 3)
            .then(|| Some((fields[2].parse().ok()?, fields[3].parse().ok()?)))
            .flatten()
    })
}

fn through(pooler: &Pooler) -> String {
    format!("postgres://postgres@127.0.0.1:{}/postgres", pooler.port)
}

fn cli_via(url: &str, args: &[&str]) -> Run {
    let mut c = command(args);
    c.env("DATABASE_URL", url);
    output(c)
}

/// One value from a simple query (no prepared statement: what a pooled client can rely on).
fn value(client: &mut Client, sql: &str) -> String {
    client
        .simple_query(sql)
        .unwrap()
        .into_iter()
        .find_map(|m| match m {
            postgres::SimpleQueryMessage::Row(row) => Some(row.get(0).unwrap_or("").to_string()),
            _ => None,
        })
        .unwrap()
}

fn skip() -> bool {
    if Path::new(PGBOUNCER).exists() {
        return false;
    }
    println!("skipped: pgbouncer is not installed (scripts/setup.sh installs it)");
    true
}

#[test]
fn deploys_and_leaks_nothing_behind_a_transaction_pooler() {
    if skip() {
        return;
    }
    let (cluster, mut direct) = start("pooler");
    let pooler = pgbouncer(cluster.port);
    let url = through(&pooler);
    let dir = folder("pooler-migrations");
    write(
        &dir,
        &[
            (
                "10_big.up.sql",
                "CREATE TABLE big (id int PRIMARY KEY, email text);\n\
                 INSERT INTO big SELECT g, 'user' || g FROM generate_series(1, 20000) g;\n\
                 ANALYZE big;\n",
            ),
            (
                "20_index.up.sql",
                "CREATE INDEX CONCURRENTLY big_email ON big (email);\n",
            ),
        ],
    );
    // A deploy with a worker step, then lint and status (JSON: prepared statements) through
    // the pooler.
    cli_via(&url, &["deploy", path(&dir)]).expect(0);
    let valid: bool = direct
        .query_one(
            "SELECT indisvalid FROM pg_index WHERE indexrelid = 'big_email'::regclass",
            &[],
        )
        .unwrap()
        .get(0);
    assert!(valid);
    cli_via(&url, &["lint", path(&dir)]).expect(0);
    cli_via(&url, &["status", "--format", "json"]).expect(0);

    // A branch merged late: refused, then deployed with the argument.
    write(&dir, &[("15_late.up.sql", "CREATE TABLE late ();\n")]);
    let refused = cli_via(&url, &["deploy", path(&dir)]).expect(1);
    assert!(refused.stderr.contains("55000"), "{}", refused.stderr);
    assert!(
        refused.stderr.contains("allow_out_of_order => true"),
        "{}",
        refused.stderr
    );
    cli_via(&url, &["deploy", path(&dir), "--allow-out-of-order"]).expect(0);

    // Two clients of the pooler share its one server connection.
    let mut a = Client::connect(&url, postgres::NoTls).unwrap();
    let mut b = Client::connect(&url, postgres::NoTls).unwrap();
    assert_eq!(
        value(&mut a, "SELECT pg_backend_pid()"),
        value(&mut b, "SELECT pg_backend_pid()")
    );
    // The guard's lock_timeout for a DDL, a blocked DDL with the tool's hint under SET LOCAL,
    // a deploy's argument: none of it is seen by the next client.
    a.batch_execute("ALTER TABLE big ADD COLUMN note text")
        .unwrap();
    assert_eq!(value(&mut b, "SHOW lock_timeout"), "0");
    a.batch_execute("BEGIN; SET LOCAL migrate.tool = 'django'")
        .unwrap();
    let blocked = a
        .batch_execute("CREATE INDEX big_note ON big (note)")
        .unwrap_err();
    let db = blocked.as_db_error().unwrap();
    assert_eq!(db.code().code(), "09000");
    assert!(
        db.hint().unwrap_or("").contains("AddIndexConcurrently"),
        "{:?}",
        db.hint()
    );
    a.batch_execute("ROLLBACK").unwrap();
    assert_eq!(value(&mut b, "SHOW migrate.tool"), "");
    assert_eq!(value(&mut b, "SHOW migrate.allow_out_of_order"), "off");
    assert_eq!(value(&mut b, "SHOW lock_timeout"), "0");
    let states = states(&mut direct);
    assert!(states.iter().all(|(_, s)| s == "applied"), "{states:?}");
}
