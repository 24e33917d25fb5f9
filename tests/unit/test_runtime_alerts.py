"""The runtime's own alerts: a batch held by a dependency that is down is told once, after
the configured time, and resolved when it goes through; no password reaches the text."""

from __future__ import annotations

import contextlib
import json
from collections.abc import AsyncIterator
from types import SimpleNamespace
from typing import Any, cast

import pytest
from aiokafka.structs import ConsumerRecord

from schemas.envelope import Envelope
from schemas.events.ops import AlertSeverity, OpsAlert
from services.runtime import Guardian, RetryLaterError
from services.runtime.alerts import DependencyOutage, alert_message, redact
from services.runtime.outbox import OutboxRow
from services.runtime.settings import RuntimeSettings

DOWN = "cannot reach the shadow PostgreSQL at postgresql://guardians:***@db:5432/x: refused"


def test_no_alert_before_the_outage_has_lasted_the_configured_time() -> None:
    outage = DependencyOutage("migration", alert_after_s=30)
    assert outage.retrying(RuntimeError(DOWN), now=100.0, held=3) is None
    assert outage.retrying(RuntimeError(DOWN), now=129.9, held=3) is None
    alert = outage.retrying(RuntimeError(DOWN), now=130.0, held=3)
    assert alert is not None
    assert alert.dedup_key == "dependency-down:migration"
    assert alert.severity is AlertSeverity.WARNING and not alert.resolved
    assert alert.raised_by == "migration"
    assert "migration" in alert.summary and "cannot reach the shadow PostgreSQL" in alert.summary
    assert alert.details is not None
    assert "3 event(s) held for 30 s over 3 retries" in alert.details
    assert alert.count == 3
    assert {v.name: v.value for v in alert.values} == {"held_seconds": 30.0, "held_events": 3}


def test_zero_alerts_on_the_first_retry() -> None:
    outage = DependencyOutage("deploy", alert_after_s=0)
    alert = outage.retrying(RuntimeError("target down"), now=5.0, held=1)
    assert alert is not None and alert.details is not None
    assert "over 1 retry;" in alert.details


def test_one_firing_alert_per_outage_however_many_retries() -> None:
    outage = DependencyOutage("migration", alert_after_s=0)
    assert outage.retrying(RuntimeError(DOWN), now=0.0, held=1) is not None
    outage.fired()
    assert [outage.retrying(RuntimeError(DOWN), now=float(t), held=1) for t in range(1, 50)] \
        == [None] * 49


def test_an_alert_that_could_not_be_sent_is_offered_again_at_the_next_retry() -> None:
    outage = DependencyOutage("migration", alert_after_s=0)
    assert outage.retrying(RuntimeError(DOWN), now=0.0, held=1) is not None  # not fired()
    again = outage.retrying(RuntimeError(DOWN), now=1.0, held=1)
    assert again is not None and again.count == 2
    assert outage.resolved() is None, "nothing was told, so nothing to resolve"


def test_recovery_resolves_a_fired_alert_with_the_retry_count_and_starts_afresh() -> None:
    outage = DependencyOutage("migration", alert_after_s=2)
    for t in range(4):
        alert = outage.retrying(RuntimeError(DOWN), now=float(t), held=2)
        if alert is not None:
            outage.fired()
    resolved = outage.resolved()
    assert resolved is not None
    assert resolved.resolved and resolved.dedup_key == "dependency-down:migration"
    assert resolved.count == 4 and resolved.raised_by == "migration"
    outage.recovered()
    assert outage.resolved() is None
    # A new outage waits its full time again and fires again.
    assert outage.retrying(RuntimeError(DOWN), now=100.0, held=1) is None
    assert outage.retrying(RuntimeError(DOWN), now=102.0, held=1) is not None


def test_recovery_without_a_fired_alert_says_nothing() -> None:
    outage = DependencyOutage("migration", alert_after_s=30)
    outage.retrying(RuntimeError(DOWN), now=0.0, held=1)
    assert outage.resolved() is None
    outage.recovered()
    assert outage.retries == 0 and outage.since is None


@pytest.mark.parametrize(("text", "secret"), [
    ("cannot reach postgresql://guardians:hunter2@db:5432/g: refused", "hunter2"),
    ("target https://deployer:s3cr%40t@deploy.internal/api is down", "s3cr%40t"),
    ("postgresql://guardians:p@ss@db/g refused", "ss@"),
    ("connect host=db user=g password=hunter2 dbname=x failed", "hunter2"),
    ("connect host=db password='hun ter2' failed", "hun ter2"),
])
def test_passwords_never_reach_the_alert(text: str, secret: str) -> None:
    assert secret not in redact(text)
    outage = DependencyOutage("migration", alert_after_s=0)
    alert = outage.retrying(RuntimeError(text), now=0.0, held=1)
    assert alert is not None
    outage.fired()
    resolved = outage.resolved()
    assert resolved is not None
    for event in (alert, resolved):
        assert secret not in event.model_dump_json()


def test_redaction_keeps_what_is_not_secret() -> None:
    assert redact("postgresql://guardians@db:5432/g") == "postgresql://guardians@db:5432/g"
    assert redact("postgresql://guardians:p@db/g") == "postgresql://guardians:***@db/g"
    assert redact("deploy target 10.0.0.7:8080 refused") == "deploy target 10.0.0.7:8080 refused"


