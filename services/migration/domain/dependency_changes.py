"""Dependency diffs from lock files: removals, downgrades and major upgrades break callers.

Versions are read leniently: a leading `v`, range operators (`^1.2`, `~=1.4`, `>=2`), a
PEP 440 epoch (`1!2.0`), a Debian epoch and revision (`1:2.3-4`), pre-release and build
suffixes. A 0.x minor bump counts as major (semver: anything may break before 1.0, and
cargo/npm carets treat it so).
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from typing import Protocol

from schemas.events.enums import ChangeKind, Severity
from services.migration.domain.findings import Effect, Finding

_RELEASE = re.compile(r"(\d+)(?:\.(\d+))?(?:\.(\d+))?")


class DependencyDiffLike(Protocol):
    @property
    def name(self) -> str: ...
    @property
    def ecosystem(self) -> str: ...
    @property
    def before(self) -> str | None: ...
    @property
    def after(self) -> str | None: ...


def parse_version(text: str) -> tuple[int, int, int] | None:
    cleaned = text.strip().lstrip("=<>^~!vV ")
    cleaned = cleaned.split("!", 1)[-1]  # PEP 440 epoch
    if re.match(r"^\d+:", cleaned):  # Debian epoch
        cleaned = cleaned.split(":", 1)[1]
    match = _RELEASE.match(cleaned)
    if match is None:
        return None
    major, minor, patch = (int(part) if part else 0 for part in match.groups())
    return major, minor, patch


def _breaking_level(version: tuple[int, int, int]) -> tuple[int, ...]:
    return version[:2] if version[0] == 0 else version[:1]


def analyse_dependency_diffs(diffs: Iterable[DependencyDiffLike]) -> list[Finding]:
    findings = []
    for diff in diffs:
        label = f"{diff.name} ({diff.ecosystem})"
        if diff.before is None:
            continue  # a new dependency breaks no caller
        if diff.after is None:
            findings.append(Finding(
                rule="dependency-removed", severity=Severity.WARNING, effect=Effect.INCOMPATIBLE,
                message=f"{label} {diff.before} is removed.",
                fix="Make sure no code (or plugin) still imports it.", kind=ChangeKind.DEPENDENCY,
                target=diff.name))
            continue
        old, new = parse_version(diff.before), parse_version(diff.after)
        if old is None or new is None:
            findings.append(Finding(
                rule="dependency-version-unparsed", severity=Severity.INFO,
                effect=Effect.ADVISORY, message=f"{label} changes from {diff.before} to "
                f"{diff.after}; the versions cannot be compared.", kind=ChangeKind.DEPENDENCY,
                target=diff.name))
        elif new < old:
            findings.append(Finding(
                rule="dependency-downgraded", severity=Severity.WARNING,
                effect=Effect.INCOMPATIBLE, message=f"{label} is downgraded from {diff.before} "
                f"to {diff.after}.", fix="Check that nothing relies on the newer version's "
                "fixes or features; state why in the change.", kind=ChangeKind.DEPENDENCY,
                target=diff.name))
        elif _breaking_level(new) != _breaking_level(old):
            findings.append(Finding(
                rule="dependency-major-upgrade", severity=Severity.WARNING,
                effect=Effect.INCOMPATIBLE, message=f"{label} upgrades from {diff.before} to "
                f"{diff.after}: a major version may break its API.",
                fix="Read its changelog for breaking changes and run the integration tests.",
                kind=ChangeKind.DEPENDENCY,
                target=diff.name))
    return findings
