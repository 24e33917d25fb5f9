"""Gatus-style HTTP conditions: what parses (and where it does not), what each placeholder
resolves to on real answers, who is at fault when there is nothing to judge, and how one
probe's answer becomes a check status."""

from __future__ import annotations

import json

import pytest

from schemas.events.health import CheckStatus
from services.process.domain.conditions import (
    Condition,
    ConditionError,
    HttpObservation,
    format_duration,
    judge_http,
    parse_condition,
    parse_duration_ms,
    parse_number,
)
from services.runtime.config import HttpProbe

ACTUATOR = json.dumps({
    "status": "UP",
    "components": {
        "db": {"status": "UP", "details": {"database": "PostgreSQL", "validationQuery": "1"}},
        "diskSpace": {"status": "UP", "details": {"total": 499963174912, "free": 91707555840}},
        "kafka": {"status": "DOWN", "details": {"error": "timeout after 5000 ms"}},
    },
    "groups": ["liveness", "readiness"],
    "version": "1.10",
    "build": 7,
    "ratio": 0.25,
    "maintenance": None,
    "ok": True,
}).encode()
"""A Spring Boot actuator-like health answer."""

INSTANCES = b'[{"name": "web-1", "healthy": true, "lag": 12}, {"name": "web-2", "healthy": false}]'
NGINX_502 = b"<html><head><title>502 Bad Gateway</title></head><body>nginx</body></html>"
HOUR_S = 3600.0


def answer(body: bytes | None = ACTUATOR, *, status: int = 200, ms: float | None = 42.0,
           cert_s: float | None = 30 * 24 * HOUR_S, headers: dict[str, str] | None = None,
           ip: str | None = "10.0.0.7") -> HttpObservation:
    return HttpObservation(connected=True, status=status, response_time_ms=ms, body=body,
                           headers=headers if headers is not None else
                           {"Content-Type": "application/json", "X-Version": "2.4.1"},
                           certificate_expires_in_s=cert_s, ip=ip)


REFUSED = HttpObservation(connected=False, error="connection refused")
HUNG = HttpObservation(connected=True, status=None, error="read timed out after 2 s",
                       ip="10.0.0.7", certificate_expires_in_s=HOUR_S)


def verdict(text: str, obs: HttpObservation) -> bool | None:
    return parse_condition(text).evaluate(obs)[0]


def explain(text: str, obs: HttpObservation) -> str:
    return parse_condition(text).evaluate(obs)[1]


# -- placeholders on real answers -----------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "obs", "expected"),
    [
        ("[STATUS] == 200", answer(), True),
        ("[STATUS] == 200", answer(status=503), False),
        ("[STATUS] != 200", answer(status=503), True),
        ("[STATUS] < 300", answer(status=299), True),
        ("[STATUS] < 300", answer(status=300), False),
        ("[STATUS] <= 299", answer(status=299), True),
        ("[STATUS] >= 500", answer(status=499), False),
        ("[STATUS] > 400", answer(status=401), True),
        ("[STATUS] > 400", answer(status=400), False),
        ("[RESPONSE_TIME] < 300", answer(ms=299.9), True),
        ("[RESPONSE_TIME] < 300", answer(ms=300), False),
        ("[RESPONSE_TIME] <= 300", answer(ms=300), True),
        ("[RESPONSE_TIME] < 1s", answer(ms=999), True),
        ("[RESPONSE_TIME] < 1s", answer(ms=1000), False),
        ("[BODY].status == UP", answer(), True),
        ("[BODY].status == DOWN", answer(), False),
        ("[BODY].components.db.status == UP", answer(), True),
        ("[BODY].components.kafka.status == UP", answer(), False),
        ("[BODY].components.db.details.database == PostgreSQL", answer(), True),
        ("[BODY].components.diskSpace.details.free > 1000000000", answer(), True),
        ("[BODY].components.diskSpace.details.free > 100000000000", answer(), False),
        ("[BODY].groups[1] == readiness", answer(), True),
        ("[BODY].groups[0] == readiness", answer(), False),
        ("[BODY].build == 7", answer(), True),
        ("[BODY].build == 7.0", answer(), True),  # both numbers: compared as numbers
        ("[BODY].build >= 8", answer(), False),
        ("[BODY].ratio < 0.5", answer(), True),
        ("[BODY].ok == true", answer(), True),
        ("[BODY].ok == false", answer(), False),
        ("[BODY].version == 1.1", answer(), True),  # "1.10" and 1.1 are the same number
        ('[BODY].version == "1.1"', answer(), False),  # quoted: compared as text
        ("[BODY].version == '1.10'", answer(), True),
        ("[BODY][0].name == web-1", answer(INSTANCES), True),
        ("[BODY][1].healthy == true", answer(INSTANCES), False),
        ("[BODY][0].lag < 50", answer(INSTANCES), True),
        ("[BODY] == pong", answer(b"  pong\n"), True),  # the body is trimmed
        ("[BODY] == all good", answer(b"all good"), True),
        ('[BODY] == "all good "', answer(b"all good "), False),
        ("[HEADER].Content-Type == application/json", answer(), True),
        ("[header].content-type == application/json", answer(), True),  # case-insensitive
        ("[HEADER].X-Version == pat(2.*)", answer(), True),
        ("[HEADER].X-Version == pat(3.*)", answer(), False),
        ("[CONNECTED] == true", answer(), True),
        ("[CONNECTED] == false", answer(), False),
        ("[CONNECTED] == false", REFUSED, True),
        ("[CONNECTED] == true", REFUSED, False),
        ("[IP] == 10.0.0.7", answer(), True),
        ("[IP] == pat(10.0.*)", answer(), True),
        ("[IP] == pat(192.168.*)", answer(), False),
        ("[status] == 200", answer(), True),  # placeholder names are case-insensitive
        ("200 == [STATUS]", answer(), True),
        ("[BODY].build == [BODY].build", answer(), True),
        ("[BODY].build == [BODY].ratio", answer(), False),
    ],
)
def test_a_condition_evaluates_as_gatus_does(text: str, obs: HttpObservation,
                                            expected: bool) -> None:
    assert verdict(text, obs) is expected


