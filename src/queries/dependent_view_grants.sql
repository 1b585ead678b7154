-- The grants on a view ($1) and on its columns, one row per privilege as aclexplode() lists
-- them (grantor, grantee (0: PUBLIC), privilege, grantable, column or NULL for the relation),
-- relation first, then columns by number, each in ACL order, so replaying them as GRANTs by
-- each grantor rebuilds the same ACLs. Run by the statement's user under the pinned
-- search_path.
SELECT g.grantor, g.grantee, g.privilege_type, g.is_grantable, g.attname
FROM (
    SELECT a.grantor, a.grantee, a.privilege_type, a.is_grantable,
           NULL::pg_catalog.text AS attname, 0::pg_catalog.int2 AS attnum, a.ord
    FROM pg_catalog.pg_class c,
         pg_catalog.aclexplode(c.relacl) WITH ORDINALITY
           AS a(grantor, grantee, privilege_type, is_grantable, ord)
    WHERE c.oid OPERATOR(pg_catalog.=) $1
  UNION ALL
    SELECT a.grantor, a.grantee, a.privilege_type, a.is_grantable,
           att.attname::pg_catalog.text, att.attnum, a.ord
    FROM pg_catalog.pg_attribute att,
         pg_catalog.aclexplode(att.attacl) WITH ORDINALITY
           AS a(grantor, grantee, privilege_type, is_grantable, ord)
    WHERE att.attrelid OPERATOR(pg_catalog.=) $1 AND att.attnum OPERATOR(pg_catalog.>) 0
      AND NOT att.attisdropped
) g
ORDER BY g.attnum, g.ord
