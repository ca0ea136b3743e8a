"""Approval: a lead looks at a candidate cell against the baseline and the gates, sees the exact
configuration that would be approved (variants, params, flow and dataset hashes, model targets, run),
and approves or rejects it for one or more environments. The core writes the signed record."""

from __future__ import annotations

import getpass
import math
from typing import Any

from rich.console import Group
from rich.table import Table
from rich.text import Text
from textual import work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical, VerticalScroll
from textual.widgets import Button, Checkbox, Input, Label, Select, Static

from llmops_tui.core.compare import short_labels
from llmops_tui.core.errors import LlmopsError
from llmops_tui.tui.messages import DataLoaded
from llmops_tui.tui.screens.base import BaseScreen
from llmops_tui.tui.screens.compare import fmt_delta, fmt_value

DEFAULT_ENVS = ["dev", "prod"]


def _who() -> str:
    try:
        return getpass.getuser()
    except Exception:  # noqa: BLE001
        return ""


class ApprovalScreen(BaseScreen):
    TITLE = "Approval"
    BINDINGS = [
        Binding("ctrl+a", "decide('approved')", "Approve", id="approve", priority=True),
        Binding("ctrl+x", "decide('rejected')", "Reject", id="reject", priority=True),
    ]
    DEFAULT_CSS = """
    ApprovalScreen #ap-left { width: 1fr; padding: 0 1; }
    ApprovalScreen #ap-right { width: 56; padding: 0 1; border-left: solid $primary 30%; }
    ApprovalScreen .section { text-style: bold; color: $text-primary; margin-top: 1; }
    ApprovalScreen Checkbox { height: 1; border: none; padding: 0 1; }
    ApprovalScreen #envs { height: auto; }
    ApprovalScreen Horizontal.buttons { height: auto; margin-top: 1; }
    ApprovalScreen Horizontal.buttons Button { margin-right: 1; }
    ApprovalScreen #ap-result { height: auto; margin-top: 1; }
    ApprovalScreen #override-box { height: auto; }
    ApprovalScreen.narrow .body { layout: vertical; }
    ApprovalScreen.narrow #ap-left { width: 100%; height: 1fr; }
    ApprovalScreen.narrow #ap-right { width: 100%; height: 1fr; border-left: none;
        border-top: solid $primary 30%; }
    ApprovalScreen.narrow .section { margin-top: 0; }
    """

    def __init__(self, run_id: str, cell_id: str | None = None, comparison: Any = None) -> None:
        super().__init__()
        self.run_id = run_id
        self.cell_id = cell_id
        self.comparison = comparison
        self.record: Any = None
        self.env_boxes: dict[str, str] = {}
        self.failing: list[dict] = []

    def header_title(self) -> str:
        return f"Approval · run {self.run_id}"

    def compose_body(self) -> ComposeResult:
        store = self.llmops.store()
        run = store.get_run(self.run_id) if store else None
        self.run = run
        envs = DEFAULT_ENVS
        if run is not None:
            self.uses_sandbox = run.uses_sandbox
            try:
                envs = self.llmops.use_case(run.use_case).environments or DEFAULT_ENVS
            except LlmopsError:
                pass
        cells = store.cells(run.run_id) if run and store else []
        with Horizontal(classes="body"):
            with VerticalScroll(id="ap-left"):
                yield Static("loading the evidence…", id="ap-evidence", markup=False)
                yield Static(id="ap-config", markup=False)
            with VerticalScroll(id="ap-right"):
                yield Label("Candidate cell", classes="section")
                labels = short_labels(cells)
                yield Select(
                    [(f"{labels.get(c.cell_id, c.cell_id)} ({c.cell_id})", c.cell_id) for c in cells],
                    id="cell",
                    allow_blank=True,
                    prompt="pick a cell",
                )
                yield Label("Environments", classes="section")
                with Vertical(id="envs"):
                    for i, env in enumerate(envs):
                        self.env_boxes[f"env-{i}"] = env
                        yield Checkbox(env, value=i == 0, id=f"env-{i}")
                yield Label("Decided by", classes="section")
                yield Input(_who(), id="by")
                yield Label("Comment", classes="section")
                yield Input(placeholder="why (required to reject)", id="comment")
                with Vertical(id="override-box"):
                    yield Label("Override failing gates: reason", classes="section")
                    yield Input(placeholder="required to approve a cell that fails a gate", id="override")
                with Horizontal(classes="buttons"):
                    yield Button("Approve (ctrl+a)", variant="success", id="approve")
                    yield Button("Reject (ctrl+x)", variant="error", id="reject")
                yield Static(id="ap-result", markup=False)

    def on_mount(self) -> None:
        self.update_sandbox_badge()
        if self.run is None:
            self.query_one("#ap-evidence", Static).update(
                Text(f"no run '{self.run_id}' in this workspace", style="red")
            )
            return
        self.load()

    @work(thread=True, exclusive=True, exit_on_error=False, group="approval", name="approval evidence")
    def load(self) -> None:
        from llmops_tui.core import approval
        from llmops_tui.core.compare import build_comparison

        root = self.llmops.workspace_root
        try:
            comparison = self.comparison
            if comparison is None:
                comparison = build_comparison(self.llmops.store(), self.run_id, workspace_root=root)
            cell_id = self.cell_id or comparison.best_cell()
            env = next(iter(self.env_boxes.values()), "dev")
            record = approval.preview(root, self.run_id, cell_id, env, comparison=comparison)
        except LlmopsError as exc:
            self.post_message(DataLoaded("error", str(exc)))
            return
        self.post_message(DataLoaded("evidence", (comparison, cell_id, record)))

    def on_data_loaded(self, message: DataLoaded) -> None:
        if message.key == "error":
            self.query_one("#ap-evidence", Static).update(Text(message.payload, style="red"))
            return
        self.comparison, self.cell_id, self.record = message.payload
        select = self.query_one("#cell", Select)
        if select.value != self.cell_id:
            with select.prevent(Select.Changed):
                select.value = self.cell_id
        self.failing = list(self.record.failing_gates)
        self.query_one("#override-box").display = bool(self.failing)
        self.query_one("#ap-evidence", Static).update(self._evidence())
        self.query_one("#ap-config", Static).update(self._config())

    def _evidence(self) -> Group:
        cmp, cid = self.comparison, self.cell_id
        base = cmp.baseline
        label = {c.cell_id: c.label for c in cmp.cells}
        t = Table(
            title=f"{label.get(cid, cid)} vs baseline {label.get(base, base)}",
            title_justify="left",
            header_style="bold",
            expand=True,
        )
        t.add_column("metric")
        t.add_column("baseline", justify="right")
        t.add_column("candidate", justify="right")
        t.add_column("delta", justify="right")
        t.add_column("95% CI", justify="right")
        t.add_column("sig.", justify="center")
        for row in cmp.rows:
            if row.group not in ("metric", "quality", "latency", "cost"):
                continue
            b, c = row.values.get(base), row.values.get(cid)
            delta = (
                ""
                if c is None or c.delta is None or (isinstance(c.delta, float) and math.isnan(c.delta))
                else fmt_delta(c.delta, row.key)
            )
            ci = (
                ""
                if c is None or c.ci_low is None
                else f"[{fmt_value(c.ci_low, row.key)}, {fmt_value(c.ci_high, row.key)}]"
            )
            sig = "" if c is None or c.significant is None else ("yes" if c.significant else "no")
            t.add_row(
                row.label,
                fmt_value(b.value if b else None, row.key, free=bool(b and b.free)),
                fmt_value(c.value if c else None, row.key, free=bool(c and c.free)),
                delta,
                ci,
                sig,
            )
        g = Table(title="gates", title_justify="left", header_style="bold", expand=True)
        g.add_column("gate")
        g.add_column("value", justify="right")
        g.add_column("result")
        for gate in self.record.gates:
            ok = gate.get("passed")
            g.add_row(
                str(gate.get("gate") or gate.get("metric")),
                fmt_value(gate.get("value")),
                Text(
                    "pass" if ok else f"FAIL {gate.get('reason') or ''}".strip(),
                    style="green" if ok else "bold red",
                ),
            )
        if not self.record.gates:
            g.add_row(Text("no gates in llmops.yaml", style="dim"), "", "")
        parts = [t, g]
        if self.failing:
            parts.append(
                Text(
                    f"{len(self.failing)} gate(s) fail: approving needs an override reason", style="bold red"
                )
            )
        return Group(*parts)

    def _config(self) -> Table:
        r = self.record
        t = Table.grid(padding=(0, 1))
        t.add_column(style="bold")
        t.add_column()
        t.add_row("", "")
        t.add_row("configuration", "")
        t.add_row("use case", r.use_case)
        t.add_row("run", f"{r.run_id} cell {r.cell_id}")
        t.add_row("variants", ", ".join(f"{k}={v}" for k, v in r.variants.items()) or "defaults")
        t.add_row("params", ", ".join(f"{k}={v}" for k, v in r.params.items()) or "none")
        t.add_row("flow", f"{r.flow_path} (as deployed: {r.flow_hash[:16]})")
        for name, h in sorted(r.source_files.items()):
            t.add_row("", Text(f"{name}  {h[:16]}", style="dim"))
        t.add_row("dataset", r.dataset)
        for name, h in sorted(r.dataset_hashes.items()):
            t.add_row("", Text(f"{name}  {h[:16]}", style="dim"))
        for node, target in r.model_targets.items():
            desc = ", ".join(f"{k}={v}" for k, v in target.items() if v is not None)
            t.add_row("model", f"{node}: {desc}")
        return t

    def on_select_changed(self, event: Select.Changed) -> None:
        if event.select.id == "cell" and isinstance(event.value, str) and event.value != self.cell_id:
            self.cell_id = event.value
            self.query_one("#ap-evidence", Static).update("loading the evidence…")
            self.load()

    def on_button_pressed(self, event: Button.Pressed) -> None:
        if event.button.id in ("approve", "reject"):
            self.action_decide("approved" if event.button.id == "approve" else "rejected")

    def action_decide(self, decision: str) -> None:
        from llmops_tui.core import approval

        result = self.query_one("#ap-result", Static)
        if self.record is None or self.cell_id is None:
            result.update(Text("the evidence is still loading", style="yellow"))
            return
        envs = [env for box_id, env in self.env_boxes.items() if self.query_one(f"#{box_id}", Checkbox).value]
        if not envs:
            result.update(Text("pick at least one environment", style="red"))
            return
        override = self.query_one("#override", Input).value.strip() or None
        if decision == "approved" and self.failing and not override:
            result.update(
                Text("this cell fails a gate: give an override reason to approve it anyway", style="red")
            )
            self.query_one("#override", Input).focus()
            return
        try:
            written = approval.decide(
                self.llmops.workspace_root,
                self.run_id,
                self.cell_id,
                envs,
                decision=decision,
                by=self.query_one("#by", Input).value,
                comment=self.query_one("#comment", Input).value,
                override_reason=override if decision == "approved" else None,
                comparison=self.comparison,
            )
        except LlmopsError as exc:
            result.update(Text(str(exc), style="red"))
            return
        root = self.llmops.workspace_root
        lines = [
            f"{decision} {self.cell_id} for {rec.environment}: {path.relative_to(root) if path.is_relative_to(root) else path}"
            for rec, path in written
        ]
        result.update(Text("\n".join(lines), style="green" if decision == "approved" else "yellow"))
        self.notify(f"{decision}: {', '.join(envs)}")
