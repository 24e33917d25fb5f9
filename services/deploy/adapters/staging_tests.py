"""Staging tests: HTTP checks against the staging instance, or commands; one test run.

The result is a CDEvents-style `testsuiterun.finished` (StagingTestRun), with one case per
test and, for a failure, the reason: the status received, the body that did not contain
the text, or the command's exit code and the end of its output.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Sequence

import httpx

from schemas.events.deploy import StagingTestRun, TestCaseResult, TestOutcome
from services.deploy.adapters.targets import (
    Release,
    TargetError,
    release_values,
    render_args,
    run_command,
)
from services.runtime.config import HttpTest, StagingTest

SUITE = "staging"


async def run_tests(tests: Sequence[StagingTest], release: Release, url: str | None
                    ) -> StagingTestRun:
    started = time.monotonic()
    cases = list(await asyncio.gather(*(_one(t, release, url) for t in tests)))
    failed = [c for c in cases if c.outcome is not TestOutcome.PASS]
    reason = ("; ".join(f"{c.name}: {c.message}" for c in failed) if failed
              else f"{len(cases)} test(s) passed" if cases else "no staging tests configured")
    return StagingTestRun(
        suite=SUITE, outcome=TestOutcome.FAIL if failed else TestOutcome.PASS,
        cases=tuple(cases), reason=reason, duration_seconds=time.monotonic() - started,
    )


async def _one(test: StagingTest, release: Release, url: str | None) -> TestCaseResult:
    started = time.monotonic()
    try:
        async with asyncio.timeout(test.timeout_seconds):
            if test.http is not None:
                ok, message = await _http(test.http, url)
            else:
                assert test.command is not None
                argv = render_args(test.command, release_values(release, url=url,
                                                                env="staging"))
                code, out = await run_command(argv, timeout=test.timeout_seconds)
                ok = code == 0
                message = "exit 0" if ok else f"exit {code}: {out.strip()[-300:]}"
    except TimeoutError:
        ok, message = False, f"did not finish within {test.timeout_seconds:g} s"
    except TargetError as exc:
        ok, message = False, str(exc)
    return TestCaseResult(
        name=test.name, outcome=TestOutcome.PASS if ok else TestOutcome.FAIL,
        message=message, duration_seconds=time.monotonic() - started,
    )


async def _http(check: HttpTest, base: str | None) -> tuple[bool, str]:
    if base is None:
        return False, "the deploy target has no staging URL for HTTP tests"
    url = base.rstrip("/") + check.path
    async with httpx.AsyncClient(timeout=10.0) as client:
        for attempt in range(check.repeat):
            try:
                response = await client.request(check.method, url)
            except httpx.HTTPError as exc:
                return False, f"{check.method} {url}: {type(exc).__name__}: {exc}"
            if response.status_code not in check.expect_status:
                return False, (f"{check.method} {url} answered {response.status_code} on "
                               f"request {attempt + 1} of {check.repeat}; expected "
                               f"{' or '.join(map(str, check.expect_status))}")
            if check.body_contains is not None and check.body_contains not in response.text:
                return False, f"{check.method} {url}: body lacks {check.body_contains!r}"
    return True, f"{check.method} {url}: {check.repeat} answer(s) as expected"
