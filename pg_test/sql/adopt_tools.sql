-- migrate.adopt() for every tool but diesel (adopt.sql), each in a database of its own: the
-- tool's table made exactly as the tool makes it (the statement from its source, named in each
-- section), filled as the tool fills it, the folder registered with migrate.add() as
-- migrate-cli load registers it. Checksums are computed here with PostgreSQL's own sha256() and
-- sha384(); Flyway's CRC-32 values were computed with Python's zlib.crc32 over each script's
-- lines without their terminators, as Flyway's ChecksumCalculator does.
CREATE EXTENSION migrate;

-- golang-migrate (database/postgres/postgres.go, ensureVersionTable and SetVersion): one row,
-- the version every migration up to which is applied, and whether it is dirty.
SET TimeZone = 'UTC';
CREATE TABLE IF NOT EXISTS "public"."schema_migrations" (version bigint not null primary key, dirty boolean not null);
CREATE TABLE users (id bigint PRIMARY KEY, email text);
SELECT migrate.add('1', 'CREATE TABLE users (id bigint PRIMARY KEY, email text);', 'DROP TABLE users;', 'create_users');
SELECT migrate.add('2', 'CREATE TABLE posts (id bigint PRIMARY KEY, user_id bigint REFERENCES users);', 'DROP TABLE posts;', 'add_posts');
SELECT migrate.add('10', 'ALTER TABLE users ADD COLUMN name text;', 'ALTER TABLE users DROP COLUMN name;', 'add_users_name');
-- golang-migrate failed half-way through 2 and left it dirty: refused, naming the version.
INSERT INTO schema_migrations VALUES (2, true);
SELECT * FROM migrate.adopt('golang-migrate', dry_run => true);
SELECT * FROM migrate.adopt('golang-migrate');
SELECT version, state FROM migrate.status();
-- dbmate's table has the same name; its columns tell them apart.
SELECT * FROM migrate.adopt('dbmate');
-- After `migrate force 1`: 1 adopted, 2 and 10 pending and applied by migrate.
TRUNCATE schema_migrations;
INSERT INTO schema_migrations VALUES (1, false);
SELECT * FROM migrate.adopt('golang-migrate');
SELECT version FROM migrate.apply();
SELECT * FROM migrate.validate();
-- golang-migrate at a version the folder does not have.
TRUNCATE schema_migrations;
INSERT INTO schema_migrations VALUES (11, false);
SELECT * FROM migrate.adopt('golang-migrate', dry_run => true);

-- Flyway (its PostgreSQL createMetaDataTable.sql): one row per run.
CREATE DATABASE regress_adopt_flyway;
\c regress_adopt_flyway
CREATE EXTENSION migrate;
SET TimeZone = 'UTC';
CREATE TABLE "public"."flyway_schema_history" (
    "installed_rank" INT NOT NULL,
    "version" VARCHAR(50),
    "description" VARCHAR(200) NOT NULL,
    "type" VARCHAR(20) NOT NULL,
    "script" VARCHAR(1000) NOT NULL,
    "checksum" INTEGER,
    "installed_by" VARCHAR(100) NOT NULL,
    "installed_on" TIMESTAMP NOT NULL DEFAULT now(),
    "execution_time" INTEGER NOT NULL,
    "success" BOOLEAN NOT NULL
);
ALTER TABLE "public"."flyway_schema_history" ADD CONSTRAINT "flyway_schema_history_pk" PRIMARY KEY ("installed_rank");
CREATE INDEX "flyway_schema_history_s_idx" ON "public"."flyway_schema_history" ("success");
CREATE TABLE users (id bigint PRIMARY KEY, email text);
CREATE TABLE posts (id bigint PRIMARY KEY, user_id bigint REFERENCES users);
CREATE OR REPLACE VIEW user_count AS SELECT count(*) AS n FROM users;
SELECT migrate.add('1', E'CREATE TABLE users (id bigint PRIMARY KEY, email text);\n', NULL, 'Create users');
SELECT migrate.add('1.1', E'CREATE TABLE posts (id bigint PRIMARY KEY, user_id bigint REFERENCES users);\n', NULL, 'Add posts');
SELECT migrate.add('1.2', E'ALTER TABLE users ADD COLUMN name text;\n', NULL, 'Add users name');
SELECT migrate.add('R__User_count', E'CREATE OR REPLACE VIEW user_count AS SELECT count(*) AS n FROM users;\n',
                   NULL, 'User count', '{"repeatable": true}');
