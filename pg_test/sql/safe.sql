-- Safe mode: {"safe": true} (or migrate.safe_by_default = on) makes deploy() run the safe form
-- of a statement the guard would block. Timings and job ids vary, so deploy's NOTICE lines are
-- silenced and the history is shown with job ids masked; pg_test/system/tests/safe.rs checks
-- the locks under load.
CREATE EXTENSION migrate;
CREATE TABLE parent (id int PRIMARY KEY);
INSERT INTO parent SELECT g FROM generate_series(1, 100) g;
CREATE TABLE big (id int PRIMARY KEY, n int, ref int, note text);
INSERT INTO big SELECT g, g, 1 + g % 100, 'x' FROM generate_series(1, 50000) g;
ANALYZE parent, big;
CREATE VIEW safe_history AS
SELECT version, action, regexp_replace(detail, 'job [0-9]+', 'job N', 'g') AS detail,
       error_sqlstate
FROM migrate.history WHERE action NOT IN ('add', 'replace', 'remove') ORDER BY id;

-- The option: a boolean, checked at add().
SELECT migrate.add('0', 'SELECT 1', options => '{"safe": "yes"}');
SELECT migrate.add('0', 'SELECT 1', options => '{"saf": true}');
SELECT migrate.add('0', 'SELECT 1', options => '{"safe": false}');
SELECT migrate.add('0a', 'SELECT 1', options => '{"safe": true}');
SELECT migrate.add('0b', 'SELECT 1');
SELECT version, safe FROM migrate.migrations ORDER BY sort_key;
SELECT migrate.remove('0'), migrate.remove('0a'), migrate.remove('0b');

-- 1. CREATE INDEX -> CREATE INDEX CONCURRENTLY, by the worker. Comments, UNIQUE, a quoted
-- name and ONLY stay as written.
SELECT migrate.add('1', E'-- the index\nCREATE /* why */ UNIQUE INDEX "Big N" ON ONLY big (n);',
                   'DROP INDEX "Big N";', options => '{"safe": true}');
SET client_min_messages = warning;
CALL migrate.deploy('1');
RESET client_min_messages;
SELECT indexrelid::regclass AS index, indisvalid, indisunique FROM pg_index
WHERE indrelid = 'big'::regclass ORDER BY 1;
SELECT * FROM safe_history;

-- A failed build leaves no invalid index; the migration stays pending and deploy() resumes.
SELECT migrate.add('2', 'CREATE UNIQUE INDEX big_ref ON big (ref);', options => '{"safe": true}');
SET client_min_messages = warning;
CALL migrate.deploy('2');
RESET client_min_messages;
SELECT count(*) AS invalid_indexes FROM pg_index WHERE indrelid = 'big'::regclass AND NOT indisvalid;
SELECT version, state FROM migrate.status() WHERE version = '2';
SELECT migrate.add('2', 'CREATE INDEX big_ref ON big (ref);', options => '{"safe": true}');
SET client_min_messages = warning;
CALL migrate.deploy('2');
RESET client_min_messages;
SELECT indexrelid::regclass AS index, indisvalid FROM pg_index
WHERE indrelid = 'big'::regclass AND indexrelid = 'big_ref'::regclass;

