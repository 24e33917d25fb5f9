"""Settings that differ per environment, from environment variables, in one place."""

from __future__ import annotations

from functools import cached_property
from pathlib import Path

import yaml
from pydantic import Field, SecretStr, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from schemas.signing import SigningKey, TrustedKeys
from services.runtime.config import GuardiansConfig, load_config

SERVICE_PORTS: dict[str, int] = {
    "migration": 9101,
    "deploy": 9102,
    "backup": 9103,
    "process": 9104,
    "incident": 9105,
    "dashboard": 9106,
}
"""Default HTTP port (/metrics, /healthz, /readyz) per service; GUARDIANS_HTTP_PORT overrides.
The five guardians, and the dashboard's read model, which serves its page on the same port."""


class RuntimeSettings(BaseSettings):
    """Everything a guardian process reads from its environment (prefix `GUARDIANS_`)."""

    model_config = SettingsConfigDict(env_prefix="GUARDIANS_", extra="ignore")

    kafka_bootstrap: str = "127.0.0.1:9092"
    database_url: SecretStr = SecretStr("postgresql://guardians@127.0.0.1:55432/guardians")
    shadow_database_url: SecretStr | None = None
    """Where the migration guardian creates its scratch databases (a server of the target's
    major version); unset: the guardians' own server."""
    http_host: str = "127.0.0.1"
    http_port: int | None = None
    """None: the service's default port from SERVICE_PORTS; 0: pick a free port."""

    consumer_group: str | None = None
    """The Kafka consumer group; unset: `guardians-<service>`. Only for a second, independent
    copy of a read model (a test, a rebuild beside the live one, with its own database): the
    replicas of one service share the default group."""

    handler_max_attempts: int = Field(default=3, ge=1, le=20)
    """A handler that raises this many times for one event sends it to the dead-letter topic."""
    handler_retry_backoff_s: float = Field(default=0.05, ge=0)
    max_batch: int = Field(default=200, ge=1, le=10_000)
    """Events handled in one database transaction (one fsync) when they arrive together."""
    commit_interval_ms: int = Field(default=0, ge=0)
    """0: commit offsets after every batch. >0: commit at most this often (re-delivery after a
    crash is harmless because of the dedupe, so this trades re-processing for fewer round trips)."""
    outbox_poll_interval_s: float = Field(default=1.0, gt=0)
    """Rows are published straight after their commit; polling only finds rows left by a
    crash or a failed publication."""
    outbox_stale_after_s: float = Field(default=10.0, ge=0)
    """A row unsent this long is the poller's to publish (at start: every unsent row)."""
    backlog_interval_s: float = Field(default=5.0, gt=0)
    """How often consumer lag and the outbox backlog are measured for /metrics
    (services/runtime/backlog.py); each measurement is a few small broker requests and one
    index scan."""
    db_pool_size: int = Field(default=4, ge=1)
    dedupe_retention_days: float = Field(default=30, gt=0)
    """How long event ids are remembered; longer than any topic's retention, so a
    re-delivery is always recognised."""
    outbox_retention_hours: float = Field(default=24, gt=0)
    """Published outbox rows are kept this long for inspection, then deleted."""
    dependency_alert_after_seconds: float = Field(default=30.0, ge=0)
    """A batch held this long because a dependency of its handler is down (`RetryLaterError`,
    e.g. the migration guardian's shadow PostgreSQL) raises one `dependency-down:<service>`
    warning on `ops.alerts`, resolved when the batch goes through; 0: on the first retry."""
    session_timeout_ms: int = Field(default=10_000, ge=6_000)
    """How long the group waits for a silent replica before moving its partitions (a SIGKILLed
    replica's partitions are idle this long); 6 s is the broker's default minimum."""

    signer: str | None = None
    """Name under which this process signs the commands it emits."""
    signing_key: SecretStr | None = None
    """Base64url Ed25519 seed for `signer` (never logged)."""
    trusted_keys_file: Path | None = None
    """YAML mapping signer name -> base64url Ed25519 public key."""

    config_file: Path | None = None
    """guardians.yaml (per managed service policies); unset: every service gets defaults."""

    prometheus_url: str = "http://127.0.0.1:9090"
    """Where the deploy guardian queries canary metrics (the stack's Prometheus)."""
    prometheus_targets_dir: Path | None = None
    """Prometheus file_sd directory where the local deploy target lists its instances."""
    nginx_bin: str = "nginx"
    nginx_prefix: Path | None = None
    nginx_conf: Path | None = None
    nginx_sites_dir: Path | None = None
    """Where the local deploy target writes one site (weighted upstream) per service."""
    state_dir: Path = Path(".cache/guardians")
    """Files the guardians keep outside the database: the local target's instance table and
    logs."""

    schedule_sweep_seconds: float = Field(default=30.0, gt=0)
    """How often the backup guardian looks at schedules and backup ages."""

    log_level: str = "INFO"
    trace_file: Path | None = None
    """Write finished spans as JSON lines here (tests, offline debugging)."""

    @field_validator("log_level")
    @classmethod
    def _upper(cls, value: str) -> str:
        return value.upper()

    def port_for(self, service: str) -> int:
        if self.http_port is not None:
            return self.http_port
        return SERVICE_PORTS.get(service, 0)

    @cached_property
    def config(self) -> GuardiansConfig:
        return load_config(self.config_file)

    @cached_property
    def signing(self) -> SigningKey | None:
        if not self.signer or self.signing_key is None:
            return None
        return SigningKey.from_text(self.signer, self.signing_key.get_secret_value())

    @cached_property
    def trusted(self) -> TrustedKeys:
        if self.trusted_keys_file is None:
            return TrustedKeys({})
        try:
            raw = yaml.safe_load(self.trusted_keys_file.read_text())
        except (OSError, yaml.YAMLError) as exc:
            raise ValueError(
                f"GUARDIANS_TRUSTED_KEYS_FILE {self.trusted_keys_file}: cannot read: {exc}"
            ) from exc
        if not isinstance(raw, dict) or not all(
            isinstance(k, str) and isinstance(v, str) for k, v in raw.items()
        ):
            raise ValueError(
                f"GUARDIANS_TRUSTED_KEYS_FILE {self.trusted_keys_file}: expected a mapping "
                "of signer name to base64url public key"
            )
        return TrustedKeys(raw)
