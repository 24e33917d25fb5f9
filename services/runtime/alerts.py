"""What the runtime itself tells people on `ops.alerts`, whatever the service.

The runtime writes these straight to the outbox as messages (not through `Context.emit`),
so they go out even from a service whose registry does not list `ops.alerts` (tests' own
topics): a rejected command, and a batch held because a dependency is down.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from schemas.envelope import Envelope
from schemas.events.ops import AlertSeverity, AlertValue, OpsAlert
from services.runtime.outbox import OutboxMessage

SUMMARY_MAX = 500
_URL_USERINFO = re.compile(r"(?P<scheme>[A-Za-z][A-Za-z0-9+.-]*://)(?P<user>[^/@\s:]*):[^/\s]*@")
"""`scheme://user:password@`, up to the authority's last `@` (a password with a raw `@`)."""
_KEYWORD_SECRET = re.compile(r"(?i)\b(?P<key>password|passwd|pwd|secret|token)(?P<eq>\s*=\s*)"
                             r"(?P<value>'(?:[^'\\]|\\.)*'|\S+)")


def redact(text: str) -> str:
    """`text` without passwords: a URL's `user:password@` becomes `user:***@`, and a
    `password=...` keyword (a libpq DSN, a query string) loses its value."""
    text = _URL_USERINFO.sub(lambda m: f"{m['scheme']}{m['user']}:***@", text)
    return _KEYWORD_SECRET.sub(lambda m: f"{m['key']}{m['eq']}***", text)


def alert_message(alert: OpsAlert, service: str) -> OutboxMessage:
    """`alert` as an outbox message on `ops.alerts`, keyed and subject-ed by its dedup key
    (one problem's firing and resolved notices stay in order on one partition)."""
    envelope = Envelope(
        type=alert.ce_type(), source=f"guardians/{service}", subject=alert.dedup_key,
        correlation_id=alert.dedup_key,
    )
    return OutboxMessage(
        OpsAlert.TOPIC, alert.dedup_key.encode(), alert.model_dump_json().encode(),
        envelope.to_headers(),
    )


@dataclass
class DependencyOutage:
    """One service's batch held by `RetryLaterError`: when to tell people, and when to tell
    them it is over. Pure: the caller passes the clock and sends what it gets back.

        alert = outage.retrying(error, now=time.monotonic(), held=len(batch))
        if alert and <sent alert>:
            outage.fired()
        ...
        resolved = outage.resolved()   # after the batch went through (None if nothing fired)
        outage.recovered()

    One firing alert per outage: `retrying` returns it once the outage has lasted
    `alert_after_s` (0: on the first retry) and again at later retries only while `fired()`
    has not been called, so an alert that could not be sent is tried again, never doubled.
    """

    service: str
    alert_after_s: float
    since: float | None = None
    """When the first retry of this outage happened (the caller's monotonic clock)."""
    retries: int = 0
    firing: bool = False
    reason: str = ""

    @property
    def dedup_key(self) -> str:
        return f"dependency-down:{self.service}"

    def retrying(self, error: BaseException | str, *, now: float, held: int) -> OpsAlert | None:
        """Record one more retry; the firing alert when it is due and not yet sent."""
        if self.since is None:
            self.since = now
        self.retries += 1
        self.reason = redact(str(error)) or type(error).__name__
        lasted = now - self.since
        if self.firing or lasted < self.alert_after_s:
            return None
        summary = f"{self.service} is waiting on a dependency that is down: {self.reason}"
        return OpsAlert(
            dedup_key=self.dedup_key,
            severity=AlertSeverity.WARNING,
            summary=summary[:SUMMARY_MAX],
            raised_by=self.service,
            details=(
                f"{held} event(s) held for {lasted:.0f} s over {self.retries} "
                f"retr{'y' if self.retries == 1 else 'ies'}; the batch is retried with backoff "
                "until the dependency is back (nothing is dead-lettered or lost)"
            ),
            count=self.retries,
            values=(
                AlertValue(name="held_seconds", value=round(lasted, 3), unit="s",
                           threshold=self.alert_after_s),
                AlertValue(name="held_events", value=held),
            ),
        )

    def fired(self) -> None:
        """The firing alert was written: no other one until the outage is over."""
        self.firing = True

    def resolved(self) -> OpsAlert | None:
        """The resolved notice for a fired alert (None when none fired): to send with the
        batch that went through."""
        if not self.firing:
            return None
        return OpsAlert(
            dedup_key=self.dedup_key,
            severity=AlertSeverity.WARNING,
            summary=f"{self.service}: the dependency is back ({self.reason})"[:SUMMARY_MAX],
            raised_by=self.service,
            details=f"the held batch went through after {self.retries} "
                    f"retr{'y' if self.retries == 1 else 'ies'}",
            resolved=True,
            count=max(1, self.retries),
        )

    def recovered(self) -> None:
        """The held batch went through: the next outage starts afresh."""
        self.since = None
        self.retries = 0
        self.firing = False
        self.reason = ""
