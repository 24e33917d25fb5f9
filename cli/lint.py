"""`guardians lint PATH...`: the migration guardian's static analysis, without Kafka.

A PATH is a .sql file, a migration folder (up.sql, down.sql), or a directory of migrations
(*.sql files and/or migration folders, applied in name order). Each migration is graded as
its own change with the earlier ones already applied, like squawk lints file by file;
`--one-change` grades them all as one change. Exit 0: low risk; 1: medium, high or
blocked; 2: a usage error (bad path, unknown suppression rule, unreadable stats file).

The domain is imported inside the command, so `guardians --help` stays fast.
"""

from __future__ import annotations

import json
import sys
from enum import StrEnum
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from cli import stats

if TYPE_CHECKING:
    from services.migration.domain.change_analysis import Migration
    from services.migration.domain.findings import Finding
    from services.migration.domain.risk_policy import Grade


class OutputFormat(StrEnum):
    TEXT = "text"
    JSON = "json"
    SARIF = "sarif"
    GITHUB = "github"


class UsageError(Exception):
    """Bad input on the command line; the message names the input and the fix."""


def find_migrations(paths: list[Path]) -> list[Migration]:
    from services.migration.domain.change_analysis import Migration

    migrations = []
    for path in paths:
        if path.is_file():
            if path.suffix != ".sql":
                raise UsageError(f"{path} is not a .sql file: pass .sql files or migration "
                                 "directories")
            migrations.append(Migration(str(path), _read(path)))
        elif path.is_dir():
            found = _migrations_in(path)
            if not found:
                raise UsageError(f"{path} holds no migrations: expected *.sql files or "
                                 "folders with an up.sql")
            migrations.extend(found)
        else:
            raise UsageError(f"{path} does not exist: pass .sql files or migration directories")
    return migrations


def _migrations_in(folder: Path) -> list[Migration]:
    from services.migration.domain.change_analysis import Migration

    if (folder / "up.sql").is_file():
        down = folder / "down.sql"
        return [Migration(str(folder), _read(folder / "up.sql"),
                          _read(down) if down.is_file() else None)]
    found = []
    for entry in sorted(folder.iterdir(), key=lambda p: p.name):
        if entry.is_file() and entry.suffix == ".sql":
            found.append(Migration(str(entry), _read(entry)))
        elif entry.is_dir() and (entry / "up.sql").is_file():
            found.extend(_migrations_in(entry))
    return found


def _read(path: Path) -> str:
    try:
        return path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as error:
        raise UsageError(f"cannot read {path}: {error}") from error


def lint(
    paths: Annotated[list[Path], typer.Argument(help="SQL files or migration directories.")],
    output: Annotated[OutputFormat, typer.Option("--format", help="Report format.")] =
        OutputFormat.TEXT,
    pg_version: Annotated[int, typer.Option(help="Target PostgreSQL major version.")] = 18,
    stats_file: Annotated[Path | None, typer.Option(
        "--stats", help="Table sizes from `guardians stats dump`.")] = None,
    one_change: Annotated[bool, typer.Option(
        help="Grade all inputs as one change (objects created in earlier files are new).")]
        = False,
    transaction_per_file: Annotated[bool, typer.Option(
        help="The migration runner wraps each file in a transaction.")] = True,
    down: Annotated[bool, typer.Option(
        help="Also lint down.sql scripts (as <migration>/down), with --one-change.")] = False,
) -> None:
    """Lint SQL migrations: findings, the overall risk grade and what caused it.

    Example: guardians lint migrations/ --format json --stats prod-stats.json
    """
    from services.migration.domain.change_analysis import (
        AnalysisOptions,
        analyse_migrations,
        lint_migrations,
    )
    from services.migration.domain.risk_policy import grade
    from services.migration.domain.table_stats import TableStats, TableStatsError

    try:
        migrations = find_migrations(paths)
        table_stats = None
        if stats_file is not None:
            try:
                table_stats = TableStats.from_json(_read(stats_file))
            except TableStatsError as error:
                raise UsageError(f"{stats_file}: {error}; write it with `guardians stats "
                                 "dump --database-url URL -o FILE`") from error
    except UsageError as error:
        typer.echo(f"error: {error}", err=True)
        raise typer.Exit(2) from None
    options = AnalysisOptions(pg_version=pg_version, transaction_per_file=transaction_per_file,
                              lint_down_scripts=down, report_missing_down=False)
    if one_change:
        findings = analyse_migrations(migrations, options)
    else:
        findings = lint_migrations(migrations, options)
    unknown = [f for f in findings if f.rule == "unknown-suppression"]
    if unknown:
        for finding in unknown:
            typer.echo(f"error: {finding.file}:{finding.line}: {finding.message}. "
                       f"{finding.fix}", err=True)
        raise typer.Exit(2)
    verdict = grade(findings, stats=table_stats)
    render = {OutputFormat.TEXT: render_text, OutputFormat.JSON: render_json,
              OutputFormat.SARIF: render_sarif, OutputFormat.GITHUB: render_github}[output]
    sys.stdout.write(render(findings, verdict))
    raise typer.Exit(0 if verdict.risk == "low" else 1)


def _finding_json(finding: Finding) -> dict[str, object]:
    return {
        "rule": finding.rule, "severity": finding.severity.value, "message": finding.message,
        "file": finding.file, "line": finding.line, "column": finding.column,
        "statement": finding.statement, "fix": finding.fix, "effect": finding.effect.value,
        "kind": finding.kind.value, "target": finding.target,
        "lock": finding.lock.value if finding.lock else None,
        "preexisting": finding.preexisting, "rollback": finding.rollback,
    }


