//! Backfill jobs on real servers: exactly once per row through `kill -9` of the worker (crash
//! recovery) and immediate-mode restarts, SIGTERM, pause/resume/cancel, waiting without
//! blocking a concurrent index build, privileges, worker exhaustion, and several workers on
//! one job.

use std::process::Command;
use std::time::{Duration, Instant};

use migrate_system_tests::{Client, Cluster};

struct Job {
    state: String,
    rows_done: i64,
    worker_pid: Option<i32>,
    error: Option<String>,
}

fn job(c: &mut Client, id: i64) -> Job {
    let row = c
        .query_one(
            "SELECT state, rows_done, worker_pid, error FROM migrate.jobs WHERE id = $1",
            &[&id],
        )
        .unwrap();
    Job {
        state: row.get(0),
        rows_done: row.get(1),
        worker_pid: row.get(2),
        error: row.get(3),
    }
}

/// Polls the job until `done` holds, panicking after `timeout`.
fn wait_for(c: &mut Client, id: i64, timeout: Duration, done: impl Fn(&Job) -> bool) -> Job {
    let deadline = Instant::now() + timeout;
    loop {
        let j = job(c, id);
        if done(&j) {
            return j;
        }
        assert!(
            Instant::now() < deadline,
            "job {id} still {} with {} rows done (worker {:?}, error {:?})",
            j.state,
            j.rows_done,
            j.worker_pid,
            j.error
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// A table of `rows` rows with a counter, owned by a login role `app`.
fn counter_table(c: &mut Client, rows: i64) {
    c.batch_execute(&format!(
        "CREATE EXTENSION migrate;
         CREATE ROLE app LOGIN;
         CREATE TABLE t (id bigint PRIMARY KEY, n int NOT NULL DEFAULT 0, pad text);
         INSERT INTO t (id, pad) SELECT g, 'row ' || g FROM generate_series(1, {rows}) g;
         ALTER TABLE t OWNER TO app;
         ANALYZE t;"
    ))
    .unwrap();
}

fn queue_as_app(c: &mut Client, args: &str) -> i64 {
    c.batch_execute("SET ROLE app").unwrap();
    let id: i64 = c
        .query_one(&format!("SELECT migrate.backfill({args})"), &[])
        .unwrap()
        .get(0);
    c.batch_execute("RESET ROLE").unwrap();
    id
}

/// Every row updated exactly once: no row skipped (n = 0), none twice (n > 1).
fn assert_exactly_once(c: &mut Client, rows: i64) {
    let row = c
        .query_one(
            "SELECT count(*) FILTER (WHERE n = 1), count(*) FILTER (WHERE n <> 1), count(*) FROM t",
            &[],
        )
        .unwrap();
    let (once, other, total): (i64, i64, i64) = (row.get(0), row.get(1), row.get(2));
    assert_eq!(
        (once, other, total),
        (rows, 0, rows),
        "rows updated exactly once"
    );
}

/// Rows updated so far match the checkpoint: nothing outside a committed batch happened. One
/// statement, so one snapshot: a batch commits its rows and its checkpoint together, and workers
/// may still be running.
fn assert_checkpoint_matches_data(c: &mut Client, id: i64) {
    let row = c
        .query_one(
            "SELECT (SELECT rows_done FROM migrate.job_queue WHERE id = $1), \
                    count(*) FILTER (WHERE n = 1), count(*) FILTER (WHERE n > 1) FROM t",
            &[&id],
        )
        .unwrap();
    let (rows_done, updated, twice): (i64, i64, i64) = (row.get(0), row.get(1), row.get(2));
    assert_eq!(
        updated, rows_done,
        "rows updated = rows_done of the checkpoint"
    );
    assert_eq!(twice, 0);
}

fn kill9(pid: i32) {
    let status = Command::new("kill")
        .args(["-9", &pid.to_string()])
        .status()
        .unwrap();
    assert!(status.success());
}

/// After a `kill -9`, the postmaster resets every backend, this session's too: waits for that,
/// then connects again once crash recovery is done.
fn reconnect_after_crash(cluster: &Cluster, mut c: Client) -> Client {
    let deadline = Instant::now() + Duration::from_secs(30);
    while c.batch_execute("SELECT 1").is_ok() {
        assert!(
            Instant::now() < deadline,
            "the crash did not reset the server"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    cluster.connect_retry("postgres", Duration::from_secs(60))
}

#[test]
fn exactly_once_on_a_million_rows_through_kill_9_and_immediate_restarts() {
    const ROWS: i64 = 1_000_000;
    let cluster = Cluster::start("backfill-crash", &["shared_preload_libraries = 'migrate'"]);
    let mut c = cluster.connect("postgres");
    counter_table(&mut c, ROWS);
    let id = queue_as_app(
        &mut c,
        "'t', 'n = n + 1', batch_size => 10000, pause => '40 ms'",
    );

    let mut last_done = 0;
    // kill -9 of the worker: the postmaster resets every backend and recovers from WAL; the
    // launcher (shared_preload_libraries) then resumes the job from its checkpoint.
    for round in 0..3 {
        let j = wait_for(&mut c, id, Duration::from_secs(120), |j| {
            j.worker_pid.is_some() && j.rows_done > last_done
        });
        kill9(j.worker_pid.unwrap());
        c = reconnect_after_crash(&cluster, c);
        let j = wait_for(&mut c, id, Duration::from_secs(60), |j| {
            j.worker_pid.is_some() || j.state == "succeeded"
        });
        assert_ne!(
            j.state, "succeeded",
            "round {round}: job ended before the crash test did"
        );
        assert_checkpoint_matches_data(&mut c, id);
        last_done = j.rows_done;
    }
    // Immediate-mode restarts: no shutdown checkpoint, crash recovery at start.
    for _ in 0..2 {
        wait_for(&mut c, id, Duration::from_secs(60), |j| {
            j.worker_pid.is_some() && j.rows_done > last_done
        });
        cluster.restart("immediate");
        c = cluster.connect_retry("postgres", Duration::from_secs(60));
        assert_checkpoint_matches_data(&mut c, id);
        last_done = job(&mut c, id).rows_done;
    }
    assert!(last_done < ROWS, "the crashes happened mid-job");
    let j = wait_for(&mut c, id, Duration::from_secs(600), |j| {
        j.state != "running" && j.state != "queued"
    });
    assert_eq!(j.state, "succeeded", "{:?}\n{}", j.error, cluster.log());
    assert_eq!(j.rows_done, ROWS);
    assert_exactly_once(&mut c, ROWS);
    let resumed = cluster.log().matches("resuming 1 interrupted job").count();
    assert!(
        resumed >= 5,
        "the launcher resumed the job after each crash and restart ({resumed})"
    );
}

/// Workers walking the job's ranges right now, and the pids of its processes.
fn workers_of(c: &mut Client, id: i64) -> (i64, Vec<i32>) {
    let active: i64 = c
        .query_one(
            "SELECT active_workers FROM migrate.jobs WHERE id = $1",
            &[&id],
        )
        .unwrap()
        .get(0);
    let pids = c
        .query(
            "SELECT pid FROM pg_stat_activity WHERE application_name LIKE $1 ORDER BY pid",
            &[&format!("migrate job {id}: %")],
        )
        .unwrap()
        .iter()
        .map(|r| r.get(0))
        .collect();
    (active, pids)
}

/// The ranges' checkpoints add up to the job's.
fn assert_ranges_match_job(c: &mut Client, id: i64) {
    let row = c
        .query_one(
            "SELECT (SELECT sum(rows_done)::bigint FROM migrate.job_ranges WHERE job_id = $1), \
                    (SELECT rows_done FROM migrate.job_queue WHERE id = $1)",
            &[&id],
        )
        .unwrap();
    let (ranges, job): (i64, i64) = (row.get(0), row.get(1));
    assert_eq!(
        ranges, job,
        "rows done by the ranges = rows done by the job"
    );
}

#[test]
fn several_workers_walk_disjoint_ranges_exactly_once_through_kill_9_and_pause() {
    const ROWS: i64 = 400_000;
    let cluster = Cluster::start(
        "backfill-parallel",
        &["shared_preload_libraries = 'migrate'"],
    );
    let mut c = cluster.connect("postgres");
    counter_table(&mut c, ROWS);
    let id = queue_as_app(
        &mut c,
        "'t', 'n = n + 1', batch_size => 3000, pause => '20 ms', workers => 3",
    );
    // Ranges are created when the job starts; wait for the three workers to hold one each.
    let deadline = Instant::now() + Duration::from_secs(60);
    let pids = loop {
        let (active, pids) = workers_of(&mut c, id);
        if active == 3 && pids.len() == 3 {
            break pids;
        }
        assert!(
            Instant::now() < deadline,
            "{active} workers active, pids {pids:?}"
        );
        std::thread::sleep(Duration::from_millis(50));
    };
    let ranges: i64 = c
        .query_one(
            "SELECT count(*) FROM migrate.job_ranges WHERE job_id = $1",
            &[&id],
        )
        .unwrap()
        .get(0);
    assert_eq!(ranges, 12, "4 ranges per worker on a table of 400,000 rows");

    // kill -9 of a helper: crash recovery, the launcher resumes the job with all its workers.
    let helper: i32 = c
        .query_one(
            "SELECT pid FROM pg_stat_activity WHERE application_name = $1 LIMIT 1",
            &[&format!("migrate job {id}: backfill public.t (helper)")],
        )
        .unwrap()
        .get(0);
    assert!(pids.contains(&helper));
    kill9(helper);
    c = reconnect_after_crash(&cluster, c);
    assert_checkpoint_matches_data(&mut c, id);
    assert_ranges_match_job(&mut c, id);
    let before = job(&mut c, id).rows_done;
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let (active, _) = workers_of(&mut c, id);
        if active == 3 && job(&mut c, id).rows_done > before {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "{active} workers after the crash"
        );
        std::thread::sleep(Duration::from_millis(50));
    }

    // Pause waits for every worker's batch in flight; then nothing moves.
    c.execute("SELECT migrate.pause_job($1)", &[&id]).unwrap();
    let paused = job(&mut c, id);
    assert_eq!(paused.state, "paused");
    assert_checkpoint_matches_data(&mut c, id);
    wait_for(&mut c, id, Duration::from_secs(10), |j| {
        j.worker_pid.is_none()
    });
    std::thread::sleep(Duration::from_millis(300));
    assert_eq!(
        job(&mut c, id).rows_done,
        paused.rows_done,
        "nothing moves while paused"
    );
    assert_eq!(workers_of(&mut c, id), (0, vec![]));
    assert!(paused.rows_done < ROWS, "paused mid-job");

    c.execute("SELECT migrate.resume_job($1)", &[&id]).unwrap();
    let j = wait_for(&mut c, id, Duration::from_secs(300), |j| {
        j.state != "running" && j.state != "queued"
    });
    assert_eq!(j.state, "succeeded", "{:?}\n{}", j.error, cluster.log());
    assert_eq!(j.rows_done, ROWS);
    assert_exactly_once(&mut c, ROWS);
    assert_ranges_match_job(&mut c, id);
    let undone: i64 = c
        .query_one(
            "SELECT count(*) FROM migrate.job_ranges WHERE job_id = $1 AND NOT done",
            &[&id],
        )
        .unwrap()
        .get(0);
    assert_eq!(undone, 0);
}

#[test]
fn pause_is_not_starved_by_back_to_back_batches_of_two_workers() {
    const ROWS: i64 = 300_000;
    let cluster = Cluster::start("backfill-pause-busy", &[]);
    let mut c = cluster.connect("postgres");
    counter_table(&mut c, ROWS);
    // Tiny batches with no pause: one worker's next batch always starts while the other's runs,
    // so a pause that only waited for the batches it saw could wait until the job ends.
    let id = queue_as_app(&mut c, "'t', 'n = n + 1', batch_size => 200, workers => 2");
    wait_for(&mut c, id, Duration::from_secs(30), |j| j.rows_done > 2000);
    c.batch_execute("SET statement_timeout = '10s'").unwrap();
    let asked = Instant::now();
    c.execute("SELECT migrate.pause_job($1)", &[&id])
        .unwrap_or_else(|e| panic!("{e:?}"));
    let took = asked.elapsed();
    c.batch_execute("RESET statement_timeout").unwrap();
    assert!(took < Duration::from_secs(2), "pause_job took {took:?}");
    let paused = job(&mut c, id);
    assert_eq!(paused.state, "paused");
    assert!(paused.rows_done < ROWS, "paused mid-job");
    assert_checkpoint_matches_data(&mut c, id);
    std::thread::sleep(Duration::from_millis(300));
    assert_eq!(job(&mut c, id).rows_done, paused.rows_done);
    c.execute("SELECT migrate.cancel_job($1)", &[&id]).unwrap();
    assert_eq!(job(&mut c, id).state, "cancelled");
}

#[test]
fn sigterm_cancels_the_running_batch_promptly_and_resume_job_continues() {
    let cluster = Cluster::start("backfill-sigterm", &[]);
    let mut c = cluster.connect("postgres");
    counter_table(&mut c, 200_000);
    // A batch that blocks on one row while the gate table has a row.
    c.batch_execute(
        "CREATE TABLE gate (); INSERT INTO gate DEFAULT VALUES; GRANT SELECT ON gate TO app;",
    )
    .unwrap();
    let id = queue_as_app(
        &mut c,
        "'t', 'n = n + 1 + CASE WHEN id = 150000 THEN (SELECT 0 FROM pg_sleep(CASE WHEN EXISTS (SELECT FROM gate) THEN 60 ELSE 0 END)) ELSE 0 END', batch_size => 20000",
    );
    let j = wait_for(&mut c, id, Duration::from_secs(60), |j| {
        j.rows_done >= 140_000
    });
    let pid = j.worker_pid.expect("a worker runs the job");
    // The worker is now inside the sleeping batch (its statement_timeout is 10 s).
    std::thread::sleep(Duration::from_millis(500));
    let sent = Instant::now();
    c.execute("SELECT pg_terminate_backend($1)", &[&pid])
        .unwrap();
    wait_for(&mut c, id, Duration::from_secs(5), |j| {
        j.worker_pid.is_none()
    });
    let took = sent.elapsed();
    assert!(
        took < Duration::from_secs(3),
        "SIGTERM ended the batch in {took:?}"
    );
    let j = job(&mut c, id);
    assert_eq!(j.state, "running");
    assert_checkpoint_matches_data(&mut c, id);
    let note: String = c
        .query_one("SELECT note FROM migrate.jobs WHERE id = $1", &[&id])
        .unwrap()
        .get(0);
    assert!(note.starts_with("interrupted"), "{note}");

    c.batch_execute("DELETE FROM gate").unwrap();
    c.batch_execute("SET ROLE app").unwrap();
    c.execute("SELECT migrate.resume_job($1)", &[&id]).unwrap();
    c.batch_execute(&format!("CALL migrate.wait_job({id}, '60 s')"))
        .unwrap_or_else(|e| panic!("{e:?}"));
    c.batch_execute("RESET ROLE").unwrap();
    assert_exactly_once(&mut c, 200_000);
}

#[test]
fn pause_resume_cancel_and_the_worker_limit() {
    let cluster = Cluster::start("backfill-control", &["migrate.max_job_workers = 1"]);
    let mut c = cluster.connect("postgres");
    counter_table(&mut c, 300_000);
    let id = queue_as_app(
        &mut c,
        "'t', 'n = n + 1', batch_size => 2000, pause => '20 ms'",
    );
    // Once the first job's worker holds the only slot, a second job waits for it.
    wait_for(&mut c, id, Duration::from_secs(30), |j| {
        j.worker_pid.is_some()
    });
    c.batch_execute("CREATE TABLE u (id int PRIMARY KEY, m int); INSERT INTO u SELECT g, 0 FROM generate_series(1, 1000) g; ALTER TABLE u OWNER TO app").unwrap();
    let second = queue_as_app(&mut c, "'u', 'm = 1'");
    wait_for(&mut c, id, Duration::from_secs(60), |j| {
        j.rows_done > 10_000
    });
    assert_eq!(job(&mut c, second).state, "queued");

    c.execute("SELECT migrate.pause_job($1)", &[&id]).unwrap();
    let paused = wait_for(&mut c, id, Duration::from_secs(10), |j| {
        j.worker_pid.is_none()
    });
    assert_eq!(paused.state, "paused");
    // The freed slot runs the queued job.
    let s = wait_for(&mut c, second, Duration::from_secs(30), |j| {
        j.state == "succeeded"
    });
    assert_eq!(s.rows_done, 1000);
    std::thread::sleep(Duration::from_millis(300));
    assert_eq!(
        job(&mut c, id).rows_done,
        paused.rows_done,
        "nothing moves while paused"
    );
    assert_checkpoint_matches_data(&mut c, id);

    c.execute("SELECT migrate.resume_job($1)", &[&id]).unwrap();
    wait_for(&mut c, id, Duration::from_secs(30), |j| {
        j.rows_done > paused.rows_done + 10_000
    });
    c.execute("SELECT migrate.cancel_job($1)", &[&id]).unwrap();
    let cancelled = wait_for(&mut c, id, Duration::from_secs(10), |j| {
        j.worker_pid.is_none()
    });
    assert_eq!(cancelled.state, "cancelled");
    assert!(cancelled.rows_done < 300_000);
    std::thread::sleep(Duration::from_millis(300));
    assert_checkpoint_matches_data(&mut c, id);
}

#[test]
fn waiting_for_a_job_does_not_block_a_concurrent_index_build() {
    let cluster = Cluster::start("backfill-wait", &[]);
    let mut c = cluster.connect("postgres");
    counter_table(&mut c, 100_000);
    c.batch_execute("CREATE TABLE other (id int, v int); INSERT INTO other SELECT g, g FROM generate_series(1, 10000) g")
        .unwrap();
    let id = queue_as_app(
        &mut c,
        "'t', 'n = n + 1', batch_size => 1000, pause => '100 ms'",
    );
    let port = cluster.port;
    let waiter = std::thread::spawn(move || {
        let mut w = postgres::Client::connect(
            &format!("host=127.0.0.1 port={port} user=postgres dbname=postgres"),
            postgres::NoTls,
        )
        .unwrap();
        let started = Instant::now();
        let result = w.batch_execute(&format!("CALL migrate.wait_job({id}, '120 s')"));
        (
            started.elapsed(),
            result.map_err(|e| e.code().map(|c| c.code().to_string())),
        )
    });
    wait_for(&mut c, id, Duration::from_secs(30), |j| {
        j.worker_pid.is_some()
    });
    std::thread::sleep(Duration::from_millis(500));
    let started = Instant::now();
    c.batch_execute("CREATE INDEX CONCURRENTLY other_v ON other (v)")
        .unwrap();
    let build = started.elapsed();
    assert!(!waiter.is_finished(), "wait_job is still waiting");
    assert!(
        build < Duration::from_secs(5),
        "the concurrent index build took {build:?}"
    );
    c.execute("SELECT migrate.cancel_job($1)", &[&id]).unwrap();
    let (waited, result) = waiter.join().unwrap();
    assert_eq!(
        result,
        Err(Some("57014".to_string())),
        "wait_job reports the cancellation"
    );
    assert!(waited < Duration::from_secs(60));
}

#[test]
fn a_job_cannot_run_sql_with_more_privileges_than_its_owner() {
    let cluster = Cluster::start("backfill-security", &[]);
    let mut c = cluster.connect("postgres");
    c.batch_execute(
        "CREATE EXTENSION migrate;
         CREATE ROLE mallory LOGIN;
         CREATE TABLE vault (secret text); INSERT INTO vault VALUES ('gold');
         CREATE TABLE mine (id int PRIMARY KEY, who text, note text);
         INSERT INTO mine SELECT g FROM generate_series(1, 100) g;
         ALTER TABLE mine OWNER TO mallory;
         -- An invoker function mallory may call but whose body she may not run herself.
         CREATE FUNCTION public.steal() RETURNS text LANGUAGE sql AS
           $$ UPDATE vault SET secret = 'stolen' RETURNING secret $$;
         GRANT EXECUTE ON FUNCTION public.steal() TO mallory;",
    )
    .unwrap();
    c.batch_execute("SET ROLE mallory").unwrap();
    // The job's SQL runs as mallory: current_user and session-level escalation both fail.
    let who: i64 = c
        .query_one("SELECT migrate.backfill('mine', 'who = current_user')", &[])
        .unwrap()
        .get(0);
    // steal() is an invoker function: planning at queue time cannot see what its body does,
    // but the worker runs it as mallory, so the body's UPDATE is refused.
    let steal: i64 = c
        .query_one(
            "SELECT migrate.backfill('mine', 'note = public.steal()')",
            &[],
        )
        .unwrap()
        .get(0);
    c.batch_execute("RESET ROLE").unwrap();
    let j = wait_for(&mut c, who, Duration::from_secs(30), |j| {
        j.state == "succeeded"
    });
    assert_eq!(j.rows_done, 100);
    let owners: Vec<String> = c
        .query("SELECT DISTINCT who FROM mine", &[])
        .unwrap()
        .iter()
        .map(|r| r.get(0))
        .collect();
    assert_eq!(owners, vec!["mallory".to_string()]);
    let j = wait_for(&mut c, steal, Duration::from_secs(30), |j| {
        j.state == "failed"
    });
    assert!(
        j.error
            .as_deref()
            .unwrap_or("")
            .starts_with("42501: permission denied for table vault"),
        "{:?}",
        j.error
    );
    let secret: String = c.query_one("SELECT secret FROM vault", &[]).unwrap().get(0);
    assert_eq!(secret, "gold");

    // Privileges are checked again before every batch: revoking UPDATE stops a running job.
    c.batch_execute(
        "CREATE ROLE writer LOGIN; CREATE TABLE shared (id int PRIMARY KEY, v int);
         INSERT INTO shared SELECT g, 0 FROM generate_series(1, 1000) g;
         GRANT SELECT, UPDATE ON shared TO writer; SET ROLE writer;",
    )
    .unwrap();
    let revoked: i64 = c
        .query_one(
            "SELECT migrate.backfill('shared', 'v = 1', batch_size => 10, pause => '200 ms')",
            &[],
        )
        .unwrap()
        .get(0);
    c.batch_execute("RESET ROLE").unwrap();
    wait_for(&mut c, revoked, Duration::from_secs(30), |j| {
        j.rows_done > 0
    });
    c.batch_execute("REVOKE UPDATE ON shared FROM writer")
        .unwrap();
    let j = wait_for(&mut c, revoked, Duration::from_secs(30), |j| {
        j.state == "failed"
    });
    assert!(
        j.error
            .as_deref()
            .unwrap_or("")
            .contains("may not UPDATE public.shared"),
        "{:?}",
        j.error
    );
    assert!(j.rows_done < 1000);

    // PostgreSQL 15 lets a background worker act only for a role with LOGIN: a NOLOGIN owner is
    // refused there (42501); from 16 on the server allows it, and so do we.
    let version: i32 = c
        .query_one("SHOW server_version_num", &[])
        .unwrap()
        .get::<_, String>(0)
        .parse()
        .unwrap();
    c.batch_execute(
        "CREATE ROLE table_owner NOLOGIN; CREATE TABLE nl (id int PRIMARY KEY, v int);
         INSERT INTO nl SELECT g FROM generate_series(1, 10) g;
         ALTER TABLE nl OWNER TO table_owner; SET ROLE table_owner;",
    )
    .unwrap();
    let queued = c.query_one("SELECT migrate.backfill('nl', 'v = 1')", &[]);
    c.batch_execute("RESET ROLE").unwrap();
    if version < 160000 {
        let err = queued.unwrap_err();
        assert_eq!(err.code().unwrap().code(), "42501", "{err:?}");
    } else {
        let nl: i64 = queued.unwrap().get(0);
        let j = wait_for(&mut c, nl, Duration::from_secs(30), |j| {
            j.state == "succeeded"
        });
        assert_eq!(j.rows_done, 10);
    }
}

#[test]
fn exhausted_worker_processes_are_reported_and_nothing_is_queued() {
    // The logical replication launcher takes the only background worker slot.
    let cluster = Cluster::start("backfill-exhausted", &["max_worker_processes = 1"]);
    let mut c = cluster.connect("postgres");
    counter_table(&mut c, 10);
    c.batch_execute("SET ROLE app").unwrap();
    let err = c
        .query_one("SELECT migrate.backfill('t', 'n = n + 1')", &[])
        .unwrap_err();
    let db = err.as_db_error().expect("a server error");
    assert_eq!(db.code().code(), "53400");
    assert!(
        db.message().contains("no background worker slot"),
        "{}",
        db.message()
    );
    assert!(db
        .detail()
        .unwrap_or("")
        .contains("max_worker_processes (1)"));
    c.batch_execute("RESET ROLE").unwrap();
    let jobs: i64 = c
        .query_one("SELECT count(*) FROM migrate.jobs", &[])
        .unwrap()
        .get(0);
    assert_eq!(jobs, 0);
}

#[test]
fn replication_lag_throttle_waits_for_a_paused_standby() {
    let primary = Cluster::start("bf-lag-primary", &[]);
    let mut c = primary.connect("postgres");
    counter_table(&mut c, 20_000);
    let standby = primary.standby("bf-lag-standby");
    let mut s = standby.connect_retry("postgres", Duration::from_secs(60));
    let deadline = Instant::now() + Duration::from_secs(30);
    while c
        .query_one(
            "SELECT count(*) FROM pg_stat_replication WHERE state = 'streaming'",
            &[],
        )
        .unwrap()
        .get::<_, i64>(0)
        == 0
    {
        assert!(Instant::now() < deadline, "the standby never streamed");
        std::thread::sleep(Duration::from_millis(100));
    }
    // The standby keeps receiving WAL but stops replaying it: its replay lag grows.
    s.batch_execute("SELECT pg_wal_replay_pause()").unwrap();
    c.batch_execute("ALTER SYSTEM SET migrate.max_replication_lag = '1MB'")
        .unwrap();
    c.batch_execute("SELECT pg_reload_conf()").unwrap();
    c.batch_execute("SET ROLE app").unwrap();
    let id: i64 = c
        .query_one("SELECT migrate.backfill('t', 'n = n + 1', NULL, 1000)", &[])
        .unwrap()
        .get(0);
    c.batch_execute("RESET ROLE").unwrap();

    let note = |c: &mut Client| -> String {
        c.query_one(
            "SELECT coalesce(note, '') FROM migrate.jobs WHERE id = $1",
            &[&id],
        )
        .unwrap()
        .get(0)
    };
    let deadline = Instant::now() + Duration::from_secs(60);
    while !note(&mut c).starts_with("waiting for standbys") {
        assert!(
            Instant::now() < deadline,
            "the job never waited: {:?}",
            note(&mut c)
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    let stalled = job(&mut c, id).rows_done;
    std::thread::sleep(Duration::from_secs(2));
    let j = job(&mut c, id);
    println!("throttled at {stalled} of 20000 rows: {}", note(&mut c));
    assert_eq!(j.state, "running");
    assert_eq!(j.rows_done, stalled, "no batch while the standby lags");
    assert!(stalled < 20_000);

    s.batch_execute("SELECT pg_wal_replay_resume()").unwrap();
    wait_for(&mut c, id, Duration::from_secs(120), |j| {
        j.state == "succeeded"
    });
    let wrong: i64 = c
        .query_one("SELECT count(*) FROM t WHERE n <> 1", &[])
        .unwrap()
        .get(0);
    assert_eq!(wrong, 0);
}
