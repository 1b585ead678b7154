-- needs: shared_preload_libraries = 'migrate'
-- Review 2: safe mode's rewritten script must hold exactly the registered statements. Its
-- scanner (where the `;` after each statement goes) must read the text as the server's lexer
-- does: a carriage return ends a `--` comment, `name'\'` is a standard string, `x$y$` is one
-- identifier. Otherwise a statement's tail became a statement of its own (CREATE TABLE in
-- public instead of in the new schema) or two statements ran as one.
CREATE EXTENSION migrate;
CREATE TABLE big (id int PRIMARY KEY, n int);
INSERT INTO big SELECT g, g FROM generate_series(1, 20000) g;
ANALYZE big;
CREATE TABLE marks (s text);
SELECT migrate.add('1', E'CREATE INDEX big_n ON big (n);\nCREATE SCHEMA s1 --\rCREATE TABLE t1 (a int);\n',
                   options => '{"safe": true}');
SELECT migrate.add('2', E'CREATE INDEX big_n2 ON big (n);\nCREATE TABLE t2 (x$y$ int) -- $y$\n;\nINSERT INTO marks VALUES (''2'');\n',
                   options => '{"safe": true}');
SELECT migrate.add('3', E'CREATE INDEX big_n3 ON big (n);\nINSERT INTO marks SELECT name''\\'' -- ''\n;\nINSERT INTO marks VALUES (''3'');\n',
                   options => '{"safe": true}');
SET client_min_messages = warning;
CALL migrate.deploy();
RESET client_min_messages;
SELECT to_regclass('s1.t1') AS in_s1, to_regclass('public.t1') AS in_public, to_regclass('t2') AS t2;
SELECT * FROM marks ORDER BY 1;
SELECT version, action, error_sqlstate FROM migrate.history
WHERE action NOT IN ('add', 'replace', 'remove') ORDER BY id;
