//! Safe mode on a real server under load: a 200k-row table with a writer inserting and updating
//! all along, and each rewritten form deployed with `{"safe": true}` (CREATE INDEX, ADD FOREIGN
//! KEY, ADD CHECK, SET NOT NULL, ADD UNIQUE). A sampler watches `pg_locks`: no lock that blocks writes on
//! the table may be held longer than `migrate.lock_timeout`, and no write may wait longer than
//! about one second. At the end the index is valid, the constraints validated, the column NOT
//! NULL and no helper CHECK left.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread;
use std::time::{Duration, Instant};

use migrate_system_tests::{job_worker_waiting_for_a_lock, Client, Cluster};

const ROWS: i64 = 200_000;

fn one<T: for<'a> postgres::types::FromSql<'a>>(c: &mut Client, sql: &str) -> T {
    c.query_one(sql, &[]).unwrap().get(0)
}

/// Samples pg_locks until stopped: for each (pid, mode) of a lock that blocks writes on `t`,
/// the longest run of consecutive samples that saw it granted.
fn sample_strong_locks(mut c: Client, stop: Arc<AtomicBool>) -> HashMap<String, Duration> {
    let mut since: HashMap<(i32, String), Instant> = HashMap::new();
    let mut longest: HashMap<String, Duration> = HashMap::new();
    while !stop.load(Ordering::Relaxed) {
        let now = Instant::now();
        let held: Vec<(i32, String)> = c
            .query(
                "SELECT pid, relation::regclass::text || ': ' || mode FROM pg_locks \
                  WHERE relation IN ('t'::regclass, 'control'::regclass) AND granted \
                    AND mode IN ('ShareLock', 'ShareRowExclusiveLock', 'ExclusiveLock', 'AccessExclusiveLock')",
                &[],
            )
            .unwrap()
            .iter()
            .map(|r| (r.get(0), r.get(1)))
            .collect();
        since.retain(|k, _| held.contains(k));
        for k in held {
            let start = *since.entry(k.clone()).or_insert(now);
            let run = now - start;
            let entry = longest.entry(k.1.clone()).or_default();
            *entry = (*entry).max(run);
        }
        thread::sleep(Duration::from_millis(5));
    }
    longest
}

