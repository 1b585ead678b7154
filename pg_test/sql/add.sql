-- migrate.add(): registering migrations, identical re-adds, replacing pending ones, amending
-- applied ones, and every way its input can be wrong. Each error names its SQLSTATE.
CREATE EXTENSION migrate;

-- Registering, and what a re-add does.
SELECT migrate.add('1', 'CREATE TABLE users (id bigint PRIMARY KEY)', 'DROP TABLE users', 'users');
SELECT migrate.add('1', 'CREATE TABLE users (id bigint PRIMARY KEY)', 'DROP TABLE users', 'users');
SELECT migrate.add('1', 'CREATE TABLE users (id int PRIMARY KEY)', 'DROP TABLE users', 'users');
SELECT version, name, up_sql, state FROM migrate.migrations;
-- Named arguments and defaults: no down script means irreversible.
SELECT migrate.add(version => '2', up_sql => 'ALTER TABLE users ADD COLUMN email text');
SELECT version, down_sql IS NULL AS irreversible, transactional, requires FROM migrate.migrations ORDER BY sort_key;

-- Checksums ignore CRLF and a leading byte-order mark, so this is the same text.
SELECT migrate.add('3', E'\uFEFFCREATE TABLE t3 (id int);\r\nSELECT 1;\r\n');
SELECT migrate.add('3', E'CREATE TABLE t3 (id int);\nSELECT 1;\n') AS crlf_and_bom_only;
SELECT checksum = migrate.checksum(E'CREATE TABLE t3 (id int);\nSELECT 1;\n') AS same_checksum, checksum_algorithm
FROM migrate.migrations WHERE version = '3';

-- Options: the jsonb and the no-transaction line.
SELECT migrate.add('4', 'CREATE INDEX CONCURRENTLY users_email ON users (email)', NULL, NULL, '{"transaction": false}');
SELECT migrate.add('5', E'-- migrate:no-transaction\nVACUUM users;');
SELECT migrate.add('6', 'SELECT 1', NULL, NULL, '{"requires": ["1", "2"]}');
SELECT version, transactional, requires FROM migrate.migrations WHERE version IN ('4', '5', '6') ORDER BY sort_key;

-- An applied migration: same text is a no-op, a new down script or name is an amendment,
-- a different up script is refused.
SELECT version FROM migrate.apply('2');
SELECT migrate.add('1', 'CREATE TABLE users (id int PRIMARY KEY)', 'DROP TABLE users', 'users');
SELECT migrate.add('1', 'CREATE TABLE users (id int PRIMARY KEY)', 'DROP TABLE IF EXISTS users', 'the users table');
SELECT migrate.add('1', 'CREATE TABLE users (id bigint PRIMARY KEY)', 'DROP TABLE users', 'users');
SELECT migrate.add('1', 'CREATE TABLE users (id int PRIMARY KEY)', 'DROP TABLE users', 'users', '{"requires": ["2"]}');
SELECT version, name, down_sql FROM migrate.migrations WHERE version = '1';

-- Bad input: nothing is registered by any of these.
SELECT migrate.add(NULL, 'SELECT 1');
SELECT migrate.add('', 'SELECT 1');
SELECT migrate.add('7 beta', 'SELECT 1');
SELECT migrate.add(repeat('9', 201), 'SELECT 1');
SELECT migrate.add('7', NULL);
SELECT migrate.add('7', E'SELECT 1;\nCREAT TABLE t7 (id int);');
-- Transaction control other than a wrapper, statements that cannot run in a transaction
-- mixed with ones that do, or declared transactional: refused here, not at apply.
SELECT migrate.add('7', E'CREATE TABLE t7 (id int);\nCOMMIT;\nSELECT 1;');
SELECT migrate.add('7', E'SAVEPOINT s;\nSELECT 1;');
SELECT migrate.add('7', E'BEGIN ISOLATION LEVEL SERIALIZABLE;\nSELECT 1;\nCOMMIT;');
SELECT migrate.add('7', E'-- migrate:no-transaction\nBEGIN;\nVACUUM users;\nCOMMIT;');
SELECT migrate.add('7', E'CREATE TABLE t7 (id int);\n\nCREATE INDEX CONCURRENTLY t7_id ON t7 (id);');
SELECT migrate.add('7', 'CREATE INDEX CONCURRENTLY t7_id ON t7 (id)', NULL, NULL, '{"transaction": true}');
SELECT migrate.add('7', 'SELECT 1', NULL, NULL, '[1, 2]');
SELECT migrate.add('7', 'SELECT 1', NULL, NULL, '{"transaction": "no"}');
SELECT migrate.add('7', 'SELECT 1', NULL, NULL, '{"requires": "1"}');
SELECT migrate.add('7', 'SELECT 1', NULL, NULL, '{"requires": [1]}');
SELECT migrate.add('7', 'SELECT 1', NULL, NULL, '{"requires": ["not a version"]}');
SELECT migrate.add('7', 'SELECT 1', NULL, NULL, '{"transactoin": false}');
SELECT migrate.add('7', E'-- migrate:no-transaction\nVACUUM users', NULL, NULL, '{"transaction": true}');
SELECT migrate.add('7', 'SELECT 1', NULL, NULL, '{"requires": ["7"]}');
SELECT migrate.add('8', 'SELECT 1', NULL, NULL, '{"requires": ["9"]}');
SELECT migrate.add('9', 'SELECT 1', NULL, NULL, '{"requires": ["8"]}');
SELECT migrate.add('01', 'SELECT 1');
SELECT version FROM migrate.migrations ORDER BY sort_key;

-- Registering is recorded in the history.
SELECT version, action, role FROM migrate.history ORDER BY id;

