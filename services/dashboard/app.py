"""Dashboard: the read model behind one live page of the pipeline (DESIGN.md, "dashboards").

It only hears: every event the guardians say about changes, backups, health, incidents and
alerts is folded into its own tables (its own schema and consumer group, so it can be
dropped and rebuilt from the topics without touching a guardian), and it emits nothing. The
runtime gives each batch one transaction with the dedupe, so every event counts once; the
store makes the folds order-independent, because one change's events arrive on several
topics. After each committed batch, PostgreSQL's NOTIFY wakes the web side, which pushes
the changed sections to every open page over server-sent events (web.py).

    GET /            the page (static/index.html, dashboard.js, dashboard.css)
    GET /api/state   the whole state as JSON
    GET /events      text/event-stream: the state first, then each changed section
"""

from __future__ import annotations

from pathlib import Path

from schemas.events.backup import BackupFailed, BackupVerified
from schemas.events.change import ChangeSubmitted
from schemas.events.deploy import (
    DeployAnalysisMeasured,
    DeployCompleted,
    DeployFailed,
    DeployRolledBack,
    DeployStageChanged,
)
from schemas.events.health import HealthChanged, HealthReported, InfraReady
from schemas.events.incident import IncidentOpened, IncidentResolved, IncidentUpdated
from schemas.events.migration import (
    MigrationApproved,
    MigrationAssessed,
    MigrationBlocked,
    MigrationReviewRequested,
)
from schemas.events.ops import OpsAlert
from services.dashboard import store
from services.dashboard.web import LivePage
from services.runtime import Context, Guardian

guardian = Guardian("dashboard", migrations=Path(__file__).parent / "migrations")
page = LivePage(guardian)


@guardian.handles(ChangeSubmitted)
async def on_change_submitted(event: ChangeSubmitted, ctx: Context) -> None:
    await store.change_submitted(ctx.conn, event)


@guardian.handles(MigrationAssessed)
async def on_migration_assessed(event: MigrationAssessed, ctx: Context) -> None:
    await store.migration_assessed(ctx.conn, event)


@guardian.handles(MigrationReviewRequested)
async def on_review_requested(event: MigrationReviewRequested, ctx: Context) -> None:
    await store.review_requested(ctx.conn, event)


@guardian.handles(MigrationApproved)
async def on_migration_approved(event: MigrationApproved, ctx: Context) -> None:
    await store.migration_approved(ctx.conn, event)


@guardian.handles(MigrationBlocked)
async def on_migration_blocked(event: MigrationBlocked, ctx: Context) -> None:
    await store.migration_blocked(ctx.conn, event)


@guardian.handles(DeployStageChanged)
async def on_stage_changed(event: DeployStageChanged, ctx: Context) -> None:
    await store.stage_changed(ctx.conn, event)


@guardian.handles(DeployAnalysisMeasured)
async def on_analysis_measured(event: DeployAnalysisMeasured, ctx: Context) -> None:
    await store.analysis_measured(ctx.conn, event)


@guardian.handles(DeployCompleted)
async def on_deploy_completed(event: DeployCompleted, ctx: Context) -> None:
    await store.deploy_completed(ctx.conn, event)


@guardian.handles(DeployRolledBack)
async def on_deploy_rolled_back(event: DeployRolledBack, ctx: Context) -> None:
    await store.deploy_rolled_back(ctx.conn, event)


@guardian.handles(DeployFailed)
async def on_deploy_failed(event: DeployFailed, ctx: Context) -> None:
    await store.deploy_failed(ctx.conn, event)


@guardian.handles(BackupVerified)
async def on_backup_verified(event: BackupVerified, ctx: Context) -> None:
    await store.backup_verified(ctx.conn, event)


@guardian.handles(BackupFailed)
async def on_backup_failed(event: BackupFailed, ctx: Context) -> None:
    await store.backup_failed(ctx.conn, event)


@guardian.handles(HealthReported)
async def on_health_reported(event: HealthReported, ctx: Context) -> None:
    await store.health_reported(ctx.conn, event)


@guardian.handles(HealthChanged)
async def on_health_changed(event: HealthChanged, ctx: Context) -> None:
    await store.health_changed(ctx.conn, event)


@guardian.handles(InfraReady)
async def on_infra_ready(event: InfraReady, ctx: Context) -> None:
    await store.infra_ready(ctx.conn, event)


@guardian.handles(IncidentOpened)
async def on_incident_opened(event: IncidentOpened, ctx: Context) -> None:
    await store.incident_opened(ctx.conn, event)


@guardian.handles(IncidentUpdated)
async def on_incident_updated(event: IncidentUpdated, ctx: Context) -> None:
    await store.incident_updated(ctx.conn, event)


@guardian.handles(IncidentResolved)
async def on_incident_resolved(event: IncidentResolved, ctx: Context) -> None:
    await store.incident_resolved(ctx.conn, event)


@guardian.handles(OpsAlert)
async def on_ops_alert(event: OpsAlert, ctx: Context) -> None:
    await store.ops_alert(ctx.conn, event)