#[test]
fn every_rewrite_under_load() {
    let cluster = Cluster::start("safe-load", &[]);
    let mut c = cluster.connect("postgres");
    c.batch_execute(&format!(
        "CREATE EXTENSION migrate;
         CREATE TABLE parent (id int PRIMARY KEY);
         INSERT INTO parent SELECT g FROM generate_series(1, 100) g;
         CREATE TABLE t (id bigserial PRIMARY KEY, n int, ref int, note text);
         INSERT INTO t (n, ref, note) SELECT g, 1 + g % 100, 'x' FROM generate_series(1, {ROWS}) g;
         CREATE TABLE control AS SELECT * FROM t;
         ANALYZE parent, t, control;
         SELECT migrate.add('1', 'CREATE INDEX t_n ON t (n);', options => '{{\"safe\": true}}');
         SELECT migrate.add('2', 'ALTER TABLE t ADD FOREIGN KEY (ref) REFERENCES parent (id);', options => '{{\"safe\": true}}');
         SELECT migrate.add('3', 'ALTER TABLE t ADD CHECK (n >= 0);', options => '{{\"safe\": true}}');
         SELECT migrate.add('4', 'ALTER TABLE t ALTER COLUMN note SET NOT NULL;', options => '{{\"safe\": true}}');
         SELECT migrate.add('5', 'ALTER TABLE t ADD UNIQUE (id, n);', options => '{{\"safe\": true}}');"
    ))
    .unwrap();
    let lock_timeout_ms: i64 = one::<String>(&mut c, "SHOW migrate.lock_timeout")
        .trim_end_matches("ms")
        .trim_end_matches('s')
        .parse::<i64>()
        .map(|v| if v < 100 { v * 1000 } else { v })
        .unwrap();

    let stop = Arc::new(AtomicBool::new(false));
    let writer = {
        let stop = stop.clone();
        let mut w = cluster.connect("postgres");
        thread::spawn(move || {
            let (mut worst, mut n) = (Duration::ZERO, 0u64);
            // The row to update is picked here (a volatile WHERE would scan the table).
            let mut seed: u64 = 42;
            while !stop.load(Ordering::Relaxed) {
                seed = seed
                    .wrapping_mul(6364136223846793005)
                    .wrapping_add(1442695040888963407);
                let id = 1 + ((seed >> 33) % ROWS as u64) as i64;
                let start = Instant::now();
                w.execute(
                    "INSERT INTO t (n, ref, note) VALUES (1, $1, 'w')",
                    &[&(1 + (id % 100) as i32)],
                )
                .unwrap();
                w.execute("UPDATE t SET n = n + 1 WHERE id = $1", &[&id])
                    .unwrap();
                worst = worst.max(start.elapsed());
                n += 1;
                thread::sleep(Duration::from_millis(2));
            }
            (worst, n)
        })
    };
    let sampler = {
        let stop = stop.clone();
        let s = cluster.connect("postgres");
        thread::spawn(move || sample_strong_locks(s, stop))
    };
    let mut took = Vec::new();
    for v in ["1", "2", "3", "4", "5"] {
        let start = Instant::now();
        c.batch_execute(&format!("CALL migrate.deploy('{v}')"))
            .unwrap();
        took.push((v, start.elapsed()));
    }
    // The control: the same statements as written, guard off, on a copy of the table; only
    // printed, to show what the sampler sees when a strong lock is held through a scan.
    let control_start = Instant::now();
    c.batch_execute(
        "SET migrate.guard = off;
         CREATE INDEX control_n ON control (n);
         ALTER TABLE control ADD FOREIGN KEY (ref) REFERENCES parent (id);
         ALTER TABLE control ADD CHECK (n >= 0);
         ALTER TABLE control ALTER COLUMN note SET NOT NULL;
         ALTER TABLE control ADD UNIQUE (id, n);
         RESET migrate.guard;",
    )
    .unwrap();
    let control_took = control_start.elapsed();
    thread::sleep(Duration::from_millis(50));
    stop.store(true, Ordering::Relaxed);
    let (worst, writes) = writer.join().unwrap();
    let longest = sampler.join().unwrap();
    println!("deploys: {took:?}");
    println!("{writes} write pairs, slowest {worst:?}");
    println!("longest strong lock runs (t: safe mode; control: as written, {control_took:?}): {longest:?} (lock_timeout {lock_timeout_ms} ms)");

    let applied: i64 = one(
        &mut c,
        "SELECT count(*) FROM migrate.status() WHERE state = 'applied'",
    );
    assert_eq!(applied, 5);
    assert!(one::<bool>(
        &mut c,
        "SELECT indisvalid AND indisready FROM pg_index WHERE indexrelid = 't_n'::regclass"
    ));
    let constraints: Vec<(String, bool)> = c
        .query(
            "SELECT conname::text, convalidated FROM pg_constraint \
             WHERE conrelid = 't'::regclass AND contype IN ('c', 'f', 'u') ORDER BY conname",
            &[],
        )
        .unwrap()
        .iter()
        .map(|r| (r.get(0), r.get(1)))
        .collect();
    assert_eq!(
        constraints,
        [
            ("t_id_n_key".to_string(), true),
            ("t_n_check".to_string(), true),
            ("t_ref_fkey".to_string(), true)
        ]
    );
    assert!(one::<bool>(
        &mut c,
        "SELECT attnotnull FROM pg_attribute WHERE attrelid = 't'::regclass AND attname = 'note'"
    ));
    // Every step was a statement of its own in the worker, as the history says.
    let detail: String = one(
        &mut c,
        "SELECT detail FROM migrate.history WHERE version = '4' AND action = 'apply'",
    );
    assert!(
        detail.contains("VALIDATE CONSTRAINT t_note_not_null_check"),
        "{detail}"
    );
    assert!(writes > 0);
    assert!(worst < Duration::from_secs(1), "a writer waited {worst:?}");
    // Safe mode's strong locks cover catalog changes only: shorter than the same statements'
    // as written, which hold them through a build or a scan.
    let worst_of = |prefix: &str| {
        longest
            .iter()
            .filter(|(m, _)| m.starts_with(prefix))
            .map(|(_, d)| *d)
            .max()
            .unwrap_or_default()
    };
    assert!(
        worst_of("t: ") < worst_of("control: "),
        "safe mode held a strong lock on t as long as the unsafe forms on control"
    );
    assert_locks_on_t_within(&longest, lock_timeout_ms);
}

