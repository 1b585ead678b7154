-- migrate.deploy(), resolve(), plan() and verify() from psql. Timings vary, so deploy's NOTICE
-- lines are silenced where a step runs; the system tests (pg_test/system/tests/deploy.rs)
-- cover concurrency, lock retries and failures of concurrent index builds.
CREATE EXTENSION migrate;
CREATE TABLE acc (id int PRIMARY KEY, n int, note text);
INSERT INTO acc SELECT g, g, 'x' FROM generate_series(1, 50000) g;
ANALYZE acc;

-- deploy() commits per migration: refused inside a transaction block or a function.
BEGIN;
CALL migrate.deploy();
ROLLBACK;
SELECT migrate.deploy();
CALL migrate.deploy('v9');
CALL migrate.deploy('1 2');
CALL migrate.deploy();

-- plan(): each statement in a subtransaction that is rolled back; locks, rewrites, scans and
-- the guard's verdicts (every one, nothing blocked, nothing logged).
SELECT migrate.add('1', 'ALTER TABLE acc ALTER COLUMN n TYPE bigint;', 'ALTER TABLE acc ALTER COLUMN n TYPE int;');
SELECT relfilenode AS before FROM pg_class WHERE relname = 'acc' \gset
SELECT version, statement, sql, executed, locks, rewrites, rows_scanned, guard, error
FROM migrate.plan();
SELECT relfilenode = :before AS same_file,
       (SELECT format_type(atttypid, atttypmod) FROM pg_attribute
        WHERE attrelid = 'acc'::regclass AND attname = 'n') AS n_type,
       (SELECT count(*) FROM migrate.guard_log) AS guard_log_rows,
       (SELECT state FROM migrate.status() WHERE version = '1') AS state
FROM pg_class WHERE relname = 'acc';
SELECT migrate.add('1', 'CREATE INDEX acc_note ON acc (note);', 'DROP INDEX acc_note;');
SELECT version, statement, locks, rewrites, rows_scanned, guard FROM migrate.plan();
SELECT migrate.add('1', 'ALTER TABLE acc ADD COLUMN flag boolean NOT NULL DEFAULT false;', 'ALTER TABLE acc DROP COLUMN flag;');
SELECT version, statement, locks, rewrites, rows_scanned, guard FROM migrate.plan();
-- A non-transactional migration is analysed, not run; a failing statement ends the plan.
SELECT migrate.add('2', E'-- migrate:no-transaction\nCREATE INDEX CONCURRENTLY acc_n ON acc (n);', 'DROP INDEX CONCURRENTLY acc_n;');
SELECT migrate.add('3', 'ALTER TABLE acc ADD COLUMN nope int REFERENCES missing (id);');
SELECT migrate.add('4', 'CREATE TABLE never (id int);');
SELECT version, statement, executed, locks, guard, error FROM migrate.plan();
SELECT version, statement FROM migrate.plan('2');
SELECT * FROM migrate.plan('x y');
SELECT * FROM migrate.plan('v9');
SELECT to_regclass('never') IS NULL AS nothing_created, to_regclass('acc_n') IS NULL AS no_index;

-- verify(): up, down, up in a subtransaction that is rolled back.
SELECT migrate.add('3', 'CREATE INDEX acc_note ON acc (note);', 'SELECT 1;', 'forgets its index');
SELECT migrate.add('4', 'CREATE TABLE never (id int);');
SELECT * FROM migrate.verify();
SELECT * FROM migrate.verify('1');
SELECT * FROM migrate.verify('9');
SELECT to_regclass('acc_note') IS NULL AS nothing_left;

-- deploy() forward, then back; the history says what ran.
SELECT migrate.add('3', 'CREATE INDEX acc_note ON acc (note);', 'DROP INDEX acc_note;');
SELECT migrate.add('4', 'CREATE TABLE later (id int);', 'DROP TABLE later;');
SET client_min_messages = warning;
SET migrate.guard_min_rows = 100000;
CALL migrate.deploy('3');
RESET client_min_messages;
SELECT version, state, transactional FROM migrate.status();
SELECT indexrelid::regclass AS index, indisvalid FROM pg_index
WHERE indrelid = 'acc'::regclass ORDER BY 1;
SELECT kind, migration, state, rows_done, rows_estimated, statements_done, statements_total,
       percent_done, error
FROM migrate.jobs;
SET client_min_messages = warning;
CALL migrate.deploy('1');
CALL migrate.deploy();
RESET client_min_messages;
SELECT version, action, error_sqlstate, detail FROM migrate.history
WHERE action <> 'add' ORDER BY id;
CALL migrate.deploy();
-- verify() is for pending migrations.
SELECT * FROM migrate.verify('1');

-- A non-transactional script with transaction control is refused when it is added.
SELECT migrate.add('5', E'-- migrate:no-transaction\nBEGIN;\nCREATE INDEX CONCURRENTLY acc_id2 ON acc (id);\nCOMMIT;');
SELECT migrate.add('5', E'-- migrate:no-transaction\nSELECT 1;');
SELECT version, state FROM migrate.status() WHERE version = '5';

-- resolve(): the operator's escape hatch, logged.
SELECT migrate.resolve('5', 'applied');
SELECT migrate.resolve('5', 'applied');
SELECT migrate.resolve('5', 'done');
SELECT migrate.resolve('9', 'applied');
SELECT migrate.resolve(NULL, 'applied');
SELECT migrate.resolve('5', NULL);
SELECT migrate.resolve('5', 'pending');
SELECT version, action, detail FROM migrate.history WHERE action = 'resolve' ORDER BY id;

-- A deploy refuses up front what it could not finish, as plan() does: deploy('33') would roll
-- back 34 and then find 31 pending below the applied 32. Nothing is rolled back.
SELECT migrate.resolve('5', 'applied');
SELECT migrate.add(v, 'SELECT 1', 'SELECT 1') FROM unnest(ARRAY['30', '31', '32', '33', '34']) v;
SELECT migrate.resolve(v, 'applied') FROM unnest(ARRAY['30', '32', '34']) v;
SELECT count(*) FROM migrate.plan('33');
CALL migrate.deploy('33');
SELECT version, state FROM migrate.status() WHERE version IN ('30', '31', '32', '33', '34');

-- Out of order through deploy(): refused, then allowed by the argument (a procedure that
-- commits cannot see SET LOCAL, and a session SET leaks through a transaction-mode pooler).
CALL migrate.deploy();
CALL migrate.deploy(allow_out_of_order => true);
SELECT version, state FROM migrate.status() WHERE version IN ('31', '33');
SHOW migrate.allow_out_of_order;
