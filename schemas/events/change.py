"""What CI submits: one release candidate of one managed service, with everything it changes."""

from __future__ import annotations

from enum import StrEnum
from typing import Annotated, ClassVar

from pydantic import Field, StringConstraints, model_validator

from schemas.base import ChangeId, Event, ServiceName, StrictModel
from schemas.events.enums import ChangeKind as ChangeKind

Version = Annotated[str, StringConstraints(pattern=r"^\S{1,128}$", strict=True)]
"""A release version as the deploy target knows it (`2.4.1`, `v2`, a git sha)."""


class Ecosystem(StrEnum):
    """Where a dependency comes from, as its lock file says."""

    PYPI = "pypi"
    NPM = "npm"
    CARGO = "cargo"
    GO = "go"
    MAVEN = "maven"
    RUBYGEMS = "rubygems"
    NUGET = "nuget"
    DEBIAN = "debian"
    OTHER = "other"


class InfraPlanFormat(StrEnum):
    """The infrastructure plan formats the migration guardian reads."""

    TERRAFORM_PLAN_JSON = "terraform-plan-json"


class MigrationScript(StrictModel):
    """One database migration; its place in `ChangeSubmitted.migrations` is its apply order."""

    name: str = Field(min_length=1)
    """Where it lives in the change, as the migration runner names it (`0042-orders/up.sql`)."""
    up_sql: str
    down_sql: str | None = None
    """The rollback script; null when the change ships none (which is itself a finding)."""


class ConfigDiff(StrictModel):
    """One configuration key that the change adds, alters or removes."""

    file: str = Field(min_length=1)
    path: str = Field(min_length=1)
    """The key's path inside the file, dotted (`database.pool.max_size`)."""
    before: str | None = None
    """The value before the change, as text; null when the key is new."""
    after: str | None = None
    """The value after the change, as text; null when the key is removed."""

    @model_validator(mode="after")
    def _changes_something(self) -> ConfigDiff:
        if self.before == self.after:
            raise ValueError(f"config diff for {self.file}:{self.path} changes nothing")
        return self


class DependencyDiff(StrictModel):
    """One dependency that the change adds, upgrades, downgrades or removes (from lock files)."""

    name: str = Field(min_length=1)
    ecosystem: Ecosystem
    before: Version | None = None
    """null when the dependency is new."""
    after: Version | None = None
    """null when the dependency is removed."""

    @model_validator(mode="after")
    def _changes_something(self) -> DependencyDiff:
        if self.before == self.after:
            raise ValueError(f"dependency diff for {self.name} changes nothing")
        return self


class InfrastructurePlan(StrictModel):
    """An infrastructure change as its tool plans it (`terraform show -json plan.out`)."""

    name: str = Field(min_length=1)
    """Which stack or workspace the plan is for."""
    format: InfraPlanFormat = InfraPlanFormat.TERRAFORM_PLAN_JSON
    content: str = Field(min_length=1)
    """The plan verbatim, as the tool printed it."""


class ChangeSubmitted(Event):
    """CI → migration guardian: a release candidate is ready. A signed command.

    The pipeline's first event; its `change_id` is the Kafka key and the correlation id of
    everything that follows for this release.
    """

    TOPIC: ClassVar[str] = "change.submitted"

    change_id: ChangeId
    service: ServiceName
    version: Version
    previous_version: Version | None = None
    """The version running now; null for a first release."""
    artifact: str | None = None
    """The release artifact (a purl or image reference), as CDEvents' `artifactId`."""
    submitted_by: str = Field(min_length=1)
    """The person or CI job that submitted it (the signer says which key vouched for it)."""
    migrations: tuple[MigrationScript, ...] = ()
    config_diffs: tuple[ConfigDiff, ...] = ()
    dependency_diffs: tuple[DependencyDiff, ...] = ()
    infrastructure_plans: tuple[InfrastructurePlan, ...] = ()

    @model_validator(mode="after")
    def _migration_names_are_unique(self) -> ChangeSubmitted:
        names = [m.name for m in self.migrations]
        repeated = sorted({n for n in names if names.count(n) > 1})
        if repeated:
            raise ValueError(f"migration name(s) repeated: {', '.join(repeated)}")
        return self

    @property
    def kinds(self) -> frozenset[ChangeKind]:
        """Which kinds of change this release carries (derived, so it is not a field)."""
        present = {
            ChangeKind.DATABASE: bool(self.migrations),
            ChangeKind.CONFIG: bool(self.config_diffs),
            ChangeKind.DEPENDENCY: bool(self.dependency_diffs),
            ChangeKind.INFRASTRUCTURE: bool(self.infrastructure_plans),
        }
        return frozenset(kind for kind, yes in present.items() if yes)
