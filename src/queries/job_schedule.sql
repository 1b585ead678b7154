-- Why backfill job $1 may not run a batch now, or NULL if it may: before its start_after, or
-- outside its daily window [window_start, window_end) in the time zone it was given in
-- (window_tz; a window with window_start > window_end wraps midnight). The note says until
-- when it waits; the worker checks again every second, so a changed schedule applies at once.
WITH j AS (
    SELECT q.start_after, q.window_start, q.window_end, q.window_tz,
           pg_catalog.timezone(q.window_tz, pg_catalog.clock_timestamp()) AS local
    FROM migrate.job_queue q
    WHERE q.id OPERATOR(pg_catalog.=) $1
), w AS (
    SELECT j.*, j.local::pg_catalog.time AS now_local,
           CASE WHEN j.window_start OPERATOR(pg_catalog.<) j.window_end
                THEN j.local::pg_catalog.time OPERATOR(pg_catalog.>=) j.window_start
                     AND j.local::pg_catalog.time OPERATOR(pg_catalog.<) j.window_end
                ELSE j.local::pg_catalog.time OPERATOR(pg_catalog.>=) j.window_start
                     OR j.local::pg_catalog.time OPERATOR(pg_catalog.<) j.window_end
           END AS inside
    FROM j
)
SELECT CASE
    WHEN w.start_after OPERATOR(pg_catalog.>) pg_catalog.clock_timestamp()
    THEN 'waiting for start_after: starts at ' OPERATOR(pg_catalog.||)
         w.start_after::pg_catalog.text
    WHEN w.window_start IS NOT NULL AND NOT w.inside
    THEN 'outside its window ' OPERATOR(pg_catalog.||) w.window_start::pg_catalog.text
         OPERATOR(pg_catalog.||) '-' OPERATOR(pg_catalog.||) w.window_end::pg_catalog.text
         OPERATOR(pg_catalog.||) ' (' OPERATOR(pg_catalog.||) w.window_tz
         OPERATOR(pg_catalog.||) '): waiting until ' OPERATOR(pg_catalog.||)
         pg_catalog.timezone(w.window_tz,
             (pg_catalog.date_trunc('day', w.local) OPERATOR(pg_catalog.+)
              w.window_start::pg_catalog.interval) OPERATOR(pg_catalog.+)
             CASE WHEN w.now_local OPERATOR(pg_catalog.>=) w.window_start
                  THEN '1 day'::pg_catalog.interval ELSE '0'::pg_catalog.interval END
         )::pg_catalog.text
END
FROM w