@pytest.mark.parametrize(
    ("text", "days", "expected"),
    [
        ("[CERTIFICATE_EXPIRATION] > 48h", 2.0, False),  # exactly 48h is not more
        ("[CERTIFICATE_EXPIRATION] >= 48h", 2.0, True),
        ("[CERTIFICATE_EXPIRATION] > 48h", 2.0 + 1 / 86400, True),
        ("[CERTIFICATE_EXPIRATION] > 7d", 6.99, False),
        ("[CERTIFICATE_EXPIRATION] > 7d", 7.01, True),
        ("[CERTIFICATE_EXPIRATION] > 1h30m", 1.5 / 24 + 1 / 86400, True),
        ("[CERTIFICATE_EXPIRATION] > 1h30m", 1.5 / 24, False),
        ("[CERTIFICATE_EXPIRATION] > 90s", 91 / 86400, True),
        ("[CERTIFICATE_EXPIRATION] > 172800000", 2.0, False),  # a bare number is ms, as Gatus
        ("[CERTIFICATE_EXPIRATION] > 172799999", 2.0, True),
        ("[CERTIFICATE_EXPIRATION] > 0", -1.0, False),  # expired
    ],
)
def test_certificate_expiration_compares_with_durations(text: str, days: float,
                                                        expected: bool) -> None:
    assert verdict(text, answer(cert_s=days * 24 * HOUR_S)) is expected


@pytest.mark.parametrize(
    ("text", "obs", "expected"),
    [
        ("[BODY].status == pat(UP*)", answer(), True),
        ("[BODY].status == pat(UP*)", answer(b'{"status": "UPGRADING"}'), True),
        ("[BODY].status == pat(UP*)", answer(b'{"status": "DOWN"}'), False),
        ("[BODY].status == pat(U?)", answer(), True),
        ("[BODY].status == pat(U?)", answer(b'{"status": "UPS"}'), False),
        ("[BODY] != pat(*error*)", answer(b'{"status": "UP"}'), True),
        ("[BODY] != pat(*error*)", answer(b'{"error": "db"}'), False),
        ("[BODY] == pat(*)", answer(b"anything\nat all"), True),
        ("pat(UP*) == [BODY].status", answer(), True),
        ("[STATUS] == pat(2*)", answer(status=204), True),
        ("[STATUS] == pat(2*)", answer(status=302), False),
        ("[STATUS] == any(200, 204)", answer(status=204), True),
        ("[STATUS] == any(200, 204)", answer(status=201), False),
        ("[STATUS] != any(500, 502, 503)", answer(status=200), True),
        ("[STATUS] != any(500, 502, 503)", answer(status=502), False),
        ("[BODY].status == any(UP, DEGRADED)", answer(b'{"status": "DEGRADED"}'), True),
        ("[BODY].status == any('UP', \"OUT, OF SERVICE\")",
         answer(b'{"status": "OUT, OF SERVICE"}'), True),
        ("[BODY].build == any(7.0, 8)", answer(), True),
    ],
)
def test_pat_and_any(text: str, obs: HttpObservation, expected: bool) -> None:
    assert verdict(text, obs) is expected


