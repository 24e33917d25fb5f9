"""`guardians keys`: signing keys for CI, people and the guardians."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

keys_app = typer.Typer(help="Ed25519 signing keys for commands (change.submitted, reviews...).")


@keys_app.command("init")
def init(
    folder: Annotated[Path, typer.Argument(help="Where to keep the keys.")] = Path(".cache/keys"),
) -> None:
    """Create a key for each producer that lacks one, and the trusted-keys file.

    Example: guardians keys init .cache/keys
    """
    from services.runtime.keyring import PRODUCERS, ensure_keyring  # keep `guardians` quick

    trusted = ensure_keyring(folder)
    typer.echo(f"keys for {', '.join(PRODUCERS)} in {folder}; trusted keys: {trusted}")


def register(app: typer.Typer) -> None:
    app.add_typer(keys_app, name="keys")
