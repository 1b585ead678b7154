//! The Alembic and Django layouts against the real tools (Alembic 1.20 with SQLAlchemy 2.1,
//! Django 5.2 with psycopg 3, from scripts/install_python_tools.sh): the committed fixtures
//! are what the tools write today, and `migrate-cli deploy` of a fixture leaves the schema
//! the tool's own `alembic upgrade` / `manage.py migrate` leaves in another database of the
//! same cluster (`pg_dump --schema-only` of `public`, the tools' bookkeeping tables left
//! out), forward and back down through the down scripts.
//!
//! The tools are found in MIGRATE_PYTHON_VENV (default /opt/migrate-python); scripts/setup.sh
//! installs them, so CI has them. Without them these tests fail, saying how to install them.

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;

use common::{cli, start, Cluster};

fn fixtures() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../pg_test/fixtures")
}

fn venv() -> PathBuf {
    let venv = PathBuf::from(
        std::env::var("MIGRATE_PYTHON_VENV").unwrap_or_else(|_| "/opt/migrate-python".into()),
    );
    assert!(
        venv.join("bin/alembic").is_file() && venv.join("bin/django-admin").is_file(),
        "Alembic and Django are not installed in {}: run scripts/install_python_tools.sh",
        venv.display()
    );
    venv
}

fn run(mut c: Command) -> String {
    let out = c.output().unwrap();
    assert!(
        out.status.success(),
        "{c:?} failed:\n{}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn scratch(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("migrate-graph-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// Every file under `dir`, relative path and contents, sorted.
fn files(dir: &Path) -> Vec<(String, String)> {
    fn walk(root: &Path, dir: &Path, out: &mut Vec<(String, String)>) {
        for entry in std::fs::read_dir(dir).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                walk(root, &path, out);
            } else {
                let rel = path.strip_prefix(root).unwrap().display().to_string();
                out.push((rel, std::fs::read_to_string(&path).unwrap()));
            }
        }
    }
    let mut out = Vec::new();
    walk(dir, dir, &mut out);
    out.sort();
    out
}

/// The schema of `public` in `db` as pg_dump writes it, without comments, blank lines,
/// pg_dump's per-run `\restrict` keys and the `skip` tables. The columns of a table are
/// sorted: two independent migrations that add columns to one table run in version order in
/// the registry and in another order in Django's plan (both valid orders of the graph).
fn schema(cluster: &Cluster, db: &str, skip: &str) -> String {
    let out = cluster.client_tool(
        "pg_dump",
        &[
            "--schema-only",
            "--no-owner",
            "--schema=public",
            &format!("--exclude-table=public.{skip}"),
            "-d",
            db,
        ],
    );
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    let mut lines: Vec<String> = Vec::new();
    let mut columns: Option<Vec<String>> = None;
    for l in text.lines() {
        if l.is_empty()
            || l.starts_with("--")
            || l.starts_with("\\restrict")
            || l.starts_with("\\unrestrict")
        {
            continue;
        }
        match columns.as_mut() {
            Some(cols) if l == ");" => {
                cols.sort();
                lines.append(cols);
                columns = None;
                lines.push(l.to_string());
            }
            Some(cols) => cols.push(l.trim_end_matches(',').to_string()),
            None => {
                if l.starts_with("CREATE TABLE ") && l.ends_with('(') {
                    columns = Some(Vec::new());
                }
                lines.push(l.to_string());
            }
        }
    }
    lines.join("\n")
}

/// Asserts that `ours` and `theirs` (schemas) are equal, showing the lines that differ.
fn same(ours: &str, theirs: &str) {
    if ours != theirs {
        let a: Vec<&str> = ours.lines().collect();
        let b: Vec<&str> = theirs.lines().collect();
        let only = |x: &[&str], y: &[&str]| {
            x.iter()
                .filter(|l| !y.contains(l))
                .map(|l| l.to_string())
                .collect::<Vec<_>>()
                .join("\n")
        };
        panic!(
            "schemas differ\nonly in migrate's:\n{}\nonly in the tool's:\n{}",
            only(&a, &b),
            only(&b, &a)
        );
    }
}

fn create_db(cluster: &Cluster, db: &str) {
    cluster
        .connect("postgres")
        .batch_execute(&format!("CREATE DATABASE {db}"))
        .unwrap();
}

