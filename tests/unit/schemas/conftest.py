"""One realistic event per topic, with every optional part filled, for the contract tests."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from schemas.base import Event
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
from schemas.events.backup import (
    BackupKind,
    BackupPhase,
    BackupSnapshot,
    BackupTrigger,
    RepositoryCheck,
    RestoreDifference,
    RestoredPart,
    RestoreOutcome,
)
from schemas.events.change import (
    ConfigDiff,
    DependencyDiff,
    Ecosystem,
    InfrastructurePlan,
    MigrationScript,
)
from schemas.events.deploy import (
    AnalysisOutcome,
    DeployFailure,
    DeployStage,
    MetricBreach,
    RollbackTrigger,
    RolloutDecision,
    StagingTestRun,
    TestCaseResult,
    TestOutcome,
)
from schemas.events.health import CheckKind, CheckResult, CheckStatus, HealthGrade
from schemas.events.incident import (
    IncidentAction,
    IncidentCause,
    IncidentDurations,
    IncidentSeverity,
    IncidentStatus,
    RemediationAction,
    TimelineEntry,
    TimelineKind,
)
from schemas.events.migration import (
    ApprovalPath,
    BlockReason,
    ChecklistItem,
    DetailedPlan,
    Finding,
    LockMode,
    LockTaken,
    MonitoringPlan,
    PlanStep,
    ReviewDecision,
    ReviewKind,
    RiskLevel,
    Severity,
    ShadowVerification,
    StatementTrace,
    StepOutcome,
    WatchedMetric,
)
from schemas.events.ops import AlertSeverity, AlertValue, Guardian

CHANGE = "shop-2026.11.28-7"
SERVICE = "shop"
INCIDENT = "inc-20261128-0001"
SNAPSHOT = "4f3c2a1b9e8d7c6b"
AT = datetime(2026, 11, 28, 9, 30, tzinfo=UTC)

_FINDING = Finding(
    id="f1",
    rule="require-concurrent-index-creation",
    severity=Severity.WARNING,
    message="CREATE INDEX without CONCURRENTLY blocks writes to orders",
    file="0042-orders/up.sql",
    line=3,
    column=1,
    statement="CREATE INDEX orders_created_at ON orders (created_at)",
    target="orders",
    fix="CREATE INDEX CONCURRENTLY orders_created_at ON orders (created_at)",
)
_BREACH = MetricBreach(
    metric="error-rate",
    query='sum(rate(http_requests_total{code=~"5.."}[1m])) / sum(rate(http_requests_total[1m]))',
    condition="result < 0.05",
    values=(0.21, None),
    baseline_values=(0.002,),
)
_SLOW_CHECK = CheckResult(
    name="http-latency",
    kind=CheckKind.HTTP,
    status=CheckStatus.WARN,
    observed=412.0,
    unit="ms",
    condition="[RESPONSE_TIME] < 300",
    message="response time 412 ms",
    duration_seconds=0.41,
)


def _change_and_migration() -> list[Event]:
    return [
        ChangeSubmitted(
            change_id=CHANGE, service=SERVICE, version="2.0.0", previous_version="1.9.3",
            artifact="pkg:oci/shop@sha256:abc", submitted_by="ci:github-actions",
            migrations=(MigrationScript(name="0042-orders/up.sql",
                                        up_sql="CREATE INDEX ...;", down_sql="DROP INDEX ...;"),),
            config_diffs=(ConfigDiff(file="config/app.yaml", path="database.pool.max_size",
                                     before="10", after="20"),),
            dependency_diffs=(DependencyDiff(name="sqlalchemy", ecosystem=Ecosystem.PYPI,
                                             before="1.4.52", after="2.0.36"),),
            infrastructure_plans=(
                InfrastructurePlan(name="shop-prod", content='{"format_version": "1.2"}'),
            ),
            occurred_at=AT,
        ),
        MigrationAssessed(
            change_id=CHANGE, service=SERVICE, version="2.0.0", risk=RiskLevel.MEDIUM,
            findings=(_FINDING,), risk_causes=("f1",),
            verification=ShadowVerification(
                up_applied=StepOutcome.PASSED, rollback_restored=StepOutcome.PASSED,
                reapplied=StepOutcome.PASSED, postgres_version="18.1", duration_seconds=1.2,
                statements=(StatementTrace(
                    statement="CREATE INDEX ...", file="0042-orders/up.sql", line=3,
                    locks=(LockTaken(relation="orders", mode=LockMode.SHARE),),
                    duration_seconds=0.05),),
            ),
        ),
        MigrationReviewRequested(
            change_id=CHANGE, service=SERVICE, version="2.0.0", risk=RiskLevel.HIGH,
            review=ReviewKind.TEAM, required_approvals=2, deadline=AT,
            checklist=(ChecklistItem(id="c1", text="Index built off-peak", finding_id="f1"),),
            plan=DetailedPlan(
                steps=(PlanStep(order=1, action="create the index", finding_ids=("f1",),
                                safe_alternative="CONCURRENTLY", expected_lock=LockMode.SHARE),),
                rollback="DROP INDEX orders_created_at", rollback_verified=True,
                lock_impact="SHARE on orders for ~2 s",
            ),
        ),
        MigrationReviewDecided(
            change_id=CHANGE, service=SERVICE, reviewer="alice",
            decision=ReviewDecision.ESCALATE_TO_TEAM, acknowledged=("c1",), comment="big table",
        ),
        MigrationApproved(
            change_id=CHANGE, service=SERVICE, version="2.0.0", previous_version="1.9.3",
            artifact="pkg:oci/shop@sha256:abc", risk=RiskLevel.MEDIUM,
            approval=ApprovalPath.CHECKLIST, approved_by=("alice",),
            monitoring_plan=MonitoringPlan(duration_seconds=600.0, metrics=(WatchedMetric(
                name="db-lock-waits", query="sum(pg_locks_waiting)", condition="result < 5",
                reason="index build on orders", finding_ids=("f1",)),)),
        ),
        MigrationBlocked(
            change_id=CHANGE, service=SERVICE, version="2.0.0", risk=RiskLevel.BLOCKED,
            reason=BlockReason.FAILED_VALIDATION, details=('relation "order" does not exist',),
            finding_ids=("f1",), rejected_by=("bob",),
        ),
    ]


def _deploy() -> list[Event]:
    return [
        DeployStageChanged(
            change_id=CHANGE, service=SERVICE, version="2.0.0", stage=DeployStage.CANARY,
            previous_stage=DeployStage.STAGING_TESTS, environment="production",
            canary_weight=20, step=1, reason="staging tests passed",
            tests=StagingTestRun(suite="smoke", outcome=TestOutcome.PASS, duration_seconds=3.5,
                                 cases=(TestCaseResult(name="GET /healthz",
                                                       outcome=TestOutcome.PASS),)),
        ),
        DeployAnalysisMeasured(
            change_id=CHANGE, service=SERVICE, version="2.0.0", stage=DeployStage.CANARY,
            analysis="success-rate", metric="error-rate", query=_BREACH.query,
            condition="result < 0.05", values=(0.01, None), baseline_values=(0.002,),
            outcome=AnalysisOutcome.INCONCLUSIVE, critical=True, canary_weight=20,
        ),
        DeployRollbackRequested(
            change_id=CHANGE, service=SERVICE, requested_by="incident", reason="error spike",
            incident_id=INCIDENT, to_version="1.9.3",
        ),
        DeployRolloutDecided(
            change_id=CHANGE, service=SERVICE, decision=RolloutDecision.PROMOTE,
            decided_by="ana", reason="latency inconclusive: traffic too low at 5%",
        ),
        DeployRolledBack(
            change_id=CHANGE, service=SERVICE, version="2.0.0", restored_version="1.9.3",
            artifact="pkg:oci/shop@sha256:old", stage=DeployStage.CANARY,
            trigger=RollbackTrigger.ANALYSIS_FAILED, reason="error-rate 0.21 >= 0.05",
            breach=_BREACH, rollback_seconds=1.8,
        ),
        DeployCompleted(
            change_id=CHANGE, service=SERVICE, version="2.0.0", previous_version="1.9.3",
            artifact="pkg:oci/shop@sha256:abc", started_at=AT, duration_seconds=312.5,
        ),
        DeployFailed(
            change_id=CHANGE, service=SERVICE, version="2.0.0", stage=DeployStage.MONITORING,
            failure=DeployFailure.PRODUCTION_FAILED, reason="error-rate breached",
            environment="production", breach=_BREACH, rolled_back=True,
            restored_version="1.9.3",
        ),
    ]


def _backup() -> list[Event]:
    difference = RestoreDifference(item="orders", expected="rows=120", actual="rows=119")
    return [
        BackupVerified(
            change_id=CHANGE, service=SERVICE, version="2.0.0", trigger=BackupTrigger.DEPLOY,
            repository="/var/lib/guardians/restic",
            snapshots=(BackupSnapshot(
                kind=BackupKind.DATABASE, source="shop-db", snapshot_id=SNAPSHOT,
                size_bytes=1_048_576, added_bytes=4096, table_count=12, row_count=3400,
                manifest_sha256="a" * 64, backup_seconds=2.5, recovery_seconds=4.0),),
            recovery_seconds=4.0,
            repository_check=RepositoryCheck(read_subset="3/10", duration_seconds=1.5),
            next_backup_at=AT,
        ),
        BackupFailed(
            change_id=CHANGE, service=SERVICE, trigger=BackupTrigger.SCHEDULE,
            phase=BackupPhase.RECOVERY_TEST, reason="restored rows differ",
            kind=BackupKind.DATABASE, source="shop-db", snapshot_id=SNAPSHOT,
            differences=(difference,), attempt=2, will_retry=True,
        ),
        BackupRestoreRequested(
            service=SERVICE, requested_by="incident", reason="orders table dropped",
            snapshot_id=SNAPSHOT, kinds=(BackupKind.DATABASE,), change_id=CHANGE,
            incident_id=INCIDENT,
        ),
        BackupRestored(
            service=SERVICE, outcome=RestoreOutcome.RESTORED, duration_seconds=5.5,
            parts=(RestoredPart(kind=BackupKind.DATABASE, source="shop-db",
                                snapshot_id=SNAPSHOT, target="shop", checks_passed=12,
                                duration_seconds=5.5),),
            incident_id=INCIDENT,
        ),
    ]


def _health_incident_ops() -> list[Event]:
    return [
        HealthReported(service=SERVICE, grade=HealthGrade.YELLOW, checks=(_SLOW_CHECK,),
                       change_id=CHANGE),
        HealthChanged(service=SERVICE, grade=HealthGrade.YELLOW,
                      previous_grade=HealthGrade.GREEN, causes=(_SLOW_CHECK,), consecutive=3),
        ServiceRestartRequested(service=SERVICE, requested_by="incident", reason="red",
                                instance="shop-1", incident_id=INCIDENT),
        InfraReady(change_id=CHANGE, service=SERVICE, version="2.0.0", gate_seconds=60.0,
                   checks_passed=9),
        IncidentOpened(
            incident_id=INCIDENT, dedup_key="shop:deploy_failed", service=SERVICE,
            severity=IncidentSeverity.HIGH, cause=IncidentCause.DEPLOY_FAILED,
            summary="shop 2.0.0 failed in production monitoring", change_id=CHANGE,
            version="2.0.0", artifact="pkg:oci/shop@sha256:abc", environment="production",
        ),
        IncidentUpdateRequested(
            incident_id=INCIDENT, action=IncidentAction.NOTE, by="ana",
            text="the canary's errors are all on /checkout",
        ),
        IncidentUpdated(
            incident_id=INCIDENT, service=SERVICE, status=IncidentStatus.MITIGATING,
            severity=IncidentSeverity.HIGH, count=50,
            entry=TimelineEntry(at=AT, kind=TimelineKind.ACTION_REQUESTED, actor="incident",
                                message="rollback requested", action=RemediationAction.ROLLBACK,
                                event_id="8e0c"),
        ),
        IncidentEscalated(
            incident_id=INCIDENT, service=SERVICE, severity=IncidentSeverity.CRITICAL, level=2,
            policy="shop-oncall", notify=("team-lead",), reason="restart failed",
            next_escalation_at=AT,
        ),
        IncidentResolved(
            incident_id=INCIDENT, service=SERVICE, severity=IncidentSeverity.HIGH,
            resolved_by="incident", resolution="rolled back to 1.9.3",
            durations=IncidentDurations(detect_seconds=2.0, mitigate_seconds=5.0,
                                        resolve_seconds=40.0),
            count=50, change_id=CHANGE, version="2.0.0",
        ),
        OpsAlert(
            dedup_key="shop:http-latency", severity=AlertSeverity.WARNING,
            summary="shop is slow", raised_by=Guardian.PROCESS, service=SERVICE,
            values=(AlertValue(name="http-latency", value=412.0, unit="ms", threshold=300.0),),
            notify=("oncall",), escalation_level=1, incident_id=INCIDENT, change_id=CHANGE,
        ),
    ]


@pytest.fixture(scope="session")
def samples() -> dict[str, Event]:
    """One event per topic, by topic name."""
    events = [*_change_and_migration(), *_deploy(), *_backup(), *_health_incident_ops()]
    return {event.TOPIC: event for event in events}
