"""A database schema as a comparable value, and what differs between two of them.

The shadow-database verification snapshots the catalog before the up script and after the
down script; every difference here is something the rollback failed to restore. Pure: the
adapter runs the catalog queries and hands the rows over as `CatalogSnapshot`.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from enum import StrEnum

from pglast import ast, parser
from pglast.stream import RawStream

from schemas.events.migration import Severity
from services.migration.domain.findings import Effect, Finding


class ObjectKind(StrEnum):
    SCHEMA = "schema"
    TABLE = "table"
    COLUMN = "column"
    CONSTRAINT = "constraint"
    INDEX = "index"
    SEQUENCE = "sequence"
    VIEW = "view"
    MATERIALIZED_VIEW = "materialized view"
    FUNCTION = "function"
    TRIGGER = "trigger"
    TYPE = "type"
    ENUM = "enum"
    DOMAIN = "domain"
    EXTENSION = "extension"


_TABLE_CHILDREN = frozenset({ObjectKind.COLUMN, ObjectKind.CONSTRAINT, ObjectKind.TRIGGER})
"""Objects whose names are only unique within their table, so they are named through it."""


@dataclass(frozen=True, order=True)
class ObjectName:
    """One catalog object, as people name it: `table public.users column email`."""

    kind: ObjectKind
    name: str
    """Schema-qualified for schema objects (`public.users_email_idx`); the bare name for
    columns, constraints and triggers, which `table` qualifies."""
    table: str | None = None
    """The table that qualifies a column, constraint or trigger name."""
    owner: str | None = field(default=None, compare=False)
    """The table an index is on or a sequence is owned by. Not part of the identity (an
    index is known by its name), but a missing table is reported once, not once per index."""

    def __str__(self) -> str:
        if self.kind in _TABLE_CHILDREN:
            return f"table {self.table} {self.kind} {self.name}"
        if self.kind is ObjectKind.INDEX and self.owner:
            return f"index {self.name} on {self.owner}"
        return f"{self.kind} {self.name}"

    @property
    def parent(self) -> str | None:
        return self.table or self.owner


@dataclass(frozen=True)
class Column:
    name: str
    type: str
    not_null: bool = False
    default: str | None = None
    identity: str = ""
    """`a` (ALWAYS), `d` (BY DEFAULT) or empty, as pg_attribute.attidentity."""
    generated: str = ""
    """`s` (stored), `v` (virtual) or empty, as pg_attribute.attgenerated."""
    collation: str | None = None
    """Only when it differs from the type's default collation."""

    def describe(self) -> str:
        parts = [self.type]
        if self.collation:
            parts.append(f"COLLATE {self.collation}")
        if self.not_null:
            parts.append("NOT NULL")
        if self.default is not None:
            parts.append(f"{'GENERATED AS' if self.generated else 'DEFAULT'} {self.default}")
        if self.identity:
            parts.append(f"IDENTITY {'ALWAYS' if self.identity == 'a' else 'BY DEFAULT'}")
        return " ".join(parts)


@dataclass(frozen=True)
class CatalogSnapshot:
    """Every object of the non-system schemas, by name, with its definition as PostgreSQL
    prints it (pg_get_indexdef, pg_get_constraintdef, pg_get_viewdef...). No OIDs: they
    change when an object is dropped and re-created, which is exactly what a rollback does."""

    objects: Mapping[ObjectName, str] = field(default_factory=dict)
    """Everything but columns: name -> definition."""
    columns: Mapping[str, tuple[Column, ...]] = field(default_factory=dict)
    """Table -> its columns in attnum order (order matters: it is `SELECT *`'s order)."""

    def names(self) -> frozenset[ObjectName]:
        return frozenset(self.objects)


class Change(StrEnum):
    MISSING = "missing"
    """In the baseline, gone after the rollback."""
    LEFT_BEHIND = "left behind"
    """Not in the baseline, still there after the rollback."""
    CHANGED = "changed"
    REORDERED = "column order changed"
    REFORMATTED = "reformatted"
    """A function whose source differs only in layout, comments or keyword case."""


_RULES = {
    Change.MISSING: "rollback-misses-object",
    Change.LEFT_BEHIND: "rollback-leaves-object",
    Change.CHANGED: "rollback-changes-object",
    Change.REORDERED: "rollback-reorders-columns",
    Change.REFORMATTED: "rollback-reformats-function",
}
"""The finding rule for each kind of difference: stable ids, like the static rules'."""


