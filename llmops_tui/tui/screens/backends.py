"""Compare backends: the same cells on Prompt flow and on Agent Framework, compared line by line (the app's
view of ``llmops compare-backends``).

The cells are the use case's sweep from llmops.yaml (opened from the home screen with ``b``) or the ones
built in the sweep builder (``ctrl+b`` there). ``ctrl+g`` runs :mod:`llmops_tui.core.equivalence` (the
core of ``llmops compare-backends``) in a thread worker that only posts messages: both sweeps are
planned first (so bad input is refused before anything runs), then run one after the other through the
ordinary dispatcher with the cache off, their events (progress per backend and per cell) becoming
messages; ``c`` cancels (the runs stay in Runs, resumable). The comparison pairs the cells and gives a
verdict per cell, named by its label, never by its hash. The lines that
differ are listed under the cells; ``enter`` opens one side by side in the line view.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Any

from rich.text import Text
from textual import events, work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Vertical
from textual.message import Message
from textual.widgets import DataTable, ProgressBar, Static
from textual.worker import Worker, WorkerState, get_current_worker

from llmops_tui.core import events as ev
from llmops_tui.core.errors import LlmopsError
from llmops_tui.core.sweep import SweepOptions, SweepPlan
from llmops_tui.tui.data import any_key_missing
from llmops_tui.tui.screens.base import BaseScreen
from llmops_tui.tui.screens.line_diff import LineDiffScreen, short

#: The backends that run DAG flows, in people's words (the first is the default).
BACKEND_NAMES = {"promptflow-dag": "Prompt flow", "agent-framework": "Agent Framework"}
#: The pair compared, in this order (A, B): the same as ``llmops compare-backends``.
PAIR = ("promptflow-dag", "agent-framework")
#: Differing lines listed under the cells (the line view has every one of them).
MAX_LISTED = 200


def backend_name(backend: str | None) -> str:
    return BACKEND_NAMES.get(backend or "promptflow-dag", backend or "promptflow-dag")


def agent_framework_missing() -> str | None:
    """None when the Agent Framework backend can run here, else one line saying how to install it.
    Imports Agent Framework (tens of milliseconds the first time): call it off the UI thread."""
    from llmops_tui.core.backends import agent_framework as af

    if af.available() is None:
        return None
    return f"Agent Framework is not installed: install it with `{af.INSTALL_HINT}`"


@dataclass
class CellPair:
    """One cell of the comparison with what the screen needs to show and open it."""

    key: str  # the cell's full label (variants, parameters, dataset, repetition): unique in a run
    label: str  # the short label the other screens use
    comparison: Any  # core.equivalence.CellComparison
    cell_a: str | None  # cell id in the Prompt flow run
    cell_b: str | None  # cell id in the Agent Framework run
    dataset: str


def pair_cells(store: Any, result: Any) -> list[CellPair]:
    """The cells of a :class:`BackendComparison` with their cell ids in both runs and short labels."""
    from llmops_tui.core.compare import short_labels
    from llmops_tui.core.sweep import cell_label

    run_a, run_b = result.runs
    cells_a = store.cells(run_a)
    by_label_a = {cell_label(c.variants, c.params, c.dataset, c.repeat): c for c in cells_a}
    by_label_b = {cell_label(c.variants, c.params, c.dataset, c.repeat): c for c in store.cells(run_b)}
    short = short_labels(cells_a)
    out = []
    for comp in result.cells:
        a, b = by_label_a.get(comp.label), by_label_b.get(comp.label)
        out.append(
            CellPair(
                key=comp.label,
                label=short.get(a.cell_id, comp.label) if a else comp.label,
                comparison=comp,
                cell_a=a.cell_id if a else None,
                cell_b=b.cell_id if b else None,
                dataset=a.dataset if a else (b.dataset if b else ""),
            )
        )
    return out


# ------------------------------------------------------------------------------------------ messages


class BackendProgressed(Message):
    """A progress snapshot of one backend's sweep; a newer one of the same backend replaces it."""

    def __init__(self, backend: str, event: ev.Progress) -> None:
        super().__init__()
        self.backend = backend
        self.event = event

    def can_replace(self, message: Message) -> bool:
        return isinstance(message, BackendProgressed) and message.backend == self.backend


