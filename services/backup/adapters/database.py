"""A database source end to end: back up with its manifest, restore and measure it.

The manifest and the dump read the same data: one exported MVCC snapshot is held open
while the manifest is computed in it and `pg_dump --snapshot` dumps it, so writes that land
during the backup are in neither, and a recovery test never reports them as differences.
"""

from __future__ import annotations

import time
from collections.abc import Sequence

from services.backup.adapters import postgres
from services.backup.adapters.restic import BackupResult, Restic
from services.backup.domain.manifest import Manifest


async def backup_database(restic: Restic, url: str, filename: str, tags: Sequence[str]
                          ) -> tuple[Manifest, BackupResult]:
    await postgres.check_client(url, "pg_dump")
    async with postgres.pinned_snapshot(url) as snapshot:
        manifest = await postgres.database_manifest(url, snapshot=snapshot)
        argv, env = postgres.dump_command(url, snapshot=snapshot)
        result = await restic.backup_from(argv, env, filename, tags)
    return manifest, result


async def restore_to_scratch(restic: Restic, snapshot_id: str, filename: str, admin_url: str
                             ) -> tuple[Manifest, float]:
    """The recovery test: restore into a scratch database on the guardians' server, read
    its manifest, drop it. Returns the manifest and the restore time."""
    scratch = await postgres.create_scratch_database(admin_url)
    try:
        argv, env = postgres.restore_command(scratch)
        started = time.monotonic()
        await restic.dump_into(snapshot_id, filename, argv, env)
        seconds = time.monotonic() - started
        return await postgres.database_manifest(scratch), seconds
    finally:
        await postgres.drop_database(admin_url, scratch)


async def restore_over(restic: Restic, snapshot_id: str, filename: str, url: str
                       ) -> tuple[Manifest, float]:
    """A restore on request: over the live database (`--clean --if-exists`, so dropped
    objects come back and changed ones are replaced), then its manifest to validate."""
    argv, env = postgres.restore_command(url, clean=True)
    started = time.monotonic()
    await restic.dump_into(snapshot_id, filename, argv, env)
    seconds = time.monotonic() - started
    return await postgres.database_manifest(url), seconds
