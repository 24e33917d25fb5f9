"""Issue 2, section 6: a 4-hop relay chain on the runtime against the same chain in raw aiokafka.

    source .cache/stack.env && .venv/bin/python bench/relay_chain.py      (or `make bench`)

One run, on the real local stack (Kafka and PostgreSQL on 127.0.0.1), about four minutes:

0. Unit costs: what one Kafka request and one PostgreSQL round trip cost on this machine
   (wall time; broker, PostgreSQL and client CPU). Every other figure follows from these.
1. Latency at fixed offered rates (default 200 events/s, the issue's rate, then 50 events/s)
   through a 4-hop chain hop0 -> hop1 -> hop2 -> hop3 -> hop4: four services on the runtime
   (each its own process, schema and consumer group; each handles hop(i-1) and emits hop(i)
   with ctx.emit, so dedupe, outbox, relay and offset commits are all paid), then four raw
   aiokafka processes doing consume -> produce -> commit with the same producer settings.
   Per-hop latency two ways: end-to-end (send time carried in the event to arrival at a
   consumer of hop4) / 4, and per hop from Kafka's CreateTime (output record minus input
   record, read back from every hop topic afterwards).
2. Maximum sustained throughput through one service: N events pre-loaded into an input topic,
   then one hop at a time drains it: raw; the runtime with its defaults; commit interval
   100 ms; one event per transaction with and without per-message offset commits; events/s
   from the output records' CreateTime span.
3. Where the time goes: the runtime's Prometheus histograms from each worker's /metrics, the
   CPU of every process involved, and a cProfile of one runtime hop draining the backlog.

It prints markdown tables (for BENCHMARKS.md), the runtime/raw ratios, and checks the issue's
floor: runtime per-hop p50 <= 10 ms at the first rate and >= 1,000 events/s through one
service. Topics (bench-<tag>-*), schemas (bench_<tag>_*) and worker logs are removed at the
end unless --keep; worker processes are stopped even on error.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import math
import os
import platform
import shutil
import signal
import sys
import time
import uuid
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:  # `python bench/relay_chain.py` without PYTHONPATH
    sys.path.insert(0, str(ROOT))

import asyncpg  # noqa: E402
from aiokafka import AIOKafkaConsumer  # noqa: E402
from aiokafka.admin import AIOKafkaAdminClient  # noqa: E402
from aiokafka.structs import TopicPartition  # noqa: E402

from bench.calibrate import UnitCost, unit_costs  # noqa: E402
from bench.events import Hop  # noqa: E402
from bench.measure import (  # noqa: E402
    FinalReader,
    Samples,
    counter,
    create_topics,
    delta,
    end_offsets_total,
    fmt,
    histogram,
    percentile,
    preload,
    producer,
    ratio,
    read_create_times,
    scrape_all,
    send_at_rate,
)
from bench.procs import (  # noqa: E402
    BenchError,
    CpuWindow,
    Supervisor,
    refresh_backends,
    wait_until_quiet,
    watch_stack,
)
from bench.profiling import ProfileSummary, summarize  # noqa: E402
from services.runtime.settings import RuntimeSettings  # noqa: E402

FLOOR_P50_MS = 10.0
FLOOR_EVENTS_PER_S = 1_000.0


# ------------------------------------------------------------------------------ latency


@dataclass
class LatencyResult:
    chain: str
    rate: float
    sent: int
    e2e_ms: list[float]
    hop_ts_ms: list[list[float]]
    """Per hop i (1..hops): CreateTime(hop i) - CreateTime(hop i-1) per event, in ms."""
    hops: int
    cpu: CpuWindow
    copies: int
    metrics: Samples = field(default_factory=dict)

    @property
    def received(self) -> int:
        return sum(1 for v in self.e2e_ms if not math.isinf(v))

    @property
    def per_hop_e2e(self) -> list[float]:
        return [v / self.hops for v in self.e2e_ms]

    @property
    def per_hop_ts(self) -> list[float]:
        return [v for hop in self.hop_ts_ms for v in hop]


async def latency_chain(
    args: argparse.Namespace, sup: Supervisor, tag: str, chain: str, rate: float
) -> LatencyResult:
    bootstrap = args.bootstrap
    prefix = f"bench-{tag}-{chain}{rate:g}"
    topics = [f"{prefix}.hop{i}" for i in range(args.hops + 1)]
    models = await create_topics(bootstrap, topics, args.partitions)
    warm = range(0, max(20, int(rate * args.warmup_s)))
    measured = range(warm.stop, warm.stop + int(rate * args.duration_s))
    print(f"\n[latency {chain} @ {rate:g}/s] {args.hops} hops on {prefix}.hop0..hop{args.hops}: "
          f"{len(warm)} warm-up + {len(measured)} measured events")
    await wait_until_quiet(args.quiet_wait_s)
    workers = []
    for i in range(1, args.hops + 1):
        if chain == "runtime":
            workers.append(sup.runtime(
                f"bench_{tag}_rt{rate:g}_h{i}", topics[i - 1], topics[i],
                partitions=args.partitions, max_batch=args.max_batch,
                commit_interval_ms=args.commit_interval_ms, log_level=args.log_level,
            ))
        else:
            workers.append(sup.raw(f"bench-{tag}-raw{rate:g}-h{i}", topics[i - 1], topics[i],
                                   max_batch=args.max_batch))
    reader = FinalReader(bootstrap, topics[-1])
    prod = producer(bootstrap)
    await reader.start()
    await prod.start()
    cpu = CpuWindow(workers)
    try:
        # Warm-up doubles as the readiness check: the workers start (imports, migrations,
        # group joins) while it is sent; we go on once all of it came out of the last hop.
        await send_at_rate(prod, models[0], warm, rate, sup.check)
        missing = await reader.wait_for(warm, args.ready_timeout_s, sup.check)
        if missing:
            raise BenchError(f"[{chain}] {missing} warm-up events did not come through in "
                             f"{args.ready_timeout_s:g} s; logs in {sup.logs}")
        await asyncio.sleep(1)
        await refresh_backends()
        before = await scrape_all(workers)
        cpu.start()
        await send_at_rate(prod, models[0], measured, rate, sup.check)
        missing = await reader.wait_for(measured, args.drain_timeout_s, sup.check)
        cpu.finish()
        after = await scrape_all(workers)
    finally:
        await prod.stop()
        await reader.stop()
        await sup.stop(workers)
    if missing:
        print(f"  ! {missing} measured events did not reach hop{args.hops}")
    # An event that never arrived counts as infinitely late: percentiles stay honest.
    e2e = [(reader.arrived[s][1] - reader.arrived[s][0]) / 1e6 if s in reader.arrived
           else math.inf for s in measured]
    cpu.events = len(e2e) - missing
    stamps = [await read_create_times(bootstrap, t, measured.stop) for t in topics]
    hop_ts = [[float(stamps[i][s] - stamps[i - 1][s]) for s in measured
               if s in stamps[i] and s in stamps[i - 1]] for i in range(1, args.hops + 1)]
    result = LatencyResult(chain, rate, len(measured), e2e, hop_ts, args.hops, cpu,
                           reader.copies, delta(after, before))
    print(f"  per hop p50 {fmt(percentile(result.per_hop_e2e, 50), 2)} ms (e2e/{args.hops}), "
          f"{fmt(percentile(result.per_hop_ts, 50), 0)} ms (CreateTime); machine "
          f"{cpu.machine_busy:.0%} busy")
    return result


# ------------------------------------------------------------------------------ throughput


@dataclass(frozen=True)
class Variant:
    slug: str
    label: str
    kind: str
    max_batch: int = 200
    commit_interval_ms: int = 0
    profile: bool = False
    cap_s: float = 30
    default: bool = True


@dataclass
class ThroughputResult:
    variant: Variant
    outputs: int
    span_s: float
    complete: bool
    cpu: CpuWindow
    metrics: Samples
    profile: Path | None = None

    @property
    def rate(self) -> float:
        return (self.outputs - 1) / self.span_s if self.span_s > 0 else math.nan


def variants(args: argparse.Namespace) -> list[Variant]:
    default = RuntimeSettings()
    b, c = default.max_batch, default.commit_interval_ms
    found = [
        Variant("raw", f"raw aiokafka (batch {args.max_batch}, commit per batch)", "raw",
                max_batch=args.max_batch, cap_s=args.tp_cap_s),
        Variant("rt", f"runtime defaults (max_batch {b}, commit_interval_ms {c})", "runtime",
                b, c, cap_s=args.tp_cap_s),
        Variant("rtc100", f"runtime max_batch {b}, commit_interval_ms 100", "runtime",
                b, 100, cap_s=args.tp_cap_s),
        Variant("rtb1c100", "runtime max_batch 1, commit_interval_ms 100", "runtime",
                1, 100, cap_s=args.tp_small_cap_s, default=False),
        Variant("rtb1", "runtime max_batch 1, commit_interval_ms 0 (per message)", "runtime",
                1, 0, cap_s=args.tp_small_cap_s),
    ]
    if args.profile:
        found.append(Variant("rtprof", f"runtime defaults under cProfile (max_batch {b})",
                             "runtime", b, c, profile=True, cap_s=args.profile_cap_s))
    if args.variants:
        wanted = args.variants.split(",")
        unknown = set(wanted) - {v.slug for v in found}
        if unknown:
            raise BenchError(f"unknown --variants {sorted(unknown)}; choose from "
                             f"{[v.slug for v in found]}")
        return [v for v in found if v.slug in wanted]
    return [v for v in found if v.default]


async def throughput(
    args: argparse.Namespace, sup: Supervisor, tag: str, source: type[Hop], variant: Variant
) -> ThroughputResult:
    bootstrap = args.bootstrap
    target_topic = f"bench-{tag}-tp-{variant.slug}.out"
    (_, target) = await create_topics(bootstrap, [source.TOPIC, target_topic], args.partitions)
    profile = sup.logs / f"{variant.slug}.prof" if variant.profile else None
    await wait_until_quiet(args.quiet_wait_s)
    if variant.kind == "raw":
        worker = sup.raw(f"bench-{tag}-tp-{variant.slug}", source.TOPIC, target.TOPIC,
                         max_batch=variant.max_batch)
    else:
        worker = sup.runtime(
            f"bench_{tag}_tp_{variant.slug}", source.TOPIC, target.TOPIC,
            partitions=args.partitions, max_batch=variant.max_batch,
            commit_interval_ms=variant.commit_interval_ms, log_level=args.log_level,
            profile=profile,
        )
    watcher = AIOKafkaConsumer(bootstrap_servers=bootstrap, group_id=None,
                               enable_auto_commit=False)
    await watcher.start()
    cpu = CpuWindow([worker])
    metrics: Samples = {}
    complete = False
    try:
        partitions = [TopicPartition(target.TOPIC, p) for p in range(args.partitions)]
        deadline = time.monotonic() + args.ready_timeout_s
        while await end_offsets_total(watcher, partitions) == 0:  # first output: it runs
            sup.check()
            if time.monotonic() > deadline:
                raise BenchError(f"{variant.slug}: no output in {args.ready_timeout_s:g} s; "
                                 f"log: {worker.log}")
            await asyncio.sleep(0.02)
        await refresh_backends()
        cpu.start()
        first = last = await end_offsets_total(watcher, partitions)
        deadline = time.monotonic() + variant.cap_s
        while time.monotonic() < deadline:
            last = await end_offsets_total(watcher, partitions)
            if last >= args.tp_events:
                complete = True
                break
            sup.check()
            await asyncio.sleep(0.1)
        cpu.finish()
        cpu.events = last - first
        metrics = await scrape_all([worker])
    finally:
        await watcher.stop()
        await sup.stop([worker])
    stamps = sorted((await read_create_times(bootstrap, target.TOPIC, args.tp_events,
                                              timeout_s=30)).values())
    span = (stamps[-1] - stamps[0]) / 1000 if len(stamps) > 1 else math.nan
    result = ThroughputResult(variant, len(stamps), span, complete, cpu, metrics, profile)
    print(f"  {variant.label}: {len(stamps):,} events in {fmt(span, 2)} s = "
          f"{fmt(result.rate, 0)} events/s{'' if complete else ' (time cap reached)'}")
    return result


# ------------------------------------------------------------------------------ report


def table(header: Sequence[str], rows: Iterable[Sequence[str]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    lines += ["| " + " | ".join(row) + " |" for row in rows]
    return "\n".join(lines)


def cpu_model() -> str:
    for line in Path("/proc/cpuinfo").read_text().splitlines():
        if line.startswith("model name"):
            return line.split(":", 1)[1].strip()
    return platform.processor() or "unknown CPU"


@dataclass
class Results:
    started: datetime
    units: list[UnitCost] = field(default_factory=list)
    latency: list[LatencyResult] = field(default_factory=list)
    throughput: list[ThroughputResult] = field(default_factory=list)
    profile: ProfileSummary | None = None


def report_units(units: list[UnitCost]) -> list[str]:
    return [
        "\n### Unit costs on this machine (each operation repeated on its own)\n",
        table(["operation", "n", "wall ms", "broker CPU ms", "PostgreSQL CPU ms",
               "Python client CPU ms"],
              [[u.operation, str(u.count), fmt(u.wall_ms, 2), fmt(u.kafka_ms, 2),
                fmt(u.pg_ms, 2), fmt(u.client_ms, 2)] for u in units]),
    ]


def report_latency(args: argparse.Namespace, results: list[LatencyResult],
                   data: dict[str, Any]) -> list[str]:
    out = [f"\n### Per-hop latency at fixed offered rates ({args.hops} hops, "
           f"{args.duration_s:g} s measured after {args.warmup_s:g} s warm-up, "
           f"{args.partitions} partitions, runtime max_batch {args.max_batch}, "
           f"commit_interval_ms {args.commit_interval_ms}, log level {args.log_level})\n"]
    rows = []
    for r in results:
        c = r.cpu
        rows.append([
            f"{r.rate:g}/s", r.chain, f"{r.received}/{r.sent}",
            fmt(percentile(r.per_hop_e2e, 50), 2), fmt(percentile(r.per_hop_e2e, 99), 1),
            fmt(percentile(r.per_hop_ts, 50), 0), fmt(percentile(r.per_hop_ts, 99), 0),
            fmt(percentile(r.e2e_ms, 50), 1), fmt(percentile(r.e2e_ms, 99), 1),
            fmt(c.ms_per_event(c.worker_s) / r.hops, 2),
            f"{fmt(c.cores(c.worker_s), 2)} / {fmt(c.cores(c.kafka_s), 2)} / "
            f"{fmt(c.cores(c.pg_s), 2)} / {fmt(c.cores(c.harness_s), 2)} / "
            f"{fmt(c.cores(c.others_s), 2)}",
            f"{c.machine_busy:.0%}",
        ])
        data[f"latency_{r.chain}_{r.rate:g}"] = {
            "received": r.received, "sent": r.sent, "copies": r.copies,
            "per_hop_e2e_p50_ms": percentile(r.per_hop_e2e, 50),
            "per_hop_e2e_p99_ms": percentile(r.per_hop_e2e, 99),
            "per_hop_createtime_p50_ms": percentile(r.per_hop_ts, 50),
            "per_hop_createtime_p99_ms": percentile(r.per_hop_ts, 99),
            "per_hop_createtime_p50_by_hop": [percentile(h, 50) for h in r.hop_ts_ms],
            "e2e_p50_ms": percentile(r.e2e_ms, 50), "e2e_p99_ms": percentile(r.e2e_ms, 99),
            "worker_cpu_ms_per_event_per_hop": c.ms_per_event(c.worker_s) / r.hops,
            "cores": {"workers": c.cores(c.worker_s), "kafka": c.cores(c.kafka_s),
                      "postgres": c.cores(c.pg_s), "load_generator": c.cores(c.harness_s),
                      "others": c.cores(c.others_s)},
            "machine_busy": c.machine_busy,
        }
    out.append(table(
        ["rate", "chain", "arrived", "per-hop p50 ms (e2e/4)", "per-hop p99 ms (e2e/4)",
         "per-hop p50 ms (CreateTime)", "per-hop p99 ms (CreateTime)", "e2e p50 ms",
         "e2e p99 ms", "worker CPU ms per event-hop",
         "cores: workers / Kafka / PG / load gen / others", "machine busy"], rows))
    out.append("\nPer-hop p50/p99 from CreateTime, by hop (ms; 1 ms resolution): " + "; ".join(
        f"{r.chain} @ {r.rate:g}/s: " + ", ".join(
            f"h{i + 1} {fmt(percentile(h, 50), 0)}/{fmt(percentile(h, 99), 0)}"
            for i, h in enumerate(r.hop_ts_ms))
        for r in results))
    by_rate: dict[float, dict[str, LatencyResult]] = {}
    for r in results:
        by_rate.setdefault(r.rate, {})[r.chain] = r
    for rate, chains in by_rate.items():
        rt, raw = chains.get("runtime"), chains.get("raw")
        if rt is None or raw is None:
            continue
        p50 = ratio(percentile(rt.per_hop_e2e, 50), percentile(raw.per_hop_e2e, 50))
        p99 = ratio(percentile(rt.per_hop_e2e, 99), percentile(raw.per_hop_e2e, 99))
        cpu = ratio(rt.cpu.ms_per_event(rt.cpu.worker_s), raw.cpu.ms_per_event(raw.cpu.worker_s))
        out.append(f"\nRatios runtime/raw at {rate:g}/s: per-hop p50 {fmt(p50)}x, per-hop "
                   f"p99 {fmt(p99)}x, worker CPU per event {fmt(cpu)}x")
        data[f"ratios_{rate:g}"] = {"p50": p50, "p99": p99, "worker_cpu": cpu}
    for r in results:
        if r.chain != "runtime" or not r.metrics:
            continue
        m = r.metrics
        handle = histogram(m, "guardians_handle_seconds")
        batch = histogram(m, "guardians_batch_seconds")
        outbox_delay = histogram(m, "guardians_outbox_delay_seconds")
        commits = counter(m, "guardians_offset_commits_total")
        out.append(f"\nRuntime internals at {r.rate:g}/s (the 4 services' /metrics over the "
                   "measured window; p50/p99 interpolated in histogram buckets):\n")
        out.append(table(["histogram", "count", "mean ms", "p50 ms", "p99 ms"], [
            [name, f"{h.count:,.0f}", fmt(h.mean_ms, 2), fmt(h.p50_ms, 2), fmt(h.p99_ms, 2)]
            for name, h in (
                ("guardians_handle_seconds (one event inside the transaction)", handle),
                ("guardians_batch_seconds (a batch's transaction, commit included)", batch),
                ("guardians_outbox_delay_seconds (row commit -> Kafka ack)", outbox_delay),
            )
        ]))
        events_per_batch = handle.count / batch.count if batch.count else math.nan
        commits_per_event = commits / handle.count if handle.count else math.nan
        out.append(f"\nEvents per batch transaction: {fmt(events_per_batch, 2)}; offset "
                   f"commits per event: {fmt(commits_per_event, 2)}")
        data[f"runtime_internals_{r.rate:g}"] = {
            "handle": handle.as_dict(), "batch": batch.as_dict(),
            "outbox_delay": outbox_delay.as_dict(), "offset_commits": commits,
            "events_per_batch": events_per_batch,
        }
    return out


def report_throughput(args: argparse.Namespace, results: list[ThroughputResult],
                      data: dict[str, Any]) -> list[str]:
    out = [f"\n### Sustained throughput through one service ({args.tp_events:,} events "
           f"pre-loaded, {args.partitions} partitions, log level {args.log_level})\n"]
    raw_rate = next((t.rate for t in results if t.variant.kind == "raw"), math.nan)
    rows = []
    for t in results:
        c = t.cpu
        batch = histogram(t.metrics, "guardians_batch_seconds")
        handled = histogram(t.metrics, "guardians_handle_seconds")
        per_txn = handled.count / batch.count if batch.count else math.nan
        rows.append([
            t.variant.label, f"{t.outputs:,}" + ("" if t.complete else " (time cap)"),
            fmt(t.span_s, 2), fmt(t.rate, 0), fmt(ratio(t.rate, raw_rate), 3),
            fmt(per_txn, 1), fmt(c.ms_per_event(c.worker_s), 3),
            fmt(c.ms_per_event(c.kafka_s), 3), fmt(c.ms_per_event(c.pg_s), 3),
            fmt(c.cores(c.others_s), 2), f"{c.machine_busy:.0%}",
        ])
        data[f"throughput_{t.variant.slug}"] = {
            "label": t.variant.label, "outputs": t.outputs, "seconds": t.span_s,
            "events_per_s": t.rate, "complete": t.complete,
            "ratio_to_raw": ratio(t.rate, raw_rate), "events_per_txn": per_txn,
            "cpu_ms_per_event": {"worker": c.ms_per_event(c.worker_s),
                                 "kafka": c.ms_per_event(c.kafka_s),
                                 "postgres": c.ms_per_event(c.pg_s)},
            "others_cores": c.cores(c.others_s), "machine_busy": c.machine_busy,
        }
    out.append(table(["one hop", "events out", "seconds", "events/s", "vs raw",
                      "events per txn", "worker CPU ms/event", "broker CPU ms/event",
                      "PG CPU ms/event", "others' cores", "machine busy"], rows))
    return out


def report_profile(p: ProfileSummary) -> list[str]:
    us = 1e6 / max(1, p.events)
    out = [f"\n### cProfile of one runtime hop draining the backlog ({p.events:,} events; "
           f"on-CPU {fmt(p.busy_s, 2)} s = {fmt(p.busy_s * us, 0)} us/event under the "
           f"profiler; {fmt(p.socket_sends / max(1, p.events), 1)} socket writes per event)\n"]
    out.append(table(["self time by library", "share", "us/event"], [
        [name, f"{seconds / p.busy_s:.1%}", fmt(seconds * us, 0)]
        for name, seconds in p.categories if seconds / p.busy_s >= 0.005
    ]))
    out.append("")
    out.append(table(["runtime step (on-CPU, callees included)", "us/event", "share"], [
        [label, fmt(cum * us, 0), f"{cum / p.busy_s:.1%}"] for label, cum, _ in p.functions
    ]))
    out.append("\nTop self time: " + "; ".join(
        f"{name} {fmt(tt * us, 0)} us" for name, tt, _ in p.top))
    return out


def report(args: argparse.Namespace, res: Results) -> tuple[str, dict[str, Any]]:
    data: dict[str, Any] = {"started": res.started.isoformat(),
                            "args": {k: str(v) for k, v in vars(args).items()}}
    out = [f"Machine: {os.cpu_count()} cores ({cpu_model()}), Python "
           f"{platform.python_version()}, {platform.system()} {platform.release()}; run "
           f"{res.started:%Y-%m-%d %H:%M} UTC; load average before {args.load_before}"]
    if res.units:
        out += report_units(res.units)
        data["unit_costs"] = [vars(u) for u in res.units]
    if res.latency:
        out += report_latency(args, res.latency, data)
    if res.throughput:
        out += report_throughput(args, res.throughput, data)
    if res.profile is not None:
        out += report_profile(res.profile)
        data["profile"] = res.profile.as_dict()
    floor = []
    first_rate = [r for r in res.latency if r.chain == "runtime" and r.rate == args.rates[0]]
    if first_rate:
        p50 = percentile(first_rate[0].per_hop_e2e, 50)
        floor.append(f"runtime per-hop p50 at {args.rates[0]:g}/s: {fmt(p50, 2)} ms "
                     f"(floor <= {FLOOR_P50_MS:g} ms): {'PASS' if p50 <= FLOOR_P50_MS else 'FAIL'}")
    rt_tp = next((t for t in res.throughput if t.variant.slug == "rt"), None)
    if rt_tp is not None:
        floor.append(f"runtime (defaults) through one service: {fmt(rt_tp.rate, 0)} events/s "
                     f"(floor >= {FLOOR_EVENTS_PER_S:,.0f}): "
                     f"{'PASS' if rt_tp.rate >= FLOOR_EVENTS_PER_S else 'FAIL'}")
    if floor:
        out.append("\n### Floor (issue 2)\n")
        out.extend(f"- {line}" for line in floor)
    data["floor"] = floor
    return "\n".join(out), data


# ------------------------------------------------------------------------------ run


async def wait_for_stack(bootstrap: str, database_url: str, timeout_s: float = 90) -> None:
    """Kafka and PostgreSQL answer (the stack may be restarting), or BenchError."""
    deadline = time.monotonic() + timeout_s
    while True:
        try:
            admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap, request_timeout_ms=5_000)
            await admin.start()
            try:
                await admin.list_topics()
            finally:
                await admin.close()
            conn = await asyncpg.connect(database_url, timeout=5)
            await conn.close()
            return
        except Exception as exc:
            if time.monotonic() > deadline:
                raise BenchError(f"the stack does not answer ({exc!r}): make stack-up") from exc
            await asyncio.sleep(2)


async def cleanup(bootstrap: str, database_url: str, tag: str) -> None:
    """Delete this run's topics and schemas (consumer groups expire on their own)."""
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap, request_timeout_ms=30_000)
    await admin.start()
    try:
        mine = [t for t in await admin.list_topics() if t.startswith(f"bench-{tag}-")]
        if mine:
            await admin.delete_topics(mine, timeout_ms=30_000)
    finally:
        await admin.close()
    conn = await asyncpg.connect(database_url, timeout=10)
    try:
        schemas = [r["nspname"] for r in await conn.fetch(
            "SELECT nspname FROM pg_namespace WHERE nspname LIKE $1", f"bench\\_{tag}\\_%")]
        for schema in schemas:
            await conn.execute(f'DROP SCHEMA "{schema}" CASCADE')
    finally:
        await conn.close()
    print(f"\ncleaned up: {len(mine)} topics, {len(schemas)} schemas of run {tag}")


