"""Canary analysis: each measurement judged as Argo Rollouts does (no data and NaN never
pass), baselines compared as Kayenta does, runs ended by limits counted exactly, and every
reason naming the values and the condition or limit."""

from __future__ import annotations

import itertools
import json
import math
from collections import Counter
from collections.abc import Sequence
from statistics import NormalDist
from typing import Any

import pytest

from schemas.events.deploy import AnalysisOutcome, MetricBreach
from services.deploy.domain.analysis import (
    Measurement,
    MetricTally,
    RunState,
    Sample,
    breach_of,
    check_query_template,
    measure,
    pending_metrics,
    promql_string_escape,
    record,
    render_query,
    score,
    start_run,
    template_problems,
)
from services.deploy.domain.stats import mann_whitney_greater
from services.runtime.config import AnalysisMetric, AnalysisTemplate, BaselineComparison

S = AnalysisOutcome.SUCCESSFUL
F = AnalysisOutcome.FAILED
I = AnalysisOutcome.INCONCLUSIVE  # noqa: E741 (reads as the outcome's initial)
E = AnalysisOutcome.ERROR
NAN = float("nan")
INF = float("inf")


def metric(
    success: str | None = None,
    failure: str | None = None,
    baseline: BaselineComparison | None = None,
    name: str = "error-rate",
    critical: bool = False,
) -> AnalysisMetric:
    return AnalysisMetric(name=name, query="q", success=success, failure=failure,
                          baseline=baseline, critical=critical)


def values(*numbers: float) -> Sample:
    return Sample(tuple(numbers))


# -- conditions -----------------------------------------------------------------------------


def test_a_value_meeting_the_success_condition_is_successful() -> None:
    m = measure(metric(success="result < 0.05"), values(0.01))
    assert m.outcome is S
    assert m.values == (0.01,)
    assert "0.01" in m.reason and "result < 0.05" in m.reason
    assert m.condition == "result < 0.05"
    assert m.error is None


def test_a_value_missing_the_success_condition_fails_saying_value_and_condition() -> None:
    m = measure(metric(success="result < 0.05"), values(0.2))
    assert m.outcome is F
    assert m.reason == "0.2 >= 0.05 breaks result < 0.05"


def test_the_boundary_value_is_judged_by_the_operator() -> None:
    assert measure(metric(success="result < 0.05"), values(0.05)).outcome is F
    assert measure(metric(success="result <= 0.05"), values(0.05)).outcome is S


def test_with_only_a_failure_condition_not_meeting_it_is_successful() -> None:
    m = measure(metric(failure="result > 0.1"), values(0.05))
    assert m.outcome is S
    assert "0.05" in m.reason and "result > 0.1" in m.reason
    assert m.condition == "fail if result > 0.1"


def test_with_only_a_failure_condition_meeting_it_fails() -> None:
    m = measure(metric(failure="result > 0.1"), values(0.3))
    assert m.outcome is F
    assert m.reason == "0.3 > 0.1 meets failure condition result > 0.1"


@pytest.mark.parametrize(
    ("value", "outcome"),
    [(0.01, S), (0.07, I), (0.2, F), (0.1, I), (0.05, I)],
)
def test_with_both_conditions_the_failure_wins_and_neither_is_inconclusive(
    value: float, outcome: AnalysisOutcome
) -> None:
    m = measure(metric(success="result < 0.05", failure="result > 0.1"), values(value))
    assert m.outcome is outcome
    assert str(value) in m.reason
    assert m.condition == "result < 0.05; fail if result > 0.1"


def test_a_value_meeting_both_conditions_fails() -> None:
    m = measure(metric(success="result < 1", failure="result > 0.5"), values(0.7))
    assert m.outcome is F


def test_several_series_pass_only_when_every_value_passes() -> None:
    assert measure(metric(success="result < 0.05"), values(0.01, 0.02, 0.03)).outcome is S
    m = measure(metric(success="result < 0.05"), values(0.01, 0.2, 0.03))
    assert m.outcome is F
    assert "0.2 >= 0.05" in m.reason and "values 0.01, 0.2, 0.03" in m.reason
    m = measure(metric(failure="result > 0.1"), values(0.01, 0.2))
    assert m.outcome is F and "0.2 > 0.1" in m.reason


_EVERY_KIND = [
    metric(success="result < 0.05"),
    metric(failure="result > 0.1"),
    metric(success="result < 0.05", failure="result > 0.1"),
    metric(success="not (result >= 0.05)"),
    metric(baseline=BaselineComparison()),
    metric(baseline=BaselineComparison(method="mann_whitney")),
]


