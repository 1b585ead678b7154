-- Who can weaken the guard: superusers and members of migrate_admin. Everyone else can raise
-- it but not lower it, cannot permit rules, cannot touch the log, and cannot make the
-- triggers run their code.
CREATE EXTENSION migrate;
SET migrate.guard_min_rows = 100;
CREATE ROLE regress_app LOGIN;
CREATE ROLE regress_admin LOGIN IN ROLE migrate_admin;
GRANT CREATE ON SCHEMA public TO regress_app, regress_admin;
CREATE TABLE public.big (id int PRIMARY KEY, email text);
INSERT INTO big SELECT g, 'u' || g FROM generate_series(1, 500) g;
ANALYZE big;
ALTER TABLE big OWNER TO regress_app;

SET ROLE regress_app;
SET migrate.guard = warn;
SET migrate.guard = off;
SHOW migrate.guard;
ALTER ROLE regress_app SET migrate.guard = off;
SELECT migrate.allow('index_not_concurrent', 'I own the table');
CREATE INDEX ON big (email);
INSERT INTO migrate.guard_log (role, action, rule) VALUES ('x', 'allowed', 'x');
SELECT count(*) FROM migrate.guard_log;
SELECT migrate.guard_ddl_start();
SELECT count(*) > 0 AS anyone_reads_rules FROM migrate.rules;
SELECT rule, severity FROM migrate.check('CREATE INDEX ON big (email)');
-- Hostile objects on the app's search_path do not change what the guard decides.
CREATE FUNCTION public.pg_event_trigger_table_rewrite_oid() RETURNS oid LANGUAGE sql AS 'SELECT 0::oid';
CREATE FUNCTION public.quote_ident(text) RETURNS text LANGUAGE sql AS $$ SELECT 'x' $$;
SET search_path = public, pg_catalog;
ALTER TABLE big ALTER COLUMN email TYPE varchar(5);
RESET search_path;
RESET ROLE;

-- migrate_admin may lower it (and it is logged in the server log) and may permit rules.
ALTER TABLE big OWNER TO regress_admin;
SET ROLE regress_admin;
BEGIN;
SET LOCAL migrate.guard = warn;
SHOW migrate.guard;
ROLLBACK;
BEGIN;
SELECT migrate.allow('index_not_concurrent', 'admin says so');
CREATE INDEX big_email ON big (email);
ROLLBACK;
RESET ROLE;

DROP TABLE big;
DROP FUNCTION public.pg_event_trigger_table_rewrite_oid(), public.quote_ident(text);
DROP OWNED BY regress_app, regress_admin;
DROP ROLE regress_app, regress_admin;
