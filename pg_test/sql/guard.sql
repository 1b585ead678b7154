-- Guardrails: every rule blocked on a big table, exempt on a small one and on one created in
-- the same transaction, permitted by migrate.allow(), and only warned about in warn mode; the
-- table_rewrite catch-all; lock_timeout for every DDL; the log; migrate.check().
CREATE EXTENSION migrate;
SET migrate.guard_min_rows = 1000;
CREATE TABLE big (id int PRIMARY KEY, email text, n int, code varchar(10));
INSERT INTO big SELECT g, 'user' || g, g, 'c' || g FROM generate_series(1, 2000) g;
CREATE TABLE small (id int PRIMARY KEY, email text, n int);
INSERT INTO small SELECT g, 'user' || g, g FROM generate_series(1, 10) g;
CREATE TABLE parent (id int PRIMARY KEY);
ANALYZE big, small, parent;
SELECT id, severity, lock, rewrites, scans, size_dependent FROM migrate.rules;

-- Blocked on the big table (SQLSTATE 09000), each with the safe alternative spelled out.
CREATE INDEX big_email ON big (email);
CREATE UNIQUE INDEX big_email_key ON big (email) WHERE n > 0;
ALTER TABLE big ADD COLUMN r float8 DEFAULT random();
ALTER TABLE big ADD COLUMN s serial;
ALTER TABLE big ADD COLUMN i bigint GENERATED ALWAYS AS IDENTITY;
ALTER TABLE big ADD COLUMN g int GENERATED ALWAYS AS (n * 2) STORED;
ALTER TABLE big ALTER COLUMN n TYPE bigint;
ALTER TABLE big ALTER COLUMN email TYPE text USING lower(email);
ALTER TABLE big ALTER COLUMN n SET NOT NULL;
ALTER TABLE big ADD CONSTRAINT big_parent FOREIGN KEY (n) REFERENCES parent (id);
ALTER TABLE big ADD CONSTRAINT big_n_positive CHECK (n > 0);
ALTER TABLE big ADD CONSTRAINT big_email_unique UNIQUE (email);
ALTER TABLE big ADD CONSTRAINT big_excl EXCLUDE USING btree (email WITH =);
ALTER TABLE big SET UNLOGGED;

-- Safe forms pass on the same table.
ALTER TABLE big ADD COLUMN note text;
ALTER TABLE big ADD COLUMN status text DEFAULT 'new';
ALTER TABLE big ADD COLUMN created_at timestamptz DEFAULT now();
ALTER TABLE big ALTER COLUMN code TYPE varchar(20);
ALTER TABLE big ALTER COLUMN code TYPE text;
ALTER TABLE big ADD CONSTRAINT big_parent FOREIGN KEY (n) REFERENCES parent (id) NOT VALID;
ALTER TABLE big ADD CONSTRAINT big_n_positive CHECK (n > 0) NOT VALID;
ALTER TABLE big VALIDATE CONSTRAINT big_n_positive;
ALTER TABLE big ADD CONSTRAINT big_n_not_null CHECK (n IS NOT NULL) NOT VALID;
ALTER TABLE big VALIDATE CONSTRAINT big_n_not_null;
ALTER TABLE big ALTER COLUMN n SET NOT NULL;
CREATE UNIQUE INDEX CONCURRENTLY big_email_idx ON big (email);
ALTER TABLE big ADD CONSTRAINT big_email_key UNIQUE USING INDEX big_email_idx;

-- The catch-all: a rewrite no parse-tree rule predicts (a domain with a volatile default).
CREATE DOMAIN noisy AS float8 DEFAULT random();
ALTER TABLE big ADD COLUMN x noisy;

-- Exempt: a small table, and a big table created in this transaction.
CREATE INDEX small_email ON small (email);
ALTER TABLE small ALTER COLUMN n TYPE bigint;
ALTER TABLE small ADD COLUMN r float8 DEFAULT random();
BEGIN;
CREATE TABLE fresh AS SELECT * FROM big;
CREATE INDEX fresh_email ON fresh (email);
ALTER TABLE fresh ALTER COLUMN n TYPE bigint;
DROP TABLE fresh;
COMMIT;

