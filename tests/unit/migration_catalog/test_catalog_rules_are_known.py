"""Every rule id the shadow verification reports is in the rule catalog (and docs/rules.md)."""

from __future__ import annotations

from services.migration.adapters import shadow
from services.migration.domain import catalog, trace_check
from services.migration.domain.rule_catalog import RULES, UNSUPPRESSIBLE, VERIFICATION_RULES


def test_every_verification_rule_id_is_catalogued_and_not_suppressible_by_comment() -> None:
    reported = {shadow.UP_FAILED, shadow.ROLLBACK_FAILED, shadow.REAPPLY_FAILED,
                shadow.MISSING_ROLLBACK, shadow.SKIPPED_STATEMENT, shadow.BASELINE_FAILED,
                trace_check.REWRITE_OBSERVED, *catalog._RULES.values()}
    assert reported == VERIFICATION_RULES
    assert reported <= set(RULES)
    assert reported <= UNSUPPRESSIBLE
    for rule_id in reported:
        assert RULES[rule_id].effect.value in {"validation_failed", "rollback_defect",
                                               "advisory", "rewrite"}
