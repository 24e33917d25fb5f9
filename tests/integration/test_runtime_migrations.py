"""A service's schema migrations under replicas that start at the same moment."""

from __future__ import annotations

import asyncio
import uuid
from pathlib import Path

import asyncpg
import pytest

from services.runtime import db

pytestmark = pytest.mark.integration


async def test_replicas_starting_together_apply_each_migration_once(
    database_url: str, tmp_path: Path
) -> None:
    (tmp_path / "0001_items.sql").write_text("CREATE TABLE items (id int PRIMARY KEY);")
    schema = f"mig_{uuid.uuid4().hex[:10]}"
    found = db.discover("runtime", db.RUNTIME_MIGRATIONS) + db.discover("svc", tmp_path)
    pools = [await db.create_pool(database_url, schema, 1) for _ in range(4)]
    try:
        applied = await asyncio.gather(*(db.migrate(pool, schema, found) for pool in pools))
    finally:
        for pool in pools:
            await pool.close()
    assert sorted(len(a) for a in applied) == [0, 0, 0, len(found)]
    conn = await asyncpg.connect(database_url)
    try:
        versions = await conn.fetch(f'SELECT version FROM "{schema}".schema_migrations')
        await conn.execute(f'DROP SCHEMA "{schema}" CASCADE')
    finally:
        await conn.close()
    assert sorted(r["version"] for r in versions) == sorted(m.version for m in found)
