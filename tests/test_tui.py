"""Pilot tests for every screen of the app, including a real sweep against the sandbox model."""

from __future__ import annotations

import json
import os
import time
from pathlib import Path

import pytest
from tui_support import RUN_ID, copy_workspace, plain, seed_store

from llmops_tui.tui.app import LlmopsApp
from llmops_tui.tui.settings import AppSettings

SIZE = (140, 45)


@pytest.fixture(autouse=True)
def _isolated(monkeypatch, tmp_path):
    monkeypatch.setenv("LLMOPS_TUI_CONFIG_DIR", str(tmp_path / "config"))
    monkeypatch.setenv("TZ", "UTC")
    time.tzset()
    monkeypatch.delenv("AOAI_API_KEY", raising=False)


@pytest.fixture
def ws(tmp_path) -> Path:
    return copy_workspace(tmp_path)


def make_app(root: Path, **kw) -> LlmopsApp:
    return LlmopsApp(root, settings=kw.pop("settings", AppSettings()), debug=True, **kw)


async def test_home_lists_use_cases_and_broken_ones_with_their_error(ws):
    app = make_app(ws)
    async with app.run_test(size=SIZE) as pilot:
        await pilot.pause()
        screen = app.screen
        names = [r.name for r in screen.rows]
        assert names == ["broken_case", "ner"]
        detail = str(screen.query_one("#detail").render())
        assert "flow folder 'flows/missing_flow' not found" in detail
        # a broken use case cannot be swept: a toast, no crash
        await pilot.press("s")
        await pilot.pause()
        assert type(app.screen).__name__ == "UseCasesScreen"
        await pilot.press("down", "question_mark")
        await pilot.pause()
        assert type(app.screen).__name__ == "HelpScreen"
        await pilot.press("escape", "ctrl+t")
        await pilot.pause()
        assert app.theme == "textual-light"
        assert (
            json.loads((Path(os.environ["LLMOPS_TUI_CONFIG_DIR"]) / "settings.json").read_text())["theme"]
            == "textual-light"
        )


async def test_home_shows_last_run_best_cell_and_approvals(ws):
    cells = seed_store(ws)
    app = make_app(ws)
    async with app.run_test(size=SIZE) as pilot:
        await app.workers.wait_for_complete()
        await pilot.pause()
        row = next(r for r in app.screen.rows if r.name == "ner")
        assert row.last_run_id == RUN_ID and row.last_status == "completed"
        assert row.best_cell_id == cells["baseline"]
        assert row.approvals == "dev:- prod:-"


async def test_flow_screen_shows_nodes_prompts_and_variant_diff(ws):
    app = make_app(ws)
    async with app.run_test(size=SIZE) as pilot:
        await pilot.pause()
        app.open_screen("flow", use_case="ner")
        await pilot.pause()
        screen = app.screen
        assert screen.row_keys == [("NER_LLM", "variant_0"), ("NER_LLM", "variant_1"), ("cleansing", None)]
        await pilot.press("down")
        await pilot.pause()
        assert "careful annotator" in plain(screen.query_one("#prompt"))
        await pilot.press("v")
        await pilot.pause()
        assert "careful annotator" in plain(screen.query_one("#diff"))
        await pilot.press("n")
        await pilot.pause()
        assert screen.flows[screen.flow_index].name == "ner_eval"


async def test_datasets_screen_shows_schema_rows_and_usage(ws):
    app = make_app(ws)
    async with app.run_test(size=SIZE) as pilot:
        await pilot.pause()
        app.open_screen("datasets", use_case="ner")
        await pilot.pause()
        screen = app.screen
        rows = screen.query_one("#ds-rows")
        assert rows.row_count == 8
        info = plain(screen.query_one("#ds-info"))
        assert "text, entity_type" in info and "${data.text}" in info
        await pilot.press("down")
        await pilot.pause()
        assert "${run.outputs.entities}" in plain(screen.query_one("#ds-info"))


