"""The demo release story that `make run` plays and `make demo` checks.

With the five guardians running on the local stack (services/launcher.py) and steady
traffic through nginx (demo.loadgen), CI's part is played here: each change is submitted as
a signed `change.submitted`, and the story waits for what the guardians say.

1. `demo 1.0.0`, the first release: assessed, deployed (a first release skips the canary
   steps), monitored, backed up and restore-tested, held green: `infra.ready`.
2. `demo 2.0.0` with a migration and its down script (orders get a status): assessed and
   verified on a shadow database (low risk), staged, canaried at 20% then 50% under live
   traffic with analysis on Prometheus, promoted, monitored, backed up, restore-tested,
   health-gated: `infra.ready`.
3. `demo 3.0.0`, a bad version (one request in five fails): the canary analysis fails,
   the canary is rolled back, an incident opens, records the rollback and resolves.

Each change's outcome and the duration of each stage (from the events' times) is printed
at the end; `check()` says which expected step did not happen.
"""

from __future__ import annotations

import asyncio
import itertools
import json
import time
import uuid
from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
SERVICE = "demo"
RELEASES = ROOT / "demo" / "releases"
WATCHED = ("change.submitted", "migration.assessed", "migration.approved",
           "migration.blocked", "migration.review.requested", "deploy.stage.changed",
           "deploy.analysis.measured", "deploy.completed", "deploy.rolled_back",
           "deploy.failed", "backup.verified", "backup.failed", "infra.ready",
           "incident.opened", "incident.resolved")


@dataclass
class Seen:
    """Every watched event since the story began, by change id (incident events by their
    change_id field)."""

    by_change: dict[str, list[tuple[str, datetime, dict[str, Any]]]] = field(
        default_factory=lambda: defaultdict(list))

    def add(self, topic: str, at: datetime, body: dict[str, Any], subject: str) -> None:
        change = body.get("change_id") or subject
        self.by_change[change].append((topic, at, body))

    def first(self, change: str, topic: str,
              where: Callable[[dict[str, Any]], bool] = lambda _: True
              ) -> tuple[datetime, dict[str, Any]] | None:
        for t, at, body in self.by_change.get(change, []):
            if t == topic and where(body):
                return at, body
        return None


@dataclass
class Step:
    change: str
    version: str
    expect: str
    """The topic that ends this change's story."""
    outcome: str = "pending"
    stages: list[tuple[str, float]] = field(default_factory=list)
    missing: list[str] = field(default_factory=list)


