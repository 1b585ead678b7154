-- Runs after every function is created: status(), the rules view, the event triggers, then
-- privileges.

CREATE FUNCTION migrate.status()
RETURNS TABLE (version text, name text, state text, applied_at timestamptz, applied_by name,
               duration interval, checksum_ok boolean, transactional boolean)
LANGUAGE sql STABLE SET search_path = pg_catalog, pg_temp
BEGIN ATOMIC
    SELECT m.version, m.name, m.state, m.applied_at, m.applied_by, m.duration,
           m.checksum OPERATOR(pg_catalog.=) migrate.checksum(m.up_sql)
             AND (m.applied_checksum IS NULL
                  OR m.applied_checksum OPERATOR(pg_catalog.=) m.checksum),
           m.transactional
    FROM migrate.migrations m
    LEFT JOIN migrate.migration_order() o ON o.version OPERATOR(pg_catalog.=) m.version
    ORDER BY o.position, m.sort_key;
END;
COMMENT ON FUNCTION migrate.status() IS
    'Every registered migration in the registry''s order (requirements first, then version order) with its state and checksum health.';

CREATE VIEW migrate.rule_advice AS SELECT * FROM migrate.rule_advice_list();
COMMENT ON VIEW migrate.rule_advice IS
    'Each guard rule''s safe form in the terms of a migration tool (Django, Alembic, Rails, ...); docs/TOOLS.md.';
CREATE VIEW migrate.rules AS
SELECT r.*,
       CASE WHEN EXISTS (SELECT FROM migrate.rule_advice a WHERE a.rule OPERATOR(pg_catalog.=) r.id)
            THEN 'docs/TOOLS.md#' OPERATOR(pg_catalog.||) r.id END AS tools,
       p.needs_preload, p.active
FROM migrate.rule_list() r CROSS JOIN LATERAL migrate.rule_preload(r.id) p;
COMMENT ON VIEW migrate.rules IS
    'The guard rules: what each detects, the lock and cost, the safe alternative, the versions, where each tool''s form of it is (tools), whether it needs shared_preload_libraries = ''migrate'' and whether it is enforced in this session (active).';

CREATE EVENT TRIGGER migrate_guard_ddl_start ON ddl_command_start
    EXECUTE FUNCTION migrate.guard_ddl_start();
CREATE EVENT TRIGGER migrate_guard_ddl_end ON ddl_command_end
    EXECUTE FUNCTION migrate.guard_ddl_end();
CREATE EVENT TRIGGER migrate_guard_table_rewrite ON table_rewrite
    EXECUTE FUNCTION migrate.guard_table_rewrite();
CREATE EVENT TRIGGER migrate_schema_change_drop ON sql_drop
    EXECUTE FUNCTION migrate.guard_sql_drop();

-- Nobody but the owner writes the registry; migrate_admin reads it and calls the API, whose
-- bookkeeping runs as the owner (see src/pg/security.rs).
REVOKE ALL ON ALL TABLES IN SCHEMA migrate FROM PUBLIC;
REVOKE ALL ON ALL SEQUENCES IN SCHEMA migrate FROM PUBLIC;
REVOKE ALL ON ALL ROUTINES IN SCHEMA migrate FROM PUBLIC;
GRANT USAGE ON SCHEMA migrate TO migrate_admin;
GRANT SELECT ON migrate.migrations, migrate.events, migrate.history, migrate.guard_log,
    migrate.job_queue, migrate.job_ranges, migrate.job_change_log, migrate.adoptions, migrate.schema_change_log,
    migrate.schema_changes TO migrate_admin;
GRANT EXECUTE ON ALL ROUTINES IN SCHEMA migrate TO migrate_admin;
-- Computing a checksum, reading the rules and linting SQL reveal nothing: anyone may.
GRANT USAGE ON SCHEMA migrate TO PUBLIC;
GRANT EXECUTE ON FUNCTION migrate.checksum(text), migrate.rule_list(), migrate.check(text),
    migrate.rule_advice_list(), migrate.rule_preload(text) TO PUBLIC;
GRANT SELECT ON migrate.rules, migrate.rule_advice TO PUBLIC;
-- Jobs run with the privileges of the role that queues them (checked at queue time and before
-- every batch) and only their owner or migrate_admin controls them, so any role may use them.
GRANT EXECUTE ON FUNCTION
    migrate.backfill(regclass, text, text, integer, interval, integer, timestamptz, time, time),
    migrate.pause_job(bigint), migrate.resume_job(bigint), migrate.cancel_job(bigint),
    migrate.alter_job(bigint, interval, integer, integer, interval, timestamptz, time, time)
    TO PUBLIC;
GRANT EXECUTE ON PROCEDURE migrate.wait_job(bigint, interval, interval) TO PUBLIC;
-- The jobs view calls it as its reader; pg_locks shows the same to anyone.
GRANT EXECUTE ON FUNCTION migrate.held_locks() TO PUBLIC;
GRANT SELECT ON migrate.jobs, migrate.job_changes TO PUBLIC;
-- The registry API checks migrate_admin itself (src/registry/execute.rs), so that a role
-- without it gets an error that says what to grant.
GRANT EXECUTE ON FUNCTION migrate.add(text, text, text, text, jsonb), migrate.apply(text),
    migrate.rollback(integer), migrate.rollback_to(text), migrate.baseline(text),
    migrate.resolve(text, text), migrate.remove(text), migrate.validate(), migrate.plan(text),
    migrate.verify(text), migrate.allow(text, text), migrate.adopt(text, boolean, regclass),
    migrate.end_adoption(text, regclass)
    TO PUBLIC;
GRANT EXECUTE ON PROCEDURE migrate.deploy(text, boolean) TO PUBLIC;
-- Expand/contract columns (issue 16): the functions run as their caller, who must have the
-- table owner's privileges (they check it); each reader sees the expansions of the tables it
-- may read.
GRANT SELECT ON migrate.expansion_registry TO migrate_admin;
GRANT SELECT ON migrate.expansions TO PUBLIC;
GRANT EXECUTE ON FUNCTION migrate.expand_column(regclass, name, name, text, text, text),
    migrate.contract_column(regclass, name), migrate.undo_expand_column(regclass, name)
    TO PUBLIC;