@pytest.mark.parametrize("judged", _EVERY_KIND, ids=lambda m: m.success or m.failure or "base")
def test_no_data_is_inconclusive_never_successful(judged: AnalysisMetric) -> None:
    m = measure(judged, Sample(), Sample((0.01, 0.02, 0.03)))
    assert m.outcome is I
    assert "no data" in m.reason
    assert m.values == ()


@pytest.mark.parametrize("odd", [NAN, INF, -INF])
@pytest.mark.parametrize("judged", _EVERY_KIND[:5], ids=lambda m: m.success or m.failure or "b")
def test_nan_and_infinities_are_inconclusive_never_successful(
    judged: AnalysisMetric, odd: float
) -> None:
    m = measure(judged, values(odd), values(0.01))
    assert m.outcome is I
    assert m.values == (None,)
    assert ("NaN" if math.isnan(odd) else "Inf") in m.reason


def test_a_nan_beside_good_values_is_inconclusive() -> None:
    m = measure(metric(success="result < 0.05"), values(0.01, NAN))
    assert m.outcome is I
    assert m.values == (0.01, None)
    assert "NaN in result (values 0.01, NaN)" in m.reason


def test_a_finite_failure_beside_a_nan_still_fails() -> None:
    m = measure(metric(success="result < 0.05"), values(0.2, NAN))
    assert m.outcome is F
    assert "0.2 >= 0.05" in m.reason


def test_a_failed_query_is_an_error_with_its_message() -> None:
    m = measure(metric(success="result < 0.05"), Sample(error="HTTP 400 bad_data: parse error"))
    assert m.outcome is E
    assert m.error == "HTTP 400 bad_data: parse error"
    assert "query failed: HTTP 400 bad_data" in m.reason
    assert m.values == ()


def test_a_condition_that_does_not_parse_is_an_error_naming_it() -> None:
    m = measure(metric(success="result[0] < 0.05"), values(0.01))
    assert m.outcome is E
    assert m.error is not None and "column 7" in m.error
    assert "bad condition" in m.reason


def test_the_critical_flag_travels_with_the_measurement() -> None:
    assert measure(metric(success="result < 1", critical=True), values(0)).critical
    assert not measure(metric(success="result < 1"), values(0)).critical


# -- baseline: ratio ------------------------------------------------------------------------


RATIO = BaselineComparison(max_increase=0.2, min_delta=0.0)


def test_ratio_passes_within_the_allowed_increase_and_at_the_limit() -> None:
    assert measure(metric(baseline=RATIO), values(0.11), values(0.1)).outcome is S
    # exactly at the limit (numbers exact in binary): 1.25 * 1.2 == 1.5
    m = measure(metric(baseline=RATIO), values(1.5), values(1.25))
    assert m.outcome is S
    assert m.baseline_values == (1.25,)


def test_ratio_fails_above_the_limit_saying_both_values_and_the_rule() -> None:
    m = measure(metric(baseline=RATIO), values(1.6), values(1.25))
    assert m.outcome is F
    assert m.reason == "canary 1.6 > 1.5 breaks canary <= baseline + 20% (baseline 1.25)"
    assert m.condition == "canary <= baseline + 20%"


def test_min_delta_keeps_tiny_differences_from_failing() -> None:
    spec = BaselineComparison(max_increase=0.2, min_delta=0.01)
    assert measure(metric(baseline=spec), values(0.005), values(0.0)).outcome is S
    assert measure(metric(baseline=spec), values(0.02), values(0.0)).outcome is F
    assert measure(metric(baseline=RATIO), values(0.005), values(0.0)).outcome is F


def test_ratio_when_lower_is_worse_fails_below_the_limit() -> None:
    spec = BaselineComparison(max_increase=0.25, higher_is_worse=False)
    assert measure(metric(baseline=spec), values(0.75), values(1)).outcome is S
    m = measure(metric(baseline=spec), values(0.7), values(1))
    assert m.outcome is F
    assert "canary 0.7 < 0.75" in m.reason and "canary >= baseline - 25%" in m.reason


def test_ratio_compares_each_sides_worst_series() -> None:
    m = measure(metric(baseline=RATIO), values(0.1, 1.6), values(1.25, 0.1))
    assert m.outcome is F
    assert "canary max 1.6" in m.reason and "baseline max 1.25" in m.reason
    spec = BaselineComparison(max_increase=0.2, higher_is_worse=False)
    m = measure(metric(baseline=spec), values(0.5, 10), values(1, 10))
    assert m.outcome is F and "canary min 0.5" in m.reason


