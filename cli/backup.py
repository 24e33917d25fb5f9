"""`guardians backup plan SERVICE` and `guardians backup restore SERVICE`.

plan: the generated recovery plan (Markdown) from guardians.yaml and the backup guardian's
record of the last verified backup (read from its schema in GUARDIANS_DATABASE_URL).
restore: a signed `backup.restore.requested`; the backup guardian restores the latest
verified snapshot (or the one named) and answers with `backup.restored`.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Annotated

import typer

backup_app = typer.Typer(help="Recovery plans and restores (signed commands).")


@backup_app.command("plan")
def plan(
    service: Annotated[str, typer.Argument(help="The managed service.")],
    config: Annotated[Path | None, typer.Option(
        "--config", "-c", help="guardians.yaml (default: $GUARDIANS_CONFIG_FILE).")] = None,
    output: Annotated[str, typer.Option("--format", help="text (Markdown) or json.")] = "text",
) -> None:
    """Print the service's recovery plan: sources, repository, restore commands, the last
    verified snapshot and its measured recovery time.

    Example: guardians backup plan demo --config demo/guardians.yaml
    """
    import asyncio

    from services.backup.plan_view import render_plan
    from services.runtime.config import ConfigError, load_config

    config = config or Path(os.environ.get("GUARDIANS_CONFIG_FILE", "guardians.yaml"))
    try:
        loaded = load_config(config)
    except ConfigError as exc:
        typer.echo(f"guardians backup plan: {exc}", err=True)
        raise typer.Exit(2) from exc
    if service not in loaded.services:
        typer.echo(f"guardians backup plan: {service!r} is not in {config}", err=True)
        raise typer.Exit(2)
    policy = loaded.service(service).backup
    plan = asyncio.run(render_plan(service, policy))
    if output == "json":
        typer.echo(json.dumps({"service": service, "markdown": plan}))
    else:
        typer.echo(plan)


@backup_app.command("restore")
def restore(
    service: Annotated[str, typer.Argument(help="The managed service.")],
    reason: Annotated[str, typer.Option("--reason", "-r", help="Why, for the record.")],
    snapshot: Annotated[str | None, typer.Option(
        "--snapshot", help="A snapshot id (default: the latest verified).")] = None,
    kind: Annotated[list[str] | None, typer.Option(
        "--kind", help="database, config, code, user_data, system (repeat; default all).")
    ] = None,
    by: Annotated[str | None, typer.Option("--by", help="Who asks (default: signer).")] = None,
    output: Annotated[str, typer.Option("--format", help="text or json.")] = "text",
) -> None:
    """Restore a service's data from its backups.

    Example: guardians backup restore demo --reason "orders table dropped" --kind database
    """
    from cli.publish import send_command
    from schemas.events.backup import BackupKind, BackupRestoreRequested

    try:
        kinds = tuple(BackupKind(k) for k in kind or ())
        event = BackupRestoreRequested(
            service=service, reason=reason, snapshot_id=snapshot, kinds=kinds,
            requested_by=by or os.environ.get("GUARDIANS_SIGNER") or "ops")
    except ValueError as exc:
        typer.echo(f"guardians backup restore: {exc}", err=True)
        raise typer.Exit(2) from exc
    send_command(event, output, "guardians backup restore")


def register(app: typer.Typer) -> None:
    app.add_typer(backup_app, name="backup")
