-- plan(): every user table and materialized view with its relfilenode; a new file after a
-- statement means it rewrote the table.
SELECT c.oid, c.oid::pg_catalog.regclass::pg_catalog.text, c.relfilenode
FROM pg_catalog.pg_class c
JOIN pg_catalog.pg_namespace n ON n.oid OPERATOR(pg_catalog.=) c.relnamespace
WHERE c.relkind OPERATOR(pg_catalog.=) ANY (ARRAY['r', 'm'])
  AND n.nspname OPERATOR(pg_catalog.<>) ALL (ARRAY['pg_catalog', 'information_schema', 'migrate'])
  AND n.nspname OPERATOR(pg_catalog.!~) '^pg_toast'
