-- The backup guardian's state: backup runs and restores (durable jobs with leases), the
-- snapshots each run took with the manifest recorded at backup time, and per service the
-- schedule's progress and the alerts raised.

CREATE TABLE backup_runs (
    run_id          text PRIMARY KEY,      -- the deploy's change id, or a schedule's run id
    service         text        NOT NULL,
    version         text,
    trigger         text        NOT NULL CHECK (trigger IN ('deploy', 'schedule', 'manual')),
    status          text        NOT NULL CHECK (status IN (
                        'queued', 'running', 'verified', 'failed')),
    phase           text        NOT NULL DEFAULT 'backup',
    attempt         integer     NOT NULL DEFAULT 1,
    not_before      timestamptz NOT NULL DEFAULT now(),  -- a retry's backoff
    progress        jsonb       NOT NULL DEFAULT '{}',
    lease_owner     text,
    lease_until     timestamptz,
    created_at      timestamptz NOT NULL DEFAULT now(),
    finished_at     timestamptz,
    reason          text
);
CREATE INDEX backup_runs_active ON backup_runs (not_before) WHERE status IN ('queued', 'running');
CREATE INDEX backup_runs_verified ON backup_runs (service, finished_at) WHERE status = 'verified';

CREATE TABLE snapshots (
    run_id           text        NOT NULL REFERENCES backup_runs (run_id),
    source           text        NOT NULL,
    kind             text        NOT NULL,
    snapshot_id      text        NOT NULL,
    manifest         jsonb       NOT NULL,  -- recorded from the source at backup time
    size_bytes       bigint      NOT NULL,
    added_bytes      bigint,
    backup_seconds   double precision,
    recovery_seconds double precision,      -- the recovery test's restore time
    recovery_ok      boolean,
    recovery_report  jsonb,
    taken_at         timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (run_id, source)
);

CREATE TABLE restores (
    request_id   text PRIMARY KEY,          -- the backup.restore.requested event id
    service      text        NOT NULL,
    request      jsonb       NOT NULL,
    status       text        NOT NULL CHECK (status IN ('queued', 'running', 'restored', 'failed')),
    progress     jsonb       NOT NULL DEFAULT '{}',
    lease_owner  text,
    lease_until  timestamptz,
    created_at   timestamptz NOT NULL DEFAULT now(),
    finished_at  timestamptz
);

CREATE TABLE schedules (
    service            text PRIMARY KEY,
    last_fire          timestamptz,      -- the last schedule fire time a run was queued for
    check_runs         integer     NOT NULL DEFAULT 0,  -- rotates restic check's data subset
    alerts             jsonb       NOT NULL DEFAULT '{}'  -- dedup key -> raised, for resolved notices
);