class Story:
    def __init__(self, bootstrap: str, keys: Path, *, say: Callable[[str], None] = print
                 ) -> None:
        self.bootstrap = bootstrap
        self.keys = keys
        self.say = say
        self.seen = Seen()
        self.steps: list[Step] = []
        self._reader: asyncio.Task[None] | None = None
        self._ready = asyncio.Event()

    # -- the broker ---------------------------------------------------------------------------

    async def _read(self) -> None:
        from aiokafka import AIOKafkaConsumer, TopicPartition

        consumer = AIOKafkaConsumer(bootstrap_servers=self.bootstrap, group_id=None,
                                    enable_auto_commit=False)
        await consumer.start()
        try:
            from schemas.topics import REGISTRY

            parts = [TopicPartition(t, p) for t in WATCHED
                     for p in range(REGISTRY.topic(t).partitions)]
            consumer.assign(parts)
            await consumer.seek_to_end(*parts)
            for tp in parts:  # resolve the end offsets now: later events are the story's
                await consumer.position(tp)
            self._ready.set()
            while True:
                batch = await consumer.getmany(timeout_ms=200)
                for tp, records in batch.items():
                    for r in records:
                        headers = {k: v.decode() for k, v in r.headers}
                        body = json.loads(r.value)
                        at = datetime.fromisoformat(headers.get("ce_time",
                                                                body.get("occurred_at")))
                        self.seen.add(tp.topic, at, body, headers.get("ce_subject", ""))
        finally:
            await consumer.stop()

    async def __aenter__(self) -> Story:
        self._reader = asyncio.create_task(self._read())
        ready = asyncio.create_task(self._ready.wait())
        await asyncio.wait({self._reader, ready}, timeout=30,
                           return_when=asyncio.FIRST_COMPLETED)
        if not self._ready.is_set():
            ready.cancel()
            if self._reader.done():
                self._reader.result()  # its exception says why
            raise TimeoutError("could not start reading the pipeline topics in 30 s")
        return self

    async def __aexit__(self, *exc: object) -> None:
        if self._reader is not None:
            self._reader.cancel()
            await asyncio.gather(self._reader, return_exceptions=True)

    async def submit(self, version: str, release: str, migrations: list[Path],
                     previous: str | None) -> str:

        from cli.publish import send
        from schemas.events.change import ChangeSubmitted, MigrationScript
        from schemas.signing import SigningKey

        change_id = f"{SERVICE}-{version}-{uuid.uuid4().hex[:6]}"
        scripts = tuple(
            MigrationScript(name=f"{m.name}/up.sql", up_sql=(m / "up.sql").read_text(),
                            down_sql=(m / "down.sql").read_text()
                            if (m / "down.sql").exists() else None)
            for m in migrations)
        event = ChangeSubmitted(change_id=change_id, service=SERVICE, version=version,
                                previous_version=previous, artifact=str(RELEASES / release),
                                submitted_by="demo-ci", migrations=scripts)
        key = SigningKey.from_text("ci", (self.keys / "ci.key").read_text())
        await send(self.bootstrap, event, key)
        self.say(f"submitted {change_id} ({version}, {len(scripts)} migration(s))")
        return change_id

    async def wait(self, change: str, topic: str, timeout_s: float,
                   where: Callable[[dict[str, Any]], bool] = lambda _: True
                   ) -> dict[str, Any] | None:
        deadline = time.monotonic() + timeout_s
        reported: set[tuple[str, str]] = set()
        while time.monotonic() < deadline:
            for t, _, body in self.seen.by_change.get(change, []):
                line = _line(t, body)
                if line and (t, line) not in reported:
                    reported.add((t, line))
                    self.say(f"  {change}: {line}")
            found = self.seen.first(change, topic, where)
            if found is not None:
                return found[1]
            await asyncio.sleep(0.2)
        return None

    # -- the story ---------------------------------------------------------------------------

    async def play(self) -> list[Step]:
        await self._release("1.0.0", "1.0.0.json", [], None, "infra.ready", 240)
        await self._release("2.0.0", "2.0.0.json",
                            sorted((ROOT / "demo" / "changes" / "2.0.0" / "migrations")
                                   .iterdir()), "1.0.0", "infra.ready", 300)
        await self._release("3.0.0", "3.0.0.json", [], "2.0.0", "incident.resolved", 240)
        return self.steps

    async def _release(self, version: str, release: str, migrations: list[Path],
                       previous: str | None, expect: str, timeout_s: float) -> None:
        change = await self.submit(version, release, migrations, previous)
        step = Step(change, version, expect)
        self.steps.append(step)
        found = await self.wait(change, expect, timeout_s)
        step.outcome = _outcome(self.seen, change)
        step.stages = _stages(self.seen, change)
        if found is None:
            step.missing.append(f"no {expect} within {timeout_s:g} s")
        if version == "3.0.0" and not self.seen.first(change, "deploy.rolled_back"):
            step.missing.append("the bad version was not rolled back")

    def summary(self) -> str:
        lines = ["", "Demo summary", ""]
        for step in self.steps:
            lines.append(f"{step.change}  {step.version}: {step.outcome}"
                         + (f"  MISSING: {'; '.join(step.missing)}" if step.missing else ""))
            for name, seconds in step.stages:
                lines.append(f"    {name:<28} {seconds:7.1f} s")
            own = pipeline_times(self.seen, step.change)
            if own:
                lines.append("    pipeline's own time (configured waits excluded): " + ", ".join(
                    f"{guardian} {seconds:.1f} s" for guardian, seconds in own.items()))
        return "\n".join(lines)

    def check(self) -> list[str]:
        return [f"{s.change}: {m}" for s in self.steps for m in s.missing]