@pytest.mark.parametrize(
    ("text", "obs", "expected"),
    [
        ("len([BODY].groups) == 2", answer(), True),
        ("len([BODY].groups) > 2", answer(), False),
        ("len([BODY].status) == 2", answer(), True),  # a string's characters
        ("len([BODY].components.db.details) == 47", answer(), True),  # compact JSON, as Gatus
        ("len([BODY]) == 2", answer(INSTANCES), True),  # a top-level array's elements
        ("len([BODY]) == 4", answer(b" pong "), True),  # else the trimmed body's length
        ("len([HEADER].X-Version) == 5", answer(), True),
        ("has([BODY].components.db) == true", answer(), True),
        ("has([BODY].errors) == false", answer(), True),
        ("has([BODY].errors) == true", answer(), False),
        ("has([BODY].maintenance) == false", answer(), True),  # null counts as absent
        ("has([BODY].status) == true", answer(NGINX_502), False),  # not JSON: nothing exists
        ("has([BODY]) == false", answer(b""), True),
        ("has([HEADER].Retry-After) == false", answer(), True),
        ("has([HEADER].x-version) == true", answer(), True),
    ],
)
def test_len_and_has(text: str, obs: HttpObservation, expected: bool) -> None:
    assert verdict(text, obs) is expected


# -- who is at fault ------------------------------------------------------------------------


@pytest.mark.parametrize(
    "text",
    ["[STATUS] == 200", "[STATUS] != 200", "[RESPONSE_TIME] < 300", "[BODY].status == UP",
     "[BODY] != pat(*error*)", "has([BODY].errors) == false", "[HEADER].X-Version == 2.4.1",
     "[CERTIFICATE_EXPIRATION] > 48h", "[IP] == 10.0.0.7", "[STATUS] == any(200, 503)"],
)
def test_a_target_that_cannot_be_reached_fails_every_condition_on_its_answer(text: str) -> None:
    ok, message = parse_condition(text).evaluate(REFUSED)
    assert ok is False
    assert "(not connected: connection refused)" in message


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("[STATUS] == 200", False),
        ("[BODY].status == UP", False),
        ("[RESPONSE_TIME] < 5000", False),
        ("[HEADER].X-Version == 2.4.1", False),
        # a connection was made: what it tells is known
        ("[CERTIFICATE_EXPIRATION] > 30m", True),
        ("[IP] == 10.0.0.7", True),
        ("[CONNECTED] == true", True),
    ],
)
def test_a_target_that_connects_but_never_answers_fails_conditions_on_the_answer(
    text: str, expected: bool
) -> None:
    assert verdict(text, HUNG) is expected


def test_no_response_is_explained_with_the_probe_error() -> None:
    assert explain("[STATUS] == 200", HUNG) == (
        "[STATUS] (no response: read timed out after 2 s) == 200")


@pytest.mark.parametrize(
    ("text", "obs", "why"),
    [
        ("[BODY].status == UP", answer(NGINX_502), "body not JSON"),
        ("[BODY].health == UP", answer(), "absent"),
        ("[BODY].components.cache.status == UP", answer(), "absent"),
        ("[BODY].maintenance == null", answer(), "absent"),
        ("[BODY].groups[2] == startup", answer(), "[BODY].groups has 2 elements"),
        ("[BODY].status.code == 1", answer(), "[BODY].status is not an object"),
        ("[BODY].components[0] == 1", answer(), "[BODY].components is not an array"),
        ("[BODY].status == UP", answer(b""), "body not JSON"),
        ("[BODY].status == UP", answer(b'{"status": NaN}'), "body not JSON"),
        ("[HEADER].Retry-After == 0", answer(), "absent"),
    ],
)
def test_an_answer_without_what_is_asked_fails(text: str, obs: HttpObservation,
                                              why: str) -> None:
    ok, message = parse_condition(text).evaluate(obs)
    assert ok is False
    assert f"({why})" in message


