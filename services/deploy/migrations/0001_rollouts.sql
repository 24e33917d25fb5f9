-- The deploy guardian's state: one row per rollout, a durable state machine.
--
-- `progress` is the checkpoint the driver resumes from after a crash (the stage, the
-- canary step, the weight, the running analysis with its tallies, when the current step
-- began). It is written in the same transaction as the events of that transition, so a
-- restarted guardian neither repeats a finished step nor loses a running one. The lease
-- (owner, until) lets one replica drive a rollout at a time; it expires when the process
-- dies, and another replica (or the restarted one) takes it over.

CREATE TABLE rollouts (
    change_id        text PRIMARY KEY,
    service          text        NOT NULL,
    version          text        NOT NULL,
    previous_version text,
    artifact         text,
    plan             jsonb       NOT NULL,  -- the resolved rollout plan, frozen at approval
    status           text        NOT NULL CHECK (status IN (
                         'queued', 'running', 'paused', 'completed', 'rolled_back',
                         'failed')),
    stage            text        NOT NULL,
    progress         jsonb       NOT NULL DEFAULT '{}',
    decision         jsonb,      -- a promote/abort waiting to be acted on
    rollback_request jsonb,      -- a deploy.rollback.requested waiting to be acted on
    lease_owner      text,
    lease_until      timestamptz,
    approved_at      timestamptz NOT NULL DEFAULT now(),
    started_at       timestamptz,
    finished_at      timestamptz,
    outcome          text,
    updated_at       timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX rollouts_active ON rollouts (service, approved_at)
    WHERE status IN ('queued', 'running', 'paused');
CREATE INDEX rollouts_rollback_wanted ON rollouts (change_id)
    WHERE rollback_request IS NOT NULL;
