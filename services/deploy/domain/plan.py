"""The rollout plan of one change: the service's policy plus the change's monitoring plan.

Resolved once, when the change is approved, and stored with the rollout: a rollout in
flight keeps the plan it started with even if guardians.yaml changes under it.

The migration guardian's monitoring plan names metrics (`error-rate`, `latency-p99`) and a
duration. A named metric that one of the service's analysis templates defines joins the
production-monitoring analysis; one the plan gives a query and condition for is added as
given; any other is listed as unwatched, and said so on the stage event, never dropped
in silence.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

from schemas.events.migration import MonitoringPlan
from services.runtime.config import AnalysisMetric, AnalysisTemplate, DeployPolicy

MONITORING_INTERVAL_S = 5.0
"""Interval of a monitoring analysis built only from the monitoring plan's metrics."""


@dataclass(frozen=True)
class RolloutPlan:
    policy: DeployPolicy
    monitoring_seconds: float
    monitoring: AnalysisTemplate | None
    """Measured on production after promotion; `count` fits the monitoring window."""
    unwatched: tuple[str, ...] = ()
    """Monitoring-plan metrics the guardian cannot measure, with why."""

    def to_json(self) -> dict[str, Any]:
        return {
            "policy": self.policy.model_dump(mode="json"),
            "monitoring_seconds": self.monitoring_seconds,
            "monitoring": self.monitoring.model_dump(mode="json") if self.monitoring else None,
            "unwatched": list(self.unwatched),
        }

    @classmethod
    def from_json(cls, raw: dict[str, Any]) -> RolloutPlan:
        return cls(
            policy=DeployPolicy.model_validate(raw["policy"]),
            monitoring_seconds=float(raw["monitoring_seconds"]),
            monitoring=(AnalysisTemplate.model_validate(raw["monitoring"])
                        if raw.get("monitoring") else None),
            unwatched=tuple(raw.get("unwatched", ())),
        )

    def template(self, name: str) -> AnalysisTemplate:
        return self.policy.analysis[name]


def resolve(policy: DeployPolicy, watch: MonitoringPlan | None) -> RolloutPlan:
    seconds = max(policy.monitoring.seconds, watch.duration_seconds if watch else 0.0)
    base = (policy.analysis[policy.monitoring.analysis]
            if policy.monitoring.analysis is not None else None)
    metrics: list[AnalysisMetric] = list(base.metrics) if base else []
    unwatched: list[str] = []
    known = {m.name: m for t in policy.analysis.values() for m in t.metrics}
    for wanted in watch.metrics if watch else ():
        have = next((m for m in metrics if m.name == wanted.name), None)
        if have is not None:
            if wanted.condition:
                metrics[metrics.index(have)] = have.model_copy(
                    update={"success": wanted.condition})
            continue
        if wanted.name in known:
            found = known[wanted.name]
            metrics.append(found.model_copy(update={"success": wanted.condition})
                           if wanted.condition else found)
        elif wanted.query and wanted.condition:
            metrics.append(AnalysisMetric(name=wanted.name, query=wanted.query,
                                          success=wanted.condition))
        else:
            unwatched.append(f"{wanted.name}: no analysis template defines it and the "
                             f"monitoring plan gives no query and condition")
    judged: list[AnalysisMetric] = []
    for metric in metrics:
        if metric.success is None and metric.failure is None:
            unwatched.append(f"{metric.name}: only a baseline comparison, and production "
                             f"has no baseline serving traffic")
        else:
            judged.append(metric.model_copy(update={"baseline": None}))
    monitoring = None
    if judged and seconds > 0:
        template = base or AnalysisTemplate(metrics=judged, interval_seconds=MONITORING_INTERVAL_S)
        count = max(1, math.floor(seconds / template.interval_seconds))
        monitoring = template.model_copy(update={"metrics": judged, "count": count})
    return RolloutPlan(policy, seconds, monitoring, tuple(unwatched))
