-- Expand/contract columns: expand_column() adds the new column, a sync trigger and a backfill;
-- contract_column() is refused until the backfill succeeded, then drops the old column and
-- moves the name; undo_expand_column() is an expand's down script. Every bad input is refused
-- with its SQLSTATE and changes nothing.
CREATE EXTENSION migrate;
CREATE ROLE regress_ex_owner LOGIN;
CREATE ROLE regress_ex_other LOGIN;
CREATE TABLE orders (id int PRIMARY KEY, total numeric NOT NULL DEFAULT 0, note text);
INSERT INTO orders SELECT g, g * 1.25, 'n' || g FROM generate_series(1, 2000) g;
CREATE TABLE people (id int PRIMARY KEY, fullname text);
INSERT INTO people SELECT g, 'p' || g FROM generate_series(1, 500) g;
CREATE TABLE tags (id int PRIMARY KEY, label varchar(20));
INSERT INTO tags SELECT g, 't' || g FROM generate_series(1, 300) g;
CREATE TABLE odd (id int PRIMARY KEY, new int, v int);
CREATE TABLE items (id int PRIMARY KEY, sku text NOT NULL, qty int);
INSERT INTO items SELECT g, 's' || g, g % 7 FROM generate_series(1, 400) g;
CREATE INDEX items_sku ON items (sku);
CREATE UNIQUE INDEX items_qty_sku ON items (qty, sku) INCLUDE (id);
CREATE INDEX items_lower ON items (lower(sku));
ALTER TABLE items OWNER TO regress_ex_owner;
CREATE VIEW orders_v AS SELECT id, total FROM orders;
ALTER TABLE orders OWNER TO regress_ex_owner;
ALTER TABLE people OWNER TO regress_ex_owner;
ALTER TABLE tags OWNER TO regress_ex_owner;
ALTER TABLE odd OWNER TO regress_ex_owner;
ALTER VIEW orders_v OWNER TO regress_ex_owner;
GRANT SELECT, INSERT, UPDATE ON orders, people TO regress_ex_other;
CREATE SCHEMA locked;
GRANT USAGE ON SCHEMA locked TO regress_ex_owner;
CREATE TABLE locked.t (id int PRIMARY KEY, v int);
ALTER TABLE locked.t OWNER TO regress_ex_owner;
GRANT CREATE ON SCHEMA public TO regress_ex_owner;

-- Bad input: each a clear SQLSTATE, nothing added.
SET ROLE regress_ex_owner;
SELECT migrate.expand_column(NULL, 'total', 'x');
SELECT migrate.expand_column('orders', NULL, 'x');
SELECT migrate.expand_column('orders', 'nope', 'x');
SELECT migrate.expand_column('orders', 'total');
SELECT migrate.expand_column('orders', 'total', 'total');
SELECT migrate.expand_column('orders', 'total', 'note');
SELECT migrate.expand_column('orders_v', 'total', 'x');
SELECT migrate.expand_column('odd', 'v', 'w', up => 'coalesce(new, v)');
SELECT migrate.expand_column('orders', 'total', new_type => 'bigint; DROP TABLE orders');
SELECT migrate.expand_column('orders', 'total', new_type => 'bigint NOT NULL');
SELECT migrate.expand_column('orders', 'total', new_type => 'bigint --');
SELECT migrate.expand_column('orders', 'total', new_type => 'no_such_type');
SELECT migrate.expand_column('orders', 'total', new_type => 'date');
-- up and down are one expression each: nothing smuggled after them.
SELECT migrate.expand_column('orders', 'total', 'total_cents', 'bigint', up => '(total * 100)::bigint FROM orders; DROP TABLE orders; --');
SELECT migrate.expand_column('orders', 'total', 'total_cents', 'bigint', up => '1, 2');
SELECT migrate.expand_column('orders', 'total', 'total_cents', 'bigint', up => '1 AS x');
SELECT migrate.expand_column('orders', 'total', 'total_cents', 'bigint', up => '(total * 100');
SELECT migrate.expand_column('orders', 'total', 'total_cents', 'bigint', up => '   ');
SELECT migrate.expand_column('orders', 'total', 'total_cents', 'bigint', up => '(total * 100)::bigint) + (1');
-- A type the expression cannot produce; a column that does not exist.
SELECT migrate.expand_column('orders', 'total', 'total_cents', 'bigint', up => 'total > 0');
SELECT migrate.expand_column('orders', 'total', 'total_cents', 'bigint', up => 'nope * 100');
SELECT migrate.expand_column('orders', 'total', 'total_cents', 'bigint', up => '(total * 100)::bigint', down => 'total_cents::date');
-- The trigger runs as every writer: no schema on the path that every role may create in.
RESET ROLE;
GRANT CREATE ON SCHEMA public TO PUBLIC;
SET ROLE regress_ex_owner;
SELECT migrate.expand_column('orders', 'total', 'total_cents', 'bigint');
RESET ROLE;
REVOKE CREATE ON SCHEMA public FROM PUBLIC;
SET ROLE regress_ex_owner;
-- The trigger function lives in the table's schema: the caller must be able to create it.
SELECT migrate.expand_column('locked.t', 'v', 'w');
RESET ROLE;
-- Only the table owner (or a member) expands it.
SET ROLE regress_ex_other;
SELECT migrate.expand_column('orders', 'total', 'total_cents', 'bigint');
RESET ROLE;
SELECT count(*) AS expansions, (SELECT count(*) FROM migrate.jobs) AS jobs FROM migrate.expansions;
SELECT attname FROM pg_attribute WHERE attrelid = 'orders'::regclass AND attnum > 0 ORDER BY attnum;

