"""The runtime on the real broker and database: exactly-once effects, dead letters, traces."""

from __future__ import annotations

import asyncio
import json
import os
import signal
from collections import Counter
from pathlib import Path

import asyncpg
import pytest
from opentelemetry import trace
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from schemas.signing import SigningKey
from services.runtime.settings import RuntimeSettings
from services.runtime.topics import ensure_topics
from tests.integration.runtime_helpers import (
    Run,
    distinct_outputs,
    item_counts,
    kill,
    rows_by_pid,
    start_worker,
    wait_for_items,
    wait_until_worker_wrote,
)
from tests.support import worker
from tests.support.kafka import read_topic, send_events, send_raw, wait_for

pytestmark = pytest.mark.integration

SPANS = InMemorySpanExporter()


@pytest.fixture(scope="module", autouse=True)
def tracer_provider() -> None:
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(SPANS))
    trace.set_tracer_provider(provider)


async def _prepare(bootstrap: str) -> Run:
    run = Run.new()
    await ensure_topics(bootstrap, run.topics.registry.all())
    return run


async def test_event_is_handled_once_with_causation_traceparent_and_a_span(
    bootstrap: str, database_url: str
) -> None:
    run = await _prepare(bootstrap)
    guardian = worker.build(run.prefix, run.name, RuntimeSettings(http_port=0))
    await guardian.start()
    try:
        parent_trace = "4bf92f3577b34da6a3ce929d0e0e4736"
        traceparent = f"00-{parent_trace}-00f067aa0ba902b7-01"
        ping = run.topics.ping(change_id="shop-1.2.3", seq=1)
        [sent] = await send_events(bootstrap, run.topics.registry, [ping],
                                   traceparent=traceparent)
        [pong] = await read_topic(bootstrap, run.topics.pong.TOPIC, until_count=1, timeout_s=30)
    finally:
        await guardian.stop()

    assert pong.headers["ce_causationid"] == sent.id
    assert pong.headers["ce_correlationid"] == "shop-1.2.3"
    assert pong.headers["ce_type"] == f"guardians.{run.prefix}.pong.v1"
    assert pong.key == b"shop-1.2.3"
    assert pong.headers["traceparent"].split("-")[1] == parent_trace
    assert json.loads(pong.value)["seq"] == 1
    spans = [s for s in SPANS.get_finished_spans()
             if s.attributes and s.attributes.get("messaging.message.id") == sent.id]
    assert len(spans) == 1
    assert format(spans[0].context.trace_id, "032x") == parent_trace
    assert spans[0].attributes is not None
    assert spans[0].attributes["guardians.outcome"] == "handled"
    counts = await wait_for_items(database_url, run.name, 1, timeout_s=5)
    assert counts == Counter({1: 1})


async def test_sigkill_during_a_stream_of_2000_loses_and_duplicates_nothing(
    bootstrap: str, database_url: str, tmp_path: Path
) -> None:
    run = await _prepare(bootstrap)
    total = 2000
    events = [run.topics.ping(change_id=f"change-{i % 97}", seq=i) for i in range(total)]
    log = tmp_path / "worker.log"
    proc = start_worker(run, log, GUARDIANS_SESSION_TIMEOUT_MS="6000")
    sender = asyncio.create_task(
        send_events(bootstrap, run.topics.registry, events, rate_per_s=250)
    )
    kills = 0
    for _ in range(4):  # SIGKILL each worker once it is mid-stream, restart, repeat
        await wait_until_worker_wrote(database_url, run.name, proc.pid, rows=40, timeout_s=60)
        kill(proc, signal.SIGKILL)
        kills += 1
        proc = start_worker(run, log, GUARDIANS_SESSION_TIMEOUT_MS="6000")
    await sender
    try:
        counts = await wait_for_items(database_url, run.name, total, timeout_s=90)
        outputs, republished = await distinct_outputs(
            bootstrap, run.topics.pong.TOPIC, total, timeout_s=60
        )
    finally:
        kill(proc, signal.SIGTERM)
    assert kills == 4
    workers = await rows_by_pid(database_url, run.name)
    assert len(workers) >= 3, f"the kills did not land mid-stream: rows by pid {workers}"
    assert set(counts) == set(range(total)), f"lost: {sorted(set(range(total)) - set(counts))[:10]}"
    assert max(counts.values()) == 1, "a state row was written twice"
    by_seq = Counter(json.loads(m.value)["seq"] for m in outputs.values())
    assert set(by_seq) == set(range(total))
    assert max(by_seq.values()) == 1, "two different output events for one input"
    print(f"\n{kills} SIGKILLs: {total} inputs -> {len(outputs)} distinct outputs; "
          f"{republished} raw re-publications of an already-sent output (deduped by ce_id)")


