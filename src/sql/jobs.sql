-- Background jobs (backfills): the queue the workers read and checkpoint, and the jobs view.
-- Only the extension's functions write migrate.job_queue (as its owner); a batch and its
-- checkpoint commit in the same transaction, which is what makes a job resumable exactly once.

-- Job ids double as lock keys (a worker holds one per job), so they stay in int4 range.
CREATE SEQUENCE migrate.job_id_seq AS integer;
CREATE TABLE migrate.job_queue (
    id                 bigint PRIMARY KEY DEFAULT pg_catalog.nextval('migrate.job_id_seq'),
    kind               text NOT NULL
        CHECK (kind OPERATOR(pg_catalog.=) ANY (ARRAY['backfill', 'migration'])),
    -- backfill: the table and the SET
    relid              regclass,
    table_name         text,
    set_sql            text,
    where_sql          text,
    -- The key the job walks in order (quoted column names and their types), or NULL for a
    -- table without one: then where_sql must become false for every row the SET updates.
    key_columns        text[],
    key_types          text[],
    search_path        text NOT NULL,
    batch_size         integer CHECK (batch_size > 0),
    current_batch_size integer NOT NULL,
    -- workers that walk the job's key ranges at the same time (see migrate.job_ranges)
    workers            integer NOT NULL DEFAULT 1 CHECK (workers > 0),
    pause              interval NOT NULL DEFAULT '0',
    state              text NOT NULL DEFAULT 'queued'
        CHECK (state OPERATOR(pg_catalog.=) ANY
               (ARRAY['queued', 'running', 'paused', 'succeeded', 'failed', 'cancelled'])),
    rows_done          bigint NOT NULL DEFAULT 0,
    rows_updated       bigint NOT NULL DEFAULT 0,
    rows_estimated     bigint,
    batches            bigint NOT NULL DEFAULT 0,
    rate               double precision,
    -- the end key of the most recent batch (each range keeps its own checkpoint)
    last_key           text[],
    upper_key          text[],
    note               text,
    error_sqlstate     text,
    error_message      text,
    owner_oid          oid NOT NULL,
    owner_name         name NOT NULL,
    allow_superuser    boolean NOT NULL DEFAULT false,
    -- migration (a non-transactional script run top-level by deploy()); its statements are
    -- counted in statements_done and statements_total (at the end: added in 0.2.0)
    version            text,
    direction          text CHECK (direction OPERATOR(pg_catalog.=) ANY (ARRAY['up', 'down'])),
    script             text,
    -- the statement being run (1-based): after a crash it may have committed or not
    current_statement  integer,
    run_id             bigint,
    requested_by       name,
    -- the deploying session's lock_timeout, lock_retries and lock_retry_delay (ms)
    settings           jsonb NOT NULL DEFAULT '{}',
    created_at         timestamptz NOT NULL DEFAULT pg_catalog.clock_timestamp(),
    started_at         timestamptz,
    updated_at         timestamptz NOT NULL DEFAULT pg_catalog.clock_timestamp(),
    finished_at        timestamptz,
    -- migration: the statements done (committed) and the script's statement count
    statements_done    bigint,
    statements_total   bigint,
    -- backfill: the duration an adaptive batch aims for; NULL: migrate.backfill_batch_time
    -- (added in 0.2.0, set by alter_job())
    batch_time         interval,
    -- backfill: time spent in batches (ms, summed over workers; the jobs view's
    -- time_efficiency) and the last 20 batches, newest last: {"size", "rows", "ms"}
    batch_ms           double precision NOT NULL DEFAULT 0,
    batch_history      jsonb NOT NULL DEFAULT '[]',
    -- backfill: no batch before start_after, and none outside the daily window
    -- [window_start, window_end) in time zone window_tz (the TimeZone it was given in)
    start_after        timestamptz,
    window_start       time,
    window_end         time,
    window_tz          text,
    CHECK (CASE WHEN kind OPERATOR(pg_catalog.=) 'backfill'
                THEN relid IS NOT NULL AND set_sql IS NOT NULL
                ELSE version IS NOT NULL AND direction IS NOT NULL AND script IS NOT NULL END)
);
COMMENT ON TABLE migrate.job_queue IS
    'Internal: background jobs and their checkpoints. Read migrate.jobs; write through the API.';