-- Every blocking rule, exempt on the small table (the same statements pass silently).
BEGIN;
CREATE INDEX small_email2 ON small (email);
ALTER TABLE small ADD COLUMN s serial;
ALTER TABLE small ADD COLUMN i bigint GENERATED ALWAYS AS IDENTITY;
ALTER TABLE small ADD COLUMN g int GENERATED ALWAYS AS (n * 2) STORED;
ALTER TABLE small ALTER COLUMN email TYPE text USING lower(email);
ALTER TABLE small ALTER COLUMN n SET NOT NULL;
ALTER TABLE small ADD CONSTRAINT small_self_fk FOREIGN KEY (id) REFERENCES small (id);
ALTER TABLE small ADD CONSTRAINT small_n_positive CHECK (n > 0);
ALTER TABLE small ADD CONSTRAINT small_email_unique UNIQUE (email);
ALTER TABLE small ADD CONSTRAINT small_excl EXCLUDE USING btree (email WITH =);
ALTER TABLE small SET UNLOGGED;
ALTER TABLE small ADD COLUMN x noisy;
ROLLBACK;

-- Every blocking rule, overridden on the big table with migrate.allow() (rolled back).
BEGIN;
SELECT migrate.allow(id, 'golden test of every override') FROM migrate.rules WHERE severity = 'block';
CREATE INDEX big_email ON big (email);
ALTER TABLE big ADD COLUMN r float8 DEFAULT random();
ALTER TABLE big ADD COLUMN s serial;
ALTER TABLE big ADD COLUMN i bigint GENERATED ALWAYS AS IDENTITY;
ALTER TABLE big ADD COLUMN g int GENERATED ALWAYS AS (n * 2) STORED;
ALTER TABLE big ALTER COLUMN email TYPE text USING lower(email);
ALTER TABLE big ALTER COLUMN status SET NOT NULL;
ALTER TABLE big ADD CONSTRAINT big_self_fk FOREIGN KEY (id) REFERENCES big (id);
ALTER TABLE big ADD CONSTRAINT big_check CHECK (n > 0);
ALTER TABLE big ADD CONSTRAINT big_email_unique UNIQUE (email);
ALTER TABLE big ADD CONSTRAINT big_excl EXCLUDE USING btree (email WITH =);
ALTER TABLE big SET UNLOGGED;
ALTER TABLE big ADD COLUMN x noisy;
ROLLBACK;

-- migrate.allow() permits one rule for the rest of the transaction, and the rewrite it implies.
BEGIN;
SELECT migrate.allow('alter_column_type', 'reporting table, read-only at night');
ALTER TABLE big ALTER COLUMN n TYPE bigint;
CREATE INDEX big_n ON big (n);
ROLLBACK;
BEGIN;
SELECT migrate.allow('table_rewrite', 'maintenance window');
ALTER TABLE big ADD COLUMN x noisy;
ROLLBACK;
SELECT migrate.allow('nope', 'x');
SELECT migrate.allow('index_not_concurrent', '');
SELECT migrate.allow(NULL, 'x');
SELECT migrate.allow('index_not_concurrent', 'autocommit');
CREATE INDEX big_email ON big (email);

-- Warn mode: everything passes with a WARNING (rolled back here).
BEGIN;
SET LOCAL migrate.guard = warn;
CREATE INDEX big_email2 ON big (email);
ALTER TABLE big ALTER COLUMN n TYPE bigint;
ROLLBACK;
-- Off: nothing.
BEGIN;
SET LOCAL migrate.guard = off;
CREATE INDEX big_email2 ON big (email);
ROLLBACK;

-- Destructive or breaking changes warn, whatever the size.
BEGIN;
ALTER TABLE small RENAME COLUMN email TO mail;
ALTER TABLE small RENAME TO tiny;
ALTER TABLE tiny DROP COLUMN n;
DROP TABLE tiny;
ROLLBACK;

