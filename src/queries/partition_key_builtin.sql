-- True if the partition key of $1 is plain columns of built-in, non-domain types with built-in
-- operator families: then transforming a literal bound and proving it from constraints runs
-- built-in code only. Run by the guard as the statement's user with the session's
-- search_path: schema-qualified, operators spelled out.
SELECT EXISTS (SELECT FROM pg_catalog.pg_partitioned_table WHERE partrelid OPERATOR(pg_catalog.=) $1)
   AND NOT EXISTS (
    SELECT FROM pg_catalog.pg_partitioned_table p
    CROSS JOIN LATERAL ROWS FROM (pg_catalog.unnest(p.partattrs::pg_catalog.int2[]),
                               pg_catalog.unnest(p.partclass::pg_catalog.oid[])) AS k(attnum, opclass)
    LEFT JOIN pg_catalog.pg_attribute a ON a.attrelid OPERATOR(pg_catalog.=) p.partrelid
     AND a.attnum OPERATOR(pg_catalog.=) k.attnum
    LEFT JOIN pg_catalog.pg_type t ON t.oid OPERATOR(pg_catalog.=) a.atttypid
    LEFT JOIN pg_catalog.pg_opclass o ON o.oid OPERATOR(pg_catalog.=) k.opclass
    WHERE p.partrelid OPERATOR(pg_catalog.=) $1
      AND (k.attnum OPERATOR(pg_catalog.=) 0 OR t.oid IS NULL OR o.oid IS NULL
           OR t.oid OPERATOR(pg_catalog.>=) 16384::pg_catalog.oid
           OR t.typtype OPERATOR(pg_catalog.=) 'd'
           OR o.opcfamily OPERATOR(pg_catalog.>=) 16384::pg_catalog.oid))
