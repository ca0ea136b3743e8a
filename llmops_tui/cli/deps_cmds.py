"""`llmops deps`: the packages a use case's flows need, and installing the missing ones."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.table import Table

from llmops_tui.cli.common import JsonOpt, WorkspaceOpt, console, err_console, print_json
from llmops_tui.core.errors import LlmopsError, RunFailed
from llmops_tui.core.files import rel


def register(app: typer.Typer) -> None:
    app.command("deps")(deps_cmd)


def deps_cmd(
    use_case: Annotated[
        str | None, typer.Argument(help="Use case whose flows' requirements to check.")
    ] = None,
    workspace: WorkspaceOpt = Path("."),
    backend: Annotated[
        str | None,
        typer.Option(
            "--backend",
            help="Check (or with --install, install) what a backend needs: agent-framework.",
        ),
    ] = None,
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
    the flows). Exit code 1 when packages are still missing (or pip failed), 0 when all are installed.

    --backend agent-framework checks the pinned Agent Framework packages instead (installed with pip's
    --no-deps: their declared OpenTelemetry floor conflicts with Prompt flow's cap; the pins are tested)."""
    if backend is not None:
        _backend_deps(backend, install=install, dry_run=dry_run, json_out=json_out)
        if use_case is None:
            return
    if use_case is None:
        raise LlmopsError("name a use case, or pass --backend", field="USE_CASE", hint="see llmops list")
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


def _backend_deps(backend: str, *, install: bool, dry_run: bool, json_out: bool) -> None:
    """The pinned packages of a backend: installed at the pinned version or not; --install pins them."""
    from importlib import metadata

    if backend != "agent-framework":
        raise LlmopsError(
            f"unknown backend '{backend}'",
            field="--backend",
            hint="agent-framework is the backend with packages",
        )
    from llmops_tui.core.backends.agent_framework import PINS

    def status() -> list[dict[str, Any]]:
        rows = []
        for pin in PINS:
            name, version = pin.split("==")
            try:
                have: str | None = metadata.version(name)
            except metadata.PackageNotFoundError:
                have = None
            rows.append({"name": name, "pinned": version, "installed": have, "ok": have == version})
        return rows

    rows = status()
    command = [sys.executable, "-m", "pip", "install", "--no-deps", *PINS]
    if install and not dry_run and not all(r["ok"] for r in rows):
        err_console.print(f"running: {' '.join(command)}", markup=False)
        if subprocess.run(command).returncode != 0:
            raise RunFailed("pip could not install the agent-framework packages (see its output above)")
        rows = status()
    missing = [r["name"] for r in rows if not r["ok"]]
    if json_out:
        print_json(
            {"backend": backend, "packages": rows, "missing": missing, "install_command": " ".join(command)}
        )
    else:
        table = Table(title=f"Packages of the {backend} backend")
        for col in ("package", "pinned", "installed"):
            table.add_column(col)
        for r in rows:
            shown = r["installed"] or "[red]missing[/red]"
            table.add_row(
                r["name"], r["pinned"], shown if r["ok"] else f"[red]{r['installed'] or 'missing'}[/red]"
            )
        console.print(table)
        if missing:
            console.print(("would run: " if install else "install with: ") + " ".join(command), markup=False)
    if missing and not (install and dry_run):
        raise typer.Exit(1)
