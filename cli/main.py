"""`guardians`: one command, subcommands registered by their modules."""

from __future__ import annotations

import typer

app = typer.Typer(
    name="guardians",
    help="Infra Guardians: release safety for services with database changes.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)


def _register() -> None:
    # Each module adds its commands; importing them here keeps `cli.main:app` the one entry.
    from cli import keys, lint, verify

    keys.register(app)
    lint.register(app)
    verify.register(app)


_register()

if __name__ == "__main__":
    app()
