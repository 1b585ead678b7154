-- The functions and operators a view or materialized view ($1) calls: what its rewrite rule
-- and a materialized view's indexes (expressions, predicates) depend on in pg_proc and pg_operator (casts, aggregates and operators' functions included as
-- PostgreSQL records them), as 'pg_proc:OID' / 'pg_operator:OID', with each one's owner and
-- whether it is in pg_catalog. Read before the rebuild and again after the view is created from
-- its deparsed text, whose names now resolve with the new column type: an overload planted in a
-- routine's schema would be picked up then (src/dependent_views.rs). Run under the pinned
-- search_path; reads catalogs only.
WITH objs(classid, objid) AS (
    SELECT 'pg_catalog.pg_rewrite'::pg_catalog.regclass::pg_catalog.oid, r.oid
    FROM pg_catalog.pg_rewrite r WHERE r.ev_class OPERATOR(pg_catalog.=) $1
  UNION ALL
    SELECT 'pg_catalog.pg_class'::pg_catalog.regclass::pg_catalog.oid, i.indexrelid
    FROM pg_catalog.pg_index i WHERE i.indrelid OPERATOR(pg_catalog.=) $1
)
SELECT x.key, x.what, x.owner, x.builtin
FROM (
    SELECT 'pg_proc:' OPERATOR(pg_catalog.||) p.oid::pg_catalog.text AS key,
           'function ' OPERATOR(pg_catalog.||) p.oid::pg_catalog.regprocedure::pg_catalog.text AS what,
           p.proowner AS owner,
           p.pronamespace OPERATOR(pg_catalog.=) 'pg_catalog'::pg_catalog.regnamespace AS builtin
    FROM objs
    JOIN pg_catalog.pg_depend d
      ON d.classid OPERATOR(pg_catalog.=) objs.classid
     AND d.objid OPERATOR(pg_catalog.=) objs.objid
     AND d.refclassid OPERATOR(pg_catalog.=) 'pg_catalog.pg_proc'::pg_catalog.regclass
    JOIN pg_catalog.pg_proc p ON p.oid OPERATOR(pg_catalog.=) d.refobjid
  UNION
    SELECT 'pg_operator:' OPERATOR(pg_catalog.||) o.oid::pg_catalog.text,
           'operator ' OPERATOR(pg_catalog.||) o.oid::pg_catalog.regoperator::pg_catalog.text,
           o.oprowner,
           o.oprnamespace OPERATOR(pg_catalog.=) 'pg_catalog'::pg_catalog.regnamespace
    FROM objs
    JOIN pg_catalog.pg_depend d
      ON d.classid OPERATOR(pg_catalog.=) objs.classid
     AND d.objid OPERATOR(pg_catalog.=) objs.objid
     AND d.refclassid OPERATOR(pg_catalog.=) 'pg_catalog.pg_operator'::pg_catalog.regclass
    JOIN pg_catalog.pg_operator o ON o.oid OPERATOR(pg_catalog.=) d.refobjid
) x
ORDER BY x.what
