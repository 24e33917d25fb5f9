"""A tiny condition language for analysis metrics: `result < 0.05`, never `eval`.

Argo Rollouts judges a measurement with an expression (`result[0] >= 0.95`) run by a general
expression engine; a typo there surfaces only when the canary is already live, and a
general engine is more power than a threshold needs. This grammar is just enough:

    condition  := or
    or         := and (("or" | "||") and)*
    and        := not (("and" | "&&") not)*
    not        := ("not" | "!") not | "(" or ")" | comparison
    comparison := "result" OP number | number OP "result"
    OP         := "<" | "<=" | ">" | ">=" | "==" | "!="
    number     := [+-]? (digits ["." digits] | "." digits) [("e" | "E") [+-]? digits]

A condition names one value, `result`. A query that returns several series (one per
instance, per route) yields several values, and the condition is applied to each one:
a multi-valued result passes only when every value passes (`Condition.evaluate_all`), so
one bad instance is not averaged away. NaN and infinities are the caller's business (the
analysis makes them inconclusive before a condition sees them): `evaluate` is only ever
given finite floats.

Parse errors name the text and the 1-based column of the problem, so a bad threshold in
`guardians.yaml` is reported at load time with a pointer, not at the first canary.
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Literal

Op = Literal["<", "<=", ">", ">=", "==", "!="]

_NEGATED: dict[Op, Op] = {"<": ">=", "<=": ">", ">": "<=", ">=": "<", "==": "!=", "!=": "=="}
_MIRRORED: dict[Op, Op] = {"<": ">", "<=": ">=", ">": "<", ">=": "<=", "==": "==", "!=": "!="}
_MAX_DEPTH = 64
"""Nesting deeper than this is a mistake, and would otherwise exhaust Python's stack."""


class ConditionError(ValueError):
    """A condition that does not parse: which text, which column (1-based), what is wrong."""

    def __init__(self, text: str, column: int, problem: str) -> None:
        self.text = text
        self.column = column
        self.problem = problem
        super().__init__(f"condition {text!r}, column {column}: {problem}")


def format_number(value: float) -> str:
    """The shortest text that reads back as the same float; whole numbers without `.0`.

    Used for thresholds and measured values alike, so a reason never shows a value rounded
    to the threshold it broke."""
    value = float(value)  # callers may hand in ints
    if math.isnan(value):
        return "NaN"
    if math.isinf(value):
        return "+Inf" if value > 0 else "-Inf"
    if value.is_integer() and abs(value) < 1e16:
        return str(int(value))
    return repr(value)


# -- the tree -------------------------------------------------------------------------------


@dataclass(frozen=True)
class Comparison:
    """`result OP number`; `number OP result` is stored mirrored, so `result` is on the left."""

    op: Op
    number: float


@dataclass(frozen=True)
class Not:
    operand: Node


@dataclass(frozen=True)
class And:
    operands: tuple[Node, ...]


@dataclass(frozen=True)
class Or:
    operands: tuple[Node, ...]


Node = Comparison | Not | And | Or


def _compare(op: Op, left: float, right: float) -> bool:
    match op:
        case "<":
            return left < right
        case "<=":
            return left <= right
        case ">":
            return left > right
        case ">=":
            return left >= right
        case "==":
            return left == right
        case "!=":
            return left != right


def _holds(node: Node, value: float) -> bool:
    match node:
        case Comparison(op, number):
            return _compare(op, value, number)
        case Not(operand):
            return not _holds(operand, value)
        case And(operands):
            return all(_holds(o, value) for o in operands)
        case Or(operands):
            return any(_holds(o, value) for o in operands)


def _explain(node: Node, value: float) -> str:
    """The comparison(s) that decide the node's truth for this value, with the value in."""
    match node:
        case Comparison(op, number):
            shown = op if _compare(op, value, number) else _NEGATED[op]
            return f"{format_number(value)} {shown} {format_number(number)}"
        case Not(operand):
            return _explain(operand, value)
        case And(operands) | Or(operands):
            truth = _holds(node, value)
            deciding = [o for o in operands if _holds(o, value) == truth]
            # A true `and` / false `or` needs every operand; otherwise one decides.
            every = truth == isinstance(node, And)
            return " and ".join(_explain(o, value) for o in (deciding if every else deciding[:1]))


def _render(node: Node) -> str:
    match node:
        case Comparison(op, number):
            return f"result {op} {format_number(number)}"
        case Not(operand):
            inner = _render(operand)
            return f"not {inner}" if isinstance(operand, Not) else f"not ({inner})"
        case And(operands):
            return " and ".join(f"({_render(o)})" if isinstance(o, Or) else _render(o)
                                for o in operands)
        case Or(operands):
            return " or ".join(_render(o) for o in operands)


@dataclass(frozen=True)
class Condition:
    """A parsed condition on `result`; `str()` is its normalised text."""

    node: Node

    def evaluate(self, value: float) -> bool:
        """Whether one finite value meets the condition."""
        return _holds(self.node, value)

    def evaluate_all(self, values: Iterable[float]) -> bool:
        """A multi-valued result passes only when every value passes (vacuously true when
        empty: the caller treats no data as inconclusive before asking)."""
        return all(self.evaluate(v) for v in values)

    def explain(self, value: float) -> str:
        """Why `evaluate(value)` is what it is: `0.2 >= 0.05` for `result < 0.05`."""
        return _explain(self.node, value)

    def __str__(self) -> str:
        return _render(self.node)


# -- the parser -----------------------------------------------------------------------------

