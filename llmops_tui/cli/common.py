"""Options and output helpers shared by every command module."""

from __future__ import annotations

import json
import os
import signal
import sys
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console

WorkspaceOpt = Annotated[
    Path,
    typer.Option(
        "--workspace", "-w", help="Workspace folder (default: the current directory).", show_default=False
    ),
]
JsonOpt = Annotated[bool, typer.Option("--json", help="Print one JSON object for machines.")]

console = Console(highlight=False, soft_wrap=True)
err_console = Console(stderr=True, highlight=False)


def print_json(obj: Any) -> None:
    """Print one JSON object on stdout (stable machine interface)."""
    sys.stdout.write(json.dumps(obj, indent=2, default=str, ensure_ascii=False) + "\n")
    sys.stdout.flush()


@contextmanager
def stdout_for_json(active: bool = True) -> Iterator[None]:
    """Keep stdout for the one JSON object: while active, anything written to file descriptor 1 (a flow's
    print, a library's warning, a child process) goes to stderr instead; on exit stdout is restored."""
    if not active:
        yield
        return
    sys.stdout.flush()
    saved = os.dup(1)
    try:
        os.dup2(2, 1)
        yield
    finally:
        try:
            sys.stdout.flush()
        except (OSError, ValueError):
            pass
        os.dup2(saved, 1)
        os.close(saved)


@contextmanager
def sigint_cancels(cancel: threading.Event) -> Iterator[None]:
    """While active, the first Ctrl-C sets ``cancel`` (the lines in flight finish, the run ends
    cancelled and resumable) and says so; a second one stops at once (KeyboardInterrupt)."""
    interrupts = 0

    def on_sigint(signum: int, frame: Any) -> None:
        nonlocal interrupts
        interrupts += 1
        if interrupts > 1:
            raise KeyboardInterrupt
        cancel.set()
        err_console.print("[yellow]cancelling: finishing lines in flight (Ctrl-C again to stop now)[/yellow]")

    previous = signal.signal(signal.SIGINT, on_sigint)
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, previous)


STATUS_STYLE = {
    "completed": "green",
    "completed_with_errors": "yellow",
    "failed": "red",
    "cancelled": "yellow",
    "interrupted": "magenta",
    "running": "cyan",
}


def styled_status(status: str | None) -> str:
    """A run status in its colour, for rich output."""
    status = status or "?"
    return f"[{STATUS_STYLE.get(status, 'white')}]{status}[/]"
