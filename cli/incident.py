"""`guardians incident list|show|ack|note|resolve`: the incident log, and people's actions.

list and show read the incident service's log (its schema in GUARDIANS_DATABASE_URL); ack,
note and resolve send a signed `incident.update.requested`, which the incident service
records in the timeline (`incident.updated`).
"""

from __future__ import annotations

import json
import os
from typing import Annotated, Any

import typer

incident_app = typer.Typer(help="Incidents: the log, and acknowledge / note / resolve.")
Format = Annotated[str, typer.Option("--format", help="text or json.")]


async def _fetch(sql: str, *args: Any) -> list[dict[str, Any]]:
    import asyncpg

    from services.runtime.db import schema_name
    from services.runtime.settings import RuntimeSettings

    url = RuntimeSettings().database_url.get_secret_value()
    conn = await asyncpg.connect(url, timeout=5,
                                 server_settings={"search_path": schema_name("incident")})
    try:
        return [dict(r) for r in await conn.fetch(sql, *args)]
    finally:
        await conn.close()


def _query(sql: str, *args: Any) -> list[dict[str, Any]]:
    import asyncio

    import asyncpg

    try:
        return asyncio.run(_fetch(sql, *args))
    except asyncpg.UndefinedTableError:
        return []  # the incident service never ran against this database
    except (OSError, asyncpg.PostgresError) as exc:
        typer.echo(f"guardians incident: cannot read the incident log: {exc}", err=True)
        raise typer.Exit(2) from exc


def _plain(row: dict[str, Any]) -> dict[str, Any]:
    return {k: (v.isoformat() if hasattr(v, "isoformat") else v) for k, v in row.items()}


@incident_app.command("list")
def list_incidents(
    all_: Annotated[bool, typer.Option("--all", help="Resolved ones too.")] = False,
    output: Format = "text",
) -> None:
    """Open incidents, newest first.

    Example: guardians incident list --all --format json
    """
    rows = _query(
        "SELECT incident_id, service, severity, status, count, summary, opened_at,"
        " escalation_level, action, action_state FROM incidents"
        " WHERE $1 OR status <> 'resolved' ORDER BY opened_at DESC LIMIT 200", all_)
    if output == "json":
        typer.echo(json.dumps([_plain(r) for r in rows], indent=1))
        return
    if not rows:
        typer.echo("no incidents" if all_ else "no open incidents")
    for r in rows:
        action = f" {r['action']}:{r['action_state']}" if r["action"] else ""
        typer.echo(f"{r['opened_at']:%Y-%m-%d %H:%M:%S} {r['incident_id']} {r['severity']:8}"
                   f" {r['status']:12} x{r['count']} L{r['escalation_level']}{action}"
                   f"  {r['summary'][:100]}")


@incident_app.command("show")
def show(incident_id: str, output: Format = "text") -> None:
    """One incident with its timeline.

    Example: guardians incident show inc-shop-deploy-20261128T101500000000
    """
    rows = _query("SELECT * FROM incidents WHERE incident_id = $1", incident_id)
    if not rows:
        typer.echo(f"guardians incident: no incident {incident_id}", err=True)
        raise typer.Exit(1)
    entries = _query("SELECT at, kind, actor, message, action FROM timeline"
                     " WHERE incident_id = $1 ORDER BY seq", incident_id)
    if output == "json":
        typer.echo(json.dumps({**_plain(rows[0]), "timeline": [_plain(e) for e in entries]},
                              indent=1))
        return
    r = rows[0]
    typer.echo(f"{r['incident_id']}  {r['service']}  {r['severity']}  {r['status']}"
               f"  x{r['count']}\n{r['summary']}")
    for e in entries:
        typer.echo(f"  {e['at']:%H:%M:%S} {e['kind']:17} {e['actor']:10} {e['message']}")


def _update(incident_id: str, action: str, text: str | None, by: str | None,
            output: str) -> None:
    from cli.publish import send_command
    from schemas.events.incident import IncidentAction, IncidentUpdateRequested

    try:
        event = IncidentUpdateRequested(
            incident_id=incident_id, action=IncidentAction(action), text=text,
            by=by or os.environ.get("GUARDIANS_SIGNER") or "ops")
    except ValueError as exc:
        typer.echo(f"guardians incident: {exc}", err=True)
        raise typer.Exit(2) from exc
    send_command(event, output, f"guardians incident {action}")


By = Annotated[str | None, typer.Option("--by", help="Who (default: the signer).")]


@incident_app.command("ack")
def ack(incident_id: str, by: By = None, output: Format = "text") -> None:
    """Acknowledge: stops the escalation. Example: guardians incident ack INCIDENT"""
    _update(incident_id, "acknowledge", None, by, output)


@incident_app.command("note")
def note(incident_id: str, text: str, by: By = None, output: Format = "text") -> None:
    """Add a note to the timeline. Example: guardians incident note INCIDENT "disk full" """
    _update(incident_id, "note", text, by, output)


@incident_app.command("resolve")
def resolve(incident_id: str,
            resolution: Annotated[str, typer.Option("--resolution", "-r", help="What fixed it.")],
            by: By = None, output: Format = "text") -> None:
    """Resolve. Example: guardians incident resolve INCIDENT -r "disk cleaned" """
    _update(incident_id, "resolve", resolution, by, output)


def register(app: typer.Typer) -> None:
    app.add_typer(incident_app, name="incident")