/// A safe-mode deploy whose worker is killed with `kill -9` in the middle of its steps (the
/// foreign key added NOT VALID and validated, the concurrent build waiting for an old
/// snapshot): the next deploy resumes at the build with the same script, so the constraint is
/// not added a second time under another name, and the invalid index is dropped and rebuilt.
#[test]
fn a_killed_safe_deploy_resumes_at_its_step() {
    let cluster = Cluster::start("safe-crash", &[]);
    let mut c = cluster.connect("postgres");
    c.batch_execute(
        "CREATE EXTENSION migrate;
         CREATE TABLE parent (id int PRIMARY KEY);
         INSERT INTO parent SELECT g FROM generate_series(1, 100) g;
         CREATE TABLE t (id int PRIMARY KEY, ref int, v text);
         INSERT INTO t SELECT g, 1 + g % 100, 'v' || g FROM generate_series(1, 50000) g;
         ANALYZE parent, t;
         SELECT migrate.add('1', E'ALTER TABLE t ADD FOREIGN KEY (ref) REFERENCES parent (id);\\nCREATE INDEX t_v ON t (v);',
                            options => '{\"safe\": true}');",
    )
    .unwrap();
    // A snapshot older than the build: the build waits for it once its index exists.
    let mut holder = cluster.connect("postgres");
    holder
        .batch_execute("BEGIN ISOLATION LEVEL REPEATABLE READ; SELECT count(*) FROM parent;")
        .unwrap();
    let mut deployer = cluster.connect("postgres");
    let deploy = thread::spawn(move || deployer.batch_execute("CALL migrate.deploy()").is_ok());
    let pid = job_worker_waiting_for_a_lock(&mut c, Duration::from_secs(60));
    let fk: (i64, bool) = {
        let r = c
            .query_one(
                "SELECT count(*), bool_and(convalidated) FROM pg_constraint \
                 WHERE conrelid = 't'::regclass AND contype = 'f'",
                &[],
            )
            .unwrap();
        (r.get(0), r.get(1))
    };
    assert_eq!(fk, (1, true), "the foreign key steps are done");
    let status = std::process::Command::new("kill")
        .args(["-9", &pid.to_string()])
        .status()
        .unwrap();
    assert!(status.success());
    assert!(
        !deploy.join().unwrap(),
        "the deploy went down with the server"
    );
    drop(holder);
    let mut c = cluster.connect_retry("postgres", Duration::from_secs(60));
    c.batch_execute("CALL migrate.deploy()").unwrap();
    let state: String = one(
        &mut c,
        "SELECT state FROM migrate.status() WHERE version = '1'",
    );
    assert_eq!(state, "applied");
    let constraints: Vec<(String, bool)> = c
        .query(
            "SELECT conname::text, convalidated FROM pg_constraint \
             WHERE conrelid = 't'::regclass AND contype = 'f' ORDER BY conname",
            &[],
        )
        .unwrap()
        .iter()
        .map(|r| (r.get(0), r.get(1)))
        .collect();
    assert_eq!(constraints, [("t_ref_fkey".to_string(), true)]);
    assert!(one::<bool>(
        &mut c,
        "SELECT indisvalid FROM pg_index WHERE indexrelid = 't_v'::regclass"
    ));
    let invalid: i64 = one(&mut c, "SELECT count(*) FROM pg_index WHERE NOT indisvalid");
    assert_eq!(invalid, 0);
    let detail: String = one(
        &mut c,
        "SELECT detail FROM migrate.history WHERE version = '1' AND action = 'apply' \
         AND error_sqlstate IS NULL",
    );
    println!("history after the resumed deploy: {detail}");
    assert!(detail.contains("safe mode"), "{detail}");
}