@pytest.mark.parametrize(
    ("baseline", "outcome", "reason"),
    [
        (Sample(), I, "baseline has no data"),
        (values(NAN), I, "NaN in baseline"),
        (values(0.1, INF), I, "+Inf in baseline"),
        (None, I, "baseline not measured"),
        (Sample(error="timeout after 5s"), E, "baseline query failed: timeout after 5s"),
    ],
)
def test_an_unusable_baseline_never_passes(
    baseline: Sample | None, outcome: AnalysisOutcome, reason: str
) -> None:
    m = measure(metric(baseline=RATIO), values(0.1), baseline)
    assert m.outcome is outcome
    assert reason in m.reason


# -- baseline: Mann-Whitney -----------------------------------------------------------------

MW = BaselineComparison(method="mann_whitney", alpha=0.05)


def _series(*numbers: float) -> Sample:
    return Sample(tuple(float(n) for n in numbers))


def test_mann_whitney_fails_a_canary_that_is_significantly_worse() -> None:
    m = measure(metric(baseline=MW), Sample(), None,
                _series(*range(10, 20)), _series(*range(10)))
    assert m.outcome is F
    assert "canary median 14.5 vs baseline median 4.5" in m.reason
    assert "p < alpha 0.05" in m.reason
    assert m.values == tuple(float(n) for n in range(10, 20))
    assert m.baseline_values == tuple(float(n) for n in range(10))


def test_mann_whitney_passes_a_canary_that_is_not_worse() -> None:
    m = measure(metric(baseline=MW), Sample(), None,
                _series(*range(10)), _series(*range(10, 20)))
    assert m.outcome is S
    assert "p = " in m.reason


def test_mann_whitney_passes_a_significant_but_tiny_difference_within_min_delta() -> None:
    spec = BaselineComparison(method="mann_whitney", min_delta=0.5)
    canary = _series(*(1.0 + n / 100 for n in range(10, 20)))
    baseline = _series(*(1.0 + n / 100 for n in range(10)))
    assert measure(metric(baseline=MW), Sample(), None, canary, baseline).outcome is F
    m = measure(metric(baseline=spec), Sample(), None, canary, baseline)
    assert m.outcome is S


def test_mann_whitney_passes_identical_all_zero_error_rates() -> None:
    m = measure(metric(baseline=MW), Sample(), None, _series(0, 0, 0, 0), _series(0, 0, 0))
    assert m.outcome is S
    assert "every value is equal" in m.reason


def test_mann_whitney_when_lower_is_worse_fails_a_lower_canary() -> None:
    spec = BaselineComparison(method="mann_whitney", higher_is_worse=False)
    low, high = _series(*range(10)), _series(*range(10, 20))
    assert measure(metric(baseline=spec), Sample(), None, low, high).outcome is F
    assert measure(metric(baseline=spec), Sample(), None, high, low).outcome is S


@pytest.mark.parametrize(
    ("canary", "baseline", "reason"),
    [
        (_series(1, 2), _series(1, 2, 3), "canary has 2 value(s) over the interval, needs 3"),
        (_series(1, 2, 3), _series(1, 2), "baseline has 2 value(s) over the interval, needs 3"),
        (Sample(), _series(1, 2, 3), "no data over the interval"),
        (_series(1, 2, 3), Sample(), "baseline has no data over the interval"),
        (_series(1, NAN, NAN, 2), _series(1, 2, 3), "(2 NaN/Inf points dropped)"),
    ],
)
def test_mann_whitney_with_fewer_than_three_values_is_inconclusive(
    canary: Sample, baseline: Sample, reason: str
) -> None:
    m = measure(metric(baseline=MW), Sample(), None, canary, baseline)
    assert m.outcome is I
    assert reason in m.reason


def test_mann_whitney_drops_nan_points_and_judges_the_rest() -> None:
    canary = _series(*range(10, 20), NAN)
    m = measure(metric(baseline=MW), Sample(), None, canary, _series(*range(10)))
    assert m.outcome is F
    assert m.values[-1] is None


def test_mann_whitney_falls_back_to_the_instant_samples_without_series() -> None:
    m = measure(metric(baseline=MW), _series(*range(10, 20)), _series(*range(10)))
    assert m.outcome is F


def test_mann_whitney_series_errors_are_errors() -> None:
    m = measure(metric(baseline=MW), Sample(), None, Sample(error="boom"), _series(1, 2, 3))
    assert m.outcome is E and m.error == "boom"
    assert "canary range query failed: boom" in m.reason


# -- a condition and a baseline on one metric -----------------------------------------------


