-- migrate.schema_changes: every DDL statement that commits, with who ran it, from where, and
-- the migration it belonged to; rolled-back DDL, DML, temporary objects and an extension's
-- members leave no row; DDL outside migrations since the last deploy is drift in validate().
CREATE EXTENSION migrate;
SET application_name = 'schema_changes_test';
CREATE ROLE sc_dev LOGIN;
GRANT CREATE ON SCHEMA public TO sc_dev;
CREATE VIEW changes AS
SELECT command_tag, objects, role, session_role, application_name, migration_version, drift
FROM migrate.schema_changes
WHERE objects OPERATOR(pg_catalog.<>) ARRAY['extension migrate'] ORDER BY id;

-- Plain DDL: one row per statement, every object it named, drops included.
CREATE TABLE accounts (id bigserial PRIMARY KEY, email text);
CREATE INDEX accounts_email ON accounts (email);
ALTER TABLE accounts ADD COLUMN note text, ADD COLUMN n int;
COMMENT ON TABLE accounts IS 'who';
DROP INDEX accounts_email;
ALTER TABLE accounts DROP COLUMN note;
SELECT * FROM changes;

-- Rolled back: no row. DML: no row. Temporary objects: no row.
BEGIN;
CREATE TABLE gone (id int);
ROLLBACK;
BEGIN;
CREATE TABLE kept (id int);
SAVEPOINT s;
DROP TABLE kept;
ROLLBACK TO SAVEPOINT s;
COMMIT;
INSERT INTO accounts (email) VALUES ('a@example.com');
UPDATE accounts SET n = 1;
CREATE TEMP TABLE scratch (id int);
DROP TABLE scratch;
SELECT command_tag, objects FROM changes WHERE objects::text LIKE '%gone%'
    OR objects::text LIKE '%scratch%' OR command_tag IN ('INSERT', 'UPDATE');
SELECT command_tag, objects FROM changes WHERE objects::text LIKE '%kept%';

-- Another role, under SET ROLE: the role is the one whose privileges made the change.
SET ROLE sc_dev;
CREATE TABLE dev_table (id int);
RESET ROLE;
SELECT command_tag, objects, role, session_role FROM changes WHERE objects::text LIKE '%dev_table%';

-- A role cannot read or change the record unless it is migrate_admin, and nobody can change a row.
SET ROLE sc_dev;
SELECT count(*) FROM migrate.schema_changes;
RESET ROLE;
UPDATE migrate.schema_change_log SET role = 'someone';

-- Migrations: their DDL carries the version; drift is DDL outside any migration after the
-- last deploy, reported by validate().
SELECT migrate.add('1', 'CREATE TABLE orders (id bigint PRIMARY KEY, total numeric);', name => 'orders');
SELECT migrate.add('2', 'CREATE INDEX orders_total ON orders (total);', name => 'orders index');
SELECT * FROM migrate.validate();
SELECT version FROM migrate.apply();
SELECT command_tag, objects, migration_version, drift FROM changes WHERE migration_version IS NOT NULL;
SELECT * FROM migrate.validate();
ALTER TABLE orders ADD COLUMN hotfix text;
CREATE INDEX orders_hotfix ON orders (hotfix);
SELECT * FROM migrate.validate();
-- The next deploy brings them back in line.
SELECT migrate.add('3', 'ALTER TABLE orders ADD COLUMN note text;', name => 'orders note');
SET client_min_messages = warning;
CALL migrate.deploy();
RESET client_min_messages;
SELECT command_tag, objects, migration_version FROM changes WHERE migration_version = '3';
SELECT * FROM migrate.validate();

-- A non-transactional migration run by deploy()'s worker records its version too.
SELECT migrate.add('4', 'CREATE INDEX CONCURRENTLY orders_note ON orders (note);',
                   name => 'concurrent index');
SET client_min_messages = warning;
CALL migrate.deploy();
RESET client_min_messages;
SELECT command_tag, objects, migration_version FROM changes WHERE migration_version = '4';

-- Who may prune: the extension owner deletes old rows.
DELETE FROM migrate.schema_change_log WHERE migration_version = '1';
SELECT count(*) FROM changes WHERE migration_version = '1';
DROP OWNED BY sc_dev;
DROP ROLE sc_dev;
