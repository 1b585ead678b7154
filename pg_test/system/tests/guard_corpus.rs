//! Proof of the guard's claims: each rule's statement runs (guard off) on a real table of 50,000
//! rows and the server must agree with what `migrate.rules` says: the strongest lock taken on
//! the table (pg_locks), whether the table was rewritten (relfilenode), whether it was scanned
//! (pg_stat_xact_user_tables). The safe alternatives are observed too: no rewrite, no scan.
//! Then, with the guard on, each statement is blocked (or warned about) by its own rule.
//!
//! The server runs with the library preloaded, so the `ProcessUtility` hook's rules (VACUUM
//! FULL, CLUSTER, REINDEX, REFRESH, TRUNCATE, LOCK TABLE) are in force and proven the same way;
//! the statements that cannot run in a transaction block (VACUUM, REINDEX CONCURRENTLY) are
//! observed from another session while a third holds a lock on the table.

use migrate_system_tests::{Client, Cluster};

/// (rule, setup statements run first in the same transaction, the statement measured)
const CORPUS: &[(&str, &[&str], &str)] = &[
    (
        "index_not_concurrent",
        &[],
        "CREATE INDEX corpus_email ON corpus (email)",
    ),
    (
        "index_not_concurrent",
        &[],
        "CREATE UNIQUE INDEX corpus_email_u ON corpus (email) WHERE n > 10",
    ),
    (
        "add_column_volatile_default",
        &[],
        "ALTER TABLE corpus ADD COLUMN r float8 DEFAULT random()",
    ),
    (
        "add_column_serial",
        &[],
        "ALTER TABLE corpus ADD COLUMN s bigserial",
    ),
    (
        "add_column_identity",
        &[],
        "ALTER TABLE corpus ADD COLUMN i bigint GENERATED ALWAYS AS IDENTITY",
    ),
    (
        "add_column_stored_generated",
        &[],
        "ALTER TABLE corpus ADD COLUMN g int GENERATED ALWAYS AS (n * 2) STORED",
    ),
    (
        "alter_column_type",
        &[],
        "ALTER TABLE corpus ALTER COLUMN n TYPE bigint",
    ),
    (
        "alter_column_type",
        &[],
        "ALTER TABLE corpus ALTER COLUMN email TYPE text USING upper(email)",
    ),
    (
        "set_not_null",
        &[],
        "ALTER TABLE corpus ALTER COLUMN n SET NOT NULL",
    ),
    (
        "add_foreign_key",
        &[],
        "ALTER TABLE corpus ADD CONSTRAINT corpus_fk FOREIGN KEY (n) REFERENCES parent (id)",
    ),
    (
        "add_check",
        &[],
        "ALTER TABLE corpus ADD CONSTRAINT corpus_ck CHECK (n > 0)",
    ),
    (
        "add_unique_constraint",
        &[],
        "ALTER TABLE corpus ADD CONSTRAINT corpus_uq UNIQUE (email)",
    ),
    (
        "add_unique_constraint",
        &[],
        "ALTER TABLE nopk ADD PRIMARY KEY (id)",
    ),
    (
        "add_exclusion_constraint",
        &[],
        "ALTER TABLE corpus ADD CONSTRAINT corpus_ex EXCLUDE USING btree (email WITH =)",
    ),
    (
        "set_logged_unlogged",
        &[],
        "ALTER TABLE corpus SET UNLOGGED",
    ),
    (
        "table_rewrite",
        &[],
        "ALTER TABLE corpus ADD COLUMN x noisy",
    ),
    ("drop_column", &[], "ALTER TABLE corpus DROP COLUMN code"),
    (
        "rename_table",
        &[],
        "ALTER TABLE corpus RENAME TO corpus_renamed",
    ),
    (
        "rename_column",
        &[],
        "ALTER TABLE corpus RENAME COLUMN code TO code2",
    ),
    ("drop_table", &[], "DROP TABLE corpus"),
];

/// Safe alternatives: (what, setup, statement, strongest lock): no rewrite, no scan, and the
/// guard lets them through.
const SAFE: &[(&str, &[&str], &str, &str)] = &[
    ("nullable column", &[], "ALTER TABLE corpus ADD COLUMN note text", "AccessExclusiveLock"),
    ("constant default", &[], "ALTER TABLE corpus ADD COLUMN status text DEFAULT 'new'", "AccessExclusiveLock"),
    ("stable default", &[], "ALTER TABLE corpus ADD COLUMN at timestamptz DEFAULT now()", "AccessExclusiveLock"),
    ("varchar widened", &[], "ALTER TABLE corpus ALTER COLUMN code TYPE varchar(40)", "AccessExclusiveLock"),
    ("varchar to text", &[], "ALTER TABLE corpus ALTER COLUMN code TYPE text", "AccessExclusiveLock"),
    ("foreign key NOT VALID", &[], "ALTER TABLE corpus ADD CONSTRAINT corpus_fk FOREIGN KEY (n) REFERENCES parent (id) NOT VALID", "ShareRowExclusiveLock"),
    ("check NOT VALID", &[], "ALTER TABLE corpus ADD CONSTRAINT corpus_ck CHECK (n > 0) NOT VALID", "AccessExclusiveLock"),
    ("SET NOT NULL after a validated CHECK", &["ALTER TABLE corpus ADD CONSTRAINT nn CHECK (n IS NOT NULL) NOT VALID", "ALTER TABLE corpus VALIDATE CONSTRAINT nn"], "ALTER TABLE corpus ALTER COLUMN n SET NOT NULL", "AccessExclusiveLock"),
];

