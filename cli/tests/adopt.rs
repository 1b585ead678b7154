//! `migrate-cli adopt` against databases the real tools migrated: diesel_cli, sqlx-cli, dbmate,
//! drizzle-kit and Prisma (scripts/install_tools.sh installs them; scripts/test.sh sets
//! MIGRATE_REQUIRE_TOOLS=1 so a missing one fails instead of skipping). Each tool migrates a
//! fresh database from its fixture folder (pg_test/fixtures/layouts/, made by the same tool)
//! with the extension installed, so its own migrations run under the guard: a blocking
//! `CREATE INDEX` the tool runs is stopped, the tool's safe form goes through. Then `adopt`
//! takes the database over (history `adopt`), `deploy` of the same folder does nothing, a new
//! migration deploys through migrate, and `status` reports the drift. Mismatches (the tool
//! applied a file the folder lacks or that changed) are refused with 55000 and change nothing.
//! golang-migrate and Flyway are not served by this project's package registries: their tables
//! are made and filled here as their sources do (database/postgres/postgres.go; Flyway's
//! createMetaDataTable.sql and ChecksumCalculator), and their scripts run as they run them.

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;

use common::{command, output, start, Client, Cluster, Run};

/// Where scripts/install_tools.sh put the npm tools.
fn node_tools() -> PathBuf {
    PathBuf::from(
        std::env::var("MIGRATE_NODE_TOOLS").unwrap_or_else(|_| "/tmp/migrate-layout-tools".into()),
    )
}

/// The tool's executable, or None (the test is skipped, or fails under MIGRATE_REQUIRE_TOOLS).
fn tool(name: &str) -> Option<PathBuf> {
    let cargo_bin = std::env::var("CARGO_HOME")
        .map(PathBuf::from)
        .unwrap_or_else(|_| PathBuf::from(std::env::var("HOME").unwrap_or_default()).join(".cargo"))
        .join("bin");
    let candidates = match name {
        "diesel" | "sqlx" => vec![cargo_bin.join(name)],
        "prisma" => vec![node_tools().join("prisma6/node_modules/.bin/prisma")],
        _ => vec![node_tools().join("node_modules/.bin").join(name)],
    };
    let found = candidates.into_iter().find(|p| p.is_file());
    if found.is_none() {
        let message = format!("{name} is not installed: run scripts/install_tools.sh");
        assert!(
            std::env::var("MIGRATE_REQUIRE_TOOLS").as_deref() != Ok("1"),
            "{message}"
        );
        eprintln!("skipped: {message}");
    }
    found
}

fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../pg_test/fixtures/layouts")
        .join(name)
}

/// Copies the fixture `src` into `dst` (its README.md left out).
fn copy_fixture(src: &Path, dst: &Path) {
    std::fs::create_dir_all(dst).unwrap();
    for entry in std::fs::read_dir(src).unwrap() {
        let entry = entry.unwrap();
        let to = dst.join(entry.file_name());
        if entry.file_type().unwrap().is_dir() {
            copy_fixture(&entry.path(), &to);
        } else if entry.file_name() != "README.md" {
            std::fs::copy(entry.path(), to).unwrap();
        }
    }
}

fn db_url(cluster: &Cluster, db: &str) -> String {
    format!("postgres://postgres@127.0.0.1:{}/{db}", cluster.port)
}

/// A new database with the extension (its guard on), and a client of it.
fn database(cluster: &Cluster, db: &str) -> Client {
    if db != "postgres" {
        cluster
            .connect("postgres")
            .batch_execute(&format!("CREATE DATABASE {db}"))
            .unwrap();
        let mut c = cluster.connect(db);
        c.batch_execute("CREATE EXTENSION migrate").unwrap();
        return c;
    }
    cluster.connect(db)
}

/// `migrate-cli ARGS` against database `db`.
fn cli(cluster: &Cluster, db: &str, args: &[&str]) -> Run {
    let mut c = command(args);
    c.env("DATABASE_URL", db_url(cluster, db));
    output(c)
}

fn run(mut c: Command) -> Run {
    for var in ["PGHOST", "PGPORT", "PGUSER", "PGDATABASE", "DATABASE_URL"] {
        c.env_remove(var);
    }
    output(c)
}

