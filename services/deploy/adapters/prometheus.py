"""The Prometheus HTTP API, as the canary analysis needs it: numbers or the reason why not.

A query problem is data for the analysis, not an exception: a Prometheus that is down, a
PromQL typo, a timeout or a garbled answer all come back as `Sample(error=...)` with the
cause in words (`bad_data: parse error at char 12: ...`), which the analysis counts as an
ERROR measurement towards `consecutive_error_limit`. Only cancellation propagates (a
stopping guardian must stop), and a naive datetime (a bug in the caller) is a ValueError.

Queries are POSTed form-encoded, as the API allows, so a long query never hits a URL length
limit. "NaN", "+Inf" and "-Inf" values are parsed to floats; the analysis decides what they
mean (inconclusive), not this adapter.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from datetime import datetime
from typing import Any

import httpx

from services.deploy.domain.analysis import Sample

_SNIPPET = 300
"""How much of an unexpected body an error message quotes."""


class _MalformedError(ValueError):
    """The answer is not the shape the Prometheus API documents."""


def _seconds(at: datetime) -> str:
    if at.tzinfo is None or at.utcoffset() is None:
        raise ValueError(f"Prometheus times must be timezone-aware, got {at!r}")
    return f"{at.timestamp():.3f}"


def _number(raw: object) -> float:
    """A sample value: the API sends strings ("0.5", "NaN", "+Inf"); tolerate JSON numbers."""
    if isinstance(raw, str):
        try:
            return float(raw)
        except ValueError:
            raise _MalformedError(f"sample value {raw!r} is not a number") from None
    if isinstance(raw, int | float) and not isinstance(raw, bool):
        return float(raw)
    raise _MalformedError(f"sample value {raw!r} is not a number")


def _pair(raw: object) -> tuple[float, float]:
    """`[<unix time>, "<value>"]` as (time, value)."""
    if not isinstance(raw, list) or len(raw) != 2:
        raise _MalformedError(f"expected [time, value], got {str(raw)[:_SNIPPET]}")
    stamp = raw[0]
    if not isinstance(stamp, int | float) or isinstance(stamp, bool) or not math.isfinite(stamp):
        raise _MalformedError(f"sample time {stamp!r} is not a number")
    return float(stamp), _number(raw[1])


def _series(result: object) -> list[Mapping[str, Any]]:
    if not isinstance(result, list) or not all(isinstance(s, Mapping) for s in result):
        raise _MalformedError(f"expected a list of series, got {str(result)[:_SNIPPET]}")
    return result


def _histogram_refused(series: Mapping[str, Any]) -> None:
    if "histogram" in series or "histograms" in series:
        raise _MalformedError("the result holds native histograms, not numbers; wrap the query in "
                         "histogram_quantile(), histogram_avg() or similar")


def _instant_values(data: Mapping[str, Any]) -> tuple[float, ...]:
    """An instant query's numbers; a matrix (a range selector) gives each series' last."""
    kind, result = data.get("resultType"), data.get("result")
    if kind == "scalar":
        return (_pair(result)[1],)
    if kind == "vector":
        values = []
        for series in _series(result):
            _histogram_refused(series)
            values.append(_pair(series.get("value"))[1])
        return tuple(values)
    if kind == "matrix":
        return tuple(points[-1][1] for points in _matrix_points(result) if points)
    return _not_numeric(kind)


def _matrix_points(result: object) -> list[list[tuple[float, float]]]:
    points = []
    for series in _series(result):
        _histogram_refused(series)
        raw = series.get("values", [])
        if not isinstance(raw, list):
            raise _MalformedError(f"expected a list of values, got {str(raw)[:_SNIPPET]}")
        points.append([_pair(p) for p in raw])
    return points


def _range_values(data: Mapping[str, Any]) -> tuple[float, ...]:
    """A range query's numbers: every series' points, flattened in time order (series order
    breaks ties), as the Mann-Whitney comparison wants all samples of the interval."""
    kind, result = data.get("resultType"), data.get("result")
    if kind in {"vector", "scalar"}:
        raise _MalformedError(f"a range query answered a {kind}, not a matrix")
    if kind != "matrix":
        return _not_numeric(kind)
    stamped = [
        (stamp, index, value)
        for index, points in enumerate(_matrix_points(result))
        for stamp, value in points
    ]
    return tuple(value for _, _, value in sorted(stamped, key=lambda p: (p[0], p[1])))


def _not_numeric(kind: object) -> tuple[float, ...]:
    if kind == "string":
        raise _MalformedError("the query returns a string, not numbers")
    raise _MalformedError(f"unknown resultType {kind!r}")


def _error_of(response: httpx.Response) -> str:
    """The API's own error (`errorType: error`) when the body has one, else the status."""
    try:
        body = response.json()
    except ValueError:
        body = None
    prefix = f"HTTP {response.status_code}"
    if isinstance(body, Mapping) and body.get("status") == "error":
        return f"{prefix} {body.get('errorType', 'error')}: {body.get('error', '(no message)')}"
    text = response.text.strip()[:_SNIPPET]
    return f"{prefix} {response.reason_phrase}" + (f": {text}" if text else "")


