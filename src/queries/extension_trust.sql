-- A worker's first check in its database (queue::extension_installed): the extension is
-- installed in schema migrate and owns its five tables there, each owned by a superuser, so a
-- schema named migrate planted by a database owner cannot make a worker run what it holds.
SELECT pg_catalog.count(*) OPERATOR(pg_catalog.=) 5
FROM pg_catalog.pg_extension e
JOIN pg_catalog.pg_depend d
  ON d.refclassid OPERATOR(pg_catalog.=) 'pg_catalog.pg_extension'::pg_catalog.regclass
 AND d.refobjid OPERATOR(pg_catalog.=) e.oid AND d.deptype OPERATOR(pg_catalog.=) 'e'
 AND d.classid OPERATOR(pg_catalog.=) 'pg_catalog.pg_class'::pg_catalog.regclass
JOIN pg_catalog.pg_class c ON c.oid OPERATOR(pg_catalog.=) d.objid
 AND c.relnamespace OPERATOR(pg_catalog.=) e.extnamespace
JOIN pg_catalog.pg_namespace n ON n.oid OPERATOR(pg_catalog.=) e.extnamespace
JOIN pg_catalog.pg_roles r ON r.oid OPERATOR(pg_catalog.=) c.relowner AND r.rolsuper
WHERE e.extname OPERATOR(pg_catalog.=) 'migrate' AND n.nspname OPERATOR(pg_catalog.=) 'migrate'
  AND c.relname OPERATOR(pg_catalog.=) ANY (ARRAY['migrations', 'events', 'job_queue',
      'job_ranges', 'guard_log'])
