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

RESET migrate.safe_by_default;
DROP TABLE public.av_accounts CASCADE;
DROP SCHEMA av_att CASCADE;
DROP OWNED BY regress_av_att;
DROP ROLE regress_av_att;