/// The up script `migrate-cli new NAME DIR` created (the first file it names).
fn new_migration(dir: &Path, name: &str) -> PathBuf {
    let run = output(command(&["new", name, dir.to_str().unwrap()])).expect(0);
    let line = run
        .stdout
        .lines()
        .find_map(|l| l.strip_prefix("created "))
        .unwrap_or_else(|| panic!("new created nothing:\n{}", run.stdout));
    PathBuf::from(line)
}

fn count(c: &mut Client, sql: &str) -> i64 {
    c.query_one(sql, &[]).unwrap().get(0)
}

/// 20,000 users, estimated as such: the guard's size-dependent rules apply to the table.
fn fill_users(c: &mut Client) {
    c.batch_execute(
        "INSERT INTO users (email) SELECT 'user' || g || '@example.com' FROM generate_series(1, 20000) g;
         ANALYZE users;",
    )
    .unwrap();
}

/// Whether index `name` exists and is valid.
fn index(c: &mut Client, name: &str) -> Option<bool> {
    c.query_opt(
        "SELECT i.indisvalid FROM pg_index i WHERE i.indexrelid = to_regclass($1)",
        &[&name],
    )
    .unwrap()
    .map(|r| r.get(0))
}

fn assert_has(run: &Run, what: &str) {
    assert!(
        run.stdout.contains(what) || run.stderr.contains(what),
        "no {what:?} in\nstdout:\n{}\nstderr:\n{}",
        run.stdout,
        run.stderr
    );
}

/// The server log has `what` (some tools, like drizzle-kit, do not print the server's error).
fn logged(cluster: &Cluster, what: &str) {
    assert!(
        cluster.log().contains(what),
        "no {what:?} in the server log:\n{}",
        cluster.log()
    );
}

/// The tool's run was stopped by the guard, and its index is not there.
fn blocked(run: Run, cluster: &Cluster, c: &mut Client) {
    assert_ne!(
        run.code, 0,
        "the blocking CREATE INDEX ran:\n{}",
        run.stdout
    );
    logged(
        cluster,
        "migrate guard: rule index_not_concurrent: CREATE INDEX on public.users",
    );
    assert_eq!(index(c, "users_email_idx"), None);
}

const BLOCKING: &str = "CREATE INDEX users_email_idx ON users (email);\n";
const SAFE: &str = "CREATE INDEX CONCURRENTLY users_email_idx ON users (email);\n";

/// What every tool's database shows after the tool ran: adopt takes `applied` migrations over,
/// deploy of the same folder is a no-op, a new migration deploys through migrate, status
/// reports it as drift (the tool's table lacks it), and end_adoption stops that.
fn adopt_then_deploy(cluster: &Cluster, c: &mut Client, from: &str, dir: &Path, applied: i64) {
    adopt_then_deploy_with(cluster, c, from, dir, applied, &|up, sql| {
        std::fs::write(up, sql).unwrap()
    })
}

/// [`adopt_then_deploy`], writing the new migration's up script with `write` (dbmate's file
/// has sections).
fn adopt_then_deploy_with(
    cluster: &Cluster,
    c: &mut Client,
    from: &str,
    dir: &Path,
    applied: i64,
    write: &dyn Fn(&Path, &str),
) {
    let dir_s = dir.to_str().unwrap();
    let dry = cli(
        cluster,
        "postgres",
        &["adopt", "--from", from, dir_s, "--dry-run"],
    )
    .expect(0);
    assert_has(
        &dry,
        &format!("dry run: would adopt {applied} migration(s)"),
    );
    assert_eq!(count(c, "SELECT count(*) FROM migrate.migrations"), 0);
    let run = cli(cluster, "postgres", &["adopt", "--from", from, dir_s]).expect(0);
    assert_has(&run, &format!("adopted {applied} migration(s)"));
    assert_eq!(
        count(
            c,
            "SELECT count(*) FROM migrate.history WHERE action = 'adopt'"
        ),
        applied
    );
    assert_eq!(
        count(
            c,
            "SELECT count(*) FROM migrate.status() WHERE state = 'baselined'"
        ),
        applied
    );
    let json = cli(
        cluster,
        "postgres",
        &["adopt", "--from", from, dir_s, "--format", "json"],
    )
    .expect(0);
    let rows = json.json();
    assert!(rows
        .as_array()
        .unwrap()
        .iter()
        .all(|r| r["outcome"] == "already_applied" || r["outcome"] == "pending"));

    let deploy = cli(cluster, "postgres", &["deploy", dir_s]).expect(0);
    assert_has(&deploy, "migrate: nothing to deploy");
    assert_eq!(
        count(
            c,
            "SELECT count(*) FROM migrate.history WHERE action = 'apply'"
        ),
        0
    );

    let up = new_migration(dir, "add users nickname");
    write(&up, "ALTER TABLE users ADD COLUMN nickname text;\n");
    let deploy = cli(cluster, "postgres", &["deploy", dir_s]).expect(0);
    assert_has(&deploy, "migrate: applied");
    assert_eq!(
        count(
            c,
            "SELECT count(*) FROM migrate.status() WHERE state = 'applied'"
        ),
        1
    );
    assert_eq!(
        count(
            c,
            "SELECT count(*) FROM pg_attribute WHERE attrelid = 'users'::regclass AND attname = 'nickname'"
        ),
        1
    );
    let status = cli(cluster, "postgres", &["status"]).expect(0);
    assert_has(&status, "drift_not_in_tool");
    c.execute("SELECT migrate.end_adoption($1)", &[&from])
        .unwrap();
    let status = cli(cluster, "postgres", &["status"]).expect(0);
    assert!(!status.stderr.contains("drift"), "{}", status.stderr);
}

