"""The watch loop: one task per watched service, under a lease, every `interval_seconds`.

Each round runs the service's checks (checks.py), grades them (pure), and in one
transaction: moves the grade through hysteresis, emits `health.reported` (every round) and
`health.changed` (on a confirmed transition, with the checks that caused it), follows the
service's alert (fire, repeat, resolve), and moves its post-deploy health gates (green for
`gate_seconds`: `infra.ready`). Then it acts: a red service whose failing process has a
restart command is restarted (Monit-style: at most `max_restarts` in the window, then it
stops and escalates on `ops.alerts`), and signed restart requests are carried out under
the same limit.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from datetime import UTC, datetime, timedelta
from typing import Any

from schemas.events.health import (
    CheckKind,
    CheckStatus,
    HealthChanged,
    HealthGrade,
    HealthReported,
    InfraReady,
)
from schemas.events.ops import AlertSeverity, AlertValue, OpsAlert
from services.process.adapters import system
from services.process.checks import Memory, run_round
from services.process.domain.alerts import AlertState, next_alert
from services.process.domain.gate import Gate, observe_gate
from services.process.domain.grading import Hysteresis, causes, grade
from services.process.domain.limits import restart_allowed
from services.runtime import Guardian
from services.runtime.config import ExpectedProcess, HealthPolicy
from services.runtime.leases import LeaseDriver

log = logging.getLogger(__name__)
RESTART_COMMAND_TIMEOUT_S = 60.0


def _json(value: Any) -> Any:
    return json.loads(value) if isinstance(value, str) else value


class Monitor:
    def __init__(self, guardian: Guardian) -> None:
        self.guardian = guardian
        self.leases = LeaseDriver(guardian, "watched", "service", self._claim, self.watch,
                                  lease_seconds=15.0, interval=1.0)
        self._conflicts: dict[str, list[str]] | None = None

    def policy(self, service: str) -> HealthPolicy:
        return self.guardian.settings.config.service(service).health

    def conflicts(self, service: str) -> list[str]:
        """Ports claimed twice in guardians.yaml, as findings of each service involved."""
        if self._conflicts is None:
            claims = [(name, port) for name, managed in
                      self.guardian.settings.config.services.items()
                      for port in managed.health.ports]
            found: dict[str, list[str]] = {}
            for message in system.duplicate_claims(claims):
                for name, _ in claims:
                    if name in message:
                        found.setdefault(name, []).append(message)
            self._conflicts = found
        return self._conflicts.get(service, [])

    async def run(self) -> None:
        watched = [name for name, managed in self.guardian.settings.config.services.items()
                   if managed.health.watched]
        pool = self.guardian.pool
        assert pool is not None
        async with pool.acquire() as conn:
            await conn.executemany(
                "INSERT INTO watched (service) VALUES ($1) ON CONFLICT DO NOTHING",
                [(name,) for name in watched])
        await self.leases.run()

    async def _claim(self, conn: Any, owner: str, running: list[str]) -> list[str]:
        watched = [name for name, managed in self.guardian.settings.config.services.items()
                   if managed.health.watched]
        rows = await conn.fetch(
            """
            UPDATE watched SET lease_owner = $1, lease_until = now() + interval '15 seconds'
            WHERE service IN (
                SELECT service FROM watched
                WHERE service = ANY($3::text[]) AND NOT (service = ANY($2::text[]))
                  AND (lease_until IS NULL OR lease_until < now() OR lease_owner = $1)
                FOR UPDATE SKIP LOCKED)
            RETURNING service
            """, owner, running, watched)
        return [r["service"] for r in rows]

    async def watch(self, service: str) -> None:
        """Watch one service until the lease is lost or the process stops."""
        policy = self.policy(service)
        memory = Memory()
        while True:
            started = time.monotonic()
            now = datetime.now(UTC)
            results = await run_round(policy, memory, now, self.conflicts(service))
            red_processes = await self.record(service, policy, results, now)
            await self.act(service, policy, red_processes)
            left = policy.interval_seconds - (time.monotonic() - started)
            await asyncio.sleep(max(0.05, left))

    async def record(self, service: str, policy: HealthPolicy, results: list[Any],
                     now: datetime) -> list[ExpectedProcess]:
        """One round's bookkeeping and events, in one transaction. Returns the failing
        processes to restart when the confirmed grade is red."""
        raw = grade(results)
        del now  # the round's start; gates and alerts use the time the results are recorded
        now = datetime.now(UTC)
        async with self.guardian.transaction() as ctx:
            await self.leases.check(ctx.conn, service)
            row = await ctx.conn.fetchrow("SELECT * FROM watched WHERE service = $1", service)
            assert row is not None
            before = Hysteresis.from_json(_json(row["hysteresis"]) or {})
            after, changed = before.observe(raw, policy.hysteresis)
            gates = await ctx.conn.fetch(
                "SELECT * FROM gates WHERE service = $1 AND status = 'open'", service)
            change_id = gates[0]["change_id"] if gates else None
            ctx.emit(HealthReported(service=service, grade=after.current,
                                    checks=tuple(results), change_id=change_id))
            if changed:
                ctx.emit(HealthChanged(
                    service=service, grade=after.current, previous_grade=before.current,
                    causes=causes(results, after.current), consecutive=policy.hysteresis,
                    change_id=change_id))
            alert, action = next_alert(service, AlertState.from_json(_json(row["alert"]) or {}),
                                       after.current, now,
                                       timedelta(minutes=policy.alert_repeat_minutes))
            if action is not None:
                ctx.emit(self._alert(service, action.kind, action.dedup_key, action.count,
                                     after.current, results))
            for g in gates:
                gate, outcome = observe_gate(Gate.from_json(_json(g["gate"])), after.current,
                                             now, policy.gate_seconds)
                status = {"wait": "open", "ready": "ready", "red": "red"}[outcome]
                await ctx.conn.execute(
                    "UPDATE gates SET gate = $2::jsonb, status = $3, closed_at = CASE WHEN"
                    " $3 <> 'open' THEN now() END WHERE change_id = $1",
                    g["change_id"], json.dumps(gate.to_json()), status)
                if outcome == "ready":
                    ctx.causation_id = g["cause_id"]
                    ctx.emit(InfraReady(
                        change_id=g["change_id"], service=service, version=g["version"],
                        gate_seconds=(now - gate.opened_at).total_seconds(),
                        checks_passed=sum(1 for r in results if r.status is CheckStatus.PASS)))
            await ctx.conn.execute(
                "UPDATE watched SET hysteresis = $2::jsonb, alert = $3::jsonb, updated_at ="
                " now() WHERE service = $1", service, json.dumps(after.to_json()),
                json.dumps(alert.to_json()))
        if after.current is not HealthGrade.RED or not policy.restart_on_red:
            return []
        failing = {r.name for r in results
                   if r.kind is CheckKind.PROCESS and r.status is CheckStatus.FAIL}
        return [p for p in policy.processes if p.name in failing and p.restart]

    def _alert(self, service: str, kind: str, key: str, count: int, current: HealthGrade,
               results: list[Any]) -> OpsAlert:
        bad = [r for r in results if r.status is not CheckStatus.PASS]
        details = "; ".join(f"{r.name}: {r.message}" for r in bad[:5]) or None
        if kind == "resolve":
            return OpsAlert(dedup_key=key, severity=AlertSeverity.INFO, raised_by="process",
                            summary=f"{service} is healthy again", service=service,
                            resolved=True, count=max(1, count))
        severity = AlertSeverity.CRITICAL if current is HealthGrade.RED else AlertSeverity.WARNING
        return OpsAlert(
            dedup_key=key, severity=severity, raised_by="process", service=service,
            summary=f"{service} is {current.value}" + (" (repeat)" if kind == "repeat" else ""),
            details=details, count=max(1, count),
            values=tuple(AlertValue(name=r.name, value=r.observed, unit=r.unit)
                         for r in bad[:10]),
        )

    # -- actions ---------------------------------------------------------------------------

    async def act(self, service: str, policy: HealthPolicy,
                  red_processes: list[ExpectedProcess]) -> None:
        pool = self.guardian.pool
        assert pool is not None
        async with pool.acquire() as conn:
            requests = await conn.fetch(
                "SELECT * FROM restart_requests WHERE service = $1 AND status = 'queued'"
                " ORDER BY created_at", service)
        for request in requests:
            wanted = [p for p in policy.processes
                      if p.restart and (request["instance"] in (None, p.name))]
            asker = _json(request["request"])["requested_by"]
            outcome = await self.restart(service, policy, wanted, f"requested by {asker}")
            async with self.guardian.transaction() as ctx:
                await ctx.conn.execute(
                    "UPDATE restart_requests SET status = $2, outcome = $3 WHERE request_id = $1",
                    request["request_id"], outcome[0], outcome[1])
        if red_processes:
            await self.restart(service, policy, red_processes, "red: process check failed")

    async def restart(self, service: str, policy: HealthPolicy,
                      processes: list[ExpectedProcess], why: str) -> tuple[str, str]:
        if not processes:
            return "refused", "no process of this service has a restart command"
        now = datetime.now(UTC)
        pool = self.guardian.pool
        assert pool is not None
        async with pool.acquire() as conn:
            row = await conn.fetchrow("SELECT restarts, escalated_at FROM watched"
                                      " WHERE service = $1", service)
        history = [datetime.fromisoformat(t) for t in (_json(row["restarts"]) if row else [])]
        allowed, reason = restart_allowed(history, now, policy.max_restarts,
                                          timedelta(minutes=policy.restart_window_minutes))
        if not allowed:
            await self._escalate(service, reason, row["escalated_at"] if row else None)
            return "refused", reason
        failures = []
        for process in processes:
            assert process.restart is not None
            ok, message = await _run_detached(process.restart)
            log.info("restart of %s/%s (%s): %s", service, process.name, why, message)
            if not ok:
                failures.append(f"{process.name}: {message}")
        async with self.guardian.transaction() as ctx:
            await ctx.conn.execute(
                "UPDATE watched SET restarts = $2::jsonb WHERE service = $1", service,
                json.dumps([t.isoformat() for t in [*history, now]][-100:]))
        if failures:
            return "failed", "; ".join(failures)
        return "done", f"restarted {', '.join(p.name for p in processes)} ({why})"

    async def _escalate(self, service: str, reason: str, escalated_at: datetime | None
                        ) -> None:
        if escalated_at is not None and datetime.now(UTC) - escalated_at < timedelta(hours=1):
            return
        async with self.guardian.transaction() as ctx:
            await ctx.conn.execute("UPDATE watched SET escalated_at = now() WHERE service = $1",
                                   service)
            ctx.emit(OpsAlert(
                dedup_key=f"health/{service}/restarts", severity=AlertSeverity.CRITICAL,
                raised_by="process", service=service,
                summary=f"{service}: automatic restarts stopped, a person is needed",
                details=reason))


async def _run_detached(argv: list[str]) -> tuple[bool, str]:
    """Run a restart command (argument list) with its output discarded, so a command that
    leaves a server running (setsid, systemctl) does not hold a pipe open; wait for the
    command itself to exit."""
    try:
        proc = await asyncio.create_subprocess_exec(
            *argv, stdin=asyncio.subprocess.DEVNULL, stdout=asyncio.subprocess.DEVNULL,
            stderr=asyncio.subprocess.DEVNULL, start_new_session=True)
    except OSError as exc:
        return False, f"cannot run {argv[0]!r}: {exc.strerror or exc}"
    try:
        code = await asyncio.wait_for(proc.wait(), RESTART_COMMAND_TIMEOUT_S)
    except TimeoutError:
        return False, f"{argv[0]!r} did not finish within {RESTART_COMMAND_TIMEOUT_S:g} s"
    return code == 0, f"{argv[0]!r} exited with {code}"
