"""Line-level view of two cells: inputs, both outputs with the word diff coloured, per-line scores, what
each line printed and its trace (a compact tree of spans), and for chat flows the conversation.

Built for big runs: the filter runs over all lines, but the table only holds the rows loaded so far (one
page at first, another page whenever the cursor or the scroll position nears the end), because adding
thousands of rows to a DataTable at once takes over a second. The selected line's detail is rendered on
demand."""

from __future__ import annotations

import json
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
from llmops_tui.tui.lineview import Review, review_for
from llmops_tui.tui.messages import DataLoaded
from llmops_tui.tui.screens.base import BaseScreen
from llmops_tui.tui.widgets.header import AppHeader

FILTER_CYCLE = ("all", "differ", "failed", "lowest")
# Fixed widths: DataTable then skips measuring every cell, which dominates filling 10,000 rows.
LINE_COLUMNS = [
    ("#", 5),
    ("", 1),
    ("A", 6),
    ("B", 6),
    ("output A", 48),
    ("output B", 48),
    ("scores A→B", 40),
]


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


def line_rows(diffs: list[Any], answer: Any = None, width: int = 48) -> list[list[Any]]:
    """Table rows for many lines at once (kept cheap: plain strings, no per-line diff rendering).
    ``answer`` turns a line's outputs into the text shown (default: the core's output text)."""
    from llmops_tui.core.linediff import output_text

    answer = answer or output_text
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
                short(answer(d.output_a), width),
                short(answer(d.output_b), width),
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
        self.answer: Any = None  # outputs -> the answer text (set by the screen)
        self.out_width = 48

    def on_mount(self) -> None:
        self.watch(self, "cursor_coordinate", self._check_more, init=False)
        self.watch(self, "scroll_y", self._check_more, init=False)

    def set_columns(self, labels: list[str], *, narrow: bool = False) -> None:
        """Fixed widths; on a small terminal the output columns are narrower (the detail has all)."""
        self.out_width = 22 if narrow else 48
        for (key, width), label in zip(LINE_COLUMNS, labels, strict=True):
            if narrow and key.startswith("output"):
                width = self.out_width
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
                self.add_rows(line_rows(self.diffs[self.loaded : end], self.answer, self.out_width))
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
        Binding("f", "filter", "Filter", id="filter_lines", tooltip="all / differ / failed / lowest scores"),
        Binding("x", "swap", "Swap A/B", id="swap_cells"),
    ]
    DEFAULT_CSS = """
    LineDiffScreen #ld-head { height: auto; padding: 0 1; }
    LineDiffScreen #ld-table { height: 1fr; }
    LineDiffScreen #ld-detail-box { height: 50%; border-top: solid $primary 30%; }
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
        self.labels: dict[str, str] = {}
        self.review: Review = Review()

    def label(self, cell_id: str) -> str:
        return self.labels.get(cell_id, cell_id)

    def header_title(self) -> str:
        return f"Lines · {self.label(self.cell_a)} vs {self.label(self.cell_b)}"

    def compose_body(self) -> ComposeResult:
        with Vertical(classes="body"):
            yield Static(id="ld-head", markup=False)
            yield LineTable(id="ld-table")
            with VerticalScroll(id="ld-detail-box"):
                yield Static(id="ld-detail", markup=False)

    def on_mount(self) -> None:
        store = self.llmops.store()
        run = store.get_run(self.run_id) if store else None
        if run is not None:
            self.uses_sandbox = run.uses_sandbox
            self._read_cells(store, run)
        table = self.query_one("#ld-table", LineTable)
        table.answer = self.review.answer
        table.set_columns(
            [
                "#",
                "",
                "A",
                "B",
                f"A: {self.label(self.cell_a)}",
                f"B: {self.label(self.cell_b)}",
                "scores A→B",
            ],
            narrow=(self.size.width or self.app.size.width) < 120,
        )
        self.query_one(AppHeader).set_title(self.header_title())
        self.update_sandbox_badge()
        self.load()

    def _read_cells(self, store: Any, run: Any) -> None:
        """Labels of the cells, and how to read their lines (answer field, expected answer)."""
        if self.comparison is not None:
            self.labels = {c.cell_id: c.label for c in self.comparison.cells}
            dataset = getattr(self.comparison.cell(self.cell_a), "dataset", None)
        else:
            from llmops_tui.core.compare import short_labels

            cells = store.cells(run.run_id)
            self.labels = short_labels(cells)
            dataset = next((c.dataset for c in cells if c.cell_id == self.cell_a), None)
        try:
            uc = self.llmops.use_case(run.use_case)
        except Exception:  # noqa: BLE001 - a use case that no longer loads: show lines without it
            uc = None
        self.review = review_for(uc, dataset or "")

    @work(thread=True, exclusive=True, exit_on_error=False, group="lines", name="line diff")
    def load(self) -> None:
        from llmops_tui.core.linediff import line_diff

        store = self.llmops.store()
        try:
            only = "all" if self.only == "lowest" else self.only
            diffs = line_diff(store, self.run_id, self.cell_a, self.cell_b, only=only)
            if self.only == "lowest":
                diffs.sort(key=_lowest)
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
                f"A = {self.label(self.cell_a)}   B = {self.label(self.cell_b)}   filter: {self.only}   "
                f"{message.total:,} lines, {self.differ:,} differ{showing}",
                style="bold",
            )
        )

    def on_data_table_row_highlighted(self, event: DataTable.RowHighlighted) -> None:
        self._detail(event.cursor_row)

    def _detail(self, index: int) -> None:
        """Answer first (A and B side by side, changed words coloured), the expected answer, the scores
        as a small table, then the inputs in full."""
        from llmops_tui.core.linediff import word_diff

        if index >= len(self.diffs):
            return
        d = self.diffs[index]
        answer_a, answer_b = self.review.answer(d.output_a), self.review.answer(d.output_b)
        ta, tb = diff_texts(word_diff(answer_a, answer_b))
        parts: list[Any] = [Text(f"line {d.line}", style="bold")]
        turns = self.review.conversation(d.inputs)
        if turns is not None:
            parts.append(conversation_view(turns))
        grid = Table(expand=True, box=None, padding=(0, 1))
        grid.add_column(f"A {self.label(self.cell_a)} ({d.status_a or 'missing'})", ratio=1)
        grid.add_column(f"B {self.label(self.cell_b)} ({d.status_b or 'missing'})", ratio=1)
        grid.add_row(
            ta if not d.error_a else Text(d.error_a, style="red"),
            tb if not d.error_b else Text(d.error_b, style="red"),
        )
        parts.append(grid)
        expected = self.review.expected(d.line)
        if expected is not None:
            parts.append(Text.assemble(("expected: ", "bold green"), expected))
        keys = sorted(set(d.scores_a) | set(d.scores_b))
        if keys:
            scores = Table(box=None, padding=(0, 2), show_edge=False)
            scores.add_column("score", style="bold")
            scores.add_column("A", justify="right")
            scores.add_column("B", justify="right")
            for k in keys:
                scores.add_row(k, _score(d.scores_a.get(k)), _score(d.scores_b.get(k)))
            parts.append(scores)
        inputs = Table(box=None, padding=(0, 1), show_header=False)
        inputs.add_column(style="bold", no_wrap=True)
        inputs.add_column(ratio=1)
        shown_as_chat = {self.review.chat_history, self.review.chat_input} if turns is not None else set()
        for k, v in (d.inputs or {}).items():
            if k in shown_as_chat:
                continue  # already in the conversation above
            inputs.add_row(f"{k}:", v if isinstance(v, str) else json.dumps(v, ensure_ascii=False))
        if inputs.row_count:
            parts.append(Text("inputs", style="bold dim"))
            parts.append(inputs)
        for side, logs in (("A", d.logs_a), ("B", d.logs_b)):
            for stream, text in (logs or {}).items():
                parts.append(Text(f"{side} printed ({stream})", style="bold dim"))
                parts.append(Text(text, style="red" if stream == "stderr" else ""))
        for side, spans in (("A", d.traces_a), ("B", d.traces_b)):
            if spans:
                parts.append(
                    Text(
                        f"{side} trace ({len(spans)} span{'s' if len(spans) != 1 else ''})", style="bold dim"
                    )
                )
                parts.append(trace_tree(spans))
        self.query_one("#ld-detail", Static).update(Group(*parts))

    def action_filter(self) -> None:
        self.only = FILTER_CYCLE[(FILTER_CYCLE.index(self.only) + 1) % len(FILTER_CYCLE)]
        self.load()

    def action_swap(self) -> None:
        self.cell_a, self.cell_b = self.cell_b, self.cell_a
        table = self.query_one("#ld-table", LineTable)
        table.clear(columns=True)
        self.on_mount()


ROLE_STYLES = {"user": "bold cyan", "assistant": "bold green", "system": "bold magenta"}


def conversation_view(turns: list[tuple[str, str]]) -> Table:
    """A chat line's conversation: one row per turn, the role then what was said (the last row is the
    current question; the answers follow in the A/B grid)."""
    table = Table(box=None, padding=(0, 1), show_header=False, expand=True)
    table.add_column(no_wrap=True)
    table.add_column(ratio=1)
    for role, text in turns:
        table.add_row(Text(f"{role}:", style=ROLE_STYLES.get(role, "bold")), Text(text))
    return table


def trace_tree(spans: list[dict[str, Any]]) -> Table:
    """A line's spans as a compact indented tree: one row per span (name, duration, the output or the
    error, then the inputs), children indented under their parent."""
    table = Table(box=None, padding=(0, 1), show_header=False, expand=True)
    table.add_column(no_wrap=True, max_width=40, overflow="ellipsis")
    table.add_column(justify="right", no_wrap=True)
    table.add_column(ratio=1, no_wrap=True, overflow="ellipsis")
    for span in spans:
        depth = int(span.get("depth") or 0)
        kind = str(span.get("kind") or "")
        name = Text("  " * depth + ("└ " if depth else ""), style="dim")
        name.append(str(span.get("name") or "?"), style="bold" if kind == "entry" else "")
        if kind in ("llm", "node"):
            name.append(f" {kind}", style="cyan")
        duration = _duration(span.get("duration_ms"))
        # what came out first (that is what a reviewer looks for), then what went in, dimmed
        detail = (
            Text(str(span["error"]), style="red")
            if span.get("error")
            else Text(str(span.get("output") or ""))
        )
        if span.get("inputs"):
            detail.append(("  ← " if detail.plain else "← ") + str(span["inputs"]), style="dim")
        table.add_row(name, duration, detail)
    return table


def _duration(ms: Any) -> str:
    if not isinstance(ms, int | float):
        return "-"
    return f"{ms / 1000:.2f} s" if ms >= 1000 else f"{ms:.0f} ms"


def _score(value: Any) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        return f"{value:.3g}"
    return str(value)


def _lowest(d: Any) -> tuple[float, int]:
    """Lines ordered by B's lowest score (then A's), lowest first; lines without scores last."""
    scores = [v for v in list(d.scores_b.values()) + list(d.scores_a.values()) if isinstance(v, int | float)]
    return (min(scores) if scores else float("inf"), d.line)
