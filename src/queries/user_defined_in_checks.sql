-- True if a CHECK constraint of the relation ($1) uses a function, operator or type that is
-- not built in (built-in objects are pinned and have no pg_depend rows). Before asking the
-- server's predicate logic whether the constraints prove a partition bound, which folds their
-- constant parts, the guard makes sure that can run no user-defined code.
SELECT EXISTS (
    SELECT FROM pg_catalog.pg_constraint c
    JOIN pg_catalog.pg_depend d
      ON d.classid OPERATOR(pg_catalog.=) 'pg_catalog.pg_constraint'::pg_catalog.regclass
     AND d.objid OPERATOR(pg_catalog.=) c.oid
    WHERE c.conrelid OPERATOR(pg_catalog.=) $1 AND c.contype OPERATOR(pg_catalog.=) 'c'
      AND d.refclassid OPERATOR(pg_catalog.=) ANY (ARRAY['pg_catalog.pg_proc'::pg_catalog.regclass,
          'pg_catalog.pg_operator'::pg_catalog.regclass, 'pg_catalog.pg_type'::pg_catalog.regclass]::pg_catalog.oid[])
)
