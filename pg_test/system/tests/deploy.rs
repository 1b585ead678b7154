//! `CALL migrate.deploy()` on real servers: a concurrent index built top-level by the worker
//! between two transactional migrations while writers keep writing; a failing unique build
//! recorded, cleaned up and resumed; a lock outwaited by retries while readers never queue
//! longer than about one lock_timeout; deploying back through non-transactional down scripts.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread;
use std::time::{Duration, Instant};

use migrate_system_tests::{job_worker_waiting_for_a_lock, Client, Cluster};

fn sqlstate(e: &postgres::Error) -> String {
    e.as_db_error()
        .map(|d| d.code().code().to_string())
        .unwrap_or_else(|| format!("not a server error: {e}"))
}

fn states(c: &mut Client) -> Vec<(String, String)> {
    c.query("SELECT version, state FROM migrate.status()", &[])
        .unwrap()
        .iter()
        .map(|r| (r.get(0), r.get(1)))
        .collect()
}

fn count(c: &mut Client, sql: &str) -> i64 {
    c.query_one(sql, &[]).unwrap().get(0)
}

/// Registers the three migrations of the zero-downtime index change: a table with data, a
/// concurrent index (non-transactional, with a non-transactional down), a new column.
fn register(c: &mut Client, rows: i64) {
    c.batch_execute(&format!(
        "CREATE EXTENSION migrate;
         SELECT migrate.add('1', 'CREATE TABLE t (id bigserial PRIMARY KEY, email text, n int);
                                  INSERT INTO t (email, n) SELECT ''u'' || g, g FROM generate_series(1, {rows}) g;',
                            'DROP TABLE t;');
         SELECT migrate.add('2', E'-- migrate:no-transaction\\nCREATE INDEX CONCURRENTLY t_email ON t (email);',
                            E'-- migrate:no-transaction\\nDROP INDEX CONCURRENTLY t_email;');
         SELECT migrate.add('3', 'ALTER TABLE t ADD COLUMN note text;', 'ALTER TABLE t DROP COLUMN note;');"
    ))
    .unwrap();
}

#[test]
fn concurrent_index_between_transactional_migrations_and_back() {
    let cluster = Cluster::start("deploy-cic", &[]);
    let mut c = cluster.connect("postgres");
    register(&mut c, 200_000);
    c.batch_execute("SELECT migrate.apply('1')").unwrap();

    // Writers insert all along; none may wait long behind the index build.
    let stop = Arc::new(AtomicBool::new(false));
    let writer = {
        let stop = stop.clone();
        let mut w = cluster.connect("postgres");
        thread::spawn(move || {
            let (mut worst, mut n) = (Duration::ZERO, 0);
            while !stop.load(Ordering::Relaxed) {
                let start = Instant::now();
                w.execute("INSERT INTO t (email, n) VALUES ('writer', 0)", &[])
                    .unwrap();
                worst = worst.max(start.elapsed());
                n += 1;
                thread::sleep(Duration::from_millis(5));
            }
            (worst, n)
        })
    };
    let start = Instant::now();
    c.batch_execute("CALL migrate.deploy()").unwrap();
    let took = start.elapsed();
    stop.store(true, Ordering::Relaxed);
    let (worst, writes) = writer.join().unwrap();
    println!("deploy took {took:?}; {writes} concurrent inserts, slowest {worst:?}");

    assert_eq!(
        states(&mut c),
        [("1", "applied"), ("2", "applied"), ("3", "applied")]
            .map(|(v, s)| (v.to_string(), s.to_string()))
    );
    assert_eq!(
        count(
            &mut c,
            "SELECT count(*) FROM pg_index WHERE indexrelid = 't_email'::regclass AND indisvalid AND indisready"
        ),
        1,
        "the concurrent index is valid"
    );
    assert!(writes > 0);
    assert!(worst < Duration::from_secs(1), "a writer waited {worst:?}");
    let row = c
        .query_one(
            "SELECT state, statements_done, statements_total, rows_done FROM migrate.jobs \
             WHERE migration = '2 (up)'",
            &[],
        )
        .unwrap();
    assert_eq!(
        (
            row.get::<_, String>(0),
            row.get::<_, Option<i64>>(1),
            row.get::<_, Option<i64>>(2),
            row.get::<_, Option<i64>>(3)
        ),
        ("succeeded".to_string(), Some(1), Some(1), None)
    );

    // Back to 1: the down scripts of 3 (transactional) and 2 (DROP INDEX CONCURRENTLY) run.
    c.batch_execute("CALL migrate.deploy('1')").unwrap();
    assert_eq!(
        states(&mut c),
        [("1", "applied"), ("2", "pending"), ("3", "pending")]
            .map(|(v, s)| (v.to_string(), s.to_string()))
    );
    assert_eq!(
        count(
            &mut c,
            "SELECT count(*) FROM pg_class WHERE relname = 't_email'"
        ),
        0
    );
    assert_eq!(
        count(
            &mut c,
            "SELECT count(*) FROM pg_attribute WHERE attrelid = 't'::regclass AND attname = 'note'"
        ),
        0
    );
    let actions: Vec<String> = c
        .query(
            "SELECT version || ' ' || action FROM migrate.history WHERE action = 'rollback' ORDER BY id",
            &[],
        )
        .unwrap()
        .iter()
        .map(|r| r.get(0))
        .collect();
    assert_eq!(actions, ["3 rollback", "2 rollback"]);

    // And forward again: a second job builds the index anew.
    c.batch_execute("CALL migrate.deploy()").unwrap();
    assert_eq!(
        count(
            &mut c,
            "SELECT count(*) FROM migrate.jobs WHERE migration = '2 (up)' AND state = 'succeeded'"
        ),
        2
    );
}

