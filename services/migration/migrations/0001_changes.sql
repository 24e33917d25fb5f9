-- The migration guardian's state: one row per change, and every review decision received.

CREATE TABLE changes (
    change_id          text PRIMARY KEY,
    service            text        NOT NULL,
    version            text        NOT NULL,
    previous_version   text,
    artifact           text,
    risk               text        NOT NULL,
    status             text        NOT NULL CHECK (status IN ('approved', 'in_review', 'blocked')),
    review_kind        text,
    required_approvals integer,
    authorised         text[]      NOT NULL DEFAULT '{}',
    checklist_ids      text[]      NOT NULL DEFAULT '{}',
    approvals          text[]      NOT NULL DEFAULT '{}',
    deadline           timestamptz,
    assessment         jsonb       NOT NULL,  -- the migration.assessed event as published
    plan               jsonb,                 -- the detailed plan for a team review
    monitoring_plan    jsonb,
    assessed_at        timestamptz NOT NULL DEFAULT now(),
    decided_at         timestamptz
);
CREATE INDEX changes_review_deadline ON changes (deadline) WHERE status = 'in_review';

CREATE TABLE review_decisions (
    id             bigserial PRIMARY KEY,
    change_id      text        NOT NULL REFERENCES changes (change_id),
    reviewer       text        NOT NULL,
    signer         text,
    decision       text        NOT NULL,
    acknowledged   text[]      NOT NULL,
    counted        boolean     NOT NULL,
    ignored_reason text,
    received_at    timestamptz NOT NULL DEFAULT now()
);
