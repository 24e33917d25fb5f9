"""The demo application's release files, its deterministic failures, and its answers in-process
(no sockets); the load report's arithmetic. tests/integration/test_stack_edges.py runs it for
real behind nginx and Prometheus."""

from __future__ import annotations

import json
import math
from collections import Counter
from fractions import Fraction
from pathlib import Path

import pytest

from demo.app import (
    EXIT_CRASH,
    EXIT_USAGE,
    DemoApp,
    Release,
    ReleaseError,
    fails,
    load_release,
    main,
    parse_release,
)
from demo.loadgen import LoadReport

RELEASES = Path(__file__).resolve().parents[2] / "demo" / "releases"


def write(tmp_path: Path, content: object) -> Path:
    path = tmp_path / "release.json"
    path.write_text(json.dumps(content))
    return path


# ---------------------------------------------------------------------------------------------
# Release files


def test_a_release_file_with_every_key_is_read_as_written(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        {
            "error_rate": 0.25,
            "added_latency_ms": 300,
            "crash_at_start": False,
            "never_ready": True,
            "ready_after_seconds": 1.5,
        },
    )
    assert load_release(path) == Release(
        error_rate=0.25,
        added_latency_ms=300.0,
        crash_at_start=False,
        never_ready=True,
        ready_after_seconds=1.5,
    )


def test_an_empty_release_is_healthy(tmp_path: Path) -> None:
    assert load_release(write(tmp_path, {})) == Release()


def test_the_shipped_releases_say_what_the_demo_needs() -> None:
    releases = {path.stem: load_release(path) for path in RELEASES.glob("*.json")}
    assert releases["1.0.0"] == releases["2.0.0"] == Release()
    assert releases["3.0.0"] == Release(error_rate=0.2)
    assert releases["slow"] == Release(added_latency_ms=300)
    assert releases["never-ready"] == Release(never_ready=True)
    assert releases["crash"] == Release(crash_at_start=True)


def test_an_unknown_key_is_an_error_naming_the_file_and_the_key(tmp_path: Path) -> None:
    path = write(tmp_path, {"error_rate": 0.1, "eror_rate": 0.2})
    with pytest.raises(ReleaseError) as raised:
        load_release(path)
    assert str(path) in str(raised.value)
    assert "'eror_rate'" in str(raised.value)


@pytest.mark.parametrize(
    ("key", "value"),
    [
        ("error_rate", 1.5),
        ("error_rate", -0.1),
        ("added_latency_ms", -1),
        ("ready_after_seconds", -0.5),
        ("error_rate", "0.2"),
        ("error_rate", True),
        ("added_latency_ms", None),
        ("crash_at_start", 1),
        ("never_ready", "yes"),
    ],
)
def test_a_wrong_type_or_out_of_range_value_is_an_error_naming_the_file_and_the_key(
    tmp_path: Path, key: str, value: object
) -> None:
    path = write(tmp_path, {key: value})
    with pytest.raises(ReleaseError) as raised:
        load_release(path)
    assert str(raised.value).startswith(f"{path}: {key} must be")


def test_infinity_is_not_a_latency() -> None:
    with pytest.raises(ReleaseError, match="added_latency_ms must be a number"):
        parse_release({"added_latency_ms": math.inf}, "r.json")


@pytest.mark.parametrize("text", ["[]", "0.2", "{not json"])
def test_a_file_that_is_not_a_json_object_is_an_error(tmp_path: Path, text: str) -> None:
    path = tmp_path / "release.json"
    path.write_text(text)
    with pytest.raises(ReleaseError, match=str(path)):
        load_release(path)


