-- plan(), apply() and deploy() agree on what deploy() blocks (issue 15). deploy() commits every
-- migration, so a table an earlier migration of the same run created is, when the next one
-- runs, an existing table judged by its size; plan() judges it the same way, and apply(), which
-- runs everything in one transaction, lets it through but says that deploy() would block it.
-- Then a strong lock held across statements: plan()'s held_locks / held_ms and the guard's
-- lock_held_across_statements warning. Timings vary: deploy's NOTICEs are silenced.
CREATE EXTENSION migrate;
CREATE TABLE acc (id int PRIMARY KEY, n int);
INSERT INTO acc SELECT g, g FROM generate_series(1, 50000) g;
ANALYZE acc;

-- A history: 1 creates and fills a table, 2 indexes it (blocked by deploy: the table is an
-- existing one of 50000 rows by then), 3 creates, fills and indexes a table in one migration
-- (exempt: created in the same committed unit), 4 adds a CHECK to an existing big table.
SELECT migrate.add('1', $$CREATE TABLE moved (id int, n int);
INSERT INTO moved SELECT g, g FROM generate_series(1, 50000) g;
ANALYZE moved;$$, 'DROP TABLE moved;');
SELECT migrate.add('2', 'CREATE INDEX moved_n ON moved (n);', 'DROP INDEX moved_n;');
SELECT migrate.add('3', $$CREATE TABLE fresh (id int);
INSERT INTO fresh SELECT generate_series(1, 50000);
ANALYZE fresh;
CREATE INDEX fresh_id ON fresh (id);$$, 'DROP TABLE fresh;');
SELECT migrate.add('4', 'ALTER TABLE acc ADD CONSTRAINT acc_n_positive CHECK (n > 0);',
                   'ALTER TABLE acc DROP CONSTRAINT acc_n_positive;');
SELECT version, statement, guard FROM migrate.plan() WHERE cardinality(guard) > 0;
CREATE TEMP TABLE planned AS
SELECT DISTINCT version FROM migrate.plan(), unnest(guard) g WHERE g LIKE '% would block: %';

-- apply() keeps its one transaction (2 is exempt there), but says deploy() would block it.
SET client_min_messages = warning;
BEGIN;
SELECT count(*) AS applied FROM migrate.apply('3');
ROLLBACK;
RESET client_min_messages;

-- deploy() blocks exactly what plan() said, with the guard's own DETAIL and HINT, and its own
-- hint as a second line. Each block is then permitted in the migration, and deploy() goes on.
SET client_min_messages = warning;
CALL migrate.deploy();
SELECT migrate.add('2', E'-- migrate:allow index_not_concurrent reviewed: built in a window\nCREATE INDEX moved_n ON moved (n);', 'DROP INDEX moved_n;');
CALL migrate.deploy();
SELECT migrate.add('4', E'-- migrate:allow add_check reviewed\nALTER TABLE acc ADD CONSTRAINT acc_n_positive CHECK (n > 0);',
                   'ALTER TABLE acc DROP CONSTRAINT acc_n_positive;');
CALL migrate.deploy();
RESET client_min_messages;
SELECT version, state FROM migrate.status();
CREATE TEMP TABLE blocked AS
SELECT DISTINCT version FROM migrate.history WHERE error_sqlstate = '09000';
SELECT (SELECT array_agg(version ORDER BY version) FROM planned) AS plan_would_block,
       (SELECT array_agg(version ORDER BY version) FROM blocked) AS deploy_blocked;

-- A strong lock held across statements. 5 takes ACCESS EXCLUSIVE on moved (50000 rows), then
-- updates every row while holding it; 6 takes it and runs only instant statements after it
-- (catalog changes, INSERT ... VALUES, a SELECT without FROM); 7 locks a small table only,
-- then updates big ones (one row each, but how many a WHERE matches is not known before).
SELECT migrate.add('5', $$ALTER TABLE moved ADD COLUMN c int;
UPDATE moved SET c = n;
SELECT 1;$$, 'ALTER TABLE moved DROP COLUMN c;');
SELECT migrate.add('6', $$ALTER TABLE moved ADD COLUMN d int;
ALTER TABLE moved ALTER COLUMN d SET DEFAULT 0;
COMMENT ON COLUMN moved.d IS 'instant';
CREATE TABLE side (id int);
INSERT INTO side VALUES (1), (2);
SELECT migrate.checksum('x') IS NOT NULL;$$, 'ALTER TABLE moved DROP COLUMN d; DROP TABLE side;');
SELECT migrate.add('7', $$ALTER TABLE side ADD COLUMN e int;
UPDATE moved SET n = n + 1 WHERE id = 1;
DELETE FROM acc WHERE id = 1;$$, 'ALTER TABLE side DROP COLUMN e;');
SELECT version, statement, held_locks, held_ms IS NOT NULL AS held_timed, guard
FROM migrate.plan() ORDER BY version, statement;
-- The warning comes from the same rule when deploy() runs it (and is logged). (plan()'s rolled
-- back UPDATE left dead space in moved: ANALYZE keeps the estimates in the messages exact.)
ANALYZE moved;
SET client_min_messages = warning;
CALL migrate.deploy();
RESET client_min_messages;
SELECT action, rule, table_name, statement FROM migrate.guard_log
WHERE rule = 'lock_held_across_statements' ORDER BY at;
-- Permitted like any rule.
SELECT migrate.add('9', $$-- migrate:allow lock_held_across_statements small enough in practice
ALTER TABLE moved ADD COLUMN f int;
UPDATE moved SET f = 1 WHERE id < 10;$$, 'ALTER TABLE moved DROP COLUMN f;');
ANALYZE moved;
SELECT version, statement, guard FROM migrate.plan() WHERE cardinality(guard) > 0;
SELECT * FROM migrate.rules WHERE id = 'lock_held_across_statements';
-- A statement of a non-transactional migration fails in deploy()'s worker: the error's own HINT
-- (here the guard's safe alternative) comes first, deploy's second.
SELECT migrate.add('10', $$-- migrate:no-transaction
CREATE INDEX CONCURRENTLY acc_n ON acc (n);
ALTER TABLE acc ADD CONSTRAINT acc_n_positive CHECK (n > 0);$$);
SET client_min_messages = warning;
CALL migrate.deploy();
RESET client_min_messages;
