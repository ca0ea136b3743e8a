"""`llmops compare`, `llmops report` and `llmops gate`: comparisons, report files and CI gates.

Never imports promptflow: everything comes from the run store and the use case's llmops.yaml.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from rich.markup import escape
from rich.table import Table
from rich.text import Text

from llmops_tui.cli.common import JsonOpt, WorkspaceOpt, console, print_json
from llmops_tui.core.errors import LlmopsError
from llmops_tui.core.store import RunStore

if TYPE_CHECKING:  # scipy-backed statistics load only when a command needs them
    from llmops_tui.core.compare import Comparison

FORMATS = ("csv", "html", "markdown", "junit", "json")
BaselineOpt = Annotated[
    str | None,
    typer.Option("--baseline", "-b", help="Baseline cell id (default: the all-default-variant cell)."),
]


def register(app: typer.Typer) -> None:
    app.command("compare")(compare_cmd)
    app.command("report")(report_cmd)
    app.command("gate")(gate_cmd)


def _open(workspace: Path) -> tuple[Path, RunStore]:
    root = Path(workspace).resolve()
    if not root.is_dir():
        raise LlmopsError(
            "workspace folder not found", file=root, field="--workspace", hint="pass an existing folder"
        )
    store_path = root / ".llmops" / "store.sqlite"
    if not store_path.is_file():
        raise LlmopsError(
            "no run store in this workspace", file=store_path, field="", hint="run `llmops sweep` first"
        )
    return root, RunStore(store_path)


def _comparison(
    workspace: Path, run_ids: list[str], baseline: str | None
) -> tuple[Path, RunStore, Comparison]:
    root, store = _open(workspace)
    from llmops_tui.core.compare import build_comparison

    return root, store, build_comparison(store, run_ids, workspace_root=root, baseline=baseline)


def _value_text(comparison: Comparison, row_key: str, cell_id: str, best: bool) -> Text:
    from llmops_tui.core.format import fmt, fmt_ci

    row = comparison.row(row_key)
    assert row is not None
    mv = row.values.get(cell_id)
    if mv is None:
        return Text("-")
    text = Text(fmt(row, mv.value), style="bold green" if best else "")
    ci = fmt_ci(row, mv)
    if ci:
        text.append(f"\n{ci}", style="dim")
    if mv.delta is not None:
        mark = "" if mv.significant is None else (" *" if mv.significant else " ~")
        style = "bold cyan" if mv.significant else "dim"
        text.append(f"\nΔ {fmt(row, mv.delta, signed=True)}{mark}", style=style)
    return text


def render_table(comparison: Comparison) -> Table:
    """The side-by-side rich table: cells as columns, the best value of each row in green."""
    best_cell = comparison.best_cell()
    table = Table(
        title=f"{comparison.use_case}: {', '.join(comparison.run_ids)}",
        caption="green: best of row · [ ]: 95% CI · Δ vs baseline · * significant (p<0.05) · ~ not significant",
        show_lines=True,
    )
    table.add_column("metric", style="bold")
    for c in comparison.cells:
        tags = []
        if c.cell_id == comparison.baseline:
            tags.append("baseline")
        if c.cell_id == best_cell:
            tags.append("best")
        header = c.cell_id + (f" ({', '.join(tags)})" if tags else "") + f"\n{c.label}"
        table.add_column(header, justify="right", overflow="fold")
    for row in comparison.rows:
        best = row.best_cell()
        table.add_row(
            row.label,
            *[_value_text(comparison, row.key, c.cell_id, c.cell_id == best) for c in comparison.cells],
        )
    if comparison.gates:
        cells = []
        for c in comparison.cells:
            gates = comparison.gates_for(c.cell_id)
            failed = [g for g in gates if not g.passed]
            cells.append(
                Text(f"pass {len(gates)}", style="green")
                if not failed
                else Text(
                    f"FAIL {len(failed)}/{len(gates)}\n" + "\n".join(g.gate for g in failed), style="red"
                )
            )
        table.add_row("gates", *cells)
    return table


def compare_cmd(
    run_ids: Annotated[
        list[str], typer.Argument(help="Run id(s) of one use case (a unique prefix is enough).")
    ],
    baseline: BaselineOpt = None,
    workspace: WorkspaceOpt = Path("."),
    json_out: JsonOpt = False,
) -> None:
    """Compare the cells of a run side by side: metrics with 95% CIs, deltas, significance and gates."""
    _, store, comparison = _comparison(workspace, run_ids, baseline)
    store.close()
    if json_out:
        print_json(comparison.to_dict())
        return
    console.print(render_table(comparison))
    for w in comparison.warnings:
        console.print(f"[yellow]warning:[/yellow] {escape(w)}", soft_wrap=True)


def line_pair(comparison: Comparison) -> tuple[str, str] | None:
    """The two cells the report's line-by-line table shows: the best cell (else the first other cell)
    against the cell it is compared with, which is the baseline's configuration on the same dataset, so
    that line numbers pair up (line 3 of one dataset is not line 3 of another)."""
    best = comparison.best_cell()
    candidates = ([best] if best else []) + [c.cell_id for c in comparison.cells]
    for cid in candidates:
        ref = comparison.references.get(cid)
        if ref is not None:
            return ref, cid
    return None


def report_cmd(
    run_ids: Annotated[list[str], typer.Argument(help="Run id(s) of one use case.")],
    fmt: Annotated[str, typer.Option("--format", "-f", help="csv, html, markdown, junit or json.")] = "html",
    out: Annotated[
        Path | None,
        typer.Option(
            "--out",
            "-o",
            help="Output file (csv: folder). Default: <workspace>/.llmops/reports/report-<run id>"
            "[-vs-<baseline>].*",
        ),
    ] = None,
    baseline: BaselineOpt = None,
    workspace: WorkspaceOpt = Path("."),
    json_out: JsonOpt = False,
) -> None:
    """Write a report of a run: csv, html (self-contained), markdown, junit (gates) or json."""
    from llmops_tui import exporters
    from llmops_tui.core.files import safe_join
    from llmops_tui.core.linediff import line_diff

    if fmt not in FORMATS:
        raise LlmopsError(
            f"unknown format '{fmt}'", field="--format", hint=f"use one of: {', '.join(FORMATS)}"
        )
    root, store, comparison = _comparison(workspace, run_ids, baseline)
    options: dict = {}
    if fmt in ("html", "json", "csv"):
        pair = line_pair(comparison)
        if pair is not None:
            ref_col, other_col = (comparison.cell(cid) for cid in pair)
            assert ref_col is not None and other_col is not None
            options["line_diffs"] = line_diff(
                store,
                ref_col.run_id,
                pair[0].split(":")[-1],
                pair[1].split(":")[-1],
                run_id_b=other_col.run_id,
            )
            options["line_cells"] = pair
    store.close()
    # Run ids and cell ids end up in the default file name: it must stay inside .llmops/reports.
    path = (
        out
        if out is not None
        else safe_join(
            root / ".llmops" / "reports",
            exporters.default_name(fmt, comparison.run_ids, comparison.baseline if baseline else None),
        )
    )
    written = exporters.export(fmt, comparison, path, **options)
    if json_out:
        print_json({"format": fmt, "path": str(written), "run_ids": comparison.run_ids})
    else:
        console.print(f"wrote {fmt} report: {written}", soft_wrap=True)


def gate_cmd(
    run_ids: Annotated[list[str], typer.Argument(help="Run id(s) of one use case.")],
    cell: Annotated[
        str | None, typer.Option("--cell", "-c", help="Cell to check (default: the best cell).")
    ] = None,
    baseline: BaselineOpt = None,
    workspace: WorkspaceOpt = Path("."),
    json_out: JsonOpt = False,
) -> None:
    """Exit 0 when the chosen (or best) cell passes every gate in llmops.yaml, 1 otherwise."""
    _, store, comparison = _comparison(workspace, run_ids, baseline)
    store.close()
    if cell is None:
        chosen = comparison.best_cell()
    else:
        ids = [c.cell_id for c in comparison.cells]
        matches = [i for i in ids if i == cell] or [
            i for i in ids if i.startswith(cell) or i.endswith(":" + cell)
        ]
        if len(matches) != 1:
            raise LlmopsError(
                f"no single cell '{cell}' in the run", field="--cell", hint="cells: " + ", ".join(ids[:12])
            )
        chosen = matches[0]
    gates = comparison.gates_for(chosen) if chosen else []
    failed = [g for g in gates if not g.passed]
    if json_out:
        print_json(
            {
                "cell": chosen,
                "passed": not failed,
                "gates": [
                    {
                        "gate": g.gate,
                        "metric": g.metric,
                        "value": g.value,
                        "passed": g.passed,
                        "reason": g.reason,
                    }
                    for g in gates
                ],
            }
        )
    else:
        if not gates:
            console.print(f"cell {chosen}: no gates declared in llmops.yaml (nothing to check)")
        for g in gates:
            mark = "[green]pass[/green]" if g.passed else "[red]FAIL[/red]"
            console.print(
                f"{mark} {chosen} {escape(g.gate)}: {escape(g.reason)}", soft_wrap=True, highlight=False
            )
    if failed:
        raise typer.Exit(1)
