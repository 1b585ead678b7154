//! The backfill's health throttles, each with its real condition on a real server: the WAL
//! rate (`migrate.max_wal_rate`), an anti-wraparound autovacuum of the job's table, sessions
//! that wait on a batch's row locks, and too many active sessions
//! (`migrate.max_active_backends`). The replication-lag throttle is tested with a paused
//! standby in backfill.rs.

use std::time::{Duration, Instant};

use migrate_system_tests::{Client, Cluster};

fn counter_table(c: &mut Client, rows: i64) {
    c.batch_execute(&format!(
        "CREATE EXTENSION migrate;
         CREATE ROLE app LOGIN;
         CREATE TABLE t (id bigint PRIMARY KEY, n int NOT NULL DEFAULT 0, pad text);
         INSERT INTO t (id, pad) SELECT g, repeat('x', 60) FROM generate_series(1, {rows}) g;
         ALTER TABLE t OWNER TO app;"
    ))
    .unwrap();
    c.batch_execute("VACUUM ANALYZE t").unwrap();
}

/// ALTER SYSTEM SET and a reload (ALTER SYSTEM runs outside a transaction block).
fn set_system(c: &mut Client, setting: &str) {
    c.batch_execute(&format!("ALTER SYSTEM SET {setting}"))
        .unwrap();
    c.batch_execute("SELECT pg_reload_conf()").unwrap();
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

/// (state, rows_done, note) of the job.
fn job(c: &mut Client, id: i64) -> (String, i64, String) {
    let row = c
        .query_one(
            "SELECT state, rows_done, coalesce(note, '') FROM migrate.jobs WHERE id = $1",
            &[&id],
        )
        .unwrap();
    (row.get(0), row.get(1), row.get(2))
}

/// Polls until the job's note starts with `prefix`; returns the note and rows done then.
fn wait_for_note(c: &mut Client, id: i64, prefix: &str, timeout: Duration) -> (String, i64) {
    let deadline = Instant::now() + timeout;
    loop {
        let (state, rows, note) = job(c, id);
        if note.starts_with(prefix) {
            return (note, rows);
        }
        assert!(
            Instant::now() < deadline,
            "job {id} never noted {prefix:?}: {state}, {rows} rows, note {note:?}"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

fn wait_for_success(c: &mut Client, id: i64, timeout: Duration) {
    let deadline = Instant::now() + timeout;
    loop {
        let (state, rows, note) = job(c, id);
        if state == "succeeded" {
            return;
        }
        assert!(
            Instant::now() < deadline && state != "failed",
            "job {id} is {state} with {rows} rows done: {note:?}"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

fn assert_exactly_once(c: &mut Client, rows: i64) {
    let row = c
        .query_one("SELECT count(*) FILTER (WHERE n = 1), count(*) FROM t", &[])
        .unwrap();
    assert_eq!((row.get::<_, i64>(0), row.get::<_, i64>(1)), (rows, rows));
}

fn wal_position(c: &mut Client) -> i64 {
    c.query_one(
        "SELECT pg_wal_lsn_diff(pg_current_wal_lsn(), '0/0')::bigint",
        &[],
    )
    .unwrap()
    .get(0)
}

#[test]
fn wal_rate_throttle_holds_the_job_to_the_limit() {
    let cluster = Cluster::start("throttle-wal", &["checkpoint_timeout = 1h"]);
    let mut c = cluster.connect("postgres");
    let rows = 100_000;
    counter_table(&mut c, rows);
    let limit_mb = 4.0;
    set_system(&mut c, "migrate.max_wal_rate = '4MB'");
    let (wal_before, started) = (wal_position(&mut c), Instant::now());
    let id = queue_as_app(&mut c, "'t', 'n = n + 1'");
    let (note, _) = wait_for_note(
        &mut c,
        id,
        "waiting for the WAL rate",
        Duration::from_secs(60),
    );
    println!("throttled: {note}");
    wait_for_success(&mut c, id, Duration::from_secs(180));
    let elapsed = started.elapsed().as_secs_f64();
    let wal_mb = (wal_position(&mut c) - wal_before) as f64 / 1_048_576.0;
    let rate = wal_mb / elapsed;
    println!("{wal_mb:.1} MB of WAL in {elapsed:.1} s: {rate:.2} MB/s against a limit of {limit_mb} MB/s");
    // A second's worth at the limit may go first (the throttle's burst), then the limit holds
    // (the next batch counted as writing what the last one did).
    assert!(
        rate <= limit_mb * 1.5,
        "{rate:.2} MB/s is well above the limit"
    );
    assert!(
        wal_mb > 3.0 * limit_mb,
        "the job wrote too little WAL to test the throttle"
    );
    assert_exactly_once(&mut c, rows);
}

#[test]
fn anti_wraparound_autovacuum_of_the_table_holds_the_job() {
    let cluster = Cluster::start("throttle-wraparound", &["autovacuum_naptime = 1s"]);
    let mut c = cluster.connect("postgres");
    let rows = 10_000;
    counter_table(&mut c, rows);
    // Only this table is due (a per-table freeze age only lowers the server's); its vacuum is
    // aggressive and freezes every row (so one vacuum ends the emergency), slowed down to last
    // a few seconds.
    c.batch_execute(
        "ALTER TABLE t SET (autovacuum_freeze_max_age = 100000, autovacuum_freeze_table_age = 0,
                            autovacuum_freeze_min_age = 0, autovacuum_vacuum_cost_delay = 20,
                            autovacuum_vacuum_cost_limit = 1)",
    )
    .unwrap();
    c.batch_execute(
        "DO $$ BEGIN FOR i IN 1..101000 LOOP PERFORM pg_current_xact_id(); COMMIT; END LOOP; END $$",
    )
    .unwrap();
    let deadline = Instant::now() + Duration::from_secs(60);
    let vacuum_running = |c: &mut Client| -> bool {
        c.query_one(
            "SELECT count(*) > 0 FROM pg_stat_progress_vacuum p JOIN pg_stat_activity a USING (pid)
              WHERE p.relid = 't'::regclass AND a.query LIKE '%(to prevent wraparound)'",
            &[],
        )
        .unwrap()
        .get(0)
    };
    while !vacuum_running(&mut c) {
        assert!(Instant::now() < deadline, "autovacuum never started on t");
        std::thread::sleep(Duration::from_millis(50));
    }
    let id = queue_as_app(&mut c, "'t', 'n = n + 1'");
    let (note, rows_then) = wait_for_note(
        &mut c,
        id,
        "waiting for autovacuum",
        Duration::from_secs(30),
    );
    println!("throttled: {note}");
    std::thread::sleep(Duration::from_secs(1));
    let (_, rows_later, _) = job(&mut c, id);
    if vacuum_running(&mut c) {
        assert_eq!((rows_then, rows_later), (0, 0), "no batch while it vacuums");
    }
    wait_for_success(&mut c, id, Duration::from_secs(120));
    assert_exactly_once(&mut c, rows);
}

#[test]
fn a_session_waiting_on_a_batch_makes_the_job_yield() {
    let cluster = Cluster::start("throttle-waiters", &[]);
    let mut c = cluster.connect("postgres");
    let rows = 12_000;
    counter_table(&mut c, rows);
    // Batches of 2000 rows at 0.2 ms a row: each holds its row locks for about 0.4 s.
    c.batch_execute(
        "CREATE FUNCTION slow_one() RETURNS int LANGUAGE sql VOLATILE
           AS $$ SELECT 1 FROM pg_sleep(0.0002) $$;
         ALTER FUNCTION slow_one() OWNER TO app",
    )
    .unwrap();
    let id = queue_as_app(&mut c, "'t', 'n = n + slow_one()', NULL, 2000");
    let mut writer = cluster.connect("postgres");
    writer
        .batch_execute("SET statement_timeout = '10s'")
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(60);
    let mut longest_wait = Duration::ZERO;
    let mut yielded = None;
    while yielded.is_none() {
        let (state, done, note) = job(&mut c, id);
        if note.starts_with("yielded") {
            yielded = Some(note);
            break;
        }
        assert!(
            state != "succeeded" && Instant::now() < deadline,
            "the job never yielded: {state} {note:?}"
        );
        // The first row of the batch in progress: the batch locked it first.
        let t = Instant::now();
        writer
            .execute("UPDATE t SET pad = 'written' WHERE id = $1", &[&(done + 1)])
            .unwrap();
        longest_wait = longest_wait.max(t.elapsed());
        std::thread::sleep(Duration::from_millis(20));
    }
    let yielded = yielded.unwrap();
    println!("{yielded}; longest writer wait {longest_wait:?}");
    // The job stood back as long as its batch held the locks, which is about what a writer
    // waited: nobody waits much longer than one batch.
    let yield_ms: u64 = yielded
        .trim_start_matches("yielded ")
        .split(' ')
        .next()
        .and_then(|ms| ms.parse().ok())
        .expect("yielded N ms");
    assert!(
        longest_wait < Duration::from_millis(2 * yield_ms + 1000),
        "a writer waited {longest_wait:?}, more than about one batch ({yield_ms} ms)"
    );
    wait_for_success(&mut c, id, Duration::from_secs(120));
    assert_exactly_once(&mut c, rows);
}

#[test]
fn waits_any_role_can_start_do_not_make_the_job_yield() {
    let cluster = Cluster::start("throttle-not-waiters", &[]);
    let mut c = cluster.connect("postgres");
    let rows = 8_000;
    counter_table(&mut c, rows);
    c.batch_execute(
        "CREATE FUNCTION slow_one() RETURNS int LANGUAGE sql VOLATILE
           AS $$ SELECT 1 FROM pg_sleep(0.0002) $$;
         ALTER FUNCTION slow_one() OWNER TO app;
         CREATE ROLE stranger LOGIN;
         CREATE SCHEMA stranger AUTHORIZATION stranger;
         CREATE TABLE stranger.t (v int);
         ALTER TABLE stranger.t OWNER TO stranger",
    )
    .unwrap();
    let id = queue_as_app(&mut c, "'t', 'n = n + slow_one()', NULL, 2000");
    // A role with no privilege on t builds an index concurrently on its own table, again and
    // again: each build waits for the batch's transaction (its virtual transaction ID).
    let mut s = cluster.connect_as("postgres", "stranger");
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let stopping = stop.clone();
    let builder = std::thread::spawn(move || {
        let mut builds = 0;
        while !stopping.load(std::sync::atomic::Ordering::Relaxed) {
            s.batch_execute("CREATE INDEX CONCURRENTLY i ON stranger.t (v)")
                .unwrap();
            s.batch_execute("DROP INDEX stranger.i").unwrap();
            builds += 1;
        }
        builds
    });
    let deadline = Instant::now() + Duration::from_secs(120);
    let mut saw_build_wait = false;
    loop {
        let (state, _, note) = job(&mut c, id);
        assert!(
            !note.starts_with("yielded"),
            "the job yielded to a stranger: {note}"
        );
        if state == "succeeded" {
            break;
        }
        assert!(
            Instant::now() < deadline && state != "failed",
            "job {id} is {state}: {note:?}"
        );
        saw_build_wait |= c
            .query_one(
                "SELECT count(*) > 0 FROM pg_stat_activity WHERE usename = 'stranger' AND wait_event = 'virtualxid'",
                &[],
            )
            .unwrap()
            .get::<_, bool>(0);
        std::thread::sleep(Duration::from_millis(20));
    }
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    let builds = builder.join().unwrap();
    println!("{builds} concurrent builds by a stranger during the job; one seen waiting for a batch: {saw_build_wait}");
    assert!(
        saw_build_wait,
        "no build ever waited for a batch: the test proved nothing"
    );
    assert_exactly_once(&mut c, rows);
}

#[test]
fn too_many_working_sessions_hold_the_job() {
    let cluster = Cluster::start("throttle-active", &[]);
    let mut c = cluster.connect("postgres");
    let rows = 20_000;
    counter_table(&mut c, rows);
    set_system(&mut c, "migrate.max_active_backends = 1");
    const BUSY: &str = "SELECT count(*) FROM generate_series(1, 2000000000)";
    const ASLEEP: &str = "SELECT pg_sleep(60)";
    // Two sessions on the CPU (they count), two asleep (they do not: any role could open them).
    let sessions: Vec<_> = [BUSY, BUSY, ASLEEP, ASLEEP]
        .into_iter()
        .map(|sql| {
            let mut s = cluster.connect("postgres");
            std::thread::spawn(move || {
                let _ = s.batch_execute(sql);
            })
        })
        .collect();
    let deadline = Instant::now() + Duration::from_secs(30);
    while c
        .query_one(
            "SELECT count(*) FROM pg_stat_activity WHERE query IN ($1, $2) AND state = 'active'",
            &[&BUSY, &ASLEEP],
        )
        .unwrap()
        .get::<_, i64>(0)
        < 4
    {
        assert!(Instant::now() < deadline, "the sessions never started");
        std::thread::sleep(Duration::from_millis(20));
    }
    let id = queue_as_app(&mut c, "'t', 'n = n + 1'");
    // A session waiting for the job is active too, but asleep: it must not hold the job back.
    let mut w = cluster.connect("postgres");
    let waiter = std::thread::spawn(move || {
        w.batch_execute(&format!("CALL migrate.wait_job({id}, '60 s')"))
    });
    let (note, rows_then) = wait_for_note(
        &mut c,
        id,
        "waiting for the server",
        Duration::from_secs(30),
    );
    println!("throttled: {note}");
    std::thread::sleep(Duration::from_secs(1));
    assert_eq!(
        (rows_then, job(&mut c, id).1),
        (0, 0),
        "no batch while the server is busy"
    );
    c.execute(
        "SELECT pg_cancel_backend(pid) FROM pg_stat_activity WHERE query = $1",
        &[&BUSY],
    )
    .unwrap();
    // Left: two sessions asleep, the waiter and this session's polling: within the limit.
    waiter
        .join()
        .unwrap()
        .expect("wait_job returns once the job succeeded");
    wait_for_success(&mut c, id, Duration::from_secs(10));
    assert_exactly_once(&mut c, rows);
    let (_, _, note) = job(&mut c, id);
    assert_eq!(note, "", "the note is cleared once the job runs again");
    c.execute(
        "SELECT pg_cancel_backend(pid) FROM pg_stat_activity WHERE query = $1",
        &[&ASLEEP],
    )
    .unwrap();
    for s in sessions {
        s.join().unwrap();
    }
}
