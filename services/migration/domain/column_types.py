"""Column types as the parser names them, and what changing one type into another costs.

PostgreSQL rewrites a table on `ALTER COLUMN ... TYPE` unless the old type converts to the
new one without touching the stored bytes (a binary-coercible cast and a typmod that only
widens): varchar(n) -> varchar(m >= n) or text, numeric(p, s) -> numeric(p' >= p, s),
varbit(n) -> varbit(m >= n), cidr -> inet. A narrowing change scans every row and fails or,
for numbers and timestamps, silently rounds.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

from services.migration.domain.sql_nodes import Node, children, integer, strings

_ALIASES = {
    "int": "int4", "integer": "int4", "bigint": "int8", "smallint": "int2",
    "character varying": "varchar", "character": "bpchar", "char": "bpchar",
    "serial4": "serial", "serial8": "bigserial", "serial2": "smallserial",
    "float": "float8", "double precision": "float8", "real": "float4", "decimal": "numeric",
    "bool": "bool", "boolean": "bool",
    "timestamp with time zone": "timestamptz", "timestamp without time zone": "timestamp",
}
SERIAL_TYPES = frozenset({"serial", "bigserial", "smallserial"})
_INTEGER_WIDTH = {"int2": 2, "smallserial": 2, "int4": 4, "serial": 4, "int8": 8, "bigserial": 8}
_TEXTUAL = frozenset({"text", "varchar"})
_FIXED_LAYOUT = {
    "bool": (1, 1), "int2": (2, 2), "smallserial": (2, 2), "int4": (4, 4), "serial": (4, 4),
    "date": (4, 4), "float4": (4, 4), "oid": (4, 4), "macaddr": (6, 4), "int8": (8, 8),
    "bigserial": (8, 8), "float8": (8, 8), "timestamp": (8, 8), "timestamptz": (8, 8),
    "time": (8, 8), "money": (8, 8), "macaddr8": (8, 4), "timetz": (12, 8),
    "interval": (16, 8), "point": (16, 8), "uuid": (16, 1),
}
"""(typlen, typalign in bytes) of PostgreSQL's fixed-width built-in types (pg_type)."""


@dataclass(frozen=True)
class TypeRef:
    """A column type: its base name without `pg_catalog`, its modifiers, array-ness."""

    name: str
    modifiers: tuple[int, ...] = ()
    array: bool = False

    @classmethod
    def from_node(cls, type_name: Node) -> TypeRef:
        parts = [p for p in strings(children(type_name, "names")) if p != "pg_catalog"]
        base = ".".join(parts).lower() if parts else "?"
        modifiers = tuple(m for m in (integer(x) for x in children(type_name, "typmods"))
                          if m is not None)
        return cls(_ALIASES.get(base, base), modifiers, bool(children(type_name, "arrayBounds")))

    def __str__(self) -> str:
        shown = {"int4": "integer", "int8": "bigint", "int2": "smallint", "bpchar": "char"}
        text = shown.get(self.name, self.name)
        if self.modifiers:
            text += "(" + ", ".join(str(m) for m in self.modifiers) + ")"
        return text + ("[]" if self.array else "")

    @property
    def integer_width(self) -> int | None:
        return None if self.array else _INTEGER_WIDTH.get(self.name)

    @property
    def layout(self) -> tuple[int, int] | None:
        """(bytes, alignment) of a fixed-width value; None for a variable-width one (text,
        numeric, arrays, jsonb...) or a type not known here."""
        return None if self.array else _FIXED_LAYOUT.get(self.name)


def row_padding(types: list[TypeRef]) -> int:
    """Bytes of alignment padding in a row whose columns have `types` in this order (a
    variable-width value is taken as short: a 1-byte header, no alignment, one byte of data,
    so the estimate is of the padding that ordering alone causes)."""
    offset = padding = 0
    for kind in types:
        layout = kind.layout
        if layout is None:
            offset += 2
            continue
        size, align = layout
        pad = -offset % align
        padding += pad
        offset += pad + size
    return padding


