"""Line-level view of two cells: inputs, both outputs with the word diff coloured, per-line scores.
Built for big runs: rows are added in bulk; the selected line's detail is rendered on demand."""

from __future__ import annotations

from typing import Any

from rich.console import Group
from rich.table import Table
from rich.text import Text
from textual import work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Vertical, VerticalScroll
from textual.widgets import DataTable, Static

from llmops_tui.core.errors import LlmopsError
from llmops_tui.tui.messages import DataLoaded
from llmops_tui.tui.screens.base import BaseScreen

FILTER_CYCLE = ("all", "differ", "failed")
# Fixed widths: DataTable then skips measuring every cell, which dominates filling 10,000 rows.
LINE_COLUMNS = [("#", 6), ("", 1), ("A", 6), ("B", 6), ("output A", 48), ("output B", 48), ("scores A→B", 40)]


def short(text: str, width: int = 48) -> str:
    text = text.replace("\n", " ")
    return text if len(text) <= width else text[: width - 1] + "…"


def diff_texts(ops: list[tuple[str, str]]) -> tuple[Text, Text]:
    a, b = Text(), Text()
    for kind, chunk in ops:
        if kind == "equal":
            a.append(chunk)
            b.append(chunk)
        elif kind == "delete":
            a.append(chunk, style="bold black on red")
        else:
            b.append(chunk, style="bold black on green")
    return a, b


def line_rows(diffs: list[Any]) -> list[list[Any]]:
    """Table rows for many lines at once (kept cheap: plain strings, no per-line diff rendering)."""
    from llmops_tui.core.linediff import output_text

    rows = []
    for d in diffs:
        mark = "≠" if d.differs else "="
        sa = d.status_a or "missing"
        sb = d.status_b or "missing"
        scores = " ".join(
            f"{k.split('.')[-1]}:{d.scores_a.get(k, '-')}→{d.scores_b.get(k, '-')}"
            for k in sorted(set(d.scores_a) | set(d.scores_b))
        )
        rows.append(
            [
                str(d.line),
                mark,
                sa,
                sb,
                short(output_text(d.output_a)),
                short(output_text(d.output_b)),
                scores,
            ]
        )
    return rows


class LineDiffScreen(BaseScreen):
    TITLE = "Lines"
    BINDINGS = [
        Binding("f", "filter", "Filter all/differ/failed", id="filter_lines"),
        Binding("x", "swap", "Swap A/B", id="swap_cells"),
    ]
    DEFAULT_CSS = """
    LineDiffScreen #ld-head { height: auto; padding: 0 1; }
    LineDiffScreen #ld-table { height: 1fr; }
    LineDiffScreen #ld-detail-box { height: 14; border-top: solid $primary 30%; }
    """

    def __init__(
        self, run_id: str, cell_a: str, cell_b: str, comparison: Any = None, only: str = "all"
    ) -> None:
        super().__init__()
        self.run_id = run_id
        self.cell_a = cell_a
        self.cell_b = cell_b
        self.comparison = comparison
        self.only = only
        self.diffs: list[Any] = []

    def header_title(self) -> str:
        return f"Lines · {self.cell_a} vs {self.cell_b}"

    def compose_body(self) -> ComposeResult:
        with Vertical(classes="body"):
            yield Static(id="ld-head", markup=False)
            yield DataTable(id="ld-table", cursor_type="row", zebra_stripes=True)
            with VerticalScroll(id="ld-detail-box"):
                yield Static(id="ld-detail", markup=False)

    def on_mount(self) -> None:
        table = self.query_one("#ld-table", DataTable)
        labels = ["#", "", "A", "B", f"output {self.cell_a}", f"output {self.cell_b}", "scores A→B"]
        for (_, width), label in zip(LINE_COLUMNS, labels, strict=True):
            table.add_column(label, width=width)
        store = self.llmops.store()
        run = store.get_run(self.run_id) if store else None
        if run is not None:
            self.uses_sandbox = run.config.get("llm_endpoint") == "sandbox"
        self.update_sandbox_badge()
        self.load()

    @work(thread=True, exclusive=True, exit_on_error=False, group="lines", name="line diff")
    def load(self) -> None:
        from llmops_tui.core.linediff import line_diff

        store = self.llmops.store()
        try:
            diffs = line_diff(store, self.run_id, self.cell_a, self.cell_b, only=self.only)
        except LlmopsError as exc:
            self.post_message(DataLoaded("error", str(exc)))
            return
        self.post_message(DataLoaded("lines", (diffs, line_rows(diffs))))

    def on_data_loaded(self, message: DataLoaded) -> None:
        head = self.query_one("#ld-head", Static)
        if message.key == "error":
            head.update(Text(message.payload, style="red"))
            return
        diffs, rows = message.payload
        self.show_lines(diffs, rows)

    def show_lines(self, diffs: list[Any], rows: list[list[Any]]) -> None:
        self.diffs = diffs
        table = self.query_one("#ld-table", DataTable)
        table.clear()
        table.add_rows(rows)
        differ = sum(1 for d in diffs if d.differs)
        self.query_one("#ld-head", Static).update(
            Text(
                f"A = {self.cell_a}   B = {self.cell_b}   filter: {self.only}   {len(diffs):,} lines, {differ:,} differ",
                style="bold",
            )
        )
        if diffs:
            self._detail(0)
        else:
            self.query_one("#ld-detail", Static).update(Text("no lines match this filter", style="dim"))

    def on_data_table_row_highlighted(self, event: DataTable.RowHighlighted) -> None:
        self._detail(event.cursor_row)

    def _detail(self, index: int) -> None:
        if index >= len(self.diffs):
            return
        d = self.diffs[index]
        ta, tb = diff_texts(d.diff)
        grid = Table(expand=True, box=None)
        grid.add_column(f"A {self.cell_a} ({d.status_a or 'missing'})", ratio=1)
        grid.add_column(f"B {self.cell_b} ({d.status_b or 'missing'})", ratio=1)
        grid.add_row(
            ta if not d.error_a else Text(d.error_a, style="red"),
            tb if not d.error_b else Text(d.error_b, style="red"),
        )
        inputs = Text.assemble(
            ("inputs: ", "bold"), ", ".join(f"{k}={short(str(v), 80)}" for k, v in (d.inputs or {}).items())
        )
        scores = Text.assemble(("scores: ", "bold"), f"A {d.scores_a or '-'}   B {d.scores_b or '-'}")
        self.query_one("#ld-detail", Static).update(
            Group(Text(f"line {d.line}", style="bold"), inputs, grid, scores)
        )

    def action_filter(self) -> None:
        self.only = FILTER_CYCLE[(FILTER_CYCLE.index(self.only) + 1) % len(FILTER_CYCLE)]
        self.load()

    def action_swap(self) -> None:
        self.cell_a, self.cell_b = self.cell_b, self.cell_a
        table = self.query_one("#ld-table", DataTable)
        table.clear(columns=True)
        self.on_mount()
