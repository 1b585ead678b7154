//! Concurrent index builds of `CALL migrate.deploy()` on real servers:
//!
//! - the snapshot wait, observed for real: sessions holding a snapshot (one idle in a
//!   REPEATABLE READ transaction, one running a long query) while deploy runs a `CREATE INDEX
//!   CONCURRENTLY`: the job's note lists them before the build, the deploy's NOTICE names the
//!   ones the build waits for, with their query only when the deploying role may see it; with a
//!   short `migrate.snapshot_wait_timeout` the step fails with 55P03 and a HINT naming the pid,
//!   no invalid index is left, and the deploy succeeds once the blocker ends;
//! - `CREATE UNIQUE INDEX CONCURRENTLY` on a partitioned table (with a sub-partitioned
//!   partition) done by the recipe while writers insert into every partition: `plan()` shows
//!   the steps; the worker killed mid-way, then a partition with duplicates failing, then a
//!   rerun that finishes: the index valid on the parent and every partition.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant};

use migrate_system_tests::{Client, Cluster, NoTls};

fn sqlstate(e: &postgres::Error) -> String {
    e.as_db_error()
        .map(|d| d.code().code().to_string())
        .unwrap_or_else(|| format!("not a server error: {e}"))
}

fn count(c: &mut Client, sql: &str) -> i64 {
    c.query_one(sql, &[]).unwrap().get(0)
}

/// A client whose NOTICEs are collected.
fn with_notices(cluster: &Cluster, user: &str) -> (Client, Arc<Mutex<Vec<String>>>) {
    let notices = Arc::new(Mutex::new(Vec::new()));
    let sink = notices.clone();
    let client = postgres::Config::new()
        .host("127.0.0.1")
        .port(cluster.port)
        .user(user)
        .dbname("postgres")
        .notice_callback(move |n| sink.lock().unwrap().push(n.message().to_string()))
        .connect(NoTls)
        .unwrap();
    (client, notices)
}

/// Records every distinct note of the jobs until stopped.
fn note_recorder(cluster: &Cluster, stop: Arc<AtomicBool>) -> thread::JoinHandle<Vec<String>> {
    let mut c = cluster.connect("postgres");
    thread::spawn(move || {
        let mut seen: Vec<String> = Vec::new();
        while !stop.load(Ordering::Relaxed) {
            for row in c
                .query("SELECT note FROM migrate.jobs WHERE note IS NOT NULL", &[])
                .unwrap()
            {
                let note: String = row.get(0);
                if !seen.contains(&note) {
                    seen.push(note);
                }
            }
            thread::sleep(Duration::from_millis(50));
        }
        seen
    })
}

