-- migrate.rollback() and migrate.rollback_to(): down scripts newest first, atomically, with
-- the refusals that keep the schema consistent.
CREATE EXTENSION migrate;

SELECT migrate.add('1', 'CREATE TABLE a (id int)', 'DROP TABLE a');
SELECT migrate.add('2', 'CREATE TABLE b (id int)', 'DROP TABLE b');
SELECT migrate.add('3', 'ALTER TABLE b ADD COLUMN v text', 'ALTER TABLE b DROP COLUMN v', NULL, '{"requires": ["2"]}');
SELECT migrate.add('4', 'CREATE TABLE d (id int)');
SELECT version FROM migrate.apply('3');

-- Bad arguments change nothing.
SELECT * FROM migrate.rollback(0);
SELECT * FROM migrate.rollback(-1);
SELECT * FROM migrate.rollback(NULL);
SELECT * FROM migrate.rollback(4);
SELECT * FROM migrate.rollback_to(NULL);
SELECT * FROM migrate.rollback_to('9');
SELECT * FROM migrate.rollback_to('x y');

-- One step, then to a target.
SELECT version FROM migrate.rollback();
SELECT to_regclass('b') IS NOT NULL AS b_exists,
       (SELECT count(*) FROM pg_attribute WHERE attrelid = 'b'::regclass AND attname = 'v') AS v_columns;
SELECT version FROM migrate.apply('3');
SELECT version FROM migrate.rollback_to('1');
SELECT version, state FROM migrate.status();
SELECT version FROM migrate.rollback_to('1');

-- A late branch that requires a newer migration comes after it in the order: it applies
-- without allow_out_of_order, and a rollback takes it first, so what stays applied never
-- requires what leaves (0.1.0 ordered it by version and refused, 2BP01).
SELECT version FROM migrate.apply('3');
SELECT migrate.add('2.5', 'SELECT 1', 'SELECT 1', NULL, '{"requires": ["3"]}');
SELECT version, state FROM migrate.status();
SELECT version FROM migrate.apply('2.5');
SELECT version FROM migrate.rollback(1);
SELECT version FROM migrate.apply('2.5');
SELECT version FROM migrate.rollback_to('2');
-- Registered again without the requirement, it is in version order again: apply('3') takes it
-- (3 follows 2.5, which has no requirements), as before.
SELECT migrate.add('2.5', 'SELECT 1', 'SELECT 1');
SELECT version FROM migrate.apply('3');

-- Irreversible: refused until a down script is registered.
SELECT version FROM migrate.apply();
SELECT version FROM migrate.rollback();
SELECT migrate.add('4', 'CREATE TABLE d (id int)', 'DROP TABLE d');
SELECT version FROM migrate.rollback();

-- A failing down script rolls back the whole call and names the version.
SELECT version FROM migrate.apply();
SELECT migrate.add('4', 'CREATE TABLE d (id int)', E'DROP TABLE d;\nDROP TABLE no_such_table;');
SELECT version FROM migrate.rollback(2);
SELECT version, state FROM migrate.status();
SELECT to_regclass('d') IS NOT NULL AS d_still_exists;

-- Non-transactional migrations cannot be rolled back here either.
SELECT migrate.add('5', E'-- migrate:no-transaction\nCREATE INDEX CONCURRENTLY d_i ON d (id)', 'DROP INDEX CONCURRENTLY d_i');
-- deploy() (a later release) applies such migrations; here the owner marks it applied by hand.
UPDATE migrate.migrations SET state = 'applied' WHERE version = '5';
SELECT version FROM migrate.rollback();

SELECT version, action FROM migrate.history WHERE action IN ('apply', 'rollback') ORDER BY id;
