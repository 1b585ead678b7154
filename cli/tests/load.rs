//! `migrate-cli load` on a real server: added / unchanged / replaced, the checksum of the
//! file's own bytes, a refused script named by file and line with nothing registered; exit
//! codes and connection settings.

mod common;

use common::{cli, command, folder, output, path, start, states, write};

#[test]
fn load_is_idempotent_and_names_every_refused_file() {
    let (cluster, mut c) = start("load");
    let dir = folder("load");
    write(
        &dir,
        &[
            ("1_users.up.sql", "CREATE TABLE users (id int);\n"),
            ("1_users.down.sql", "DROP TABLE users;\n"),
            (
                "2_email.up.sql",
                "ALTER TABLE users ADD COLUMN email text;\n",
            ),
        ],
    );
    let first = cli(&cluster, &["load", path(&dir)]).expect(0);
    assert!(
        first.stdout.contains("added     1  users\n"),
        "{}",
        first.stdout
    );
    assert!(
        first.stdout.contains("added     2  email\n"),
        "{}",
        first.stdout
    );
    let again = cli(&cluster, &["load", path(&dir)]).expect(0);
    assert!(
        again.stdout.contains("unchanged 1  users\n"),
        "{}",
        again.stdout
    );
    assert!(
        again.stdout.contains("unchanged 2  email\n"),
        "{}",
        again.stdout
    );

    // A pending migration whose file changed is replaced; the stored checksum is the file's.
    let email = "ALTER TABLE users ADD COLUMN email text NOT NULL DEFAULT '';\n";
    write(&dir, &[("2_email.up.sql", email)]);
    let replaced = cli(&cluster, &["load", path(&dir)]).expect(0);
    assert!(
        replaced.stdout.contains("replaced  2  email\n"),
        "{}",
        replaced.stdout
    );
    let stored: String = c
        .query_one(
            "SELECT checksum FROM migrate.migrations WHERE version = '2'",
            &[],
        )
        .unwrap()
        .get(0);
    assert_eq!(stored, migrate_core::checksum::checksum(email));

    // A refused file is named with the line of its error, and the replacement that came before
    // it in the same load is rolled back too. A down script that does not parse is registered
    // with the server's WARNING (it is flagged, not refused).
    write(
        &dir,
        &[
            (
                "2_email.up.sql",
                "ALTER TABLE users ADD COLUMN email varchar(200);\n",
            ),
            (
                "3_bad.up.sql",
                "-- two tables\nCREATE TABLE a (id int);\nCREAT TABLE b (id int);\n",
            ),
            ("4_more.up.sql", "CREATE TABLE c (id int);\n"),
            ("4_more.down.sql", "\nDROP TABLE c c;\n"),
        ],
    );
    let refused = cli(&cluster, &["load", path(&dir)]).expect(1);
    assert!(
        refused.stdout.contains("replaced  2  email\n"),
        "{}",
        refused.stdout
    );
    assert!(
        refused.stdout.contains("refused   3  bad\n"),
        "{}",
        refused.stdout
    );
    assert!(
        !refused.stdout.contains("refused   4"),
        "{}",
        refused.stdout
    );
    let up = format!(
        "{}:3: ERROR 42601: the up script of migration 3 does not parse",
        dir.join("3_bad.up.sql").display()
    );
    assert!(refused.stderr.contains(&up), "{}", refused.stderr);
    // load's output is a log: the server's WARNING is in it, in order.
    assert!(
        refused
            .stdout
            .contains("WARNING: migrate: the down script of migration 4 does not parse"),
        "{}",
        refused.stdout
    );
    assert!(
        refused
            .stderr
            .contains("DETAIL:  At line 3, column 1: CREAT TABLE b (id int);"),
        "{}",
        refused.stderr
    );
    assert!(
        refused.stderr.contains("1 of 4 migrations of")
            && refused.stderr.contains("nothing was registered"),
        "{}",
        refused.stderr
    );
    assert_eq!(
        states(&mut c),
        [
            ("1".into(), "pending".into()),
            ("2".into(), "pending".into())
        ]
    );
    let kept: String = c
        .query_one(
            "SELECT up_sql FROM migrate.migrations WHERE version = '2'",
            &[],
        )
        .unwrap()
        .get(0);
    assert_eq!(kept, email);
}

