"""`guardians.yaml`: what each managed service's release needs, validated on load.

One file describes, per managed service, the policies the guardians apply to its changes.
Each guardian's section grows with its issue; unknown keys are rejected so a typo never
silently falls back to a default. Settings that differ per environment (broker, database,
keys) are not here: they come from environment variables (settings.py).
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

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


class ManagedService(_Section):
    migration: MigrationPolicy = Field(default_factory=MigrationPolicy)


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
