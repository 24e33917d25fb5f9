"""Gatus-style conditions on what one HTTP probe saw: `[STATUS] == 200`, never `eval`.

Gatus made health checks readable: a check is a list of conditions such as
`[STATUS] == 200`, `[RESPONSE_TIME] < 300`, `[BODY].status == UP` or
`[CERTIFICATE_EXPIRATION] > 48h`, and the check passes when all of them hold. This module
implements a faithful subset of that language, parsed once when `guardians.yaml` is loaded
(a typo is reported with its column then, not at the first probe) and evaluated against an
`HttpObservation`.

A condition is `LEFT OP RIGHT` with OP one of `==` `!=` `<` `<=` `>` `>=`; the first
operator outside brackets, parentheses and quotes splits it, so the right side may be any
text (`[BODY] == all good`). Operands:

- placeholders (names case-insensitive): `[STATUS]`; `[RESPONSE_TIME]` (milliseconds);
  `[CONNECTED]` (`true` / `false`); `[IP]`; `[CERTIFICATE_EXPIRATION]` (milliseconds until the
  certificate expires, as Gatus); `[BODY]` (the trimmed body text); `[BODY].a.b[0].c` and
  `[BODY][0]` (a JSON path: keys and array indexes); `[HEADER].Content-Type` (a response
  header, the name case-insensitive).
- `len(placeholder)`: an array's number of elements, else the length of the value's text (an
  object's compact JSON, as Gatus). `has(placeholder)`: `true` when the path or header exists.
- `pat(glob)`: a glob (`*`, `?`, `[...]`), with `==` / `!=` only: `[BODY].status == pat(UP*)`.
- `any(a, b, c)`: equal to one of them, with `==` / `!=` only: `[STATUS] == any(200, 204)`.
- constants: numbers (`200`, `0.5`); durations (`48h`, `1h30m`, `90s`, `500ms`, and `7d`,
  which Go's durations, hence Gatus, lack), worth their milliseconds; `true` / `false`; bare
  text (`UP`); quoted text (`"all good"`, `'1.10'`), which is always compared as text.

Comparison, as Gatus: numeric when both sides are numbers (a duration counts as its
milliseconds, a JSON string "200" as 200), else as text. Unlike Gatus, the ordering
operators never compare text: a constant that is not a number is refused when parsing
(Gatus would read it as 0), and an observed value that is not a number fails the condition
(the target's answer does not satisfy it). Unsupported Gatus parts are refused with a column
rather than misread: `[*]` wildcards, `age()`, `[DNS_RCODE]`, `[DOMAIN_EXPIRATION]`, `[CONTEXT]`.
JSON `null` counts as absent, as in Gatus.

Who is at fault decides the verdict (`Condition.evaluate` returns True, False or None):

- False when the target is the reason: it could not be reached (refused, reset, timed out:
  `connected` is false), or it was reached but gave no HTTP response (`status` is None): every
  condition on the response (`[STATUS]`, `[BODY]`, `[HEADER]`, `[RESPONSE_TIME]`, and without a
  connection `[IP]`, `[CERTIFICATE_EXPIRATION]`) then fails. A target that answers without the
  path asked for, with a body that is not JSON, or with text where a number is compared, also
  fails: its answer does not say it is healthy, and an endpoint that starts answering
  `{"error": "db down"}` instead of `{"status": "UP"}` must turn red, not unknown.
- None when the probe did not measure what the condition needs although the target
  answered: no response time, no certificate (an `http://` URL, or not captured), no IP, a
  body not read (a HEAD request). Nothing about the target can be concluded; the check is
  UNKNOWN, never green, and a configuration mistake (a certificate condition on plain HTTP)
  stays visible instead of passing or failing forever.
- `[CONNECTED]` is always known.

A probe that could not run at all (the guardian itself out of file descriptors) is not an
observation: the adapter reports that check as UNKNOWN without calling `judge_http`.
"""

from __future__ import annotations

import fnmatch
import json
import math
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

from schemas.events.health import CheckStatus

Op = Literal["==", "!=", "<", "<=", ">", ">="]
_OPS: tuple[Op, ...] = ("==", "!=", "<=", ">=", "<", ">")
"""Two-character operators first, so `<=` is not read as `<` followed by `=`."""
_ORDERING = frozenset({"<", "<=", ">", ">="})