#[test]
fn failed_unique_build_is_recorded_cleaned_up_and_resumed() {
    let cluster = Cluster::start("deploy-unique", &[]);
    let mut c = cluster.connect("postgres");
    c.batch_execute(
        "CREATE EXTENSION migrate;
         CREATE TABLE users (id int PRIMARY KEY, email text, nick text);
         INSERT INTO users SELECT g, 'u' || g, 'n' || g FROM generate_series(1, 50000) g;
         UPDATE users SET email = 'dup@example.com' WHERE id IN (7, 70);
         SELECT migrate.add('1', E'-- migrate:no-transaction\\n\
             CREATE INDEX CONCURRENTLY users_nick ON users (nick);\\n\
             CREATE UNIQUE INDEX CONCURRENTLY users_email ON users (email);');
         SELECT migrate.add('2', 'ALTER TABLE users ADD COLUMN verified boolean;');",
    )
    .unwrap();

    let err = c.batch_execute("CALL migrate.deploy()").unwrap_err();
    assert_eq!(sqlstate(&err), "23505", "{err:?}");
    let message = err.as_db_error().unwrap().message().to_string();
    println!("first deploy: {message}");
    assert!(message.contains("statement 2 of 2"), "{message}");

    // Recorded: in the history with its SQLSTATE, in the job with what was done.
    let row = c
        .query_one(
            "SELECT error_sqlstate, error_message FROM migrate.history \
             WHERE version = '1' AND error_sqlstate IS NOT NULL",
            &[],
        )
        .unwrap();
    assert_eq!(row.get::<_, String>(0), "23505");
    assert!(row
        .get::<_, String>(1)
        .contains("dropped invalid index public.users_email"));
    let row = c
        .query_one(
            "SELECT state, statements_done FROM migrate.jobs WHERE migration = '1 (up)'",
            &[],
        )
        .unwrap();
    assert_eq!(
        (row.get::<_, String>(0), row.get::<_, Option<i64>>(1)),
        ("failed".to_string(), Some(1))
    );
    // Nothing invalid left behind, the first index stays, and 2 did not run.
    assert_eq!(
        count(&mut c, "SELECT count(*) FROM pg_index WHERE NOT indisvalid"),
        0
    );
    assert_eq!(
        count(
            &mut c,
            "SELECT count(*) FROM pg_class WHERE relname = 'users_nick'"
        ),
        1
    );
    assert_eq!(
        states(&mut c),
        [("1", "pending"), ("2", "pending")].map(|(v, s)| (v.to_string(), s.to_string()))
    );

    // Fix the data; the next deploy resumes at the unique index (users_nick is not rebuilt).
    c.batch_execute("UPDATE users SET email = 'u70' WHERE id = 70")
        .unwrap();
    c.batch_execute("CALL migrate.deploy()").unwrap();
    assert_eq!(
        states(&mut c),
        [("1", "applied"), ("2", "applied")].map(|(v, s)| (v.to_string(), s.to_string()))
    );
    assert_eq!(
        count(
            &mut c,
            "SELECT count(*) FROM pg_index WHERE indexrelid = 'users_email'::regclass AND indisunique AND indisvalid"
        ),
        1
    );
    let row = c
        .query_one(
            "SELECT count(*), max(statements_done) FROM migrate.jobs WHERE migration = '1 (up)'",
            &[],
        )
        .unwrap();
    assert_eq!(
        (row.get::<_, i64>(0), row.get::<_, Option<i64>>(1)),
        (1, Some(2)),
        "the failed job was resumed, not replaced"
    );
}

