"""Run monitor: a sweep running live. A thread worker iterates the engine's events and posts messages;
this screen owns every widget change. Cancel keeps the run resumable; resume runs only what is missing."""

from __future__ import annotations

from typing import Any

from rich.text import Text
from textual import work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Vertical
from textual.widgets import DataTable, ProgressBar, RichLog, Static
from textual.worker import Worker, WorkerState, get_current_worker

from llmops_tui.core import events as ev
from llmops_tui.core.errors import LlmopsError
from llmops_tui.core.sweep import SweepPlan
from llmops_tui.tui.data import fmt_cost
from llmops_tui.tui.messages import SweepCrashed, SweepEventPosted, SweepProgressed
from llmops_tui.tui.screens.base import BaseScreen

CELL_COLUMNS = [
    ("cell", "Cell"),
    ("label", "Variants / params"),
    ("dataset", "Dataset"),
    ("done", "Lines"),
    ("errors", "Errors"),
    ("status", "Status"),
    ("metrics", "Metrics"),
]


class RunMonitorScreen(BaseScreen):
    TITLE = "Run monitor"
    BINDINGS = [
        Binding("c", "cancel", "Cancel run", id="cancel_run"),
        Binding("R", "resume", "Resume", id="resume_run"),
        Binding("o", "open_compare", "Compare", id="open_compare"),
    ]
    DEFAULT_CSS = """
    RunMonitorScreen #run-head { height: auto; padding: 0 1; }
    RunMonitorScreen ProgressBar { padding: 0 1; width: 100%; }
    RunMonitorScreen ProgressBar Bar { width: 1fr; }
    RunMonitorScreen #run-stats { height: auto; padding: 0 1; }
    RunMonitorScreen #cells { height: 1fr; }
    RunMonitorScreen RichLog { height: 10; border-top: solid $primary 30%; }
    """

    def __init__(
        self, use_case: str | None = None, plan: SweepPlan | None = None, run_id: str | None = None
    ) -> None:
        super().__init__()
        self.use_case_name = use_case
        self.plan = plan
        self.run_id = run_id
        self.resume_mode = plan is None
        self.status = "starting"
        self.metrics: dict[str, dict[str, float]] = {}
        self.worker: Worker | None = None
        self.finished_summary: dict[str, Any] | None = None
        self.errors_seen = 0

    def header_title(self) -> str:
        return f"Run monitor · {self.use_case_name or ''}"

    def compose_body(self) -> ComposeResult:
        with Vertical(classes="body"):
            yield Static(id="run-head", markup=False)
            yield ProgressBar(id="overall", show_eta=False)
            yield Static(id="run-stats", markup=False)
            yield DataTable(id="cells", cursor_type="row")
            yield RichLog(id="log", wrap=True, markup=False, max_lines=2000)

    def on_mount(self) -> None:
        table = self.query_one("#cells", DataTable)
        for key, label in CELL_COLUMNS:
            table.add_column(label, key=key)
        if self.plan is not None:
            self.uses_sandbox = self.plan.options.llm_endpoint == "sandbox"
            for cell in self.plan.cells:
                self._add_cell_row(cell.cell_id, cell.label, cell.dataset, cell.lines)
            self.query_one(ProgressBar).update(total=max(self.plan.lines_total, 1), progress=0)
            self._head(f"starting a sweep of {len(self.plan.cells)} cells, {self.plan.lines_total:,} lines")
        else:
            self._prepare_resume()
        self.update_sandbox_badge()
        self.start()

    def _prepare_resume(self) -> None:
        store = self.llmops.store()
        run = store.get_run(self.run_id) if store and self.run_id else None
        if run is None:
            self._head(f"no run '{self.run_id}' in this workspace")
            return
        self.use_case_name = run.use_case
        self.uses_sandbox = run.uses_sandbox
        from llmops_tui.core.compare import cell_label

        stats = store.line_stats(run.run_id)
        total = 0
        for c in store.cells(run.run_id):
            self._add_cell_row(
                c.cell_id, cell_label(c.variants, c.params, c.dataset, c.repeat), c.dataset, c.lines_total
            )
            done = (stats.get(c.cell_id) or {}).get("lines", 0)
            self._set(c.cell_id, "done", f"{done}/{c.lines_total}")
            total += c.lines_total
        self.query_one(ProgressBar).update(total=max(total, 1), progress=0)
        self._head(f"resuming run {run.run_id} ({run.status})")

    def _add_cell_row(self, cell_id: str, label: str, dataset: str, lines: int) -> None:
        table = self.query_one("#cells", DataTable)
        table.add_row(
            cell_id, label, dataset, f"0/{lines}", "0", Text("pending", style="dim"), "", key=cell_id
        )

    def _set(self, cell_id: str, column: str, value: Any) -> None:
        table = self.query_one("#cells", DataTable)
        try:
            table.update_cell(cell_id, column, value, update_width=column == "metrics")
        except Exception:  # noqa: BLE001 - an unknown cell (older run layout) is not worth a crash
            pass

    def _head(self, text: str) -> None:
        self.query_one("#run-head", Static).update(Text(text, style="bold"))

    # -------------------------------------------------------------------------------------- worker

    def start(self) -> None:
        self.status = "running"
        self.worker = self.run_engine(self.plan, self.run_id if self.resume_mode else None)

    @work(thread=True, exclusive=True, exit_on_error=False, group="sweep", name="sweep")
    def run_engine(self, plan: SweepPlan | None, resume_run_id: str | None) -> None:
        worker = get_current_worker()
        root = self.llmops.workspace_root
        try:
            from llmops_tui.core import dispatch  # promptflow is imported when the sweep starts

            if resume_run_id:
                events = dispatch.resume(root, resume_run_id, cancel=worker.cancelled_event)
            else:
                uc = self.llmops.use_case(self.use_case_name or "")
                assert plan is not None
                events = dispatch.start_sweep(root, uc, plan, cancel=worker.cancelled_event)
            for event in events:
                if isinstance(event, ev.Progress):
                    self.post_message(SweepProgressed(event))
                else:
                    self.post_message(SweepEventPosted(event))
        except LlmopsError as exc:
            self.post_message(SweepCrashed(str(exc)))
        except Exception as exc:  # noqa: BLE001 - shown on screen, the app keeps running
            self.post_message(SweepCrashed(f"{type(exc).__name__}: {exc}"))

    def on_sweep_progressed(self, message: SweepProgressed) -> None:
        p: ev.Progress = message.event
        bar = self.query_one(ProgressBar)
        bar.update(total=max(p.total, 1), progress=p.done)
        tokens = f"{p.tokens:,}"
        cost = "free (sandbox)" if self.uses_sandbox else fmt_cost(p.cost)
        self.query_one("#run-stats", Static).update(
            f"{p.done:,}/{p.total:,} lines · {p.lines_per_s:.1f} lines/s · {p.llm_calls:,} LLM calls"
            f" ({p.cache_hits:,} cached) · {tokens} tokens · cost {cost} · {p.retries} retries · "
            f"{p.errors} errors · {p.elapsed_s:.1f} s"
        )
        for c in p.cells:
            self._set(c.cell_id, "done", f"{c.done}/{c.total}")
            self._set(c.cell_id, "errors", Text(str(c.errors), style="red" if c.errors else ""))
            if 0 < c.done < c.total:
                self._set(c.cell_id, "status", Text("running", style="cyan"))

    def on_sweep_event_posted(self, message: SweepEventPosted) -> None:
        event = message.event
        log = self.query_one(RichLog)
        if isinstance(event, ev.SweepStarted):
            self.run_id = event.run_id
            verb = "resumed" if event.resumed else "started"
            self._head(f"run {event.run_id} {verb}: {event.cells} cells, {event.lines_total:,} lines")
            self.query_one(ProgressBar).update(
                total=max(event.lines_total, 1), progress=event.lines_already_done
            )
            log.write(Text(f"run {event.run_id} {verb}", style="bold"))
        elif isinstance(event, ev.LineFailed):
            self.errors_seen += 1
            log.write(
                Text(
                    f"x {event.cell_id} line {event.line} failed after {event.attempts} attempt(s): {event.error}",
                    style="red",
                )
            )
        elif isinstance(event, ev.RetryScheduled):
            log.write(
                Text(
                    f"~ {event.cell_id} line {event.line} retry {event.attempt} in {event.delay_s:.1f} s: {event.reason}",
                    style="yellow",
                )
            )
        elif isinstance(event, ev.CellFinished):
            style = "green" if not event.errors else "yellow"
            self._set(
                event.cell_id,
                "status",
                Text("done" if not event.errors else f"done, {event.errors} errors", style=style),
            )
            self._set(
                event.cell_id,
                "done",
                f"{event.lines}/{event.lines}"
                if not event.errors
                else self._cell_value(event.cell_id, "done"),
            )
        elif isinstance(event, ev.EvaluationStarted):
            self._set(event.cell_id, "status", Text(f"evaluating ({event.evaluator})", style="magenta"))
        elif isinstance(event, ev.MetricsReady):
            self.metrics.setdefault(event.cell_id, {}).update(
                {f"{event.evaluator}.{k}": v for k, v in event.metrics.items()}
            )
            text = " ".join(
                f"{k}={v:.3f}" for k, v in self.metrics[event.cell_id].items() if isinstance(v, int | float)
            )
            self._set(event.cell_id, "metrics", text)
            self._set(event.cell_id, "status", Text("scored", style="green"))
        elif isinstance(event, ev.SweepFinished):
            self._finished(event)

    def _cell_value(self, cell_id: str, column: str) -> Any:
        try:
            return self.query_one("#cells", DataTable).get_cell(cell_id, column)
        except Exception:  # noqa: BLE001
            return ""

    def _finished(self, event: ev.SweepFinished) -> None:
        self.status = event.status
        self.finished_summary = event.summary
        log = self.query_one(RichLog)
        style = {"completed": "green", "cancelled": "yellow"}.get(event.status, "red")
        hint = {
            "completed": "press o to compare the cells",
            "cancelled": "press R to resume: only missing lines run",
        }.get(event.status, "press R to resume after fixing the cause")
        self._head(f"run {event.run_id} {event.status} — {hint}")
        self.query_one("#run-head", Static).styles.color = None
        log.write(
            Text(
                f"run {event.run_id} {event.status}" + (f": {event.error}" if event.error else ""),
                style=style,
            )
        )
        if event.status == "completed":
            bar = self.query_one(ProgressBar)
            bar.update(progress=bar.total)
        self.notify(
            f"run {event.run_id} {event.status}",
            severity="information" if event.status == "completed" else "warning",
        )

    def on_sweep_crashed(self, message: SweepCrashed) -> None:
        self.status = "failed"
        self.query_one(RichLog).write(Text(f"the sweep stopped: {message.error}", style="bold red"))
        self._head(
            f"the sweep stopped: {message.error} — press R to resume when fixed"
            if self.run_id
            else f"the sweep could not start: {message.error}"
        )

    def on_worker_state_changed(self, event: Worker.StateChanged) -> None:
        if event.state == WorkerState.ERROR and event.worker.error is not None:
            self.status = "failed"
            self.fail(event.worker.error, title="The sweep worker failed")

    # -------------------------------------------------------------------------------------- actions

    @property
    def running(self) -> bool:
        return (
            self.worker is not None
            and self.worker.state in (WorkerState.PENDING, WorkerState.RUNNING)
            and self.status in ("running", "cancelling")
        )

    def action_cancel(self) -> None:
        if not self.running or self.worker is None or self.status == "cancelling":
            self.notify("no sweep is running", severity="warning")
            return
        # Set the event the engine watches rather than cancelling the worker: the worker then ends
        # normally after the engine's SweepFinished(cancelled), so its last messages still arrive.
        self.worker.cancelled_event.set()
        self.status = "cancelling"
        self._head("cancelling: lines in flight finish, then the run stops (resumable)")

    def action_resume(self) -> None:
        if self.running or self.status == "cancelling":
            self.notify("the sweep is still running", severity="warning")
            return
        if not self.run_id:
            self.notify("nothing to resume", severity="warning")
            return
        if self.status == "completed":
            self.notify("the run is complete", severity="information")
            return
        self.resume_mode = True
        self.status = "running"
        self.worker = self.run_engine(None, self.run_id)

    def action_open_compare(self) -> None:
        if not self.run_id:
            self.notify("the run has not started yet", severity="warning")
            return
        if self.running:
            self.notify("the run is still going: the comparison will be partial", severity="warning")
        self.llmops.open_screen("compare", run_id=self.run_id)

    def action_back(self) -> None:
        if self.running:
            from llmops_tui.tui.screens.dialogs import ConfirmScreen

            def answer(yes: bool | None) -> None:
                if yes:
                    if self.worker is not None:
                        self.worker.cancel()
                    self.app.pop_screen()

            self.app.push_screen(
                ConfirmScreen("A sweep is running. Cancel it and leave? (It stays resumable from Runs.)"),
                answer,
            )
            return
        super().action_back()