#[test]
fn the_alembic_fixture_is_what_alembic_writes() {
    let venv = venv();
    let out = scratch("alembic-sql");
    let mut make = Command::new(fixtures().join("alembic/make.sh"));
    make.arg(&out)
        .env("MIGRATE_PYTHON_VENV", &venv)
        .env("PYTHONDONTWRITEBYTECODE", "1");
    run(make);
    for name in ["upgrade.sql", "downgrade.sql"] {
        assert_eq!(
            std::fs::read_to_string(out.join(name)).unwrap(),
            std::fs::read_to_string(fixtures().join("alembic/migrations").join(name)).unwrap(),
            "{name}: regenerate with pg_test/fixtures/alembic/make.sh"
        );
    }
}

#[test]
fn alembic_history_deploys_as_alembic_upgrades_and_downgrades() {
    let venv = venv();
    let (cluster, mut c) = start("graph-alembic");
    create_db(&cluster, "tool");
    let project = fixtures().join("alembic");
    let alembic = |args: &[&str]| {
        let mut cmd = Command::new(venv.join("bin/alembic"));
        cmd.args(args)
            .current_dir(&project)
            .env("PYTHONDONTWRITEBYTECODE", "1")
            .env(
                "ALEMBIC_URL",
                format!(
                    "postgresql+psycopg://postgres@127.0.0.1:{}/tool",
                    cluster.port
                ),
            );
        run(cmd);
    };
    let dir = project.join("migrations");
    let dir = dir.to_str().unwrap();

    alembic(&["upgrade", "head"]);
    let run = cli(&cluster, &["deploy", dir]).expect(0);
    assert!(run.stdout.contains("(alembic layout)"), "{}", run.stdout);
    let theirs = schema(&cluster, "tool", "alembic_version");
    assert!(theirs.contains("invoice_account_id_idx"), "{theirs}");
    same(&schema(&cluster, "postgres", "alembic_version"), &theirs);
    let order: Vec<String> = c
        .query("SELECT version FROM migrate.status()", &[])
        .unwrap()
        .iter()
        .map(|r| r.get(0))
        .collect();
    assert_eq!(
        order,
        [
            "f3a9c2d1e8b7",
            "1c4e7a9b3d2f",
            "2b3c4d5e6f70",
            "9e8d7c6b5a41",
            "7a6b5c4d3e21",
            "0d1e2f3a4b5c"
        ]
    );
    let transactional: bool = c
        .query_one(
            "SELECT transactional FROM migrate.status() WHERE version = '2b3c4d5e6f70'",
            &[],
        )
        .unwrap()
        .get(0);
    assert!(
        !transactional,
        "the autocommit block runs outside a transaction"
    );
    assert_eq!(
        c.query("SELECT * FROM migrate.validate()", &[])
            .unwrap()
            .len(),
        0
    );

    // Back to the base revision through the down scripts (the concurrent index by a worker).
    alembic(&["downgrade", "f3a9c2d1e8b7"]);
    cli(&cluster, &["deploy", dir, "--to", "f3a9c2d1e8b7"]).expect(0);
    let theirs = schema(&cluster, "tool", "alembic_version");
    assert!(theirs.contains("CREATE TABLE public.account") && !theirs.contains("invoice"));
    same(&schema(&cluster, "postgres", "alembic_version"), &theirs);
    // And below it.
    alembic(&["downgrade", "base"]);
    c.batch_execute("SELECT migrate.rollback(1)").unwrap();
    same(
        &schema(&cluster, "postgres", "alembic_version"),
        &schema(&cluster, "tool", "alembic_version"),
    );
}