PlaceholderName = Literal[
    "STATUS", "RESPONSE_TIME", "BODY", "HEADER", "CONNECTED", "CERTIFICATE_EXPIRATION", "IP"
]
_PLACEHOLDERS: dict[str, PlaceholderName] = {
    "STATUS": "STATUS", "RESPONSE_TIME": "RESPONSE_TIME", "BODY": "BODY", "HEADER": "HEADER",
    "CONNECTED": "CONNECTED", "CERTIFICATE_EXPIRATION": "CERTIFICATE_EXPIRATION", "IP": "IP",
}
_NEEDS_RESPONSE = frozenset({"STATUS", "RESPONSE_TIME", "BODY", "HEADER"})
"""Placeholders that need an HTTP response; the others need only a connection (or, for
[CONNECTED], nothing)."""
_NOT_SUPPORTED = {
    "DNS_RCODE": "DNS checks are not HTTP probes",
    "DOMAIN_EXPIRATION": "WHOIS lookups are not made by the probes",
    "CONTEXT": "there are no suites here",
}
Function = Literal["len", "has"]
_SHOWN_LIMIT = 60
"""Characters of an observed value shown in a message (bodies can be long)."""


class ConditionError(ValueError):
    """A condition that does not parse: which text, which column (1-based), what is wrong."""

    def __init__(self, text: str, column: int, problem: str) -> None:
        self.text = text
        self.column = column
        self.problem = problem
        super().__init__(f"condition {text!r}, column {column}: {problem}")


@dataclass(frozen=True)
class HttpObservation:
    """What one HTTP probe saw; the adapter fills in what it could measure."""

    connected: bool
    """A connection was established (TCP, and TLS for https)."""
    status: int | None = None
    """None: no HTTP response (timed out or reset after connecting)."""
    response_time_ms: float | None = None
    body: bytes | None = None
    """None: not read (a HEAD request, or not captured); b"" is an empty body."""
    headers: Mapping[str, str] = field(default_factory=dict)
    certificate_expires_in_s: float | None = None
    """Seconds until the server certificate expires (negative once expired); None: no TLS."""
    error: str | None = None
    """Why there was no connection or no response (`connection refused`, `timed out`)."""
    ip: str | None = None
    """The address connected to, for `[IP]`."""


# -- numbers and durations ------------------------------------------------------------------

_NUMBER = re.compile(r"[+-]?(?:[0-9]+(?:\.[0-9]*)?|\.[0-9]+)(?:[eE][+-]?[0-9]+)?")
_DURATION_PART = re.compile(r"([0-9]+(?:\.[0-9]*)?|\.[0-9]+)(ns|us|µs|ms|s|m|h|d)")
_DURATION = re.compile(rf"(?:{_DURATION_PART.pattern})+")
_UNIT_MS = {"ns": 1e-6, "us": 1e-3, "µs": 1e-3, "ms": 1.0, "s": 1e3, "m": 6e4, "h": 3.6e6,
            "d": 8.64e7}


def parse_number(text: str) -> float | None:
    """A decimal number (`200`, `-0.5`, `1e3`), or None; not hex, not NaN, not infinity."""
    if not _NUMBER.fullmatch(text):
        return None
    value = float(text)
    return value if math.isfinite(value) else None


def parse_duration_ms(text: str) -> float | None:
    """A duration (`48h`, `1h30m`, `500ms`, `7d`) in milliseconds, or None."""
    if not _DURATION.fullmatch(text):
        return None
    return sum(float(n) * _UNIT_MS[unit] for n, unit in _DURATION_PART.findall(text))


def format_number(value: float) -> str:
    """Whole numbers without `.0`, others as the shortest text that reads back the same."""
    value = float(value)  # callers (and probes) may hand in ints
    if value.is_integer() and abs(value) < 1e16:
        return str(int(value))
    return repr(value)