@pytest.mark.parametrize(
    ("canary", "baseline", "outcome"),
    [
        (values(1.0), values(1.0), S),                    # both pass
        (values(1.6), values(1.25), F),                   # condition passes, baseline fails
        (values(2.5), values(2.5), F),                    # condition fails, baseline passes
        (values(2.5), Sample(error="down"), F),           # FAILED beats ERROR
        (values(1.0), Sample(error="down"), E),           # ERROR beats SUCCESSFUL
        (values(1.0), Sample(), I),                       # INCONCLUSIVE beats SUCCESSFUL
        (values(1.6), Sample(), I),                       # pass + no baseline: not a pass
        (Sample(error="down"), values(1.0), E),
    ],
)
def test_a_condition_and_a_baseline_combine_worst_first(
    canary: Sample, baseline: Sample, outcome: AnalysisOutcome
) -> None:
    m = measure(metric(success="result < 2", baseline=RATIO), canary, baseline)
    assert m.outcome is outcome
    assert m.condition == "result < 2; canary <= baseline + 20%"


def test_a_combined_reason_names_the_deciding_part_and_says_an_error_once() -> None:
    m = measure(metric(success="result < 2", baseline=RATIO), values(1.6), values(1.25))
    assert m.reason.startswith("canary 1.6 > 1.5")
    m = measure(metric(success="result < 2", baseline=RATIO), Sample(error="down"), values(1))
    assert m.reason == "query failed: down"


def test_a_condition_with_a_mann_whitney_baseline_reports_the_instant_values() -> None:
    m = measure(metric(success="result < 100", baseline=MW), values(15), None,
                _series(*range(10, 20)), _series(*range(10)))
    assert m.outcome is F
    assert m.values == (15,)
    assert m.baseline_values == tuple(float(n) for n in range(10))


def test_breach_of_builds_the_event_model() -> None:
    m = measure(metric(baseline=RATIO), values(1.6, NAN), values(1.25))
    breach = breach_of(m, 'rate(x{job="web"}[30s])')
    assert breach == MetricBreach(metric="error-rate", query='rate(x{job="web"}[30s])',
                                  condition="canary <= baseline + 20%", values=(1.6, None),
                                  baseline_values=(1.25,))


# -- the run --------------------------------------------------------------------------------


def template(*metrics: AnalysisMetric, **limits: Any) -> AnalysisTemplate:
    return AnalysisTemplate(metrics=list(metrics) or [metric(success="result < 1")], **limits)


def judged(outcome: AnalysisOutcome, name: str = "error-rate", critical: bool = False,
           error: str | None = None) -> Measurement:
    return Measurement(metric=name, outcome=outcome, values=(0.5,), baseline_values=(),
                       condition="result < 1", reason=f"it was {outcome}", critical=critical,
                       error=error)


def run(t: AnalysisTemplate, *intervals: Sequence[Measurement]) -> tuple[
        RunState, list[Any]]:
    """Record each interval in turn; the verdicts (None while running) in order."""
    state = start_run(t)
    verdicts = []
    for measurements in intervals:
        state, verdict = record(t, state, measurements)
        verdicts.append(verdict)
    return state, verdicts


def test_a_run_succeeds_after_count_successful_measurements_and_not_before() -> None:
    t = template(count=3)
    state, verdicts = run(t, [judged(S)], [judged(S)], [judged(S)])
    assert verdicts[:2] == [None, None]
    final = verdicts[2]
    assert final.outcome is S and final.breach is None and final.score == 100.0
    assert "every metric measured 3 time(s)" in final.reason
    assert "error-rate 3/3 successful" in final.reason
    assert state.tally("error-rate") == MetricTally(measured=3, successful=3)


@pytest.mark.parametrize("limit", [0, 1, 3])
def test_failures_up_to_the_failure_limit_are_tolerated_one_more_fails(limit: int) -> None:
    t = template(count=10, failure_limit=limit)
    _, verdicts = run(t, *([judged(F)] for _ in range(limit + 1)))
    assert verdicts[:limit] == [None] * limit
    final = verdicts[limit]
    assert final.outcome is F
    assert (f"metric error-rate failed {limit + 1} time(s), more than failure_limit {limit}"
            in final.reason)
    assert "it was failed" in final.reason
    assert final.breach is not None and final.breach.outcome is F


def test_failures_within_the_limit_still_let_the_run_succeed_with_a_lower_score() -> None:
    t = template(count=4, failure_limit=1)
    _, verdicts = run(t, [judged(S)], [judged(F)], [judged(S)], [judged(S)])
    final = verdicts[-1]
    assert final.outcome is S
    assert final.score == 75.0
    assert "error-rate 3/4 successful (1 failed)" in final.reason


def test_a_critical_metric_fails_the_run_at_once_whatever_the_limit() -> None:
    t = template(metric(success="result < 1", critical=True), count=5, failure_limit=3)
    _, verdicts = run(t, [judged(S)], [judged(F)])
    final = verdicts[1]
    assert final.outcome is F
    assert final.reason == "critical metric error-rate failed: it was failed"
    assert final.breach is not None
    assert final.score == 50.0


