//! Safe mode's dependent-view rebuild on a real server, through `migrate.add` + `CALL
//! migrate.deploy()`: a type change of a column used by two views (one on the other) and a
//! populated materialized view with an index, with grants to another role, comments and
//! security_barrier. Without safe mode the deploy fails with PostgreSQL's 0A000 (recorded);
//! in safe mode behind a reader of the materialized view it gives up within lock_timeout
//! bounds (55P03) with nothing changed; then with `migrate.safe_by_default = on` it succeeds, and every catalog fact about the views is
//! identical except the types; the other role can still select; no lock is left behind.

use std::time::{Duration, Instant};

use migrate_system_tests::{Client, Cluster};

fn sqlstate(e: &postgres::Error) -> String {
    e.as_db_error()
        .map(|d| d.code().code().to_string())
        .unwrap_or_else(|| format!("not a server error: {e}"))
}

/// Everything about the views in schema app that must survive, without column types.
const SNAPSHOT: &str = "
    SELECT concat_ws(' | ', c.oid::regclass::text, c.relkind, pg_get_userbyid(c.relowner),
           c.reloptions::text, c.relacl::text, obj_description(c.oid, 'pg_class'),
           c.relispopulated, pg_get_viewdef(c.oid),
           (SELECT string_agg(a.attname || ' ' || coalesce(col_description(c.oid, a.attnum), '-')
                              || ' ' || coalesce(a.attacl::text, '-'), ', ' ORDER BY a.attnum)
              FROM pg_attribute a WHERE a.attrelid = c.oid AND a.attnum > 0),
           (SELECT string_agg(pg_get_indexdef(i.indexrelid) || ' ' || i.indisvalid || ' '
                              || coalesce(obj_description(i.indexrelid, 'pg_class'), '-'), '; ')
              FROM pg_index i WHERE i.indrelid = c.oid))
    FROM pg_class c WHERE c.relnamespace = 'app'::regnamespace AND c.relkind IN ('v', 'm')
    ORDER BY 1";

/// Column types of the views and the table.
const TYPES: &str = "
    SELECT attrelid::regclass::text || '.' || attname || ' ' || atttypid::regtype::text
    FROM pg_attribute
    WHERE attrelid IN (SELECT oid FROM pg_class WHERE relnamespace = 'app'::regnamespace)
      AND attname IN ('amount', 'doubled', 'total')
    ORDER BY 1";

fn rows(c: &mut Client, sql: &str) -> Vec<String> {
    c.query(sql, &[])
        .unwrap()
        .iter()
        .map(|r| r.get::<_, String>(0))
        .collect()
}

