-- True if an index of the table ($1) starts with exactly the columns ($2, in any order) of a
-- foreign key: what migrate.check()'s foreign_key_without_index advice looks for. Run as the
-- caller with the caller's search_path: schema-qualified, operators spelled out.
SELECT EXISTS (
    SELECT FROM pg_catalog.pg_index i
    WHERE i.indrelid OPERATOR(pg_catalog.=) $1 AND i.indpred IS NULL
      AND (SELECT pg_catalog.array_agg(a.attname::pg_catalog.text ORDER BY a.attname)
           FROM pg_catalog.unnest((i.indkey::pg_catalog.int2[])[0:pg_catalog.cardinality($2) OPERATOR(pg_catalog.-) 1]) AS k(n)
           JOIN pg_catalog.pg_attribute a ON a.attrelid OPERATOR(pg_catalog.=) i.indrelid
            AND a.attnum OPERATOR(pg_catalog.=) k.n)
          OPERATOR(pg_catalog.=)
          (SELECT pg_catalog.array_agg(c ORDER BY c) FROM pg_catalog.unnest($2::pg_catalog.text[]) AS c)
)
