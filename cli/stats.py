"""`guardians stats dump`: the target's table sizes, for `guardians lint --stats`.

Read-only twice over: one catalog query, on a connection whose transactions are read-only
(`default_transaction_read_only=on`). Ordinary and partitioned tables, outside pg_catalog and
information_schema; rows are the planner's estimate (reltuples, -1 for never analysed is
reported as 0), bytes pg_total_relation_size.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated
from urllib.parse import urlsplit

import typer

stats_app = typer.Typer(help="Table statistics of a target database.")

TABLE_SIZES = """
SELECT n.nspname AS schema, c.relname AS table,
       greatest(c.reltuples, 0)::bigint AS rows,
       pg_total_relation_size(c.oid) AS bytes
FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
WHERE c.relkind IN ('r', 'p')
  AND n.nspname NOT IN ('pg_catalog', 'information_schema')
  AND n.nspname NOT LIKE 'pg_toast%'
ORDER BY 1, 2
"""


async def read_table_sizes(database_url: str) -> dict[str, tuple[int, int]]:
    import asyncpg

    connection = await asyncpg.connect(
        database_url, server_settings={"default_transaction_read_only": "on"})
    try:
        rows = await connection.fetch(TABLE_SIZES)
    finally:
        await connection.close()
    return {f"{r['schema']}.{r['table']}": (int(r["rows"]), int(r["bytes"])) for r in rows}


def _without_credentials(url: str) -> str:
    parts = urlsplit(url)
    host = parts.hostname or ""
    port = f":{parts.port}" if parts.port else ""
    return f"{parts.scheme}://{host}{port}{parts.path}"


@stats_app.command("dump")
def dump(
    database_url: Annotated[str, typer.Option(help="postgresql://... of the target (read-only "
                                                   "access is enough).")],
    output: Annotated[Path, typer.Option("-o", "--output", help="Where to write the JSON.")],
) -> None:
    """Write the target's table sizes (rows, bytes) to a JSON snapshot.

    Example: guardians stats dump --database-url postgresql://ro@db/app -o stats.json
    """
    import asyncio

    from services.migration.domain.table_stats import TableSize, TableStats

    try:
        sizes = asyncio.run(read_table_sizes(database_url))
    except (OSError, ValueError) as error:
        typer.echo(f"error: cannot read statistics from {_without_credentials(database_url)}:"
                   f" {error}", err=True)
        raise typer.Exit(2) from None
    except Exception as error:  # asyncpg's PostgresError and friends
        typer.echo(f"error: {_without_credentials(database_url)}: {error}", err=True)
        raise typer.Exit(2) from None
    snapshot = TableStats({key: TableSize(rows, size) for key, (rows, size) in sizes.items()},
                          source=_without_credentials(database_url))
    output.write_text(snapshot.to_json(), encoding="utf-8")
    typer.echo(f"{len(sizes)} tables written to {output}")


def register(app: typer.Typer) -> None:
    app.add_typer(stats_app, name="stats")