-- A type change and a rename at once. The job starts at commit: inside the transaction the
-- backfill has not run, so the trigger alone is seen, and the gate is closed.
SET ROLE regress_ex_owner;
BEGIN;
SELECT migrate.expand_column('orders', 'total', 'total_cents', 'bigint',
                             up => '(total * 100)::bigint', down => 'total_cents / 100.0') AS job \gset
SELECT "table", old_column, new_column, old_type, new_type, job_id = :job AS job_ok, phase
FROM migrate.expansions;
-- The new column is nullable, without a default; NOT NULL is a CHECK for new writes.
SELECT attname, format_type(atttypid, atttypmod), attnotnull, atthasdef
FROM pg_attribute WHERE attrelid = 'orders'::regclass AND attname = 'total_cents';
SELECT conname, convalidated, pg_get_constraintdef(oid) FROM pg_constraint
WHERE conrelid = 'orders'::regclass AND contype = 'c';
-- The trigger function: security invoker, owned by the table owner, pinned search_path.
SELECT p.proname, p.prosecdef, pg_get_userbyid(p.proowner) AS owner, p.proconfig
FROM pg_proc p WHERE p.proname = 'migrate_sync_orders_total';
SELECT tgname FROM pg_trigger WHERE tgrelid = 'orders'::regclass AND NOT tgisinternal;
-- Old application: writes total only.
INSERT INTO orders (id, total) VALUES (10001, 2.5);
UPDATE orders SET total = 7 WHERE id = 1;
-- New application: writes total_cents only (total gets its default, then down wins).
INSERT INTO orders (id, total_cents) VALUES (10002, 990);
UPDATE orders SET total_cents = 1234 WHERE id = 2;
-- Both in one UPDATE: the new column wins.
UPDATE orders SET total = 1, total_cents = 5000 WHERE id = 3;
-- Neither, on a row the backfill has not reached: the trigger fills the new column.
UPDATE orders SET note = 'touched' WHERE id = 4;
SELECT id, total, total_cents FROM orders WHERE id IN (1, 2, 3, 4, 5, 10001, 10002) ORDER BY id;
-- A second open expand of the column, or of its new column, is refused.
SAVEPOINT s;
SELECT migrate.expand_column('orders', 'total', 'total2');
ROLLBACK TO s;
SELECT migrate.expand_column('orders', 'total_cents', 'total3');
ROLLBACK TO s;
-- The gate: the backfill has not run (deploy() waits for the job named in the hint).
SELECT migrate.contract_column('orders', 'total');
ROLLBACK;
-- The rolled-back transaction left nothing.
SELECT count(*) AS expansions FROM migrate.expansions;

