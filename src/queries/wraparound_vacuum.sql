-- Autovacuum workers vacuuming the job's table, one of its partitions or their TOAST tables to
-- prevent transaction ID wraparound ($1: the job's table). Such a vacuum does not give way to
-- other lock requests and must finish; a backfill stands back until it has.
SELECT pg_catalog.count(*)::pg_catalog.int8
FROM pg_catalog.pg_stat_progress_vacuum p
JOIN pg_catalog.pg_stat_activity a ON a.pid OPERATOR(pg_catalog.=) p.pid
WHERE a.backend_type OPERATOR(pg_catalog.=) 'autovacuum worker'
  AND a.query OPERATOR(pg_catalog.~~) '%(to prevent wraparound)'
  AND p.relid OPERATOR(pg_catalog.=) ANY (
    SELECT c.oid FROM pg_catalog.pg_class r
    CROSS JOIN LATERAL (VALUES (r.oid), (r.reltoastrelid)) c(oid)
    -- pg_partition_tree() lists nothing for a table that is not partitioned.
    WHERE r.oid OPERATOR(pg_catalog.=) $1
       OR r.oid OPERATOR(pg_catalog.=) ANY (SELECT relid FROM pg_catalog.pg_partition_tree($1)))
