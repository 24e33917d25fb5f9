"""One change assessed: static analysis, the shadow-database verification, the grade, and
the findings in the contract's form (ids F1..Fn, the grade's causes named by id)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from schemas.events.change import ChangeSubmitted, MigrationScript
from schemas.events.migration import Finding as PublishedFinding
from schemas.events.migration import MigrationAssessed, RiskLevel, ShadowVerification
from services.migration.adapters import shadow
from services.migration.adapters.migration_folders import read_migrations
from services.migration.domain.change_analysis import AnalysisOptions, analyse_change
from services.migration.domain.findings import Finding
from services.migration.domain.plans import finding_id
from services.migration.domain.risk_policy import Grade, RiskPolicy, grade
from services.migration.domain.table_stats import TableStats
from services.runtime.config import MigrationPolicy


@dataclass(frozen=True)
class Assessment:
    findings: tuple[Finding, ...]
    grade: Grade
    verification: ShadowVerification | None
    rollback_verified: bool

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
    baseline = baseline_scripts(policy)
    options = AnalysisOptions(
        pg_version=policy.pg_version,
        transaction_per_file=policy.transaction_per_file,
        critical_config_keys=tuple(policy.critical_config_keys),
        # The verification reports missing rollbacks with what the up script does.
        report_missing_down=False,
    )
    findings = analyse_change(change, options, history=baseline)
    verification = None
    rollback_verified = False
    if change.migrations:
        result = await shadow.verify(shadow_dsn, change.migrations, baseline=baseline)
        findings += list(result.findings)
        verification = result.verification
        rollback_verified = result.passed
    risk_policy = RiskPolicy.from_mapping(rules=policy.rules, effects=policy.effects)
    graded = grade(findings, stats=_stats(policy.stats_file), policy=risk_policy)
    return Assessment(tuple(findings), graded, verification, rollback_verified)