async def test_poison_messages_go_to_the_dead_letter_topic_and_the_rest_flow(
    bootstrap: str, database_url: str
) -> None:
    run = await _prepare(bootstrap)
    settings = RuntimeSettings(http_port=0, handler_max_attempts=3, handler_retry_backoff_s=0.01)
    guardian = worker.build(run.prefix, run.name, settings)
    topics = run.topics
    ping_topic = topics.ping.TOPIC

    def good_headers(seq: int) -> list[tuple[str, bytes]]:
        return [
            ("ce_specversion", b"1.0"), ("ce_id", f"raw-{seq}".encode()),
            ("ce_source", b"tests"), ("ce_type", topics.ping.ce_type().encode()),
            ("ce_time", b"2026-11-28T10:00:00+00:00"), ("ce_correlationid", b"c-1"),
        ]

    await guardian.start()
    try:
        # 1. not JSON  2. schema violation  3. unsigned/forged command  4. handler always raises
        await send_raw(bootstrap, ping_topic, b"{not json", good_headers(1), b"c-1")
        await send_raw(bootstrap, ping_topic, b'{"change_id": "c-1", "seq": "x", "extra": 1}',
                       good_headers(2), b"c-1")
        forger = SigningKey.generate("mallory")
        await send_events(bootstrap, topics.registry, [topics.order(change_id="c-1", seq=3)],
                          signer=forger)
        await send_events(bootstrap, topics.registry, [topics.order(change_id="c-1", seq=4)])
        await send_raw(bootstrap, ping_topic, b"{}", [("ce_id", b"\xff\xfe")], b"c-1")
        await send_events(bootstrap, topics.registry, [
            topics.ping(change_id="c-1", seq=5, fail=True),
            topics.ping(change_id="c-1", seq=6),
            topics.ping(change_id="c-1", seq=7),
        ])
        dlq = await read_topic(bootstrap, f"{ping_topic}.dlq", until_count=4, timeout_s=30)
        order_dlq = await read_topic(bootstrap, f"{topics.order.TOPIC}.dlq", until_count=2,
                                     timeout_s=30)
        counts = await wait_for_items(database_url, run.name, 2, timeout_s=30)
    finally:
        await guardian.stop()
    kinds = sorted(m.headers["dlq_kind"] for m in dlq)
    assert kinds == ["handler_failed", "invalid_payload", "invalid_payload",
                     "malformed_envelope"]
    for message in dlq:
        assert message.headers["dlq_source_topic"] == ping_topic
        assert message.headers["dlq_reason"]
    failed = next(m for m in dlq if m.headers["dlq_kind"] == "handler_failed")
    assert "raised 3 times" in failed.headers["dlq_reason"]
    assert "poison" in failed.headers["dlq_reason"]
    assert sorted(m.headers["dlq_kind"] for m in order_dlq) == ["bad_signature", "bad_signature"]
    reasons = " ".join(m.headers["dlq_reason"] for m in order_dlq)
    assert "unknown key 'mallory'" in reasons and "unsigned" in reasons
    assert counts == Counter({6: 1, 7: 1}), "valid events behind the poison were not handled"
    alerts = [
        json.loads(m.value)
        for m in await read_topic(bootstrap, "ops.alerts", until_count=10_000, timeout_s=3)
    ]
    ours = {a["dedup_key"] for a in alerts if a["raised_by"] == run.name}
    assert ours == {f"rejected-command:{run.name}:{topics.order.TOPIC}:mallory",
                    f"rejected-command:{run.name}:{topics.order.TOPIC}:unsigned"}
    conn = await asyncpg.connect(database_url)
    try:
        recorded = await conn.fetchval(f'SELECT count(*) FROM "{run.name}".dead_letters')
    finally:
        await conn.close()
    assert recorded == 6


async def test_a_trusted_signed_command_is_handled(
    bootstrap: str, database_url: str, tmp_path: Path
) -> None:
    run = await _prepare(bootstrap)
    ci = SigningKey.generate("ci")
    keys = tmp_path / "trusted.yaml"
    keys.write_text(f"ci: {ci.public_text()}\n")
    guardian = worker.build(run.prefix, run.name,
                            RuntimeSettings(http_port=0, trusted_keys_file=keys))
    await guardian.start()
    try:
        await send_events(bootstrap, run.topics.registry,
                          [run.topics.order(change_id="c-9", seq=9)], signer=ci)
        counts = await wait_for_items(database_url, run.name, 1, timeout_s=30)
    finally:
        await guardian.stop()
    assert counts == Counter({9: 1})


