"""Sweep builder: variants, hyperparameter grid, datasets, repetitions, concurrency, model endpoint and
what runs the flows (Prompt flow or Agent Framework); a live plan with its estimate (cells, lines, calls,
tokens, cost, time) before anything starts. ``ctrl+b`` runs the planned cells on both backends and
compares them (the Compare backends screen).

The form can never freeze the app: numeric fields take digits only and have bounds, the form is checked
(and the number of cells counted without building them) on every key, and the plan itself is built in a
background thread after a short pause in typing. A plan over ``MAX_CELLS`` is refused with a message.
"""

from __future__ import annotations

import math
import re
import threading
from dataclasses import dataclass

from rich.table import Table
from rich.text import Text
from textual import work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical, VerticalScroll
from textual.message import Message
from textual.widgets import Button, Checkbox, Input, Label, RadioButton, RadioSet, Static
from textual.worker import get_current_worker

from llmops_tui.core.compare import short_labels
from llmops_tui.core.cost import fmt_cost
from llmops_tui.core.errors import LlmopsError
from llmops_tui.core.sweep import (
    Estimate,
    SweepOptions,
    SweepPlan,
    estimate,
    parse_grid_args,
    plan_sweep,
)
from llmops_tui.core.workspace import UseCase
from llmops_tui.tui.data import any_key_missing
from llmops_tui.tui.screens.backends import BACKEND_NAMES, agent_framework_missing
from llmops_tui.tui.screens.base import BaseScreen

#: The most cells a plan may have; more is refused before any cell is built.
MAX_CELLS = 1000
#: Bounds of the numeric fields: (smallest, largest).
BOUNDS = {"repeat": (1, 100), "concurrency": (1, 64), "first N lines": (1, 1_000_000)}
#: Seconds a sweep spends starting (loading Prompt flow, the flow, the sandbox) whatever its size.
STARTUP_S = 3.0
#: Rows of the screen that are not the plan's list of cells (header, figures, Start button, footer).
PLAN_ROWS = 20
#: Seconds of quiet typing before the plan is rebuilt.
DEBOUNCE_S = 0.15

MODES = [
    ("all", "all combinations"),
    ("one-at-a-time", "one at a time"),
    ("defaults", "defaults only"),
    ("picked", "hand-picked"),
]
#: What runs DAG flows: the value of ``--backend`` and llmops.yaml's ``backend:``, in people's words.
BACKENDS = list(BACKEND_NAMES.items())
ENDPOINTS = [
    ("sandbox", "sandbox model (offline, no key)"),
    ("connections", "configured connections"),
    ("url", "OpenAI-compatible URL"),
    ("azureml", "Azure ML workspace (cloud sweep)"),
]


def split_grid(text: str) -> list[str]:
    """``A.x=0,0.7 B.y=1`` or ``A.x=0,0.7; B.y=1`` -> items for parse_grid_args."""
    return [item for item in re.split(r"[;\s]+", text.strip()) if item]


def count_cells(uc: UseCase, options: SweepOptions) -> int:
    """How many cells ``plan_sweep`` would build, counted without building them (so a huge grid or
    repeat is refused at once). Mirrors the planner's choices of variants, grid, datasets and repeat."""
    flow = uc.standard_flow
    spec = uc.extras.sweep
    per_node = {n.name: len(n.variant_ids) for n in flow.nodes if n.variants} if flow else {}
    mode = options.variants if options.variants is not None else spec.variants
    if isinstance(mode, str) and "." in mode:
        mode = [m.strip() for m in mode.split(",") if m.strip()]
    if not per_node or mode == "defaults":
        combos = 1
    elif mode == "all":
        combos = math.prod(per_node.values())
    elif mode == "one-at-a-time":
        combos = 1 + sum(n - 1 for n in per_node.values())
    elif isinstance(mode, list):
        chosen: dict[str, set[str]] = {}
        for item in mode:
            node, _, vid = str(item).partition(".")
            chosen.setdefault(node, set()).add(vid)
        combos = math.prod(len(chosen.get(n, ())) or 1 for n in per_node)
    else:
        combos = 1
    grid = options.grid if options.grid is not None else dict(spec.grid)
    params = math.prod(len(v) if isinstance(v, list) else 1 for v in grid.values())
    datasets = len(options.datasets or spec.datasets or uc.datasets) or 1
    repeat = options.repeat if options.repeat is not None else spec.repeat
    return combos * params * datasets * max(int(repeat or 1), 1)


