-- deploy(): a C procedure, because it commits after every migration and waits for background
-- workers between commits (see src/registry/deploy.rs).
CREATE PROCEDURE migrate.deploy(target text DEFAULT NULL, allow_out_of_order boolean DEFAULT false)
    LANGUAGE c
    AS 'MODULE_PATHNAME', 'migrate_deploy';
COMMENT ON PROCEDURE migrate.deploy(text, boolean) IS
    'Moves the database to target (default: newest), one committed migration at a time; non-transactional ones run top-level in a worker; lock timeouts are retried.';
