"""Issue 7: replay of 1,000,000 retained events into a timeline, against kcat reading them.

    source .cache/stack.env && .venv/bin/python bench/replay.py [--events 1000000]
        [--topics 4] [--partitions 6] [--all | --no-all] [--keep]

On the stack's broker, in one run:

1. Produce N small valid events (deploy.stage.changed, deploy.analysis.measured,
   health.reported, ops.alerts values from the models, real CloudEvents headers) into
   `bench-replay-<tag>-*` topics created for the run and deleted at the end (--keep keeps
   them). Every 100th event belongs to one "hot" change (1 % of the events, one causal chain);
   the others to changes of 10 events each, every event caused by the one before in its
   change. Produced with aiokafka's batch API (one batch per partition, filled to 512 KB,
   acks=1: the load only, not how the guardians produce) and timed.
2. kcat, the baseline: `kcat -C -b BOOTSTRAP -t TOPIC -o beginning -e -q -f '%k %h %s\\n'`
   once per topic (kcat reads one topic at a time without a group), output to /dev/null.
3. Ours, in a fresh Python process each (so the peak memory is the reader's own):
   `cli.replay.read` (no consumer group, the pass and the causal completion), then
   `build_timeline`, `root_cause` and `render_text` to /dev/null; once with the hot change as
   selector (reads everything, keeps 1 %), once with a window that keeps everything (--all;
   by default only when an estimate of its memory fits in half the available memory).
   An idle process that imports the same modules gives the interpreter's own share.

Wall time and CPU (user + system) of each process, events read per second, peak RSS
(`wait4`'s ru_maxrss, the same measure for kcat and ours, each started by a bare `python -S`
launcher: Linux carries a parent's peak RSS across exec, so the launcher's few MB are the
floor, shown in the table). Two shared cores run the broker too: the figures are this
machine's, side by side, not absolutes.
"""

from __future__ import annotations

import argparse
import asyncio
import importlib
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
import uuid
import zlib
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:  # `python bench/replay.py` without PYTHONPATH
    sys.path.insert(0, str(ROOT))

from schemas.base import Event  # noqa: E402
from schemas.envelope import Envelope  # noqa: E402

HOT_EVERY = 100
CHAIN = 10
BATCH_BYTES = 512 * 1024
PLACEHOLDER = "bench-placeholder-change"
BYTES_PER_KEPT_EVENT = 4096
"""A generous estimate of what one kept event costs ours (checked by the run's figures)."""


# ------------------------------------------------------------------ the events


def templates() -> list[tuple[str, bytes]]:
    """(ce_type, JSON value with PLACEHOLDER as change id) of the four kinds of event."""
    from schemas.events.deploy import (
        AnalysisOutcome,
        DeployAnalysisMeasured,
        DeployStage,
        DeployStageChanged,
    )
    from schemas.events.health import HealthGrade, HealthReported
    from schemas.events.ops import AlertSeverity, Guardian, OpsAlert

    common: dict[str, Any] = {"change_id": PLACEHOLDER, "service": "shop", "version": "2.0.0"}
    events: list[Event] = [
        DeployStageChanged(**common, stage=DeployStage.CANARY,
                           previous_stage=DeployStage.STAGING_TESTS, canary_weight=20, step=1),
        DeployAnalysisMeasured(**common, stage=DeployStage.CANARY, analysis="success",
                               metric="error-rate", query="sum(rate(errors[1m]))",
                               condition="result < 0.05", values=(0.01,),
                               outcome=AnalysisOutcome.SUCCESSFUL, canary_weight=20),
        HealthReported(service="shop", grade=HealthGrade.GREEN, change_id=PLACEHOLDER),
        OpsAlert(dedup_key="shop:latency", severity=AlertSeverity.INFO, summary="shop is fine",
                 raised_by=Guardian.PROCESS, service="shop", change_id=PLACEHOLDER),
    ]
    return [(type(e).ce_type(), e.model_dump_json().encode()) for e in events]


def change_of(seq: int, tag: str) -> str:
    return f"bench-{tag}-hot" if seq % HOT_EVERY == 0 else f"bench-{tag}-{seq // CHAIN}"


