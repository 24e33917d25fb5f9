"""`guardians.yaml`: what each managed service's release needs, validated on load.

One file describes, per managed service, the policies the guardians apply to its changes.
Each guardian's section grows with its issue; unknown keys are rejected so a typo never
silently falls back to a default. Settings that differ per environment (broker, database,
keys) are not here: they come from environment variables (settings.py).
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Annotated, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from schemas.base import ServiceName

RiskOverride = Literal["low", "medium", "high", "blocked", "ignore"]


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class MigrationPolicy(_Section):
    """How the migration guardian assesses and gates this service's changes."""

    pg_version: int = Field(default=18, ge=10, le=30)
    """The target's PostgreSQL major version: it changes what is risky."""
    transaction_per_file: bool = True
    """The migration runner wraps each file in a transaction (most do)."""
    rules: dict[str, RiskOverride] = Field(default_factory=dict)
    """Per rule id: a fixed grade, or `ignore`."""
    effects: dict[str, RiskOverride] = Field(default_factory=dict)
    """Per effect (`blocking_lock`, `backfill`, ...): the grade instead of the default."""
    critical_config_keys: list[str] = Field(default_factory=list)
    """Glob patterns of configuration keys whose change needs review."""
    baseline: Path | None = None
    """The target's schema before the change: a schema dump (.sql) or a folder of the prior
    migrations (`NNN_name/up.sql`), replayed on the shadow database before the change."""
    stats_file: Path | None = None
    """Table statistics of the target (`guardians stats dump`), to weigh locks by size."""
    checklist_reviewers: list[str] = Field(default_factory=list)
    """Who may decide a MEDIUM change's checklist (signer names); empty: any team reviewer."""
    team_reviewers: list[str] = Field(default_factory=list)
    """Who counts towards a team review (HIGH risk, or a checklist sent to the team)."""
    team_approvals: int = Field(default=2, ge=1)
    """Distinct authorised approvals a team review needs."""
    review_timeout_seconds: float = Field(default=24 * 3600, gt=0)
    """A review not decided in this time blocks the change."""
    monitoring_seconds: float = Field(default=600, ge=0)
    """The base production-monitoring window a risky change's monitoring plan asks for."""

    @model_validator(mode="after")
    def _enough_reviewers(self) -> MigrationPolicy:
        if self.team_reviewers and len(set(self.team_reviewers)) < self.team_approvals:
            raise ValueError(
                f"team_approvals is {self.team_approvals} but only "
                f"{len(set(self.team_reviewers))} team_reviewers are listed"
            )
        return self

    @property
    def checklist_deciders(self) -> frozenset[str]:
        return frozenset(self.checklist_reviewers or self.team_reviewers)


# -- deploy guardian ------------------------------------------------------------------------

QUERY_PLACEHOLDERS = frozenset(
    {"service", "version", "stable_version", "canary_version", "track", "env", "change_id",
     "window"}
)
"""What a PromQL query template may name in braces (`{service}`); values are escaped as
PromQL string literals when substituted, so event data never changes a query's shape."""
COMMAND_PLACEHOLDERS = frozenset(
    {"service", "version", "artifact", "env", "weight", "port", "slot", "change_id", "url",
     "previous_version", "python"}
)
"""What a command or webhook template may name; each argument is substituted on its own and
passed as one argv element, never through a shell. {python} is the guardian's own
interpreter (for Python apps run from the same environment)."""
_PLACEHOLDER = re.compile(r"\{([a-z_]+)\}")


def _check_placeholders(where: str, text: str, allowed: frozenset[str]) -> None:
    unknown = sorted(set(_PLACEHOLDER.findall(text)) - allowed)
    if unknown:
        raise ValueError(
            f"{where}: unknown placeholder(s) {', '.join('{' + u + '}' for u in unknown)}; "
            f"known: {', '.join(sorted(allowed))}"
        )


class Webhook(_Section):
    """An HTTP call (Flagger-style): any 2xx means go."""

    url: str = Field(pattern=r"^https?://")
    method: Literal["GET", "POST", "PUT"] = "POST"
    timeout_seconds: float = Field(default=10, gt=0)
    retries: int = Field(default=2, ge=0, le=10)
    headers: dict[str, str] = Field(default_factory=dict)

    @model_validator(mode="after")
    def _known_placeholders(self) -> Webhook:
        _check_placeholders("webhook url", self.url, COMMAND_PLACEHOLDERS)
        return self