async def run(args: argparse.Namespace, sup: Supervisor, tag: str) -> Results:
    res = Results(datetime.now(UTC))
    await wait_for_stack(args.bootstrap, args.database_url)
    watch_stack(args.bootstrap, args.database_url, tag)
    if args.calibrate:
        print("\n[unit costs]")
        await wait_until_quiet(args.quiet_wait_s)
        res.units = await unit_costs(args.bootstrap, args.database_url, tag)
        for u in res.units:
            print(f"  {u.operation}: {u.wall_ms:.2f} ms")
    if args.only in ("all", "latency"):
        for rate in args.rates:
            for chain in args.chains.split(","):
                res.latency.append(await latency_chain(args, sup, tag, chain, rate))
    if args.only in ("all", "throughput"):
        [source] = await create_topics(args.bootstrap, [f"bench-{tag}-tp.in"], args.partitions)
        print(f"\n[throughput] pre-loading {args.tp_events:,} events into {source.TOPIC}")
        seconds = await preload(args.bootstrap, source, args.tp_events)
        print(f"  loaded in {seconds:.1f} s")
        for variant in variants(args):
            result = await throughput(args, sup, tag, source, variant)
            res.throughput.append(result)
            if result.profile is not None and result.profile.exists():
                res.profile = summarize(result.profile, result.outputs)
    return res


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    defaults = RuntimeSettings()
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    p.add_argument("--only", choices=("all", "latency", "throughput"), default="all")
    p.add_argument("--no-calibrate", dest="calibrate", action="store_false",
                   help="skip the unit-cost measurements")
    p.add_argument("--chains", default="runtime,raw", choices=("runtime,raw", "runtime", "raw"),
                   help="which latency chains to run")
    p.add_argument("--rates", default="200,50",
                   help="offered events/s for the latency runs; the floor is checked at the first")
    p.add_argument("--warmup-s", type=float, default=3)
    p.add_argument("--duration-s", type=float, default=10, help="measured window per rate")
    p.add_argument("--hops", type=int, default=4)
    p.add_argument("--partitions", type=int, default=6)
    p.add_argument("--max-batch", type=int, default=defaults.max_batch,
                   help="runtime max_batch and raw getmany max_records in the latency chains")
    p.add_argument("--commit-interval-ms", type=int, default=defaults.commit_interval_ms,
                   help="runtime commit interval in the latency chains")
    p.add_argument("--log-level", default="INFO",
                   help="runtime workers' log level (INFO = production: a line per event)")
    p.add_argument("--variants", default="",
                   help="throughput runs, comma-separated, from raw,rt,rtc100,rtb1c100,rtb1,"
                        "rtprof (default: all but rtb1c100)")
    p.add_argument("--tp-events", type=int, default=10_000, help="events pre-loaded")
    p.add_argument("--tp-cap-s", type=float, default=25,
                   help="time cap per throughput run (raw and the batched variants)")
    p.add_argument("--tp-small-cap-s", type=float, default=8,
                   help="time cap for the max_batch=1 variants (rate over what got through)")
    p.add_argument("--no-profile", dest="profile", action="store_false",
                   help="skip the cProfile run")
    p.add_argument("--profile-cap-s", type=float, default=8)
    p.add_argument("--ready-timeout-s", type=float, default=90,
                   help="workers must produce output within this")
    p.add_argument("--drain-timeout-s", type=float, default=30,
                   help="how long the measured events may take to come out; later is lost")
    p.add_argument("--quiet-wait-s", type=float, default=5,
                   help="before each measurement wait up to this long for an idle machine")
    p.add_argument("--keep", action="store_true",
                   help="keep topics, schemas, worker logs and the profile")
    p.add_argument("--json", type=Path, default=None, help="also write the figures as JSON")
    args = p.parse_args(argv)
    args.rates = [float(r) for r in str(args.rates).split(",") if r]
    args.bootstrap = defaults.kafka_bootstrap
    args.database_url = defaults.database_url.get_secret_value()
    args.load_before = " ".join(Path("/proc/loadavg").read_text().split()[:3])
    return args


