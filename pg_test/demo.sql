-- The migrate registry in five minutes.
CREATE EXTENSION migrate;

-- 1. Register migrations: version, up script, down script, name.
SELECT migrate.add('20240101_01', 'CREATE TABLE users (id bigint PRIMARY KEY, email text NOT NULL)',
                   'DROP TABLE users', 'create users');
SELECT migrate.add('20240102_01', 'ALTER TABLE users ADD COLUMN display_name text',
                   'ALTER TABLE users DROP COLUMN display_name', 'add display name');
SELECT migrate.add('20240103_01', 'CREATE TABLE orders (id bigint PRIMARY KEY, user_id bigint NOT NULL REFERENCES users)',
                   'DROP TABLE orders', 'create orders', '{"requires": ["20240101_01"]}');

-- 2. What is pending?
SELECT version, name, state FROM migrate.status();

-- 3. Apply everything pending, in version order, atomically, in this transaction.
SELECT version, name FROM migrate.apply();
\d users
SELECT version, state, applied_by, checksum_ok FROM migrate.status();

-- 4. Roll the newest one back (its down script runs).
SELECT version, name FROM migrate.rollback();
SELECT version, state FROM migrate.status();

-- 5. Applied migrations are immutable: editing one is refused (SQLSTATE 55000).
SELECT migrate.add('20240101_01', 'CREATE TABLE users (id int PRIMARY KEY)', 'DROP TABLE users', 'create users');
\echo SQLSTATE :LAST_ERROR_SQLSTATE

-- 6. A broken migration names the version, statement, line and column, and changes nothing.
SELECT migrate.add('20240104_01', E'ALTER TABLE users ADD COLUMN age int;\nUPDATE users SET age = nope;');
SELECT version FROM migrate.apply();
SELECT version, state FROM migrate.status();

-- 7. Everything is in the append-only history.
SELECT run_id, version, action, role FROM migrate.history ORDER BY id;
