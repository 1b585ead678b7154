-- The other transactions in this database a concurrent index build waits for: those holding a
-- snapshot (backend_xmin), which the build waits for before the index becomes valid, and those
-- holding a lock on the build's table that conflicts with SHARE (writers), which it waits for
-- before it builds and before it validates. `idle in transaction` first, then the oldest.
--
-- Run by a migration job's worker before a concurrent build (logged in as the migration's
-- role) and by deploy() for the pids the build is waiting for (as deploy()'s caller), never as
-- a more privileged role: pg_stat_activity shows anyone a session's pid, role and
-- backend_xmin, but its state, transaction start and query only to members of its role and of
-- pg_read_all_stats, and this report shows no more than that (NULL: hidden).
-- $1: the build's table (or NULL); $2: only these pids (or NULL: every one the build waits for);
-- $3: pids left out (the deploy waiting for the build: it holds a snapshot only while it polls).
SELECT a.pid,
       a.usename::pg_catalog.text AS role,
       a.state,
       pg_catalog.date_trunc('second',
           pg_catalog.clock_timestamp() OPERATOR(pg_catalog.-) a.xact_start)::pg_catalog.text AS age,
       pg_catalog.regexp_replace(pg_catalog.left(a.query, 200), '[[:space:]]+', ' ', 'g') AS query,
       CASE WHEN a.application_name OPERATOR(pg_catalog.<>) '' THEN a.application_name END
           AS application_name,
       a.backend_xmin IS NOT NULL AS holds_snapshot,
       w.writes_table
FROM pg_catalog.pg_stat_activity a
CROSS JOIN LATERAL (
    SELECT EXISTS (SELECT FROM pg_catalog.pg_locks l
                   WHERE l.pid OPERATOR(pg_catalog.=) a.pid
                     AND l.locktype OPERATOR(pg_catalog.=) 'relation'
                     AND l.relation OPERATOR(pg_catalog.=) $1
                     AND l.granted
                     AND l.mode OPERATOR(pg_catalog.=) ANY (ARRAY['RowExclusiveLock',
                         'ShareUpdateExclusiveLock', 'ShareRowExclusiveLock', 'ExclusiveLock',
                         'AccessExclusiveLock'])) AS writes_table) w
WHERE a.pid OPERATOR(pg_catalog.<>) pg_catalog.pg_backend_pid()
  AND a.pid OPERATOR(pg_catalog.<>) ALL ($3::pg_catalog.int4[])
  AND a.datname OPERATOR(pg_catalog.=) pg_catalog.current_database()
  AND COALESCE(a.backend_type OPERATOR(pg_catalog.<>) 'autovacuum worker', true)
  AND CASE WHEN $2::pg_catalog.int4[] IS NOT NULL
           THEN a.pid OPERATOR(pg_catalog.=) ANY ($2::pg_catalog.int4[])
           ELSE a.backend_xmin IS NOT NULL OR w.writes_table
      END
ORDER BY COALESCE(a.state OPERATOR(pg_catalog.=) 'idle in transaction', false) DESC, a.xact_start NULLS LAST, a.pid
