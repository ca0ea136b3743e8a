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
from llmops_tui.core.compare import short_labels
from llmops_tui.core.cost import fmt_cost
from llmops_tui.core.errors import LlmopsError
from llmops_tui.core.sweep import SweepPlan
from llmops_tui.tui.data import RUN_STATUSES, status_text, status_words
from llmops_tui.tui.messages import SweepCrashed, SweepEventPosted, SweepProgressed
from llmops_tui.tui.screens.base import BaseScreen

CELL_COLUMNS = [
    ("label", "Cell"),
    ("done", "Lines"),
    ("errors", "Errors"),
    ("status", "Status"),
    ("metrics", "Metrics"),
    ("cell", "Cell id"),
]
#: Cell statuses that mean "not finished": a run that ends leaves none of them behind.
UNFINISHED = ("pending", "running", "evaluating")


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
        self.labels: dict[str, str] = {}
        self.cell_states: dict[str, str] = {}

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
            self.labels = short_labels(self.plan.cells)
            for cell in self.plan.cells:
                self._add_cell_row(cell.cell_id, cell.lines)
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
        stats = store.line_stats(run.run_id)
        total = 0
        cells = store.cells(run.run_id)
        self.labels = short_labels(cells)
        for c in cells:
            self._add_cell_row(c.cell_id, c.lines_total)
            done = (stats.get(c.cell_id) or {}).get("lines", 0)
            self._set(c.cell_id, "done", f"{done}/{c.lines_total}")
            total += c.lines_total
        self.query_one(ProgressBar).update(total=max(total, 1), progress=0)
        self._head(f"resuming run {run.run_id} ({status_words(run.status)})")

    def label(self, cell_id: str) -> str:
        return self.labels.get(cell_id, cell_id)

    def _add_cell_row(self, cell_id: str, lines: int) -> None:
        table = self.query_one("#cells", DataTable)
        self.cell_states[cell_id] = "pending"
        table.add_row(
            Text(self.label(cell_id), style="bold"),
            f"0/{lines}",
            "0",
            Text("pending", style="dim"),
            "",
            Text(cell_id, style="dim"),
            key=cell_id,
        )

    def _set_state(self, cell_id: str, state: str, text: Text) -> None:
        self.cell_states[cell_id] = state
        self._set(cell_id, "status", text)

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
        cost = fmt_cost(p.cost, free=p.cost_free)
        self.query_one("#run-stats", Static).update(
            f"{p.done:,}/{p.total:,} lines · {p.lines_per_s:.1f} lines/s · {p.llm_calls:,} LLM calls"
            f" ({p.cache_hits:,} cached) · {tokens} tokens · cost {cost} · {p.retries} retries · "
            f"{p.errors} errors · {p.elapsed_s:.1f} s"
        )
        for c in p.cells:
            self._set(c.cell_id, "done", f"{c.done}/{c.total}")
            self._set(c.cell_id, "errors", Text(str(c.errors), style="red" if c.errors else ""))
            if 0 < c.done < c.total and self.cell_states.get(c.cell_id) in ("pending", "running"):
                self._set_state(c.cell_id, "running", Text("running", style="cyan"))

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
                    f"x {self.label(event.cell_id)} line {event.line} failed after {event.attempts} attempt(s): {event.error}",
                    style="red",
                )
            )
        elif isinstance(event, ev.RetryScheduled):
            log.write(
                Text(
                    f"~ {self.label(event.cell_id)} line {event.line} retry {event.attempt} in {event.delay_s:.1f} s: {event.reason}",
                    style="yellow",
                )
            )
        elif isinstance(event, ev.CellFinished) and event.error:
            # the cell's flow could not load: none of its lines ran (the cause is in the log below)
            self._set_state(event.cell_id, "failed", Text("cannot run", style="bold red"))
        elif isinstance(event, ev.CellFailed):
            self.query_one(RichLog).write(
                Text(f"cell {self.label(event.cell_id)} cannot run: {event.error}", style="red")
            )
        elif isinstance(event, ev.EvaluationFailed):
            self._set_state(event.cell_id, "failed", Text(f"{event.evaluator} failed", style="bold red"))
        elif isinstance(event, ev.CellFinished):
            style = "green" if not event.errors else "yellow"
            self._set_state(
                event.cell_id,
                "done",
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
            self._set_state(
                event.cell_id, "evaluating", Text(f"evaluating ({event.evaluator})", style="magenta")
            )
        elif isinstance(event, ev.MetricsReady):
            self.metrics.setdefault(event.cell_id, {}).update(
                {f"{event.evaluator}.{k}": v for k, v in event.metrics.items()}
            )
            text = " ".join(
                f"{k}={v:.3f}" for k, v in self.metrics[event.cell_id].items() if isinstance(v, int | float)
            )
            self._set(event.cell_id, "metrics", text)
            self._set_state(event.cell_id, "scored", Text("scored", style="green"))
        elif isinstance(event, ev.SweepFinished):
            self._finished(event)

    def _cell_value(self, cell_id: str, column: str) -> Any:
        try:
            return self.query_one("#cells", DataTable).get_cell(cell_id, column)
        except Exception:  # noqa: BLE001
            return ""

    def _finished(self, event: ev.SweepFinished) -> None:
        status = event.status
        self.status = status
        self.finished_summary = event.summary
        log = self.query_one(RichLog)
        style = RUN_STATUSES.get(status, ("", "", "red"))[2]
        hint = {
            "completed": "press o to compare the cells",
            "completed_with_errors": "some lines failed: press o to compare, the log says why",
            "cancelled": "press R to resume: only missing lines run",
            "interrupted": "press R to resume: only missing lines run",
        }.get(status, "press R to resume after fixing the cause")
        head = Text(f"run {event.run_id} ", style="bold")
        head.append_text(status_text(status))
        if event.error:
            head.append(f": {event.error}", style="red")
        head.append(f" — {hint}", style="bold")
        self.query_one("#run-head", Static).update(head)
        log.write(
            Text(
                f"run {event.run_id} {status_words(status)}" + (f": {event.error}" if event.error else ""),
                style=style,
            )
        )
        # A cell still marked pending, running or evaluating did not finish: it ended with the run.
        finished = status in ("completed", "completed_with_errors")
        for cell_id, state in list(self.cell_states.items()):
            if state in UNFINISHED:
                self._set_state(
                    cell_id, status, Text("done", style="green") if finished else status_text(status)
                )
        if status in ("completed", "completed_with_errors"):
            bar = self.query_one(ProgressBar)
            if bar.total is not None:  # on_mount always sets it; None would be an indeterminate bar
                bar.update(progress=bar.total)
        self.notify(
            f"run {event.run_id} {status_words(status)}" + (f": {event.error}" if event.error else ""),
            severity="information" if status == "completed" else "warning" if status != "failed" else "error",
        )

    def on_sweep_crashed(self, message: SweepCrashed) -> None:
        self.status = "failed"
        for cell_id, state in list(self.cell_states.items()):
            if state in UNFINISHED:
                self._set_state(cell_id, "failed", status_text("failed"))
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
        if self.status in ("completed", "completed_with_errors"):
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
            self.confirm_cancel_and_leave(
                self.worker, "A sweep is running. Cancel it and leave? (It stays resumable from Runs.)"
            )
            return
        super().action_back()
