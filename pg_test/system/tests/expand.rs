//! Expand/contract on a real server under load: a big table (MIGRATE_EXPAND_ROWS, default
//! 1,000,000 rows) with two expansions at once, a rename with a type change (`total` numeric
//! -> `total_cents` bigint) and a type change that keeps the name (`n` int -> bigint), driven
//! by `CALL migrate.deploy()`: migration 1 expands both, migration 2 contracts both (deploy
//! waits for the backfills itself).
//!
//! - "Old application" writers (the old columns `total` and `n`) run from before the expand;
//!   the `total` writers retire before the contract (the column is dropped), the `n` writers
//!   keep writing through the contract (the name stays).
//! - "New application" writers (`total_cents`, and `n`) start right after the expand and run
//!   through the contract.
//! - A checker compares old and new for every row at every check while the expansion is
//!   open: no row where both are set and disagree; after the backfill no row without the new
//!   value.
//! - No writer fails, and none waits longer than about one migrate.lock_timeout.

use std::sync::atomic::{AtomicBool, AtomicI64, Ordering};
use std::sync::Arc;
use std::thread;
use std::time::{Duration, Instant};

use migrate_system_tests::{Client, Cluster};

const LOCK_TIMEOUT_MS: u64 = 1000;

fn rows() -> i64 {
    std::env::var("MIGRATE_EXPAND_ROWS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(1_000_000)
}

/// A writer loop: runs `step` until `stop`, returns (statements, slowest, errors).
fn writer(
    mut c: Client,
    stop: Arc<AtomicBool>,
    max_id: Arc<AtomicI64>,
    seed: u64,
    step: fn(&mut Client, i64, i64) -> Result<u64, postgres::Error>,
) -> thread::JoinHandle<(u64, Duration, Vec<String>)> {
    thread::spawn(move || {
        let (mut n, mut worst, mut errors) = (0u64, Duration::ZERO, Vec::new());
        let mut x = seed;
        while !stop.load(Ordering::Relaxed) {
            // xorshift: a row to update, anywhere in the table
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            let id = 1 + (x % max_id.load(Ordering::Relaxed) as u64) as i64;
            let start = Instant::now();
            if let Err(e) = step(&mut c, id, n as i64) {
                errors.push(format!("{e:?}"));
            }
            worst = worst.max(start.elapsed());
            n += 1;
            thread::sleep(Duration::from_millis(2));
        }
        (n, worst, errors)
    })
}

/// Old application: writes total (numeric) and n, knows nothing of the new columns.
fn old_total(c: &mut Client, id: i64, i: i64) -> Result<u64, postgres::Error> {
    if i % 4 == 0 {
        c.execute(
            "INSERT INTO orders (total, n) VALUES ($1::int8 / 4.0, $1::int8::int4)",
            &[&(i % 1000)],
        )
    } else {
        c.execute(
            "UPDATE orders SET total = total + 0.25 WHERE id = $1",
            &[&id],
        )
    }
}

/// Old application's other writers: only n, which keeps its name through the contract.
fn old_n(c: &mut Client, id: i64, i: i64) -> Result<u64, postgres::Error> {
    if i % 4 == 0 {
        c.execute(
            "INSERT INTO orders (n) VALUES ($1::int4)",
            &[&((i % 1000) as i32)],
        )
    } else {
        c.execute("UPDATE orders SET n = n + 1 WHERE id = $1", &[&id])
    }
}

/// New application: writes total_cents and n (values beyond int range once it is bigint).
fn new_app(c: &mut Client, id: i64, i: i64) -> Result<u64, postgres::Error> {
    if i % 4 == 0 {
        c.execute(
            "INSERT INTO orders (total_cents, n) VALUES ($1::int8, 7)",
            &[&(i % 100_000)],
        )
    } else {
        c.execute(
            "UPDATE orders SET total_cents = total_cents + 25 WHERE id = $1",
            &[&id],
        )
    }
}

fn count(c: &mut Client, sql: &str) -> i64 {
    c.query_one(sql, &[]).unwrap().get(0)
}

#[test]
fn rename_and_type_change_under_load_through_deploy() {
    let rows = rows();
    let cluster = Cluster::start(
        "expand",
        &[
            &format!("migrate.lock_timeout = '{LOCK_TIMEOUT_MS}ms'"),
            "max_worker_processes = 16",
        ],
    );
    let mut c = cluster.connect("postgres");
    c.batch_execute(&format!(
        "CREATE EXTENSION migrate;
         CREATE ROLE app LOGIN;
         GRANT CREATE ON SCHEMA public TO app;
         CREATE TABLE orders (id bigserial PRIMARY KEY, total numeric NOT NULL DEFAULT 0,
                              n int NOT NULL DEFAULT 0, note text);
         INSERT INTO orders (total, n) SELECT g / 4.0, g % 1000 FROM generate_series(1, {rows}) g;
         ALTER TABLE orders OWNER TO app;
         ALTER SEQUENCE orders_id_seq OWNER TO app;
         ANALYZE orders;
         SELECT migrate.add('1', $$
             SELECT migrate.expand_column('orders', 'total', 'total_cents', 'bigint',
                                          up => '(total * 100)::bigint', down => 'total_cents / 100.0');
             SELECT migrate.expand_column('orders', 'n', new_type => 'bigint');
           $$, $$
             SELECT migrate.undo_expand_column('orders', 'n');
             SELECT migrate.undo_expand_column('orders', 'total');
           $$);
         SELECT migrate.add('2', $$
             SELECT migrate.contract_column('orders', 'total');
             SELECT migrate.contract_column('orders', 'n');
           $$);"
    ))
    .unwrap();
    let max_id = Arc::new(AtomicI64::new(rows));
    let stop_old_total = Arc::new(AtomicBool::new(false));
    let stop_rest = Arc::new(AtomicBool::new(false));
    let mut old_total_writers = Vec::new();
    let mut other_writers = Vec::new();
    for i in 0..2 {
        old_total_writers.push(writer(
            cluster.connect_as("postgres", "app"),
            stop_old_total.clone(),
            max_id.clone(),
            11 + i,
            old_total,
        ));
    }
    other_writers.push(writer(
        cluster.connect_as("postgres", "app"),
        stop_rest.clone(),
        max_id.clone(),
        29,
        old_n,
    ));
    thread::sleep(Duration::from_millis(500));

    // Migration 1: the expand (deploy stops there: target '1').
    let start = Instant::now();
    c.batch_execute("CALL migrate.deploy('1')").unwrap();
    println!("expand deployed in {:?}", start.elapsed());
    for i in 0..2 {
        other_writers.push(writer(
            cluster.connect_as("postgres", "app"),
            stop_rest.clone(),
            max_id.clone(),
            41 + i,
            new_app,
        ));
    }

    // While the backfills run: old and new agree on every row where the new one is set.
    let mut checks = 0;
    let backfill_start = Instant::now();
    let mut checker = cluster.connect("postgres");
    loop {
        let disagree = count(
            &mut checker,
            "SELECT count(*) FROM orders WHERE (total_cents IS NOT NULL AND total_cents <> (total * 100)::bigint)
                OR (n_migrate_new IS NOT NULL AND n_migrate_new <> n)",
        );
        assert_eq!(disagree, 0, "rows where old and new disagree, check {checks}");
        checks += 1;
        let unfinished = count(
            &mut checker,
            "SELECT count(*) FROM migrate.expansions WHERE phase <> 'ready'",
        );
        if unfinished == 0 {
            break;
        }
        assert!(
            backfill_start.elapsed() < Duration::from_secs(600),
            "backfills did not finish"
        );
        thread::sleep(Duration::from_millis(500));
    }
    let backfill_took = backfill_start.elapsed();
    let unfilled = count(
        &mut checker,
        "SELECT count(*) FROM orders WHERE total_cents IS NULL OR n_migrate_new IS NULL
            OR total_cents <> (total * 100)::bigint OR n_migrate_new <> n",
    );
    assert_eq!(unfilled, 0, "rows without the new value after the backfills");
    println!("backfills of {rows} rows done in {backfill_took:?}; {checks} checks, all in sync");

    // The old application's total writers retire; migration 2 contracts while the others write.
    stop_old_total.store(true, Ordering::Relaxed);
    let mut worst_old = Duration::ZERO;
    for w in old_total_writers {
        let (n, worst, errors) = w.join().unwrap();
        assert!(errors.is_empty(), "old-application writer failed: {errors:?}");
        println!("old-application (total) writer: {n} statements, slowest {worst:?}");
        worst_old = worst_old.max(worst);
    }
    let start = Instant::now();
    c.batch_execute("CALL migrate.deploy()").unwrap();
    println!("contract deployed in {:?}", start.elapsed());
    thread::sleep(Duration::from_millis(500));
    stop_rest.store(true, Ordering::Relaxed);
    let mut worst_rest = Duration::ZERO;
    for w in other_writers {
        let (n, worst, errors) = w.join().unwrap();
        assert!(errors.is_empty(), "writer failed: {errors:?}");
        println!("writer (n / new application): {n} statements, slowest {worst:?}");
        worst_rest = worst_rest.max(worst);
    }
    let bound = Duration::from_millis(LOCK_TIMEOUT_MS + 500);
    assert!(
        worst_old < bound && worst_rest < bound,
        "a writer waited {:?} (bound {bound:?})",
        worst_old.max(worst_rest)
    );

    // The contract: total is gone, total_cents and n are bigint NOT NULL, nothing left over.
    let columns: Vec<(String, String, bool)> = c
        .query(
            "SELECT attname::text, format_type(atttypid, atttypmod), attnotnull FROM pg_attribute
             WHERE attrelid = 'orders'::regclass AND attnum > 0 AND NOT attisdropped ORDER BY attname",
            &[],
        )
        .unwrap()
        .iter()
        .map(|r| (r.get(0), r.get(1), r.get(2)))
        .collect();
    assert_eq!(
        columns,
        [
            ("id".into(), "bigint".into(), true),
            ("n".into(), "bigint".into(), true),
            ("note".into(), "text".into(), false),
            ("total_cents".into(), "bigint".into(), true),
        ]
    );
    assert_eq!(
        count(&mut c, "SELECT count(*) FROM pg_trigger WHERE tgrelid = 'orders'::regclass"),
        0
    );
    assert_eq!(
        count(
            &mut c,
            "SELECT count(*) FROM migrate.expansions WHERE phase = 'contracted'"
        ),
        2
    );
    assert_eq!(
        count(&mut c, "SELECT count(*) FROM orders WHERE total_cents IS NULL"),
        0
    );
    // The deploy waited for the gate itself (the contract was refused at least once, or the
    // backfills had already finished) and recorded both migrations applied.
    assert_eq!(
        count(
            &mut c,
            "SELECT count(*) FROM migrate.status() WHERE state = 'applied'"
        ),
        2
    );
}

/// deploy() waits for the gate: the contract is registered with the expand and deployed in
/// the same call, so it meets the backfill still running and must wait for it.
#[test]
fn deploy_waits_for_the_gate() {
    let cluster = Cluster::start("expand-gate", &[]);
    let mut c = cluster.connect("postgres");
    c.batch_execute(
        "CREATE EXTENSION migrate;
         CREATE ROLE app LOGIN;
         GRANT CREATE ON SCHEMA public TO app;
         CREATE TABLE people (id int PRIMARY KEY, fullname text);
         INSERT INTO people SELECT g, 'p' || g FROM generate_series(1, 200000) g;
         ALTER TABLE people OWNER TO app;
         SELECT migrate.add('1', $$SELECT migrate.expand_column('people', 'fullname', 'display_name');$$);
         SELECT migrate.add('2', $$SELECT migrate.contract_column('people', 'fullname');$$);",
    )
    .unwrap();
    let notices = Arc::new(std::sync::Mutex::new(Vec::<String>::new()));
    let mut config = postgres::Config::new();
    let seen = notices.clone();
    config
        .host("127.0.0.1")
        .port(cluster.port)
        .user("postgres")
        .dbname("postgres")
        .notice_callback(move |n| seen.lock().unwrap().push(n.message().to_string()));
    let mut d = config.connect(postgres::NoTls).unwrap();
    let start = Instant::now();
    d.batch_execute("CALL migrate.deploy()").unwrap();
    println!("deploy took {:?}", start.elapsed());
    let notices = notices.lock().unwrap();
    assert!(
        notices.iter().any(|n| n.contains("has not finished; waiting for it")),
        "deploy did not wait for the gate: {notices:?}"
    );
    assert_eq!(
        count(&mut c, "SELECT count(*) FROM people WHERE display_name IS DISTINCT FROM 'p' || id"),
        0
    );
    assert_eq!(
        count(&mut c, "SELECT count(*) FROM migrate.status() WHERE state = 'applied'"),
        2
    );
}

/// An open expansion survives pg_dump / pg_restore: the registry row (table by name), the
/// trigger and its job come back, the trigger syncs, and the contract goes through.
#[test]
fn an_open_expansion_survives_dump_and_restore() {
    let cluster = Cluster::start("expand-dump", &[]);
    let mut c = cluster.connect("postgres");
    for sql in ["CREATE ROLE app LOGIN", "CREATE DATABASE source", "CREATE DATABASE restored"] {
        c.batch_execute(sql).unwrap();
    }
    let mut s = cluster.connect("source");
    s.batch_execute(
        "CREATE EXTENSION migrate;
         GRANT CREATE ON SCHEMA public TO app;
         CREATE TABLE o (id int PRIMARY KEY, total numeric NOT NULL DEFAULT 0);
         INSERT INTO o SELECT g, g FROM generate_series(1, 1000) g;
         ALTER TABLE o OWNER TO app;",
    )
    .unwrap();
    let job: i64 = s
        .query_one(
            "SELECT migrate.expand_column('o', 'total', 'total_cents', 'bigint',
                                          up => '(total * 100)::bigint', down => 'total_cents / 100.0')",
            &[],
        )
        .unwrap()
        .get(0);
    s.batch_execute(&format!("CALL migrate.wait_job({job})")).unwrap();
    let dump = cluster.dir.join("expand.dump");
    let dump = dump.to_str().unwrap();
    cluster.client_tool("pg_dump", &["-Fc", "-d", "source", "-f", dump]);
    cluster.client_tool("pg_restore", &["--exit-on-error", "-d", "restored", dump]);
    let mut r = cluster.connect("restored");
    let row = r
        .query_one(
            "SELECT \"table\"::text, old_column::text, new_column::text, job_id, phase FROM migrate.expansions",
            &[],
        )
        .unwrap();
    assert_eq!(
        (
            row.get::<_, String>(0),
            row.get::<_, String>(1),
            row.get::<_, String>(2),
            row.get::<_, i64>(3),
            row.get::<_, String>(4)
        ),
        ("o".into(), "total".into(), "total_cents".into(), job, "ready".into())
    );
    r.batch_execute("INSERT INTO o (id, total) VALUES (5000, 3)")
        .unwrap();
    assert_eq!(
        count(&mut r, "SELECT total_cents FROM o WHERE id = 5000"),
        300
    );
    r.batch_execute("SELECT migrate.contract_column('o', 'total')")
        .unwrap();
    assert_eq!(
        count(
            &mut r,
            "SELECT count(*) FROM o WHERE total_cents IS NULL OR total_cents <> id * 100 AND id <> 5000"
        ),
        0
    );
}

