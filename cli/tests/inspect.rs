//! `status`, `plan`, `verify`, `lint` and `jobs` with `--format json` / `github`, and `wait` on
//! a backfill, on a real server.

mod common;

use std::time::{Duration, Instant};

use common::{cli, folder, path, start, states, write};

#[test]
fn status_plan_and_verify() {
    let (cluster, mut c) = start("inspect");
    let dir = folder("inspect");
    write(
        &dir,
        &[
            (
                "1_a.up.sql",
                "CREATE TABLE a (id int PRIMARY KEY, n int);\nINSERT INTO a SELECT g, g FROM generate_series(1, 100) g;\n",
            ),
            ("1_a.down.sql", "DROP TABLE a;\n"),
            // Its down script forgets the index: verify reports it.
            ("2_idx.up.sql", "CREATE INDEX a_n ON a (n);\n"),
            ("2_idx.down.sql", "SELECT 1;\n"),
        ],
    );
    let plan = cli(&cluster, &["plan", path(&dir), "--format", "json"]).expect(0);
    let rows = plan.json();
    let rows = rows.as_array().unwrap();
    assert_eq!(rows.len(), 3, "{}", plan.stdout);
    assert_eq!(rows[0]["version"], "1");
    assert_eq!(rows[0]["direction"], "up");
    assert_eq!(rows[2]["sql"], "CREATE INDEX a_n ON a (n)");
    assert!(rows[1]["locks"].is_array() && rows[0]["error"].is_null());
    // The dry runs leave nothing registered.
    assert!(states(&mut c).is_empty());
    let table = cli(&cluster, &["plan", path(&dir), "--to", "1"]).expect(0);
    assert!(
        table
            .stdout
            .starts_with("version | direction | statement |"),
        "{}",
        table.stdout
    );
    assert!(table.stdout.ends_with("(2 rows)\n"), "{}", table.stdout);

    let verify = cli(&cluster, &["verify", path(&dir), "--format", "json"]).expect(1);
    let rows = verify.json();
    assert!(
        rows.as_array()
            .unwrap()
            .iter()
            .any(|r| r["version"] == "2" && r["ok"] == false),
        "{}",
        verify.stdout
    );
    assert!(verify.stderr.contains("does not undo"), "{}", verify.stderr);
    let one = cli(
        &cluster,
        &["verify", path(&dir), "--migration", "1", "--format", "json"],
    )
    .expect(0);
    assert_eq!(one.json()[0]["ok"], true);
    assert!(states(&mut c).is_empty());

    cli(&cluster, &["load", path(&dir)]).expect(0);
    let status = cli(&cluster, &["status", "--format", "json"]).expect(0);
    let rows = status.json();
    assert_eq!(rows[1]["version"], "2");
    assert_eq!(rows[1]["state"], "pending");
    assert_eq!(rows[1]["checksum_ok"], true);
    // Keys in the SQL columns' order.
    assert!(
        status
            .stdout
            .contains("{\"version\": \"1\", \"name\": \"a\", \"state\": \"pending\""),
        "{}",
        status.stdout
    );
    let table = cli(&cluster, &["status"]).expect(0);
    assert!(
        table.stdout.starts_with("version | name | state   |"),
        "{}",
        table.stdout
    );
    let jobs = cli(&cluster, &["jobs", "--format", "json"]).expect(0);
    assert_eq!(jobs.stdout, "[]\n");

    // A folder the registry refuses: no plan, and stdout stays empty for the JSON reader.
    write(&dir, &[("3_bad.up.sql", "SELEC 1;\n")]);
    let refused = cli(&cluster, &["plan", path(&dir), "--format", "json"]).expect(1);
    assert_eq!(refused.stdout, "");
    assert!(
        refused.stderr.contains("refused   3  bad"),
        "{}",
        refused.stderr
    );
    assert!(
        refused.stderr.contains("3_bad.up.sql:1: ERROR 42601"),
        "{}",
        refused.stderr
    );
}

