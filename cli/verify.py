"""`guardians verify --up FILE --down FILE [--baseline FILE_OR_DIR]`: the shadow-database
checks, without Kafka.

On a scratch database (created and dropped on the server of GUARDIANS_DATABASE_URL): apply
the baseline, the up script, the down script (the catalog must be the baseline again), then
the up script once more. Exit 0 only when all three steps pass; 1 when one fails; 2 for a
usage error (a missing file, a baseline that does not apply, an unreachable database).

The adapter is imported inside the command, so `guardians --help` stays fast.
"""

from __future__ import annotations

import dataclasses
import json
import sys
from enum import StrEnum
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

if TYPE_CHECKING:
    from schemas.events.change import MigrationScript
    from services.migration.adapters.shadow import VerificationResult


class OutputFormat(StrEnum):
    TEXT = "text"
    JSON = "json"


class UsageError(Exception):
    """Bad input on the command line; the message names the input and the fix."""


def verify(
    up: Annotated[Path, typer.Option(
        "--up", exists=True, dir_okay=False, readable=True, help="The up script.")],
    down: Annotated[Path | None, typer.Option(
        "--down", exists=True, dir_okay=False, readable=True,
        help="The down (rollback) script; without it, rollback is not verified and the "
        "command exits 1.")] = None,
    baseline: Annotated[Path | None, typer.Option(
        "--baseline", exists=True, help="The schema before the change: a .sql file (a schema "
        "dump), or a directory of prior migrations (folders with up.sql, or *.sql files, "
        "applied in name order).")] = None,
    output: Annotated[OutputFormat, typer.Option("--format", help="Report format.")] =
        OutputFormat.TEXT,
) -> None:
    """Verify a migration on a scratch database: up, rollback to the baseline, up again.

    Example: guardians verify --up 0042/up.sql --down 0042/down.sql --baseline migrations/
    """
    import asyncio

    from schemas.events.change import MigrationScript
    from services.migration.adapters.shadow import (
        BaselineError,
        ShadowDatabaseError,
        verify,
    )
    from services.runtime.settings import RuntimeSettings

    dsn = RuntimeSettings().database_url.get_secret_value()
    try:
        script = MigrationScript(name=str(up), up_sql=_read(up),
                                 down_sql=_read(down) if down else None)
        prior = read_baseline(baseline) if baseline else []
        with _progress('verifying on a scratch database…'):
            result = asyncio.run(verify(dsn, [script], baseline=prior))
    except (UsageError, BaselineError) as error:
        typer.echo(f"error: {error}", err=True)
        raise typer.Exit(2) from None
    except ShadowDatabaseError as error:
        typer.echo(f"error: {error}. Set GUARDIANS_DATABASE_URL to a PostgreSQL server where "
                   "this role may create databases.", err=True)
        raise typer.Exit(2) from None
    render = render_json if output is OutputFormat.JSON else render_text
    sys.stdout.write(render(result, down_file=str(down) if down else None))
    raise typer.Exit(0 if result.passed else 1)


def read_baseline(path: Path) -> list[str | MigrationScript]:
    """A schema dump file, or a directory of migrations: Diesel-style folders (their up.sql)
    and/or *.sql files, in name order."""
    from schemas.events.change import MigrationScript
    from services.migration.adapters.migration_folders import migration_folders, version_key

    if path.is_file():
        return [MigrationScript(name=str(path), up_sql=_read(path))]
    folders = {p.name: p for p in migration_folders(path)}
    files = {p.name: p for p in path.glob("*.sql") if p.is_file()}
    if not folders and not files:
        raise UsageError(f"--baseline {path} holds no migrations: expected *.sql files or "
                         "folders with an up.sql")
    ordered = sorted(folders.keys() | files.keys(), key=version_key)
    return [MigrationScript(name=str(folders[n] / "up.sql"), up_sql=_read(folders[n] / "up.sql"))
            if n in folders else MigrationScript(name=str(files[n]), up_sql=_read(files[n]))
            for n in ordered]


def _read(path: Path) -> str:
    try:
        return path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as error:
        raise UsageError(f"cannot read {path}: {error}") from error


def render_json(result: VerificationResult, *, down_file: str | None = None) -> str:
    verification = result.verification
    document = {
        "passed": result.passed,
        "steps": {"up_applied": verification.up_applied.value,
                  "rollback_restored": verification.rollback_restored.value,
                  "reapplied": verification.reapplied.value},
        "error": verification.error,
        "postgres_version": verification.postgres_version,
        "duration_seconds": verification.duration_seconds,
        "differences": [{
            "object": str(d.object), "kind": d.object.kind.value, "change": d.change.value,
            "severity": d.severity.value, "harmless": d.harmless, "rule": d.rule,
            "message": d.message, "before": d.before, "after": d.after, "file": down_file,
        } for d in result.differences],
        "findings": [dataclasses.asdict(f) for f in result.findings],
        "statements": [s.model_dump(mode="json") for s in verification.statements],
        "untraced_locks": list(result.untraced_locks),
    }
    return json.dumps(document) + "\n"


def render_text(result: VerificationResult, *, down_file: str | None = None) -> str:
    verification = result.verification
    lines = [f"shadow database: PostgreSQL {verification.postgres_version}, "
             f"{verification.duration_seconds} s",
             f"  up applied         {verification.up_applied.value}",
             f"  rollback restored  {verification.rollback_restored.value}",
             f"  re-applied         {verification.reapplied.value}"]
    if verification.error:
        lines += ["", "error: " + verification.error.replace("\n", "\n  ")]
    if result.differences:
        lines += ["", f"differences after the rollback ({down_file or 'down'}):"]
        lines += [f"  {d.severity.value:<7} {d.message}" for d in result.differences]
    others = [f for f in result.findings if not f.target]
    if others:
        lines += ["", "findings:"]
        lines += [f"  {f.severity.value:<7} {f.rule}: {f.file or '-'}:{f.line or '-'}: "
                  f"{f.message}" for f in others]
    if verification.statements:
        lines += ["", "statements (up, first run):"]
        for trace in verification.statements:
            locks = ", ".join(f"{lock.relation} {lock.mode.value.upper()}"
                              for lock in trace.locks) or "-"
            rewrote = ", ".join(trace.rewrote) or "-"
            ms = (trace.duration_seconds or 0) * 1000
            lines.append(f"  {trace.line or '-':>4}  {_first_line(trace.statement)}")
            lines.append(f"        locks: {locks}; rewrote: {rewrote}; {ms:.1f} ms")
    for script in result.untraced_locks:
        lines.append(f"  note: {script} ran outside a transaction (CONCURRENTLY...): each "
                     "statement commits and releases its locks, so they are not traced")
    lines += ["", "verified" if result.passed else "NOT verified"]
    return "\n".join(lines) + "\n"


def _first_line(statement: str, width: int = 90) -> str:
    line = " ".join(statement.split())
    return line if len(line) <= width else line[: width - 3] + "..."


def register(app: typer.Typer) -> None:
    app.command("verify")(verify)


def _progress(what: str) -> Any:
    """A spinner on stderr while a long step runs (nothing when stderr is not a terminal)."""
    from rich.console import Console

    return Console(stderr=True).status(what)
