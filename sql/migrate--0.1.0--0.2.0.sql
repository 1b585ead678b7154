-- migrate 0.1.0 -> 0.2.0. Runs inside ALTER EXTENSION migrate UPDATE with search_path = migrate.
-- Rules (UPDATING.md): schema-qualify everything, spell operators OPERATOR(pg_catalog.=), no
-- IF NOT EXISTS for the extension's own objects, add columns at the end of a table (a fresh
-- install's column order must match), and keep src/sql/ (the fresh install) in step: the
-- upgrade test diffs an upgraded database's objects against a fresh install.
-- This script may change until 0.2.0 is released; then it is frozen like migrate--0.1.0.sql.

-- migrate.jobs reads the extension's locks through migrate.held_locks(), the definition every
-- other query uses (src/pg/locks.rs), instead of its own reading of pg_locks.
CREATE FUNCTION migrate.held_locks()
    RETURNS TABLE (namespace integer, key bigint, pid integer)
    LANGUAGE c
    AS 'MODULE_PATHNAME', 'held_locks_wrapper';
COMMENT ON FUNCTION migrate.held_locks() IS
    'Internal: the extension''s locks held in this database (namespace, key, pid), for migrate.jobs.';
-- As in a fresh install: finalize.sql revokes every routine from PUBLIC, grants them all to
-- migrate_admin, then this one to PUBLIC again (the jobs view calls it as its reader).
REVOKE ALL ON FUNCTION migrate.held_locks() FROM PUBLIC;
GRANT EXECUTE ON FUNCTION migrate.held_locks() TO migrate_admin;
GRANT EXECUTE ON FUNCTION migrate.held_locks() TO PUBLIC;

-- Migration jobs count their statements in columns of their own, not in the backfill's row
-- counters; the jobs view shows them last and NULL row counters for migration jobs. Jobs of
-- 0.1.0 move their counts over, so an upgraded database shows the same progress.
ALTER TABLE migrate.job_queue
    ADD COLUMN statements_done bigint,
    ADD COLUMN statements_total bigint;
UPDATE migrate.job_queue
SET statements_done = rows_done, statements_total = rows_estimated,
    rows_done = 0, rows_updated = 0, rows_estimated = NULL
WHERE kind OPERATOR(pg_catalog.=) 'migration';

-- The jobs view, recreated for both changes above (new columns last).
CREATE OR REPLACE VIEW migrate.jobs AS
WITH held AS (SELECT h.namespace, h.key, h.pid FROM migrate.held_locks() h)
SELECT j.id,
       j.kind,
       j.table_name,
       j.version OPERATOR(pg_catalog.||) ' (' OPERATOR(pg_catalog.||) j.direction
           OPERATOR(pg_catalog.||) ')' AS migration,
       j.state,
       -- A migration job counts statements (the last columns), not rows.
       CASE WHEN j.kind OPERATOR(pg_catalog.=) 'backfill' THEN j.rows_done END AS rows_done,
       CASE WHEN j.kind OPERATOR(pg_catalog.=) 'backfill' THEN j.rows_estimated END AS rows_estimated,
       CASE WHEN j.state OPERATOR(pg_catalog.=) 'succeeded' THEN 100::numeric
            WHEN j.kind OPERATOR(pg_catalog.=) 'migration'
                 AND j.statements_total OPERATOR(pg_catalog.>) 0
            THEN pg_catalog.round(LEAST(100::numeric,
                   100::numeric OPERATOR(pg_catalog.*) j.statements_done
                   OPERATOR(pg_catalog./) j.statements_total), 1)
            WHEN j.kind OPERATOR(pg_catalog.=) 'backfill'
                 AND j.rows_estimated OPERATOR(pg_catalog.>) 0
            THEN pg_catalog.round(LEAST(100::numeric,
                   100::numeric OPERATOR(pg_catalog.*) j.rows_done
                   OPERATOR(pg_catalog./) j.rows_estimated), 1)
       END AS percent_done,
       CASE WHEN j.kind OPERATOR(pg_catalog.=) 'backfill' THEN j.rows_updated END AS rows_updated,
       pg_catalog.round(j.rate::numeric, 0) AS rate,
       CASE WHEN j.state OPERATOR(pg_catalog.=) 'running' AND j.rate OPERATOR(pg_catalog.>) 0
            THEN pg_catalog.make_interval(secs => GREATEST(0::double precision,
                   (j.rows_estimated OPERATOR(pg_catalog.-) j.rows_done)::double precision
                   OPERATOR(pg_catalog./) j.rate))
       END AS eta,
       j.current_batch_size AS batch_size,
       j.batches,
       j.workers,
       COALESCE(aw.n, 0) AS active_workers,
       CASE WHEN v.visible THEN j.last_key END AS last_key,
       CASE WHEN w.pid IS NULL AND j.state OPERATOR(pg_catalog.=) 'running'
            THEN 'interrupted: no worker is running this job; it resumes with migrate.resume_job('
                 OPERATOR(pg_catalog.||) j.id OPERATOR(pg_catalog.||)
                 ') or at server start when migrate is in shared_preload_libraries'
            WHEN w.pid IS NULL AND j.state OPERATOR(pg_catalog.=) 'queued'
            THEN COALESCE(CASE WHEN v.visible THEN j.note END,
                          'waiting for a worker (migrate.max_job_workers)')
            WHEN v.visible THEN j.note
       END AS note,
       CASE WHEN j.error_sqlstate IS NOT NULL AND v.visible
            THEN j.error_sqlstate OPERATOR(pg_catalog.||) ': ' OPERATOR(pg_catalog.||) j.error_message
            WHEN j.error_sqlstate IS NOT NULL THEN j.error_sqlstate
       END AS error,
       j.owner_name AS owner,
       w.pid AS worker_pid,
       CASE WHEN v.visible THEN j.set_sql END AS set_sql,
       CASE WHEN v.visible THEN j.where_sql END AS where_sql,
       j.created_at,
       j.started_at,
       j.updated_at,
       j.finished_at,
       j.statements_done,
       j.statements_total
