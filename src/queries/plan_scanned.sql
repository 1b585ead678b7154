-- plan(): tuples read by scans of user tables in this transaction so far.
SELECT COALESCE(pg_catalog.sum(seq_tup_read OPERATOR(pg_catalog.+) COALESCE(idx_tup_fetch, 0)), 0)::pg_catalog.int8
FROM pg_catalog.pg_stat_xact_user_tables
WHERE schemaname OPERATOR(pg_catalog.<>) 'migrate'
