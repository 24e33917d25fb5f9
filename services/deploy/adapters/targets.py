"""Deploy targets: one interface over local processes, configured commands and webhooks.

Every action is idempotent for its release: the driver re-runs the step it was in after a
crash (DESIGN.md: side effects carry an idempotency key derived from (change id, step)),
so deploying a release that already runs, or setting the weight it already has, must be a
no-op, and a rollback of a release that is already out must report what serves now.
"""

from __future__ import annotations

import re
import sys
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path
from typing import Protocol

from services.runtime import processes
from services.runtime.config import CommandTarget, DeployPolicy, HttpTarget, LocalTarget
from services.runtime.settings import RuntimeSettings

OUTPUT_TAIL = 2000
"""How much of a failing command's output an error carries (the end is what explains it)."""


class Env(StrEnum):
    STAGING = "staging"
    CANARY = "canary"


@dataclass(frozen=True)
class Release:
    """What is being rolled out: the idempotency key of every target action is its change."""

    change_id: str
    service: str
    version: str
    artifact: str | None = None
    previous_version: str | None = None


@dataclass(frozen=True)
class Readiness:
    ready: bool
    reason: str = ""
    final: bool = False
    """The instance cannot become ready any more (it exited): stop waiting."""


@dataclass(frozen=True)
class Restored:
    """What a rollback put back, and when all new requests went to it."""

    version: str | None
    switched_at: float
    """time.monotonic() when the traffic switch was confirmed (before clean-up)."""


class TargetError(Exception):
    """The target refused or failed an action; the message says which and why."""


class Target(Protocol):
    async def deploy(self, env: Env, release: Release) -> None:
        """Run `release` in `env` (a canary gets no traffic until `set_weight`)."""

    async def ready(self, env: Env, release: Release) -> Readiness:
        """One readiness probe of `release` in `env`."""

    async def stable_version(self, release: Release) -> str | None:
        """The version production serves besides this release (None: a first release)."""

    async def set_weight(self, release: Release, weight: int) -> None:
        """Send `weight` percent of production traffic to the canary."""

    async def promote(self, release: Release) -> None:
        """The canary takes all traffic; the previous version is kept for a fast rollback."""

    async def rollback(self, release: Release) -> Restored:
        """All traffic back to the previous version, the release stopped."""

    async def finish(self, release: Release) -> None:
        """After production monitoring: retire the previous version and staging."""

    def staging_url(self) -> str | None:
        """Where staging HTTP tests go."""

    async def close(self) -> None:
        """Release resources held by the adapter (not the instances it runs)."""


# -- templated argument lists ------------------------------------------------------------------

_PLACEHOLDER = re.compile(r"\{([a-z_]+)\}")


def render_args(template: Sequence[str], values: Mapping[str, str | None]) -> list[str]:
    """Substitute `{name}` in each argument on its own; the result is an argv list for exec,
    never a shell string, so event data (a version, an artifact) cannot add arguments or
    commands. A placeholder whose value is missing is an error that names it."""

    def one(arg: str) -> str:
        def sub(match: re.Match[str]) -> str:
            name = match.group(1)
            if name == "python":
                return sys.executable
            value = values.get(name)
            if value is None:
                raise TargetError(f"argument {arg!r} needs {{{name}}}, which this release "
                                  f"does not have")
            return value

        return _PLACEHOLDER.sub(sub, arg)

    return [one(arg) for arg in template]


def release_values(release: Release, **extra: str | None) -> dict[str, str | None]:
    return {
        "change_id": release.change_id, "service": release.service,
        "version": release.version, "artifact": release.artifact,
        "previous_version": release.previous_version, **extra,
    }


async def run_command(
    argv: Sequence[str], *, timeout: float,  # noqa: ASYNC109 (kills the group on expiry)
    cwd: Path | None = None, env: Mapping[str, str] | None = None,
) -> tuple[int, str]:
    """The runtime's `run_command`, with its failures as TargetError."""
    try:
        return await processes.run_command(argv, timeout=timeout, cwd=cwd, env=env)
    except OSError as exc:
        raise TargetError(f"cannot run {argv[0]!r}: {exc.strerror or exc}") from exc
    except TimeoutError as exc:
        raise TargetError(str(exc)) from exc


# -- the command target ------------------------------------------------------------------------


class CommandDeployTarget:
    """kubectl, helm, ansible or scripts: one configured argument list per action."""

    def __init__(self, config: CommandTarget) -> None:
        self.config = config

    async def _run(self, action: str, template: Sequence[str], release: Release,
                   **extra: str | None) -> tuple[int, str]:
        argv = render_args(template, release_values(release, **extra))
        return await run_command(argv, timeout=self.config.timeout_seconds,
                                 cwd=self.config.workdir)

    async def _must(self, action: str, template: Sequence[str], release: Release,
                    **extra: str | None) -> None:
        code, out = await self._run(action, template, release, **extra)
        if code != 0:
            raise TargetError(f"{action} command exited with {code}: {out.strip()[-500:]}")

    async def deploy(self, env: Env, release: Release) -> None:
        await self._must("deploy", self.config.deploy, release, env=env.value)

    async def ready(self, env: Env, release: Release) -> Readiness:
        if self.config.ready is None:
            return Readiness(True, "no ready command configured")
        code, out = await self._run("ready", self.config.ready, release, env=env.value)
        return Readiness(code == 0, out.strip()[-300:] or f"exit {code}")

    async def stable_version(self, release: Release) -> str | None:
        return release.previous_version

    async def set_weight(self, release: Release, weight: int) -> None:
        await self._must("set_weight", self.config.set_weight, release, weight=str(weight))

    async def promote(self, release: Release) -> None:
        await self._must("promote", self.config.promote, release)

    async def rollback(self, release: Release) -> Restored:
        await self._must("rollback", self.config.rollback, release)
        return Restored(release.previous_version, time.monotonic())

    async def finish(self, release: Release) -> None:
        return None

    def staging_url(self) -> str | None:
        return self.config.staging_url

    async def close(self) -> None:
        return None


def make_target(policy: DeployPolicy, settings: RuntimeSettings) -> Target:
    """The adapter for a service's configured target; TargetError when there is none."""
    config = policy.target
    if config is None:
        raise TargetError("no deploy target is configured for this service "
                          "(services.<name>.deploy.target in guardians.yaml)")
    if isinstance(config, CommandTarget):
        return CommandDeployTarget(config)
    if isinstance(config, HttpTarget):
        from services.deploy.adapters.webhooks import HttpDeployTarget

        return HttpDeployTarget(config)
    assert isinstance(config, LocalTarget)
    from services.deploy.adapters.local import LocalDeployTarget

    return LocalDeployTarget(config, settings)
