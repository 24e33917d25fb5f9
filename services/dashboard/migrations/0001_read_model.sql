-- The dashboard's read model: what the page shows, folded from the guardians' events.
--
-- Events of one change arrive on several topics, so their order across topics is not the
-- order they happened in. Every "current" value therefore carries the time of the event that
-- set it (its occurred_at) and a rank that breaks ties (a later stage outranks an earlier one
-- at the same instant); an update applies only when (at, rank) is newer. Applying the same
-- events in any order gives the same rows. Counters only ever grow, and the runtime's dedupe
-- table makes each event count once.

-- One row per change: where it is in the pipeline.
CREATE TABLE changes (
    change_id         text PRIMARY KEY,
    service           text,
    version           text,
    previous_version  text,
    submitted_by      text,
    submitted_at      timestamptz,
    risk              text,
    findings          integer,
    risk_causes       jsonb,            -- [{rule, severity, message}] of the findings that set it
    -- migration: assessed | review_requested | approved | blocked
    migration_status  text,
    migration_at      timestamptz,
    migration_rank    integer,
    migration_detail  jsonb,            -- approval path and reviewers, or the block reason
    -- deploy: staging | staging_tests | canary | paused | production | monitoring |
    --         completed | rolling_back | rolled_back | failed
    deploy_stage      text,
    deploy_at         timestamptz,
    deploy_rank       integer,
    stage_reason      text,
    canary_weight     integer,
    weight_at         timestamptz,
    tests             jsonb,            -- the staging test run, when it finished
    completed         jsonb,            -- deploy.completed: duration
    rolled_back       jsonb,            -- deploy.rolled_back: trigger, reason, breach
    failed            jsonb,            -- deploy.failed: failure, reason, breach
    backup            jsonb,            -- the latest of backup.verified / backup.failed
    backup_at         timestamptz,
    infra_ready       jsonb,            -- infra.ready: gate seconds, checks passed
    last_event_at     timestamptz NOT NULL
);
CREATE INDEX changes_recent ON changes (last_event_at DESC);

-- The latest measurement of each analysis metric of a change, and how many were taken.
CREATE TABLE analyses (
    change_id     text        NOT NULL,
    metric        text        NOT NULL,
    analysis      text        NOT NULL,
    stage         text        NOT NULL,
    query         text        NOT NULL,
    condition     text        NOT NULL,
    vals          jsonb       NOT NULL,
    baseline_vals jsonb       NOT NULL,
    outcome       text        NOT NULL,
    error         text,
    critical      boolean     NOT NULL,
    canary_weight integer,
    measured_at   timestamptz NOT NULL,
    measurements  integer     NOT NULL DEFAULT 1,
    failures      integer     NOT NULL DEFAULT 0,
    PRIMARY KEY (change_id, metric)
);

-- Changes waiting for people: requested after the last decision.
CREATE TABLE reviews (
    change_id          text PRIMARY KEY,
    service            text        NOT NULL,
    version            text        NOT NULL,
    risk               text,
    review_kind        text,
    required_approvals integer,
    checklist_items    integer,
    deadline           timestamptz,
    requested_at       timestamptz,
    decided_at         timestamptz,
    decision           text
);
CREATE INDEX reviews_pending ON reviews (requested_at) WHERE requested_at IS NOT NULL;

-- Each service's latest grade and the checks that are not passing.
CREATE TABLE service_health (
    service        text PRIMARY KEY,
    grade          text        NOT NULL,
    previous_grade text,
    failing        jsonb       NOT NULL,
    checks_total   integer,            -- in the latest report
    reported_at    timestamptz,
    change_id      text,
    graded_at      timestamptz NOT NULL,
    graded_rank    integer     NOT NULL,
    changed_at     timestamptz
);

-- Each service's latest verified backup, and its latest failure.
CREATE TABLE backups (
    service         text PRIMARY KEY,
    verified_at     timestamptz,
    verified        jsonb,              -- change, trigger, size, parts, recovery time, next run
    failed_at       timestamptz,
    failure         jsonb               -- phase, reason, source, differences
);

CREATE TABLE incidents (
    incident_id   text PRIMARY KEY,
    service       text        NOT NULL,
    severity      text,
    cause         text,
    summary       text,
    change_id     text,
    status        text        NOT NULL,
    status_at     timestamptz NOT NULL,
    status_rank   integer     NOT NULL,
    count         integer     NOT NULL DEFAULT 1,
    last_entry    jsonb,
    last_entry_at timestamptz,
    opened_at     timestamptz,
    resolved      jsonb                 -- resolved by, resolution, durations
);
CREATE INDEX incidents_recent ON incidents (status_at DESC);

-- ops.alerts by dedup key: firing until a resolved notice newer than the last firing.
CREATE TABLE alerts (
    dedup_key  text PRIMARY KEY,
    severity   text        NOT NULL,
    summary    text        NOT NULL,
    raised_by  text        NOT NULL,
    service    text,
    resolved   boolean     NOT NULL,
    count      integer     NOT NULL,
    at         timestamptz NOT NULL
);
