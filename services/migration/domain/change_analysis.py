"""The static analysis of one change: its migrations (up, then down in rollback order), its
configuration, dependency and infrastructure diffs, as one list of findings.

`analyse_change` is what the service calls with a `ChangeSubmitted`; `lint_migrations` is what
`guardians lint` calls with migrations read from disk, each its own change by default.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Protocol

from schemas.events.enums import Severity
from services.migration.domain import native_sql
from services.migration.domain.change_state import SchemaKnowledge
from services.migration.domain.config_changes import ConfigDiffLike, analyse_config_diffs
from services.migration.domain.dependency_changes import (
    DependencyDiffLike,
    analyse_dependency_diffs,
)
from services.migration.domain.findings import Effect, Finding
from services.migration.domain.infrastructure_plans import (
    STATEFUL_RESOURCE_TYPES,
    InfrastructurePlanLike,
    analyse_infrastructure_plans,
)
from services.migration.domain.sql_analysis import SqlAnalysis, SqlFile, SqlOptions


class MigrationLike(Protocol):
    @property
    def name(self) -> str: ...
    @property
    def up_sql(self) -> str: ...
    @property
    def down_sql(self) -> str | None: ...


class ChangeLike(Protocol):
    @property
    def migrations(self) -> Sequence[MigrationLike]: ...
    @property
    def config_diffs(self) -> Sequence[ConfigDiffLike]: ...
    @property
    def dependency_diffs(self) -> Sequence[DependencyDiffLike]: ...
    @property
    def infrastructure_plans(self) -> Sequence[InfrastructurePlanLike]: ...


@dataclass(frozen=True)
class AnalysisOptions:
    pg_version: int = 18
    transaction_per_file: bool = True
    lint_down_scripts: bool = True
    """Down scripts are analysed after every up script, in rollback order, as `<name>/down`."""
    report_missing_down: bool = True
    critical_config_keys: tuple[str, ...] = ()
    stateful_resource_types: tuple[str, ...] = field(default=STATEFUL_RESOURCE_TYPES)

    @property
    def sql(self) -> SqlOptions:
        return SqlOptions(self.pg_version, self.transaction_per_file)


def analyse_migrations(
    migrations: Sequence[MigrationLike], options: AnalysisOptions | None = None,
    *, history: Sequence[MigrationLike] = (), native: bool | None = None,
) -> list[Finding]:
    """One change's migrations, after `history` (already applied: read for the schema only).
    `native`: False for the Python analysis (see `new_sql_analysis`)."""
    options = options or AnalysisOptions()
    analysis = new_sql_analysis(options, history, native=native)
    analysis.analyse(SqlFile(m.name, m.up_sql) for m in migrations)
    analysis.end_change()
    if options.lint_down_scripts:
        analysis.analyse(SqlFile(f"{m.name}/down", m.down_sql, rollback=True)
                         for m in reversed(migrations) if m.down_sql is not None)
    findings = analysis.findings
    if options.report_missing_down:
        findings += [_missing_down(m) for m in migrations if m.down_sql is None]
    return in_reading_order(findings, [m.name for m in migrations])


def lint_migrations(migrations: Sequence[MigrationLike],
                    options: AnalysisOptions | None = None, *, one_change: bool = False,
                    native: bool | None = None) -> list[Finding]:
    """`guardians lint`: by default each migration is its own change, the ones before it
    already applied (what a migrations directory is); `one_change` makes them one change."""
    options = options or AnalysisOptions()
    if one_change:
        return analyse_migrations(migrations, options, native=native)
    analysis = new_sql_analysis(options, native=native)
    for migration in migrations:
        analysis.new_change()
        analysis.analyse_file(SqlFile(migration.name, migration.up_sql))
    analysis.end_change()
    return in_reading_order(analysis.findings, [m.name for m in migrations])


def analyse_change(change: ChangeLike, options: AnalysisOptions | None = None,
                   *, history: Sequence[MigrationLike] = (), native: bool | None = None,
                   ) -> list[Finding]:
    options = options or AnalysisOptions()
    findings = analyse_migrations(change.migrations, options, history=history, native=native) \
        if change.migrations else []
    findings += analyse_config_diffs(change.config_diffs, options.critical_config_keys)
    findings += analyse_dependency_diffs(change.dependency_diffs)
    findings += analyse_infrastructure_plans(change.infrastructure_plans,
                                             options.stateful_resource_types)
    return findings


class SqlAnalysisLike(Protocol):
    """`SqlAnalysis`, or the native module's twin of it (`native_sql.NativeAnalysis`)."""

    @property
    def findings(self) -> list[Finding]: ...
    def analyse(self, files: Iterable[SqlFile]) -> list[Finding]: ...
    def analyse_file(self, file: SqlFile) -> None: ...
    def new_change(self) -> None: ...
    def end_change(self) -> None: ...


def new_sql_analysis(options: AnalysisOptions, history: Sequence[MigrationLike] = (),
                     *, native: bool | None = None) -> SqlAnalysisLike:
    """The native analysis when it is built (`native_sql.enabled`) and `native` is not False,
    else the Python one; either has read `history` for the schema only. A `NativeError` (the
    native analysis failed: a bug) is the caller's to catch; the Python analysis then finds the
    same."""
    if native is not False and native_sql.enabled():
        return native_sql.NativeAnalysis(options.sql, (SqlFile(m.name, m.up_sql) for m in history))
    return SqlAnalysis(options.sql, _learn(history, options))


def _learn(history: Sequence[MigrationLike], options: AnalysisOptions) -> SchemaKnowledge:
    knowledge = SchemaKnowledge()
    if history:
        SqlAnalysis(options.sql, knowledge).analyse(SqlFile(m.name, m.up_sql) for m in history)
    return knowledge


def _missing_down(migration: MigrationLike) -> Finding:
    return Finding(
        rule="missing-down-script", severity=Severity.WARNING, effect=Effect.ROLLBACK_DEFECT,
        file=migration.name, message=f"{migration.name} has no down script: rolling the "
        "release back leaves its schema changes in place.",
        fix="Write the down script that restores the previous schema (and verify it with "
            "`guardians verify`).")


def in_reading_order(findings: list[Finding], names: Sequence[str]) -> list[Finding]:
    """Up scripts in order, then down scripts; by line within a file (stable otherwise)."""
    position = {name: i for i, name in enumerate(names)}

    def key(finding: Finding) -> tuple[int, int, int, int]:
        file = finding.file or ""
        down = file.endswith("/down")
        index = position.get(file.removesuffix("/down") if down else file, len(names))
        return int(down), index, finding.line or 0, finding.column or 0
    return sorted(findings, key=key)