def format_duration(ms: float) -> str:
    """Milliseconds as `2d`, `1d6h`, `45m30s`, `250ms`: whole seconds above one second."""
    if ms < 0:
        return "-" + format_duration(-ms)
    if ms < 1000:
        return f"{format_number(round(ms, 3))}ms"
    seconds = int(ms // 1000)
    parts = []
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60), ("s", 1)):
        amount, seconds = divmod(seconds, size)
        if amount:
            parts.append(f"{amount}{unit}")
    return "".join(parts)


def _clip(text: str) -> str:
    return text if len(text) <= _SHOWN_LIMIT else f"{text[:_SHOWN_LIMIT]}…"


# -- operands -------------------------------------------------------------------------------

PathStep = str | int


@dataclass(frozen=True)
class Placeholder:
    """`[NAME]` with a JSON path or header name, perhaps inside `len()` / `has()`."""

    name: PlaceholderName
    path: tuple[PathStep, ...] = ()
    """[BODY]: keys and indexes; [HEADER]: the header name."""
    function: Function | None = None

    def __str__(self) -> str:
        inner = f"[{self.name}]" + "".join(
            f"[{step}]" if isinstance(step, int) else f".{step}" for step in self.path
        )
        return f"{self.function}({inner})" if self.function else inner

    @property
    def is_boolean(self) -> bool:
        return self.function == "has" or (self.name == "CONNECTED" and self.function is None)


@dataclass(frozen=True)
class Constant:
    """A number, a duration, `true` / `false`, or text; `number` is None for text."""

    text: str
    number: float | None = None
    quoted: bool = False

    def __str__(self) -> str:
        return json.dumps(self.text, ensure_ascii=False) if self.quoted else self.text


@dataclass(frozen=True)
class Pattern:
    """`pat(glob)`: the other side must match the glob."""

    glob: str

    def __str__(self) -> str:
        return f"pat({self.glob})"


@dataclass(frozen=True)
class AnyOf:
    """`any(a, b, c)`: the other side must equal one of them."""

    options: tuple[Constant, ...]

    def __str__(self) -> str:
        return f"any({', '.join(str(o) for o in self.options)})"


Operand = Placeholder | Constant | Pattern | AnyOf


# -- resolving placeholders -----------------------------------------------------------------


@dataclass(frozen=True)
class _Value:
    text: str
    number: float | None
    shown: str
    """What a message shows in parentheses after a placeholder."""


@dataclass(frozen=True)
class _Missing:
    verdict: Literal[False] | None
    """False: the target's answer lacks it (the condition fails); None: not measured."""
    why: str


_Resolved = _Value | _Missing


def _text_value(text: str, shown: str | None = None) -> _Value:
    return _Value(text, parse_number(text), _clip(shown if shown is not None else text))


def _number_value(number: float, shown: str) -> _Value:
    return _Value(format_number(number), number, shown)


def _bool_value(flag: bool) -> _Value:
    text = "true" if flag else "false"
    return _Value(text, None, text)


def _json_text(value: Any) -> str:
    if isinstance(value, str):
        return value
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return format_number(float(value))
    return json.dumps(value, ensure_ascii=False, separators=(",", ":"))


def _json_value(value: Any) -> _Value:
    if isinstance(value, int | float) and not isinstance(value, bool):
        return _number_value(float(value), format_number(float(value)))
    return _text_value(_json_text(value))


def _refuse_constant(name: str) -> Any:
    raise ValueError(f"{name} is not JSON")


def _load_json(body: bytes) -> tuple[bool, Any]:
    try:
        return True, json.loads(body, parse_constant=_refuse_constant)
    except (ValueError, RecursionError):
        return False, None


def _walk(document: Any, path: tuple[PathStep, ...]) -> tuple[bool, Any, str]:
    """(found, value, why not): follows keys and indexes; JSON null counts as absent."""
    where = "[BODY]"
    current = document
    for step in path:
        if isinstance(step, int):
            if not isinstance(current, list):
                return False, None, f"{where} is not an array"
            if step >= len(current):
                return False, None, f"{where} has {len(current)} elements"
            current = current[step]
            where += f"[{step}]"
        else:
            if not isinstance(current, dict):
                return False, None, f"{where} is not an object"
            current = current.get(step)
            where += f".{step}"
        if current is None:
            return False, None, "absent"
    return True, current, ""


