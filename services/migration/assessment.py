"""One change assessed: static analysis, the shadow-database verification, the grade, and
the findings in the contract's form (ids F1..Fn, the grade's causes named by id)."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

from schemas.events.change import ChangeSubmitted, MigrationScript
from schemas.events.enums import Severity, StepOutcome
from schemas.events.migration import Finding as PublishedFinding
from schemas.events.migration import MigrationAssessed, RiskLevel, ShadowVerification
from services.migration.adapters import shadow
from services.migration.adapters.migration_folders import read_migrations
from services.migration.domain import native_sql
from services.migration.domain.change_analysis import AnalysisOptions, analyse_change
from services.migration.domain.findings import Effect, Finding
from services.migration.domain.plans import finding_id
from services.migration.domain.risk_policy import Grade, RiskPolicy, grade
from services.migration.domain.table_stats import TableStats
from services.migration.domain.trace_check import reconcile
from services.runtime.config import MigrationPolicy

_log = logging.getLogger(__name__)


@dataclass(frozen=True)
class BrokenBaseline:
    """The configured baseline cannot be read or does not apply: the guardian's
    configuration is at fault, not the change, which is left unverified."""

    path: Path | None
    """`migration.baseline` as configured."""
    problem: str
    """Which script and line, and PostgreSQL's error (or why the files cannot be read)."""
    statement: str | None = None
    """The baseline statement PostgreSQL refused."""

    def finding(self) -> Finding:
        what = self.problem + (f" in `{_short(self.statement)}`" if self.statement else "")
        return Finding(
            rule=shadow.BASELINE_FAILED, severity=Severity.ERROR,
            effect=Effect.VALIDATION_FAILED,
            message="the configured baseline does not apply, so the change could not be "
                    f"verified on the shadow database: {what}",
            statement=self.statement,
            fix=f"fix `migration.baseline` ({self.path}) in guardians.yaml so that it applies "
                "on an empty database of the target's PostgreSQL version (`guardians verify "
                "--baseline` shows the error), then resubmit the change",
        )

    def verification(self, postgres_version: str | None = None,
                     duration_seconds: float | None = None) -> ShadowVerification:
        """Nothing of the change ran: every step skipped, the error says why."""
        error = f"the baseline does not apply: {self.problem}"
        if self.statement:
            error += f"\nstatement: {self.statement}"
        return ShadowVerification(
            up_applied=StepOutcome.SKIPPED, rollback_restored=StepOutcome.SKIPPED,
            reapplied=StepOutcome.SKIPPED, error=error, postgres_version=postgres_version,
            duration_seconds=duration_seconds,
        )


def _short(statement: str, limit: int = 200) -> str:
    flat = " ".join(statement.split())
    return flat if len(flat) <= limit else flat[: limit - 1] + "…"


@dataclass(frozen=True)
class Assessment:
    findings: tuple[Finding, ...]
    grade: Grade
    verification: ShadowVerification | None
    rollback_verified: bool
    broken_baseline: BrokenBaseline | None = None
    """Set when the change has migrations and the baseline could not be used."""

    @property
    def risk(self) -> RiskLevel:
        return self.grade.risk

    def published(self, change: ChangeSubmitted) -> MigrationAssessed:
        return MigrationAssessed(
            change_id=change.change_id,
            service=change.service,
            version=change.version,
            risk=self.risk,
            findings=tuple(_publish(i, f) for i, f in enumerate(self.findings)),
            risk_causes=tuple(finding_id(i) for i in self.grade.causes),
            verification=self.verification,
        )


def _publish(index: int, finding: Finding) -> PublishedFinding:
    return PublishedFinding(
        id=finding_id(index), rule=finding.rule, severity=finding.severity,
        message=finding.message, kind=finding.kind, file=finding.file, line=finding.line,
        column=finding.column, statement=finding.statement, target=finding.target,
        fix=finding.fix,
    )


def baseline_scripts(policy: MigrationPolicy) -> list[MigrationScript]:
    """The target's schema before the change, as configured (a dump or prior migrations)."""
    path = policy.baseline
    if path is None:
        return []
    if path.is_dir():
        return read_migrations(path)
    return [MigrationScript(name=path.name, up_sql=path.read_text(encoding="utf-8"))]


def _stats(path: Path | None) -> TableStats | None:
    return TableStats.from_json(path.read_text(encoding="utf-8")) if path else None


async def assess(change: ChangeSubmitted, policy: MigrationPolicy,
                 shadow_dsn: str) -> Assessment:
    """Raises `shadow.ShadowDatabaseError` when the shadow server is unusable (retry later).
    A baseline that cannot be read or does not apply blocks the change with a
    `shadow-baseline-failed` finding (`broken_baseline` says why); the static analysis is
    still reported."""
    broken: BrokenBaseline | None = None
    try:
        baseline = baseline_scripts(policy)
    except (OSError, UnicodeDecodeError) as error:
        baseline = []
        broken = BrokenBaseline(policy.baseline, f"cannot read {policy.baseline}: {error}")
    options = AnalysisOptions(
        pg_version=policy.pg_version,
        transaction_per_file=policy.transaction_per_file,
        critical_config_keys=tuple(policy.critical_config_keys),
        # The verification reports missing rollbacks with what the up script does.
        report_missing_down=False,
    )
    try:
        findings = analyse_change(change, options, history=baseline)
    except native_sql.NativeError as error:
        _log.error("the native SQL analysis failed on %s (%s); the Python analysis ran instead",
                   change.change_id, error)
        findings = analyse_change(change, options, history=baseline, native=False)
    verification = None
    rollback_verified = False
    if change.migrations and broken is not None:
        verification = broken.verification()
    elif change.migrations:
        try:
            result = await shadow.verify(shadow_dsn, change.migrations, baseline=baseline)
        except shadow.BaselineError as error:
            failure = error.failure
            broken = BrokenBaseline(
                policy.baseline,
                f"{failure.script} line {failure.line}: {failure.message} "
                f"[SQLSTATE {failure.sqlstate}]",
                failure.statement)
            verification = broken.verification(error.postgres_version, error.duration_seconds)
        else:
            # What the shadow run saw each statement do corrects and confirms what the
            # static rules predicted (a rewrite that did not happen is only a lock).
            findings = reconcile(findings, result.verification.statements,
                                 result.baseline_tables)
            findings += list(result.findings)
            verification = result.verification
            rollback_verified = result.passed
    else:
        broken = None  # no migrations: the baseline played no part
    if broken is not None:
        findings.append(broken.finding())
    risk_policy = RiskPolicy.from_mapping(rules=policy.rules, effects=policy.effects)
    graded = grade(findings, stats=_stats(policy.stats_file), policy=risk_policy)
    return Assessment(tuple(findings), graded, verification, rollback_verified, broken)