_NUMBER = re.compile(r"[+-]?(?:[0-9]+(?:\.[0-9]*)?|\.[0-9]+)(?:[eE][+-]?[0-9]+)?")
_WORD = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
_SYMBOLS: tuple[tuple[str, str], ...] = (
    ("<=", "op"), (">=", "op"), ("==", "op"), ("!=", "op"), ("<", "op"), (">", "op"),
    ("&&", "and"), ("||", "or"), ("!", "not"), ("(", "("), (")", ")"),
)
_WORDS = {"result": "result", "and": "and", "or": "or", "not": "not"}
_OPS: dict[str, Op] = {op: op for op in _NEGATED}


@dataclass(frozen=True)
class _Token:
    kind: str
    """number, result, op, and, or, not, (, ), end"""
    text: str
    column: int
    number: float = 0.0


def _tokenize(text: str) -> list[_Token]:
    tokens: list[_Token] = []
    i = 0
    while i < len(text):
        char = text[i]
        column = i + 1
        if char.isspace():
            i += 1
            continue
        number = _NUMBER.match(text, i)
        if number and (char not in "+-" or _sign_is_number(tokens)):
            end = number.end()
            if end < len(text) and (text[end].isalnum() or text[end] in "_."):
                raise ConditionError(text, column, f"malformed number {text[i:end + 1]!r}")
            value = float(number.group())
            if math.isinf(value):
                raise ConditionError(text, column, f"number {number.group()!r} is out of range")
            tokens.append(_Token("number", number.group(), column, value))
            i = end
            continue
        word = _WORD.match(text, i)
        if word:
            name = word.group()
            if name not in _WORDS:
                raise ConditionError(
                    text, column,
                    f"unknown name {name!r}: a condition uses result, numbers, and, or, not",
                )
            tokens.append(_Token(_WORDS[name], name, column))
            i = word.end()
            continue
        symbol = next(((s, k) for s, k in _SYMBOLS if text.startswith(s, i)), None)
        if symbol:
            tokens.append(_Token(symbol[1], symbol[0], column))
            i += len(symbol[0])
            continue
        raise ConditionError(text, column, _unexpected_character(char))
    tokens.append(_Token("end", "", len(text) + 1))
    return tokens


def _sign_is_number(tokens: list[_Token]) -> bool:
    """A `+`/`-` starts a number unless it follows an operand (there is no arithmetic, so
    that case is an error, reported as an unexpected character)."""
    return not tokens or tokens[-1].kind not in {"number", "result", ")"}


def _unexpected_character(char: str) -> str:
    if char == "=":
        return "use == to compare for equality"
    if char in "[]":
        return ("indexing (result[0]) is not supported: a condition applies to every value "
                "of the result")
    return f"unexpected character {char!r}"


class _Parser:
    def __init__(self, text: str) -> None:
        self.text = text
        self.tokens = _tokenize(text)
        self.at = 0
        self.depth = 0

    def peek(self) -> _Token:
        return self.tokens[self.at]

    def take(self) -> _Token:
        token = self.tokens[self.at]
        self.at += 1
        return token

    def fail(self, token: _Token, problem: str) -> ConditionError:
        return ConditionError(self.text, token.column, problem)

    def parse(self) -> Node:
        if self.peek().kind == "end":
            raise self.fail(self.peek(), "empty condition")
        node = self.disjunction()
        token = self.peek()
        if token.kind == "op":
            raise self.fail(token, "chained comparisons are not supported: write "
                                   "`0 < result and result < 1`")
        if token.kind != "end":
            raise self.fail(token, f"unexpected {token.text!r}: expected and, or or the end")
        return node

    def disjunction(self) -> Node:
        operands = [self.conjunction()]
        while self.peek().kind == "or":
            self.take()
            operands.append(self.conjunction())
        return operands[0] if len(operands) == 1 else Or(tuple(operands))

    def conjunction(self) -> Node:
        operands = [self.negation()]
        while self.peek().kind == "and":
            self.take()
            operands.append(self.negation())
        return operands[0] if len(operands) == 1 else And(tuple(operands))

    def negation(self) -> Node:
        token = self.peek()
        self.depth += 1
        if self.depth > _MAX_DEPTH:
            raise self.fail(token, f"nested more than {_MAX_DEPTH} levels deep")
        try:
            if token.kind == "not":
                self.take()
                return Not(self.negation())
            if token.kind == "(":
                self.take()
                node = self.disjunction()
                closing = self.take()
                if closing.kind != ")":
                    raise self.fail(closing, f"expected ')' to close the '(' at column "
                                             f"{token.column}")
                return node
            return self.comparison()
        finally:
            self.depth -= 1

    def comparison(self) -> Node:
        left = self.operand()
        op = self.take()
        if op.kind != "op":
            raise self.fail(op, f"expected a comparison (< <= > >= == !=) after {left.text!r}")
        right = self.operand()
        if left.kind == right.kind == "result":
            raise self.fail(right, "compare result with a number, not with itself")
        if left.kind == right.kind == "number":
            raise self.fail(left, "a comparison needs result on one side")
        operator = _OPS[op.text]
        if left.kind == "number":
            return Comparison(_MIRRORED[operator], left.number)
        return Comparison(operator, right.number)

    def operand(self) -> _Token:
        token = self.take()
        if token.kind not in {"result", "number"}:
            found = "the end" if token.kind == "end" else repr(token.text)
            raise self.fail(token, f"expected result or a number, found {found}")
        return token


def parse_condition(text: str) -> Condition:
    """Parse a condition; `ConditionError` names the text and the column of the problem."""
    return Condition(_Parser(text).parse())
