-- The tables ALTER DOMAIN ... ADD CONSTRAINT scans: every table with storage that has a column
-- of the domain ($1) or of a domain over it (PostgreSQL refuses the statement when an array or
-- composite of it is used, so those are not counted). Run by the guard as the statement's user
-- with the session's search_path: schema-qualified, operators spelled out.
WITH RECURSIVE d(oid) AS (
    SELECT $1::pg_catalog.oid
    UNION
    SELECT t.oid FROM pg_catalog.pg_type t JOIN d ON t.typbasetype OPERATOR(pg_catalog.=) d.oid
    WHERE t.typtype OPERATOR(pg_catalog.=) 'd'
)
SELECT DISTINCT c.oid
FROM pg_catalog.pg_attribute a
JOIN d ON a.atttypid OPERATOR(pg_catalog.=) d.oid
JOIN pg_catalog.pg_class c ON c.oid OPERATOR(pg_catalog.=) a.attrelid
WHERE NOT a.attisdropped AND a.attnum OPERATOR(pg_catalog.>) 0
  AND c.relkind OPERATOR(pg_catalog.=) ANY ('{r,m}'::pg_catalog."char"[])
ORDER BY 1
