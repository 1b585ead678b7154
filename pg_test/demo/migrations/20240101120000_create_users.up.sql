-- A users table with 200,000 rows, as a real application would have by now.
CREATE TABLE users (
    id         bigint PRIMARY KEY,
    email      text NOT NULL,
    created_at timestamptz NOT NULL DEFAULT now()
);
INSERT INTO users (id, email)
SELECT g, 'User' || g || '@Example.COM' FROM generate_series(1, 200000) g;
ANALYZE users;