SELECT pg_catalog.pg_extension_config_dump('migrate.job_queue', '');
SELECT pg_catalog.pg_extension_config_dump('migrate.job_id_seq', '');

-- A keyed backfill is split into key ranges when it first starts: one range for a single
-- worker, several (from a sample of the key) when workers > 1. A worker holds the range's
-- lock (src/pg/locks.rs) while it walks a range, so no range is ever walked by two
-- processes; each batch writes the range's checkpoint in its own transaction.
CREATE SEQUENCE migrate.job_range_id_seq AS integer CYCLE;
CREATE TABLE migrate.job_ranges (
    id         integer PRIMARY KEY DEFAULT pg_catalog.nextval('migrate.job_range_id_seq'),
    job_id     bigint NOT NULL REFERENCES migrate.job_queue (id) ON DELETE CASCADE,
    range_no   integer NOT NULL,
    -- (lower_key, upper_key] in key order; NULL lower: from the first key
    lower_key  text[],
    upper_key  text[] NOT NULL,
    -- checkpoint: the end key of the range's last committed batch
    last_key   text[],
    rows_done  bigint NOT NULL DEFAULT 0,
    done       boolean NOT NULL DEFAULT false,
    UNIQUE (job_id, range_no)
);
COMMENT ON TABLE migrate.job_ranges IS
    'Internal: the key ranges of backfill jobs and their checkpoints. Read migrate.jobs.';
SELECT pg_catalog.pg_extension_config_dump('migrate.job_ranges', '');
SELECT pg_catalog.pg_extension_config_dump('migrate.job_range_id_seq', '');

-- Every change alter_job() made to a job's settings: who, when, which setting, from what to
-- what (NULL: adaptive batch size, migrate.backfill_batch_time). Written only by alter_job(),
-- as the extension's owner; read through migrate.job_changes.
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

-- Shown to whoever may see the job's keys in migrate.jobs: its owner, roles with its
-- privileges, and migrate_admin.
CREATE VIEW migrate.job_changes AS
SELECT c.id, c.job_id, c.changed_at, c.changed_by, c.setting, c.old_value, c.new_value
FROM migrate.job_change_log c
JOIN migrate.job_queue j ON j.id OPERATOR(pg_catalog.=) c.job_id
WHERE pg_catalog.pg_has_role(j.owner_oid, 'USAGE')
   OR pg_catalog.pg_has_role('migrate_admin', 'USAGE');
COMMENT ON VIEW migrate.job_changes IS
    'Every change migrate.alter_job() made to a job: who, when, which setting, old and new value.';

-- The extension's locks held in this database and by which backend, as src/pg/locks.rs defines
-- them for every query that asks (the worker-slot count, the deploy lock, the jobs view).
CREATE FUNCTION migrate.held_locks()
    RETURNS TABLE (namespace integer, key bigint, pid integer)
    LANGUAGE c
    AS 'MODULE_PATHNAME', 'held_locks_wrapper';
COMMENT ON FUNCTION migrate.held_locks() IS
    'Internal: the extension''s locks held in this database (namespace, key, pid), for migrate.jobs.';

-- A live worker holds the job's lock while it runs a job: that is how the view tells a running
-- job from an interrupted one. The locks are object locks on the class migrate.locks, which only
-- the extension can take (src/pg/locks.rs): namespace 1 = a job's leader (key: job id), 2 = a
-- worker walking a range (key: range id). Keys, checkpoints (last_key), errors
-- (their DETAIL can quote row values) and notes (a deploy step's SQL) are shown only to the
-- job's owner, roles with its privileges, and migrate_admin.
CREATE VIEW migrate.jobs AS
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

-- A C procedure: it commits between polls so the waiting session holds no snapshot, which a
-- concurrent index build elsewhere in the database would otherwise have to wait for.
-- Every progress_every (NULL or 0: never) it says how far the job got in a NOTICE.
CREATE PROCEDURE migrate.wait_job(job_id bigint, timeout interval DEFAULT NULL,
                                  progress_every interval DEFAULT NULL)
    LANGUAGE c
    AS 'MODULE_PATHNAME', 'migrate_wait_job';
COMMENT ON PROCEDURE migrate.wait_job(bigint, interval, interval) IS
    'Waits until a job ends (raises if it failed or was cancelled) or the timeout passes; every progress_every, a NOTICE with its progress, rate and ETA.';