@pytest.mark.parametrize(
    ("text", "obs", "why"),
    [
        ("[RESPONSE_TIME] < 300", answer(ms=None), "response time not measured"),
        ("[CERTIFICATE_EXPIRATION] > 48h", answer(cert_s=None), "no certificate measured"),
        ("[IP] == 10.0.0.7", answer(ip=None), "IP not recorded"),
        ("[BODY].status == UP", answer(None), "body not read"),
        ("has([BODY].errors) == false", answer(None), "body not read"),
        ("len([BODY]) > 0", answer(None), "body not read"),
    ],
)
def test_what_the_probe_did_not_measure_cannot_be_judged(text: str, obs: HttpObservation,
                                                         why: str) -> None:
    ok, message = parse_condition(text).evaluate(obs)
    assert ok is None
    assert f"({why})" in message


def test_a_known_failure_wins_over_what_cannot_be_judged() -> None:
    condition = parse_condition("[BODY].status == [IP]")
    assert condition.evaluate(answer(NGINX_502, ip=None))[0] is False
    assert condition.evaluate(answer(ip=None))[0] is None


def test_ordering_a_value_that_is_not_a_number_fails_and_says_so() -> None:
    assert explain("[BODY].status < 5", answer()) == "[BODY].status (UP: not a number) < 5"
    assert verdict("[BODY].status < 5", answer()) is False
    assert verdict("[BODY].status >= 5", answer()) is False
    assert verdict('[BODY].lag < 50', answer(b'{"lag": "12"}')) is True  # numeric text


# -- messages -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "obs", "message"),
    [
        ("[STATUS] == 200", answer(status=503), "[STATUS] (503) == 200"),
        ("[RESPONSE_TIME] < 300", answer(ms=412), "[RESPONSE_TIME] (412 ms) < 300"),
        ("[RESPONSE_TIME] < 300", answer(ms=412.25), "[RESPONSE_TIME] (412.25 ms) < 300"),
        ("[BODY].status == DOWN", answer(), "[BODY].status (UP) == DOWN"),
        ("[CERTIFICATE_EXPIRATION] > 48h", answer(cert_s=30 * HOUR_S),
         "[CERTIFICATE_EXPIRATION] (1d6h) > 48h"),
        ("[CERTIFICATE_EXPIRATION] > 48h", answer(cert_s=-2 * HOUR_S),
         "[CERTIFICATE_EXPIRATION] (-2h) > 48h"),
        ("len([BODY].groups) < 1", answer(), "len([BODY].groups) (2) < 1"),
        ("[STATUS] == any(200, 204)", answer(status=500), "[STATUS] (500) == any(200, 204)"),
        ("[BODY] == pat(*UP*)", answer(b"x" * 100),
         f"[BODY] ({'x' * 60}…) == pat(*UP*)"),
        ("200 == [STATUS]", answer(status=404), "200 == [STATUS] (404)"),
        ('[BODY].version == "1.1"', answer(), '[BODY].version (1.10) == "1.1"'),
    ],
)
def test_the_message_shows_the_observed_values(text: str, obs: HttpObservation,
                                               message: str) -> None:
    assert explain(text, obs) == message


@pytest.mark.parametrize(
    ("text", "normalised"),
    [
        ("[status]==200", "[STATUS] == 200"),
        ("  [RESPONSE_TIME]<300  ", "[RESPONSE_TIME] < 300"),
        ("[Body].Status == UP", "[BODY].Status == UP"),
        ("[BODY][0].items[2].id==1", "[BODY][0].items[2].id == 1"),
        ("len( [BODY].groups ) >= 1", "len([BODY].groups) >= 1"),
        ("[STATUS] == any(200,204)", "[STATUS] == any(200, 204)"),
        ("[BODY] == 'a b'", '[BODY] == "a b"'),
        ("[CERTIFICATE_EXPIRATION] > 7d", "[CERTIFICATE_EXPIRATION] > 7d"),
    ],
)
def test_str_is_the_normalised_condition_and_text_what_was_written(
    text: str, normalised: str
) -> None:
    condition = parse_condition(text)
    assert str(condition) == normalised
    assert condition.text == text.strip()
    assert parse_condition(str(condition)).evaluate(answer()) == condition.evaluate(answer())


