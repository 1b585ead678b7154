-- alter_job(): a backfill's batch_time, batch_size, workers and pause changed from its next
-- batch on, by its owner or migrate_admin, every change logged in migrate.job_changes; every
-- bad input refused with its own SQLSTATE, changing nothing. (Changes to a running job, with
-- workers added and removed mid-run, are proven in pg_test/system/tests/job_control.rs.)
CREATE EXTENSION migrate;
CREATE ROLE regress_aj_owner LOGIN;
CREATE ROLE regress_aj_other LOGIN;
CREATE ROLE regress_aj_admin LOGIN IN ROLE migrate_admin;
CREATE TABLE counted (id int PRIMARY KEY, n int NOT NULL DEFAULT 0);
INSERT INTO counted SELECT g FROM generate_series(1, 5000) g;
CREATE TABLE loose (v int, done boolean);
INSERT INTO loose SELECT g, NULL FROM generate_series(1, 300) g;
ALTER TABLE counted OWNER TO regress_aj_owner;
ALTER TABLE loose OWNER TO regress_aj_owner;

SET ROLE regress_aj_owner;
-- A job paused before its worker took it: it waits, settings can be changed, nothing runs.
BEGIN;
SELECT migrate.backfill('counted', 'n = n + 1', batch_size => 100) AS job \gset
SELECT migrate.pause_job(:job);
COMMIT;
BEGIN;
SELECT migrate.backfill('loose', 'done = true', 'done IS NULL') AS keyless_job \gset
SELECT migrate.pause_job(:keyless_job);
COMMIT;
SELECT migrate.backfill('loose', 'done = true', 'done IS NULL') AS finished_job \gset
CALL migrate.wait_job(:finished_job);

-- Bad input: each its own SQLSTATE; none changes the job or logs anything.
SELECT migrate.alter_job(NULL, batch_size => 10);
SELECT migrate.alter_job(424242, batch_size => 10);
SELECT migrate.alter_job(:job, batch_size => -1);
SELECT migrate.alter_job(:job, batch_time => '5 ms');
SELECT migrate.alter_job(:job, batch_time => '2 min');
SELECT migrate.alter_job(:job, batch_time => '-1 s');
SELECT migrate.alter_job(:job, workers => 0);
SELECT migrate.alter_job(:job, workers => 65);
SELECT migrate.alter_job(:job, pause => '-1 s');
SELECT migrate.alter_job(:job, pause => '2 hours');
-- One bad value refuses the whole call, the good ones with it.
SELECT migrate.alter_job(:job, batch_size => 10, workers => 0);
-- A table without a key is walked by one worker.
SELECT migrate.alter_job(:keyless_job, workers => 2);
-- A finished job is refused, and so is a cancelled one.
SELECT migrate.alter_job(:finished_job, batch_size => 10);
SELECT migrate.cancel_job(:keyless_job);
SELECT migrate.alter_job(:keyless_job, batch_size => 10);
SELECT count(*) AS changes_after_bad_input FROM migrate.job_changes;
RESET ROLE;
SELECT batch_size, current_batch_size, batch_time, workers, pause
FROM migrate.job_queue WHERE id = :job;

-- Another role may not change the owner's job, nor see its changes, nor write the log.
SET ROLE regress_aj_other;
SELECT migrate.alter_job(:job, batch_size => 1);
INSERT INTO migrate.job_change_log (job_id, changed_by, setting) VALUES (:job, 'x', 'y');
RESET ROLE;

-- The owner changes settings; only what changed is logged, old and new value (intervals in ms,
-- NULL: adaptive batch size or migrate.backfill_batch_time).
SET ROLE regress_aj_owner;
SELECT migrate.alter_job(:job, batch_size => 700, pause => '10 ms', batch_time => '300 ms');
SELECT migrate.alter_job(:job, batch_size => 700, pause => '10 ms');
SELECT migrate.alter_job(:job);
RESET ROLE;
SELECT batch_size, current_batch_size, batch_time, workers, pause
FROM migrate.job_queue WHERE id = :job;
-- batch_size => 0: adaptive again (from the size it had); batch_time => '0': the default.
SET ROLE regress_aj_owner;
SELECT migrate.alter_job(:job, batch_size => 0, batch_time => '0');
RESET ROLE;
SELECT batch_size, current_batch_size, batch_time FROM migrate.job_queue WHERE id = :job;
-- The jobs view shows the target of adaptive batches: the job's own, else the setting's.
SELECT batch_size, batch_time, time_efficiency, batch_history FROM migrate.jobs WHERE id = :job;
SET ROLE regress_aj_owner;
SELECT migrate.alter_job(:job, batch_time => '250 ms');
SELECT batch_time FROM migrate.jobs WHERE id = :job;
SELECT migrate.alter_job(:job, batch_time => '0');
RESET ROLE;
-- migrate_admin may change any job, and sees every change.
SET ROLE regress_aj_admin;
SELECT migrate.alter_job(:job, batch_size => 700, workers => 2);
SELECT job_id = :job AS this_job, changed_by, setting, old_value, new_value
FROM migrate.job_changes ORDER BY id;
RESET ROLE;
SET ROLE regress_aj_other;
SELECT count(*) AS changes_other_sees FROM migrate.job_changes;
RESET ROLE;

-- Resumed, the job runs with its new settings: batches of 700, two workers, every row once.
SET ROLE regress_aj_owner;
SELECT migrate.resume_job(:job);
-- wait_job's progress notices: a negative interval is refused; NULL (the default) or 0 turn
-- them off, so this file's output does not depend on how long the job takes.
CALL migrate.wait_job(:job, '120 s', progress_every => '-1 s');
CALL migrate.wait_job(:job, '120 s', progress_every => NULL);
SELECT n, count(*) FROM counted GROUP BY n;
SELECT state, rows_done, rows_updated, batch_size, workers FROM migrate.jobs WHERE id = :job;
-- Its batches in the history (at most the last 20: size asked, rows in the batch, ms), a
-- pinned size (no target batch_time), and a time efficiency within 0 and 1 per worker.
SELECT (SELECT array_agg(e.size ORDER BY e.size) FROM jsonb_to_recordset(batch_history) e (size int)) AS sizes,
       (SELECT sum(e.rows) FROM jsonb_to_recordset(batch_history) e (rows int)) AS rows,
       (SELECT bool_and(e.ms >= 0) FROM jsonb_to_recordset(batch_history) e (ms float8)) AS timed,
       jsonb_array_length(batch_history) AS kept, batch_time,
       time_efficiency > 0 AND time_efficiency <= workers AS efficiency_in_bounds
FROM migrate.jobs WHERE id = :job;
-- Done now: refused, with a hint.
SELECT migrate.alter_job(:job, workers => 1);
RESET ROLE;
SELECT sum(rows_done) AS range_rows, bool_and(done) AS all_done
FROM migrate.job_ranges WHERE job_id = :job;

-- A deploy's non-transactional step is a job too, but not a backfill: refused.
CREATE TABLE acc (id int PRIMARY KEY, n int);
SELECT migrate.add('1', E'-- migrate:no-transaction\nCREATE INDEX CONCURRENTLY acc_n ON acc (n);');
-- (Its NOTICEs carry timings.)
SET client_min_messages = warning;
CALL migrate.deploy();
RESET client_min_messages;
SELECT id AS migration_job FROM migrate.jobs WHERE kind = 'migration' \gset
SELECT migrate.alter_job(:migration_job, batch_size => 10);

DROP TABLE counted, loose, acc;
DROP ROLE regress_aj_owner, regress_aj_other, regress_aj_admin;
