"""Canary analysis: judge each measurement, count them per metric, end the run.

The semantics are Argo Rollouts' AnalysisRun, with Kayenta's baseline comparison added:

- One measurement of a metric ends SUCCESSFUL, FAILED, INCONCLUSIVE or ERROR (`measure`).
  No data and NaN are INCONCLUSIVE, never SUCCESSFUL: the most common complaint about
  canary tools is an empty query result (a typo in a label, a canary that got no traffic)
  passing as healthy, or a NaN crashing the analysis. Neither happens here.
- Conditions combine as in Argo: the failure condition wins; with only a success condition
  a miss is a failure; with both, a value meeting neither is inconclusive.
- A run counts per metric (`record`) and ends FAILED when a metric failed more than
  `failure_limit` times, or its query errored more than `consecutive_error_limit` times in a
  row, or at once when a critical metric fails; INCONCLUSIVE when a metric was inconclusive
  more than `inconclusive_limit` times; SUCCESSFUL when every metric was measured `count`
  times. As in Argo, an ERROR is not a measurement towards `count` (the Argo controller
  increments a metric's Count only for Successful, Failed and Inconclusive; an Error only
  increments Error and ConsecutiveError): a Prometheus that is down must not let a canary
  pass by running out the clock. Any other outcome resets the consecutive-error streak.
- Every outcome carries a reason that names the measured value(s) and the condition or
  limit involved, because "analysis failed" with no why is the other common complaint.

Everything here is pure: samples come in (the Prometheus adapter makes them), decisions
come out, and the run state round-trips through JSON so a restarted guardian resumes it.
"""

from __future__ import annotations

import math
import re
import statistics
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from typing import Any

from schemas.events.deploy import AnalysisOutcome, MetricBreach
from services.deploy.domain.conditions import (
    Condition,
    ConditionError,
    format_number,
    parse_condition,
)
from services.deploy.domain.stats import mann_whitney_greater
from services.runtime.config import (
    QUERY_PLACEHOLDERS,
    AnalysisMetric,
    AnalysisTemplate,
    BaselineComparison,
)

MIN_SERIES_VALUES = 3
"""Fewer values than this on either side of a Mann-Whitney comparison: inconclusive."""

_OUTCOME_RANK = {
    AnalysisOutcome.SUCCESSFUL: 0,
    AnalysisOutcome.INCONCLUSIVE: 1,
    AnalysisOutcome.ERROR: 2,
    AnalysisOutcome.FAILED: 3,
}
"""Worst wins when parts of one measurement disagree (Argo's order of phases)."""


# -- measuring ------------------------------------------------------------------------------


@dataclass(frozen=True)
class Sample:
    """What one PromQL query returned: its values (may hold nan/inf), or why it failed."""

    values: tuple[float, ...] = ()
    error: str | None = None
    """The query failed (HTTP, PromQL error, timeout); `values` is then meaningless."""


@dataclass(frozen=True)
class Measurement:
    """One metric measured once, judged, with the reason in words."""

    metric: str
    outcome: AnalysisOutcome
    values: tuple[float | None, ...]
    """The canary's values; NaN and infinities as None (JSON has no NaN)."""
    baseline_values: tuple[float | None, ...]
    condition: str
    """What was checked, human readable (`result < 0.05; canary <= baseline + 20%`)."""
    reason: str
    """Why this outcome, with the values and the condition or limit broken."""
    error: str | None = None
    """The query's error, when the outcome is ERROR."""
    critical: bool = False


@dataclass(frozen=True)
class _Part:
    """The verdict of one check (conditions, or the baseline comparison) of a metric."""

    outcome: AnalysisOutcome
    reason: str
    error: str | None = None


def _ok(reason: str) -> _Part:
    return _Part(AnalysisOutcome.SUCCESSFUL, reason)


def _failed(reason: str) -> _Part:
    return _Part(AnalysisOutcome.FAILED, reason)


def _inconclusive(reason: str) -> _Part:
    return _Part(AnalysisOutcome.INCONCLUSIVE, reason)


def _errored(what: str, error: str) -> _Part:
    return _Part(AnalysisOutcome.ERROR, f"{what} failed: {error}", error)


