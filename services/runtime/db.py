"""The service's PostgreSQL: a pool whose connections live in the service's own schema, and
versioned SQL migrations (the runtime's tables first, then the service's) applied at start."""

from __future__ import annotations

import logging
import re
import zlib
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeAlias

import asyncpg

if TYPE_CHECKING:
    from asyncpg.pool import PoolConnectionProxy

    Connection: TypeAlias = (
        asyncpg.Connection[asyncpg.Record] | PoolConnectionProxy[asyncpg.Record]
    )
    """A connection as handlers get it: plain, or borrowed from the pool."""
else:
    Connection: TypeAlias = Any

log = logging.getLogger(__name__)

RUNTIME_MIGRATIONS = Path(__file__).parent / "migrations"
_FILE = re.compile(r"^(\d{4})_[a-z0-9_]+\.sql$")
_SCHEMA = re.compile(r"^[a-z][a-z0-9_]{0,62}$")


class MigrationError(RuntimeError):
    pass


@dataclass(frozen=True)
class Migration:
    version: str
    """`<origin>:<NNNN>`; origin is `runtime` or the service's name."""
    path: Path


def discover(origin: str, folder: Path) -> list[Migration]:
    found = []
    for path in sorted(folder.glob("*.sql")):
        if not _FILE.match(path.name):
            raise MigrationError(f"{path}: migration files are named NNNN_snake_case.sql")
        found.append(Migration(f"{origin}:{path.name[:4]}", path))
    return found


def schema_name(service: str) -> str:
    name = service.replace("-", "_")
    if not _SCHEMA.match(name):
        raise ValueError(f"service name {service!r} does not make a valid schema name")
    return name


async def create_pool(dsn: str, schema: str, size: int) -> asyncpg.Pool:
    return await asyncpg.create_pool(
        dsn,
        min_size=1,
        max_size=size,
        server_settings={"search_path": schema, "application_name": f"guardians-{schema}"},
        # asyncpg resets session state on every release (one more round trip per batch).
        # Handlers change settings with SET LOCAL only, which ends with the transaction.
        reset=_keep_session,
    )


async def _keep_session(conn: asyncpg.Connection[asyncpg.Record]) -> None:
    return None


async def migrate(pool: asyncpg.Pool, schema: str, migrations: list[Migration]) -> list[str]:
    """Apply what is missing, each file in its own transaction, under an advisory lock so that
    replicas starting together do not race. Returns the versions applied now."""
    applied_now: list[str] = []
    lock_id = zlib.crc32(f"guardians-migrate:{schema}".encode())
    async with pool.acquire() as conn:
        # The lock comes first: two replicas running CREATE SCHEMA IF NOT EXISTS at the same
        # moment make one of them fail on the catalog's unique index.
        await conn.execute("SELECT pg_advisory_lock($1)", lock_id)
        try:
            await conn.execute(f'CREATE SCHEMA IF NOT EXISTS "{schema}"')
            await conn.execute(
                f'CREATE TABLE IF NOT EXISTS "{schema}".schema_migrations ('
                " version text PRIMARY KEY, applied_at timestamptz NOT NULL DEFAULT now())"
            )
            done = {
                r["version"]
                # schema names are checked by schema_name(): identifiers, not data
                for r in await conn.fetch(
                    f'SELECT version FROM "{schema}".schema_migrations'  # noqa: S608
                )
            }
            for migration in migrations:
                if migration.version in done:
                    continue
                async with conn.transaction():
                    await conn.execute(f'SET LOCAL search_path TO "{schema}"')
                    try:
                        await conn.execute(migration.path.read_text())
                    except asyncpg.PostgresError as exc:
                        raise MigrationError(f"{migration.path}: {exc}") from exc
                    await conn.execute(
                        f'INSERT INTO "{schema}".schema_migrations (version) VALUES ($1)',  # noqa: S608
                        migration.version,
                    )
                applied_now.append(migration.version)
                log.info("applied migration", extra={"migration": migration.version})
        finally:
            await conn.execute("SELECT pg_advisory_unlock($1)", lock_id)
    return applied_now