FROM migrate.job_queue j
CROSS JOIN LATERAL (SELECT pg_catalog.pg_has_role(j.owner_oid, 'USAGE')
                           OR pg_catalog.pg_has_role('migrate_admin', 'USAGE') AS visible) v
LEFT JOIN held w
       ON w.namespace OPERATOR(pg_catalog.=) 1
      AND w.key OPERATOR(pg_catalog.=) j.id
-- Workers walking one of the job's ranges hold the range's lock.
LEFT JOIN (SELECT r.job_id, pg_catalog.count(*) AS n
           FROM migrate.job_ranges r
           JOIN held l
             ON l.namespace OPERATOR(pg_catalog.=) 2
            AND l.key OPERATOR(pg_catalog.=) r.id
           GROUP BY r.job_id) aw
       ON aw.job_id OPERATOR(pg_catalog.=) j.id;
COMMENT ON VIEW migrate.jobs IS
    'Background jobs: state, progress, rate, ETA, checkpoint, errors, owner and worker.';
GRANT SELECT ON migrate.jobs TO PUBLIC;

-- migrate.remove(version): unregisters a pending migration added by mistake.
CREATE FUNCTION migrate."remove"(
	"version" TEXT /* Option < & str > */
) RETURNS void
VOLATILE
LANGUAGE c /* Rust */
AS 'MODULE_PATHNAME', 'remove_wrapper';
REVOKE ALL ON FUNCTION migrate.remove(text) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION migrate.remove(text) TO migrate_admin;
GRANT EXECUTE ON FUNCTION migrate.remove(text) TO PUBLIC;

