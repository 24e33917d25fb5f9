"""The `local` deploy target: real processes on this machine, production behind nginx.

Staging runs on its own port. Production has two slots (blue and green ports) behind an
nginx upstream; a canary starts in the slot the stable version does not use and gets its
share of traffic through the upstream's weights, set by rewriting the service's site file
and reloading nginx. After promotion the previous version keeps running in its slot, with
no traffic, until production monitoring has passed: an emergency rollback is then one
rewrite and one reload, not a cold start.

Which slot runs what lives in a JSON file per service under the state directory, written
atomically after every change, so a restarted guardian finds its instances (they run in
their own session and survive the guardian). Every instance is listed for Prometheus in a
file_sd file with the labels the analysis queries use: service, version, track (stable,
canary, staging, previous), env and slot.

Each site file serves `/__guardians/generation`; after a reload the target waits until
nginx answers with the new generation, so "the weight is set" means new requests are
split the new way, which is what the rollback time measures.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import signal
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import httpx
import psutil

from services.deploy.adapters.targets import (
    Env,
    Readiness,
    Release,
    Restored,
    TargetError,
    release_values,
    render_args,
    run_command,
)
from services.runtime.config import LocalTarget
from services.runtime.settings import RuntimeSettings

log = logging.getLogger(__name__)
SLOTS = ("blue", "green")
STOP_GRACE_S = 5.0
RELOAD_CONFIRM_S = 10.0
LOG_TAIL = 1500


@dataclass
class Instance:
    version: str
    artifact: str | None
    change_id: str
    port: int
    pid: int
    started: float
    """psutil's create_time, so a recycled pid is not taken for our instance."""
    log_file: str


