CREATE TABLE orders (
    id      bigint PRIMARY KEY,
    user_id bigint NOT NULL REFERENCES users,
    total   numeric(12, 2) NOT NULL
);