/// Issue 15's claims, each on the table it is observed on: `lock` is the strongest lock the
/// statement takes on that table when it differs from the rule's claim (an inline REFERENCES
/// also takes ADD COLUMN's ACCESS EXCLUSIVE). Partitioned statements are observed on a
/// partition, domain ones on a table using the domain, ATTACH on the partition scanned.
struct Case {
    rule: &'static str,
    setup: &'static [&'static str],
    statement: &'static str,
    table: &'static str,
    lock: Option<&'static str>,
}

const fn case(rule: &'static str, setup: &'static [&'static str], statement: &'static str, table: &'static str) -> Case {
    Case { rule, setup, statement, table, lock: None }
}

const CASES: &[Case] = &[
    // Inline column constraints.
    case("add_unique_constraint", &[], "ALTER TABLE typed ADD COLUMN u int UNIQUE", "typed"),
    case("add_check", &[], "ALTER TABLE typed ADD COLUMN k int CHECK (k > 0)", "typed"),
    Case { lock: Some("AccessExclusiveLock"), ..case("add_foreign_key", &[], "ALTER TABLE typed ADD COLUMN f int DEFAULT 1 REFERENCES parent (id)", "typed") },
    // DEFAULT NULL is a DEFAULT clause: PostgreSQL validates then, although every value is NULL.
    Case { lock: Some("AccessExclusiveLock"), ..case("add_foreign_key", &[], "ALTER TABLE typed ADD COLUMN f int DEFAULT NULL REFERENCES parent (id)", "typed") },
    // Type changes, as the server decides them.
    case("alter_column_type", &["SET LOCAL TimeZone = 'Europe/Paris'"], "ALTER TABLE typed ALTER COLUMN ts TYPE timestamptz", "typed"),
    case("alter_column_type", &[], "ALTER TABLE typed ALTER COLUMN note TYPE text USING note || ''", "typed"),
    case("alter_column_type", &[], "ALTER TABLE typed ALTER COLUMN note TYPE varchar(50)", "typed"),
    case("alter_column_type_rebuild", &[], "ALTER TABLE typed ALTER COLUMN code TYPE text USING code::text", "typed"),
    case("alter_column_type_rebuild", &[], "ALTER TABLE typed ALTER COLUMN cc TYPE text", "typed"),
    case("alter_column_type_rebuild", &[], "ALTER TABLE typed ALTER COLUMN n TYPE oid", "typed"),
    case("alter_column_type_rebuild", &[], "ALTER TABLE typed ALTER COLUMN checked TYPE text", "typed"),
    // Partitioned and inherited tables: the partitions' (children's) rows count.
    case("index_partitioned", &[], "CREATE INDEX parted_v ON parted (v)", "parted_1"),
    case("add_check", &[], "ALTER TABLE parted ADD CONSTRAINT parted_id CHECK (id > 0)", "parted_1"),
    case("set_not_null", &[], "ALTER TABLE parted ALTER COLUMN v SET NOT NULL", "parted_2"),
    case("set_not_null", &[], "ALTER TABLE inh ALTER COLUMN n SET NOT NULL", "inh_child"),
    case("add_check", &[], "ALTER TABLE inh ADD CONSTRAINT inh_n CHECK (n > 0)", "inh_child"),
    // Domains: every table using the domain, or a domain over it.
    case("domain_constraint", &[], "ALTER DOMAIN pos ADD CONSTRAINT pos_positive CHECK (VALUE > 0)", "dt"),
    case("domain_constraint", &[], "ALTER DOMAIN pos SET NOT NULL", "dt"),
    // ATTACH PARTITION: the partition without a CHECK proving its bound; the DEFAULT partition.
    case("attach_partition_scan", &[], "ALTER TABLE parted ATTACH PARTITION cand FOR VALUES FROM (60000) TO (70000)", "cand"),
    case("attach_partition_scan", &[], "ALTER TABLE parted ATTACH PARTITION cand_nv FOR VALUES FROM (60000) TO (70000)", "cand_nv"),
    case("attach_partition_scan", &[], "ALTER TABLE lparted ATTACH PARTITION lcand FOR VALUES IN (7, 8)", "lparted_default"),
];

/// The statements issue 15 found blocked although PostgreSQL runs them at once, and the safe
/// forms of the new rules: (what, setup, statement, observed table, strongest lock there).
const ALLOWED: &[(&str, &[&str], &str, &str, &str)] = &[
    ("REFERENCES without a DEFAULT", &[], "ALTER TABLE typed ADD COLUMN f int REFERENCES parent (id)", "typed", "AccessExclusiveLock"),
    ("NOT NULL with a constant DEFAULT", &[], "ALTER TABLE typed ADD COLUMN k int NOT NULL DEFAULT 0", "typed", "AccessExclusiveLock"),
    ("Django's varchar -> text USING col::text", &[], "ALTER TABLE typed ALTER COLUMN note TYPE text USING \"note\"::text", "typed", "AccessExclusiveLock"),
    ("varchar -> longer varchar through a cast", &[], "ALTER TABLE typed ALTER COLUMN note TYPE varchar(200) USING CAST(note AS varchar(150))", "typed", "AccessExclusiveLock"),
    ("timestamp -> timestamptz with TimeZone UTC", &["SET LOCAL TimeZone = 'UTC'"], "ALTER TABLE typed ALTER COLUMN ts TYPE timestamptz", "typed", "AccessExclusiveLock"),
    ("timestamp -> timestamp(6)", &[], "ALTER TABLE typed ALTER COLUMN ts TYPE timestamp(6)", "typed", "AccessExclusiveLock"),
    ("varchar COLLATE \"C\" -> text COLLATE \"C\"", &[], "ALTER TABLE typed ALTER COLUMN cc TYPE text COLLATE \"C\"", "typed", "AccessExclusiveLock"),
    ("CREATE INDEX ON ONLY a partitioned table", &[], "CREATE INDEX parted_v ON ONLY parted (v)", "parted", "ShareLock"),
    ("ATTACH PARTITION with a CHECK proving the bound", &[], "ALTER TABLE parted ATTACH PARTITION cand_ok FOR VALUES FROM (60000) TO (70000)", "cand_ok", "AccessExclusiveLock"),
    ("ATTACH PARTITION with the DEFAULT partition's CHECK excluding the bound", &["ALTER TABLE lparted_default ADD CONSTRAINT lparted_default_k CHECK (k NOT IN (7, 8)) NOT VALID", "ALTER TABLE lparted_default VALIDATE CONSTRAINT lparted_default_k"], "ALTER TABLE lparted ATTACH PARTITION lcand FOR VALUES IN (7, 8)", "lcand", "AccessExclusiveLock"),
    ("ALTER DOMAIN ... ADD CONSTRAINT NOT VALID", &[], "ALTER DOMAIN pos ADD CONSTRAINT pos_positive CHECK (VALUE > 0) NOT VALID", "dt", ""),
];

/// The hook's rules on statements that run in a transaction block: (rule, table, statement,
/// the lock, rewrite and scan the server must show). The lock is the rule's `lock` column,
/// except for `lock_table_strong`, whose lock is the one the statement asks for.
type Claim = (&'static str, bool, bool);
const HOOK_CORPUS: &[(&str, &str, &str, Claim)] = &[
    (
        "cluster",
        "corpus",
        "CLUSTER corpus USING corpus_pkey",
        ("AccessExclusiveLock", true, true),
    ),
    (
        "reindex_not_concurrent",
        "corpus",
        "REINDEX TABLE corpus",
        ("ShareLock", false, true),
    ),
    (
        "reindex_not_concurrent",
        "corpus",
        "REINDEX INDEX corpus_pkey",
        ("ShareLock", false, true),
    ),
    (
        "refresh_matview_not_concurrent",
        "corpus_mv",
        "REFRESH MATERIALIZED VIEW corpus_mv",
        ("AccessExclusiveLock", true, true),
    ),
    (
        "truncate",
        "corpus",
        "TRUNCATE corpus",
        ("AccessExclusiveLock", false, false),
    ),
    (
        "lock_table_strong",
        "corpus",
        "LOCK TABLE corpus IN SHARE MODE",
        ("ShareLock", false, false),
    ),
    (
        "lock_table_strong",
        "corpus",
        "LOCK TABLE corpus IN ACCESS EXCLUSIVE MODE",
        ("AccessExclusiveLock", false, false),
    ),
];

/// The hook's safe forms that run in a transaction block: (what, table, statement, lock,
/// rewritten), none judged. CONCURRENTLY updates the view in place under a lock that lets its
/// reads go on; WITH NO DATA swaps in an empty file without running the query (checked below).
const HOOK_SAFE: &[(&str, &str, &str, &str, bool)] = &[
    (
        "REFRESH ... CONCURRENTLY",
        "corpus_mv",
        "REFRESH MATERIALIZED VIEW CONCURRENTLY corpus_mv",
        "ExclusiveLock",
        false,
    ),
    (
        "REFRESH ... WITH NO DATA",
        "corpus_mv",
        "REFRESH MATERIALIZED VIEW corpus_mv WITH NO DATA",
        "AccessExclusiveLock",
        true,
    ),
    (
        "LOCK TABLE in ROW EXCLUSIVE mode",
        "corpus",
        "LOCK TABLE corpus IN ROW EXCLUSIVE MODE",
        "RowExclusiveLock",
        false,
    ),
];

const LOCK_ORDER: &[&str] = &[
    "AccessShareLock",
    "RowShareLock",
    "RowExclusiveLock",
    "ShareUpdateExclusiveLock",
    "ShareLock",
    "ShareRowExclusiveLock",
    "ExclusiveLock",
    "AccessExclusiveLock",
];

fn lock_name(sql_mode: &str) -> String {
    sql_mode
        .split_whitespace()
        .map(|w| {
            let w = w.to_lowercase();
            w[..1].to_uppercase() + &w[1..]
        })
        .collect::<String>()
        + "Lock"
}

/// (relfilenode, sequential scans in this transaction) of a table, or None once it is dropped.
fn filenode_and_scans(tx: &mut postgres::Transaction<'_>, oid: u32) -> Option<(i64, i64)> {
    tx.query_opt(
        "SELECT c.relfilenode::bigint, coalesce(s.seq_scan, 0) FROM pg_class c \
         LEFT JOIN pg_stat_xact_user_tables s ON s.relid = c.oid WHERE c.oid = $1",
        &[&oid],
    )
    .unwrap()
    .map(|r| (r.get(0), r.get(1)))
}

struct Observed {
    strongest_lock: String,
    rewritten: bool,
    scanned: bool,
}

/// Runs `statement` after `setup` in a transaction with the guard off, observes, rolls back.
fn observe(c: &mut Client, table: &str, setup: &[&str], statement: &str) -> Observed {
    let mut tx = c.transaction().unwrap();
    tx.batch_execute("SET LOCAL migrate.guard = off").unwrap();
    for s in setup {
        tx.batch_execute(s).unwrap();
    }
    let oid: u32 = tx
        .query_one(&format!("SELECT '{table}'::regclass::oid"), &[])
        .unwrap()
        .get(0);
    let (filenode_before, scans_before) =
        filenode_and_scans(&mut tx, oid).expect("the table exists");
    tx.batch_execute(statement)
        .unwrap_or_else(|e| panic!("{statement}: {e}"));
    let modes: Vec<String> = tx
        .query(
            "SELECT mode FROM pg_locks WHERE locktype = 'relation' AND relation = $1 \
             AND pid = pg_backend_pid() AND granted",
            &[&oid],
        )
        .unwrap()
        .iter()
        .map(|r| r.get(0))
        .collect();
    let after = filenode_and_scans(&mut tx, oid);
    tx.rollback().unwrap();
    let strongest_lock = LOCK_ORDER
        .iter()
        .rev()
        .find(|l| modes.iter().any(|m| m == *l))
        .map(|l| l.to_string())
        .unwrap_or_default();
    let (rewritten, scanned) = match after {
        Some((filenode, scans)) => (filenode != filenode_before, scans > scans_before),
        None => (false, false), // dropped
    };
    Observed {
        strongest_lock,
        rewritten,
        scanned,
    }
}

/// What a statement that cannot run in a transaction block did, seen from other sessions.
struct TopLevel {
    /// The table lock it waited for behind a third session's `blocker` lock (None: it never
    /// waited for one).
    waited_for: Option<String>,
    /// Table locks it held while waiting for something else (REINDEX CONCURRENTLY waits for
    /// the third session's transaction, not for its lock).
    held: Vec<String>,
    rewritten: bool,
    /// Heap blocks of the table it read (pg_statio_user_tables).
    blocks_read: i64,
    pages: i64,
}

/// Runs `statement` top-level in a session of its own (guard off) while another session holds
/// `blocker` on `table`, and watches it from a third: which lock it waits for, whether it
/// rewrites the table, how much of it it reads.
fn observe_top_level(cluster: &Cluster, table: &str, statement: &str, blocker: &str) -> TopLevel {
    let mut watch = cluster.connect("postgres");
    let oid: u32 = watch
        .query_one(&format!("SELECT '{table}'::regclass::oid"), &[])
        .unwrap()
        .get(0);
    let stats = |c: &mut Client| -> (i64, i64, i64) {
        let r = c
            .query_one(
                "SELECT c.relfilenode::bigint, c.relpages::bigint,                  coalesce(s.heap_blks_read + s.heap_blks_hit, 0)                  FROM pg_class c LEFT JOIN pg_statio_user_tables s ON s.relid = c.oid                  WHERE c.oid = $1",
                &[&oid],
            )
            .unwrap();
        (r.get(0), r.get(1), r.get(2))
    };
    let (filenode_before, pages, read_before) = stats(&mut watch);
    let mut holder = cluster.connect("postgres");
    holder.batch_execute("BEGIN").unwrap();
    holder
        .batch_execute(&format!("LOCK TABLE {table} IN {blocker} MODE"))
        .unwrap();
    let mut runner = cluster.connect("postgres");
    runner
        .batch_execute("SET migrate.guard = off; SET lock_timeout = '30s'")
        .unwrap();
    let pid: i32 = runner
        .query_one("SELECT pg_backend_pid()", &[])
        .unwrap()
        .get(0);
    let sql = statement.to_string();
    let run = std::thread::spawn(move || {
        runner
            .batch_execute(&sql)
            .unwrap_or_else(|e| panic!("{sql}: {e}"));
        // Its table counters reach the shared statistics when it goes idle after this.
        runner
            .batch_execute("SELECT pg_stat_force_next_flush()")
            .unwrap();
    });
    let (mut waited_for, mut held) = (None, Vec::new());
    for _ in 0..300 {
        let locks: Vec<(String, bool, Option<u32>)> = watch
            .query(
                "SELECT mode, granted, relation::int8::int4::oid FROM pg_locks                  WHERE pid = $1 AND (relation = $2 OR NOT granted)",
                &[&pid, &oid],
            )
            .unwrap()
            .iter()
            .map(|r| (r.get(0), r.get(1), r.get(2)))
            .collect();
        if let Some((mode, _, _)) = locks.iter().find(|(_, g, rel)| !g && *rel == Some(oid)) {
            waited_for = Some(mode.clone());
            break;
        }
        if locks.iter().any(|(_, g, _)| !g) {
            held = locks
                .iter()
                .filter(|(_, g, rel)| *g && *rel == Some(oid))
                .map(|(m, _, _)| m.clone())
                .collect();
            break;
        }
        if run.is_finished() {
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(10));
    }
    holder.batch_execute("ROLLBACK").unwrap();
    run.join().unwrap();
    let (filenode_after, _, read_after) = stats(&mut watch);
    TopLevel {
        waited_for,
        held,
        rewritten: filenode_after != filenode_before,
        blocks_read: read_after - read_before,
        pages,
    }
}

/// The hook's rules: each claim observed, each safe form next to it, each statement judged by
/// its own rule with the guard on.
fn hook_rules(cluster: &Cluster, c: &mut Client, failures: &mut Vec<String>) -> Vec<&'static str> {
    let mut covered = Vec::new();
    let claims = |c: &mut Client, rule: &str| -> (String, bool, bool, String) {
        let row = c
            .query_one(
                "SELECT lock, rewrites, scans, severity FROM migrate.rules                  WHERE id = $1 AND needs_preload AND active",
                &[&rule],
            )
            .unwrap_or_else(|e| panic!("{rule} is not an active preload rule: {e}"));
        (
            lock_name(&row.get::<_, String>(0)),
            row.get(1),
            row.get(2),
            row.get(3),
        )
    };
    let guarded = |c: &mut Client,
                   rule: &str,
                   severity: &str,
                   statement: &str,
                   failures: &mut Vec<String>| {
        let mut tx = c.transaction().unwrap();
        match tx.batch_execute(statement) {
            Err(e) if severity == "block" => {
                let db = e.as_db_error().expect("a server error");
                if db.code().code() != "09000" || !db.message().contains(&format!("rule {rule}:")) {
                    failures.push(format!(
                        "{rule}: `{statement}` failed otherwise: {} {}",
                        db.code().code(),
                        db.message()
                    ));
                }
            }
            Ok(()) if severity == "warn" => {
                let logged: i64 = tx
                    .query_one("SELECT count(*) FROM migrate.guard_log WHERE rule = $1 AND action = 'warned'", &[&rule])
                    .unwrap()
                    .get(0);
                if logged == 0 {
                    failures.push(format!("{rule}: `{statement}` was not warned about"));
                }
            }
            other => failures.push(format!(
                "{rule}: `{statement}` with the guard on: {other:?}"
            )),
        }
        let _ = tx.rollback();
    };
    for (rule, table, statement, (lock, rewritten, scanned)) in HOOK_CORPUS {
        let (claim_lock, claim_rewrites, claim_scans, severity) = claims(c, rule);
        let claim_lock = if *rule == "lock_table_strong" {
            lock.to_string()
        } else {
            claim_lock
        };
        if (claim_lock.as_str(), claim_rewrites, claim_scans) != (*lock, *rewritten, *scanned) {
            failures.push(format!("{rule}: migrate.rules claims {claim_lock} rewrite={claim_rewrites} scan={claim_scans}, the corpus expects {lock} {rewritten} {scanned}"));
        }
        let seen = observe(c, table, &[], statement);
        // TRUNCATE gives the table a new, empty file and rebuilds its indexes on it (the
        // counters show that as a scan, of nothing): neither a rewrite nor a scan of its rows.
        let truncate = *rule == "truncate";
        let fact = (
            seen.strongest_lock.as_str(),
            seen.rewritten && !truncate,
            seen.scanned && !truncate,
        );
        if fact != (*lock, *rewritten, *scanned) {
            failures.push(format!("{rule}: `{statement}` claims ({lock}, {rewritten}, {scanned}), server did {fact:?}"));
        }
        guarded(c, rule, &severity, statement, failures);
        covered.push(*rule);
    }
    // REFRESH runs the view's query (the base table is read, and the view's indexes are
    // rebuilt on the new data, which is the scan the counters show on the view itself), except
    // WITH NO DATA, which reads nothing.
    let base_scans = |c: &mut Client, statement: &str| -> i64 {
        let mut tx = c.transaction().unwrap();
        tx.batch_execute("SET LOCAL migrate.guard = off").unwrap();
        let scans = |tx: &mut postgres::Transaction<'_>| -> i64 {
            tx.query_one("SELECT coalesce(max(seq_scan), 0) FROM pg_stat_xact_user_tables WHERE relname = 'mv_base'", &[])
                .unwrap()
                .get(0)
        };
        let before = scans(&mut tx);
        tx.batch_execute(statement).unwrap();
        let n = scans(&mut tx) - before;
        tx.rollback().unwrap();
        n
    };
    if base_scans(c, "REFRESH MATERIALIZED VIEW corpus_mv") == 0 {
        failures.push("REFRESH MATERIALIZED VIEW did not read its base table".into());
    }
    if base_scans(c, "REFRESH MATERIALIZED VIEW corpus_mv WITH NO DATA") != 0 {
        failures.push("REFRESH ... WITH NO DATA read its base table".into());
    }
    for (what, table, statement, lock, rewritten) in HOOK_SAFE {
        let seen = observe(c, table, &[], statement);
        if seen.strongest_lock != *lock || seen.rewritten != *rewritten {
            failures.push(format!(
                "safe form {what}: `{statement}` took {} rewrite={}",
                seen.strongest_lock, seen.rewritten
            ));
        }
        let mut tx = c.transaction().unwrap();
        if let Err(e) = tx.batch_execute(statement) {
            failures.push(format!("safe form {what}: blocked by the guard: {e}"));
        }
        let _ = tx.rollback();
    }
    // VACUUM FULL runs outside a transaction block: behind a reader it waits for ACCESS
    // EXCLUSIVE (so every later query queues too), then copies the whole table to a new file.
    let (lock, rewrites, scans, severity) = claims(c, "vacuum_full");
    let seen = observe_top_level(cluster, "corpus", "VACUUM FULL corpus", "ACCESS SHARE");
    if seen.waited_for.as_deref() != Some(lock.as_str())
        || seen.rewritten != rewrites
        || (seen.blocks_read >= seen.pages) != scans
    {
        failures.push(format!(
            "vacuum_full: claims ({lock}, {rewrites}, {scans}), server waited for {:?}, rewrite={}, read {} of {} blocks",
            seen.waited_for, seen.rewritten, seen.blocks_read, seen.pages
        ));
    }
    match c.batch_execute("VACUUM FULL corpus") {
        Err(e) if severity == "block" && e.code().map(|s| s.code()) == Some("09000") => {}
        other => failures.push(format!("vacuum_full with the guard on: {other:?}")),
    }
    covered.push("vacuum_full");
    // Plain VACUUM runs beside a writer (ROW EXCLUSIVE) without waiting, and rewrites nothing.
    let seen = observe_top_level(cluster, "corpus", "VACUUM corpus", "ROW EXCLUSIVE");
    if seen.waited_for.is_some() || seen.rewritten {
        failures.push(format!(
            "plain VACUUM waited for {:?}, rewrite={}",
            seen.waited_for, seen.rewritten
        ));
    }
    // Its lock is SHARE UPDATE EXCLUSIVE: it waits only behind that or stronger.
    let seen = observe_top_level(cluster, "corpus", "VACUUM corpus", "SHARE UPDATE EXCLUSIVE");
    if seen.waited_for.as_deref() != Some("ShareUpdateExclusiveLock") {
        failures.push(format!("plain VACUUM waited for {:?}", seen.waited_for));
    }
    if let Err(e) = c.batch_execute("VACUUM corpus") {
        failures.push(format!("plain VACUUM blocked by the guard: {e}"));
    }
    // REINDEX CONCURRENTLY holds SHARE UPDATE EXCLUSIVE (writes go on) while it waits for the
    // writer's transaction, and leaves the table's file alone.
    let seen = observe_top_level(
        cluster,
        "corpus",
        "REINDEX TABLE CONCURRENTLY corpus",
        "ROW EXCLUSIVE",
    );
    if seen.waited_for.is_some() || seen.held != ["ShareUpdateExclusiveLock"] || seen.rewritten {
        failures.push(format!(
            "REINDEX CONCURRENTLY waited for {:?}, held {:?}, rewrite={}",
            seen.waited_for, seen.held, seen.rewritten
        ));
    }
    if let Err(e) = c.batch_execute("REINDEX TABLE CONCURRENTLY corpus") {
        failures.push(format!("REINDEX CONCURRENTLY blocked by the guard: {e}"));
    }
    covered
}