-- 1 and 1.1 ran, 1.2 failed (a row with success = false), the repeatable view ran. Flyway's
-- installed_by is never read: it names no role of migrate's.
INSERT INTO flyway_schema_history VALUES
    (1, '1', 'Create users', 'SQL', 'V1__Create_users.sql', 1522480202, 'anyone', '2024-01-01 10:00', 12, true),
    (2, '1.1', 'Add posts', 'SQL', 'V1.1__Add_posts.sql', 1712861202, 'anyone', '2024-01-02 10:00', 7, true),
    (3, '1.2', 'Add users name', 'SQL', 'V1_2__Add_users_name.sql', 577072163, 'anyone', '2024-01-03 10:00', 3, false),
    (4, NULL, 'User count', 'SQL', 'R__User_count.sql', -754560889, 'anyone', '2024-01-02 10:01', 2, true);
SELECT * FROM migrate.adopt('flyway', dry_run => true);
-- A checksum that differs is a mismatch; an undo (U1.1__) takes 1.1 back.
UPDATE flyway_schema_history SET checksum = 42 WHERE installed_rank = 1;
SELECT version, tool_says, outcome, detail FROM migrate.adopt('flyway', dry_run => true) WHERE version = '1';
UPDATE flyway_schema_history SET checksum = 1522480202 WHERE installed_rank = 1;
INSERT INTO flyway_schema_history VALUES
    (5, '1.1', 'Add posts', 'UNDO_SQL', 'U1.1__Add_posts.sql', NULL, 'anyone', '2024-01-04 10:00', 5, true);
SELECT version, tool_says, outcome, detail FROM migrate.adopt('flyway', dry_run => true) WHERE version = '1.1';
DELETE FROM flyway_schema_history WHERE installed_rank = 5;
SELECT * FROM migrate.adopt('flyway');
SELECT version, state, applied_at, duration FROM migrate.status();
-- The view's script changed in the folder: Flyway would run it again, and so does migrate.
SELECT migrate.add('R__User_count', E'CREATE OR REPLACE VIEW user_count AS SELECT count(*) AS n FROM users WHERE name IS NOT NULL;\n',
                   NULL, 'User count', '{"repeatable": true}');
SELECT version, tool_says, outcome, detail FROM migrate.adopt('flyway', dry_run => true) WHERE version = 'R__User_count';
SELECT version FROM migrate.apply();

-- sqlx (sqlx-postgres 0.9, migrate.rs): a row per migration with the SHA-384 of the file and
-- the time it took in nanoseconds.
CREATE DATABASE regress_adopt_sqlx;
\c regress_adopt_sqlx
CREATE EXTENSION migrate;
SET TimeZone = 'UTC';
CREATE TABLE IF NOT EXISTS _sqlx_migrations (
    version BIGINT PRIMARY KEY,
    description TEXT NOT NULL,
    installed_on TIMESTAMPTZ NOT NULL DEFAULT now(),
    success BOOLEAN NOT NULL,
    checksum BYTEA NOT NULL,
    execution_time BIGINT NOT NULL
);
CREATE TABLE files (version text, description text, sql text);
INSERT INTO files VALUES
    ('20240101120000', 'create users', E'-- Add migration script here\nCREATE TABLE users (id bigint PRIMARY KEY, email text);\n'),
    ('20240102120000', 'add posts', E'-- Add migration script here\nCREATE TABLE posts (id bigint PRIMARY KEY, user_id bigint REFERENCES users);\n'),
    ('20240103120000', 'add users name', E'-- Add migration script here\nALTER TABLE users ADD COLUMN name text;\n');
CREATE TABLE users (id bigint PRIMARY KEY, email text);
CREATE TABLE posts (id bigint PRIMARY KEY, user_id bigint REFERENCES users);
SELECT migrate.add(version, sql, NULL, description) FROM files ORDER BY version;
INSERT INTO _sqlx_migrations (version, description, installed_on, success, checksum, execution_time)
SELECT version::bigint, description, ('2024-01-' || substr(version, 7, 2) || ' 12:00')::timestamptz,
       true, sha384(convert_to(sql, 'UTF8')), 2500000