class LocalTarget(_Section):
    """Real processes on this machine: staging on its own port, production behind nginx.

    Production runs in two slots (blue/green ports); the canary starts in the free slot and
    nginx's weighted upstream splits the traffic. The previous version keeps its slot until
    production monitoring passes, so an emergency rollback is one nginx reload.
    """

    kind: Literal["local"] = "local"
    command: list[str] = Field(min_length=1)
    """Starts one instance; placeholders {port} {version} {artifact} {service} {env} {slot}."""
    listen_port: int = Field(ge=1, le=65535)
    """The production entry point: nginx listens here."""
    staging_port: int = Field(ge=1, le=65535)
    slot_ports: tuple[int, int]
    """The two production slots (blue, green)."""
    ready_path: str = Field(default="/healthz", pattern=r"^/")
    ready_timeout_seconds: float = Field(default=30, gt=0)
    workdir: Path | None = None
    env: dict[str, str] = Field(default_factory=dict)

    @model_validator(mode="after")
    def _distinct_ports(self) -> LocalTarget:
        ports = [self.listen_port, self.staging_port, *self.slot_ports]
        if len(set(ports)) != len(ports):
            raise ValueError(f"listen_port, staging_port and slot_ports must differ: {ports}")
        for arg in self.command:
            _check_placeholders("command", arg, COMMAND_PLACEHOLDERS)
        return self


class CommandTarget(_Section):
    """Configured commands per action (kubectl, helm, ansible, scripts), as argument lists."""

    kind: Literal["command"] = "command"
    deploy: list[str] = Field(min_length=1)
    """Deploys {version} ({artifact}) to {env}: `staging` or `canary`."""
    set_weight: list[str] = Field(min_length=1)
    promote: list[str] = Field(min_length=1)
    rollback: list[str] = Field(min_length=1)
    """Puts {previous_version} back on all traffic and removes {version}."""
    ready: list[str] | None = None
    """Exit 0 when {env} serves {version}; absent: ready once `deploy` succeeded."""
    staging_url: str | None = None
    """Where staging HTTP tests are sent."""
    timeout_seconds: float = Field(default=300, gt=0)
    workdir: Path | None = None

    @model_validator(mode="after")
    def _known_placeholders(self) -> CommandTarget:
        for action in (self.deploy, self.set_weight, self.promote, self.rollback,
                       self.ready or []):
            for arg in action:
                _check_placeholders("command", arg, COMMAND_PLACEHOLDERS)
        return self


class HttpTarget(_Section):
    """A webhook per action (2xx means go), with timeouts and retries."""

    kind: Literal["http"] = "http"
    deploy: Webhook
    set_weight: Webhook
    promote: Webhook
    rollback: Webhook
    ready: Webhook | None = None
    staging_url: str | None = None


DeployTarget = Annotated[LocalTarget | CommandTarget | HttpTarget, Field(discriminator="kind")]


class HttpTest(_Section):
    path: str = Field(default="/", pattern=r"^/")
    method: Literal["GET", "HEAD", "POST"] = "GET"
    expect_status: list[int] = Field(default_factory=lambda: [200], min_length=1)
    body_contains: str | None = None
    repeat: int = Field(default=1, ge=1, le=1000)
    """Send it this many times; every answer must pass (catches intermittent errors)."""


class StagingTest(_Section):
    """One staging test: an HTTP check against the staging instance, or a command."""

    name: str = Field(min_length=1)
    http: HttpTest | None = None
    command: list[str] | None = None
    """Exit 0 passes; placeholders as for targets ({url} is the staging URL)."""
    timeout_seconds: float = Field(default=60, gt=0)

    @model_validator(mode="after")
    def _one_kind(self) -> StagingTest:
        if (self.http is None) == (self.command is None):
            raise ValueError(f"staging test {self.name!r}: give exactly one of http, command")
        for arg in self.command or []:
            _check_placeholders("command", arg, COMMAND_PLACEHOLDERS)
        return self