async def produce(bootstrap: str, topics: list[str], partitions: int, count: int,
                  tag: str) -> float:
    """`count` events over `topics`; returns the seconds it took (all acknowledged)."""
    from aiokafka import AIOKafkaProducer

    kinds = templates()
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, acks=1,
                                max_batch_size=BATCH_BYTES, request_timeout_ms=60_000)
    await producer.start()
    started = time.monotonic()
    batches: dict[tuple[int, int], Any] = {}
    pending: list[asyncio.Future[Any]] = []
    last: dict[str, str] = {}
    try:
        for seq in range(count):
            change = change_of(seq, tag)
            which = (seq // 3) % len(topics)
            ce_type, value = kinds[which % len(kinds)]
            envelope = Envelope(type=ce_type, source="bench/replay", subject=change,
                                correlation_id=change, causation_id=last.get(change))
            last[change] = envelope.id
            key = change.encode()
            slot = (which, zlib.crc32(key) % partitions)
            record = (key, value.replace(PLACEHOLDER.encode(), key), envelope.to_headers())
            await _append(producer, batches, pending, topics, slot, record)
        for (which, partition), batch in batches.items():
            pending.append(await producer.send_batch(batch, topics[which], partition=partition))
        await asyncio.gather(*pending)
    finally:
        await producer.stop()
    return time.monotonic() - started


async def _append(producer: Any, batches: dict[tuple[int, int], Any],
                  pending: list[asyncio.Future[Any]], topics: list[str],
                  slot: tuple[int, int], record: tuple[bytes, bytes, list[tuple[str, bytes]]]
                  ) -> None:
    """Add to the slot's batch; a full batch is sent and a new one started."""
    key, value, headers = record
    batch = batches.get(slot) or producer.create_batch()
    if batch.append(key=key, value=value, timestamp=None, headers=headers) is None:
        pending.append(await producer.send_batch(batch, topics[slot[0]], partition=slot[1]))
        if len(pending) > 64:
            await asyncio.gather(*pending)
            pending.clear()
        batch = producer.create_batch()
        batch.append(key=key, value=value, timestamp=None, headers=headers)
    batches[slot] = batch


async def create_topics(bootstrap: str, names: list[str], partitions: int) -> None:
    from aiokafka.admin import AIOKafkaAdminClient, NewTopic

    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    try:
        await admin.create_topics([NewTopic(n, partitions, 1) for n in names])
        for _ in range(100):  # leaders elected: every partition answers metadata
            described = await admin.describe_topics(names)
            if all(t["error_code"] == 0 and len(t["partitions"]) == partitions
                   for t in described):
                return
            await asyncio.sleep(0.1)
    finally:
        await admin.close()


async def delete_topics(bootstrap: str, names: list[str]) -> None:
    from aiokafka.admin import AIOKafkaAdminClient

    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    try:
        existing = set(await admin.list_topics())
        doomed = [n for n in names if n in existing]
        if doomed:
            await admin.delete_topics(doomed)
    finally:
        await admin.close()


# ------------------------------------------------------------------ measuring processes


@dataclass(frozen=True)
class Run:
    """One measured process (or several in a row, for kcat: one per topic)."""

    name: str
    selector: str
    wall_s: float
    cpu_s: float
    peak_rss_kb: int
    read: int
    kept: int | None = None
    phases: str = ""

    @property
    def per_s(self) -> float:
        return self.read / self.wall_s if self.wall_s else 0.0


LAUNCHER = """
import json, os, sys, time
started = time.monotonic()
pid = os.fork()
if pid == 0:
    os.execvp(sys.argv[2], sys.argv[2:])
_, status, usage = os.wait4(pid, 0)
with open(sys.argv[1], "w") as report:
    json.dump({"code": os.waitstatus_to_exitcode(status), "wall": time.monotonic() - started,
               "cpu": usage.ru_utime + usage.ru_stime, "rss_kb": usage.ru_maxrss}, report)
"""
"""Runs one command and reports its wait4 figures. Linux keeps a process' peak RSS across
exec, so a child forked from this (large) process would report at least this process' RSS;
forked from a bare `python -S` it starts from a few MB (`floor_kb`)."""


def measure(argv: list[str], stdout: int | None = None) -> tuple[float, float, int, str]:
    """Run argv (an argument list, no shell) through LAUNCHER; (wall s, CPU s, peak RSS KB,
    its stdout)."""
    with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err, \
            tempfile.NamedTemporaryFile("r", suffix=".json") as figures:
        code = subprocess.call([sys.executable, "-S", "-c", LAUNCHER, figures.name, *argv],
                               stdout=out if stdout is None else stdout, stderr=err, cwd=ROOT)
        result = json.loads(Path(figures.name).read_text() or "{}")
        if code or result.get("code"):
            err.seek(0)
            raise SystemExit(f"{argv[0]} failed ({result.get('code', code)}): "
                             f"{err.read().decode(errors='replace')[-2000:]}")
        out.seek(0)
        return result["wall"], result["cpu"], result["rss_kb"], out.read().decode()


def floor_kb() -> int:
    """The peak RSS the launcher itself passes on (what /bin/true reports through it)."""
    return measure(["true"])[2]


def kcat_run(kcat: str, bootstrap: str, topics: list[str]) -> Run:
    wall = cpu = 0.0
    peak = 0
    with Path(os.devnull).open("wb") as sink:
        for topic in topics:
            w, c, rss, _ = measure([kcat, "-C", "-b", bootstrap, "-t", topic, "-o", "beginning",
                                    "-e", "-q", "-f", "%k %h %s\\n"], stdout=sink.fileno())
            wall, cpu, peak = wall + w, cpu + c, max(peak, rss)
    return Run("kcat (one process per topic, to /dev/null)", "everything", wall, cpu, peak, 0)


def ours_run(bootstrap: str, topics: list[str], selector: dict[str, str], label: str) -> Run:
    argv = [sys.executable, str(Path(__file__).resolve()), "--child",
            json.dumps({"bootstrap": bootstrap, "topics": topics, "selector": selector})]
    wall, cpu, peak, out = measure(argv)
    figures = json.loads(out.strip().splitlines()[-1])
    phases = ", ".join(f"{name} {seconds:.1f} s" for name, seconds in figures["phases"].items())
    return Run("guardians replay (read + timeline + text)", label, wall, cpu, peak,
               figures["read"], figures["kept"], phases)


def idle_run() -> Run:
    wall, cpu, peak, _ = measure([sys.executable, str(Path(__file__).resolve()), "--idle"])
    return Run("python + the same imports, idle", "-", wall, cpu, peak, 0)


def floor_run() -> Run:
    return Run("the launcher's floor (/bin/true)", "-", 0.0, 0.0, floor_kb(), 0)


# ------------------------------------------------------------------ the child processes


def _imports() -> None:
    """What the replay child imports before it reads anything."""
    for module in ("aiokafka", "aiokafka.admin", "cli.replay", "cli.timeline",
                   "schemas.topics"):
        importlib.import_module(module)


def child(arguments: dict[str, Any]) -> None:
    """Ours, as the command runs it; prints its figures as one JSON line."""
    import gc

    from cli.replay import Selector, read
    from cli.timeline import build_timeline, render_text, root_cause

    gc.disable()  # as `guardians replay` does (cli/replay.py: command)
    raw = arguments["selector"]
    selector = Selector(change=raw.get("change"),
                        since=datetime.fromisoformat(raw["since"]) if "since" in raw else None)
    phases: dict[str, float] = {}
    started = time.monotonic()
    result = asyncio.run(read(arguments["bootstrap"], selector, arguments["topics"]))
    phases["read"] = time.monotonic() - started
    mark = time.monotonic()
    timeline = build_timeline(result.events)
    root_cause(timeline)
    phases["timeline"] = time.monotonic() - mark
    mark = time.monotonic()
    with Path(os.devnull).open("w") as sink:
        sink.write(render_text(timeline, selector.describe()))
    phases["text"] = time.monotonic() - mark
    print(json.dumps({"read": result.stats.read, "kept": len(timeline.events),
                      "phases": phases}))


# ------------------------------------------------------------------ the report


def table(runs: list[Run], events: int) -> str:
    lines = ["| reader | selector | events read | kept | wall s | events/s | CPU s "
             "| peak RSS MB | phases |",
             "|---|---|---:|---:|---:|---:|---:|---:|---|"]
    for r in runs:
        read = r.read or (events if r.name.startswith("kcat") else 0)
        rate = f"{events / r.wall_s:,.0f}" if read else "—"  # the bench's events, per second
        lines.append(
            f"| {r.name} | {r.selector} | {read:,} | "
            f"{'—' if r.kept is None else f'{r.kept:,}'} | {r.wall_s:.1f} | {rate} | "
            f"{r.cpu_s:.1f} | {r.peak_rss_kb / 1024:,.0f} | {r.phases or '—'} |")
    return "\n".join(lines)


def available_kb() -> int:
    for line in Path("/proc/meminfo").read_text().splitlines():
        if line.startswith("MemAvailable:"):
            return int(line.split()[1])
    return 0


async def setup(args: argparse.Namespace, names: list[str], tag: str) -> float:
    await create_topics(args.bootstrap, names, args.partitions)
    return await produce(args.bootstrap, names, args.partitions, args.events, tag)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=1_000_000)
    parser.add_argument("--topics", type=int, default=4)
    parser.add_argument("--partitions", type=int, default=6)
    parser.add_argument("--all", action=argparse.BooleanOptionalAction, default=None,
                        help="also replay every event (default: when memory allows)")
    parser.add_argument("--keep", action="store_true", help="keep the bench topics")
    parser.add_argument("--bootstrap", default=os.environ.get("GUARDIANS_KAFKA_BOOTSTRAP"))
    parser.add_argument("--child", help=argparse.SUPPRESS)
    parser.add_argument("--idle", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.idle:
        _imports()
        return 0
    if args.child:
        child(json.loads(args.child))
        return 0
    kcat = os.environ.get("GUARDIANS_KCAT_BIN") or shutil.which("kcat")
    if not args.bootstrap or not kcat:
        print("source .cache/stack.env first (GUARDIANS_KAFKA_BOOTSTRAP, GUARDIANS_KCAT_BIN; "
              "stack/stack.sh up installs kcat)", file=sys.stderr)
        return 2
    return bench(args, kcat)


def bench(args: argparse.Namespace, kcat: str) -> int:
    tag = uuid.uuid4().hex[:8]
    names = [f"bench-replay-{tag}-{n}" for n in range(args.topics)]
    before = datetime.now(UTC) - timedelta(minutes=1)
    try:
        produced_s = asyncio.run(setup(args, names, tag))
        print(f"produced {args.events:,} events into {len(names)} topics x {args.partitions} "
              f"partitions in {produced_s:.1f} s ({args.events / produced_s:,.0f} events/s)",
              file=sys.stderr)
        runs = [kcat_run(kcat, args.bootstrap, names)]
        hot = f"bench-{tag}-hot"
        runs.append(ours_run(args.bootstrap, names, {"change": hot},
                             f"one change (--change, {100 / HOT_EVERY:.0f} %)"))
        wanted_kb = args.events * BYTES_PER_KEPT_EVENT // 1024
        if args.all or (args.all is None and wanted_kb < available_kb() // 2):
            runs.append(ours_run(args.bootstrap, names, {"since": before.isoformat()},
                                 "everything (--since)"))
        elif args.all is None:
            print(f"skipped replaying everything: ~{wanted_kb // 1024:,} MB wanted, "
                  f"{available_kb() // 1024:,} MB available (--all forces it)", file=sys.stderr)
        runs.append(idle_run())
        runs.append(floor_run())
    finally:
        if not args.keep:
            asyncio.run(delete_topics(args.bootstrap, names))
    report(runs, args, produced_s)
    return 0


def report(runs: list[Run], args: argparse.Namespace, produced_s: float) -> None:
    print(f"Replay of {args.events:,} retained events ({args.topics} topics x "
          f"{args.partitions} partitions; produced in {produced_s:.1f} s, acks=1, batched)\n")
    print(table(runs, args.events))
    kcat, ours, idle = runs[0], runs[1:-2], runs[-2]
    print()
    for run in ours:
        print(f"- {run.selector}: ours / kcat = {run.wall_s / kcat.wall_s:.2f}x the wall time, "
              f"{run.cpu_s / max(kcat.cpu_s, 1e-9):.1f}x the CPU, "
              f"{run.peak_rss_kb / max(kcat.peak_rss_kb, 1):.1f}x the peak RSS "
              f"({(run.peak_rss_kb - idle.peak_rss_kb) / 1024:,.0f} MB above an idle "
              "interpreter with the same imports)")
    print("\nevents/s: the benchmark's events over the process's wall time, start-up "
          "included; 'events read' for ours also counts the incident.opened pre-pass.")


if __name__ == "__main__":
    sys.exit(main())
