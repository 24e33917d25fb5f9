"""The recovery plan as `guardians backup plan` prints it: the configuration plus the backup
guardian's record of the newest verified backup, read from its schema."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path

import asyncpg

from schemas.events.backup import BackupKind
from services.backup.domain.recovery_plan import LastVerified, VerifiedSource, recovery_plan
from services.backup.jobs import repository_for
from services.runtime.config import BackupPolicy
from services.runtime.db import Connection, schema_name
from services.runtime.settings import RuntimeSettings


async def last_verified(conn: Connection, service: str) -> LastVerified | None:
    run = await conn.fetchrow(
        "SELECT run_id, finished_at FROM backup_runs WHERE service = $1"
        " AND status = 'verified' ORDER BY finished_at DESC LIMIT 1", service)
    if run is None:
        return None
    rows = await conn.fetch("SELECT * FROM snapshots WHERE run_id = $1 ORDER BY source",
                            run["run_id"])
    sources = []
    for r in rows:
        manifest = json.loads(r["manifest"])
        tables, files = manifest.get("tables") or {}, manifest.get("files") or {}
        sources.append(VerifiedSource(
            name=r["source"], kind=BackupKind(r["kind"]), snapshot_id=r["snapshot_id"],
            size_bytes=r["size_bytes"], recovery_seconds=r["recovery_seconds"] or 0.0,
            rows=sum(t["rows"] for t in tables.values()) if tables else None,
            files=len(files) if files else None))
    return LastVerified(change_id=run["run_id"], verified_at=run["finished_at"],
                        recovery_seconds=sum(s.recovery_seconds for s in sources),
                        sources=tuple(sources))


async def render_plan(service: str, policy: BackupPolicy,
                      settings: RuntimeSettings | None = None) -> str:
    settings = settings or RuntimeSettings()
    last = None
    try:
        conn = await asyncpg.connect(settings.database_url.get_secret_value(), timeout=2,
                                     server_settings={"search_path": schema_name("backup")})
    except (OSError, asyncpg.PostgresError):
        conn = None  # no record reachable: the plan says nothing was verified
    if conn is not None:
        try:
            last = await last_verified(conn, service)
        except asyncpg.UndefinedTableError:
            last = None  # the backup guardian has never run against this database
        finally:
            await conn.close()
    repository = repository_for(policy, service, Path(settings.state_dir))
    return recovery_plan(service, policy, repository, last, datetime.now(UTC))