#[test]
fn usage_errors_exit_2_and_failures_exit_1() {
    for args in [
        &["load"][..],
        &["load", "x", "--layout", "nope"],
        &["status", "--format", "yaml"],
        &["wait", "one"],
        &["frobnicate"],
        &[],
    ] {
        let run = output(command(args)).expect(2);
        assert!(
            run.stderr.contains("error") || run.stderr.contains("Usage"),
            "{args:?}: {}",
            run.stderr
        );
    }
    for sub in [
        "load", "deploy", "status", "plan", "verify", "lint", "jobs", "wait", "new",
    ] {
        let help = output(command(&[sub, "--help"])).expect(0);
        assert!(
            help.stdout.contains("Usage: migrate-cli"),
            "{sub}: {}",
            help.stdout
        );
    }
    let mut bad_url = command(&["status"]);
    bad_url.env("DATABASE_URL", "postgres://h:notaport/db");
    let run = output(bad_url).expect(2);
    assert!(
        run.stderr.contains("invalid --database-url"),
        "{}",
        run.stderr
    );

    // Nothing listens there: exit 1 and where we tried.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let url = format!("postgres://postgres@127.0.0.1:{port}/postgres");
    let run = output(command(&["status", "--database-url", &url])).expect(1);
    assert!(
        run.stderr
            .contains(&format!("could not connect to host=127.0.0.1 port={port}")),
        "{}",
        run.stderr
    );

    let run = output(command(&[
        "load",
        "/nonexistent/migrations",
        "--database-url",
        &url,
    ]))
    .expect(1);
    assert!(
        run.stderr.contains("/nonexistent/migrations"),
        "{}",
        run.stderr
    );
}

#[test]
fn libpq_variables_and_socket_directories() {
    let (cluster, mut c) = start("env");
    c.batch_execute("SELECT migrate.add('1', 'CREATE TABLE t (id int)')")
        .unwrap();
    let port = cluster.port.to_string();
    // TCP from PGHOST/PGPORT/PGUSER/PGDATABASE.
    let mut tcp = command(&["status", "--format", "json"]);
    tcp.envs([
        ("PGHOST", "127.0.0.1"),
        ("PGPORT", &port),
        ("PGUSER", "postgres"),
        ("PGDATABASE", "postgres"),
    ]);
    let run = output(tcp).expect(0);
    assert_eq!(run.json()[0]["version"], "1");
    // PGHOST naming the socket directory; the database defaults to the user's name.
    let mut socket = command(&["status", "--format", "json"]);
    socket.envs([
        ("PGHOST", cluster.dir.to_str().unwrap()),
        ("PGPORT", &port),
        ("PGUSER", "postgres"),
    ]);
    let run = output(socket).expect(0);
    assert_eq!(run.json()[0]["version"], "1");
    // A database without the extension: the server's error and a hint.
    c.batch_execute("CREATE DATABASE bare").unwrap();
    let bare = format!("postgres://postgres@127.0.0.1:{port}/bare");
    let run = output(command(&["status", "--database-url", &bare])).expect(1);
    assert!(
        run.stderr.contains("CREATE EXTENSION migrate"),
        "{}",
        run.stderr
    );
    // The URL's missing port comes from PGPORT.
    let mut url = command(&[
        "status",
        "--database-url",
        "postgres://postgres@127.0.0.1/postgres",
    ]);
    url.env("PGPORT", &port);
    output(url).expect(0);
}

// Files as tools write them: the server drops a BEGIN;/COMMIT; wrapper, takes comment-only
// scripts as no-ops, and runs a CREATE INDEX CONCURRENTLY file outside a transaction.
#[test]
fn scripts_as_tools_write_them() {
    let (cluster, mut c) = start("tools");
    let dir = folder("tools");
    write(
        &dir,
        &[
            (
                "1_wrapped.up.sql",
                "BEGIN;\nCREATE TABLE w (id int);\nCOMMIT;\n",
            ),
            ("1_wrapped.down.sql", "-- nothing to undo by hand\n"),
            ("2_noop.up.sql", "-- a no-op migration\n"),
            (
                "3_index.up.sql",
                "CREATE INDEX CONCURRENTLY w_id ON w (id);\n",
            ),
        ],
    );
    cli(&cluster, &["deploy", path(&dir)]).expect(0);
    assert!(states(&mut c).iter().all(|(_, s)| s == "applied"));
}