async def test_connections_screen_finds_keys_without_showing_them(ws, monkeypatch):
    import llmops_tui.tui.screens.connections as conn_screen

    stored: dict[str, str] = {}
    monkeypatch.setattr(conn_screen, "keyring_state", lambda: (True, "test keyring"))
    monkeypatch.setattr(conn_screen, "keyring_store", lambda name, value: stored.__setitem__(name, value))
    app = make_app(ws)
    async with app.run_test(size=SIZE) as pilot:
        await pilot.pause()
        app.open_screen("connections")
        await pilot.pause()
        screen = app.screen
        row = screen.rows[0][1]
        assert (row.connection, row.found, row.env_var) == ("aoai", False, "AOAI_API_KEY")
        await pilot.press("e")
        screen.query_one("#key-input").value = "sk-secret-1234"
        await pilot.press("enter")
        await pilot.pause()
        assert stored == {"AOAI_API_KEY": "sk-secret-1234"}, (
            plain(screen.query_one("#key-message")),
            app.focused,
        )
        assert screen.query_one("#key-input").value == ""
        assert "sk-secret" not in app.export_screenshot()
        monkeypatch.setenv("AOAI_API_KEY", "sk-from-env")
        screen.refresh_data()
        await pilot.pause()
        assert screen.rows[0][1].found and screen.rows[0][1].source == "env"
        assert "sk-from-env" not in app.export_screenshot()


async def test_connections_screen_without_keyring_says_so(ws, monkeypatch):
    import llmops_tui.tui.screens.connections as conn_screen

    monkeypatch.setattr(conn_screen, "keyring_state", lambda: (False, "no keyring available (no backend)"))
    app = make_app(ws)
    async with app.run_test(size=SIZE) as pilot:
        await pilot.pause()
        app.open_screen("connections")
        await pilot.pause()
        assert "no keyring available" in plain(app.screen.query_one("#keyring"))
        assert app.screen.query_one("#store").disabled


async def test_sweep_builder_plans_live_and_shows_errors_inline(ws):
    app = make_app(ws)
    async with app.run_test(size=SIZE) as pilot:
        await pilot.pause()
        app.open_screen("sweep", use_case="ner")
        await _planned(app, pilot)
        screen = app.screen
        assert len(screen.plan.cells) == 2
        assert screen.plan.options.llm_endpoint == "sandbox"  # no key found: sandbox by default
        assert app.sandbox_active
        screen.query_one("#grid").value = "NER_LLM.temperature=0,0.7"
        await _planned(app, pilot)
        assert len(screen.plan.cells) == 4
        screen.query_one("#grid").value = "nonsense"
        await pilot.pause()
        assert screen.plan is None
        assert "NODE.param=v1,v2" in plain(screen.query_one("#grid-error"))
        assert screen.query_one("#start").disabled
        screen.query_one("#grid").value = ""
        screen.query_one("#mode-defaults").value = True
        await _planned(app, pilot)
        assert len(screen.plan.cells) == 1


async def _planned(app, pilot) -> None:
    """The sweep builder plans in a background worker after a short pause in typing: wait for it."""
    await pilot.pause()
    await app.workers.wait_for_complete()
    await pilot.pause()