async def test_two_replicas_split_partitions_and_survive_a_rebalance_exactly_once(
    bootstrap: str, database_url: str, tmp_path: Path
) -> None:
    run = await _prepare(bootstrap)
    total = 1500
    events = [run.topics.ping(change_id=f"change-{i % 61}", seq=i) for i in range(total)]
    first = start_worker(run, tmp_path / "a.log")
    second = start_worker(run, tmp_path / "b.log")
    # A stream of ~12 s: long enough that a replica slow to join the group (a cold machine)
    # still finds events on its partitions.
    sender = asyncio.create_task(
        send_events(bootstrap, run.topics.registry, events, rate_per_s=120)
    )
    for replica in (first, second):  # both consuming their share of the partitions
        await wait_until_worker_wrote(database_url, run.name, replica.pid, rows=30,
                                      timeout_s=60)
    kill(second, signal.SIGTERM)  # graceful stop: its partitions move to the first replica
    await sender
    try:
        counts = await wait_for_items(database_url, run.name, total, timeout_s=90)
        outputs, _ = await distinct_outputs(bootstrap, run.topics.pong.TOPIC, total, 60)
        by_pid = await rows_by_pid(database_url, run.name)
    finally:
        kill(first, signal.SIGTERM)
    assert set(counts) == set(range(total))
    assert max(counts.values()) == 1
    assert len(outputs) == total
    assert set(by_pid) == {first.pid, second.pid}, f"both replicas must have worked: {by_pid}"
    assert os.getpid() not in by_pid


async def test_a_handler_whose_dependency_is_down_is_retried_not_dead_lettered(
    bootstrap: str, database_url: str
) -> None:
    run = await _prepare(bootstrap)
    settings = RuntimeSettings(http_port=0, handler_max_attempts=2)
    guardian = worker.build(run.prefix, run.name, settings)
    await guardian.start()
    try:
        # More outages than handler attempts: a failure count would dead-letter it.
        await send_events(bootstrap, run.topics.registry,
                          [run.topics.ping(change_id="c-5", seq=1, unavailable=3)])
        counts = await wait_for_items(database_url, run.name, 1, timeout_s=60)
        dlq = await read_topic(bootstrap, f"{run.topics.ping.TOPIC}.dlq", until_count=1,
                               timeout_s=2)
    finally:
        await guardian.stop()
    assert counts == Counter({1: 1})
    assert dlq == []


async def test_a_dependency_down_for_long_raises_one_alert_then_resolves_it_exactly_once(
    bootstrap: str, database_url: str
) -> None:
    run = await _prepare(bootstrap)
    dependency = {"up": False}
    settings = RuntimeSettings(http_port=0, dependency_alert_after_seconds=1.0)
    guardian = worker.build(run.prefix, run.name, settings,
                            dependency_up=lambda: dependency["up"])
    key = f"dependency-down:{run.name}"
    await guardian.start()
    try:
        await send_events(bootstrap, run.topics.registry,
                          [run.topics.ping(change_id="c-7", seq=1)])
        # Retries at about 0 s, 1 s, 3 s...: the one at 1 s has held the batch long enough.
        firing = await wait_for(bootstrap, "ops.alerts", subject=key, timeout_s=15)
        assert firing, "no dependency-down alert"
        assert await item_counts(database_url, run.name) == Counter()
        dependency["up"] = True
        counts = await wait_for_items(database_url, run.name, 1, timeout_s=10)
        # The resolved notice committed with the batch; a third notice would be one too many.
        alerts = await wait_for(bootstrap, "ops.alerts", subject=key, count=3, timeout_s=2)
        pongs = await read_topic(bootstrap, run.topics.pong.TOPIC, until_count=2, timeout_s=1)
    finally:
        await guardian.stop()
    assert [json.loads(a.value)["resolved"] for a in alerts] == [False, True], \
        "one firing alert, then one resolved notice, for the whole outage"
    fired, resolved = (json.loads(a.value) for a in alerts)
    assert fired["severity"] == "warning" and fired["raised_by"] == run.name
    assert run.name in fired["summary"] and "connection refused" in fired["summary"]
    assert "1 event(s) held" in fired["details"]
    assert resolved["count"] >= fired["count"] >= 2  # every retry of the outage counted
    assert all("hunter2" not in a.value.decode() for a in alerts)
    assert counts == Counter({1: 1})
    assert len(pongs) == 1


async def test_stop_does_not_wait_for_a_dependency_that_stays_down(
    bootstrap: str, database_url: str
) -> None:
    run = await _prepare(bootstrap)
    guardian = worker.build(run.prefix, run.name, RuntimeSettings(http_port=0))
    await guardian.start()
    await send_events(bootstrap, run.topics.registry,
                      [run.topics.ping(change_id="c-6", seq=1, unavailable=1000)])
    await asyncio.sleep(3)  # the batch is now waiting between retries
    started = asyncio.get_running_loop().time()
    await guardian.stop()
    assert asyncio.get_running_loop().time() - started < 5
    assert await wait_for_items(database_url, run.name, 1, timeout_s=1) == Counter()
