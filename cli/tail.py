"""`guardians tail [TOPIC...]`: the pipeline's events as they happen, one readable line each.

What a person watches while a release goes through (or a script follows, with
`--format json`: one JSON object a line; times in UTC). It reads beside the guardians
without a consumer group (cli/topic_reader.py), from the end of each topic, or from the
beginning with `--from-beginning`; by default every topic of the registry (not the
dead-letter topics, which are named to be read: `guardians tail change.submitted.dlq`,
whose lines say who rejected the message and why). `--change` and `--service` filter on
the event's fields, its key and its subject, so `--change` also shows the health and
incident events that name the change. The summaries are cli/timeline.py's, the same as
`guardians replay` prints.

Ctrl-C (or SIGTERM) stops it between batches, cleanly, with exit 0; a closed pipe
(`guardians tail | head`) ends it quietly.
"""

from __future__ import annotations

import json
import os
import sys
from datetime import UTC
from enum import StrEnum
from typing import TYPE_CHECKING, Annotated, Any

import typer

if TYPE_CHECKING:
    from cli.topic_reader import Assigned, Message


class OutputFormat(StrEnum):
    TEXT = "text"
    JSON = "json"


def line_of(message: Message, output: OutputFormat) -> str:
    """The message as one text line or one JSON object."""
    if output is OutputFormat.JSON:
        envelope = message.envelope
        document: dict[str, Any] = {
            "time": message.time.isoformat(), "topic": message.topic,
            "partition": message.partition, "offset": message.offset, "key": message.key,
            "subject": message.subject, "type": envelope.type if envelope else None,
            "id": envelope.id if envelope else None,
            "signer": envelope.signer if envelope else None,
            "summary": message.summary(),
            "value": message.value if message.value is not None else message.raw,
        }
        if "dlq_reason" in message.headers:
            document["dead_letter"] = {k.removeprefix("dlq_"): v
                                       for k, v in message.headers.items()
                                       if k.startswith("dlq_")}
        return json.dumps(document, ensure_ascii=False)
    stamp = message.time.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S.%f")[:-3]
    return f"{stamp} {message.topic:26} {message.subject:24} {message.summary()}"


def _write(text: str) -> None:
    sys.stdout.write(text + "\n")
    sys.stdout.flush()  # a pipe is block-buffered: a follower must see each line now


async def _tail(topics: list[str], change: str | None, service: str | None,
                from_beginning: bool, output: OutputFormat) -> None:
    import asyncio
    import signal

    from cli.topic_reader import bootstrap_server, follow

    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)

    def emit(message: Message) -> None:
        if change is not None and not message.about_change(change):
            return
        if service is not None and not message.about_service(service):
            return
        _write(line_of(message, output))

    def ready(assigned: Assigned) -> None:
        if assigned.missing:
            typer.echo(f"guardians tail: not on the broker (yet), not followed: "
                       f"{', '.join(assigned.missing)}", err=True)
        where = "beginning" if from_beginning else "end"
        typer.echo(f"guardians tail: following {len(topics) - len(assigned.missing)} topics "
                   f"from the {where}; Ctrl-C stops", err=True)

    await follow(bootstrap_server(), topics, from_beginning=from_beginning, emit=emit,
                 stop=stop, ready=ready)


def command(
    topics: Annotated[list[str] | None, typer.Argument(
        help="Topics to follow (registered topics or their .dlq; default: every registered "
             "topic).", show_default=False)] = None,
    change: Annotated[str | None, typer.Option(
        "--change", "-c", help="Only this change's events (its id in the event, key or "
                               "subject).")] = None,
    service: Annotated[str | None, typer.Option(
        "--service", "-s", help="Only this managed service's events.")] = None,
    from_beginning: Annotated[bool, typer.Option(
        "--from-beginning", help="Start at the oldest retained event, not at the end.")
    ] = False,
    output: Annotated[OutputFormat, typer.Option(
        "--format", help="text (one line an event) or json (one JSON object a line).")
    ] = OutputFormat.TEXT,
) -> None:
    """Follow the pipeline's events live: time, topic, subject and what each says.

    Example: guardians tail --change shop-2.4.0-1a2b3c --from-beginning
    """
    import asyncio
    import logging

    from cli.topic_reader import ReadError, check_topics, registry_topics

    logging.getLogger("aiokafka").addHandler(logging.NullHandler())
    try:
        chosen = check_topics(topics) if topics else registry_topics()
    except ValueError as exc:
        typer.echo(f"guardians tail: {exc}", err=True)
        raise typer.Exit(2) from exc
    try:
        asyncio.run(_tail(chosen, change, service, from_beginning, output))
    except ReadError as exc:
        typer.echo(f"guardians tail: {exc}", err=True)
        raise typer.Exit(2) from exc
    except KeyboardInterrupt:  # a second Ctrl-C while stopping
        pass
    except BrokenPipeError:
        # Python flushes stdout again at exit; point it at /dev/null so that fails quietly.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())


def register(app: typer.Typer) -> None:
    app.command("tail")(command)