def _json_values(values: Sequence[float]) -> tuple[float | None, ...]:
    return tuple(v if math.isfinite(v) else None for v in values)


def _computed(value: float) -> str:
    """A derived number (a limit, a median) to 10 significant digits: `0.49`, not
    `0.49000000000000005`. Measured values and thresholds are shown exactly."""
    return format_number(float(f"{value:.10g}"))


def _listed(values: Sequence[float]) -> str:
    return ", ".join(format_number(v) for v in values)


def _of(values: Sequence[float]) -> str:
    """` (values a, b, c)` when several series answered, so a reason shows them all."""
    return f" (values {_listed(values)})" if len(values) > 1 else ""


def _unusable(sample: Sample, *, baseline: bool = False) -> _Part | None:
    """The sample-level verdicts every check shares: query error, no data, NaN/inf."""
    if sample.error is not None:
        return _errored("baseline query" if baseline else "query", sample.error)
    if not sample.values:
        return _inconclusive("baseline has no data" if baseline else "no data")
    odd = next((v for v in sample.values if not math.isfinite(v)), None)
    if odd is not None:
        where = "baseline" if baseline else "result"
        return _inconclusive(f"{format_number(odd)} in {where}{_of(sample.values)}")
    return None


def _judge_conditions(
    success: Condition | None, failure: Condition | None, sample: Sample
) -> _Part:
    """Argo's rules, applied to every value (a multi-valued result passes only when every
    value passes). A finite value that fails decides even when another value is NaN: the
    NaN can only make the measurement inconclusive, and a known failure is worse."""
    if sample.error is not None or not sample.values:
        return _unusable(sample) or _inconclusive("no data")  # (always the former)
    finite = [v for v in sample.values if math.isfinite(v)]
    shown = _of(sample.values)
    if failure is not None:
        hit = next((v for v in finite if failure.evaluate(v)), None)
        if hit is not None:
            return _failed(f"{failure.explain(hit)} meets failure condition {failure}{shown}")
    elif success is not None:
        miss = next((v for v in finite if not success.evaluate(v)), None)
        if miss is not None:
            return _failed(f"{success.explain(miss)} breaks {success}{shown}")
    unusable = _unusable(sample)
    if unusable is not None:
        return unusable
    if success is None:
        return _ok(f"{_listed(finite)} does not meet failure condition {failure}")
    miss = next((v for v in finite if not success.evaluate(v)), None)
    if miss is not None:  # there is a failure condition, and it was not met
        return _inconclusive(f"{success.explain(miss)} breaks {success} but does not meet "
                             f"failure condition {failure}{shown}")
    if len(finite) == 1:
        return _ok(f"{success.explain(finite[0])} meets {success}")
    return _ok(f"every value meets {success}{shown}")


def _worst(values: Sequence[float], higher_is_worse: bool) -> float:
    return max(values) if higher_is_worse else min(values)


def _ratio_text(spec: BaselineComparison) -> str:
    sign, cmp = ("+", "<=") if spec.higher_is_worse else ("-", ">=")
    delta = f" {sign} {format_number(spec.min_delta)}" if spec.min_delta else ""
    return (f"canary {cmp} baseline {sign} {_computed(spec.max_increase * 100)}%"
            f"{delta}")


def _judge_ratio(spec: BaselineComparison, canary: Sample, baseline: Sample | None) -> _Part:
    """Canary against baseline on instant values; several series: each side's worst value.

    The limit is baseline + |baseline| * max_increase + min_delta (for a non-negative
    baseline exactly the configured baseline * (1 + max_increase) + min_delta); with
    higher_is_worse false the canary must stay above baseline - |baseline| * max_increase
    - min_delta. Several series are reduced to each side's worst value (the maximum, or the
    minimum when lower is worse), so one bad canary instance cannot hide behind good ones."""
    unusable = _unusable(canary)
    if unusable is not None:
        return unusable
    if baseline is None:
        return _inconclusive("baseline not measured")
    unusable = _unusable(baseline, baseline=True)
    if unusable is not None:
        return unusable
    worse = spec.higher_is_worse
    c = _worst(canary.values, worse)
    b = _worst(baseline.values, worse)
    slack = abs(b) * spec.max_increase + spec.min_delta
    limit = b + slack if worse else b - slack
    passed = c <= limit if worse else c >= limit
    side = "max" if worse else "min"
    canary_text = f"canary {side} {format_number(c)}" if len(canary.values) > 1 \
        else f"canary {format_number(c)}"
    base_text = f"baseline {side} {format_number(b)}" if len(baseline.values) > 1 \
        else f"baseline {format_number(b)}"
    if passed:
        cmp = "<=" if worse else ">="
        return _ok(f"{canary_text} {cmp} {_computed(limit)} ({base_text}; "
                   f"{_ratio_text(spec)})")
    cmp = ">" if worse else "<"
    return _failed(f"{canary_text} {cmp} {_computed(limit)} breaks {_ratio_text(spec)} "
                   f"({base_text})")


