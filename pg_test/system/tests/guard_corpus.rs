//! Proof of the guard's claims: each rule's statement runs (guard off) on a real table of 50,000
//! rows and the server must agree with what `migrate.rules` says: the strongest lock taken on
//! the table (pg_locks), whether the table was rewritten (relfilenode), whether it was scanned
//! (pg_stat_xact_user_tables). The safe alternatives are observed too: no rewrite, no scan.
//! Then, with the guard on, each statement is blocked (or warned about) by its own rule.

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
         RESET migrate.guard;",
    )
    .unwrap();
    c.batch_execute("VACUUM ANALYZE")
        .unwrap();
}

#[test]
fn every_rule_claim_is_observed_on_a_real_table() {
    let cluster = Cluster::start("guard-corpus", &[]);
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