class BackendSweepStarted(Message):
    """One backend's sweep started (``plan`` is what it runs)."""

    def __init__(self, backend: str, run_id: str, plan: SweepPlan) -> None:
        super().__init__()
        self.backend = backend
        self.run_id = run_id
        self.plan = plan


class BackendSweepFinished(Message):
    def __init__(self, backend: str, event: ev.SweepFinished) -> None:
        super().__init__()
        self.backend = backend
        self.event = event


class BackendsPlanned(Message):
    """The cells to compare (the Prompt flow plan) or why they cannot be planned."""

    def __init__(self, plan: SweepPlan | None, error: str | None) -> None:
        super().__init__()
        self.plan = plan
        self.error = error


class BackendsCompared(Message):
    """Both runs finished and were compared."""

    def __init__(self, result: Any, pairs: list[CellPair]) -> None:
        super().__init__()
        self.result = result
        self.pairs = pairs


class BackendsStopped(Message):
    """The comparison ended without a result: cancelled, or ``error`` (one line)."""

    def __init__(self, error: str | None, cancelled: bool = False) -> None:
        super().__init__()
        self.error = error
        self.cancelled = cancelled


# -------------------------------------------------------------------------------------------- screen


class BackendsScreen(BaseScreen):
    TITLE = "Compare backends"
    BINDINGS = [
        Binding("ctrl+g", "run", "Run both", id="run_backends", priority=True),
        Binding("c", "cancel", "Cancel", id="cancel_backends"),
        Binding("l", "open_line", "Line side by side", id="open_backend_line"),
        Binding("ctrl+l", "toggle_limit", "Quick (4 lines)", id="quick_backends"),
    ]
    DEFAULT_CSS = """
    BackendsScreen #bk-head { height: auto; padding: 0 1; }
    BackendsScreen ProgressBar { padding: 0 1; width: 100%; }
    BackendsScreen ProgressBar Bar { width: 1fr; }
    BackendsScreen #bk-stats { height: auto; padding: 0 1; }
    BackendsScreen #bk-cells { height: 1fr; min-height: 4; }
    BackendsScreen #bk-caption { height: auto; padding: 0 1; border-top: solid $primary 30%; }
    BackendsScreen #bk-lines { height: 1fr; min-height: 4; }
    """

    def __init__(self, use_case: str, options: SweepOptions | None = None, start: bool = False) -> None:
        super().__init__()
        self.use_case_name = use_case
        #: the cells as the sweep builder described them (None: llmops.yaml's sweep)
        self.from_builder = options is not None
        self.options = options
        self.start_now = start
        self.plan: SweepPlan | None = None
        self.status = "planning"  # planning | ready | running | cancelling | compared | cancelled | failed
        self.error: str | None = None
        self.worker: Worker | None = None
        self.result: Any = None
        self.pairs: list[CellPair] = []
        self.rows: dict[str, str] = {}  # cell id (of either backend's plan) -> row key (the full label)
        self.labels: dict[str, str] = {}  # row key -> short label
        self.done: dict[str, int] = {}  # backend -> lines done
        self.totals: dict[str, int] = {}
        self.run_ids: dict[str, str] = {}
        self.listed: list[dict[str, Any]] = []  # the differing lines shown under the cells
        self._lines_width: int | None = None  # width of each answer column of the differing lines

    def header_title(self) -> str:
        return f"Compare backends · {self.use_case_name}"

    def compose_body(self) -> ComposeResult:
        with Vertical(classes="body"):
            yield Static(id="bk-head", markup=False)
            yield ProgressBar(id="bk-progress", show_eta=False)
            yield Static(id="bk-stats", markup=False)
            yield DataTable(id="bk-cells", cursor_type="row", zebra_stripes=True)
            yield Static(id="bk-caption", markup=False)
            yield DataTable(id="bk-lines", cursor_type="row", zebra_stripes=True)

    def on_mount(self) -> None:
        if self.options is None:
            self.options = self.default_options()
        self.uses_sandbox = self.options.llm_endpoint == "sandbox"
        self.update_sandbox_badge()
        cells = self.query_one("#bk-cells", DataTable)
        cells.add_column("Cell", key="cell")
        cells.add_column("Verdict", key="verdict")
        cells.add_column("Metrics", key="metrics")
        self._line_columns()
        self._head(Text("planning the cells…", style="dim"))
        self.prepare(self.options)

    def _out_width(self) -> int:
        return 34 if (self.size.width or self.app.size.width) < 120 else 70

    def _line_columns(self) -> None:
        lines = self.query_one("#bk-lines", DataTable)
        lines.clear(columns=True)
        self._lines_width = self._out_width()
        lines.add_column("Line", key="line", width=5)
        lines.add_column(BACKEND_NAMES[PAIR[0]], key="a", width=self._lines_width)
        lines.add_column(BACKEND_NAMES[PAIR[1]], key="b", width=self._lines_width)

    def on_resize(self, event: events.Resize) -> None:
        super().on_resize(event)
        # the answers' columns follow the terminal's width (narrow below 120 columns)
        if self._lines_width not in (None, self._out_width()):
            self._line_columns()
            cells = self.query_one("#bk-cells", DataTable)
            if self.pairs and cells.cursor_row is not None:
                self._show_cell(cells.cursor_row)

    def default_options(self) -> SweepOptions:
        """llmops.yaml's sweep on the endpoint the sweep builder would pick: the app's, else the sandbox
        when a connection has no key, else the configured connections."""
        app = self.llmops
        endpoint: str | None = app.llm_endpoint
        if not endpoint:
            try:
                uc = app.use_case(self.use_case_name)
                endpoint = "sandbox" if any_key_missing(uc, app.workspace_root) else None
            except LlmopsError:
                endpoint = "sandbox"
        return SweepOptions(
            llm_endpoint=endpoint,
            limit=app.settings.limit,
            sandbox_latency_ms=app.settings.sandbox_latency_ms,
        )

    # ---------------------------------------------------------------------------------- planning

    @work(thread=True, exclusive=True, exit_on_error=False, group="backends-plan", name="plan backends")
    def prepare(self, options: SweepOptions) -> None:
        """Plan the cells (both backends run the same ones) off the UI thread."""
        from llmops_tui.core.sweep import plan_sweep

        try:
            uc = self.llmops.use_case(self.use_case_name)
            plan = plan_sweep(uc, replace(options, backend=PAIR[0], no_cache=True))
        except LlmopsError as exc:
            self.post_message(BackendsPlanned(None, str(exc)))
            return
        except Exception as exc:  # noqa: BLE001 - shown on screen
            self.post_message(BackendsPlanned(None, f"{type(exc).__name__}: {exc}"))
            return
        self.post_message(BackendsPlanned(plan, None))

    def on_backends_planned(self, message: BackendsPlanned) -> None:
        if self.running:
            return
        if message.plan is None:
            self.status = "failed"
            self.error = message.error
            self._head(Text(f"cannot plan the cells: {message.error}", style="bold red"))
            return
        self.plan = message.plan
        self.status = "ready"
        self._fill_cells(message.plan)
        self._head(self._plan_text(message.plan))
        self.done = {b: 0 for b in PAIR}
        self.totals = {b: message.plan.lines_total for b in PAIR}
        self.run_ids = {}
        self._progress()
        if self.start_now:
            self.start_now = False
            self.action_run()

    def _plan_text(self, plan: SweepPlan) -> Text:
        opts = plan.options
        where = (
            "sandbox model"
            if opts.llm_endpoint == "sandbox"
            else (opts.llm_endpoint or "configured connections")
        )
        cells = f"{len(plan.cells)} cell" + ("s" if len(plan.cells) != 1 else "")
        text = Text()
        text.append(
            f"{BACKEND_NAMES[PAIR[0]]} vs {BACKEND_NAMES[PAIR[1]]}: {cells}, {plan.lines_total:,} lines on each",
            style="bold",
        )
        text.append(f"\n{where} · cache off · ctrl+g runs both", style="dim")
        if self.from_builder:
            text.append("\ncells: the sweep builder's", style="dim")
        else:
            text.append("\ncells: llmops.yaml's sweep (others: sweep builder, then ctrl+b)", style="dim")
        return text

    def _fill_cells(self, plan: SweepPlan) -> None:
        from llmops_tui.core.compare import short_labels

        table = self.query_one("#bk-cells", DataTable)
        table.clear()
        self.rows, self.labels = {}, {}
        short = short_labels(plan.cells)
        for cell in plan.cells:
            self.rows[cell.cell_id] = cell.label
            self.labels[cell.label] = short.get(cell.cell_id, cell.label)
            table.add_row(
                Text(self.labels[cell.label], style="bold"),
                Text("waiting", style="dim"),
                "",
                key=cell.label,
            )
        self._caption(Text("the lines that differ are listed here after the comparison", style="dim"))
        self.query_one("#bk-lines", DataTable).clear()

    # ------------------------------------------------------------------------------------ running

    @property
    def running(self) -> bool:
        return self.status in ("running", "cancelling")

    def action_run(self) -> None:
        if self.running:
            self.notify("the comparison is running (c cancels it)", severity="warning")
            return
        if self.plan is None or self.options is None:
            self.notify(self.error or "the cells are not planned yet", severity="warning")
            return
        self.status = "running"
        self.error = None
        self.result, self.pairs, self.listed = None, [], []
        self.done = {b: 0 for b in PAIR}
        self.totals = {b: self.plan.lines_total for b in PAIR}
        self.run_ids = {}
        self._fill_cells(self.plan)
        self.query_one("#bk-progress", ProgressBar).update(
            total=max(2 * self.plan.lines_total, 1), progress=0
        )
        self._head(Text(f"starting {BACKEND_NAMES[PAIR[0]]}…", style="bold"))
        self._stats()
        self.worker = self.run_both(self.options)

    @work(thread=True, exclusive=True, exit_on_error=False, group="backends", name="compare backends")
    def run_both(self, options: SweepOptions) -> None:
        """Both sweeps (cache off) and the comparison, through :mod:`llmops_tui.core.equivalence` (the same
        as ``llmops compare-backends``); only posts messages."""
        cancel = get_current_worker().cancelled_event
        root = self.llmops.workspace_root
        try:
            from llmops_tui.core.equivalence import BackendEvent, plan_backends, run_backends
            from llmops_tui.core.store import RunStore

            missing = agent_framework_missing()
            if missing:
                raise LlmopsError(missing)
            uc = self.llmops.use_case(self.use_case_name)
            # both plans first: bad input for either backend is refused before anything runs
            plans = plan_backends(uc, options, PAIR)
            by_backend = dict(zip(PAIR, plans, strict=True))
            result = None
            for item in run_backends(root, uc, plans, cancel=cancel):
                if not isinstance(item, BackendEvent):
                    result = item  # the last item
                    continue
                backend, event = item.backend, item.event
                if isinstance(event, ev.Progress):
                    self.post_message(BackendProgressed(backend, event))
                elif isinstance(event, ev.SweepStarted):
                    self.post_message(BackendSweepStarted(backend, event.run_id, by_backend[backend]))
                elif isinstance(event, ev.SweepFinished):
                    self.post_message(BackendSweepFinished(backend, event))
            if result is None:
                raise LlmopsError("the comparison ended without a result")
            if result.status == "cancelled":
                self.post_message(BackendsStopped(None, cancelled=True))
                return
            if result.status != "compared":
                why = f"the sweep on {backend_name(result.stopped_on)} {result.status}: {result.error or ''}"
                self.post_message(BackendsStopped(why.rstrip(": ")))
                return
            with RunStore.for_workspace(root) as store:
                pairs = pair_cells(store, result)
            self.post_message(BackendsCompared(result, pairs))
        except LlmopsError as exc:
            self.post_message(BackendsStopped(str(exc)))
        except Exception as exc:  # noqa: BLE001 - shown on screen, the app keeps running
            self.post_message(BackendsStopped(f"{type(exc).__name__}: {exc}"))

    def on_backend_sweep_started(self, message: BackendSweepStarted) -> None:
        self.run_ids[message.backend] = message.run_id
        self.totals[message.backend] = message.plan.lines_total
        for cell in message.plan.cells:
            self.rows[cell.cell_id] = cell.label
        if self.status == "running":
            self._head(
                Text(f"running on {backend_name(message.backend)} (run {message.run_id})…", style="bold")
            )

    def on_backend_progressed(self, message: BackendProgressed) -> None:
        p = message.event
        self.done[message.backend] = p.done
        self.totals[message.backend] = p.total
        self._progress()
        name = backend_name(message.backend)
        for c in p.cells:
            key = self.rows.get(c.cell_id)
            if key is not None and self.result is None:
                errors = f", {c.errors} failed" if c.errors else ""
                self._set(key, "verdict", Text(f"{name} {c.done}/{c.total}{errors}", style="cyan"))

    def on_backend_sweep_finished(self, message: BackendSweepFinished) -> None:
        event = message.event
        if event.status in ("completed", "completed_with_errors"):
            self.done[message.backend] = self.totals.get(message.backend, self.done.get(message.backend, 0))
            self._progress()

    def _progress(self) -> None:
        bar = self.query_one("#bk-progress", ProgressBar)
        bar.update(total=max(sum(self.totals.values()), 1), progress=sum(self.done.values()))
        self._stats()

    def _stats(self) -> None:
        parts = []
        for b in PAIR:
            parts.append(f"{backend_name(b)}: {self.done.get(b, 0):,}/{self.totals.get(b, 0):,} lines")
        self.query_one("#bk-stats", Static).update(" · ".join(parts))

    def on_backends_compared(self, message: BackendsCompared) -> None:
        self.status = "compared"
        self.show_result(message.result, message.pairs)

    def show_result(self, result: Any, pairs: list[CellPair]) -> None:
        """Fill the cells with their verdicts and list the differing lines of the selected cell."""
        self.result, self.pairs = result, pairs
        self.run_ids = dict(zip(PAIR, result.runs, strict=True))
        table = self.query_one("#bk-cells", DataTable)
        table.clear()
        for pair in pairs:
            comp = pair.comparison
            style = "bold green" if comp.equivalent else "bold red"
            table.add_row(
                Text(pair.label, style="bold"),
                Text(comp.verdict, style=style),
                _metrics_text(comp.metrics),
                key=pair.key,
            )
        head = Text()
        head.append(result.verdict, style="bold green" if result.equivalent else "bold red")
        head.append(
            f"\nruns: {BACKEND_NAMES[PAIR[0]]} {result.runs[0]} · {BACKEND_NAMES[PAIR[1]]} {result.runs[1]}",
            style="dim",
        )
        self._head(head)
        # what was compared (also when the runs were not watched from here)
        lines = sum(c.lines for c in result.cells)
        self.done = {b: lines for b in PAIR}
        self.totals = dict(self.done)
        self._stats()
        bar = self.query_one("#bk-progress", ProgressBar)
        bar.update(total=max(bar.total or 1, 1), progress=bar.total or 1)
        if pairs:
            table.move_cursor(row=0)
            self._show_cell(0)
            table.focus()

    def on_backends_stopped(self, message: BackendsStopped) -> None:
        if message.cancelled:
            self.status = "cancelled"
            self._head(
                Text(
                    "cancelled: nothing compared (the runs so far are in Runs, resumable) · ctrl+g starts again",
                    style="bold yellow",
                )
            )
            self._mark_unfinished("cancelled", "yellow")
            return
        self.status = "failed"
        self.error = message.error
        self._head(Text(f"the comparison stopped: {message.error}", style="bold red"))
        self._mark_unfinished("not compared", "red")
        self.notify(message.error or "the comparison stopped", severity="error", timeout=8)

    def _mark_unfinished(self, word: str, style: str) -> None:
        for key in set(self.rows.values()):
            self._set(key, "verdict", Text(word, style=style))

    def on_worker_state_changed(self, event: Worker.StateChanged) -> None:
        if event.state == WorkerState.ERROR and event.worker.error is not None:
            self.status = "failed"
            self.fail(event.worker.error, title="The comparison worker failed")

    def action_cancel(self) -> None:
        if not self.running or self.worker is None or self.status == "cancelling":
            self.notify("no comparison is running", severity="warning")
            return
        # the engine watches this event: lines in flight finish, then the run ends as cancelled
        self.worker.cancelled_event.set()
        self.status = "cancelling"
        self._head(Text("cancelling: lines in flight finish, then the run stops", style="bold yellow"))

    def action_toggle_limit(self) -> None:
        if self.running or self.options is None:
            self.notify("the comparison is running", severity="warning")
            return
        limit = None if self.options.limit == 4 else 4
        self.options = replace(self.options, limit=limit)
        self.notify("first 4 lines of each dataset" if limit else "every line", timeout=2)
        self.prepare(self.options)

    def action_back(self) -> None:
        if self.running:
            self.confirm_cancel_and_leave(
                self.worker, "The comparison is running. Cancel it and leave? (Its runs stay in Runs.)"
            )
            return
        super().action_back()

    # ------------------------------------------------------------------------------ the differing lines

    def on_data_table_row_highlighted(self, event: DataTable.RowHighlighted) -> None:
        if event.data_table.id == "bk-cells" and self.pairs:
            self._show_cell(event.cursor_row)

    def on_data_table_row_selected(self, event: DataTable.RowSelected) -> None:
        if not self.pairs:
            return
        if event.data_table.id == "bk-cells":
            self._open(self._selected_pair(), None)
        elif event.data_table.id == "bk-lines":
            self.action_open_line()

    def _selected_pair(self) -> CellPair | None:
        row = self.query_one("#bk-cells", DataTable).cursor_row
        return self.pairs[row] if self.pairs and row is not None and 0 <= row < len(self.pairs) else None

    def _show_cell(self, index: int) -> None:
        if not 0 <= index < len(self.pairs):
            return
        pair = self.pairs[index]
        comp = pair.comparison
        lines = self.query_one("#bk-lines", DataTable)
        lines.clear()
        self.listed = comp.differing[:MAX_LISTED]
        width = self._lines_width or self._out_width()
        from llmops_tui.core.linediff import output_text

        for d in self.listed:
            cells = []
            for b in PAIR:
                side = d.get(b) or {}
                if side.get("status") != "ok":
                    cells.append(
                        Text(short(f"{side.get('status')}: {side.get('error') or ''}", width), "red")
                    )
                else:
                    cells.append(Text(short(output_text(side.get("outputs")), width)))
            lines.add_row(str(d["line"]), *cells)
        caption = Text(pair.key, style="bold")  # every choice of the cell, its dataset too
        differ = len(comp.differing)
        if differ:
            more = f" (the first {len(self.listed)} listed)" if len(comp.differing) > len(self.listed) else ""
            caption.append(
                f"\n{differ} of {comp.lines} lines differ{more}: enter or l opens one side by side",
                style="yellow",
            )
        elif comp.equivalent:
            caption.append(f"\nall {comp.lines} lines identical", style="green")
        else:
            caption.append(f"\n{comp.verdict}", style="red")
        tests = _tests_text(comp.tests)
        if tests:
            caption.append("\n")
            caption.append_text(tests)
        self._caption(caption)

    def action_open_line(self) -> None:
        pair = self._selected_pair()
        if pair is None:
            self.notify("nothing compared yet (ctrl+g runs both)", severity="warning")
            return
        row = self.query_one("#bk-lines", DataTable).cursor_row
        line = (
            self.listed[row]["line"] if self.listed and row is not None and row < len(self.listed) else None
        )
        self._open(pair, line)

    def _open(self, pair: CellPair | None, line: int | None) -> None:
        if pair is None or self.result is None:
            return
        if pair.cell_a is None or pair.cell_b is None:
            self.notify(f"{pair.label}: {pair.comparison.verdict}", severity="warning")
            return
        if line is None and pair.comparison.differing:
            line = pair.comparison.differing[0]["line"]
        run_a, run_b = self.result.runs
        self.app.push_screen(
            BackendLinesScreen(
                run_a,
                f"{run_a}:{pair.cell_a}",
                f"{run_b}:{pair.cell_b}",
                comparison=_Sides(
                    [
                        _Side(
                            f"{run_a}:{pair.cell_a}", f"{BACKEND_NAMES[PAIR[0]]} · {pair.label}", pair.dataset
                        ),
                        _Side(
                            f"{run_b}:{pair.cell_b}", f"{BACKEND_NAMES[PAIR[1]]} · {pair.label}", pair.dataset
                        ),
                    ]
                ),
                only="differ" if pair.comparison.differing else "all",
                line=line,
            )
        )

    # ------------------------------------------------------------------------------------- helpers

    def _head(self, text: Text) -> None:
        self.query_one("#bk-head", Static).update(text)

    def _caption(self, text: Text) -> None:
        self.query_one("#bk-caption", Static).update(text)

    def _set(self, key: str, column: str, value: Any) -> None:
        try:
            self.query_one("#bk-cells", DataTable).update_cell(key, column, value, update_width=True)
        except Exception:  # noqa: BLE001 - a row that is gone (the table was refilled) is not worth a crash
            pass