#[test]
fn lint_places_findings_at_their_lines() {
    let (cluster, mut c) = start("lint");
    c.batch_execute(
        "CREATE TABLE big (id int PRIMARY KEY, n int);
         INSERT INTO big SELECT g, g FROM generate_series(1, 20000) g;
         ANALYZE big;",
    )
    .unwrap();
    let dir = folder("lint");
    write(
        &dir,
        &[("1_small.up.sql", "CREATE TABLE small (id int);\n")],
    );
    cli(&cluster, &["deploy", path(&dir)]).expect(0);
    let clean = cli(&cluster, &["lint", path(&dir)]).expect(0);
    assert!(clean.stdout.ends_with("(0 rows)\n"), "{}", clean.stdout);
    write(
        &dir,
        &[
            (
                "2_index.up.sql",
                "-- index it\nALTER TABLE big ADD COLUMN note text;\n\nCREATE INDEX big_n ON big (n);\n",
            ),
            (
                "3_concurrent.up.sql",
                "-- migrate:no-transaction\nCREATE INDEX CONCURRENTLY big_n2 ON big (n);\n",
            ),
            ("4_typo.up.sql", "SELECT 1;\nSELEC 2;\n"),
        ],
    );
    let github = cli(&cluster, &["lint", path(&dir), "--format", "github"]).expect(1);
    let index = format!(
        "::error file={},line=4,title=migrate%3A index_not_concurrent::CREATE INDEX on public.big",
        dir.join("2_index.up.sql").display()
    );
    assert!(github.stdout.contains(&index), "{}", github.stdout);
    let typo = format!(
        "::error file={},line=2,title=migrate%3A sqlstate_42601::the SQL does not parse",
        dir.join("4_typo.up.sql").display()
    );
    assert!(github.stdout.contains(&typo), "{}", github.stdout);
    assert!(!github.stdout.contains("3_concurrent"), "{}", github.stdout);
    assert!(github.stderr.contains("2 blocking"), "{}", github.stderr);

    let json = cli(&cluster, &["lint", path(&dir), "--format", "json"]).expect(1);
    let rows = json.json();
    assert_eq!(rows[0]["version"], "2");
    assert_eq!(rows[0]["statement"], 2);
    assert_eq!(rows[0]["line"], 4);
    assert_eq!(rows[0]["severity"], "block");
    assert_eq!(rows[0]["table_name"], "public.big");

    // An applied migration whose file changed since is a blocking finding too.
    write(
        &dir,
        &[("1_small.up.sql", "CREATE TABLE small (id bigint);\n")],
    );
    std::fs::remove_file(dir.join("2_index.up.sql")).unwrap();
    std::fs::remove_file(dir.join("4_typo.up.sql")).unwrap();
    let changed = cli(&cluster, &["lint", path(&dir), "--format", "json"]).expect(1);
    assert_eq!(changed.json()[0]["rule"], "applied_changed");
}

/// Polls `migrate.jobs` until the job has done some rows.
fn wait_for_progress(c: &mut common::Client, id: i64) {
    let deadline = Instant::now() + Duration::from_secs(30);
    while Instant::now() < deadline {
        let done: i64 = c
            .query_one("SELECT rows_done FROM migrate.jobs WHERE id = $1", &[&id])
            .unwrap()
            .get(0);
        if done > 0 {
            return;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    panic!("job {id} made no progress");
}

#[test]
fn wait_follows_a_backfill() {
    let (cluster, mut c) = start("wait");
    c.batch_execute(
        "CREATE ROLE app LOGIN;
         CREATE TABLE t (id int PRIMARY KEY, n int NOT NULL DEFAULT 0);
         INSERT INTO t (id) SELECT g FROM generate_series(1, 100000) g;
         ALTER TABLE t OWNER TO app;
         ANALYZE t;",
    )
    .unwrap();
    let mut app = cluster.connect_as("postgres", "app");
    let backfill = "SELECT migrate.backfill('t', 'n = n + 1', NULL, 2000, '20 ms')";
    let id: i64 = app.query_one(backfill, &[]).unwrap().get(0);
    let run = cli(&cluster, &["wait", &id.to_string()]).expect(0);
    // stdout is not a terminal: plain lines while it runs, then how it ended.
    let lines: Vec<&str> = run
        .stdout
        .lines()
        .filter(|l| l.starts_with("job 1 "))
        .collect();
    assert!(lines.len() >= 2, "{}", run.stdout);
    assert!(
        lines[0].contains("queued") || lines[0].contains("running"),
        "{}",
        run.stdout
    );
    assert!(
        run.stdout.contains(&format!(
            "job {id} (backfill public.t): succeeded, 100.0% (100000 of about"
        )),
        "{}",
        run.stdout
    );
    let jobs = cli(&cluster, &["jobs", "--format", "json"]).expect(0);
    assert_eq!(jobs.json()[0]["state"], "succeeded");
    assert_eq!(jobs.json()[0]["rows_done"], 100000);

    // A cancelled job: exit 1 with wait_job's SQLSTATE.
    let id: i64 = app.query_one(backfill, &[]).unwrap().get(0);
    let waiter = {
        let url = common::url(&cluster);
        std::thread::spawn(move || {
            let mut c = common::command(&["wait", &id.to_string()]);
            c.env("DATABASE_URL", url);
            common::output(c)
        })
    };
    wait_for_progress(&mut c, id);
    c.execute("SELECT migrate.cancel_job($1)", &[&id]).unwrap();
    let run = waiter.join().unwrap().expect(1);
    assert!(
        run.stderr
            .contains("ERROR 57014: migrate.wait_job: job 2 was cancelled"),
        "{}",
        run.stderr
    );
    assert!(
        run.stdout.contains("job 2 (backfill public.t): cancelled"),
        "{}",
        run.stdout
    );

    let missing = cli(&cluster, &["wait", "99"]).expect(1);
    assert!(missing.stderr.contains("42704"), "{}", missing.stderr);
}