class BaselineComparison(_Section):
    """Canary against the stable version, as Kayenta: the same query with {track} = stable."""

    method: Literal["ratio", "mann_whitney"] = "ratio"
    """ratio: canary <= stable * (1 + max_increase) + min_delta, on the instant values.
    mann_whitney: over the interval's samples, the canary is not significantly worse
    (one-sided Mann-Whitney U at `alpha`)."""
    max_increase: float = Field(default=0.2, ge=0)
    """Allowed relative increase (0.2 = +20%)."""
    min_delta: float = Field(default=0.0, ge=0)
    """Differences below this absolute amount never fail (two tiny error rates)."""
    alpha: float = Field(default=0.05, gt=0, lt=1)
    higher_is_worse: bool = True


class AnalysisMetric(_Section):
    name: str = Field(min_length=1)
    query: str = Field(min_length=1)
    """PromQL; placeholders {service} {version} {track} {env} {window} ... (escaped)."""
    success: str | None = None
    """Condition on `result` (`result < 0.05`, `result >= 0.9 and result <= 1`)."""
    failure: str | None = None
    """When set, a measurement that meets neither condition is inconclusive."""
    baseline: BaselineComparison | None = None
    critical: bool = False
    """A failed measurement fails the analysis at once, whatever the failure limit."""

    @model_validator(mode="after")
    def _judged(self) -> AnalysisMetric:
        if self.success is None and self.failure is None and self.baseline is None:
            raise ValueError(f"metric {self.name!r}: give success, failure or baseline")
        _check_placeholders(f"metric {self.name!r} query", self.query, QUERY_PLACEHOLDERS)
        return self


class AnalysisTemplate(_Section):
    """As Argo Rollouts' AnalysisTemplate: measured `count` times, `interval` apart."""

    metrics: list[AnalysisMetric] = Field(min_length=1)
    interval_seconds: float = Field(default=5, gt=0)
    count: int = Field(default=5, ge=1)
    initial_delay_seconds: float = Field(default=0, ge=0)
    failure_limit: int = Field(default=0, ge=0)
    """Failed measurements per metric tolerated; one more fails the run."""
    inconclusive_limit: int = Field(default=0, ge=0)
    consecutive_error_limit: int = Field(default=4, ge=0)
    """Query errors in a row per metric tolerated; one more fails the run."""
    window: str = Field(default="30s", pattern=r"^[0-9]+[smh]$")
    """Substituted for {window} in queries (the rate() range)."""

    @model_validator(mode="after")
    def _unique_metrics(self) -> AnalysisTemplate:
        names = [m.name for m in self.metrics]
        if len(set(names)) != len(names):
            raise ValueError(f"metric names repeat: {names}")
        return self


class PauseSpec(_Section):
    seconds: float | None = Field(default=None, gt=0)
    """None: wait for `guardians rollout promote|abort`."""


class CanaryStep(_Section):
    """One step of the canary: exactly one of set_weight, pause, analysis."""

    set_weight: int | None = Field(default=None, ge=0, le=100)
    pause: PauseSpec | None = None
    analysis: str | None = None
    """The name of an analysis template."""

    @model_validator(mode="after")
    def _one_action(self) -> CanaryStep:
        given = [k for k in ("set_weight", "pause", "analysis") if getattr(self, k) is not None]
        if len(given) != 1:
            raise ValueError(f"a canary step needs exactly one of set_weight, pause, analysis; "
                             f"got {given or 'none'}")
        return self


class ProductionMonitoring(_Section):
    seconds: float = Field(default=60, ge=0)
    """How long production is watched after promotion before `deploy.completed`."""
    analysis: str | None = None
    """The template measured on production during that window; a failure is an emergency
    rollback. The change's monitoring plan adds metrics and time."""


class RolloutWebhooks(_Section):
    """Flagger's hooks: gates that must answer 2xx, and notifications."""

    pre_rollout: list[Webhook] = Field(default_factory=list)
    """Before the canary gets traffic; a failure fails the rollout."""
    confirm_promotion: list[Webhook] = Field(default_factory=list)
    """Before promotion; a failure holds the rollout paused until it answers 2xx or the
    inconclusive timeout rolls it back."""
    post_rollout: list[Webhook] = Field(default_factory=list)
    rollback: list[Webhook] = Field(default_factory=list)


def _default_steps() -> list[CanaryStep]:
    return [CanaryStep(set_weight=20), CanaryStep(pause=PauseSpec(seconds=30)),
            CanaryStep(set_weight=50), CanaryStep(pause=PauseSpec(seconds=30))]


