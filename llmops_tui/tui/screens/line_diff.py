"""Line-level view of two cells: inputs, both outputs with the word diff coloured, per-line scores.

Built for big runs: the filter runs over all lines, but the table only holds the rows loaded so far (one
page at first, another page whenever the cursor or the scroll position nears the end), because adding
thousands of rows to a DataTable at once takes over a second. The selected line's detail is rendered on
demand."""

from __future__ import annotations

from typing import Any

from rich.console import Group
from rich.table import Table
from rich.text import Text
from textual import work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Vertical, VerticalScroll
from textual.message import Message
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


class LineTable(DataTable):
    """A DataTable over a list of line diffs that adds rows a page at a time, as they come into view.

    ``diffs`` always holds every line of the current filter; ``loaded`` rows of them are in the table.
    Row ``i`` of the table is ``diffs[i]``.
    """

    PAGE = 300  # rows added at a time (a page costs a few tens of milliseconds)
    MARGIN = 100  # load the next page when the cursor or the scroll position is this close to the end

    class Paged(Message):
        """More rows were added (or the table was refilled)."""

        def __init__(self, loaded: int, total: int) -> None:
            super().__init__()
            self.loaded = loaded
            self.total = total

    def __init__(self, **kwargs: Any) -> None:
        kwargs.setdefault("cursor_type", "row")
        kwargs.setdefault("zebra_stripes", True)
        super().__init__(**kwargs)
        self.diffs: list[Any] = []
        self.loaded = 0
        self._adding = False  # add_row moves the cursor, which must not start another page meanwhile

    def on_mount(self) -> None:
        self.watch(self, "cursor_coordinate", self._check_more, init=False)
        self.watch(self, "scroll_y", self._check_more, init=False)

    def set_columns(self, labels: list[str]) -> None:
        for (_, width), label in zip(LINE_COLUMNS, labels, strict=True):
            self.add_column(label, width=width)

    def show(self, diffs: list[Any]) -> None:
        """Replace the rows with ``diffs`` (only the first page is added now)."""
        self.clear()
        self.diffs = diffs
        self.loaded = 0
        self.load_more()

    @property
    def complete(self) -> bool:
        return self.loaded >= len(self.diffs)

    def load_more(self, upto: int = 0) -> None:
        """Add the next page of rows (or, with ``upto``, every row before that index)."""
        end = min(len(self.diffs), max(self.loaded + self.PAGE, upto))
        if end > self.loaded or not self.diffs:
            self._adding = True
            try:
                self.add_rows(line_rows(self.diffs[self.loaded : end]))
            finally:
                self._adding = False
            self.loaded = end
            self.post_message(self.Paged(self.loaded, len(self.diffs)))

    def _check_more(self) -> None:
        if self._adding or self.complete:
            return
        last_visible = int(self.scroll_y) + self.scrollable_content_region.height
        if max(self.cursor_row, last_visible) >= self.loaded - self.MARGIN:
            self.load_more()

    def action_scroll_bottom(self) -> None:
        # ctrl+end means the last line of the filter, not the last loaded row.
        self.load_more(upto=len(self.diffs))
        super().action_scroll_bottom()


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
        self.differ = 0

    def header_title(self) -> str:
        return f"Lines · {self.cell_a} vs {self.cell_b}"

    def compose_body(self) -> ComposeResult:
        with Vertical(classes="body"):
            yield Static(id="ld-head", markup=False)
            yield LineTable(id="ld-table")
            with VerticalScroll(id="ld-detail-box"):
                yield Static(id="ld-detail", markup=False)

    def on_mount(self) -> None:
        table = self.query_one("#ld-table", LineTable)
        table.set_columns(["#", "", "A", "B", f"output {self.cell_a}", f"output {self.cell_b}", "scores A→B"])
        store = self.llmops.store()
        run = store.get_run(self.run_id) if store else None
        if run is not None:
            self.uses_sandbox = run.uses_sandbox
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
        self.post_message(DataLoaded("lines", diffs))

    def on_data_loaded(self, message: DataLoaded) -> None:
        head = self.query_one("#ld-head", Static)
        if message.key == "error":
            head.update(Text(message.payload, style="red"))
            return
        self.show_lines(message.payload)

    def show_lines(self, diffs: list[Any]) -> None:
        self.diffs = diffs
        self.differ = sum(1 for d in diffs if d.differs)
        self.query_one("#ld-table", LineTable).show(diffs)
        if diffs:
            self._detail(0)
        else:
            self.query_one("#ld-detail", Static).update(Text("no lines match this filter", style="dim"))

    def on_line_table_paged(self, message: LineTable.Paged) -> None:
        showing = ""
        if message.loaded < message.total:
            showing = f", showing the first {message.loaded:,} (more load as you scroll)"
        self.query_one("#ld-head", Static).update(
            Text(
                f"A = {self.cell_a}   B = {self.cell_b}   filter: {self.only}   "
                f"{message.total:,} lines, {self.differ:,} differ{showing}",
                style="bold",
            )
        )

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
        table = self.query_one("#ld-table", LineTable)
        table.clear(columns=True)
        self.on_mount()