-- The same, committed: the backfill runs, then the contract.
SELECT migrate.expand_column('orders', 'total', 'total_cents', 'bigint',
                             up => '(total * 100)::bigint', down => 'total_cents / 100.0') AS job \gset
-- Writers that may write the table but do not own it go through the trigger as themselves.
RESET ROLE;
SET ROLE regress_ex_other;
INSERT INTO orders (id, total) VALUES (20001, 3.5);
INSERT INTO orders (id, total_cents) VALUES (20002, 150);
RESET ROLE;
CALL migrate.wait_job(:job);
SELECT phase FROM migrate.expansions WHERE old_column = 'total';
SELECT count(*) FILTER (WHERE total_cents IS DISTINCT FROM (total * 100)::bigint) AS out_of_sync,
       count(*) AS total_rows FROM orders;
-- contract: the name of an expansion's new column, a column without one, an index on the old
-- one it did not record (refused); then the contract, which rebuilds the view on the old column.
SET ROLE regress_ex_owner;
SELECT migrate.contract_column('orders', 'total_cents');
SELECT migrate.contract_column('orders', 'note');
CREATE INDEX orders_total ON orders (total);
SELECT migrate.contract_column('orders', 'total');
DROP INDEX orders_total;
SELECT migrate.contract_column('orders', 'total');
-- The view now reads the new column, under its old output name, with its owner.
SELECT pg_get_viewdef('orders_v'::regclass, true) LIKE '%total_cents AS total%' AS reads_new_column,
       (SELECT relowner::regrole FROM pg_class WHERE oid = 'orders_v'::regclass) AS owner;
SELECT * FROM orders_v WHERE id = 1;
DROP VIEW orders_v;
SELECT phase FROM migrate.expansions WHERE old_column = 'total';
-- total_cents is NOT NULL (the CHECK promoted and dropped) with the old default, carried over.
SELECT attname, format_type(atttypid, atttypmod), attnotnull,
       pg_get_expr(d.adbin, d.adrelid) AS default
FROM pg_attribute a LEFT JOIN pg_attrdef d ON d.adrelid = a.attrelid AND d.adnum = a.attnum
WHERE a.attrelid = 'orders'::regclass AND a.attnum > 0 AND NOT a.attisdropped ORDER BY a.attnum;
SELECT count(*) AS checks FROM pg_constraint WHERE conrelid = 'orders'::regclass AND contype = 'c';
SELECT count(*) AS sync_functions FROM pg_proc WHERE proname LIKE 'migrate_sync_%';
INSERT INTO orders (id) VALUES (30001);
SELECT total_cents FROM orders WHERE id IN (1, 30001) ORDER BY id;
SELECT migrate.contract_column('orders', 'total');

-- A type change that keeps the name: a shadow column takes it at contract.
SELECT migrate.expand_column('people', 'fullname', new_type => 'varchar(200)') AS job \gset
SELECT new_column, new_type FROM migrate.expansions WHERE old_column = 'fullname';
INSERT INTO people (id, fullname) VALUES (501, 'old app');
INSERT INTO people (id, fullname_migrate_new) VALUES (502, 'new app');
RESET ROLE;
CALL migrate.wait_job(:job);
SET ROLE regress_ex_owner;
SELECT migrate.contract_column('people', 'fullname');
SELECT attname, format_type(atttypid, atttypmod) FROM pg_attribute
WHERE attrelid = 'people'::regclass AND attnum > 0 AND NOT attisdropped ORDER BY attnum;
SELECT id, fullname FROM people WHERE id IN (1, 501, 502) ORDER BY id;