-- lock_timeout: every guarded DDL runs with migrate.lock_timeout, unless the session's own is
-- lower and not 0; the session's value is back afterwards. A later event trigger shows it.
CREATE FUNCTION public.show_lock_timeout() RETURNS event_trigger LANGUAGE plpgsql AS $$
BEGIN RAISE NOTICE 'lock_timeout during %: %', tg_tag, current_setting('lock_timeout'); END $$;
CREATE EVENT TRIGGER zz_show_lock_timeout ON ddl_command_start EXECUTE FUNCTION public.show_lock_timeout();
ALTER TABLE small ADD COLUMN a int;
SET lock_timeout = '200ms';
ALTER TABLE small ADD COLUMN b int;
SET lock_timeout = '5s';
SET migrate.lock_timeout = '2s';
ALTER TABLE small ADD COLUMN c int;
SHOW lock_timeout;
RESET lock_timeout;
RESET migrate.lock_timeout;
CREATE INDEX CONCURRENTLY small_n ON small (n);
DROP EVENT TRIGGER zz_show_lock_timeout;

-- Through the registry: a blocked statement fails the migration; a -- migrate:allow line
-- permits its rule for that migration only.
SELECT migrate.add('1', 'CREATE INDEX big_n ON big (n)');
SELECT version FROM migrate.apply();
SELECT migrate.add('1', E'-- migrate:allow index_not_concurrent big is only read by the nightly report\nCREATE INDEX big_n ON big (n)');
SELECT version FROM migrate.apply();
SELECT migrate.add('2', E'-- migrate:allow no_such_rule because\nSELECT 1');
SELECT migrate.add('2', E'-- migrate:allow index_not_concurrent\nSELECT 1');

-- migrate.check(): lint without running, with the real catalog.
SELECT * FROM migrate.check($sql$
    CREATE INDEX ON big (note);
    ALTER TABLE big ADD COLUMN z uuid DEFAULT gen_random_uuid(), ALTER COLUMN note SET NOT NULL;
    CREATE INDEX ON small (n);
    CREATE INDEX CONCURRENTLY ON big (note);
    ALTER TABLE no_such_table ADD COLUMN y int;
    ALTER TABLE big ALTER COLUMN note TYPE no_such_type;
$sql$);
SELECT * FROM migrate.check('CREAT INDEX ON big (note)');
SELECT * FROM migrate.check(NULL);

-- Issue 15: precision. Statements PostgreSQL runs at once pass; the ones that scan, rewrite
-- or rebuild are blocked, sized by what they reach (rolled back).
BEGIN;
SET LOCAL migrate.guard = off;
CREATE TABLE typed (id int PRIMARY KEY, note varchar(100), code varchar(20), ts timestamp);
INSERT INTO typed SELECT g, 'n' || g, 'c' || g, now() FROM generate_series(1, 2000) g;
CREATE INDEX typed_lower_code ON typed (lower(code));
CREATE TABLE parted (id int, k int NOT NULL, v text) PARTITION BY RANGE (k);
CREATE TABLE parted_1 PARTITION OF parted FOR VALUES FROM (0) TO (1000);
CREATE TABLE parted_2 PARTITION OF parted FOR VALUES FROM (1000) TO (2001);
INSERT INTO parted SELECT g, g, 'v' FROM generate_series(1, 2000) g;
CREATE TABLE cand (id int, k int NOT NULL, v text);
CREATE TABLE cand_ok (id int, k int NOT NULL CHECK (k >= 5000 AND k < 6000), v text);
INSERT INTO cand SELECT g, 5000 + g % 100, 'v' FROM generate_series(1, 2000) g;
INSERT INTO cand_ok SELECT * FROM cand;
CREATE DOMAIN pos AS int;
CREATE DOMAIN pos_over AS pos;
CREATE TABLE dt (id int, p pos, q pos_over);
INSERT INTO dt SELECT g, g, g FROM generate_series(1, 2000) g;
COMMIT;
ANALYZE typed, parted, cand, cand_ok, dt;
BEGIN;
SET LOCAL TimeZone = 'UTC';
ALTER TABLE typed ADD COLUMN f int REFERENCES parent (id);
ALTER TABLE typed ALTER COLUMN note TYPE text USING "note"::text;
ALTER TABLE typed ALTER COLUMN ts TYPE timestamptz;
CREATE INDEX parted_v ON ONLY parted (v);
ALTER TABLE parted ATTACH PARTITION cand_ok FOR VALUES FROM (5000) TO (6000);
ALTER DOMAIN pos ADD CONSTRAINT pos_positive CHECK (VALUE > 0) NOT VALID;
ROLLBACK;
ALTER TABLE typed ADD COLUMN f int DEFAULT 0 REFERENCES parent (id);
ALTER TABLE typed ADD COLUMN u int UNIQUE;
ALTER TABLE typed ADD COLUMN k int CHECK (k > 0);
BEGIN;
SET LOCAL TimeZone = 'Europe/Paris';
ALTER TABLE typed ALTER COLUMN ts TYPE timestamptz;
ROLLBACK;
ALTER TABLE typed ALTER COLUMN code TYPE text USING code::text;
CREATE INDEX parted_v ON parted (v);
ALTER TABLE parted ALTER COLUMN v SET NOT NULL;
ALTER TABLE parted ATTACH PARTITION cand FOR VALUES FROM (5000) TO (6000);
ALTER DOMAIN pos ADD CONSTRAINT pos_positive CHECK (VALUE > 0);
ALTER DOMAIN pos SET NOT NULL;

