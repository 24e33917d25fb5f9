"""The risk policy: each effect's grade, the causes, table size, overrides."""

from __future__ import annotations

import pytest

from schemas.events.migration import RiskLevel, Severity
from services.migration.domain.findings import Effect, Finding
from services.migration.domain.risk_policy import RiskPolicy, grade
from services.migration.domain.table_stats import TableSize, TableStats


def finding(effect: Effect, rule: str = "r", target: str | None = "t", **kw: object) -> Finding:
    return Finding(rule=rule, severity=Severity.WARNING, message="m", effect=effect,
                   target=target, **kw)  # type: ignore[arg-type]


@pytest.mark.parametrize(("effect", "level"), [
    (Effect.CANNOT_RUN, RiskLevel.BLOCKED), (Effect.VALIDATION_FAILED, RiskLevel.BLOCKED),
    (Effect.DATA_LOSS, RiskLevel.HIGH), (Effect.BREAKING_RENAME, RiskLevel.HIGH),
    (Effect.REWRITE, RiskLevel.HIGH), (Effect.FAILS_ON_EXISTING_ROWS, RiskLevel.HIGH),
    (Effect.BLOCKING_LOCK, RiskLevel.MEDIUM), (Effect.BACKFILL, RiskLevel.MEDIUM),
    (Effect.INCOMPATIBLE, RiskLevel.MEDIUM), (Effect.ROLLBACK_DEFECT, RiskLevel.MEDIUM),
    (Effect.MISSING_TIMEOUT, RiskLevel.LOW), (Effect.ADVISORY, RiskLevel.LOW),
])
def test_each_effect_alone_grades_as_the_issue_says(effect: Effect, level: RiskLevel) -> None:
    assert grade([finding(effect)]).risk is level


def test_no_findings_is_low_with_no_causes() -> None:
    assert grade([]) .risk is RiskLevel.LOW and grade([]).causes == ()


def test_the_causes_are_the_findings_at_the_grade() -> None:
    found = [finding(Effect.ADVISORY), finding(Effect.DATA_LOSS), finding(Effect.BLOCKING_LOCK),
             finding(Effect.REWRITE)]
    result = grade(found)
    assert result.risk is RiskLevel.HIGH and result.causes == (1, 3)


def test_a_rollback_defect_of_a_destructive_change_is_high() -> None:
    result = grade([finding(Effect.DATA_LOSS), finding(Effect.ROLLBACK_DEFECT)])
    assert result.causes == (0, 1)
    assert grade([finding(Effect.BLOCKING_LOCK), finding(Effect.ROLLBACK_DEFECT)]).risk \
        is RiskLevel.MEDIUM


def test_a_missing_timeout_never_raises_the_grade() -> None:
    assert grade([finding(Effect.MISSING_TIMEOUT)] * 3).risk is RiskLevel.LOW


def test_statements_on_objects_created_in_the_change_are_low() -> None:
    assert grade([finding(Effect.REWRITE, preexisting=False)]).risk is RiskLevel.LOW
    assert grade([finding(Effect.CANNOT_RUN, preexisting=False)]).risk is RiskLevel.BLOCKED


def test_down_script_findings_grade_only_as_rollback_defects() -> None:
    assert grade([finding(Effect.DATA_LOSS, rollback=True)]).risk is RiskLevel.LOW
    assert grade([finding(Effect.ROLLBACK_DEFECT, rollback=True)]).risk is RiskLevel.MEDIUM


STATS = TableStats({"public.big": TableSize(5_000_000, 2 << 30),
                    "public.tiny": TableSize(100, 8192),
                    "public.middle": TableSize(50_000, 50 << 20)})


def test_a_lock_on_a_large_table_grades_up_and_on_a_tiny_one_down() -> None:
    assert grade([finding(Effect.BLOCKING_LOCK, target="big")], stats=STATS).risk \
        is RiskLevel.HIGH
    assert grade([finding(Effect.BLOCKING_LOCK, target="tiny")], stats=STATS).risk \
        is RiskLevel.LOW
    assert grade([finding(Effect.REWRITE, target="public.tiny")], stats=STATS).risk \
        is RiskLevel.MEDIUM
    assert grade([finding(Effect.BLOCKING_LOCK, target="middle")], stats=STATS).risk \
        is RiskLevel.MEDIUM


def test_size_never_moves_data_loss_and_never_reaches_blocked() -> None:
    assert grade([finding(Effect.DATA_LOSS, target="tiny")], stats=STATS).risk is RiskLevel.HIGH
    assert grade([finding(Effect.REWRITE, target="big")], stats=STATS).risk is RiskLevel.HIGH


def test_tables_unknown_to_the_stats_keep_their_grade() -> None:
    assert grade([finding(Effect.BLOCKING_LOCK, target="other")], stats=STATS).risk \
        is RiskLevel.MEDIUM


def test_rule_overrides_ignore_or_fix_a_level() -> None:
    policy = RiskPolicy.from_mapping({"ban-drop-column": "ignore", "prefer-repack": "medium"})
    found = [finding(Effect.DATA_LOSS, rule="ban-drop-column"),
             finding(Effect.REWRITE, rule="prefer-repack")]
    result = grade(found, policy=policy)
    assert result.risk is RiskLevel.MEDIUM and result.causes == (1,)
    assert result.levels[0] is None


def test_effect_overrides_change_an_effects_level() -> None:
    policy = RiskPolicy.from_mapping(effects={"missing_timeout": "medium"})
    assert grade([finding(Effect.MISSING_TIMEOUT)], policy=policy).risk is RiskLevel.MEDIUM


def test_a_bad_override_names_the_entry() -> None:
    with pytest.raises(ValueError, match="ban-drop-column"):
        RiskPolicy.from_mapping({"ban-drop-column": "severe"})
    with pytest.raises(ValueError, match="not an effect"):
        RiskPolicy.from_mapping(effects={"meltdown": "high"})
