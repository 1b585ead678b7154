-- migrate.baseline() adopts an existing database; migrate.validate() reports problems;
-- the history is append-only.
CREATE EXTENSION migrate;
CREATE TABLE legacy (id int);

SELECT migrate.add('1', 'CREATE TABLE legacy (id int)', 'DROP TABLE legacy');
SELECT migrate.add('2', 'ALTER TABLE legacy ADD COLUMN v text');
SELECT migrate.add('3', 'CREATE TABLE fresh (id int)', 'DROP TABLE fresh');

-- Bad input changes nothing.
SELECT migrate.baseline(NULL);
SELECT migrate.baseline('');
SELECT migrate.baseline('9');
SELECT version, state FROM migrate.status();

-- Baseline marks 1 and 2 applied without running them; apply() runs only 3.
SELECT migrate.baseline('2');
SELECT count(*) AS v_columns FROM pg_attribute WHERE attrelid = 'legacy'::regclass AND attname = 'v';
SELECT version FROM migrate.apply();
SELECT version, state, applied_by FROM migrate.status();
SELECT migrate.baseline('3');
SELECT version, action, detail FROM migrate.history WHERE action = 'baseline' ORDER BY id;

-- Healthy: no rows.
SELECT * FROM migrate.validate();

-- Problems: an up script edited behind the registry's back (only the owner can), a late
-- branch (pending older than the newest applied), a requirement that is not registered, and
-- one later in version order, which is no problem: the order puts it first (0.1.0 reported
-- requirement_after).
UPDATE migrate.migrations SET up_sql = 'CREATE TABLE fresh (id bigint)' WHERE version = '3';
SELECT migrate.add('2.5', 'SELECT 1');
SELECT migrate.add('4', 'SELECT 1', NULL, NULL, '{"requires": ["3.5", "5"]}');
SELECT migrate.add('5', 'SELECT 1');
SELECT * FROM migrate.validate();
SELECT version, state FROM migrate.status();
SELECT version, checksum_ok FROM migrate.status() WHERE version IN ('2', '3');

-- The history cannot be rewritten, even by the owner.
UPDATE migrate.events SET role = 'someone else';
DELETE FROM migrate.events;
TRUNCATE migrate.events;
SELECT count(*) > 0 AS history_kept FROM migrate.history;