def _mann_whitney_text(spec: BaselineComparison) -> str:
    direction = "greater" if spec.higher_is_worse else "lower"
    delta = f", min_delta {format_number(spec.min_delta)}" if spec.min_delta else ""
    return (f"canary not significantly {direction} than baseline "
            f"(Mann-Whitney U, alpha {format_number(spec.alpha)}{delta})")


def _series_values(sample: Sample, side: str) -> tuple[list[float], _Part | None]:
    """The finite points of a range query; NaN points (0/0 at an idle instant) are dropped,
    as Kayenta's default NaN strategy does, and too few points left is inconclusive."""
    if sample.error is not None:
        return [], _errored(f"the {side} range query", sample.error)
    finite = [v for v in sample.values if math.isfinite(v)]
    if len(finite) >= MIN_SERIES_VALUES:
        return finite, None
    dropped = len(sample.values) - len(finite)
    note = f" ({dropped} NaN/Inf points dropped)" if dropped else ""
    if not finite:
        what = "no data" if side == "canary" else "baseline has no data"
        return [], _inconclusive(f"{what} over the interval{note}")
    return [], _inconclusive(f"{side} has {len(finite)} value(s) over the interval, "
                             f"needs {MIN_SERIES_VALUES}{note}: {_listed(finite)}")


def _judge_mann_whitney(
    spec: BaselineComparison, canary: Sample, baseline: Sample | None
) -> _Part:
    """Fails when the canary is significantly worse (p < alpha) AND its median is worse by
    more than min_delta: significance alone would fail a 0.001% difference on much data."""
    if baseline is None:
        return _inconclusive("baseline not measured")
    canary_points, problem = _series_values(canary, "canary")
    if problem is not None:
        return problem
    baseline_points, problem = _series_values(baseline, "baseline")
    if problem is not None:
        return problem
    worse_side, better_side = ((canary_points, baseline_points) if spec.higher_is_worse
                               else (baseline_points, canary_points))
    test = mann_whitney_greater(worse_side, better_side)
    canary_median = statistics.median(canary_points)
    baseline_median = statistics.median(baseline_points)
    worse_by = (canary_median - baseline_median if spec.higher_is_worse
                else baseline_median - canary_median)
    facts = (f"canary median {_computed(canary_median)} vs baseline median "
             f"{_computed(baseline_median)}, p = {test.p_value:.4g} "
             f"(U {format_number(test.u)}, n {len(canary_points)}/{len(baseline_points)}"
             f"{', ' + test.reason if test.reason else ''})")
    if test.p_value < spec.alpha and worse_by > spec.min_delta:
        return _failed(f"{facts}: p < alpha {format_number(spec.alpha)} and worse by "
                       f"{_computed(worse_by)} > min_delta {format_number(spec.min_delta)}"
                       f" breaks {_mann_whitney_text(spec)}")
    return _ok(f"{facts}: {_mann_whitney_text(spec)}")


def _condition_text(metric: AnalysisMetric, success: Condition | None,
                    failure: Condition | None) -> list[str]:
    parts = []
    if metric.success is not None:
        parts.append(str(success) if success else metric.success)
    if metric.failure is not None:
        parts.append(f"fail if {failure if failure else metric.failure}")
    if metric.baseline is not None:
        parts.append(_ratio_text(metric.baseline) if metric.baseline.method == "ratio"
                     else _mann_whitney_text(metric.baseline))
    return parts


