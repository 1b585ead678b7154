//! The lock-queue outage, live. A long transaction holds ACCESS SHARE on a table; a migration's
//! `ALTER TABLE ... ADD COLUMN` queues for ACCESS EXCLUSIVE; every reader arriving after it
//! queues behind the ALTER. With the guard, the ALTER gives up after about migrate.lock_timeout
//! (55P03) and the reader waits no longer than that. Without it (guard off, the default
//! lock_timeout of 0), the reader waits for the whole long transaction.

use std::thread;
use std::time::{Duration, Instant};

use migrate_system_tests::Cluster;

const HOLD: Duration = Duration::from_secs(4);

/// Returns (how long the ALTER took and its SQLSTATE, how long the reader waited).
fn scenario(cluster: &Cluster, guard: &str) -> (Duration, Option<String>, Duration) {
    let mut holder = cluster.connect("postgres");
    let mut ddl = cluster.connect("postgres");
    let mut reader = cluster.connect("postgres");
    ddl.batch_execute(&format!("SET migrate.guard = {guard}"))
        .unwrap();

    let hold = thread::spawn(move || {
        let mut tx = holder.transaction().unwrap();
        tx.query("SELECT count(*) FROM busy", &[]).unwrap();
        thread::sleep(HOLD);
        tx.commit().unwrap();
    });
    thread::sleep(Duration::from_millis(300));
    let alter = thread::spawn(move || {
        let start = Instant::now();
        let result = ddl.batch_execute("ALTER TABLE busy ADD COLUMN extra int");
        let code = result
            .err()
            .and_then(|e| e.as_db_error().map(|d| d.code().code().to_string()));
        (start.elapsed(), code)
    });
    thread::sleep(Duration::from_millis(200));
    let start = Instant::now();
    reader.query("SELECT count(*) FROM busy", &[]).unwrap();
    let reader_wait = start.elapsed();
    let (ddl_time, code) = alter.join().unwrap();
    hold.join().unwrap();
    (ddl_time, code, reader_wait)
}

#[test]
fn guarded_ddl_gives_up_instead_of_stalling_readers() {
    let cluster = Cluster::start("lock-queue", &[]);
    let mut admin = cluster.connect("postgres");
    admin
        .batch_execute(
            "CREATE EXTENSION migrate;
             CREATE TABLE busy (id int PRIMARY KEY);
             INSERT INTO busy SELECT generate_series(1, 1000);",
        )
        .unwrap();

    let (ddl_time, code, reader_wait) = scenario(&cluster, "enforce");
    println!(
        "guard on:  ALTER gave up after {ddl_time:?} ({code:?}); reader waited {reader_wait:?}"
    );
    assert_eq!(
        code.as_deref(),
        Some("55P03"),
        "the ALTER gives up with lock_not_available"
    );
    assert!(
        ddl_time >= Duration::from_millis(900) && ddl_time < Duration::from_millis(2500),
        "{ddl_time:?}"
    );
    assert!(
        reader_wait < Duration::from_millis(1500),
        "reader waited {reader_wait:?}"
    );

    let (ddl_time, code, reader_wait) = scenario(&cluster, "off");
    println!(
        "guard off: ALTER finished after {ddl_time:?} ({code:?}); reader waited {reader_wait:?}"
    );
    assert_eq!(
        code, None,
        "without a lock_timeout the ALTER waits and succeeds"
    );
    assert!(
        reader_wait >= Duration::from_secs(3),
        "reader queued behind the ALTER: {reader_wait:?}"
    );
}
