//! Throwaway PostgreSQL clusters for system tests. Each test starts its own cluster (initdb as
//! the `postgres` OS user, a free port on 127.0.0.1), talks to it with a real client, and stops
//! and deletes it when dropped. The extension must already be installed into the PostgreSQL
//! whose binaries `MIGRATE_PG_BINDIR` points at (pg_test/run.sh does that).

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

pub use postgres::{Client, NoTls};

pub struct Cluster {
    pub bindir: PathBuf,
    pub dir: PathBuf,
    pub port: u16,
}

fn running_as_root() -> bool {
    Command::new("id")
        .arg("-u")
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim() == "0")
        .unwrap_or(false)
}

/// Runs a server binary as the `postgres` user.
fn as_postgres(program: &Path) -> Command {
    if running_as_root() {
        let mut c = Command::new("runuser");
        c.args(["-u", "postgres", "--"]).arg(program);
        c
    } else {
        Command::new(program)
    }
}

fn check(output: Output, what: &str) -> Output {
    assert!(
        output.status.success(),
        "{what} failed: {}\n{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    output
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// An empty directory for a test's cluster, owned by the `postgres` user.
fn cluster_dir(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("migrate-system-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    if running_as_root() {
        check(
            Command::new("chown")
                .arg("postgres")
                .arg(&dir)
                .output()
                .unwrap(),
            "chown",
        );
    }
    dir
}

impl Cluster {
    /// Starts a new cluster named after the test, with optional extra postgresql.conf lines.
    pub fn start(name: &str, settings: &[&str]) -> Cluster {
        let bindir = PathBuf::from(
            std::env::var("MIGRATE_PG_BINDIR")
                .expect("MIGRATE_PG_BINDIR names the PostgreSQL bin directory"),
        );
        let dir = cluster_dir(name);
        check(
            as_postgres(&bindir.join("initdb"))
                .args([
                    "-A",
                    "trust",
                    "-U",
                    "postgres",
                    "--no-sync",
                    "-E",
                    "UTF8",
                    "-D",
                ])
                .arg(dir.join("data"))
                .output()
                .unwrap(),
            "initdb",
        );
        let port = free_port();
        let mut conf = format!(
            "listen_addresses = '127.0.0.1'\nport = {port}\nunix_socket_directories = '{}'\nfsync = off\nmax_connections = 40\n",
            dir.display()
        );
        for s in settings {
            conf.push_str(s);
            conf.push('\n');
        }
        let conf_path = dir.join("data/postgresql.conf");
        let mut existing = std::fs::read_to_string(&conf_path).unwrap();
        existing.push_str(&conf);
        std::fs::write(&conf_path, existing).unwrap();
        let cluster = Cluster { bindir, dir, port };
        cluster.pg_ctl(&["start", "-w", "-t", "60", "-l"], Some("server.log"));
        cluster
    }

    fn pg_ctl(&self, args: &[&str], log: Option<&str>) {
        let mut c = as_postgres(&self.bindir.join("pg_ctl"));
        c.arg("-D").arg(self.dir.join("data")).args(args);
        if let Some(log) = log {
            c.arg(self.dir.join(log));
        }
        check(c.output().unwrap(), "pg_ctl");
    }

    pub fn connect(&self, db: &str) -> Client {
        Client::connect(
            &format!(
                "host=127.0.0.1 port={} user=postgres dbname={db}",
                self.port
            ),
            NoTls,
        )
        .unwrap_or_else(|e| panic!("connect to {db}: {e}"))
    }

    /// Connects as `user` (trust authentication: no password).
    pub fn connect_as(&self, db: &str, user: &str) -> Client {
        Client::connect(
            &format!("host=127.0.0.1 port={} user={user} dbname={db}", self.port),
            NoTls,
        )
        .unwrap_or_else(|e| panic!("connect to {db} as {user}: {e}"))
    }

    /// Restarts the server in the given shutdown mode (`immediate` skips the shutdown
    /// checkpoint, so the next start goes through crash recovery).
    pub fn restart(&self, mode: &str) {
        self.pg_ctl(
            &["restart", "-m", mode, "-w", "-t", "60", "-l"],
            Some("server.log"),
        );
    }

    /// Connects, retrying while the server restarts or recovers from a crash.
    pub fn connect_retry(&self, db: &str, timeout: std::time::Duration) -> Client {
        let deadline = std::time::Instant::now() + timeout;
        loop {
            match Client::connect(
                &format!(
                    "host=127.0.0.1 port={} user=postgres dbname={db}",
                    self.port
                ),
                NoTls,
            ) {
                Ok(c) => return c,
                Err(e) if std::time::Instant::now() < deadline => {
                    let _ = e;
                    std::thread::sleep(std::time::Duration::from_millis(100));
                }
                Err(e) => panic!("connect to {db} after restart: {e}"),
            }
        }
    }

    /// A streaming standby of this cluster (pg_basebackup -R), started on a port of its own.
    pub fn standby(&self, name: &str) -> Cluster {
        let dir = cluster_dir(name);
        check(
            as_postgres(&self.bindir.join("pg_basebackup"))
                .args([
                    "-h",
                    "127.0.0.1",
                    "-p",
                    &self.port.to_string(),
                    "-U",
                    "postgres",
                ])
                .args(["-X", "stream", "-R", "--no-sync", "-D"])
                .arg(dir.join("data"))
                .output()
                .unwrap(),
            "pg_basebackup",
        );
        let port = free_port();
        let conf_path = dir.join("data/postgresql.conf");
        let mut conf = std::fs::read_to_string(&conf_path).unwrap();
        conf.push_str(&format!(
            "port = {port}\nunix_socket_directories = '{}'\n",
            dir.display()
        ));
        std::fs::write(&conf_path, conf).unwrap();
        let standby = Cluster {
            bindir: self.bindir.clone(),
            dir,
            port,
        };
        standby.pg_ctl(&["start", "-w", "-t", "60", "-l"], Some("server.log"));
        standby
    }

    /// The server log so far (for assertion messages).
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.join("server.log")).unwrap_or_default()
    }

    /// Runs a client program (pg_dump, pg_restore, psql...) against this cluster.
    pub fn client_tool(&self, program: &str, args: &[&str]) -> Output {
        let output = Command::new(self.bindir.join(program))
            .args([
                "-h",
                "127.0.0.1",
                "-p",
                &self.port.to_string(),
                "-U",
                "postgres",
            ])
            .args(args)
            .output()
            .unwrap();
        check(output, program)
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        let _ = as_postgres(&self.bindir.join("pg_ctl"))
            .arg("-D")
            .arg(self.dir.join("data"))
            .args(["stop", "-m", "immediate", "-w"])
            .output();
        if !std::thread::panicking() {
            let _ = std::fs::remove_dir_all(&self.dir);
        }
    }
}

/// The pid of a job worker of the cluster that waits for a lock (a concurrent build waiting
/// for an old snapshot or a writer), polled until `timeout`.
pub fn job_worker_waiting_for_a_lock(c: &mut Client, timeout: std::time::Duration) -> i32 {
    let deadline = std::time::Instant::now() + timeout;
    loop {
        let row = c
            .query_opt(
                "SELECT pid FROM pg_stat_activity WHERE backend_type = 'migrate job worker' \
                 AND wait_event_type = 'Lock'",
                &[],
            )
            .unwrap();
        if let Some(row) = row {
            return row.get(0);
        }
        assert!(
            std::time::Instant::now() < deadline,
            "no job worker ever waited for a lock"
        );
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
}