/// An adopt refused with 55000 naming `why`, that changed nothing (the load rolled back too).
fn refused(cluster: &Cluster, db: &str, c: &mut Client, from: &str, dir: &Path, why: &str) {
    let run = cli(
        cluster,
        db,
        &["adopt", "--from", from, dir.to_str().unwrap()],
    )
    .expect(1);
    assert_has(&run, "ERROR 55000: cannot adopt");
    assert_has(&run, why);
    assert_eq!(count(c, "SELECT count(*) FROM migrate.migrations"), 0);
    assert_eq!(count(c, "SELECT count(*) FROM migrate.adoptions"), 0);
    assert_eq!(
        count(
            c,
            "SELECT count(*) FROM migrate.history WHERE action = 'adopt'"
        ),
        0
    );
}

#[test]
fn diesel() {
    let Some(diesel) = tool("diesel") else { return };
    let (cluster, mut c) = start("adopt-diesel");
    let project = common::folder("adopt-diesel");
    // diesel looks for its project root (diesel.toml) from the working directory.
    std::fs::write(project.join("diesel.toml"), "").unwrap();
    let dir = project.join("migrations");
    copy_fixture(&fixture("diesel"), &dir);
    let migrate = |db: &str| {
        let mut cmd = Command::new(&diesel);
        cmd.current_dir(&project)
            .args(["migration", "run", "--migration-dir"])
            .arg(&dir)
            .args(["--database-url", &db_url(&cluster, db)]);
        run(cmd)
    };

    // diesel applied a migration the folder no longer has.
    let mut other = database(&cluster, "mismatch");
    migrate("mismatch").expect(0);
    let last = dir.join("2026-12-01-234029-0000_add_users_name");
    let saved = std::fs::read(last.join("up.sql")).unwrap();
    std::fs::remove_dir_all(&last).unwrap();
    refused(
        &cluster,
        "mismatch",
        &mut other,
        "diesel",
        &dir,
        "the folder has no migration with this version",
    );
    std::fs::create_dir(&last).unwrap();
    std::fs::write(last.join("up.sql"), saved).unwrap();

    migrate("postgres").expect(0);
    fill_users(&mut c);
    let up = new_migration(&dir, "add users email index");
    let folder = up.parent().unwrap().to_path_buf();
    std::fs::write(&up, BLOCKING).unwrap();
    blocked(migrate("postgres"), &cluster, &mut c);
    std::fs::write(&up, SAFE).unwrap();
    std::fs::write(
        folder.join("down.sql"),
        "DROP INDEX CONCURRENTLY users_email_idx;\n",
    )
    .unwrap();
    std::fs::write(folder.join("metadata.toml"), "run_in_transaction = false\n").unwrap();
    migrate("postgres").expect(0);
    assert_eq!(index(&mut c, "users_email_idx"), Some(true));
    // The fixture's five and the index.
    adopt_then_deploy(&cluster, &mut c, "diesel", &dir, 6);
}

