"""The rollout driver: walks each rollout's plan, one checkpointed step at a time.

A rollout is a durable state machine in the `rollouts` table. The driver leases the
rollouts that need work (one driver per rollout, across replicas), and for each runs
`Rollout.run`, which walks the plan: staging, staging tests, pre-rollout hooks, the canary
and its steps (set weight, pause, pause until decided, analysis), promotion, production
monitoring, and the end (completed, rolled back, failed). After each step it writes a
checkpoint and that step's events in one transaction; after a crash the walk starts again
from the checkpoint, and target actions are idempotent per change, so no step is repeated
and none is lost.

Waits (pauses, analysis intervals, decisions) poll the row for interrupts a few times a
second: a rollback request or an abort acts at once, skipping the remaining steps; that
is the fast emergency path.
"""

from __future__ import annotations

import asyncio
import json
import logging
import re
import time
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from schemas.base import Event
from schemas.events.deploy import (
    AnalysisOutcome,
    DeployAnalysisMeasured,
    DeployCompleted,
    DeployFailed,
    DeployFailure,
    DeployRolledBack,
    DeployStage,
    DeployStageChanged,
    MetricBreach,
    RollbackTrigger,
    TestOutcome,
)
from schemas.events.ops import AlertSeverity, OpsAlert
from schemas.events.ops import Guardian as GuardianName
from services.deploy import store
from services.deploy.adapters.prometheus import PrometheusClient
from services.deploy.adapters.staging_tests import run_tests
from services.deploy.adapters.targets import Env, Release, Target, TargetError, make_target
from services.deploy.adapters.webhooks import call_webhook
from services.deploy.domain.analysis import (
    Measurement,
    RunState,
    RunVerdict,
    Sample,
    breach_of,
    measure,
    pending_metrics,
    record,
    render_query,
    start_run,
    template_problems,
)
from services.deploy.domain.plan import RolloutPlan
from services.runtime import Guardian
from services.runtime.config import AnalysisMetric, AnalysisTemplate, LocalTarget, Webhook
from services.runtime.leases import LeaseDriver

log = logging.getLogger(__name__)
TICK_S = 0.2
"""How often a waiting rollout looks for a decision or a rollback request."""
CLAIM_INTERVAL_S = 0.5
DEFAULT_READY_TIMEOUT_S = 120.0
CONFIRM_RETRY_S = 5.0


class RollbackNow(Exception):  # noqa: N818 (a signal that unwinds the walk, not an error)
    def __init__(self, trigger: RollbackTrigger, reason: str, *,
                 breach: MetricBreach | None = None, requested_by: str | None = None,
                 incident_id: str | None = None, decided_at: float | None = None) -> None:
        super().__init__(reason)
        self.trigger = trigger
        self.reason = reason
        self.breach = breach
        self.requested_by = requested_by
        self.incident_id = incident_id
        self.decided_at = decided_at if decided_at is not None else time.monotonic()


class Failed(Exception):  # noqa: N818 (the rollout ends failed: a signal, not a bug)
    def __init__(self, failure: DeployFailure, reason: str, stage: DeployStage, *,
                 env: str | None = None) -> None:
        super().__init__(reason)
        self.failure = failure
        self.reason = reason
        self.stage = stage
        self.env = env


@dataclass
class Decided:
    promote: bool
    by: str
    reason: str | None


def _now() -> datetime:
    return datetime.now(UTC)


def _ts(value: float) -> str:
    return datetime.fromtimestamp(value, UTC).isoformat()


