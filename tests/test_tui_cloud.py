"""The sweep builder offers the Azure ML target; the plan says so and the options carry it."""

from __future__ import annotations

import io

from rich.console import Console
from tui_support import copy_workspace

from llmops_tui.tui.app import LlmopsApp
from llmops_tui.tui.settings import AppSettings


async def test_builder_offers_azureml_target(tmp_path, monkeypatch):
    monkeypatch.setenv("LLMOPS_TUI_CONFIG_DIR", str(tmp_path / "config"))
    ws = copy_workspace(tmp_path)
    app = LlmopsApp(ws, settings=AppSettings(), debug=True)
    async with app.run_test(size=(140, 45)) as pilot:
        await pilot.pause()
        app.open_screen("sweep", use_case="ner")
        await _planned(app, pilot)
        screen = app.screen
        assert screen.plan.options.target == "local"
        screen.query_one("#ep-azureml").value = True
        await _planned(app, pilot)
        assert screen.plan is not None and screen.plan.options.target == "azureml"
        assert screen.plan.options.llm_endpoint is None
        console = Console(width=140, record=True, file=io.StringIO())
        console.print(screen._plan_table(screen.plan, screen.estimate, screen.plan.options))
        assert "Azure ML workspace" in console.export_text()


async def _planned(app, pilot) -> None:
    """The sweep builder plans in a background worker after a short pause in typing: wait for it."""
    await pilot.pause()
    await app.workers.wait_for_complete()
    await pilot.pause()
