"""A migration as `guardians lint` reads it from disk (a light module: the CLI's fast path
imports it without the analysis)."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Migration:
    """A migration read from disk (`ChangeSubmitted` carries `MigrationScript`s)."""

    name: str
    up_sql: str
    down_sql: str | None = None
