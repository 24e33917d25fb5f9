"""The process guardian's pure rules after the probes: checks to a grade, hysteresis,
thresholds, restart limits and flapping, one alert per degraded service, and the
post-deploy health gate. Every rule is shown holding and not holding, at its boundary."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import pytest
from pydantic import TypeAdapter

from schemas.base import DedupKey
from schemas.events.health import CheckKind, CheckResult, CheckStatus, HealthGrade
from services.process.domain import require_aware
from services.process.domain.alerts import AlertAction, AlertState, dedup_key, next_alert
from services.process.domain.gate import Gate, observe_gate
from services.process.domain.grading import (
    Hysteresis,
    causes,
    check_grade,
    grade,
    judge_value,
)
from services.process.domain.limits import flapping, restart_allowed
from services.runtime.config import Thresholds

T0 = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)
GREEN, YELLOW, RED, UNKNOWN = (HealthGrade.GREEN, HealthGrade.YELLOW, HealthGrade.RED,
                               HealthGrade.UNKNOWN)
PASS, WARN, FAIL, NOT_KNOWN = (CheckStatus.PASS, CheckStatus.WARN, CheckStatus.FAIL,
                               CheckStatus.UNKNOWN)


def check(name: str, status: CheckStatus, *, critical: bool = True) -> CheckResult:
    return CheckResult(name=name, kind=CheckKind.HTTP, status=status, critical=critical)


def at(seconds: float) -> datetime:
    return T0 + timedelta(seconds=seconds)


# -- grade ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("status", "critical", "expected"),
    [
        (PASS, True, GREEN), (PASS, False, GREEN),
        (WARN, True, YELLOW), (WARN, False, YELLOW),
        (FAIL, True, RED), (FAIL, False, YELLOW),
        (NOT_KNOWN, True, UNKNOWN), (NOT_KNOWN, False, YELLOW),
    ],
)
def test_each_check_alone_grades_by_the_table(status: CheckStatus, critical: bool,
                                              expected: HealthGrade) -> None:
    result = check("api", status, critical=critical)
    assert check_grade(result) is expected
    assert grade([result]) is expected


def test_no_results_is_unknown() -> None:
    assert grade([]) is UNKNOWN
    assert causes([], UNKNOWN) == ()


@pytest.mark.parametrize(
    ("statuses", "expected"),
    [
        # a critical failure is red, whatever else is unknown or degraded
        ([(FAIL, True), (NOT_KNOWN, True), (WARN, False)], RED),
        ([(FAIL, True), (PASS, True)], RED),
        # not red: a critical check not judged is unknown, never green
        ([(NOT_KNOWN, True), (PASS, True)], UNKNOWN),
        ([(NOT_KNOWN, True), (WARN, True), (FAIL, False)], UNKNOWN),
        # neither: any warning or non-critical problem is yellow
        ([(PASS, True), (WARN, True)], YELLOW),
        ([(PASS, True), (FAIL, False)], YELLOW),
        ([(PASS, True), (NOT_KNOWN, False)], YELLOW),
        # nothing wrong
        ([(PASS, True), (PASS, False)], GREEN),
    ],
)
def test_the_worst_check_grades_the_service(statuses: list[tuple[CheckStatus, bool]],
                                            expected: HealthGrade) -> None:
    results = [check(f"c{i}", s, critical=c) for i, (s, c) in enumerate(statuses)]
    assert grade(results) is expected


def test_causes_are_the_checks_that_give_the_grade() -> None:
    results = [check("api", FAIL), check("db", NOT_KNOWN), check("slow", WARN),
               check("cache", FAIL, critical=False), check("queue", NOT_KNOWN, critical=False),
               check("home", PASS)]
    assert [c.name for c in causes(results, RED)] == ["api"]
    assert [c.name for c in causes(results, UNKNOWN)] == ["db"]
    assert [c.name for c in causes(results, YELLOW)] == ["slow", "cache", "queue"]
    assert causes(results, GREEN) == ()


# -- hysteresis -----------------------------------------------------------------------------


def feed(state: Hysteresis, grades: list[HealthGrade], needed: int) -> tuple[
        Hysteresis, list[bool]]:
    changes = []
    for g in grades:
        state, changed = state.observe(g, needed)
        changes.append(changed)
    return state, changes


def test_a_new_grade_needs_its_count_of_consecutive_results() -> None:
    state, changes = feed(Hysteresis(GREEN), [RED, RED], 3)
    assert state == Hysteresis(GREEN, RED, 2)
    assert changes == [False, False]
    state, changed = state.observe(RED, 3)
    assert (state, changed) == (Hysteresis(RED), True)


def test_a_result_equal_to_the_current_grade_resets_the_candidate() -> None:
    state, changes = feed(Hysteresis(GREEN), [RED, RED, GREEN, RED, RED], 3)
    assert state == Hysteresis(GREEN, RED, 2)
    assert not any(changes)


def test_another_grade_starts_its_own_count() -> None:
    state, changes = feed(Hysteresis(GREEN), [RED, RED, YELLOW], 3)
    assert state == Hysteresis(GREEN, YELLOW, 1)
    assert not any(changes)


def test_the_first_grade_out_of_unknown_also_needs_its_count() -> None:
    state, changes = feed(Hysteresis(), [GREEN, GREEN], 3)
    assert state.current is UNKNOWN
    state, changed = state.observe(GREEN, 3)
    assert (state.current, changed) == (GREEN, True)
    assert changes == [False, False]


def test_going_unknown_also_needs_its_count() -> None:
    state, changes = feed(Hysteresis(RED), [UNKNOWN, UNKNOWN, UNKNOWN], 3)
    assert state.current is UNKNOWN
    assert changes == [False, False, True]


def test_needed_one_changes_at_once() -> None:
    state, changed = Hysteresis(GREEN).observe(YELLOW, 1)
    assert (state, changed) == (Hysteresis(YELLOW), True)
    assert Hysteresis(GREEN).observe(GREEN, 1) == (Hysteresis(GREEN), False)


def test_needed_must_be_positive() -> None:
    with pytest.raises(ValueError, match="at least 1"):
        Hysteresis().observe(GREEN, 0)


def test_hysteresis_round_trips_through_json() -> None:
    for state in (Hysteresis(), Hysteresis(GREEN, RED, 2), Hysteresis(YELLOW)):
        data = json.loads(json.dumps(state.to_json()))
        assert Hysteresis.from_json(data) == state
    assert Hysteresis(GREEN, RED, 2).to_json() == {"current": "green", "candidate": "red",
                                                   "count": 2}


@pytest.mark.parametrize(
    "data",
    [{"current": "purple"}, {"current": "green", "candidate": "red", "count": -1},
     {"current": "green", "candidate": "red", "count": "2"},
     {"current": "green", "candidate": "red", "count": True}],
)
def test_bad_hysteresis_json_is_refused(data: dict[str, Any]) -> None:
    with pytest.raises(ValueError):
        Hysteresis.from_json(data)


# -- thresholds -----------------------------------------------------------------------------

LEVELS = Thresholds(warn=80, critical=95)


@pytest.mark.parametrize(
    ("value", "status", "message"),
    [
        (None, NOT_KNOWN, "cpu not measured"),
        (float("nan"), NOT_KNOWN, "cpu not measured"),
        (12, PASS, "cpu 12% < warning 80%"),
        (79.99, PASS, "cpu 79.99% < warning 80%"),
        (80, WARN, "cpu 80% >= warning 80%"),
        (94.9, WARN, "cpu 94.9% >= warning 80%"),
        (95, FAIL, "cpu 95% >= critical 95%"),
        (100, FAIL, "cpu 100% >= critical 95%"),
    ],
)
def test_a_value_is_judged_against_its_thresholds(value: float | None, status: CheckStatus,
                                                  message: str) -> None:
    assert judge_value(value, LEVELS, what="cpu", unit="%") == (status, message)


def test_thresholds_may_be_partial_or_absent() -> None:
    only_critical = Thresholds(critical=1000)
    assert judge_value(999, only_critical, what="rss", unit="MB") == (
        PASS, "rss 999 MB < critical 1000 MB")
    assert judge_value(1000, only_critical, what="rss", unit="MB")[0] is FAIL
    assert judge_value(10**6, Thresholds(), what="open files", unit="") == (
        PASS, "open files 1000000 (no thresholds)")
    assert judge_value(600, Thresholds(warn=500), what="rss", unit="MB")[0] is WARN


# -- restart limits and flapping ------------------------------------------------------------

WINDOW = timedelta(minutes=10)


def test_restarts_are_allowed_below_the_limit() -> None:
    allowed, why = restart_allowed([at(0), at(60)], at(120), 3, WINDOW)
    assert allowed
    assert why == "restart 3 of 3 allowed in the last 10m"


def test_restarts_stop_at_the_limit() -> None:
    allowed, why = restart_allowed([at(0), at(60), at(119)], at(120), 3, WINDOW)
    assert not allowed
    assert why == ("3 restarts in the last 10m reached the limit of 3: not restarting again, "
                   "escalate")


def test_a_restart_exactly_one_window_ago_has_left_the_window() -> None:
    history = [at(0), at(60), at(120)]
    assert restart_allowed(history, at(600), 3, WINDOW)[0]  # at(0) is exactly 10m ago
    assert not restart_allowed(history, at(599.999), 3, WINDOW)[0]


def test_a_restart_in_the_future_counts() -> None:
    assert not restart_allowed([at(700)], at(0), 1, WINDOW)[0]


def test_no_restarts_allowed_means_none() -> None:
    allowed, why = restart_allowed([], at(0), 0, WINDOW)
    assert not allowed
    assert why.startswith("0 restarts in the last 10m reached the limit of 0")


@pytest.mark.parametrize(
    ("now", "max_restarts", "window", "problem"),
    [
        (datetime(2026, 3, 1, 12), 3, WINDOW, "aware"),
        (T0, -1, WINDOW, "max_restarts"),
        (T0, 3, timedelta(0), "window"),
    ],
)
def test_limits_refuse_bad_arguments(now: datetime, max_restarts: int, window: timedelta,
                                     problem: str) -> None:
    with pytest.raises(ValueError, match=problem):
        restart_allowed([], now, max_restarts, window)
    with pytest.raises(ValueError, match=problem):
        flapping([], now, max_restarts, window)


def test_flapping_is_more_new_pids_than_allowed_in_the_window() -> None:
    starts = [at(-601), at(10), at(20), at(30)]  # the first is outside the window
    assert flapping(starts, at(599), 3, WINDOW) == (False, 3)
    assert flapping([*starts, at(40)], at(599), 3, WINDOW) == (True, 4)
    assert flapping(starts, at(610), 3, WINDOW) == (False, 2)  # at(10) left the window
    assert flapping([], at(0), 0, WINDOW) == (False, 0)
    assert flapping([at(0)], at(0), 0, WINDOW) == (True, 1)


def test_naive_restart_times_are_refused() -> None:
    with pytest.raises(ValueError, match="aware"):
        restart_allowed([datetime(2026, 3, 1)], T0, 3, WINDOW)


def test_other_zones_are_compared_as_instants() -> None:
    plus_two = timezone(timedelta(hours=2))
    restarted = datetime(2026, 3, 1, 13, 55, tzinfo=plus_two)  # 11:55 UTC, 5 minutes ago
    assert flapping([restarted], T0, 0, WINDOW) == (True, 1)
    assert require_aware(restarted, "x") is restarted


# -- alerts ---------------------------------------------------------------------------------

REPEAT = timedelta(minutes=30)
KEY = "health/shop"


def test_a_degraded_service_fires_one_alert() -> None:
    state, action = next_alert("shop", AlertState(), YELLOW, at(0), REPEAT)
    assert action == AlertAction("fire", KEY, 1, YELLOW, at(0))
    assert state == AlertState(at(0), at(0), 1, YELLOW)


def test_a_red_service_fires_too() -> None:
    _, action = next_alert("shop", AlertState(), RED, at(0), REPEAT)
    assert action is not None
    assert (action.kind, action.grade) == ("fire", RED)


def test_green_and_unknown_services_without_an_alert_send_nothing() -> None:
    for g in (GREEN, UNKNOWN):
        assert next_alert("shop", AlertState(), g, at(0), REPEAT) == (AlertState(), None)


def test_the_same_grade_is_deduplicated_until_the_repeat_is_due() -> None:
    state, _ = next_alert("shop", AlertState(), YELLOW, at(0), REPEAT)
    same, action = next_alert("shop", state, YELLOW, at(1799.999), REPEAT)
    assert (same, action) == (state, None)
    later, repeat = next_alert("shop", state, YELLOW, at(1800), REPEAT)
    assert repeat == AlertAction("repeat", KEY, 2, YELLOW, at(0))
    assert later == AlertState(at(0), at(1800), 2, YELLOW)
    _, third = next_alert("shop", later, YELLOW, at(3600), REPEAT)
    assert third is not None
    assert third.count == 3


def test_a_grade_change_is_sent_at_once_in_the_same_alert() -> None:
    state, _ = next_alert("shop", AlertState(), YELLOW, at(0), REPEAT)
    state, worse = next_alert("shop", state, RED, at(5), REPEAT)
    assert worse == AlertAction("repeat", KEY, 2, RED, at(0), previous_grade=YELLOW)
    state, better = next_alert("shop", state, YELLOW, at(10), REPEAT)
    assert better == AlertAction("repeat", KEY, 3, YELLOW, at(0), previous_grade=RED)
    assert state == AlertState(at(0), at(10), 3, YELLOW)


def test_green_resolves_the_alert() -> None:
    state, _ = next_alert("shop", AlertState(), YELLOW, at(0), REPEAT)
    state, _ = next_alert("shop", state, RED, at(5), REPEAT)
    cleared, action = next_alert("shop", state, GREEN, at(60), REPEAT)
    assert action == AlertAction("resolve", KEY, 2, GREEN, at(0), previous_grade=RED)
    assert cleared == AlertState()
    assert next_alert("shop", cleared, GREEN, at(61), REPEAT) == (AlertState(), None)


def test_unknown_neither_resolves_nor_repeats_an_open_alert() -> None:
    state, _ = next_alert("shop", AlertState(), RED, at(0), REPEAT)
    held, action = next_alert("shop", state, UNKNOWN, at(7200), REPEAT)  # a repeat was due
    assert (held, action) == (state, None)
    _, back = next_alert("shop", held, RED, at(7201), REPEAT)  # still overdue: repeated
    assert back is not None
    assert (back.kind, back.count, back.previous_grade) == ("repeat", 2, None)
    _, resolved = next_alert("shop", held, GREEN, at(7201), REPEAT)
    assert resolved is not None
    assert resolved.kind == "resolve"


def test_the_dedup_key_fits_the_contract() -> None:
    assert TypeAdapter(DedupKey).validate_python(dedup_key("shop-api_2")) == "health/shop-api_2"
    for bad in ("bad name", "Shop", "a/b"):
        with pytest.raises(ValueError):
            dedup_key(bad)
    with pytest.raises(ValueError):
        next_alert("", AlertState(), YELLOW, at(0), REPEAT)


def test_alerts_refuse_bad_arguments() -> None:
    with pytest.raises(ValueError, match="aware"):
        next_alert("shop", AlertState(), YELLOW, datetime(2026, 3, 1), REPEAT)
    with pytest.raises(ValueError, match="repeat"):
        next_alert("shop", AlertState(), YELLOW, at(0), timedelta(0))


def test_alert_state_round_trips_through_json() -> None:
    for state in (AlertState(), AlertState(at(0), at(1800), 2, RED)):
        assert AlertState.from_json(json.loads(json.dumps(state.to_json()))) == state
    assert AlertState(at(0), at(60), 1, YELLOW).to_json() == {
        "raised_at": "2026-03-01T12:00:00+00:00", "last_sent_at": "2026-03-01T12:01:00+00:00",
        "count": 1, "grade": "yellow"}


@pytest.mark.parametrize(
    "data",
    [{"raised_at": "2026-03-01T12:00:00"}, {"raised_at": 5}, {"count": -1},
     {"grade": "purple"}, {"last_sent_at": "yesterday"}],
)
def test_bad_alert_json_is_refused(data: dict[str, Any]) -> None:
    with pytest.raises(ValueError):
        AlertState.from_json(data)


# -- the health gate ------------------------------------------------------------------------

GATE = Gate("shop-2026.03.01-1", "shop", "2.4.1", opened_at=at(0))


def test_the_gate_waits_until_green_has_lasted() -> None:
    gate, verdict = observe_gate(GATE, GREEN, at(5), 30)
    assert (gate.green_since, verdict) == (at(5), "wait")
    gate, verdict = observe_gate(gate, GREEN, at(34.999), 30)
    assert (gate.green_since, verdict) == (at(5), "wait")
    gate, verdict = observe_gate(gate, GREEN, at(35), 30)
    assert (gate.green_since, verdict) == (at(5), "ready")
    assert gate.green_for(at(35)) == timedelta(seconds=30)


@pytest.mark.parametrize("interruption", [YELLOW, UNKNOWN])
def test_anything_but_green_restarts_the_clock(interruption: HealthGrade) -> None:
    gate, _ = observe_gate(GATE, GREEN, at(5), 30)
    gate, verdict = observe_gate(gate, interruption, at(20), 30)
    assert (gate.green_since, verdict) == (None, "wait")
    assert gate.green_for(at(20)) == timedelta(0)
    gate, _ = observe_gate(gate, GREEN, at(25), 30)
    assert observe_gate(gate, GREEN, at(54), 30)[1] == "wait"
    assert observe_gate(gate, GREEN, at(55), 30)[1] == "ready"


def test_red_is_reported_and_restarts_the_clock() -> None:
    gate, _ = observe_gate(GATE, GREEN, at(5), 30)
    gate, verdict = observe_gate(gate, RED, at(10), 30)
    assert (gate.green_since, verdict) == (None, "red")


def test_a_zero_second_gate_is_ready_on_the_first_green() -> None:
    assert observe_gate(GATE, GREEN, at(1), 0)[1] == "ready"
    assert observe_gate(GATE, YELLOW, at(1), 0)[1] == "wait"


def test_the_gate_refuses_bad_arguments() -> None:
    with pytest.raises(ValueError, match="aware"):
        observe_gate(GATE, GREEN, datetime(2026, 3, 1), 30)
    with pytest.raises(ValueError, match="seconds"):
        observe_gate(GATE, GREEN, at(1), -1)
    with pytest.raises(ValueError, match="seconds"):
        observe_gate(GATE, GREEN, at(1), float("nan"))


def test_the_gate_round_trips_through_json() -> None:
    green = observe_gate(GATE, GREEN, at(5), 30)[0]
    for gate in (GATE, green):
        assert Gate.from_json(json.loads(json.dumps(gate.to_json()))) == gate


@pytest.mark.parametrize(
    "changes",
    [{"change_id": ""}, {"opened_at": "2026-03-01T12:00:00"}, {"green_since": "soon"},
     {"service": None}],
)
def test_bad_gate_json_is_refused(changes: dict[str, Any]) -> None:
    with pytest.raises(ValueError):
        Gate.from_json({**GATE.to_json(), **changes})