def test_the_alert_message_is_keyed_and_subject_ed_by_its_dedup_key() -> None:
    alert = OpsAlert(dedup_key="dependency-down:migration", severity=AlertSeverity.WARNING,
                     summary="s", raised_by="migration")
    message = alert_message(alert, "migration")
    envelope = Envelope.from_headers(message.headers)
    assert message.topic == "ops.alerts" and message.key == b"dependency-down:migration"
    assert envelope.subject == "dependency-down:migration"
    assert envelope.type == OpsAlert.ce_type() and envelope.source == "guardians/migration"
    assert json.loads(message.value)["dedup_key"] == "dependency-down:migration"


def test_the_wait_before_alerting_is_a_setting(monkeypatch: pytest.MonkeyPatch) -> None:
    assert RuntimeSettings().dependency_alert_after_seconds == 30
    monkeypatch.setenv("GUARDIANS_DEPENDENCY_ALERT_AFTER_SECONDS", "0")
    assert RuntimeSettings().dependency_alert_after_seconds == 0
    monkeypatch.setenv("GUARDIANS_DEPENDENCY_ALERT_AFTER_SECONDS", "-1")
    with pytest.raises(ValueError, match="dependency_alert_after_seconds"):
        RuntimeSettings()


# -- the retry loop, with the database and the handler faked -------------------------------


class _Transaction:
    async def __aenter__(self) -> None:
        return None

    async def __aexit__(self, *exc: object) -> None:
        return None


class _Conn:
    def __init__(self) -> None:
        self.outbox: list[list[object]] = []

    def transaction(self) -> _Transaction:
        return _Transaction()

    async def fetch(self, sql: str, *params: object) -> list[dict[str, int]]:
        assert sql.startswith("INSERT INTO outbox")
        self.outbox.append(list(params))
        return [{"id": len(self.outbox)}]


class _Pool:
    def __init__(self, conn: _Conn) -> None:
        self.conn = conn

    @contextlib.asynccontextmanager
    async def acquire(self) -> AsyncIterator[_Conn]:
        yield self.conn


class _Handler:
    """Raises `RetryLaterError` `down` times, then handles the batch."""

    def __init__(self, down: int) -> None:
        self.down = down
        self.handled = 0

    async def handle_batch(self, conn: _Conn, records: object, written: list[OutboxRow]
                           ) -> None:
        if self.down > 0:
            self.down -= 1
            raise RetryLaterError("cannot reach postgresql://g:hunter2@db/x: refused")
        self.handled += 1


class _Relay:
    def __init__(self) -> None:
        self.published: list[OutboxRow] = []

    def publish_committed(self, rows: list[OutboxRow]) -> None:
        self.published += rows


def _guardian(down: int, monkeypatch: pytest.MonkeyPatch, *, own_database_down: bool
              ) -> tuple[Guardian, _Conn, _Handler, _Relay, list[OpsAlert]]:
    guardian = Guardian("migration", settings=RuntimeSettings(dependency_alert_after_seconds=0))
    conn, handler, relay = _Conn(), _Handler(down), _Relay()
    raised: list[OpsAlert] = []
    guardian.pool, guardian.relay = cast(Any, _Pool(conn)), cast(Any, relay)
    guardian._handler = cast(Any, handler)

    @contextlib.asynccontextmanager
    async def transaction() -> AsyncIterator[Any]:
        if own_database_down:
            raise OSError("connection refused")
        ctx = SimpleNamespace(emitted=[])
        yield ctx
        raised.extend(OpsAlert.model_validate_json(m.value) for m in ctx.emitted)

    async def no_wait(seconds: float) -> bool:
        return False

    monkeypatch.setattr(guardian, "transaction", transaction)
    monkeypatch.setattr(guardian, "_stop_requested_within", no_wait)
    return guardian, conn, handler, relay, raised


RECORD = ConsumerRecord("change.submitted", 0, 7, 0, 0, b"k", b"v", None, 1, 1, [])


async def test_the_loop_fires_once_and_resolves_with_the_batch_that_goes_through(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    guardian, conn, handler, relay, raised = _guardian(3, monkeypatch, own_database_down=False)
    await guardian.process_batch([RECORD])
    assert handler.handled == 1
    assert [(a.dedup_key, a.resolved) for a in raised] == [("dependency-down:migration", False)]
    # The resolved notice went into the batch's own transaction, and out with its rows.
    assert len(conn.outbox) == 1 and len(relay.published) == 1
    resolved = OpsAlert.model_validate_json(relay.published[0].message.value)
    assert resolved.resolved and resolved.count == 3
    assert "hunter2" not in raised[0].summary
    assert guardian._pending_offsets  # the batch's offsets are committed next
    # A later outage fires again: the tracker started afresh.
    handler.down = 1
    await guardian.process_batch([RECORD])
    assert [a.resolved for a in raised] == [False, False]


async def test_when_the_alert_cannot_be_written_the_batch_is_still_retried_until_it_passes(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture,
) -> None:
    guardian, conn, handler, _, raised = _guardian(4, monkeypatch, own_database_down=True)
    await guardian.process_batch([RECORD])
    assert handler.handled == 1, "the batch went through once the dependency was back"
    assert raised == [] and conn.outbox == [], "nothing told, so nothing to resolve"
    failures = [r for r in caplog.records if "could not raise" in r.getMessage()]
    assert len(failures) == 4, "the alert is tried again at every retry"
