"""The app's side of Agent Framework: the backend choice in the sweep builder reaches the plan and the run,
and the Compare backends screen runs a real use case on both backends against the sandbox, shows a verdict
per cell by its label, opens a differing line side by side, and shows errors and cancellation."""

from __future__ import annotations

import shutil
import time
from pathlib import Path

import pytest
from tui_support import copy_workspace, plain

from llmops_tui.core.backends.agent_framework import available
from llmops_tui.tui.app import LlmopsApp
from llmops_tui.tui.settings import AppSettings

REPO = Path(__file__).resolve().parents[1]
SIZE = (80, 24)
needs_af = pytest.mark.skipif(
    available() is not None, reason=f"agent_framework is not importable: {available()}"
)


@pytest.fixture(autouse=True)
def _isolated(monkeypatch, tmp_path):
    monkeypatch.setenv("LLMOPS_TUI_CONFIG_DIR", str(tmp_path / "config"))
    monkeypatch.setenv("TZ", "UTC")
    time.tzset()
    monkeypatch.delenv("AOAI_API_KEY", raising=False)


def make_app(root: Path, **settings) -> LlmopsApp:
    return LlmopsApp(root, settings=AppSettings(**settings), debug=True)


async def _settle(app, pilot) -> None:
    await pilot.pause()
    await app.workers.wait_for_complete()
    await pilot.pause()
    await pilot.pause()


def _bundled(tmp_path: Path, name: str) -> Path:
    root = tmp_path / "bundled"
    shutil.copytree(REPO / "use_cases" / name, root / "use_cases" / name)
    return root


def _no_agent_framework(monkeypatch) -> None:
    from llmops_tui.core.backends import agent_framework

    monkeypatch.setattr(
        agent_framework, "available", lambda: "agent-framework-core is not importable (ModuleNotFoundError)"
    )


# ------------------------------------------------------------------------------------ sweep builder


@needs_af
async def test_the_backend_choice_reaches_the_plan_and_the_run(tmp_path):
    root = copy_workspace(tmp_path)
    app = make_app(root)
    async with app.run_test(size=SIZE) as pilot:
        app.open_screen("sweep", use_case="ner")
        await _settle(app, pilot)
        screen = app.screen
        # no backend: in llmops.yaml, so Prompt flow, named so in the plan
        assert screen.query_one("#be-promptflow-dag").value
        assert screen.plan.options.backend == "promptflow-dag"
        assert "Prompt flow" in plain(screen.query_one("#plan"))
        screen.query_one("#be-agent-framework").value = True
        screen.query_one("#limit").value = "2"
        await _settle(app, pilot)
        assert screen.plan is not None and screen.plan.options.backend == "agent-framework"
        assert "Agent Framework" in plain(screen.query_one("#plan"))
        await pilot.press("ctrl+g")
        await _settle(app, pilot)
        monitor = app.screen
        assert type(monitor).__name__ == "RunMonitorScreen"
        assert monitor.status == "completed", plain(monitor.query_one("#run-head"))
        store = app.store()
        run = store.get_run(monitor.run_id)
        # the dispatcher got it as `llmops sweep --backend agent-framework` gives it
        assert run.config["options"]["backend"] == "agent-framework"
        assert sum(len(store.lines(run.run_id, c.cell_id)) for c in store.cells(run.run_id)) == 4


async def test_the_backend_defaults_to_llmops_yaml(tmp_path):
    root = copy_workspace(tmp_path)
    yaml_path = root / "use_cases" / "ner" / "llmops.yaml"
    yaml_path.write_text(yaml_path.read_text() + "backend: agent-framework\n")
    app = make_app(root)
    async with app.run_test(size=SIZE) as pilot:
        app.open_screen("sweep", use_case="ner")
        await _settle(app, pilot)
        screen = app.screen
        assert screen.query_one("#be-agent-framework").value
        if available() is None:
            assert screen.plan is not None and screen.plan.options.backend == "agent-framework"


async def test_without_agent_framework_the_option_says_how_to_install_it(tmp_path, monkeypatch):
    _no_agent_framework(monkeypatch)
    root = copy_workspace(tmp_path)
    app = make_app(root)
    async with app.run_test(size=SIZE) as pilot:
        app.open_screen("sweep", use_case="ner")
        await _settle(app, pilot)
        screen = app.screen
        assert "not installed" in str(screen.query_one("#be-agent-framework").label)
        assert "llmops deps --backend agent-framework --install" in plain(screen.query_one("#backend-hint"))
        assert screen.plan is not None  # Prompt flow still plans
        screen.query_one("#be-agent-framework").value = True
        await _settle(app, pilot)
        assert screen.plan is None and screen.query_one("#start").disabled
        assert "llmops deps --backend agent-framework --install" in plain(screen.query_one("#plan-error"))
        await pilot.press("ctrl+g")  # refused with the reason, no monitor
        await _settle(app, pilot)
        assert type(app.screen).__name__ == "SweepBuilderScreen"


