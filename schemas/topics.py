"""The topic table: every topic, its model, key, partitions, retention and signing; who hears what.

Keys: pipeline events by `change_id` (one release stays in order), health events by
`service`, incident events by `incident_id`, `ops.alerts` by `dedup_key` (one problem's
firing and resolved notices stay in order). Restore commands and their reports are keyed by
`service`: a restore may have no change, and one service's restores must not interleave.

Partitions: 6 for the pipeline (the unit of parallelism when guardians scale out), 3 for the
lower-volume health and incident streams, 1 for `ops.alerts` (people read it in one order).
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass

from schemas.events import (
    BackupFailed,
    BackupRestored,
    BackupRestoreRequested,
    BackupVerified,
    ChangeSubmitted,
    DeployAnalysisMeasured,
    DeployCompleted,
    DeployFailed,
    DeployRollbackRequested,
    DeployRolledBack,
    DeployRolloutDecided,
    DeployStageChanged,
    HealthChanged,
    HealthReported,
    IncidentEscalated,
    IncidentOpened,
    IncidentResolved,
    IncidentUpdated,
    IncidentUpdateRequested,
    InfraReady,
    MigrationApproved,
    MigrationAssessed,
    MigrationBlocked,
    MigrationReviewDecided,
    MigrationReviewRequested,
    OpsAlert,
    ServiceRestartRequested,
)
from schemas.registry import DAY_MS, PIPELINE_RETENTION_MS, Registry, TopicSpec

RETENTION_ENV = "GUARDIANS_TOPIC_RETENTION_DAYS"

PIPELINE_PARTITIONS = 6
HEALTH_PARTITIONS = 3
INCIDENT_PARTITIONS = 3
ALERT_PARTITIONS = 1


def retention_ms(environ: Mapping[str, str] = os.environ) -> int:
    """The retention of every topic: 14 days, or `GUARDIANS_TOPIC_RETENTION_DAYS` days."""
    raw = environ.get(RETENTION_ENV, "").strip()
    if not raw:
        return PIPELINE_RETENTION_MS
    try:
        days = int(raw)
    except ValueError:
        days = 0
    if days < 1:
        raise ValueError(
            f"{RETENTION_ENV}={raw!r} is not a whole number of days >= 1; "
            f"set it to e.g. 14, or unset it for the default of 14 days"
        )
    return days * DAY_MS


# Read once at import: the stack creates topics and the services check them with one value.
RETENTION_MS = retention_ms()

REGISTRY = Registry(
    [
        # -- change: CI's command that starts a release
        TopicSpec(
            "change.submitted", ChangeSubmitted, key_field="change_id",
            partitions=PIPELINE_PARTITIONS, retention_ms=RETENTION_MS, signed=True,
            description="CI → migration guardian: a release candidate and its changes",
        ),
        # -- migration guardian
        TopicSpec(
            "migration.assessed", MigrationAssessed, key_field="change_id",
            partitions=PIPELINE_PARTITIONS, retention_ms=RETENTION_MS,
            description="migration guardian → dashboard: findings, verification, risk",
        ),
        TopicSpec(
            "migration.review.requested", MigrationReviewRequested, key_field="change_id",
            partitions=PIPELINE_PARTITIONS, retention_ms=RETENTION_MS,
            description="migration guardian → reviewers: a checklist or team review",
        ),
        TopicSpec(
            "migration.review.decided", MigrationReviewDecided, key_field="change_id",
            partitions=PIPELINE_PARTITIONS, retention_ms=RETENTION_MS, signed=True,
            description="a reviewer → migration guardian: approve, reject or escalate",
        ),
        TopicSpec(
            "migration.approved", MigrationApproved, key_field="change_id",
            partitions=PIPELINE_PARTITIONS, retention_ms=RETENTION_MS,
            description="migration guardian → deploy guardian: cleared, with what to watch",
        ),
        TopicSpec(
            "migration.blocked", MigrationBlocked, key_field="change_id",
            partitions=PIPELINE_PARTITIONS, retention_ms=RETENTION_MS,
            description="migration guardian → incident service, people: stopped, and why",
        ),
        # -- deploy guardian
        TopicSpec(
            "deploy.stage.changed", DeployStageChanged, key_field="change_id",
            partitions=PIPELINE_PARTITIONS, retention_ms=RETENTION_MS,
            description="deploy guardian → dashboard: a rollout moved to another stage",
        ),
        TopicSpec(
            "deploy.analysis.measured", DeployAnalysisMeasured, key_field="change_id",
            partitions=PIPELINE_PARTITIONS, retention_ms=RETENTION_MS,
            description="deploy guardian → dashboard: one canary metric measurement",
        ),
        TopicSpec(
            "deploy.rollback.requested", DeployRollbackRequested, key_field="change_id",
            partitions=PIPELINE_PARTITIONS, retention_ms=RETENTION_MS, signed=True,
            description="incident service, people → deploy guardian: roll a change back",
        ),
        TopicSpec(
            "deploy.rollout.decided", DeployRolloutDecided, key_field="change_id",
            partitions=PIPELINE_PARTITIONS, retention_ms=RETENTION_MS, signed=True,
            description="people → deploy guardian: promote or abort a paused rollout",
        ),
        TopicSpec(
            "deploy.rolled_back", DeployRolledBack, key_field="change_id",
            partitions=PIPELINE_PARTITIONS, retention_ms=RETENTION_MS,
            description="deploy guardian → incident service: rolled back, with the breach",
        ),
        TopicSpec(
            "deploy.completed", DeployCompleted, key_field="change_id",
            partitions=PIPELINE_PARTITIONS, retention_ms=RETENTION_MS,
            description="deploy guardian → backup guardian: the version serves production",
        ),
        TopicSpec(
            "deploy.failed", DeployFailed, key_field="change_id",
            partitions=PIPELINE_PARTITIONS, retention_ms=RETENTION_MS,
            description="deploy guardian → incident service: the rollout failed",
        ),
        # -- backup guardian
        TopicSpec(
            "backup.verified", BackupVerified, key_field="change_id",
            partitions=PIPELINE_PARTITIONS, retention_ms=RETENTION_MS,
            description="backup guardian → process guardian: backed up and restore-tested",
        ),
        TopicSpec(
            "backup.failed", BackupFailed, key_field="change_id",
            partitions=PIPELINE_PARTITIONS, retention_ms=RETENTION_MS,
            description="backup guardian → incident service: a backup or its test failed",
        ),
        TopicSpec(
            "backup.restore.requested", BackupRestoreRequested, key_field="service",
            partitions=PIPELINE_PARTITIONS, retention_ms=RETENTION_MS, signed=True,
            description="incident service, people → backup guardian: restore a service",
        ),
        TopicSpec(
            "backup.restored", BackupRestored, key_field="service",
            partitions=PIPELINE_PARTITIONS, retention_ms=RETENTION_MS,
            description="backup guardian → incident service: the recovery report",
        ),
        # -- process guardian
        TopicSpec(
            "health.reported", HealthReported, key_field="service",
            partitions=HEALTH_PARTITIONS, retention_ms=RETENTION_MS,
            description="process guardian → dashboard: a service's grade and checks",
        ),
        TopicSpec(
            "health.changed", HealthChanged, key_field="service",
            partitions=HEALTH_PARTITIONS, retention_ms=RETENTION_MS,
            description="process guardian → incident service: a grade transition",
        ),
        TopicSpec(
            "service.restart.requested", ServiceRestartRequested, key_field="service",
            partitions=HEALTH_PARTITIONS, retention_ms=RETENTION_MS, signed=True,
            description="incident service, people → process guardian: restart a service",
        ),
        TopicSpec(
            "infra.ready", InfraReady, key_field="change_id",
            partitions=PIPELINE_PARTITIONS, retention_ms=RETENTION_MS,
            description="process guardian → people: the release passed its health gate",
        ),
        # -- incident service
        TopicSpec(
            "incident.opened", IncidentOpened, key_field="incident_id",
            partitions=INCIDENT_PARTITIONS, retention_ms=RETENTION_MS,
            description="incident service → people: a new incident",
        ),
        TopicSpec(
            "incident.updated", IncidentUpdated, key_field="incident_id",
            partitions=INCIDENT_PARTITIONS, retention_ms=RETENTION_MS,
            description="incident service → people: a timeline entry",
        ),
        TopicSpec(
            "incident.escalated", IncidentEscalated, key_field="incident_id",
            partitions=INCIDENT_PARTITIONS, retention_ms=RETENTION_MS,
            description="incident service → people: the next level is paged",
        ),
        TopicSpec(
            "incident.resolved", IncidentResolved, key_field="incident_id",
            partitions=INCIDENT_PARTITIONS, retention_ms=RETENTION_MS,
            description="incident service → people: resolved, with durations",
        ),
        TopicSpec(
            "incident.update.requested", IncidentUpdateRequested, key_field="incident_id",
            partitions=INCIDENT_PARTITIONS, retention_ms=RETENTION_MS, signed=True,
            description="people → incident service: acknowledge, note or resolve",
        ),
        # -- people
        TopicSpec(
            "ops.alerts", OpsAlert, key_field="dedup_key",
            partitions=ALERT_PARTITIONS, retention_ms=RETENTION_MS,
            description="guardians → people: alerts, deduplicated, with resolved notices",
        ),
    ]
)


@dataclass(frozen=True)
class ServiceTopics:
    """What one guardian hears and says. It also says `<topic>.dlq` for each topic it hears."""

    receives: tuple[str, ...]
    sends: tuple[str, ...]
    description: str


SERVICES: dict[str, ServiceTopics] = {
    "migration": ServiceTopics(
        receives=("change.submitted", "migration.review.decided"),
        sends=("migration.assessed", "migration.review.requested", "migration.approved",
               "migration.blocked", "ops.alerts"),
        description="Assesses, verifies and gates every change before it deploys.",
    ),
    "deploy": ServiceTopics(
        receives=("migration.approved", "deploy.rollback.requested", "deploy.rollout.decided"),
        sends=("deploy.stage.changed", "deploy.analysis.measured", "deploy.rolled_back",
               "deploy.completed", "deploy.failed", "ops.alerts"),
        description="Staged rollouts with canary analysis and automatic rollback.",
    ),
    "backup": ServiceTopics(
        receives=("deploy.completed", "backup.restore.requested"),
        sends=("backup.verified", "backup.failed", "backup.restored", "ops.alerts"),
        description="Backups that are proven restorable, and restores on request.",
    ),
    "process": ServiceTopics(
        receives=("backup.verified", "service.restart.requested"),
        sends=("health.reported", "health.changed", "infra.ready", "ops.alerts"),
        description="Continuous health graded green / yellow / red, restarts, the health gate.",
    ),
    "incident": ServiceTopics(
        receives=("migration.blocked", "deploy.failed", "deploy.rolled_back", "backup.failed",
                  "backup.restored", "health.changed", "incident.update.requested"),
        sends=("incident.opened", "incident.updated", "incident.escalated", "incident.resolved",
               "ops.alerts", "deploy.rollback.requested", "backup.restore.requested",
               "service.restart.requested"),
        description="Emergency procedures, escalation and the incident log.",
    ),
}


def _check_services() -> None:
    """Fail at import, not at the first message, when the table names a topic that is not there."""
    for service, topics in SERVICES.items():
        for name in (*topics.receives, *topics.sends):
            REGISTRY.topic(name)  # raises UnknownTopicError naming the topic
        if len(set(topics.receives)) != len(topics.receives) or len(set(topics.sends)) != len(
            topics.sends
        ):
            raise ValueError(f"service {service!r} lists a topic twice")


_check_services()
