-- plan(): the table locks this backend holds now (user tables and views, no indexes), to see
-- what one statement took.
SELECT l.relation::pg_catalog.oid, l.relation::pg_catalog.regclass::pg_catalog.text, l.mode
FROM pg_catalog.pg_locks l
JOIN pg_catalog.pg_class c ON c.oid OPERATOR(pg_catalog.=) l.relation
JOIN pg_catalog.pg_namespace n ON n.oid OPERATOR(pg_catalog.=) c.relnamespace
WHERE l.locktype OPERATOR(pg_catalog.=) 'relation' AND l.granted
  AND l.pid OPERATOR(pg_catalog.=) pg_catalog.pg_backend_pid()
  AND n.nspname OPERATOR(pg_catalog.<>) ALL (ARRAY['pg_catalog', 'information_schema', 'migrate'])
  AND c.relkind OPERATOR(pg_catalog.<>) 'i'