class Driver:
    """Runs each leased rollout in a task (the leases: services/runtime/leases.py)."""

    def __init__(self, guardian: Guardian) -> None:
        self.guardian = guardian
        self.leases = LeaseDriver(guardian, "rollouts", "change_id", store.claim, self._drive,
                                  lease_seconds=store.LEASE_SECONDS,
                                  interval=CLAIM_INTERVAL_S)
        self._prometheus: PrometheusClient | None = None
        self._targets: dict[str, Target] = {}

    @property
    def owner(self) -> str:
        return self.leases.owner

    @property
    def prometheus(self) -> PrometheusClient:
        if self._prometheus is None:
            self._prometheus = PrometheusClient(self.guardian.settings.prometheus_url)
        return self._prometheus

    def target(self, service: str, plan: RolloutPlan) -> Target:
        key = f"{service}:{plan.policy.target.model_dump_json() if plan.policy.target else ''}"
        if key not in self._targets:
            self._targets[key] = make_target(plan.policy, self.guardian.settings)
        return self._targets[key]

    async def run(self) -> None:
        try:
            await self.leases.run()
        finally:
            for target in self._targets.values():
                await target.close()
            if self._prometheus is not None:
                await self._prometheus.aclose()

    async def _drive(self, change_id: str) -> None:
        pool = self.guardian.pool
        assert pool is not None
        async with pool.acquire() as conn:
            row = await store.get(conn, change_id)
        if row is not None:
            await Rollout(self, row).run()