@dataclass(frozen=True)
class CatalogDifference:
    object: ObjectName
    change: Change
    severity: Severity
    before: str | None = None
    after: str | None = None
    detail: str | None = None
    """What changed, in short, when the definitions are long (a view's select list)."""

    @property
    def harmless(self) -> bool:
        """Column order (only `SELECT *` notices) or a function's layout (nothing does)."""
        return self.severity is not Severity.ERROR

    @property
    def rule(self) -> str:
        return _RULES[self.change]

    @property
    def message(self) -> str:
        if self.change is Change.MISSING:
            return f"{self.object} is missing after the rollback (was: {self.before})"
        if self.change is Change.LEFT_BEHIND:
            return f"{self.object} is left behind by the rollback ({self.after})"
        if self.change is Change.REORDERED:
            return (f"{self.object}: column order changed by the rollback "
                    f"({self.detail or f'{self.before} -> {self.after}'}); harmless unless "
                    "something relies on SELECT * order")
        if self.change is Change.REFORMATTED:
            return (f"{self.object} was re-created with different layout or comments only; "
                    "harmless (it behaves the same)")
        if self.detail:
            return f"{self.object} differs after the rollback: {self.detail}"
        return f"{self.object} differs after the rollback: {self.before} -> {self.after}"

    def to_finding(self, file: str | None = None) -> Finding:
        return Finding(
            rule=self.rule,
            severity=self.severity,
            message=self.message,
            effect=Effect.ROLLBACK_DEFECT,
            file=file,
            target=str(self.object),
            fix=None if self.harmless else "make the down script restore this object exactly",
        )


# PostgreSQL folds `'now'::timestamp` (and 'today', 'tomorrow'...) into a constant when a view
# or a column default is created, so re-creating the same definition later prints a different
# literal. The comparison must not report that as a difference.
_FOLDED_TIME = re.compile(
    r"'\d{4}-\d{2}-\d{2}(?: \d{2}:\d{2}:\d{2}(?:\.\d+)?(?:[+-]\d{2}(?::\d{2})?)?)?'"
    r"::(timestamp with(?:out)? time zone|date)"
)


def without_creation_time(definition: str) -> str:
    """The definition with timestamp and date literals replaced by a placeholder."""
    return _FOLDED_TIME.sub(r"'<creation time>'::\1", definition)


_TIME_FOLDING_KINDS = frozenset({ObjectKind.VIEW, ObjectKind.MATERIALIZED_VIEW})


def _comparable(name: ObjectName, definition: str) -> str:
    return without_creation_time(definition) if name.kind in _TIME_FOLDING_KINDS else definition


def _comparable_column(column: Column) -> Column:
    if column.default is None:
        return column
    return Column(column.name, column.type, column.not_null,
                  without_creation_time(column.default), column.identity, column.generated,
                  column.collation)


def compare(baseline: CatalogSnapshot, current: CatalogSnapshot) -> tuple[CatalogDifference, ...]:
    """What `current` does differently from `baseline`: real defects (errors) first, then the
    harmless differences (warnings), each sorted by object."""
    gone_tables = _tables(baseline) - _tables(current)
    new_tables = _tables(current) - _tables(baseline)
    found: list[CatalogDifference] = []
    for name in sorted(baseline.names() | current.names()):
        before, after = baseline.objects.get(name), current.objects.get(name)
        if before is None and after is not None:
            if name.parent not in new_tables:
                found.append(CatalogDifference(name, Change.LEFT_BEHIND, Severity.ERROR,
                                               after=after))
        elif after is None and before is not None:
            if name.parent not in gone_tables:
                found.append(CatalogDifference(name, Change.MISSING, Severity.ERROR,
                                               before=before))
        elif before is not None and after is not None and (
            _comparable(name, before) != _comparable(name, after)
        ):
            found.append(_changed(name, before, after))
    for table in sorted(set(baseline.columns) & set(current.columns)):
        found.extend(_column_differences(table, baseline.columns[table], current.columns[table]))
    return tuple(sorted(found, key=lambda d: (d.harmless, d.object)))


def _changed(name: ObjectName, before: str, after: str) -> CatalogDifference:
    if name.kind is ObjectKind.FUNCTION:
        tokens = _tokens(before)
        if tokens is not None and tokens == _tokens(after):
            return CatalogDifference(name, Change.REFORMATTED, Severity.WARNING, before, after)
    if name.kind in _TIME_FOLDING_KINDS:
        old, new = _select_list(_comparable(name, before)), _select_list(_comparable(name, after))
        # A view re-created with `SELECT *` after a column was re-added lists its columns in
        # the table's new order: the same harmless difference as the table's own order.
        if old and new and old[0] == new[0]:
            if sorted(old[1]) == sorted(new[1]):
                return CatalogDifference(name, Change.REORDERED, Severity.WARNING,
                                         ", ".join(old[1]), ", ".join(new[1]),
                                         _moved(old[1], new[1]))
            added = [c for c in new[1] if c not in old[1]]
            removed = [c for c in old[1] if c not in new[1]]
            detail = "; ".join(part for part in (
                f"columns added: {', '.join(added)}" if added else "",
                f"columns removed: {', '.join(removed)}" if removed else "",
            ) if part)
            return CatalogDifference(name, Change.CHANGED, Severity.ERROR, before, after, detail)
    return CatalogDifference(name, Change.CHANGED, Severity.ERROR, before, after)


