-- migrate.apply(): natural version order, targets, atomicity, out-of-order detection,
-- requirements, and errors that name the version, statement and position.
CREATE EXTENSION migrate;
CREATE TABLE ran (version text);

SELECT migrate.add('10', $$CREATE TABLE t10 (); INSERT INTO ran VALUES ('10')$$);
SELECT migrate.add('2', $$CREATE TABLE t2 (); INSERT INTO ran VALUES ('2')$$);
SELECT migrate.add('1.10', $$INSERT INTO ran VALUES ('1.10')$$);
SELECT migrate.add('1.2', $$INSERT INTO ran VALUES ('1.2')$$);
SELECT version, state FROM migrate.status();

-- Up to a target, then the rest; natural order: 1.2 < 1.10 < 2 < 10.
SELECT version FROM migrate.apply('1.10');
SELECT version FROM migrate.apply();
SELECT * FROM ran;
SELECT version FROM migrate.apply();
SELECT version, state, applied_by, duration IS NOT NULL AS timed, checksum_ok FROM migrate.status();
SELECT count(DISTINCT run_id) AS runs, count(*) AS events FROM migrate.history WHERE action = 'apply';

-- An unknown or invalid target changes nothing.
SELECT migrate.add('11', 'CREATE TABLE t11 ()');
SELECT * FROM migrate.apply('12');
SELECT * FROM migrate.apply('');
SELECT * FROM migrate.apply('1;2');
SELECT version, state FROM migrate.status() WHERE version = '11';

-- A failing migration rolls back everything this call did and names the version, the
-- statement, its line and column.
SELECT migrate.add('12', E'INSERT INTO ran VALUES (''12'');\n-- the next statement fails\nSELECT *\n  FROM no_such_table;');
SELECT version FROM migrate.apply();
SELECT to_regclass('t11') IS NULL AS t11_not_created, (SELECT count(*) FROM ran WHERE version IN ('11', '12')) AS ran;
SELECT migrate.add('12', 'SELECT 1/0');
SELECT version FROM migrate.apply();
SELECT migrate.add('12', $mig$DO $do$ BEGIN RAISE EXCEPTION 'custom failure' USING ERRCODE = 'MG042', HINT = 'fix the data first'; END $do$$mig$);
SELECT version FROM migrate.apply();
SELECT migrate.add('12', 'CREATE TABLE t12 (); COMMIT; SELECT 1;');
SELECT version FROM migrate.apply();
SELECT migrate.add('12', 'CREATE INDEX CONCURRENTLY t11_i ON t11 ((1))');
SELECT version FROM migrate.apply();
SELECT migrate.add('12', 'CREATE TABLE t12 ()');
SELECT version FROM migrate.apply();

-- The caller's transaction decides: rolled back, nothing was applied.
SELECT migrate.add('13', 'CREATE TABLE t13 ()');
BEGIN;
SELECT version FROM migrate.apply();
ROLLBACK;
SELECT version, state FROM migrate.status() WHERE version = '13';
SELECT version FROM migrate.apply();

-- Out of order: a version older than the newest applied one is refused unless allowed.
SELECT migrate.add('3', 'CREATE TABLE t3 ()');
SELECT version FROM migrate.apply();
-- Allowed for one transaction (what the hint says; nothing leaks to a pooled connection).
BEGIN;
SET LOCAL migrate.allow_out_of_order = on;
SELECT version FROM migrate.apply();
COMMIT;
SHOW migrate.allow_out_of_order;

-- Requirements must be registered and applied first.
SELECT migrate.add('20', 'SELECT 1', NULL, NULL, '{"requires": ["19"]}');
SELECT version FROM migrate.apply();
SELECT migrate.add('20', 'SELECT 1', NULL, NULL, '{"requires": ["21"]}');
SELECT migrate.add('21', 'SELECT 1');
SELECT version FROM migrate.apply();
SELECT migrate.add('20', 'SELECT 1', NULL, NULL, '{"requires": ["13", "2"]}');
SELECT version FROM migrate.apply();

-- Non-transactional migrations are recorded but need deploy().
SELECT migrate.add('30', E'-- migrate:no-transaction\nCREATE INDEX CONCURRENTLY t2_i ON t2 ((1))');
SELECT version FROM migrate.apply();
SELECT version FROM migrate.apply('21');
SELECT version, state, transactional FROM migrate.status() WHERE version IN ('21', '30');
