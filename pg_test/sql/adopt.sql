-- migrate.adopt() takes over a database another tool migrated (here diesel, its table made
-- exactly as diesel_migrations 2.3 makes it: setup_migration_table.sql), migrate.end_adoption(),
-- and validate()'s drift between the tool's table and the registry. Every other tool:
-- adopt_tools.sql; who may adopt and planted tables: adversarial.sql (case 15).
CREATE EXTENSION migrate;
SET TimeZone = 'UTC';
-- What diesel did here: its table, and three migrations run (its session writes UTC times).
CREATE TABLE IF NOT EXISTS __diesel_schema_migrations (
       version VARCHAR(50) PRIMARY KEY NOT NULL,
       run_on TIMESTAMP NOT NULL DEFAULT CURRENT_TIMESTAMP
);
CREATE TABLE users (id bigint PRIMARY KEY, email text);
CREATE TABLE posts (id bigint PRIMARY KEY, user_id bigint REFERENCES users);
-- diesel 2.3 writes 2024-01-02-100000-0000_create_users as 202401021000000000.
INSERT INTO __diesel_schema_migrations VALUES
    ('00000000000000', '2024-01-01 09:00:00'),
    ('202401021000000000', '2024-01-02 10:00:00'),
    ('20240103100000', '2024-01-03 10:00:00');
-- The folder, registered as migrate-cli load registers it: those three, and one diesel has not run.
SELECT migrate.add('00000000000000', '-- This file was automatically created by Diesel', '', 'diesel_initial_setup');
SELECT migrate.add('20240102100000-0000', 'CREATE TABLE users (id bigint PRIMARY KEY, email text);',
                   'DROP TABLE users;', 'create_users');
SELECT migrate.add('20240103100000', 'CREATE TABLE posts (id bigint PRIMARY KEY, user_id bigint REFERENCES users);',
                   'DROP TABLE posts;', 'add_posts');
SELECT migrate.add('20240104100000', 'ALTER TABLE users ADD COLUMN name text;',
                   'ALTER TABLE users DROP COLUMN name;', 'add_users_name');

-- Bad input changes nothing.
SELECT * FROM migrate.adopt(NULL);
SELECT * FROM migrate.adopt('liquibase');
SELECT * FROM migrate.adopt('diesel', dry_run => NULL);
SELECT * FROM migrate.adopt('sqlx');
SELECT * FROM migrate.adopt('golang-migrate', tool_table => '__diesel_schema_migrations');
CREATE VIEW diesel_view AS SELECT * FROM __diesel_schema_migrations;
SELECT * FROM migrate.adopt('diesel', tool_table => 'diesel_view');
DROP VIEW diesel_view;
SELECT * FROM migrate.adopt('diesel', tool_table => 'no_such_table');
SELECT migrate.end_adoption(NULL);
SELECT migrate.end_adoption('liquibase');
SELECT version, state FROM migrate.status();

-- A dry run says what adopt() would do, and does nothing.
SELECT * FROM migrate.adopt('diesel', dry_run => true);
SELECT count(*) AS adoptions FROM migrate.adoptions;

-- Adopt: exactly the three diesel ran are marked applied, with diesel's times.
SELECT * FROM migrate.adopt('diesel');
SELECT version, state, applied_at, duration FROM migrate.status();
SELECT version, action, started_at, finished_at, detail FROM migrate.history
WHERE action = 'adopt' ORDER BY id;
SELECT tool, table_schema, table_name, adopted_by, ended_at FROM migrate.adoptions;
-- Adopting again changes nothing; apply() runs only the migration diesel had not run.
SELECT version, outcome FROM migrate.adopt('diesel');
SELECT version FROM migrate.apply();

-- Drift, said both ways. migrate applied 20240104100000, which diesel's table does not list:
SELECT * FROM migrate.validate();
-- diesel ran a new migration on its own, and reverted one (diesel deletes its row):
SELECT migrate.add('20240105100000', 'CREATE INDEX posts_user_id ON posts (user_id);',
                   'DROP INDEX posts_user_id;', 'index_posts_user_id');
CREATE INDEX posts_user_id ON posts (user_id);
INSERT INTO __diesel_schema_migrations VALUES ('20240105100000', '2024-01-05 10:00:00');
DELETE FROM __diesel_schema_migrations WHERE version = '20240103100000';
SELECT * FROM migrate.validate();
-- Adopting again would pick up the new one, but the revert disagrees: refused, nothing changes.
SELECT * FROM migrate.adopt('diesel');
SELECT version, state FROM migrate.status();
-- With the revert undone, adopting again reconciles what diesel applied alone.
INSERT INTO __diesel_schema_migrations VALUES ('20240103100000', '2024-01-03 10:00:00');
SELECT version, outcome, detail FROM migrate.adopt('diesel');
SELECT * FROM migrate.validate();
-- diesel no longer migrates this database: the adoption ends, and with it the drift reports.
SELECT migrate.end_adoption('diesel');
SELECT migrate.end_adoption('diesel');
SELECT * FROM migrate.validate();
SELECT tool, ended_at IS NOT NULL AS ended, ended_by FROM migrate.adoptions;

-- Adopting into a registry whose applied migrations the tool does not list (migrate applied
-- 20240104100000, and the adoption that knew it ended) is refused, as is a version the folder
-- lacks; every mismatch is listed and nothing changes.
INSERT INTO __diesel_schema_migrations VALUES ('20990101000000', '2024-02-01 10:00:00');
SELECT * FROM migrate.adopt('diesel', dry_run => true);
SELECT * FROM migrate.adopt('diesel');
SELECT count(*) AS adoptions_in_force FROM migrate.adoptions WHERE ended_at IS NULL;

-- The tool's table dropped while an adoption is in force.
DELETE FROM __diesel_schema_migrations WHERE version = '20990101000000';
INSERT INTO __diesel_schema_migrations VALUES ('20240104100000', '2024-01-04 10:00:00');
SELECT version, outcome FROM migrate.adopt('diesel');
DROP TABLE __diesel_schema_migrations;
SELECT * FROM migrate.validate();
SELECT migrate.end_adoption('diesel');
SELECT * FROM migrate.validate();

-- A table in another schema, found through the search_path as diesel finds it, or given.
CREATE SCHEMA app;
CREATE TABLE app.__diesel_schema_migrations (
       version VARCHAR(50) PRIMARY KEY NOT NULL,
       run_on TIMESTAMP NOT NULL DEFAULT CURRENT_TIMESTAMP
);
INSERT INTO app.__diesel_schema_migrations
SELECT replace(version, '-', ''), '2024-03-01' FROM migrate.migrations;
SELECT version, outcome FROM migrate.adopt('diesel', dry_run => true);
SET search_path = app, public;
SELECT version, outcome FROM migrate.adopt('diesel', dry_run => true);
RESET search_path;
SELECT version, outcome FROM migrate.adopt('diesel', tool_table => 'app.__diesel_schema_migrations');
SELECT tool, table_schema, table_name FROM migrate.adoptions WHERE ended_at IS NULL;
SELECT * FROM migrate.validate();
