"""One round of a service's checks: probes and system readings turned into CheckResults.

Every probe runs concurrently with its own timeout (`run_bounded`): a target that hangs
makes its own check UNKNOWN at its timeout and delays nothing else. System readings
(listeners, processes, resource usage) are psutil calls, run in a thread.
"""

from __future__ import annotations

import asyncio
import functools
import time
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from schemas.events.health import CheckKind, CheckResult, CheckStatus
from services.process.adapters import probes, system
from services.process.domain.conditions import judge_http, parse_condition
from services.process.domain.grading import judge_value
from services.process.domain.limits import flapping
from services.runtime.config import ExpectedProcess, HealthCheck, HealthPolicy, Thresholds


@dataclass
class Memory:
    """What one service's checks remember between rounds (pid starts, for flapping)."""

    pid_starts: dict[str, list[tuple[int, float]]] = field(default_factory=dict)


def _result(name: str, kind: CheckKind, status: CheckStatus, message: str, *,
            critical: bool = True, observed: float | None = None, unit: str | None = None,
            condition: str | None = None, seconds: float | None = None) -> CheckResult:
    return CheckResult(name=name, kind=kind, status=status, critical=critical,
                       observed=observed, unit=unit, condition=condition,
                       message=message[:500], duration_seconds=seconds)


async def _probe(check: HealthCheck, seconds: float) -> CheckResult:
    started = time.monotonic()
    if check.http is not None:
        obs = await probes.http_probe(check.http, seconds)
        conditions = [parse_condition(c) for c in check.http.conditions]
        warn = [parse_condition(c) for c in check.http.warn_conditions]
        status, message, observed = judge_http(conditions, warn, obs)
        return _result(check.name, CheckKind.HTTP, status, message, critical=check.critical,
                       observed=observed, unit="ms", condition=" && ".join(
                           check.http.conditions), seconds=time.monotonic() - started)
    if check.tcp is not None:
        ok, ms, message = await probes.tcp_probe(check.tcp, seconds)
        kind = CheckKind.TCP
    else:
        assert check.dependency is not None
        ok, ms, message = await probes.dependency_probe(check.dependency, seconds)
        kind = CheckKind.DEPENDENCY
    return _result(check.name, kind, CheckStatus.PASS if ok else CheckStatus.FAIL, message,
                   critical=check.critical, observed=ms, unit="ms",
                   seconds=time.monotonic() - started)


def _threshold(name: str, kind: CheckKind, value: float | None, t: Thresholds, what: str,
               unit: str, critical: bool = False) -> CheckResult | None:
    if t.warn is None and t.critical is None:
        return None
    status, message = judge_value(value, t, what=what, unit=unit)
    return _result(name, kind, status, message, observed=value, unit=unit,
                   critical=critical and status is CheckStatus.FAIL)


def _processes(expected: Sequence[ExpectedProcess], memory: Memory, now: datetime
               ) -> list[CheckResult]:
    out: list[CheckResult] = []
    for spec in expected:
        matching = system.find_processes(spec.match)
        found = [p for p in matching if p.status != "zombie"]
        zombies = [p for p in matching if p.status == "zombie"]
        starts = memory.pid_starts.setdefault(spec.name, [])
        for p in found:
            if (p.pid, p.create_time) not in starts:
                starts.append((p.pid, p.create_time))
        del starts[:-50]
        if len(found) < spec.count:
            what = (f"{len(found)} of {spec.count} running (`{spec.match}`)"
                    + (f"; zombie pid {zombies[0].pid}" if zombies else ""))
            out.append(_result(spec.name, CheckKind.PROCESS, CheckStatus.FAIL, what,
                               observed=float(len(found)), unit="processes"))
            continue
        window_starts = [datetime.fromtimestamp(t, now.tzinfo) for _, t in starts]
        flaps, restarts = flapping(window_starts[1:], now, spec.max_restarts,
                                   timedelta(minutes=spec.restart_window_minutes))
        usage = system.process_usage([p.pid for p in found])
        status = CheckStatus.WARN if flaps else CheckStatus.PASS
        message = (f"{len(found)} running, {restarts} restart(s) in "
                   f"{spec.restart_window_minutes:g} min" + (" (flapping)" if flaps else ""))
        out.append(_result(spec.name, CheckKind.PROCESS, status, message,
                           observed=float(restarts), unit="restarts"))
        for metric, unit, t in (("cpu_percent", "%", spec.cpu_percent),
                                ("rss_mb", "MiB", spec.rss_mb),
                                ("open_files", "files", spec.open_files)):
            values = [v for u in usage.values() if (v := getattr(u, metric)) is not None]
            value = max(values) if values else None  # None (unreadable): UNKNOWN
            r = _threshold(f"{spec.name}.{metric}", CheckKind.RESOURCE, value, t,
                           f"{spec.name} {metric}", unit)
            if r is not None:
                out.append(r)
    return out