def test_a_measurement_marked_critical_fails_the_run_at_once() -> None:
    t = template(count=5, failure_limit=3)
    _, verdicts = run(t, [judged(F, critical=True)])
    assert verdicts[0].outcome is F and "critical" in verdicts[0].reason


@pytest.mark.parametrize("limit", [0, 2, 4])
def test_query_errors_in_a_row_up_to_the_limit_are_tolerated_one_more_fails(
    limit: int
) -> None:
    t = template(count=3, consecutive_error_limit=limit)
    errors = [[judged(E, error=f"timeout {n}")] for n in range(limit + 1)]
    _, verdicts = run(t, *errors)
    assert verdicts[:limit] == [None] * limit
    final = verdicts[limit]
    assert final.outcome is F
    assert (f"metric error-rate: the query kept failing, {limit + 1} errors in a row, more "
            f"than consecutive_error_limit {limit}; last error: timeout {limit}"
            == final.reason)
    assert final.score == 0.0


def test_a_measurement_between_errors_resets_the_streak() -> None:
    t = template(count=10, consecutive_error_limit=1, inconclusive_limit=1)
    state, verdicts = run(t, [judged(E)], [judged(S)], [judged(E)], [judged(I)], [judged(E)])
    assert verdicts == [None] * 5
    assert state.tally("error-rate") == MetricTally(
        measured=2, successful=1, inconclusive=1, errors=3, consecutive_errors=1)


def test_errors_do_not_count_towards_count_as_in_argo() -> None:
    t = template(count=2, consecutive_error_limit=5)
    _, verdicts = run(t, [judged(E)], [judged(S)], [judged(E)], [judged(S)])
    assert verdicts[:3] == [None, None, None]
    assert verdicts[3].outcome is S
    assert verdicts[3].score == 50.0  # errors are measurements that did not succeed
    assert "(2 errors)" in verdicts[3].reason


@pytest.mark.parametrize("limit", [0, 1, 2])
def test_inconclusives_up_to_the_limit_are_tolerated_one_more_ends_inconclusive(
    limit: int
) -> None:
    t = template(count=10, inconclusive_limit=limit)
    _, verdicts = run(t, *([judged(I)] for _ in range(limit + 1)))
    assert verdicts[:limit] == [None] * limit
    final = verdicts[limit]
    assert final.outcome is I
    assert (f"metric error-rate was inconclusive {limit + 1} time(s), more than "
            f"inconclusive_limit {limit}: it was inconclusive") == final.reason
    assert final.breach is not None


def test_a_failure_outranks_an_inconclusive_end_in_the_same_interval() -> None:
    t = template(metric(success="result < 1", name="a"), metric(success="result < 1", name="b"),
                 count=5)
    _, verdicts = run(t, [judged(I, "a"), judged(F, "b")])
    assert verdicts[0].outcome is F and "metric b" in verdicts[0].reason


def test_a_complete_metric_is_not_measured_again_while_others_catch_up() -> None:
    t = template(metric(success="result < 1", name="a"), metric(success="result < 1", name="b"),
                 count=2, consecutive_error_limit=5)
    state, verdicts = run(t, [judged(S, "a"), judged(E, "b")], [judged(S, "a"), judged(S, "b")])
    assert verdicts == [None, None]
    assert [m.name for m in pending_metrics(t, state)] == ["b"]
    state, verdict = record(t, state, [judged(F, "a"), judged(S, "b")])
    assert state.tally("a") == MetricTally(measured=2, successful=2)
    assert verdict is not None and verdict.outcome is S


def test_record_refuses_measurements_the_template_does_not_have() -> None:
    t = template(count=2)
    with pytest.raises(ValueError, match="not a metric of the template"):
        record(t, start_run(t), [judged(S, "latency")])
    with pytest.raises(ValueError, match="two measurements"):
        record(t, start_run(t), [judged(S), judged(S)])


def test_score_counts_errors_as_unsuccessful_and_is_zero_before_anything() -> None:
    assert score(RunState()) == 0.0
    state = RunState((("a", MetricTally(measured=3, successful=2, failed=1, errors=1)),
                      ("b", MetricTally(measured=4, successful=4))))
    assert score(state) == pytest.approx(100 * 6 / 8)


