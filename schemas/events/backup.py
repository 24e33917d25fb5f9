"""The backup guardian's events: verified backups, failures, and restores on request.

Backups after a deploy carry that deploy's `change_id`. Scheduled backups belong to no
change, so the backup guardian names one from the schedule (`shop-backup-20261128T0200`): the
key stays a change id and replay still finds one timeline per backup run.

Restores are keyed by `service`, not change: a data-loss restore (from the CLI, or an
incident not caused by a release) has no change, and restores of one service must not
interleave.
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

SnapshotId = Annotated[str, StringConstraints(pattern=r"^[0-9a-f]{8,64}$", strict=True)]
"""A restic snapshot id (the full 64 hex digits, or the short form of 8)."""

Sha256 = Annotated[str, StringConstraints(pattern=r"^[0-9a-f]{64}$", strict=True)]


class BackupKind(StrEnum):
    DATABASE = "database"
    CONFIG = "config"
    CODE = "code"
    USER_DATA = "user_data"
    SYSTEM = "system"


class BackupTrigger(StrEnum):
    DEPLOY = "deploy"
    SCHEDULE = "schedule"
    MANUAL = "manual"


class BackupPhase(StrEnum):
    """Where a backup run failed."""

    BACKUP = "backup"
    REPOSITORY_CHECK = "repository_check"
    RECOVERY_TEST = "recovery_test"


class RestoreOutcome(StrEnum):
    RESTORED = "restored"
    FAILED = "failed"


class BackupSnapshot(StrictModel):
    """One source backed up, its manifest summarised, and its recovery test measured."""

    kind: BackupKind
    source: str = Field(min_length=1)
    """The source's name in `guardians.yaml` (`orders-db`, `uploads`)."""
    snapshot_id: SnapshotId
    size_bytes: int = Field(ge=0)
    added_bytes: int | None = Field(default=None, ge=0)
    """What the repository grew by (deduplication shows here)."""
    file_count: int | None = Field(default=None, ge=0)
    table_count: int | None = Field(default=None, ge=0)
    row_count: int | None = Field(default=None, ge=0)
    manifest_sha256: Sha256 | None = None
    """The digest of the manifest recorded at backup time (per-file sha256, per-table checksums)."""
    backup_seconds: Seconds | None = None
    recovery_seconds: Seconds
    """The recovery test's restore time: the measured recovery time of this source."""


class RepositoryCheck(StrictModel):
    """`restic check` reading a rotating subset, so N runs read the whole repository."""

    read_subset: str = Field(pattern=r"^[1-9][0-9]*/[1-9][0-9]*$")
    """Which subset was read (`3/10`)."""
    duration_seconds: Seconds


class RestoreDifference(StrictModel):
    """Something the restored copy does not match: a table's rows or checksum, a file's hash."""

    item: str = Field(min_length=1)
    """The table or file."""
    expected: str | None = None
    actual: str | None = None
    """null when the item is missing from the restored copy."""


class BackupVerified(Event):
    """Backup guardian → process guardian: backups taken, verified, and restore-tested."""

    TOPIC: ClassVar[str] = "backup.verified"

    change_id: ChangeId
    service: ServiceName
    version: Version | None = None
    """The deployed version; null for a scheduled or manual backup."""
    trigger: BackupTrigger
    repository: str = Field(min_length=1)
    """Where the repository is (path or URL, never its key)."""
    snapshots: tuple[BackupSnapshot, ...] = Field(min_length=1)
    recovery_seconds: Seconds
    """The time to restore every part: the recovery time the plan promises."""
    repository_check: RepositoryCheck | None = None
    next_backup_at: Timestamp | None = None


class BackupFailed(Event):
    """Backup guardian → incident service: a backup, its check or its recovery test failed."""

    TOPIC: ClassVar[str] = "backup.failed"

    change_id: ChangeId
    service: ServiceName
    version: Version | None = None
    trigger: BackupTrigger
    phase: BackupPhase
    reason: str = Field(min_length=1)
    kind: BackupKind | None = None
    source: str | None = None
    snapshot_id: SnapshotId | None = None
    differences: tuple[RestoreDifference, ...] = ()
    attempt: int = Field(default=1, ge=1)
    will_retry: bool = False


class BackupRestoreRequested(Event):
    """Incident service or people → backup guardian: restore this service now. Signed."""

    TOPIC: ClassVar[str] = "backup.restore.requested"

    service: ServiceName
    requested_by: str = Field(min_length=1)
    reason: str = Field(min_length=1)
    snapshot_id: SnapshotId | None = None
    """null: the latest verified snapshot."""
    kinds: tuple[BackupKind, ...] = ()
    """Which parts to restore; empty: every part."""
    change_id: ChangeId | None = None
    incident_id: IncidentId | None = None


class RestoredPart(StrictModel):
    kind: BackupKind
    source: str = Field(min_length=1)
    snapshot_id: SnapshotId
    target: str = Field(min_length=1)
    """Where it was restored to (a database, a path)."""
    checks_passed: int = Field(ge=0)
    differences: tuple[RestoreDifference, ...] = ()
    duration_seconds: Seconds


class BackupRestored(Event):
    """Backup guardian → incident service: the recovery report of a requested restore.

    Sent whether or not the restore succeeded (`outcome`): it is the answer to the command the
    incident service waits for.
    """

    TOPIC: ClassVar[str] = "backup.restored"

    service: ServiceName
    outcome: RestoreOutcome
    parts: tuple[RestoredPart, ...] = ()
    duration_seconds: Seconds
    reason: str | None = None
    """Why it failed, when it did."""
    change_id: ChangeId | None = None
    incident_id: IncidentId | None = None
