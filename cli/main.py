"""`guardians`: one command, subcommands registered by their modules.

`app` is the typer application (`guardians = "cli.main:app"`), built on first use so that
importing this module stays cheap. `main` is what `python -m cli.main` runs: an ordinary
`guardians lint` command line is read by `cli.lint.plain_arguments` and run without loading
typer (whose start-up, with the pydantic adapters it builds for every parameter, costs more
than linting a few hundred migrations); everything else goes to `app`.
"""

from __future__ import annotations

import os
import sys

TYPE_CHECKING = False  # importing `typing` costs more than a small `guardians lint` run

if TYPE_CHECKING:
    import typer

    from cli.lint import LintArguments

_app: typer.Typer | None = None


def build_app() -> typer.Typer:
    """The typer application with every subcommand (built once)."""
    global _app
    if _app is None:
        import typer

        from cli import (
            backup,
            config,
            incident,
            keys,
            lint,
            replay,
            review,
            rollout,
            status,
            submit,
            tail,
            verify,
        )

        app = typer.Typer(
            name="guardians",
            help="Infra Guardians: release safety for services with database changes.",
            no_args_is_help=True,
            add_completion=False,
            pretty_exceptions_enable=False,
        )
        # Each module adds its commands; `cli.main:app` stays the one entry.
        keys.register(app)
        lint.register(app)
        verify.register(app)
        config.register(app)
        rollout.register(app)
        backup.register(app)
        incident.register(app)
        replay.register(app)
        submit.register(app)
        status.register(app)
        tail.register(app)
        review.register(app)
        _app = app
    return _app


def __getattr__(name: str) -> typer.Typer:
    if name == "app":
        return build_app()
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def main(argv: list[str] | None = None) -> None:
    """Run `guardians` with `argv` (default: the process' arguments) and exit."""
    args = sys.argv[1:] if argv is None else argv
    if args[:1] == ["lint"]:
        from cli import lint

        arguments = lint.plain_arguments(args[1:])
        if arguments is not None:
            code = _run_plain_lint(arguments)
            if argv is None:
                _exit_now(code)
            sys.exit(code)
    build_app()(args)


def _exit_now(code: int) -> None:
    """End the `guardians lint` process without the interpreter's teardown (freeing every
    module and object, a few ms of a lint run that has nothing left to do), as mypy does: the
    output is flushed first, and nothing registered to run at exit is this command's."""
    try:
        sys.stdout.flush()
        sys.stderr.flush()
    except BrokenPipeError:
        code = 1
    os._exit(code)


def _run_plain_lint(arguments: LintArguments) -> int:
    """`cli.lint.run`, ending as typer ends a command: Ctrl-C exits 130, and a closed
    stdout (`guardians lint ... | head`) exits 1 without a traceback."""
    import gc

    from cli import lint

    # A short-lived process: what it builds (parse trees, findings) is freed by reference
    # counting or at exit, and the cyclic collector would only re-scan the objects of the
    # imported modules, over and over (~2 % of the run).
    gc.disable()
    try:
        return lint.run(arguments)
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:
        # Python flushes stdout again at exit; point it at /dev/null so that fails quietly.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 1


if __name__ == "__main__":
    main()
