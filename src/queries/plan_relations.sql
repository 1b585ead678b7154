-- plan(): every user relation that exists when the dry run starts, with its relfilenode (0 for
-- relations without storage) and whether it is an index, so that each statement's locks,
-- rewrites and scans can be told apart from relations it created.
SELECT c.oid, c.relfilenode, c.relkind OPERATOR(pg_catalog.=) ANY (ARRAY['i', 'I']) AS is_index
FROM pg_catalog.pg_class c
JOIN pg_catalog.pg_namespace n ON n.oid OPERATOR(pg_catalog.=) c.relnamespace
WHERE n.nspname OPERATOR(pg_catalog.<>) ALL (ARRAY['pg_catalog', 'information_schema', 'migrate'])
  AND n.nspname OPERATOR(pg_catalog.!~) '^pg_toast'