#[test]
fn snapshot_holders_reported_and_the_wait_bounded() {
    let cluster = Cluster::start("cic-snapshot-wait", &[]);
    let mut admin = cluster.connect("postgres");
    admin
        .batch_execute(
            "CREATE EXTENSION migrate;
             CREATE ROLE deployer LOGIN IN ROLE migrate_admin;
             CREATE ROLE reporter LOGIN;
             GRANT CREATE ON SCHEMA public TO deployer;",
        )
        .unwrap();
    let mut deployer = cluster.connect_as("postgres", "deployer");
    deployer
        .batch_execute(
            "SELECT migrate.add('1', 'CREATE TABLE t (id bigserial PRIMARY KEY, email text);
                                      INSERT INTO t (email) SELECT ''u'' || g FROM generate_series(1, 50000) g;');
             SELECT migrate.add('2', E'-- migrate:no-transaction\\nCREATE INDEX CONCURRENTLY t_email ON t (email);');
             SELECT migrate.apply('1');",
        )
        .unwrap();

    // A forgotten session of another role: idle in a REPEATABLE READ transaction that took its
    // snapshot. The deploying role may not see its state or query.
    let mut forgotten = cluster.connect_as("postgres", "reporter");
    forgotten
        .batch_execute(
            "SET application_name = 'forgotten-report';
             BEGIN ISOLATION LEVEL REPEATABLE READ;
             SELECT count(*) /* reporter_secret */ FROM pg_class;",
        )
        .unwrap();
    let forgotten_pid: i32 = forgotten
        .query_one("SELECT pg_backend_pid()", &[])
        .unwrap()
        .get(0);
    // A session of the deploying role itself, running a long query (its snapshot lives as
    // long as the query): the deployer may see that one. It ends before the build's wait
    // would time out, so the build ends up waiting for the forgotten session whatever order
    // it waits in.
    let mut own = cluster.connect_as("postgres", "deployer");
    let own_pid: i32 = own.query_one("SELECT pg_backend_pid()", &[]).unwrap().get(0);
    let long_query = thread::spawn(move || {
        own.batch_execute("SELECT pg_sleep(2) /* deployer_visible */")
            .unwrap();
    });
    thread::sleep(Duration::from_millis(300));

    let stop = Arc::new(AtomicBool::new(false));
    let recorder = note_recorder(&cluster, stop.clone());
    let (mut deploy, notices) = with_notices(&cluster, "deployer");
    deploy
        .batch_execute("SET migrate.snapshot_wait_timeout = '5s'")
        .unwrap();
    let start = Instant::now();
    let err = deploy.batch_execute("CALL migrate.deploy()").unwrap_err();
    let took = start.elapsed();
    stop.store(true, Ordering::Relaxed);
    let notes = recorder.join().unwrap();
    long_query.join().unwrap();
    let db = err.as_db_error().expect("a server error");
    println!(
        "failed after {took:?}: {} {}\nHINT: {:?}\nnotes: {notes:#?}\nnotices: {:#?}",
        db.code().code(),
        db.message(),
        db.hint(),
        notices.lock().unwrap()
    );
    assert_eq!(sqlstate(&err), "55P03");
    assert!(db.message().contains("migrate.snapshot_wait_timeout"));
    assert!(
        db.message().contains(&format!("pid {forgotten_pid}"))
            || db.message().contains(&format!("pid {own_pid}")),
        "the message names the pid the build waited for"
    );
    let hint = db.hint().unwrap_or_default();
    assert!(
        hint.contains(&format!("pg_terminate_backend({forgotten_pid})")),
        "the HINT names the forgotten session: {hint}"
    );
    assert!(
        took < Duration::from_secs(20),
        "the wait was bounded: {took:?}"
    );

    // The job's note listed both before the build, the idle one first, with no query text.
    let preflight = notes
        .iter()
        .find(|n| n.contains("waits for"))
        .expect("a preflight note");
    // The deploying role may not see the other role's state: it cannot be sorted first.
    assert!(preflight.contains(&format!("pid {forgotten_pid}")), "{preflight}");
    assert!(preflight.contains(&format!("pid {own_pid}")), "{preflight}");
    assert!(preflight.contains("role reporter"));
    assert!(preflight.contains("state hidden"), "{preflight}");
    assert!(preflight.contains("deployer, active"), "{preflight}");
    assert!(!preflight.contains("reporter_secret") && !preflight.contains("deployer_visible"));

    // The deploy's NOTICEs: the preflight, and the sessions the build waited for as the
    // deployer sees them: its own session's query, never the other role's.
    let notices = notices.lock().unwrap().clone();
    assert!(notices.iter().any(|n| n.contains("waits for")));
    let waiting: Vec<&String> = notices
        .iter()
        .filter(|n| n.contains("is waiting for"))
        .collect();
    assert!(
        waiting.iter().any(|n| n.contains(&format!("pid {forgotten_pid}"))),
        "{notices:#?}"
    );
    assert!(notices.iter().all(|n| !n.contains("reporter_secret")));

    // Nothing left behind, and the failure recorded.
    assert_eq!(
        count(&mut admin, "SELECT count(*) FROM pg_class WHERE relname = 't_email'"),
        0,
        "the invalid index was dropped"
    );
    assert_eq!(
        count(
            &mut admin,
            "SELECT count(*) FROM migrate.jobs WHERE state = 'failed' AND error LIKE '55P03: %snapshot_wait_timeout%'"
        ),
        1
    );

    // The blocker ends; the deploy goes through.
    forgotten.batch_execute("COMMIT").unwrap();
    let start = Instant::now();
    deploy.batch_execute("CALL migrate.deploy()").unwrap();
    println!("rerun took {:?}", start.elapsed());
    assert_eq!(
        count(
            &mut admin,
            "SELECT count(*) FROM pg_index WHERE indexrelid = 't_email'::regclass AND indisvalid"
        ),
        1
    );
    assert_eq!(
        count(
            &mut admin,
            "SELECT count(*) FROM migrate.status() WHERE state = 'applied'"
        ),
        2
    );

    // A superuser's deploy sees the other role's query too (what pg_stat_activity shows it).
    admin
        .batch_execute(
            "SELECT migrate.add('3', E'-- migrate:no-transaction\\nCREATE INDEX CONCURRENTLY t_email2 ON t (email);');",
        )
        .unwrap();
    forgotten
        .batch_execute(
            "BEGIN ISOLATION LEVEL REPEATABLE READ; SELECT count(*) /* reporter_secret */ FROM pg_class;",
        )
        .unwrap();
    let mut own = cluster.connect_as("postgres", "deployer");
    let own_pid: i32 = own.query_one("SELECT pg_backend_pid()", &[]).unwrap().get(0);
    let long_query = thread::spawn(move || {
        own.batch_execute("SELECT pg_sleep(2) /* deployer_visible */")
            .unwrap();
    });
    thread::sleep(Duration::from_millis(300));
    let (mut su, su_notices) = with_notices(&cluster, "postgres");
    su.batch_execute("SET migrate.snapshot_wait_timeout = '5s'")
        .unwrap();
    let err = su.batch_execute("CALL migrate.deploy()").unwrap_err();
    assert_eq!(sqlstate(&err), "55P03");
    {
        let seen = su_notices.lock().unwrap();
        assert!(
            seen.iter()
                .any(|n| n.contains("is waiting for") && n.contains("reporter_secret")),
            "{seen:#?}"
        );
    }
    // Seen by a superuser, the idle-in-transaction session comes first, the active one after.
    let su_notices = su_notices.lock().unwrap().clone();
    let preflight = su_notices
        .iter()
        .find(|n| n.contains("waits for"))
        .expect("a preflight notice");
    let (idle_at, own_at) = (
        preflight.find(&format!("pid {forgotten_pid}")).expect("the forgotten session"),
        preflight.find(&format!("pid {own_pid}")).expect("the long query"),
    );
    assert!(idle_at < own_at, "idle in transaction first: {preflight}");
    assert!(preflight.contains("reporter, idle in transaction"), "{preflight}");
    long_query.join().unwrap();
    forgotten.batch_execute("COMMIT").unwrap();
    su.batch_execute("CALL migrate.deploy()").unwrap();
    assert_eq!(
        count(&mut admin, "SELECT count(*) FROM pg_index WHERE NOT indisvalid"),
        0
    );
}

