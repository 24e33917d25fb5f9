-- Exactly-once effects over at-least-once delivery (DESIGN.md, "Delivery guarantees").

-- One row per event this service has handled (or dead-lettered): a re-delivery stops here.
CREATE TABLE processed_events (
    event_id     text PRIMARY KEY,
    topic        text        NOT NULL,
    kafka_partition integer  NOT NULL,
    kafka_offset bigint      NOT NULL,
    outcome      text        NOT NULL CHECK (outcome IN ('handled', 'dead_lettered')),
    processed_at timestamptz NOT NULL DEFAULT now()
);

-- Events to publish, written in the same transaction as the state change that caused them.
CREATE TABLE outbox (
    id            bigserial PRIMARY KEY,
    topic         text        NOT NULL,
    key           bytea,
    value         bytea       NOT NULL,
    header_names  text[]      NOT NULL,
    header_values bytea[]     NOT NULL,
    created_at    timestamptz NOT NULL DEFAULT now(),
    sent_at       timestamptz
);
CREATE INDEX outbox_unsent ON outbox (id) WHERE sent_at IS NULL;

-- What went to a dead-letter topic and why, for people and the CLI.
CREATE TABLE dead_letters (
    id              bigserial PRIMARY KEY,
    event_id        text        NOT NULL,
    topic           text        NOT NULL,
    kafka_partition integer     NOT NULL,
    kafka_offset    bigint      NOT NULL,
    reason          text        NOT NULL,
    error_class     text        NOT NULL,
    received_at     timestamptz NOT NULL DEFAULT now()
);
