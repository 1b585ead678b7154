-- needs: shared_preload_libraries = 'migrate'
-- Review 2: the expansion's backfill runs as the table owner, but with the caller's search_path
-- as text: "$user" then names the owner's schema, which the caller's checks never saw. A role
-- that may create schemas (a database owner) plants an operator in a schema named after the
-- table owner and it runs as the owner in the backfill.
CREATE EXTENSION migrate;
CREATE ROLE regress_r2_owner LOGIN;
CREATE ROLE regress_r2_mallory LOGIN;
REVOKE CREATE ON SCHEMA public FROM PUBLIC;
GRANT CREATE ON DATABASE regress_expand_search_path TO regress_r2_mallory;
CREATE TABLE r2_orders (id int PRIMARY KEY, total numeric NOT NULL DEFAULT 0);
INSERT INTO r2_orders SELECT g, g * 1.25 FROM generate_series(1, 20) g;
ALTER TABLE r2_orders OWNER TO regress_r2_owner;
CREATE TABLE r2_secret (v text);
INSERT INTO r2_secret VALUES ('owner only');
ALTER TABLE r2_secret OWNER TO regress_r2_owner;
CREATE TABLE r2_stolen (who text, v text);
GRANT INSERT ON r2_stolen TO PUBLIC;

-- Mallory: a schema named after the table owner, an exact-match numeric * integer.
SET ROLE regress_r2_mallory;
CREATE SCHEMA regress_r2_owner;
GRANT USAGE ON SCHEMA regress_r2_owner TO PUBLIC;
CREATE FUNCTION regress_r2_owner.mul(numeric, integer) RETURNS numeric LANGUAGE plpgsql AS $$
BEGIN
  INSERT INTO public.r2_stolen SELECT current_user, v FROM public.r2_secret;
  RETURN $1 OPERATOR(pg_catalog.*) $2::numeric;
END $$;
CREATE OPERATOR regress_r2_owner.* (LEFTARG = numeric, RIGHTARG = integer,
                                    FUNCTION = regress_r2_owner.mul);
RESET ROLE;

-- The superuser expands with the default path ("$user" is postgres here: no such schema).
SHOW search_path;
SELECT migrate.expand_column('r2_orders', 'total', new_type => 'bigint',
                             up => '(total * 100)::bigint', down => 'total_migrate_new / 100.0')
  AS job \gset
CALL migrate.wait_job(:job);
-- Nothing of the owner's may reach Mallory's code.
SELECT * FROM r2_stolen;
SELECT count(*) FILTER (WHERE total_migrate_new IS NULL) AS not_backfilled FROM r2_orders;
-- The job got the trigger's path: the caller's schemas as resolved and checked at expand time.
SELECT search_path FROM migrate.job_queue WHERE id = :job;
SELECT rolname FROM pg_roles WHERE rolname LIKE 'regress_r2%' AND rolsuper;
SET client_min_messages = error;
DROP EXTENSION migrate;
DROP SCHEMA regress_r2_owner CASCADE;
DROP TABLE r2_orders, r2_secret, r2_stolen;
DROP FUNCTION migrate_sync_r2_orders_total();
REVOKE CREATE ON DATABASE regress_expand_search_path FROM regress_r2_mallory;
DROP ROLE regress_r2_owner, regress_r2_mallory;