#[test]
fn django_history_deploys_as_django_migrates() {
    let venv = venv();
    let (cluster, mut c) = start("graph-django");
    let project = fixtures().join("django/project");
    let bindir = cluster.bindir.clone();

    // The committed export is what the exporter writes today.
    let out = scratch("django-export");
    let mut make = Command::new(fixtures().join("django/make.sh"));
    make.arg(&out)
        .env("MIGRATE_PYTHON_VENV", &venv)
        .env("PSQL", bindir.join("psql"))
        .env("PGHOST", "127.0.0.1")
        .env("PGPORT", cluster.port.to_string())
        .env("PGUSER", "postgres");
    run(make);
    // Django writes the time of the export into one down script (auth.0005's old default).
    let stable = |files: Vec<(String, String)>| -> Vec<(String, String)> {
        files
            .into_iter()
            .map(|(name, text)| {
                let lines: Vec<String> = text
                    .lines()
                    .map(|l| match l.contains("::timestamptz") {
                        true => l
                            .chars()
                            .map(|c| if c.is_ascii_digit() { '0' } else { c })
                            .collect(),
                        false => l.to_string(),
                    })
                    .collect();
                (name, lines.join("\n"))
            })
            .collect()
    };
    let ours = stable(files(&out));
    let committed = stable(files(&fixtures().join("django/export")));
    let names = |f: &[(String, String)]| f.iter().map(|(n, _)| n.clone()).collect::<Vec<_>>();
    let again = "regenerate with pg_test/fixtures/django/make.sh";
    assert_eq!(names(&ours), names(&committed), "{again}");
    for ((name, a), (_, b)) in ours.iter().zip(&committed) {
        assert_eq!(a, b, "{name}: {again}");
    }

    create_db(&cluster, "tool");
    let manage = |args: &[&str]| {
        let mut cmd = Command::new(venv.join("bin/python"));
        cmd.arg("manage.py")
            .args(args)
            .current_dir(&project)
            .env("PYTHONDONTWRITEBYTECODE", "1")
            .env("PGHOST", "127.0.0.1")
            .env("PGPORT", cluster.port.to_string())
            .env("PGUSER", "postgres")
            .env("PGDATABASE", "tool");
        run(cmd);
    };
    let dir = fixtures().join("django/export");
    let dir = dir.to_str().unwrap();

    manage(&["migrate", "--noinput", "-v", "0"]);
    let run = cli(&cluster, &["deploy", dir]).expect(0);
    assert!(run.stdout.contains("(django layout)"), "{}", run.stdout);
    let theirs = schema(&cluster, "tool", "django_migrations");
    assert!(theirs.contains("shop_order_created_idx"), "{theirs}");
    same(&schema(&cluster, "postgres", "django_migrations"), &theirs);
    let row = c
        .query_one(
            "SELECT transactional, (SELECT down_sql IS NULL FROM migrate.migrations WHERE version = 'blog.0003_fill_slugs')
             FROM migrate.status() WHERE version = 'shop.0002_order_created_idx'",
            &[],
        )
        .unwrap();
    assert!(
        !row.get::<_, bool>(0),
        "atomic = False runs outside a transaction"
    );
    assert!(
        row.get::<_, bool>(1),
        "a RunPython without reverse has no down script"
    );
    assert_eq!(
        c.query("SELECT * FROM migrate.validate()", &[])
            .unwrap()
            .len(),
        0
    );

    // Back: blog to 0003 (the irreversible RunPython is as far as Django goes too), shop to
    // 0001 (its concurrent index dropped by a worker).
    manage(&["migrate", "blog", "0003", "--noinput", "-v", "0"]);
    cli(&cluster, &["deploy", dir, "--to", "blog.0003_fill_slugs"]).expect(0);
    same(
        &schema(&cluster, "postgres", "django_migrations"),
        &schema(&cluster, "tool", "django_migrations"),
    );
    manage(&["migrate", "shop", "0001", "--noinput", "-v", "0"]);
    cli(&cluster, &["deploy", dir, "--to", "shop.0001_initial"]).expect(0);
    let theirs = schema(&cluster, "tool", "django_migrations");
    assert!(!theirs.contains("shop_order_created_idx") && !theirs.contains("published_at"));
    same(&schema(&cluster, "postgres", "django_migrations"), &theirs);
    // Further back than Django can go: refused, nothing changed.
    let refused = cli(
        &cluster,
        &["deploy", dir, "--to", "blog.0001_squashed_0002_post_slug"],
    )
    .expect(1);
    assert!(
        refused.stderr.contains("irreversible"),
        "{}",
        refused.stderr
    );
    same(
        &schema(&cluster, "postgres", "django_migrations"),
        &schema(&cluster, "tool", "django_migrations"),
    );
}

