"""The risk policy: findings (and table sizes) in, one grade out, with the findings that set it.

Per finding: the rule override if any ("ignore" drops it), else the effect's level
(effect overrides first); a statement on an object the change created is LOW, and so is
anything found in a down script except a rollback defect. A lock or rewrite (and a backfill)
on a large table goes up one level, on a tiny one down one; tables the statistics do not
know keep their level. The grade is the highest level; its causes are the indexes (into the
findings as given) of every finding at that level.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Literal

from schemas.events.enums import RiskLevel
from services.migration.domain.findings import Effect, Finding

if TYPE_CHECKING:
    from services.migration.domain.table_stats import TableSize, TableStats

Ignore = Literal["ignore"]
_ORDER = (RiskLevel.LOW, RiskLevel.MEDIUM, RiskLevel.HIGH, RiskLevel.BLOCKED)

EFFECT_LEVELS: Mapping[Effect, RiskLevel] = {
    Effect.CANNOT_RUN: RiskLevel.BLOCKED,
    Effect.VALIDATION_FAILED: RiskLevel.BLOCKED,
    Effect.DATA_LOSS: RiskLevel.HIGH,
    Effect.BREAKING_RENAME: RiskLevel.HIGH,
    Effect.REWRITE: RiskLevel.HIGH,
    Effect.FAILS_ON_EXISTING_ROWS: RiskLevel.HIGH,
    Effect.BLOCKING_LOCK: RiskLevel.MEDIUM,
    Effect.BACKFILL: RiskLevel.MEDIUM,
    Effect.INCOMPATIBLE: RiskLevel.MEDIUM,
    Effect.ROLLBACK_DEFECT: RiskLevel.MEDIUM,  # HIGH when the change is destructive
    Effect.MISSING_TIMEOUT: RiskLevel.LOW,
    Effect.ADVISORY: RiskLevel.LOW,
}
SIZE_SENSITIVE = frozenset({Effect.REWRITE, Effect.BLOCKING_LOCK, Effect.BACKFILL})
_NEVER_SOFTENED = frozenset({Effect.CANNOT_RUN, Effect.VALIDATION_FAILED,
                             Effect.ROLLBACK_DEFECT})


@dataclass(frozen=True)
class SizeThresholds:
    large_rows: int = 1_000_000
    large_bytes: int = 1 << 30
    tiny_rows: int = 10_000
    tiny_bytes: int = 10 << 20

    def shift(self, size: TableSize) -> int:
        """+1 for a large table (either measure), -1 for a tiny one (both), else 0."""
        if size.rows >= self.large_rows or size.bytes >= self.large_bytes:
            return 1
        if size.rows < self.tiny_rows and size.bytes < self.tiny_bytes:
            return -1
        return 0


@dataclass(frozen=True)
class RiskPolicy:
    rules: Mapping[str, RiskLevel | Ignore] = field(default_factory=dict)
    """Per rule id: a fixed level, or "ignore" (e.g. {"prefer-bigint-over-int": "ignore"})."""
    effects: Mapping[Effect, RiskLevel] = field(default_factory=dict)
    """Per effect: the level instead of EFFECT_LEVELS' (size and the rules above still apply)."""
    sizes: SizeThresholds = field(default_factory=SizeThresholds)

    @classmethod
    def from_mapping(cls, rules: Mapping[str, str] | None = None,
                     effects: Mapping[str, str] | None = None) -> RiskPolicy:
        """From configuration text (`guardians.yaml`); raises ValueError naming a bad entry."""
        def level(key: str, value: str) -> RiskLevel:
            try:
                return RiskLevel(value)
            except ValueError:
                raise ValueError(f"{key}: {value!r} is not one of "
                                 f"{', '.join(r.value for r in RiskLevel)}") from None
        parsed_rules: dict[str, RiskLevel | Ignore] = {
            key: "ignore" if value == "ignore" else level(key, value)
            for key, value in (rules or {}).items()}
        parsed_effects = {}
        for key, value in (effects or {}).items():
            try:
                parsed_effects[Effect(key)] = level(key, value)
            except ValueError as error:
                if "is not one of" in str(error):
                    raise
                raise ValueError(f"{key!r} is not an effect") from None
        return cls(parsed_rules, parsed_effects)


@dataclass(frozen=True)
class Grade:
    risk: RiskLevel
    causes: tuple[int, ...]
    """Indexes into the graded findings of those at the grade's level."""
    levels: tuple[RiskLevel | None, ...] = ()
    """Each finding's own level (None: ignored by policy), in the findings' order."""


def _move(level: RiskLevel, steps: int) -> RiskLevel:
    position = _ORDER.index(level) + steps
    return _ORDER[max(0, min(position, _ORDER.index(RiskLevel.HIGH)))]


def finding_level(finding: Finding, *, policy: RiskPolicy, stats: TableStats | None,
                  destructive: bool) -> RiskLevel | None:
    override = policy.rules.get(finding.rule)
    if override == "ignore":
        return None
    if override is not None:
        return RiskLevel(override)
    effect = finding.effect
    level = policy.effects.get(effect, EFFECT_LEVELS[effect])
    if effect is Effect.ROLLBACK_DEFECT and destructive and effect not in policy.effects:
        level = RiskLevel.HIGH
    if effect not in _NEVER_SOFTENED and (finding.rollback or not finding.preexisting):
        return RiskLevel.LOW
    if stats is not None and effect in SIZE_SENSITIVE and finding.target and level in (
            RiskLevel.MEDIUM, RiskLevel.HIGH):
        size = stats.size_of(finding.target)
        if size is not None:
            level = _move(level, policy.sizes.shift(size))
    return level


def grade(findings: Sequence[Finding], *, stats: TableStats | None = None,
          policy: RiskPolicy | None = None) -> Grade:
    policy = policy or RiskPolicy()
    destructive = any(
        finding_level(f, policy=policy, stats=stats, destructive=False) in
        (RiskLevel.HIGH, RiskLevel.BLOCKED)
        for f in findings if f.effect is not Effect.ROLLBACK_DEFECT)
    levels = tuple(finding_level(f, policy=policy, stats=stats, destructive=destructive)
                   for f in findings)
    graded = [level for level in levels if level is not None]
    risk = max(graded, key=_ORDER.index) if graded else RiskLevel.LOW
    causes = tuple(i for i, level in enumerate(levels) if level is risk)
    return Grade(risk, causes, levels)
