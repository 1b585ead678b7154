-- What must survive ALTER EXTENSION migrate UPDATE unchanged: the registry, its history, the
-- jobs and the guard log (timestamps included).
\pset format unaligned
SELECT version, name, state, applied_at, applied_by, checksum_ok, transactional FROM migrate.status() ORDER BY version;
SELECT * FROM migrate.history ORDER BY 1;
SELECT id, kind, table_name, state, owner, set_sql, created_at FROM migrate.jobs ORDER BY id;
SELECT count(*) AS guard_log_rows, bool_and(action = 'blocked') AS all_blocked FROM migrate.guard_log;
