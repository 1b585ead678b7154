-- Whether domain $1, or a domain it is based on, has a constraint (a CHECK or NOT NULL): what
-- PostgreSQL's DomainHasConstraints() answers, read from the catalog instead of the type
-- cache, whose loading folds the CHECK expressions (and so could run a user's function).
WITH RECURSIVE chain (oid) AS (
    SELECT $1::pg_catalog.oid
    UNION ALL
    SELECT t.typbasetype FROM pg_catalog.pg_type t JOIN chain c ON t.oid OPERATOR(pg_catalog.=) c.oid
    WHERE t.typtype OPERATOR(pg_catalog.=) 'd'
)
SELECT EXISTS (SELECT FROM pg_catalog.pg_constraint k JOIN chain c
                 ON k.contypid OPERATOR(pg_catalog.=) c.oid)
    OR EXISTS (SELECT FROM pg_catalog.pg_type t JOIN chain c ON t.oid OPERATOR(pg_catalog.=) c.oid
               WHERE t.typnotnull)
