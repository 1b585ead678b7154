//! `pg_dump` / `pg_restore` of a database that uses the extension keeps the registry and its full
//! history, and the restored database goes on migrating (sequences restored too).

use migrate_system_tests::{Client, Cluster};

fn snapshot(client: &mut Client) -> (Vec<String>, Vec<String>) {
    let status = client
        .query(
            "SELECT format('%s|%s|%s|%s|%s|%s', version, name, state, applied_by, applied_at, checksum_ok) FROM migrate.status()",
            &[],
        )
        .unwrap()
        .iter()
        .map(|r| r.get(0))
        .collect();
    let history = client
        .query(
            "SELECT format('%s|%s|%s|%s|%s|%s|%s', id, run_id, version, action, role, started_at, finished_at) FROM migrate.history ORDER BY id",
            &[],
        )
        .unwrap()
        .iter()
        .map(|r| r.get(0))
        .collect();
    (status, history)
}

#[test]
fn dump_and_restore_keep_the_registry_and_history() {
    let cluster = Cluster::start("dump-restore", &[]);
    let mut admin = cluster.connect("postgres");
    admin.batch_execute("CREATE DATABASE source").unwrap();
    admin.batch_execute("CREATE DATABASE restored").unwrap();

    let mut source = cluster.connect("source");
    source
        .batch_execute(
            "CREATE EXTENSION migrate;
             SELECT migrate.add('1', 'CREATE TABLE users (id int PRIMARY KEY)', 'DROP TABLE users', 'users');
             SELECT migrate.add('2', 'ALTER TABLE users ADD COLUMN email text', 'ALTER TABLE users DROP COLUMN email');
             SELECT migrate.add('3', 'CREATE TABLE orders (id int)', 'DROP TABLE orders', NULL, '{\"requires\": [\"1\"]}');
             SELECT migrate.apply();
             SELECT migrate.rollback();
             SELECT migrate.add('4', 'CREATE INDEX CONCURRENTLY users_email ON users (email)', NULL, NULL, '{\"transaction\": false}');",
        )
        .unwrap();
    let before = snapshot(&mut source);
    assert_eq!(before.0.len(), 4);
    assert!(before.1.len() >= 8, "history: {:?}", before.1);

    let dump = cluster.dir.join("source.dump");
    let dump = dump.to_str().unwrap();
    cluster.client_tool("pg_dump", &["-Fc", "-d", "source", "-f", dump]);
    let restore = cluster.client_tool("pg_restore", &["--exit-on-error", "-d", "restored", dump]);
    assert!(
        restore.stderr.is_empty(),
        "{}",
        String::from_utf8_lossy(&restore.stderr)
    );

    let mut restored = cluster.connect("restored");
    assert_eq!(
        snapshot(&mut restored),
        before,
        "registry and history survive the round trip"
    );
    let problems: i64 = restored
        .query_one("SELECT count(*) FROM migrate.validate()", &[])
        .unwrap()
        .get(0);
    assert_eq!(problems, 0);

    // The restored database keeps migrating: ids continue after the restored ones.
    let max_before: i64 = restored
        .query_one("SELECT max(id) FROM migrate.history", &[])
        .unwrap()
        .get(0);
    restored
        .batch_execute("SELECT migrate.add('2.1', 'CREATE TABLE t21 ()'); SET migrate.allow_out_of_order = on; SELECT migrate.apply('3');")
        .unwrap();
    let row = restored
        .query_one(
            "SELECT min(id), count(*) FROM migrate.history WHERE id > $1",
            &[&max_before],
        )
        .unwrap();
    assert!(row.get::<_, i64>(1) >= 2);
    let applied: Vec<String> = restored
        .query(
            "SELECT version FROM migrate.status() WHERE state = 'applied'",
            &[],
        )
        .unwrap()
        .iter()
        .map(|r| r.get(0))
        .collect();
    assert_eq!(applied, ["1", "2", "2.1", "3"]);
}
