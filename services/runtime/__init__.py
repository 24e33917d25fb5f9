"""What every guardian runs on: bus wiring, settings, database, exactly-once handling,
outbox relay, dead letters, tracing, metrics and health endpoints."""

from services.runtime.guardian import Guardian
from services.runtime.handling import Context, RetryLaterError

__all__ = ["Context", "Guardian", "RetryLaterError"]