#[test]
fn deploy_outwaits_a_lock_while_readers_wait_at_most_one_lock_timeout() {
    let cluster = Cluster::start("deploy-lock", &[]);
    let mut c = cluster.connect("postgres");
    c.batch_execute(
        "CREATE EXTENSION migrate;
         CREATE TABLE busy (id int PRIMARY KEY);
         INSERT INTO busy SELECT generate_series(1, 1000);
         SELECT migrate.add('1', 'ALTER TABLE busy ADD COLUMN extra int;');",
    )
    .unwrap();

    // A long transaction holds ACCESS SHARE for 4 s.
    let mut holder = cluster.connect("postgres");
    let hold = thread::spawn(move || {
        let mut tx = holder.transaction().unwrap();
        tx.query("SELECT count(*) FROM busy", &[]).unwrap();
        thread::sleep(Duration::from_secs(4));
        tx.commit().unwrap();
    });
    thread::sleep(Duration::from_millis(200));

    // A reader polls the table all along.
    let stop = Arc::new(AtomicBool::new(false));
    let reader = {
        let stop = stop.clone();
        let mut r = cluster.connect("postgres");
        thread::spawn(move || {
            let mut worst = Duration::ZERO;
            while !stop.load(Ordering::Relaxed) {
                let start = Instant::now();
                r.query("SELECT count(*) FROM busy", &[]).unwrap();
                worst = worst.max(start.elapsed());
                thread::sleep(Duration::from_millis(20));
            }
            worst
        })
    };
    // While the deploy waits between retries, apply() from another session is refused.
    let mut other = cluster.connect("postgres");
    let meddler = thread::spawn(move || {
        thread::sleep(Duration::from_millis(1500));
        other
            .batch_execute("SELECT migrate.apply()")
            .map_err(|e| sqlstate(&e))
    });
    let start = Instant::now();
    // One statement per query: in a multi-statement query CALL would run in a transaction block.
    c.batch_execute("SET migrate.lock_timeout = '1s'").unwrap();
    c.batch_execute("CALL migrate.deploy()").unwrap();
    let took = start.elapsed();
    assert_eq!(meddler.join().unwrap(), Err("55006".to_string()));
    stop.store(true, Ordering::Relaxed);
    let worst = reader.join().unwrap();
    hold.join().unwrap();
    println!("deploy took {took:?}; the reader waited at most {worst:?}");

    assert_eq!(states(&mut c), [("1".to_string(), "applied".to_string())]);
    assert!(
        took > Duration::from_millis(3500),
        "outwaited the 4 s lock: {took:?}"
    );
    assert!(
        worst < Duration::from_millis(1500),
        "a reader waited {worst:?}, more than about one lock_timeout"
    );
    assert_eq!(
        count(
            &mut c,
            "SELECT count(*) FROM migrate.history WHERE error_sqlstate IS NOT NULL"
        ),
        0,
        "lock timeouts that were retried are not failures"
    );
}

#[test]
fn deploy_refuses_to_run_inside_a_transaction_and_gives_up_after_its_retries() {
    let cluster = Cluster::start("deploy-errors", &[]);
    let mut c = cluster.connect("postgres");
    c.batch_execute(
        "CREATE EXTENSION migrate;
         CREATE TABLE busy (id int PRIMARY KEY);
         SELECT migrate.add('1', 'ALTER TABLE busy ADD COLUMN extra int;');",
    )
    .unwrap();
    let err = c
        .batch_execute("BEGIN; CALL migrate.deploy(); COMMIT;")
        .unwrap_err();
    assert_eq!(sqlstate(&err), "25001");
    c.batch_execute("ROLLBACK").unwrap();

    // The lock is held for longer than every retry: the deploy fails with 55P03, recorded.
    let mut holder = cluster.connect("postgres");
    let mut tx = holder.transaction().unwrap();
    tx.query("SELECT count(*) FROM busy", &[]).unwrap();
    c.batch_execute(
        "SET migrate.lock_timeout = '100ms'; SET migrate.lock_retries = 2; \
         SET migrate.lock_retry_delay = '50ms';",
    )
    .unwrap();
    let err = c.batch_execute("CALL migrate.deploy()").unwrap_err();
    assert_eq!(sqlstate(&err), "55P03", "{err:?}");
    tx.commit().unwrap();
    assert_eq!(
        count(
            &mut c,
            "SELECT count(*) FROM migrate.history WHERE version = '1' AND error_sqlstate = '55P03'"
        ),
        1
    );
    c.batch_execute("CALL migrate.deploy()").unwrap();
    assert_eq!(states(&mut c), [("1".to_string(), "applied".to_string())]);
}