def _resolve_body(p: Placeholder, body: bytes) -> _Resolved:
    text = body.decode("utf-8", errors="replace").strip()
    if not p.path:
        if p.function == "has":
            return _bool_value(bool(text))
        if p.function == "len":
            ok, document = _load_json(body)
            count = len(document) if ok and isinstance(document, list) else len(text)
            return _number_value(float(count), str(count))
        return _text_value(text)
    ok, document = _load_json(body)
    if not ok:
        return _bool_value(False) if p.function == "has" else _Missing(False, "body not JSON")
    found, value, why = _walk(document, p.path)
    if p.function == "has":
        return _bool_value(found)
    if not found:
        return _Missing(False, why)
    if p.function == "len":
        count = len(value) if isinstance(value, list) else len(_json_text(value))
        return _number_value(float(count), str(count))
    return _json_value(value)


def _resolve_header(p: Placeholder, headers: Mapping[str, str]) -> _Resolved:
    wanted = str(p.path[0]).lower()
    values = [v for k, v in headers.items() if k.lower() == wanted]
    if p.function == "has":
        return _bool_value(bool(values))
    if not values:
        return _Missing(False, "absent")
    return _apply_len(p, _text_value(values[0]))


def _apply_len(p: Placeholder, value: _Value) -> _Value:
    if p.function == "len":
        return _number_value(float(len(value.text)), str(len(value.text)))
    if p.function == "has":
        return _bool_value(bool(value.text))
    return value


def _unreachable(p: Placeholder, obs: HttpObservation) -> _Missing | None:
    """Why the target gave nothing to judge `p` on, if it did not."""
    reason = f": {obs.error}" if obs.error else ""
    if not obs.connected and p.name != "CONNECTED":
        return _Missing(False, f"not connected{reason}")
    if obs.status is None and p.name in _NEEDS_RESPONSE:
        return _Missing(False, f"no response{reason}")
    return None


def _resolve_measured(p: Placeholder, obs: HttpObservation) -> _Resolved:
    match p.name:
        case "CONNECTED":
            return _apply_len(p, _bool_value(obs.connected))
        case "STATUS":
            status = float(obs.status or 0)
            return _apply_len(p, _number_value(status, format_number(status)))
        case "RESPONSE_TIME":
            if obs.response_time_ms is None:
                return _Missing(None, "response time not measured")
            ms = float(obs.response_time_ms)
            return _apply_len(p, _number_value(ms, f"{format_number(round(ms, 3))} ms"))
        case "CERTIFICATE_EXPIRATION":
            if obs.certificate_expires_in_s is None:
                return _Missing(None, "no certificate measured")
            ms = float(obs.certificate_expires_in_s) * 1000
            return _apply_len(p, _number_value(ms, format_duration(ms)))
        case "IP":
            if obs.ip is None:
                return _Missing(None, "IP not recorded")
            return _apply_len(p, _text_value(obs.ip))
        case "HEADER":
            return _resolve_header(p, obs.headers)
        case "BODY":
            if obs.body is None:
                return _Missing(None, "body not read")
            return _resolve_body(p, obs.body)


def _resolve(p: Placeholder, obs: HttpObservation) -> _Resolved:
    return _unreachable(p, obs) or _resolve_measured(p, obs)


# -- comparing ------------------------------------------------------------------------------


def _equal(a: _Value | Constant, b: _Value | Constant) -> bool:
    if a.number is not None and b.number is not None:
        return a.number == b.number
    return a.text == b.text


def _order(op: Op, left: float, right: float) -> bool:
    match op:
        case "<":
            return left < right
        case "<=":
            return left <= right
        case ">":
            return left > right
        case _:
            return left >= right


def _holds(op: Op, left: _Value | Constant, right: _Value | Constant) -> bool:
    if op in ("==", "!="):
        return _equal(left, right) == (op == "==")
    if left.number is None or right.number is None:
        return False
    return _order(op, left.number, right.number)


def _matches(matcher: Pattern | AnyOf, value: _Value) -> bool:
    if isinstance(matcher, Pattern):
        return fnmatch.fnmatchcase(value.text, matcher.glob)
    return any(_equal(value, option) for option in matcher.options)