FROM files WHERE version < '20240103120000';
-- A file edited after sqlx applied it, and a migration sqlx left failed: refused, nothing changes.
UPDATE _sqlx_migrations SET checksum = sha384('edited') WHERE version = 20240101120000;
UPDATE _sqlx_migrations SET success = false WHERE version = 20240102120000;
SELECT * FROM migrate.adopt('sqlx');
SELECT version, state FROM migrate.status();
SELECT count(*) AS adoptions FROM migrate.adoptions;
UPDATE _sqlx_migrations s SET checksum = sha384(convert_to(f.sql, 'UTF8')), success = true
FROM files f WHERE f.version::bigint = s.version;
SELECT * FROM migrate.adopt('sqlx');
SELECT version, state, duration FROM migrate.status();
SELECT version FROM migrate.apply();

-- dbmate: a row per version applied; the table as dbmate 2.36 creates it (version character
-- varying, the primary key; cli/tests/adopt.rs drives dbmate itself).
CREATE DATABASE regress_adopt_dbmate;
\c regress_adopt_dbmate
CREATE EXTENSION migrate;
SET TimeZone = 'UTC';
create table if not exists public.schema_migrations (version varchar primary key);
CREATE TABLE users (id bigint PRIMARY KEY, email text);
SELECT migrate.add('20240101120000', E'CREATE TABLE users (id bigint PRIMARY KEY, email text);\n\n',
                   E'DROP TABLE users;\n', 'create_users');
SELECT migrate.add('20240102120000', E'ALTER TABLE users ADD COLUMN name text;\n\n',
                   E'ALTER TABLE users DROP COLUMN name;\n', 'add_users_name');
INSERT INTO schema_migrations VALUES ('20240101120000'), ('20231231000000');
-- dbmate applied a migration the folder does not have.
SELECT * FROM migrate.adopt('dbmate');
SELECT * FROM migrate.adopt('golang-migrate');
DELETE FROM schema_migrations WHERE version = '20231231000000';
SELECT * FROM migrate.adopt('dbmate');
SELECT version, state FROM migrate.status();

