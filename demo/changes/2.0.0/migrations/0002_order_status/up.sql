-- Version 2.0.0: orders get a status. A constant default does not rewrite the table (PG 11+),
-- and the index is built without blocking writes.
SET lock_timeout = '2s';
ALTER TABLE orders ADD COLUMN IF NOT EXISTS status text NOT NULL DEFAULT 'placed';
CREATE INDEX CONCURRENTLY IF NOT EXISTS orders_status_idx ON orders (status);
