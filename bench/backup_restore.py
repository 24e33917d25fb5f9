"""Issue 5, section 6: backup plus recovery test of a generated database, against a plain
`pg_dump | pg_restore` of the same data in the same run, and the repository growth of a
second backup after a 1% change (deduplication).

    source .cache/stack.env && .venv/bin/python bench/backup_restore.py [--size-mb 1024]

On the local stack's PostgreSQL and Debian's restic, in one script:
1. Generate a database of about --size-mb (table data; one table of ~200-byte rows with a
   primary key, one smaller table).
2. Baseline: `pg_dump -Fc | pg_restore` into a scratch database (the same OS pipe the
   guardian uses), timed.
3. The guardian's path (services/backup/adapters/database.py): manifest + `pg_dump -Fc`
   streamed into restic under one exported snapshot; then the recovery test: `restic dump
   | pg_restore` into a scratch database and its manifest compared. Times, repository size.
4. Update 1% of the rows, back up again: what the repository grew by.
Prints a markdown table for BENCHMARKS.md. The database and repository are removed at the
end.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import shutil
import sys
import tempfile
import time
import uuid
from pathlib import Path

import asyncpg

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from services.backup.adapters import database, postgres  # noqa: E402
from services.backup.adapters.process import Command, first_failure, pipe  # noqa: E402
from services.backup.adapters.restic import Restic  # noqa: E402
from services.backup.domain.manifest import compare  # noqa: E402

ROW_BYTES = 200


async def generate(url: str, size_mb: int) -> int:
    rows = size_mb * 1024 * 1024 // ROW_BYTES
    conn = await asyncpg.connect(url)
    try:
        await conn.execute("""
            CREATE TABLE events (id bigint PRIMARY KEY, account bigint NOT NULL,
                                 kind text NOT NULL, payload text NOT NULL,
                                 at timestamptz NOT NULL);
            CREATE TABLE accounts (id bigint PRIMARY KEY, name text NOT NULL);
        """)
        await conn.execute("INSERT INTO accounts SELECT g, 'account ' || g "
                           "FROM generate_series(1, 10000) g")
        step = 500_000
        for start in range(1, rows + 1, step):
            await conn.execute(
                "INSERT INTO events SELECT g, g % 10000 + 1, 'kind' || (g % 17), "
                "repeat(md5(g::text), 4), timestamptz '2026-01-01' + g * interval '1 s' "
                "FROM generate_series($1::bigint, $2::bigint) g",
                start, min(rows, start + step - 1))
        await conn.execute("ANALYZE")
        size: int = await conn.fetchval("SELECT pg_database_size(current_database())")
    finally:
        await conn.close()
    return size


async def baseline(url: str, admin: str) -> float:
    scratch = await postgres.create_scratch_database(admin)
    try:
        dump_argv, dump_env = postgres.dump_command(url)
        restore_argv, restore_env = postgres.restore_command(scratch)
        started = time.monotonic()
        ends = await pipe(Command(tuple(dump_argv), dump_env),
                          Command(tuple(restore_argv), restore_env))
        seconds = time.monotonic() - started
        failed = first_failure(*ends)
        assert failed is None, failed
        return seconds
    finally:
        await postgres.drop_database(admin, scratch)


async def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--size-mb", type=int, default=1024)
    args = parser.parse_args()
    admin = os.environ["GUARDIANS_DATABASE_URL"]
    name = f"bench_backup_{uuid.uuid4().hex[:6]}"
    conn = await asyncpg.connect(admin)
    await conn.execute(f'CREATE DATABASE "{name}"')
    await conn.close()
    url = postgres.with_database(admin, name)
    work = Path(tempfile.mkdtemp(prefix="bench-backup-"))
    restic = Restic(str(work / "repo"), "bench-key", cache_dir=work / "cache")
    try:
        started = time.monotonic()
        size = await generate(url, args.size_mb)
        print(f"generated {size / 2**20:.0f} MiB in {time.monotonic() - started:.0f} s",
              file=sys.stderr)
        base = await baseline(url, admin)
        await restic.ensure_repository()
        started = time.monotonic()
        manifest, result = await database.backup_database(restic, url, "db.dump",
                                                          ["run=first"])
        backup_s = time.monotonic() - started
        restored, restore_s = await database.restore_to_scratch(
            restic, result.snapshot.id, "db.dump", admin)
        test_s = time.monotonic() - started - backup_s
        assert not compare(manifest, restored), "the recovery test found differences"
        repo_first = await restic.stats()
        growth: list[tuple[str, int, int]] = []
        for label, where in (("1% of rows, one contiguous id range",
                              "id <= (SELECT max(id) / 100 FROM events)"),
                             ("1% of rows, scattered (every 100th id)", "id % 100 = 1")):
            conn = await asyncpg.connect(url)
            await conn.execute(f"UPDATE events SET payload = upper(payload) WHERE {where}")
            await conn.close()
            before = await restic.stats()
            _, again = await database.backup_database(restic, url, "db.dump",
                                                      [f"run=change-{len(growth) + 1}"])
            growth.append((label, again.added_bytes, await restic.stats() - before))
        print("| | seconds | bytes |")
        print("|---|---:|---:|")
        print(f"| database size (pg_database_size) | | {size:,} |")
        print(f"| baseline: pg_dump -Fc \\| pg_restore | {base:.1f} | |")
        print(f"| guardian: manifest + pg_dump -Fc \\| restic backup --stdin | {backup_s:.1f} | "
              f"|")
        print(f"| guardian: recovery test (restic dump \\| pg_restore, manifest, compare) | "
              f"{test_s:.1f} | |")
        print(f"| guardian: backup + recovery test | {backup_s + test_s:.1f} | |")
        print(f"| repository after the first backup | | {repo_first:,} |")
        for label, added, grew in growth:
            print(f"| next backup after updating {label} | | new data {added:,}; "
                  f"repository +{grew:,} |")
        print(f"\n(guardian backup + recovery test) / baseline: "
              f"{(backup_s + test_s) / base:.2f}x; restore alone {restore_s:.1f} s")
    finally:
        conn = await asyncpg.connect(admin)
        await conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        await conn.close()
        shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(asyncio.run(main()))
