-- Sessions waiting for a lock this backend holds: row locks of the batch in progress (a
-- writer waits on the batch's transaction ID), or a table lock.
SELECT pg_catalog.count(*)::pg_catalog.int8
FROM pg_catalog.pg_stat_activity
WHERE wait_event_type OPERATOR(pg_catalog.=) 'Lock'
  AND pg_catalog.pg_backend_pid() OPERATOR(pg_catalog.=) ANY (pg_catalog.pg_blocking_pids(pid))