class DeployPolicy(_Section):
    """How the deploy guardian rolls this service out (the rollout plan, as data)."""

    target: DeployTarget | None = None
    """None: the deploy guardian cannot deploy this service; its changes fail with that."""
    staging_tests: list[StagingTest] = Field(default_factory=list)
    steps: list[CanaryStep] = Field(default_factory=_default_steps)
    analysis: dict[str, AnalysisTemplate] = Field(default_factory=dict)
    monitoring: ProductionMonitoring = Field(default_factory=ProductionMonitoring)
    inconclusive_timeout_seconds: float = Field(default=600, gt=0)
    """A rollout paused for a decision rolls back after this long."""
    webhooks: RolloutWebhooks = Field(default_factory=RolloutWebhooks)

    @model_validator(mode="after")
    def _templates_exist(self) -> DeployPolicy:
        wanted = [s.analysis for s in self.steps if s.analysis is not None]
        if self.monitoring.analysis is not None:
            wanted.append(self.monitoring.analysis)
        missing = sorted({name for name in wanted if name not in self.analysis})
        if missing:
            raise ValueError(f"analysis template(s) not defined under analysis: "
                             f"{', '.join(missing)}")
        return self


# -- backup guardian ------------------------------------------------------------------------

_ENV_NAME = r"^[A-Z_][A-Z0-9_]*$"
_SOURCE_NAME = r"^[a-z0-9][a-z0-9_-]{0,62}$"


class DatabaseSource(_Section):
    """A PostgreSQL database, dumped with `pg_dump -Fc` and streamed into the repository."""

    name: str = Field(pattern=_SOURCE_NAME)
    url_env: str = Field(pattern=_ENV_NAME)
    """The environment variable holding its URL: a URL has a password, so it is never
    written in this file (nor in any log, nor on a command line: pg_dump gets it through
    libpq's environment)."""


class PathSource(_Section):
    """Files and directories: configuration, code (the release artifact), user data."""

    name: str = Field(pattern=_SOURCE_NAME)
    kind: Literal["config", "code", "user_data", "system"]
    paths: list[Path] = Field(min_length=1)
    exclude: list[str] = Field(default_factory=list)
    """restic --exclude patterns."""


class Retention(_Section):
    """restic forget's keep policy, applied after the next successful verification only."""

    keep_last: int = Field(default=7, ge=1)
    keep_daily: int = Field(default=7, ge=0)
    keep_weekly: int = Field(default=4, ge=0)
    keep_monthly: int = Field(default=6, ge=0)


class BackupPolicy(_Section):
    """What the backup guardian backs up for this service, where, and how often."""

    repository: str | None = None
    """A restic repository (a path, or any URL restic takes: `s3:...`, `sftp:...`); None:
    `<state_dir>/restic/<service>` on this machine."""
    password_env: str = Field(default="GUARDIANS_RESTIC_PASSWORD", pattern=_ENV_NAME)
    """The environment variable holding the repository's encryption key."""
    databases: list[DatabaseSource] = Field(default_factory=list)
    paths: list[PathSource] = Field(default_factory=list)
    pre_hooks: list[list[str]] = Field(default_factory=list)
    """Argument lists run before the backup (a failing hook fails the backup)."""
    post_hooks: list[list[str]] = Field(default_factory=list)
    hook_timeout_seconds: float = Field(default=300, gt=0)
    schedule: str | None = None
    """A cron expression (5 fields, UTC) for backups besides the one after each deploy."""
    retention: Retention = Field(default_factory=Retention)
    max_age_hours: float = Field(default=26, gt=0)
    """Alert when the newest verified backup is older than this."""
    check_subsets: int = Field(default=10, ge=1, le=1000)
    """`restic check --read-data-subset=k/N` with k rotating: N runs read the whole
    repository."""
    retries: int = Field(default=2, ge=0, le=10)
    """A failed backup or verification is retried this many times before `backup.failed`
    says it will not retry."""

    @model_validator(mode="after")
    def _unique_sources(self) -> BackupPolicy:
        names = [s.name for s in self.databases] + [s.name for s in self.paths]
        repeated = sorted({n for n in names if names.count(n) > 1})
        if repeated:
            raise ValueError(f"backup source names repeat: {', '.join(repeated)}")
        return self

    @property
    def has_sources(self) -> bool:
        return bool(self.databases or self.paths)