class Rollout:
    """One rollout being walked by this driver."""

    def __init__(self, driver: Driver, row: store.RolloutRow) -> None:
        self.driver = driver
        self.row = row
        self.plan = row.plan
        self.policy = row.plan.policy
        self.progress: dict[str, Any] = dict(row.progress)
        self.status = row.status
        self.stage = DeployStage(row.stage) if row.stage != "queued" else None
        self.measured_at = time.monotonic()
        """When the last measurement came back: a rollback's clock starts there."""
        self.release = Release(row.change_id, row.service, row.version, row.artifact,
                               row.previous_version)

    @property
    def guardian(self) -> Guardian:
        return self.driver.guardian

    # -- checkpoints -----------------------------------------------------------------------

    async def save(self, *events: Event, status: str | None = None,
                   stage: DeployStage | None = None, finished: bool = False,
                   outcome: str | None = None, clear_decision: bool = False,
                   clear_rollback: bool = False) -> None:
        if status is not None:
            self.status = status
        if stage is not None:
            self.stage = stage
        async with self.guardian.transaction() as ctx:
            # Each step's events follow from the previous step's (the first from the
            # approval), so a replay rebuilds the rollout as one causal chain.
            ctx.causation_id = self.progress.get("last_event") or self.row.cause_id
            sent = [ctx.emit(event) for event in events]
            if sent:
                self.progress["last_event"] = sent[-1].id
            await store.save(
                ctx.conn, self.driver.owner, self.row.change_id, status=self.status,
                stage=(self.stage.value if self.stage else "queued"), progress=self.progress,
                finished=finished, outcome=outcome, clear_decision=clear_decision,
                clear_rollback=clear_rollback,
            )

    def stage_event(self, stage: DeployStage, reason: str | None = None, **extra: Any
                    ) -> DeployStageChanged:
        return DeployStageChanged(
            change_id=self.row.change_id, service=self.row.service, version=self.row.version,
            stage=stage, previous_stage=self.stage, reason=reason, **extra,
        )

    async def move(self, stage: DeployStage, reason: str | None = None, *,
                   status: str = "running", **extra: Any) -> None:
        await self.save(self.stage_event(stage, reason, **extra), status=status, stage=stage)

    def done(self, phase: str) -> bool:
        return phase in self.progress.get("done", [])

    def mark(self, phase: str) -> None:
        self.progress.setdefault("done", []).append(phase)

    # -- interrupts and waits ------------------------------------------------------------------

    async def interrupts(self) -> tuple[dict[str, Any] | None, dict[str, Any] | None]:
        pool = self.guardian.pool
        assert pool is not None
        async with pool.acquire() as conn:
            return await store.interrupts(conn, self.row.change_id)

    async def check_rollback(self) -> None:
        """Raise RollbackNow for a rollback request or an abort that arrived."""
        decision, request = await self.interrupts()
        if request is not None:
            raise RollbackNow(RollbackTrigger.REQUESTED, request.get("reason") or "requested",
                              requested_by=request.get("requested_by"),
                              incident_id=request.get("incident_id"))
        if decision is not None and decision.get("decision") == "abort":
            raise RollbackNow(RollbackTrigger.ABORTED,
                              f"aborted by {decision.get('decided_by')}"
                              + (f": {decision['reason']}" if decision.get("reason") else ""),
                              requested_by=decision.get("decided_by"))

    async def sleep_until(self, deadline: float) -> None:
        """Wait until the wall-clock `deadline`, acting on interrupts as they come."""
        while True:
            await self.check_rollback()
            left = deadline - time.time()
            if left <= 0:
                return
            await asyncio.sleep(min(TICK_S, left))

    async def await_decision(self, deadline: float) -> Decided | None:
        """A promote (Decided) or None at the deadline; an abort raises RollbackNow."""
        while time.time() < deadline:
            await self.check_rollback()
            decision, _ = await self.interrupts()
            if decision is not None and decision.get("decision") == "promote":
                return Decided(True, str(decision.get("decided_by")), decision.get("reason"))
            await asyncio.sleep(TICK_S)
        return None

    # -- the walk ------------------------------------------------------------------------------

    async def run(self) -> None:
        try:
            self.target = self.driver.target(self.row.service, self.plan)
        except TargetError as exc:
            await self.fail(Failed(DeployFailure.TARGET_ERROR, str(exc), DeployStage.STAGING))
            return
        pending = self.progress.get("rolling_back")
        if pending is not None:
            await self.roll_back(RollbackNow(
                RollbackTrigger(pending["trigger"]), pending["reason"],
                breach=(MetricBreach.model_validate_json(json.dumps(pending["breach"]))
                        if pending.get("breach") else None),
                requested_by=pending.get("requested_by"),
                incident_id=pending.get("incident_id")))
            return
        if self.status == "completed":
            await self.rollback_completed()
            return
        problems = [f"analysis {name}: {problem}"
                    for name, template in self.policy.analysis.items()
                    for problem in template_problems(template)]
        if self.plan.monitoring is not None:
            problems += [f"production monitoring: {problem}"
                         for problem in template_problems(self.plan.monitoring)]
        if problems and self.stage is None:
            await self.fail(Failed(DeployFailure.CONFIG_ERROR, "; ".join(problems),
                                   DeployStage.STAGING))
            return
        try:
            await self.walk()
        except RollbackNow as now:
            await self.roll_back(now)
        except Failed as failed:
            await self.fail(failed)
        except TargetError as exc:
            await self.fail(Failed(DeployFailure.TARGET_ERROR, str(exc),
                                   self.stage or DeployStage.STAGING))

    async def walk(self) -> None:
        if self.stage is None:
            self.progress["started"] = time.time()
            await self.move(DeployStage.STAGING, "deploying to staging", environment="staging")
        await self.check_rollback()
        if not self.done("staging"):
            await self.deploy_staging()
        if not self.done("tests"):
            await self.staging_tests()
        if not self.done("pre_rollout"):
            await self.hooks(self.policy.webhooks.pre_rollout, "pre_rollout", gate=True)
            self.mark("pre_rollout")
            await self.save()
        if not self.done("canary"):
            await self.start_canary()
        if not self.done("steps"):
            await self.canary_steps()
        if not self.done("promoted"):
            await self.promote()
        if not self.done("monitored"):
            await self.monitor()
        await self.complete()

    async def deploy_staging(self) -> None:
        await self.target.deploy(Env.STAGING, self.release)
        await self.wait_ready(Env.STAGING, DeployStage.STAGING)
        self.mark("staging")
        await self.move(DeployStage.STAGING_TESTS, "staging is ready; running staging tests",
                        environment="staging")

    async def staging_tests(self) -> None:
        run = await run_tests(self.policy.staging_tests, self.release,
                              self.target.staging_url())
        if run.outcome is not TestOutcome.PASS:
            await self.save(self.stage_event(DeployStage.STAGING_TESTS, run.reason,
                                             environment="staging", tests=run))
            raise Failed(DeployFailure.STAGING_TESTS_FAILED,
                         f"staging tests failed: {run.reason}", DeployStage.STAGING_TESTS,
                         env="staging")
        self.mark("tests")
        await self.save(self.stage_event(DeployStage.STAGING_TESTS, run.reason,
                                         environment="staging", tests=run))

    async def wait_ready(self, env: Env, stage: DeployStage) -> None:
        config = self.policy.target
        timeout = (config.ready_timeout_seconds if isinstance(config, LocalTarget)
                   else DEFAULT_READY_TIMEOUT_S)
        deadline = time.monotonic() + timeout
        last = "not probed"
        while time.monotonic() < deadline:
            await self.check_rollback()
            readiness = await self.target.ready(env, self.release)
            if readiness.ready:
                return
            last = readiness.reason
            if readiness.final:
                break
            await asyncio.sleep(0.25)
        else:
            last = f"not ready within {timeout:g} s; last probe: {last}"
        if env is Env.STAGING:
            raise Failed(DeployFailure.STAGING_NOT_READY,
                         f"{self.row.version} never became ready in staging: {last}", stage,
                         env="staging")
        raise Failed(DeployFailure.CANARY_NOT_READY,
                     f"the canary {self.row.version} never became ready: {last}", stage,
                     env="production")

    async def hooks(self, hooks: list[Webhook], kind: str, *, gate: bool) -> None:
        for hook in hooks:
            ok, why = await call_webhook(hook, kind, self.release)
            if not ok and gate:
                raise Failed(DeployFailure.TARGET_ERROR, f"{kind} webhook refused: {why}",
                             self.stage or DeployStage.STAGING)
            if not ok:
                await self.save(self.alert(AlertSeverity.WARNING, f"{kind} webhook failed",
                                           why))

    async def start_canary(self) -> None:
        stable = await self.target.stable_version(self.release)
        self.progress["stable_version"] = stable
        await self.target.deploy(Env.CANARY, self.release)
        await self.wait_ready(Env.CANARY, DeployStage.CANARY)
        self.mark("canary")
        if stable is None:
            # As Argo Rollouts: a first release has nothing to compare a canary with.
            self.mark("steps")
            await self.save()
            return
        self.progress["step"] = 0
        await self.move(DeployStage.CANARY, f"canary {self.row.version} is ready beside "
                        f"{stable}", environment="production", canary_weight=0)

    async def canary_steps(self) -> None:
        steps = self.policy.steps
        while (i := int(self.progress.get("step", 0))) < len(steps):
            step = steps[i]
            await self.check_rollback()
            if step.set_weight is not None:
                await self.target.set_weight(self.release, step.set_weight)
                self.progress.update(step=i + 1, weight=step.set_weight)
                await self.move(DeployStage.CANARY, f"canary weight {step.set_weight}%",
                                environment="production", canary_weight=step.set_weight,
                                step=i)
            elif step.pause is not None and step.pause.seconds is not None:
                started = self.progress.setdefault("step_started", time.time())
                await self.save()
                await self.sleep_until(started + step.pause.seconds)
                self.progress.pop("step_started", None)
                self.progress["step"] = i + 1
                await self.save()
            elif step.pause is not None:
                await self.pause_for_decision(f"step {i}: paused until "
                                              "`guardians rollout promote`")
                self.progress["step"] = i + 1
                await self.save(clear_decision=True)
            else:
                assert step.analysis is not None
                verdict = await self.analyse(step.analysis, self.plan.template(step.analysis),
                                             DeployStage.CANARY, canary=True)
                await self.judge(verdict, DeployStage.CANARY,
                                 RollbackTrigger.ANALYSIS_FAILED)
                self.progress["step"] = i + 1
                await self.save(clear_decision=True)
        self.mark("steps")
        await self.save()

    async def judge(self, verdict: RunVerdict, stage: DeployStage,
                    on_failure: RollbackTrigger) -> None:
        """Go on after a success; roll back after a failure; wait for a decision after an
        inconclusive run (promote: go on, with doubled production monitoring)."""
        if verdict.outcome is AnalysisOutcome.SUCCESSFUL:
            return
        query = self.progress.pop("breach_query", "")
        breach = breach_of(verdict.breach, query) if verdict.breach else None
        if verdict.outcome is AnalysisOutcome.FAILED:
            raise RollbackNow(on_failure, f"analysis failed: {verdict.reason}", breach=breach,
                              decided_at=self.measured_at)
        await self.pause_for_decision(f"analysis inconclusive: {verdict.reason}")
        self.progress["extra_monitoring"] = True

    async def pause_for_decision(self, reason: str) -> None:
        deadline = self.progress.setdefault(
            "decision_deadline", time.time() + self.policy.inconclusive_timeout_seconds)
        if self.stage is not DeployStage.PAUSED:
            self.progress["paused_from"] = self.stage.value if self.stage else None
            await self.save(
                self.stage_event(DeployStage.PAUSED, f"{reason}; deciding by "
                                 f"{_ts(deadline)} (`guardians rollout promote|abort "
                                 f"{self.row.change_id}`), else it rolls back",
                                 canary_weight=self.progress.get("weight")),
                self.alert(AlertSeverity.WARNING, "rollout paused for a decision", reason),
                status="paused", stage=DeployStage.PAUSED,
            )
        decided = await self.await_decision(deadline)
        if decided is None:
            raise RollbackNow(RollbackTrigger.INCONCLUSIVE_TIMEOUT,
                              f"{reason}; no decision by {_ts(deadline)}")
        self.progress.pop("decision_deadline", None)
        back = DeployStage(self.progress.pop("paused_from", None) or DeployStage.CANARY)
        await self.save(self.stage_event(back, f"promoted by {decided.by}"
                                         + (f": {decided.reason}" if decided.reason else ""),
                                         canary_weight=self.progress.get("weight")),
                        status="running", stage=back, clear_decision=True)

    async def promote(self) -> None:
        if self.policy.webhooks.confirm_promotion:
            deadline = self.progress.setdefault(
                "confirm_deadline", time.time() + self.policy.inconclusive_timeout_seconds)
            while True:
                failures = [why for hook in self.policy.webhooks.confirm_promotion
                            for ok, why in [await call_webhook(hook, "confirm_promotion",
                                                               self.release)] if not ok]
                if not failures:
                    break
                if time.time() > deadline:
                    raise RollbackNow(RollbackTrigger.INCONCLUSIVE_TIMEOUT,
                                      f"promotion never confirmed: {failures[0]}")
                await self.sleep_until(time.time() + CONFIRM_RETRY_S)
        await self.target.promote(self.release)
        self.mark("promoted")
        self.progress["weight"] = 100
        self.progress["promoted_at"] = time.time()
        await self.move(DeployStage.PRODUCTION, f"{self.row.version} serves all production "
                        "traffic", environment="production", canary_weight=100)

    async def monitor(self) -> None:
        seconds = self.plan.monitoring_seconds * (2 if self.progress.get("extra_monitoring")
                                                  else 1)
        if self.stage is not DeployStage.MONITORING:
            unwatched = "; unwatched: " + "; ".join(self.plan.unwatched) \
                if self.plan.unwatched else ""
            self.progress["monitor_until"] = time.time() + seconds
            await self.move(DeployStage.MONITORING,
                            f"watching production for {seconds:g} s{unwatched}",
                            environment="production", canary_weight=100)
        template = self.plan.monitoring
        if template is not None:
            if self.progress.get("extra_monitoring"):
                template = template.model_copy(update={"count": template.count * 2})
            verdict = await self.analyse("production-monitoring", template,
                                         DeployStage.MONITORING, canary=False)
            await self.judge(verdict, DeployStage.MONITORING,
                             RollbackTrigger.PRODUCTION_FAILED)
        await self.sleep_until(float(self.progress.get("monitor_until", 0)))
        self.mark("monitored")
        await self.save()

    async def complete(self) -> None:
        await self.target.finish(self.release)
        await self.hooks(self.policy.webhooks.post_rollout, "post_rollout", gate=False)
        started = float(self.progress.get("started", time.time()))
        await self.save(
            self.stage_event(DeployStage.COMPLETED, "production monitoring passed",
                             environment="production", canary_weight=100),
            DeployCompleted(
                change_id=self.row.change_id, service=self.row.service,
                version=self.row.version, previous_version=self.row.previous_version,
                artifact=self.row.artifact, started_at=datetime.fromtimestamp(started, UTC),
                duration_seconds=max(0.0, time.time() - started),
            ),
            status="completed", stage=DeployStage.COMPLETED, finished=True,
            outcome="completed", clear_decision=True,
        )

    # -- analysis ------------------------------------------------------------------------------

    async def analyse(self, name: str, template: AnalysisTemplate, stage: DeployStage, *,
                      canary: bool) -> RunVerdict:
        """Run (or resume) one analysis run to its verdict, a measurement per interval."""
        run = self.progress.get("analysis")
        if run is None or run.get("name") != name or run.get("stage") != stage.value:
            run = {"name": name, "stage": stage.value,
                   "state": start_run(template).to_json(),
                   "next_at": time.time() + template.initial_delay_seconds}
            self.progress["analysis"] = run
            await self.save()
        state = RunState.from_json(run["state"])
        while True:
            await self.sleep_until(float(run["next_at"]))
            measurements, queries = await self.measure_all(
                template, pending_metrics(template, state), canary)
            self.measured_at = time.monotonic()
            state, verdict = record(template, state, measurements)
            run["state"] = state.to_json()
            run["next_at"] = time.time() + template.interval_seconds
            events = [self.measured_event(name, stage, m, queries[m.metric])
                      for m in measurements]
            if verdict is not None:
                self.progress.pop("analysis", None)
                if verdict.breach is not None:
                    self.progress["breach_query"] = queries.get(verdict.breach.metric, "")
            await self.save(*events)
            if verdict is not None:
                return verdict

    def query_values(self, track: str, version: str | None, template: AnalysisTemplate
                     ) -> dict[str, str]:
        return {
            "service": self.row.service, "version": version or "",
            "stable_version": str(self.progress.get("stable_version") or ""),
            "canary_version": self.row.version, "track": track,
            "env": "production", "change_id": self.row.change_id,
            "window": template.window,
        }

    async def measure_all(self, template: AnalysisTemplate,
                          metrics: Sequence[AnalysisMetric], canary: bool
                          ) -> tuple[list[Measurement], dict[str, str]]:
        track = "canary" if canary else "stable"
        values = self.query_values(track, self.row.version, template)
        queries = {m.name: render_query(m.query, values) for m in metrics}
        results = await asyncio.gather(*(self.measure_one(m, template, queries[m.name],
                                                          canary)
                                         for m in metrics))
        return list(results), queries

    async def measure_one(self, metric: AnalysisMetric, template: AnalysisTemplate,
                          query: str, canary: bool) -> Measurement:
        prometheus = self.driver.prometheus
        sample = await prometheus.query(query)
        baseline: Sample | None = None
        canary_series = baseline_series = None
        if metric.baseline is not None and canary:
            stable = self.progress.get("stable_version")
            base_query = render_query(metric.query,
                                      self.query_values("stable", stable, template))
            if metric.baseline.method == "mann_whitney":
                end = _now()
                seconds = max(template.interval_seconds, _duration_s(template.window))
                start = datetime.fromtimestamp(end.timestamp() - seconds, UTC)
                canary_series, baseline_series = await asyncio.gather(
                    prometheus.query_range(query, start, end, 1.0),
                    prometheus.query_range(base_query, start, end, 1.0))
            baseline = await prometheus.query(base_query)
        return measure(metric, sample, baseline, canary_series, baseline_series)

    def measured_event(self, name: str, stage: DeployStage, m: Measurement, query: str
                       ) -> DeployAnalysisMeasured:
        return DeployAnalysisMeasured(
            change_id=self.row.change_id, service=self.row.service, version=self.row.version,
            stage=stage, analysis=name, metric=m.metric, query=query,
            condition=m.condition or "-", values=m.values, baseline_values=m.baseline_values,
            outcome=m.outcome, error=m.error or (m.reason if m.outcome is not
                                                 AnalysisOutcome.SUCCESSFUL else None),
            critical=m.critical, canary_weight=self.progress.get("weight"),
        )

    # -- endings -------------------------------------------------------------------------------

    async def roll_back(self, now: RollbackNow) -> None:
        pending = self.progress.get("rolling_back")
        if pending is None:
            # Recorded with the `rolling_back` checkpoint: a guardian killed mid-rollback
            # finishes this rollback on restart instead of walking the plan again.
            stage = self.stage or DeployStage.STAGING
            self.progress["rolling_back"] = {
                "trigger": now.trigger.value, "reason": now.reason, "stage": stage.value,
                "breach": now.breach.model_dump(mode="json") if now.breach else None,
                "requested_by": now.requested_by, "incident_id": now.incident_id,
            }
            await self.move(DeployStage.ROLLING_BACK, now.reason,
                            environment="production" if self.done("canary") else "staging")
        else:
            stage = DeployStage(pending["stage"])
        promoted = self.done("promoted")
        try:
            restored = await self.target.rollback(self.release)
        except TargetError as exc:
            await self.save(
                DeployFailed(change_id=self.row.change_id, service=self.row.service,
                             version=self.row.version, stage=stage,
                             failure=DeployFailure.ROLLBACK_FAILED,
                             reason=f"rollback failed: {exc} (after: {now.reason})",
                             breach=now.breach),
                self.alert(AlertSeverity.CRITICAL, "rollback failed", str(exc)),
                status="failed", stage=DeployStage.FAILED, finished=True,
                outcome="rollback_failed", clear_rollback=True, clear_decision=True,
            )
            return
        seconds = max(0.0, restored.switched_at - now.decided_at)
        events: list[Event] = [
            self.stage_event(DeployStage.ROLLED_BACK, now.reason, canary_weight=0),
            DeployRolledBack(
                change_id=self.row.change_id, service=self.row.service,
                version=self.row.version, restored_version=restored.version, stage=stage,
                trigger=now.trigger, reason=now.reason, breach=now.breach,
                requested_by=now.requested_by, incident_id=now.incident_id,
                rollback_seconds=seconds,
            ),
        ]
        if now.trigger is RollbackTrigger.PRODUCTION_FAILED or (
                promoted and now.trigger is not RollbackTrigger.REQUESTED):
            events.append(DeployFailed(
                change_id=self.row.change_id, service=self.row.service,
                version=self.row.version, stage=stage, failure=DeployFailure.PRODUCTION_FAILED,
                reason=now.reason, environment="production", breach=now.breach,
                rolled_back=True, restored_version=restored.version,
            ))
        self.progress["rollback_seconds"] = seconds
        await self.save(*events, status="rolled_back", stage=DeployStage.ROLLED_BACK,
                        finished=True, outcome=now.trigger.value, clear_rollback=True,
                        clear_decision=True)
        await self.hooks(self.policy.webhooks.rollback, "rollback", gate=False)

    async def rollback_completed(self) -> None:
        """A rollback request for a completed deploy: straight back, no steps."""
        request = self.row.rollback_request or {}
        self.progress.setdefault("done", []).append("promoted")
        await self.roll_back(RollbackNow(
            RollbackTrigger.REQUESTED, str(request.get("reason") or "requested"),
            requested_by=request.get("requested_by"), incident_id=request.get("incident_id")))

    async def fail(self, failed: Failed) -> None:
        events: list[Event] = [self.stage_event(DeployStage.FAILED, failed.reason)]
        rolled_back, restored = False, None
        if not hasattr(self, "target"):
            pass  # no target could be made: nothing was deployed
        elif self.done("canary") or failed.failure is DeployFailure.CANARY_NOT_READY:
            try:  # never leave a half-started canary behind, and say so
                restored = (await self.target.rollback(self.release)).version
                rolled_back = True
            except TargetError as exc:
                failed.reason += f"; the canary could not be removed: {exc}"
        else:
            try:
                await self.target.rollback(self.release)  # stops the staging instance
            except TargetError as exc:
                log.warning("staging of %s not cleaned up: %s", self.row.change_id, exc)
        events.append(DeployFailed(
            change_id=self.row.change_id, service=self.row.service, version=self.row.version,
            stage=failed.stage, failure=failed.failure, reason=failed.reason,
            environment=failed.env, rolled_back=rolled_back, restored_version=restored,
        ))
        await self.save(*events, status="failed", stage=DeployStage.FAILED, finished=True,
                        outcome=failed.failure.value, clear_decision=True,
                        clear_rollback=True)

    def alert(self, severity: AlertSeverity, summary: str, detail: str) -> OpsAlert:
        return OpsAlert(
            raised_by=GuardianName.DEPLOY.value, severity=severity,
            summary=f"{self.row.service} {self.row.version}: {summary}",
            details=detail, dedup_key=_slug(f"deploy:{self.row.change_id}:{summary}")[:200],
            change_id=self.row.change_id, service=self.row.service,
        )


def _slug(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9._:/-]+", "-", text)


def _duration_s(text: str) -> float:
    unit = {"s": 1, "m": 60, "h": 3600}[text[-1]]
    return float(text[:-1]) * unit
