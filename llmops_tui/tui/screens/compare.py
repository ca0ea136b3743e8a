"""Compare: the core's comparison of a run's cells side by side (cells as columns), best value per row
highlighted, deltas vs the baseline with CIs and significance marks, gates pass/fail; sortable, pick a
baseline, drill into two cells' lines, charts, export any report format, go to Approval."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

from rich.text import Text
from textual import work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical
from textual.coordinate import Coordinate
from textual.screen import ModalScreen
from textual.widgets import Button, DataTable, Input, Label, Select, Static

from llmops_tui.core.errors import LlmopsError
from llmops_tui.tui.messages import DataLoaded
from llmops_tui.tui.screens.base import BaseScreen


def fmt_value(value: float | None, key: str | None = None, *, free: bool = False) -> str:
    """A value as people read it; with the row ``key``, the same units as the reports (%, ms, $, counts).
    ``free``: a cost the sandbox model made free (``MetricValue.free``), "free (sandbox)" as everywhere."""
    if free:
        from llmops_tui.core.cost import FREE_TEXT

        return FREE_TEXT
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "-"
    if key is not None:
        from llmops_tui.core.format import fmt

        return fmt(key, value)
    if abs(value) >= 1000:
        return f"{value:,.0f}"
    if abs(value) >= 100:
        return f"{value:.1f}"
    return f"{value:.3f}"


#: Widest a cell column gets; longer labels are cut with an ellipsis (the detail panel has them whole).
CELL_WIDTH = 20
#: Widest the pinned first column (metric and gate names) gets.
NAME_WIDTH = 24


def fmt_delta(delta: float, key: str | None) -> str:
    from llmops_tui.core.format import fmt

    return fmt(key or "", delta, signed=True)


def value_text(
    mv: Any,
    *,
    best: bool,
    baseline: bool,
    higher_is_better: bool | None,
    key: str | None = None,
    interval: bool = False,
) -> Text:
    """``0.812 +0.050*``: the value, its delta to the baseline and ``*`` when significant. The baseline
    shows ``base`` (with ``interval``, its 95% CI instead); CIs of the others are in the detail panel."""
    if mv is None:
        return Text("-", style="dim")
    text = Text(fmt_value(mv.value, key, free=mv.free), style="bold green" if best else "")
    if baseline:
        if interval and mv.ci_low is not None and mv.ci_high is not None:
            text.append(f" [{fmt_value(mv.ci_low, key)}, {fmt_value(mv.ci_high, key)}]", style="dim")
        else:
            text.append(" base", style="cyan")
    elif (
        mv.delta is not None
        and not (isinstance(mv.delta, float) and math.isnan(mv.delta))
        and not (mv.free and mv.delta == 0)
    ):
        good = None if higher_is_better is None or mv.delta == 0 else (mv.delta > 0) == higher_is_better
        style = "green" if good else "red" if good is False else "dim"
        text.append(f" {fmt_delta(mv.delta, key)}", style=style)
        if mv.significant:
            text.append("*", style=f"bold {style}")
    if len(text) > CELL_WIDTH:
        text.truncate(CELL_WIDTH, overflow="ellipsis")
    return text


def clip(text: str, width: int = CELL_WIDTH) -> str:
    return text if len(text) <= width else text[: width - 1] + "…"


class CompareScreen(BaseScreen):
    TITLE = "Compare"
    BINDINGS = [
        Binding("s", "sort", "Sort by row", id="sort_cells"),
        Binding("b", "baseline", "Set baseline", id="set_baseline"),
        Binding("m", "mark", "Mark cell A", id="mark_cell"),
        Binding("l", "lines", "Lines A vs B", id="line_diff"),
        Binding("g", "charts", "Charts", id="charts"),
        Binding("e", "export", "Export", id="export"),
        Binding("a", "approve", "Approve cell", id="approve_cell"),
    ]
    DEFAULT_CSS = """
    CompareScreen #cmp-head { height: auto; max-height: 4; padding: 0 1; }
    CompareScreen #cmp-table { height: 1fr; }
    CompareScreen #cmp-detail { height: auto; max-height: 7; padding: 0 1; border-top: solid $primary 30%; }
    CompareScreen #charts { height: 18; display: none; layout: vertical; }
    CompareScreen #charts.-shown { display: block; }
    CompareScreen #plots { height: 1fr; }
    CompareScreen #plots > * { width: 1fr; }
    CompareScreen #chart-legend { height: auto; max-height: 3; padding: 0 1; }
    CompareScreen.narrow #charts { height: 12; }
    """

    def __init__(self, run_id: str, baseline: str | None = None) -> None:
        super().__init__()
        self.run_id = run_id
        self.baseline = baseline
        self.comparison: Any = None
        self.cell_order: list[str] = []
        self.marked: str | None = None
        self.row_keys: list[str] = []
        self.latencies: dict[str, list[float]] = {}  # cell id -> latencies of successful lines

    def header_title(self) -> str:
        # the run id whole at 80 columns, beside the workspace and the sandbox badge
        return f"Compare · {self.run_id}"

    def compose_body(self) -> ComposeResult:
        with Vertical(classes="body"):
            yield Static("loading the comparison…", id="cmp-head", markup=False)
            yield DataTable(
                id="cmp-table", cursor_type="cell", zebra_stripes=True, fixed_columns=1, header_height=2
            )
            yield Static(id="cmp-detail", markup=False)
            yield Vertical(id="charts")

    def on_mount(self) -> None:
        store = self.llmops.store()
        run = store.get_run(self.run_id) if store else None
        if run is not None:
            self.uses_sandbox = run.uses_sandbox
            self.use_case_name = run.use_case
        self.update_sandbox_badge()
        self.load()

    @work(thread=True, exclusive=True, exit_on_error=False, group="compare", name="comparison")
    def load(self) -> None:
        from llmops_tui.core.compare import build_comparison

        store = self.llmops.store()
        if store is None:
            self.post_message(DataLoaded("error", "this workspace has no runs yet"))
            return
        try:
            comparison = build_comparison(
                store, self.run_id, workspace_root=self.llmops.workspace_root, baseline=self.baseline
            )
        except LlmopsError as exc:
            self.post_message(DataLoaded("error", str(exc)))
            return
        latencies: dict[str, list[float]] = {}
        for run_id in comparison.run_ids:
            prefix = f"{run_id}:" if len(comparison.run_ids) > 1 else ""
            for cid, values in store.latencies(run_id).items():
                latencies[prefix + cid] = list(values)
        self.post_message(DataLoaded("comparison", (comparison, latencies)))

    def on_data_loaded(self, message: DataLoaded) -> None:
        if message.key == "error":
            self.query_one("#cmp-head", Static).update(Text(message.payload, style="red"))
            return
        if message.key != "comparison":
            return
        self.comparison, self.latencies = message.payload
        self.baseline = self.comparison.baseline
        if not self.cell_order or set(self.cell_order) != {c.cell_id for c in self.comparison.cells}:
            self.cell_order = [c.cell_id for c in self.comparison.cells]
        self.render_table()
        if self.query_one("#charts").has_class("-shown"):
            self._draw_charts()

    # ---------------------------------------------------------------------------------------- table

    def label(self, cell_id: str | None) -> str:
        cell = self.comparison.cell(cell_id) if self.comparison is not None and cell_id else None
        return cell.label if cell is not None else (cell_id or "-")

    def render_table(self) -> None:
        cmp = self.comparison
        table = self.query_one("#cmp-table", DataTable)
        cursor = table.cursor_coordinate
        table.clear(columns=True)
        table.add_column("", key="label")
        for cid in self.cell_order:
            title = Text(clip(self.label(cid)), style="bold cyan" if cid == cmp.baseline else "bold")
            tags = []
            if cid == cmp.baseline:
                tags.append(("base", "cyan"))
            if cid == self.marked:
                tags.append(("[A]", "magenta"))
            if cmp.gates_for(cid):
                tags.append(("gates ✓", "green") if cmp.passes(cid) else ("gates ✗", "bold red"))
            title.append("\n")
            for i, (tag, style) in enumerate(tags):
                title.append(("" if i == 0 else " ") + tag, style=style)
            table.add_column(title, key=cid)
        self.row_keys = []
        rows = []
        for row in cmp.rows:
            best = row.best_cell()
            arrow = {True: " ↑", False: " ↓"}.get(row.higher_is_better, "")
            cells = [
                Text(clip(row.label, NAME_WIDTH - 2) + arrow, style="bold" if row.group == "metric" else "")
            ]
            for cid in self.cell_order:
                cells.append(
                    value_text(
                        row.values.get(cid),
                        best=cid == best,
                        baseline=cid == cmp.baseline,
                        higher_is_better=row.higher_is_better,
                        key=row.key,
                    )
                )
            rows.append(cells)
            self.row_keys.append(row.key)
        gates = sorted({g.gate for g in cmp.gates})
        for gate in gates:
            cells = [Text(clip(f"gate {gate}", NAME_WIDTH), style="bold")]
            for cid in self.cell_order:
                g = next((x for x in cmp.gates_for(cid) if x.gate == gate), None)
                if g is None:
                    cells.append(Text("-", style="dim"))
                else:
                    # The reason is in the detail panel: a mark keeps the column narrow.
                    cells.append(
                        Text("✓ pass", style="green") if g.passed else Text("✗ FAIL", style="bold red")
                    )
            rows.append(cells)
            self.row_keys.append(f"gate:{gate}")
        table.add_rows(rows)
        if cursor.row < table.row_count and 0 < cursor.column < len(table.columns):
            table.cursor_coordinate = cursor
        else:
            table.cursor_coordinate = Coordinate(0, 1 if len(table.columns) > 1 else 0)
        best = cmp.best_cell()
        head = Text()
        head.append(f"{cmp.use_case} · {len(cmp.cells)} cells · baseline ", style="bold")
        head.append(self.label(cmp.baseline), style="cyan")
        head.append(" · best ")
        head.append(self.label(best), style="bold green")
        if best is not None and cmp.gates:
            head.append(" (" + ("passes all gates" if cmp.passes(best) else "fails a gate") + ")")
        head.append(
            "\nvalue, Δ vs base, * significant (p<0.05), best in green; CI and gates below", style="dim"
        )
        if cmp.warnings:
            head.append(f"\n! {cmp.warnings[0]}", style="yellow")
            if len(cmp.warnings) > 1:
                head.append(
                    f" (+{len(cmp.warnings) - 1} more warnings: press e to export a report)", style="dim"
                )
        self.query_one("#cmp-head", Static).update(head)
        self.show_detail()

    def show_detail(self) -> None:
        """The selected cell in full: its label and id, the selected number with its CI and test, and
        every gate it fails with the reason."""
        cmp = self.comparison
        panel = self.query_one("#cmp-detail", Static)
        cid = self._cursor_cell()
        cell = cmp.cell(cid) if cid else None
        if cell is None:
            panel.update(Text("move to a cell column to see its details", style="dim"))
            return
        text = Text()
        text.append(cell.label, style="bold cyan" if cell.is_baseline else "bold")
        text.append(f"  cell {cell.cell_id} · {cell.dataset} · run {cell.run_id}", style="dim")
        if not cell.complete:
            text.append(f" · {cell.lines_done} of {cell.lines_total} lines done", style="yellow")
        row = self._cursor_row()
        mv = row.values.get(cid) if row is not None else None
        if row is not None and mv is not None:
            text.append(f"\n{row.label}: ", style="bold")
            text.append(fmt_value(mv.value, row.key, free=mv.free))
            if mv.ci_low is not None and mv.ci_high is not None:
                text.append(f"  95% CI [{fmt_value(mv.ci_low, row.key)}, {fmt_value(mv.ci_high, row.key)}]")
            if mv.delta is not None and not cell.is_baseline and not (mv.free and mv.delta == 0):
                text.append(f"  delta {fmt_delta(mv.delta, row.key)}")
            if mv.p_value is not None:
                text.append(f"  p={mv.p_value:.3g}" + (" significant" if mv.significant else ""))
            if mv.note:
                text.append(f"  ({mv.note})", style="dim")
        gates = cmp.gates_for(cell.cell_id)
        failed = [g for g in gates if not g.passed]
        if gates and not failed:
            text.append(f"\n✓ passes all {len(gates)} gates", style="green")
        for g in failed:
            text.append(f"\n✗ {g.gate}: {g.reason or 'failed'}", style="red")
        panel.update(text)

    def _cursor_cell(self) -> str | None:
        table = self.query_one("#cmp-table", DataTable)
        col = table.cursor_coordinate.column
        if col < 1 or col > len(self.cell_order):
            return None
        return self.cell_order[col - 1]

    def _cursor_row(self):
        table = self.query_one("#cmp-table", DataTable)
        r = table.cursor_coordinate.row
        if r >= len(self.row_keys) or self.row_keys[r].startswith("gate:"):
            return None
        return self.comparison.row(self.row_keys[r])

    def _ready(self) -> bool:
        if self.comparison is None:
            self.notify("the comparison is still loading", severity="warning")
            return False
        return True

    # -------------------------------------------------------------------------------------- actions

    def action_sort(self) -> None:
        """Order the cells by the metric under the cursor, best first."""
        if not self._ready():
            return
        row = self._cursor_row()
        if row is None:
            self.notify("put the cursor on a metric row to sort by it", severity="warning")
            return
        sign = -1 if row.higher_is_better is not False else 1

        def key(cid: str) -> float:
            mv = row.values.get(cid)
            v = mv.value if mv is not None and mv.value is not None and not math.isnan(mv.value) else None
            return math.inf if v is None else sign * v

        self.cell_order.sort(key=key)
        self.render_table()
        self.notify(f"cells sorted by {row.label}", timeout=2)

    def action_baseline(self) -> None:
        if not self._ready():
            return
        cid = self._cursor_cell()
        if cid is None:
            self.notify("put the cursor on a cell column", severity="warning")
            return
        self.baseline = cid
        self.query_one("#cmp-head", Static).update(f"recomputing against baseline {self.label(cid)}…")
        self.load()

    def action_mark(self) -> None:
        if not self._ready():
            return
        cid = self._cursor_cell()
        if cid is None:
            return
        self.marked = None if self.marked == cid else cid
        self.render_table()

    def action_lines(self) -> None:
        if not self._ready():
            return
        b = self._cursor_cell()
        # Without a marked cell, compare with the cell this one is measured against: the baseline
        # configuration on the same dataset (lines only pair within one dataset).
        reference = self.comparison.references.get(b) if b is not None else None
        a = self.marked or reference or self.comparison.baseline
        if b is None or a is None:
            self.notify("put the cursor on a cell column (m marks the other one)", severity="warning")
            return
        if a == b:
            others = [c for c in self.cell_order if c != a]
            if not others:
                self.notify("only one cell in this run", severity="warning")
                return
            b = others[0]
        self.llmops.open_screen(
            "line_diff", run_id=self.run_id, cell_a=a, cell_b=b, comparison=self.comparison
        )

    def action_charts(self) -> None:
        panel = self.query_one("#charts")
        panel.toggle_class("-shown")
        if panel.has_class("-shown") and self.comparison is not None:
            self._draw_charts()

    def _draw_charts(self) -> None:
        from llmops_tui.tui.widgets.charts import LatencyBoxes, MetricBars, legend

        panel = self.query_one("#charts")
        if not panel.children:
            panel.mount(
                Horizontal(MetricBars(id="bars"), LatencyBoxes(id="latency"), id="plots"),
                Static(id="chart-legend", markup=False),
            )
            self.call_after_refresh(self._draw_charts)
            return
        if not self.query("#bars") or not self.query("#latency"):
            return  # still mounting: the call after refresh draws them
        cmp = self.comparison
        row = self._cursor_row() or cmp.primary_row()
        labels = [self.label(cid) for cid in self.cell_order]
        if row is not None:
            vals, lows, highs = [], [], []
            for cid in self.cell_order:
                mv = row.values.get(cid)
                v = mv.value if mv and mv.value is not None and not math.isnan(mv.value) else 0.0
                vals.append(v)
                lows.append(mv.ci_low if mv else None)
                highs.append(mv.ci_high if mv else None)
            self.query_one("#bars", MetricBars).show(
                f"{row.label} (95% CI beside)", labels, vals, lows, highs
            )
        self.query_one("#latency", LatencyBoxes).show(self.latencies, self.cell_order)
        self.query_one("#chart-legend", Static).update(Text(legend(labels), style="dim"))

    def on_data_table_cell_highlighted(self, event: DataTable.CellHighlighted) -> None:
        if self.comparison is not None:
            self.show_detail()
        if (
            self.comparison is not None
            and self.query_one("#charts").has_class("-shown")
            and self.query_one("#charts").children
        ):
            self._draw_charts()

    def action_export(self) -> None:
        if not self._ready():
            return
        self.app.push_screen(ExportScreen(self.comparison, self.llmops.workspace_root))

    def action_approve(self) -> None:
        if not self._ready():
            return
        cid = self._cursor_cell() or self.comparison.best_cell()
        self.llmops.open_screen("approval", run_id=self.run_id, cell_id=cid, comparison=self.comparison)


class ExportScreen(ModalScreen[Path | None]):
    """Pick a report format and a path; the exporter writes it."""

    BINDINGS = [Binding("escape", "dismiss_none", "Close", id="close_export")]
    DEFAULT_CSS = """
    ExportScreen { align: center middle; }
    ExportScreen > Vertical { width: 90; height: auto; border: thick $primary; background: $surface; padding: 1 2; }
    ExportScreen Horizontal { height: auto; margin-top: 1; }
    ExportScreen #export-result { height: auto; margin-top: 1; }
    """

    def __init__(self, comparison: Any, root: Path) -> None:
        super().__init__()
        self.comparison = comparison
        self.root = root

    def compose(self) -> ComposeResult:
        from llmops_tui.exporters import EXPORTERS

        with Vertical():
            yield Label("Export the comparison", classes="panel-title")
            yield Select([(n, n) for n in EXPORTERS], value="html", allow_blank=False, id="format")
            yield Input(self._default_path("html"), id="path")
            with Horizontal():
                yield Button("Export", variant="primary", id="do-export")
                yield Button("Close", id="close")
            yield Static(id="export-result", markup=False)

    def _default_path(self, name: str) -> str:
        from llmops_tui.exporters import default_name

        return str(self.root / ".llmops" / "reports" / default_name(name, self.comparison.run_ids))

    def on_select_changed(self, event: Select.Changed) -> None:
        if isinstance(event.value, str):
            self.query_one("#path", Input).value = self._default_path(event.value)

    def on_button_pressed(self, event: Button.Pressed) -> None:
        event.stop()
        if event.button.id == "close":
            self.dismiss(None)
        elif event.button.id == "do-export":
            self.do_export()

    def on_input_submitted(self, event: Input.Submitted) -> None:
        event.stop()
        self.do_export()

    def do_export(self) -> None:
        from llmops_tui.exporters import export

        name = self.query_one("#format", Select).value
        path = Path(self.query_one("#path", Input).value.strip()).expanduser()
        result = self.query_one("#export-result", Static)
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            written = export(str(name), self.comparison, path)
        except LlmopsError as exc:
            result.update(Text(str(exc), style="red"))
            return
        except OSError as exc:
            result.update(Text(f"{path}: {exc.strerror or exc}", style="red"))
            return
        self.written = Path(written)
        self.app.notify(f"report written to {written}", timeout=8)
        self.dismiss(self.written)

    def action_dismiss_none(self) -> None:
        self.dismiss(None)