# -- process guardian -------------------------------------------------------------------------


class Thresholds(_Section):
    """A measured value's warning and critical levels (higher is worse)."""

    warn: float | None = None
    critical: float | None = None

    @model_validator(mode="after")
    def _ordered(self) -> Thresholds:
        if self.warn is not None and self.critical is not None and self.warn > self.critical:
            raise ValueError(f"warn {self.warn} is above critical {self.critical}")
        return self


class HttpProbe(_Section):
    url: str = Field(pattern=r"^https?://")
    method: Literal["GET", "HEAD", "POST"] = "GET"
    headers: dict[str, str] = Field(default_factory=dict)
    conditions: list[str] = Field(default_factory=lambda: ["[STATUS] == 200"], min_length=1)
    """Gatus-style: `[STATUS] == 200`, `[RESPONSE_TIME] < 300` (ms), `[BODY].status == UP`,
    `[CERTIFICATE_EXPIRATION] > 48h`. All must hold, else the check fails."""
    warn_conditions: list[str] = Field(default_factory=list)
    """Held only when `conditions` pass: one that does not hold makes the check warn (the
    degraded, yellow state Gatus lacks), e.g. `[RESPONSE_TIME] < 150`."""


class TcpProbe(_Section):
    host: str = "127.0.0.1"
    port: int = Field(ge=1, le=65535)


class DependencyProbe(_Section):
    """An external service the managed one needs: it must answer (a query, a metadata
    request), not only accept a connection."""

    kind: Literal["postgres", "kafka", "http"]
    url_env: str = Field(pattern=r"^[A-Z_][A-Z0-9_]*$")
    """The environment variable holding its URL (`postgresql://...`, `host:port` for Kafka,
    `http://...`): never written in this file."""


class HealthCheck(_Section):
    name: str = Field(pattern=r"^[a-z0-9][a-z0-9_.-]{0,62}$")
    http: HttpProbe | None = None
    tcp: TcpProbe | None = None
    dependency: DependencyProbe | None = None
    critical: bool = True
    """A failing critical check turns the service red; a non-critical one yellow."""
    timeout_seconds: float | None = Field(default=None, gt=0)
    """Default: the section's `timeout_seconds`."""

    @model_validator(mode="after")
    def _one_probe(self) -> HealthCheck:
        given = [k for k in ("http", "tcp", "dependency") if getattr(self, k) is not None]
        if len(given) != 1:
            raise ValueError(f"check {self.name!r}: give exactly one of http, tcp, dependency")
        return self


class ExpectedPort(_Section):
    port: int = Field(ge=1, le=65535)
    process: str = Field(min_length=1)
    """A substring of the command line of the process that must be listening on it."""
    host: str = "127.0.0.1"


class ExpectedProcess(_Section):
    name: str = Field(pattern=r"^[a-z0-9][a-z0-9_.-]{0,62}$")
    match: str = Field(min_length=1)
    """A substring of its command line."""
    count: int = Field(default=1, ge=1)
    """How many must run."""
    cpu_percent: Thresholds = Field(default_factory=Thresholds)
    rss_mb: Thresholds = Field(default_factory=Thresholds)
    open_files: Thresholds = Field(default_factory=Thresholds)
    max_restarts: int = Field(default=3, ge=0)
    """Flapping: more restarts (a new pid) than this within `restart_window_minutes` warns."""
    restart_window_minutes: float = Field(default=10, gt=0)
    restart: list[str] | None = None
    """The command that restarts it (argument list); None: it cannot be restarted by us."""


class HostResources(_Section):
    cpu_percent: Thresholds = Field(default_factory=Thresholds)
    memory_percent: Thresholds = Field(default_factory=Thresholds)
    disk_percent: Thresholds = Field(default_factory=Thresholds)
    disk_path: Path = Path("/")


