-- What an ALTER COLUMN ... TYPE that rewrites no row still rebuilds: the indexes on the column
-- in every table the statement reaches ($1, its partitions or inheritance children), one row
-- per key position the column holds (kind 'key', with the operator class and collations to
-- decide whether PostgreSQL reuses the index), one row for an expression or partial index on
-- it (kind 'expr'), and its validated CHECK constraints (kind 'check', re-checked by a scan).
-- Run by the guard as the statement's user with the session's search_path: everything is
-- schema-qualified and operators are spelled out.
SELECT 'key' AS kind,
       i.indexrelid::pg_catalog.regclass::pg_catalog.text AS name,
       ic.relam AS am,
       k.opclass,
       k.coll,
       a.atttypid AS old_type,
       a.attcollation AS old_collation
FROM pg_catalog.pg_attribute a
JOIN pg_catalog.pg_index i ON i.indrelid OPERATOR(pg_catalog.=) a.attrelid
JOIN pg_catalog.pg_class ic ON ic.oid OPERATOR(pg_catalog.=) i.indexrelid
CROSS JOIN LATERAL ROWS FROM (pg_catalog.unnest(i.indkey::pg_catalog.int2[]),
                               pg_catalog.unnest(i.indclass::pg_catalog.oid[]),
                               pg_catalog.unnest(i.indcollation::pg_catalog.oid[])) AS k(attnum, opclass, coll)
WHERE a.attrelid OPERATOR(pg_catalog.=) ANY ($1) AND a.attname OPERATOR(pg_catalog.=) $2
  AND NOT a.attisdropped AND k.attnum OPERATOR(pg_catalog.=) a.attnum AND k.opclass IS NOT NULL
  AND i.indexprs IS NULL AND i.indpred IS NULL
UNION ALL
SELECT 'expr', i.indexrelid::pg_catalog.regclass::pg_catalog.text, 0, 0, 0, 0, 0
FROM pg_catalog.pg_attribute a
JOIN pg_catalog.pg_index i ON i.indrelid OPERATOR(pg_catalog.=) a.attrelid
WHERE a.attrelid OPERATOR(pg_catalog.=) ANY ($1) AND a.attname OPERATOR(pg_catalog.=) $2
  AND NOT a.attisdropped AND (i.indexprs IS NOT NULL OR i.indpred IS NOT NULL)
  AND (a.attnum OPERATOR(pg_catalog.=) ANY (i.indkey::pg_catalog.int2[])
       OR EXISTS (SELECT FROM pg_catalog.pg_depend d
                  WHERE d.classid OPERATOR(pg_catalog.=) 'pg_catalog.pg_class'::pg_catalog.regclass
                    AND d.objid OPERATOR(pg_catalog.=) i.indexrelid
                    AND d.refclassid OPERATOR(pg_catalog.=) 'pg_catalog.pg_class'::pg_catalog.regclass
                    AND d.refobjid OPERATOR(pg_catalog.=) a.attrelid
                    AND d.refobjsubid OPERATOR(pg_catalog.=) a.attnum))
UNION ALL
SELECT 'check', pg_catalog.quote_ident(c.conname), 0, 0, 0, 0, 0
FROM pg_catalog.pg_attribute a
JOIN pg_catalog.pg_constraint c ON c.conrelid OPERATOR(pg_catalog.=) a.attrelid
WHERE a.attrelid OPERATOR(pg_catalog.=) ANY ($1) AND a.attname OPERATOR(pg_catalog.=) $2
  AND NOT a.attisdropped AND c.contype OPERATOR(pg_catalog.=) 'c' AND c.convalidated
  AND a.attnum OPERATOR(pg_catalog.=) ANY (c.conkey)
ORDER BY 1, 2
