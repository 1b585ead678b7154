-- Adversarial cases for safe mode's dependent-view rebuild (src/dependent_views.rs): a role
-- with no privilege on a table plants a view on it, and a superuser's ALTER COLUMN ... TYPE
-- rebuilds that view. Whatever code of the view's author the rebuild reaches must run as the
-- author, never as the statement's user: no regress_ role becomes superuser.
CREATE EXTENSION migrate;
CREATE ROLE regress_av_att LOGIN;
CREATE SCHEMA av_att AUTHORIZATION regress_av_att;
CREATE TABLE public.av_accounts (id int, balance int);
INSERT INTO public.av_accounts VALUES (1, 10);
SET ROLE regress_av_att;
-- A domain whose CHECK calls the attacker's function: harmless as the attacker, and turns the
-- attacker into a superuser if it ever runs as one.
CREATE FUNCTION av_att.evil(text) RETURNS bool LANGUAGE plpgsql AS $$
BEGIN
  IF (SELECT rolsuper FROM pg_catalog.pg_roles WHERE rolname = current_user) THEN
    RAISE NOTICE 'evil() ran as a superuser';
    EXECUTE 'ALTER ROLE regress_av_att SUPERUSER';
  END IF;
  RETURN true;
END$$;
CREATE DOMAIN av_att.d AS text CHECK (av_att.evil(VALUE));
CREATE TYPE av_att.pair AS (a av_att.d);
-- 1. An array literal of the domain: parse analysis reads it with the domain's input, which
-- evaluates the CHECK (no SELECT on the table is needed to create the view).
CREATE VIEW av_att.v_array AS SELECT id, balance, '{x}'::av_att.d[] AS z FROM public.av_accounts;
-- 2. A composite literal with a field of the domain.
CREATE VIEW av_att.v_composite AS SELECT id, balance, '(x)'::av_att.pair AS p FROM public.av_accounts;
RESET ROLE;
GRANT SELECT ON public.av_accounts TO regress_av_att;
SET ROLE regress_av_att;
-- 3. A materialized view's index predicate: CREATE INDEX is parsed the same way.
CREATE MATERIALIZED VIEW av_att.mv AS SELECT id, balance FROM public.av_accounts;
CREATE INDEX mv_i ON av_att.mv (id) WHERE ('{x}'::av_att.d[] IS NOT NULL);
RESET ROLE;

SET migrate.safe_by_default = on;
ALTER TABLE public.av_accounts ALTER COLUMN balance TYPE bigint;
-- The views were rebuilt, still the attacker's, and the attacker is no superuser.
SELECT c.oid::regclass, pg_get_userbyid(c.relowner), a.atttypid::regtype
FROM pg_class c JOIN pg_attribute a ON a.attrelid = c.oid AND a.attname = 'balance'
WHERE c.relnamespace = 'av_att'::regnamespace ORDER BY c.relname;
SELECT rolname, rolsuper FROM pg_roles WHERE rolname LIKE 'regress_%' ORDER BY 1;
ALTER ROLE regress_av_att NOSUPERUSER;


-- 4. An overload planted beside a function a victim's view calls: the definition is parsed
-- again with the new column type, and av_util.fmt(bigint) would now be the best match for
-- av_util.fmt(amount), called by every reader and by REFRESH as the victim (42501, nothing
-- changed). An overload of a function's own owner (or built in) is taken as the new type's.
CREATE ROLE regress_av_victim;
CREATE SCHEMA av_util;
GRANT USAGE, CREATE ON SCHEMA av_util TO regress_av_att;
GRANT USAGE ON SCHEMA av_util TO regress_av_victim;
GRANT CREATE ON SCHEMA public TO regress_av_victim;
CREATE FUNCTION av_util.fmt(int) RETURNS text LANGUAGE sql IMMUTABLE AS $$SELECT $1::text$$;
CREATE FUNCTION av_util.fmt(text) RETURNS text LANGUAGE sql IMMUTABLE AS $$SELECT $1$$;
CREATE TABLE public.av_secret (s text);
INSERT INTO public.av_secret VALUES ('victim only');
CREATE TABLE public.av_ledger (id int, amount int);
INSERT INTO public.av_ledger VALUES (1, 5);
GRANT SELECT ON public.av_ledger, public.av_secret TO regress_av_victim;
SET ROLE regress_av_victim;
CREATE MATERIALIZED VIEW public.av_victim_mv AS
    SELECT id, av_util.fmt(amount) AS b FROM public.av_ledger;
SET ROLE regress_av_att;
CREATE TABLE av_util.loot (who name, s text);
GRANT INSERT ON av_util.loot TO PUBLIC;
CREATE FUNCTION av_util.fmt(bigint) RETURNS text LANGUAGE plpgsql AS $$
BEGIN
  INSERT INTO av_util.loot SELECT current_user, s FROM public.av_secret;
  RETURN $1::text;