def _terminate(signum: int, frame: object) -> None:
    raise SystemExit(128 + signum)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    # Metadata races right after topic creation make aiokafka log retried NotLeader errors.
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    logging.getLogger("aiokafka").setLevel(logging.ERROR)
    for host in {hp.rsplit(":", 1)[0] for hp in args.bootstrap.split(",")}:
        if host not in ("127.0.0.1", "localhost"):
            print(f"refusing to benchmark a non-local broker {host!r}", file=sys.stderr)
            return 2
    tag = uuid.uuid4().hex[:8]
    logs = ROOT / ".cache" / "bench" / tag
    logs.mkdir(parents=True, exist_ok=True)
    sup = Supervisor(logs)
    signal.signal(signal.SIGTERM, _terminate)
    print(f"bench run {tag}: Kafka {args.bootstrap}, worker logs in {logs}")
    ok = False
    try:
        res = asyncio.run(run(args, sup, tag))
        text, data = report(args, res)
        print("\n" + "=" * 100 + "\n" + text)
        if args.json is not None:
            args.json.write_text(json.dumps(data, indent=2, default=str))
            print(f"\nfigures written to {args.json}")
        ok = True
    except BenchError as exc:
        print(f"\nbenchmark failed: {exc}", file=sys.stderr)
    finally:
        sup.kill_all()
        if not args.keep:
            try:
                asyncio.run(cleanup(args.bootstrap, args.database_url, tag))
            except Exception as exc:
                print(f"cleanup failed: {exc!r}", file=sys.stderr)
            if ok:
                shutil.rmtree(logs, ignore_errors=True)
        if not ok or args.keep:
            print(f"worker logs kept in {logs}")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