def aligned_order(types: list[TypeRef]) -> list[int]:
    """The column order with the least padding: fixed-width columns by alignment, widest
    first, then the variable-width ones (each group in its written order)."""
    def rank(position: int) -> tuple[int, int]:
        layout = types[position].layout
        return (-layout[1] if layout else 1, position)
    return sorted(range(len(types)), key=rank)


class TypeChange(StrEnum):
    """What an `ALTER COLUMN ... TYPE` does to the stored rows."""

    NO_REWRITE = "no_rewrite"
    """Metadata only (still an ACCESS EXCLUSIVE lock, held briefly)."""
    REWRITE = "rewrite"
    NARROWING = "narrowing"
    """Rewrites, and fails or silently rounds/truncates values that do not fit."""
    UNKNOWN_OLD_TYPE = "unknown_old_type"


def classify_type_change(old: TypeRef | None, new: TypeRef, *, using: bool) -> TypeChange:
    if old is None:
        return TypeChange.UNKNOWN_OLD_TYPE
    if old == new and not using:
        return TypeChange.NO_REWRITE
    if old.array != new.array:
        return TypeChange.REWRITE
    if _narrows(old, new):
        return TypeChange.NARROWING
    if using:
        return TypeChange.REWRITE
    if _binary_compatible_widening(old, new):
        return TypeChange.NO_REWRITE
    return TypeChange.REWRITE


def _limit(t: TypeRef) -> int | None:
    return t.modifiers[0] if t.modifiers else None


def _narrows(old: TypeRef, new: TypeRef) -> bool:
    old_width, new_width = old.integer_width, new.integer_width
    if old_width and new_width:
        return new_width < old_width
    if old_width and new.name == "numeric":
        digits = {2: 5, 4: 10, 8: 19}[old_width]
        return bool(new.modifiers) and new.modifiers[0] - _scale(new) < digits
    if old.name == "numeric" and new_width:
        return True  # rounds the fraction away
    if old.name in _TEXTUAL | {"bpchar"} and new.name in {"varchar", "bpchar"}:
        new_limit, old_limit = _limit(new), _limit(old)
        return new_limit is not None and (old_limit is None or new_limit < old_limit)
    if old.name == new.name == "numeric" and new.modifiers:
        if not old.modifiers:
            return True
        return new.modifiers[0] < old.modifiers[0] or _scale(new) < _scale(old)
    if old.name == new.name and old.name in {"timestamp", "timestamptz", "time", "interval"}:
        return bool(new.modifiers) and (not old.modifiers or new.modifiers[0] < old.modifiers[0])
    if old.name == "float8" and new.name == "float4":
        return True
    return old.name in {"timestamp", "timestamptz"} and new.name == "date"


def _scale(t: TypeRef) -> int:
    return t.modifiers[1] if len(t.modifiers) > 1 else 0


def _binary_compatible_widening(old: TypeRef, new: TypeRef) -> bool:
    if old.name in _TEXTUAL and new.name == "text":
        return True
    if old.name in _TEXTUAL and new.name == "varchar":
        new_limit, old_limit = _limit(new), _limit(old)
        return new_limit is None or (old_limit is not None and new_limit >= old_limit)
    if old.name == new.name and old.name in {"numeric", "varbit", "bit varying"}:
        if not new.modifiers:
            return True
        return (bool(old.modifiers) and new.modifiers[0] >= old.modifiers[0]
                and _scale(new) == _scale(old))
    if old.name == new.name and old.name in {"timestamp", "timestamptz", "time", "interval"}:
        return not new.modifiers or (bool(old.modifiers) and new.modifiers[0] >= old.modifiers[0])
    return old.name == "cidr" and new.name == "inet"


def probably_no_rewrite(new: TypeRef) -> bool:
    """With the old type unknown: targets that a text/varchar/numeric column reaches free."""
    return not new.array and (
        new.name == "text" or (new.name in {"varchar", "numeric"} and not new.modifiers))