def _show(operand: Operand, resolved: _Resolved | None, numeric: bool) -> str:
    if isinstance(resolved, _Missing):
        return f"{operand} ({resolved.why})"
    if isinstance(resolved, _Value):
        note = ": not a number" if numeric and resolved.number is None else ""
        return f"{operand} ({resolved.shown}{note})"
    return str(operand)


@dataclass(frozen=True)
class Condition:
    """A parsed condition: `str()` is its normalised text, `text` what was written."""

    text: str
    left: Operand
    op: Op
    right: Operand

    def evaluate(self, obs: HttpObservation) -> tuple[bool | None, str]:
        """Whether it holds (None: cannot be judged, see the module), and the condition with
        the observed values in: `[STATUS] (503) == 200`, `[RESPONSE_TIME] (412 ms) < 300`."""
        left = _resolve(self.left, obs) if isinstance(self.left, Placeholder) else None
        right = _resolve(self.right, obs) if isinstance(self.right, Placeholder) else None
        numeric = self.op in _ORDERING
        shown = (f"{_show(self.left, left, numeric)} {self.op} "
                 f"{_show(self.right, right, numeric)}")
        if isinstance(left, _Missing) or isinstance(right, _Missing):
            verdicts = [r.verdict for r in (left, right) if isinstance(r, _Missing)]
            return (False if False in verdicts else None), shown
        return self._verdict(left, right), shown

    def _verdict(self, left: _Value | None, right: _Value | None) -> bool:
        a = left if left is not None else self.left
        b = right if right is not None else self.right
        if isinstance(a, Pattern | AnyOf) and isinstance(b, _Value):
            return _matches(a, b) == (self.op == "==")
        if isinstance(b, Pattern | AnyOf) and isinstance(a, _Value):
            return _matches(b, a) == (self.op == "==")
        if isinstance(a, _Value | Constant) and isinstance(b, _Value | Constant):
            return _holds(self.op, a, b)
        return False  # not reached: parsing puts a placeholder opposite pat() / any()

    def __str__(self) -> str:
        return f"{self.left} {self.op} {self.right}"


# -- parsing --------------------------------------------------------------------------------

_PLACEHOLDER = re.compile(r"\[([A-Za-z_]+)\]")
_PATH_STEP = re.compile(r"\.([^.\[\]\s]+)|\[([0-9]+)\]")
_HEADER_NAME = re.compile(r"\.([A-Za-z0-9!#$%&'*+.^_`|~-]+)")
_FUNCTION = re.compile(r"(len|has|pat|any|age)\((.*)\)", re.DOTALL)
_FUNCTION_START = re.compile(r"(len|has|pat|any|age)\(")
_QUOTES = "\"'"


@dataclass(frozen=True)
class _Source:
    """The text being parsed, for errors that point at a column."""

    text: str

    def error(self, index: int, problem: str) -> ConditionError:
        return ConditionError(self.text, index + 1, problem)


def _find_operator(src: _Source) -> tuple[int, Op]:
    """The first operator outside quotes, brackets and parentheses."""
    text, depth, quote, opened = src.text, 0, "", 0
    i = 0
    while i < len(text):
        char = text[i]
        if quote:
            quote = "" if char == quote else quote
        elif char in _QUOTES:
            quote, opened = char, i
        elif char in "([":
            depth, opened = depth + 1, i if depth == 0 else opened
        elif char in ")]":
            depth -= 1
            if depth < 0:
                raise src.error(i, f"unbalanced {char!r}")
        elif depth == 0:
            op = next((o for o in _OPS if text.startswith(o, i)), None)
            if op is not None:
                return i, op
            if char == "=":
                raise src.error(i, "'=' is not an operator; use '=='")
        i += 1
    if quote:
        raise src.error(opened, f"unclosed {quote}")
    if depth > 0:
        raise src.error(opened, "unclosed bracket or parenthesis")
    raise src.error(0, "no operator: expected one of == != < <= > >=")


def _strip(src: _Source, start: int, end: int) -> tuple[int, str]:
    raw = src.text[start:end]
    lead = len(raw) - len(raw.lstrip())
    return start + lead, raw.strip()


