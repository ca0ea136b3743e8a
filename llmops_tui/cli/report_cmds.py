"""`llmops compare`, `llmops report` and `llmops gate`: comparisons, report files and CI gates.

Never imports promptflow: everything comes from the run store and the use case's llmops.yaml.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

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


def _value_text(comparison: Comparison, row_key: str, cell_id: str, best: bool, *, wide: bool = True) -> Text:
    """A cell's value; below it the 95% CI (``wide`` only) and the delta to the baseline."""
    from llmops_tui.core.format import fmt_ci, fmt_delta, fmt_value

    row = comparison.row(row_key)
    assert row is not None
    mv = row.values.get(cell_id)
    if mv is None:
        return Text("-")
    text = Text(fmt_value(row, mv), style="bold green" if best else "")
    ci = fmt_ci(row, mv)
    if ci and wide:
        text.append(f"\n{ci}", style="dim")
    delta = fmt_delta(row, mv)
    if delta:
        mark = "" if mv.significant is None else (" *" if mv.significant else " ~")
        style = "bold cyan" if mv.significant else "dim"
        text.append(f"\nΔ {delta}{mark}", style=style)
    return text


#: Narrow tables: the widest a metric name or a cell column gets (words longer than that are cut).
_NAME_MAX = 30
_CELL_MAX = 22
_CAPTION = "green: best of row · [ ]: 95% CI · Δ vs baseline · * significant (p<0.05) · ~ not significant"


def _longest_word(texts: list[str]) -> int:
    return max((len(word) for t in texts for word in t.split()), default=1)


def render_table(comparison: Comparison, cells: list | None = None, *, wide: bool = True) -> Table:
    """The side-by-side rich table: cells as columns, the best value of each row in green. ``wide``: every
    column (cell ids, intervals, gate names); otherwise labels, values and deltas, with columns as wide as
    their longest word so nothing breaks mid-word."""
    best_cell = comparison.best_cell()
    shown = comparison.cells if cells is None else cells
    table = Table(
        title=f"{comparison.use_case}: {', '.join(comparison.run_ids)}",
        caption=_CAPTION if wide else _CAPTION.replace("[ ]: 95% CI · ", ""),
        show_lines=True,
    )
    names = [row.label for row in comparison.rows] + (["gates"] if comparison.gates else [])
    if wide:
        table.add_column("metric", style="bold")
    else:
        width = min(max(_longest_word(names), 6), _NAME_MAX)
        # fixed widths: render_tables then knows exactly how wide a table is (rich's own shrinking can
        # overshoot by a column)
        table.add_column("metric", style="bold", width=width, overflow="ellipsis")
    values = {
        c.cell_id: [
            _value_text(comparison, row.key, c.cell_id, False, wide=wide).plain for row in comparison.rows
        ]
        for c in shown
    }
    for c in shown:
        tags = []
        if c.cell_id == comparison.baseline:
            tags.append("baseline")
        if c.cell_id == best_cell:
            tags.append("best")
        if wide:
            header = c.cell_id + (f" ({', '.join(tags)})" if tags else "") + f"\n{c.label}"
            table.add_column(header, justify="right", overflow="fold")
        else:
            header = c.label + (f"\n({', '.join(tags)})" if tags else "")
            # values whole ("free (sandbox)", "Δ +0.25 *"), headers by word
            longest_value = max((len(line) for v in values[c.cell_id] for line in v.splitlines()), default=1)
            width = min(max(_longest_word([header]), longest_value, 8), _CELL_MAX)
            table.add_column(header, justify="right", width=width, overflow="ellipsis")
    for row in comparison.rows:
        best = row.best_cell()
        table.add_row(
            row.label,
            *[_value_text(comparison, row.key, c.cell_id, c.cell_id == best, wide=wide) for c in shown],
        )
    if comparison.gates:
        marks = []
        for c in shown:
            gates = comparison.gates_for(c.cell_id)
            failed = [g for g in gates if not g.passed]
            if not failed:
                marks.append(Text(f"pass {len(gates)}", style="green"))
            elif wide:
                marks.append(
                    Text(
                        f"FAIL {len(failed)}/{len(gates)}\n" + "\n".join(g.gate for g in failed), style="red"
                    )
                )
            else:
                marks.append(Text(f"FAIL {len(failed)}/{len(gates)}", style="red"))
        table.add_row("gates", *marks)
    return table


def _cell_width(comparison: Comparison, cell: Any) -> int:
    """About how wide a cell's column is in the narrow table (its longest word, its padding and border)."""
    from llmops_tui.core.format import fmt_delta, fmt_value

    longest = _longest_word([cell.label, "(baseline, best)"])
    for row in comparison.rows:
        mv = row.values.get(cell.cell_id)
        if mv is not None:
            longest = max(longest, len(fmt_value(row, mv)), len(f"Δ {fmt_delta(row, mv)} ~"))
    return min(max(longest, 8), _CELL_MAX) + 3


def render_tables(comparison: Comparison, width: int, *, wide: bool = False) -> list[Table]:
    """What ``llmops compare`` prints: one table with every column (``wide``), else as many tables as it
    takes to show every cell within ``width`` columns, each repeating the metric names."""
    if wide or not comparison.cells:
        return [render_table(comparison, wide=wide)]
    names = [row.label for row in comparison.rows] + ["gates"]
    room = width - min(max(_longest_word(names), 6), _NAME_MAX) - 4 - 2
    chunks: list[list[Any]] = [[]]
    used = 0
    for cell in comparison.cells:
        need = _cell_width(comparison, cell)
        if chunks[-1] and used + need > room:
            chunks.append([])
            used = 0
        chunks[-1].append(cell)
        used += need
    return [render_table(comparison, chunk, wide=False) for chunk in chunks]


def compare_cmd(
    run_ids: Annotated[
        list[str], typer.Argument(help="Run id(s) of one use case (a unique prefix is enough).")
    ],
    baseline: BaselineOpt = None,
    workspace: WorkspaceOpt = Path("."),
    wide: Annotated[
        bool,
        typer.Option(
            "--wide", help="One table with every column: cell ids, 95% intervals and failed gate names."
        ),
    ] = False,
    json_out: JsonOpt = False,
) -> None:
    """Compare the cells of a run side by side: metrics with 95% CIs, deltas, significance and gates.

    Fits the terminal: cells are split over several tables rather than squeezed; --wide shows every
    column in one table."""
    _, store, comparison = _comparison(workspace, run_ids, baseline)
    store.close()
    if json_out:
        print_json(comparison.to_dict())
        return
    for table in render_tables(comparison, console.width, wide=wide):
        console.print(table, soft_wrap=False)  # fit the terminal (the console soft-wraps by default)
    if not wide:
        for c in comparison.cells:
            for g in comparison.gates_for(c.cell_id):
                if not g.passed:
                    console.print(f"[red]FAIL[/red] {escape(c.label)}: {escape(g.gate)}", soft_wrap=False)
    for w in comparison.warnings:
        console.print(f"[yellow]warning:[/yellow] {escape(w)}", soft_wrap=False)


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