def _combine(parts: Sequence[_Part]) -> _Part:
    """Worst wins: FAILED, then ERROR, then INCONCLUSIVE, then SUCCESSFUL; the reason is
    every part that has the deciding outcome (the same reason once)."""
    if not parts:  # the config refuses such a metric; never pass one that slipped through
        return _Part(AnalysisOutcome.ERROR, "nothing to judge: no condition and no baseline",
                     "metric has no success, failure or baseline")
    outcome = max((p.outcome for p in parts), key=_OUTCOME_RANK.__getitem__)
    deciding = [p for p in parts if p.outcome is outcome]
    reasons = list(dict.fromkeys(p.reason for p in deciding))
    error = next((p.error for p in deciding if p.error is not None), None)
    return _Part(outcome, "; ".join(reasons), error)


def measure(
    metric: AnalysisMetric,
    canary: Sample,
    baseline: Sample | None = None,
    canary_series: Sample | None = None,
    baseline_series: Sample | None = None,
) -> Measurement:
    """Judge one measurement of `metric`.

    `canary` / `baseline` are instant query results (conditions, ratio comparison);
    `canary_series` / `baseline_series` are range query results over the interval for a
    mann_whitney comparison, which falls back to `canary` / `baseline` when they are not
    given (a metric judged only by Mann-Whitney can pass its range results directly).
    A condition that does not parse is an ERROR naming it (check templates at load time with
    `template_problems` so that never happens)."""
    try:
        success = parse_condition(metric.success) if metric.success is not None else None
        failure = parse_condition(metric.failure) if metric.failure is not None else None
    except ConditionError as problem:
        return Measurement(
            metric=metric.name, outcome=AnalysisOutcome.ERROR, values=(), baseline_values=(),
            condition="; ".join(_condition_text(metric, None, None)),
            reason=f"bad condition: {problem}", error=str(problem), critical=metric.critical,
        )

    parts: list[_Part] = []
    if success is not None or failure is not None:
        parts.append(_judge_conditions(success, failure, canary))
    values: Sample = canary
    baseline_values: Sample | None = None
    spec = metric.baseline
    if spec is not None and spec.method == "ratio":
        parts.append(_judge_ratio(spec, canary, baseline))
        baseline_values = baseline
    elif spec is not None:
        series = canary_series if canary_series is not None else canary
        base_series = baseline_series if baseline_series is not None else baseline
        parts.append(_judge_mann_whitney(spec, series, base_series))
        baseline_values = base_series
        if success is None and failure is None:
            values = series

    verdict = _combine(parts)
    return Measurement(
        metric=metric.name,
        outcome=verdict.outcome,
        values=_json_values(values.values if values.error is None else ()),
        baseline_values=_json_values(
            baseline_values.values
            if baseline_values is not None and baseline_values.error is None else ()
        ),
        condition="; ".join(_condition_text(metric, success, failure)),
        reason=verdict.reason,
        error=verdict.error if verdict.outcome is AnalysisOutcome.ERROR else None,
        critical=metric.critical,
    )


def breach_of(m: Measurement, query: str) -> MetricBreach:
    """The event model for the measurement that decided a rollback or failure."""
    return MetricBreach(
        metric=m.metric, query=query, condition=m.condition, values=m.values,
        baseline_values=m.baseline_values,
    )


# -- the run --------------------------------------------------------------------------------


@dataclass(frozen=True)
class MetricTally:
    """One metric's counts within one run, as Argo's MetricResult."""

    measured: int = 0
    """Successful + failed + inconclusive: what counts towards the template's `count`."""
    successful: int = 0
    failed: int = 0
    inconclusive: int = 0
    errors: int = 0
    consecutive_errors: int = 0

    def counted(self, outcome: AnalysisOutcome) -> MetricTally:
        if outcome is AnalysisOutcome.ERROR:
            return replace(self, errors=self.errors + 1,
                           consecutive_errors=self.consecutive_errors + 1)
        bumped = replace(self, measured=self.measured + 1, consecutive_errors=0)
        if outcome is AnalysisOutcome.SUCCESSFUL:
            return replace(bumped, successful=self.successful + 1)
        if outcome is AnalysisOutcome.FAILED:
            return replace(bumped, failed=self.failed + 1)
        return replace(bumped, inconclusive=self.inconclusive + 1)


