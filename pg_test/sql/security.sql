-- Who may do what. PUBLIC has nothing but migrate.checksum(); members of migrate_admin use the
-- API and read the registry but cannot write its tables; migration SQL runs as the role that
-- registered it, and only if the caller has that role's privileges.
CREATE EXTENSION migrate;
CREATE ROLE regress_app LOGIN;
CREATE ROLE regress_deployer LOGIN IN ROLE migrate_admin;
CREATE ROLE regress_other LOGIN IN ROLE migrate_admin;
GRANT CREATE ON SCHEMA public TO regress_deployer, regress_other;

-- PUBLIC: no API, no registry.
SET ROLE regress_app;
SELECT migrate.add('1', 'SELECT 1');
SELECT * FROM migrate.apply();
SELECT * FROM migrate.status();
SELECT * FROM migrate.migrations;
SELECT * FROM migrate.history;
SELECT length(migrate.checksum('SELECT 1')) AS anyone_may_checksum;
RESET ROLE;

-- migrate_admin: the API and reads, but no direct writes.
SET ROLE regress_deployer;
SELECT migrate.add('1', 'CREATE TABLE deployer_t (id int)', 'DROP TABLE deployer_t');
SELECT version, state FROM migrate.status();
INSERT INTO migrate.migrations (version, sort_key, up_sql, checksum, added_by) VALUES ('x', '\x00', 'SELECT 1', 'x', 'x');
UPDATE migrate.migrations SET state = 'applied';
INSERT INTO migrate.events (run_id, action, started_at, role) VALUES (1, 'apply', now(), 'x');
SELECT version FROM migrate.apply();
RESET ROLE;
SELECT pg_get_userbyid(relowner) AS deployer_t_owner FROM pg_class WHERE relname = 'deployer_t';

-- A superuser applying a deployer's migration runs it as the deployer, not as superuser.
SET ROLE regress_deployer;
SELECT migrate.add('2', 'CREATE TABLE deployer_t2 (id int)', 'DROP TABLE deployer_t2');
RESET ROLE;
SELECT version FROM migrate.apply();
SELECT pg_get_userbyid(relowner) AS deployer_t2_owner FROM pg_class WHERE relname = 'deployer_t2';
SELECT version, applied_by FROM migrate.status();

-- Another admin without the deployer's privileges cannot run the deployer's SQL.
SET ROLE regress_deployer;
SELECT migrate.add('3', 'CREATE TABLE deployer_t3 (id int)');
RESET ROLE;
SET ROLE regress_other;
SELECT version FROM migrate.apply();
SELECT version FROM migrate.rollback();
RESET ROLE;

-- A superuser's migration cannot be applied by an admin who is not a superuser.
SELECT migrate.add('3', 'ALTER ROLE regress_deployer SUPERUSER');
SET ROLE regress_deployer;
SELECT version FROM migrate.apply();
RESET ROLE;
SELECT rolsuper FROM pg_roles WHERE rolname = 'regress_deployer';

-- SET ROLE is refused inside a migration run as another role (as in SECURITY DEFINER).
SET ROLE regress_deployer;
SELECT migrate.add('3', 'SET ROLE postgres');
RESET ROLE;
SELECT version FROM migrate.apply();

-- A migration whose author was dropped is refused with a clear error.
SET ROLE regress_other;
SELECT migrate.add('3', 'SELECT 1');
RESET ROLE;
REASSIGN OWNED BY regress_other TO postgres;
DROP OWNED BY regress_other;
DROP ROLE regress_other;
SELECT version FROM migrate.apply();

-- Clean up the cluster-wide roles.
DROP OWNED BY regress_app, regress_deployer;
DROP ROLE regress_app, regress_deployer;
