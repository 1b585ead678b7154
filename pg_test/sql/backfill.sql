-- Backfills: a job runs in a background worker after the caller commits; every bad input is
-- refused with its own SQLSTATE and queues nothing.
CREATE EXTENSION migrate;
CREATE ROLE regress_bf_owner LOGIN;
CREATE ROLE regress_bf_other LOGIN;
CREATE TABLE items (id int PRIMARY KEY, price int NOT NULL, qty int NOT NULL, total int);
INSERT INTO items SELECT g, g % 10, 3 FROM generate_series(1, 5000) g;
CREATE TABLE pairs (tenant int, seq int, note text, n int NOT NULL DEFAULT 0,
                    PRIMARY KEY (tenant, seq));
INSERT INTO pairs SELECT t, s, NULL FROM generate_series(1, 20) t, generate_series(1, 50) s;
CREATE TABLE by_code (code text COLLATE "C" NOT NULL UNIQUE, n int NOT NULL DEFAULT 0);
INSERT INTO by_code SELECT 'k' || g FROM generate_series(1, 300) g;
CREATE TABLE loose (v int, done boolean);
INSERT INTO loose SELECT g, NULL FROM generate_series(1, 700) g;
CREATE VIEW items_v AS SELECT * FROM items;
ALTER TABLE items OWNER TO regress_bf_owner;
ALTER TABLE pairs OWNER TO regress_bf_owner;
ALTER TABLE by_code OWNER TO regress_bf_owner;
ALTER TABLE loose OWNER TO regress_bf_owner;
ALTER VIEW items_v OWNER TO regress_bf_owner;

-- Superusers do not queue jobs unless a superuser allowed it.
SELECT migrate.backfill('items', 'total = price * qty');

SET ROLE regress_bf_owner;
-- Bad input: each a clear SQLSTATE, no job.
SELECT migrate.backfill('no_such_table', 'total = 1');
SELECT migrate.backfill('items_v', 'total = 1');
SELECT migrate.backfill('items', 'total = = 1');
SELECT migrate.backfill('items', 'no_such_column = 1');
SELECT migrate.backfill('items', 'total = price * qty', 'no_such_column IS NULL');
SELECT migrate.backfill('items', 'total = ''x''::date');
SELECT migrate.backfill('items', 'total = 1', batch_size => 0);
SELECT migrate.backfill('items', 'total = 1', batch_size => -5);
SELECT migrate.backfill('items', 'total = 1', pause => '-1 s');
SELECT migrate.backfill('items', NULL);
SELECT migrate.backfill('items', '   ');
-- SQL smuggled into the pieces of the UPDATE is refused, not run.
SELECT migrate.backfill('items', 'total = 1 WHERE id = 1');
SELECT migrate.backfill('items', 'total = 1 RETURNING id');
SELECT migrate.backfill('items', 'total = 1; DROP TABLE items');
SELECT migrate.backfill('items', 'total = 1', 'true) OR (true');
SELECT migrate.backfill('items', 'total = 1', 'true ORDER BY 1');
SELECT migrate.backfill('items', 'total = 1', 'true; DROP TABLE items');
-- The walk's key cannot be assigned.
SELECT migrate.backfill('items', 'id = id + 1');
-- No key and no where_sql: refused; with a where_sql the SET falsifies, accepted below.
SELECT migrate.backfill('loose', 'done = true');
SELECT count(*) AS jobs_after_bad_input FROM migrate.jobs;

-- A rolled-back caller leaves no job (and no worker runs one).
BEGIN;
SELECT migrate.backfill('items', 'total = price * qty') > 0 AS queued;
ROLLBACK;
SELECT count(*) AS jobs_after_rollback FROM migrate.jobs;

-- wait_job only outside a transaction block (it commits while it waits).
BEGIN;
CALL migrate.wait_job(1);
ROLLBACK;

-- Real jobs: primary key, composite key, unique text key with a collation, no key.
SELECT migrate.backfill('items', 'total = price * qty', 'total IS NULL') AS items_job \gset
CALL migrate.wait_job(:items_job, '60 s');
SELECT count(*) FILTER (WHERE total = price * qty) AS filled, count(*) AS total FROM items;
SELECT migrate.backfill('pairs', 'n = n + 1, note = tenant || ''/'' || seq', batch_size => 7) AS pairs_job \gset
CALL migrate.wait_job(:pairs_job);
SELECT n, count(*) FROM pairs GROUP BY n;
SELECT migrate.backfill('by_code', 'n = n + 1', batch_size => 13) AS code_job \gset
CALL migrate.wait_job(:code_job);
SELECT n, count(*) FROM by_code GROUP BY n;
SELECT migrate.backfill('loose', 'done = true', 'done IS NULL', batch_size => 100) AS loose_job \gset
CALL migrate.wait_job(:loose_job);
SELECT done, count(*) FROM loose GROUP BY done;
-- A keyless job whose SET does not falsify its where_sql fails instead of looping forever.
SELECT migrate.backfill('loose', 'v = v', 'done', batch_size => 100) AS bad_job \gset
CALL migrate.wait_job(:bad_job);
SELECT kind, table_name, state, rows_done, percent_done, rows_updated,
       last_key, error, owner
