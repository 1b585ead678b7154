//! Live job control on a real server: `alter_job()` on a running backfill changes its batch
//! size, pause and workers from the next batch on (workers added split the key ranges, surplus
//! ones stop between batches), and every row is still updated exactly once.

use std::time::{Duration, Instant};

use migrate_system_tests::{Client, Cluster};

/// (state, rows_done, batches, current_batch_size, active_workers) in one snapshot.
fn progress(c: &mut Client, id: i64) -> (String, i64, i64, i32, i64) {
    let row = c
        .query_one(
            "SELECT state, rows_done, batches, batch_size, active_workers \
             FROM migrate.jobs WHERE id = $1",
            &[&id],
        )
        .unwrap();
    (row.get(0), row.get(1), row.get(2), row.get(3), row.get(4))
}

/// Polls until `done` holds for the job's progress, panicking after `timeout`.
fn wait_until(
    c: &mut Client,
    id: i64,
    timeout: Duration,
    what: &str,
    done: impl Fn(&(String, i64, i64, i32, i64)) -> bool,
) -> (String, i64, i64, i32, i64) {
    let deadline = Instant::now() + timeout;
    loop {
        let p = progress(c, id);
        if done(&p) {
            return p;
        }
        assert!(Instant::now() < deadline, "{what}: job {id} is {p:?}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Processes running the job (its leader and helpers), by their application_name.
fn job_processes(c: &mut Client, id: i64) -> i64 {
    c.query_one(
        "SELECT count(*) FROM pg_stat_activity WHERE application_name LIKE $1",
        &[&format!("migrate job {id}: %")],
    )
    .unwrap()
    .get(0)
}

fn alter(c: &mut Client, id: i64, args: &str) {
    c.batch_execute("SET ROLE app").unwrap();
    c.execute(&format!("SELECT migrate.alter_job($1, {args})"), &[&id])
        .unwrap();
    c.batch_execute("RESET ROLE").unwrap();
}

#[test]
fn alter_job_changes_a_running_backfill_from_its_next_batch_exactly_once() {
    const ROWS: i64 = 600_000;
    let cluster = Cluster::start("job-control", &[]);
    let mut c = cluster.connect("postgres");
    c.batch_execute(&format!(
        "CREATE EXTENSION migrate;
         CREATE ROLE app LOGIN;
         CREATE TABLE t (id bigint PRIMARY KEY, n int NOT NULL DEFAULT 0, pad text);
         INSERT INTO t (id, pad) SELECT g, 'row ' || g FROM generate_series(1, {ROWS}) g;
         ALTER TABLE t OWNER TO app;
         ANALYZE t;"
    ))
    .unwrap();
    c.batch_execute("SET ROLE app").unwrap();
    let id: i64 = c
        .query_one(
            "SELECT migrate.backfill('t', 'n = n + 1', batch_size => 300, pause => '20 ms')",
            &[],
        )
        .unwrap()
        .get(0);
    c.batch_execute("RESET ROLE").unwrap();
    wait_until(&mut c, id, Duration::from_secs(60), "start", |p| {
        p.0 == "running" && p.1 > 0
    });

    // batch_size: every batch committed after alter_job() returned has the new size (one
    // worker, one range: no short last batch before the end).
    alter(&mut c, id, "batch_size => 1000");
    let (_, rows_at, batches_at, size, _) = progress(&mut c, id);
    assert_eq!(size, 1000);
    let (_, rows, batches, _, _) = wait_until(&mut c, id, Duration::from_secs(60), "batches", |p| {
        p.2 >= batches_at + 5
    });
    assert_eq!(
        rows - rows_at,
        1000 * (batches - batches_at),
        "every batch after the change updated 1000 rows"
    );

    // workers => 3: the leader splits its range and starts two helpers.
    alter(&mut c, id, "workers => 3");
    wait_until(&mut c, id, Duration::from_secs(30), "three workers", |p| {
        p.4 == 3
    });
    assert_eq!(job_processes(&mut c, id), 3);
    let ranges: i64 = c
        .query_one(
            "SELECT count(*) FROM migrate.job_ranges WHERE job_id = $1",
            &[&id],
        )
        .unwrap()
        .get(0);
    assert_eq!(ranges, 3, "the one range was split in three");

    // pause => '1 s': after the pauses in flight, each worker runs about one batch a second.
    alter(&mut c, id, "pause => '1 s'");
    std::thread::sleep(Duration::from_millis(1500));
    let (_, _, before, _, _) = progress(&mut c, id);
    std::thread::sleep(Duration::from_secs(2));
    let (_, _, after, _, _) = progress(&mut c, id);
    assert!(
        after - before <= 3 * 3,
        "3 workers pausing 1 s ran {} batches in 2 s",
        after - before
    );

    // workers => 1: the two helpers stop between batches; the leader goes on alone.
    alter(&mut c, id, "workers => 1, pause => '20 ms'");
    wait_until(&mut c, id, Duration::from_secs(30), "one worker", |p| {
        p.4 == 1
    });
    let deadline = Instant::now() + Duration::from_secs(30);
    while job_processes(&mut c, id) > 1 {
        assert!(Instant::now() < deadline, "the helpers did not exit");
        std::thread::sleep(Duration::from_millis(50));
    }
    let (_, rows_one, _, _, _) = progress(&mut c, id);
    wait_until(&mut c, id, Duration::from_secs(30), "progress alone", |p| {
        p.1 > rows_one
    });

    // To the end: larger batches, no pause, two workers again.
    alter(&mut c, id, "batch_size => 20000, pause => '0', workers => 2");
    wait_until(&mut c, id, Duration::from_secs(300), "success", |p| {
        p.0 == "succeeded"
    });

    // Exactly once: every row updated once, the ranges' counts add up to the job's.
    let row = c
        .query_one(
            "SELECT count(*) FILTER (WHERE n = 1), count(*) FILTER (WHERE n <> 1), \
                    (SELECT sum(rows_done)::bigint FROM migrate.job_ranges WHERE job_id = $1), \
                    (SELECT rows_updated FROM migrate.job_queue WHERE id = $1) FROM t",
            &[&id],
        )
        .unwrap();
    let (once, other, ranges_rows, updated): (i64, i64, i64, i64) =
        (row.get(0), row.get(1), row.get(2), row.get(3));
    assert_eq!((once, other), (ROWS, 0), "every row updated exactly once");
    assert_eq!(ranges_rows, ROWS, "the ranges' rows add up");
    assert_eq!(updated, ROWS, "rows updated == rows");
    // The ranges still tile the key: each starts where the previous one ended.
    let gaps: i64 = c
        .query_one(
            "SELECT count(*) FROM (SELECT lower_key, lag(upper_key) OVER (ORDER BY upper_key::bigint[]) AS prev \
             FROM migrate.job_ranges WHERE job_id = $1) r \
             WHERE lower_key IS DISTINCT FROM prev",
            &[&id],
        )
        .unwrap()
        .get(0);
    assert_eq!(gaps, 0, "the ranges tile the key");
    // The jobs view: the last 20 batches (the job ran hundreds), the last of them at the
    // final size, and a time efficiency between 0 and the workers it had.
    let row = c
        .query_one(
            "SELECT jsonb_array_length(batch_history), \
                    (batch_history -> -1 ->> 'size')::int, time_efficiency::float8, batches \
             FROM migrate.jobs WHERE id = $1",
            &[&id],
        )
        .unwrap();
    let (kept, last_size, efficiency, batches): (i32, i32, f64, i64) =
        (row.get(0), row.get(1), row.get(2), row.get(3));
    assert!(batches > 20);
    assert_eq!(kept, 20, "the batch history keeps the last 20 batches");
    assert_eq!(last_size, 20000);
    assert!(
        efficiency > 0.0 && efficiency <= 3.0,
        "time efficiency {efficiency}"
    );
    eprintln!("job {id}: {batches} batches, time efficiency {efficiency}");
    let changes: Vec<(String, Option<String>, Option<String>)> = c
        .query(
            "SELECT setting, old_value, new_value FROM migrate.job_changes \
             WHERE job_id = $1 ORDER BY id",
            &[&id],
        )
        .unwrap()
        .iter()
        .map(|r| (r.get(0), r.get(1), r.get(2)))
        .collect();
    let expect = |s: &str, o: &str, n: &str| (s.to_string(), Some(o.to_string()), Some(n.to_string()));
    assert_eq!(
        changes,
        vec![
            expect("batch_size", "300", "1000"),
            expect("workers", "1", "3"),
            expect("pause", "20 ms", "1000 ms"),
            expect("workers", "3", "1"),
            expect("pause", "1000 ms", "20 ms"),
            expect("batch_size", "1000", "20000"),
            expect("workers", "1", "2"),
            expect("pause", "20 ms", "0 ms"),
        ]
    );
}

#[test]
fn wait_job_reports_progress_at_its_interval() {
    let cluster = Cluster::start("job-progress", &[]);
    let mut c = cluster.connect("postgres");
    c.batch_execute(
        "CREATE EXTENSION migrate;
         CREATE ROLE app LOGIN;
         CREATE TABLE t (id bigint PRIMARY KEY, n int NOT NULL DEFAULT 0);
         INSERT INTO t SELECT g FROM generate_series(1, 10000) g;
         ALTER TABLE t OWNER TO app;
         ANALYZE t;",
    )
    .unwrap();
    // Each job takes about 2.5 s or more: 50 batches with a 50 ms pause each.
    let mut wait = |every: &str| {
        c.batch_execute("SET ROLE app").unwrap();
        let id: i64 = c
            .query_one(
                "SELECT migrate.backfill('t', 'n = n + 1', batch_size => 200, pause => '50 ms')",
                &[],
            )
            .unwrap()
            .get(0);
        c.batch_execute("RESET ROLE").unwrap();
        let out = cluster.client_tool(
            "psql",
            &[
                "-X",
                "-d",
                "postgres",
                "-c",
                &format!("CALL migrate.wait_job({id}{every})"),
            ],
        );
        (id, String::from_utf8_lossy(&out.stderr).into_owned())
    };
    let (id, notices) = wait(", progress_every => '500 ms'");
    let reports: Vec<&str> = notices
        .lines()
        .filter(|l| l.starts_with(&format!("NOTICE:  migrate.wait_job: job {id} running: ")))
        .collect();
    assert!(
        reports.len() >= 2,
        "a report every 500 ms of a 2.5 s wait: {notices}"
    );
    assert!(
        reports
            .iter()
            .all(|r| r.contains("% (") && r.contains("of about 10000 rows done")),
        "{reports:?}"
    );
    assert!(reports.iter().any(|r| r.contains(" rows/s") && r.contains("ETA ")), "{reports:?}");
    // The default: no reports.
    let (_, notices) = wait("");
    assert!(!notices.contains("migrate.wait_job: job"), "{notices}");
}

#[test]
fn start_after_and_window_hold_a_backfill_until_they_allow_it() {
    let cluster = Cluster::start("job-schedule", &[]);
    let mut c = cluster.connect("postgres");
    c.batch_execute(
        "CREATE EXTENSION migrate;
         CREATE ROLE app LOGIN;
         CREATE TABLE t (id bigint PRIMARY KEY, n int NOT NULL DEFAULT 0);
         INSERT INTO t SELECT g FROM generate_series(1, 20000) g;
         ALTER TABLE t OWNER TO app;
         ANALYZE t;",
    )
    .unwrap();
    let queue = |c: &mut Client, args: &str| -> i64 {
        c.batch_execute("SET ROLE app").unwrap();
        let id: i64 = c
            .query_one(&format!("SELECT migrate.backfill('t', 'n = n + 1'{args})"), &[])
            .unwrap()
            .get(0);
        c.batch_execute("RESET ROLE").unwrap();
        id
    };
    let note = |c: &mut Client, id: i64| -> Option<String> {
        c.query_one("SELECT note FROM migrate.jobs WHERE id = $1", &[&id])
            .unwrap()
            .get(0)
    };

    // start_after in 3 s: queued with a note until then, then it runs; no batch before it.
    let queued = Instant::now();
    let id = queue(&mut c, ", start_after => clock_timestamp() + interval '3 s'");
    std::thread::sleep(Duration::from_millis(1500));
    let (state, rows, _, _, _) = progress(&mut c, id);
    assert_eq!((state.as_str(), rows), ("queued", 0));
    let n = note(&mut c, id).unwrap_or_default();
    assert!(n.starts_with("waiting for start_after: starts at "), "{n}");
    wait_until(&mut c, id, Duration::from_secs(60), "start_after", |p| {
        p.0 == "succeeded"
    });
    assert!(queued.elapsed() >= Duration::from_millis(2900));
    let early: i64 = c
        .query_one(
            "SELECT count(*) FROM migrate.job_queue WHERE id = $1 AND started_at < start_after",
            &[&id],
        )
        .unwrap()
        .get(0);
    assert_eq!(early, 0, "the job started after start_after");

    // A running job whose window is changed to exclude now stops between batches, with a
    // note; removing the window lets it go on from its checkpoint.
    let id = queue(&mut c, ", batch_size => 100, pause => '50 ms'");
    wait_until(&mut c, id, Duration::from_secs(60), "running", |p| {
        p.0 == "running" && p.1 > 0
    });
    c.batch_execute("SET ROLE app; SET TimeZone = 'Asia/Tokyo'").unwrap();
    c.execute(
        "SELECT migrate.alter_job($1, window_start => (now() + interval '2 hours')::time, \
                                  window_end => (now() + interval '3 hours')::time)",
        &[&id],
    )
    .unwrap();
    c.batch_execute("RESET ROLE; RESET TimeZone").unwrap();
    let deadline = Instant::now() + Duration::from_secs(10);
    let held = loop {
        let n = note(&mut c, id).unwrap_or_default();
        if n.starts_with("outside its window ") {
            break n;
        }
        assert!(Instant::now() < deadline, "no window note: {n:?}");
        std::thread::sleep(Duration::from_millis(50));
    };
    assert!(held.contains("(Asia/Tokyo): waiting until "), "{held}");
    let (state, rows_held, _, _, _) = progress(&mut c, id);
    assert_eq!(state, "running");
    std::thread::sleep(Duration::from_secs(1));
    assert_eq!(progress(&mut c, id).1, rows_held, "no batch outside the window");
    alter(&mut c, id, "window_start => '00:00', window_end => '00:00'");
    wait_until(&mut c, id, Duration::from_secs(120), "after the window", |p| {
        p.0 == "succeeded"
    });
    let twice: (i64, i64) = {
        let r = c
            .query_one(
                "SELECT count(*) FILTER (WHERE n = 2), count(*) FILTER (WHERE n <> 2) FROM t",
                &[],
            )
            .unwrap();
        (r.get(0), r.get(1))
    };
    assert_eq!(twice, (20000, 0), "both jobs updated every row exactly once");
}
