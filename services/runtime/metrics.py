"""The runtime's Prometheus metrics; every series is labelled with the service."""

from __future__ import annotations

from prometheus_client import Counter, Gauge, Histogram

EVENTS_HANDLED = Counter(
    "guardians_events_total",
    "Events taken from Kafka, by outcome (handled, duplicate, dead_lettered).",
    ["service", "topic", "outcome"],
)
HANDLE_SECONDS = Histogram(
    "guardians_handle_seconds",
    "Time to handle one event inside its transaction (dedupe, handler, outbox write).",
    ["service", "topic"],
    buckets=(0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10),
)
BATCH_SECONDS = Histogram(
    "guardians_batch_seconds",
    "Time from a batch leaving Kafka to its transaction committing.",
    ["service"],
    buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5),
)
HANDLER_ERRORS = Counter(
    "guardians_handler_errors_total", "Handler attempts that raised.", ["service", "topic"]
)
DEAD_LETTERS = Counter(
    "guardians_dead_letters_total",
    "Events sent to a dead-letter topic, by reason class.",
    ["service", "topic", "reason"],
)
OUTBOX_PUBLISHED = Counter(
    "guardians_outbox_published_total", "Outbox rows published.", ["service", "topic"]
)
OUTBOX_DELAY = Histogram(
    "guardians_outbox_delay_seconds",
    "Time from an outbox row's commit to its publication being acknowledged.",
    ["service"],
    buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 5, 30),
)
OFFSET_COMMITS = Counter(
    "guardians_offset_commits_total", "Kafka offset commits.", ["service", "result"]
)
RETRY_LATER = Counter(
    "guardians_retry_later_total",
    "Batches rolled back because a handler's dependency was down (retried, not dead-lettered).",
    ["service"],
)
READY = Gauge("guardians_ready", "1 when the service is consuming and its database answers.",
              ["service"])
# What waits, measured every few seconds by services/runtime/backlog.py (which says why lag is
# counted from the committed offset rather than the consumer's position).
CONSUMER_LAG = Gauge(
    "guardians_consumer_lag",
    "Events in Kafka not yet handled by the service's consumer group, per partition this "
    "process is assigned: the partition's end offset minus the group's committed offset. "
    "Sum over instances for a group's lag (each partition has one owner).",
    ["service", "topic", "partition"],
)
OUTBOX_BACKLOG = Gauge(
    "guardians_outbox_backlog",
    "Outbox rows not yet marked published (counted up to 100,000). The table is the service's, "
    "shared by its replicas, which all report it: take the max over instances, not the sum.",
    ["service"],
)
OUTBOX_OLDEST_SECONDS = Gauge(
    "guardians_outbox_oldest_unpublished_seconds",
    "Age of the oldest outbox row not yet marked published (0 when none waits): how long the "
    "next guardian has been kept waiting. Shared by replicas like guardians_outbox_backlog.",
    ["service"],
)
