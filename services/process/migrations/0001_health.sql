-- The process guardian's state: per watched service its grade with hysteresis, its alert,
-- the restarts it performed (Monit's limit) and the pid history of its processes
-- (flapping); the post-deploy health gates; and signed restart requests to carry out.

CREATE TABLE watched (
    service      text PRIMARY KEY,
    hysteresis   jsonb       NOT NULL DEFAULT '{}',
    alert        jsonb       NOT NULL DEFAULT '{}',
    restarts     jsonb       NOT NULL DEFAULT '[]',   -- times of restarts we performed
    pids         jsonb       NOT NULL DEFAULT '{}',   -- process name -> [[pid, start time]]
    escalated_at timestamptz,
    lease_owner  text,
    lease_until  timestamptz,
    updated_at   timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE gates (
    change_id   text PRIMARY KEY,
    service     text        NOT NULL,
    version     text        NOT NULL,
    gate        jsonb       NOT NULL,
    status      text        NOT NULL CHECK (status IN ('open', 'ready', 'red')),
    opened_at   timestamptz NOT NULL DEFAULT now(),
    closed_at   timestamptz
);
CREATE INDEX gates_open ON gates (service) WHERE status = 'open';

CREATE TABLE restart_requests (
    request_id   text PRIMARY KEY,
    service      text        NOT NULL,
    instance     text,
    request      jsonb       NOT NULL,
    status       text        NOT NULL DEFAULT 'queued'
                             CHECK (status IN ('queued', 'done', 'refused', 'failed')),
    outcome      text,
    created_at   timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX restart_requests_queued ON restart_requests (service) WHERE status = 'queued';
