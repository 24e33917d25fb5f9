"""The deploy guardian's events: stages, measurements, rollbacks, and the outcome.

CDEvents mappings: `deploy.completed` ~ `service.deployed`, `deploy.rolled_back` ~
`service.rolledback` (subject id = `service`, `environment.id` = `environment`,
`artifactId` = `artifact`); the staging test run inside `deploy.stage.changed` ~
`testsuiterun.finished` (`testSuite.id` = `suite`, `outcome`, `reason`, `environment`).
"""

from __future__ import annotations

from enum import StrEnum
from typing import Annotated, ClassVar

from pydantic import Field, StringConstraints

from schemas.base import (
    ChangeId,
    Event,
    IncidentId,
    Seconds,
    ServiceName,
    StrictModel,
    Timestamp,
)
from schemas.events.change import Version

EnvironmentName = Annotated[
    str, StringConstraints(pattern=r"^[a-z0-9][a-z0-9_-]{0,62}$", strict=True)
]
"""Where a version runs (`staging`, `production`), as CDEvents' `environment.id`."""


class DeployStage(StrEnum):
    """Where a rollout is; every transition is a `deploy.stage.changed`."""

    STAGING = "staging"
    STAGING_TESTS = "staging_tests"
    CANARY = "canary"
    PAUSED = "paused"
    """An inconclusive analysis waits for `guardians rollout promote|abort`."""
    PRODUCTION = "production"
    MONITORING = "monitoring"
    """Promoted; production monitoring before the deploy counts as done."""
    COMPLETED = "completed"
    ROLLING_BACK = "rolling_back"
    ROLLED_BACK = "rolled_back"
    FAILED = "failed"


class AnalysisOutcome(StrEnum):
    """As Argo Rollouts: no data or NaN is inconclusive, never successful."""

    SUCCESSFUL = "successful"
    FAILED = "failed"
    INCONCLUSIVE = "inconclusive"
    ERROR = "error"
    """The query itself failed; counts toward the consecutive-error limit."""


class TestOutcome(StrEnum):
    """CDEvents `testsuiterun.finished` outcomes."""

    __test__ = False  # a domain enum, not a pytest class

    PASS = "pass"  # noqa: S105 (a test outcome, not a password)
    FAIL = "fail"
    CANCEL = "cancel"
    ERROR = "error"


class RollbackTrigger(StrEnum):
    ANALYSIS_FAILED = "analysis_failed"
    INCONCLUSIVE_TIMEOUT = "inconclusive_timeout"
    """An inconclusive pause nobody decided in time."""
    ABORTED = "aborted"
    """`guardians rollout abort`."""
    PRODUCTION_FAILED = "production_failed"
    """Emergency rollback from production monitoring, skipping steps and analysis."""
    REQUESTED = "requested"
    """A `deploy.rollback.requested` command."""


class DeployFailure(StrEnum):
    STAGING_NOT_READY = "staging_not_ready"
    STAGING_TESTS_FAILED = "staging_tests_failed"
    CANARY_NOT_READY = "canary_not_ready"
    """The canary never answered its readiness probe; it was removed, loudly."""
    CONFIG_ERROR = "config_error"
    """The service's rollout plan cannot run (a condition or query that does not parse)."""
    TARGET_ERROR = "target_error"
    """The deploy target refused or errored (command exit code, webhook status)."""
    PRODUCTION_FAILED = "production_failed"
    ROLLBACK_FAILED = "rollback_failed"


class TestCaseResult(StrictModel):
    __test__ = False  # a domain model, not a pytest class

    name: str = Field(min_length=1)
    outcome: TestOutcome
    message: str | None = None
    duration_seconds: Seconds | None = None


class StagingTestRun(StrictModel):
    """The staging tests of a version, as CDEvents `testsuiterun.finished`."""

    suite: str = Field(min_length=1)
    outcome: TestOutcome
    environment: EnvironmentName = "staging"
    cases: tuple[TestCaseResult, ...] = ()
    reason: str | None = None
    duration_seconds: Seconds | None = None


class MetricBreach(StrictModel):
    """The measurement that broke its condition: what a rollback or failure was for."""

    metric: str = Field(min_length=1)
    query: str
    condition: str
    values: tuple[float | None, ...]
    """What the query returned; null where it returned no data."""
    baseline_values: tuple[float | None, ...] = ()
    """The stable version's values, for a baseline comparison."""