END$$;
RESET ROLE;
ALTER TABLE public.av_ledger ALTER COLUMN amount TYPE bigint;
SELECT d.refobjid::regprocedure AS calls FROM pg_depend d JOIN pg_rewrite r ON r.oid = d.objid
WHERE r.ev_class = 'public.av_victim_mv'::regclass AND d.refclassid = 'pg_proc'::regclass
  AND d.refobjid::regprocedure::text LIKE 'av_util.%';
SELECT * FROM av_util.loot;
-- The same through a materialized view's index expression (evaluated by REFRESH as the owner).
CREATE FUNCTION av_util.ix(int) RETURNS int LANGUAGE sql IMMUTABLE AS $$SELECT $1$$;
CREATE FUNCTION av_util.ix(text) RETURNS int LANGUAGE sql IMMUTABLE AS $$SELECT 0$$;
CREATE TABLE public.av_ledger2 (id int, amount int);
INSERT INTO public.av_ledger2 VALUES (1, 5);
GRANT SELECT ON public.av_ledger2 TO regress_av_victim;
SET ROLE regress_av_victim;
CREATE MATERIALIZED VIEW public.av_victim_mv2 AS SELECT id, amount AS a FROM public.av_ledger2;
CREATE INDEX av_victim_mv2_ix ON public.av_victim_mv2 (av_util.ix(a));
SET ROLE regress_av_att;
CREATE FUNCTION av_util.ix(bigint) RETURNS int LANGUAGE plpgsql IMMUTABLE AS $$
BEGIN
  INSERT INTO av_util.loot SELECT current_user, s FROM public.av_secret;
  RETURN 1;
END$$;
RESET ROLE;
ALTER TABLE public.av_ledger2 ALTER COLUMN amount TYPE bigint;
SELECT pg_get_indexdef('public.av_victim_mv2_ix'::regclass);
SELECT * FROM av_util.loot;
DROP TABLE public.av_ledger2 CASCADE;
-- The same overload from the function's own owner is taken.
ALTER FUNCTION av_util.fmt(bigint) OWNER TO postgres;
ALTER TABLE public.av_ledger ALTER COLUMN amount TYPE bigint;
SELECT d.refobjid::regprocedure AS calls FROM pg_depend d JOIN pg_rewrite r ON r.oid = d.objid
WHERE r.ev_class = 'public.av_victim_mv'::regclass AND d.refclassid = 'pg_proc'::regclass
  AND d.refobjid::regprocedure::text LIKE 'av_util.%';
SELECT b FROM public.av_victim_mv;
SELECT count(*) FROM av_util.loot;
DROP TABLE public.av_ledger CASCADE;
DROP SCHEMA av_util CASCADE;

-- 5. Rebuilding another role's view runs that role's code in this session (the input of its
-- literals, REFRESH): not while the session has an open cursor, which FETCH reads with the
-- privileges of whoever opened it (24000), or an open large object (55006); nothing changed.
BEGIN;
DECLARE c CURSOR FOR SELECT s FROM public.av_secret;
ALTER TABLE public.av_accounts ALTER COLUMN balance TYPE numeric;
ROLLBACK;
BEGIN;
SELECT lo_create(424242);
SELECT lo_open(424242, 262144) AS fd;
ALTER TABLE public.av_accounts ALTER COLUMN balance TYPE numeric;
ROLLBACK;
-- The table's own views (owner postgres) are rebuilt with a cursor open: only its own code runs.
CREATE VIEW public.av_own AS SELECT id, balance FROM public.av_accounts;
BEGIN;
DROP VIEW av_att.v_array, av_att.v_composite;
DROP MATERIALIZED VIEW av_att.mv;
DECLARE c CURSOR FOR SELECT s FROM public.av_secret;
ALTER TABLE public.av_accounts ALTER COLUMN balance TYPE numeric;
SELECT atttypid::regtype FROM pg_attribute WHERE attrelid = 'public.av_own'::regclass AND attname = 'balance';
ROLLBACK;
DROP VIEW public.av_own;

-- 6. The owner creates its view again, so it needs CREATE on the schema even when a superuser
-- runs the change (42501, with a HINT); with it, the view is rebuilt.
CREATE SCHEMA av_ro;
GRANT USAGE ON SCHEMA av_ro TO regress_av_att;
CREATE VIEW av_ro.v AS SELECT id, balance FROM public.av_accounts;
ALTER VIEW av_ro.v OWNER TO regress_av_att;
ALTER TABLE public.av_accounts ALTER COLUMN balance TYPE numeric;
GRANT CREATE ON SCHEMA av_ro TO regress_av_att;
DROP VIEW av_att.v_array, av_att.v_composite;
DROP MATERIALIZED VIEW av_att.mv;
ALTER TABLE public.av_accounts ALTER COLUMN balance TYPE numeric;
SELECT pg_get_userbyid(relowner) FROM pg_class WHERE oid = 'av_ro.v'::regclass;
DROP SCHEMA av_ro CASCADE;

RESET migrate.safe_by_default;
DROP TABLE public.av_accounts CASCADE;
DROP SCHEMA av_att CASCADE;
DROP TABLE public.av_secret;
DROP OWNED BY regress_av_att, regress_av_victim;
DROP ROLE regress_av_att, regress_av_victim;