#[test]
fn sqlx() {
    let Some(sqlx) = tool("sqlx") else { return };
    let (cluster, mut c) = start("adopt-sqlx");
    let dir = common::folder("adopt-sqlx").join("migrations");
    copy_fixture(&fixture("sqlx"), &dir);
    let migrate = |db: &str| {
        let mut cmd = Command::new(&sqlx);
        cmd.args(["migrate", "run", "--source"])
            .arg(&dir)
            .args(["--database-url", &db_url(&cluster, db)]);
        run(cmd)
    };

    // A file edited after sqlx applied it: its SHA-384 is not the one sqlx stored.
    let mut other = database(&cluster, "mismatch");
    migrate("mismatch").expect(0);
    let first = dir.join("20261201234012_create_users.sql");
    let text = std::fs::read_to_string(&first).unwrap();
    std::fs::write(&first, format!("{text}-- edited\n")).unwrap();
    refused(&cluster, "mismatch", &mut other, "sqlx", &dir, "SHA-384");
    std::fs::write(&first, text).unwrap();

    migrate("postgres").expect(0);
    fill_users(&mut c);
    let up = new_migration(&dir, "add users email index");
    std::fs::write(&up, BLOCKING).unwrap();
    blocked(migrate("postgres"), &cluster, &mut c);
    // sqlx's own marker: outside a transaction.
    std::fs::write(&up, format!("-- no-transaction\n{SAFE}")).unwrap();
    migrate("postgres").expect(0);
    assert_eq!(index(&mut c, "users_email_idx"), Some(true));
    adopt_then_deploy(&cluster, &mut c, "sqlx", &dir, 4);
}

#[test]
fn dbmate() {
    let Some(dbmate) = tool("dbmate") else { return };
    let (cluster, mut c) = start("adopt-dbmate");
    let dir = common::folder("adopt-dbmate").join("db/migrations");
    copy_fixture(&fixture("dbmate"), &dir);
    let migrate = |db: &str| {
        let mut cmd = Command::new(&dbmate);
        cmd.args(["--no-dump-schema", "--migrations-dir"])
            .arg(&dir)
            .args([
                "--url",
                &format!("{}?sslmode=disable", db_url(&cluster, db)),
            ])
            .arg("up");
        run(cmd)
    };

    let mut other = database(&cluster, "mismatch");
    migrate("mismatch").expect(0);
    let last = dir.join("20261201234032_index_posts_user_id.sql");
    let saved = std::fs::read(&last).unwrap();
    std::fs::remove_file(&last).unwrap();
    refused(
        &cluster,
        "mismatch",
        &mut other,
        "dbmate",
        &dir,
        "the folder has no migration with this version",
    );
    std::fs::write(&last, saved).unwrap();

    migrate("postgres").expect(0);
    fill_users(&mut c);
    let up = new_migration(&dir, "add users email index");
    std::fs::write(
        &up,
        format!("-- migrate:up\n{BLOCKING}\n-- migrate:down\nDROP INDEX users_email_idx;\n"),
    )
    .unwrap();
    blocked(migrate("postgres"), &cluster, &mut c);
    std::fs::write(
        &up,
        format!(
            "-- migrate:up transaction:false\n{SAFE}\n-- migrate:down transaction:false\nDROP INDEX CONCURRENTLY users_email_idx;\n"
        ),
    )
    .unwrap();
    migrate("postgres").expect(0);
    assert_eq!(index(&mut c, "users_email_idx"), Some(true));
    adopt_then_deploy_with(&cluster, &mut c, "dbmate", &dir, 4, &|up, sql| {
        std::fs::write(up, format!("-- migrate:up\n{sql}\n-- migrate:down\n")).unwrap()
    });
}