class PrometheusClient:
    """`/api/v1/query`, `/api/v1/query_range` and `/-/ready` of one Prometheus server."""

    def __init__(
        self, base_url: str, timeout: float = 5.0, client: httpx.AsyncClient | None = None
    ) -> None:
        self.base_url = base_url.rstrip("/")
        self.timeout = timeout
        self._client = client if client is not None else httpx.AsyncClient(timeout=timeout)
        self._owns_client = client is None

    async def query(self, promql: str, at: datetime | None = None) -> Sample:
        """The values of an instant query (one per series), or the error."""
        form = {"query": promql}
        if at is not None:
            form["time"] = _seconds(at)
        return await self._sample("/api/v1/query", form, _instant_values)

    async def query_range(
        self, promql: str, start: datetime, end: datetime, step_seconds: float
    ) -> Sample:
        """Every point of every series between start and end, in time order, or the error."""
        form = {"query": promql, "start": _seconds(start), "end": _seconds(end),
                "step": repr(float(step_seconds))}
        return await self._sample("/api/v1/query_range", form, _range_values)

    async def ready(self) -> bool:
        """Whether Prometheus answers 200 on `/-/ready` (it says 503 while starting)."""
        try:
            response = await self._client.get(f"{self.base_url}/-/ready", timeout=self.timeout)
        except Exception:  # any failure to ask is "not ready", never an exception
            return False
        return response.status_code == 200

    async def aclose(self) -> None:
        """Close the HTTP client, if this object made it (a given client is the caller's)."""
        if self._owns_client:
            await self._client.aclose()

    async def _sample(
        self, path: str, form: dict[str, str],
        read: Callable[[Mapping[str, Any]], tuple[float, ...]],
    ) -> Sample:
        url = f"{self.base_url}{path}"
        form = {**form, "timeout": f"{self.timeout:g}s"}
        try:
            response = await self._client.post(url, data=form, timeout=self.timeout)
        except httpx.TimeoutException:
            return Sample(error=f"timeout after {self.timeout:g}s (POST {url})")
        except httpx.ConnectError as exc:
            why = str(exc) or type(exc).__name__
            return Sample(error=f"cannot connect to {self.base_url}: {why}")
        except Exception as exc:  # never raise for a query problem; cancellation still does
            return Sample(error=f"{type(exc).__name__} (POST {url}): {exc}")
        if not response.is_success:
            return Sample(error=_error_of(response))
        try:
            body = response.json()
        except ValueError:
            return Sample(error=f"bad JSON from Prometheus (HTTP {response.status_code}): "
                                f"{response.text[:_SNIPPET]!r}")
        if not isinstance(body, Mapping):
            return Sample(error=f"malformed response: {str(body)[:_SNIPPET]}")
        if body.get("status") == "error":
            return Sample(error=f"{body.get('errorType', 'error')}: "
                                f"{body.get('error', '(no message)')}")
        data = body.get("data")
        if body.get("status") != "success" or not isinstance(data, Mapping):
            return Sample(error=f"malformed response: {str(body)[:_SNIPPET]}")
        try:
            values = read(data)
        except _MalformedError as problem:
            return Sample(error=f"malformed response: {problem}")
        return Sample(values=values)