def test_the_run_state_round_trips_through_json() -> None:
    t = template(metric(success="result < 1", name="a"), metric(success="result < 1", name="b"),
                 count=5, failure_limit=2, inconclusive_limit=2)
    state, _ = run(t, [judged(S, "a"), judged(E, "b")], [judged(F, "a"), judged(I, "b")])
    data = state.to_json()
    assert json.loads(json.dumps(data)) == data
    assert RunState.from_json(json.loads(json.dumps(data))) == state
    assert data == {"tallies": {
        "a": {"measured": 2, "successful": 1, "failed": 1, "inconclusive": 0, "errors": 0,
              "consecutive_errors": 0},
        "b": {"measured": 1, "successful": 0, "failed": 0, "inconclusive": 1, "errors": 1,
              "consecutive_errors": 0},
    }}
    # a restored run carries on counting exactly: a failed once, failure_limit 2
    state = RunState.from_json(data)
    state, verdict = record(t, state, [judged(F, "a"), judged(S, "b")])
    assert verdict is None
    _, verdict = record(t, state, [judged(F, "a"), judged(S, "b")])
    assert verdict is not None and verdict.outcome is F
    assert "metric a failed 3 time(s), more than failure_limit 2" in verdict.reason


@pytest.mark.parametrize(
    "data",
    [
        {},
        {"tallies": []},
        {"tallies": {"a": {"measured": 1}}},
        {"tallies": {"a": {"measured": -1, "successful": 0, "failed": 0, "inconclusive": 0,
                           "errors": 0, "consecutive_errors": 0}}},
        {"tallies": {"a": {"measured": 1.5, "successful": 0, "failed": 0, "inconclusive": 0,
                           "errors": 0, "consecutive_errors": 0}}},
        {"tallies": {"a": {"measured": True, "successful": 0, "failed": 0, "inconclusive": 0,
                           "errors": 0, "consecutive_errors": 0}}},
    ],
)
def test_a_bad_run_state_is_refused(data: dict[str, Any]) -> None:
    with pytest.raises(ValueError, match="run state"):
        RunState.from_json(data)


def test_end_to_end_nan_and_no_data_never_promote_a_canary() -> None:
    """The complaint this module exists for: a query that returns nothing, forever."""
    judge = metric(failure="result > 0.05")
    t = template(judge, count=3, inconclusive_limit=1)
    state = start_run(t)
    verdict = None
    for sample in (Sample(), values(NAN), values(0.01)):
        state, verdict = record(t, state, [measure(judge, sample)])
        if verdict:
            break
    assert verdict is not None and verdict.outcome is I
    assert "inconclusive 2 time(s)" in verdict.reason and "NaN in result" in verdict.reason


# -- queries --------------------------------------------------------------------------------

QUERY = ('sum(rate(http_requests_total{job="{service}",version="{version}",code=~"5.."}'
         '[{window}])) / sum(rate(http_requests_total{job="{service}"}[{window}]))')


def test_render_query_substitutes_placeholders_and_keeps_promql_braces() -> None:
    assert render_query(QUERY, {"service": "web", "version": "1.2.3", "window": "30s"}) == (
        'sum(rate(http_requests_total{job="web",version="1.2.3",code=~"5.."}[30s])) '
        '/ sum(rate(http_requests_total{job="web"}[30s]))'
    )


@pytest.mark.parametrize(
    ("value", "inside"),
    [
        ('a"} or vector(1) #', 'a\\"} or vector(1) #'),
        ("a\\", "a\\\\"),
        ('\\"} or vector(1) #', '\\\\\\"} or vector(1) #'),
        ("a\nb\rc\td", "a\\nb\\rc\\td"),
        ("a\x00b\x1b", "a\\x00b\\x1b"),
        ("{version}", "{version}"),
        ("ünï", "ünï"),
    ],
)
def test_hostile_values_stay_inside_their_string(value: str, inside: str) -> None:
    rendered = render_query('up{job="{service}"}', {"service": value})
    assert rendered == 'up{job="' + inside + '"}'
    assert promql_string_escape(value) == inside
    # the only unescaped quotes are the template's own two
    unescaped = [i for i, c in enumerate(rendered) if c == '"' and not _escaped(rendered, i)]
    assert len(unescaped) == 2


def _escaped(text: str, at: int) -> bool:
    backslashes = 0
    while at - backslashes - 1 >= 0 and text[at - backslashes - 1] == "\\":
        backslashes += 1
    return backslashes % 2 == 1


@pytest.mark.parametrize(
    ("query", "values", "problem"),
    [
        ('up{job="{nope}"}', {"nope": "x"}, "unknown placeholder {nope}"),
        ('up{job="{service}"}', {}, "no value for {service}"),
        ("up{job={service}}", {"service": "x"}, "outside a string"),
        ("up{job='{service}'}", {"service": "x"}, "in a single-quoted string"),
        ("up{job=`{service}`}", {"service": "x"}, "in a backtick string"),
        ("up[{window}]", {"window": "5m] or vector(1) #"}, "not a PromQL duration"),
        ("up[{window}]", {"window": ""}, "not a PromQL duration"),
        ("up{a=\"{service}\"} + on({env}) up", {"service": "a", "env": "b"}, "outside a string"),
        ('up{job="{service}"}', {"service": "\ud800"}, "lone surrogate"),
    ],
)
def test_render_query_refuses_what_it_cannot_render_safely(
    query: str, values: dict[str, str], problem: str
) -> None:
    with pytest.raises(ValueError) as raised:
        render_query(query, values)
    assert problem in str(raised.value)


