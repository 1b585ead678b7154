-- expand_column() and contract_column(): what depends on column $2 of table $1, besides its
-- default and (PostgreSQL 18) its NOT NULL constraint, which the expansion carries over, and
-- the indexes named in $3 (recreated on the new column):
-- views and materialized views (kind 'view', named by the view) and everything else
-- (indexes, constraints, owned sequences, policies, statistics, triggers with a column list)
-- as pg_describe_object names it. Run by the caller under a pinned search_path.
SELECT DISTINCT
       CASE WHEN d.classid OPERATOR(pg_catalog.=) 'pg_catalog.pg_rewrite'::pg_catalog.regclass
            THEN 'view' ELSE 'other' END AS kind,
       CASE WHEN d.classid OPERATOR(pg_catalog.=) 'pg_catalog.pg_rewrite'::pg_catalog.regclass
            THEN (SELECT r.ev_class::pg_catalog.regclass::pg_catalog.text FROM pg_catalog.pg_rewrite r
                  WHERE r.oid OPERATOR(pg_catalog.=) d.objid)
            ELSE pg_catalog.pg_describe_object(d.classid, d.objid, d.objsubid) END AS object
FROM pg_catalog.pg_depend d
WHERE d.refclassid OPERATOR(pg_catalog.=) 'pg_catalog.pg_class'::pg_catalog.regclass
  AND d.refobjid OPERATOR(pg_catalog.=) $1
  AND d.refobjsubid OPERATOR(pg_catalog.=) $2
  AND d.deptype OPERATOR(pg_catalog.=) ANY (ARRAY['n', 'a']::pg_catalog."char"[])
  AND d.classid OPERATOR(pg_catalog.<>) 'pg_catalog.pg_attrdef'::pg_catalog.regclass
  -- the expansion's recreated indexes ($3: names of the old ones) go with the old column
  AND NOT (d.classid OPERATOR(pg_catalog.=) 'pg_catalog.pg_class'::pg_catalog.regclass
           AND EXISTS (SELECT FROM pg_catalog.pg_class x WHERE x.oid OPERATOR(pg_catalog.=) d.objid
                       AND x.relkind OPERATOR(pg_catalog.=) 'i'
                       AND x.relname::pg_catalog.text OPERATOR(pg_catalog.=) ANY ($3::pg_catalog.text[])))
  AND NOT EXISTS (SELECT FROM pg_catalog.pg_constraint k
                  WHERE d.classid OPERATOR(pg_catalog.=) 'pg_catalog.pg_constraint'::pg_catalog.regclass
                    AND k.oid OPERATOR(pg_catalog.=) d.objid
                    AND k.contype OPERATOR(pg_catalog.=) 'n')
ORDER BY 1, 2
