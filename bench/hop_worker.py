"""One hop of the benchmark's relay chain, as its own process (each service is one in production).

    python -m bench.hop_worker runtime --name bench_x_h1 --input T0 --output T1 [--profile F]
    python -m bench.hop_worker raw --group bench_x_raw_h1 --input T0 --output T1

`runtime`: a Guardian (own schema, own consumer group) whose only handler emits the next hop's
event through ctx.emit, so every event pays for dedupe, outbox write, relay and offset commit.
It runs through Guardian.main(), the same path as `python -m services.<name>` (JSON logs at
the configured level, a tracer provider, /metrics on --http-port).

`raw`: the same hop in plain aiokafka: consume a batch, produce every record (idempotent
producer, acks=all, linger 0, as the runtime's relay), wait for the acks, commit the batch's
offsets, repeat. No database, no validation: the floor that Python + aiokafka can do.

Both stop on SIGTERM or SIGINT.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import cProfile
import os
import signal
from pathlib import Path

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from aiokafka.structs import TopicPartition

from bench.events import Hop, registry_for
from services.runtime import Context, Guardian
from services.runtime.settings import RuntimeSettings


def build_guardian(args: argparse.Namespace) -> Guardian:
    registry, (incoming, outgoing) = registry_for([args.input, args.output], args.partitions)
    settings = RuntimeSettings(
        max_batch=args.max_batch,
        commit_interval_ms=args.commit_interval_ms,
        http_port=args.http_port,
        log_level=args.log_level,
    )
    guardian = Guardian(args.name, registry=registry, settings=settings)

    @guardian.handles(incoming)
    async def relay(event: Hop, ctx: Context) -> None:
        ctx.emit(outgoing(change_id=event.change_id, seq=event.seq, sent_ns=event.sent_ns))

    return guardian


def run_runtime(args: argparse.Namespace) -> None:
    guardian = build_guardian(args)
    if args.profile is None:
        guardian.main()
        return
    profiler = cProfile.Profile()
    profiler.enable()
    try:
        guardian.main()
    finally:
        profiler.disable()
        profiler.dump_stats(args.profile)


async def raw_hop(args: argparse.Namespace) -> None:
    bootstrap = os.environ.get("GUARDIANS_KAFKA_BOOTSTRAP", "127.0.0.1:9092")
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    # The runtime's client settings, so that only the runtime's own work differs.
    producer = AIOKafkaProducer(
        bootstrap_servers=bootstrap,
        client_id=f"{args.group}-producer",
        acks="all",
        enable_idempotence=True,
        linger_ms=0,
        request_timeout_ms=15_000,
    )
    consumer = AIOKafkaConsumer(
        args.input,
        bootstrap_servers=bootstrap,
        client_id=args.group,
        group_id=args.group,
        enable_auto_commit=False,
        auto_offset_reset="earliest",
        fetch_max_wait_ms=100,
        session_timeout_ms=10_000,
        heartbeat_interval_ms=1_000,
    )
    await producer.start()
    await consumer.start()
    try:
        while not stop.is_set():
            batch = await consumer.getmany(timeout_ms=100, max_records=args.max_batch)
            if not batch:
                continue
            acks = []
            offsets: dict[TopicPartition, int] = {}
            for tp, records in batch.items():
                for record in records:
                    acks.append(
                        await producer.send(
                            args.output, value=record.value, key=record.key,
                            headers=list(record.headers),
                        )
                    )
                offsets[tp] = records[-1].offset + 1
            await asyncio.gather(*acks)
            await consumer.commit(offsets)  # after every batch, as the runtime's default
    finally:
        with contextlib.suppress(Exception):
            await consumer.stop()
        await producer.stop()


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    kinds = parser.add_subparsers(dest="kind", required=True)
    runtime = kinds.add_parser("runtime", help="a hop on services/runtime (Guardian)")
    runtime.add_argument("--name", required=True, help="service name = schema = group suffix")
    runtime.add_argument("--partitions", type=int, default=6)
    runtime.add_argument("--max-batch", type=int, default=RuntimeSettings().max_batch)
    runtime.add_argument("--commit-interval-ms", type=int,
                         default=RuntimeSettings().commit_interval_ms)
    runtime.add_argument("--http-port", type=int, default=0)
    runtime.add_argument("--log-level", default="INFO")
    runtime.add_argument("--profile", type=Path, default=None,
                         help="run under cProfile and dump the stats here on exit")
    raw = kinds.add_parser("raw", help="the same hop in plain aiokafka")
    raw.add_argument("--group", required=True)
    raw.add_argument("--max-batch", type=int, default=200)
    for sub in (runtime, raw):
        sub.add_argument("--input", required=True, help="topic to consume")
        sub.add_argument("--output", required=True, help="topic to produce to")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    if args.kind == "runtime":
        run_runtime(args)
    else:
        asyncio.run(raw_hop(args))


if __name__ == "__main__":
    main()