def _ports(policy: HealthPolicy, claims: Sequence[str]) -> list[CheckResult]:
    if not policy.ports:
        return []
    listening = system.listeners(p.port for p in policy.ports)
    out = [_result(f"port-{f.port}", CheckKind.PORT,
                   CheckStatus.PASS if f.ok else CheckStatus.FAIL, f.message)
           for f in system.port_findings(policy.ports, listening)]
    out += [_result("port-config", CheckKind.PORT, CheckStatus.FAIL, claim) for claim in claims]
    return out


def _host(policy: HealthPolicy) -> list[CheckResult]:
    r = policy.resources
    if all(t.warn is None and t.critical is None
           for t in (r.cpu_percent, r.memory_percent, r.disk_percent)):
        return []
    usage = system.host_usage(r.disk_path)
    found = [_threshold("host.cpu", CheckKind.RESOURCE, usage.cpu_percent, r.cpu_percent,
                        "host CPU", "%"),
             _threshold("host.memory", CheckKind.RESOURCE, usage.memory_percent,
                        r.memory_percent, "host memory", "%"),
             _threshold("host.disk", CheckKind.RESOURCE, usage.disk_percent, r.disk_percent,
                        f"disk {r.disk_path}", "%")]
    return [f for f in found if f is not None]


async def run_round(policy: HealthPolicy, memory: Memory, now: datetime,
                    config_conflicts: Sequence[str] = ()) -> list[CheckResult]:
    """Every check of one service, concurrently; the results in configuration order."""
    tasks: dict[str, Callable[[], Awaitable[CheckResult]]] = {
        c.name: functools.partial(_probe, c, c.timeout_seconds or policy.timeout_seconds)
        for c in policy.checks
    }
    bound = max([policy.timeout_seconds, *(c.timeout_seconds or 0 for c in policy.checks)])
    system_side = asyncio.to_thread(
        lambda: [*_ports(policy, config_conflicts), *_processes(policy.processes, memory, now),
                 *_host(policy)])
    probed, local = await asyncio.gather(probes.run_bounded(tasks, bound + 0.5), system_side)
    results: list[CheckResult] = []
    for check in policy.checks:
        outcome: Any = probed.get(check.name)
        if isinstance(outcome, CheckResult):
            results.append(outcome)
        else:
            why = ("timed out" if isinstance(outcome, TimeoutError)
                   else f"probe error: {outcome!r}")
            results.append(_result(check.name, _kind(check), CheckStatus.UNKNOWN, why,
                                   critical=check.critical))
    return results + local


def _kind(check: HealthCheck) -> CheckKind:
    return (CheckKind.HTTP if check.http else CheckKind.TCP if check.tcp
            else CheckKind.DEPENDENCY)


def describe(results: Sequence[CheckResult]) -> Mapping[str, str]:
    return {r.name: f"{r.status.value}: {r.message}" for r in results}