async def test_sweep_compare_lines_export_and_approval_end_to_end(ws, monkeypatch):
    """Start a sweep from the builder against the sandbox, watch it finish, open Compare, drill into two
    cells, export HTML, then approve the candidate and verify the record headlessly."""
    from llmops_tui.core.approval import verify_approval
    from llmops_tui.core.workspace import load_workspace

    monkeypatch.setenv("LLMOPS_APPROVAL_KEY", "test-approval-key-0123456789")
    monkeypatch.setenv("USER", "lead")
    app = make_app(ws)
    async with app.run_test(size=SIZE) as pilot:
        await pilot.pause()
        app.open_screen("sweep", use_case="ner")
        await pilot.pause()
        app.screen.query_one("#limit").value = "4"
        await pilot.pause()
        await pilot.press("ctrl+g")
        await pilot.pause()
        monitor = app.screen
        assert type(monitor).__name__ == "RunMonitorScreen"
        await app.workers.wait_for_complete()
        await pilot.pause()
        assert monitor.status == "completed", plain(monitor.query_one("#run-head"))
        assert app.sandbox_active
        assert monitor.query_one("AppHeader").has_class("-sandbox")
        table = monitor.query_one("#cells")
        assert table.row_count == 2
        assert all(
            "ner_eval.exact_match" in str(table.get_cell(k, "metrics"))
            for k in monitor.plan and [c.cell_id for c in monitor.plan.cells]
        )

        await pilot.press("o")
        await pilot.pause()
        await app.workers.wait_for_complete()
        await pilot.pause()
        compare = app.screen
        assert type(compare).__name__ == "CompareScreen" and compare.comparison is not None
        assert len(compare.cell_order) == 2
        await pilot.press("s")  # sort by the first metric
        await pilot.press("g")  # charts
        await pilot.pause()
        await pilot.press("l")
        await pilot.pause()
        await app.workers.wait_for_complete()
        await pilot.pause()
        lines = app.screen
        assert type(lines).__name__ == "LineDiffScreen"
        assert len(lines.diffs) == 4 and lines.query_one("#ld-table").row_count == 4
        await pilot.press("f")
        await app.workers.wait_for_complete()
        await pilot.pause()
        assert lines.only == "differ"
        await pilot.press("escape")
        await pilot.pause()

        await pilot.press("e")
        await pilot.pause()
        export = app.screen
        await pilot.click("#do-export")
        await pilot.pause()
        written = Path(export.written)
        assert written.suffix == ".html" and written.is_file() and "<html" in written.read_text().lower()
        assert app.screen is compare  # the dialog closed itself and said where the file went

        await pilot.press("a")
        await pilot.pause()
        await app.workers.wait_for_complete()
        await pilot.pause()
        approval = app.screen
        assert type(approval).__name__ == "ApprovalScreen" and approval.record is not None
        if approval.failing:
            approval.query_one("#override").value = "sandbox trial, accepted by the lead"
        approval.query_one("#comment").value = "looks good"
        await pilot.press("ctrl+a")
        await pilot.pause()
        assert "approved" in plain(approval.query_one("#ap-result"))
    record_path = ws / "use_cases" / "ner" / "approvals" / "dev.json"
    assert record_path.is_file()
    record = json.loads(record_path.read_text())
    assert (
        record["decision"] == "approved"
        and record["approver"] == "lead"
        and record["comment"] == "looks good"
    )
    uc = load_workspace(ws).get("ner")
    result = verify_approval(ws, uc, "dev")
    assert result.ok, result.reasons


async def _start_slow_sweep(app, pilot):
    """Start the ner sweep from the builder, one line at a time against a slow sandbox; its run monitor."""
    await pilot.pause()
    app.open_screen("sweep", use_case="ner")
    await pilot.pause()
    app.screen.query_one("#concurrency").value = "1"
    await pilot.pause()
    await pilot.press("ctrl+g")
    await pilot.pause()
    return app.screen


async def test_cancel_then_resume_a_sweep(ws):
    app = make_app(ws, settings=AppSettings(sandbox_latency_ms=150))
    async with app.run_test(size=SIZE) as pilot:
        monitor = await _start_slow_sweep(app, pilot)
        await pilot.press("c")
        await app.workers.wait_for_complete()
        await pilot.pause()
        assert monitor.status in ("cancelled", "failed"), monitor.status
        if monitor.run_id is None:
            pytest.skip("cancelled before the run was created")
        store = app.store()
        assert store.get_run(monitor.run_id).status == "cancelled"
        await pilot.press("R")
        await pilot.pause()
        await app.workers.wait_for_complete()
        await pilot.pause()
        assert monitor.status == "completed"
        assert store.get_run(monitor.run_id).status == "completed"


