//! The adversarial cases that need a restart, a worker or a second session (the rest are in
//! pg_test/sql/adversarial.sql; docs/SECURITY.md explains the model): a planted job queue never
//! runs after a restart, no role can squat a job's lock or take every worker slot, and a deploy
//! whose worker died stops waiting and can be resumed.

use std::time::{Duration, Instant};

use migrate_system_tests::{Client, Cluster, NoTls};

/// The public advisory key a job's worker used to hold, (0x6d6a6f62, job id).
const OLD_JOB_LOCK_KEY: i32 = 0x6d6a_6f62;

fn is_superuser(c: &mut Client, role: &str) -> bool {
    c.query_one("SELECT rolsuper FROM pg_roles WHERE rolname = $1", &[&role])
        .unwrap()
        .get(0)
}

/// A malicious job row: a "migration" that makes `dbowner` superuser, claiming to be run by the
/// bootstrap superuser, marked running so the recovery sweep at server start would resume it.
const PLANTED_JOB: &str = "INSERT INTO migrate.job_queue (id, kind, version, direction, script, search_path, \
     current_batch_size, owner_oid, owner_name, state) \
     VALUES (1, 'migration', '1', 'up', 'ALTER ROLE dbowner SUPERUSER', 'public', 1, 10, 'postgres', 'running')";

#[test]
fn planted_queue_rows_are_never_run_by_the_workers_started_at_server_start() {
    let cluster = Cluster::start("adv-planted", &["shared_preload_libraries = 'migrate'"]);
    let mut admin = cluster.connect("postgres");
    for sql in [
        "CREATE ROLE dbowner LOGIN",
        "CREATE DATABASE detached OWNER dbowner",
        "CREATE DATABASE handed_over OWNER dbowner",
    ] {
        admin.batch_execute(sql).unwrap();
    }
    // The queue table is no longer the extension's own (as if it had been put there by hand).
    let mut detached = cluster.connect("detached");
    detached
        .batch_execute(
            "CREATE EXTENSION migrate; ALTER EXTENSION migrate DROP TABLE migrate.job_queue;",
        )
        .unwrap();
    detached.batch_execute(PLANTED_JOB).unwrap();
    // The queue table still belongs to the extension, but to an ordinary role.
    let mut handed = cluster.connect("handed_over");
    handed
        .batch_execute("CREATE EXTENSION migrate; ALTER TABLE migrate.job_queue OWNER TO dbowner;")
        .unwrap();
    let mut as_owner = cluster.connect_as("handed_over", "dbowner");
    as_owner.batch_execute(PLANTED_JOB).unwrap();
    drop((detached, handed, as_owner, admin));

    // The launcher starts a recovery worker per database at server start.
    cluster.restart("fast");
    std::thread::sleep(Duration::from_secs(5));
    let mut admin = cluster.connect_retry("postgres", Duration::from_secs(30));
    assert!(!is_superuser(&mut admin, "dbowner"), "{}", cluster.log());
    for db in ["detached", "handed_over"] {
        let mut c = cluster.connect(db);
        let state: String = c
            .query_one("SELECT state FROM migrate.job_queue", &[])
            .unwrap()
            .get(0);
        assert_eq!(state, "running", "the planted row in {db} was never taken");
    }
    assert!(
        !cluster.log().contains("ALTER ROLE dbowner"),
        "{}",
        cluster.log()
    );
}