#[test]
fn drizzle() {
    let Some(drizzle_kit) = tool("drizzle-kit") else {
        return;
    };
    let (cluster, mut c) = start("adopt-drizzle");
    let project = common::folder("adopt-drizzle");
    std::os::unix::fs::symlink(
        node_tools().join("node_modules"),
        project.join("node_modules"),
    )
    .unwrap();
    let dir = project.join("drizzle");
    copy_fixture(&fixture("drizzle"), &dir);
    let migrate = |db: &str| {
        std::fs::write(
            project.join("drizzle.config.ts"),
            format!(
                "import {{ defineConfig }} from 'drizzle-kit';\n\
                 export default defineConfig({{ dialect: 'postgresql', schema: './schema.ts', out: './drizzle', \
                 dbCredentials: {{ url: '{}' }} }});\n",
                db_url(&cluster, db)
            ),
        )
        .unwrap();
        std::fs::write(project.join("schema.ts"), "export {};\n").unwrap();
        let mut cmd = Command::new(&drizzle_kit);
        cmd.current_dir(&project).arg("migrate");
        run(cmd)
    };

    // A file edited after Drizzle applied it: its hash is not the one Drizzle stored.
    let mut other = database(&cluster, "mismatch");
    migrate("mismatch").expect(0);
    let first = dir.join("0000_create_users.sql");
    let text = std::fs::read_to_string(&first).unwrap();
    std::fs::write(&first, format!("{text}\n-- edited\n")).unwrap();
    refused(
        &cluster,
        "mismatch",
        &mut other,
        "drizzle",
        &dir,
        "hash (SHA-256)",
    );
    std::fs::write(&first, text).unwrap();

    migrate("postgres").expect(0);
    fill_users(&mut c);
    // Drizzle's migrator runs every pending migration in one transaction: the guard stops a
    // blocking CREATE INDEX there, and the concurrent form cannot run there at all, so it is
    // the migration that deploys through migrate (its worker runs it outside a transaction).
    let up = new_migration(&dir, "add users email index");
    std::fs::write(&up, BLOCKING).unwrap();
    blocked(migrate("postgres"), &cluster, &mut c);
    std::fs::write(&up, SAFE).unwrap();
    assert_ne!(migrate("postgres").code, 0);
    logged(
        &cluster,
        "CREATE INDEX CONCURRENTLY cannot run inside a transaction block",
    );
    // The fixture's two; the index is pending.
    let dir_s = dir.to_str().unwrap();
    let adopt = cli(&cluster, "postgres", &["adopt", "--from", "drizzle", dir_s]).expect(0);
    assert_has(&adopt, "adopted 2 migration(s)");
    assert_has(&adopt, "1 pending");
    let deploy = cli(&cluster, "postgres", &["deploy", dir_s]).expect(0);
    assert_has(&deploy, "top-level in a background worker");
    assert_eq!(index(&mut c, "users_email_idx"), Some(true));
    let deploy = cli(&cluster, "postgres", &["deploy", dir_s]).expect(0);
    assert_has(&deploy, "migrate: nothing to deploy");
    let status = cli(&cluster, "postgres", &["status"]).expect(0);
    assert_has(&status, "drift_not_in_tool");
}

