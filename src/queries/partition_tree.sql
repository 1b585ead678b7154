-- The partitioned table $1 and every table under it, the root first, then by depth and name,
-- for the partitioned-table index recipe (src/partition_index.rs). Run by a migration job's
-- worker as the migration's role and by plan() as its caller; reads only the catalog.
WITH RECURSIVE tree AS (
    SELECT $1::pg_catalog.oid AS relid, 0::pg_catalog.oid AS parent, 0 AS depth
    UNION ALL
    SELECT i.inhrelid, i.inhparent, t.depth OPERATOR(pg_catalog.+) 1
    FROM pg_catalog.pg_inherits i
    JOIN tree t ON i.inhparent OPERATOR(pg_catalog.=) t.relid
)
SELECT t.relid,
       t.parent,
       c.relkind::pg_catalog.text AS relkind,
       pg_catalog.format('%I.%I', n.nspname, c.relname) AS qualified,
       c.relname::pg_catalog.text AS relname,
       n.nspname::pg_catalog.text AS schema
FROM tree t
JOIN pg_catalog.pg_class c ON c.oid OPERATOR(pg_catalog.=) t.relid
JOIN pg_catalog.pg_namespace n ON n.oid OPERATOR(pg_catalog.=) c.relnamespace
ORDER BY t.depth, c.relname
