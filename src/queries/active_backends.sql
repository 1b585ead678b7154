-- Client sessions doing work now: running a statement, on the CPU (no wait event) or waiting
-- for I/O or a buffer. A session asleep (pg_sleep, a lock, the client, an extension's wait
-- such as CALL migrate.wait_job() for this very job) costs the server nothing, and counting it
-- would let any role that can log in hold every backfill back at no cost.
SELECT pg_catalog.count(*)::pg_catalog.int8
FROM pg_catalog.pg_stat_activity
WHERE backend_type OPERATOR(pg_catalog.=) 'client backend'
  AND state OPERATOR(pg_catalog.=) 'active'
  AND (wait_event_type IS NULL
       OR wait_event_type OPERATOR(pg_catalog.=) ANY ('{IO,LWLock,BufferPin}'::pg_catalog.text[]))