/// `ADD COLUMN ... NOT NULL DEFAULT <volatile>` with `{"safe": true}` on a 200k-row table while
/// a writer inserts and updates, some updates setting the new column themselves: the column is
/// added without its default, the default set, the existing rows filled by a backfill job the
/// worker waits for, then NOT NULL the safe way. Every row ends with a value, the fill updates
/// no row twice (a trigger counts the fill worker's updates) and leaves the writer's values
/// alone, and no write waits longer than about one lock_timeout.
#[test]
fn add_column_volatile_default_under_load() {
    let cluster = Cluster::start("safe-fill", &[]);
    let mut c = cluster.connect("postgres");
    c.batch_execute(&format!(
        "CREATE EXTENSION migrate;
         CREATE TABLE t (id bigserial PRIMARY KEY, n int);
         INSERT INTO t (n) SELECT g FROM generate_series(1, {ROWS}) g;
         CREATE TABLE control (id int);
         ANALYZE t;
         CREATE TABLE fill_updates (id bigint, by_fill boolean);
         CREATE FUNCTION count_update() RETURNS trigger LANGUAGE plpgsql AS $$
           BEGIN
             INSERT INTO fill_updates VALUES (NEW.id,
               (SELECT backend_type = 'migrate job worker' FROM pg_stat_activity
                 WHERE pid = pg_backend_pid()));
             RETURN NEW;
           END $$;
         CREATE TRIGGER count_update AFTER UPDATE ON t FOR EACH ROW EXECUTE FUNCTION count_update();
         SELECT migrate.add('1', 'ALTER TABLE t ADD COLUMN w float8 NOT NULL DEFAULT 1 + random();',
                            options => '{{\"safe\": true}}');"
    ))
    .unwrap();
    let lock_timeout_ms: i64 = one::<String>(&mut c, "SHOW migrate.lock_timeout")
        .trim_end_matches("ms")
        .trim_end_matches('s')
        .parse::<i64>()
        .map(|v| if v < 100 { v * 1000 } else { v })
        .unwrap();
    let stop = Arc::new(AtomicBool::new(false));
    let writer = {
        let stop = stop.clone();
        let mut w = cluster.connect("postgres");
        thread::spawn(move || {
            let (mut worst, mut n) = (Duration::ZERO, 0u64);
            let mut own: Vec<i64> = Vec::new();
            let mut seed: u64 = 7;
            while !stop.load(Ordering::Relaxed) {
                seed = seed
                    .wrapping_mul(6364136223846793005)
                    .wrapping_add(1442695040888963407);
                let id = 1 + ((seed >> 33) % ROWS as u64) as i64;
                let start = Instant::now();
                w.execute("INSERT INTO t (n) VALUES (1)", &[]).unwrap();
                w.execute("UPDATE t SET n = n + 1 WHERE id = $1", &[&id])
                    .unwrap();
                // The application writes the new column itself once it exists: the fill must
                // keep that value (before the column exists this fails, 42703).
                if n % 10 == 0
                    && w.execute("UPDATE t SET w = -1 WHERE id = $1", &[&id])
                        .is_ok()
                {
                    own.push(id);
                }
                worst = worst.max(start.elapsed());
                n += 1;
                thread::sleep(Duration::from_millis(2));
            }
            (worst, n, own)
        })
    };
    let sampler = {
        let stop = stop.clone();
        let s = cluster.connect("postgres");
        thread::spawn(move || sample_strong_locks(s, stop))
    };
    let start = Instant::now();
    c.batch_execute("CALL migrate.deploy('1')").unwrap();
    let took = start.elapsed();
    thread::sleep(Duration::from_millis(50));
    stop.store(true, Ordering::Relaxed);
    let (worst, writes, own) = writer.join().unwrap();
    let longest = sampler.join().unwrap();
    println!(
        "deploy: {took:?}; {writes} writes, slowest {worst:?}; the writer set w on {} rows",
        own.len()
    );
    println!("longest strong lock runs: {longest:?} (lock_timeout {lock_timeout_ms} ms)");

    let state: String = one(
        &mut c,
        "SELECT state FROM migrate.status() WHERE version = '1'",
    );
    assert_eq!(state, "applied");
    let (rows, nulls): (i64, i64) = {
        let r = c
            .query_one(
                "SELECT count(*), count(*) FILTER (WHERE w IS NULL) FROM t",
                &[],
            )
            .unwrap();
        (r.get(0), r.get(1))
    };
    assert!(rows > ROWS);
    assert_eq!(nulls, 0, "every row has a value");
    assert!(one::<bool>(
        &mut c,
        "SELECT attnotnull FROM pg_attribute WHERE attrelid = 't'::regclass AND attname = 'w'"
    ));
    let leftover: i64 = one(
        &mut c,
        "SELECT count(*) FROM pg_constraint WHERE conrelid = 't'::regclass AND contype = 'c'",
    );
    assert_eq!(leftover, 0);
    // The fill updated each row at most once, and only rows that had no value.
    let twice: i64 = one(
        &mut c,
        "SELECT count(*) FROM (SELECT id FROM fill_updates WHERE by_fill GROUP BY id HAVING count(*) > 1) x",
    );
    assert_eq!(twice, 0, "a row was updated twice by the fill");
    let filled: i64 = one(&mut c, "SELECT count(*) FROM fill_updates WHERE by_fill");
    println!("the fill updated {filled} rows");
    assert!(filled > 0 && filled <= ROWS, "{filled}");
    // The writer's own values stay.
    let ids: Vec<i64> = own;
    let kept: i64 = c
        .query_one(
            "SELECT count(*) FROM t WHERE id = ANY($1) AND w = -1",
            &[&ids],
        )
        .unwrap()
        .get(0);
    let distinct: i64 = c
        .query_one(
            "SELECT count(DISTINCT x) FROM unnest($1::bigint[]) x",
            &[&ids],
        )
        .unwrap()
        .get(0);
    assert_eq!(
        kept, distinct,
        "the fill overwrote a value the application wrote"
    );
    let detail: String = one(
        &mut c,
        "SELECT detail FROM migrate.history WHERE version = '1' AND action = 'apply'",
    );
    assert!(
        detail.contains("SET DEFAULT") && detail.contains("migrate.backfill"),
        "{detail}"
    );
    assert!(writes > 0);
    assert!(
        worst.as_millis() < lock_timeout_ms as u128 + 1000,
        "a writer waited {worst:?}"
    );
    assert_locks_on_t_within(&longest, lock_timeout_ms);
}

