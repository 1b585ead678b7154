-- The views and materialized views that depend on the given columns ($1 tables, $2 column
-- numbers, pairwise), and every view on those, transitively: each with the length of its
-- longest chain from a changed column (recreated in that order, dropped in the reverse), and
-- whether it is a view or materialized view at all (a rule on a table is reported, not
-- rebuilt). Run by the statement's user with search_path pinned to pg_catalog, pg_temp
-- (src/dependent_views.rs); reads catalogs only, takes no lock.
WITH RECURSIVE changed(relid, attnum) AS (
    SELECT * FROM ROWS FROM (pg_catalog.unnest($1::pg_catalog.oid[]),
                             pg_catalog.unnest($2::pg_catalog.int2[]))
), dependents(oid, depth) AS (
    SELECT r.ev_class, 1
    FROM changed ch
    JOIN pg_catalog.pg_depend d
      ON d.refobjid OPERATOR(pg_catalog.=) ch.relid
     AND d.refobjsubid OPERATOR(pg_catalog.=) ch.attnum
    JOIN pg_catalog.pg_rewrite r ON r.oid OPERATOR(pg_catalog.=) d.objid
    WHERE d.classid OPERATOR(pg_catalog.=) 'pg_catalog.pg_rewrite'::pg_catalog.regclass
      AND d.refclassid OPERATOR(pg_catalog.=) 'pg_catalog.pg_class'::pg_catalog.regclass
      AND r.ev_class OPERATOR(pg_catalog.<>) ch.relid
  UNION ALL
    SELECT r.ev_class, dep.depth OPERATOR(pg_catalog.+) 1
    FROM dependents dep
    JOIN pg_catalog.pg_depend d ON d.refobjid OPERATOR(pg_catalog.=) dep.oid
    JOIN pg_catalog.pg_rewrite r ON r.oid OPERATOR(pg_catalog.=) d.objid
    WHERE d.classid OPERATOR(pg_catalog.=) 'pg_catalog.pg_rewrite'::pg_catalog.regclass
      AND d.refclassid OPERATOR(pg_catalog.=) 'pg_catalog.pg_class'::pg_catalog.regclass
      AND r.ev_class OPERATOR(pg_catalog.<>) dep.oid
      AND dep.depth OPERATOR(pg_catalog.<) 100
)
SELECT dep.oid, pg_catalog.max(dep.depth) AS depth,
       pg_catalog.bool_and(c.relkind OPERATOR(pg_catalog.=) ANY (ARRAY['v', 'm']::pg_catalog."char"[])) AS is_view
FROM dependents dep
JOIN pg_catalog.pg_class c ON c.oid OPERATOR(pg_catalog.=) dep.oid
GROUP BY dep.oid
ORDER BY 2, 1
