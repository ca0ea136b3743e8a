"""Sweep builder: variants, hyperparameter grid, datasets, repetitions, concurrency, model endpoint;
a live plan with its estimate (cells, lines, calls, tokens, cost, time) before anything starts."""

from __future__ import annotations

import re

from rich.table import Table
from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical, VerticalScroll
from textual.widgets import Button, Checkbox, Input, Label, RadioButton, RadioSet, Static

from llmops_tui.core.errors import LlmopsError
from llmops_tui.core.sweep import Estimate, SweepOptions, SweepPlan, estimate, parse_grid_args, plan_sweep
from llmops_tui.tui.data import any_key_missing, fmt_cost
from llmops_tui.tui.screens.base import BaseScreen

MODES = [
    ("all", "all combinations"),
    ("one-at-a-time", "one at a time"),
    ("defaults", "defaults only"),
    ("picked", "hand-picked"),
]
ENDPOINTS = [
    ("sandbox", "sandbox model (offline, no key)"),
    ("connections", "configured connections"),
    ("url", "OpenAI-compatible URL"),
    ("azureml", "Azure ML workspace (cloud sweep)"),
]


def split_grid(text: str) -> list[str]:
    """``A.x=0,0.7 B.y=1`` or ``A.x=0,0.7; B.y=1`` -> items for parse_grid_args."""
    return [item for item in re.split(r"[;\s]+", text.strip()) if item]


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
    ]
    DEFAULT_CSS = """
    SweepBuilderScreen #form { width: 1fr; padding: 0 1; }
    SweepBuilderScreen #plan-side { width: 62; padding: 0 1; border-left: solid $primary 30%; }
    SweepBuilderScreen .section { text-style: bold; color: $text-primary; margin-top: 1; }
    SweepBuilderScreen RadioSet { width: 100%; height: auto; }
    SweepBuilderScreen #picks { height: auto; }
    SweepBuilderScreen #datasets { height: auto; }
    SweepBuilderScreen Checkbox { height: 1; border: none; padding: 0 1; }
    SweepBuilderScreen .numbers { height: auto; }
    SweepBuilderScreen .numbers > Vertical { width: 1fr; height: auto; }
    SweepBuilderScreen #plan { height: auto; }
    SweepBuilderScreen #plan-error { height: auto; color: $error; }
    SweepBuilderScreen #start { width: 100%; margin-top: 1; }
    """

    def __init__(self, use_case: str) -> None:
        super().__init__()
        self.use_case_name = use_case
        self.variant_boxes: dict[str, tuple[str, str]] = {}
        self.dataset_boxes: dict[str, str] = {}
        self.plan: SweepPlan | None = None
        self.estimate: Estimate | None = None

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
                            yield Checkbox(
                                label, value=f"{node.name}.{v.id}" in picked or v.is_default, id=box_id
                            )
                    if n == 0:
                        yield Static(Text("the flow has no node variants", style="dim"))
                yield Label("Hyperparameter grid (NODE.param=v1,v2 ...)", classes="section")
                grid_text = " ".join(f"{k}={','.join(str(x) for x in v)}" for k, v in spec.grid.items())
                llm = [n.name for n in flow.llm_nodes] if flow else []
                example = f"e.g. {llm[0]}.temperature=0,0.7" if llm else "e.g. NODE.temperature=0,0.7"
                yield Input(value=grid_text, placeholder=example, id="grid")
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
                        yield Label("Repeat", classes="section")
                        yield Input(str(spec.repeat), id="repeat", type="integer")
                    with Vertical():
                        yield Label("Concurrency", classes="section")
                        yield Input(str(spec.concurrency), id="concurrency", type="integer")
                    with Vertical():
                        yield Label("First N lines (blank: all)", classes="section")
                        limit = self.llmops.settings.limit
                        yield Input("" if limit is None else str(limit), id="limit", type="integer")
                yield Label("Model endpoint", classes="section")
                endpoint = self._default_endpoint()
                with RadioSet(id="endpoint"):
                    for value, label in ENDPOINTS:
                        yield RadioButton(label, value=value == endpoint[0], id=f"ep-{value}")
                yield Input(endpoint[1], placeholder="http://127.0.0.1:8000/v1", id="url")
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

    def on_mount(self) -> None:
        self._sync_enabled()
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
        try:
            return int(text)
        except ValueError:
            raise LlmopsError(f"'{text}' is not a whole number", field=field) from None

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
        grid = parse_grid_args(split_grid(self.query_one("#grid", Input).value))
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
        limit = self._int("limit", "first N lines")
        if limit is not None and limit < 1:
            raise LlmopsError("must be at least 1", field="first N lines")
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
        )

    def recompute(self) -> None:
        error = self.query_one("#plan-error", Static)
        try:
            options = self.options()
            plan = plan_sweep(self.uc, options, allow_remote=options.target == "azureml")
            est = estimate(self.uc, plan, latency_s=0.05 if options.llm_endpoint == "sandbox" else 1.0)
        except LlmopsError as exc:
            self.plan = self.estimate = None
            error.update(str(exc))
            self.query_one("#start", Button).disabled = True
            return
        self.plan, self.estimate = plan, est
        self.uses_sandbox = options.llm_endpoint == "sandbox"
        if self.is_current:
            self.update_sandbox_badge()
        error.update("")
        self.query_one("#start", Button).disabled = not plan.cells
        self.query_one("#plan", Static).update(self._plan_table(plan, est, options))

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
        cost = (
            "sandbox: free"
            if options.llm_endpoint == "sandbox"
            else (fmt_cost(est.cost) if est.cost is not None else "no prices in llmops.yaml")
        )
        t.add_row("cost", cost)
        t.add_row("time", f"~{fmt_duration(est.wall_s)} at concurrency {est.concurrency}")
        if options.target == "azureml":
            t.add_row("target", "Azure ML workspace: one cloud run per cell, results pulled home")
        t.add_row("endpoint", options.llm_endpoint or "configured connections")
        t.add_row("", "")
        shown = plan.cells[:12]
        for cell in shown:
            t.add_row(Text(cell.cell_id, style="dim"), Text(cell.label + f" ({cell.lines} lines)"))
        if len(plan.cells) > len(shown):
            t.add_row("", Text(f"… and {len(plan.cells) - len(shown)} more cells", style="dim"))
        return t

    def _sync_enabled(self) -> None:
        picked = self._radio("mode", MODES) == "picked"
        for box_id in self.variant_boxes:
            self.query_one(f"#{box_id}", Checkbox).disabled = not picked
        self.query_one("#url", Input).display = self._radio("endpoint", ENDPOINTS) == "url"

    # -------------------------------------------------------------------------------------- events

    def on_radio_set_changed(self, event: RadioSet.Changed) -> None:
        self._sync_enabled()
        self.recompute()

    def on_checkbox_changed(self, event: Checkbox.Changed) -> None:
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
        self.recompute()
        if self.plan is None:
            self.notify(
                self.query_one("#plan-error", Static).render().plain or "the plan has errors",
                severity="error",
            )
            return
        if not self.plan.cells:
            self.notify("the plan has no cells", severity="warning")
            return
        self.llmops.open_screen("monitor", use_case=self.use_case_name, plan=self.plan)
