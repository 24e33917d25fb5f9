"""A migration script cut into parsed statements, each with its text and 1-based position.

PostgreSQL's parser reports statement locations as byte offsets into the UTF-8 text, and
error positions as character positions; both become character offsets here, then line and
column (columns count characters). A syntax error never stops the analysis: the script is
cut at its `;` tokens and every piece that parses is still analysed.

`read_script` hands the statements out one at a time: the parser runs once over the whole
script, but each statement's tree is decoded from the parser's JSON only when it is reached
and can be freed once analysed, so a long script's tree is never all in memory at once. Told
what its caller reads (`Wanted`), it decodes no more: decoding is the costliest step after
the rules, and the analysis reads nothing of an INSERT nor of a view's query.

The parser is libpg_query called directly (`pg_parser`), not through pglast's Python API,
whose import alone costs a quarter of linting one small file.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass

from services.migration.domain import pg_parser as parser
from services.migration.domain.sql_nodes import Node, unwrap

_NON_ASCII = re.compile(r"[^\x00-\x7f]")
_LONG_WORD = re.compile(r"[^\W\d][\w$]{31,}|\"[^\"]{32,}\"")
_TREE_HEAD = re.compile(r'\{"version":\d+,"stmts":\[')
_DECODER = json.JSONDecoder()
IDENTIFIER_MAX_BYTES = 63
"""NAMEDATALEN - 1: the scanner truncates longer identifiers before the parser sees them."""


@dataclass(frozen=True)
class SourceStatement:
    kind: str
    """The parse node's type, as PostgreSQL names it (`AlterTableStmt`)."""
    node: Node
    text: str
    start: int
    """Character offset of the first token in the script."""
    line: int
    column: int


@dataclass(frozen=True)
class SyntaxProblem:
    message: str
    """PostgreSQL's own message (`syntax error at or near "SELEC"`)."""
    line: int
    column: int


@dataclass(frozen=True)
class ParsedScript:
    statements: tuple[SourceStatement, ...]
    errors: tuple[SyntaxProblem, ...] = ()


@dataclass(frozen=True)
class ScriptReader:
    """A script's statements as an iterator, read once, in order; its syntax errors known
    before the first statement is read."""

    statements: Iterator[SourceStatement]
    errors: tuple[SyntaxProblem, ...] = ()


class _Positions:
    """Byte offsets -> character offsets -> (line, column), cheap when called in order."""

    def __init__(self, sql: str) -> None:
        self.sql = sql
        self.encoded: bytes | None = None if sql.isascii() else sql.encode()
        self._byte = 0
        self._char = 0
        self._line_offset = 0
        self._line = 1

    def char(self, byte_offset: int) -> int:
        if self.encoded is None:
            return byte_offset
        if byte_offset < self._byte:
            self._byte = self._char = 0
        piece = self.encoded[self._byte:byte_offset]
        self._char += len(piece.decode("utf-8", errors="ignore"))
        self._byte = byte_offset
        return self._char

    def line_column(self, offset: int) -> tuple[int, int]:
        offset = max(0, min(offset, len(self.sql)))
        if offset < self._line_offset:
            self._line_offset, self._line = 0, 1
        self._line += self.sql.count("\n", self._line_offset, offset)
        self._line_offset = offset
        line_start = self.sql.rfind("\n", 0, offset) + 1
        return self._line, offset - line_start + 1


Wanted = Mapping[str, frozenset[str] | None]
"""Which statements' trees `read_script` decodes, by parse-node type: None for the whole
node, or its leading top-level fields in struct order up to the last one read (the node then
holds just those; see `_decode_fields`); a type not listed is not decoded at all (its node
is empty). Without it every tree is decoded whole."""


def parse_script(sql: str, wanted: Wanted | None = None) -> ParsedScript:
    """Every statement of `sql`, in order; syntax errors as `SyntaxProblem`s."""
    script = read_script(sql, wanted)
    return ParsedScript(tuple(script.statements), script.errors)


def read_script(sql: str, wanted: Wanted | None = None) -> ScriptReader:
    """`parse_script`, the statements decoded as they are read."""
    try:
        tree_json = parser.parse_sql_json(sql)
    except parser.ParseError as error:
        parsed = _parse_piecewise(sql, error)
        return ScriptReader(iter(parsed.statements), parsed.errors)
    raw = _raw_statements(tree_json, wanted)
    return ScriptReader(_statements(sql, raw, 0, _Positions(sql)))


