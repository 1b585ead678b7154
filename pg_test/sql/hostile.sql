-- Install-script and API hygiene: hostile functions and operators planted in public, first on
-- the search_path, must never be called by CREATE EXTENSION or by the API.
CREATE TABLE public.trap (what text);
CREATE FUNCTION public.trap(what text) RETURNS void LANGUAGE sql
    AS $$ INSERT INTO public.trap VALUES (what) $$;

-- Same names and argument types as what the extension calls.
CREATE FUNCTION public.now() RETURNS timestamptz LANGUAGE plpgsql
    AS $$ BEGIN PERFORM public.trap('now'); RETURN pg_catalog.now(); END $$;
CREATE FUNCTION public.clock_timestamp() RETURNS timestamptz LANGUAGE plpgsql
    AS $$ BEGIN PERFORM public.trap('clock_timestamp'); RETURN pg_catalog.now(); END $$;
CREATE FUNCTION public.nextval(regclass) RETURNS bigint LANGUAGE plpgsql
    AS $$ BEGIN PERFORM public.trap('nextval'); RETURN 1; END $$;
CREATE FUNCTION public.pg_advisory_xact_lock(bigint) RETURNS void LANGUAGE plpgsql
    AS $$ BEGIN PERFORM public.trap('pg_advisory_xact_lock'); END $$;
CREATE FUNCTION public.inet_client_addr() RETURNS inet LANGUAGE plpgsql
    AS $$ BEGIN PERFORM public.trap('inet_client_addr'); RETURN NULL; END $$;
CREATE FUNCTION public.pg_extension_config_dump(regclass, text) RETURNS void LANGUAGE plpgsql
    AS $$ BEGIN PERFORM public.trap('pg_extension_config_dump'); END $$;
CREATE FUNCTION public.hostile_eq(text, text) RETURNS boolean LANGUAGE plpgsql
    AS $$ BEGIN PERFORM public.trap('text ='); RETURN $1 OPERATOR(pg_catalog.=) $2; END $$;
CREATE OPERATOR public.= (LEFTARG = text, RIGHTARG = text, FUNCTION = public.hostile_eq);
CREATE FUNCTION public.hostile_bytea_eq(bytea, bytea) RETURNS boolean LANGUAGE plpgsql
    AS $$ BEGIN PERFORM public.trap('bytea ='); RETURN $1 OPERATOR(pg_catalog.=) $2; END $$;
CREATE OPERATOR public.= (LEFTARG = bytea, RIGHTARG = bytea, FUNCTION = public.hostile_bytea_eq);
CREATE FUNCTION public.hostile_minus(timestamptz, timestamptz) RETURNS interval LANGUAGE plpgsql
    AS $$ BEGIN PERFORM public.trap('timestamptz -'); RETURN $1 OPERATOR(pg_catalog.-) $2; END $$;
CREATE OPERATOR public.- (LEFTARG = timestamptz, RIGHTARG = timestamptz, FUNCTION = public.hostile_minus);

-- public before pg_catalog: unqualified names would resolve to the planted objects.
SET search_path = public, pg_catalog;
SELECT 'a'::text = 'a'::text AS planted_operator_works;
SELECT * FROM public.trap;
TRUNCATE public.trap;

CREATE EXTENSION migrate;
SELECT migrate.add('1', 'CREATE TABLE public.t1 (id int)', 'DROP TABLE public.t1');
SELECT migrate.add('2', 'CREATE TABLE public.t2 (id int)', 'DROP TABLE public.t2', NULL, '{"requires": ["1"]}');
SELECT version FROM migrate.apply();
SELECT version, state, checksum_ok FROM migrate.status();
SELECT * FROM migrate.validate();
SELECT version, action FROM migrate.history ORDER BY id;
SELECT version FROM migrate.rollback_to('1');
SELECT migrate.add('1', 'CREATE TABLE public.t1 (id int)', 'DROP TABLE IF EXISTS public.t1');
SELECT version FROM migrate.rollback(1);
SELECT migrate.baseline('2');
-- adopt() reads another tool's table and validate() compares it with the registry.
CREATE TABLE public.__diesel_schema_migrations (version varchar(50) PRIMARY KEY NOT NULL, run_on timestamp NOT NULL);
INSERT INTO public.__diesel_schema_migrations
VALUES ('1', '2024-01-01'), ('2', '2024-01-02'), ('3', '2024-01-03');
SELECT migrate.add('3', 'CREATE TABLE public.t3 (id int)');
SELECT version, outcome FROM migrate.adopt('diesel');
SELECT migrate.add('4', 'CREATE TABLE public.t4 (id int)');
SELECT version FROM migrate.apply();
SELECT version, problem FROM migrate.validate();
SELECT migrate.end_adoption('diesel');

-- Nothing planted was called.
SELECT * FROM public.trap;