#[test]
fn prisma() {
    let Some(prisma) = tool("prisma") else { return };
    let (cluster, mut c) = start("adopt-prisma");
    let project = common::folder("adopt-prisma");
    std::os::unix::fs::symlink(
        node_tools().join("prisma6/node_modules"),
        project.join("node_modules"),
    )
    .unwrap();
    let dir = project.join("prisma/migrations");
    copy_fixture(&fixture("prisma"), &dir);
    std::fs::write(
        project.join("prisma/schema.prisma"),
        "datasource db {\n  provider = \"postgresql\"\n  url      = env(\"DATABASE_URL\")\n}\n",
    )
    .unwrap();
    // Prisma 6's WebAssembly schema engine through @prisma/adapter-pg (its native engine is a
    // download from Prisma's server). The adapter has no mapping for PostgreSQL's `name` type,
    // which the engine's own catalog queries return, so the pg client hands such columns over
    // as text: the one change to how Prisma runs.
    std::fs::write(
        project.join("prisma.config.ts"),
        r#"import { defineConfig } from 'prisma/config';
import { PrismaPg } from '@prisma/adapter-pg';
import pg from 'pg';
function nameAsText(res: any) {
  for (const r of Array.isArray(res) ? res : [res]) {
    for (const f of r?.fields ?? []) if (f.dataTypeID === 19) f.dataTypeID = 25;
  }
  return res;
}
class Client extends pg.Client {
  query(...args: any[]): any {
    const last = args[args.length - 1];
    if (typeof last === 'function') {
      args[args.length - 1] = (err: any, res: any) => last(err, err ? res : nameAsText(res));
      return (super.query as any)(...args);
    }
    const out = (super.query as any)(...args);
    return out && typeof out.then === 'function' ? out.then(nameAsText) : out;
  }
}
export default defineConfig({
  experimental: { adapter: true },
  engine: 'js',
  schema: 'prisma/schema.prisma',
  async adapter() {
    return new PrismaPg(new pg.Pool({ connectionString: process.env.DATABASE_URL!, Client }));
  },
});
"#,
    )
    .unwrap();
    std::fs::write(project.join("no-engine"), "").unwrap();
    let prisma_cmd = |db: &str, args: &[&str]| {
        let mut cmd = Command::new(&prisma);
        cmd.current_dir(&project)
            .args(args)
            .env("DATABASE_URL", db_url(&cluster, db))
            .env("PRISMA_QUERY_ENGINE_LIBRARY", project.join("no-engine"))
            .env("PRISMA_SCHEMA_ENGINE_BINARY", "/bin/false")
            .env("PRISMA_HIDE_UPDATE_MESSAGE", "1")
            .env("CHECKPOINT_DISABLE", "1");
        for var in ["PGHOST", "PGPORT", "PGUSER", "PGDATABASE"] {
            cmd.env_remove(var);
        }
        output(cmd)
    };
    let migrate = |db: &str| prisma_cmd(db, &["migrate", "deploy"]);

    // A migration.sql edited after Prisma applied it: its checksum is not the one stored.
    let mut other = database(&cluster, "mismatch");
    migrate("mismatch").expect(0);
    let first = dir.join("20261201234814_create_users/migration.sql");
    let text = std::fs::read_to_string(&first).unwrap();
    std::fs::write(&first, format!("{text}-- edited\n")).unwrap();
    refused(
        &cluster,
        "mismatch",
        &mut other,
        "prisma",
        &dir,
        "checksum (SHA-256)",
    );
    std::fs::write(&first, text).unwrap();

    migrate("postgres").expect(0);
    fill_users(&mut c);
    let up = new_migration(&dir, "add users email index");
    let name = up
        .parent()
        .and_then(Path::file_name)
        .and_then(|n| n.to_str())
        .unwrap()
        .to_string();
    std::fs::write(&up, BLOCKING).unwrap();
    blocked(migrate("postgres"), &cluster, &mut c);
    // Prisma recorded the failed migration and refuses to go on until it is resolved:
    // `prisma migrate resolve --rolled-back NAME` sets its rolled_back_at (that command needs
    // the native schema engine, so its one UPDATE is made here).
    assert_has(&migrate("postgres"), "P3009");
    c.execute(
        "UPDATE _prisma_migrations SET rolled_back_at = now() \
         WHERE migration_name = $1 AND finished_at IS NULL AND rolled_back_at IS NULL",
        &[&name],
    )
    .unwrap();
    // One statement alone in migration.sql runs outside a transaction.
    std::fs::write(&up, SAFE).unwrap();
    migrate("postgres").expect(0);
    assert_eq!(index(&mut c, "users_email_idx"), Some(true));
    adopt_then_deploy(&cluster, &mut c, "prisma", &dir, 3);
}

/// CRC-32 of `text`'s lines without their terminators (Flyway's checksum), bit by bit.
fn flyway_crc(text: &str) -> i32 {
    let mut crc = !0u32;
    for &b in text
        .as_bytes()
        .iter()
        .filter(|&&b| b != b'\n' && b != b'\r')
    {
        crc ^= u32::from(b);
        for _ in 0..8 {
            crc = if crc & 1 == 1 {
                (crc >> 1) ^ 0xEDB8_8320
            } else {
                crc >> 1
            };
        }
    }
    (!crc) as i32
}

