"""Snapshot tests for each screen (pytest-textual-snapshot) at 80x24 and 160x48, from a fixture workspace
and a seeded run store with fixed ids, times and values. Update baselines with ``pytest --snapshot-update``."""

from __future__ import annotations

import time

import pytest
from tui_support import OLD_RUN_ID, RUN_ID, copy_workspace, seed_store

from llmops_tui.tui.app import LlmopsApp
from llmops_tui.tui.settings import AppSettings

SIZES = {"80x24": (80, 24), "160x48": (160, 48)}


@pytest.fixture(params=list(SIZES.values()), ids=list(SIZES))
def size(request) -> tuple[int, int]:
    return request.param


@pytest.fixture(autouse=True)
def _deterministic(monkeypatch):
    monkeypatch.setenv("LLMOPS_TUI_CONFIG_DIR", "/tmp/llmops-tui-snapshot-config")
    monkeypatch.setenv("TZ", "UTC")
    monkeypatch.setenv("USER", "lead")
    monkeypatch.setenv("LOGNAME", "lead")
    monkeypatch.delenv("AOAI_API_KEY", raising=False)
    time.tzset()
    import llmops_tui.tui.screens.connections as conn_screen

    monkeypatch.setattr(conn_screen, "keyring_state", lambda: (False, "no keyring available (no backend)"))
    import llmops_tui.tui.screens.sweep_builder as builder

    # the same picture whether or not Agent Framework is installed on this machine
    monkeypatch.setattr(builder, "agent_framework_missing", lambda: None)


@pytest.fixture
def app(tmp_path):
    root = copy_workspace(tmp_path)
    cells = seed_store(root)
    application = LlmopsApp(root, settings=AppSettings(), debug=True)
    application.cells = cells  # type: ignore[attr-defined]
    return application


async def _settle(pilot) -> None:
    await pilot.app.workers.wait_for_complete()
    await pilot.pause()
    await pilot.pause()


def _opener(name: str, keys: tuple[str, ...] = (), **kwargs):
    async def run_before(pilot) -> None:
        await pilot.pause()
        extra = {}
        if "cell_b" in kwargs or "cell_id" in kwargs:
            extra = {k: pilot.app.cells[v] for k, v in kwargs.items() if k in ("cell_a", "cell_b", "cell_id")}
        rest = {k: v for k, v in kwargs.items() if k not in ("cell_a", "cell_b", "cell_id")}
        if name:
            pilot.app.open_screen(name, **rest, **extra)
        await _settle(pilot)
        if keys:
            await pilot.press(*keys)
            await _settle(pilot)

    return run_before


def test_use_cases_screen(snap_compare, app, size):
    assert snap_compare(app, terminal_size=size, run_before=_opener("", ("down",)))


def test_use_cases_broken_detail(snap_compare, app, size):
    assert snap_compare(app, terminal_size=size, run_before=_opener(""))


def test_flow_screen(snap_compare, app, size):
    assert snap_compare(app, terminal_size=size, run_before=_opener("flow", use_case="ner"))


def test_flow_variant_diff(snap_compare, app, size):
    assert snap_compare(app, terminal_size=size, run_before=_opener("flow", ("v",), use_case="ner"))


def test_datasets_screen(snap_compare, app, size):
    assert snap_compare(app, terminal_size=size, run_before=_opener("datasets", use_case="ner"))


def test_connections_screen(snap_compare, app, size):
    assert snap_compare(app, terminal_size=size, run_before=_opener("connections"))


def test_sweep_builder_screen(snap_compare, app, size):
    assert snap_compare(app, terminal_size=size, run_before=_opener("sweep", use_case="ner"))


def test_compare_screen(snap_compare, app, size):
    assert snap_compare(app, terminal_size=size, run_before=_opener("compare", run_id=RUN_ID))


def test_line_diff_screen(snap_compare, app, size):
    assert snap_compare(
        app,
        terminal_size=size,
        run_before=_opener("line_diff", run_id=RUN_ID, cell_a="baseline", cell_b="other"),
    )


def test_runs_screen(snap_compare, app, size):
    assert snap_compare(app, terminal_size=size, run_before=_opener("runs", use_case="ner"))


