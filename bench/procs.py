"""Hop workers as processes, and where the CPU goes while they run.

The machine has 2 cores shared by the broker, PostgreSQL, the hop workers, the load generator
and whatever else runs on it (other people's builds and tests), so every measurement records
the CPU of each of these: figures taken on a busy machine say so.
"""

from __future__ import annotations

import asyncio
import contextlib
import math
import os
import resource
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlsplit

import asyncpg

ROOT = Path(__file__).resolve().parents[1]
CLK_TCK = os.sysconf("SC_CLK_TCK")


class BenchError(RuntimeError):
    pass


def _stat(pid: int) -> list[str]:
    """/proc/<pid>/stat fields after the command name (index 1 = ppid, 11/12 = utime/stime)."""
    return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()


def pid_cpu_s(pid: int) -> float:
    """User + system CPU seconds of a process so far (0 once it is gone)."""
    try:
        fields = _stat(pid)
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / CLK_TCK


def own_cpu_s() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


@dataclass
class Worker:
    label: str
    proc: subprocess.Popen[bytes]
    log: Path
    http_port: int | None = None

    def cpu_s(self) -> float:
        return pid_cpu_s(self.proc.pid)

    def tail(self, lines: int = 15) -> str:
        try:
            return "\n".join(self.log.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return "(no log)"


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


class Supervisor:
    """Starts hop workers (`python -m bench.hop_worker ...`) and makes sure all of them stop."""

    def __init__(self, logs: Path) -> None:
        self.logs = logs
        self.workers: list[Worker] = []

    def _spawn(self, label: str, argv: list[str], http_port: int | None) -> Worker:
        log = self.logs / f"{label}.log"
        env = {**os.environ, "PYTHONPATH": str(ROOT), "PYTHONUNBUFFERED": "1"}
        with log.open("ab") as out:
            proc = subprocess.Popen(
                [sys.executable, "-m", "bench.hop_worker", *argv],
                cwd=ROOT, env=env, stdout=out, stderr=out, stdin=subprocess.DEVNULL,
            )
        worker = Worker(label, proc, log, http_port)
        self.workers.append(worker)
        return worker

    def runtime(
        self, name: str, source: str, target: str, *, partitions: int, max_batch: int,
        commit_interval_ms: int, log_level: str, profile: Path | None = None,
    ) -> Worker:
        port = free_port()
        argv = ["runtime", "--name", name, "--input", source, "--output", target,
                "--partitions", str(partitions), "--max-batch", str(max_batch),
                "--commit-interval-ms", str(commit_interval_ms), "--http-port", str(port),
                "--log-level", log_level]
        if profile is not None:
            argv += ["--profile", str(profile)]
        return self._spawn(name, argv, port)

    def raw(self, group: str, source: str, target: str, *, max_batch: int) -> Worker:
        argv = ["raw", "--group", group, "--input", source, "--output", target,
                "--max-batch", str(max_batch)]
        return self._spawn(group, argv, None)

    def check(self) -> None:
        """Raise if a worker died (with the end of its log)."""
        for worker in self.workers:
            code = worker.proc.poll()
            if code is not None:
                raise BenchError(f"worker {worker.label} exited with {code}:\n{worker.tail()}")

    async def stop(self, workers: Iterable[Worker], timeout_s: float = 30) -> None:
        """SIGTERM (graceful: the runtime flushes its outbox and commits), then SIGKILL."""
        workers = list(workers)
        for worker in workers:
            if worker.proc.poll() is None:
                worker.proc.send_signal(signal.SIGTERM)
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline and any(w.proc.poll() is None for w in workers):
            await asyncio.sleep(0.1)
        for worker in workers:
            if worker.proc.poll() is None:
                print(f"  ! {worker.label} ignored SIGTERM for {timeout_s:.0f} s: SIGKILL")
                worker.proc.kill()
                worker.proc.wait(timeout=10)
            if worker in self.workers:
                self.workers.remove(worker)

    def kill_all(self) -> None:
        """Last resort on the way out (errors, Ctrl-C): nothing outlives the benchmark."""
        for worker in self.workers:
            if worker.proc.poll() is None:
                worker.proc.send_signal(signal.SIGTERM)
        deadline = time.monotonic() + 15
        for worker in self.workers:
            with contextlib.suppress(subprocess.TimeoutExpired):
                worker.proc.wait(timeout=max(0.1, deadline - time.monotonic()))
            if worker.proc.poll() is None:
                worker.proc.kill()
                worker.proc.wait(timeout=10)
        self.workers.clear()


# ------------------------------------------------------------------------------ CPU accounting


def machine_cpu() -> tuple[float, float]:
    """(busy, total) CPU seconds of the whole machine since boot, from /proc/stat."""
    parts = [float(x) for x in Path("/proc/stat").read_text().splitlines()[0].split()[1:]]
    idle = parts[3] + parts[4]
    total = sum(parts[:8])
    return (total - idle) / CLK_TCK, total / CLK_TCK


def listener_pid(port: int) -> int | None:
    """The process listening on TCP `port` (from /proc/net/tcp{,6} and the fd tables)."""
    suffix = f":{port:04X}"
    inode = None
    for table_path in ("/proc/net/tcp", "/proc/net/tcp6"):  # Java listens on ::ffff:127.0.0.1
        with contextlib.suppress(OSError):
            for line in Path(table_path).read_text().splitlines()[1:]:
                cols = line.split()
                if cols[1].endswith(suffix) and cols[3] == "0A":  # 0A: LISTEN
                    inode = cols[9]
                    break
        if inode is not None:
            break
    if inode is None:
        return None
    target = f"socket:[{inode}]"
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        with contextlib.suppress(OSError):
            for fd in (entry / "fd").iterdir():
                if str(fd.readlink()) == target:
                    return int(entry.name)
    return None


class StackCpu:
    """CPU seconds of the stack under test: the broker listening on the bootstrap port, and
    PostgreSQL: the postmaster, its background processes (WAL writer, checkpointer, I/O
    workers...) and the backends serving this run (application_name guardians-bench_<tag>_*),
    not the backends of other people's tests on the same server. The broker serves everyone
    who uses it: its share is approximate on a shared machine."""

    def __init__(self, bootstrap: str, database_url: str, tag: str) -> None:
        kafka_port = int(bootstrap.split(",")[0].rsplit(":", 1)[1])
        pg_port = urlsplit(database_url).port or 5432
        self.database_url = database_url
        self.tag = tag
        self.kafka = listener_pid(kafka_port)
        self.postgres = listener_pid(pg_port)
        self.backends: set[int] = set()
        if self.kafka is None or self.postgres is None:
            print(f"  ! cannot find the broker ({self.kafka}) or PostgreSQL ({self.postgres}) "
                  "process: their CPU is counted as others'")

    async def refresh_backends(self) -> None:
        """Find the PostgreSQL backends of this run's processes (call once they connected)."""
        conn = await asyncpg.connect(self.database_url, timeout=10)
        try:
            rows = await conn.fetch(
                "SELECT pid FROM pg_stat_activity WHERE application_name LIKE $1",
                f"guardians-bench\\_{self.tag}\\_%")
        finally:
            await conn.close()
        self.backends = {int(r["pid"]) for r in rows}

    def seconds(self) -> tuple[float, float]:
        """(Kafka, PostgreSQL) CPU seconds so far."""
        kafka = pid_cpu_s(self.kafka) if self.kafka is not None else 0.0
        postgres = 0.0
        if self.postgres is not None:
            postgres = pid_cpu_s(self.postgres)
            for entry in Path("/proc").iterdir():
                if not entry.name.isdigit():
                    continue
                pid = int(entry.name)
                with contextlib.suppress(OSError, IndexError, ValueError):
                    fields = _stat(pid)
                    if int(fields[1]) != self.postgres:
                        continue
                    # client backends show their peer: "postgres: user db 127.0.0.1(53422) ..."
                    client = b"(" in (entry / "cmdline").read_bytes()
                    if not client or pid in self.backends:
                        postgres += (int(fields[11]) + int(fields[12])) / CLK_TCK
        return kafka, postgres


_STACK: list[StackCpu] = []


def watch_stack(bootstrap: str, database_url: str, tag: str) -> StackCpu:
    _STACK[:] = [StackCpu(bootstrap, database_url, tag)]
    return _STACK[0]


async def refresh_backends() -> None:
    if _STACK:
        await _STACK[0].refresh_backends()


def stack_cpu_s() -> tuple[float, float]:
    return _STACK[0].seconds() if _STACK else (0.0, 0.0)


@dataclass
class CpuWindow:
    """CPU used during one measurement by the hop workers, the broker, PostgreSQL, this load
    generator, and everything else on the machine."""

    workers: list[Worker]
    seconds: float = 0.0
    worker_s: float = 0.0
    kafka_s: float = 0.0
    pg_s: float = 0.0
    harness_s: float = 0.0
    machine_s: float = 0.0
    capacity_s: float = 0.0
    events: int = 0
    """Events that went through during the window (for CPU per event)."""
    _start: tuple[float, ...] = field(default=(), repr=False)
    _t0: float = field(default=0.0, repr=False)

    def _sample(self) -> tuple[float, ...]:
        kafka, pg = stack_cpu_s()
        busy, total = machine_cpu()
        return (sum(w.cpu_s() for w in self.workers), kafka, pg, own_cpu_s(), busy, total)

    def start(self) -> None:
        self._t0 = time.monotonic()
        self._start = self._sample()

    def finish(self) -> None:
        self.seconds = time.monotonic() - self._t0
        d = [b - a for a, b in zip(self._start, self._sample(), strict=True)]
        (self.worker_s, self.kafka_s, self.pg_s, self.harness_s, self.machine_s,
         self.capacity_s) = d

    @property
    def machine_busy(self) -> float:
        return self.machine_s / self.capacity_s if self.capacity_s else math.nan

    def cores(self, cpu_s: float) -> float:
        return cpu_s / self.seconds if self.seconds else math.nan

    @property
    def others_s(self) -> float:
        """CPU of processes that are neither the benchmark nor the stack under test."""
        return max(0.0, self.machine_s - self.worker_s - self.kafka_s - self.pg_s
                   - self.harness_s)

    def ms_per_event(self, cpu_s: float) -> float:
        return cpu_s / self.events * 1000 if self.events else math.nan


async def wait_until_quiet(max_wait_s: float, busy_below: float = 0.25) -> float:
    """Wait (bounded) until the machine is mostly idle before a measurement; returns the busy
    fraction last seen."""
    deadline = time.monotonic() + max_wait_s
    while True:
        b0, t0 = machine_cpu()
        await asyncio.sleep(1)
        b1, t1 = machine_cpu()
        busy = (b1 - b0) / (t1 - t0) if t1 > t0 else 0.0
        if busy < busy_below or time.monotonic() > deadline:
            if busy >= busy_below:
                print(f"  ! machine still {busy:.0%} busy after {max_wait_s:g} s: measuring "
                      "anyway (see the others' CPU column)")
            return busy