_TALLY_FIELDS = ("measured", "successful", "failed", "inconclusive", "errors",
                 "consecutive_errors")


@dataclass(frozen=True)
class RunState:
    """One analysis run's counts, per metric in template order; JSON-serialisable."""

    tallies: tuple[tuple[str, MetricTally], ...] = ()

    def tally(self, metric: str) -> MetricTally:
        return next((t for name, t in self.tallies if name == metric), MetricTally())

    def to_json(self) -> dict[str, Any]:
        return {"tallies": {name: {f: getattr(t, f) for f in _TALLY_FIELDS}
                            for name, t in self.tallies}}

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> RunState:
        """Read what `to_json` wrote; ValueError on anything else (never half a state)."""
        tallies = data.get("tallies") if isinstance(data, Mapping) else None
        if not isinstance(tallies, Mapping):
            raise ValueError("run state: expected {'tallies': {metric: counts}}")
        read: list[tuple[str, MetricTally]] = []
        for name, counts in tallies.items():
            if not isinstance(name, str) or not isinstance(counts, Mapping):
                raise ValueError(f"run state: bad tally for {name!r}")
            if set(counts) != set(_TALLY_FIELDS):
                raise ValueError(f"run state: tally for {name!r} needs exactly "
                                 f"{', '.join(_TALLY_FIELDS)}")
            numbers = {f: counts[f] for f in _TALLY_FIELDS}
            if any(type(v) is not int or v < 0 for v in numbers.values()):
                raise ValueError(f"run state: tally for {name!r} holds a non-count: {numbers}")
            read.append((name, MetricTally(**numbers)))
        return cls(tuple(read))


@dataclass(frozen=True)
class RunVerdict:
    """How a run ended, why, and the measurement that decided it."""

    outcome: AnalysisOutcome
    """SUCCESSFUL, FAILED or INCONCLUSIVE; a run never ends ERROR (errors past the limit
    fail it)."""
    reason: str
    """Names the metric, its values and the condition or limit."""
    breach: Measurement | None
    """The measurement that decided a failure or an inconclusive end."""
    score: float
    """Kayenta-style: the share (0..100) of all the run's measurements, errors included,
    that were successful."""


def start_run(template: AnalysisTemplate) -> RunState:
    return RunState(tuple((m.name, MetricTally()) for m in template.metrics))


def _done(template: AnalysisTemplate, tally: MetricTally) -> bool:
    return tally.measured >= template.count


def pending_metrics(template: AnalysisTemplate, state: RunState) -> tuple[AnalysisMetric, ...]:
    """The metrics still to measure: as in Argo, a metric measured `count` times is complete
    and is not queried again while the others catch up (after errors)."""
    return tuple(m for m in template.metrics if not _done(template, state.tally(m.name)))


def score(state: RunState) -> float:
    """The share (0..100) of measurements that were successful; errors count as not; 0
    before anything was measured."""
    successful = sum(t.successful for _, t in state.tallies)
    total = sum(t.measured + t.errors for _, t in state.tallies)
    return 100.0 * successful / total if total else 0.0


def record(
    template: AnalysisTemplate, state: RunState, measurements: Sequence[Measurement]
) -> tuple[RunState, RunVerdict | None]:
    """Count one interval's measurements (one per pending metric) and decide whether the run
    ended. Measurements of metrics already complete are ignored; one of a metric not in the
    template, or two of the same metric, is a caller's bug (ValueError).

    Order of decision, worst first (as Argo's worst-phase-wins): a critical metric's
    failure; a metric failed more than failure_limit times; a query that errored more than
    consecutive_error_limit times in a row (FAILED: a canary is never promoted on metrics
    nobody could read); a metric inconclusive more than inconclusive_limit times; and
    SUCCESSFUL once every metric was measured `count` times."""
    known = {m.name: m for m in template.metrics}
    latest: dict[str, Measurement] = {}
    for m in measurements:
        if m.metric not in known:
            raise ValueError(f"measurement of {m.metric!r}, not a metric of the template "
                             f"({', '.join(known)})")
        if m.metric in latest:
            raise ValueError(f"two measurements of {m.metric!r} in one interval")
        latest[m.metric] = m

    tallies: list[tuple[str, MetricTally]] = []
    counted: dict[str, Measurement] = {}
    for metric in template.metrics:
        tally = state.tally(metric.name)
        this = latest.get(metric.name)
        if this is not None and not _done(template, tally):
            tally = tally.counted(this.outcome)
            counted[metric.name] = this
        tallies.append((metric.name, tally))
    new_state = RunState(tuple(tallies))
    return new_state, _verdict(template, new_state, counted)