async def test_leaving_a_running_sweep_asks_then_cancels_it(ws):
    """Escape on the run monitor while lines run asks first: "no" keeps the sweep going and the screen,
    "yes" cancels the sweep (resumable) and leaves."""
    from llmops_tui.tui.screens.dialogs import ConfirmScreen

    app = make_app(ws, settings=AppSettings(sandbox_latency_ms=150))
    async with app.run_test(size=SIZE) as pilot:
        monitor = await _start_slow_sweep(app, pilot)
        assert monitor.running
        await pilot.press("escape")
        await pilot.pause()
        assert isinstance(app.screen, ConfirmScreen) and "Cancel it and leave" in app.screen.question
        await pilot.press("n")
        await pilot.pause()
        assert app.screen is monitor and monitor.running
        await pilot.press("escape")
        await pilot.pause()
        await pilot.press("y")
        await app.workers.wait_for_complete()
        await pilot.pause()
        assert monitor not in app.screen_stack
        assert monitor.worker is not None and monitor.worker.is_cancelled


async def test_failing_model_endpoint_is_shown_not_crashed(ws):
    app = make_app(ws)
    async with app.run_test(size=SIZE) as pilot:
        await pilot.pause()
        app.open_screen("sweep", use_case="ner")
        await pilot.pause()
        screen = app.screen
        screen.query_one("#ep-url").value = True
        await pilot.pause()
        screen.query_one("#url").value = "http://127.0.0.1:9/v1"
        screen.query_one("#limit").value = "1"
        screen.query_one("#mode-defaults").value = True
        await pilot.pause()
        await pilot.press("ctrl+g")
        await pilot.pause()
        monitor = app.screen
        await app.workers.wait_for_complete()
        await pilot.pause()
        log = "\n".join(str(line.text) for line in monitor.query_one("#log").lines)
        assert monitor.status in ("completed", "failed")
        assert "failed" in log or "error" in log.lower() or "stopped" in log
        assert "Traceback" not in app.export_screenshot()


async def test_runs_screen_opens_resumes_and_deletes(ws):
    seed_store(ws)
    app = make_app(ws)
    async with app.run_test(size=SIZE) as pilot:
        await pilot.pause()
        app.open_screen("runs", use_case="ner")
        await pilot.pause()
        runs = app.screen
        assert [r.run_id for r in runs.runs] == [RUN_ID, "20241231-090000-d4e5f6"]
        await pilot.press("R")  # completed: nothing to resume
        await pilot.pause()
        assert app.screen is runs
        await pilot.press("enter")
        await pilot.pause()
        await app.workers.wait_for_complete()
        await pilot.pause()
        assert type(app.screen).__name__ == "CompareScreen"
        await pilot.press("escape", "down", "x")
        await pilot.pause()
        await pilot.press("y")
        await pilot.pause()
        assert [r.run_id for r in runs.runs] == [RUN_ID]


async def test_approval_needs_an_override_for_a_failing_gate(ws, monkeypatch):
    cells = seed_store(ws)
    monkeypatch.setenv("LLMOPS_APPROVAL_KEY", "test-approval-key-0123456789")
    (ws / "use_cases/ner/llmops.yaml").write_text(
        (ws / "use_cases/ner/llmops.yaml").read_text().replace("exact_match >= 0.5", "exact_match >= 0.9")
    )
    app = make_app(ws)
    async with app.run_test(size=SIZE) as pilot:
        await pilot.pause()
        app.open_screen("approval", run_id=RUN_ID, cell_id=cells["other"])
        await pilot.pause()
        await app.workers.wait_for_complete()
        await pilot.pause()
        screen = app.screen
        assert screen.failing
        await pilot.press("ctrl+a")
        await pilot.pause()
        assert "override reason" in plain(screen.query_one("#ap-result"))
        assert not (ws / "use_cases/ner/approvals/dev.json").exists()
        screen.query_one("#comment").value = "too many misses"
        await pilot.press("ctrl+x")
        await pilot.pause()
        assert json.loads((ws / "use_cases/ner/approvals/dev.json").read_text())["decision"] == "rejected"


async def test_palette_and_unusable_workspace_do_not_crash(tmp_path):
    app = LlmopsApp(tmp_path / "missing", settings=AppSettings())
    async with app.run_test(size=SIZE) as pilot:
        await pilot.pause()
        assert type(app.screen).__name__ == "ErrorScreen"
        await pilot.press("escape", "ctrl+p")
        await pilot.pause()
        assert type(app.screen).__name__ == "CommandPalette"


