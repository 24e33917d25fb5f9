-- The demo shop's schema as it runs before the demo's changes (the migration guardian's
-- baseline; `make run` creates it in the guardians_demo database with some rows).
CREATE TABLE customers (
    id         bigint PRIMARY KEY,
    email      text        NOT NULL UNIQUE,
    created_at timestamptz NOT NULL DEFAULT now()
);
CREATE TABLE orders (
    id          bigint PRIMARY KEY,
    customer_id bigint      NOT NULL REFERENCES customers (id),
    total_cents bigint      NOT NULL,
    placed_at   timestamptz NOT NULL DEFAULT now()
);
