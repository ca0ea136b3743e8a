"""`llmops demo [DIR]`: copy the bundled use cases out of the installed tool, to try it offline."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from llmops_tui.cli.common import JsonOpt, console, print_json


def register(app: typer.Typer) -> None:
    app.command("demo")(demo_cmd)


def demo_cmd(
    folder: Annotated[
        Path, typer.Argument(help="Where to put the demo workspace (default: ./llmops-demo).")
    ] = Path("llmops-demo"),
    force: Annotated[bool, typer.Option("--force", help="Replace use case folders already there.")] = False,
    json_out: JsonOpt = False,
) -> None:
    """Copy the bundled use cases into FOLDER/use_cases, ready to sweep against the offline sandbox model."""
    from llmops_tui.core.demo import copy_demo

    written = copy_demo(folder, force=force)
    if json_out:
        print_json({"workspace": str(folder.resolve()), "written": [str(p) for p in written]})
        return
    for path in written:
        console.print(f"wrote {path}/", markup=False)
    names = [p.name for p in written]
    first = "support_ticket_classification" if "support_ticket_classification" in names else names[0]
    console.print(
        "\nNext (offline, no API key):\n"
        f"  cd {folder}\n"
        "  llmops list\n"
        f"  llmops sweep {first} --llm-endpoint sandbox\n"
        "  llmops-tui --llm-endpoint sandbox",
        markup=False,
    )
