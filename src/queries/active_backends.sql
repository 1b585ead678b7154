-- Client sessions running a statement now. Sessions asleep in an extension's wait (such as
-- CALL migrate.wait_job() waiting for this very job) do no work and are not counted.
SELECT pg_catalog.count(*)::pg_catalog.int8
FROM pg_catalog.pg_stat_activity
WHERE backend_type OPERATOR(pg_catalog.=) 'client backend'
  AND state OPERATOR(pg_catalog.=) 'active'
  AND COALESCE(wait_event_type OPERATOR(pg_catalog.<>) 'Extension', true)
