-- The test worker's state: one row per handled ping (duplicates would show as repeated seq).
CREATE TABLE items (
    id      bigserial PRIMARY KEY,
    seq     integer NOT NULL,
    change_id text NOT NULL,
    pid     integer NOT NULL
);
