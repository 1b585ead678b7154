-- Review 2: expand_column() of a column whose name holds a double quote. The default up and
-- down name it quoted ("we""ird"), the trigger declared only the columns whose names occur in
-- the text as written: the column was not declared, the expand succeeded, and every later
-- write to the table failed (42703).
CREATE EXTENSION migrate;
CREATE ROLE regress_r2n_owner LOGIN;
GRANT CREATE ON SCHEMA public TO regress_r2n_owner;
CREATE TABLE r2n (id int PRIMARY KEY, "we""ird
Col" int);
INSERT INTO r2n SELECT g, g FROM generate_series(1, 10) g;
ALTER TABLE r2n OWNER TO regress_r2n_owner;
SET ROLE regress_r2n_owner;
SELECT migrate.expand_column('r2n', E'we"ird\nCol', new_type => 'bigint') IS NOT NULL AS queued;
SELECT migrate.expand_column('r2n', 'id', new_name => 'renamed"id') IS NOT NULL AS queued;
-- Writes go on, through both columns, and both sides stay in sync.
UPDATE r2n SET "we""ird
Col" = 100 WHERE id = 1;
INSERT INTO r2n (id, "we""ird
Col") VALUES (11, 11);
SELECT * FROM r2n WHERE id IN (1, 11) ORDER BY id;
-- A temporary table: the backfill's worker cannot read it; refused, nothing added.
CREATE TEMP TABLE r2n_temp (id int PRIMARY KEY, v int);
\set VERBOSITY sqlstate
SELECT migrate.expand_column('r2n_temp', 'v', new_type => 'bigint');
\set VERBOSITY verbose
SELECT count(*) AS columns FROM pg_attribute WHERE attrelid = 'r2n_temp'::regclass AND attnum > 0;
SELECT count(*) AS expansions FROM migrate.expansions WHERE old_column = 'v';
DROP TABLE r2n_temp;
RESET ROLE;
SET client_min_messages = error;
DROP EXTENSION migrate;
DROP TABLE r2n;
DROP FUNCTION "migrate_sync_r2n_we""ird
Col"(), "migrate_sync_r2n_id"();
REVOKE CREATE ON SCHEMA public FROM regress_r2n_owner;
DROP ROLE regress_r2n_owner;
