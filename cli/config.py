"""`guardians config validate FILE`: check guardians.yaml before the guardians read it."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

config_app = typer.Typer(help="guardians.yaml: per-service policies.")


@config_app.command("validate")
def validate(
    path: Annotated[Path, typer.Argument(help="The guardians.yaml to check.")] = Path(
        "guardians.yaml"
    ),
) -> None:
    """Exit 0 when the file is valid; else print what is wrong, naming the key, and exit 2.

    Example: guardians config validate guardians.yaml
    """
    from services.runtime.config import ConfigError, load_config

    try:
        config = load_config(path)
    except ConfigError as error:
        typer.echo(f"invalid: {error}", err=True)
        raise typer.Exit(2) from None
    from services.deploy.domain.analysis import template_problems

    problems = [f"services.{service}.deploy.analysis.{name}: {problem}"
                for service, managed in sorted(config.services.items())
                for name, template in sorted(managed.deploy.analysis.items())
                for problem in template_problems(template)]
    if problems:
        typer.echo(f"invalid: {path}: " + "; ".join(problems), err=True)
        raise typer.Exit(2)
    names = ", ".join(sorted(config.services)) or "none (every service gets the defaults)"
    typer.echo(f"{path}: valid; managed services: {names}")


def register(app: typer.Typer) -> None:
    app.add_typer(config_app, name="config")
