"""Every event of the pipeline, one pydantic model per topic; nested parts and enums by domain.

Import models from here; import a domain's enums and nested parts from its module
(`schemas.events.deploy.DeployStage`). Which topic carries which model, and how it is keyed,
is `schemas.topics.REGISTRY`.
"""

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
)
from schemas.events.migration import (
    MigrationApproved,
    MigrationAssessed,
    MigrationBlocked,
    MigrationReviewDecided,
    MigrationReviewRequested,
)
from schemas.events.ops import OpsAlert

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
    "DeployStageChanged",
    "HealthChanged",
    "HealthReported",
    "IncidentEscalated",
    "IncidentOpened",
    "IncidentResolved",
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
