"""The Prometheus HTTP API client: numbers out of every result type, and every way a query
can go wrong turned into a Sample with the cause, never an exception."""

from __future__ import annotations

import asyncio
import json
import math
from collections.abc import Callable
from datetime import UTC, datetime, timedelta, timezone
from typing import Any
from urllib.parse import parse_qs

import httpx
import pytest

from services.deploy.adapters.prometheus import PrometheusClient
from services.deploy.domain.analysis import Sample

Handler = Callable[[httpx.Request], httpx.Response]
T0 = datetime(2026, 5, 1, 12, 0, tzinfo=UTC)


def client_for(handler: Handler, base_url: str = "http://prometheus:9090") -> PrometheusClient:
    return PrometheusClient(base_url, timeout=2.5,
                            client=httpx.AsyncClient(transport=httpx.MockTransport(handler)))


def answer(result_type: str, result: Any, status: int = 200) -> Handler:
    body = {"status": "success", "data": {"resultType": result_type, "result": result}}
    return lambda request: httpx.Response(status, json=body)


def form_of(request: httpx.Request) -> dict[str, str]:
    return {k: v[0] for k, v in parse_qs(request.content.decode()).items()}


def vector(*values: str) -> list[dict[str, Any]]:
    return [{"metric": {"instance": f"i{n}"}, "value": [1777636800.0, v]}
            for n, v in enumerate(values)]


# -- result types ---------------------------------------------------------------------------


async def test_a_vector_gives_one_value_per_series() -> None:
    sample = await client_for(answer("vector", vector("0.01", "0.25"))).query("q")
    assert sample == Sample(values=(0.01, 0.25))


async def test_nan_and_infinities_are_parsed_to_floats_for_the_analysis_to_judge() -> None:
    sample = await client_for(answer("vector", vector("NaN", "+Inf", "-Inf"))).query("q")
    assert sample.error is None
    assert math.isnan(sample.values[0])
    assert sample.values[1:] == (math.inf, -math.inf)


async def test_an_empty_vector_is_no_data_not_an_error() -> None:
    assert await client_for(answer("vector", [])).query("q") == Sample(values=())


async def test_a_scalar_gives_one_value() -> None:
    sample = await client_for(answer("scalar", [1777636800.0, "42"])).query("scalar(q)")
    assert sample == Sample(values=(42.0,))


async def test_an_instant_matrix_gives_the_last_value_of_each_series() -> None:
    matrix = [
        {"metric": {"i": "a"}, "values": [[1.0, "1"], [2.0, "2"], [3.0, "3"]]},
        {"metric": {"i": "b"}, "values": []},
        {"metric": {"i": "c"}, "values": [[1.0, "10"], [2.0, "NaN"]]},
    ]
    sample = await client_for(answer("matrix", matrix)).query("q[1m]")
    assert sample.error is None
    assert sample.values[0] == 3.0 and math.isnan(sample.values[1])
    assert len(sample.values) == 2


async def test_a_string_result_is_an_error_not_a_number() -> None:
    sample = await client_for(answer("string", [1.0, "hello"])).query('"hello"')
    assert sample.values == ()
    assert sample.error is not None and "string, not numbers" in sample.error


async def test_an_unknown_result_type_is_an_error() -> None:
    sample = await client_for(answer("tensor", [])).query("q")
    assert sample.error == "malformed response: unknown resultType 'tensor'"


async def test_native_histograms_are_refused_with_a_hint() -> None:
    series = [{"metric": {}, "histogram": [1.0, {"count": "3", "sum": "1", "buckets": []}]}]
    sample = await client_for(answer("vector", series)).query("h")
    assert sample.error is not None and "histogram_quantile()" in sample.error