/// The contract's brief ACCESS EXCLUSIVE is bounded: a long transaction reading the table makes
/// the contract give up after migrate.lock_timeout, deploy() rolls back and retries, and the
/// writers queued behind the contract never wait much longer than one lock_timeout.
#[test]
fn contract_outwaits_a_long_reader() {
    let cluster = Cluster::start(
        "expand-lock",
        &[&format!("migrate.lock_timeout = '{LOCK_TIMEOUT_MS}ms'"), "migrate.lock_retries = 10"],
    );
    let mut c = cluster.connect("postgres");
    c.batch_execute(
        "CREATE EXTENSION migrate;
         CREATE ROLE app LOGIN;
         GRANT CREATE ON SCHEMA public TO app;
         CREATE TABLE people (id int PRIMARY KEY, fullname text);
         INSERT INTO people SELECT g, 'p' || g FROM generate_series(1, 50000) g;
         ALTER TABLE people OWNER TO app;
         SELECT migrate.add('1', $$SELECT migrate.expand_column('people', 'fullname', 'display_name');$$);
         SELECT migrate.add('2', $$SELECT migrate.contract_column('people', 'fullname');$$);",
    )
    .unwrap();
    c.batch_execute("CALL migrate.deploy('1')").unwrap();
    let job: i64 = c
        .query_one("SELECT job_id FROM migrate.expansions", &[])
        .unwrap()
        .get(0);
    c.batch_execute(&format!("CALL migrate.wait_job({job})")).unwrap();

    // New application writers on display_name, all along.
    let stop = Arc::new(AtomicBool::new(false));
    let max_id = Arc::new(AtomicI64::new(50_000));
    fn rename_writer(c: &mut Client, id: i64, i: i64) -> Result<u64, postgres::Error> {
        c.execute(
            "UPDATE people SET display_name = 'w' || $2::int8 WHERE id = $1::int8::int4",
            &[&id, &i],
        )
    }
    let writers: Vec<_> = (0..2)
        .map(|i| {
            writer(
                cluster.connect_as("postgres", "app"),
                stop.clone(),
                max_id.clone(),
                7 + i,
                rename_writer,
            )
        })
        .collect();
    // A reader holds ACCESS SHARE for 4 s.
    let mut reader = cluster.connect("postgres");
    reader
        .batch_execute("BEGIN; SELECT count(*) FROM people;")
        .unwrap();
    let releaser = thread::spawn(move || {
        thread::sleep(Duration::from_secs(4));
        reader.batch_execute("COMMIT").unwrap();
    });
    let start = Instant::now();
    c.batch_execute("CALL migrate.deploy()").unwrap();
    let took = start.elapsed();
    releaser.join().unwrap();
    thread::sleep(Duration::from_millis(300));
    stop.store(true, Ordering::Relaxed);
    let mut worst_all = Duration::ZERO;
    for w in writers {
        let (n, worst, errors) = w.join().unwrap();
        assert!(errors.is_empty(), "writer failed: {errors:?}");
        println!("writer: {n} statements, slowest {worst:?}");
        worst_all = worst_all.max(worst);
    }
    println!("contract deployed in {took:?} behind a 4 s reader");
    assert!(took >= Duration::from_secs(3), "the contract did not wait for the reader");
    let bound = Duration::from_millis(LOCK_TIMEOUT_MS + 500);
    assert!(worst_all < bound, "a writer waited {worst_all:?} (bound {bound:?})");
    assert_eq!(
        count(&mut c, "SELECT count(*) FROM migrate.status() WHERE state = 'applied'"),
        2
    );
    assert_eq!(
        count(&mut c, "SELECT count(*) FROM people WHERE display_name IS NULL"),
        0
    );
}

