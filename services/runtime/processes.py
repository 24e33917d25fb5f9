"""Running external tools: argument lists only, never a shell string built from data.

Each command runs in its own session with a timeout; on expiry (or cancellation) the whole
process group is killed, so a hung script's children go too. The output tail comes back for
error messages; callers redact anything secret before logging it.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
from collections.abc import Mapping, Sequence
from pathlib import Path

OUTPUT_TAIL = 2000
"""How much of a command's output is kept (the end is what explains a failure)."""


async def run_command(
    argv: Sequence[str], *, timeout: float,  # noqa: ASYNC109 (kills the group on expiry)
    cwd: Path | None = None, env: Mapping[str, str] | None = None,
) -> tuple[int, str]:
    """Run an argument list (no shell) with a timeout; returns (exit code, output tail).

    On timeout the whole process group is killed, so a hung script's children go too."""
    proc = await asyncio.create_subprocess_exec(  # OSError: the program cannot run
        *argv, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT,
        stdin=asyncio.subprocess.DEVNULL, cwd=cwd, start_new_session=True,
        env={**os.environ, **env} if env else None,
    )
    try:
        out, _ = await asyncio.wait_for(proc.communicate(), timeout)
    except TimeoutError:
        _kill_group(proc.pid)
        await proc.wait()
        raise TimeoutError(f"{argv[0]!r} did not finish within {timeout:g} s") from None
    except asyncio.CancelledError:
        _kill_group(proc.pid)
        raise
    text = out.decode(errors="replace")
    assert proc.returncode is not None
    return proc.returncode, text[-OUTPUT_TAIL:]


def _kill_group(pid: int) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.killpg(pid, 9)
