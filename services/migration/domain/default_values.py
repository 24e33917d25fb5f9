"""How volatile a column default is, which decides whether ADD COLUMN rewrites the table.

From PostgreSQL 11 a constant or STABLE default (`0`, `'{}'::jsonb`, `now()`,
`CURRENT_TIMESTAMP`) is evaluated once and stored in the catalog: no rewrite. A VOLATILE one
(`random()`, `clock_timestamp()`, `gen_random_uuid()`, `nextval(...)`) is evaluated per row,
so the table is rewritten. A function this table does not know is taken as volatile, which is
what PostgreSQL assumes of a function declared without a volatility.
"""

from __future__ import annotations

from enum import IntEnum

from services.migration.domain.sql_nodes import children, strings, unwrap


class Volatility(IntEnum):
    CONSTANT = 0
    STABLE = 1
    VOLATILE = 2


_VOLATILE = frozenset({
    "random", "random_normal", "setseed", "clock_timestamp", "timeofday", "nextval",
    "currval", "lastval", "setval", "gen_random_uuid", "uuidv4", "uuidv7", "uuid_generate_v1",
    "uuid_generate_v1mc", "uuid_generate_v4", "gen_random_bytes", "gen_salt", "txid_current",
    "pg_current_xact_id", "pg_backend_pid",
})
_STABLE = frozenset({
    "now", "transaction_timestamp", "statement_timestamp", "current_setting", "to_char",
    "to_timestamp", "to_date", "concat", "concat_ws", "jsonb_build_object",
    "json_build_object", "jsonb_build_array", "json_build_array", "current_database",
    "current_schema", "date_trunc", "age",
})
_IMMUTABLE = frozenset({
    "lower", "upper", "length", "char_length", "md5", "trim", "btrim", "ltrim", "rtrim",
    "replace", "substr", "substring", "abs", "round", "floor", "ceil", "timezone",
    "make_interval", "make_date", "make_timestamp", "make_timestamptz", "array_fill",
    "to_jsonb", "to_json", "jsonb_typeof", "array_length", "left", "right", "format",
    "uuid_nil", "int4", "int8", "numeric", "text", "encode", "decode", "sha256",
})


def volatility(expression: object) -> tuple[Volatility, str | None]:
    """How volatile an expression is, and the function that makes it so (if any)."""
    kind, node = unwrap(expression)
    if kind == "FuncCall":
        name = (strings(children(node, "funcname")) or ["?"])[-1].lower()
        own = (Volatility.VOLATILE if name in _VOLATILE else
               Volatility.STABLE if name in _STABLE else
               Volatility.CONSTANT if name in _IMMUTABLE else Volatility.VOLATILE)
        worst: tuple[Volatility, str | None] = (own, name if own else None)
        for argument in children(node, "args"):
            found = volatility(argument)
            if found[0] > worst[0]:
                worst = found
        return worst
    if kind == "SQLValueFunction":
        return Volatility.STABLE, str(node.get("op", "")).removeprefix("SVFOP_").lower()
    if kind == "SubLink":
        return Volatility.VOLATILE, "a subquery"
    worst = (Volatility.CONSTANT, None)
    for value in node.values():
        for item in value if isinstance(value, list) else [value]:
            if isinstance(item, dict):
                found = volatility(item)
                if found[0] > worst[0]:
                    worst = found
    return worst


def is_null_constant(expression: object) -> bool:
    kind, node = unwrap(expression)
    return kind == "A_Const" and node.get("isnull") is True
