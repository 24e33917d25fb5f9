"""This machine as psutil sees it: who listens on a port, which processes run, what they use.

Why psutil and not `ss`, `lsof` or `ps`: one library call instead of a child process and a
text format per tool, the same answer on every Linux, and no shell anywhere. The calls are
synchronous and cheap (tens of milliseconds for `net_connections`, which walks /proc once);
the guardian runs them in a thread.

Decisions:
- A port is judged by its LISTEN sockets on any address (IPv4 and IPv6, 127.0.0.1 or
  0.0.0.0): whoever holds one can take our clients, so another process there is a conflict
  even when ours listens too (two families, or SO_REUSEPORT). A listener whose owner this
  user cannot see (another user's process, when not root) is shown as pid 0 and counts as
  someone else: it cannot be confirmed to be ours.
- CPU percentages are over the interval since the previous reading, as `top` shows them;
  the first reading of a process (or of the host) has no previous one, so it is the
  average since the process started (the host: since boot) instead of psutil's
  meaningless 0.0. The psutil.Process objects are kept between calls for that, and a pid
  reused by a new process is noticed (psutil compares start times) and starts afresh.
- `port_findings` and `duplicate_claims` are pure: what is found against what is expected,
  testable without sockets.
"""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import psutil

from services.runtime.config import ExpectedPort

MIB = 1024 * 1024
SHORT_CMDLINE = 80
"""Characters of a command line a message shows."""


@dataclass(frozen=True)
class ProcInfo:
    pid: int
    name: str
    cmdline: str
    """The arguments joined by spaces; empty when unreadable (a zombie, a kernel thread)."""
    create_time: float
    """Seconds since the epoch: with the pid, it identifies one process (pids are reused)."""
    status: str
    """psutil's status: running, sleeping, zombie, ..."""

    @property
    def short(self) -> str:
        """`pid 123 (python -m demo.app --port 8001)`, for messages."""
        text = self.cmdline or self.name
        if len(text) > SHORT_CMDLINE:
            text = text[: SHORT_CMDLINE - 3] + "..."
        return f"pid {self.pid} ({text})"

    def matches(self, pattern: str) -> bool:
        """`pattern` is in the command line (in the name when that is unreadable)."""
        return pattern in (self.cmdline or self.name)


HIDDEN = ProcInfo(pid=0, name="?", cmdline="a process this user cannot see",
                  create_time=0.0, status="unknown")
"""The owner of a listening socket psutil could not attribute to a pid."""


@dataclass(frozen=True)
class PortFinding:
    """One expected port against what listens on it."""

    port: int
    host: str
    expected: str
    """The command-line substring the listener must have."""
    status: Literal["ok", "missing", "conflict"]
    ours: tuple[ProcInfo, ...]
    """Listeners that match `expected`."""
    others: tuple[ProcInfo, ...]
    """Listeners that do not: the conflict."""
    message: str

    @property
    def ok(self) -> bool:
        return self.status == "ok"


@dataclass(frozen=True)
class Usage:
    """One process's resource use."""

    pid: int
    cpu_percent: float
    """Since the previous reading (the first: since the process started); 100 = one core."""
    rss_mb: float
    """Resident memory in MiB."""
    open_files: int | None
    """File descriptors open (files, sockets, pipes); None when not readable."""
    uptime_s: float


@dataclass(frozen=True)
class HostUsage:
    cpu_percent: float
    """All cores, since the previous reading (the first: since boot)."""
    memory_percent: float
    disk_percent: float | None
    """Of the filesystem holding the configured path; None when it cannot be read."""
    disk_error: str | None = None


# -- ports ------------------------------------------------------------------------------------


def listeners(ports: Iterable[int]) -> dict[int, list[ProcInfo]]:
    """Who listens (TCP, any address) on each of `ports`; an empty list: nobody."""
    wanted = set(ports)
    owners: dict[int, set[int | None]] = {port: set() for port in wanted}
    if wanted:
        for conn in psutil.net_connections(kind="tcp"):
            port = conn.laddr.port if conn.laddr else None
            if conn.status == psutil.CONN_LISTEN and port in owners:
                owners[port].add(conn.pid)
    return {port: _describe_all(pids) for port, pids in owners.items()}


