-- expand_column(): the table $1 and its column $2, read by the caller under a pinned
-- search_path (so format_type and pg_get_expr qualify every name off pg_catalog): the table's
-- qualified name, schema, kind, owner, whether it is in an inheritance tree, the column's
-- number, type, NOT NULL, identity/generated markers and default; the table's own name.
SELECT pg_catalog.format('%I.%I', n.nspname, c.relname), n.nspname::pg_catalog.text,
       c.relkind::pg_catalog.text, c.relowner,
       c.relispartition OR EXISTS (SELECT FROM pg_catalog.pg_inherits i
                                   WHERE i.inhrelid OPERATOR(pg_catalog.=) c.oid
                                      OR i.inhparent OPERATOR(pg_catalog.=) c.oid),
       a.attnum::pg_catalog.int4, pg_catalog.format_type(a.atttypid, a.atttypmod),
       a.attnotnull, (a.attidentity OPERATOR(pg_catalog.<>) '' OR a.attgenerated OPERATOR(pg_catalog.<>) ''),
       pg_catalog.pg_get_expr(d.adbin, d.adrelid), c.relname::pg_catalog.text
FROM pg_catalog.pg_class c
JOIN pg_catalog.pg_namespace n ON n.oid OPERATOR(pg_catalog.=) c.relnamespace
LEFT JOIN pg_catalog.pg_attribute a ON a.attrelid OPERATOR(pg_catalog.=) c.oid
     AND a.attname OPERATOR(pg_catalog.=) $2 AND a.attnum OPERATOR(pg_catalog.>) 0 AND NOT a.attisdropped
LEFT JOIN pg_catalog.pg_attrdef d ON d.adrelid OPERATOR(pg_catalog.=) c.oid
     AND d.adnum OPERATOR(pg_catalog.=) a.attnum
WHERE c.oid OPERATOR(pg_catalog.=) $1