def _parse_placeholder(src: _Source, at: int, text: str,
                       function: Function | None = None) -> Placeholder:
    head = _PLACEHOLDER.match(text)
    if head is None:
        hint = " (quote text that starts with '[')" if text.startswith("[") else ""
        raise src.error(at, f"expected a placeholder such as [STATUS], got {text!r}{hint}")
    written = head.group(1).upper()
    if written in _NOT_SUPPORTED:
        raise src.error(at, f"[{written}] is not supported: {_NOT_SUPPORTED[written]}")
    name = _PLACEHOLDERS.get(written)
    if name is None:
        known = ", ".join(f"[{n}]" for n in _PLACEHOLDERS)
        raise src.error(at, f"unknown placeholder [{written}]; known: {known}")
    path = _parse_path(src, at + head.end(), text[head.end():], name)
    return Placeholder(name, path, function)


def _parse_path(src: _Source, at: int, rest: str, name: str) -> tuple[PathStep, ...]:
    if name == "HEADER":
        header = _HEADER_NAME.fullmatch(rest)
        if header is None:
            raise src.error(at, "[HEADER] needs a header name: [HEADER].Content-Type")
        return (header.group(1),)
    if name != "BODY":
        if rest:
            raise src.error(at, f"[{name}] takes no path, got {rest!r}")
        return ()
    steps: list[PathStep] = []
    i = 0
    while i < len(rest):
        step = _PATH_STEP.match(rest, i)
        if step is None:
            problem = ("[*] wildcards are not supported" if rest.startswith("[*]", i)
                       else f"expected .key or [index] in the [BODY] path, got {rest[i:]!r}")
            raise src.error(at + i, problem)
        steps.append(step.group(1) if step.group(1) is not None else int(step.group(2)))
        i = step.end()
    return tuple(steps)


def _parse_constant(src: _Source, at: int, text: str) -> Constant:
    if text[:1] in _QUOTES:
        if len(text) < 2 or text[-1] != text[0] or text[0] in text[1:-1]:
            raise src.error(at, f"a quoted value must be one quoted string, got {text}")
        return Constant(text[1:-1], None, quoted=True)
    if text[:1] in "=<>":
        raise src.error(at, f"unexpected operator in {text!r}")
    number = parse_number(text)
    if number is None:
        number = parse_duration_ms(text)
    return Constant(text, number)


def _split_options(src: _Source, at: int, inner: str) -> list[tuple[int, str]]:
    options, quote, start = [], "", 0
    for i, char in enumerate(inner + ","):
        if quote:
            quote = "" if char == quote else quote
        elif char in _QUOTES:
            quote = char
        elif char == ",":
            item_at, item = _strip(_Source(inner), start, i)
            if not item:
                raise src.error(at + item_at, "an empty value in any()")
            options.append((at + item_at, item))
            start = i + 1
    return options


def _parse_function(src: _Source, at: int, name: str, inner: str) -> Operand:
    inner_at = at + len(name) + 1
    lead = len(inner) - len(inner.lstrip())
    inner_at, inner = inner_at + lead, inner.strip()
    if name == "age":
        raise src.error(at, "age() is not supported")
    if name in ("len", "has"):
        return _parse_placeholder(src, inner_at, inner, "len" if name == "len" else "has")
    if not inner:
        raise src.error(inner_at, f"{name}() needs a value")
    if name == "pat":
        return Pattern(inner)
    options = _split_options(src, inner_at, inner)
    return AnyOf(tuple(_parse_constant(src, i, item) for i, item in options))


def _parse_operand(src: _Source, start: int, end: int, side: str) -> tuple[int, Operand]:
    at, text = _strip(src, start, end)
    if not text:
        raise src.error(at, f"no {side} operand")
    call = _FUNCTION.fullmatch(text)
    if call is not None:
        return at, _parse_function(src, at, call.group(1), call.group(2))
    opened = _FUNCTION_START.match(text)
    if opened is not None:
        raise src.error(at, f"{opened.group(1)}( is not closed by a final ')'")
    if text.startswith("["):
        return at, _parse_placeholder(src, at, text)
    return at, _parse_constant(src, at, text)


