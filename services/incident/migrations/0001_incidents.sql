-- The incident log: every incident with its state, the automatic action it waits for, its
-- escalation, and a typed timeline (entries recorded from events, plus people's notes).

CREATE TABLE incidents (
    incident_id        text PRIMARY KEY,
    dedup_key          text        NOT NULL,
    service            text        NOT NULL,
    cause              text        NOT NULL,
    severity           text        NOT NULL,
    status             text        NOT NULL CHECK (status IN (
                           'triggered', 'acknowledged', 'mitigating', 'resolved')),
    summary            text        NOT NULL,
    change_id          text,
    version            text,
    count              integer     NOT NULL DEFAULT 1,
    action             text,       -- rollback | restore | restart
    action_state       text,       -- requested | succeeded | failed | timed_out
    action_deadline    timestamptz,
    escalation_level   integer     NOT NULL DEFAULT 0,
    next_escalation_at timestamptz,
    first_failure_at   timestamptz NOT NULL,
    opened_at          timestamptz NOT NULL DEFAULT now(),
    mitigated_at       timestamptz,
    acknowledged_at    timestamptz,
    resolved_at        timestamptz,
    resolved_by        text,
    resolution         text
);
-- One open incident per problem: a storm of reports is one incident with a count.
CREATE UNIQUE INDEX incidents_open_key ON incidents (dedup_key) WHERE status <> 'resolved';
CREATE INDEX incidents_timers ON incidents (action_deadline, next_escalation_at)
    WHERE status <> 'resolved';

CREATE TABLE timeline (
    incident_id text        NOT NULL REFERENCES incidents (incident_id),
    seq         bigserial,
    at          timestamptz NOT NULL DEFAULT now(),
    kind        text        NOT NULL,
    actor       text        NOT NULL,
    message     text        NOT NULL,
    action      text,
    event_id    text,
    PRIMARY KEY (incident_id, seq)
);