def _raw_statements(tree_json: str, wanted: Wanted | None = None) -> Iterator[Node]:
    """The items of the tree's `stmts`, each decoded when it is reached, and only as far as
    `wanted` asks.

    libpg_query writes `{"version":N,"stmts":[item,item,...]}` with no spaces; each item is
    decoded by the same decoder `json.loads` uses, so it is the same value. Any other layout
    is decoded whole.
    """
    head = _TREE_HEAD.match(tree_json)
    if head is None or not tree_json.endswith("]}"):
        yield from json.loads(tree_json).get("stmts", [])
        return
    index = head.end()
    if tree_json.startswith("]}", index):
        return
    decode = _DECODER.raw_decode
    while True:
        item_head = _ITEM_HEAD.match(tree_json, index) if wanted is not None else None
        fields = wanted.get(item_head[1], frozenset()) if wanted and item_head else None
        skipped = _skip_item(tree_json, index) if fields is not None else None
        if skipped is None:
            item, index = decode(tree_json, index)
        else:
            assert item_head is not None and fields is not None
            location, length, index = skipped
            node = _decode_fields(tree_json, item_head.end(), fields) if fields else {}
            item = {"stmt": {item_head[1]: node}, "stmt_location": location,
                    "stmt_len": length}
        yield item
        if not tree_json.startswith(",", index):
            break
        index += 1
    if index != len(tree_json) - 2:
        raise ValueError(f"unexpected parse tree JSON at offset {index}")


_ITEM_HEAD = re.compile(r'\{"stmt":\{"(\w+)":\{')
_ITEM_START = '{"stmt":{"'
_LENGTH = re.compile(r'"stmt_len":(\d+)\}(?=,\{"stmt":|\]\}\Z)')
_LOCATION_BEFORE = re.compile(r',"stmt_location":(\d+),\Z')
_LAST_TAIL = re.compile(r'\}(?:,"stmt_location":(\d+))?\}\]\}\Z')
_FIELD = re.compile(r'"(\w+)":')


def _skip_item(tree_json: str, start: int) -> tuple[int, int, int] | None:
    """The item at `start` read without decoding its statement: (stmt_location, stmt_len,
    the index after it), or None when that cannot be done safely (it is then decoded).

    An item is `{"stmt":{...},"stmt_location":N,"stmt_len":M}`, a zero field left out. Only
    the statement wrapper (RawStmt) has those two fields, and inside JSON strings every `"`
    is escaped, so the item ends at the first `"stmt_len":M}` followed by the next item or
    the end of the tree; only the last statement (no `;` after it) has no length, and then
    the item ends where the tree does. Should that reasoning ever fail, the end found would
    lie past the start of another item: checked, and the item is then decoded instead.
    """
    length = _LENGTH.search(tree_json, start)
    if length is not None:
        end = length.end()
        location = _LOCATION_BEFORE.search(tree_json, max(start, length.start() - 40),
                                           length.start())
        stmt_len = int(length[1])
    else:
        tail = _LAST_TAIL.search(tree_json, max(start, len(tree_json) - 40))
        if tail is None:
            return None
        end, location, stmt_len = len(tree_json) - 2, tail, 0
    if tree_json.find(_ITEM_START, start + 1, end) != -1:
        return None
    return (int(location[1]) if location is not None and location[1] else 0), stmt_len, end


def _decode_fields(tree_json: str, index: int, fields: frozenset[str]) -> Node:
    """The named fields of the node whose first field starts at `index`. libpg_query writes
    a node's fields in its struct order and leaves out empty ones, so `fields` names the
    struct's leading fields up to the last one read; decoding stops at the first field not
    named (a view's query, an INSERT's rows are never decoded), or when all are found."""
    node: Node = {}
    decode = _DECODER.raw_decode
    while len(node) < len(fields):
        key = _FIELD.match(tree_json, index)
        if key is None or key[1] not in fields:
            break
        node[key[1]], index = decode(tree_json, key.end())
        if not tree_json.startswith(",", index):
            break
        index += 1
    return node


