-- Guardrails: the log table and the event-trigger functions (the triggers themselves are
-- created last, in finalize.sql, so they do not fire for the rest of this script).

CREATE SEQUENCE migrate.guard_log_id_seq;
CREATE TABLE migrate.guard_log (
    id             bigint PRIMARY KEY DEFAULT pg_catalog.nextval('migrate.guard_log_id_seq'),
    at             timestamptz NOT NULL DEFAULT pg_catalog.clock_timestamp(),
    role           name NOT NULL,
    client_addr    inet,
    action         text NOT NULL
        CHECK (action OPERATOR(pg_catalog.=) ANY (ARRAY['blocked', 'warned', 'allowed'])),
    rule           text NOT NULL,
    table_name     text,
    statement      text,
    message        text,
    reason         text,
    estimated_rows double precision,
    mode           text
);
COMMENT ON TABLE migrate.guard_log IS
    'Every guard violation (blocked), warning (warned) and permitted override (allowed).';
SELECT pg_catalog.pg_extension_config_dump('migrate.guard_log', '');
SELECT pg_catalog.pg_extension_config_dump('migrate.guard_log_id_seq', '');

-- SECURITY DEFINER so the guard works the same for every role, but deliberately without a
-- SET search_path clause: the trigger must resolve the DDL's table, type and function names
-- exactly as the DDL itself will, with the session's search_path. It only looks names up (no
-- user code runs), and every SQL statement it runs itself is schema-qualified or runs with
-- search_path = pg_catalog, pg_temp (src/pg/security.rs). pg_test/sql/guard_security.sql
-- plants hostile objects to prove it.
CREATE FUNCTION migrate.guard_ddl_start() RETURNS event_trigger
    LANGUAGE c SECURITY DEFINER
    AS 'MODULE_PATHNAME', 'migrate_guard_ddl_start';
CREATE FUNCTION migrate.guard_ddl_end() RETURNS event_trigger
    LANGUAGE c SECURITY DEFINER
    AS 'MODULE_PATHNAME', 'migrate_guard_ddl_end';
CREATE FUNCTION migrate.guard_table_rewrite() RETURNS event_trigger
    LANGUAGE c SECURITY DEFINER
    AS 'MODULE_PATHNAME', 'migrate_guard_table_rewrite';