_COMMENTS = frozenset({"SQL_COMMENT", "C_COMMENT"})


def _tokens(source: str) -> list[str] | None:
    """The source as PostgreSQL's scanner sees it, without comments or layout, keywords and
    unquoted names lower-cased; dollar-quoted bodies (PL/pgSQL, SQL) are scanned too, since
    their layout is what a re-created function changes. None when the text does not scan."""
    try:
        scanned = parser.scan(source)
    except parser.ParseError:
        return None
    tokens: list[str] = []
    for token in scanned:
        if token.name in _COMMENTS:
            continue
        text = source[token.start:token.end + 1]
        if token.name == "SCONST" and text.startswith("$"):
            tag = text[: text.index("$", 1) + 1]
            body = _tokens(text[len(tag):-len(tag)])
            tokens.extend(["$body$", *(body if body is not None else text.split())])
        elif token.name == "SCONST" or text.startswith('"'):
            tokens.append(text)
        else:
            tokens.append(text.lower())
    return tokens


def _select_list(view_definition: str) -> tuple[str, list[str]] | None:
    """(the query without its select list, the select list), or None when the definition is
    not one plain SELECT (a UNION, or text the parser does not know)."""
    try:
        statements = parser.parse_sql(view_definition)
    except parser.ParseError:
        return None
    if len(statements) != 1 or not isinstance(statements[0].stmt, ast.SelectStmt):
        return None
    select = statements[0].stmt
    if not select.targetList:
        return None
    items = [RawStream()(item) for item in select.targetList]
    select.targetList = None
    return RawStream()(select), items


def _tables(snapshot: CatalogSnapshot) -> set[str]:
    return {n.name for n in snapshot.objects if n.kind is ObjectKind.TABLE}


def _column_differences(
    table: str, before: Iterable[Column], after: Iterable[Column]
) -> list[CatalogDifference]:
    old = {c.name: c for c in before}
    new = {c.name: c for c in after}
    found: list[CatalogDifference] = []
    for column in sorted(old.keys() | new.keys()):
        name = ObjectName(ObjectKind.COLUMN, column, table)
        if column not in new:
            found.append(CatalogDifference(name, Change.MISSING, Severity.ERROR,
                                           before=old[column].describe()))
        elif column not in old:
            found.append(CatalogDifference(name, Change.LEFT_BEHIND, Severity.ERROR,
                                           after=new[column].describe()))
        elif _comparable_column(old[column]) != _comparable_column(new[column]):
            found.append(CatalogDifference(name, Change.CHANGED, Severity.ERROR,
                                           old[column].describe(), new[column].describe()))
    # Order is judged on the columns both sides have: a missing one is already an error above.
    kept_before = [c for c in old if c in new]
    kept_after = [c for c in new if c in old]
    if kept_before != kept_after:
        found.append(CatalogDifference(
            ObjectName(ObjectKind.TABLE, table), Change.REORDERED, Severity.WARNING,
            ", ".join(kept_before), ", ".join(kept_after), _moved(kept_before, kept_after),
        ))
    return found


def _moved(before: list[str], after: list[str]) -> str:
    """The columns that changed place: those outside the longest run both orders share
    (a column dropped and re-added shows up alone, not as the whole table)."""
    common = [[0] * (len(after) + 1) for _ in range(len(before) + 1)]
    for i, old in enumerate(before):
        for j, new in enumerate(after):
            common[i + 1][j + 1] = (common[i][j] + 1 if old == new
                                    else max(common[i][j + 1], common[i + 1][j]))
    stayed, i, j = set(), len(before), len(after)
    while i and j:
        if before[i - 1] == after[j - 1]:
            stayed.add(before[i - 1])
            i, j = i - 1, j - 1
        elif common[i][j - 1] >= common[i - 1][j]:
            j -= 1  # on a tie, blame the later column: a re-added column lands last
        else:
            i -= 1
    moved = [c for c in after if c not in stayed]
    return f"moved: {', '.join(moved)}"


def additions_only(differences: Iterable[CatalogDifference]) -> bool:
    """True when every difference is an object added (what a down could simply drop)."""
    return all(d.change is Change.LEFT_BEHIND for d in differences)


def creation_time_noise(baseline: CatalogSnapshot, current: CatalogSnapshot) -> tuple[str, ...]:
    """The objects whose definitions differ only by a folded creation time: what `compare`
    deliberately leaves out (reports count them, to show the normalisation at work)."""
    noisy = [str(name) for name, before in baseline.objects.items()
             if (after := current.objects.get(name)) is not None and before != after
             and _comparable(name, before) == _comparable(name, after)]
    for table in set(baseline.columns) & set(current.columns):
        new = {c.name: c for c in current.columns[table]}
        noisy.extend(
            str(ObjectName(ObjectKind.COLUMN, c.name, table)) for c in baseline.columns[table]
            if c.name in new and c != new[c.name]
            and _comparable_column(c) == _comparable_column(new[c.name])
        )
    return tuple(sorted(noisy))
