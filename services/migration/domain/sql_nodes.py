"""Reading PostgreSQL parse trees (pglast's JSON form) without caring about their shape twice.

The analysis works on the JSON tree `pglast.parser.parse_sql_json` returns: building it is
about ten times faster than pglast's Python node objects, and the node and field names are
PostgreSQL's own (`AlterTableStmt`, `subtype: AT_AddColumn`), so the rules read like the
server's source. Protobuf-style defaults are omitted from the JSON: an absent field is
false, zero or empty.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

Node = dict[str, Any]
"""One parse-tree node's fields (the inside of `{"IndexStmt": {...}}`)."""

IDENTIFIER_MAX_BYTES = 63
"""NAMEDATALEN - 1: PostgreSQL silently truncates longer identifiers."""


def unwrap(wrapped: object) -> tuple[str, Node]:
    """`{"IndexStmt": {...}}` -> ("IndexStmt", {...}); anything else -> ("", {})."""
    if isinstance(wrapped, dict) and len(wrapped) == 1:
        ((kind, inner),) = wrapped.items()
        if isinstance(inner, dict):
            return str(kind), inner
    return "", {}


def child(node: Node, key: str) -> Node:
    value = node.get(key)
    return value if isinstance(value, dict) else {}


def children(node: Node, key: str) -> list[object]:
    value = node.get(key)
    return value if isinstance(value, list) else []


def text(node: Node, key: str) -> str | None:
    value = node.get(key)
    return value if isinstance(value, str) else None


def flag(node: Node, key: str) -> bool:
    return node.get(key) is True


def strings(items: list[object]) -> list[str]:
    """A list of `String` nodes (names, column lists) as Python strings."""
    out = []
    for item in items:
        kind, inner = unwrap(item)
        if kind == "String":
            out.append(str(inner.get("sval", "")))
    return out


def integer(wrapped: object) -> int | None:
    """The value of an integer `A_Const` (`{"ival": {}}` is 0), else None."""
    kind, inner = unwrap(wrapped)
    if kind != "A_Const" or "ival" not in inner:
        return None
    value = child(inner, "ival").get("ival", 0)
    return value if isinstance(value, int) else None


def constant_text(wrapped: object) -> str | None:
    """A constant's value as text (`'5s'`, `0`), else None."""
    kind, inner = unwrap(wrapped)
    if kind != "A_Const":
        return None
    if "sval" in inner:
        return str(child(inner, "sval").get("sval", ""))
    if "ival" in inner:
        return str(child(inner, "ival").get("ival", 0))
    if "fval" in inner:
        return str(child(inner, "fval").get("fval", "0"))
    if "boolval" in inner:
        return "true" if child(inner, "boolval").get("boolval") else "false"
    return None


@dataclass(frozen=True)
class ObjectName:
    """A possibly schema-qualified name, as written."""

    name: str
    schema: str | None = None

    @property
    def key(self) -> str:
        """How the change's state and the table statistics find it: `schema.name`."""
        return f"{self.schema or 'public'}.{self.name}"

    def __str__(self) -> str:
        return f"{self.schema}.{self.name}" if self.schema else self.name

    @classmethod
    def from_key(cls, key: str) -> ObjectName:
        schema, _, name = key.partition(".")
        return cls(name, None if schema == "public" else schema)

    @classmethod
    def from_parts(cls, parts: list[str]) -> ObjectName:
        if not parts:
            return cls("?")
        return cls(parts[-1], parts[-2] if len(parts) > 1 else None)


def relation(node: Node, key: str = "relation") -> ObjectName | None:
    """The table a `RangeVar` field names."""
    range_var = child(node, key)
    name = text(range_var, "relname")
    if name is None:
        return None
    return ObjectName(name, text(range_var, "schemaname"))


def dropped_names(node: Node) -> list[ObjectName]:
    """The objects of a `DropStmt`: lists of names, `ObjectWithArgs`, or a bare `String`."""
    names = []
    for item in children(node, "objects"):
        kind, inner = unwrap(item)
        if kind == "List":
            names.append(ObjectName.from_parts(strings(children(inner, "items"))))
        elif kind == "ObjectWithArgs":
            names.append(ObjectName.from_parts(strings(children(inner, "objname"))))
        elif kind == "String":
            names.append(ObjectName(str(inner.get("sval", ""))))
        elif kind == "TypeName":
            names.append(ObjectName.from_parts(strings(children(inner, "names"))))
    return names


def too_long(identifier: str | None) -> bool:
    return identifier is not None and len(identifier.encode()) > IDENTIFIER_MAX_BYTES


def defelem_names(node: Node, key: str) -> set[str]:
    """The option names of a `DefElem` list (`VACUUM (FULL)`, `REINDEX (CONCURRENTLY)`)."""
    names = set()
    for item in children(node, key):
        kind, inner = unwrap(item)
        if kind == "DefElem":
            names.add(str(inner.get("defname", "")))
    return names
