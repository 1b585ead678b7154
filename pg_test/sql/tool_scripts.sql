-- Scripts as tools write them: a BEGIN;/COMMIT; wrapper, statements that cannot run in a
-- transaction block, empty and comment-only scripts, down scripts that do not parse.
CREATE EXTENSION migrate;
CREATE TABLE users (id int);
-- A BEGIN;/COMMIT; wrapper (Alembic --sql, Django sqlmigrate, Prisma) is dropped when the
-- script runs; the stored text and checksum are the file's.
SELECT migrate.add('20', E'BEGIN;\nCREATE TABLE t20 (id int);\nCOMMIT;\n', E'begin;\nDROP TABLE t20;\nend;\n');
SELECT migrate.add('20', E'BEGIN;\nCREATE TABLE t20 (id int);\nCOMMIT;\n', E'begin;\nDROP TABLE t20;\nend;\n');
SELECT checksum = migrate.checksum(E'BEGIN;\nCREATE TABLE t20 (id int);\nCOMMIT;\n') AS file_checksum,
       up_sql = E'BEGIN;\nCREATE TABLE t20 (id int);\nCOMMIT;\n' AS stored_as_given
FROM migrate.migrations WHERE version = '20';
-- Statements that cannot run in a transaction block make the migration non-transactional.
SELECT migrate.add('21', E'SET lock_timeout = ''1s'';\nCREATE INDEX CONCURRENTLY t20_id ON t20 (id);\nDROP INDEX CONCURRENTLY IF EXISTS t20_old;');
SELECT migrate.add('22', 'VACUUM (ANALYZE) t20');
SELECT migrate.add('23', 'REINDEX TABLE CONCURRENTLY t20');
SELECT version, transactional FROM migrate.migrations WHERE version IN ('20', '21', '22', '23') ORDER BY sort_key;
-- Empty and comment-only scripts are valid no-ops (Django writes them; so does diesel).
SELECT migrate.add('24', '   ');
SELECT migrate.add('25', '-- only a comment', '');
SELECT version FROM migrate.apply('20');
SET client_min_messages = warning;
CALL migrate.deploy('23');
RESET client_min_messages;
SELECT indexrelid::regclass FROM pg_index WHERE indrelid = 't20'::regclass;
SELECT version FROM migrate.apply('25');
-- A down script that does not parse or cannot run registers with a WARNING; validate() lists
-- it and rollback refuses it before anything runs.
SELECT migrate.add('26', 'CREATE TABLE t26 (id int)', 'DROP TABLE t26 t26');
SELECT migrate.add('27', 'CREATE TABLE t27 (id int)', 'DROP INDEX CONCURRENTLY t27_id');
SELECT version, problem, detail FROM migrate.validate() ORDER BY version;
SELECT version FROM migrate.apply('27');
SELECT version FROM migrate.rollback(1);
SELECT version FROM migrate.rollback_to('25');
SELECT migrate.add('27', 'CREATE TABLE t27 (id int)', 'DROP TABLE t27');
SET client_min_messages = error;
SELECT version FROM migrate.rollback(1);
RESET client_min_messages;
-- A wrapped down script runs without its wrapper too.
SELECT migrate.add('28', E'BEGIN;\nCREATE TABLE t28 (id int);\nCOMMIT;', E'START TRANSACTION;\nDROP TABLE t28;\nCOMMIT;');
SELECT migrate.add('26', 'CREATE TABLE t26 (id int)', 'DROP TABLE t26');
SELECT version FROM migrate.apply('28');
SELECT version FROM migrate.rollback(1);
SELECT to_regclass('t28') IS NULL AS dropped;
SELECT version, state FROM migrate.status() WHERE version IN ('24', '25', '26', '27', '28') ORDER BY version;

-- remove(): a pending migration added by mistake is unregistered (and logged); an applied one,
-- one another migration requires, or one a job ran part of is refused.
SELECT migrate.add('29', 'CREATE TABLE t29 (id int)');
SELECT migrate.add('30', 'SELECT 1', NULL, NULL, '{"requires": ["29"]}');
SELECT migrate.remove('29');
SELECT migrate.remove('30');
SELECT migrate.remove('29');
SELECT migrate.remove('27');
SELECT migrate.remove('404');
SELECT migrate.remove(NULL);
SELECT version, action, detail FROM migrate.history WHERE action = 'remove' ORDER BY id;
SELECT count(*) AS left FROM migrate.migrations WHERE version IN ('29', '30');
-- A migration a job ran part of: its first index is built, the second statement failed.
SELECT migrate.add('31', E'CREATE INDEX CONCURRENTLY t20_id2 ON t20 (id);\nCREATE INDEX CONCURRENTLY t31_id ON no_such_table (id);');
SET client_min_messages = error;
CALL migrate.deploy('31');
RESET client_min_messages;
SELECT migrate.remove('31');
SELECT migrate.cancel_job(id) FROM migrate.jobs WHERE migration = '31 (up)';
SELECT migrate.remove('31');

-- Repeatable migrations (Flyway's R__): run after the versioned ones whenever their script
-- changed, never rolled back, never a target; history records each run.
SELECT migrate.add('R__users_view', 'CREATE OR REPLACE VIEW users_view AS SELECT id FROM users', NULL, NULL, '{"repeatable": true}');
SELECT migrate.add('R__bad', 'SELECT 1', 'SELECT 2', NULL, '{"repeatable": true}');
SELECT migrate.add('40', 'ALTER TABLE users ADD COLUMN email text', 'ALTER TABLE users DROP COLUMN email');
SET client_min_messages = warning;
CALL migrate.deploy();
RESET client_min_messages;
SELECT version, state FROM migrate.status() WHERE version IN ('40', 'R__users_view');
SELECT migrate.add('R__users_view', 'CREATE OR REPLACE VIEW users_view AS SELECT id FROM users', NULL, NULL, '{"repeatable": true}');
SELECT migrate.add('R__users_view', 'CREATE OR REPLACE VIEW users_view AS SELECT id, email FROM users', NULL, NULL, '{"repeatable": true}');
SELECT version, state, checksum_ok FROM migrate.status() WHERE version = 'R__users_view';
SELECT version FROM migrate.apply('40');
SELECT version FROM migrate.apply();
SELECT pg_get_viewdef('users_view') LIKE '%email%' AS view_has_email;
SELECT version FROM migrate.apply('R__users_view');
SELECT migrate.add('R__users_view', 'SELECT 1');
SELECT version, action FROM migrate.history WHERE version = 'R__users_view' ORDER BY id;

-- Bad input to the calls above changes nothing, each with its SQLSTATE.
SELECT migrate.remove('');
SELECT migrate.remove('not a version');
SELECT * FROM migrate.verify('');
SELECT * FROM migrate.plan('');
SELECT * FROM migrate.rollback_to('404');
SELECT * FROM migrate.rollback_to('');
SELECT migrate.add('R__x', 'SELECT 1', NULL, NULL, '{"repeatable": "yes"}');
SELECT count(*) AS migrations FROM migrate.migrations;