/// Inserts into the partitioned table until stopped; returns the slowest insert and the count.
fn writer(cluster: &Cluster, seed: i64, stop: Arc<AtomicBool>) -> thread::JoinHandle<(Duration, i64)> {
    let mut w = cluster.connect("postgres");
    thread::spawn(move || {
        let (mut worst, mut n) = (Duration::ZERO, 0i64);
        while !stop.load(Ordering::Relaxed) {
            let k = (seed * 7919 + n * 104_729) % 3000;
            let start = Instant::now();
            w.execute("INSERT INTO ev (k, v) VALUES ($1, 'w')", &[&(k as i32)])
                .unwrap();
            worst = worst.max(start.elapsed());
            n += 1;
            thread::sleep(Duration::from_millis(3));
        }
        (worst, n)
    })
}

fn leaf_indexes_valid(c: &mut Client) -> (i64, i64) {
    let leaves = count(
        c,
        "SELECT count(*) FROM pg_partition_tree('ev') WHERE isleaf",
    );
    let valid = count(
        c,
        "SELECT count(*) FROM pg_partition_tree('ev_k_id') p JOIN pg_index i ON i.indexrelid = p.relid \
         WHERE p.isleaf AND i.indisvalid",
    );
    (leaves, valid)
}

#[test]
fn partitioned_index_by_the_recipe_with_writers_a_kill_and_a_failure() {
    let cluster = Cluster::start("cic-partitioned", &[]);
    let mut c = cluster.connect("postgres");
    c.batch_execute(
        "CREATE EXTENSION migrate;
         SELECT migrate.add('1', $$
             CREATE TABLE ev (id bigint GENERATED BY DEFAULT AS IDENTITY, k int NOT NULL, v text)
                 PARTITION BY RANGE (k);
             CREATE TABLE ev_1 PARTITION OF ev FOR VALUES FROM (0) TO (1000);
             CREATE TABLE ev_2 PARTITION OF ev FOR VALUES FROM (1000) TO (2000) PARTITION BY HASH (id);
             CREATE TABLE ev_2a PARTITION OF ev_2 FOR VALUES WITH (MODULUS 2, REMAINDER 0);
             CREATE TABLE ev_2b PARTITION OF ev_2 FOR VALUES WITH (MODULUS 2, REMAINDER 1);
             CREATE TABLE ev_3 PARTITION OF ev FOR VALUES FROM (2000) TO (3000);
             INSERT INTO ev (k, v) SELECT g % 3000, 'x' FROM generate_series(1, 120000) g;
             $$);
         SELECT migrate.add('2', E'-- migrate:no-transaction\\nCREATE UNIQUE INDEX CONCURRENTLY ev_k_id ON ev (k, id);');
         SELECT migrate.apply('1');
         ANALYZE ev;",
    )
    .unwrap();

    // plan() shows the recipe's steps.
    let plan: Vec<String> = c
        .query(
            "SELECT sql FROM migrate.plan() WHERE version = '2' ORDER BY statement",
            &[],
        )
        .unwrap()
        .iter()
        .map(|r| r.get(0))
        .collect();
    println!("plan: {plan:#?}");
    assert_eq!(
        plan[1..],
        [
            "CREATE UNIQUE INDEX ev_k_id ON ONLY public.ev (k, id)",
            "CREATE UNIQUE INDEX CONCURRENTLY ev_1_ev_k_id ON public.ev_1 (k, id)",
            "ALTER INDEX public.ev_k_id ATTACH PARTITION public.ev_1_ev_k_id",
            "CREATE UNIQUE INDEX ev_2_ev_k_id ON ONLY public.ev_2 (k, id)",
            "CREATE UNIQUE INDEX CONCURRENTLY ev_2a_ev_k_id ON public.ev_2a (k, id)",
            "ALTER INDEX public.ev_2_ev_k_id ATTACH PARTITION public.ev_2a_ev_k_id",
            "CREATE UNIQUE INDEX CONCURRENTLY ev_2b_ev_k_id ON public.ev_2b (k, id)",
            "ALTER INDEX public.ev_2_ev_k_id ATTACH PARTITION public.ev_2b_ev_k_id",
            "ALTER INDEX public.ev_k_id ATTACH PARTITION public.ev_2_ev_k_id",
            "CREATE UNIQUE INDEX CONCURRENTLY ev_3_ev_k_id ON public.ev_3 (k, id)",
            "ALTER INDEX public.ev_k_id ATTACH PARTITION public.ev_3_ev_k_id",
        ]
        .map(String::from)
    );

    let stop = Arc::new(AtomicBool::new(false));
    let writers: Vec<_> = (1..=3).map(|seed| writer(&cluster, seed, stop.clone())).collect();

    // 1. The worker is killed while a partition's build waits: a session holding a lock on
    // ev_2a (only) keeps its build waiting for writers, and the test terminates the worker.
    let mut holder = cluster.connect("postgres");
    holder
        .batch_execute("BEGIN; LOCK TABLE ev_2a IN ROW EXCLUSIVE MODE;")
        .unwrap();
    let killer = {
        let mut k = cluster.connect("postgres");
        thread::spawn(move || {
            let deadline = Instant::now() + Duration::from_secs(60);
            while Instant::now() < deadline {
                let rows = k
                    .query(
                        "SELECT p.pid FROM pg_stat_progress_create_index p \
                         WHERE p.phase = 'waiting for writers before build' AND p.relid = 'ev_2a'::regclass",
                        &[],
                    )
                    .unwrap();
                if let Some(r) = rows.first() {
                    thread::sleep(Duration::from_millis(500));
                    let pid: i32 = r.get(0);
                    k.execute("SELECT pg_terminate_backend($1)", &[&pid]).unwrap();
                    return true;
                }
                thread::sleep(Duration::from_millis(50));
            }
            false
        })
    };
    let mut deploy = cluster.connect("postgres");
    let err = deploy.batch_execute("CALL migrate.deploy()").unwrap_err();
    assert!(killer.join().unwrap(), "the worker was killed mid-way");
    holder.batch_execute("COMMIT").unwrap();
    println!("after the kill: {} {}", sqlstate(&err), err);
    assert_eq!(
        count(&mut c, "SELECT count(*) FROM pg_index WHERE indexrelid = 'ev_1_ev_k_id'::regclass AND indisvalid"),
        1,
        "the partitions before the kill are done"
    );
    assert_eq!(
        count(&mut c, "SELECT count(*) FROM pg_index WHERE indexrelid = 'ev_k_id'::regclass AND NOT indisvalid"),
        1,
        "the parent's index is not valid yet"
    );

    // 2. A partition with duplicates: its build fails, its invalid index is dropped.
    c.batch_execute("INSERT INTO ev (id, k, v) VALUES (-1, 2500, 'dup'), (-1, 2500, 'dup')")
        .unwrap();
    let err = deploy.batch_execute("CALL migrate.deploy()").unwrap_err();
    println!("the duplicate: {} {}", sqlstate(&err), err);
    assert_eq!(sqlstate(&err), "23505");
    assert_eq!(
        count(&mut c, "SELECT count(*) FROM pg_class WHERE relname = 'ev_3_ev_k_id'"),
        0,
        "the failed partition's invalid index was dropped"
    );
    let (leaves, valid) = leaf_indexes_valid(&mut c);
    assert_eq!((leaves, valid), (4, 3), "ev_1, ev_2a and ev_2b are attached and valid");

    // 3. Fixed, the rerun finishes: only ev_3 is built.
    c.batch_execute("DELETE FROM ev WHERE id = -1").unwrap();
    let start = Instant::now();
    deploy.batch_execute("CALL migrate.deploy()").unwrap();
    println!("the rerun took {:?}", start.elapsed());
    stop.store(true, Ordering::Relaxed);
    let mut worst = Duration::ZERO;
    let mut writes = 0;
    for w in writers {
        let (slowest, n) = w.join().unwrap();
        worst = worst.max(slowest);
        writes += n;
    }
    println!("{writes} concurrent inserts, slowest {worst:?}");
    assert!(writes > 100);
    assert!(worst < Duration::from_millis(1500), "a writer waited {worst:?}");

    assert_eq!(
        count(&mut c, "SELECT count(*) FROM pg_index WHERE indexrelid = 'ev_k_id'::regclass AND indisvalid AND indisunique"),
        1,
        "the parent's index is valid"
    );
    assert_eq!(
        count(&mut c, "SELECT count(*) FROM pg_index WHERE indexrelid = 'ev_2_ev_k_id'::regclass AND indisvalid"),
        1,
        "the sub-partitioned partition's index is valid"
    );
    assert_eq!(leaf_indexes_valid(&mut c), (4, 4));
    assert_eq!(count(&mut c, "SELECT count(*) FROM pg_index WHERE NOT indisvalid"), 0);
    let note: String = c
        .query_one(
            "SELECT note FROM migrate.jobs WHERE migration = '2 (up)' AND state = 'succeeded'",
            &[],
        )
        .unwrap()
        .get(0);
    println!("note: {note}");
    assert!(note.contains("1 concurrent build"), "{note}");
    // The unique index works like one made by CREATE UNIQUE INDEX on the parent.
    let dup = c
        .batch_execute("INSERT INTO ev (id, k, v) VALUES (-2, 10, 'a'), (-2, 10, 'b')")
        .unwrap_err();
    assert_eq!(sqlstate(&dup), "23505");
}