-- Repeatable migrations (Flyway's R__): run again whenever their script changes.
ALTER TABLE migrate.migrations ADD COLUMN repeatable boolean NOT NULL DEFAULT false;

-- Each guard rule's safe form in each migration tool's terms (docs/TOOLS.md), and a link to it
-- from migrate.rules.
CREATE FUNCTION migrate."rule_advice_list"() RETURNS TABLE (
	"rule" TEXT,  /* alloc::string::String */
	"tool" TEXT,  /* alloc::string::String */
	"advice" TEXT  /* alloc::string::String */
)
IMMUTABLE STRICT PARALLEL SAFE
LANGUAGE c /* Rust */
AS 'MODULE_PATHNAME', 'rule_advice_list_wrapper';
CREATE VIEW migrate.rule_advice AS SELECT * FROM migrate.rule_advice_list();
COMMENT ON VIEW migrate.rule_advice IS
    'Each guard rule''s safe form in the terms of a migration tool (Django, Alembic, Rails, ...); docs/TOOLS.md.';
CREATE OR REPLACE VIEW migrate.rules AS
SELECT r.*,
       CASE WHEN EXISTS (SELECT FROM migrate.rule_advice a WHERE a.rule OPERATOR(pg_catalog.=) r.id)
            THEN 'docs/TOOLS.md#' OPERATOR(pg_catalog.||) r.id END AS tools
FROM migrate.rule_list() r;
COMMENT ON VIEW migrate.rules IS
    'The guard rules: what each detects, the lock and cost, the safe alternative, the versions, and where each tool''s form of it is (tools).';
REVOKE ALL ON FUNCTION migrate.rule_advice_list() FROM PUBLIC;
GRANT EXECUTE ON FUNCTION migrate.rule_advice_list() TO migrate_admin;
GRANT EXECUTE ON FUNCTION migrate.rule_advice_list() TO PUBLIC;
GRANT SELECT ON migrate.rule_advice TO PUBLIC;

-- deploy(allow_out_of_order => true): the permission as an argument, since a procedure that
-- commits cannot see SET LOCAL and a session SET leaks through a transaction-mode pooler.
DROP PROCEDURE migrate.deploy(text);
CREATE PROCEDURE migrate.deploy(target text DEFAULT NULL, allow_out_of_order boolean DEFAULT false)
    LANGUAGE c
    AS 'MODULE_PATHNAME', 'migrate_deploy';
COMMENT ON PROCEDURE migrate.deploy(text, boolean) IS
    'Moves the database to target (default: newest), one committed migration at a time; non-transactional ones run top-level in a worker; lock timeouts are retried.';
REVOKE ALL ON PROCEDURE migrate.deploy(text, boolean) FROM PUBLIC;
GRANT EXECUTE ON PROCEDURE migrate.deploy(text, boolean) TO migrate_admin;
GRANT EXECUTE ON PROCEDURE migrate.deploy(text, boolean) TO PUBLIC;

-- status() lists migrations in the registry's order (requirements first, then version order),
-- which migrate.migration_order() computes in Rust (migrate_core::route::Graph).
CREATE FUNCTION migrate."migration_order"() RETURNS TABLE (
	"version" TEXT,  /* String */
	"position" INT  /* i32 */
)
STRICT STABLE
LANGUAGE c /* Rust */
AS 'MODULE_PATHNAME', 'migration_order_wrapper';
REVOKE ALL ON FUNCTION migrate.migration_order() FROM PUBLIC;
GRANT EXECUTE ON FUNCTION migrate.migration_order() TO migrate_admin;
CREATE OR REPLACE FUNCTION migrate.status()
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

-- Databases adopted from another tool (0.2.0): migrate.adopt() records which tool's table it
-- read; until migrate.end_adoption() ends it, validate() reports where that table and the
-- registry drift apart. Names, not OIDs: they survive pg_dump/pg_restore.
CREATE SEQUENCE migrate.adoption_id_seq;
CREATE TABLE migrate.adoptions (
    id           bigint PRIMARY KEY DEFAULT pg_catalog.nextval('migrate.adoption_id_seq'),
    tool         text NOT NULL,
    table_schema name NOT NULL,
    table_name   name NOT NULL,
    adopted_at   timestamptz NOT NULL,
    adopted_by   name NOT NULL,
    run_id       bigint NOT NULL,
    ended_at     timestamptz,
    ended_by     name
);
COMMENT ON TABLE migrate.adoptions IS
    'Which tool''s table each adoption read; written only by migrate.adopt() and migrate.end_adoption().';
CREATE UNIQUE INDEX adoptions_in_force ON migrate.adoptions (tool, table_schema, table_name)
    WHERE ended_at IS NULL;
SELECT pg_catalog.pg_extension_config_dump('migrate.adoptions', '');
SELECT pg_catalog.pg_extension_config_dump('migrate.adoption_id_seq', '');
REVOKE ALL ON migrate.adoptions FROM PUBLIC;
REVOKE ALL ON SEQUENCE migrate.adoption_id_seq FROM PUBLIC;
GRANT SELECT ON migrate.adoptions TO migrate_admin;

-- migrate.adopt(tool, dry_run, tool_table) and migrate.end_adoption(tool, tool_table). Like the
-- other registry functions they check migrate_admin themselves (finalize.sql's grants).
CREATE FUNCTION migrate.adopt(tool text, dry_run boolean DEFAULT false,
                              tool_table regclass DEFAULT NULL)
RETURNS TABLE (version text, name text, tool_says text, outcome text,
               applied_at timestamptz, detail text)
VOLATILE LANGUAGE c AS 'MODULE_PATHNAME', 'adopt_wrapper';
COMMENT ON FUNCTION migrate.adopt(text, boolean, regclass) IS
    'Takes over a database another tool migrated: marks applied exactly the registered migrations that tool''s table lists as applied, or changes nothing if they disagree.';
CREATE FUNCTION migrate.end_adoption(tool text, tool_table regclass DEFAULT NULL)
RETURNS integer
VOLATILE LANGUAGE c AS 'MODULE_PATHNAME', 'end_adoption_wrapper';
COMMENT ON FUNCTION migrate.end_adoption(text, regclass) IS
    'Says the tool a database was adopted from no longer migrates it: validate() stops reporting drift against its table.';
REVOKE ALL ON FUNCTION migrate.adopt(text, boolean, regclass), migrate.end_adoption(text, regclass)
    FROM PUBLIC;
GRANT EXECUTE ON FUNCTION migrate.adopt(text, boolean, regclass), migrate.end_adoption(text, regclass)
    TO migrate_admin;
GRANT EXECUTE ON FUNCTION migrate.adopt(text, boolean, regclass), migrate.end_adoption(text, regclass)
    TO PUBLIC;

-- migrate.schema_changes (0.2.0): every DDL statement that commits in the database, written by
-- the ddl_command_end trigger in the statement's own transaction (src/guard/schema_changes.rs).
-- Nobody may change a row; the extension owner may DELETE old ones to keep it small.
-- When each history row was written, for validate()'s schema drift (NULL for older rows).
ALTER TABLE migrate.events ADD COLUMN recorded_at timestamptz;
ALTER TABLE migrate.events ALTER COLUMN recorded_at SET DEFAULT pg_catalog.clock_timestamp();
CREATE SEQUENCE migrate.schema_change_id_seq;
CREATE TABLE migrate.schema_change_log (
    id                bigint PRIMARY KEY DEFAULT pg_catalog.nextval('migrate.schema_change_id_seq'),
    at                timestamptz NOT NULL DEFAULT pg_catalog.clock_timestamp(),
    transaction_id    xid8 NOT NULL DEFAULT pg_catalog.pg_current_xact_id(),
    role              name NOT NULL,
    session_role      name NOT NULL,
    client_addr       inet,
    application_name  text,
    backend_pid       integer NOT NULL,
    command_tag       text NOT NULL,
    objects           text[] NOT NULL,
    migration_version text
);
COMMENT ON TABLE migrate.schema_change_log IS
    'Every committed DDL statement; read it through migrate.schema_changes.';
CREATE FUNCTION migrate.schema_change_log_unchanged() RETURNS trigger
LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS $fn$
BEGIN
    RAISE EXCEPTION 'migrate.schema_change_log rows cannot be changed'
        USING ERRCODE = 'insufficient_privilege',
              HINT = 'The record of schema changes is evidence; the extension owner may DELETE old rows.';
END
$fn$;
CREATE TRIGGER schema_change_log_unchanged BEFORE UPDATE ON migrate.schema_change_log
    FOR EACH ROW EXECUTE FUNCTION migrate.schema_change_log_unchanged();
SELECT pg_catalog.pg_extension_config_dump('migrate.schema_change_log', '');
SELECT pg_catalog.pg_extension_config_dump('migrate.schema_change_id_seq', '');
CREATE VIEW migrate.schema_changes AS
SELECT l.id, l.at, l.transaction_id, l.role, l.session_role, l.client_addr, l.application_name,
       l.backend_pid, l.command_tag, l.objects, l.migration_version,
       l.migration_version IS NULL AS drift
FROM migrate.schema_change_log l;
COMMENT ON VIEW migrate.schema_changes IS
    'Every DDL statement that committed: who, from where, when, what, and the migration it belonged to (drift: none).';
CREATE FUNCTION migrate.guard_sql_drop() RETURNS event_trigger
    LANGUAGE c
    AS 'MODULE_PATHNAME', 'migrate_guard_sql_drop';
CREATE EVENT TRIGGER migrate_schema_change_drop ON sql_drop
    EXECUTE FUNCTION migrate.guard_sql_drop();
REVOKE ALL ON migrate.schema_change_log, migrate.schema_changes FROM PUBLIC;
REVOKE ALL ON SEQUENCE migrate.schema_change_id_seq FROM PUBLIC;
REVOKE ALL ON FUNCTION migrate.schema_change_log_unchanged(), migrate.guard_sql_drop() FROM PUBLIC;
GRANT SELECT ON migrate.schema_change_log, migrate.schema_changes TO migrate_admin;
GRANT EXECUTE ON FUNCTION migrate.schema_change_log_unchanged(), migrate.guard_sql_drop()
    TO migrate_admin;
-- plan() gains held_locks and held_ms (issue 15): locks that block writes on big tables and how
-- long the migration then kept them. A new result type is a new function: dropped and
-- created, with the privileges finalize.sql gives it in a fresh install.
DROP FUNCTION migrate.plan(text);
CREATE FUNCTION migrate.plan(target text DEFAULT NULL)
RETURNS TABLE (version text, direction text, statement integer, sql text, executed boolean,
               locks text[], rewrites text[], rows_scanned bigint, guard text[],
               duration_ms double precision, error text, held_locks text[],
               held_ms double precision)
VOLATILE LANGUAGE c AS 'MODULE_PATHNAME', 'plan_v2_wrapper';
REVOKE ALL ON FUNCTION migrate.plan(text) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION migrate.plan(text) TO migrate_admin;
GRANT EXECUTE ON FUNCTION migrate.plan(text) TO PUBLIC;
-- The ProcessUtility hook (issue 15): migrate.rules says which rules need
-- shared_preload_libraries = 'migrate' and whether each is enforced in this session. A
-- function of its own: the 0.1.0 view reads rule_list() with its 0.1.0 columns.
CREATE FUNCTION migrate."rule_preload"(
	"rule" TEXT /* &str */
) RETURNS TABLE (
	"needs_preload" bool,  /* bool */
	"active" bool  /* bool */
)
STABLE STRICT PARALLEL SAFE
LANGUAGE c /* Rust */
AS 'MODULE_PATHNAME', 'rule_preload_wrapper';
CREATE OR REPLACE VIEW migrate.rules AS
SELECT r.*,
       CASE WHEN EXISTS (SELECT FROM migrate.rule_advice a WHERE a.rule OPERATOR(pg_catalog.=) r.id)
            THEN 'docs/TOOLS.md#' OPERATOR(pg_catalog.||) r.id END AS tools,
       p.needs_preload, p.active
FROM migrate.rule_list() r CROSS JOIN LATERAL migrate.rule_preload(r.id) p;
COMMENT ON VIEW migrate.rules IS
    'The guard rules: what each detects, the lock and cost, the safe alternative, the versions, where each tool''s form of it is (tools), whether it needs shared_preload_libraries = ''migrate'' and whether it is enforced in this session (active).';
REVOKE ALL ON FUNCTION migrate.rule_preload(text) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION migrate.rule_preload(text) TO migrate_admin;
GRANT EXECUTE ON FUNCTION migrate.rule_preload(text) TO PUBLIC;
-- Live job control (issue 17): migrate.alter_job() changes a backfill's batch_time,
-- batch_size, workers and pause from its next batch on; every change is logged in
-- migrate.job_change_log, shown by migrate.job_changes. A job of 0.1.0 has no batch_time of
-- its own (NULL: migrate.backfill_batch_time), as a fresh one.
ALTER TABLE migrate.job_queue ADD COLUMN batch_time interval;
-- migrate.jobs shows each backfill's time efficiency (time in batches / wall time), the
-- duration its adaptive batches aim for, and its last 20 batches (size, rows, ms). Jobs of
-- 0.1.0 start with none counted.
ALTER TABLE migrate.job_queue
    ADD COLUMN batch_ms double precision NOT NULL DEFAULT 0,
    ADD COLUMN batch_history jsonb NOT NULL DEFAULT '[]';
-- Start times (issue 17): a backfill runs no batch before start_after, nor outside its daily
-- window [window_start, window_end) in window_tz (the TimeZone it was given in).
ALTER TABLE migrate.job_queue
    ADD COLUMN start_after timestamptz,
    ADD COLUMN window_start time,
    ADD COLUMN window_end time,
    ADD COLUMN window_tz text;
CREATE SEQUENCE migrate.job_change_id_seq;
CREATE TABLE migrate.job_change_log (
    id         bigint PRIMARY KEY DEFAULT pg_catalog.nextval('migrate.job_change_id_seq'),
    job_id     bigint NOT NULL REFERENCES migrate.job_queue (id) ON DELETE CASCADE,
    changed_at timestamptz NOT NULL DEFAULT pg_catalog.clock_timestamp(),
    changed_by name NOT NULL,
    setting    text NOT NULL,
    old_value  text,
    new_value  text
);
COMMENT ON TABLE migrate.job_change_log IS
    'Internal: the changes alter_job() made to jobs. Read migrate.job_changes.';
SELECT pg_catalog.pg_extension_config_dump('migrate.job_change_log', '');
SELECT pg_catalog.pg_extension_config_dump('migrate.job_change_id_seq', '');
CREATE VIEW migrate.job_changes AS
SELECT c.id, c.job_id, c.changed_at, c.changed_by, c.setting, c.old_value, c.new_value
FROM migrate.job_change_log c
JOIN migrate.job_queue j ON j.id OPERATOR(pg_catalog.=) c.job_id
WHERE pg_catalog.pg_has_role(j.owner_oid, 'USAGE')
   OR pg_catalog.pg_has_role('migrate_admin', 'USAGE');
COMMENT ON VIEW migrate.job_changes IS
    'Every change migrate.alter_job() made to a job: who, when, which setting, old and new value.';
CREATE FUNCTION migrate.alter_job(job_id bigint, batch_time interval DEFAULT NULL,
                                  batch_size integer DEFAULT NULL, workers integer DEFAULT NULL,
                                  pause interval DEFAULT NULL,
                                  start_after timestamptz DEFAULT NULL,
                                  window_start time DEFAULT NULL, window_end time DEFAULT NULL)
RETURNS void VOLATILE LANGUAGE c AS 'MODULE_PATHNAME', 'alter_job_wrapper';
COMMENT ON FUNCTION migrate.alter_job(bigint, interval, integer, integer, interval, timestamptz, time, time) IS
    'Changes a backfill job''s batch_time, batch_size (0: adaptive), workers, pause, start_after or window from its next batch on; logged in migrate.job_changes.';
-- As finalize.sql does in a fresh install.
REVOKE ALL ON migrate.job_change_log, migrate.job_changes FROM PUBLIC;
REVOKE ALL ON SEQUENCE migrate.job_change_id_seq FROM PUBLIC;
GRANT SELECT ON migrate.job_change_log TO migrate_admin;
GRANT SELECT ON migrate.job_changes TO PUBLIC;
REVOKE ALL ON FUNCTION migrate.alter_job(bigint, interval, integer, integer, interval, timestamptz, time, time) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION migrate.alter_job(bigint, interval, integer, integer, interval, timestamptz, time, time)
    TO migrate_admin;
GRANT EXECUTE ON FUNCTION migrate.alter_job(bigint, interval, integer, integer, interval, timestamptz, time, time)
    TO PUBLIC;
-- The jobs view, recreated for the three columns above (new columns last).
CREATE OR REPLACE VIEW migrate.jobs AS
WITH held AS (SELECT h.namespace, h.key, h.pid FROM migrate.held_locks() h)
SELECT j.id,
       j.kind,
       j.table_name,
       j.version OPERATOR(pg_catalog.||) ' (' OPERATOR(pg_catalog.||) j.direction
           OPERATOR(pg_catalog.||) ')' AS migration,
       j.state,
       -- A migration job counts statements (the last columns), not rows.
       CASE WHEN j.kind OPERATOR(pg_catalog.=) 'backfill' THEN j.rows_done END AS rows_done,
       CASE WHEN j.kind OPERATOR(pg_catalog.=) 'backfill' THEN j.rows_estimated END AS rows_estimated,
       CASE WHEN j.state OPERATOR(pg_catalog.=) 'succeeded' THEN 100::numeric
            WHEN j.kind OPERATOR(pg_catalog.=) 'migration'
                 AND j.statements_total OPERATOR(pg_catalog.>) 0
            THEN pg_catalog.round(LEAST(100::numeric,
                   100::numeric OPERATOR(pg_catalog.*) j.statements_done
                   OPERATOR(pg_catalog./) j.statements_total), 1)
            WHEN j.kind OPERATOR(pg_catalog.=) 'backfill'
                 AND j.rows_estimated OPERATOR(pg_catalog.>) 0
            THEN pg_catalog.round(LEAST(100::numeric,
                   100::numeric OPERATOR(pg_catalog.*) j.rows_done
                   OPERATOR(pg_catalog./) j.rows_estimated), 1)
       END AS percent_done,
       CASE WHEN j.kind OPERATOR(pg_catalog.=) 'backfill' THEN j.rows_updated END AS rows_updated,
       pg_catalog.round(j.rate::numeric, 0) AS rate,
       CASE WHEN j.state OPERATOR(pg_catalog.=) 'running' AND j.rate OPERATOR(pg_catalog.>) 0
            THEN pg_catalog.make_interval(secs => GREATEST(0::double precision,
                   (j.rows_estimated OPERATOR(pg_catalog.-) j.rows_done)::double precision
                   OPERATOR(pg_catalog./) j.rate))
       END AS eta,
       j.current_batch_size AS batch_size,
       j.batches,
       j.workers,
       COALESCE(aw.n, 0) AS active_workers,
       CASE WHEN v.visible THEN j.last_key END AS last_key,
       CASE WHEN w.pid IS NULL AND j.state OPERATOR(pg_catalog.=) 'running'
            THEN 'interrupted: no worker is running this job; it resumes with migrate.resume_job('
                 OPERATOR(pg_catalog.||) j.id OPERATOR(pg_catalog.||)
                 ') or at server start when migrate is in shared_preload_libraries'
            WHEN w.pid IS NULL AND j.state OPERATOR(pg_catalog.=) 'queued'
            THEN COALESCE(CASE WHEN v.visible THEN j.note END,
                          'waiting for a worker (migrate.max_job_workers)')
            WHEN v.visible THEN j.note
       END AS note,
       CASE WHEN j.error_sqlstate IS NOT NULL AND v.visible
            THEN j.error_sqlstate OPERATOR(pg_catalog.||) ': ' OPERATOR(pg_catalog.||) j.error_message
            WHEN j.error_sqlstate IS NOT NULL THEN j.error_sqlstate
       END AS error,
       j.owner_name AS owner,
       w.pid AS worker_pid,
       CASE WHEN v.visible THEN j.set_sql END AS set_sql,
       CASE WHEN v.visible THEN j.where_sql END AS where_sql,
       j.created_at,
       j.started_at,
       j.updated_at,
       j.finished_at,
       j.statements_done,
       j.statements_total,
       -- GitLab's time efficiency: time in batches over wall time since the job started
       -- (summed over workers, so up to the number of workers).
       CASE WHEN j.kind OPERATOR(pg_catalog.=) 'backfill' AND j.started_at IS NOT NULL
            THEN pg_catalog.round((j.batch_ms OPERATOR(pg_catalog./) GREATEST(1::double precision,
                   1000 OPERATOR(pg_catalog.*) EXTRACT(epoch FROM
                   COALESCE(j.finished_at, pg_catalog.clock_timestamp())
                   OPERATOR(pg_catalog.-) j.started_at)::double precision))::numeric, 2)
       END AS time_efficiency,
       -- The duration adaptive batches aim for (NULL when the batch size is pinned).
       CASE WHEN j.kind OPERATOR(pg_catalog.=) 'backfill' AND j.batch_size IS NULL
            THEN COALESCE(j.batch_time, pg_catalog.current_setting('migrate.backfill_batch_time', true)::interval)
       END AS batch_time,
       CASE WHEN j.kind OPERATOR(pg_catalog.=) 'backfill' THEN j.batch_history END AS batch_history
FROM migrate.job_queue j
CROSS JOIN LATERAL (SELECT pg_catalog.pg_has_role(j.owner_oid, 'USAGE')
                           OR pg_catalog.pg_has_role('migrate_admin', 'USAGE') AS visible) v
LEFT JOIN held w
       ON w.namespace OPERATOR(pg_catalog.=) 1
      AND w.key OPERATOR(pg_catalog.=) j.id
-- Workers walking one of the job's ranges hold the range's lock.
LEFT JOIN (SELECT r.job_id, pg_catalog.count(*) AS n
           FROM migrate.job_ranges r
           JOIN held l
             ON l.namespace OPERATOR(pg_catalog.=) 2
            AND l.key OPERATOR(pg_catalog.=) r.id
           GROUP BY r.job_id) aw
       ON aw.job_id OPERATOR(pg_catalog.=) j.id;
COMMENT ON VIEW migrate.jobs IS
    'Background jobs: state, progress, rate, ETA, checkpoint, errors, owner and worker.';
GRANT SELECT ON migrate.jobs TO PUBLIC;
-- wait_job() gains progress_every (issue 17): a NOTICE with the job's progress, rate and ETA
-- at that interval (NULL, the default: none). A new signature: dropped and created, with the
-- privileges finalize.sql gives it. The library reads the third argument only when the
-- procedure declares it, so a database not yet updated keeps calling the same symbol.
DROP PROCEDURE migrate.wait_job(bigint, interval);
CREATE PROCEDURE migrate.wait_job(job_id bigint, timeout interval DEFAULT NULL,
                                  progress_every interval DEFAULT NULL)
    LANGUAGE c
    AS 'MODULE_PATHNAME', 'migrate_wait_job';
COMMENT ON PROCEDURE migrate.wait_job(bigint, interval, interval) IS
    'Waits until a job ends (raises if it failed or was cancelled) or the timeout passes; every progress_every, a NOTICE with its progress, rate and ETA.';
REVOKE ALL ON PROCEDURE migrate.wait_job(bigint, interval, interval) FROM PUBLIC;
GRANT EXECUTE ON PROCEDURE migrate.wait_job(bigint, interval, interval) TO migrate_admin;
GRANT EXECUTE ON PROCEDURE migrate.wait_job(bigint, interval, interval) TO PUBLIC;
-- backfill() gains start_after, window_start and window_end (issue 17): a new signature, so
-- dropped and created with its privileges, and a new C symbol (backfill_v2_wrapper): the
-- library keeps backfill_wrapper, the 0.1.0 signature, for databases not yet updated.
DROP FUNCTION migrate.backfill(regclass, text, text, integer, interval, integer);
CREATE FUNCTION migrate.backfill(tbl regclass, set_sql text, where_sql text DEFAULT NULL,
                                 batch_size integer DEFAULT NULL, pause interval DEFAULT NULL,
                                 workers integer DEFAULT NULL,
                                 start_after timestamptz DEFAULT NULL,
                                 window_start time DEFAULT NULL, window_end time DEFAULT NULL)
RETURNS bigint VOLATILE LANGUAGE c AS 'MODULE_PATHNAME', 'backfill_v2_wrapper';
COMMENT ON FUNCTION migrate.backfill(regclass, text, text, integer, interval, integer, timestamptz, time, time) IS
    'Queues a batched UPDATE tbl SET set_sql WHERE where_sql, run by background workers after commit (after start_after, inside the daily window); returns the job id.';
REVOKE ALL ON FUNCTION migrate.backfill(regclass, text, text, integer, interval, integer, timestamptz, time, time) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION migrate.backfill(regclass, text, text, integer, interval, integer, timestamptz, time, time)
    TO migrate_admin;
GRANT EXECUTE ON FUNCTION migrate.backfill(regclass, text, text, integer, interval, integer, timestamptz, time, time)
    TO PUBLIC;

-- Safe-by-default deploys (issue 16, "Safe by default"): the migration option {"safe": true}
-- or {"safe": false}; NULL (no option) leaves it to migrate.safe_by_default.
-- safe_script: the script safe mode last ran for it in a worker.
ALTER TABLE migrate.migrations ADD COLUMN safe boolean;
ALTER TABLE migrate.migrations ADD COLUMN safe_script text;


-- ==== Expand/contract columns (issue 16): migrate.expansion_registry, migrate.expansions,
-- expand_column(), contract_column(), undo_expand_column(); as src/sql/expand.sql and the
-- grants finalize.sql gives them in a fresh install.

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
CREATE FUNCTION migrate.expand_column(tbl regclass, col name, new_name name DEFAULT NULL,
                                      new_type text DEFAULT NULL, up text DEFAULT NULL,
                                      down text DEFAULT NULL)
RETURNS bigint VOLATILE LANGUAGE c AS 'MODULE_PATHNAME', 'expand_column_wrapper';
COMMENT ON FUNCTION migrate.expand_column(regclass, name, name, text, text, text) IS
    'Expand: adds new_name (or a shadow column of new_type), a trigger that keeps it and col in sync (up: old to new, down: new to old), and a backfill job for existing rows; returns the job id.';
CREATE FUNCTION migrate.contract_column(tbl regclass, col name)
RETURNS void VOLATILE LANGUAGE c AS 'MODULE_PATHNAME', 'contract_column_wrapper';
COMMENT ON FUNCTION migrate.contract_column(regclass, name) IS
    'Contract: once the expansion''s backfill succeeded, drops the sync trigger and the old column col, moves the name to the new column (a type change), promotes its NOT NULL check and sets its default.';
CREATE FUNCTION migrate.undo_expand_column(tbl regclass, col name)
RETURNS void VOLATILE LANGUAGE c AS 'MODULE_PATHNAME', 'undo_expand_column_wrapper';
COMMENT ON FUNCTION migrate.undo_expand_column(regclass, name) IS
    'Undoes an open expand_column() of col: cancels its backfill job and drops the sync trigger, its function and the new column.';
REVOKE ALL ON migrate.expansion_registry, migrate.expansions FROM PUBLIC;
REVOKE ALL ON SEQUENCE migrate.expansion_id_seq FROM PUBLIC;
GRANT SELECT ON migrate.expansion_registry TO migrate_admin;
GRANT SELECT ON migrate.expansions TO PUBLIC;
REVOKE ALL ON FUNCTION migrate.expand_column(regclass, name, name, text, text, text),
    migrate.contract_column(regclass, name), migrate.undo_expand_column(regclass, name)
    FROM PUBLIC;
GRANT EXECUTE ON FUNCTION migrate.expand_column(regclass, name, name, text, text, text),
    migrate.contract_column(regclass, name), migrate.undo_expand_column(regclass, name)
    TO migrate_admin;
GRANT EXECUTE ON FUNCTION migrate.expand_column(regclass, name, name, text, text, text),
    migrate.contract_column(regclass, name), migrate.undo_expand_column(regclass, name)
    TO PUBLIC;