fn setup(c: &mut Client) {
    c.batch_execute(
        "CREATE EXTENSION migrate;
         SET migrate.guard = off;
         CREATE TABLE parent (id int PRIMARY KEY);
         INSERT INTO parent SELECT g FROM generate_series(1, 50000) g;
         CREATE TABLE corpus (id int PRIMARY KEY, email text, n int, code varchar(20));
         INSERT INTO corpus SELECT g, 'user' || g, g, 'c' || g FROM generate_series(1, 50000) g;
         CREATE TABLE nopk (id int NOT NULL, v text);
         INSERT INTO nopk SELECT g, 'v' FROM generate_series(1, 50000) g;
         CREATE DOMAIN noisy AS float8 DEFAULT random();
         CREATE TABLE typed (id int PRIMARY KEY, n int, note varchar(100), code varchar(20),
             cc varchar(20) COLLATE \"C\", ts timestamp, checked varchar(20) CHECK (checked <> ''));
         INSERT INTO typed SELECT g, g, 'n' || g, 'c' || g, 'x' || g, now(), 'k' || g
             FROM generate_series(1, 50000) g;
         CREATE INDEX typed_note ON typed (note);
         CREATE INDEX typed_lower_code ON typed (lower(code));
         CREATE INDEX typed_cc ON typed (cc);
         CREATE INDEX typed_n ON typed (n);
         CREATE TABLE parted (id int, k int NOT NULL, v text) PARTITION BY RANGE (k);
         CREATE TABLE parted_1 PARTITION OF parted FOR VALUES FROM (0) TO (25000);
         CREATE TABLE parted_2 PARTITION OF parted FOR VALUES FROM (25000) TO (50001);
         INSERT INTO parted SELECT g, g, 'v' || g FROM generate_series(1, 50000) g;
         CREATE TABLE cand (id int, k int NOT NULL, v text);
         CREATE TABLE cand_nv (id int, k int NOT NULL, v text);
         ALTER TABLE cand_nv ADD CONSTRAINT cand_nv_k CHECK (k >= 60000 AND k < 70000) NOT VALID;
         CREATE TABLE cand_ok (id int, k int NOT NULL CHECK (k >= 60000 AND k < 70000), v text);
         INSERT INTO cand SELECT g, 60000 + g % 1000, 'v' FROM generate_series(1, 50000) g;
         INSERT INTO cand_nv SELECT * FROM cand;
         INSERT INTO cand_ok SELECT * FROM cand;
         CREATE TABLE lparted (id int, k int) PARTITION BY LIST (k);
         CREATE TABLE lparted_default PARTITION OF lparted DEFAULT;
         INSERT INTO lparted SELECT g, 10 + g % 100 FROM generate_series(1, 50000) g;
         CREATE TABLE lcand (id int, k int NOT NULL CHECK (k IN (7, 8)));
         INSERT INTO lcand SELECT g, 7 FROM generate_series(1, 100) g;
         CREATE TABLE inh (id int, n int);
         CREATE TABLE inh_child (extra int) INHERITS (inh);
         INSERT INTO inh_child SELECT g, g FROM generate_series(1, 50000) g;
         CREATE DOMAIN pos AS int;
         CREATE DOMAIN pos_over AS pos;
         CREATE TABLE dt (id int, p pos, q pos_over);
         INSERT INTO dt SELECT g, g, g FROM generate_series(1, 50000) g;
         CREATE TABLE mv_base (id int PRIMARY KEY, email text);
         INSERT INTO mv_base SELECT g, 'user' || g FROM generate_series(1, 50000) g;
         CREATE MATERIALIZED VIEW corpus_mv AS SELECT id, email FROM mv_base;
         CREATE UNIQUE INDEX corpus_mv_id ON corpus_mv (id);
         RESET migrate.guard;",
    )
    .unwrap();
    c.batch_execute("VACUUM ANALYZE")
        .unwrap();
}

#[test]
fn every_rule_claim_is_observed_on_a_real_table() {
    // Preloaded, as in production: the ProcessUtility hook's rules are in force too.
    let cluster = Cluster::start("guard-corpus", &["shared_preload_libraries = 'migrate'"]);
    let mut c = cluster.connect("postgres");
    setup(&mut c);
    let mut failures = Vec::new();
    let mut covered = std::collections::BTreeSet::new();
    for (rule, pre, statement) in CORPUS {
        let row = c
            .query_one(
                "SELECT lock, rewrites, scans, severity FROM migrate.rules WHERE id = $1",
                &[rule],
            )
            .unwrap();
        let (lock, rewrites, scans, severity): (String, bool, bool, String) =
            (row.get(0), row.get(1), row.get(2), row.get(3));
        let table = if statement.contains("nopk") {
            "nopk"
        } else {
            "corpus"
        };
        let seen = observe(&mut c, table, pre, statement);
        let claim = (lock_name(&lock), rewrites, scans);
        let fact = (seen.strongest_lock.clone(), seen.rewritten, seen.scanned);
        // A dropped table cannot be inspected after the fact: only its lock is checked.
        let matches = if *rule == "drop_table" {
            claim.0 == fact.0
        } else {
            claim == fact
        };
        if !matches {
            failures.push(format!(
                "{rule}: `{statement}` claims {claim:?}, server did {fact:?}"
            ));
        }
        // With the guard on, the statement is stopped (or warned about) by this very rule.
        let mut tx = c.transaction().unwrap();
        match tx.batch_execute(statement) {
            Err(e) if severity == "block" => {
                let db = e.as_db_error().expect("a server error");
                if db.code().code() != "09000" || !db.message().contains(&format!("rule {rule}:")) {
                    failures.push(format!(
                        "{rule}: `{statement}` failed otherwise: {} {}",
                        db.code().code(),
                        db.message()
                    ));
                }
            }
            Ok(()) if severity == "warn" => {
                let logged: i64 = tx
                    .query_one("SELECT count(*) FROM migrate.guard_log WHERE rule = $1 AND action = 'warned'", &[rule])
                    .unwrap()
                    .get(0);
                if logged == 0 {
                    failures.push(format!("{rule}: `{statement}` was not warned about"));
                }
            }
            other => failures.push(format!(
                "{rule}: `{statement}` with the guard on: {other:?}"
            )),
        }
        let _ = tx.rollback();
        covered.insert(*rule);
    }
    for case in CASES {
        let row = c
            .query_one(
                "SELECT lock, rewrites, scans FROM migrate.rules WHERE id = $1",
                &[&case.rule],
            )
            .unwrap();
        let (lock, rewrites, scans): (String, bool, bool) = (row.get(0), row.get(1), row.get(2));
        let seen = observe(&mut c, case.table, case.setup, case.statement);
        let claim = (
            case.lock.map(String::from).unwrap_or_else(|| lock_name(&lock)),
            rewrites,
            scans,
        );
        let fact = (seen.strongest_lock.clone(), seen.rewritten, seen.scanned);
        if claim != fact {
            failures.push(format!(
                "{}: `{}` on {} claims {claim:?}, server did {fact:?}",
                case.rule, case.statement, case.table
            ));
        }
        let mut tx = c.transaction().unwrap();
        for s in case.setup {
            tx.batch_execute(s).unwrap();
        }
        match tx.batch_execute(case.statement) {
            Err(e) => {
                let db = e.as_db_error().expect("a server error");
                if db.code().code() != "09000"
                    || !db.message().contains(&format!("rule {}:", case.rule))
                {
                    failures.push(format!(
                        "{}: `{}` failed otherwise: {} {}",
                        case.rule,
                        case.statement,
                        db.code().code(),
                        db.message()
                    ));
                }
            }
            Ok(()) => failures.push(format!(
                "{}: `{}` was not blocked by the guard",
                case.rule, case.statement
            )),
        }
        let _ = tx.rollback();
        covered.insert(case.rule);
    }
    for (what, pre, statement, table, lock) in ALLOWED {
        let seen = observe(&mut c, table, pre, statement);
        if seen.rewritten || seen.scanned || seen.strongest_lock != *lock {
            failures.push(format!(
                "allowed {what}: `{statement}` took {:?} rewrite={} scan={}",
                seen.strongest_lock, seen.rewritten, seen.scanned
            ));
        }
        let mut tx = c.transaction().unwrap();
        for s in *pre {
            tx.batch_execute(s).unwrap();
        }
        if let Err(e) = tx.batch_execute(statement) {
            failures.push(format!("allowed {what}: blocked by the guard: {e}"));
        }
        let _ = tx.rollback();
    }
    covered.extend(hook_rules(&cluster, &mut c, &mut failures));
    // Static advice is migrate.check()'s alone: no statement to observe.
    let all: Vec<String> = c
        .query("SELECT id FROM migrate.rules WHERE severity <> 'info'", &[])
        .unwrap()
        .iter()
        .map(|r| r.get(0))
        .collect();
    for id in &all {
        // Its claim is about a migration's later statements, proven below.
        if !covered.contains(id.as_str()) && id != "lock_held_across_statements" {
            failures.push(format!("rule {id} has no corpus statement"));
        }
    }
    for (what, pre, statement, lock) in SAFE {
        let seen = observe(&mut c, "corpus", pre, statement);
        if seen.rewritten || seen.scanned || seen.strongest_lock != *lock {
            failures.push(format!(
                "safe form {what}: `{statement}` took {} rewrite={} scan={}",
                seen.strongest_lock, seen.rewritten, seen.scanned
            ));
        }
        let mut tx = c.transaction().unwrap();
        for s in *pre {
            tx.batch_execute(s).unwrap();
        }
        if let Err(e) = tx.batch_execute(statement) {
            failures.push(format!("safe form {what}: blocked by the guard: {e}"));
        }
        let _ = tx.rollback();
    }
    // VALIDATE CONSTRAINT of a committed NOT VALID constraint scans, but under SHARE UPDATE
    // EXCLUSIVE: reads and writes go on meanwhile.
    c.batch_execute("ALTER TABLE corpus ADD CONSTRAINT corpus_ck CHECK (n > 0) NOT VALID")
        .unwrap();
    let seen = observe(
        &mut c,
        "corpus",
        &[],
        "ALTER TABLE corpus VALIDATE CONSTRAINT corpus_ck",
    );
    if seen.strongest_lock != "ShareUpdateExclusiveLock" || seen.rewritten || !seen.scanned {
        failures.push(format!(
            "VALIDATE CONSTRAINT took {} rewrite={} scan={}",
            seen.strongest_lock, seen.rewritten, seen.scanned
        ));
    }
    assert!(
        failures.is_empty(),
        "{} mismatches:\n{}",
        failures.len(),
        failures.join("\n")
    );
}

/// `lock_held_across_statements`: its claim is about time, not one statement. While a
/// migration's later statement runs (an UPDATE, not instant), the ACCESS EXCLUSIVE its ALTER
/// TABLE took is still held: another session's read of the table waits (and gives up on its
/// lock_timeout), and the guard warned. The instant form (only catalog changes and a SELECT
/// without FROM after the ALTER) holds the lock just as long but only for an instant: no warning.
#[test]
fn a_strong_lock_is_held_across_a_migrations_later_statements() {
    let cluster = Cluster::start("guard-held", &[]);
    let mut c = cluster.connect("postgres");
    setup(&mut c);
    let warned = |c: &mut Client| -> i64 {
        c.query_one(
            "SELECT count(*) FROM migrate.guard_log \
             WHERE rule = 'lock_held_across_statements' AND action = 'warned'",
            &[],
        )
        .unwrap()
        .get(0)
    };
    c.batch_execute(
        "SELECT migrate.add('1', $$ALTER TABLE corpus ADD COLUMN held int;
UPDATE corpus SET n = n WHERE id = 1 AND pg_sleep(3) IS NOT NULL;$$)",
    )
    .unwrap();
    let mut deployer = cluster.connect("postgres");
    let deploy = std::thread::spawn(move || deployer.batch_execute("CALL migrate.deploy()"));
    std::thread::sleep(std::time::Duration::from_millis(1200));
    let mut reader = cluster.connect("postgres");
    let read = reader.batch_execute("SET lock_timeout = '500ms'; SELECT id FROM corpus LIMIT 1");
    let code = read
        .as_ref()
        .err()
        .and_then(|e| e.as_db_error())
        .map(|e| e.code().code().to_string());
    assert_eq!(
        code.as_deref(),
        Some("55P03"),
        "a read during the migration's UPDATE waits for the ALTER's lock: {read:?}"
    );
    deploy.join().unwrap().expect("the deploy succeeds");
    assert_eq!(warned(&mut c), 1, "the UPDATE after the ALTER was warned about");

    c.batch_execute(
        "SELECT migrate.add('2', $$ALTER TABLE corpus ADD COLUMN held2 int;
ALTER TABLE corpus ALTER COLUMN held2 SET DEFAULT 0;
COMMENT ON COLUMN corpus.held2 IS 'instant';
SELECT pg_catalog.now();$$)",
    )
    .unwrap();
    c.batch_execute("CALL migrate.deploy()").unwrap();
    assert_eq!(warned(&mut c), 1, "instant statements after the ALTER: no warning");
}