-- Prisma (schema-engine's _prisma_migrations): rows by folder name; applied when finished and
-- not rolled back; the checksum is the SHA-256 of migration.sql.
CREATE DATABASE regress_adopt_prisma;
\c regress_adopt_prisma
CREATE EXTENSION migrate;
SET TimeZone = 'UTC';
CREATE TABLE "_prisma_migrations" (
    "id"                    VARCHAR(36) PRIMARY KEY NOT NULL,
    "checksum"              VARCHAR(64) NOT NULL,
    "finished_at"           TIMESTAMPTZ,
    "migration_name"        VARCHAR(255) NOT NULL,
    "logs"                  TEXT,
    "rolled_back_at"        TIMESTAMPTZ,
    "started_at"            TIMESTAMPTZ NOT NULL DEFAULT now(),
    "applied_steps_count"   INTEGER NOT NULL DEFAULT 0
);
CREATE TABLE files (version text, name text, sql text);
INSERT INTO files VALUES
    ('20240101120000', 'create_users', E'-- CreateTable\nCREATE TABLE "users" (\n    "id" BIGSERIAL NOT NULL,\n    CONSTRAINT "users_pkey" PRIMARY KEY ("id")\n);\n'),
    ('20240102120000', 'add_posts', E'-- CreateTable\nCREATE TABLE "posts" (\n    "id" BIGSERIAL NOT NULL,\n    CONSTRAINT "posts_pkey" PRIMARY KEY ("id")\n);\n'),
    ('20240103120000', 'add_tags', E'-- CreateTable\nCREATE TABLE "tags" (\n    "id" BIGSERIAL NOT NULL\n);\n');
SELECT migrate.add(version, sql, NULL, name) FROM files ORDER BY version;
-- create_users applied; add_posts failed once (rolled back with `prisma migrate resolve
-- --rolled-back`), then applied; add_tags failed and is not resolved.
INSERT INTO _prisma_migrations (id, checksum, finished_at, migration_name, rolled_back_at, started_at, applied_steps_count)
SELECT 'row-' || v, encode(sha256(convert_to(f.sql, 'UTF8')), 'hex'), fin, f.version || '_' || f.name, rb, st, 1
FROM files f JOIN (VALUES
    ('a', '20240101120000', '2024-01-01 12:00:01'::timestamptz, NULL::timestamptz, '2024-01-01 12:00:00'::timestamptz),
    ('b', '20240102120000', NULL, '2024-01-02 12:05:00', '2024-01-02 12:00:00'),
    ('c', '20240102120000', '2024-01-02 12:10:00.25', NULL, '2024-01-02 12:10:00'),
    ('d', '20240103120000', NULL, NULL, '2024-01-03 12:00:00')) AS r(v, version, fin, rb, st)
ON r.version = f.version;
SELECT * FROM migrate.adopt('prisma');
UPDATE _prisma_migrations SET rolled_back_at = '2024-01-03 13:00' WHERE id = 'row-d';
-- An edited migration.sql is a mismatch (the dry run shows it, with both checksums).
SELECT migrate.add(version, sql || E'-- edited\n', NULL, name) FROM files WHERE version = '20240101120000';
SELECT version, outcome, left(detail, 70) AS detail FROM migrate.adopt('prisma', dry_run => true);
SELECT migrate.add(version, sql, NULL, name) FROM files WHERE version = '20240101120000';
SELECT * FROM migrate.adopt('prisma');
SELECT version, state, applied_at, duration FROM migrate.status();

-- Drizzle (drizzle-orm pg-core dialect.js, migrate()): drizzle.__drizzle_migrations, hash =
-- SHA-256 of the file, created_at = the journal's when (the registry version).
CREATE DATABASE regress_adopt_drizzle;
\c regress_adopt_drizzle
CREATE EXTENSION migrate;
SET TimeZone = 'UTC';
CREATE SCHEMA IF NOT EXISTS "drizzle";
CREATE TABLE IF NOT EXISTS "drizzle"."__drizzle_migrations" (
    id SERIAL PRIMARY KEY,
    hash text NOT NULL,
    created_at bigint
);
CREATE TABLE files (version text, name text, sql text);
INSERT INTO files VALUES
    ('1700000000000', '0000_create_users', E'CREATE TABLE "users" (\n\t"id" bigserial PRIMARY KEY NOT NULL\n);\n'),
    ('1700000100000', '0001_add_posts', E'CREATE TABLE "posts" (\n\t"id" bigserial PRIMARY KEY NOT NULL\n);\n--> statement-breakpoint\nCREATE INDEX "posts_id_idx" ON "posts" USING btree ("id");'),
    ('1700000200000', '0002_add_tags', E'CREATE TABLE "tags" (\n\t"id" bigserial PRIMARY KEY NOT NULL\n);\n');
SELECT migrate.add(version, sql, NULL, name) FROM files ORDER BY version;
INSERT INTO drizzle.__drizzle_migrations (hash, created_at)
SELECT encode(sha256(convert_to(sql, 'UTF8')), 'hex'), version::bigint FROM files
WHERE version < '1700000200000' ORDER BY version;
UPDATE drizzle.__drizzle_migrations SET hash = encode(sha256('edited'), 'hex') WHERE id = 2;
SELECT version, tool_says, outcome FROM migrate.adopt('drizzle', dry_run => true);
SELECT * FROM migrate.adopt('drizzle');
UPDATE drizzle.__drizzle_migrations d SET hash = encode(sha256(convert_to(f.sql, 'UTF8')), 'hex')
FROM files f WHERE f.version::bigint = d.created_at;
SELECT * FROM migrate.adopt('drizzle');
SELECT version, state FROM migrate.status();

-- Alembic (its --sql output: CREATE TABLE alembic_version): the heads. Revisions are
-- registered with requires = down_revision (the Alembic loader's convention); two branches
-- off one base, and the merge revision that joins them. Every ancestor of a head is applied.
CREATE DATABASE regress_adopt_alembic;
\c regress_adopt_alembic
CREATE EXTENSION migrate;
SET TimeZone = 'UTC';
CREATE TABLE alembic_version (
    version_num VARCHAR(32) NOT NULL,
    CONSTRAINT alembic_version_pkc PRIMARY KEY (version_num)
);
SELECT migrate.add('ae1027a6acf0', 'CREATE TABLE account (id int PRIMARY KEY);', 'DROP TABLE account;', 'create account');
SELECT migrate.add('b3f1c2d4e5a6', 'ALTER TABLE account ADD COLUMN email text;', 'ALTER TABLE account DROP COLUMN email;',
                   'add email', '{"requires": ["ae1027a6acf0"]}');
SELECT migrate.add('c0ffee123456', 'ALTER TABLE account ADD COLUMN name text;', 'ALTER TABLE account DROP COLUMN name;',
                   'add name', '{"requires": ["ae1027a6acf0"]}');
SELECT migrate.add('d15ea5e00001', 'SELECT 1;', 'SELECT 1;', 'merge heads', '{"requires": ["b3f1c2d4e5a6", "c0ffee123456"]}');
CREATE TABLE account (id int PRIMARY KEY, email text, name text);
INSERT INTO alembic_version VALUES ('b3f1c2d4e5a6'), ('c0ffee123456');
SELECT * FROM migrate.adopt('alembic');
SELECT version FROM migrate.apply();
-- Alembic's table still has the two heads: drift, until `alembic stamp` or end_adoption.
SELECT * FROM migrate.validate();
DELETE FROM alembic_version;
INSERT INTO alembic_version VALUES ('d15ea5e00001');
SELECT * FROM migrate.validate();
-- A head the folder does not have.
INSERT INTO alembic_version VALUES ('ffffffffffff');
SELECT version, outcome, detail FROM migrate.adopt('alembic', dry_run => true) WHERE outcome = 'mismatch';

-- Django (django/db/migrations/recorder.py, created by the schema editor): a row per applied
-- migration, versions app.name, requires = dependencies. Rows of apps the folder has none of
-- (Django's own) are ignored.
CREATE DATABASE regress_adopt_django;
\c regress_adopt_django
CREATE EXTENSION migrate;
SET TimeZone = 'UTC';
CREATE TABLE "django_migrations" ("id" bigint NOT NULL PRIMARY KEY GENERATED BY DEFAULT AS IDENTITY,
    "app" varchar(255) NOT NULL, "name" varchar(255) NOT NULL, "applied" timestamp with time zone NOT NULL);
SELECT migrate.add('blog.0001_initial', 'CREATE TABLE blog_post (id bigint PRIMARY KEY);', 'DROP TABLE blog_post;');
SELECT migrate.add('blog.0002_tags', 'ALTER TABLE blog_post ADD COLUMN tags text[];', 'ALTER TABLE blog_post DROP COLUMN tags;',
                   NULL, '{"requires": ["blog.0001_initial"]}');
SELECT migrate.add('blog.0003_title', 'ALTER TABLE blog_post ADD COLUMN title text;', 'ALTER TABLE blog_post DROP COLUMN title;',
                   NULL, '{"requires": ["blog.0002_tags"]}');
CREATE TABLE blog_post (id bigint PRIMARY KEY, tags text[]);
INSERT INTO django_migrations (app, name, applied) VALUES
    ('contenttypes', '0001_initial', '2024-01-01 09:00'),
    ('auth', '0001_initial', '2024-01-01 09:00:01'),
    ('blog', '0001_initial', '2024-01-01 09:00:02'),
    ('blog', '0002_tags', '2024-01-02 09:00');
SELECT * FROM migrate.adopt('django');
SELECT version FROM migrate.apply();
SELECT version, state, applied_at < '2025-01-01' AS at_djangos_time FROM migrate.status();

\c regress_adopt_tools
DROP DATABASE regress_adopt_flyway;
DROP DATABASE regress_adopt_sqlx;
DROP DATABASE regress_adopt_dbmate;
DROP DATABASE regress_adopt_prisma;
DROP DATABASE regress_adopt_drizzle;
DROP DATABASE regress_adopt_alembic;
DROP DATABASE regress_adopt_django;