# --------------------------------------------------------------------------------- compare backends


@needs_af
@pytest.mark.integration
async def test_verdicts_per_cell_for_a_bundled_use_case(tmp_path):
    """From the home screen: b opens the screen on llmops.yaml's sweep, ctrl+g runs both backends."""
    root = _bundled(tmp_path, "support_ticket_classification")
    app = make_app(root, limit=2)
    async with app.run_test(size=SIZE) as pilot:
        await _settle(app, pilot)
        await pilot.press("b")
        await _settle(app, pilot)
        screen = app.screen
        assert type(screen).__name__ == "BackendsScreen"
        assert screen.plan is not None and screen.status == "ready"
        assert "ctrl+g" in plain(screen.query_one("#bk-head"))
        await pilot.press("ctrl+g")
        await _settle(app, pilot)
        assert screen.status == "compared", plain(screen.query_one("#bk-head"))
        table = screen.query_one("#bk-cells")
        assert table.row_count == len(screen.plan.cells) > 1
        cell_ids = {c.cell_id for c in screen.plan.cells}
        for pair in screen.pairs:
            row = [str(v) for v in table.get_row(pair.key)]
            assert row[1] == "equivalent: 2/2 lines identical"
            assert not any(cid in " ".join(row) for cid in cell_ids)  # labels, never hashes
            assert pair.label and pair.label not in cell_ids
        assert screen.result.equivalent
        assert plain(screen.query_one("#bk-head")).startswith(
            f"equivalent: {2 * len(screen.pairs)}/{2 * len(screen.pairs)} lines identical"
        )
        stats = plain(screen.query_one("#bk-stats"))
        assert f"Prompt flow: {screen.plan.lines_total}/{screen.plan.lines_total} lines" in stats
        assert f"Agent Framework: {screen.plan.lines_total}/{screen.plan.lines_total} lines" in stats
        caption = plain(screen.query_one("#bk-caption"))
        assert "all 2 lines identical" in caption
        # what the verdict rests on: the paired test of each per-line score
        assert "paired tests:" in caption and "identical on 2 lines" in caption
        # both runs are ordinary runs of the use case
        runs = {r.run_id for r in app.store().list_runs("support_ticket_classification")}
        assert set(screen.result.runs) <= runs


@needs_af
@pytest.mark.integration
async def test_a_differing_line_opens_side_by_side(tmp_path, monkeypatch):
    from llmops_tui.core.backends import pf_semantics

    real = pf_semantics.flow_outputs

    def skewed(defs, inputs, outputs):
        out = real(defs, inputs, outputs)
        return {k: (v.upper() if isinstance(v, str) else v) for k, v in out.items()}

    monkeypatch.setattr(pf_semantics, "flow_outputs", skewed)  # only the Agent Framework backend uses it
    root = _bundled(tmp_path, "support_ticket_classification")
    app = make_app(root, limit=3)
    async with app.run_test(size=SIZE) as pilot:
        await _settle(app, pilot)
        app.open_screen("sweep", use_case="support_ticket_classification")
        await _settle(app, pilot)
        builder = app.screen
        builder.query_one("#mode-defaults").value = True
        builder.query_one("#grid").value = "classify_llm.temperature=0"
        await _settle(app, pilot)
        assert builder.plan is not None and len(builder.plan.cells) == 1
        await pilot.press("ctrl+b")  # the builder's cells, on both backends, at once
        await _settle(app, pilot)
        screen = app.screen
        assert type(screen).__name__ == "BackendsScreen"
        assert screen.status == "compared", plain(screen.query_one("#bk-head"))
        (pair,) = screen.pairs
        assert not pair.comparison.equivalent
        verdict = str(screen.query_one("#bk-cells").get_row(pair.key)[1])
        assert verdict == pair.comparison.verdict and "3" in verdict
        lines = screen.query_one("#bk-lines")
        assert lines.row_count == 3
        assert "3 of 3 lines differ" in plain(screen.query_one("#bk-caption"))
        lines.focus()
        await pilot.press("down")
        second = screen.listed[1]["line"]
        await pilot.press("enter")
        await _settle(app, pilot)
        view = app.screen
        assert type(view).__name__ == "BackendLinesScreen"
        assert len(view.diffs) == 3 and all(d.differs for d in view.diffs)
        assert view.query_one("#ld-table").cursor_row == 1
        d = view.diffs[1]
        assert d.line == second
        assert d.output_b["category"] == d.output_a["category"].upper()
        head = plain(view.query_one("#ld-head"))
        assert "Prompt flow" in head and "Agent Framework" in head
        detail = plain(view.query_one("#ld-detail"))
        assert f"line {second}" in detail
        await pilot.press("escape")
        await pilot.pause()
        assert app.screen is screen


