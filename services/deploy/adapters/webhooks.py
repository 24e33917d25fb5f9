"""Webhooks, as Flagger calls them: a JSON POST per action, any 2xx means go.

Used by the `http` deploy target (one webhook per action) and by the rollout hooks
(pre-rollout, confirm-promotion, post-rollout, rollback). Each call has a timeout and a
bounded number of retries with backoff; the payload names the change, so a receiver can
treat a retried call as the same request (the idempotency key is the change id + action).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Mapping
from urllib.parse import quote

import httpx

from services.deploy.adapters.targets import (
    Env,
    Readiness,
    Release,
    Restored,
    TargetError,
    release_values,
)
from services.runtime.config import HttpTarget, Webhook

RETRY_BACKOFF_S = 0.5


async def call_webhook(hook: Webhook, action: str, release: Release,
                       extra: Mapping[str, str | None] | None = None) -> tuple[bool, str]:
    """(True, status) on a 2xx; (False, why) after the retries. Never raises for HTTP."""
    values = release_values(release, **(extra or {}))
    url = hook.url
    for name, value in values.items():
        url = url.replace("{" + name + "}", quote(value or "", safe=""))
    payload = {"action": action, "idempotency_key": f"{release.change_id}:{action}",
               **{k: v for k, v in values.items() if v is not None}}
    last = "not called"
    async with httpx.AsyncClient(timeout=hook.timeout_seconds) as client:
        for attempt in range(hook.retries + 1):
            if attempt:
                await asyncio.sleep(RETRY_BACKOFF_S * 2 ** (attempt - 1))
            try:
                response = await client.request(hook.method, url, json=payload,
                                                 headers=hook.headers)
            except httpx.HTTPError as exc:
                last = f"{type(exc).__name__}: {exc}"
                continue
            if 200 <= response.status_code < 300:
                return True, f"HTTP {response.status_code}"
            last = f"HTTP {response.status_code}: {response.text[:200]}"
            if 400 <= response.status_code < 500 and response.status_code != 429:
                break  # the receiver said no; asking again will not change its mind
    return False, f"{action} webhook {hook.url} failed: {last}"


class HttpDeployTarget:
    """A webhook per action (2xx means go), with timeouts and retries."""

    def __init__(self, config: HttpTarget) -> None:
        self.config = config

    async def _must(self, hook: Webhook, action: str, release: Release,
                    **extra: str | None) -> None:
        ok, why = await call_webhook(hook, action, release, extra)
        if not ok:
            raise TargetError(why)

    async def deploy(self, env: Env, release: Release) -> None:
        await self._must(self.config.deploy, "deploy", release, env=env.value)

    async def ready(self, env: Env, release: Release) -> Readiness:
        if self.config.ready is None:
            return Readiness(True, "no ready webhook configured")
        ok, why = await call_webhook(self.config.ready, "ready", release, {"env": env.value})
        return Readiness(ok, why)

    async def stable_version(self, release: Release) -> str | None:
        return release.previous_version

    async def set_weight(self, release: Release, weight: int) -> None:
        await self._must(self.config.set_weight, "set_weight", release, weight=str(weight))

    async def promote(self, release: Release) -> None:
        await self._must(self.config.promote, "promote", release)

    async def rollback(self, release: Release) -> Restored:
        await self._must(self.config.rollback, "rollback", release)
        return Restored(release.previous_version, time.monotonic())

    async def finish(self, release: Release) -> None:
        return None

    def staging_url(self) -> str | None:
        return self.config.staging_url

    async def close(self) -> None:
        return None