@dataclass
class _Planned:
    generation: int
    plan: SweepPlan | None
    estimate: Estimate | None
    options: SweepOptions | None
    error: str | None


class BackendChecked(Message):
    """Whether Agent Framework can run here (checked off the UI thread: importing it takes a moment)."""

    def __init__(self, missing: str | None) -> None:
        super().__init__()
        self.missing = missing


class PlanReady(Message):
    """The background planner finished (or refused) the form as it was at ``generation``."""

    def __init__(self, result: _Planned) -> None:
        super().__init__()
        self.result = result


def fmt_duration(seconds: float) -> str:
    if seconds < 90:
        return f"{seconds:.0f} s"
    if seconds < 5400:
        return f"{seconds / 60:.0f} min"
    return f"{seconds / 3600:.1f} h"


class SweepBuilderScreen(BaseScreen):
    TITLE = "Sweep builder"
    BINDINGS = [
        Binding("ctrl+g", "start", "Start sweep", id="start_sweep", priority=True),
        Binding("ctrl+l", "toggle_limit", "Quick (4 lines)", id="quick"),
        Binding("ctrl+b", "compare_backends", "Compare backends", id="sweep_compare_backends", priority=True),
    ]
    DEFAULT_CSS = """
    SweepBuilderScreen #form { width: 1fr; padding: 0 1; }
    SweepBuilderScreen #plan-side { width: 62; padding: 0 1; border-left: solid $primary 30%; }
    SweepBuilderScreen .section { text-style: bold; color: $text-primary; margin-top: 1; }
    SweepBuilderScreen RadioSet { width: 100%; height: auto; }
    SweepBuilderScreen #picks { height: auto; }
    SweepBuilderScreen #datasets { height: auto; }
    SweepBuilderScreen Checkbox { height: 1; border: none; padding: 0 1; }
    SweepBuilderScreen Checkbox:focus { border: none; background: $boost; }
    SweepBuilderScreen .numbers { height: auto; }
    SweepBuilderScreen .numbers > Vertical { width: 1fr; height: auto; }
    SweepBuilderScreen #plan { height: auto; }
    SweepBuilderScreen #plan-error { height: auto; color: $error; }
    SweepBuilderScreen #grid-error { height: auto; color: $error; }
    SweepBuilderScreen #backend-hint { height: auto; color: $text-warning; }
    SweepBuilderScreen #start { width: 100%; margin-top: 1; }
    SweepBuilderScreen.narrow #plan-side { width: 36; }
    SweepBuilderScreen.narrow .numbers { layout: vertical; }
    SweepBuilderScreen.narrow .section { margin-top: 0; }
    """

    def __init__(self, use_case: str) -> None:
        super().__init__()
        self.use_case_name = use_case
        self.variant_boxes: dict[str, tuple[str, str]] = {}
        self.dataset_boxes: dict[str, str] = {}
        self._picks: dict[str, bool] = {}  # hand-picked variant ticks, kept while another mode shows
        self.plan: SweepPlan | None = None
        self.estimate: Estimate | None = None
        self.plan_options: SweepOptions | None = None
        # Every change of the form bumps the generation; a plan built for an older one is dropped.
        self._generation = 0
        self._lock = threading.Lock()
        #: why the form has no plan (shown under the plan; None when it has one)
        self.plan_error: str | None = None
        #: why Agent Framework cannot run here (None: it can, or not checked yet)
        self.af_missing: str | None = None

    def header_title(self) -> str:
        return f"Sweep builder · {self.use_case_name}"

    def compose_body(self) -> ComposeResult:
        uc = self.llmops.use_case(self.use_case_name)
        self.uc = uc
        flow = uc.standard_flow
        spec = uc.extras.sweep
        with Horizontal(classes="body"):
            with VerticalScroll(id="form"):
                yield Label("Variants", classes="section")
                default_mode = spec.variants if isinstance(spec.variants, str) else "picked"
                with RadioSet(id="mode"):
                    for value, label in MODES:
                        yield RadioButton(label, value=value == default_mode, id=f"mode-{value}")
                with Vertical(id="picks"):
                    picked = set(spec.variants) if isinstance(spec.variants, list) else set()
                    n = 0
                    for node in flow.nodes if flow else []:
                        for v in node.variants:
                            box_id = f"pick-{n}"
                            n += 1
                            self.variant_boxes[box_id] = (node.name, v.id)
                            label = f"{node.name} · {v.id}" + (" (default)" if v.is_default else "")
                            tick = f"{node.name}.{v.id}" in picked or v.is_default
                            self._picks[box_id] = tick
                            yield Checkbox(label, value=tick, id=box_id)
                    if n == 0:
                        yield Static(Text("the flow has no node variants", style="dim"))
                yield Label("Hyperparameter grid (NODE.param=v1,v2 ...)", classes="section")
                grid_text = " ".join(f"{k}={','.join(str(x) for x in v)}" for k, v in spec.grid.items())
                llm = [n.name for n in flow.llm_nodes] if flow else []
                example = f"e.g. {llm[0]}.temperature=0,0.7" if llm else "e.g. NODE.temperature=0,0.7"
                yield Input(value=grid_text, placeholder=example, id="grid")
                yield Static(id="grid-error", markup=False)
                yield Label("Datasets", classes="section")
                with Vertical(id="datasets"):
                    chosen = set(spec.datasets) or {d.name for d in uc.datasets}
                    for i, ds in enumerate(uc.datasets):
                        box_id = f"ds-{i}"
                        self.dataset_boxes[box_id] = ds.name
                        rows = "?" if ds.rows is None else ds.rows
                        yield Checkbox(f"{ds.name} ({rows} rows)", value=ds.name in chosen, id=box_id)
                with Horizontal(classes="numbers"):
                    with Vertical():
                        yield Label("Repeat (1-100)", classes="section")
                        yield _digits(str(spec.repeat), "repeat")
                    with Vertical():
                        yield Label("Concurrency (1-64)", classes="section")
                        yield _digits(str(spec.concurrency), "concurrency")
                    with Vertical():
                        yield Label("First N lines", classes="section")
                        limit = self.llmops.settings.limit
                        yield _digits("" if limit is None else str(limit), "limit", placeholder="all")
                yield Label("Model endpoint", classes="section")
                endpoint = self._default_endpoint()
                with RadioSet(id="endpoint"):
                    for value, label in ENDPOINTS:
                        yield RadioButton(label, value=value == endpoint[0], id=f"ep-{value}")
                yield Input(endpoint[1], placeholder="http://127.0.0.1:8000/v1", id="url")
                yield Label("Runs on", classes="section")
                backend = uc.extras.backend or BACKENDS[0][0]
                with RadioSet(id="backend"):
                    for value, label in BACKENDS:
                        yield RadioButton(label, value=value == backend, id=f"be-{value}")
                yield Static(id="backend-hint", markup=False)
            with Vertical(id="plan-side"):
                yield Label("Plan", classes="section")
                yield Static(id="plan", markup=False)
                yield Static(id="plan-error", markup=False)
                yield Button("Start sweep (ctrl+g)", id="start", variant="success")

    def _default_endpoint(self) -> tuple[str, str]:
        app_ep = self.llmops.llm_endpoint
        if app_ep == "sandbox":
            return "sandbox", ""
        if app_ep:
            return "url", app_ep
        # Offline by default: without a key for every connection the sandbox is the only thing that works.
        if any_key_missing(self.uc, self.llmops.workspace_root):
            return "sandbox", ""
        return "connections", ""

    def _calibrate(self) -> None:
        """Seconds per line and LLM call as this machine really ran them, from the largest of the use
        case's recent finished runs on the same kind of endpoint: (wall time - start-up) x concurrency /
        lines, so it includes Prompt flow's per-line overhead and evaluation. Else a default."""
        self.calibration: dict[bool, tuple[float, str]] = {}
        try:
            store = self.llmops.store()
            runs = store.list_runs(self.use_case_name)[:10] if store else []
        except Exception:  # noqa: BLE001 - no calibration is not an error
            runs = []
        flow = self.uc.standard_flow
        calls = max(len(flow.llm_nodes) if flow else 1, 1)
        best: dict[bool, tuple[int, float, str]] = {}
        for run in runs:
            lines = (run.summary or {}).get("lines_done") or 0
            if not run.finished_at or not lines or run.status not in ("completed", "completed_with_errors"):
                continue
            if lines <= best.get(run.uses_sandbox, (0, 0.0, ""))[0]:
                continue
            concurrency = (
                run.config.get("concurrency") or (run.config.get("options") or {}).get("concurrency") or 1
            )
            wall = max(run.finished_at - run.started_at - STARTUP_S, 0.1)
            best[run.uses_sandbox] = (lines, wall * concurrency / (lines * calls), run.run_id)
        for sandbox, (_, per_call, run_id) in best.items():
            self.calibration[sandbox] = (per_call, f"measured by run {run_id}")

    def _latency(self, options: SweepOptions) -> tuple[float, str]:
        sandbox = options.llm_endpoint == "sandbox"
        default = (0.5, "guess: no finished run yet") if sandbox else (1.0, "guess: no finished run yet")
        return self.calibration.get(sandbox, default)

    def on_mount(self) -> None:
        self._calibrate()
        self._sync_enabled()
        self.recompute()
        self._check_backend()

    @work(thread=True, exclusive=True, exit_on_error=False, group="backend-check")
    def _check_backend(self) -> None:
        self.post_message(BackendChecked(agent_framework_missing()))

    def on_backend_checked(self, message: BackendChecked) -> None:
        """Agent Framework not installed: the option says so and how to install it, before any sweep."""
        self.af_missing = message.missing
        if message.missing is None:
            return
        button = self.query_one("#be-agent-framework", RadioButton)
        button.label = f"{BACKEND_NAMES['agent-framework']} (not installed)"
        self.query_one("#backend-hint", Static).update(message.missing)
        self.recompute()

    # ------------------------------------------------------------------------------------ the plan

    def _radio(self, set_id: str, choices: list[tuple[str, str]]) -> str:
        pressed = self.query_one(f"#{set_id}", RadioSet).pressed_button
        if pressed is None or pressed.id is None:
            return choices[0][0]
        return pressed.id.split("-", 1)[1]

    def _int(self, widget_id: str, field: str) -> int | None:
        text = self.query_one(f"#{widget_id}", Input).value.strip()
        if not text:
            return None
        if not text.isdigit():
            raise LlmopsError(f"'{text}' is not a whole number", field=field, hint="digits only")
        value = int(text)
        low, high = BOUNDS[field]
        if not low <= value <= high:
            raise LlmopsError(
                f"{value:,} is out of range", field=field, hint=f"give a number from {low} to {high:,}"
            )
        return value

    def options(self) -> SweepOptions:
        """The SweepOptions the form describes. Raises LlmopsError for bad input."""
        mode = self._radio("mode", MODES)
        variants: str | list[str]
        if mode == "picked":
            variants = [
                f"{n}.{v}"
                for box_id, (n, v) in self.variant_boxes.items()
                if self.query_one(f"#{box_id}", Checkbox).value
            ]
            if not variants:
                raise LlmopsError("pick at least one variant", field="variants")
        else:
            variants = mode
        grid_error = self.query_one("#grid-error", Static)
        try:
            grid = parse_grid_args(split_grid(self.query_one("#grid", Input).value))
        except LlmopsError as exc:
            grid_error.update(str(exc))  # beside the field, at once
            raise
        grid_error.update("")
        datasets = [
            name
            for box_id, name in self.dataset_boxes.items()
            if self.query_one(f"#{box_id}", Checkbox).value
        ]
        if self.dataset_boxes and not datasets:
            raise LlmopsError("pick at least one dataset", field="datasets")
        endpoint_kind = self._radio("endpoint", ENDPOINTS)
        if endpoint_kind == "sandbox":
            endpoint = "sandbox"
        elif endpoint_kind == "url":
            endpoint = self.query_one("#url", Input).value.strip()
            if not endpoint.startswith(("http://", "https://")):
                raise LlmopsError(
                    "give an http(s) URL of an OpenAI-compatible server", field="model endpoint"
                )
        else:
            endpoint = None
        target = "azureml" if endpoint_kind == "azureml" else "local"
        backend = self._radio("backend", BACKENDS)
        if backend == "agent-framework" and self.af_missing:
            raise LlmopsError(self.af_missing, field="runs on", hint="or pick Prompt flow")
        limit = self._int("limit", "first N lines")
        return SweepOptions(
            variants=variants,
            grid=grid,
            datasets=datasets or None,
            repeat=self._int("repeat", "repeat"),
            concurrency=self._int("concurrency", "concurrency"),
            llm_endpoint=endpoint,
            limit=limit,
            sandbox_latency_ms=self.llmops.settings.sandbox_latency_ms,
            target=target,
            backend=backend,
        )

    def recompute(self) -> None:
        """Check the form now (cheap: no cells are built) and plan it in the background after a pause.
        An error or a plan over the cap is shown at once and clears the old plan."""
        with self._lock:
            self._generation += 1
            generation = self._generation
        self.plan = self.estimate = self.plan_options = None
        start = self.query_one("#start", Button)
        start.disabled = True
        try:
            options = self.options()
            self._check_size(options)
        except LlmopsError as exc:
            self._show(_Planned(generation, None, None, None, str(exc)))
            return
        self.query_one("#plan-error", Static).update("planning…")
        self._plan_in_background(generation, options)

    def _check_size(self, options: SweepOptions) -> None:
        cells = count_cells(self.uc, options)
        if cells > MAX_CELLS:
            raise LlmopsError(
                f"{cells:,} cells is too many (at most {MAX_CELLS:,})",
                field="plan",
                hint="use fewer variants, grid values, datasets or repetitions",
            )

    def _build(self, generation: int, options: SweepOptions) -> _Planned:
        try:
            plan = plan_sweep(self.uc, options, allow_remote=options.target == "azureml")
            est = estimate(self.uc, plan, latency_s=self._latency(options)[0])
        except LlmopsError as exc:
            return _Planned(generation, None, None, None, str(exc))
        return _Planned(generation, plan, est, options, None)

    @work(thread=True, exclusive=True, exit_on_error=False, group="plan")
    def _plan_in_background(self, generation: int, options: SweepOptions) -> None:
        # Debounce: wait for a pause in typing; a newer change makes this one moot.
        worker = get_current_worker()
        if worker.cancelled_event.wait(DEBOUNCE_S) or generation != self._generation:
            return
        result = self._build(generation, options)
        if generation == self._generation and not worker.is_cancelled:
            self.post_message(PlanReady(result))

    def on_plan_ready(self, message: PlanReady) -> None:
        if message.result.generation == self._generation:
            self._show(message.result)

    def _show(self, result: _Planned) -> None:
        error = self.query_one("#plan-error", Static)
        start = self.query_one("#start", Button)
        self.plan, self.estimate, self.plan_options = result.plan, result.estimate, result.options
        self.plan_error = result.error
        if result.plan is None or result.estimate is None or result.options is None:
            error.update(result.error or "the plan has errors")
            self.query_one("#plan", Static).update("")
            start.disabled = True
            return
        self.uses_sandbox = result.options.llm_endpoint == "sandbox"
        if self.is_current:
            self.update_sandbox_badge()
        error.update("")
        start.disabled = not result.plan.cells
        self.query_one("#plan", Static).update(self._plan_table(result.plan, result.estimate, result.options))

    def plan_now(self) -> SweepPlan | None:
        """The plan of the form as it is now, built here (bounded by ``MAX_CELLS``, so quick)."""
        if self.plan is not None:
            return self.plan
        with self._lock:
            self._generation += 1
            generation = self._generation
        try:
            options = self.options()
            self._check_size(options)
        except LlmopsError as exc:
            self._show(_Planned(generation, None, None, None, str(exc)))
            return None
        self._show(self._build(generation, options))
        return self.plan

    def _plan_table(self, plan: SweepPlan, est: Estimate, options: SweepOptions) -> Table:
        t = Table.grid(padding=(0, 1))
        t.add_column(style="bold")
        t.add_column()
        t.add_row("cells", str(est.cells))
        t.add_row("lines", f"{est.lines:,}")
        t.add_row("LLM calls", f"{est.llm_calls:,}")
        t.add_row(
            "tokens",
            f"~{est.prompt_tokens + est.completion_tokens:,} ({est.prompt_tokens:,} in / {est.completion_tokens:,} out)",
        )
        cost = fmt_cost(est.cost, free=est.cost_free)
        t.add_row("cost", cost)
        t.add_row("time", f"~{fmt_duration(est.wall_s)} at concurrency {est.concurrency}")
        t.add_row("", Text(self._latency(options)[1], style="dim"))
        if options.target == "azureml":
            t.add_row("target", "Azure ML workspace: one cloud run per cell, results pulled home")
        t.add_row("endpoint", options.llm_endpoint or "configured connections")
        t.add_row("runs on", BACKEND_NAMES.get(options.backend or "", options.backend or BACKENDS[0][1]))
        t.add_row("", "")
        # as many cells as fit above the Start button (12 at most; a line says how many more)
        room = min(12, max((self.size.height or self.app.size.height) - PLAN_ROWS, 2))
        shown = plan.cells if len(plan.cells) <= room else plan.cells[: room - 1]
        labels = short_labels(plan.cells)
        for cell in shown:
            t.add_row(Text(f"{cell.lines} lines", style="dim"), Text(labels.get(cell.cell_id, cell.label)))
        if len(plan.cells) > len(shown):
            t.add_row("", Text(f"… and {len(plan.cells) - len(shown)} more cells", style="dim"))
        return t

    def _sync_enabled(self) -> None:
        """Variant boxes can be ticked only when hand-picking; otherwise they show what the mode runs
        (every variant, or the defaults only). Hand-picked ticks come back when you pick again."""
        mode = self._radio("mode", MODES)
        picked = mode == "picked"
        for box_id, (node, vid) in self.variant_boxes.items():
            box = self.query_one(f"#{box_id}", Checkbox)
            if picked:
                value = self._picks.get(box_id, box.value)
            else:
                value = mode in ("all", "one-at-a-time") or vid == self._default_variant(node)
            box.disabled = not picked
            if box.value != value:
                with box.prevent(Checkbox.Changed):
                    box.value = value
        self.query_one("#url", Input).display = self._radio("endpoint", ENDPOINTS) == "url"

    def _default_variant(self, node: str) -> str | None:
        flow = self.uc.standard_flow
        found = flow.node(node) if flow else None
        return found.variant_ids[0] if found is not None and found.variant_ids else None

    # -------------------------------------------------------------------------------------- events

    def on_radio_set_changed(self, event: RadioSet.Changed) -> None:
        self._sync_enabled()
        self.recompute()

    def on_checkbox_changed(self, event: Checkbox.Changed) -> None:
        box_id = event.checkbox.id or ""
        if box_id in self.variant_boxes and self._radio("mode", MODES) == "picked":
            self._picks[box_id] = event.value
        self.recompute()

    def on_input_changed(self, event: Input.Changed) -> None:
        self.recompute()

    def on_button_pressed(self, event: Button.Pressed) -> None:
        if event.button.id == "start":
            self.action_start()

    def action_toggle_limit(self) -> None:
        box = self.query_one("#limit", Input)
        box.value = "" if box.value.strip() == "4" else "4"

    def action_start(self) -> None:
        plan = self.plan_now()
        if plan is None:
            self.notify(self.plan_error or "the plan has errors", severity="error")
            return
        if not plan.cells:
            self.notify("the plan has no cells", severity="warning")
            return
        self.llmops.open_screen("monitor", use_case=self.use_case_name, plan=plan)

    def action_compare_backends(self) -> None:
        """The planned cells on Prompt flow and on Agent Framework, compared line by line."""
        plan = self.plan_now()
        if plan is None:
            self.notify(self.plan_error or "the plan has errors", severity="error")
            return
        if plan.options.target == "azureml":
            self.notify(
                "backends are compared on this machine: pick another model endpoint", severity="error"
            )
            return
        self.llmops.open_screen("backends", use_case=self.use_case_name, options=plan.options, start=True)


def _digits(value: str, widget_id: str, placeholder: str = "") -> Input:
    """A numeric field: digits only, at most 10 of them (bounds are checked with the rest of the form)."""
    return Input(value, placeholder=placeholder, id=widget_id, restrict=r"[0-9]*", max_length=10)
