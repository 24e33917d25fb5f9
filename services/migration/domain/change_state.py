"""What the analysis knows at each statement: the schema so far, what this change created,
the open transaction, and the timeouts in effect.

Three lifetimes: `SchemaKnowledge` grows over every migration read (earlier migrations of a
directory teach column types and which table an index is on); `ChangeScope` covers one
change (objects it created carry no lock risk); `Session` follows one connection the way a
migration runner uses it (settings persist across files, a transaction per file or not).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum

from services.migration.domain.column_types import TypeRef


@dataclass
class SchemaKnowledge:
    columns: dict[str, dict[str, TypeRef]] = field(default_factory=dict)
    """table key -> column -> type, for tables whose definition the analysis has read."""
    index_tables: dict[str, str] = field(default_factory=dict)
    """index key -> table key."""

    def column_type(self, table: str, column: str) -> TypeRef | None:
        return self.columns.get(table, {}).get(column)

    def rename_table(self, old: str, new: str) -> None:
        if old in self.columns:
            self.columns[new] = self.columns.pop(old)
        for index, table in self.index_tables.items():
            if table == old:
                self.index_tables[index] = new

    def drop_table(self, table: str) -> None:
        self.columns.pop(table, None)
        self.index_tables = {i: t for i, t in self.index_tables.items() if t != table}


class Namespace(StrEnum):
    """PostgreSQL keeps tables, views, indexes and sequences in one namespace (pg_class)."""

    RELATION = "relation"
    TYPE = "type"
    FUNCTION = "function"
    SCHEMA = "schema"


@dataclass
class ChangeScope:
    created: set[tuple[Namespace, str]] = field(default_factory=set)
    added_columns: set[tuple[str, str]] = field(default_factory=set)
    """(table key, column) added by this change: UPDATE of only these is a backfill."""
    dropped: dict[tuple[Namespace, str], list[int]] = field(default_factory=dict)
    """Objects dropped by this change -> their findings, softened if the change re-creates
    the object (the usual drop-and-recreate of a view or function)."""
    not_valid: dict[str, int] = field(default_factory=dict)
    """constraint name -> the transaction that added it NOT VALID."""
    not_null_checks: dict[str, tuple[str, str]] = field(default_factory=dict)
    """CHECK (col IS NOT NULL) constraint name -> (table key, column)."""
    proven_not_null: set[tuple[str, str]] = field(default_factory=set)
    """(table key, column) with a validated CHECK (col IS NOT NULL): SET NOT NULL skips the
    scan from PostgreSQL 12."""

    def is_new(self, namespace: Namespace, key: str) -> bool:
        schema = key.split(".", 1)[0]
        return (namespace, key) in self.created or (Namespace.SCHEMA, schema) in self.created


class Transaction(StrEnum):
    RUNNER = "runner"
    """The migration runner's implicit per-file transaction."""
    EXPLICIT = "explicit"
    """A BEGIN written in the file, outside any runner transaction."""
    NESTED = "nested"
    """A BEGIN written inside the runner's transaction (PostgreSQL ignores it, with a warning)."""


@dataclass
class TimeoutSetting:
    """One timeout GUC: the session value, a SET LOCAL override, the value at BEGIN."""

    session: bool = False
    local: bool | None = None
    at_begin: bool = False

    @property
    def in_effect(self) -> bool:
        return self.session if self.local is None else self.local

    def set(self, value: bool, *, local: bool, in_transaction: bool) -> None:
        if local:
            if in_transaction:  # SET LOCAL outside a transaction block has no effect
                self.local = value
        else:
            self.session, self.local = value, None

    def reset(self) -> None:
        self.session, self.local = False, None

    def begin(self) -> None:
        self.at_begin = self.session

    def end(self, *, committed: bool) -> None:
        if not committed:
            self.session = self.at_begin
        self.local = None


@dataclass
class Session:
    transaction: Transaction | None = None
    transaction_serial: int = 0
    began_at_line: int | None = None
    lock_timeout: TimeoutSetting = field(default_factory=TimeoutSetting)
    statement_timeout: TimeoutSetting = field(default_factory=TimeoutSetting)

    @property
    def in_transaction(self) -> bool:
        return self.transaction is not None

    def begin(self, kind: Transaction, line: int | None = None) -> None:
        if self.transaction is None:
            self.transaction_serial += 1
            self.lock_timeout.begin()
            self.statement_timeout.begin()
        self.transaction, self.began_at_line = kind, line

    def end(self, *, committed: bool) -> None:
        self.transaction, self.began_at_line = None, None
        self.lock_timeout.end(committed=committed)
        self.statement_timeout.end(committed=committed)

    def setting(self, name: str) -> TimeoutSetting | None:
        return {"lock_timeout": self.lock_timeout,
                "statement_timeout": self.statement_timeout}.get(name)
