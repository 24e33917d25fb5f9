"""The demo story's arithmetic: a change's stages and each guardian's own time."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from demo.scenario import Seen, _outcome, pipeline_times

T0 = datetime(2026, 11, 28, 12, 0, tzinfo=UTC)


def _seen(events: list[tuple[float, str, dict[str, Any]]]) -> Seen:
    seen = Seen()
    for seconds, topic, body in events:
        seen.add(topic, T0 + timedelta(seconds=seconds), {"change_id": "c1", **body}, "c1")
    return seen


def test_configured_waits_are_not_the_pipelines_own_time() -> None:
    seen = _seen([
        (0.0, "change.submitted", {}),
        (1.5, "migration.approved", {}),
        (2.0, "deploy.stage.changed", {"stage": "staging"}),
        (3.0, "deploy.stage.changed", {"stage": "canary", "canary_weight": 0}),
        (3.5, "deploy.stage.changed", {"stage": "canary", "canary_weight": 20}),
        (13.5, "deploy.stage.changed", {"stage": "production"}),  # 10 s of analysis
        (13.6, "deploy.stage.changed", {"stage": "monitoring"}),
        (25.6, "deploy.stage.changed", {"stage": "completed"}),  # 12 s window
        (25.7, "deploy.completed", {}),
        (31.7, "backup.verified", {}),
        (38.0, "infra.ready", {"gate_seconds": 6.0}),
    ])
    own = pipeline_times(seen, "c1")
    assert own["migration"] == 1.5
    assert abs(own["deploy"] - (25.7 - 1.5 - 10.0 - 12.0)) < 1e-9
    assert own["backup"] == 6.0
    assert abs(own["process"] - 0.3) < 1e-9
    assert "incident" not in own
    assert _outcome(seen, "c1") == "infra ready"


def test_a_rolled_back_change_counts_the_incident_service() -> None:
    seen = _seen([(0.0, "change.submitted", {}), (1.0, "migration.approved", {}),
                  (9.0, "deploy.rolled_back", {}), (9.4, "incident.opened", {}),
                  (9.6, "incident.resolved", {})])
    own = pipeline_times(seen, "c1")
    assert abs(own["incident"] - 0.6) < 1e-9 and own["deploy"] == 8.0
    assert _outcome(seen, "c1") == "rolled back, incident resolved"
