"""One dispatcher: the CLI, the Python API and the app start a sweep through ``core.dispatch``, and a plan
whose target is ``azureml`` is run in Azure ML, never in this process.

Azure is the one boundary mocked here, with the fake Prompt flow Azure client of ``test_cloud`` (it
serves the SDK's own run entities); the local engine is replaced by a trap that fails the test if any
front end reaches it."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from builders import make_use_case
from test_cloud import COORDS, FakePFClient

from llmops_tui import api
from llmops_tui.cli import main
from llmops_tui.core import cloud, engine
from llmops_tui.core.store import RunStore
from llmops_tui.core.sweep import SweepOptions, plan_sweep
from llmops_tui.core.workspace import load_workspace

UC = "tickets"


@pytest.fixture
def cloud_only(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> dict[str, Any]:
    """A workspace whose Azure ML client is the fake; the local engine fails the test when it is used."""
    make_use_case(tmp_path, UC, 4)
    monkeypatch.setenv("LLMOPS_TUI_CONFIG_DIR", str(tmp_path / "config"))
    seen: dict[str, Any] = {"clients": []}

    def fake_clients(coords: Any) -> tuple[Any, Any]:
        client = FakePFClient()
        seen["clients"].append(client)
        return client, client.ml_client

    real = cloud.run_cloud_sweep

    def quick(*args: Any, **kwargs: Any) -> Any:  # no ten-second polls and the fake's coordinates
        return real(*args, **{**kwargs, "coords": COORDS, "poll_interval": 0})

    def trap(*args: Any, **kwargs: Any) -> Any:
        raise AssertionError("an azureml plan reached the local engine")

    monkeypatch.setattr(cloud, "make_clients", fake_clients)
    monkeypatch.setattr(cloud, "run_cloud_sweep", quick)
    monkeypatch.setattr(engine, "run_sweep", trap)
    monkeypatch.setattr(engine, "SweepRunner", trap)
    seen["root"] = tmp_path
    return seen


def _only_run(root: Path) -> Any:
    with RunStore.for_workspace(root) as store:
        runs = store.list_runs()
    assert len(runs) == 1
    return runs[0]


def _submitted(seen: dict[str, Any]) -> int:
    return sum(len(c.runs.submitted) for c in seen["clients"])


def test_cli_runs_an_azureml_sweep_in_azure_ml(
    cloud_only: dict[str, Any], capsys: pytest.CaptureFixture
) -> None:
    code = main(["sweep", UC, "-w", str(cloud_only["root"]), "--target", "azureml", "--variants", "all"])
    out = capsys.readouterr()
    assert code == 0, out.err
    run = _only_run(cloud_only["root"])
    assert run.target == "azureml" and run.status == "completed"
    assert _submitted(cloud_only) > 0


def test_api_runs_an_azureml_sweep_in_azure_ml(cloud_only: dict[str, Any]) -> None:
    run_id = api.run(cloud_only["root"], UC, target="azureml", variants="all")
    run = _only_run(cloud_only["root"])
    assert run.run_id == run_id and run.target == "azureml"
    assert _submitted(cloud_only) > 0


async def test_app_runs_an_azureml_sweep_in_azure_ml(cloud_only: dict[str, Any]) -> None:
    from llmops_tui.tui.app import LlmopsApp
    from llmops_tui.tui.settings import AppSettings

    root = cloud_only["root"]
    uc = load_workspace(root).get(UC)
    plan = plan_sweep(uc, SweepOptions(variants="all", target="azureml"), allow_remote=True)

    app = LlmopsApp(root, settings=AppSettings(), debug=True)
    async with app.run_test(size=(120, 40)) as pilot:
        await pilot.pause()
        app.open_screen("monitor", use_case=UC, plan=plan)
        await pilot.pause()
        await app.workers.wait_for_complete()
        for _ in range(50):
            await pilot.pause(0.05)
            if app.screen.status not in ("starting", "running"):
                break
        assert app.screen.status == "completed", app.screen.status
    run = _only_run(root)
    assert run.target == "azureml" and run.status == "completed"
    assert _submitted(cloud_only) > 0


def test_an_unknown_target_is_refused_before_anything_runs(cloud_only: dict[str, Any], capsys) -> None:
    code = main(["sweep", UC, "-w", str(cloud_only["root"]), "--target", "moon"])
    err = capsys.readouterr().err
    assert code == 2 and "--target" in err and "local or azureml" in err
    with RunStore.for_workspace(cloud_only["root"]) as store:
        assert store.list_runs() == []
