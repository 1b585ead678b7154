-- Safe mode's dependent-view rebuild: ALTER COLUMN ... TYPE on a column views use drops and
-- recreates them in the same transaction, identical (owner, options, grants, comments,
-- materialized view data and indexes) but for the new type; every refusal with its SQLSTATE,
-- changing nothing. Outside safe mode PostgreSQL's own error is unchanged.
CREATE EXTENSION migrate;
CREATE ROLE regress_dv_owner;
CREATE ROLE regress_dv_reader LOGIN;
CREATE ROLE regress_dv_other;
GRANT CREATE ON SCHEMA public TO regress_dv_owner, regress_dv_other;
CREATE SCHEMA app AUTHORIZATION regress_dv_owner;
SET ROLE regress_dv_owner;
CREATE TABLE app.orders (id int PRIMARY KEY, amount int NOT NULL, note varchar(20));
INSERT INTO app.orders SELECT g, g * 10, 'n' || g FROM generate_series(1, 50) g;
CREATE VIEW app.big_orders WITH (security_barrier) AS
    SELECT id, amount, note FROM app.orders WHERE amount > 100;
CREATE VIEW app.big_order_notes AS
    SELECT id, upper(note) AS note, amount * 2 AS doubled FROM app.big_orders
    WITH CASCADED CHECK OPTION;
CREATE MATERIALIZED VIEW app.order_totals WITH (fillfactor = 90) AS
    SELECT id % 5 AS bucket, sum(amount) AS total FROM app.orders GROUP BY 1;
CREATE UNIQUE INDEX order_totals_bucket ON app.order_totals (bucket) WITH (fillfactor = 80);
CREATE MATERIALIZED VIEW app.unfilled AS SELECT id, amount FROM app.orders WITH NO DATA;
COMMENT ON VIEW app.big_orders IS 'orders over 100';
COMMENT ON COLUMN app.big_orders.amount IS 'in cents';
COMMENT ON MATERIALIZED VIEW app.order_totals IS 'per bucket';
COMMENT ON INDEX app.order_totals_bucket IS 'one row per bucket';
GRANT USAGE ON SCHEMA app TO regress_dv_reader, regress_dv_other;
GRANT SELECT ON app.big_orders TO regress_dv_reader;
GRANT SELECT ON app.big_order_notes TO regress_dv_other WITH GRANT OPTION;
GRANT SELECT (bucket, total) ON app.order_totals TO regress_dv_reader;
REVOKE TRUNCATE ON app.big_orders FROM regress_dv_owner;
SET ROLE regress_dv_other;
GRANT SELECT ON app.big_order_notes TO regress_dv_reader;
RESET ROLE;

-- Default privileges of the role that runs the change (here postgres) must not reach the
-- rebuilt views of another owner.
ALTER DEFAULT PRIVILEGES FOR ROLE postgres IN SCHEMA app GRANT SELECT ON TABLES TO regress_dv_other;

-- Everything that must survive, except column types (compared before and after; a NULL ACL
-- as the defaults it stands for).
CREATE FUNCTION pg_temp.view_snapshot() RETURNS TABLE (
    name text, kind "char", owner name, options text[], acl text, comment text,
    populated bool, columns text, indexes text, definition text)
LANGUAGE sql AS $$
    SELECT c.oid::regclass::text, c.relkind, pg_get_userbyid(c.relowner), c.reloptions,
           coalesce(c.relacl, acldefault('r', c.relowner))::text,
           obj_description(c.oid, 'pg_class'), c.relispopulated,
           (SELECT string_agg(a.attname || ' ' || coalesce(col_description(c.oid, a.attnum), '-')
                              || ' ' || coalesce(a.attacl::text, '-'), ', ' ORDER BY a.attnum)
              FROM pg_attribute a WHERE a.attrelid = c.oid AND a.attnum > 0),
           (SELECT string_agg(pg_get_indexdef(i.indexrelid) || ' '
                              || coalesce(obj_description(i.indexrelid, 'pg_class'), '-'), '; ')
              FROM pg_index i WHERE i.indrelid = c.oid),
           pg_get_viewdef(c.oid)
    FROM pg_class c WHERE c.relnamespace = 'app'::regnamespace AND c.relkind IN ('v', 'm')