def render_json(findings: list[Finding], verdict: Grade) -> str:
    document = {"risk": verdict.risk.value,
                "findings": [_finding_json(f) for f in findings],
                "causes": list(verdict.causes)}
    return json.dumps(document) + "\n"


def render_text(findings: list[Finding], verdict: Grade) -> str:
    lines: list[str] = []
    current = None
    for finding in findings:
        if finding.file != current:
            current = finding.file
            lines.append(f"\n{current}")
        where = f"{finding.line}:{finding.column}" if finding.line else "-"
        lines.append(f"  {where:>8} {finding.severity.value:<7} {finding.rule}: "
                     f"{finding.message}")
        if finding.fix:
            lines.append(f"  {'':>8} fix: {finding.fix}")
    lines.append(f"\nrisk: {verdict.risk.value} ({len(findings)} findings)")
    for index in verdict.causes[:20]:
        cause = findings[index]
        lines.append(f"  because {cause.file}:{cause.line or '-'} {cause.rule}")
    if len(verdict.causes) > 20:
        lines.append(f"  ... and {len(verdict.causes) - 20} more")
    return "\n".join(lines).lstrip("\n") + "\n"


_SARIF_LEVEL = {"error": "error", "warning": "warning", "info": "note"}


def render_sarif(findings: list[Finding], verdict: Grade) -> str:
    from services.migration.domain.rule_catalog import RULES

    used = sorted({f.rule for f in findings})
    results = []
    for finding in findings:
        location = {"physicalLocation": {
            "artifactLocation": {"uri": finding.file or "change"},
            "region": {"startLine": finding.line or 1, "startColumn": finding.column or 1}}}
        results.append({"ruleId": finding.rule, "ruleIndex": used.index(finding.rule),
                        "level": _SARIF_LEVEL[finding.severity.value],
                        "message": {"text": finding.message + (
                            f" Fix: {finding.fix}" if finding.fix else "")},
                        "locations": [location]})
    document = {
        "version": "2.1.0",
        "$schema": "https://json.schemastore.org/sarif-2.1.0.json",
        "runs": [{
            "tool": {"driver": {
                "name": "guardians-lint", "informationUri": "https://example.invalid/rules",
                "rules": [{"id": rule, "shortDescription": {"text": RULES[rule].catches}}
                          for rule in used]}},
            "results": results,
            "properties": {"risk": verdict.risk.value},
        }],
    }
    return json.dumps(document) + "\n"


def _escape(text: str, *, property_value: bool = False) -> str:
    text = text.replace("%", "%25").replace("\r", "%0D").replace("\n", "%0A")
    if property_value:
        text = text.replace(":", "%3A").replace(",", "%2C")
    return text


def render_github(findings: list[Finding], verdict: Grade) -> str:
    command = {"error": "error", "warning": "warning", "info": "notice"}
    lines = []
    for finding in findings:
        props = f"file={_escape(finding.file or 'change', property_value=True)}"
        if finding.line:
            props += f",line={finding.line},col={finding.column or 1}"
        props += f",title={_escape(finding.rule, property_value=True)}"
        lines.append(f"::{command[finding.severity.value]} {props}::"
                     f"{_escape(finding.message)}")
    lines.append(f"risk: {verdict.risk.value}")
    return "\n".join(lines) + "\n"


def register(app: typer.Typer) -> None:
    app.command("lint")(lint)
    stats.register(app)


def render_rules_markdown() -> str:
    """docs/rules.md: the rule reference, generated from the catalog (a test keeps it fresh)."""
    from services.migration.domain.rule_catalog import ALIASES, RULES

    lines = [
        "# Migration guardian rules",
        "",
        "Generated from `services/migration/domain/rule_catalog.py` by "
        "`cli.lint.render_rules_markdown()`; a unit test fails when this file is stale.",
        "",
        "Each finding says what a statement does (its *effect*); the risk policy alone turns "
        "effects into a grade: `cannot_run` and `validation_failed` block; `data_loss`, "
        "`breaking_rename`, `rewrite`, `fails_on_existing_rows` are high; `blocking_lock`, "
        "`backfill`, `incompatible` and `rollback_defect` medium (a rollback defect is high "
        "when the change is destructive); `missing_timeout` and `advisory` low. A finding on "
        "an object the same change created (`preexisting: false`) or in a down script grades "
        "low. With `--stats`, a lock, rewrite or backfill on a large table (>= 1,000,000 rows "
        "or >= 1 GiB) goes up one level and on a tiny one (< 10,000 rows and < 10 MiB) down "
        "one.",
        "",
        "Suppress with `-- guardians:ignore RULE[,RULE]` (next statement) or "
        "`-- guardians:ignore-file RULE[,RULE]` (whole file). An unknown name is an "
        "`unknown-suppression` error (`guardians lint` exits 2); `syntax-error` cannot be "
        "suppressed. squawk's spellings are accepted: "
        + ", ".join(f"`{a}` = `{r}`" for a, r in sorted(ALIASES.items())) + ".",
        "",
        "| rule | severity | usual effect | catches | from |",
        "|---|---|---|---|---|",
    ]
    for rule in RULES.values():
        lines.append(f"| `{rule.id}` | {rule.severity.value} | {rule.effect.value} | "
                     f"{rule.catches} | {rule.source} |")
    return "\n".join(lines) + "\n"
