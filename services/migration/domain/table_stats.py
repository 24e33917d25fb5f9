"""How big the target's tables are: the snapshot `guardians stats dump` writes.

The file is JSON: `{"format": "guardians-table-stats/1", "tables": [{"schema": "public",
"table": "orders", "rows": 1200000, "bytes": 912261120}, ...]}`. Rows are the planner's
estimate (pg_class.reltuples), bytes pg_total_relation_size (with indexes and TOAST).
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field

FORMAT = "guardians-table-stats/1"


class TableStatsError(ValueError):
    """A stats snapshot that cannot be read; the message says what is wrong."""


@dataclass(frozen=True)
class TableSize:
    rows: int
    bytes: int


@dataclass(frozen=True)
class TableStats:
    tables: Mapping[str, TableSize] = field(default_factory=dict)
    """`schema.table` -> size."""
    source: str | None = None
    """Where the snapshot came from (the database, without credentials)."""

    def size_of(self, target: str) -> TableSize | None:
        """`orders` means `public.orders`, as an unqualified name usually does."""
        key = target if "." in target else f"public.{target}"
        return self.tables.get(key)

    @classmethod
    def from_json(cls, text: str) -> TableStats:
        try:
            document = json.loads(text)
        except json.JSONDecodeError as error:
            raise TableStatsError(f"not JSON ({error.msg} at line {error.lineno})") from error
        if not isinstance(document, dict) or document.get("format") != FORMAT:
            raise TableStatsError(f'not a table statistics snapshot (expected "format": '
                                  f'"{FORMAT}")')
        tables: dict[str, TableSize] = {}
        for entry in document.get("tables") or []:
            try:
                key = f"{entry['schema']}.{entry['table']}"
                tables[key] = TableSize(int(entry["rows"]), int(entry["bytes"]))
            except (KeyError, TypeError, ValueError) as error:
                raise TableStatsError(f"table entry {entry!r:.100} lacks schema, table, rows "
                                      "or bytes") from error
        source = document.get("source")
        return cls(tables, source if isinstance(source, str) else None)

    def to_json(self) -> str:
        entries = [{"schema": key.split(".", 1)[0], "table": key.split(".", 1)[1],
                    "rows": size.rows, "bytes": size.bytes}
                   for key, size in sorted(self.tables.items())]
        return json.dumps({"format": FORMAT, "source": self.source, "tables": entries},
                          indent=1) + "\n"