@dataclass
class ServiceState:
    slots: dict[str, Instance | None] = field(default_factory=lambda: dict.fromkeys(SLOTS))
    stable: str | None = None
    canary: str | None = None
    previous: str | None = None
    """The slot of the version before the last promotion, kept idle for a fast rollback."""
    weight: int = 0
    staging: Instance | None = None
    retired: dict[str, str | None] | None = None
    """The last version retired by `finish` (version, artifact): what a later rollback of a
    completed release starts again."""
    generation: int = 0

    def to_json(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_json(cls, raw: dict[str, Any]) -> ServiceState:
        def inst(value: dict[str, Any] | None) -> Instance | None:
            return Instance(**value) if value else None

        return cls(
            slots={name: inst(raw.get("slots", {}).get(name)) for name in SLOTS},
            stable=raw.get("stable"), canary=raw.get("canary"), previous=raw.get("previous"),
            weight=int(raw.get("weight", 0)), staging=inst(raw.get("staging")),
            retired=raw.get("retired"), generation=int(raw.get("generation", 0)),
        )


def _alive(instance: Instance | None) -> bool:
    if instance is None:
        return False
    try:
        proc = psutil.Process(instance.pid)
        return (abs(proc.create_time() - instance.started) < 1.0
                and proc.status() != psutil.STATUS_ZOMBIE)
    except psutil.Error:
        return False


class LocalDeployTarget:
    def __init__(self, config: LocalTarget, settings: RuntimeSettings) -> None:
        self.config = config
        self.settings = settings
        self.state_dir = Path(settings.state_dir).resolve() / "deploy"
        self.state_dir.mkdir(parents=True, exist_ok=True)
        self._http = httpx.AsyncClient(timeout=2.0)
        self._lock = asyncio.Lock()
        self._waiters: set[asyncio.Task[int]] = set()

    # -- state ---------------------------------------------------------------------------

    def _state_file(self, service: str) -> Path:
        return self.state_dir / f"{service}.json"

    def load(self, service: str) -> ServiceState:
        path = self._state_file(service)
        try:
            return ServiceState.from_json(json.loads(path.read_text()))
        except FileNotFoundError:
            return ServiceState()
        except (ValueError, TypeError, KeyError) as exc:
            raise TargetError(f"{path}: unreadable instance table: {exc}") from exc

    def _save(self, service: str, state: ServiceState) -> None:
        _write_atomic(self._state_file(service), json.dumps(state.to_json(), indent=1))

    # -- processes -----------------------------------------------------------------------

    async def _start(self, release: Release, env: str, slot: str, port: int) -> Instance:
        if _port_in_use(port):
            raise TargetError(f"port {port} ({env}/{slot}) is already in use by another "
                              f"process; cannot start {release.service} {release.version}")
        argv = render_args(self.config.command, release_values(
            release, port=str(port), env=env, slot=slot))
        log_file = self.state_dir / f"{release.service}-{slot}.log"
        with log_file.open("ab") as out:
            out.write(f"--- {time.strftime('%Y-%m-%dT%H:%M:%S')} start {release.version} "
                      f"({release.change_id}) on {port}\n".encode())
            try:
                proc = await asyncio.create_subprocess_exec(
                    *argv, stdout=out, stderr=out, stdin=asyncio.subprocess.DEVNULL,
                    cwd=self.config.workdir, start_new_session=True,
                    env={**os.environ, **self.config.env},
                )
            except OSError as exc:
                raise TargetError(f"cannot start {argv[0]!r}: {exc.strerror or exc}") from exc
        try:
            started = psutil.Process(proc.pid).create_time()
        except psutil.Error:
            started = time.time()
        # Reap the child when it exits; from now on it is tracked by pid (and survives us).
        waiter = asyncio.get_running_loop().create_task(proc.wait())
        self._waiters.add(waiter)
        waiter.add_done_callback(self._waiters.discard)
        log.info("started %s %s in %s/%s on port %d (pid %d)", release.service,
                 release.version, env, slot, port, proc.pid,
                 extra={"change_id": release.change_id})
        return Instance(release.version, release.artifact, release.change_id, port, proc.pid,
                        started, str(log_file))

    async def _stop(self, instance: Instance | None) -> None:
        if not _alive(instance):
            return
        assert instance is not None
        try:
            os.killpg(instance.pid, signal.SIGTERM)
        except ProcessLookupError:
            return
        deadline = time.monotonic() + STOP_GRACE_S
        while _alive(instance) and time.monotonic() < deadline:  # noqa: ASYNC110 (polls a pid)
            await asyncio.sleep(0.05)
        if _alive(instance):
            with contextlib.suppress(ProcessLookupError):
                os.killpg(instance.pid, signal.SIGKILL)

    # -- nginx and Prometheus --------------------------------------------------------------

    def _site(self, service: str, state: ServiceState) -> str:
        servers: list[tuple[int, int]] = []
        stable = state.slots[state.stable] if state.stable else None
        canary = state.slots[state.canary] if state.canary else None
        if stable is not None and state.weight < 100:
            servers.append((stable.port, 100 - state.weight if canary else 100))
        if canary is not None and state.weight > 0:
            servers.append((canary.port, state.weight if stable else 100))
        name = f"guardians_{service.replace('-', '_')}"
        upstream = "\n".join(f"    server 127.0.0.1:{port} weight={weight};"
                             for port, weight in servers)
        route = (f"proxy_pass http://{name};\n        proxy_http_version 1.1;\n"
                 f"        proxy_set_header Connection \"\";" if servers
                 else 'return 503 "no version of this service is deployed\\n";')
        upstream_block = (f"upstream {name} {{\n{upstream}\n    keepalive 16;\n}}\n"
                          if servers else "")
        return (
            f"# Written by the deploy guardian for {service}; generation {state.generation}.\n"
            f"{upstream_block}"
            f"server {{\n"
            f"    listen 127.0.0.1:{self.config.listen_port};\n"
            f"    location = /__guardians/generation {{\n"
            f"        default_type text/plain;\n"
            f"        return 200 \"{state.generation}\";\n"
            f"    }}\n"
            f"    location / {{\n        {route}\n    }}\n"
            f"}}\n"
        )

    async def _apply_routing(self, service: str, state: ServiceState) -> None:
        """Write the site and reload nginx; return once nginx serves the new generation."""
        s = self.settings
        if s.nginx_sites_dir is None:
            raise TargetError("GUARDIANS_NGINX_SITES_DIR is not set: the local target needs "
                              "the stack's nginx (stack/stack.sh up writes it)")
        state.generation += 1
        _write_atomic(Path(s.nginx_sites_dir) / f"{service}.conf", self._site(service, state))
        argv = [s.nginx_bin]
        if s.nginx_prefix is not None:
            argv += ["-p", str(s.nginx_prefix)]
        if s.nginx_conf is not None:
            argv += ["-c", str(s.nginx_conf)]
        code, out = await run_command([*argv, "-s", "reload"], timeout=15)
        if code != 0:
            raise TargetError(f"nginx reload failed ({code}): {out.strip()}")
        self._save(service, state)
        await self._confirm_generation(state.generation)
        self._write_targets(service, state)

    async def _confirm_generation(self, generation: int) -> None:
        url = f"http://127.0.0.1:{self.config.listen_port}/__guardians/generation"
        deadline = time.monotonic() + RELOAD_CONFIRM_S
        seen = "nothing"
        while time.monotonic() < deadline:
            try:
                response = await self._http.get(url)
                seen = response.text.strip()
                if response.status_code == 200 and seen == str(generation):
                    return
            except httpx.HTTPError as exc:
                seen = type(exc).__name__
            await asyncio.sleep(0.02)
        raise TargetError(f"nginx did not serve generation {generation} within "
                          f"{RELOAD_CONFIRM_S:g} s (last seen: {seen})")

    def _write_targets(self, service: str, state: ServiceState) -> None:
        directory = self.settings.prometheus_targets_dir
        if directory is None:
            return
        groups = []
        tracks = [(state.stable, "stable"), (state.canary, "canary"),
                  (state.previous, "previous")]
        for slot, track in tracks:
            instance = state.slots[slot] if slot else None
            if instance is not None:
                groups.append(_group(instance, service, track, "production", slot or ""))
        if state.staging is not None:
            groups.append(_group(state.staging, service, "staging", "staging", "staging"))
        _write_atomic(Path(directory) / f"{service}.json", json.dumps(groups, indent=1))

    # -- the Target interface -----------------------------------------------------------------

    async def deploy(self, env: Env, release: Release) -> None:
        async with self._lock:
            state = self.load(release.service)
            if env is Env.STAGING:
                if _runs(state.staging, release):
                    return
                await self._stop(state.staging)
                state.staging = await self._start(release, "staging", "staging",
                                                  self.config.staging_port)
                self._save(release.service, state)
                self._write_targets(release.service, state)
                return
            slot = state.canary or _free_slot(state)
            if _runs(state.slots[slot], release):
                return
            if slot == state.previous:
                state.previous = None  # the kept version gives way to the new canary
            await self._stop(state.slots[slot])
            port = self.config.slot_ports[SLOTS.index(slot)]
            state.slots[slot] = await self._start(release, "production", slot, port)
            state.canary = slot
            state.weight = 0
            self._save(release.service, state)
            self._write_targets(release.service, state)

    async def ready(self, env: Env, release: Release) -> Readiness:
        state = self.load(release.service)
        instance = (state.staging if env is Env.STAGING
                    else state.slots[state.canary] if state.canary else None)
        if instance is None or instance.change_id != release.change_id:
            return Readiness(False, f"{release.version} is not deployed to {env.value}",
                             final=True)
        if not _alive(instance):
            return Readiness(False, f"the process exited: {_tail(instance.log_file)}",
                             final=True)
        url = f"http://127.0.0.1:{instance.port}{self.config.ready_path}"
        try:
            response = await self._http.get(url)
        except httpx.HTTPError as exc:
            return Readiness(False, f"GET {url}: {type(exc).__name__}")
        if response.status_code == 200:
            return Readiness(True, f"GET {url}: 200")
        return Readiness(False, f"GET {url}: {response.status_code}")

    async def stable_version(self, release: Release) -> str | None:
        state = self.load(release.service)
        stable = state.slots[state.stable] if state.stable else None
        if stable is None or stable.change_id == release.change_id:
            return None
        return stable.version

    async def set_weight(self, release: Release, weight: int) -> None:
        async with self._lock:
            state = self.load(release.service)
            canary = state.slots[state.canary] if state.canary else None
            if canary is None or canary.change_id != release.change_id:
                raise TargetError(f"{release.version} is not the canary of "
                                  f"{release.service}; cannot set its weight")
            if state.weight == weight and state.generation > 0:
                await self._confirm_generation(state.generation)
                return
            state.weight = weight
            await self._apply_routing(release.service, state)

    async def promote(self, release: Release) -> None:
        async with self._lock:
            state = self.load(release.service)
            stable = state.slots[state.stable] if state.stable else None
            if stable is not None and stable.change_id == release.change_id:
                return  # promoted already
            canary = state.slots[state.canary] if state.canary else None
            if canary is None or canary.change_id != release.change_id:
                raise TargetError(f"{release.version} is not the canary of "
                                  f"{release.service}; cannot promote it")
            if state.previous is not None and state.previous != state.stable:
                await self._stop(state.slots[state.previous])
                state.slots[state.previous] = None
            state.previous, state.stable, state.canary = state.stable, state.canary, None
            state.weight = 0
            await self._apply_routing(release.service, state)

    async def rollback(self, release: Release) -> Restored:
        async with self._lock:
            state = self.load(release.service)
            canary = state.slots[state.canary] if state.canary else None
            stable = state.slots[state.stable] if state.stable else None
            if canary is not None and canary.change_id == release.change_id:
                # Before promotion: the stable version never stopped serving.
                assert state.canary is not None
                failed_slot = state.canary
                state.canary, state.weight = None, 0
                await self._apply_routing(release.service, state)
                switched = time.monotonic()
                await self._stop(canary)
                state.slots[failed_slot] = None
                self._save(release.service, state)
                self._write_targets(release.service, state)
                return Restored(stable.version if stable else None, switched)
            if stable is not None and stable.change_id == release.change_id:
                return await self._restore_previous(release, state)
            # Already out (a retried rollback): make sure nothing of it still runs.
            for slot, instance in state.slots.items():
                if instance is not None and instance.change_id == release.change_id:
                    await self._stop(instance)
                    state.slots[slot] = None
            await self._stop_staging_of(release, state)
            self._save(release.service, state)
            return Restored(stable.version if stable else None, time.monotonic())

    async def _restore_previous(self, release: Release, state: ServiceState) -> Restored:
        """After promotion: the kept previous version takes all traffic again, or, once
        retired, it is started again in the free slot first."""
        failed_slot = state.stable
        assert failed_slot is not None
        previous = state.slots[state.previous] if state.previous else None
        if not _alive(previous):
            if not state.retired:
                await self._stop_slot(release, state, failed_slot)
                return Restored(None, time.monotonic())
            old = Release(release.change_id + ":restore", release.service,
                          str(state.retired["version"]), state.retired.get("artifact"))
            slot = _free_slot(state)
            port = self.config.slot_ports[SLOTS.index(slot)]
            state.slots[slot] = await self._start(old, "production", slot, port)
            state.previous = slot
            self._save(release.service, state)
            await self._wait_instance_ready(state.slots[slot])
            previous = state.slots[slot]
        state.stable, state.previous, state.canary, state.weight = state.previous, None, None, 0
        await self._apply_routing(release.service, state)
        switched = time.monotonic()
        await self._stop_slot(release, state, failed_slot)
        return Restored(previous.version if previous else None, switched)

    async def _stop_slot(self, release: Release, state: ServiceState, slot: str) -> None:
        await self._stop(state.slots[slot])
        state.slots[slot] = None
        if state.stable == slot:
            state.stable = None
            await self._apply_routing(release.service, state)
        self._save(release.service, state)
        self._write_targets(release.service, state)

    async def _stop_staging_of(self, release: Release, state: ServiceState) -> None:
        if state.staging is not None and state.staging.change_id == release.change_id:
            await self._stop(state.staging)
            state.staging = None
            self._save(release.service, state)
            self._write_targets(release.service, state)

    async def _wait_instance_ready(self, instance: Instance | None) -> None:
        assert instance is not None
        url = f"http://127.0.0.1:{instance.port}{self.config.ready_path}"
        deadline = time.monotonic() + self.config.ready_timeout_seconds
        while time.monotonic() < deadline:
            if not _alive(instance):
                raise TargetError(f"{instance.version} exited while being restored: "
                                  f"{_tail(instance.log_file)}")
            with contextlib.suppress(httpx.HTTPError):
                if (await self._http.get(url)).status_code == 200:
                    return
            await asyncio.sleep(0.1)
        raise TargetError(f"{instance.version} was not ready within "
                          f"{self.config.ready_timeout_seconds:g} s while being restored")

    async def finish(self, release: Release) -> None:
        async with self._lock:
            state = self.load(release.service)
            previous = state.slots[state.previous] if state.previous else None
            if previous is not None:
                state.retired = {"version": previous.version, "artifact": previous.artifact}
                await self._stop(previous)
                assert state.previous is not None
                state.slots[state.previous] = None
            state.previous = None
            await self._stop_staging_of(release, state)
            self._save(release.service, state)
            self._write_targets(release.service, state)

    def staging_url(self) -> str | None:
        return f"http://127.0.0.1:{self.config.staging_port}"

    async def close(self) -> None:
        await self._http.aclose()

    async def teardown(self, service: str) -> None:
        """Stop every instance of the service and remove its site (make run's Ctrl-C, tests)."""
        state = self.load(service)
        for instance in [*state.slots.values(), state.staging]:
            await self._stop(instance)
        s = self.settings
        if s.nginx_sites_dir is not None:
            with contextlib.suppress(FileNotFoundError):
                (Path(s.nginx_sites_dir) / f"{service}.conf").unlink()
        if s.prometheus_targets_dir is not None:
            with contextlib.suppress(FileNotFoundError):
                (Path(s.prometheus_targets_dir) / f"{service}.json").unlink()
        with contextlib.suppress(FileNotFoundError):
            self._state_file(service).unlink()


def _runs(instance: Instance | None, release: Release) -> bool:
    return (instance is not None and instance.change_id == release.change_id
            and _alive(instance))


def _free_slot(state: ServiceState) -> str:
    """The slot the stable version does not use (blue for a first release)."""
    if state.stable is None:
        return SLOTS[0]
    return SLOTS[1 - SLOTS.index(state.stable)]


def _group(instance: Instance, service: str, track: str, env: str, slot: str
           ) -> dict[str, Any]:
    return {"targets": [f"127.0.0.1:{instance.port}"],
            "labels": {"service": service, "version": instance.version, "track": track,
                       "env": env, "slot": slot}}


def _port_in_use(port: int) -> bool:
    import socket

    with socket.socket() as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind(("127.0.0.1", port))
        except OSError:
            return True
    return False


def _tail(path: str) -> str:
    try:
        with Path(path).open("rb") as f:
            f.seek(0, os.SEEK_END)
            f.seek(max(0, f.tell() - LOG_TAIL))
            text = f.read().decode(errors="replace")
    except OSError:
        return "(no log)"
    lines = [line for line in text.splitlines() if line.strip()]
    return " | ".join(lines[-3:]) or "(empty log)"


def _write_atomic(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    tmp.write_text(text)
    tmp.replace(path)

