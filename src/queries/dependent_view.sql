-- What recreating one view or materialized view ($1) takes: its kind, names, owner, definition
-- (deparsed under the pinned search_path pg_catalog, pg_temp, so every other name comes out
-- schema-qualified), options, comment, whether it is populated, its tablespace, and what it
-- has that is not recreated (INSTEAD OF triggers, rules besides _RETURN, column defaults,
-- extended statistics, security labels, temporary persistence) so the caller can refuse.
-- Also whether the statement's user may do it: act as the owner (DROP, COMMENT, REFRESH),
-- hand the view to the owner ($2: 'MEMBER' on PostgreSQL 15, 'SET' from 16 on, as ALTER ...
-- OWNER checks), create in the schema and tablespace, and whether the owner may own it there. Run by the statement's user.
SELECT c.relkind::pg_catalog.text,
       n.nspname::pg_catalog.text,
       c.relname::pg_catalog.text,
       c.relowner,
       pg_catalog.pg_get_userbyid(c.relowner)::pg_catalog.text,
       pg_catalog.pg_get_viewdef(c.oid, false),
       c.reloptions::pg_catalog.text[],
       (SELECT d.description FROM pg_catalog.pg_description d
         WHERE d.objoid OPERATOR(pg_catalog.=) c.oid
           AND d.classoid OPERATOR(pg_catalog.=) 'pg_catalog.pg_class'::pg_catalog.regclass
           AND d.objsubid OPERATOR(pg_catalog.=) 0),
       c.relispopulated,
       (SELECT t.spcname::pg_catalog.text FROM pg_catalog.pg_tablespace t
         WHERE t.oid OPERATOR(pg_catalog.=) c.reltablespace),
       c.relacl IS NOT NULL,
       (SELECT pg_catalog.string_agg(x.what, ', ' ORDER BY x.what) FROM (
            SELECT 'trigger ' OPERATOR(pg_catalog.||) pg_catalog.quote_ident(tg.tgname) AS what
            FROM pg_catalog.pg_trigger tg
            WHERE tg.tgrelid OPERATOR(pg_catalog.=) c.oid AND NOT tg.tgisinternal
          UNION ALL
            SELECT 'rule ' OPERATOR(pg_catalog.||) pg_catalog.quote_ident(r.rulename)
            FROM pg_catalog.pg_rewrite r
            WHERE r.ev_class OPERATOR(pg_catalog.=) c.oid
              AND r.rulename OPERATOR(pg_catalog.<>) '_RETURN'
          UNION ALL
            SELECT 'default of column ' OPERATOR(pg_catalog.||) pg_catalog.quote_ident(a.attname)
            FROM pg_catalog.pg_attrdef ad
            JOIN pg_catalog.pg_attribute a ON a.attrelid OPERATOR(pg_catalog.=) ad.adrelid
                                          AND a.attnum OPERATOR(pg_catalog.=) ad.adnum
            WHERE ad.adrelid OPERATOR(pg_catalog.=) c.oid
          UNION ALL
            SELECT 'statistics object ' OPERATOR(pg_catalog.||) pg_catalog.quote_ident(s.stxname)
            FROM pg_catalog.pg_statistic_ext s
            WHERE s.stxrelid OPERATOR(pg_catalog.=) c.oid
          UNION ALL
            SELECT 'temporary persistence (it belongs to one session)'
            WHERE c.relpersistence OPERATOR(pg_catalog.=) 't'
          UNION ALL
            SELECT 'security label'
            FROM pg_catalog.pg_seclabel l
            WHERE l.objoid OPERATOR(pg_catalog.=) c.oid
              AND l.classoid OPERATOR(pg_catalog.=) 'pg_catalog.pg_class'::pg_catalog.regclass
        ) x),
       pg_catalog.pg_has_role(c.relowner, 'USAGE'),
       pg_catalog.pg_has_role(c.relowner, $2),
       pg_catalog.has_schema_privilege(c.relnamespace, 'CREATE'),
       pg_catalog.has_schema_privilege(c.relowner, c.relnamespace, 'CREATE'),
       c.reltablespace OPERATOR(pg_catalog.=) 0
         OR pg_catalog.has_tablespace_privilege(c.reltablespace, 'CREATE')
FROM pg_catalog.pg_class c
JOIN pg_catalog.pg_namespace n ON n.oid OPERATOR(pg_catalog.=) c.relnamespace
WHERE c.oid OPERATOR(pg_catalog.=) $1