@pytest.mark.parametrize(
    ("result", "problem"),
    [
        (vector("abc"), "sample value 'abc' is not a number"),
        ([{"metric": {}, "value": [1.0]}], "expected [time, value]"),
        ([{"metric": {}, "value": ["now", "1"]}], "sample time 'now' is not a number"),
        ([{"metric": {}, "value": [1.0, None]}], "sample value None is not a number"),
        ([{"metric": {}, "value": [1.0, True]}], "sample value True is not a number"),
        ({"not": "a list"}, "expected a list of series"),
        (["a string"], "expected a list of series"),
    ],
)
async def test_a_malformed_result_is_an_error_naming_the_problem(
    result: Any, problem: str
) -> None:
    sample = await client_for(answer("vector", result)).query("q")
    assert sample.values == ()
    assert sample.error is not None and problem in sample.error


async def test_json_numbers_as_values_are_tolerated() -> None:
    series = [{"metric": {}, "value": [1.0, 0.5]}]
    assert await client_for(answer("vector", series)).query("q") == Sample(values=(0.5,))


# -- range queries --------------------------------------------------------------------------


async def test_a_range_query_flattens_every_series_in_time_order() -> None:
    seen: list[httpx.Request] = []
    matrix = [
        {"metric": {"i": "a"}, "values": [[10.0, "1"], [20.0, "3"], [30.0, "5"]]},
        {"metric": {"i": "b"}, "values": [[10.0, "2"], [20.0, "4"], [40.0, "NaN"]]},
    ]

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return answer("matrix", matrix)(request)

    sample = await client_for(handler).query_range("rate(x[30s])", T0, T0 + timedelta(
        minutes=1), 5)
    assert sample.values[:5] == (1.0, 2.0, 3.0, 4.0, 5.0)
    assert math.isnan(sample.values[5])
    request = seen[0]
    assert request.method == "POST" and request.url.path == "/api/v1/query_range"
    form = form_of(request)
    assert form["query"] == "rate(x[30s])"
    assert form["start"] == "1777636800.000" and form["end"] == "1777636860.000"
    assert form["step"] == "5.0"


async def test_a_range_query_answering_a_vector_is_an_error() -> None:
    sample = await client_for(answer("vector", vector("1"))).query_range("q", T0, T0, 1)
    assert sample.error is not None and "not a matrix" in sample.error


async def test_a_range_query_with_no_series_is_no_data() -> None:
    assert await client_for(answer("matrix", [])).query_range("q", T0, T0, 1) == Sample()


# -- the request ----------------------------------------------------------------------------


async def test_queries_are_posted_form_encoded_with_time_and_timeout() -> None:
    seen: list[httpx.Request] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return answer("vector", [])(request)

    long_query = "sum(" + " + ".join(f'up{{job="j{n}"}}' for n in range(800)) + ")"
    at = datetime(2026, 5, 1, 14, 0, 0, 250000, tzinfo=timezone(timedelta(hours=2)))
    await client_for(handler, "http://prometheus:9090/prom/").query(long_query, at=at)
    request = seen[0]
    assert request.method == "POST"
    assert str(request.url) == "http://prometheus:9090/prom/api/v1/query"
    assert request.headers["content-type"] == "application/x-www-form-urlencoded"
    assert request.url.query == b""
    form = form_of(request)
    assert form == {"query": long_query, "time": "1777636800.250", "timeout": "2.5s"}


async def test_an_instant_query_without_a_time_sends_none() -> None:
    seen: list[httpx.Request] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return answer("vector", [])(request)

    await client_for(handler).query("up")
    assert "time" not in form_of(seen[0])


async def test_a_naive_datetime_is_a_caller_bug() -> None:
    with pytest.raises(ValueError, match="timezone-aware"):
        await client_for(answer("vector", [])).query("up", at=datetime(2026, 5, 1))


# -- what goes wrong ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("status", "error_type", "message"),
    [
        (400, "bad_data", "1:5: parse error: unexpected <EOF>"),
        (422, "execution", "query processing would load too many samples into memory"),
        (503, "timeout", "query timed out in expression evaluation"),
    ],
)
async def test_a_prometheus_error_says_its_type_and_message(
    status: int, error_type: str, message: str
) -> None:
    body = {"status": "error", "errorType": error_type, "error": message}
    sample = await client_for(lambda r: httpx.Response(status, json=body)).query("q")
    assert sample == Sample(error=f"HTTP {status} {error_type}: {message}")