@pytest.mark.parametrize(
    ("query", "rendered"),
    [
        ("up[{window}]", "up[1m30s]"),
        ('label_replace(up, "x", "$1", "job", "a{2}")', 'label_replace(up, "x", "$1", "job", '
                                                         '"a{2}")'),
        ('up{job="\\"{service}"}', 'up{job="\\"web"}'),
        ('up{job="{service}"} # by {service}\n', 'up{job="web"} # by web\n'),
        ('up{job="{service}"} # "{version}\n', 'up{job="web"} # "1\\n\n'),
        ('up{job="{service}", x="}{"}', 'up{job="web", x="}{"}'),
    ],
)
def test_render_query_leaves_promql_alone(query: str, rendered: str) -> None:
    assert render_query(query, {"service": "web", "window": "1m30s", "version": "1\n"}) == \
        rendered


def test_template_problems_lists_bad_conditions_and_unsafe_queries() -> None:
    good = AnalysisMetric(name="ok", query='up{job="{service}"}', success="result < 1")
    bad_condition = AnalysisMetric(name="c", query="up", success="result[0] < 1")
    unsafe = AnalysisMetric(name="q", query="up{job={service}}", failure="result > 1")
    t = AnalysisTemplate(metrics=[good, bad_condition, unsafe])
    problems = template_problems(t)
    assert len(problems) == 2
    assert problems[0].startswith("metric c: condition 'result[0] < 1', column 7")
    assert problems[1].startswith("metric q: query")
    assert template_problems(AnalysisTemplate(metrics=[good])) == ()
    check_query_template(good.query)


# -- the Mann-Whitney U test ----------------------------------------------------------------


def _u_by_pairs(canary: Sequence[float], baseline: Sequence[float]) -> float:
    """U from its definition: pairs where the canary is greater, ties counting one half."""
    return sum(1.0 if c > b else 0.5 if c == b else 0.0 for c in canary for b in baseline)


def _permutation_p(canary: Sequence[float], baseline: Sequence[float]) -> float:
    """The exact permutation p-value by brute force: of every way to pick which pooled
    values are the canary's, the share with a U at least the observed one. A pooled value's
    midrank does not depend on the pick, so U = (sum of the picked midranks) - n1(n1+1)/2."""
    pooled = [*canary, *baseline]
    midrank = [sum(1.0 for o in pooled if o < v) + (sum(1.0 for o in pooled if o == v) + 1) / 2
               for v in pooled]
    n1 = len(canary)
    offset = n1 * (n1 + 1) / 2
    observed = _u_by_pairs(canary, baseline)
    assert sum(midrank[:n1]) - offset == pytest.approx(observed)
    hits = total = 0
    for chosen in itertools.combinations(midrank, n1):
        total += 1
        hits += sum(chosen) - offset >= observed - 1e-9
    return hits / total


def _normal_p(canary: Sequence[float], baseline: Sequence[float]) -> float:
    """The textbook normal approximation, tie- and continuity-corrected, written out."""
    n1, n2 = len(canary), len(baseline)
    n = n1 + n2
    ties = Counter([*canary, *baseline]).values()
    sigma = math.sqrt(n1 * n2 / 12 * ((n + 1) - sum(t**3 - t for t in ties) / (n * (n - 1))))
    z = (_u_by_pairs(canary, baseline) - n1 * n2 / 2 - 0.5) / sigma
    return 1 - NormalDist().cdf(z)


MALES = [19.0, 22.0, 16.0, 29.0, 24.0]
FEMALES = [20.0, 11.0, 17.0, 12.0]


def test_mann_whitney_matches_the_published_example() -> None:
    # scipy.stats.mannwhitneyu's documented example: U1 = 17, two-sided p 0.1111 (exact)
    # and 0.11134688653314041 (asymptotic); one-sided "greater" is half of each.
    exact = mann_whitney_greater(MALES, FEMALES)
    assert exact.u == 17 and exact.method == "exact"
    assert exact.p_value == pytest.approx(7 / 126)
    normal = mann_whitney_greater(MALES, FEMALES, method="normal")
    assert normal.method == "normal"
    assert normal.p_value == pytest.approx(0.11134688653314041 / 2, rel=1e-12)


