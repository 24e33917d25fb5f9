"""Every event of the pipeline, one pydantic model per topic; nested parts and enums by domain.

Import models from here; import a domain's enums and nested parts from its module
(`schemas.events.deploy.DeployStage`). Which topic carries which model, and how it is keyed,
is `schemas.topics.REGISTRY`.

Submodules load on first use (PEP 562): importing one domain's models (say the migration
guardian's) does not build every model of the pipeline, which keeps the CLI quick to start.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from schemas.events.backup import (
        BackupFailed,
        BackupRestored,
        BackupRestoreRequested,
        BackupVerified,
    )
    from schemas.events.change import ChangeSubmitted
    from schemas.events.deploy import (
        DeployAnalysisMeasured,
        DeployCompleted,
        DeployFailed,
        DeployRollbackRequested,
        DeployRolledBack,
        DeployRolloutDecided,
        DeployStageChanged,
    )
    from schemas.events.health import (
        HealthChanged,
        HealthReported,
        InfraReady,
        ServiceRestartRequested,
    )
    from schemas.events.incident import (
        IncidentEscalated,
        IncidentOpened,
        IncidentResolved,
        IncidentUpdated,
        IncidentUpdateRequested,
    )
    from schemas.events.migration import (
        MigrationApproved,
        MigrationAssessed,
        MigrationBlocked,
        MigrationReviewDecided,
        MigrationReviewRequested,
    )
    from schemas.events.ops import OpsAlert

_MODULE_OF = {
    "BackupFailed": "schemas.events.backup",
    "BackupRestoreRequested": "schemas.events.backup",
    "BackupRestored": "schemas.events.backup",
    "BackupVerified": "schemas.events.backup",
    "ChangeSubmitted": "schemas.events.change",
    "DeployAnalysisMeasured": "schemas.events.deploy",
    "DeployCompleted": "schemas.events.deploy",
    "DeployFailed": "schemas.events.deploy",
    "DeployRollbackRequested": "schemas.events.deploy",
    "DeployRolloutDecided": "schemas.events.deploy",
    "DeployRolledBack": "schemas.events.deploy",
    "RolloutDecision": "schemas.events.deploy",
    "DeployStageChanged": "schemas.events.deploy",
    "HealthChanged": "schemas.events.health",
    "HealthReported": "schemas.events.health",
    "IncidentEscalated": "schemas.events.incident",
    "IncidentOpened": "schemas.events.incident",
    "IncidentResolved": "schemas.events.incident",
    "IncidentUpdated": "schemas.events.incident",
    "IncidentUpdateRequested": "schemas.events.incident",
    "IncidentAction": "schemas.events.incident",
    "InfraReady": "schemas.events.health",
    "MigrationApproved": "schemas.events.migration",
    "MigrationAssessed": "schemas.events.migration",
    "MigrationBlocked": "schemas.events.migration",
    "MigrationReviewDecided": "schemas.events.migration",
    "MigrationReviewRequested": "schemas.events.migration",
    "OpsAlert": "schemas.events.ops",
    "ServiceRestartRequested": "schemas.events.health",
}


def __getattr__(name: str) -> object:
    module = _MODULE_OF.get(name)
    if module is None:
        raise AttributeError(f"module 'schemas.events' has no attribute {name!r}")
    return getattr(importlib.import_module(module), name)


__all__ = [
    "BackupFailed",
    "BackupRestoreRequested",
    "BackupRestored",
    "BackupVerified",
    "ChangeSubmitted",
    "DeployAnalysisMeasured",
    "DeployCompleted",
    "DeployFailed",
    "DeployRollbackRequested",
    "DeployRolledBack",
    "DeployRolloutDecided",
    "DeployStageChanged",
    "HealthChanged",
    "HealthReported",
    "IncidentEscalated",
    "IncidentOpened",
    "IncidentResolved",
    "IncidentUpdateRequested",
    "IncidentUpdated",
    "InfraReady",
    "MigrationApproved",
    "MigrationAssessed",
    "MigrationBlocked",
    "MigrationReviewDecided",
    "MigrationReviewRequested",
    "OpsAlert",
    "ServiceRestartRequested",
]
