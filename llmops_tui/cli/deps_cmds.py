"""`llmops deps`: the packages a use case's flows need, and installing the missing ones."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.table import Table

from llmops_tui.cli.common import JsonOpt, WorkspaceOpt, console, err_console, print_json
from llmops_tui.core.errors import RunFailed
from llmops_tui.core.files import rel


def register(app: typer.Typer) -> None:
    app.command("deps")(deps_cmd)


def deps_cmd(
    use_case: Annotated[str, typer.Argument(help="Use case whose flows' requirements to check.")],
    workspace: WorkspaceOpt = Path("."),
    install: Annotated[
        bool, typer.Option("--install", help="pip install -r each requirements file with missing packages.")
    ] = False,
    dry_run: Annotated[
        bool, typer.Option("--dry-run", help="With --install: print the commands only.")
    ] = False,
    json_out: JsonOpt = False,
) -> None:
    """List the packages each flow of USE_CASE names in its requirements.txt, installed or missing.

    With --install, missing packages are installed into the environment llmops runs in (the one that runs
    the flows). Exit code 1 when packages are still missing (or pip failed), 0 when all are installed."""
    from llmops_tui.core.flowcheck import requirement_status, requirements_file
    from llmops_tui.core.workspace import load_workspace

    ws = load_workspace(workspace, inspect_datasets=False)
    uc = ws.get(use_case)
    flows = [("standard", uc.standard_flow)] + [(f"evaluator {e.name}", e.flow) for e in uc.evaluators]
    files: list[dict[str, Any]] = []
    for role, flow in flows:
        if flow is None:
            continue
        req = requirements_file(flow.path)
        if req is None:
            continue
        packages = [{"name": n, "installed": ok} for n, ok in requirement_status(req)]
        files.append({"flow": role, "file": rel(req, ws.root), "path": str(req), "packages": packages})
    missing_files = [f for f in files if any(not p["installed"] for p in f["packages"])]
    commands = [[sys.executable, "-m", "pip", "install", "-r", f["path"]] for f in missing_files]
    if install and not dry_run:
        for cmd in commands:
            err_console.print(f"running: {' '.join(cmd)}", markup=False)
            if subprocess.run(cmd).returncode != 0:
                raise RunFailed(f"pip could not install {cmd[-1]} (see its output above)")
        for f in missing_files:
            f["packages"] = [{"name": n, "installed": ok} for n, ok in requirement_status(Path(f["path"]))]
    missing = sorted({p["name"] for f in files for p in f["packages"] if not p["installed"]})
    if json_out:
        print_json(
            {
                "use_case": uc.name,
                "files": [{k: v for k, v in f.items() if k != "path"} for f in files],
                "missing": missing,
                "install_commands": [" ".join(c) for c in commands] if missing else [],
            }
        )
    elif not files:
        console.print(f"no requirements files in the flows of {uc.name}")
    else:
        table = Table(title=f"Flow packages of {uc.name}")
        for col in ("flow", "requirements file", "package", "installed"):
            table.add_column(col, overflow="fold")
        for f in files:
            for p in f["packages"]:
                table.add_row(
                    f["flow"], f["file"], p["name"], "yes" if p["installed"] else "[red]missing[/red]"
                )
        console.print(table)
        if missing:
            console.print(f"missing: {', '.join(missing)}")
            if install and dry_run or not install:
                for cmd in commands:
                    console.print(
                        ("would run: " if install else "install with: ") + " ".join(cmd), markup=False
                    )
    if missing and not (install and dry_run):
        raise typer.Exit(1)
