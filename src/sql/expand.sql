-- Expand/contract columns (issue 16): one row per migrate.expand_column() call, written only
-- by the extension's functions (as the registry owner). The table is named by regclass, which
-- pg_dump writes as its name, and the columns by name: a restored database finds them again.

CREATE SEQUENCE migrate.expansion_id_seq AS integer;
CREATE TABLE migrate.expansion_registry (
    id            bigint PRIMARY KEY DEFAULT pg_catalog.nextval('migrate.expansion_id_seq'),
    relid         regclass NOT NULL,
    old_column    name NOT NULL,
    new_column    name NOT NULL,
    -- a type change that keeps the name: new_column is a shadow that takes old_column's name
    -- at contract
    shadow        boolean NOT NULL,
    old_type      text NOT NULL,
    new_type      text NOT NULL,
    -- the migration author's expressions (old -> new, new -> old), one expression each
    up_sql        text NOT NULL,
    down_sql      text NOT NULL,
    -- the sync trigger on the table and its function, in the table's schema
    trigger_name  name NOT NULL,
    function_name name NOT NULL,
    -- the old column's default (pg_get_expr), set on the new column at contract
    old_default   text,
    -- the old column was NOT NULL: CHECK (new IS NOT NULL) NOT VALID until contract
    check_name    name,
    job_id        bigint,
    state         text NOT NULL DEFAULT 'expanded'
        CHECK (state OPERATOR(pg_catalog.=) ANY (ARRAY['expanded', 'contracted', 'undone'])),
    created_by    name NOT NULL,
    created_at    timestamptz NOT NULL DEFAULT pg_catalog.clock_timestamp(),
    finished_at   timestamptz,
    -- the old column's plain indexes (names) and the CREATE INDEX CONCURRENTLY of each one's
    -- equivalent on the new column (named <index>_migrate_new), which the contract waits for
    index_names   text[] NOT NULL DEFAULT '{}',
    index_sql     text[] NOT NULL DEFAULT '{}'
);
-- One open expansion per column.
CREATE UNIQUE INDEX expansion_registry_open ON migrate.expansion_registry (relid, old_column)
    WHERE state OPERATOR(pg_catalog.=) 'expanded';
COMMENT ON TABLE migrate.expansion_registry IS
    'Internal: expand_column() calls and their state. Read migrate.expansions; write through the API.';
SELECT pg_catalog.pg_extension_config_dump('migrate.expansion_registry', '');
SELECT pg_catalog.pg_extension_config_dump('migrate.expansion_id_seq', '');

-- phase: backfilling (its job queued, running or paused), ready (backfill succeeded: contract
-- may run), backfill_failed / backfill_cancelled, contracted, undone. Each reader sees the
-- expansions of the tables it may read.
CREATE VIEW migrate.expansions AS
SELECT e.id, e.relid AS "table", e.old_column, e.new_column, e.old_type, e.new_type, e.job_id,
       CASE WHEN e.state OPERATOR(pg_catalog.<>) 'expanded' THEN e.state
            WHEN j.state OPERATOR(pg_catalog.=) 'succeeded' THEN 'ready'
            WHEN j.state OPERATOR(pg_catalog.=) ANY (ARRAY['failed', 'cancelled'])
                THEN 'backfill_' OPERATOR(pg_catalog.||) j.state
            ELSE 'backfilling' END AS phase,
       e.up_sql, e.down_sql, e.trigger_name, e.created_by, e.created_at, e.finished_at
FROM migrate.expansion_registry e
LEFT JOIN migrate.job_queue j ON j.id OPERATOR(pg_catalog.=) e.job_id
WHERE pg_catalog.has_table_privilege(e.relid, 'SELECT') OR pg_catalog.pg_has_role('migrate_admin', 'USAGE');
COMMENT ON VIEW migrate.expansions IS
    'Each expand_column(): table, old and new column and type, backfill job, phase (backfilling, ready, contracted, undone, ...).';