#[test]
fn no_role_can_hold_a_jobs_lock_or_keep_other_roles_jobs_from_a_worker() {
    let cluster = Cluster::start("adv-squat", &[]);
    let mut admin = cluster.connect("postgres");
    admin
        .batch_execute(
            "CREATE EXTENSION migrate;
             CREATE ROLE app LOGIN;
             CREATE ROLE mallory LOGIN;
             CREATE TABLE t (id int PRIMARY KEY, n int NOT NULL DEFAULT 0);
             INSERT INTO t SELECT g FROM generate_series(1, 2000) g;
             ALTER TABLE t OWNER TO app;
             CREATE TABLE m (id int PRIMARY KEY, n int NOT NULL DEFAULT 0);
             INSERT INTO m SELECT g FROM generate_series(1, 1000) g;
             ALTER TABLE m OWNER TO mallory;",
        )
        .unwrap();
    // Job ids come from a sequence: the next one is easy to guess. The old public key of its
    // lock means nothing now.
    let next: i64 = admin
        .query_one(
            "SELECT last_value + CASE WHEN is_called THEN 1 ELSE 0 END FROM migrate.job_id_seq",
            &[],
        )
        .unwrap()
        .get(0);
    let mut mallory = cluster.connect_as("postgres", "mallory");
    mallory
        .execute(
            "SELECT pg_advisory_lock($1, $2::int)",
            &[&OLD_JOB_LOCK_KEY, &(next as i32 + 4)],
        )
        .unwrap();
    // Mallory's backfills fill worker slots: one batch of one row an hour.
    for _ in 0..4 {
        mallory
            .batch_execute(
                "SELECT migrate.backfill('m', 'n = n + 1', batch_size => 1, pause => '1 hour')",
            )
            .unwrap();
    }
    std::thread::sleep(Duration::from_secs(2));
    let running: i64 = admin
        .query_one(
            "SELECT count(*) FROM migrate.jobs WHERE owner = 'mallory' AND worker_pid IS NOT NULL",
            &[],
        )
        .unwrap()
        .get(0);
    assert_eq!(running, 3, "one role gets all worker slots but one");

    let mut app = cluster.connect_as("postgres", "app");
    let id: i64 = app
        .query_one("SELECT migrate.backfill('t', 'n = n + 1')", &[])
        .unwrap()
        .get(0);
    assert_eq!(id, next + 4);
    app.batch_execute(&format!("CALL migrate.wait_job({id}, '60 s')"))
        .unwrap();
    let (rows, ones): (i64, i64) = {
        let r = admin
            .query_one("SELECT count(*), count(*) FILTER (WHERE n = 1) FROM t", &[])
            .unwrap();
        (r.get(0), r.get(1))
    };
    assert_eq!((rows, ones), (2000, 2000), "every row exactly once");
    mallory
        .batch_execute("SELECT migrate.cancel_job(id) FROM migrate.jobs WHERE owner = 'mallory'")
        .unwrap();
}

#[test]
fn a_deploy_whose_worker_died_stops_waiting_and_resume_job_finishes_it() {
    let cluster = Cluster::start("adv-dead-worker", &[]);
    let mut admin = cluster.connect("postgres");
    // Slow until the marker table exists, so the resumed run is quick.
    admin
        .batch_execute(
            "CREATE EXTENSION migrate;
             SELECT migrate.add('1', E'-- migrate:no-transaction\\n\
                SELECT pg_sleep(CASE WHEN to_regclass(''public.marker'') IS NULL THEN 120 ELSE 0 END);');",
        )
        .unwrap();
    let port = cluster.port;
    let deploy = std::thread::spawn(move || {
        let mut c = Client::connect(
            &format!("host=127.0.0.1 port={port} user=postgres dbname=postgres"),
            NoTls,
        )
        .unwrap();
        let started = Instant::now();
        let result = c.batch_execute("CALL migrate.deploy()");
        let result = result.map_err(|e| {
            e.as_db_error()
                .map_or_else(|| e.to_string(), |d| d.message().to_string())
        });
        (result, started.elapsed())
    });
    let deadline = Instant::now() + Duration::from_secs(30);
    let (id, pid) = loop {
        let row = admin
            .query_opt(
                "SELECT id, worker_pid FROM migrate.jobs WHERE kind = 'migration' AND worker_pid IS NOT NULL",
                &[],
            )
            .unwrap();
        if let Some(row) = row {
            break (row.get::<_, i64>(0), row.get::<_, i32>(1));
        }
        assert!(
            Instant::now() < deadline,
            "the migration's worker never started"
        );
        std::thread::sleep(Duration::from_millis(100));
    };
    let killed_at = Instant::now();
    admin
        .execute("SELECT pg_terminate_backend($1)", &[&pid])
        .unwrap();
    let (result, _) = deploy.join().unwrap();
    let waited = killed_at.elapsed();
    let error = result.expect_err("deploy reports the dead worker");
    assert!(error.contains("no worker runs it"), "{error}");
    assert!(waited < Duration::from_secs(40), "deploy waited {waited:?}");

    admin.batch_execute("CREATE TABLE marker ()").unwrap();
    admin
        .execute("SELECT migrate.resume_job($1)", &[&id])
        .unwrap();
    admin
        .batch_execute(&format!("CALL migrate.wait_job({id}, '60 s')"))
        .unwrap();
    let state: String = admin
        .query_one(
            "SELECT state FROM migrate.status() WHERE version = '1'",
            &[],
        )
        .unwrap()
        .get(0);
    assert_eq!(state, "applied");
}