class HealthPolicy(_Section):
    """How the process guardian watches this service, grades it, and acts."""

    interval_seconds: float = Field(default=5, gt=0)
    timeout_seconds: float = Field(default=2, gt=0)
    hysteresis: int = Field(default=3, ge=1)
    """A grade changes only after this many consecutive results agree."""
    checks: list[HealthCheck] = Field(default_factory=list)
    ports: list[ExpectedPort] = Field(default_factory=list)
    processes: list[ExpectedProcess] = Field(default_factory=list)
    resources: HostResources = Field(default_factory=HostResources)
    gate_seconds: float = Field(default=30, ge=0)
    """After `backup.verified`: green this long emits `infra.ready` for the change."""
    restart_on_red: bool = True
    """Monit-style: a failing process with a `restart` command is restarted without waiting
    for the incident service (within the limits below)."""
    max_restarts: int = Field(default=3, ge=0)
    """Restarts we perform within `restart_window_minutes`; then stop and escalate."""
    restart_window_minutes: float = Field(default=10, gt=0)
    alert_repeat_minutes: float = Field(default=30, gt=0)
    """A yellow service's alert is repeated this often while it lasts."""

    @model_validator(mode="after")
    def _unique_names(self) -> HealthPolicy:
        names = [c.name for c in self.checks] + [p.name for p in self.processes]
        repeated = sorted({n for n in names if names.count(n) > 1})
        if repeated:
            raise ValueError(f"health check / process names repeat: {', '.join(repeated)}")
        return self

    @property
    def watched(self) -> bool:
        return bool(self.checks or self.ports or self.processes)


# -- incident service -------------------------------------------------------------------------


class EscalationLevel(_Section):
    notify: list[str] = Field(min_length=1)
    """Who this level pages (names the alert routing understands)."""
    after_seconds: float = Field(default=300, ge=0)
    """How long this level has before the next one is paged."""


def _default_levels() -> list[EscalationLevel]:
    return [EscalationLevel(notify=["on-call"], after_seconds=300),
            EscalationLevel(notify=["on-call", "team-lead"], after_seconds=900)]


class IncidentPolicy(_Section):
    """How the incident service handles this service's failures."""

    escalation_policy: str = Field(default="default", min_length=1)
    levels: list[EscalationLevel] = Field(default_factory=_default_levels, min_length=1)
    action_timeout_seconds: float = Field(default=300, gt=0)
    """An automatic action with no outcome in this time escalates."""
    on_deploy_failed: Literal["rollback", "none"] = "rollback"
    on_health_red: Literal["restart", "restore", "none"] = "restart"
    """`restore`: a red service is a data-loss case (the backup guardian's restore)."""
    on_backup_failed: Literal["none"] = "none"
    open_on_migration_blocked: bool = False


class ManagedService(_Section):
    migration: MigrationPolicy = Field(default_factory=MigrationPolicy)
    deploy: DeployPolicy = Field(default_factory=DeployPolicy)
    backup: BackupPolicy = Field(default_factory=BackupPolicy)
    health: HealthPolicy = Field(default_factory=HealthPolicy)
    incident: IncidentPolicy = Field(default_factory=IncidentPolicy)


class GuardiansConfig(_Section):
    services: dict[ServiceName, ManagedService] = Field(default_factory=dict)

    def service(self, name: str) -> ManagedService:
        """The service's section; a service not in the file gets the defaults."""
        return self.services.get(name) or ManagedService()


class ConfigError(ValueError):
    """guardians.yaml is unreadable or invalid; the message names the file and the key."""


def load_config(path: Path | None) -> GuardiansConfig:
    if path is None:
        return GuardiansConfig()
    try:
        raw = yaml.safe_load(path.read_text()) or {}
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read: {exc.strerror}") from exc
    except yaml.YAMLError as exc:
        raise ConfigError(f"{path}: not valid YAML: {exc}") from exc
    try:
        return GuardiansConfig.model_validate(raw)
    except ValidationError as exc:
        problems = "; ".join(
            f"{'.'.join(str(p) for p in e['loc'])}: {e['msg']}" for e in exc.errors()
        )
        raise ConfigError(f"{path}: {problems}") from exc


def json_schema() -> str:
    """The JSON Schema of guardians.yaml, for editor completion (`make schemas` writes it)."""
    import json

    schema = GuardiansConfig.model_json_schema()
    schema["$id"] = "urn:guardians:config"
    schema["title"] = "guardians.yaml"
    return json.dumps(schema, indent=2, sort_keys=True) + "\n"


SCHEMA_FILE = Path(__file__).resolve().parents[2] / "schemas" / "guardians.yaml.schema.json"


def write_schema() -> Path:
    SCHEMA_FILE.write_text(json_schema())
    return SCHEMA_FILE
