-- expand_column(): the plain indexes on table $1 that use column $2, which the expansion
-- recreates on the new column: key and INCLUDE columns only (no expressions, no predicate),
-- default operator classes, collations and ordering, not backing a constraint. Per index: its
-- name, UNIQUE, access method, key columns and INCLUDE columns (names), in order. Indexes
-- that do not fit stay on the old column, and contract_column() refuses while they exist.
-- Run by the caller under a pinned search_path.
SELECT c.relname::pg_catalog.text, i.indisunique, am.amname::pg_catalog.text,
       (SELECT pg_catalog.array_agg(a.attname::pg_catalog.text ORDER BY k.ord)
        FROM pg_catalog.unnest(i.indkey::pg_catalog.int2[]) WITH ORDINALITY AS k(attnum, ord)
        JOIN pg_catalog.pg_attribute a ON a.attrelid OPERATOR(pg_catalog.=) i.indrelid
             AND a.attnum OPERATOR(pg_catalog.=) k.attnum
        WHERE k.ord OPERATOR(pg_catalog.<=) i.indnkeyatts),
       (SELECT pg_catalog.array_agg(a.attname::pg_catalog.text ORDER BY k.ord)
        FROM pg_catalog.unnest(i.indkey::pg_catalog.int2[]) WITH ORDINALITY AS k(attnum, ord)
        JOIN pg_catalog.pg_attribute a ON a.attrelid OPERATOR(pg_catalog.=) i.indrelid
             AND a.attnum OPERATOR(pg_catalog.=) k.attnum
        WHERE k.ord OPERATOR(pg_catalog.>) i.indnkeyatts)
FROM pg_catalog.pg_index i
JOIN pg_catalog.pg_class c ON c.oid OPERATOR(pg_catalog.=) i.indexrelid
JOIN pg_catalog.pg_am am ON am.oid OPERATOR(pg_catalog.=) c.relam
WHERE i.indrelid OPERATOR(pg_catalog.=) $1
  AND $2 OPERATOR(pg_catalog.=) ANY (i.indkey::pg_catalog.int2[])
  AND i.indexprs IS NULL AND i.indpred IS NULL AND i.indisvalid
  AND NOT EXISTS (SELECT FROM pg_catalog.pg_constraint k
                  WHERE k.conindid OPERATOR(pg_catalog.=) i.indexrelid
                    AND k.conrelid OPERATOR(pg_catalog.=) i.indrelid)
  AND NOT EXISTS (SELECT FROM pg_catalog.unnest(i.indoption::pg_catalog.int2[]) AS o(v)
                  WHERE o.v OPERATOR(pg_catalog.<>) 0)
  AND NOT EXISTS (SELECT FROM pg_catalog.unnest(i.indclass::pg_catalog.oid[]) AS oc(cls)
                  JOIN pg_catalog.pg_opclass opc ON opc.oid OPERATOR(pg_catalog.=) oc.cls
                  WHERE NOT opc.opcdefault)
  AND NOT EXISTS (SELECT FROM ROWS FROM (pg_catalog.unnest(i.indkey::pg_catalog.int2[]),
                                      pg_catalog.unnest(i.indcollation::pg_catalog.oid[])) AS kc(attnum, coll)
                  JOIN pg_catalog.pg_attribute a ON a.attrelid OPERATOR(pg_catalog.=) i.indrelid
                       AND a.attnum OPERATOR(pg_catalog.=) kc.attnum
                  WHERE kc.coll IS NOT NULL AND kc.coll OPERATOR(pg_catalog.<>) a.attcollation)
ORDER BY c.relname
