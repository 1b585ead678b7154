-- The extension's configuration tables (pg_dump dumps their rows) and its members' count, which
-- pg_dump --binary-upgrade prints only as OIDs.
\pset format unaligned
SELECT extversion, extrelocatable, extnamespace::regnamespace,
       (SELECT array_agg(c::regclass::text ORDER BY c::regclass::text) FROM unnest(extconfig) c) AS config,
       (SELECT array_agg(x ORDER BY x) FROM unnest(extcondition) x) AS conditions
FROM pg_extension WHERE extname = 'migrate';
SELECT count(*) AS members FROM pg_depend
WHERE refclassid = 'pg_extension'::regclass AND deptype = 'e'
  AND refobjid = (SELECT oid FROM pg_extension WHERE extname = 'migrate');