def _describe_all(pids: set[int | None]) -> list[ProcInfo]:
    found = [HIDDEN if pid is None else _proc_info(pid) for pid in pids]
    return sorted((p for p in found if p is not None), key=lambda p: p.pid)


def _proc_info(pid: int) -> ProcInfo | None:
    """None when the process is gone (it stopped between the socket walk and now)."""
    try:
        proc = psutil.Process(pid)
        with proc.oneshot():
            return _info(pid, proc.name(), _cmdline(proc), proc.create_time(), proc.status())
    except psutil.NoSuchProcess:
        return None
    except psutil.AccessDenied:
        return ProcInfo(pid=pid, name="?", cmdline="", create_time=0.0, status="unknown")


def _cmdline(proc: psutil.Process) -> list[str]:
    try:
        return proc.cmdline()
    except (psutil.AccessDenied, psutil.ZombieProcess):
        return []


def _info(pid: int, name: str | None, cmdline: Sequence[str] | None, create_time: float | None,
          status: str | None) -> ProcInfo:
    return ProcInfo(pid=pid, name=name or "?", cmdline=" ".join(cmdline or []),
                    create_time=create_time or 0.0, status=status or "unknown")


def port_findings(expected: Sequence[ExpectedPort],
                  listeners: Mapping[int, Sequence[ProcInfo]]) -> list[PortFinding]:
    """Per expected port: ok (only the expected process listens), missing (nobody), or
    conflict (another process listens, instead of ours or besides it)."""
    return [_finding(spec, listeners.get(spec.port, ())) for spec in expected]


def _finding(spec: ExpectedPort, procs: Sequence[ProcInfo]) -> PortFinding:
    ours = tuple(p for p in procs if p is not HIDDEN and p.matches(spec.process))
    others = tuple(p for p in procs if p not in ours)
    want = f"a process matching {spec.process!r}"
    if others:
        status: Literal["ok", "missing", "conflict"] = "conflict"
        intruders = ", ".join(p.short for p in others)
        message = (f"port {spec.port}: {intruders} listens besides {_names(ours)}, {want}"
                   if ours else f"port {spec.port}: {intruders} listens instead of {want}")
    elif ours:
        status = "ok"
        message = f"port {spec.port}: {_names(ours)} listens, as expected ({want})"
    else:
        status = "missing"
        message = f"port {spec.port}: nobody listens; expected {want}"
    return PortFinding(port=spec.port, host=spec.host, expected=spec.process, status=status,
                       ours=ours, others=others, message=message)


def _names(procs: Sequence[ProcInfo]) -> str:
    return ", ".join(p.short for p in procs)


def duplicate_claims(claims: Sequence[tuple[str, ExpectedPort]]) -> list[str]:
    """Ports the configuration gives to more than one expected listener (two services, or
    one service twice), each naming every claim. By port alone: ports are judged on any
    address, so two claims of one port on different hosts would contradict each other too."""
    by_port: dict[int, list[tuple[str, ExpectedPort]]] = {}
    for service, spec in claims:
        by_port.setdefault(spec.port, []).append((service, spec))
    return [_claims_message(port, owners) for port, owners in sorted(by_port.items())
            if len(owners) > 1]


def _claims_message(port: int, owners: Sequence[tuple[str, ExpectedPort]]) -> str:
    services = {service for service, _ in owners}
    if len(services) == 1:
        processes = " and ".join(f"process {spec.process!r}" for _, spec in owners)
        return f"port {port} is claimed {len(owners)} times by service {owners[0][0]!r}: " \
               f"{processes}"
    named = " and ".join(f"service {service!r} (process {spec.process!r})"
                         for service, spec in owners)
    return f"port {port} is claimed by {named}"


# -- processes --------------------------------------------------------------------------------

_ATTRS = ["pid", "name", "cmdline", "create_time", "status"]


