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

-- Deliberately not SECURITY DEFINER: the guard runs as the user whose statement fired it, so it
-- resolves table, type and function names exactly as that statement will (a definer would see
-- schemas the user cannot use) and analyses expressions (which can run type input functions
-- and domain CHECKs) with no privilege the statement does not have, inside a security-
-- restricted operation (src/pg/security.rs). Its writes to migrate.guard_log switch to the
-- registry owner with search_path = pg_catalog, pg_temp. pg_test/sql/guard_security.sql and
-- adversarial.sql plant hostile objects to prove it.
CREATE FUNCTION migrate.guard_ddl_start() RETURNS event_trigger
    LANGUAGE c
    AS 'MODULE_PATHNAME', 'migrate_guard_ddl_start';
CREATE FUNCTION migrate.guard_ddl_end() RETURNS event_trigger
    LANGUAGE c
    AS 'MODULE_PATHNAME', 'migrate_guard_ddl_end';
CREATE FUNCTION migrate.guard_table_rewrite() RETURNS event_trigger
    LANGUAGE c
    AS 'MODULE_PATHNAME', 'migrate_guard_table_rewrite';