def _statements(
    sql: str, raw: Iterator[Node] | list[Node], base: int, positions: _Positions
) -> Iterator[SourceStatement]:
    """`base`: the character offset in the whole script of the text that was parsed."""
    for item in raw:
        kind, node = unwrap(item.get("stmt"))
        start = positions.char(int(item.get("stmt_location", 0)))
        length = int(item.get("stmt_len", 0))
        end = positions.char(int(item.get("stmt_location", 0)) + length) if length else None
        piece = sql[start:end] if end is not None else sql[start:]
        lead = len(piece) - len(piece.lstrip())
        start += lead
        line, column = positions.line_column(start)
        yield SourceStatement(kind, node, piece.strip(), base + start, line, column)


def _parse_piecewise(sql: str, first_error: parser.ParseError) -> ParsedScript:
    try:
        pieces = _split_at_semicolons(sql)
    except parser.ParseError:
        return ParsedScript((), (_problem(sql, first_error, sql, 0),))
    statements: list[SourceStatement] = []
    errors: list[SyntaxProblem] = []
    positions = _Positions(sql)
    for start, end in pieces:
        piece = sql[start:end]
        try:
            tree = json.loads(parser.parse_sql_json(piece))
        except parser.ParseError as error:
            errors.append(_problem(piece, error, sql, start))
            continue
        local = _statements(piece, tree.get("stmts", []), 0, _Positions(piece))
        for statement in local:
            offset = start + statement.start
            line, column = positions.line_column(offset)
            statements.append(SourceStatement(
                statement.kind, statement.node, statement.text, offset, line, column))
    if not errors:  # the pieces parse alone but not together: report the first error whole
        errors.append(_problem(sql, first_error, sql, 0))
    return ParsedScript(tuple(statements), tuple(errors))


def _split_at_semicolons(sql: str) -> list[tuple[int, int]]:
    pieces = []
    start = 0
    for token in parser.scan(sql):
        if token.name == "ASCII_59":
            pieces.append((start, token.start))
            start = token.end + 1
    if sql[start:].strip():
        pieces.append((start, len(sql)))
    return [(s, e) for s, e in pieces if sql[s:e].strip()]


def _problem(piece: str, error: parser.ParseError, sql: str, base: int) -> SyntaxProblem:
    message = str(error.args[0]) if error.args else str(error)
    offset = _error_offset(piece, error)
    line, column = _Positions(sql).line_column(base + offset)
    return SyntaxProblem(message, line, column)


def _error_offset(piece: str, error: parser.ParseError) -> int:
    """The error's character offset in `piece`.

    PostgreSQL reports error positions in characters, but pglast converts them as if they
    were bytes, which is wrong after a multibyte character. The same text with each
    non-ASCII character replaced by one ASCII letter has the same character offsets and
    fails at the same place, and there bytes and characters agree.
    """
    location = error.args[1] if len(error.args) > 1 else None
    if location is None:
        return len(piece.rstrip())
    if piece.isascii():
        return int(location)
    try:
        parser.parse_sql_json(_NON_ASCII.sub("x", piece))
    except parser.ParseError as ascii_error:
        ascii_location = ascii_error.args[1] if len(ascii_error.args) > 1 else None
        if ascii_location is not None:
            return int(ascii_location)
    return int(location)


def long_identifiers(statement: str) -> list[str]:
    """Identifiers over 63 bytes in a statement's text (the parse tree has them truncated)."""
    if '"' not in statement:
        # Without a double quote, a `_LONG_WORD` match (32 word characters) and every
        # identifier or keyword the scanner returns lie inside one run of non-blank
        # characters, so the widest run rules most statements out before the regex (which
        # retries at every letter) and the scanner. Only ASCII text: PostgreSQL's identifiers
        # may hold non-ASCII characters that Python's split() counts as blanks.
        widest = max(map(len, statement.split()), default=0)
        if widest < 32 or (widest <= IDENTIFIER_MAX_BYTES and statement.isascii()):
            return []
    if not _LONG_WORD.search(statement):
        return []
    try:
        tokens = parser.scan(statement)
    except parser.ParseError:
        return []
    names = []
    for token in tokens:
        if token.name == "IDENT" or token.kind != "NO_KEYWORD":
            name = statement[token.start:token.end + 1].strip('"')
            if len(name.encode()) > IDENTIFIER_MAX_BYTES:
                names.append(name)
    return names
