-- expand_column(): every live column of table $1 with its type (qualified under the caller's
-- pinned search_path), in order: the sync trigger declares one variable per column so the
-- author's expressions read them by name.
SELECT a.attname::pg_catalog.text, pg_catalog.format_type(a.atttypid, a.atttypmod)
FROM pg_catalog.pg_attribute a
WHERE a.attrelid OPERATOR(pg_catalog.=) $1 AND a.attnum OPERATOR(pg_catalog.>) 0 AND NOT a.attisdropped
ORDER BY a.attnum
