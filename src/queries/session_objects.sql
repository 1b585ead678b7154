-- run_isolated(): what the session holds that a script could leave for code running after it
-- (see SessionObjects in src/pg/security.rs): 'c' cursors (but $1, the portal running the
-- call), 'p' prepared statements (with their time, origin and text, so a swap under the same
-- name shows), 't' temporary relations, functions and types, 'a' advisory locks. A session
-- that never created a temporary object has no temporary schema: pg_my_temp_schema() is 0,
-- which is no object's namespace, and the one-time filter skips the three catalog scans.
SELECT 'c', name, creation_time::pg_catalog.text, NULL::pg_catalog.int8, NULL::pg_catalog.int8, NULL::pg_catalog.int4
    FROM pg_catalog.pg_cursors WHERE name OPERATOR(pg_catalog.<>) $1
UNION ALL SELECT 'p', name, prepare_time::pg_catalog.text OPERATOR(pg_catalog.||) ' '
        OPERATOR(pg_catalog.||) from_sql::pg_catalog.text OPERATOR(pg_catalog.||) ' '
        OPERATOR(pg_catalog.||) statement, NULL, NULL, NULL
    FROM pg_catalog.pg_prepared_statements
UNION ALL SELECT 't', 'temporary relation ' OPERATOR(pg_catalog.||) c.relname, c.oid::pg_catalog.text, NULL, NULL, NULL
    FROM pg_catalog.pg_class c
    WHERE pg_catalog.pg_my_temp_schema() OPERATOR(pg_catalog.<>) 0 AND c.relnamespace OPERATOR(pg_catalog.=) pg_catalog.pg_my_temp_schema()
UNION ALL SELECT 't', 'temporary function ' OPERATOR(pg_catalog.||) p.oid::pg_catalog.regprocedure::pg_catalog.text,
        p.oid::pg_catalog.text, NULL, NULL, NULL
    FROM pg_catalog.pg_proc p
    WHERE pg_catalog.pg_my_temp_schema() OPERATOR(pg_catalog.<>) 0 AND p.pronamespace OPERATOR(pg_catalog.=) pg_catalog.pg_my_temp_schema()
UNION ALL SELECT 't', 'temporary type ' OPERATOR(pg_catalog.||) t.typname, t.oid::pg_catalog.text, NULL, NULL, NULL
    FROM pg_catalog.pg_type t
    WHERE pg_catalog.pg_my_temp_schema() OPERATOR(pg_catalog.<>) 0 AND t.typnamespace OPERATOR(pg_catalog.=) pg_catalog.pg_my_temp_schema()
      AND t.typrelid OPERATOR(pg_catalog.=) 0 AND t.typelem OPERATOR(pg_catalog.=) 0
UNION ALL SELECT 'a', l.mode, NULL, l.classid::pg_catalog.int8, l.objid::pg_catalog.int8, l.objsubid::pg_catalog.int4
    FROM pg_catalog.pg_locks l
    WHERE l.locktype OPERATOR(pg_catalog.=) 'advisory' AND l.granted
      AND l.pid OPERATOR(pg_catalog.=) pg_catalog.pg_backend_pid()