$$;
CREATE TEMP TABLE before AS SELECT * FROM pg_temp.view_snapshot();
-- (shown without MAINTAIN, 'm', which PostgreSQL 17 added to the owner's default privileges)
SELECT name, kind, owner, options, regexp_replace(acl, 'm(\*?)/', '\1/', 'g') AS acl, comment,
       populated
FROM before ORDER BY name;
SELECT name, columns, indexes FROM before ORDER BY name;

-- Outside safe mode: PostgreSQL's own error.
ALTER TABLE app.orders ALTER COLUMN amount TYPE bigint;

-- Safe mode: the views are rebuilt around the change.
SET migrate.safe_by_default = on;
BEGIN;
SELECT pg_relation_filenode('app.order_totals') AS totals_filenode \gset
ALTER TABLE app.orders ALTER COLUMN amount TYPE bigint;
-- Identical but for the types (the definitions are the same text).
SELECT * FROM pg_temp.view_snapshot() EXCEPT SELECT * FROM before;
SELECT * FROM before EXCEPT SELECT * FROM pg_temp.view_snapshot();
SELECT attrelid::regclass, attname, atttypid::regtype FROM pg_attribute
WHERE attrelid IN ('app.orders'::regclass, 'app.big_orders'::regclass,
                   'app.big_order_notes'::regclass, 'app.order_totals'::regclass)
  AND attname IN ('amount', 'doubled', 'total') ORDER BY 1::text, 2;
-- The materialized view is new and filled again; the unpopulated one stays empty.
SELECT pg_relation_filenode('app.order_totals') <> :totals_filenode AS new_relation;
SELECT count(*) FROM app.order_totals;
SELECT relispopulated FROM pg_class WHERE oid = 'app.unfilled'::regclass;
COMMIT;
SET ROLE regress_dv_reader;
SELECT count(*) FROM app.big_orders;
SELECT count(*) FROM app.big_order_notes;
SELECT sum(total) FROM app.order_totals;
SELECT bucket FROM app.order_totals ORDER BY 1;
RESET ROLE;

-- A change the guard sees as free (varchar(20) -> varchar(40)) rebuilds the views too; in a
-- savepoint that fails first, then succeeds: nothing of the failed attempt is left.
BEGIN;
SAVEPOINT s;
ALTER TABLE app.orders ALTER COLUMN note TYPE varchar(40), ALTER COLUMN nope TYPE int;
ROLLBACK TO SAVEPOINT s;
ALTER TABLE app.orders ALTER COLUMN note TYPE varchar(40);
SELECT * FROM pg_temp.view_snapshot() EXCEPT SELECT * FROM before;
COMMIT;

-- A view whose definition no longer works for the new type: PostgreSQL's error, a HINT
-- naming the view, and nothing changed.
CREATE TABLE app.prices (id int, amount int);
CREATE VIEW app.prices_v AS SELECT id, amount FROM app.prices;
CREATE VIEW app.plus_one AS SELECT id, amount + 1 AS next FROM app.prices_v;
ALTER TABLE app.prices ALTER COLUMN amount TYPE text USING amount::text;
SELECT atttypid::regtype FROM pg_attribute WHERE attrelid = 'app.prices'::regclass AND attname = 'amount';
SELECT relname FROM pg_class WHERE relname IN ('prices_v', 'plus_one') ORDER BY 1;
-- The materialized view's query fails the same way, at CREATE (its column sum(text)).
ALTER TABLE app.orders ALTER COLUMN amount TYPE text USING amount::text;
DROP TABLE app.prices CASCADE;

-- What is not rebuilt is refused before anything is dropped (0A000).
CREATE VIEW app.writable AS SELECT id, note FROM app.orders;
CREATE FUNCTION app.writable_insert() RETURNS trigger LANGUAGE plpgsql AS
    $$BEGIN RETURN NEW; END$$;
CREATE TRIGGER writable_insert INSTEAD OF INSERT ON app.writable
    FOR EACH ROW EXECUTE FUNCTION app.writable_insert();
ALTER TABLE app.orders ALTER COLUMN note TYPE text;
DROP TRIGGER writable_insert ON app.writable;
ALTER VIEW app.writable ALTER COLUMN note SET DEFAULT 'x';
ALTER TABLE app.orders ALTER COLUMN note TYPE text;
DROP VIEW app.writable;
-- (a temporary view: its schema's name varies, so the message is shown with it masked)
CREATE TEMP VIEW order_notes_here AS SELECT note FROM app.orders;
DO $$BEGIN
    ALTER TABLE app.orders ALTER COLUMN note TYPE text;
EXCEPTION WHEN OTHERS THEN
    RAISE NOTICE 'refused: %, %', SQLSTATE, regexp_replace(SQLERRM, 'pg_temp_\d+', 'pg_temp');
END$$;
DROP VIEW order_notes_here;
CREATE TABLE app.order_log (id int, note varchar(40));
CREATE RULE log_notes AS ON INSERT TO app.order_log DO ALSO
    SELECT o.note FROM app.orders o WHERE o.id = NEW.id;
ALTER TABLE app.orders ALTER COLUMN note TYPE text;
DROP TABLE app.order_log;

-- Another object that depends on a view: PostgreSQL's DROP refuses (2BP01), with the HINT.
CREATE FUNCTION app.note_count() RETURNS bigint LANGUAGE sql
    BEGIN ATOMIC SELECT count(*) FROM app.big_orders; END;
ALTER TABLE app.orders ALTER COLUMN note TYPE text;
DROP FUNCTION app.note_count();

-- A role that owns the table but cannot act as the views' owner: 42501, nothing dropped.
CREATE TABLE public.shared (id int, v int);
CREATE VIEW public.shared_v AS SELECT id, v FROM public.shared;
ALTER TABLE public.shared OWNER TO regress_dv_other;
ALTER VIEW public.shared_v OWNER TO regress_dv_owner;
SET ROLE regress_dv_other;
ALTER TABLE public.shared ALTER COLUMN v TYPE bigint;
RESET ROLE;
SELECT count(*) FROM pg_class WHERE oid = 'public.shared_v'::regclass;
-- A member of the owner role may: the view is rebuilt and still belongs to its owner.
GRANT regress_dv_owner TO regress_dv_other;
SET ROLE regress_dv_other;
ALTER TABLE public.shared ALTER COLUMN v TYPE bigint;
RESET ROLE;
SELECT pg_get_userbyid(relowner) FROM pg_class WHERE oid = 'public.shared_v'::regclass;
REVOKE regress_dv_owner FROM regress_dv_other;

-- A view on a partition: reached through the partitioned parent.
CREATE TABLE public.events (id int, kind int) PARTITION BY RANGE (id);
CREATE TABLE public.events_1 PARTITION OF public.events FOR VALUES FROM (0) TO (100);
CREATE VIEW public.events_1_kinds AS SELECT DISTINCT kind FROM public.events_1;
ALTER TABLE public.events ALTER COLUMN kind TYPE bigint;
SELECT atttypid::regtype FROM pg_attribute WHERE attrelid = 'public.events_1_kinds'::regclass;

-- A hostile search_path changes nothing: the definitions were deparsed and parsed again with
-- search_path pinned to pg_catalog, pg_temp.
CREATE FUNCTION public.upper(varchar) RETURNS text LANGUAGE sql AS $$SELECT 'planted'$$;
SET search_path = public, pg_catalog;
ALTER TABLE app.orders ALTER COLUMN note TYPE text;
RESET search_path;
SELECT note FROM app.big_order_notes ORDER BY id LIMIT 1;
DROP FUNCTION public.upper(varchar);

RESET migrate.safe_by_default;
DROP TABLE public.shared CASCADE;
DROP TABLE public.events CASCADE;
ALTER DEFAULT PRIVILEGES FOR ROLE postgres IN SCHEMA app REVOKE SELECT ON TABLES FROM regress_dv_other;
DROP SCHEMA app CASCADE;
DROP OWNED BY regress_dv_owner, regress_dv_reader, regress_dv_other;
DROP ROLE regress_dv_owner, regress_dv_reader, regress_dv_other;
