-- The standing adversarial suite: every way a role without privilege tried to gain privilege
-- through migrate (or to switch the guard off, or stall it), with variants of each class. Each
-- case ends by showing that the attacker gained nothing, with the SQLSTATE they got.
-- docs/SECURITY.md explains the model these cases prove.
CREATE EXTENSION migrate;
CREATE EXTENSION dblink;
CREATE ROLE regress_mallory LOGIN;
CREATE ROLE regress_deployer LOGIN IN ROLE migrate_admin;
CREATE ROLE regress_other LOGIN;
GRANT CREATE ON SCHEMA public TO regress_mallory, regress_deployer;
-- Did anyone become superuser? Asked after every case.
CREATE VIEW escalated AS
    SELECT rolname FROM pg_roles WHERE rolsuper AND rolname LIKE 'regress_%';
GRANT SELECT ON escalated TO PUBLIC;
CREATE TABLE public.big (id int PRIMARY KEY, v int);
INSERT INTO big SELECT g, g FROM generate_series(1, 20000) g;
ANALYZE big;

-- 1. The guard analyses user SQL as the statement's user, never as a definer.
-- 1a. The reported repro: a domain CHECK folded by transformExpr() called a function that
-- makes its caller superuser when the caller is one.
SET ROLE regress_mallory;
CREATE TEMP TABLE t (a int);
CREATE FUNCTION pg_temp.pwn(v int) RETURNS boolean LANGUAGE plpgsql AS $$
BEGIN
    IF (SELECT rolsuper FROM pg_roles WHERE rolname = current_user) THEN
        EXECUTE 'ALTER ROLE regress_mallory SUPERUSER';
    END IF;
    RETURN true;