def _check_matcher(src: _Source, op: Op, operands: list[tuple[int, Operand]]) -> None:
    matchers = [(at, o) for at, o in operands if isinstance(o, Pattern | AnyOf)]
    if matchers and op not in ("==", "!="):
        at, matcher = matchers[0]
        name = "pat" if isinstance(matcher, Pattern) else "any"
        raise src.error(at, f"{name}() works only with == and !=")


def _check_constant(src: _Source, op: Op, placeholder: Placeholder, at: int,
                    constant: Constant | AnyOf | Pattern) -> None:
    values = constant.options if isinstance(constant, AnyOf) else (
        (constant,) if isinstance(constant, Constant) else ())
    if placeholder.is_boolean:
        if op in _ORDERING:
            raise src.error(at, f"{placeholder} is true or false: compare it with == or !=")
        for value in values:
            if value.text not in ("true", "false"):
                raise src.error(at, f"{placeholder} is true or false, not {value}")
    if op in _ORDERING and isinstance(constant, Constant) and constant.number is None:
        raise src.error(at, f"{op!r} compares numbers; {constant} is not a number or duration")


def _check(src: _Source, op: Op, operands: list[tuple[int, Operand]]) -> None:
    placeholders = [o for _, o in operands if isinstance(o, Placeholder)]
    if not placeholders:
        raise src.error(operands[0][0], "one side must be a placeholder such as [STATUS]")
    _check_matcher(src, op, operands)
    (left_at, left), (right_at, right) = operands
    if isinstance(left, Placeholder) and not isinstance(right, Placeholder):
        _check_constant(src, op, left, right_at, right)
    elif isinstance(right, Placeholder) and not isinstance(left, Placeholder):
        _check_constant(src, op, right, left_at, left)


def parse_condition(text: str) -> Condition:
    """Parse one condition; `ConditionError` names the text and the column of the problem."""
    src = _Source(text)
    if not text.strip():
        raise src.error(0, "empty condition")
    index, op = _find_operator(src)
    operands = [_parse_operand(src, 0, index, "left"),
                _parse_operand(src, index + len(op), len(text), "right")]
    _check(src, op, operands)
    return Condition(text.strip(), operands[0][1], op, operands[1][1])


# -- judging a probe ------------------------------------------------------------------------


def _first(judged: Sequence[tuple[bool | None, str]], verdict: bool | None) -> str | None:
    found = [message for result, message in judged if result is verdict]
    if not found:
        return None
    more = len(found) - 1
    return found[0] + (f" (and {more} more)" if more else "")


def _summary(obs: HttpObservation, count: int) -> str:
    parts = []
    if obs.status is not None:
        parts.append(f"HTTP {obs.status}")
    if obs.response_time_ms is not None:
        parts.append(f"in {format_number(round(obs.response_time_ms, 3))} ms")
    held = f"{count} conditions hold" if count != 1 else "1 condition holds"
    return f"{' '.join(parts)}: {held}" if parts else held


def judge_http(conditions: Sequence[Condition], warn: Sequence[Condition],
               obs: HttpObservation) -> tuple[CheckStatus, str, float | None]:
    """One HTTP check's status, why, and the observed value (the response time).

    FAIL when a condition does not hold (the first one is named, with its value); else
    UNKNOWN when one cannot be judged; else WARN when a warn condition does not hold or cannot
    be judged (a degraded-level judgement that cannot be made is not green either, yet the
    check passed its conditions, so it is not unknown); else PASS. No conditions: UNKNOWN, as
    nothing was judged."""
    observed = obs.response_time_ms
    if not conditions:
        return CheckStatus.UNKNOWN, "no conditions to judge", observed
    judged = [c.evaluate(obs) for c in conditions]
    failed = _first(judged, False)
    if failed is not None:
        return CheckStatus.FAIL, failed, observed
    unknown = _first(judged, None)
    if unknown is not None:
        return CheckStatus.UNKNOWN, f"cannot judge {unknown}", observed
    warned = [c.evaluate(obs) for c in warn]
    degraded = _first(warned, False)
    if degraded is not None:
        return CheckStatus.WARN, degraded, observed
    unjudged = _first(warned, None)
    if unjudged is not None:
        return CheckStatus.WARN, f"cannot judge {unjudged}", observed
    return CheckStatus.PASS, _summary(obs, len(conditions) + len(warn)), observed
