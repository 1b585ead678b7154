//! What the client's integration tests share: the system tests' throwaway clusters (the same
//! source file, so the cluster code lives in one place; `MIGRATE_PG_BINDIR` names the
//! PostgreSQL to use and the extension must be installed there), the built binary, and
//! migration folders written to temporary directories.
// Each test file uses some of these helpers.
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

#[path = "../../../pg_test/system/src/lib.rs"]
mod cluster;

pub use cluster::{Client, Cluster};

/// A cluster with `migrate` preloaded (for the job workers) and the extension created in
/// database `postgres`.
pub fn start(name: &str) -> (Cluster, Client) {
    let cluster = Cluster::start(
        &format!("cli-{name}"),
        &["shared_preload_libraries = 'migrate'"],
    );
    let mut client = cluster.connect("postgres");
    client.batch_execute("CREATE EXTENSION migrate").unwrap();
    (cluster, client)
}

pub fn url(cluster: &Cluster) -> String {
    format!("postgres://postgres@127.0.0.1:{}/postgres", cluster.port)
}

/// The exit code, stdout and stderr of one run.
pub struct Run {
    pub code: i32,
    pub stdout: String,
    pub stderr: String,
}

impl Run {
    /// Panics with both streams unless the run exited with `code`.
    pub fn expect(self, code: i32) -> Run {
        assert_eq!(
            self.code, code,
            "exit code {} (wanted {code})\nstdout:\n{}\nstderr:\n{}",
            self.code, self.stdout, self.stderr
        );
        self
    }

    pub fn json(&self) -> serde_json::Value {
        serde_json::from_str(&self.stdout)
            .unwrap_or_else(|e| panic!("not JSON ({e}):\n{}", self.stdout))
    }
}

/// `migrate-cli ARGS` with no connection settings from our own environment.
pub fn command(args: &[&str]) -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_migrate-cli"));
    c.args(args);
    for var in [
        "DATABASE_URL",
        "PGHOST",
        "PGPORT",
        "PGUSER",
        "PGDATABASE",
        "PGPASSWORD",
        "PGPASSFILE",
        "PGAPPNAME",
    ] {
        c.env_remove(var);
    }
    c
}

pub fn output(mut c: Command) -> Run {
    let Output {
        status,
        stdout,
        stderr,
    } = c.output().unwrap();
    Run {
        code: status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&stdout).into_owned(),
        stderr: String::from_utf8_lossy(&stderr).into_owned(),
    }
}

/// `migrate-cli ARGS` against `cluster`.
pub fn cli(cluster: &Cluster, args: &[&str]) -> Run {
    let mut c = command(args);
    c.env("DATABASE_URL", url(cluster));
    output(c)
}

/// An empty directory for a test's migration folder.
pub fn folder(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("migrate-cli-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// Writes `files` (name, text) into `dir`.
pub fn write(dir: &Path, files: &[(&str, &str)]) {
    for (name, text) in files {
        std::fs::write(dir.join(name), text).unwrap();
    }
}

pub fn path(dir: &Path) -> &str {
    dir.to_str().unwrap()
}

/// (version, state) of every registered migration.
pub fn states(c: &mut Client) -> Vec<(String, String)> {
    c.query("SELECT version, state FROM migrate.status()", &[])
        .unwrap()
        .iter()
        .map(|r| (r.get(0), r.get(1)))
        .collect()
}
