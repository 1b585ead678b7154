-- needs: shared_preload_libraries = 'migrate'
-- Review 2: deploy() waits for an expansion's backfill before a contract. The backfill's owner
-- (the table owner, no privilege in migrate) may give it start_after => 'infinity': its
-- worker then waits for ever, and so did deploy(), holding the deploy lock. deploy() now ends
-- the wait when the job waits for its schedule, and the contract's error stands.
CREATE EXTENSION migrate;
CREATE ROLE regress_r2g_app LOGIN;
GRANT CREATE ON SCHEMA public TO regress_r2g_app;
CREATE TABLE r2g (id int PRIMARY KEY, v int);
INSERT INTO r2g SELECT g, g FROM generate_series(1, 1000) g;
ALTER TABLE r2g OWNER TO regress_r2g_app;
SET ROLE regress_r2g_app;
BEGIN;
SELECT migrate.expand_column('r2g', 'v', new_type => 'bigint') AS job \gset
SELECT migrate.alter_job(:job, start_after => 'infinity');
COMMIT;
RESET ROLE;
SELECT migrate.add('2', $$SELECT migrate.contract_column('r2g', 'v')$$);
SET statement_timeout = '60s';
CALL migrate.deploy('2');
RESET statement_timeout;
SELECT state, note FROM migrate.jobs WHERE id = :job;
SELECT version, action, error_sqlstate FROM migrate.history
WHERE action NOT IN ('add', 'replace', 'remove') ORDER BY id;
SELECT migrate.cancel_job(:job);
SET client_min_messages = error;
DROP EXTENSION migrate;
DROP TABLE r2g;
DROP FUNCTION migrate_sync_r2g_v();
REVOKE CREATE ON SCHEMA public FROM regress_r2g_app;
DROP ROLE regress_r2g_app;
