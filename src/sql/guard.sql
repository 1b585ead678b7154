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

-- migrate.schema_changes (0.2.0): every DDL statement that commits in the database, written by
-- the ddl_command_end trigger in the statement's own transaction (src/guard/schema_changes.rs).
-- Nobody may change a row; the extension owner may DELETE old ones to keep it small.
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
