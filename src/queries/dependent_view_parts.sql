-- The parts of a view or materialized view ($1) recreated after it: column comments (kind
-- 'column': name, comment), the privileges its owner revoked from itself (kind 'revoke':
-- privilege; only when its ACL is set), and a materialized view's indexes (kind 'index':
-- CREATE INDEX text with its tablespace, comment, qualified name). Run by the statement's user under the
-- pinned search_path, so names in the index definitions come out schema-qualified.
SELECT 'column', a.attname::pg_catalog.text, d.description, NULL::pg_catalog.text
FROM pg_catalog.pg_attribute a
JOIN pg_catalog.pg_description d
  ON d.objoid OPERATOR(pg_catalog.=) a.attrelid
 AND d.classoid OPERATOR(pg_catalog.=) 'pg_catalog.pg_class'::pg_catalog.regclass
 AND d.objsubid OPERATOR(pg_catalog.=) a.attnum
WHERE a.attrelid OPERATOR(pg_catalog.=) $1 AND a.attnum OPERATOR(pg_catalog.>) 0
  AND NOT a.attisdropped
UNION ALL
(SELECT 'revoke', p.privilege_type, NULL, NULL
 FROM pg_catalog.pg_class c, pg_catalog.aclexplode(pg_catalog.acldefault('r', c.relowner)) p
 WHERE c.oid OPERATOR(pg_catalog.=) $1 AND c.relacl IS NOT NULL
 EXCEPT
 SELECT 'revoke', a.privilege_type, NULL, NULL
 FROM pg_catalog.pg_class c, pg_catalog.aclexplode(c.relacl) a
 WHERE c.oid OPERATOR(pg_catalog.=) $1
   AND a.grantee OPERATOR(pg_catalog.=) c.relowner AND a.grantor OPERATOR(pg_catalog.=) c.relowner)
UNION ALL
SELECT 'index',
       pg_catalog.pg_get_indexdef(i.indexrelid)
         OPERATOR(pg_catalog.||) COALESCE(' TABLESPACE ' OPERATOR(pg_catalog.||)
           pg_catalog.quote_ident(t.spcname::pg_catalog.text), ''),
       (SELECT d.description FROM pg_catalog.pg_description d
         WHERE d.objoid OPERATOR(pg_catalog.=) i.indexrelid
           AND d.classoid OPERATOR(pg_catalog.=) 'pg_catalog.pg_class'::pg_catalog.regclass
           AND d.objsubid OPERATOR(pg_catalog.=) 0),
       pg_catalog.quote_ident(n.nspname::pg_catalog.text) OPERATOR(pg_catalog.||) '.'
         OPERATOR(pg_catalog.||) pg_catalog.quote_ident(ic.relname::pg_catalog.text)
FROM pg_catalog.pg_index i
JOIN pg_catalog.pg_class ic ON ic.oid OPERATOR(pg_catalog.=) i.indexrelid
JOIN pg_catalog.pg_namespace n ON n.oid OPERATOR(pg_catalog.=) ic.relnamespace
LEFT JOIN pg_catalog.pg_tablespace t ON t.oid OPERATOR(pg_catalog.=) ic.reltablespace
WHERE i.indrelid OPERATOR(pg_catalog.=) $1
