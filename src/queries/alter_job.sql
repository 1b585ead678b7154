-- alter_job(): a job's new settings and the log of what changed, in one statement (the CTE
-- "old" reads the row as it was before the UPDATE). $1 job id; $2 batch_size (NULL: as is,
-- 0: adaptive again); $3 batch_time in ms (NULL: as is, 0: migrate.backfill_batch_time
-- again); $4 workers (NULL: as is); $5 pause in ms (NULL: as is); $6 the role changing them.
-- Intervals are logged in ms, so the log reads the same under any IntervalStyle. updated_at
-- is left alone: the jobs view's rate is measured from it.
WITH old AS (
    SELECT j.batch_size, j.batch_time, j.workers, j.pause
    FROM migrate.job_queue j
    WHERE j.id OPERATOR(pg_catalog.=) $1
), new AS (
    UPDATE migrate.job_queue j
    SET batch_size = CASE WHEN $2::pg_catalog.int4 IS NULL THEN j.batch_size
                          WHEN $2 OPERATOR(pg_catalog.=) 0 THEN NULL
                          ELSE $2 END,
        current_batch_size = CASE WHEN $2 OPERATOR(pg_catalog.>) 0 THEN $2
                                  ELSE j.current_batch_size END,
        batch_time = CASE WHEN $3::pg_catalog.float8 IS NULL THEN j.batch_time
                          WHEN $3 OPERATOR(pg_catalog.=) 0 THEN NULL
                          ELSE pg_catalog.make_interval(secs => $3 OPERATOR(pg_catalog./) 1000) END,
        workers = COALESCE($4::pg_catalog.int4, j.workers),
        pause = CASE WHEN $5::pg_catalog.float8 IS NULL THEN j.pause
                     ELSE pg_catalog.make_interval(secs => $5 OPERATOR(pg_catalog./) 1000) END
    WHERE j.id OPERATOR(pg_catalog.=) $1
    RETURNING j.batch_size, j.batch_time, j.workers, j.pause
), changes AS (
    SELECT c.n, c.setting, c.old_value, c.new_value
    FROM old CROSS JOIN new CROSS JOIN LATERAL (VALUES
        (1, 'batch_size', old.batch_size::pg_catalog.text, new.batch_size::pg_catalog.text),
        (2, 'batch_time',
         (EXTRACT(epoch FROM old.batch_time) OPERATOR(pg_catalog.*) 1000)::pg_catalog.float8::pg_catalog.text
             OPERATOR(pg_catalog.||) ' ms',
         (EXTRACT(epoch FROM new.batch_time) OPERATOR(pg_catalog.*) 1000)::pg_catalog.float8::pg_catalog.text
             OPERATOR(pg_catalog.||) ' ms'),
        (3, 'workers', old.workers::pg_catalog.text, new.workers::pg_catalog.text),
        (4, 'pause',
         (EXTRACT(epoch FROM old.pause) OPERATOR(pg_catalog.*) 1000)::pg_catalog.float8::pg_catalog.text
             OPERATOR(pg_catalog.||) ' ms',
         (EXTRACT(epoch FROM new.pause) OPERATOR(pg_catalog.*) 1000)::pg_catalog.float8::pg_catalog.text
             OPERATOR(pg_catalog.||) ' ms')
    ) c (n, setting, old_value, new_value)
    WHERE c.old_value IS DISTINCT FROM c.new_value
)
INSERT INTO migrate.job_change_log (job_id, changed_by, setting, old_value, new_value)
SELECT $1, $6, c.setting, c.old_value, c.new_value FROM changes c ORDER BY c.n
RETURNING setting
