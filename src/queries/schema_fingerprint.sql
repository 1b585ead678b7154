-- verify(): one line per user-visible schema object (outside the system schemas and migrate):
-- what a down script must restore exactly. Every operator is spelled OPERATOR(pg_catalog.x):
-- see "Statement text" in docs/ARCHITECTURE.md.
WITH ns AS (
    SELECT oid, nspname FROM pg_catalog.pg_namespace
    WHERE nspname OPERATOR(pg_catalog.<>) ALL (ARRAY['pg_catalog', 'information_schema', 'migrate'])
      AND nspname OPERATOR(pg_catalog.!~) '^pg_(toast|temp)')
SELECT 'relation ' OPERATOR(pg_catalog.||) c.oid::pg_catalog.regclass::pg_catalog.text
       OPERATOR(pg_catalog.||) ' (' OPERATOR(pg_catalog.||) c.relkind::pg_catalog.text
       OPERATOR(pg_catalog.||) ', ' OPERATOR(pg_catalog.||) c.relpersistence::pg_catalog.text
       OPERATOR(pg_catalog.||) ')'
FROM pg_catalog.pg_class c JOIN ns ON ns.oid OPERATOR(pg_catalog.=) c.relnamespace
WHERE c.relkind OPERATOR(pg_catalog.=) ANY (ARRAY['r', 'p', 'v', 'm', 'S', 'f'])
UNION ALL
SELECT 'column ' OPERATOR(pg_catalog.||) c.oid::pg_catalog.regclass::pg_catalog.text
       OPERATOR(pg_catalog.||) '.' OPERATOR(pg_catalog.||) pg_catalog.quote_ident(a.attname)
       OPERATOR(pg_catalog.||) ' ' OPERATOR(pg_catalog.||) pg_catalog.format_type(a.atttypid, a.atttypmod)
       OPERATOR(pg_catalog.||) CASE WHEN a.attnotnull THEN ' NOT NULL' ELSE '' END
       OPERATOR(pg_catalog.||) COALESCE(' DEFAULT ' OPERATOR(pg_catalog.||) pg_catalog.pg_get_expr(d.adbin, d.adrelid), '')
FROM pg_catalog.pg_attribute a
JOIN pg_catalog.pg_class c ON c.oid OPERATOR(pg_catalog.=) a.attrelid
JOIN ns ON ns.oid OPERATOR(pg_catalog.=) c.relnamespace
LEFT JOIN pg_catalog.pg_attrdef d ON d.adrelid OPERATOR(pg_catalog.=) a.attrelid AND d.adnum OPERATOR(pg_catalog.=) a.attnum
WHERE a.attnum OPERATOR(pg_catalog.>) 0 AND NOT a.attisdropped
  AND c.relkind OPERATOR(pg_catalog.=) ANY (ARRAY['r', 'p', 'v', 'm', 'f'])
UNION ALL
SELECT 'constraint ' OPERATOR(pg_catalog.||) co.conrelid::pg_catalog.regclass::pg_catalog.text
       OPERATOR(pg_catalog.||) ' ' OPERATOR(pg_catalog.||) pg_catalog.quote_ident(co.conname)
       OPERATOR(pg_catalog.||) ': ' OPERATOR(pg_catalog.||) pg_catalog.pg_get_constraintdef(co.oid)
FROM pg_catalog.pg_constraint co JOIN ns ON ns.oid OPERATOR(pg_catalog.=) co.connamespace
WHERE co.conrelid OPERATOR(pg_catalog.<>) 0
UNION ALL
SELECT 'index ' OPERATOR(pg_catalog.||) pg_catalog.pg_get_indexdef(i.indexrelid)
       OPERATOR(pg_catalog.||) CASE WHEN i.indisvalid THEN '' ELSE ' (invalid)' END
FROM pg_catalog.pg_index i
JOIN pg_catalog.pg_class c ON c.oid OPERATOR(pg_catalog.=) i.indexrelid
JOIN ns ON ns.oid OPERATOR(pg_catalog.=) c.relnamespace
UNION ALL
SELECT 'function ' OPERATOR(pg_catalog.||) p.oid::pg_catalog.regprocedure::pg_catalog.text
       OPERATOR(pg_catalog.||) ' ' OPERATOR(pg_catalog.||) pg_catalog.md5(pg_catalog.pg_get_functiondef(p.oid))
FROM pg_catalog.pg_proc p JOIN ns ON ns.oid OPERATOR(pg_catalog.=) p.pronamespace
WHERE p.prokind OPERATOR(pg_catalog.<>) 'a'
UNION ALL
SELECT 'trigger ' OPERATOR(pg_catalog.||) pg_catalog.pg_get_triggerdef(t.oid)
FROM pg_catalog.pg_trigger t
JOIN pg_catalog.pg_class c ON c.oid OPERATOR(pg_catalog.=) t.tgrelid
JOIN ns ON ns.oid OPERATOR(pg_catalog.=) c.relnamespace
WHERE NOT t.tgisinternal
UNION ALL
SELECT 'view ' OPERATOR(pg_catalog.||) c.oid::pg_catalog.regclass::pg_catalog.text
       OPERATOR(pg_catalog.||) ': ' OPERATOR(pg_catalog.||) pg_catalog.md5(pg_catalog.pg_get_viewdef(c.oid))
FROM pg_catalog.pg_class c JOIN ns ON ns.oid OPERATOR(pg_catalog.=) c.relnamespace
WHERE c.relkind OPERATOR(pg_catalog.=) ANY (ARRAY['v', 'm'])
