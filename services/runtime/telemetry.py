"""Structured JSON logs and OpenTelemetry tracing with the context carried in Kafka headers."""

from __future__ import annotations

import json
import logging
import sys
import threading
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import TextIO

from opentelemetry import trace
from opentelemetry.context import Context
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import ReadableSpan, SpanProcessor, TracerProvider
from opentelemetry.sdk.trace.export import (
    BatchSpanProcessor,
    SimpleSpanProcessor,
    SpanExporter,
    SpanExportResult,
)
from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

_PROPAGATOR = TraceContextTextMapPropagator()
_STANDARD = set(logging.makeLogRecord({}).__dict__) | {"message", "asctime"}


class JsonFormatter(logging.Formatter):
    """One JSON object per line; `extra=` fields become keys (change_id, topic, event_id...)."""

    def __init__(self, service: str) -> None:
        super().__init__()
        self._service = service

    def format(self, record: logging.LogRecord) -> str:
        line: dict[str, object] = {
            "ts": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname.lower(),
            "service": self._service,
            "logger": record.name,
            "msg": record.getMessage(),
        }
        for key, value in record.__dict__.items():
            if key not in _STANDARD and not key.startswith("_"):
                line[key] = value
        span = trace.get_current_span().get_span_context()
        if span.is_valid:
            line["trace_id"] = format(span.trace_id, "032x")
        if record.exc_info:
            line["error"] = self.formatException(record.exc_info)
        return json.dumps(line, default=str)


def configure_logging(service: str, level: str, stream: TextIO = sys.stderr) -> None:
    handler = logging.StreamHandler(stream)
    handler.setFormatter(JsonFormatter(service))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)
    # aiokafka is chatty at INFO about every rebalance step; its warnings still come through.
    logging.getLogger("aiokafka").setLevel(max(logging.WARNING, root.level))
    # One line per HTTP request (Prometheus queries, readiness probes) drowns the events.
    logging.getLogger("httpx").setLevel(max(logging.WARNING, root.level))
    # faststream installs its own coloured stderr handler: route it through ours instead.
    framework = logging.getLogger("faststream")
    framework.handlers.clear()
    framework.propagate = True


class JsonLinesSpanExporter(SpanExporter):
    """Finished spans as JSON lines in a file: enough to assert on traces without a collector."""

    def __init__(self, path: Path) -> None:
        self._path = path
        self._lock = threading.Lock()

    def export(self, spans: Sequence[ReadableSpan]) -> SpanExportResult:
        with self._lock, self._path.open("a") as out:
            for span in spans:
                out.write(span.to_json(indent=None) + "\n")
        return SpanExportResult.SUCCESS

    def shutdown(self) -> None:
        return None


def configure_tracing(service: str, trace_file: Path | None) -> TracerProvider | None:
    """An SDK tracer provider with the configured exporters, or None when nothing would
    receive the spans (the API's no-op tracer then costs next to nothing per event)."""
    import os

    processors: list[SpanProcessor] = []
    if trace_file is not None:
        processors.append(SimpleSpanProcessor(JsonLinesSpanExporter(trace_file)))
    if os.environ.get("OTEL_EXPORTER_OTLP_ENDPOINT"):
        try:
            from opentelemetry.exporter.otlp.proto.http.trace_exporter import (  # type: ignore[import-not-found]
                OTLPSpanExporter,
            )
        except ImportError:
            logging.getLogger(__name__).warning(
                "OTEL_EXPORTER_OTLP_ENDPOINT is set but opentelemetry-exporter-otlp is not "
                "installed: spans are not exported"
            )
        else:
            processors.append(BatchSpanProcessor(OTLPSpanExporter()))
    if not processors:
        return None
    provider = TracerProvider(resource=Resource.create({"service.name": f"guardians-{service}"}))
    for processor in processors:
        provider.add_span_processor(processor)
    return provider


def context_from_traceparent(traceparent: str | None) -> Context | None:
    if not traceparent:
        return None
    return _PROPAGATOR.extract({"traceparent": traceparent})


def current_traceparent() -> str | None:
    carrier: dict[str, str] = {}
    _PROPAGATOR.inject(carrier)
    return carrier.get("traceparent")