def _line(topic: str, body: dict[str, Any]) -> str | None:
    if topic == "migration.assessed":
        return f"assessed: risk {body['risk']}, {len(body.get('findings', []))} finding(s)"
    if topic == "migration.approved":
        return f"approved ({body['approval']})"
    if topic == "migration.blocked":
        return f"BLOCKED: {body['reason']}"
    if topic == "deploy.stage.changed":
        weight = f" {body['canary_weight']}%" if body.get("canary_weight") is not None else ""
        return f"deploy: {body['stage']}{weight}"
    if topic == "deploy.rolled_back":
        breach = body.get("breach") or {}
        return (f"ROLLED BACK ({body['trigger']}): {breach.get('metric', '')} "
                f"{breach.get('values', '')} in {body.get('rollback_seconds') or 0:.2f} s")
    if topic in ("deploy.completed", "infra.ready", "backup.verified", "incident.opened",
                 "incident.resolved", "deploy.failed", "backup.failed"):
        detail = {"backup.verified": f"recovery tested in "
                                     f"{body.get('recovery_seconds', 0):.1f} s",
                  "incident.opened": str(body.get("summary", ""))[:80],
                  "incident.resolved": str(body.get("resolution", ""))[:80],
                  "deploy.failed": str(body.get("reason", ""))[:80],
                  "backup.failed": str(body.get("reason", ""))[:80]}.get(topic)
        return topic + (f": {detail}" if detail else "")
    return None


def pipeline_times(seen: Seen, change: str) -> dict[str, float]:
    """Each guardian's own time on a change: from the event it acts on to the event that
    ends its part, less the waits its configuration asks for (the canary analysis after each
    weight step and the production monitoring window for the deploy guardian, the health
    gate for the process guardian). What remains is the pipeline's work: assessing and
    verifying, starting instances and waiting for them to be ready, switching traffic,
    dumping, restoring and comparing, and every hop through Kafka and PostgreSQL."""

    def at(topic: str, where: Callable[[dict[str, Any]], bool] = lambda _: True
           ) -> datetime | None:
        found = seen.first(change, topic, where)
        return found[0] if found else None

    out: dict[str, float] = {}
    submitted, approved = at("change.submitted"), at("migration.approved")
    if submitted and approved:
        out["migration"] = (approved - submitted).total_seconds()
    end = at("deploy.completed") or at("deploy.rolled_back") or at("deploy.failed")
    if approved and end:
        stages = sorted((t, b) for topic, t, b in seen.by_change.get(change, [])
                        if topic == "deploy.stage.changed")
        waits = 0.0
        for (t, body), (nxt, _) in itertools.pairwise(stages):
            canary_step = body["stage"] == "canary" and (body.get("canary_weight") or 0) > 0
            if canary_step or body["stage"] in ("monitoring", "paused"):
                waits += (nxt - t).total_seconds()
        out["deploy"] = max(0.0, (end - approved).total_seconds() - waits)
    completed, verified = at("deploy.completed"), at("backup.verified")
    if completed and verified:
        out["backup"] = (verified - completed).total_seconds()
    ready = at("infra.ready")
    if verified and ready:
        gate = seen.first(change, "infra.ready")
        gate_s = float(gate[1].get("gate_seconds", 0)) if gate else 0.0
        out["process"] = max(0.0, (ready - verified).total_seconds() - gate_s)
    rolled, resolved = at("deploy.rolled_back"), at("incident.resolved")
    if rolled and resolved:
        out["incident"] = (resolved - rolled).total_seconds()
    return out


def _outcome(seen: Seen, change: str) -> str:
    for topic, label in (("infra.ready", "infra ready"), ("incident.resolved",
                                                          "rolled back, incident resolved"),
                         ("deploy.rolled_back", "rolled back"), ("deploy.failed", "failed"),
                         ("migration.blocked", "blocked"), ("backup.failed", "backup failed")):
        if seen.first(change, topic):
            return label
    return "unfinished"


def _stages(seen: Seen, change: str) -> list[tuple[str, float]]:
    """Each step of the timeline and how long until the next one."""
    events = sorted(((at, t, b) for t, at, b in seen.by_change.get(change, [])
                     if t != "deploy.analysis.measured"), key=lambda e: e[0])
    out = []
    for (at, topic, body), (nxt, _, _) in itertools.pairwise(events):
        name = f"deploy {body['stage']}" if topic == "deploy.stage.changed" else topic
        out.append((name, (nxt - at).total_seconds()))
    return out
