"""`llmops`: the headless command line. Thin commands over core/ and deploy/; rich output lives here only.

Each command group is a module in this package with a ``register(app)`` function, so features can be
added without touching each other. ``registry.COMMANDS`` says which module defines each command: `llmops X`
imports X's module alone, and `llmops --help` lists every command from that table without importing any.
Errors for people (``LlmopsError``) print one line and exit 2; ``--debug`` (or ``LLMOPS_DEBUG=1``) shows
the traceback instead.
"""

from __future__ import annotations

import os
import sys

import typer

from llmops_tui import __version__
from llmops_tui.cli.registry import CommandModuleError, LazyCommands
from llmops_tui.core.errors import LlmopsError, RunFailed

app = typer.Typer(
    name="llmops",
    cls=LazyCommands,
    help="LLMOps on Prompt flow: browse use cases, sweep variants, compare, approve and deploy.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    context_settings={"help_option_names": ["-h", "--help"]},
)

_state = {"debug": False}


def _version(value: bool) -> None:
    if value:
        print(f"llmops {__version__}")
        raise typer.Exit(0)


@app.callback()
def _root(
    debug: bool = typer.Option(False, "--debug", help="Show full tracebacks for errors."),
    version: bool = typer.Option(
        False, "--version", callback=_version, is_eager=True, help="Show the version."
    ),
) -> None:
    _state["debug"] = debug or os.environ.get("LLMOPS_DEBUG") == "1"


def main(argv: list[str] | None = None) -> int:
    """Entry point of the `llmops` console script (``argv=None``: the process's own arguments, and the
    process ends quickly once the command is done)."""
    if argv is None:
        _exit_quickly(_main(list(sys.argv[1:])))
        return 0  # not reached
    return _main(list(argv))


def _exit_quickly(code: int) -> None:
    """End a process that ran flows without tearing the interpreter down: Prompt flow's import graph
    (thousands of modules, OpenTelemetry processors) takes 1.5-3 s to dismantle, for nothing. Output is
    flushed and log handlers closed first; the run store was closed by the command itself."""
    if "promptflow" not in sys.modules:
        sys.exit(code)
    import logging

    logging.shutdown()
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except (OSError, ValueError):
            pass
    os._exit(code)


def _main(args: list[str]) -> int:
    debug = "--debug" in args or os.environ.get("LLMOPS_DEBUG") == "1"
    try:
        rc = app(args=args, prog_name="llmops", standalone_mode=False)
        if isinstance(rc, int):
            return rc
    except typer.Exit as exc:
        return exc.exit_code
    except LlmopsError as exc:
        if debug:
            raise
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except (RunFailed, CommandModuleError) as exc:
        if debug:
            raise
        print(f"error: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    except Exception as exc:  # click usage errors and the unexpected
        import click

        # typer ships its own copy of click: its exceptions are not the installed click's.
        aborts: tuple[type, ...] = (click.exceptions.Abort, typer.Abort)
        usage: tuple[type, ...] = (click.ClickException,)
        try:
            from typer._click.exceptions import ClickException as TyperClickException

            usage += (TyperClickException,)
        except ImportError:
            pass
        if isinstance(exc, aborts):
            print("aborted", file=sys.stderr)
            return 130
        if isinstance(exc, usage):
            exc.show()  # type: ignore[attr-defined]
            return 2
        if debug:
            raise
        print(
            f"error: {type(exc).__name__}: {exc} (run again with --debug for the traceback)", file=sys.stderr
        )
        return 1
    return 0


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
