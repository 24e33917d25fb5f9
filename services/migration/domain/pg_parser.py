"""PostgreSQL's parser and scanner (libpg_query, as built into pglast), without importing pglast.

The analysis needs two things from libpg_query: a script's parse tree as JSON and, for the
rare statement that may hold an over-long identifier, the scanner's tokens. Importing pglast
to get them costs more than parsing all of Lemmy's migrations: its package imports
`pglast.enums` and its parser module `pglast.ast`, several hundred enum and node classes
(~170 M instructions, a quarter of linting one small file, against ~8 M for ctypes). So both
calls go through ctypes straight to the C functions pglast's extension module exports
(`pg_query_parse`, `pg_query_scan_tokens`: the library is loaded without running the
module's Python initialisation), and pglast itself is imported only for what it does better:

- a script the parser rejects: pglast's `ParseError` carries the message and a position it
  converts from libpg_query's; it is re-raised here as `ParseError` with the same arguments;
- tokens of non-ASCII text: pglast converts their byte offsets to character offsets;
- anything when the library or one of its symbols cannot be found (another pglast build).

The results are pglast's, value for value (a unit test compares them); only the token type
is this module's (`Token`, the same fields as pglast's).
"""

from __future__ import annotations

import ctypes
from typing import Any, NamedTuple

from services.migration.domain import pg_library

__all__ = ["ParseError", "Token", "parse_sql_json", "scan"]


class ParseError(Exception):
    """`args`: PostgreSQL's message, and the error's position as pglast reports it (or None)."""


class Token(NamedTuple):
    start: int
    """Character offset of the token's first character."""
    end: int
    """Character offset of its last character (inclusive, as pglast has it)."""
    name: str
    """The grammar's token name: `IDENT`, `SCONST`, `ASCII_59` (`;`)..."""
    kind: str
    """Keyword category: `NO_KEYWORD`, `UNRESERVED_KEYWORD`, `RESERVED_KEYWORD`..."""


class _Error(ctypes.Structure):
    _fields_ = [("message", ctypes.c_char_p), ("funcname", ctypes.c_char_p),
                ("filename", ctypes.c_char_p), ("lineno", ctypes.c_int),
                ("cursorpos", ctypes.c_int), ("context", ctypes.c_char_p)]


class _ParseResult(ctypes.Structure):
    """`PgQueryParseResult` (pg_query.h)."""

    _fields_ = [("parse_tree", ctypes.c_void_p), ("stderr_buffer", ctypes.c_void_p),
                ("error", ctypes.POINTER(_Error))]


class _ScanTokensResult(ctypes.Structure):
    """`PgQueryScanTokensResult`: an array of `PgQueryScanToken` {int start, end, token,
    keyword_kind}, `end` exclusive, both byte offsets."""

    _fields_ = [("tokens", ctypes.c_void_p), ("n_tokens", ctypes.c_int),
                ("error", ctypes.POINTER(_Error))]


class _Names:
    """A C function from an enum value to its name, each name asked for once."""

    def __init__(self, function: Any) -> None:
        self.function = function
        self.names: dict[int, str] = {}

    def __call__(self, value: int) -> str:
        name = self.names.get(value)
        if name is None:
            raw = self.function(value)
            name = self.names[value] = raw.decode("ascii") if raw else "UNKNOWN"
        return name


class _Library:
    def __init__(self, path: str) -> None:
        lib = ctypes.CDLL(path)

        def function(name: str, restype: Any, *argtypes: Any) -> Any:
            found = getattr(lib, name)
            found.argtypes, found.restype = list(argtypes), restype
            return found

        self.parse = function("pg_query_parse", _ParseResult, ctypes.c_char_p)
        self.free_parse = function("pg_query_free_parse_result", None, _ParseResult)
        self.scan = function("pg_query_scan_tokens", _ScanTokensResult, ctypes.c_char_p)
        self.free_scan = function("pg_query_free_scan_tokens_result", None, _ScanTokensResult)
        self.token_name = _Names(function("pg_query_token_name", ctypes.c_char_p, ctypes.c_int))
        self.kind_name = _Names(
            function("pg_query_keyword_kind_name", ctypes.c_char_p, ctypes.c_int))


def _load(path: str | None) -> _Library | None:
    if path is None:
        return None
    try:
        return _Library(path)
    except (OSError, AttributeError):  # not loadable, or a symbol is missing
        return None


_LIBRARY = _load(pg_library.PATH)


def parse_sql_json(sql: str) -> str:
    """`pglast.parser.parse_sql_json`: the parse tree as libpg_query's JSON (statement
    locations are byte offsets into the UTF-8 text); `ParseError` for a rejected script."""
    lib = _LIBRARY
    if lib is not None:
        result = lib.parse(sql.encode("utf-8"))
        try:
            if not result.error and result.parse_tree:
                return ctypes.string_at(result.parse_tree).decode("utf-8")
        finally:
            lib.free_parse(result)
    return _pglast_parse(sql)


def scan(sql: str) -> list[Token]:
    """`pglast.parser.scan`: the tokens of `sql`, offsets in characters."""
    lib = _LIBRARY
    if lib is not None and sql.isascii():  # bytes are characters
        result = lib.scan(sql.encode("ascii"))
        try:
            if not result.error:
                count = result.n_tokens
                if count <= 0 or not result.tokens:
                    return []
                fields = list((ctypes.c_int * (4 * count)).from_address(result.tokens))
        finally:
            lib.free_scan(result)
        if not result.error:
            token, kind = lib.token_name, lib.kind_name
            return [Token(start, end - 1, token(name), kind(keyword))
                    for start, end, name, keyword in zip(
                        fields[0::4], fields[1::4], fields[2::4], fields[3::4], strict=True)]
    return _pglast_scan(sql)


def _pglast_parse(sql: str) -> str:
    from pglast import parser

    try:
        return parser.parse_sql_json(sql)
    except parser.ParseError as error:
        raise ParseError(*error.args) from error


def _pglast_scan(sql: str) -> list[Token]:
    from pglast import parser

    try:
        return [Token(*token) for token in parser.scan(sql)]
    except parser.ParseError as error:
        raise ParseError(*error.args) from error