class DeployStageChanged(Event):
    """Deploy guardian → dashboard, replay: a rollout moved to another stage."""

    TOPIC: ClassVar[str] = "deploy.stage.changed"

    change_id: ChangeId
    service: ServiceName
    version: Version
    stage: DeployStage
    previous_stage: DeployStage | None = None
    environment: EnvironmentName | None = None
    canary_weight: int | None = Field(default=None, ge=0, le=100)
    """The share of production traffic on the new version, in percent."""
    step: int | None = Field(default=None, ge=0)
    """The index of the canary step in the rollout plan."""
    reason: str | None = None
    tests: StagingTestRun | None = None
    """Present when the staging tests finished."""


class DeployAnalysisMeasured(Event):
    """Deploy guardian → dashboard, replay: one measurement of one analysis metric."""

    TOPIC: ClassVar[str] = "deploy.analysis.measured"

    change_id: ChangeId
    service: ServiceName
    version: Version
    stage: DeployStage
    analysis: str = Field(min_length=1)
    """The analysis template's name."""
    metric: str = Field(min_length=1)
    query: str
    condition: str
    """What was checked, as text: the success and failure conditions and the baseline
    comparison (`result < 0.05; canary <= baseline + 20%`)."""
    values: tuple[float | None, ...] = ()
    """The query's result; empty or null where there was no data (NaN is sent as null)."""
    baseline_values: tuple[float | None, ...] = ()
    outcome: AnalysisOutcome
    error: str | None = None
    """The query's error, when the outcome is `error`."""
    critical: bool = False
    """A failed critical metric fails the analysis at once."""
    canary_weight: int | None = Field(default=None, ge=0, le=100)


class DeployRollbackRequested(Event):
    """Incident service or people → deploy guardian: roll this change back now. Signed."""

    TOPIC: ClassVar[str] = "deploy.rollback.requested"

    change_id: ChangeId
    service: ServiceName
    requested_by: str = Field(min_length=1)
    reason: str = Field(min_length=1)
    incident_id: IncidentId | None = None
    to_version: Version | None = None
    """null: the version that ran before this change."""


class RolloutDecision(StrEnum):
    PROMOTE = "promote"
    """Continue a paused rollout (with extra production monitoring after an inconclusive
    analysis)."""
    ABORT = "abort"
    """Roll the canary back now."""


class DeployRolloutDecided(Event):
    """People (`guardians rollout promote|abort`) → deploy guardian: decide a paused rollout.

    A signed command. Promote continues a rollout paused by a `pause` step without a
    duration or by an inconclusive analysis; abort rolls the canary back at any step.
    """

    TOPIC: ClassVar[str] = "deploy.rollout.decided"

    change_id: ChangeId
    service: ServiceName
    decision: RolloutDecision
    decided_by: str = Field(min_length=1)
    reason: str | None = None


class DeployRolledBack(Event):
    """Deploy guardian → incident service: the new version is out (~ service.rolledback)."""

    TOPIC: ClassVar[str] = "deploy.rolled_back"

    change_id: ChangeId
    service: ServiceName
    version: Version
    """The version that was rolled back."""
    restored_version: Version | None = None
    """The version serving now."""
    artifact: str | None = None
    """The restored version's artifact (CDEvents `artifactId`)."""
    environment: EnvironmentName = "production"
    stage: DeployStage
    """Where the rollout was when it was rolled back."""
    trigger: RollbackTrigger
    reason: str = Field(min_length=1)
    breach: MetricBreach | None = None
    """The failing metric, its values and the condition it broke, when a metric decided."""
    requested_by: str | None = None
    incident_id: IncidentId | None = None
    rollback_seconds: Seconds | None = None
    """From the decision to all traffic on the restored version."""


class DeployCompleted(Event):
    """Deploy guardian → backup guardian: the version serves production (~ service.deployed)."""

    TOPIC: ClassVar[str] = "deploy.completed"

    change_id: ChangeId
    service: ServiceName
    version: Version
    previous_version: Version | None = None
    artifact: str | None = None
    """CDEvents `artifactId`."""
    environment: EnvironmentName = "production"
    started_at: Timestamp | None = None
    duration_seconds: Seconds | None = None


class DeployFailed(Event):
    """Deploy guardian → incident service: the rollout failed, where and why."""

    TOPIC: ClassVar[str] = "deploy.failed"

    change_id: ChangeId
    service: ServiceName
    version: Version
    stage: DeployStage
    """Where it failed."""
    failure: DeployFailure
    reason: str = Field(min_length=1)
    environment: EnvironmentName | None = None
    breach: MetricBreach | None = None
    rolled_back: bool = False
    """The emergency rollback already put the previous version back."""
    restored_version: Version | None = None