def test_a_bad_release_exits_2_and_says_why(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = write(tmp_path, {"error_rate": 2})
    assert main(["--port", "0", "--version", "x", "--release", str(path)]) == EXIT_USAGE
    assert f"{path}: error_rate must be between 0 and 1" in capsys.readouterr().err


def test_a_crashing_release_exits_3_before_listening(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["--port", "0", "--version", "x", "--release", str(RELEASES / "crash.json")]) == (
        EXIT_CRASH
    )
    assert "crash_at_start" in capsys.readouterr().err


# ---------------------------------------------------------------------------------------------
# Deterministic failures


def test_error_rate_0_2_fails_exactly_every_fifth_request() -> None:
    failed = [n for n in range(1, 101) if fails(n, 0.2)]
    assert len(failed) == 20
    assert failed == list(range(5, 101, 5))


@pytest.mark.parametrize("rate", [0.0, 0.01, 0.1, 0.2, 0.29, 0.3, 1 / 3, 0.5, 0.7, 0.99, 1.0])
def test_of_the_first_n_requests_exactly_floor_n_times_rate_fail(rate: float) -> None:
    failures = 0
    for n in range(1, 1001):
        failures += fails(n, rate)
        if n % 100 == 0:
            # The rate as written: 0.29 is 29/100 even though 100 * 0.29 < 29 in floats.
            assert failures == math.floor(n * Fraction(str(rate))), (rate, n)


# ---------------------------------------------------------------------------------------------
# The application's answers, in-process


async def test_answers_carry_the_version_and_fail_on_the_release_s_schedule() -> None:
    app = DemoApp("3.0.0", Release(error_rate=0.2), service="shop")
    codes = [(await app.respond("/"))[0] for _ in range(10)]
    assert codes == [200, 200, 200, 200, 500] * 2
    status, ctype, body = await app.respond("/any/other/path")
    assert (status, ctype) == (200, "application/json")
    assert json.loads(body) == {"service": "shop", "version": "3.0.0", "n": 11}


async def test_metrics_count_application_requests_only() -> None:
    app = DemoApp("3.0.0", Release(error_rate=0.2))
    for _ in range(5):
        await app.respond("/")
    await app.respond("/healthz")
    status, _, metrics = await app.respond("/metrics")
    text = metrics.decode()
    assert status == 200
    assert 'demo_http_requests_total{code="200",version="3.0.0"} 4.0' in text
    assert 'demo_http_requests_total{code="500",version="3.0.0"} 1.0' in text
    assert 'demo_http_request_duration_seconds_count{version="3.0.0"} 5.0' in text
    assert 'demo_build_info{version="3.0.0"} 1.0' in text
    for bound in ("0.005", "0.1", "0.25", "0.3", "0.5", "2.5"):
        assert f'demo_http_request_duration_seconds_bucket{{le="{bound}",version="3.0.0"}}' in text


async def test_a_new_instance_exposes_a_zero_error_count_not_an_absent_one() -> None:
    _, _, metrics = await DemoApp("1.0.0", Release()).respond("/metrics")
    assert 'demo_http_requests_total{code="500",version="1.0.0"} 0.0' in metrics.decode()


async def test_healthz_follows_ready_after_seconds_and_never_ready() -> None:
    now = [100.0]
    app = DemoApp("1.0.0", Release(ready_after_seconds=2), clock=lambda: now[0])
    assert (await app.respond("/healthz"))[0] == 503
    now[0] += 2
    assert (await app.respond("/healthz"))[0] == 200
    never = DemoApp("1.0.0", Release(never_ready=True), clock=lambda: now[0])
    now[0] += 3600
    assert (await never.respond("/healthz"))[0] == 503


# ---------------------------------------------------------------------------------------------
# The load report


def test_share_is_of_the_responses_that_named_a_version() -> None:
    report = LoadReport(
        sent=12, by_status=Counter({200: 10, 502: 1}), by_version=Counter({"a": 8, "b": 2})
    )
    assert report.share("b") == pytest.approx(0.2)
    assert report.share("c") == 0.0
    assert LoadReport().share("a") == 0.0


def test_latency_quantiles_are_nearest_rank() -> None:
    report = LoadReport(latencies_s=[i / 1000 for i in range(100, 0, -1)])
    assert report.latency_s(0.5) == pytest.approx(0.050)
    assert report.latency_s(0.95) == pytest.approx(0.095)
    assert LoadReport().latency_s(0.5) is None
    assert report.summary()["latency_ms"] == {"p50": 50.0, "p95": 95.0}
