-- Without shared_preload_libraries = 'migrate' (the plain regression cluster) there is no
-- ProcessUtility hook: the statements guard_hook.sql shows blocked or warned run unjudged,
-- and migrate.rules says their rules are not active in this session. Event triggers still
-- guard DDL.
CREATE EXTENSION migrate;
SELECT id, needs_preload, active FROM migrate.rules WHERE needs_preload OR NOT active ORDER BY id;
SELECT count(*) AS rules, count(*) FILTER (WHERE active) AS active FROM migrate.rules;
SET migrate.guard = off;
CREATE TABLE big (id int PRIMARY KEY, v text);
INSERT INTO big SELECT g, 'v' || g FROM generate_series(1, 20000) g;
CREATE MATERIALIZED VIEW big_mv AS SELECT id, v FROM big;
RESET migrate.guard;
ANALYZE;
VACUUM FULL big;
CLUSTER big USING big_pkey;
REINDEX INDEX big_pkey;
REFRESH MATERIALIZED VIEW big_mv;
BEGIN;
TRUNCATE big;
LOCK TABLE big IN ACCESS EXCLUSIVE MODE;
ROLLBACK;
-- PostgreSQL 17 and later fire event triggers for REINDEX: the guard bounds its lock wait,
-- but without the hook no rule judges it.
SELECT count(*) AS logged FROM migrate.guard_log;
-- DDL is guarded as ever.
CREATE INDEX big_v ON big (v);