-- 2. ADD FOREIGN KEY / CHECK -> NOT VALID (named as PostgreSQL would), then VALIDATE; here
-- with the setting instead of the option.
SET migrate.safe_by_default = on;
SELECT migrate.add('3', E'ALTER TABLE big ADD FOREIGN KEY (ref) REFERENCES parent (id);\nALTER TABLE big ADD CHECK (n > 0) -- positive\n;\nALTER TABLE big ADD CONSTRAINT "Note set" CHECK (note <> '''');');
SET client_min_messages = warning;
CALL migrate.deploy('3');
RESET client_min_messages;
SELECT conname, contype, convalidated FROM pg_constraint
WHERE conrelid = 'big'::regclass AND contype IN ('c', 'f') ORDER BY conname;
SELECT detail FROM safe_history WHERE version = '3';

-- 3. SET NOT NULL -> CHECK NOT VALID, VALIDATE, SET NOT NULL, DROP the CHECK.
SELECT migrate.add('4', 'ALTER TABLE big ALTER COLUMN note SET NOT NULL;');
SET client_min_messages = warning;
CALL migrate.deploy('4');
RESET client_min_messages;
SELECT attnotnull FROM pg_attribute WHERE attrelid = 'big'::regclass AND attname = 'note';
SELECT count(*) AS leftover_checks FROM pg_constraint
WHERE conrelid = 'big'::regclass AND contype = 'c' AND conname LIKE 'big_note_not_null%';
SELECT detail FROM safe_history WHERE version = '4';

-- {"safe": false} wins over the setting: the guard blocks as always.
SELECT migrate.add('5', 'ALTER TABLE big ALTER COLUMN n SET NOT NULL;', options => '{"safe": false}');
\set VERBOSITY verbose
CALL migrate.deploy('5');
-- What has no safe form is refused before anything runs, with the guard's reason: an ALTER
-- TABLE with several subcommands, a rule with no safe form yet.
SELECT migrate.add('5', E'CREATE INDEX big_note ON big (note);\nALTER TABLE big ALTER COLUMN n SET NOT NULL, ADD CHECK (n < 0);');
CALL migrate.deploy('5');
SELECT migrate.add('5', E'CREATE INDEX big_note ON big (note);\nALTER TABLE big ADD COLUMN r bigint GENERATED ALWAYS AS IDENTITY;');
CALL migrate.deploy('5');
\set VERBOSITY default
SELECT to_regclass('big_note') IS NULL AS nothing_ran,
       (SELECT attnotnull FROM pg_attribute WHERE attrelid = 'big'::regclass AND attname = 'n') AS n_not_null;
-- A rule the migration permits is not rewritten.
SELECT migrate.add('5', E'-- migrate:allow index_not_concurrent the test says so\nCREATE INDEX big_note ON big (note);');
SET client_min_messages = warning;
CALL migrate.deploy('5');
RESET client_min_messages;
SELECT version, action, detail, error_sqlstate FROM safe_history WHERE version = '5';

-- apply() runs in the caller's transaction, where no concurrent form can run: safe mode does
-- not rewrite there, and the guard blocks as always.
SELECT migrate.add('6', 'CREATE INDEX big_n2 ON big (n);');
\set VERBOSITY verbose
SELECT * FROM migrate.apply();
\set VERBOSITY default
SELECT version, state, transactional FROM migrate.status() ORDER BY version;

SELECT migrate.remove('6');
RESET migrate.safe_by_default;

-- Comments between statements stay with them in the worker's script; the rewritten script is
-- recorded with the migration; a statement on a small (here: new) table is not rewritten.
SELECT migrate.add('7', E'CREATE TABLE side (a int);\n-- a note; with a semicolon\nCREATE INDEX side_a ON side (a);\n/* the big one */ CREATE INDEX big_n3 ON big (n);', options => '{"safe": true}');
SET client_min_messages = warning;
CALL migrate.deploy('7');
RESET client_min_messages;
SELECT regexp_replace(safe_script, 'sha256:[0-9a-f]+', 'sha256:...') AS safe_script
FROM migrate.migrations WHERE version = '7';
SELECT version, state FROM migrate.status() WHERE version = '7';

-- A step that fails (a row breaks the new CHECK): the constraint is added NOT VALID, VALIDATE
-- fails; once the row is fixed, deploy() resumes at VALIDATE with the same constraint name
-- (the unfinished job's script, not a new choice that would add a second constraint).
SELECT migrate.add('8', 'ALTER TABLE big ADD CHECK (n < 50000);', options => '{"safe": true}');
SET client_min_messages = warning;
\set VERBOSITY verbose
CALL migrate.deploy('8');
\set VERBOSITY default
SELECT conname, convalidated FROM pg_constraint
WHERE conrelid = 'big'::regclass AND conname LIKE 'big_n_check%' ORDER BY conname;
DELETE FROM big WHERE n >= 50000;
CALL migrate.deploy('8');
RESET client_min_messages;
SELECT conname, convalidated FROM pg_constraint
WHERE conrelid = 'big'::regclass AND conname LIKE 'big_n_check%' ORDER BY conname;
SELECT version, action, detail, error_sqlstate FROM safe_history WHERE version = '8';

-- plan() shows the steps deploy() will run, each with the table lock it takes, and the
-- refusal of what has no safe form.
CREATE TABLE other (id int, v int);
INSERT INTO other SELECT g, g FROM generate_series(1, 20000) g;
ANALYZE other;
SELECT migrate.add('9', E'CREATE INDEX other_v ON other (v);\nALTER TABLE other ADD CHECK (v > 0);\nALTER TABLE other ALTER COLUMN id SET NOT NULL;', options => '{"safe": true}');
SELECT version, statement, sql, executed, locks, error FROM migrate.plan();
SELECT migrate.add('9', 'ALTER TABLE other ADD COLUMN r float8 DEFAULT random();', options => '{"safe": true}');
SELECT version, statement, sql, error FROM migrate.plan();
SELECT migrate.remove('9');

-- 4. ADD UNIQUE / ADD PRIMARY KEY -> CREATE UNIQUE INDEX CONCURRENTLY (named as PostgreSQL
-- names the constraint's index), the key columns made NOT NULL the safe way for a primary
-- key, then ADD CONSTRAINT ... USING INDEX.
SELECT migrate.add('10', 'ALTER TABLE other ADD UNIQUE (v) INCLUDE (id);', options => '{"safe": true}');
SELECT migrate.add('11', 'ALTER TABLE other ADD PRIMARY KEY (id);', options => '{"safe": true}');
SELECT version, statement, sql, locks FROM migrate.plan();
SET client_min_messages = warning;
CALL migrate.deploy();
RESET client_min_messages;
SELECT conname, contype, convalidated, conindid::regclass AS index FROM pg_constraint
WHERE conrelid = 'other'::regclass AND contype IN ('u', 'p', 'c') ORDER BY conname;
SELECT indexrelid::regclass AS index, indisvalid, indisunique, indisprimary FROM pg_index
WHERE indrelid = 'other'::regclass ORDER BY 1;
SELECT attnotnull FROM pg_attribute WHERE attrelid = 'other'::regclass AND attname = 'id';
SELECT version, state FROM migrate.status() WHERE version IN ('10', '11') ORDER BY version;

-- The option is safe mode for everything that reads it while the migration runs: here the
-- dependent-view rebuild around a type change (without it: PostgreSQL's 0A000).
CREATE TABLE vt (id int, price int);
CREATE VIEW vt_v AS SELECT id, price FROM vt;
SELECT migrate.add('12', 'ALTER TABLE vt ALTER COLUMN price TYPE bigint;');
CALL migrate.deploy('12');
SELECT migrate.add('12', 'ALTER TABLE vt ALTER COLUMN price TYPE bigint;', options => '{"safe": true}');
SET client_min_messages = warning;
CALL migrate.deploy('12');
RESET client_min_messages;
SELECT format_type(atttypid, atttypmod) AS view_price FROM pg_attribute
WHERE attrelid = 'vt_v'::regclass AND attname = 'price';

-- 5. ADD COLUMN ... DEFAULT <volatile> -> the column added without its default (instant),
-- SET DEFAULT (new rows get it from now on), the existing rows filled by a backfill job that
-- the worker queues and waits for (it walks the primary key and skips rows that have a value),
-- then NOT NULL the safe way. A trigger counts the updates: every row once per fill, also a
-- row whose expression yields NULL.
CREATE TABLE fill (id int PRIMARY KEY, n int);
INSERT INTO fill SELECT g, g FROM generate_series(1, 30000) g;
ANALYZE fill;
CREATE TABLE fill_updates (id int);
CREATE FUNCTION count_update() RETURNS trigger LANGUAGE plpgsql AS
  $$BEGIN INSERT INTO fill_updates VALUES (NEW.id); RETURN NEW; END$$;
CREATE TRIGGER count_update AFTER UPDATE ON fill FOR EACH ROW EXECUTE FUNCTION count_update();
SELECT migrate.add('13', E'-- a weight\nALTER TABLE fill ADD COLUMN w float8 NOT NULL DEFAULT 1 + random() /* >= 1 */;\nALTER TABLE fill ADD COLUMN maybe int DEFAULT nullif((random() * 0)::int, 0);', options => '{"safe": true}');
SELECT version, statement, sql, locks FROM migrate.plan();
-- The fill's batches wait for locks as long as the deploy's steps (its migrate.lock_timeout).
SET migrate.lock_timeout = '750ms';
SET client_min_messages = warning;
CALL migrate.deploy('13');
RESET client_min_messages;
RESET migrate.lock_timeout;
SELECT settings->>'lock_timeout_ms' AS fill_lock_timeout_ms FROM migrate.job_queue
WHERE table_name = 'public.fill' ORDER BY id;
SELECT count(*) AS rows, count(w) AS filled, min(w) >= 1 AS from_default, count(maybe) AS maybe_set
FROM fill;
SELECT count(*) AS updates, count(DISTINCT id) AS rows_updated FROM fill_updates;
SELECT a.attname, a.attnotnull, pg_get_expr(d.adbin, d.adrelid) AS "default"
FROM pg_attribute a LEFT JOIN pg_attrdef d ON d.adrelid = a.attrelid AND d.adnum = a.attnum
WHERE a.attrelid = 'fill'::regclass AND a.attnum > 0 ORDER BY a.attnum;
SELECT count(*) AS leftover_checks FROM pg_constraint WHERE conrelid = 'fill'::regclass AND contype = 'c';
SELECT kind, state, rows_done FROM migrate.jobs WHERE table_name = 'public.fill' ORDER BY id;
SELECT regexp_replace(safe_script, 'sha256:[0-9a-f]+', 'sha256:...') AS safe_script
FROM migrate.migrations WHERE version = '13';
SELECT detail FROM safe_history WHERE version = '13';

-- What has no safe form is refused (09000) before anything runs: a table without a key to
-- walk, another clause on the new column, IF NOT EXISTS.
CREATE TABLE nokey (a int);
INSERT INTO nokey SELECT g FROM generate_series(1, 20000) g;
ANALYZE nokey;
\set VERBOSITY verbose
SELECT migrate.add('14', 'ALTER TABLE nokey ADD COLUMN r float8 DEFAULT random();', options => '{"safe": true}');
CALL migrate.deploy('14');
SELECT migrate.add('14', 'ALTER TABLE fill ADD COLUMN u uuid DEFAULT gen_random_uuid() UNIQUE;', options => '{"safe": true}');
CALL migrate.deploy('14');
SELECT migrate.add('14', 'ALTER TABLE fill ADD COLUMN IF NOT EXISTS u float8 DEFAULT random();', options => '{"safe": true}');
CALL migrate.deploy('14');
\set VERBOSITY default
SELECT count(*) AS nothing_added FROM pg_attribute
WHERE attrelid IN ('fill'::regclass, 'nokey'::regclass) AND attname IN ('u', 'r');
SELECT version, state FROM migrate.status() WHERE version = '14';
SELECT migrate.remove('14');

-- On a 0.1.0 schema (the library updated, ALTER EXTENSION migrate UPDATE not run yet) safe
-- mode is off: the option is refused, the setting changes nothing, the guard blocks.
SET client_min_messages = warning;
DROP EXTENSION migrate CASCADE;
CREATE EXTENSION migrate VERSION '0.1.0';
RESET client_min_messages;
ANALYZE big;
SELECT migrate.add('1', 'CREATE INDEX big_n4 ON big (n);', options => '{"safe": true}');
SELECT migrate.add('1', 'CREATE INDEX big_n4 ON big (n);');
SET migrate.safe_by_default = on;
SET client_min_messages = warning;
CALL migrate.deploy();
RESET client_min_messages;
SELECT to_regclass('big_n4') IS NULL AS not_built;
