//! `migrate-cli deploy` on a real server: a `-- migrate:no-transaction` concurrent index built
//! by the job worker with its progress lines, `--to` back down through the down scripts, and a
//! failed step reported at the file and line of its statement.

mod common;

use common::{cli, folder, path, start, states, write};

fn applied(c: &mut common::Client) -> Vec<String> {
    states(c)
        .into_iter()
        .filter(|(_, s)| s == "applied")
        .map(|(v, _)| v)
        .collect()
}

#[test]
fn deploy_forward_through_a_worker_step_and_back() {
    let (cluster, mut c) = start("deploy");
    let dir = folder("deploy");
    write(
        &dir,
        &[
            (
                "1_table.up.sql",
                "CREATE TABLE t (id bigserial PRIMARY KEY, email text);\n\
                 INSERT INTO t (email) SELECT 'u' || g FROM generate_series(1, 20000) g;\n\
                 CREATE TABLE seen AS SELECT current_setting('application_name') AS app;\n",
            ),
            ("1_table.down.sql", "DROP TABLE seen;\nDROP TABLE t;\n"),
            (
                "2_index.up.sql",
                "-- migrate:no-transaction\nCREATE INDEX CONCURRENTLY t_email ON t (email);\n",
            ),
            (
                "2_index.down.sql",
                "-- migrate:no-transaction\nDROP INDEX CONCURRENTLY t_email;\n",
            ),
            ("3_note.up.sql", "ALTER TABLE t ADD COLUMN note text;\n"),
            ("3_note.down.sql", "ALTER TABLE t DROP COLUMN note;\n"),
        ],
    );
    let run = cli(&cluster, &["deploy", path(&dir)]).expect(0);
    for line in [
        "added     2  index",
        "migrate: applying 1 (table)",
        "migrate: applying 2 (index) top-level in a background worker",
        "migrate: job 1 runs its 1 statement(s)",
        "job 1 (migration 2 (up)): succeeded",
        "migrate: applied 3",
    ] {
        assert!(run.stdout.contains(line), "no {line:?} in\n{}", run.stdout);
    }
    assert_eq!(applied(&mut c), ["1", "2", "3"]);
    let valid: bool = c
        .query_one(
            "SELECT indisvalid FROM pg_index WHERE indexrelid = 't_email'::regclass",
            &[],
        )
        .unwrap()
        .get(0);
    assert!(valid);
    let app: String = c.query_one("SELECT app FROM seen", &[]).unwrap().get(0);
    assert_eq!(app, "migrate-cli");

    // An applied migration's down script can still change: amended, nothing to deploy.
    write(
        &dir,
        &[(
            "3_note.down.sql",
            "ALTER TABLE t DROP COLUMN IF EXISTS note;\n",
        )],
    );
    let run = cli(&cluster, &["deploy", path(&dir)]).expect(0);
    assert!(run.stdout.contains("amended   3  note\n"), "{}", run.stdout);
    assert!(
        run.stdout.contains("migrate: nothing to deploy"),
        "{}",
        run.stdout
    );

    // Back to 1: the down scripts, newest first, the index dropped by the worker.
    let run = cli(&cluster, &["deploy", path(&dir), "--to", "1"]).expect(0);
    assert!(
        run.stdout.contains("job 2 (migration 2 (down)): succeeded"),
        "{}",
        run.stdout
    );
    assert_eq!(applied(&mut c), ["1"]);
    let gone: bool = c
        .query_one("SELECT to_regclass('t_email') IS NULL", &[])
        .unwrap()
        .get(0);
    assert!(gone);
}

#[test]
fn a_failed_step_points_at_its_file_and_line() {
    let (cluster, mut c) = start("deploy-fail");
    let dir = folder("deploy-fail");
    write(
        &dir,
        &[
            (
                "1_table.up.sql",
                "CREATE TABLE t (id int PRIMARY KEY, n int);\n\
                 INSERT INTO t SELECT g, g FROM generate_series(1, 20000) g;\n",
            ),
            // The guard blocks the plain index build on a table of 20,000 rows.
            (
                "2_index.up.sql",
                "ALTER TABLE t ADD COLUMN x int;\n\n-- the index\nCREATE INDEX t_x ON t (x);\n",
            ),
        ],
    );
    let run = cli(&cluster, &["deploy", path(&dir)]).expect(1);
    let at = format!(
        "{}:4: ERROR 09000: migration 2 failed (up)",
        dir.join("2_index.up.sql").display()
    );
    assert!(run.stderr.contains(&at), "{}", run.stderr);
    assert!(run.stderr.contains("HINT:"), "{}", run.stderr);
    assert_eq!(applied(&mut c), ["1"]);
}

#[test]
fn ctrl_c_cancels_the_step_in_flight() {
    let (cluster, mut c) = start("deploy-cancel");
    let dir = folder("deploy-cancel");
    write(
        &dir,
        &[(
            "1_slow.up.sql",
            "CREATE TABLE t (id int);\nSELECT pg_sleep(60);\n",
        )],
    );
    let mut deploy = common::command(&["deploy", path(&dir)]);
    deploy.env("DATABASE_URL", common::url(&cluster));
    deploy.stdout(std::process::Stdio::piped());
    deploy.stderr(std::process::Stdio::piped());
    let child = deploy.spawn().unwrap();
    // Wait until the step is sleeping, then interrupt the client as Ctrl-C would.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    loop {
        let sleeping: bool = c
            .query_one(
                "SELECT count(*) > 0 FROM pg_stat_activity WHERE query LIKE 'CALL migrate.deploy%' AND wait_event = 'PgSleep'",
                &[],
            )
            .unwrap()
            .get(0);
        if sleeping {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "the deploy never reached its sleep"
        );
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    let started = std::time::Instant::now();
    let killed = std::process::Command::new("kill")
        .args(["-INT", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(killed.success());
    let out = child.wait_with_output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(stderr.contains("57014"), "{stderr}");
    assert!(started.elapsed() < std::time::Duration::from_secs(20));
    assert_eq!(states(&mut c), [("1".into(), "pending".into())]);
}