def _verdict(
    template: AnalysisTemplate, state: RunState, counted: Mapping[str, Measurement]
) -> RunVerdict | None:
    run_score = score(state)

    def ended(outcome: AnalysisOutcome, reason: str, m: Measurement | None) -> RunVerdict:
        return RunVerdict(outcome, reason, m, run_score)

    def this_time(metric: AnalysisMetric, outcome: AnalysisOutcome) -> Measurement | None:
        """The metric's measurement of this interval, if it had that outcome."""
        m = counted.get(metric.name)
        return m if m is not None and m.outcome is outcome else None

    for metric in template.metrics:
        failed = this_time(metric, AnalysisOutcome.FAILED)
        if failed is not None and (metric.critical or failed.critical):
            return ended(AnalysisOutcome.FAILED,
                         f"critical metric {metric.name} failed: {failed.reason}", failed)

    for metric in template.metrics:
        tally = state.tally(metric.name)
        if tally.failed > template.failure_limit:
            m = this_time(metric, AnalysisOutcome.FAILED)
            return ended(
                AnalysisOutcome.FAILED,
                f"metric {metric.name} failed {tally.failed} time(s), more than failure_limit "
                f"{template.failure_limit}" + (f": {m.reason}" if m else ""),
                m,
            )
    for metric in template.metrics:
        tally = state.tally(metric.name)
        if tally.consecutive_errors > template.consecutive_error_limit:
            m = this_time(metric, AnalysisOutcome.ERROR)
            last = f"; last error: {m.error}" if m is not None and m.error else ""
            return ended(
                AnalysisOutcome.FAILED,
                f"metric {metric.name}: the query kept failing, {tally.consecutive_errors} "
                f"errors in a row, more than consecutive_error_limit "
                f"{template.consecutive_error_limit}{last}",
                m,
            )
    for metric in template.metrics:
        tally = state.tally(metric.name)
        if tally.inconclusive > template.inconclusive_limit:
            m = this_time(metric, AnalysisOutcome.INCONCLUSIVE)
            return ended(
                AnalysisOutcome.INCONCLUSIVE,
                f"metric {metric.name} was inconclusive {tally.inconclusive} time(s), more "
                f"than inconclusive_limit {template.inconclusive_limit}"
                + (f": {m.reason}" if m else ""),
                m,
            )

    if pending_metrics(template, state):
        return None
    summary = ", ".join(_summary(m.name, state.tally(m.name)) for m in template.metrics)
    return ended(AnalysisOutcome.SUCCESSFUL,
                 f"every metric measured {template.count} time(s) within its limits: "
                 f"{summary}", None)


def _summary(name: str, t: MetricTally) -> str:
    others = [f"{n} {what}" for n, what in ((t.failed, "failed"),
                                            (t.inconclusive, "inconclusive"),
                                            (t.errors, "errors")) if n]
    return (f"{name} {t.successful}/{t.measured} successful"
            + (f" ({', '.join(others)})" if others else ""))


# -- queries --------------------------------------------------------------------------------

_PLACEHOLDER = re.compile(r"\{([a-z_]+)\}")
"""As the config's check: only `{identifier}` is a placeholder, so PromQL's own braces
(`{code=~"5.."}`) and regex repetitions (`"a{2}"`) are left alone."""
_DURATION = re.compile(r"^(?:[0-9]+(?:ms|[smhdwy]))+$")