# -- parse errors ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "column", "problem"),
    [
        ("", 1, "empty condition"),
        ("   ", 1, "empty condition"),
        ("[STATUS]", 1, "no operator"),
        ("[STATUS] = 200", 10, "'=' is not an operator; use '=='"),
        ("[STATUS] == ", 13, "no right operand"),
        (" == 200", 2, "no left operand"),
        ("[STATUS] <== 200", 12, "unexpected operator"),
        ("[STAUTS] == 200", 1, "unknown placeholder [STAUTS]"),
        ("[DNS_RCODE] == NOERROR", 1, "[DNS_RCODE] is not supported"),
        ("[DOMAIN_EXPIRATION] > 720h", 1, "[DOMAIN_EXPIRATION] is not supported"),
        ("UP == DOWN", 1, "one side must be a placeholder"),
        ("[STATUS] == [1]", 13, "quote text that starts with '['"),
        ("len(status) == 1", 5, "expected a placeholder such as [STATUS], got 'status'"),
        ("[RESPONSE_TIME] < fast", 19, "'<' compares numbers; fast is not a number"),
        ("[BODY].status > 'UP'", 17, "not a number or duration"),
        ("[STATUS] < pat(2*)", 12, "pat() works only with == and !="),
        ("[STATUS] >= any(200, 204)", 13, "any() works only with == and !="),
        ("pat(a*) == any(a, b)", 1, "one side must be a placeholder"),
        ("[CONNECTED] == yes", 16, "[CONNECTED] is true or false, not yes"),
        ("[CONNECTED] > 0", 15, "compare it with == or !="),
        ("has([BODY].a) == 1", 18, "is true or false"),
        ("[BODY].items[*].ok == true", 13, "[*] wildcards are not supported"),
        ("[BODY].a..b == 1", 9, "expected .key or [index]"),
        ("[BODY].a[x] == 1", 9, "expected .key or [index]"),
        ("[HEADER] == x", 9, "[HEADER] needs a header name"),
        ("[STATUS].code == 1", 9, "[STATUS] takes no path"),
        ("[STATUS] == any(200, 404", 13, "any( is not closed"),
        ("[STATUS] == any(200,,404)", 21, "an empty value in any()"),
        ("[BODY] == pat()", 15, "pat() needs a value"),
        ("[BODY] == 'UP", 11, "a quoted value must be one quoted string"),
        ("age([HEADER].Date) < 1h", 1, "age() is not supported"),
        ("[BODY].a) == 1", 9, "unbalanced ')'"),
        ("[BODY.a == 1", 1, "unclosed bracket"),
        ("'[BODY] == 1", 1, "unclosed '"),
    ],
)
def test_a_bad_condition_is_refused_with_its_column(text: str, column: int,
                                                   problem: str) -> None:
    with pytest.raises(ConditionError) as caught:
        parse_condition(text)
    assert caught.value.column == column
    assert problem in caught.value.problem
    assert repr(text) in str(caught.value)


def test_a_condition_error_is_a_value_error() -> None:
    assert issubclass(ConditionError, ValueError)


def test_the_default_probe_condition_parses() -> None:
    probe = HttpProbe(url="http://127.0.0.1:8080/healthz")
    assert [str(parse_condition(c)) for c in probe.conditions] == ["[STATUS] == 200"]


# -- numbers and durations ------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "ms"),
    [("48h", 172_800_000.0), ("7d", 604_800_000.0), ("30m", 1_800_000.0), ("90s", 90_000.0),
     ("500ms", 500.0), ("1h30m", 5_400_000.0), ("1.5h", 5_400_000.0), ("250us", 0.25),
     ("2d12h", 216_000_000.0), ("48", None), ("h", None), ("48x", None), ("-1h", None),
     ("1h 30m", None)],
)
def test_durations_are_read_in_milliseconds(text: str, ms: float | None) -> None:
    assert parse_duration_ms(text) == ms


@pytest.mark.parametrize(
    ("text", "number"),
    [("200", 200.0), ("-0.5", -0.5), ("1e3", 1000.0), (".5", 0.5), ("0x10", None),
     ("NaN", None), ("inf", None), ("1e999", None), ("", None), ("1_000", None)],
)
def test_numbers_are_decimal_and_finite(text: str, number: float | None) -> None:
    assert parse_number(text) == number