-- Indexes: the old column's plain indexes are recreated on the new column by CREATE INDEX
-- CONCURRENTLY (outside a transaction: a non-transactional migration); the contract waits
-- until they are valid and gives them the old names. Others (an expression) are refused.
SELECT migrate.expand_column('items', 'sku', 'code') AS job \gset
RESET ROLE;
CALL migrate.wait_job(:job);
SET ROLE regress_ex_owner;
SELECT migrate.contract_column('items', 'sku');
CREATE INDEX CONCURRENTLY "items_sku_migrate_new" ON public.items USING "btree" ("code");
SELECT migrate.contract_column('items', 'sku');
CREATE UNIQUE INDEX CONCURRENTLY "items_qty_sku_migrate_new" ON public.items USING "btree" ("qty", "code") INCLUDE ("id");
SELECT migrate.contract_column('items', 'sku');
DROP INDEX items_lower;
SELECT migrate.contract_column('items', 'sku');
SELECT indexrelid::regclass AS index, pg_get_indexdef(indexrelid), indisvalid
FROM pg_index WHERE indrelid = 'items'::regclass ORDER BY 1;

-- undo_expand_column(): a rename undone; the column, the trigger and its function are gone,
-- the job cancelled or done, and the column may be expanded again.
SELECT migrate.undo_expand_column('tags', 'label');
SELECT migrate.expand_column('tags', 'label', 'title') AS job \gset
SELECT migrate.undo_expand_column('tags', 'title');
SELECT migrate.undo_expand_column('tags', 'label');
SELECT attname FROM pg_attribute WHERE attrelid = 'tags'::regclass AND attnum > 0 AND NOT attisdropped ORDER BY attnum;
SELECT count(*) AS triggers FROM pg_trigger WHERE tgrelid = 'tags'::regclass AND NOT tgisinternal;
SELECT state IN ('cancelled', 'succeeded') AS job_ended FROM migrate.jobs WHERE id = :job;
SELECT old_column, new_column, phase FROM migrate.expansions ORDER BY id;
RESET ROLE;

-- Through deploy(): the expand migration, the old column's index built on the new one by a
-- non-transactional migration, then the contract, in one deploy; deploy waits for the gate
-- itself (its NOTICE lines are silenced: whether it had to wait depends on timing).
CREATE INDEX tags_label ON tags (label);
SELECT migrate.add('1', $$SELECT migrate.expand_column('tags', 'label', 'title');$$,
                   $$SELECT migrate.undo_expand_column('tags', 'label');$$);
SELECT migrate.add('2', E'-- migrate:no-transaction\nCREATE INDEX CONCURRENTLY "tags_label_migrate_new" ON public.tags USING "btree" ("title");',
                   E'-- migrate:no-transaction\nDROP INDEX CONCURRENTLY "tags_label_migrate_new";');
SELECT migrate.add('3', $$SELECT migrate.contract_column('tags', 'label');$$);
-- plan(): the expand runs in the dry run; the contract after it meets the closed gate (the
-- dry run's backfill never runs), so plan() stops there with the gate's error. (Its generic
-- second HINT is plan()'s; deploy() itself waits at this gate, as below.)
SELECT version, statement, executed, locks, error FROM migrate.plan();
-- verify(): up, down (undo_expand_column), up again, rolled back: the schema round-trips.
SELECT version, ok, problem FROM migrate.verify('1');
SET client_min_messages = warning;
CALL migrate.deploy();
RESET client_min_messages;
SELECT version, state FROM migrate.status();
SELECT attname FROM pg_attribute WHERE attrelid = 'tags'::regclass AND attnum > 0 AND NOT attisdropped ORDER BY attnum;
SELECT count(*) FILTER (WHERE title IS NULL) AS unfilled FROM tags;
SELECT indexrelid::regclass AS index, pg_get_indexdef(indexrelid), indisvalid
FROM pg_index WHERE indrelid = 'tags'::regclass ORDER BY 1;
SELECT old_column, new_column, phase FROM migrate.expansions ORDER BY id;
SET client_min_messages = error;
DROP TABLE orders, people, tags, odd, items;
DROP SCHEMA locked CASCADE;
REVOKE CREATE ON SCHEMA public FROM regress_ex_owner;
DROP ROLE regress_ex_owner, regress_ex_other;