-- Static advice from migrate.check(): info rows, never blocking.
SELECT statement, rule, severity, table_name, message FROM migrate.check($sql$
    CREATE TABLE orders (id serial PRIMARY KEY, placed timestamp, code varchar(12), flag char(1));
    CREATE TABLE order_items (id int PRIMARY KEY, order_id bigint REFERENCES orders (id), sku text);
    ALTER TABLE big ADD COLUMN org int;
    ALTER TABLE big ADD CONSTRAINT big_org FOREIGN KEY (org) REFERENCES parent (id) NOT VALID;
    CREATE INDEX ON big (org);
$sql$);

-- The log: blocked rows are written by a background worker in their own transaction.
CREATE FUNCTION public.wait_for_guard_log(n int) RETURNS void LANGUAGE plpgsql AS $$
BEGIN
    FOR i IN 1..200 LOOP
        EXIT WHEN (SELECT count(*) FROM migrate.guard_log WHERE action = 'blocked') >= n;
        PERFORM pg_sleep(0.05);
    END LOOP;
END $$;
SELECT public.wait_for_guard_log(28);
SELECT action, rule, table_name, count(*) FROM migrate.guard_log
GROUP BY action, rule, table_name ORDER BY action, rule, table_name;
SELECT action, rule, reason, statement FROM migrate.guard_log WHERE action = 'allowed' ORDER BY id;
SELECT DISTINCT role, mode FROM migrate.guard_log ORDER BY 1, 2;

-- Hints in the team's own tool's terms (migrate.tool), and where every tool's form is listed.
SELECT id, tools FROM migrate.rules WHERE tools IS NOT NULL ORDER BY id;
SELECT tool, advice FROM migrate.rule_advice WHERE rule = 'index_not_concurrent' ORDER BY tool;
BEGIN;
SET LOCAL migrate.tool = 'django';
CREATE INDEX big_tool ON big (email);
ROLLBACK;
BEGIN;
SET LOCAL migrate.tool = 'alembic';
SELECT rule, hint FROM migrate.check('ALTER TABLE big ADD CONSTRAINT big_n CHECK (n > 0)');
ROLLBACK;
SET migrate.tool = 'djagno';
SHOW migrate.tool;

-- A temporary table is seen by its own session only: nothing done to it blocks anyone, so no
-- rule applies, however big it is.
CREATE TEMP TABLE big_scratch AS SELECT g AS id, g AS n FROM generate_series(1, 2000) g;
ANALYZE big_scratch;
CREATE INDEX ON big_scratch (n);
ALTER TABLE big_scratch ALTER COLUMN n TYPE bigint;
ALTER TABLE big_scratch ALTER COLUMN n SET NOT NULL;
DROP TABLE big_scratch;

-- Dropping the extension drops its event triggers.
DROP EXTENSION migrate;
SELECT count(*) FROM pg_event_trigger WHERE evtname LIKE 'migrate%';
