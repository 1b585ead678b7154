-- needs: shared_preload_libraries = 'migrate'
-- With the library preloaded, PostgreSQL's refusal to change the type of a column a view uses
-- gets a HINT naming safe mode (outside safe mode only); in safe mode the views are rebuilt,
-- and the REFRESH of a rebuilt materialized view passes the hook's judgement.
CREATE EXTENSION migrate;
CREATE TABLE t (id int, n int);
INSERT INTO t SELECT g, g FROM generate_series(1, 20) g;
CREATE VIEW t_v AS SELECT id, n FROM t;
CREATE MATERIALIZED VIEW t_m AS SELECT sum(n) AS total FROM t;
ALTER TABLE t ALTER COLUMN n TYPE bigint;
SET migrate.safe_by_default = on;
ALTER TABLE t ALTER COLUMN n TYPE bigint;
SELECT atttypid::regtype, (SELECT total FROM t_m) FROM pg_attribute
WHERE attrelid = 't_v'::regclass AND attname = 'n';
RESET migrate.safe_by_default;
DROP TABLE t CASCADE;
