-- State a 0.1.0 user has before upgrading: applied and pending migrations with history, a
-- finished backfill job, a deploy's finished migration job (a non-transactional step), a guard
-- log row. Objects of the migrations live in schema app, which the
-- object comparison leaves out.
\set ON_ERROR_STOP on
SET client_min_messages = warning;
CREATE SCHEMA app;
SELECT migrate.add('001', 'CREATE TABLE app.orders (id bigint PRIMARY KEY, total numeric, note text)',
                   'DROP TABLE app.orders', 'orders');
SELECT migrate.add('002', 'INSERT INTO app.orders SELECT g, g, NULL FROM generate_series(1, 2000) g',
                   'DELETE FROM app.orders', 'seed');
SELECT migrate.add('003', 'ALTER TABLE app.orders ADD COLUMN paid boolean', NULL, 'pending');
SELECT count(*) FROM migrate.apply('002');
SELECT count(*) FROM migrate.rollback(1);
SELECT count(*) FROM migrate.apply('002');
SET migrate.allow_superuser_jobs = on;
SELECT migrate.backfill('app.orders', 'note = ''x''') AS job \gset
CALL migrate.wait_job(:job);
-- Between 002 and the pending 003.
SELECT migrate.add('002.1', E'-- migrate:no-transaction\nCREATE INDEX CONCURRENTLY orders_total ON app.orders (total);\nCREATE INDEX CONCURRENTLY orders_note ON app.orders (note);',
                   E'-- migrate:no-transaction\nDROP INDEX CONCURRENTLY app.orders_note;\nDROP INDEX CONCURRENTLY app.orders_total;',
                   'indexes');
CALL migrate.deploy('002.1');
SET migrate.guard_min_rows = 100;
ANALYZE app.orders;
DO $$ BEGIN
  ALTER TABLE app.orders ALTER COLUMN note SET NOT NULL;
EXCEPTION WHEN OTHERS THEN NULL;
END $$;
