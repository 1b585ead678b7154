-- The index of table $1 that the partitioned-table index recipe (src/partition_index.rs)
-- works with: the one attached to the parent's index $3 whatever its name, else the one named
-- $2; always one row, NULLs when there is none, with the names (the table's schema is $4).
-- Run by a migration job's worker as the migration's role and by plan() as its caller.
SELECT x.indexrelid,
       x.valid,
       x.attached,
       pg_catalog.quote_ident(COALESCE(x.relname, $2)) AS quoted,
       pg_catalog.format('%I.%I', $4::pg_catalog.text, COALESCE(x.relname, $2)) AS qualified
FROM (SELECT 1) one
LEFT JOIN LATERAL (
    SELECT i.indexrelid,
           i.indisvalid AS valid,
           c.relname::pg_catalog.text AS relname,
           EXISTS (SELECT FROM pg_catalog.pg_inherits h
                   WHERE h.inhrelid OPERATOR(pg_catalog.=) i.indexrelid
                     AND h.inhparent OPERATOR(pg_catalog.=) $3::pg_catalog.oid) AS attached
    FROM pg_catalog.pg_index i
    JOIN pg_catalog.pg_class c ON c.oid OPERATOR(pg_catalog.=) i.indexrelid
    WHERE i.indrelid OPERATOR(pg_catalog.=) $1::pg_catalog.oid
      AND (c.relname OPERATOR(pg_catalog.=) $2::pg_catalog.name
           OR EXISTS (SELECT FROM pg_catalog.pg_inherits h
                      WHERE h.inhrelid OPERATOR(pg_catalog.=) i.indexrelid
                        AND h.inhparent OPERATOR(pg_catalog.=) $3::pg_catalog.oid))
    ORDER BY 4 DESC
    LIMIT 1
) x ON true