async def test_an_error_is_shown_not_crashed(tmp_path, monkeypatch):
    _no_agent_framework(monkeypatch)
    root = copy_workspace(tmp_path)
    app = make_app(root, limit=2)
    async with app.run_test(size=SIZE) as pilot:
        app.open_screen("backends", use_case="ner")
        await _settle(app, pilot)
        screen = app.screen
        await pilot.press("ctrl+g")
        await _settle(app, pilot)
        assert screen.status == "failed"
        head = plain(screen.query_one("#bk-head"))
        assert "Agent Framework is not installed" in head
        assert "llmops deps --backend agent-framework --install" in head
        assert "not compared" in str(screen.query_one("#bk-cells").get_row_at(0)[1])
        assert app.is_running and app.screen is screen
        # nothing ran: no half comparison in the store
        store = app.store()
        assert not (store.list_runs("ner") if store else [])


async def test_bad_cells_are_refused_before_anything_runs(tmp_path):
    from llmops_tui.core.sweep import SweepOptions

    root = copy_workspace(tmp_path)
    app = make_app(root)
    async with app.run_test(size=SIZE) as pilot:
        app.open_screen("backends", use_case="ner", options=SweepOptions(datasets=["nope"]))
        await _settle(app, pilot)
        screen = app.screen
        assert screen.status == "failed"
        assert "nope" in plain(screen.query_one("#bk-head"))
        await pilot.press("ctrl+g")  # nothing to run: a warning, no crash
        await _settle(app, pilot)
        assert app.screen is screen and screen.worker is None


@needs_af
@pytest.mark.integration
async def test_cancel_stops_the_comparison(tmp_path):
    root = copy_workspace(tmp_path)
    app = make_app(root, sandbox_latency_ms=300)
    async with app.run_test(size=SIZE) as pilot:
        app.open_screen("backends", use_case="ner")
        await _settle(app, pilot)
        screen = app.screen
        await pilot.press("ctrl+g")
        await pilot.pause()
        assert screen.status == "running"
        await pilot.press("c")
        assert screen.status == "cancelling"
        await _settle(app, pilot)
        assert screen.status == "cancelled"
        assert "cancelled" in plain(screen.query_one("#bk-head"))
        assert screen.result is None


@needs_af
async def test_an_error_in_the_second_plan_runs_nothing(tmp_path):
    """Prompt flow plans a cloud sweep, Agent Framework refuses it: refused before Prompt flow runs."""
    from llmops_tui.core.sweep import SweepOptions

    root = copy_workspace(tmp_path)
    app = make_app(root)
    async with app.run_test(size=SIZE) as pilot:
        app.open_screen("backends", use_case="ner", options=SweepOptions(target="azureml", limit=2))
        await _settle(app, pilot)
        screen = app.screen
        assert screen.status == "ready"  # the cells (Prompt flow's plan) are shown
        await pilot.press("ctrl+g")
        await _settle(app, pilot)
        assert screen.status == "failed"
        assert "cloud sweeps run on Prompt flow" in plain(screen.query_one("#bk-head"))
        store = app.store()
        assert not (store.list_runs("ner") if store else [])


@needs_af
@pytest.mark.integration
async def test_every_line_failing_is_a_failure_not_a_verdict(tmp_path):
    root = _bundled(tmp_path, "support_ticket_classification")
    tool = root / "use_cases" / "support_ticket_classification" / "flows" / "standard" / "prepare_ticket.py"
    tool.write_text(
        tool.read_text().replace("    title = ", "    raise ValueError('broken on purpose')\n    title = ", 1)
    )
    app = make_app(root, limit=2)
    async with app.run_test(size=SIZE) as pilot:
        app.open_screen("backends", use_case="support_ticket_classification")
        await _settle(app, pilot)
        screen = app.screen
        await pilot.press("ctrl+g")
        await _settle(app, pilot)
        assert screen.status == "failed" and screen.result is None
        head = plain(screen.query_one("#bk-head"))
        assert "the sweep on Prompt flow failed: every line failed" in head
        assert "equivalent" not in head
        assert "not compared" in str(screen.query_one("#bk-cells").get_row_at(0)[1])
