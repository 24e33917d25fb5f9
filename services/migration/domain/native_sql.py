"""The native SQL analysis (native/, Rust): `SqlAnalysis`'s findings, several times faster.

`make native` builds it as the extension module `_native`; the migration guardian and
`guardians lint` then use it, with the same libpg_query the Python analysis calls (pglast's).
The Python rules stay the reference: tests/unit/migration runs its cases through both and
requires the same findings, and the golden corpus reports hold both to the same bytes.
`GUARDIANS_SQL_ENGINE=python` picks the Python analysis; without the module it is the one used.

This module is on `guardians lint`'s start-up path: it imports nothing heavier than `enum`.
"""

from __future__ import annotations

import os

from services.migration.domain import pg_library

TYPE_CHECKING = False  # `typing` is not imported on `guardians lint`'s start-up path

if TYPE_CHECKING:
    from collections.abc import Iterable
    from typing import Any

    from services.migration.domain.findings import Finding
    from services.migration.domain.sql_analysis import SqlFile, SqlOptions

_native: Any
try:
    from services.migration.domain import _native  # type: ignore[attr-defined,no-redef]
except ImportError:  # not built (`make native`)
    _native = None

NativeError: type[Exception] = getattr(_native, "NativeError", RuntimeError)
"""The native analysis failed (a bug in it: a Rust panic, caught at the module's edge). The
callers run the Python analysis instead, which finds the same."""

ENGINE_VARIABLE = "GUARDIANS_SQL_ENGINE"
_loaded = False


def available() -> bool:
    """Whether the native module is built and can open libpg_query."""
    global _loaded
    if _native is None or pg_library.PATH is None:
        return False
    if not _loaded:
        _native.load_parser(pg_library.PATH)
        _loaded = True
    return True


def enabled() -> bool:
    """The native analysis is used: built, and not turned off by GUARDIANS_SQL_ENGINE."""
    choice = os.environ.get(ENGINE_VARIABLE, "native")
    if choice not in ("native", "python"):
        raise ValueError(f"{ENGINE_VARIABLE}={choice!r}: expected native or python")
    return choice == "native" and available()


def finding(row: tuple[Any, ...]) -> Finding:
    """A `Finding` from the native module's tuple (its fields in order, `kind` left out)."""
    from schemas.events.enums import ChangeKind, LockMode, Severity
    from services.migration.domain.findings import Effect, Finding

    (rule, severity, message, effect, file, line, column, statement, target, fix, lock,
     preexisting, rollback) = row
    return Finding(rule, Severity(severity), message, Effect(effect), ChangeKind.DATABASE,
                   file, line, column, statement, target, fix,
                   None if lock is None else LockMode(lock), preexisting, rollback)


class NativeAnalysis:
    """`SqlAnalysis`'s interface over the native module. `history`: migrations already
    applied, read for the schema only (what `change_analysis._learn` does)."""

    def __init__(self, options: SqlOptions | None = None,
                 history: Iterable[SqlFile] = ()) -> None:
        if not available():
            raise RuntimeError("the native SQL analysis is not built: run `make native`")
        pg_version, per_file = (options.pg_version, options.transaction_per_file) \
            if options is not None else (18, True)
        self.native = _native.Analysis(pg_version, per_file)
        read = False
        for file in history:
            self.analyse_file(file)
            read = True
        if read:
            self.native.start_after_history()

    @property
    def findings(self) -> list[Finding]:
        return [finding(row) for row in self.native.findings()]

    def analyse(self, files: Iterable[SqlFile]) -> list[Finding]:
        for file in files:
            self.analyse_file(file)
        return self.findings

    def analyse_file(self, file: SqlFile) -> None:
        self.native.analyse_file(file.name, file.sql, file.rollback)

    def new_change(self) -> None:
        self.native.new_change()

    def end_change(self) -> None:
        self.native.end_change()


FORMATS = ("json", "text")
"""The report formats the native module writes (`cli.lint.render_json`, `render_text`)."""


def lint_paths(paths: list[str], *, pg_version: int, transaction_per_file: bool,
               one_change: bool, down: bool, excluded: frozenset[str], output: str,
               ) -> tuple[str, bytes, list[Finding]] | None:
    """`guardians lint --format json|text` in the native module, from finding the migrations
    under `paths` to the report's text: (risk, the report as `cli.lint.render_json` or
    `render_text` writes it, in UTF-8, the
    unknown-suppression findings, which make it a usage error and the report empty). None
    where `cli.lint` would stop with a usage error (a missing or unreadable path...): its own
    code then runs and says which."""
    if not available():
        raise RuntimeError("the native SQL analysis is not built: run `make native`")
    done = _native.lint_paths(paths, pg_version, transaction_per_file, one_change, down,
                              set(excluded), output)
    if done is None:
        return None
    risk, text, unknown = done
    return risk, text, [finding(row) for row in unknown]
