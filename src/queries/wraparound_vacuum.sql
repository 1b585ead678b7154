-- Autovacuum workers vacuuming the job's table, one of its partitions or their TOAST tables to
-- prevent transaction ID wraparound ($1: the job's table). Such a vacuum does not give way to
-- other lock requests and must finish; a backfill stands back until it has. The partitions are
-- read from pg_inherits, not with pg_partition_tree(), which locks every partition (ACCESS
-- SHARE): behind a session holding one of them ACCESS EXCLUSIVE the worker waited here with no
-- lock_timeout, holding the partitions it had locked already.
WITH RECURSIVE tree(oid) AS (
    SELECT $1::pg_catalog.oid
  UNION
    SELECT i.inhrelid
    FROM tree t
    JOIN pg_catalog.pg_inherits i ON i.inhparent OPERATOR(pg_catalog.=) t.oid
    JOIN pg_catalog.pg_class ch ON ch.oid OPERATOR(pg_catalog.=) i.inhrelid
    WHERE ch.relispartition
)
SELECT pg_catalog.count(*)::pg_catalog.int8
FROM pg_catalog.pg_stat_progress_vacuum p
JOIN pg_catalog.pg_stat_activity a ON a.pid OPERATOR(pg_catalog.=) p.pid
WHERE a.backend_type OPERATOR(pg_catalog.=) 'autovacuum worker'
  AND a.query OPERATOR(pg_catalog.~~) '%(to prevent wraparound)'
  AND p.relid OPERATOR(pg_catalog.=) ANY (
    SELECT c.oid FROM tree
    JOIN pg_catalog.pg_class r ON r.oid OPERATOR(pg_catalog.=) tree.oid
    CROSS JOIN LATERAL (VALUES (r.oid), (r.reltoastrelid)) c(oid))
