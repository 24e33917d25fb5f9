"""Configuration diffs: a removed key breaks whoever reads it; a critical key changing is a
deliberate act to review; an added key is worth a line in the report."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from fnmatch import fnmatchcase
from typing import Protocol

from schemas.events.enums import ChangeKind, Severity
from services.migration.domain.findings import Effect, Finding


class ConfigDiffLike(Protocol):
    @property
    def file(self) -> str: ...
    @property
    def path(self) -> str: ...
    @property
    def before(self) -> str | None: ...
    @property
    def after(self) -> str | None: ...


def is_critical(diff: ConfigDiffLike, patterns: Sequence[str]) -> bool:
    """Patterns match the dotted key (`database.*`) or `file:key` (`app.yaml:auth.*`)."""
    names = (diff.path, f"{diff.file}:{diff.path}")
    return any(fnmatchcase(name, pattern) for pattern in patterns for name in names)


def analyse_config_diffs(diffs: Iterable[ConfigDiffLike],
                         critical: Sequence[str] = ()) -> list[Finding]:
    findings = []
    for diff in diffs:
        where = f"{diff.file}:{diff.path}"
        if diff.after is None:
            findings.append(Finding(
                rule="config-key-removed", severity=Severity.WARNING, effect=Effect.INCOMPATIBLE,
                message=f"{where} is removed (was {diff.before!r}): code that still reads it "
                        "gets nothing.", fix="Remove the readers first, in an earlier release; "
                        "or keep the key until then.",
                kind=ChangeKind.CONFIG, file=diff.file, target=diff.path))
        elif is_critical(diff, critical):
            findings.append(Finding(
                rule="config-critical-key-changed", severity=Severity.WARNING,
                effect=Effect.INCOMPATIBLE,
                message=f"critical key {where} changes from {diff.before!r} to {diff.after!r}.",
                fix="Have an owner of this setting confirm the new value, and how to restore "
                    "the old one.",
                kind=ChangeKind.CONFIG, file=diff.file, target=diff.path))
        elif diff.before is None:
            findings.append(Finding(
                rule="config-key-added", severity=Severity.INFO, effect=Effect.ADVISORY,
                message=f"{where} is added ({diff.after!r}).",
                kind=ChangeKind.CONFIG, file=diff.file, target=diff.path))
    return findings
