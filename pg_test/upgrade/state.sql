-- What must survive ALTER EXTENSION migrate UPDATE unchanged: the registry, its history, the
-- jobs and the guard log (timestamps included).
\pset format unaligned
SELECT version, name, state, applied_at, applied_by, checksum_ok, transactional FROM migrate.status() ORDER BY version;
SELECT * FROM migrate.history ORDER BY 1;
SELECT id, kind, table_name, migration, state, owner, set_sql, created_at FROM migrate.jobs ORDER BY id;
-- Progress: rows for a backfill; statements for a migration job, which 0.1.0 counted in
-- rows_done and rows_estimated and 0.2.0 in statements_done and statements_total.
SELECT j.id, j.percent_done,
       CASE WHEN j.kind = 'migration'
            THEN COALESCE((to_jsonb(j) ->> 'statements_done')::bigint, j.rows_done)
            ELSE j.rows_done END AS done,
       CASE WHEN j.kind = 'migration'
            THEN COALESCE((to_jsonb(j) ->> 'statements_total')::bigint, j.rows_estimated)
            ELSE j.rows_estimated END AS total
FROM migrate.jobs j ORDER BY j.id;
SELECT count(*) AS guard_log_rows, bool_and(action = 'blocked') AS all_blocked FROM migrate.guard_log;
