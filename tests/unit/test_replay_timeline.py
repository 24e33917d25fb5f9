"""The replay's pure part: order, causal graph, root cause, actions, durations, reports.

Values are real events dumped to JSON (so the field names the timeline reads are the
contract's), wrapped in hand-built envelopes whose ids and causation ids form the chain.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import pytest

from cli.replay import ReplayError, Selector, _Index, check_topics, parse_time
from cli.timeline import (
    Replayed,
    actions,
    build_timeline,
    durations,
    is_failure,
    render_markdown,
    render_text,
    root_cause,
    summarize,
    to_json,
)
from schemas.base import Event
from schemas.envelope import Envelope
from schemas.events import (
    BackupRestored,
    BackupRestoreRequested,
    ChangeSubmitted,
    DeployAnalysisMeasured,
    DeployCompleted,
    DeployRollbackRequested,
    DeployRolledBack,
    DeployStageChanged,
    HealthChanged,
    IncidentOpened,
    IncidentResolved,
    IncidentUpdated,
    MigrationApproved,
    ServiceRestartRequested,
)
from schemas.events.backup import RestoreOutcome
from schemas.events.deploy import AnalysisOutcome, DeployStage, MetricBreach, RollbackTrigger
from schemas.events.health import CheckKind, CheckResult, CheckStatus, HealthGrade
from schemas.events.incident import (
    IncidentCause,
    IncidentDurations,
    IncidentSeverity,
    IncidentStatus,
    RemediationAction,
    TimelineEntry,
    TimelineKind,
)
from schemas.events.migration import ApprovalPath, RiskLevel
from schemas.topics import REGISTRY

CHANGE = "shop-2.0.0"
INCIDENT = "inc-1"
T0 = datetime(2026, 11, 28, 9, 30, tzinfo=UTC)
BREACH = MetricBreach(metric="error-rate", query="q", condition="result < 0.05",
                      values=(0.21,))


def at(seconds: float) -> datetime:
    return T0 + timedelta(seconds=seconds)


def replayed(event: Event, when: datetime, event_id: str, cause: str | None = None,
             offset: int = 0) -> Replayed:
    spec = REGISTRY.of(type(event))
    key = spec.key_of(event)
    envelope = Envelope(type=spec.ce_type, source="tests", subject=key, correlation_id=CHANGE,
                        id=event_id, time=when, causation_id=cause)
    return Replayed(spec.name, 0, offset, key, envelope,
                    json.loads(event.model_dump_json()))


def stage(new: DeployStage, old: DeployStage | None, weight: int | None = None
          ) -> DeployStageChanged:
    return DeployStageChanged(change_id=CHANGE, service="shop", version="2.0.0", stage=new,
                              previous_stage=old, canary_weight=weight)


def measured(outcome: AnalysisOutcome) -> DeployAnalysisMeasured:
    return DeployAnalysisMeasured(
        change_id=CHANGE, service="shop", version="2.0.0", stage=DeployStage.CANARY,
        analysis="success", metric="error-rate", query="q", condition="result < 0.05",
        values=(0.21,), outcome=outcome, canary_weight=20)


def rolled_back(trigger: RollbackTrigger = RollbackTrigger.ANALYSIS_FAILED) -> DeployRolledBack:
    return DeployRolledBack(change_id=CHANGE, service="shop", version="2.0.0",
                            restored_version="1.9.3", stage=DeployStage.CANARY,
                            trigger=trigger, reason="error-rate 0.21 >= 0.05", breach=BREACH,
                            rollback_seconds=1.5)


def opened() -> IncidentOpened:
    return IncidentOpened(incident_id=INCIDENT, dedup_key="shop:rolled_back", service="shop",
                          severity=IncidentSeverity.HIGH,
                          cause=IncidentCause.DEPLOY_ROLLED_BACK,
                          summary="shop 2.0.0 rolled back", change_id=CHANGE, version="2.0.0")


def resolved() -> IncidentResolved:
    return IncidentResolved(incident_id=INCIDENT, service="shop",
                            severity=IncidentSeverity.HIGH, resolved_by="incident",
                            resolution="rolled back to 1.9.3", change_id=CHANGE,
                            durations=IncidentDurations(detect_seconds=2.0,
                                                        mitigate_seconds=0.0,
                                                        resolve_seconds=30.0))


def release_chain() -> list[Replayed]:
    """submitted → approved → staging → canary 20% → measured (failed) → rolled back →
    incident opened → resolved, each caused by the one before."""
    events: list[Event] = [
        ChangeSubmitted(change_id=CHANGE, service="shop", version="2.0.0",
                        previous_version="1.9.3", submitted_by="ci"),
        MigrationApproved(change_id=CHANGE, service="shop", version="2.0.0",
                          previous_version="1.9.3", risk=RiskLevel.LOW,
                          approval=ApprovalPath.AUTOMATIC),
        stage(DeployStage.STAGING, None),
        stage(DeployStage.CANARY, DeployStage.STAGING, 20),
        measured(AnalysisOutcome.FAILED),
        rolled_back(),
        opened(),
        resolved(),
    ]
    times = [0, 1, 2, 10, 20, 21, 23, 50]
    chain: list[Replayed] = []
    for n, (event, second) in enumerate(zip(events, times, strict=True)):
        cause = chain[-1].id if chain else None
        chain.append(replayed(event, at(second), f"e{n}", cause, offset=n))
    return chain


# ------------------------------------------------------------------ order and graph


def test_events_are_ordered_by_time_whatever_order_they_were_read_in() -> None:
    chain = release_chain()
    timeline = build_timeline(reversed(chain))
    assert [e.id for e in timeline.events] == [e.id for e in chain]


def test_a_tie_in_time_puts_the_cause_before_its_effect() -> None:
    # Same millisecond; the effect's topic sorts first and it is read first.
    cause = replayed(opened(), at(5), "cause")
    ask = DeployRollbackRequested(change_id=CHANGE, service="shop", requested_by="incident",
                                  reason="errors", incident_id=INCIDENT)
    effect = replayed(ask, at(5), "effect", cause="cause")
    assert effect.topic < cause.topic
    timeline = build_timeline([effect, cause])
    assert [e.id for e in timeline.events] == ["cause", "effect"]


def test_parents_children_and_depth_follow_causation_ids() -> None:
    chain = release_chain()
    timeline = build_timeline(chain)
    assert timeline.parent["e0"] is None
    assert timeline.parent["e5"] == "e4"
    assert timeline.children["e4"] == ("e5",)
    assert timeline.depth["e0"] == 0 and timeline.depth["e7"] == 7
    assert [a.id for a in timeline.ancestors(timeline.event("e3"))] == ["e2", "e1", "e0"]


def test_a_cause_outside_the_set_makes_a_root() -> None:
    event = replayed(rolled_back(), at(0), "orphan", cause="not-replayed")
    timeline = build_timeline([event])
    assert timeline.parent["orphan"] is None and timeline.depth["orphan"] == 0


def test_a_duplicate_is_shown_once_and_counted() -> None:
    chain = release_chain()
    timeline = build_timeline([*chain, chain[3]])
    assert len(timeline.events) == len(chain) and timeline.duplicates == 1


def test_a_causation_cycle_is_cut_instead_of_looping() -> None:
    a = replayed(stage(DeployStage.STAGING, None), at(0), "a", cause="b")
    b = replayed(stage(DeployStage.CANARY, DeployStage.STAGING), at(1), "b", cause="a")
    timeline = build_timeline([a, b])
    roots = [e for e in timeline.events if timeline.parent[e.id] is None]
    assert len(roots) == 1
    assert sorted(timeline.depth.values()) == [0, 1]


def test_the_kind_comes_from_ce_type_not_the_topic_name() -> None:
    event = replayed(rolled_back(), at(0), "x")
    moved = Replayed("bench-replay-copy", 0, 0, "k", event.envelope, event.value)
    assert moved.kind == "deploy.rolled_back" and is_failure(moved)
    odd = Replayed("some.topic", 0, 0, "k",
                   Envelope(type="other.thing", source="s", subject="k", correlation_id="k"),
                   {})
    assert odd.kind == "some.topic"


# ------------------------------------------------------------------ failures and root cause


def test_root_cause_is_the_failed_measurement_not_the_rollback_it_caused() -> None:
    timeline = build_timeline(release_chain())
    cause = root_cause(timeline)
    assert cause is not None and cause.id == "e4"
    assert cause.kind == "deploy.analysis.measured"


def test_without_causal_links_the_earliest_failure_is_the_root_cause() -> None:
    late = replayed(rolled_back(), at(30), "late")
    early = replayed(measured(AnalysisOutcome.FAILED), at(10), "early")
    assert root_cause(build_timeline([late, early])) == early


def test_which_events_are_failures() -> None:
    red = HealthChanged(service="shop", grade=HealthGrade.RED,
                        previous_grade=HealthGrade.GREEN)
    yellow = HealthChanged(service="shop", grade=HealthGrade.YELLOW,
                           previous_grade=HealthGrade.GREEN)
    assert is_failure(replayed(red, at(0), "r"))
    assert not is_failure(replayed(yellow, at(0), "y"))
    assert is_failure(replayed(measured(AnalysisOutcome.FAILED), at(0), "f"))
    assert not is_failure(replayed(measured(AnalysisOutcome.INCONCLUSIVE), at(0), "i"))
    assert not is_failure(replayed(stage(DeployStage.CANARY, None), at(0), "s"))


def test_a_healthy_release_has_no_root_cause_and_no_durations() -> None:
    done = DeployCompleted(change_id=CHANGE, service="shop", version="2.0.0")
    timeline = build_timeline([replayed(done, at(0), "done")])
    assert root_cause(timeline) is None
    spans = durations(timeline)
    assert spans.detect is None and spans.mitigate is None and spans.resolve is None


# ------------------------------------------------------------------ actions and durations


def test_durations_run_from_the_first_failure() -> None:
    spans = durations(build_timeline(release_chain()))
    assert spans.first_failure is not None and spans.first_failure.id == "e4"
    assert spans.detect == 3.0  # measured at 20 s, incident opened at 23 s
    assert spans.mitigate == 1.0  # the automatic rollback at 21 s
    assert spans.resolve == 30.0  # resolved at 50 s


def test_an_automatic_rollback_is_an_action_that_succeeded() -> None:
    found = actions(build_timeline(release_chain()))
    assert len(found) == 1
    assert found[0].action == "rollback" and found[0].request is None
    assert found[0].succeeded is True


def test_a_requested_rollback_is_answered_by_the_rollback_it_caused() -> None:
    request = DeployRollbackRequested(change_id=CHANGE, service="shop", requested_by="incident",
                                      reason="errors", incident_id=INCIDENT)
    events = [replayed(request, at(0), "ask"),
              replayed(rolled_back(RollbackTrigger.REQUESTED), at(2), "done", cause="ask")]
    (action,) = actions(build_timeline(events))
    assert action.request is not None and action.request.id == "ask"
    assert action.outcome is not None and action.outcome.id == "done"
    assert action.succeeded is True


def test_restore_and_restart_outcomes_and_an_unanswered_request() -> None:
    restore = BackupRestoreRequested(service="shop", requested_by="incident", reason="data",
                                     incident_id=INCIDENT)
    failed = BackupRestored(service="shop", outcome=RestoreOutcome.FAILED, duration_seconds=3.0,
                            reason="pg_restore failed", incident_id=INCIDENT)
    restart = ServiceRestartRequested(service="shop", requested_by="ops", reason="red")
    green = HealthChanged(service="shop", grade=HealthGrade.GREEN,
                          previous_grade=HealthGrade.RED)
    rollback = DeployRollbackRequested(change_id=CHANGE, service="shop", requested_by="ops",
                                       reason="late")
    timeline = build_timeline([
        replayed(restore, at(0), "restore"), replayed(failed, at(5), "restored"),
        replayed(restart, at(6), "restart"), replayed(green, at(9), "green"),
        replayed(rollback, at(10), "rollback")])
    found = {a.action: a for a in actions(timeline)}
    assert found["restore"].succeeded is False
    assert found["restart"].succeeded is True
    assert found["rollback"].outcome is None and found["rollback"].succeeded is None


def test_an_incident_update_reports_an_action_outcome() -> None:
    rollback = DeployRollbackRequested(change_id=CHANGE, service="shop", requested_by="incident",
                                       reason="errors", incident_id=INCIDENT)
    update = IncidentUpdated(
        incident_id=INCIDENT, service="shop", status=IncidentStatus.MITIGATING,
        severity=IncidentSeverity.HIGH,
        entry=TimelineEntry(at=at(4), kind=TimelineKind.ACTION_FAILED, actor="incident",
                            message="rollback timed out", action=RemediationAction.ROLLBACK))
    (action,) = actions(build_timeline([replayed(rollback, at(0), "ask"),
                                        replayed(update, at(4), "upd")]))
    assert action.outcome is not None and action.outcome.id == "upd"
    assert action.succeeded is False


# ------------------------------------------------------------------ renderings


def test_summaries_say_what_happened_in_one_line() -> None:
    canary = replayed(stage(DeployStage.CANARY, DeployStage.STAGING, 20), at(0), "c")
    assert summarize(canary) == "staging → canary weight=20%"
    back = summarize(replayed(rolled_back(), at(0), "b"))
    assert "2.0.0 → 1.9.3" in back and "breach: error-rate=[0.21] broke result < 0.05" in back
    red = HealthChanged(service="shop", grade=HealthGrade.RED, previous_grade=HealthGrade.GREEN,
                        causes=(CheckResult(name="http", kind=CheckKind.HTTP,
                                            status=CheckStatus.FAIL, critical=True),))
    assert summarize(replayed(red, at(0), "h")) == "service=shop green → red checks: http"
    envelope = Envelope(type="guardians.x.v1", source="s", subject="k", correlation_id="k")
    assert "not a JSON object" in summarize(Replayed("x", 0, 0, "k", envelope, None, "oops"))
    assert summarize(Replayed("x", 0, 0, "k", envelope, {"a": 1, "b": "two"})) == "a=1 b=two"


def test_text_indents_each_event_under_its_cause_and_names_the_root_cause() -> None:
    text = render_text(build_timeline(release_chain()), "header")
    lines = text.splitlines()
    assert lines[0] == "header"
    column = len("2026-11-28 09:30:00.000  ")
    assert lines[1][column:].startswith("change.submitted ")
    assert lines[2][column:].startswith("└ migration.approved ")
    assert lines[3][column:].startswith("  └ deploy.stage.changed ")
    assert lines[-1].startswith("root cause candidate: deploy.analysis.measured")


def test_json_carries_envelopes_values_and_the_graph() -> None:
    document = to_json(build_timeline(release_chain()), {"selector": {"change": CHANGE}})
    assert document["selector"] == {"change": CHANGE}
    assert document["root_cause"] == "e4"
    events = document["events"]
    assert [e["envelope"]["id"] for e in events] == [f"e{n}" for n in range(8)]
    assert events[5]["parent"] == "e4" and events[4]["children"] == ["e5"]
    assert events[5]["value"]["trigger"] == "analysis_failed"
    assert events[4]["failure"] is True
    json.dumps(document)  # serialisable as it is


def test_the_markdown_report_has_every_section() -> None:
    report = render_markdown(build_timeline(release_chain()), f"change {CHANGE}")
    headings = [line for line in report.splitlines() if line.startswith("#")]
    assert headings == [f"# Post-incident report: change {CHANGE}", "## Summary",
                        "## Root-cause candidate", "## Timeline", "## Impact", "## Actions",
                        "## Durations"]
    assert "| Outcome | rolled back at canary; incident inc-1 resolved by incident |" in report
    assert "| Version | 2.0.0 (previous 1.9.3) |" in report
    assert "**deploy.analysis.measured**" in report
    assert "canary reached 20% of traffic" in report and "rolled back 2.0.0 → 1.9.3" in report
    assert "| detect | deploy.analysis.measured" in report and "| 3.0 |" in report
    assert "| resolve |" in report and "| 30.0 |" in report
    assert "detect 2.0 s, mitigate 0.0 s, resolve 30.0 s" in report
    assert report.count("\n| 2026-11-28 ") == 8  # one timeline row per event


def test_the_report_says_so_when_nothing_failed() -> None:
    done = DeployCompleted(change_id=CHANGE, service="shop", version="2.0.0")
    report = render_markdown(build_timeline([replayed(done, at(0), "d")]), "change x")
    assert "No failing event among the replayed events." in report
    assert "No rollback, restore or restart" in report
    assert "| Outcome | deployed |" in report


# ------------------------------------------------------------------ the command's arguments


def test_times_are_iso_or_ages() -> None:
    now = datetime(2026, 11, 28, 12, 0, tzinfo=UTC)
    assert parse_time("2h", now) == now - timedelta(hours=2)
    assert parse_time("90s", now) == now - timedelta(seconds=90)
    assert parse_time("2026-11-28T09:30:00Z") == datetime(2026, 11, 28, 9, 30, tzinfo=UTC)
    assert parse_time("2026-11-28T09:30:00").tzinfo is UTC  # no offset: UTC
    with pytest.raises(ReplayError, match="not a time"):
        parse_time("yesterday")


def test_a_selector_needs_exactly_one_subject_or_a_window() -> None:
    with pytest.raises(ReplayError, match="nothing to replay"):
        Selector()
    with pytest.raises(ReplayError, match="not both"):
        Selector(change="a", incident="b")
    with pytest.raises(ReplayError, match="before --since"):
        Selector(since=at(10), until=at(0))
    assert Selector(since=at(0)).matches_all
    assert not Selector(change="a", since=at(0)).matches_all


def test_topics_are_checked_against_the_registry() -> None:
    assert check_topics(["deploy.failed,incident.opened", "deploy.failed.dlq"]) == [
        "deploy.failed", "incident.opened", "deploy.failed.dlq"]
    with pytest.raises(ReplayError, match=r"unknown topic\(s\): nope"):
        check_topics(["nope"])


def test_the_index_finds_events_by_id_cause_or_key() -> None:
    index = _Index()
    index.add(b"id-1", b"cause-1", b"key-1", 0, 10)
    index.add(b"id-2", None, b"key-2", 1, 20)
    index.add(b"id-3", b"id-2", None, 2, 30)
    assert index.find(["id-2"], [], []) == {(1, 20)}
    assert index.find([], ["id-2"], []) == {(2, 30)}
    assert index.find([], [], ["key-1"]) == {(0, 10)}
    assert index.find([], [], []) == set()