#[test]
fn golang_migrate_table_as_its_source_writes_it() {
    let (cluster, mut c) = start("adopt-golang");
    let dir = common::folder("adopt-golang").join("migrations");
    copy_fixture(&fixture("golang_migrate"), &dir);
    // golang-migrate's postgres driver: ensureVersionTable, then per migration SetVersion(v,
    // true), the file as one simple query, SetVersion(v, false) (a TRUNCATE and an INSERT).
    c.batch_execute(
        "CREATE TABLE IF NOT EXISTS \"public\".\"schema_migrations\" (version bigint not null primary key, dirty boolean not null)",
    )
    .unwrap();
    let mut files: Vec<_> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .filter(|f| f.ends_with(".up.sql"))
        .collect();
    files.sort();
    for file in &files {
        let version: i64 = file[..6].parse().unwrap();
        c.execute("TRUNCATE \"public\".\"schema_migrations\"", &[])
            .unwrap();
        c.execute(
            "INSERT INTO \"public\".\"schema_migrations\" (version, dirty) VALUES ($1, $2)",
            &[&version, &true],
        )
        .unwrap();
        if version == 3 {
            // Stop half-way through 3, as a failed migration leaves it: dirty.
            break;
        }
        c.batch_execute(&std::fs::read_to_string(dir.join(file)).unwrap())
            .unwrap();
        c.execute("TRUNCATE \"public\".\"schema_migrations\"", &[])
            .unwrap();
        c.execute(
            "INSERT INTO \"public\".\"schema_migrations\" (version, dirty) VALUES ($1, $2)",
            &[&version, &false],
        )
        .unwrap();
    }
    refused(
        &cluster,
        "postgres",
        &mut c,
        "golang-migrate",
        &dir,
        "migrate force",
    );
    // `migrate force 2`, then golang-migrate runs 3 and 10.
    c.batch_execute("TRUNCATE schema_migrations; INSERT INTO schema_migrations VALUES (2, false)")
        .unwrap();
    for file in &files[2..] {
        c.batch_execute(&std::fs::read_to_string(dir.join(file)).unwrap())
            .unwrap();
    }
    c.batch_execute("TRUNCATE schema_migrations; INSERT INTO schema_migrations VALUES (10, false)")
        .unwrap();
    adopt_then_deploy(&cluster, &mut c, "golang-migrate", &dir, 4);
}

#[test]
fn flyway_table_as_its_source_writes_it() {
    let (cluster, mut c) = start("adopt-flyway");
    let dir = common::folder("adopt-flyway").join("sql");
    copy_fixture(&fixture("flyway"), &dir);
    // Flyway's PostgreSQL createMetaDataTable.sql.
    c.batch_execute(
        r#"CREATE TABLE "public"."flyway_schema_history" (
    "installed_rank" INT NOT NULL,
    "version" VARCHAR(50),
    "description" VARCHAR(200) NOT NULL,
    "type" VARCHAR(20) NOT NULL,
    "script" VARCHAR(1000) NOT NULL,
    "checksum" INTEGER,
    "installed_by" VARCHAR(100) NOT NULL,
    "installed_on" TIMESTAMP NOT NULL DEFAULT now(),
    "execution_time" INTEGER NOT NULL,
    "success" BOOLEAN NOT NULL
);
ALTER TABLE "public"."flyway_schema_history" ADD CONSTRAINT "flyway_schema_history_pk" PRIMARY KEY ("installed_rank");
CREATE INDEX "flyway_schema_history_s_idx" ON "public"."flyway_schema_history" ("success");"#,
    )
    .unwrap();
    // Flyway's order: versioned by version, then repeatables by description. The concurrent
    // index runs outside a transaction, as Flyway runs it.
    let runs = [
        ("1", "Create users", "V1__Create_users.sql"),
        ("1.1", "Add posts", "V1.1__Add_posts.sql"),
        (
            "1.2",
            "Index posts user id",
            "V1_2__Index_posts_user_id.sql",
        ),
        ("2", "Add users name", "release_2/V2__Add_users_name.sql"),
        ("", "Post count function", "R__Post_count_function.sql"),
        ("", "User post counts", "R__User_post_counts.sql"),
    ];
    for (rank, (version, description, script)) in runs.iter().enumerate() {
        let text = std::fs::read_to_string(dir.join(script)).unwrap();
        c.batch_execute(&text).unwrap();
        let version = (!version.is_empty()).then_some(*version);
        c.execute(
            "INSERT INTO flyway_schema_history (installed_rank, version, description, type, script, checksum, installed_by, execution_time, success)
             VALUES ($1, $2, $3, 'SQL', $4, $5, 'postgres', 3, true)",
            &[&(rank as i32 + 1), &version, description, script, &flyway_crc(&text)],
        )
        .unwrap();
    }
    adopt_then_deploy(&cluster, &mut c, "flyway", &dir, 6);
}
