-- The migration registry: tables, the append-only event log, the history view, status(),
-- privileges and pg_dump registration. Everything is schema-qualified; this runs inside
-- CREATE EXTENSION with search_path = migrate.

-- Who may run migrations: members of migrate_admin (plus superusers and the extension owner).
-- Roles are cluster-wide, so a second database's CREATE EXTENSION reuses the role.
DO $do$
BEGIN
    IF NOT EXISTS (SELECT FROM pg_catalog.pg_roles
                   WHERE rolname OPERATOR(pg_catalog.=) 'migrate_admin') THEN
        CREATE ROLE migrate_admin NOLOGIN;
    END IF;
END
$do$;

-- The extension needs a schema of its own: a pre-existing migrate schema owned by an ordinary
-- role would let that role drop, rename or shadow what the workers trust.
DO $do$
BEGIN
    IF pg_catalog.getdatabaseencoding() OPERATOR(pg_catalog.<>) 'UTF8' THEN
        RAISE EXCEPTION 'migrate needs a UTF8 database, not %', pg_catalog.getdatabaseencoding()
            USING ERRCODE = 'feature_not_supported',
                  HINT = 'Create the database with ENCODING ''UTF8'' (scripts, names and keys are handled as UTF-8 text).';
    END IF;
    IF NOT (SELECT r.rolsuper FROM pg_catalog.pg_namespace n
            JOIN pg_catalog.pg_roles r ON r.oid OPERATOR(pg_catalog.=) n.nspowner
            WHERE n.nspname OPERATOR(pg_catalog.=) 'migrate') THEN
        RAISE EXCEPTION 'schema migrate exists and is owned by a role that is not a superuser'
            USING ERRCODE = 'insufficient_privilege',
                  HINT = 'Drop or rename that schema (or give it to a superuser) before CREATE EXTENSION migrate.';
    END IF;
END
$do$;

-- Locks only the extension's own functions can take (advisory-lock keys, by contrast, are
-- public: any role could take them and stall us). Its rows are row-locked (which needs UPDATE on
-- the table, which nobody but its owner has): 'registry' serialises registry changes, 'slots'
-- the count of job workers. Its OID is the class of the workers' and the deploy's object locks,
-- which no SQL statement can take (src/pg/locks.rs).
CREATE TABLE migrate.locks (
    name text PRIMARY KEY
);
COMMENT ON TABLE migrate.locks IS 'Internal: locks only the extension itself can take.';
INSERT INTO migrate.locks (name) VALUES ('registry'), ('slots');

CREATE SEQUENCE migrate.run_id_seq;
CREATE SEQUENCE migrate.event_id_seq;

CREATE TABLE migrate.migrations (
    version            text PRIMARY KEY,
    -- natural-order key (see src/registry/version.rs); unique, so 001 and 1 cannot coexist
    sort_key           bytea NOT NULL UNIQUE,
    name               text,
    up_sql             text NOT NULL,
    down_sql           text,
    checksum           text NOT NULL,
    checksum_algorithm text NOT NULL DEFAULT 'sha256',
    transactional      boolean NOT NULL DEFAULT true,
    requires           text[] NOT NULL DEFAULT '{}',
    added_at           timestamptz NOT NULL DEFAULT pg_catalog.now(),
    added_by           name NOT NULL,
    -- the role that amended the down script after registration (NULL: added_by); the down
    -- script runs as the role that wrote it
    down_by            name,
    state              text NOT NULL DEFAULT 'pending'
        CHECK (state OPERATOR(pg_catalog.=) ANY (ARRAY['pending', 'applied', 'baselined'])),
    applied_at         timestamptz,
    applied_by         name,
    applied_checksum   text,
    duration           interval,
    run_id             bigint,
    -- run again whenever its script changes, after the versioned ones (0.2.0)
    repeatable         boolean NOT NULL DEFAULT false,
    -- the safe option: deploy() runs the safe form of what the guard would block (0.2.0);
    -- NULL: migrate.safe_by_default decides
    safe               boolean,
    -- the script safe mode last ran for it in a worker (0.2.0): the statements it rewrote
    safe_script        text
);
COMMENT ON TABLE migrate.migrations IS
    'Registered migrations and their state; written only by the migrate.* functions.';

CREATE TABLE migrate.events (
    id             bigint PRIMARY KEY DEFAULT pg_catalog.nextval('migrate.event_id_seq'),
    run_id         bigint NOT NULL,
    version        text,
    action         text NOT NULL,
    started_at     timestamptz NOT NULL,
    finished_at    timestamptz,
    role           name NOT NULL,
    client_addr    inet,
    error_sqlstate text,
    error_message  text,
    detail         text,
    -- When the row was written (0.2.0; NULL before): finished_at of an adopted migration is
    -- when the other tool ran it.
    recorded_at    timestamptz DEFAULT pg_catalog.clock_timestamp()
);
COMMENT ON TABLE migrate.events IS
    'Append-only log of every registry action; read it through migrate.history.';

-- Append-only even for the owner: history is evidence.
CREATE FUNCTION migrate.events_append_only() RETURNS trigger
LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS $fn$
BEGIN
    RAISE EXCEPTION 'migrate.events is append-only'
        USING ERRCODE = 'insufficient_privilege',
              HINT = 'The migration history cannot be changed or deleted.';
END
$fn$;
CREATE TRIGGER events_append_only BEFORE UPDATE OR DELETE ON migrate.events
    FOR EACH ROW EXECUTE FUNCTION migrate.events_append_only();
CREATE TRIGGER events_no_truncate BEFORE TRUNCATE ON migrate.events
    FOR EACH STATEMENT EXECUTE FUNCTION migrate.events_append_only();

CREATE VIEW migrate.history AS
SELECT e.id, e.run_id, e.version, e.action, e.started_at, e.finished_at,
       e.finished_at OPERATOR(pg_catalog.-) e.started_at AS duration,
       e.role, e.client_addr, e.error_sqlstate, e.error_message, e.detail
FROM migrate.events e;
COMMENT ON VIEW migrate.history IS 'The append-only event log of the migration registry.';

-- pg_dump keeps the registry's rows and sequence positions.
SELECT pg_catalog.pg_extension_config_dump('migrate.migrations', '');
SELECT pg_catalog.pg_extension_config_dump('migrate.events', '');
SELECT pg_catalog.pg_extension_config_dump('migrate.run_id_seq', '');
SELECT pg_catalog.pg_extension_config_dump('migrate.event_id_seq', '');

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
