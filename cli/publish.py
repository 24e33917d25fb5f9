"""Publishing a command from the CLI: signed with the caller's key, sent with acks=all.

The key comes from the environment, as for the guardians: GUARDIANS_SIGNER names the
producer and GUARDIANS_SIGNING_KEY holds its Ed25519 seed (or GUARDIANS_SIGNING_KEY_FILE a
file with it, e.g. `.cache/keys/ops.key` from `guardians keys init`). The key is never
printed. A command the guardians would reject (no key) is refused here, before sending.
"""

from __future__ import annotations

import asyncio
import os
from pathlib import Path

from schemas.base import Event
from schemas.envelope import Envelope
from schemas.signing import SigningKey


class PublishError(Exception):
    """The command could not be signed or sent; the message says why."""


def signing_key(signer: str | None = None) -> SigningKey:
    name = signer or os.environ.get("GUARDIANS_SIGNER")
    seed = os.environ.get("GUARDIANS_SIGNING_KEY")
    key_file = os.environ.get("GUARDIANS_SIGNING_KEY_FILE")
    if not seed and key_file:
        try:
            seed = Path(key_file).read_text().strip()
        except OSError as exc:
            raise PublishError(f"GUARDIANS_SIGNING_KEY_FILE {key_file}: {exc.strerror}") from exc
    if not name or not seed:
        raise PublishError("commands are signed: set GUARDIANS_SIGNER and GUARDIANS_SIGNING_KEY"
                           " (or GUARDIANS_SIGNING_KEY_FILE); `guardians keys init` makes keys")
    try:
        return SigningKey.from_text(name, seed)
    except ValueError as exc:
        raise PublishError(f"the signing key of {name!r} is not valid: {exc}") from exc


async def send(bootstrap: str, event: Event, key: SigningKey) -> Envelope:
    """Sign `event` with `key` and send it (acks=all); returns its envelope."""
    from aiokafka import AIOKafkaProducer

    from schemas.topics import REGISTRY

    spec = REGISTRY.of(type(event))
    subject = spec.key_of(event)
    value = event.model_dump_json().encode()
    envelope = key.sign(Envelope(type=spec.ce_type, source=f"cli/{key.name}",
                                 subject=subject, correlation_id=subject), value)
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, acks="all",
                                enable_idempotence=True, request_timeout_ms=10_000)
    try:
        await producer.start()
        await producer.send_and_wait(spec.name, value=value, key=subject.encode(),
                                     headers=envelope.to_headers())
    except Exception as exc:
        raise PublishError(f"cannot publish to {bootstrap}: {exc}") from exc
    finally:
        await producer.stop()
    return envelope


def publish(event: Event, signer: str | None = None) -> Envelope:
    """Sign and send one command; returns its envelope (the id to follow it by)."""
    key = signing_key(signer)
    bootstrap = os.environ.get("GUARDIANS_KAFKA_BOOTSTRAP", "127.0.0.1:9092")
    return asyncio.run(send(bootstrap, event, key))


def send_command(event: Event, output: str, prog: str) -> Envelope:
    """What the command-sending subcommands share: publish, exit 2 naming `prog` when it
    cannot be signed or sent, and report the sent command as text or JSON."""
    import json

    import typer

    try:
        envelope = publish(event)
    except PublishError as exc:
        typer.echo(f"{prog}: {exc}", err=True)
        raise typer.Exit(2) from exc
    if output == "json":
        typer.echo(json.dumps({"id": envelope.id, "type": envelope.type,
                               "signer": envelope.signer,
                               "event": event.model_dump(mode="json")}))
    else:
        typer.echo(f"sent {envelope.type} {envelope.id} for {envelope.subject}, "
                   f"signed by {envelope.signer}")
    return envelope
