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
