-- backfill(): the key a job walks for table $1: the primary key, else the narrowest unique,
-- valid, non-partial, non-expression index on NOT NULL columns; its columns and their types
-- (with collations, schema-qualified) in index order.
SELECT pg_catalog.array_agg(a.attname::pg_catalog.text ORDER BY k.ord),
       pg_catalog.array_agg(pg_catalog.format_type(a.atttypid, a.atttypmod)
           OPERATOR(pg_catalog.||) CASE WHEN a.attcollation OPERATOR(pg_catalog.<>) 0
           THEN ' COLLATE ' OPERATOR(pg_catalog.||) pg_catalog.quote_ident(cn.nspname)
                OPERATOR(pg_catalog.||) '.' OPERATOR(pg_catalog.||) pg_catalog.quote_ident(co.collname)
           ELSE '' END ORDER BY k.ord)
FROM pg_catalog.pg_index i
CROSS JOIN LATERAL pg_catalog.unnest(i.indkey::pg_catalog.int2[]) WITH ORDINALITY AS k(attnum, ord)
JOIN pg_catalog.pg_attribute a ON a.attrelid OPERATOR(pg_catalog.=) i.indrelid
     AND a.attnum OPERATOR(pg_catalog.=) k.attnum
LEFT JOIN pg_catalog.pg_collation co ON co.oid OPERATOR(pg_catalog.=) a.attcollation
LEFT JOIN pg_catalog.pg_namespace cn ON cn.oid OPERATOR(pg_catalog.=) co.collnamespace
WHERE i.indrelid OPERATOR(pg_catalog.=) $1 AND i.indisunique AND i.indisvalid
  AND i.indpred IS NULL AND i.indexprs IS NULL
  AND k.ord OPERATOR(pg_catalog.<=) i.indnkeyatts
GROUP BY i.indexrelid, i.indisprimary
HAVING pg_catalog.bool_and(a.attnotnull AND a.attnum OPERATOR(pg_catalog.>) 0)
ORDER BY i.indisprimary DESC, pg_catalog.count(*), i.indexrelid
LIMIT 1
