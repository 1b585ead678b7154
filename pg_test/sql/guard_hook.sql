-- needs: shared_preload_libraries = 'migrate'
-- The ProcessUtility hook, on a cluster started with the library preloaded: the statements
-- event triggers never see (VACUUM FULL, CLUSTER, REINDEX, REFRESH MATERIALIZED VIEW,
-- TRUNCATE, LOCK TABLE) blocked, warned, permitted and let through; their lock wait bounded
-- and lock_timeout restored, also after an error; a lock timeout the guard set explained.
-- guard_hook_plain.sql runs the same statements without preloading: none of them is judged.
CREATE EXTENSION migrate;
CREATE EXTENSION dblink;
SELECT id, severity, lock, rewrites, scans, size_dependent, needs_preload, active
FROM migrate.rules WHERE needs_preload ORDER BY id;
SELECT count(*) AS rules, count(*) FILTER (WHERE active) AS active FROM migrate.rules;

SET migrate.guard = off;
CREATE TABLE big (id int PRIMARY KEY, v text);
INSERT INTO big SELECT g, 'v' || g FROM generate_series(1, 20000) g;
CREATE TABLE small (id int PRIMARY KEY);
CREATE MATERIALIZED VIEW big_mv AS SELECT id, v FROM big WHERE id <= 15000;
CREATE UNIQUE INDEX big_mv_id ON big_mv (id);
-- Two partitions below migrate.guard_min_rows (10000) each, 12000 rows together.
CREATE TABLE parted (id int, v text) PARTITION BY RANGE (id);
CREATE TABLE parted_1 PARTITION OF parted FOR VALUES FROM (0) TO (6000);
CREATE TABLE parted_2 PARTITION OF parted FOR VALUES FROM (6000) TO (12000);
INSERT INTO parted SELECT g, 'v' FROM generate_series(0, 11999) g;
CREATE INDEX parted_id ON parted (id);
RESET migrate.guard;
ANALYZE;

-- vacuum_full: blocked on a big table (the partitions of a partitioned one summed) and for
-- the whole database (naming the biggest table); plain VACUUM and small tables go through.
VACUUM FULL big;
VACUUM (FULL, VERBOSE false) parted;
VACUUM FULL;
VACUUM FULL small;
VACUUM big;
VACUUM (FULL false) big;
-- In a transaction block PostgreSQL refuses VACUUM itself: the guard has nothing to judge.
BEGIN;
VACUUM FULL big;
ROLLBACK;

-- cluster
CLUSTER big USING big_pkey;
CLUSTER small USING small_pkey;
BEGIN;
SELECT migrate.allow('cluster', 'maintenance window');
CLUSTER big USING big_pkey;
ROLLBACK;

-- reindex_not_concurrent: REINDEX ... CONCURRENTLY is the safe form.
REINDEX TABLE big;
REINDEX INDEX big_pkey;
REINDEX SCHEMA public;
REINDEX TABLE small;
REINDEX TABLE CONCURRENTLY big;
REINDEX INDEX CONCURRENTLY big_pkey;

-- refresh_matview_not_concurrent: CONCURRENTLY (it needs the unique index) and WITH NO DATA
-- go through.
REFRESH MATERIALIZED VIEW big_mv;
REFRESH MATERIALIZED VIEW CONCURRENTLY big_mv;
REFRESH MATERIALIZED VIEW big_mv WITH NO DATA;

-- truncate: a warning whatever the size; nothing for a table created in this transaction.
BEGIN;
TRUNCATE small;
TRUNCATE parted CASCADE;
ROLLBACK;
BEGIN;
CREATE TABLE fresh (id int);
TRUNCATE fresh;
ROLLBACK;

-- lock_table_strong: SHARE and stronger on a big table warn.
BEGIN;
LOCK TABLE big IN ACCESS EXCLUSIVE MODE;
LOCK TABLE big IN SHARE MODE;
LOCK TABLE parted IN EXCLUSIVE MODE;
LOCK TABLE big IN ROW EXCLUSIVE MODE;
LOCK TABLE small IN ACCESS EXCLUSIVE MODE;
ROLLBACK;

-- Warn mode and migrate.guard = off.
SET migrate.guard = warn;
REINDEX TABLE big;
SET migrate.guard = off;
REINDEX TABLE big;
RESET migrate.guard;

-- migrate.plan() reports what the hook would block, and blocks nothing.
SELECT migrate.add('1', 'REINDEX TABLE big; TRUNCATE small;');
SELECT statement, guard FROM migrate.plan();
SELECT migrate.remove('1');

-- The guard's lock_timeout: another session holds a lock on big. The statement gives up
-- after migrate.lock_timeout with the guard's HINT, and lock_timeout is what it was, also
-- for VACUUM FULL, which runs in transactions of its own.
SET migrate.lock_timeout = '200ms';
SELECT dblink_connect('other', 'host=127.0.0.1 port=' || current_setting('port')
                      || ' dbname=' || current_database() || ' user=postgres');
SELECT dblink_exec('other', 'BEGIN');
SELECT dblink_exec('other', 'LOCK TABLE big IN ACCESS SHARE MODE');
SHOW lock_timeout;
BEGIN;
SELECT migrate.allow('cluster', 'maintenance window');
CLUSTER big USING big_pkey;
ROLLBACK;
SHOW lock_timeout;
SET migrate.guard = warn;
VACUUM FULL big;
SHOW lock_timeout;
RESET migrate.guard;
BEGIN;
TRUNCATE big;
ROLLBACK;
SHOW lock_timeout;
-- DDL: the event trigger set the lock_timeout, the hook explains it.
ALTER TABLE big ADD COLUMN note text;
SHOW lock_timeout;
-- A lock the statement did not wait for (NOWAIT), or a lock_timeout the session set itself,
-- is not the guard's: PostgreSQL's error as it is.
BEGIN;
LOCK TABLE big IN ACCESS EXCLUSIVE MODE NOWAIT;
ROLLBACK;
SET lock_timeout = '100ms';
ALTER TABLE big ADD COLUMN note text;
RESET lock_timeout;
-- Nested: a statement inside a function, the session's lock_timeout untouched after it.
CREATE FUNCTION public.empty_small() RETURNS void LANGUAGE sql AS 'TRUNCATE small';
SELECT public.empty_small();
SHOW lock_timeout;
SELECT dblink_exec('other', 'ROLLBACK');
SELECT dblink_disconnect('other');
RESET migrate.lock_timeout;

-- Errors of statements the hook does not judge reach the client untouched (position kept).
CREATE TABLE broken (x no_such_type);

-- The log (blocked rows are written by a background worker in their own transaction).
CREATE FUNCTION public.wait_for_guard_log(n int) RETURNS void LANGUAGE plpgsql AS $$
BEGIN
    FOR i IN 1..200 LOOP
        EXIT WHEN (SELECT count(*) FROM migrate.guard_log WHERE action = 'blocked') >= n;
        PERFORM pg_sleep(0.05);
    END LOOP;
END $$;
SELECT public.wait_for_guard_log(8);
SELECT action, rule, table_name, count(*) FROM migrate.guard_log
GROUP BY action, rule, table_name ORDER BY action, rule, table_name;
