"""What the analysis and the verification find, and what each finding could do to production.

A rule says what it saw and what it could cause (`Effect`); the risk policy alone turns
effects into a grade. Keeping the two apart is what lets table size, the target version and
policy overrides move a grade without touching any rule.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

from schemas.events.enums import ChangeKind, LockMode, Severity


class Effect(StrEnum):
    """What a finding could do when the change runs against production."""

    CANNOT_RUN = "cannot_run"
    """Syntax error, CONCURRENTLY inside a transaction block, unbalanced BEGIN/COMMIT."""
    VALIDATION_FAILED = "validation_failed"
    """The up script failed on the shadow database."""
    DATA_LOSS = "data_loss"
    """Drops tables, columns, schemas, databases; TRUNCATE; DELETE/UPDATE without WHERE on a
    pre-existing table; lossy type changes; destroyed infrastructure."""
    BREAKING_RENAME = "breaking_rename"
    """Renames a table or column that running clients use."""
    REWRITE = "rewrite"
    """Rewrites a pre-existing table under ACCESS EXCLUSIVE (volatile default, type change,
    VACUUM FULL, CLUSTER)."""
    FAILS_ON_EXISTING_ROWS = "fails_on_existing_rows"
    """Fails when the table has rows (NOT NULL column without a default)."""
    BLOCKING_LOCK = "blocking_lock"
    """Blocks reads or writes on a pre-existing table without a rewrite (non-concurrent index
    create/drop/reindex, validated FK/CHECK, UNIQUE, PRIMARY KEY, SET NOT NULL)."""
    BACKFILL = "backfill"
    """UPDATE/DELETE with WHERE on a pre-existing table."""
    INCOMPATIBLE = "incompatible"
    """Breaks compatibility outside the database: a removed or critical config key, a major
    dependency upgrade, a downgrade or removal."""
    ROLLBACK_DEFECT = "rollback_defect"
    """The rollback is missing, fails, or does not restore the baseline."""
    MISSING_TIMEOUT = "missing_timeout"
    """A lock-taking statement with no lock_timeout/statement_timeout in effect: always a
    finding and a checklist item, never a grade on its own."""
    ADVISORY = "advisory"
    """Worth knowing, no risk by itself (types, naming, enum additions on new types...)."""


@dataclass(frozen=True)
class Finding:
    rule: str
    """A stable id (`require-concurrent-index-creation`): suppressions and docs use it."""
    severity: Severity
    message: str
    effect: Effect
    kind: ChangeKind = ChangeKind.DATABASE
    file: str | None = None
    line: int | None = None
    column: int | None = None
    statement: str | None = None
    target: str | None = None
    """The object concerned: `schema.table`, an index, a config key, a package, a resource."""
    fix: str | None = None
    """The safe alternative, as a person would write it."""
    lock: LockMode | None = None
    """The table lock the statement takes on `target`, when it takes one."""
    preexisting: bool = True
    """False when `target` was created earlier in the same change: no one else can hold or
    wait for its locks, and it has no rows yet."""
    rollback: bool = False
    """Found in a down (rollback) script: reported, but it grades only as a rollback defect,
    since the down script runs only when the change is rolled back."""