/// A backfill cancelled while deploy() waits at the gate: the deploy stops with the
/// contract's 55000, recorded, the contract migration left pending, nothing half-done.
#[test]
fn deploy_stops_when_the_gated_backfill_is_cancelled() {
    let cluster = Cluster::start("expand-cancel", &[]);
    let mut c = cluster.connect("postgres");
    c.batch_execute(
        "CREATE EXTENSION migrate;
         CREATE ROLE app LOGIN;
         GRANT CREATE ON SCHEMA public TO app;
         CREATE TABLE people (id int PRIMARY KEY, fullname text);
         INSERT INTO people SELECT g, 'p' || g FROM generate_series(1, 400000) g;
         ALTER TABLE people OWNER TO app;
         SELECT migrate.add('1', $$SELECT migrate.expand_column('people', 'fullname', 'display_name');$$);
         SELECT migrate.add('2', $$SELECT migrate.contract_column('people', 'fullname');$$);",
    )
    .unwrap();
    let mut d = cluster.connect("postgres");
    let deploy = thread::spawn(move || d.batch_execute("CALL migrate.deploy()"));
    // Cancel the backfill once it runs (and so once deploy waits for it).
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let running = count(
            &mut c,
            "SELECT count(*) FROM migrate.jobs WHERE state = 'running' AND rows_done > 0",
        );
        if running > 0 {
            break;
        }
        assert!(Instant::now() < deadline, "the backfill never ran");
        thread::sleep(Duration::from_millis(50));
    }
    c.batch_execute("SELECT migrate.cancel_job(job_id) FROM migrate.expansions")
        .unwrap();
    let e = deploy.join().unwrap().expect_err("deploy went on past a cancelled backfill");
    assert_eq!(
        e.as_db_error().map(|d| d.code().code().to_string()),
        Some("55000".to_string()),
        "{e:?}"
    );
    let states: Vec<(String, String)> = c
        .query("SELECT version, state FROM migrate.status()", &[])
        .unwrap()
        .iter()
        .map(|r| (r.get(0), r.get(1)))
        .collect();
    assert_eq!(
        states,
        [("1".into(), "applied".into()), ("2".into(), "pending".into())]
    );
    // Nothing of the contract happened: both columns and the trigger are there.
    assert_eq!(
        count(
            &mut c,
            "SELECT count(*) FROM pg_attribute WHERE attrelid = 'people'::regclass
             AND attname IN ('fullname', 'display_name') AND NOT attisdropped"
        ),
        2
    );
    assert_eq!(
        count(&mut c, "SELECT count(*) FROM pg_trigger WHERE tgrelid = 'people'::regclass"),
        1
    );
}
