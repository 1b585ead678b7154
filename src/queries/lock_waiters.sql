-- Sessions waiting for a lock this backend holds that only a role with privileges on the
-- table can want: a row the batch updated (its transaction ID, or the row's tuple lock) or a
-- table lock that conflicts with the batch's. Waits any role could start on purpose (a
-- CREATE INDEX CONCURRENTLY elsewhere waits for every transaction's virtual ID; advisory
-- locks) do not count, so nobody can make every batch yield at will.
SELECT pg_catalog.count(*)::pg_catalog.int8
FROM pg_catalog.pg_stat_activity
WHERE wait_event_type OPERATOR(pg_catalog.=) 'Lock'
  AND wait_event OPERATOR(pg_catalog.=) ANY ('{transactionid,tuple,relation}'::pg_catalog.text[])
  AND pg_catalog.pg_backend_pid() OPERATOR(pg_catalog.=) ANY (pg_catalog.pg_blocking_pids(pid))