#[test]
fn a_concurrent_build_killed_mid_way_is_cleaned_up_by_the_next_deploy() {
    let cluster = Cluster::start("deploy-crash", &[]);
    let mut c = cluster.connect("postgres");
    c.batch_execute(
        "CREATE EXTENSION migrate;
         CREATE TABLE t (id int PRIMARY KEY, v text);
         INSERT INTO t SELECT g, 'v' || g FROM generate_series(1, 20000) g;
         SELECT migrate.add('1', E'-- migrate:no-transaction\\nCREATE INDEX CONCURRENTLY t_v ON t (v);');",
    )
    .unwrap();
    // An open writing transaction makes the build wait after it created the (invalid) index.
    let mut holder = cluster.connect("postgres");
    holder
        .batch_execute("BEGIN; INSERT INTO t VALUES (0, 'held');")
        .unwrap();
    let mut deployer = cluster.connect("postgres");
    let deploy = thread::spawn(move || deployer.batch_execute("CALL migrate.deploy()").is_ok());
    let pid = job_worker_waiting_for_a_lock(&mut c, Duration::from_secs(30));
    assert_eq!(
        count(
            &mut c,
            "SELECT count(*) FROM pg_index WHERE indexrelid = 't_v'::regclass AND NOT indisvalid"
        ),
        1,
        "the build is half-way: its index exists and is invalid"
    );
    // While a job runs the migration, it cannot be resolved by hand.
    let err = c
        .batch_execute("SELECT migrate.resolve('1', 'applied')")
        .unwrap_err();
    assert_eq!(sqlstate(&err), "55006", "{err:?}");
    // kill -9: the postmaster resets every backend (the deploy's and the holder's too).
    let status = std::process::Command::new("kill")
        .args(["-9", &pid.to_string()])
        .status()
        .unwrap();
    assert!(status.success());
    assert!(
        !deploy.join().unwrap(),
        "the deploy's session went down with the server"
    );
    drop(holder);
    let mut c = cluster.connect_retry("postgres", Duration::from_secs(60));
    assert_eq!(
        count(
            &mut c,
            "SELECT count(*) FROM pg_index WHERE indexrelid = 't_v'::regclass AND NOT indisvalid"
        ),
        1,
        "the crash left the invalid index behind"
    );

    c.batch_execute("CALL migrate.deploy()").unwrap();
    assert_eq!(states(&mut c), [("1".to_string(), "applied".to_string())]);
    assert_eq!(
        count(
            &mut c,
            "SELECT count(*) FROM pg_index WHERE indexrelid = 't_v'::regclass AND indisvalid"
        ),
        1
    );
    assert_eq!(
        count(&mut c, "SELECT count(*) FROM pg_index WHERE NOT indisvalid"),
        0
    );
    let note: Option<String> = c
        .query_one(
            "SELECT note FROM migrate.jobs WHERE migration = '1 (up)'",
            &[],
        )
        .unwrap()
        .get(0);
    println!("job note after the second deploy: {note:?}");
    assert!(
        note.is_some_and(
            |n| n.contains("dropped invalid index public.t_v left by an earlier attempt")
        ),
    );
}

#[test]
fn a_non_transactional_migration_runs_as_its_role_which_must_log_in_on_pg15() {
    let cluster = Cluster::start("deploy-role", &[]);
    let mut c = cluster.connect("postgres");
    c.batch_execute(
        "CREATE EXTENSION migrate;
         CREATE ROLE owner_role NOLOGIN;
         GRANT migrate_admin TO owner_role;
         GRANT CREATE ON SCHEMA public TO owner_role;
         SET ROLE owner_role;
         CREATE TABLE t (id int PRIMARY KEY, v text);
         SELECT migrate.add('1', E'-- migrate:no-transaction\\nCREATE INDEX CONCURRENTLY t_v ON t (v);');
         RESET ROLE;",
    )
    .unwrap();
    let version: i32 = c
        .query_one("SELECT current_setting('server_version_num')::int", &[])
        .unwrap()
        .get(0);
    let result = c.batch_execute("CALL migrate.deploy()");
    if version < 170000 {
        let err = result.unwrap_err();
        assert_eq!(sqlstate(&err), "42501", "{err:?}");
        assert_eq!(states(&mut c), [("1".to_string(), "pending".to_string())]);
        c.batch_execute("ALTER ROLE owner_role LOGIN").unwrap();
        c.batch_execute("CALL migrate.deploy()").unwrap();
    } else {
        result.unwrap();
    }
    assert_eq!(states(&mut c), [("1".to_string(), "applied".to_string())]);
    // The worker logged in as the migration's role, not as a superuser.
    let role: String = c
        .query_one(
            "SELECT owner FROM migrate.jobs WHERE migration = '1 (up)'",
            &[],
        )
        .unwrap()
        .get(0);
    assert_eq!(role, "owner_role");
    let invalid = count(&mut c, "SELECT count(*) FROM pg_index WHERE NOT indisvalid");
    assert_eq!(invalid, 0);
}