def find_processes(match: str) -> list[ProcInfo]:
    """Running processes whose command line contains `match` (not this process), by pid."""
    me = os.getpid()
    found: list[ProcInfo] = []
    for proc in psutil.process_iter(_ATTRS):
        info: dict[str, Any] = proc.info
        cmdline = " ".join(info["cmdline"] or [])
        if proc.pid != me and match in cmdline:
            found.append(_info(proc.pid, info["name"], info["cmdline"], info["create_time"],
                               info["status"]))
    return sorted(found, key=lambda p: p.pid)


class UsageSampler:
    """Per-process readings; keeps each psutil.Process between calls so that its CPU
    percentage covers the time since the previous call. Thread-safe."""

    def __init__(self) -> None:
        self._procs: dict[int, psutil.Process] = {}
        self._lock = threading.Lock()

    def sample(self, pids: Sequence[int]) -> dict[int, Usage]:
        """Each pid's usage; a pid that is gone (or a zombie) is left out."""
        with self._lock:
            found = {pid: usage for pid in pids if (usage := self._one(pid)) is not None}
            self._procs = {pid: p for pid, p in self._procs.items() if p.is_running()}
            return found

    def _one(self, pid: int) -> Usage | None:
        try:
            proc, fresh = self._process(pid)
            with proc.oneshot():
                return _usage(proc, fresh)
        except (psutil.NoSuchProcess, psutil.AccessDenied):
            self._procs.pop(pid, None)
            return None

    def _process(self, pid: int) -> tuple[psutil.Process, bool]:
        known = self._procs.get(pid)
        if known is not None and known.is_running():  # same pid and same start time
            return known, False
        proc = psutil.Process(pid)
        self._procs[pid] = proc
        return proc, True


def _usage(proc: psutil.Process, fresh: bool) -> Usage:
    interval_cpu = proc.cpu_percent(interval=None)  # the first call only sets the baseline
    uptime = max(time.time() - proc.create_time(), 1e-3)
    if fresh:
        times = proc.cpu_times()
        interval_cpu = 100.0 * (times.user + times.system) / uptime
    return Usage(pid=proc.pid, cpu_percent=interval_cpu,
                 rss_mb=proc.memory_info().rss / MIB, open_files=_num_fds(proc),
                 uptime_s=uptime)


def _num_fds(proc: psutil.Process) -> int | None:
    try:
        return proc.num_fds()
    except psutil.AccessDenied:
        return None


_SAMPLER = UsageSampler()


def process_usage(pids: Sequence[int]) -> dict[int, Usage]:
    """CPU % since the previous call for that process, RSS MiB, open fds, uptime; by pid."""
    return _SAMPLER.sample(pids)


# -- the host ---------------------------------------------------------------------------------


class HostSampler:
    """Host CPU since the previous call, from our own cpu_times (psutil.cpu_percent keeps one
    baseline per process, which any other caller would move). Thread-safe."""

    def __init__(self) -> None:
        self._last: tuple[float, float] = (0.0, 0.0)  # busy, total: since boot
        self._lock = threading.Lock()

    def cpu_percent(self) -> float:
        busy, total = _busy_total(psutil.cpu_times())
        with self._lock:
            last_busy, last_total = self._last
            self._last = (busy, total)
        spent = total - last_total
        return max(0.0, min(100.0, 100.0 * (busy - last_busy) / spent)) if spent > 0 else 0.0


def _busy_total(times: Any) -> tuple[float, float]:
    """(busy, total) CPU seconds; guest time is already inside user and nice on Linux."""
    total = sum(times) - getattr(times, "guest", 0.0) - getattr(times, "guest_nice", 0.0)
    idle = times.idle + getattr(times, "iowait", 0.0)
    return total - idle, total


_HOST = HostSampler()


def host_usage(disk_path: Path) -> HostUsage:
    """Host CPU % (since the previous call), memory %, and the disk holding `disk_path`."""
    cpu = _HOST.cpu_percent()
    memory = psutil.virtual_memory().percent
    try:
        disk: float | None = psutil.disk_usage(str(disk_path)).percent
        error = None
    except OSError as exc:
        disk, error = None, f"{disk_path}: {exc.strerror or exc}"
    return HostUsage(cpu_percent=cpu, memory_percent=memory, disk_percent=disk,
                     disk_error=error)