#[test]
fn type_change_rebuilds_views_and_materialized_view() {
    let cluster = Cluster::start("dependent-views", &["shared_preload_libraries = 'migrate'"]);
    let mut c = cluster.connect("postgres");
    c.batch_execute(
        "CREATE EXTENSION migrate;
         CREATE ROLE app_owner;
         CREATE ROLE app_reader LOGIN;
         CREATE SCHEMA app AUTHORIZATION app_owner;
         GRANT USAGE ON SCHEMA app TO app_reader;
         SELECT migrate.add('1', $m$
             CREATE TABLE app.orders (id int PRIMARY KEY, amount int NOT NULL, note text);
             INSERT INTO app.orders SELECT g, g % 1000, 'n' || g FROM generate_series(1, 5000) g;
             CREATE VIEW app.big_orders WITH (security_barrier) AS
                 SELECT id, amount, note FROM app.orders WHERE amount > 500;
             CREATE VIEW app.big_order_notes AS
                 SELECT id, note, amount * 2 AS doubled FROM app.big_orders;
             CREATE MATERIALIZED VIEW app.order_totals AS
                 SELECT id % 10 AS bucket, sum(amount) AS total FROM app.orders GROUP BY 1;
             CREATE UNIQUE INDEX order_totals_bucket ON app.order_totals (bucket);
             ALTER TABLE app.orders OWNER TO app_owner;
             ALTER VIEW app.big_orders OWNER TO app_owner;
             ALTER VIEW app.big_order_notes OWNER TO app_owner;
             ALTER MATERIALIZED VIEW app.order_totals OWNER TO app_owner;
             COMMENT ON VIEW app.big_orders IS 'orders over 500';
             COMMENT ON COLUMN app.big_order_notes.doubled IS 'twice the amount';
             COMMENT ON MATERIALIZED VIEW app.order_totals IS 'per bucket';
             COMMENT ON INDEX app.order_totals_bucket IS 'one row per bucket';
             GRANT SELECT ON app.big_orders, app.big_order_notes TO app_reader;
             GRANT SELECT (bucket, total) ON app.order_totals TO app_reader;
         $m$);
         SELECT migrate.add('2', 'ALTER TABLE app.orders ALTER COLUMN amount TYPE bigint;');",
    )
    .unwrap();
    c.batch_execute("CALL migrate.deploy('1')").unwrap();
    let before = rows(&mut c, SNAPSHOT);
    assert_eq!(before.len(), 3, "{before:#?}");
    let types_before = rows(&mut c, TYPES);
    let total_before: i64 = c
        .query_one("SELECT sum(total)::bigint FROM app.order_totals", &[])
        .unwrap()
        .get(0);
    let filenode_before: u32 = c
        .query_one("SELECT pg_relation_filenode('app.order_totals')::text::oid", &[])
        .unwrap()
        .get(0);

    // Without safe mode: PostgreSQL's refusal, recorded; nothing changed.
    let err = c.batch_execute("CALL migrate.deploy()").unwrap_err();
    assert_eq!(sqlstate(&err), "0A000", "{err:?}");
    let hint = err.as_db_error().and_then(|d| d.hint()).unwrap_or_default();
    assert!(hint.contains("migrate.safe_by_default"), "{hint}");
    assert_eq!(rows(&mut c, SNAPSHOT), before);

    // Safe mode while another session reads the materialized view: dropping it waits at most
    // migrate.lock_timeout per try (the guard bounds the statement before the views are
    // dropped), the deploy gives up with 55P03 after its retries, and nothing changed.
    c.batch_execute(
        "SET migrate.safe_by_default = on;
         SET migrate.lock_retries = 1;
         SET migrate.lock_retry_delay = 100;",
    )
    .unwrap();
    let mut holder = cluster.connect("postgres");
    holder
        .batch_execute("BEGIN; SELECT count(*) FROM app.order_totals;")
        .unwrap();
    let start = Instant::now();
    let err = c.batch_execute("CALL migrate.deploy()").unwrap_err();
    let waited = start.elapsed();
    println!("deploy behind a reader of the materialized view gave up after {waited:?}");
    assert_eq!(sqlstate(&err), "55P03", "{err:?}");
    // It was the rebuild's DROP that waited (the reader locks only the materialized view).
    let hint = err.as_db_error().and_then(|d| d.hint()).unwrap_or_default();
    assert!(hint.contains("app.order_totals"), "{hint}");
    assert!(waited < Duration::from_secs(10), "{waited:?}");
    holder.batch_execute("COMMIT").unwrap();
    assert_eq!(rows(&mut c, SNAPSHOT), before);

    // Safe mode, nothing in the way: the same deploy goes through.
    c.batch_execute("CALL migrate.deploy()").unwrap();
    let state: String = c
        .query_one(
            "SELECT state FROM migrate.status() WHERE version = '2'",
            &[],
        )
        .unwrap()
        .get(0);
    assert_eq!(state, "applied");
    let after = rows(&mut c, SNAPSHOT);
    assert_eq!(after, before, "views changed beyond their types");
    let types_after = rows(&mut c, TYPES);
    println!("types before: {types_before:?}\ntypes after: {types_after:?}");
    assert_eq!(
        types_after,
        [
            "app.big_order_notes.doubled bigint",
            "app.big_orders.amount bigint",
            "app.order_totals.total numeric",
            "app.orders.amount bigint",
        ]
    );
    assert_ne!(types_before, types_after);
    // The materialized view is a new relation, filled again by REFRESH (as its owner).
    let filenode_after: u32 = c
        .query_one("SELECT pg_relation_filenode('app.order_totals')::text::oid", &[])
        .unwrap()
        .get(0);
    assert_ne!(filenode_after, filenode_before);
    let total_after: i64 = c
        .query_one("SELECT sum(total)::bigint FROM app.order_totals", &[])
        .unwrap()
        .get(0);
    assert_eq!(total_after, total_before);
    // Nothing held after the deploy: no lock on any app relation from any backend.
    let locks: i64 = c
        .query_one(
            "SELECT count(*) FROM pg_locks l JOIN pg_class c ON c.oid = l.relation
             WHERE c.relnamespace = 'app'::regnamespace AND l.pid <> pg_backend_pid()",
            &[],
        )
        .unwrap()
        .get(0);
    assert_eq!(locks, 0);

    // The other role still reads all three.
    let mut reader = cluster.connect_as("postgres", "app_reader");
    let n: i64 = reader
        .query_one("SELECT count(*) FROM app.big_order_notes", &[])
        .unwrap()
        .get(0);
    assert!(n > 0);
    let n: i64 = reader
        .query_one("SELECT count(*) FROM app.big_orders", &[])
        .unwrap()
        .get(0);
    assert!(n > 0);
    let buckets: i64 = reader
        .query_one("SELECT count(bucket) FROM app.order_totals", &[])
        .unwrap()
        .get(0);
    assert_eq!(buckets, 10);
    // And still nothing more than it was granted.
    let denied = reader.query_one("SELECT * FROM app.orders LIMIT 1", &[]);
    assert_eq!(sqlstate(&denied.unwrap_err()), "42501");
}