async def test_status_error_in_a_200_is_still_an_error() -> None:
    body = {"status": "error", "errorType": "internal", "error": "oops"}
    sample = await client_for(lambda r: httpx.Response(200, json=body)).query("q")
    assert sample == Sample(error="internal: oops")


async def test_an_http_error_without_the_api_body_quotes_the_body() -> None:
    handler: Handler = lambda r: httpx.Response(502, text="<html>Bad gateway</html>")  # noqa: E731
    sample = await client_for(handler).query("q")
    assert sample == Sample(error="HTTP 502 Bad Gateway: <html>Bad gateway</html>")


@pytest.mark.parametrize(
    ("content", "problem"),
    [
        (b"{not json", "bad JSON from Prometheus"),
        (b"[1, 2]", "malformed response: [1, 2]"),
        (json.dumps({"status": "success"}).encode(), "malformed response"),
        (json.dumps({"status": "weird", "data": {}}).encode(), "malformed response"),
    ],
)
async def test_a_garbled_answer_is_an_error(content: bytes, problem: str) -> None:
    sample = await client_for(lambda r: httpx.Response(200, content=content)).query("q")
    assert sample.values == ()
    assert sample.error is not None and problem in sample.error


async def test_a_timeout_is_an_error_saying_so() -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        raise httpx.ReadTimeout("timed out", request=request)

    sample = await client_for(handler).query("q")
    assert sample == Sample(error="timeout after 2.5s (POST http://prometheus:9090/api/v1/query)")


async def test_a_refused_connection_is_an_error_saying_so() -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        raise httpx.ConnectError("[Errno 111] Connection refused", request=request)

    sample = await client_for(handler).query_range("q", T0, T0, 1)
    assert sample == Sample(
        error="cannot connect to http://prometheus:9090: [Errno 111] Connection refused")


async def test_a_real_closed_port_is_an_error_not_an_exception() -> None:
    client = PrometheusClient("http://127.0.0.1:9", timeout=2)
    try:
        sample = await client.query("up")
        assert sample.error is not None and sample.error.startswith("cannot connect to")
        assert not await client.ready()
    finally:
        await client.aclose()


async def test_any_other_transport_failure_is_an_error_not_an_exception() -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        raise RuntimeError("socket on fire")

    sample = await client_for(handler).query("q")
    assert sample.error is not None and "RuntimeError" in sample.error
    assert "socket on fire" in sample.error


async def test_cancellation_is_not_swallowed() -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        raise asyncio.CancelledError

    with pytest.raises(asyncio.CancelledError):
        await client_for(handler).query("q")


# -- readiness and closing ------------------------------------------------------------------


@pytest.mark.parametrize(("status", "ready"), [(200, True), (503, False), (404, False)])
async def test_ready_is_a_200_on_the_ready_endpoint(status: int, ready: bool) -> None:
    seen: list[httpx.Request] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return httpx.Response(status, text="Prometheus Server is Ready.")

    assert await client_for(handler, "http://p:9090/").ready() is ready
    assert seen[0].method == "GET" and str(seen[0].url) == "http://p:9090/-/ready"


async def test_ready_is_false_when_prometheus_cannot_be_reached() -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        raise httpx.ConnectError("refused", request=request)

    assert await client_for(handler).ready() is False


async def test_aclose_closes_only_a_client_it_made() -> None:
    given = httpx.AsyncClient(transport=httpx.MockTransport(answer("vector", [])))
    await PrometheusClient("http://p", client=given).aclose()
    assert not given.is_closed
    await given.aclose()

    own = PrometheusClient("http://p")
    await own.aclose()
    assert own._client.is_closed
