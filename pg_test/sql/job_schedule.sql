-- Start times: backfill(..., start_after, window_start, window_end) runs no batch before
-- start_after nor outside its daily window (in the TimeZone it was given in); the job waits
-- queued, its note says why and until when; alter_job() changes or removes both.
CREATE EXTENSION migrate;
CREATE ROLE regress_js_owner LOGIN;
CREATE TABLE counted (id int PRIMARY KEY, n int NOT NULL DEFAULT 0);
INSERT INTO counted SELECT g FROM generate_series(1, 1000) g;
ALTER TABLE counted OWNER TO regress_js_owner;
-- Waits (at most 60 s) until the job's note is set, and shows its start.
CREATE FUNCTION note_of(job bigint) RETURNS text LANGUAGE plpgsql AS $$
DECLARE n text;
BEGIN
    FOR i IN 1..600 LOOP
        SELECT note INTO n FROM migrate.jobs WHERE id = job;
        EXIT WHEN n IS NOT NULL AND n NOT LIKE 'waiting for a worker%';
        PERFORM pg_sleep(0.1);
    END LOOP;
    RETURN substring(n from '^[a-z_ ]+');
END $$;
GRANT EXECUTE ON FUNCTION note_of(bigint) TO regress_js_owner;

SET ROLE regress_js_owner;
SET TimeZone = 'Europe/Paris';
-- Bad windows: one end only, or empty; nothing is queued.
SELECT migrate.backfill('counted', 'n = n + 1', window_start => '01:00');
SELECT migrate.backfill('counted', 'n = n + 1', window_end => '05:00');
SELECT migrate.backfill('counted', 'n = n + 1', window_start => '01:00', window_end => '01:00');
SELECT count(*) AS jobs_after_bad_windows FROM migrate.jobs;

-- start_after in the future: the job waits, queued, and updates nothing.
SELECT migrate.backfill('counted', 'n = n + 1', start_after => '2999-01-01 00:00+00') AS later \gset
SELECT note_of(:later);
SELECT state, rows_done FROM migrate.jobs WHERE id = :later;
SELECT count(*) FILTER (WHERE n > 0) AS updated FROM counted;
-- Moved to the past, it starts at once.
SELECT migrate.alter_job(:later, start_after => '2000-01-01 00:00+00');
CALL migrate.wait_job(:later, '60 s');
SELECT state, rows_done, note FROM migrate.jobs WHERE id = :later;

-- A window that excludes now (in two hours, for an hour): the job waits for it.
SELECT (now() + interval '2 hours')::time AS ws, (now() + interval '3 hours')::time AS we \gset
SELECT migrate.backfill('counted', 'n = n + 1', window_start => :'ws', window_end => :'we') AS windowed \gset
SELECT note_of(:windowed);
SELECT state, rows_done FROM migrate.jobs WHERE id = :windowed;
-- The window's time zone is the session's.
RESET ROLE;
SELECT window_tz, window_start = :'ws'::time AS starts FROM migrate.job_queue WHERE id = :windowed;
SET ROLE regress_js_owner;
-- Bad changes: one end only; equal ends remove the window, and the job runs.
SELECT migrate.alter_job(:windowed, window_start => '01:00');
SELECT migrate.alter_job(:windowed, window_start => '00:00', window_end => '00:00');
CALL migrate.wait_job(:windowed, '60 s');
SELECT state, rows_done, note FROM migrate.jobs WHERE id = :windowed;
SELECT n, count(*) FROM counted GROUP BY n;
-- A window that includes now (wrapping midnight) does not hold the job.
SELECT (now() - interval '1 hour')::time AS ws, (now() - interval '2 hours')::time AS we \gset
SELECT migrate.backfill('counted', 'n = n + 1', window_start => :'ws', window_end => :'we') AS wide \gset
CALL migrate.wait_job(:wide, '60 s');
SELECT state, rows_done FROM migrate.jobs WHERE id = :wide;
-- A job waiting for its start can be cancelled.
SELECT migrate.backfill('counted', 'n = n + 1', start_after => '2999-01-01 00:00+00') AS doomed \gset
SELECT note_of(:doomed);
SELECT migrate.cancel_job(:doomed);
CALL migrate.wait_job(:doomed);
-- The changes are logged (times in UTC, the window with its time zone).
SELECT job_id = :later AS later_job, setting, old_value IS NOT NULL AS had_old,
       new_value IS NOT NULL AS has_new, new_value LIKE '%Europe/Paris' AS in_paris
FROM migrate.job_changes ORDER BY id;
SELECT new_value FROM migrate.job_changes WHERE job_id = :later;
RESET ROLE;

DROP TABLE counted;
DROP FUNCTION note_of(bigint);
DROP ROLE regress_js_owner;
