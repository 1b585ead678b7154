//! Eight application replicas start at once and all call `migrate.apply()` on twenty pending
//! migrations: each migration runs exactly once, nobody gets an error, the others find nothing
//! left to do.

use std::sync::{Arc, Barrier};

use migrate_system_tests::Cluster;

const SESSIONS: usize = 8;
const MIGRATIONS: usize = 20;

#[test]
fn eight_sessions_apply_twenty_migrations_exactly_once() {
    let cluster = Cluster::start("concurrent-apply", &[]);
    let mut admin = cluster.connect("postgres");
    admin
        .batch_execute(
            "CREATE EXTENSION migrate;
             CREATE TABLE ran (version int NOT NULL, backend int NOT NULL DEFAULT pg_backend_pid());",
        )
        .unwrap();
    for i in 1..=MIGRATIONS {
        // Each migration is slow enough that all sessions arrive while the first one works.
        let up = format!(
            "CREATE TABLE t{i} (id int); INSERT INTO ran (version) VALUES ({i}); SELECT pg_sleep(0.05);"
        );
        admin
            .execute("SELECT migrate.add($1, $2)", &[&i.to_string(), &up])
            .unwrap();
    }

    let start = Arc::new(Barrier::new(SESSIONS));
    let handles: Vec<_> = (0..SESSIONS)
        .map(|_| {
            let mut client = cluster.connect("postgres");
            let start = Arc::clone(&start);
            std::thread::spawn(move || {
                start.wait();
                client
                    .query("SELECT version FROM migrate.apply()", &[])
                    .map(|rows| rows.len())
                    .map_err(|e| e.to_string())
            })
        })
        .collect();
    let results: Vec<Result<usize, String>> =
        handles.into_iter().map(|h| h.join().unwrap()).collect();

    let errors: Vec<&String> = results.iter().filter_map(|r| r.as_ref().err()).collect();
    assert!(errors.is_empty(), "sessions failed: {errors:?}");
    let counts: Vec<usize> = results.into_iter().map(Result::unwrap).collect();
    assert_eq!(
        counts.iter().sum::<usize>(),
        MIGRATIONS,
        "per-session counts: {counts:?}"
    );
    assert_eq!(
        counts.iter().filter(|&&c| c > 0).count(),
        1,
        "one session applied everything: {counts:?}"
    );

    let row = admin
        .query_one(
            "SELECT count(*), count(DISTINCT version), count(DISTINCT backend) FROM ran",
            &[],
        )
        .unwrap();
    assert_eq!(
        row.get::<_, i64>(0),
        MIGRATIONS as i64,
        "each migration ran once"
    );
    assert_eq!(row.get::<_, i64>(1), MIGRATIONS as i64);
    assert_eq!(row.get::<_, i64>(2), 1);
    let applied: i64 = admin
        .query_one(
            "SELECT count(*) FROM migrate.status() WHERE state = 'applied'",
            &[],
        )
        .unwrap()
        .get(0);
    assert_eq!(applied, MIGRATIONS as i64);
    let events: i64 = admin
        .query_one(
            "SELECT count(*) FROM migrate.history WHERE action = 'apply'",
            &[],
        )
        .unwrap()
        .get(0);
    assert_eq!(events, MIGRATIONS as i64);
}

/// Under REPEATABLE READ, a session whose snapshot predates another session's apply() must not
/// apply the same migrations again from its stale view: it gets a serialization failure (40001)
/// and a retry finds nothing pending.
#[test]
fn repeatable_read_loser_gets_a_serialization_failure() {
    let cluster = Cluster::start("repeatable-read", &[]);
    let mut winner = cluster.connect("postgres");
    let mut loser = cluster.connect("postgres");
    winner
        .batch_execute(
            "CREATE EXTENSION migrate;
             CREATE TABLE ran (version int);
             SELECT migrate.add('1', 'INSERT INTO ran VALUES (1)');",
        )
        .unwrap();
    let mut tx = loser
        .build_transaction()
        .isolation_level(postgres::IsolationLevel::RepeatableRead)
        .start()
        .unwrap();
    tx.query("SELECT count(*) FROM migrate.migrations", &[])
        .unwrap(); // takes the snapshot
    winner.query("SELECT migrate.apply()", &[]).unwrap();
    let err = tx
        .query("SELECT migrate.apply()", &[])
        .expect_err("stale snapshot must not re-apply");
    assert_eq!(
        err.as_db_error().map(|d| d.code().code()),
        Some("40001"),
        "{err}"
    );
    drop(tx);
    let retried = loser
        .query("SELECT version FROM migrate.apply()", &[])
        .unwrap();
    assert!(retried.is_empty());
    let ran: i64 = winner
        .query_one("SELECT count(*) FROM ran", &[])
        .unwrap()
        .get(0);
    assert_eq!(ran, 1);
}