/// `manage.py test --parallel 2` on the sample project: with `TEST['TEMPLATE']` naming a database
/// that has the extension, the test database (and each parallel clone) has it too; without, the
/// runner's database has no extension (what users hit first).
#[test]
fn django_test_runner_gets_the_extension_from_a_template() {
    let venv = venv();
    let (cluster, _c) = start("graph-django-test");
    let project = fixtures().join("django/project");
    create_db(&cluster, "migrate_template");
    let mut t = cluster.connect("migrate_template");
    t.batch_execute("CREATE EXTENSION migrate").unwrap();
    drop(t);
    let manage_test = |template: Option<&str>| {
        let mut cmd = Command::new(venv.join("bin/python"));
        cmd.args([
            "manage.py",
            "test",
            "blog",
            "--parallel",
            "2",
            "--noinput",
            "-v",
            "1",
        ])
        .current_dir(&project)
        .env("PYTHONDONTWRITEBYTECODE", "1")
        .env("PGHOST", "127.0.0.1")
        .env("PGPORT", cluster.port.to_string())
        .env("PGUSER", "postgres")
        .env("PGDATABASE", "postgres")
        .env_remove("MIGRATE_TEST_TEMPLATE");
        if let Some(t) = template {
            cmd.env("MIGRATE_TEST_TEMPLATE", t);
        }
        cmd.output().unwrap()
    };
    let with = manage_test(Some("migrate_template"));
    let stderr = String::from_utf8_lossy(&with.stderr);
    assert!(with.status.success(), "{stderr}");
    assert!(
        stderr.contains("Ran 3 tests") && stderr.contains("OK"),
        "{stderr}"
    );
    assert!(
        stderr.contains("Cloning test database"),
        "not parallel: {stderr}"
    );
    let without = manage_test(None);
    let stderr = String::from_utf8_lossy(&without.stderr);
    assert!(!without.status.success(), "{stderr}");
    assert!(
        stderr.contains("the test database has no migrate extension"),
        "{stderr}"
    );
}

/// The real Alembic migrates the database the extension is in (its DDL under the guard),
/// `migrate-cli adopt --from alembic` takes it over (every ancestor of the head applied), and a
/// deploy of the same folder is a no-op.
#[test]
fn alembic_database_is_adopted() {
    let venv = venv();
    let (cluster, mut c) = start("graph-alembic-adopt");
    let project = fixtures().join("alembic");
    let mut cmd = Command::new(venv.join("bin/alembic"));
    cmd.args(["upgrade", "head"])
        .current_dir(&project)
        .env("PYTHONDONTWRITEBYTECODE", "1")
        .env(
            "ALEMBIC_URL",
            format!(
                "postgresql+psycopg://postgres@127.0.0.1:{}/postgres",
                cluster.port
            ),
        );
    run(cmd);
    let dir = project.join("migrations");
    let dir = dir.to_str().unwrap();
    let adopted = cli(&cluster, &["adopt", "--from", "alembic", dir]).expect(0);
    assert!(
        adopted.stdout.contains("adopted 6 migration(s)"),
        "{}",
        adopted.stdout
    );
    let deploy = cli(&cluster, &["deploy", dir]).expect(0);
    assert!(
        deploy.stdout.contains("nothing to deploy"),
        "{}",
        deploy.stdout
    );
    let not_adopted: i64 = c
        .query_one(
            "SELECT count(*) FROM migrate.status() WHERE state <> 'baselined'",
            &[],
        )
        .unwrap()
        .get(0);
    assert_eq!(not_adopted, 0);
    assert_eq!(
        c.query("SELECT * FROM migrate.validate()", &[])
            .unwrap()
            .len(),
        0,
        "no drift between alembic_version and the registry"
    );
}

/// The real `manage.py migrate` migrates the database the extension is in, `migrate-cli adopt
/// --from django` takes it over from `django_migrations`, and a deploy of the export is a no-op.
#[test]
fn django_database_is_adopted() {
    let venv = venv();
    let (cluster, mut c) = start("graph-django-adopt");
    let project = fixtures().join("django/project");
    let mut cmd = Command::new(venv.join("bin/python"));
    cmd.args(["manage.py", "migrate", "--noinput", "-v", "0"])
        .current_dir(&project)
        .env("PYTHONDONTWRITEBYTECODE", "1")
        .env("PGHOST", "127.0.0.1")
        .env("PGPORT", cluster.port.to_string())
        .env("PGUSER", "postgres")
        .env("PGDATABASE", "postgres");
    run(cmd);
    let dir = fixtures().join("django/export");
    let dir = dir.to_str().unwrap();
    let adopted = cli(&cluster, &["adopt", "--from", "django", dir]).expect(0);
    assert!(adopted.stdout.contains("adopted"), "{}", adopted.stdout);
    let deploy = cli(&cluster, &["deploy", dir]).expect(0);
    assert!(
        deploy.stdout.contains("nothing to deploy"),
        "{}",
        deploy.stdout
    );
    let not_adopted: i64 = c
        .query_one(
            "SELECT count(*) FROM migrate.status() WHERE state <> 'baselined'",
            &[],
        )
        .unwrap()
        .get(0);
    assert_eq!(not_adopted, 0);
}