@pytest.mark.parametrize(
    ("ms", "text"),
    [(0, "0ms"), (250, "250ms"), (1000, "1s"), (90_000, "1m30s"), (3_600_000, "1h"),
     (172_800_000, "2d"), (108_000_000, "1d6h"), (3_601_500, "1h1s"), (-7_200_000, "-2h")],
)
def test_durations_are_shown_briefly(ms: float, text: str) -> None:
    assert format_duration(ms) == text


# -- judging one probe ----------------------------------------------------------------------


def conditions(*texts: str) -> list[Condition]:
    return [parse_condition(t) for t in texts]


CONDITIONS = conditions("[STATUS] == 200", "[BODY].status == UP", "[RESPONSE_TIME] < 1000")
WARN = conditions("[RESPONSE_TIME] < 150", "[BODY].components.kafka.status == UP")


def test_every_condition_holding_passes_with_the_response_time() -> None:
    status, message, observed = judge_http(CONDITIONS, [], answer(ms=42))
    assert (status, observed) == (CheckStatus.PASS, 42)
    assert message == "HTTP 200 in 42 ms: 3 conditions hold"


def test_the_first_broken_condition_fails_the_check_and_says_how_many_more() -> None:
    status, message, observed = judge_http(CONDITIONS, WARN, answer(b'{"status": "DOWN"}',
                                                                     status=503, ms=1200))
    assert status is CheckStatus.FAIL
    assert message == "[STATUS] (503) == 200 (and 2 more)"
    assert observed == 1200


def test_one_broken_condition_is_named_alone() -> None:
    status, message, _ = judge_http(CONDITIONS, [], answer(b'{"status": "DOWN"}'))
    assert (status, message) == (CheckStatus.FAIL, "[BODY].status (DOWN) == UP")


def test_a_target_down_fails_the_check() -> None:
    status, message, observed = judge_http(CONDITIONS, [], REFUSED)
    assert status is CheckStatus.FAIL
    assert message.startswith("[STATUS] (not connected: connection refused) == 200")
    assert observed is None


def test_a_condition_that_cannot_be_judged_makes_the_check_unknown_never_pass() -> None:
    status, message, _ = judge_http(conditions("[STATUS] == 200",
                                               "[CERTIFICATE_EXPIRATION] > 48h"),
                                    [], answer(cert_s=None))
    assert status is CheckStatus.UNKNOWN
    assert message == "cannot judge [CERTIFICATE_EXPIRATION] (no certificate measured) > 48h"


def test_a_failure_outranks_what_cannot_be_judged() -> None:
    status, _, _ = judge_http(conditions("[CERTIFICATE_EXPIRATION] > 48h", "[STATUS] == 200"),
                              [], answer(status=500, cert_s=None))
    assert status is CheckStatus.FAIL


def test_a_broken_warn_condition_degrades_a_passing_check() -> None:
    status, message, _ = judge_http(CONDITIONS, WARN, answer(ms=151))
    assert status is CheckStatus.WARN
    assert message == "[RESPONSE_TIME] (151 ms) < 150 (and 1 more)"


def test_warn_conditions_holding_pass() -> None:
    status, message, _ = judge_http(CONDITIONS, WARN[:1], answer(ms=149))
    assert status is CheckStatus.PASS
    assert message == "HTTP 200 in 149 ms: 4 conditions hold"


def test_a_warn_condition_that_cannot_be_judged_warns() -> None:
    status, message, _ = judge_http(CONDITIONS, conditions("[CERTIFICATE_EXPIRATION] > 7d"),
                                    answer(cert_s=None))
    assert status is CheckStatus.WARN
    assert message.startswith("cannot judge [CERTIFICATE_EXPIRATION]")


def test_warn_conditions_do_not_soften_a_failure() -> None:
    status, _, _ = judge_http(CONDITIONS, WARN, answer(status=500, ms=10))
    assert status is CheckStatus.FAIL


def test_no_conditions_judge_nothing() -> None:
    assert judge_http([], WARN, answer())[0] is CheckStatus.UNKNOWN


def test_only_connected_needs_no_response() -> None:
    status, message, _ = judge_http(conditions("[CONNECTED] == true"), [], HUNG)
    assert (status, message) == (CheckStatus.PASS, "1 condition holds")
