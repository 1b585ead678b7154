-- Run by adopt() and validate() as the registry owner (src/registry/tool_table.rs), with the
-- OID of another tool's bookkeeping table ($1) and the roles that registered the pending
-- migrations ($2).
-- A row of that table decides whether adopt() marks a migration applied or leaves it pending,
-- so whoever could have written the rows must be able to apply those migrations themselves.
-- Returns a role that can log in and write the table (INSERT, UPDATE, DELETE or TRUNCATE,
-- directly, by inheritance, through PUBLIC or pg_write_all_data, or by SET ROLE to one that
-- can; the owner too) but is not a member of an author, with that author; no row: every writer
-- may. Roles that cannot log in act only through their members, which are checked themselves.
SELECT r.rolname::pg_catalog.text AS writer, a.author::pg_catalog.text AS author
FROM pg_catalog.pg_roles r
CROSS JOIN pg_catalog.unnest($2::pg_catalog.name[]) AS a(author)
WHERE r.rolcanlogin AND NOT r.rolsuper
  AND EXISTS (SELECT FROM pg_catalog.pg_roles x
              WHERE x.rolname OPERATOR(pg_catalog.=) a.author)
  AND EXISTS (SELECT FROM pg_catalog.pg_roles w
              WHERE pg_catalog.pg_has_role(r.oid, w.oid, 'MEMBER')
                AND pg_catalog.has_table_privilege(w.oid, $1::pg_catalog.oid,
                                                   'INSERT, UPDATE, DELETE, TRUNCATE'))
  AND NOT pg_catalog.pg_has_role(r.oid, a.author, 'MEMBER')
ORDER BY r.rolname, a.author
LIMIT 1
