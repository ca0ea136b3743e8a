"""`llmops list` and `llmops show`: what the workspace holds. Never imports promptflow."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.markup import escape
from rich.table import Table
from rich.tree import Tree

from llmops_tui.cli.common import JsonOpt, WorkspaceOpt, console, err_console, print_json
from llmops_tui.core.errors import LlmopsError
from llmops_tui.core.workspace import load_workspace, use_case_to_dict


def register(app: typer.Typer) -> None:
    app.command("list")(list_cmd)
    app.command("show")(show_cmd)


def list_cmd(
    workspace: WorkspaceOpt = Path("."),
    env: Annotated[str | None, typer.Option("--env", help="Environment overlay to apply.")] = None,
    json_out: JsonOpt = False,
    strict: Annotated[
        bool, typer.Option("--strict", help="Treat warnings (ignored mappings, ...) as errors: exit 2.")
    ] = False,
) -> None:
    """List use cases with their flows, variants per node, datasets and evaluators."""
    ws = load_workspace(workspace, env=env)
    if json_out:
        print_json(
            {
                "workspace": str(ws.root),
                "layout": ws.layout,
                "use_cases": [use_case_to_dict(uc, ws.root) for uc in ws.use_cases if uc.ok],
                "errors": [
                    {"use_case": uc.name, "path": use_case_to_dict(uc, ws.root)["path"], **p.to_dict()}
                    for uc in ws.use_cases
                    for p in uc.problems
                ],
                "warnings": [
                    {"use_case": uc.name, "path": use_case_to_dict(uc, ws.root)["path"], **p.to_dict()}
                    for uc in ws.use_cases
                    for p in uc.warnings
                ],
            }
        )
    else:
        if not ws.use_cases:
            console.print(
                f"No use cases found in {ws.root} (looked for use_cases/*/experiment.yaml or llmops_config.json)."
            )
        table = Table(title=f"Use cases in {ws.root}", show_lines=True)
        # The name never wraps; the rest folds, so an 80-column terminal still reads well.
        table.add_column("use case", no_wrap=True)
        for col in ("variants", "datasets", "evaluators"):
            table.add_column(col, overflow="fold")
        for uc in ws.use_cases:
            if not uc.ok:
                continue
            flow = uc.standard_flow
            fmt = "experiment.yaml" if uc.format == "experiment_yaml" else "llmops_config.json"
            name = f"[b]{uc.name}[/b]\n[dim]{fmt}\nflow {uc.flow_source}[/dim]"
            variants = (
                "\n".join(f"{n}: {', '.join(v)}" for n, v in (flow.variants if flow else {}).items()) or "-"
            )
            datasets = (
                "\n".join(f"{d.name} ({d.rows if d.rows is not None else '?'} rows)" for d in uc.datasets)
                or "-"
            )
            evaluators = "\n".join(e.name for e in uc.evaluators) or "-"
            table.add_row(name, variants, datasets, evaluators)
        if any(uc.ok for uc in ws.use_cases):
            console.print(table)
        for uc in ws.use_cases:
            for p in uc.problems:
                err_console.print(
                    f"[red]error[/red] in use case {escape(uc.name)}: {escape(str(p))}",
                    markup=True,
                    soft_wrap=True,
                )
            for p in uc.warnings:
                label = "[red]error[/red] (--strict)" if strict else "[yellow]warning[/yellow]"
                err_console.print(
                    f"{label} in use case {escape(uc.name)}: {escape(str(p))}",
                    markup=True,
                    soft_wrap=True,
                )
    if any(not uc.ok for uc in ws.use_cases):
        raise typer.Exit(2)
    if strict and any(uc.warnings for uc in ws.use_cases):
        raise typer.Exit(2)


def show_cmd(
    use_case: Annotated[str, typer.Argument(help="Use case name (or folder name).")],
    workspace: WorkspaceOpt = Path("."),
    env: Annotated[str | None, typer.Option("--env", help="Environment overlay to apply.")] = None,
    json_out: JsonOpt = False,
) -> None:
    """Show the full model of one use case: flows, nodes, variants, datasets, mappings, connections."""
    ws = load_workspace(workspace, env=env)
    uc = ws.get(use_case)
    data = use_case_to_dict(uc, ws.root, full=True)
    if json_out:
        print_json(data)
    else:
        tree = Tree(f"[b]{uc.name}[/b]  ({uc.format}, {data['path']})")
        flow = data.get("flow")
        if flow:
            f = tree.add(f"standard flow [cyan]{flow['path']}[/cyan] ({flow['kind']})")
            f.add("inputs: " + ", ".join(flow.get("inputs", {})))
            f.add("outputs: " + ", ".join(flow.get("outputs", {})))
            if flow.get("chat"):
                f.add("chat flow (chat_history input)")
            if flow["kind"] in ("flex", "code"):
                f.add(f"entry: {flow.get('entry') or '-'}")
                for pname, spec in (flow.get("init") or {}).items():
                    f.add(f"init {pname} [dim]{spec.get('type', '')}[/dim] = {spec.get('value')!r}")
                if flow.get("prompty_files"):
                    f.add("prompty: " + ", ".join(flow["prompty_files"]))
            nodes = f.add("nodes") if flow.get("nodes") else f
            for n in flow.get("nodes", []):
                label = f"{n['name']} [dim]{n['type']}[/dim]"
                if n["llm"]:
                    label += f"  connection={n['connection']} deployment={n['deployment_name']}"
                if n["aggregation"]:
                    label += "  [dim](aggregation)[/dim]"
                node = nodes.add(label)
                for v in n["variants"]:
                    node.add(
                        f"{v['id']}{' (default)' if v['default'] else ''}: {v['prompt_file']} {v['params']}"
                    )
        for ev in data["evaluators"]:
            e = tree.add(f"evaluator [magenta]{ev['name']}[/magenta] {ev['flow']}")
            for d in ev["datasets"]:
                e.add(
                    f"{d['name']} -> evaluates {d['reference']} ({d['rows']} rows) mappings {d['mappings']}"
                )
        ds = tree.add("experiment datasets")
        for d in data["datasets"]:
            ds.add(
                f"{d['name']}: {d['path']} ({d['rows']} rows; columns {', '.join(d['columns'])}) mappings {d['mappings']}"
            )
        if data["connections"]:
            cs = tree.add("connections")
            for c in data["connections"]:
                cs.add(
                    f"{c['name']} {c['connection_type']} {c['api_base'] or ''} (key from ${c['key_env_var']})"
                )
        if data["environments"]:
            tree.add("environments: " + ", ".join(data["environments"]))
        console.print(tree)
        for p in uc.problems:
            err_console.print(f"[red]error[/red]: {escape(str(p))}", soft_wrap=True)
        for p in uc.warnings:
            err_console.print(f"[yellow]warning[/yellow]: {escape(str(p))}", soft_wrap=True)
    if uc.problems:
        if json_out:
            raise typer.Exit(2)
        raise LlmopsError.from_problem(uc.problems[0]) if len(uc.problems) == 1 else typer.Exit(2)
