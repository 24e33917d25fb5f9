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
from services.migration.domain.findings import Finding


@dataclass
class SchemaKnowledge:
    columns: dict[str, dict[str, TypeRef]] = field(default_factory=dict)
    """table key -> column -> type, for tables whose definition the analysis has read."""
    index_tables: dict[str, str] = field(default_factory=dict)
    """index key -> table key."""
    table_indexes: dict[str, dict[str, tuple[str | None, ...]]] = field(default_factory=dict)
    """table key -> its indexes a foreign key's lookups can use (CREATE INDEX that is not
    partial, PRIMARY KEY, UNIQUE) -> their key columns in order (None: an expression)."""

    def column_type(self, table: str, column: str) -> TypeRef | None:
        return self.columns.get(table, {}).get(column)

    def add_index(self, index: str, table: str, columns: tuple[str | None, ...]) -> None:
        self.forget_index(index)
        self.index_tables[index] = table
        if columns:
            self.table_indexes.setdefault(table, {})[index] = columns

    def forget_index(self, index: str) -> None:
        table = self.index_tables.pop(index, None)
        if table is not None:
            self.table_indexes.get(table, {}).pop(index, None)

    def indexed(self, table: str, columns: tuple[str, ...]) -> bool:
        """Whether an index on `table` starts with `columns` (in any order): the index a
        foreign key on those columns needs for lookups from the referenced side."""
        wanted, width = set(columns), len(columns)
        return any(set(keys[:width]) == wanted
                   for keys in self.table_indexes.get(table, {}).values())

    def rename_table(self, old: str, new: str) -> None:
        if old in self.columns:
            self.columns[new] = self.columns.pop(old)
        if old in self.table_indexes:
            self.table_indexes[new] = self.table_indexes.pop(old)
        for index, table in self.index_tables.items():
            if table == old:
                self.index_tables[index] = new

    def rename_column(self, table: str, old: str, new: str) -> None:
        columns = self.columns.get(table, {})
        if old in columns:
            columns[new] = columns.pop(old)
        indexes = self.table_indexes.get(table, {})
        for index, keys in indexes.items():
            if old in keys:
                indexes[index] = tuple(new if k == old else k for k in keys)

    def drop_column(self, table: str, column: str) -> None:
        """The column, and the indexes that use it (PostgreSQL drops them with it)."""
        self.columns.get(table, {}).pop(column, None)
        indexes = self.table_indexes.get(table)
        if indexes:
            for index in [i for i, keys in indexes.items() if column in keys]:
                self.forget_index(index)

    def drop_table(self, table: str) -> None:
        self.columns.pop(table, None)
        self.table_indexes.pop(table, None)
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
    foreign_keys: list[tuple[str, tuple[str, ...], Finding]] = field(default_factory=list)
    """Foreign keys this change added: (table key, columns, the finding to report if, when
    the change ends, no index on the table starts with those columns)."""

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
    exclusive: dict[str, int | None] = field(default_factory=dict)
    """Pre-existing tables this transaction holds ACCESS EXCLUSIVE on -> the line that took
    it: held until the transaction ends, so every later statement runs under it."""
    exclusive_reported: bool = False

    @property
    def in_transaction(self) -> bool:
        return self.transaction is not None

    def begin(self, kind: Transaction, line: int | None = None) -> None:
        if self.transaction is None:
            self.transaction_serial += 1
            self.lock_timeout.begin()
            self.statement_timeout.begin()
            self.exclusive, self.exclusive_reported = {}, False
        self.transaction, self.began_at_line = kind, line

    def end(self, *, committed: bool) -> None:
        self.transaction, self.began_at_line = None, None
        self.exclusive, self.exclusive_reported = {}, False
        self.lock_timeout.end(committed=committed)
        self.statement_timeout.end(committed=committed)

    def setting(self, name: str) -> TimeoutSetting | None:
        return {"lock_timeout": self.lock_timeout,
                "statement_timeout": self.statement_timeout}.get(name)