def test_approval_screen(snap_compare, app, size):
    assert snap_compare(
        app, terminal_size=size, run_before=_opener("approval", run_id=RUN_ID, cell_id="other")
    )


def test_help_screen(snap_compare, app, size):
    assert snap_compare(
        app, terminal_size=size, run_before=_opener("compare", ("question_mark",), run_id=RUN_ID)
    )


def test_run_monitor_finished(snap_compare, app, size, monkeypatch):
    """The run monitor after a cancelled run: cells by name, the status in words, no cell left running."""
    from llmops_tui.tui.screens.run_monitor import RunMonitorScreen

    monkeypatch.setattr(RunMonitorScreen, "start", lambda self: None)

    async def run_before(pilot) -> None:
        from llmops_tui.core import events as ev
        from llmops_tui.tui.messages import SweepEventPosted

        await pilot.pause()
        pilot.app.open_screen("monitor", run_id=OLD_RUN_ID)
        await _settle(pilot)
        pilot.app.screen.post_message(SweepEventPosted(ev.SweepFinished(OLD_RUN_ID, "cancelled", {}, None)))
        await _settle(pilot)

    assert snap_compare(app, terminal_size=size, run_before=run_before)


def test_compare_charts(snap_compare, app, size):
    assert snap_compare(app, terminal_size=size, run_before=_opener("compare", ("g",), run_id=RUN_ID))


AF_RUN_ID = "20250101-120500-c7d8e9"


def _seed_agent_framework_run(root) -> None:
    """A copy of RUN_ID as if Agent Framework had run it, with one answer of the second cell changed."""
    from dataclasses import replace

    from llmops_tui.core.store import RunStore

    store = RunStore.for_workspace(root)
    run = store.get_run(RUN_ID)
    store.create_run(
        AF_RUN_ID,
        "ner",
        None,
        {**run.config, "options": {**run.config["options"], "backend": "agent-framework"}},
    )
    cells = store.cells(RUN_ID)
    store.add_cells(AF_RUN_ID, [replace(c, run_id=AF_RUN_ID) for c in cells])
    for n, cell in enumerate(cells):
        for line in store.lines(RUN_ID, cell.cell_id):
            outputs = line.outputs
            if n == 1 and line.line == 3:
                outputs = {"entities": ["Somebody Else", "Another One"]}
            store.record_line(replace(line, run_id=AF_RUN_ID, outputs=outputs))
        rows = [
            (e["line"], e["status"], e["outputs"], e["error"]) for e in store.eval_lines(RUN_ID, cell.cell_id)
        ]
        store.record_eval_lines(AF_RUN_ID, cell.cell_id, "ner_eval", rows)
        for evaluator, metrics in store.metrics(RUN_ID, cell.cell_id).get(cell.cell_id, {}).items():
            store.record_metrics(AF_RUN_ID, cell.cell_id, evaluator, metrics)
    store.finish_run(AF_RUN_ID, "completed", run.summary)
    store.close()


def test_backends_screen(snap_compare, app, size):
    """Compare backends after a comparison: a verdict per cell by label, the differing line listed."""

    async def run_before(pilot) -> None:
        from llmops_tui.core.equivalence import compare_runs
        from llmops_tui.core.store import RunStore
        from llmops_tui.core.sweep import SweepOptions
        from llmops_tui.tui.screens.backends import PAIR, BackendsCompared, pair_cells

        await pilot.pause()
        root = pilot.app.workspace_root
        _seed_agent_framework_run(root)
        pilot.app.open_screen("backends", use_case="ner", options=SweepOptions(llm_endpoint="sandbox"))
        await _settle(pilot)
        with RunStore.for_workspace(root) as store:
            result = compare_runs(store, "ner", (RUN_ID, AF_RUN_ID), PAIR)
            pairs = pair_cells(store, result)
        pilot.app.screen.post_message(BackendsCompared(result, pairs))
        await _settle(pilot)
        await pilot.press("down")
        await _settle(pilot)

    assert snap_compare(app, terminal_size=size, run_before=run_before)