@pytest.mark.parametrize(
    ("canary", "baseline"),
    [
        (MALES, FEMALES),
        ([1.0, 2.0, 3.0], [4.0, 5.0, 6.0]),
        ([4.0, 5.0, 6.0], [1.0, 2.0, 3.0]),
        ([0.1, 0.5, 0.9, 1.3], [0.2, 0.4, 0.6]),
        ([3.5], [1.0, 2.0, 5.0, 7.0, 9.0, 11.0, 13.0, 15.0]),
        ([0, 1, 1, 2, 3, 3, 4, 5, 5, 6], [0, 0, 1, 1, 2, 2, 3, 3, 4, 4]),
        ([0, 0, 0, 0, 0, 0, 0, 1, 2, 3], [0, 0, 0, 0, 0, 0, 0, 0, 0, 1]),
        ([0, 0, 0, 0, 0, 0, 0, 0, 0, 1], [0, 0, 0, 0, 0, 0, 0, 1, 2, 3]),
        ([2, 3, 5, 7, 11, 13, 17, 19, 23, 29], [1, 4, 6, 8, 9, 10, 12, 14, 15, 16]),
        ([5, 5, 5], [1, 5, 9, 9]),
    ],
)
def test_the_exact_p_value_equals_brute_force_permutation_ties_or_not(
    canary: list[float], baseline: list[float]
) -> None:
    result = mann_whitney_greater(canary, baseline)
    assert result.method == "exact"
    assert result.u == _u_by_pairs(canary, baseline)
    assert result.p_value == pytest.approx(_permutation_p(canary, baseline), abs=1e-12)


@pytest.mark.parametrize(
    ("canary", "baseline"),
    [
        ([0.0, 0.0, 1.0, 2.0, 2.0, 3.0], [0.0, 1.0, 1.0, 1.0]),
        ([float(n % 7) for n in range(30)], [float(n % 5) for n in range(25)]),
        ([float(n) for n in range(9, 30)], [float(n) for n in range(20)]),
    ],
)
def test_the_normal_approximation_matches_the_textbook_formula(
    canary: list[float], baseline: list[float]
) -> None:
    result = mann_whitney_greater(canary, baseline, method="normal")
    assert result.method == "normal"
    assert result.u == _u_by_pairs(canary, baseline)
    assert result.p_value == pytest.approx(_normal_p(canary, baseline), rel=1e-9)


def test_auto_is_exact_up_to_30_values_and_normal_beyond() -> None:
    assert mann_whitney_greater([float(n) for n in range(15)],
                                [float(n) for n in range(15)]).method == "exact"
    assert mann_whitney_greater([float(n) for n in range(16)],
                                [float(n) for n in range(15)]).method == "normal"


def test_heavy_ties_at_small_samples_are_why_auto_prefers_exact() -> None:
    """Mostly-zero error rates: the normal approximation would call this more significant
    than it is (0.128 against the exact 0.167)."""
    canary = [0.0] * 7 + [1.0, 2.0, 3.0]
    baseline = [0.0] * 9 + [1.0]
    exact = mann_whitney_greater(canary, baseline)
    normal = mann_whitney_greater(canary, baseline, method="normal")
    assert exact.p_value == pytest.approx(_permutation_p(canary, baseline), abs=1e-12)
    assert exact.p_value == pytest.approx(0.1672, abs=1e-4)
    assert normal.p_value == pytest.approx(0.1279, abs=1e-4)


def test_the_normal_approximation_is_close_to_exact_at_30_values() -> None:
    canary = [float(n % 7) for n in range(15)]
    baseline = [float(n % 5) for n in range(15)]
    exact = mann_whitney_greater(canary, baseline, method="exact")
    normal = mann_whitney_greater(canary, baseline, method="normal")
    assert normal.p_value == pytest.approx(exact.p_value, abs=0.02)


def test_a_clearly_greater_canary_is_significant_and_a_lower_one_is_not() -> None:
    high, low = [float(n) for n in range(10, 20)], [float(n) for n in range(10)]
    assert mann_whitney_greater(high, low).p_value < 0.001
    assert mann_whitney_greater(low, high).p_value > 0.999


@pytest.mark.parametrize(
    ("canary", "baseline", "reason"),
    [
        ([], [1.0, 2.0], "the canary has no values"),
        ([1.0, 2.0], [], "the baseline has no values"),
        ([0.0, 0.0, 0.0], [0.0, 0.0], "every value is equal"),
        ([1.0, NAN], [1.0, 2.0], "NaN"),
    ],
)
def test_degenerate_input_gives_p_one_with_a_reason(
    canary: list[float], baseline: list[float], reason: str
) -> None:
    result = mann_whitney_greater(canary, baseline)
    assert result.p_value == 1.0
    assert result.method == "none"
    assert result.reason is not None and reason in result.reason