def _metrics_text(metrics: dict[str, dict[str, Any]]) -> Text:
    """``all 2 equal`` or the metrics that moved with their delta (B - A)."""
    if not metrics:
        return Text("-", style="dim")
    moved = [
        f"{k.split('.', 1)[-1]} {v['delta']:+.3g}" if v.get("delta") is not None else f"{k} missing"
        for k, v in metrics.items()
        if v.get("delta") != 0
    ]
    if not moved:
        return Text(f"all {len(metrics)} equal", style="green")
    return Text(", ".join(moved), style="yellow")


def _tests_text(tests: dict[str, dict[str, Any]]) -> Text | None:
    """The paired test of each per-line score (B against A), one short phrase each: what the verdict rests on."""
    if not tests:
        return None
    names = [k.split(".", 1)[-1] for k in tests]
    unique = len(set(names)) == len(names)
    text = Text("paired tests: ", style="dim")
    for i, (key, t) in enumerate(tests.items()):
        if i:
            text.append(" · ", style="dim")
        name = key.split(".", 1)[-1] if unique else key
        if t.get("p_value") is None:
            text.append(f"{name} {t.get('note') or 'not tested'}", style="dim")
            continue
        if t.get("delta") == 0 and not t.get("significant"):
            text.append(f"{name} identical on {t.get('n')} lines", style="green")
            continue
        verdict = "significant" if t.get("significant") else "not significant"
        few = ", too few lines" if "too few" in str(t.get("note")) else ""
        text.append(
            f"{name} Δ {t['delta']:+.3g}, p {t['p_value']:.2g} {verdict} (n {t.get('n')}{few})",
            style="bold red" if t.get("significant") else "yellow",
        )
    return text


@dataclass
class _Side:
    cell_id: str
    label: str
    dataset: str


@dataclass
class _Sides:
    """What the line view reads from a comparison: the cells' labels and datasets."""

    cells: list[_Side]

    def cell(self, cell_id: str) -> _Side | None:
        return next((c for c in self.cells if c.cell_id == cell_id), None)


class BackendLinesScreen(LineDiffScreen):
    """The line view of one cell on both backends (A Prompt flow, B Agent Framework), opened on ``line``."""

    def __init__(self, run_id: str, cell_a: str, cell_b: str, *, line: int | None = None, **kw: Any) -> None:
        super().__init__(run_id, cell_a, cell_b, **kw)
        self.target_line = line

    def show_lines(self, diffs: list[Any]) -> None:
        super().show_lines(diffs)
        if self.target_line is None:
            return
        index = next((i for i, d in enumerate(diffs) if d.line == self.target_line), None)
        self.target_line = None  # only the first time: a filter change keeps the person's place
        if index is None:
            return
        from llmops_tui.tui.screens.line_diff import LineTable

        table = self.query_one("#ld-table", LineTable)
        if index >= table.loaded:
            table.load_more(upto=index + 1)
        table.move_cursor(row=index)
        self._detail(index)