def promql_string_escape(value: str) -> str:
    """`value` as the inside of a PromQL double-quoted string: it can never end the string."""
    out: list[str] = []
    for char in value:
        code = ord(char)
        if char in '\\"':
            out.append("\\" + char)
        elif char == "\n":
            out.append("\\n")
        elif char == "\r":
            out.append("\\r")
        elif char == "\t":
            out.append("\\t")
        elif code < 0x20 or code == 0x7F:
            out.append(f"\\x{code:02x}")
        elif 0xD800 <= code <= 0xDFFF:
            raise ValueError(f"value {value!r} holds a lone surrogate, not valid UTF-8")
        else:
            out.append(char)
    return "".join(out)


@dataclass(frozen=True)
class _Slot:
    start: int
    end: int
    name: str
    context: str
    """code, double, single, backtick or comment: where in the PromQL text it sits."""


def _slots(template: str) -> list[_Slot]:
    """Every `{name}` in a query template, with the PromQL lexical context it sits in."""
    slots: list[_Slot] = []
    context = "code"
    i = 0
    while i < len(template):
        char = template[i]
        if context in {"double", "single"} and char == "\\":
            i += 2
            continue
        if char == "{":
            match = _PLACEHOLDER.match(template, i)
            if match:
                slots.append(_Slot(i, match.end(), match.group(1), context))
                i = match.end()
                continue
        if context == "code":
            context = {'"': "double", "'": "single", "`": "backtick", "#": "comment"}.get(
                char, "code")
        elif (context, char) in {("double", '"'), ("single", "'"), ("backtick", "`"),
                                 ("comment", "\n")}:
            context = "code"
        i += 1
    return slots


_WHERE = {"code": "outside a string", "single": "in a single-quoted string",
          "backtick": "in a backtick string"}


def _check_slot(template: str, slot: _Slot) -> None:
    if slot.name not in QUERY_PLACEHOLDERS:
        raise ValueError(f"query {template!r}: unknown placeholder {{{slot.name}}}; known: "
                         f"{', '.join(sorted(QUERY_PLACEHOLDERS))}")
    if slot.name != "window" and slot.context not in {"double", "comment"}:
        raise ValueError(
            f"query {template!r}: placeholder {{{slot.name}}} at column {slot.start + 1} must "
            f'be inside a double-quoted PromQL string (job="{{{slot.name}}}"), where its '
            f"value is escaped; {_WHERE[slot.context]} a value could change the query"
        )


def check_query_template(template: str) -> None:
    """ValueError when `render_query` could never render this template safely."""
    for slot in _slots(template):
        _check_slot(template, slot)


def render_query(template: str, values: Mapping[str, str]) -> str:
    """Substitute `{name}` placeholders (names in QUERY_PLACEHOLDERS) into a PromQL template.

    Each value is escaped as the inside of a PromQL double-quoted string, and a placeholder
    must sit inside one (`job="{service}"`), so no value (a version such as
    `a"} or vector(1) #`) can change the query's shape. `{window}` is the exception: it is
    substituted raw (`[{window}]`) and must be a PromQL duration (`30s`, `1m30s`). ValueError
    for an unknown placeholder, one without a value, or one outside a double-quoted string."""
    out: list[str] = []
    last = 0
    for slot in _slots(template):
        _check_slot(template, slot)
        if slot.name not in values:
            raise ValueError(f"query {template!r}: no value for {{{slot.name}}}")
        value = values[slot.name]
        if slot.name == "window":
            if not _DURATION.match(value):
                raise ValueError(f"window {value!r} is not a PromQL duration (30s, 5m, 1h)")
            text = value
        else:
            text = promql_string_escape(value)
        out.append(template[last:slot.start])
        out.append(text)
        last = slot.end
    out.append(template[last:])
    return "".join(out)


def template_problems(template: AnalysisTemplate) -> tuple[str, ...]:
    """What would make `measure` or `render_query` refuse this template, for load time:
    conditions that do not parse, placeholders that cannot be rendered safely."""
    problems: list[str] = []
    for metric in template.metrics:
        for text in (metric.success, metric.failure):
            if text is not None:
                try:
                    parse_condition(text)
                except ConditionError as problem:
                    problems.append(f"metric {metric.name}: {problem}")
        try:
            check_query_template(metric.query)
        except ValueError as problem:
            problems.append(f"metric {metric.name}: {problem}")
    return tuple(problems)