FROM migrate.jobs ORDER BY id;

-- Control: states that do not allow an action are refused.
SELECT migrate.pause_job(:items_job);
SELECT migrate.cancel_job(:items_job);
SELECT migrate.resume_job(:pairs_job);
SELECT migrate.pause_job(424242);
CALL migrate.wait_job(424242);
CALL migrate.wait_job(NULL);
-- A failed job can be cancelled; then waiting for it says so.
SELECT migrate.cancel_job(:bad_job);
CALL migrate.wait_job(:bad_job);
RESET ROLE;

-- Another role can neither control the owner's jobs nor read their SQL, nor queue a job on a
-- table it may not update, nor write the queue.
SET ROLE regress_bf_other;
SELECT migrate.pause_job(:items_job);
SELECT migrate.resume_job(:bad_job);
SELECT id, state, set_sql, where_sql FROM migrate.jobs ORDER BY id LIMIT 2;
SELECT migrate.backfill('items', 'total = 0');
UPDATE migrate.job_queue SET owner_oid = 10;
INSERT INTO migrate.job_queue (kind, relid, table_name, set_sql, search_path, current_batch_size, owner_oid, owner_name)
VALUES ('backfill', 'items', 'items', 'total = 0', 'public', 1, 10, 'postgres');
RESET ROLE;

-- migrate.allow_superuser_jobs and the throttles' limits are for superusers only to set.
SET ROLE regress_bf_other;
SET migrate.allow_superuser_jobs = on;
SET migrate.max_wal_rate = '1GB';
SET migrate.max_active_backends = 0;
RESET ROLE;

-- Several workers: bad counts are refused, a keyless table cannot be split, and a job with
-- workers => 3 splits the key into ranges that together update every row exactly once.
SET ROLE regress_bf_owner;
SELECT migrate.backfill('pairs', 'n = n + 1', workers => 0);
SELECT migrate.backfill('pairs', 'n = n + 1', workers => 65);
SET migrate.backfill_workers = 2;
SELECT migrate.backfill('loose', 'done = NOT done', 'done IS NOT NULL');
RESET migrate.backfill_workers;
SELECT count(*) AS jobs_after_bad_workers FROM migrate.jobs;
UPDATE pairs SET n = 0;
SELECT migrate.backfill('pairs', 'n = n + 1', batch_size => 11, workers => 3) AS parallel_job \gset
CALL migrate.wait_job(:parallel_job);
SELECT n, count(*) FROM pairs GROUP BY n;
SELECT state, rows_done, rows_updated, workers, active_workers, percent_done
FROM migrate.jobs WHERE id = :parallel_job;
RESET ROLE;
-- The ranges tile the key: the first starts at the beginning, each starts where the previous
-- ended, the last ends at the largest key; all done, their rows add up.
SELECT count(*) AS ranges, bool_and(done) AS all_done, sum(rows_done) AS rows_done,
       bool_and(lower_key IS NOT DISTINCT FROM prev_upper) AS contiguous,
       bool_or(upper_key = '{20,50}' AND range_no = 3) AS last_ends_at_largest_key
FROM (SELECT r.*, lag(upper_key) OVER (ORDER BY range_no) AS prev_upper
      FROM migrate.job_ranges r WHERE job_id = :parallel_job) r;

-- The job's SQL may leave nothing in its worker's session: a temporary table (created by a
-- function the SET calls; the worker had no temporary schema before) or an advisory lock fails
-- the job with 42501 and rolls its batch back.
CREATE FUNCTION public.bf_leave_temp(v int) RETURNS int LANGUAGE plpgsql AS $$
BEGIN
  CREATE TEMP TABLE IF NOT EXISTS bf_left (a int);
  RETURN v;
END $$;
UPDATE items SET total = NULL WHERE id <= 10;
SET ROLE regress_bf_owner;
SELECT migrate.backfill('items', 'total = public.bf_leave_temp(price * qty)', 'total IS NULL') AS temp_job \gset
CALL migrate.wait_job(:temp_job);
SELECT migrate.backfill('items', 'total = CASE WHEN pg_try_advisory_lock(4242) THEN price * qty END', 'total IS NULL') AS lock_job \gset
CALL migrate.wait_job(:lock_job);
RESET ROLE;
SELECT count(*) FILTER (WHERE total IS NULL) AS still_null FROM items;
DROP FUNCTION public.bf_leave_temp(int);

DROP TABLE items, pairs, by_code, loose CASCADE;
DROP ROLE regress_bf_owner, regress_bf_other;