END $$;
CREATE DOMAIN pg_temp.evil AS int CHECK (pg_temp.pwn(VALUE));
ALTER TABLE t ADD COLUMN c int DEFAULT ('{1}'::pg_temp.evil[])[1];
-- 1b. The same through a composite of the domain, on a table the role does not own (the guard
-- fires before PostgreSQL's ownership check): analysed as mallory, then refused.
CREATE TYPE pg_temp.box AS (d pg_temp.evil);
ALTER TABLE public.big ADD COLUMN c int DEFAULT (ROW(1)::pg_temp.box).d;
-- 1c. migrate.check() analyses as its caller too.
SELECT rule FROM migrate.check($$ALTER TABLE t ADD COLUMN d int DEFAULT ('{1}'::pg_temp.evil[])[1]$$);
RESET ROLE;
SELECT * FROM escalated;
-- 1d. A superuser's DDL with a domain planted by mallory runs the domain's code as the
-- superuser only because the statement itself does; the guard's analysis adds nothing (it runs
-- in a security-restricted operation, so pwn() cannot even ALTER ROLE from there).
-- 1e. Names resolve as the statement's user: with a schema mallory cannot use first on the
-- search_path, the guard judges the table PostgreSQL really builds the index on.
CREATE SCHEMA hidden;
CREATE TABLE hidden.big_or_small (id int);
CREATE SCHEMA app AUTHORIZATION regress_mallory;
CREATE TABLE app.big_or_small (id int);
INSERT INTO app.big_or_small SELECT g FROM generate_series(1, 20000) g;
ANALYZE app.big_or_small;
ALTER TABLE app.big_or_small OWNER TO regress_mallory;
SET ROLE regress_mallory;
SET search_path = hidden, app;
CREATE INDEX ON big_or_small (id);
RESET search_path;
RESET ROLE;
-- 1f. Statements on tables the role may not alter are not judged or logged (PostgreSQL
-- refuses them); and blocks of a role that is not migrate_admin (like 1e's) go to the server
-- log, not to background workers writing migrate.guard_log: nothing reaches it for mallory.
SET ROLE regress_mallory;
CREATE INDEX ON public.big (v);
ALTER TABLE public.big ALTER COLUMN v TYPE bigint;
RESET ROLE;
SELECT pg_sleep(0.5);
SELECT count(*) AS mallory_log_rows FROM migrate.guard_log WHERE role = 'regress_mallory';

-- 2. A transaction that ran a role's SQL never ends with more privilege than that role.
-- 2a. A deployer's migration creates and fires a deferred constraint trigger; a superuser
-- applies it and commits. The trigger fires before apply() switches back, as the deployer.
CREATE FUNCTION public.whoami_trigger() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RAISE WARNING 'deferred trigger runs as %', current_user;
    IF (SELECT rolsuper FROM pg_roles WHERE rolname = current_user) THEN
        EXECUTE 'ALTER ROLE regress_deployer SUPERUSER';
    END IF;
    RETURN NULL;
END $$;
SET ROLE regress_deployer;
SELECT migrate.add('1', $$
CREATE TABLE dep_t (id int);
CREATE CONSTRAINT TRIGGER later AFTER INSERT ON dep_t DEFERRABLE INITIALLY DEFERRED
    FOR EACH ROW EXECUTE FUNCTION public.whoami_trigger();
INSERT INTO dep_t VALUES (1);
$$, 'DROP TABLE dep_t');
RESET ROLE;
BEGIN;
SELECT version FROM migrate.apply();
COMMIT;
SELECT * FROM escalated;
-- 2b. The same through deploy(), which commits per migration.
SET ROLE regress_deployer;
SELECT migrate.add('2', 'INSERT INTO dep_t VALUES (2)', 'DELETE FROM dep_t WHERE id = 2');
RESET ROLE;
SET client_min_messages = warning;
CALL migrate.deploy();
RESET client_min_messages;
SELECT * FROM escalated;
-- 2c. A cursor WITH HOLD runs its query at COMMIT: refused, nothing applied.
SET ROLE regress_deployer;
SELECT migrate.add('3', 'DECLARE c CURSOR WITH HOLD FOR SELECT * FROM dep_t');
RESET ROLE;
SELECT version FROM migrate.apply();
-- 2d. A temporary table shadows the caller's tables for the rest of the session: refused.
SET ROLE regress_deployer;
SELECT migrate.add('3', 'CREATE TEMP TABLE big (id int, v int)');
RESET ROLE;
SELECT version FROM migrate.apply();
-- 2e. A prepared statement is run by whoever EXECUTEs its name next: refused.
SET ROLE regress_deployer;
SELECT migrate.add('3', 'PREPARE p AS SELECT 1');
RESET ROLE;
SELECT version FROM migrate.apply();
-- ... but a migration that cleans up after itself is fine.
SET ROLE regress_deployer;
SELECT migrate.add('3', $$
CREATE TEMP TABLE staging (id int);
INSERT INTO staging VALUES (3);
INSERT INTO dep_t SELECT id FROM staging;
DROP TABLE staging;
$$, 'DELETE FROM dep_t WHERE id = 3');
RESET ROLE;
SELECT version FROM migrate.apply();
SELECT * FROM pg_cursors;
-- ... and deferral still works inside a migration: a deferred foreign key is checked at its end.
SET ROLE regress_deployer;
SELECT migrate.add('3.0.1', $$
CREATE TABLE dep_parent (id int PRIMARY KEY);
CREATE TABLE dep_child (id int PRIMARY KEY,
                        p int REFERENCES dep_parent DEFERRABLE INITIALLY DEFERRED);
INSERT INTO dep_child VALUES (1, 1);
INSERT INTO dep_parent VALUES (1);
$$, 'DROP TABLE dep_child, dep_parent');
SELECT migrate.add('3.0.2', 'INSERT INTO dep_child VALUES (2, 2)');
RESET ROLE;
SELECT version FROM migrate.apply();
SET ROLE regress_deployer;
SELECT migrate.add('3.0.2', 'INSERT INTO dep_parent VALUES (2); INSERT INTO dep_child VALUES (2, 2)');
RESET ROLE;
SELECT version FROM migrate.apply();
-- 2g. A role applying its own migration is isolated too: after SET ROLE deployer; apply();
-- RESET ROLE; COMMIT the deployer's deferred trigger would otherwise fire as the superuser.
SET ROLE regress_deployer;
SELECT migrate.add('3.1', 'INSERT INTO dep_t VALUES (31)', 'DELETE FROM dep_t WHERE id = 31');
BEGIN;
SELECT version FROM migrate.apply();
RESET ROLE;
COMMIT;
SELECT * FROM escalated;
-- 2h. Nor can the deployer's script RESET ROLE (or SET SESSION AUTHORIZATION) to whoever ran
-- SET ROLE deployer above it.
SET ROLE regress_deployer;
SELECT migrate.add('3.2', 'RESET ROLE; ALTER ROLE regress_deployer SUPERUSER');
SELECT version FROM migrate.apply();
SELECT migrate.add('3.2', 'SET SESSION AUTHORIZATION postgres; ALTER ROLE regress_deployer SUPERUSER');
SELECT version FROM migrate.apply();
SELECT migrate.add('3.2', 'SELECT 1');
SELECT version FROM migrate.apply();
RESET ROLE;
SELECT * FROM escalated;
-- 2i. The caller's own deferred triggers fire before the script, as the caller and with the
-- caller's settings: never inside the author's sandbox (with a search_path the author chose).
CREATE TABLE public.caller_t (id int);
CREATE FUNCTION public.caller_trigger() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RAISE WARNING 'caller''s deferred trigger runs as % with search_path %', current_user,
        current_setting('search_path');
    RETURN NULL;
END $$;
CREATE CONSTRAINT TRIGGER caller_later AFTER INSERT ON caller_t DEFERRABLE INITIALLY DEFERRED
    FOR EACH ROW EXECUTE FUNCTION public.caller_trigger();
SET ROLE regress_deployer;
SELECT migrate.add('3.3', 'SET search_path = dep_nowhere, public; SELECT 1');
RESET ROLE;
BEGIN;
INSERT INTO caller_t VALUES (1);
SELECT version FROM migrate.apply();
COMMIT;
-- 2j. A script cannot read (or replace) a cursor the caller has open: apply() refuses to run
-- while any is open.
SET ROLE regress_deployer;
SELECT migrate.add('3.4', 'CLOSE c; DECLARE c CURSOR WITH HOLD FOR SELECT 1');
RESET ROLE;
BEGIN;
DECLARE c CURSOR WITH HOLD FOR SELECT * FROM big;
SELECT version FROM migrate.apply();
ROLLBACK;
-- 2k. Advisory locks and prepared statements a script leaves are removed, even when it fails
-- (a rollback does not remove them), so a script cannot fake a deploy or plant a statement.
SET ROLE regress_deployer;
SELECT migrate.add('3.4', 'SELECT pg_advisory_lock(4242)');
RESET ROLE;
SELECT version FROM migrate.apply();
SET ROLE regress_deployer;
SELECT migrate.add('3.4', 'PREPARE leak AS SELECT current_user; SELECT pg_advisory_lock(4242); SELECT 1/0');
RESET ROLE;
SELECT version FROM migrate.apply();
SELECT count(*) AS prepared FROM pg_prepared_statements;
SELECT count(*) AS advisory_locks FROM pg_locks WHERE locktype = 'advisory' AND pid = pg_backend_pid();
SET ROLE regress_deployer;
SELECT migrate.add('3.4', 'SELECT 1');
RESET ROLE;
SELECT version FROM migrate.apply();
-- 2o. A trigger fired by the script's final SET CONSTRAINTS ALL IMMEDIATE cannot defer new
-- work past it (to run at the caller's COMMIT, as the caller): that firing is a
-- security-restricted operation, where PostgreSQL refuses to queue a deferred event.
SET ROLE regress_deployer;
CREATE TABLE public.dep_q (x int);
CREATE TABLE public.dep_q2 (x int);
CREATE FUNCTION public.dep_redefer() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN SET CONSTRAINTS ALL DEFERRED; INSERT INTO public.dep_q2 VALUES (1); RETURN NULL; END $$;
CREATE CONSTRAINT TRIGGER t2 AFTER INSERT ON public.dep_q2 DEFERRABLE INITIALLY IMMEDIATE
    FOR EACH ROW EXECUTE FUNCTION public.whoami_trigger();
CREATE CONSTRAINT TRIGGER t1 AFTER INSERT ON public.dep_q DEFERRABLE INITIALLY DEFERRED
    FOR EACH ROW EXECUTE FUNCTION public.dep_redefer();
SELECT migrate.add('3.5', 'INSERT INTO public.dep_q VALUES (1)');
RESET ROLE;
BEGIN;
SELECT version FROM migrate.apply();
ROLLBACK;
SELECT * FROM escalated;
SET ROLE regress_deployer;
SELECT migrate.add('3.5', 'SELECT 1');
RESET ROLE;
SELECT version FROM migrate.apply();
-- 2p. A script cannot swap a prepared statement the caller made in the same query message
-- (same prepare time): the swap is seen by its text, refused, and removed.
SET ROLE regress_deployer;
SELECT migrate.add('3.6', $m$DO $d$ BEGIN IF EXISTS (SELECT FROM pg_prepared_statements WHERE name = 'getcfg') THEN
  DEALLOCATE getcfg; PREPARE getcfg AS SELECT current_user; END IF; END $d$$m$);
RESET ROLE;
PREPARE getcfg AS SELECT 'config' \; SELECT version FROM migrate.apply();
EXECUTE getcfg;
SET ROLE regress_deployer;
SELECT migrate.add('3.6', 'SELECT 1');
RESET ROLE;
SELECT version FROM migrate.apply();
-- 2q. What the session holds, a script could use with the rights of whoever acquired it: a
-- script does not run while the session has a dblink connection (named or unnamed) or an open
-- large object.
SET ROLE regress_deployer;
SELECT migrate.add('3.7', 'SELECT 1');
RESET ROLE;
SELECT dblink_connect('mine', 'host=127.0.0.1 port=' || current_setting('port')
                      || ' dbname=' || current_database() || ' user=postgres');
SELECT version FROM migrate.apply();
SELECT dblink_disconnect('mine');
SELECT dblink_connect('host=127.0.0.1 port=' || current_setting('port')
                      || ' dbname=' || current_database() || ' user=postgres');
SELECT version FROM migrate.apply();
SELECT dblink_disconnect();
-- A caller who may not call dblink cannot make the session's connections look absent (they
-- were opened before SET ROLE): they are looked up as the registry owner.
REVOKE EXECUTE ON FUNCTION dblink_get_connections() FROM PUBLIC;
SELECT dblink_connect('mine', 'host=127.0.0.1 port=' || current_setting('port')
                      || ' dbname=' || current_database() || ' user=postgres');
SET ROLE regress_deployer;
SELECT version FROM migrate.apply();
RESET ROLE;
SELECT dblink_disconnect('mine');
GRANT EXECUTE ON FUNCTION dblink_get_connections() TO PUBLIC;
BEGIN;
SELECT lo_create(424242);
SELECT lo_open(424242, 262144);
SELECT version FROM migrate.apply();
ROLLBACK;
SELECT version FROM migrate.apply();
-- 2f. A backfill worker logs in as the job's owner, so the deferred trigger on the owner's
-- table fires at the batch's COMMIT as the owner.
CREATE TABLE public.owned (id int PRIMARY KEY, v int);
INSERT INTO owned SELECT g, 0 FROM generate_series(1, 50) g;
CREATE TABLE public.trigger_runs (role name);
GRANT INSERT ON trigger_runs TO regress_mallory;
CREATE FUNCTION public.record_trigger() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO public.trigger_runs VALUES (current_user);
    IF (SELECT rolsuper FROM pg_roles WHERE rolname = current_user) THEN
        EXECUTE 'ALTER ROLE regress_mallory SUPERUSER';
    END IF;
    RETURN NULL;
END $$;
ALTER TABLE owned OWNER TO regress_mallory;
SET ROLE regress_mallory;
CREATE CONSTRAINT TRIGGER at_commit AFTER UPDATE ON owned DEFERRABLE INITIALLY DEFERRED
    FOR EACH ROW EXECUTE FUNCTION public.record_trigger();
SELECT migrate.backfill('owned', 'v = 1') AS owned_job \gset
RESET ROLE;
CALL migrate.wait_job(:owned_job, '60 s');
SELECT role, count(*) FROM trigger_runs GROUP BY role;
SELECT * FROM escalated;
-- 2l. A job's SQL runs in the extension's worker: if it takes advisory locks there (to pose as
-- a worker holding slots or another job's lock), the batch rolls back, the locks are released
-- and the job fails.
SET ROLE regress_mallory;
SELECT migrate.backfill('owned', $$v = v + 0 * (SELECT count(*) FROM
    (SELECT pg_advisory_lock(1836280948, g) FROM generate_series(1, 64) g) s)::int$$) AS lock_job \gset
RESET ROLE;
CALL migrate.wait_job(:lock_job, '60 s');
SELECT state, error LIKE '42501: backfill of public.owned: the job''s SQL left advisory lock%' AS refused
FROM migrate.jobs WHERE id = :lock_job;
SELECT count(*) AS slot_keys_held FROM pg_locks WHERE locktype = 'advisory' AND classid = 1836280948;
-- ... and if it drops the worker's own session locks (the one way SQL reaches them), the job
-- fails too: another worker could otherwise take the same range.
SET ROLE regress_mallory;
SELECT migrate.backfill('owned', $$v = v + (SELECT 0 FROM (SELECT pg_advisory_unlock_all()) s)$$)
    AS unlock_job \gset
RESET ROLE;
CALL migrate.wait_job(:unlock_job, '60 s');
-- 2m. A batch that never ends (its SQL catches its own statement timeout, after dropping the
-- worker's session locks) does not make the job uncancellable: cancel_job() stops its worker
-- after 10 s.
SET ROLE regress_mallory;
CREATE FUNCTION public.forever() RETURNS int LANGUAGE plpgsql AS $$
BEGIN
    -- Dropping the worker's own session locks does not hide it either.
    PERFORM pg_advisory_unlock_all();
    LOOP
        BEGIN PERFORM pg_sleep(3600); EXCEPTION WHEN query_canceled THEN NULL; END;
    END LOOP;
END $$;
SELECT migrate.backfill('owned', 'v = public.forever()', batch_size => 1) AS stuck_job \gset
RESET ROLE;
SELECT pg_sleep(1);
SELECT migrate.cancel_job(:stuck_job);
SELECT state FROM migrate.jobs WHERE id = :stuck_job;
-- 2n. A backfill queued in a rolled-back subtransaction is forgotten with it.
SET ROLE regress_mallory;
BEGIN;
SAVEPOINT s;
SELECT migrate.backfill('owned', 'v = 5') IS NOT NULL AS queued;
ROLLBACK TO s;
COMMIT;
RESET ROLE;

-- 4. A down script runs as the role that wrote it, not as the migration's original author.
SELECT migrate.add('4', 'CREATE TABLE su_t (id int)', 'DROP TABLE su_t');
SELECT version FROM migrate.apply();
SET ROLE regress_deployer;
SELECT migrate.add('4', 'CREATE TABLE su_t (id int)', 'ALTER ROLE regress_deployer SUPERUSER');
RESET ROLE;
SELECT version, action, detail FROM migrate.history WHERE action = 'amend';
-- (PostgreSQL 15 and 18 word the refusal differently: its SQLSTATE is what counts.)
\set VERBOSITY sqlstate
SELECT version FROM migrate.rollback();
\set VERBOSITY verbose
SELECT * FROM escalated;
-- 4b. Even the dry run: plan() of a deploy back runs the amended down script as its writer,
-- so COPY ... TO PROGRAM (which would survive the rollback) is refused.
SET ROLE regress_deployer;
SELECT migrate.add('4', 'CREATE TABLE su_t (id int)', $$COPY (SELECT 1) TO PROGRAM 'touch /tmp/migrate-pwned'$$);
RESET ROLE;
SELECT version, direction, split_part(error, ':', 1) AS sqlstate, error LIKE '%COPY%' AS copy
FROM migrate.plan('3.7') WHERE error IS NOT NULL;
SELECT pg_stat_file('/tmp/migrate-pwned', true) IS NULL AS no_file;
SELECT migrate.add('4', 'CREATE TABLE su_t (id int)', 'DROP TABLE su_t');

-- 5. Settings never leak from one step into the next or into the caller.
CREATE SCHEMA dep AUTHORIZATION regress_deployer;
SET ROLE regress_deployer;
SELECT migrate.add('5', $$
SET search_path = dep, pg_catalog, public;
CREATE FUNCTION dep.lower(text) RETURNS text LANGUAGE plpgsql AS 'BEGIN RAISE NOTICE ''hijacked as %'', current_user; RETURN $1; END';
SELECT set_config('lock_timeout', '1h', false);
SET LOCAL statement_timeout = '1h';
$$);
RESET ROLE;
SELECT migrate.add('6', $$CREATE TABLE lowered AS SELECT lower('ABC') AS v$$);
SELECT version FROM migrate.apply();
SELECT v FROM lowered;
SHOW search_path;
SHOW lock_timeout;
SHOW statement_timeout;
-- 5b. Nor does a superuser migration's SET migrate.guard = off outlive it.
SELECT migrate.add('7', 'SET migrate.guard = off');
SELECT version FROM migrate.apply();
SHOW migrate.guard;

-- 6. The guard's settings: weakening any of them needs the privilege lowering migrate.guard
-- needs; strengthening them (and going back to the configured value) stays free.
SET ROLE regress_mallory;
SET LOCAL migrate.guard_min_rows = 2147483647;
SET migrate.guard_min_rows = 2147483647;
SET migrate.lock_timeout = 0;
SET migrate.lock_timeout = '1h';
SELECT set_config('migrate.guard_min_rows', '999999', true);
ALTER ROLE regress_mallory SET migrate.guard_min_rows = 999999;
CREATE FUNCTION public.weakened() RETURNS int LANGUAGE sql SET migrate.guard_min_rows = 999999
    AS 'SELECT 1';
SET migrate.guard_min_rows = 10;
SET migrate.lock_timeout = '100ms';
RESET migrate.guard_min_rows;
RESET migrate.lock_timeout;
SHOW migrate.guard_min_rows;
SHOW migrate.lock_timeout;
RESET ROLE;
SET ROLE regress_deployer;
BEGIN;
SET LOCAL migrate.guard_min_rows = 2147483647;
SHOW migrate.guard_min_rows;
ROLLBACK;
RESET ROLE;

-- 7. SQL checked under one lexer is run under the same one: with standard_conforming_strings
-- off, this set_sql looks like one assignment, but the worker would see a second statement.
SET ROLE regress_mallory;
SET standard_conforming_strings = off;
SELECT migrate.backfill('owned', $$v = length('x\'); UPDATE public.owned SET v = -999 --')$$);
SELECT migrate.backfill('owned', 'v = 2', $$id > length('x\'); UPDATE public.owned SET v = -999 --')$$);
RESET standard_conforming_strings;
RESET ROLE;
SELECT count(*) AS jobs FROM migrate.job_queue;

-- 8. Advisory-lock keys are public, so the extension takes none: its locks are row locks and
-- object locks no SQL can take. A squatter holding the old registry key, deploy key or every
-- worker-slot key stalls nothing.
SELECT dblink_connect('squatter', 'host=127.0.0.1 port=' || current_setting('port')
                      || ' dbname=' || current_database() || ' user=regress_mallory');
SELECT * FROM dblink('squatter', $$SELECT pg_advisory_lock(30796665482998885),
    pg_advisory_lock(30796665248378988), pg_advisory_lock(1836280948, 0),
    pg_advisory_lock(1836280948, 1), pg_advisory_lock(1836280948, 2),
    pg_advisory_lock(1836280948, 3)$$) AS t(a text, b text, c text, d text, e text, f text);
SELECT migrate.add('8', 'SELECT 1');
-- (From a session of its own: this one holds the squatter's dblink connection, see 2q.)
SELECT * FROM dblink('host=127.0.0.1 port=' || current_setting('port') || ' dbname='
                     || current_database() || ' user=postgres',
                     'SELECT version FROM migrate.apply()') AS t(version text);
SET ROLE regress_mallory;
SELECT migrate.backfill('owned', 'v = 3') AS slots_job \gset
RESET ROLE;
CALL migrate.wait_job(:slots_job, '60 s');
-- Nor does one on the old public key of a job's control lock: control calls do not wait for it.
SELECT * FROM dblink('squatter', format('SELECT pg_advisory_lock(1835234412, %s)', :slots_job))
    AS t(a text);
SELECT migrate.cancel_job(:slots_job);
SELECT dblink_disconnect('squatter');

-- 9. What other roles' jobs reveal: nothing but their shape.
SET ROLE regress_other;
SELECT id IS NOT NULL AS seen, last_key, error, note, set_sql, where_sql FROM migrate.jobs
WHERE id = :owned_job;
RESET ROLE;
SET ROLE regress_mallory;
SELECT id IS NOT NULL AS seen, last_key IS NOT NULL AS own_key, set_sql FROM migrate.jobs
WHERE id = :owned_job;
RESET ROLE;

-- 10. Registry calls from inside a migration are refused, not recursed into.
SELECT migrate.add('9', 'SELECT * FROM migrate.rollback()');
SELECT version FROM migrate.apply();
SELECT migrate.add('9', 'SELECT * FROM migrate.apply()');
SELECT version FROM migrate.apply();
SELECT migrate.add('9', $$SELECT migrate.add('10', 'SELECT 1')$$);
SELECT version FROM migrate.apply();

-- 11. Directives count only in real comments, never inside strings or dollar quotes.
SELECT migrate.add('9', $m$SELECT $x$
-- migrate:no-transaction
$x$$m$);
SELECT transactional FROM migrate.status() WHERE version = '9';
SELECT migrate.add('9', $$SELECT '
-- migrate:allow no_such_rule hidden in a string
'$$);

-- 12. Bad input the review found: each refused with its own SQLSTATE.
SELECT migrate.add('.', 'SELECT 1');
SELECT migrate.add('_-_', 'SELECT 1');
SELECT migrate.add('11', 'SELECT 1', options => '{"requires": ["9", "09"]}');
SELECT requires FROM migrate.migrations WHERE version = '11';
SET ROLE regress_mallory;
SELECT migrate.backfill('owned', 'v = 4', pause => '300000 years');
-- One role may have at most 100 backfills queued, running or paused (the queue starts jobs
-- oldest first: a flood must not push every other role's jobs back for good).
BEGIN;
SELECT count(migrate.backfill('owned', 'v = 6', pause => '1 hour')) FROM generate_series(1, 100);
SELECT migrate.backfill('owned', 'v = 6');
ROLLBACK;
SELECT migrate.pause_job(NULL);
SELECT migrate.resume_job(NULL);
SELECT migrate.cancel_job(NULL);
SELECT migrate.add('12', 'SELECT 1');
SELECT migrate.remove('1');
SELECT migrate.allow('index_not_concurrent', 'mine');
RESET ROLE;

-- 14. What runs is what add() checked: a BEGIN hidden behind nested block comments cannot shift
-- the wrapper's blanking so that a string literal's '*/' opens code (review 4).
CREATE DATABASE regress_adv14;
\c regress_adv14
CREATE EXTENSION migrate;
GRANT CREATE ON SCHEMA public TO regress_deployer;
SET ROLE regress_deployer;
SELECT migrate.add('14', $m$/* /* */ BEGIN */ BEGIN;
SELECT 'harmless */ CREATE TABLE smuggled(); /*';
-- */
COMMIT;
$m$);
SELECT version FROM migrate.apply();
RESET ROLE;
SELECT to_regclass('smuggled') IS NULL AS nothing_smuggled;
\c regress_adversarial
DROP DATABASE regress_adv14;

-- 15. adopt() reads another tool's table, which any role that can create tables on the path
-- could have planted: a role without migrate_admin cannot adopt; a table that a role could
-- write which could not apply the registered migrations is refused, whatever it says (a
-- planted row would mark a migration applied, so it never runs, or leave one to run again);
-- a view's code never runs; marking a migration applied needs its author's privileges.
CREATE DATABASE regress_adv15;
\c regress_adv15
CREATE EXTENSION migrate;
GRANT CREATE ON SCHEMA public TO regress_mallory, regress_deployer;
GRANT CREATE ON DATABASE regress_adv15 TO regress_mallory;
SET ROLE regress_deployer;
-- The deployer's folder: a migration that takes mallory's grants away, one that adds a table.
SELECT migrate.add('1', 'REVOKE ALL ON SCHEMA public FROM regress_mallory', NULL, 'lock mallory out');
SELECT migrate.add('2', 'CREATE TABLE regress_t (id int)', 'DROP TABLE regress_t', 'table');
RESET ROLE;
-- 15a. No migrate_admin, no adopt.
SET ROLE regress_mallory;
SELECT * FROM migrate.adopt('sqlx', dry_run => true);
SELECT migrate.end_adoption('sqlx');
-- 15b. Mallory plants sqlx's table saying 1 ran (so it would never run).
CREATE TABLE public._sqlx_migrations (version bigint PRIMARY KEY, description text NOT NULL,
    installed_on timestamptz NOT NULL DEFAULT now(), success boolean NOT NULL,
    checksum bytea NOT NULL, execution_time bigint NOT NULL);
INSERT INTO _sqlx_migrations VALUES
    (1, 'lock mallory out', now(), true, sha384('REVOKE ALL ON SCHEMA public FROM regress_mallory'), 1);
GRANT SELECT ON _sqlx_migrations TO PUBLIC;
RESET ROLE;
SET ROLE regress_deployer;
SELECT * FROM migrate.adopt('sqlx', dry_run => true);
SELECT * FROM migrate.adopt('sqlx');
RESET ROLE;
-- Not even a superuser's adopt trusts it.
SELECT * FROM migrate.adopt('sqlx');
SELECT version, state FROM migrate.status();
DROP TABLE _sqlx_migrations;
-- 15c. The deployer's own table, but writable by everyone (or by mallory alone).
SET ROLE regress_deployer;
CREATE TABLE public._sqlx_migrations (version bigint PRIMARY KEY, description text NOT NULL,
    installed_on timestamptz NOT NULL DEFAULT now(), success boolean NOT NULL,
    checksum bytea NOT NULL, execution_time bigint NOT NULL);
GRANT INSERT ON _sqlx_migrations TO PUBLIC;
SELECT * FROM migrate.adopt('sqlx', dry_run => true);
REVOKE INSERT ON _sqlx_migrations FROM PUBLIC;
GRANT DELETE ON _sqlx_migrations TO regress_mallory;
SELECT * FROM migrate.adopt('sqlx', dry_run => true);
REVOKE DELETE ON _sqlx_migrations FROM regress_mallory;
-- Writable by the deployer alone: trusted.
SELECT version, outcome FROM migrate.adopt('sqlx', dry_run => true);
DROP TABLE _sqlx_migrations;
RESET ROLE;
-- 15d. A view named like the tool's table, whose function would make mallory superuser if a
-- superuser read it: refused before anything reads it.
SET ROLE regress_mallory;
CREATE FUNCTION public.regress_pwn() RETURNS bigint LANGUAGE plpgsql AS $$
BEGIN
    IF (SELECT rolsuper FROM pg_roles WHERE rolname = current_user) THEN
        EXECUTE 'ALTER ROLE regress_mallory SUPERUSER';
    END IF;
    RETURN 1;
END $$;
CREATE VIEW public.__diesel_schema_migrations AS
    SELECT regress_pwn()::text AS version, now()::timestamp AS run_on;
RESET ROLE;
SELECT * FROM migrate.adopt('diesel');
SELECT rolname FROM pg_roles WHERE rolsuper AND rolname LIKE 'regress_%';
DROP VIEW public.__diesel_schema_migrations;
-- 15e. Mallory's schema first on the deployer's path: the table found there is mallory's.
SET ROLE regress_mallory;
CREATE SCHEMA regress_mal;
CREATE TABLE regress_mal.__diesel_schema_migrations (version varchar(50) PRIMARY KEY, run_on timestamp NOT NULL);
INSERT INTO regress_mal.__diesel_schema_migrations VALUES ('1', now());
GRANT USAGE ON SCHEMA regress_mal TO PUBLIC;
GRANT SELECT ON regress_mal.__diesel_schema_migrations TO PUBLIC;
RESET ROLE;
SET ROLE regress_deployer;
SET search_path = regress_mal, public;
SELECT * FROM migrate.adopt('diesel');
RESET search_path;
RESET ROLE;
-- 15f. A table only superusers can write, read by the deployer: marking 3 applied needs the
-- privileges of its author (a superuser), which the deployer does not have.
SELECT migrate.add('3', 'CREATE TABLE regress_u (id int)', NULL, 'a superuser''s');
CREATE TABLE public.__diesel_schema_migrations (version varchar(50) PRIMARY KEY, run_on timestamp NOT NULL);
INSERT INTO public.__diesel_schema_migrations VALUES ('3', now());
GRANT SELECT ON public.__diesel_schema_migrations TO regress_deployer;
SET ROLE regress_deployer;
SELECT * FROM migrate.adopt('diesel');
RESET ROLE;
SELECT version, state FROM migrate.status();
SELECT count(*) AS adoptions FROM migrate.adoptions;
\c regress_adversarial
DROP DATABASE regress_adv15;
SELECT * FROM escalated;

-- 16. plan() of a non-transactional migration analyses its statements as their author, never as
-- plan()'s caller (review of issue 15): the author's domain has a CHECK calling the author's
-- IMMUTABLE function (before the fix, plan() ran it as the superuser calling it); ALTER COLUMN ...
-- TYPE to the domain makes the type-change analysis ask whether the domain has constraints
-- (loading the type cache would fold the CHECK's constant call). A superuser runs plan().
CREATE DATABASE regress_adv16;
\c regress_adv16
CREATE EXTENSION migrate;
GRANT CREATE ON SCHEMA public TO regress_deployer;
SET ROLE regress_deployer;
CREATE FUNCTION public.pwn16(v int) RETURNS boolean LANGUAGE plpgsql IMMUTABLE AS $$
BEGIN
    -- An IMMUTABLE function may not run ALTER ROLE, but anything it reaches (dblink, a file
    -- function, COPY through a volatile helper) would run with its caller's rights: say who.
    RAISE NOTICE 'pwn16 ran as %', current_user;
    RETURN true;
END $$;
CREATE DOMAIN public.evil16 AS int CHECK (public.pwn16(VALUE) AND public.pwn16(1));
CREATE TABLE public.t16 (id int, c int);
SELECT migrate.add('16', $m$-- migrate:no-transaction
ALTER TABLE public.t16 ALTER COLUMN c TYPE public.evil16;
$m$);
RESET ROLE;
SELECT version, statement, executed, error FROM migrate.plan();
SELECT rolname FROM pg_roles WHERE rolsuper AND rolname LIKE 'regress_%';
\c regress_adversarial
DROP DATABASE regress_adv16;

-- 13. Only UTF8 databases: elsewhere text would not convert, so the extension refuses to install.
CREATE DATABASE regress_sql_ascii ENCODING 'SQL_ASCII' TEMPLATE template0 LC_COLLATE 'C' LC_CTYPE 'C';
\c regress_sql_ascii
\set SHOW_CONTEXT never
CREATE EXTENSION migrate;
\set SHOW_CONTEXT errors
\c regress_adversarial
DROP DATABASE regress_sql_ascii;

-- Clean up the cluster-wide roles.
DROP OWNED BY regress_mallory, regress_deployer, regress_other;
DROP ROLE regress_mallory, regress_deployer, regress_other;
