"""What a backup held, recorded when it was taken, and what a restore must match.

A manifest is written at backup time, from the source, not from the backup: per table its
row count and an order-independent checksum of its rows (so a restore that reorders rows
still matches, and one that changed one row does not), plus a digest of the schema; per file
its size and sha256. The recovery test computes the same manifest from the restored copy and
`compare` lists every difference, each naming its table or file.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass, field
from typing import Any


@dataclass(frozen=True)
class TableEntry:
    rows: int
    checksum: str
    """Order-independent digest of the rows' text (see adapters/postgres.py)."""


@dataclass(frozen=True)
class FileEntry:
    size: int
    sha256: str


@dataclass(frozen=True)
class Manifest:
    """One source's content: tables (database sources) or files (path sources)."""

    tables: dict[str, TableEntry] = field(default_factory=dict)
    """By qualified name, `schema.table`."""
    schema_digest: str | None = None
    """sha256 of the normalised catalog (columns, constraints, indexes), for databases."""
    files: dict[str, FileEntry] = field(default_factory=dict)
    """By path relative to the source's root."""

    def to_json(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_json(cls, raw: dict[str, Any]) -> Manifest:
        return cls(
            tables={k: TableEntry(**v) for k, v in raw.get("tables", {}).items()},
            schema_digest=raw.get("schema_digest"),
            files={k: FileEntry(**v) for k, v in raw.get("files", {}).items()},
        )

    def digest(self) -> str:
        """The manifest's own sha256 (canonical JSON), carried in `backup.verified`."""
        text = json.dumps(self.to_json(), sort_keys=True, separators=(",", ":"))
        return hashlib.sha256(text.encode()).hexdigest()

    @property
    def row_count(self) -> int:
        return sum(t.rows for t in self.tables.values())


@dataclass(frozen=True)
class Difference:
    item: str
    expected: str | None
    actual: str | None
    """None when the item is missing from the restored copy."""


def compare(expected: Manifest, actual: Manifest) -> list[Difference]:
    """Every way `actual` (the restored copy) differs from `expected` (the backup's record),
    sorted by item: missing and extra tables and files, row counts, checksums, sizes, hashes,
    and the schema digest."""
    out: list[Difference] = []
    for name in sorted(expected.tables.keys() | actual.tables.keys()):
        want, got = expected.tables.get(name), actual.tables.get(name)
        if want is None:
            out.append(Difference(f"table {name}", None, f"{got.rows} rows (unexpected)"
                                  if got else None))
        elif got is None:
            out.append(Difference(f"table {name}", f"{want.rows} rows", None))
        elif want.rows != got.rows:
            out.append(Difference(f"table {name} rows", str(want.rows), str(got.rows)))
        elif want.checksum != got.checksum:
            out.append(Difference(f"table {name} checksum", want.checksum, got.checksum))
    if (expected.schema_digest is not None
            and expected.schema_digest != actual.schema_digest):
        out.append(Difference("schema", expected.schema_digest, actual.schema_digest))
    for path in sorted(expected.files.keys() | actual.files.keys()):
        want_f, got_f = expected.files.get(path), actual.files.get(path)
        if want_f is None:
            out.append(Difference(f"file {path}", None, f"{got_f.size} bytes (unexpected)"
                                  if got_f else None))
        elif got_f is None:
            out.append(Difference(f"file {path}", f"{want_f.size} bytes", None))
        elif want_f.sha256 != got_f.sha256:
            out.append(Difference(f"file {path} sha256", want_f.sha256, got_f.sha256))
    return out