/// The server crashes (`kill -9` of the deploy's worker) while the fill of a column added with
/// a volatile default is half done: the next deploy resumes the fill step, finds the backfill
/// job it recorded and restarts it from its checkpoint. One backfill job in all, every row
/// filled, none updated twice by the fill.
#[test]
fn a_crashed_fill_resumes_its_backfill_job() {
    let cluster = Cluster::start("safe-fill-crash", &[]);
    let mut c = cluster.connect("postgres");
    c.batch_execute(&format!(
        "CREATE EXTENSION migrate;
         CREATE TABLE t (id bigint PRIMARY KEY, n int);
         INSERT INTO t SELECT g, g FROM generate_series(1, {ROWS}) g;
         ANALYZE t;
         CREATE TABLE fill_updates (id bigint);
         CREATE FUNCTION count_update() RETURNS trigger LANGUAGE plpgsql AS $$
           BEGIN INSERT INTO fill_updates VALUES (NEW.id); RETURN NEW; END $$;
         CREATE TRIGGER count_update AFTER UPDATE ON t FOR EACH ROW EXECUTE FUNCTION count_update();
         SELECT migrate.add('1', 'ALTER TABLE t ADD COLUMN w float8 NOT NULL DEFAULT 1 + random();',
                            options => '{{\"safe\": true}}');"
    ))
    .unwrap();
    let mut deployer = cluster.connect("postgres");
    let deploy = thread::spawn(move || deployer.batch_execute("CALL migrate.deploy()").is_ok());
    let deadline = Instant::now() + Duration::from_secs(60);
    let pid: i32 = loop {
        let row = c
            .query_opt(
                "SELECT a.pid FROM pg_stat_activity a, migrate.jobs f \
                 WHERE a.backend_type = 'migrate job worker' \
                   AND a.application_name LIKE 'migrate job %: migration%' \
                   AND f.kind = 'backfill' AND f.rows_done > 0 AND f.state = 'running'",
                &[],
            )
            .unwrap();
        if let Some(row) = row {
            break row.get(0);
        }
        assert!(Instant::now() < deadline, "the fill never started");
        thread::sleep(Duration::from_millis(10));
    };
    let status = std::process::Command::new("kill")
        .args(["-9", &pid.to_string()])
        .status()
        .unwrap();
    assert!(status.success());
    assert!(
        !deploy.join().unwrap(),
        "the deploy went down with the server"
    );
    let mut c = cluster.connect_retry("postgres", Duration::from_secs(60));
    let before: i64 = one(&mut c, "SELECT count(*) FROM t WHERE w IS NOT NULL");
    println!("rows filled before the crash: {before}");
    assert!(before < ROWS, "the fill had finished before the crash");
    c.batch_execute("CALL migrate.deploy()").unwrap();
    let state: String = one(
        &mut c,
        "SELECT state FROM migrate.status() WHERE version = '1'",
    );
    assert_eq!(state, "applied");
    let jobs: i64 = one(
        &mut c,
        "SELECT count(*) FROM migrate.jobs WHERE kind = 'backfill'",
    );
    assert_eq!(jobs, 1, "the resumed step queued a second fill");
    let nulls: i64 = one(&mut c, "SELECT count(*) FROM t WHERE w IS NULL");
    assert_eq!(nulls, 0);
    let (updates, rows): (i64, i64) = {
        let r = c
            .query_one("SELECT count(*), count(DISTINCT id) FROM fill_updates", &[])
            .unwrap();
        (r.get(0), r.get(1))
    };
    assert_eq!(
        (updates, rows),
        (ROWS, ROWS),
        "a row was updated twice or not at all"
    );
    assert!(one::<bool>(
        &mut c,
        "SELECT attnotnull FROM pg_attribute WHERE attrelid = 't'::regclass AND attname = 'w'"
    ));
}

/// Every write-blocking lock the sampler saw on `t` was held for less than `lock_timeout_ms`.
fn assert_locks_on_t_within(longest: &HashMap<String, Duration>, lock_timeout_ms: i64) {
    for (mode, run) in longest.iter().filter(|(m, _)| m.starts_with("t: ")) {
        assert!(
            run.as_millis() < lock_timeout_ms as u128,
            "{mode} on t was held for {run:?}"
        );
    }
}