async def test_line_table_loads_pages_as_the_cursor_moves_and_filters_all_lines(ws, monkeypatch):
    from llmops_tui.tui.screens.line_diff import LineTable

    cells = seed_store(ws)
    monkeypatch.setattr(LineTable, "PAGE", 3)
    monkeypatch.setattr(LineTable, "MARGIN", 1)
    app = make_app(ws)
    async with app.run_test(size=SIZE) as pilot:
        await pilot.pause()
        app.open_screen("line_diff", run_id=RUN_ID, cell_a=cells["baseline"], cell_b=cells["other"])
        screen = app.screen
        for _ in range(100):  # the screen loads its lines in a worker started on mount: wait for its head
            await app.workers.wait_for_complete()
            await pilot.pause(0.02)
            if "8 lines" in plain(screen.query_one("#ld-head")):
                break
        table = screen.query_one("#ld-table", LineTable)
        total = len(screen.diffs)
        assert total == 8 and table.row_count == 3
        assert "8 lines" in plain(screen.query_one("#ld-head")) and "showing the first 3" in plain(
            screen.query_one("#ld-head")
        )
        table.focus()
        await pilot.press("down")
        await pilot.pause()
        assert table.row_count == 6  # the cursor neared the end of the loaded rows
        assert "line 1" in plain(screen.query_one("#ld-detail"))  # selection still shows the detail
        await pilot.press("ctrl+end")
        await pilot.pause()
        assert table.row_count == total and table.cursor_row == total - 1
        assert "showing" not in plain(screen.query_one("#ld-head"))
        await pilot.press("f")  # differ: decided over all lines, not only the loaded ones
        await app.workers.wait_for_complete()
        await pilot.pause()
        differ = [d for d in screen.diffs if d.differs]
        assert screen.only == "differ" and screen.diffs == differ and len(differ) == screen.differ
        assert table.row_count == min(3, len(differ))


async def test_unexpected_error_in_a_screen_leaves_the_app_usable(ws, monkeypatch):
    """An action and a message handler of a screen raise: each time the error box appears, and after it
    closes the same screen still answers its bindings and its own messages."""
    from llmops_tui.tui.screens.flow import FlowScreen

    monkeypatch.setattr("llmops_tui.tui.app.log_dir", lambda: ws / "logs")
    app = LlmopsApp(ws, settings=AppSettings())  # not --debug: errors are shown, not raised

    def broken_action(self) -> None:
        raise RuntimeError("action went wrong")

    def broken_handler(self, event) -> None:
        raise RuntimeError("handler went wrong")

    async with app.run_test(size=SIZE) as pilot:
        await pilot.pause()
        app.open_screen("flow", use_case="ner")
        await pilot.pause()
        screen = app.screen
        with monkeypatch.context() as patch:
            patch.setattr(FlowScreen, "action_toggle_diff", broken_action)
            await pilot.press("v")
            await pilot.pause()
        assert type(app.screen).__name__ == "ErrorScreen"
        assert "action went wrong" in plain(app.screen.query_one("#error-message"))
        await pilot.press("escape")
        await pilot.pause()
        assert app.screen is screen
        await pilot.press("n")  # a binding of the same screen
        await pilot.pause()
        assert screen.flow_index == 1
        await pilot.press("n")
        await pilot.pause()

        with monkeypatch.context() as patch:
            patch.setattr(FlowScreen, "on_data_table_row_highlighted", broken_handler)
            await pilot.press("down")  # the table posts RowHighlighted, handled by the screen's own loop
            await pilot.pause()
        assert type(app.screen).__name__ == "ErrorScreen"
        assert "handler went wrong" in plain(app.screen.query_one("#error-message"))
        await pilot.press("escape")
        await pilot.pause()
        assert app.screen is screen and screen.is_running
        await pilot.press("up", "down")  # the screen handles its messages again: the prompt follows
        await pilot.pause()
        assert "careful annotator" in plain(screen.query_one("#prompt"))
        await pilot.press("v")
        await pilot.pause()
        assert "careful annotator" in plain(screen.query_one("#diff"))
        assert (ws / "logs" / "errors.log").is_file()
