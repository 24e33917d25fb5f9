"""Every SQL analysis in these tests runs twice, in Python (the reference) and in the native
module (native/, what `guardians lint` and the service use), and a test fails when the two
find anything different: every case here is also a case of the native port.

The comparison needs the native module (`make native`, which `make venv` and so `make test`
run); without it these tests fail and say so rather than test one analysis only.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence

import pytest

from services.migration.domain import change_analysis, native_sql
from services.migration.domain.change_analysis import AnalysisOptions, MigrationLike
from services.migration.domain.findings import Finding
from services.migration.domain.sql_analysis import SqlAnalysis, SqlFile


def differences(python: list[Finding], native: list[Finding]) -> Iterator[str]:
    """Each finding the two analyses disagree on, position by position."""
    for index in range(max(len(python), len(native))):
        left = python[index] if index < len(python) else None
        right = native[index] if index < len(native) else None
        if left != right:
            yield f"#{index}\n  python: {left}\n  native: {right}"


class TwinAnalysis:
    """`SqlAnalysisLike` that feeds both analyses and compares their findings when read."""

    def __init__(self, options: AnalysisOptions, history: Sequence[MigrationLike]) -> None:
        self.python = SqlAnalysis(options.sql, change_analysis._learn(history, options))
        self.native = native_sql.NativeAnalysis(
            options.sql, (SqlFile(m.name, m.up_sql) for m in history))

    @property
    def findings(self) -> list[Finding]:
        python, native = self.python.findings, self.native.findings
        found = list(differences(python, native))
        if found:
            raise AssertionError(f"the native analysis differs in {len(found)} findings:\n"
                                 + "\n".join(found[:5]))
        return list(python)

    def analyse(self, files: Iterable[SqlFile]) -> list[Finding]:
        for file in files:
            self.analyse_file(file)
        return self.findings

    def analyse_file(self, file: SqlFile) -> None:
        self.python.analyse_file(file)
        self.native.analyse_file(file)

    def new_change(self) -> None:
        self.python.new_change()
        self.native.new_change()

    def end_change(self) -> None:
        self.python.end_change()
        self.native.end_change()


@pytest.fixture(autouse=True)
def both_analyses(monkeypatch: pytest.MonkeyPatch) -> None:
    if not native_sql.available():
        pytest.fail("the native SQL analysis is not built: run `make native` (cargo, from "
                    "rustup); these tests compare it with the Python one")

    def twin(options: AnalysisOptions, history: Sequence[MigrationLike] = (),
             *, native: bool | None = None) -> TwinAnalysis:
        return TwinAnalysis(options, history)
    monkeypatch.setattr(change_analysis, "new_sql_analysis", twin)
