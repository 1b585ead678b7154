-- Migrations ordered by their requirements (Alembic's and Django's histories): the order,
-- heads, merges and targets as status(), validate(), apply(), deploy() and plan() see them.
-- Timings vary: deploy's NOTICE lines are silenced where steps run (status() shows them).
CREATE EXTENSION migrate;

-- Alembic revision ids are random: a requirement often sorts after the migration that needs
-- it. The order puts every requirement first, version order only between independent ones.
SELECT migrate.add('ae1027a6acf', 'CREATE TABLE account (id int PRIMARY KEY)', 'DROP TABLE account', 'create account table');
SELECT migrate.add('1975ea83b712', 'ALTER TABLE account ADD COLUMN name text', 'ALTER TABLE account DROP COLUMN name', 'add name',
                   '{"requires": ["ae1027a6acf"]}');
SELECT migrate.add('27c6a30d7c24', 'CREATE TABLE invoice (id int PRIMARY KEY, account_id int REFERENCES account)', 'DROP TABLE invoice', 'create invoice',
                   '{"requires": ["1975ea83b712"]}');
SELECT version, name, state FROM migrate.status();
SELECT * FROM migrate.validate();

-- Two developers branch from the same revision: two heads. validate() names them; apply()
-- and deploy() without a target refuse (55000) and say how to merge; plan() too.
SELECT migrate.add('3a1f0e9b7d55', 'CREATE INDEX invoice_account ON invoice (account_id)', 'DROP INDEX invoice_account', 'index invoices',
                   '{"requires": ["27c6a30d7c24"]}');
SELECT migrate.add('0b9c4d2e8f13', 'ALTER TABLE account ADD COLUMN email text', 'ALTER TABLE account DROP COLUMN email', 'add email',
                   '{"requires": ["27c6a30d7c24"]}');
SELECT * FROM migrate.validate();
SELECT version FROM migrate.apply();
CALL migrate.deploy();
SELECT version, direction FROM migrate.plan();
SELECT version, action, error_sqlstate, error_message FROM migrate.history WHERE action = 'deploy';
-- Nothing changed.
SELECT version, state FROM migrate.status();

-- A target is one head: it and what it requires, nothing of the other branch.
SET client_min_messages = warning;
CALL migrate.deploy('0b9c4d2e8f13');
RESET client_min_messages;
SELECT version, state FROM migrate.status();
SELECT version FROM migrate.apply('3a1f0e9b7d55');
-- Both heads applied: nothing to do, but validate() still reports the unmerged heads.
CALL migrate.deploy();
SELECT problem, count(*) FROM migrate.validate() GROUP BY problem;

-- The merge migration (alembic merge heads) requires both: one head again.
SELECT migrate.add('5e2d7c1a9b04', 'SELECT 1', 'SELECT 1', 'merge heads', '{"requires": ["3a1f0e9b7d55", "0b9c4d2e8f13"]}');
SELECT * FROM migrate.validate();
SET client_min_messages = warning;
CALL migrate.deploy();
RESET client_min_messages;
SELECT version, name, state FROM migrate.status();

-- Back to a revision: what follows it goes down, the last in the order first; rollback(n)
-- takes the last n in the order.
SET client_min_messages = warning;
CALL migrate.deploy('1975ea83b712');
RESET client_min_messages;
SELECT version, state FROM migrate.status();
SELECT version FROM migrate.rollback(1);
SELECT version FROM migrate.apply();

-- A migration cannot leave while an applied one requires it: the order takes dependants first.
SELECT version FROM migrate.rollback_to('27c6a30d7c24');
SELECT version FROM migrate.rollback_to('ae1027a6acf');
SELECT to_regclass('invoice') IS NULL AS invoice_gone, count(*) AS account_columns
FROM pg_attribute WHERE attrelid = 'account'::regclass AND attnum > 0 AND NOT attisdropped;

-- Django: versions app_label.migration_name. Each app is a branch: two apps are not two
-- heads, a new app's first migration is not out of order, and a target in one app leaves the
-- other apps' migrations that only need its earlier ones alone.
SELECT migrate.add('blog.0001_initial', 'CREATE TABLE blog_post (id int PRIMARY KEY)', 'DROP TABLE blog_post', 'initial');
SELECT migrate.add('blog.0002_title', 'ALTER TABLE blog_post ADD COLUMN title text', 'ALTER TABLE blog_post DROP COLUMN title', 'title',
                   '{"requires": ["blog.0001_initial"]}');
SELECT migrate.add('shop.0001_initial', 'CREATE TABLE shop_item (id int PRIMARY KEY, post_id int REFERENCES blog_post)', 'DROP TABLE shop_item', 'initial',
                   '{"requires": ["blog.0001_initial"]}');
SELECT migrate.add('shop.0002_price', 'ALTER TABLE shop_item ADD COLUMN price numeric', 'ALTER TABLE shop_item DROP COLUMN price', 'price',
                   '{"requires": ["shop.0001_initial", "blog.0002_title"]}');
SELECT * FROM migrate.validate() WHERE version LIKE '%.%';
SELECT version FROM migrate.apply('shop.0002_price');
SELECT version FROM migrate.rollback_to('blog.0001_initial');
SELECT version, state FROM migrate.status() WHERE version LIKE '%.%';
SELECT migrate.add('accounts.0001_initial', 'CREATE TABLE accounts_user (id int PRIMARY KEY)', 'DROP TABLE accounts_user', 'initial');
SELECT version FROM migrate.apply('accounts.0001_initial');
-- Two leaves in one app are two heads (Django's "Conflicting migrations detected").
SELECT migrate.add('blog.0003_a', 'SELECT 1', 'SELECT 1', NULL, '{"requires": ["blog.0002_title"]}');
SELECT migrate.add('blog.0003_b', 'SELECT 1', 'SELECT 1', NULL, '{"requires": ["blog.0002_title"]}');
SELECT version, problem, detail FROM migrate.validate() WHERE problem = 'multiple_heads';
SELECT version FROM migrate.apply();

-- verify() walks the pending migrations in the registry's order too: a requirement that sorts
-- later in version order is verified first, and the one that needs it on top of it.
SELECT migrate.add('ffa1', 'CREATE TABLE vt (id int)', 'DROP TABLE vt');
SELECT migrate.add('0aa2', 'ALTER TABLE vt ADD COLUMN n int', 'ALTER TABLE vt DROP COLUMN n', NULL, '{"requires": ["ffa1"]}');
SELECT version, ok, problem FROM migrate.verify();
