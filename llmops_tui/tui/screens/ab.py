"""The A/B screen of a use case's deployment: live request counts per arm, the comparison of the arms
(metrics with intervals, unpaired tests, gates, verdict), and promote / roll back with confirmation.

Everything runs through the same core as ``llmops traffic`` and ``llmops promote``: the store's traffic run,
:func:`llmops_tui.core.traffic.compare_traffic` and :func:`llmops_tui.deploy.promote.promote`. Blocking work
(evaluation, comparison, promotion) runs in thread workers that only post messages.
"""

from __future__ import annotations

from typing import Any

from textual import on, work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Vertical
from textual.message import Message
from textual.widgets import DataTable, Static

from llmops_tui.core.errors import LlmopsError
from llmops_tui.tui.screens.base import BaseScreen


class ABComputed(Message):
    """A worker finished: the comparison (or None) and a line for people."""

    def __init__(self, comparison: dict[str, Any] | None, note: str = "") -> None:
        super().__init__()
        self.comparison = comparison
        self.note = note


class ABFailed(Message):
    def __init__(self, error: str) -> None:
        super().__init__()
        self.error = error


def _fmt(value: Any, spec: str = ".3g") -> str:
    return "-" if value is None else format(value, spec)


class ABScreen(BaseScreen):
    """A/B of one use case and environment (the newest traffic run)."""

    TITLE = "A/B"
    BINDINGS = [
        *BaseScreen.BINDINGS,
        Binding("r", "refresh", "Refresh", id="ab_refresh"),
        Binding("e", "evaluate", "Evaluate", id="ab_evaluate"),
        Binding("p", "promote", "Promote B", id="ab_promote"),
        Binding("b", "rollback", "Roll back", id="ab_rollback"),
    ]
    DEFAULT_CSS = """
    ABScreen #ab-info { height: auto; padding: 0 1; }
    ABScreen #ab-arms { height: auto; max-height: 8; }
    ABScreen #ab-tests { height: 1fr; min-height: 4; }
    ABScreen #ab-verdict { height: auto; padding: 0 1; text-style: bold; }
    """

    def __init__(self, use_case: str | None = None, env: str | None = None) -> None:
        super().__init__()
        self.use_case_name = use_case or ""
        self.env = env
        self.run_id: str | None = None
        self.comparison: dict[str, Any] | None = None
        self.busy = False

    def header_title(self) -> str:
        return f"A/B · {self.use_case_name}" + (f" · {self.env}" if self.env else "")

    def compose_body(self) -> ComposeResult:
        with Vertical():
            yield Static("looking for captured traffic…", id="ab-info", markup=False)
            yield DataTable(id="ab-arms", cursor_type="row", zebra_stripes=True)
            yield DataTable(id="ab-tests", cursor_type="row", zebra_stripes=True)
            yield Static("", id="ab-verdict", markup=False)

    def on_mount(self) -> None:
        arms = self.query_one("#ab-arms", DataTable)
        for key, label in (
            ("arm", "arm"),
            ("req", "requests"),
            ("err", "errors"),
            ("p95", "p95 ms"),
            ("fb", "feedback"),
        ):
            arms.add_column(label, key=key)
        tests = self.query_one("#ab-tests", DataTable)
        for key, label in (("metric", "metric"), ("a", "A"), ("b", "B"), ("p", "p"), ("need", "n/arm")):
            tests.add_column(label, key=key)
        self._find_run()
        self.set_interval(2.0, self._live_counts)
        self.action_refresh()

    # ------------------------------------------------------------------------------------------ data

    def _find_run(self) -> None:
        from llmops_tui.core.traffic import traffic_runs

        store = self.llmops.store()
        if store is None:
            self.env = self.env or "dev"
            return
        with store:
            runs = traffic_runs(store, self.use_case_name, self.env)
        if runs:
            self.run_id = runs[0].run_id
            self.env = self.env or runs[0].env
        self.env = self.env or "dev"

    def _live_counts(self) -> None:
        """Requests captured per arm so far (cheap: one grouped count), between full comparisons."""
        if not self.run_id:
            return
        store = self.llmops.store()
        if store is None:
            return
        with store:
            counts = store.traffic_count(self.run_id)
        table = self.query_one("#ab-arms", DataTable)
        for name, n in counts.items():
            if name in table.rows:
                table.update_cell(name, "req", str(n))

    def _show(self, data: dict[str, Any]) -> None:
        self.comparison = data
        arms = self.query_one("#ab-arms", DataTable)
        arms.clear()
        for a in data["arms"]:
            arms.add_row(
                f"{a['role'] or '-'} {a['arm'][:12]}",
                str(a["requests"]),
                _fmt(a["error_rate"], ".1%"),
                _fmt(a["latency_ms"]["p95"], ".0f"),
                str(a["feedback"]),
                key=a["arm"],
            )
        tests = self.query_one("#ab-tests", DataTable)
        tests.clear()
        for t in data["tests"]:
            tests.add_row(
                t["metric"],
                _fmt(t["a"]),
                _fmt(t["b"]),
                _fmt(t["p_value"], ".2g"),
                _fmt(t["needed_per_arm"], "d"),
            )
        failed = [g for g in data["gates"] if not g["passed"] and g["arm"] == data["b"]]
        gates = (
            f" · B fails {len(failed)} gate(s)" if failed else " · gates pass for B" if data["gates"] else ""
        )
        self.query_one("#ab-info", Static).update(
            f"env {data['env']} · run {data['run_id']}{gates}\n[r] refresh  [e] evaluate  [p] promote B  [b] roll back"
        )
        self.query_one("#ab-verdict", Static).update(f"verdict: {data['verdict']}")

    # --------------------------------------------------------------------------------------- actions

    def action_refresh(self) -> None:
        self._find_run()
        if not self.run_id:
            self.query_one("#ab-info", Static).update(
                f"no captured traffic for {self.use_case_name} env {self.env}: deploy an A/B split with "
                "--capture (see docs/ab-testing.md)"
            )
            return
        self._compute(evaluate=False)

    def action_evaluate(self) -> None:
        if self.run_id and not self.busy:
            self.query_one("#ab-verdict", Static).update("evaluating the captured requests…")
            self._compute(evaluate=True)

    @work(thread=True, exclusive=True, exit_on_error=False, group="ab")
    def _compute(self, evaluate: bool) -> None:
        from llmops_tui.core.approval import use_case_for_env
        from llmops_tui.core.traffic import compare_traffic, evaluate_traffic

        self.busy = True
        try:
            root = self.llmops.workspace_root
            uc = use_case_for_env(root, self.use_case_name, str(self.env))
            if evaluate:
                evaluate_traffic(root, uc, str(self.env), run_id=self.run_id)
            result = compare_traffic(root, uc, str(self.env), run_id=self.run_id)
            self.post_message(ABComputed(result.to_dict()))
        except LlmopsError as exc:
            self.post_message(ABFailed(str(exc)))
        except Exception as exc:  # the app never dies on a worker error: show it
            self.post_message(ABFailed(f"{type(exc).__name__}: {exc}"))
        finally:
            self.busy = False

    @on(ABComputed)
    def _computed(self, message: ABComputed) -> None:
        if message.comparison is not None:
            self._show(message.comparison)
        if message.note:
            self.notify(message.note)

    @on(ABFailed)
    def _failed(self, message: ABFailed) -> None:
        self.fail(message.error, title="A/B")

    def _confirm_shift(self, arm: str, rollback: bool) -> None:
        from llmops_tui.tui.screens.dialogs import ConfirmScreen

        verb = "Roll back: send all traffic to" if rollback else "Promote: send all traffic to"
        verdict = (self.comparison or {}).get("verdict", "no comparison yet")

        def answered(yes: bool | None) -> None:
            if yes:
                self._shift(arm, rollback)

        self.app.push_screen(ConfirmScreen(f"{verb} arm {arm}?\n\nVerdict: {verdict}"), answered)

    def action_promote(self) -> None:
        self._confirm_shift("B", rollback=False)

    def action_rollback(self) -> None:
        self._confirm_shift("A", rollback=True)

    @work(thread=True, exclusive=True, exit_on_error=False, group="ab-shift")
    def _shift(self, arm: str, rollback: bool) -> None:
        from llmops_tui.deploy.promote import promote

        try:
            done = promote(
                self.llmops.workspace_root,
                self.use_case_name,
                str(self.env),
                arm,
                rollback=rollback,
                reason=f"from the A/B screen: {(self.comparison or {}).get('verdict', '')}",
            )
        except Exception as exc:  # refused (not approved, no router) or failed: say so, keep the app
            self.post_message(ABFailed(str(exc)))
            return
        self.post_message(ABComputed(self.comparison, f"traffic now {done['after']} ({done['mechanism']})"))
