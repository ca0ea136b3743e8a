"""Pilot tests of the Deploy screen: opened from the home screen, a dry-run Kubernetes plan that writes
nothing, a refusal without an approval, and a real local deployment against the sandbox model that is
then stopped from the screen. Plus a snapshot of the screen."""

from __future__ import annotations

import json
import shutil
import time
from pathlib import Path

import pytest
from tui_support import FIXTURE, copy_workspace

from llmops_tui.tui.app import LlmopsApp
from llmops_tui.tui.settings import AppSettings

SIZE = (140, 45)
SNAPSHOT_ROOT = Path("/tmp/llmops-tui-snapshot-deploy")
SAMPLE_REQUEST = {"text": "Ada Lovelace met Charles Babbage in London.", "entity_type": "person"}
DEPLOYMENT_CONFIG = {
    "kubernetes_endpoint": [
        {
            "ENV_NAME": "dev",
            "TEST_FILE_PATH": "sample-request.json",
            "ENDPOINT_NAME": "ner-k8s",
            "CURRENT_DEPLOYMENT_NAME": "green",
            "CURRENT_DEPLOYMENT_TRAFFIC_ALLOCATION": "100",
            "COMPUTE_NAME": "k8s-compute",
            "DEPLOYMENT_VM_SIZE": "defaultinstancetype",
            "CPU_ALLOCATION": "500m",
            "MEMORY_ALLOCATION": "1Gi",
        }
    ]
}


@pytest.fixture(autouse=True)
def _isolated(monkeypatch, tmp_path):
    monkeypatch.setenv("LLMOPS_TUI_CONFIG_DIR", str(tmp_path / "config"))
    monkeypatch.setenv("TZ", "UTC")
    time.tzset()
    monkeypatch.delenv("AOAI_API_KEY", raising=False)
    monkeypatch.delenv("LLMOPS_APPROVAL_KEY", raising=False)
    # No key lookups in the OS keyring: the fixture use case has no key, so local deploys use the sandbox.
    monkeypatch.setattr("llmops_tui.tui.screens.deploy.any_key_missing", lambda uc, root: True)


def prepare(root: Path) -> Path:
    """The fixture's ``ner`` use case with what deploying needs: a sample request and a deployment config."""
    uc = root / "use_cases" / "ner"
    (uc / "sample-request.json").write_text(json.dumps(SAMPLE_REQUEST))
    (uc / "configs").mkdir(exist_ok=True)
    (uc / "configs" / "deployment_config.json").write_text(json.dumps(DEPLOYMENT_CONFIG, indent=2))
    return root


@pytest.fixture
def ws(tmp_path) -> Path:
    return prepare(copy_workspace(tmp_path))


def make_app(root: Path) -> LlmopsApp:
    return LlmopsApp(root, settings=AppSettings(), debug=True)


async def settle(pilot) -> None:
    # Twice: a finished deploy starts a new plan worker, whose messages need handling too.
    for _ in range(2):
        await pilot.app.workers.wait_for_complete()
        await pilot.pause()


def plain(widget) -> str:
    rendered = widget.render()
    return rendered.plain if hasattr(rendered, "plain") else str(rendered)


def tree(folder: Path) -> dict[str, bytes]:
    return {
        p.relative_to(folder).as_posix(): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()
    }


async def test_deploy_screen_opens_from_home_with_the_binding(ws):
    app = make_app(ws)
    async with app.run_test(size=SIZE) as pilot:
        await pilot.pause()
        await pilot.press("down", "D")  # the first row is the broken use case; ner is next
        await settle(pilot)
        screen = app.screen
        assert type(screen).__name__ == "DeployScreen" and screen.use_case_name == "ner"
        assert screen.query_one("#env").value == "dev" and screen.query_one("#target").value == "local"
        assert screen.query_one("#llm").value == "sandbox"
        assert "approval for dev: not usable" in plain(screen.query_one("#dp-approval"))
        assert "missing" in plain(screen.query_one("#dp-approval"))
        text = plain(screen.query_one("#dp-plan"))
        assert "plan (dry run: nothing is changed): ner env dev -> local" in text
        assert "start the sandbox model" in text and "serve the flow" in text
        assert not (ws / ".llmops" / "deployments").exists()
        # The broken use case cannot be deployed: a toast on the home screen, no screen.
        await pilot.press("escape", "up", "D")
        await pilot.pause()
        assert type(app.screen).__name__ == "UseCasesScreen"


async def test_kubernetes_dry_run_shows_manifests_and_writes_nothing(ws):
    before = tree(ws / "use_cases" / "ner")
    app = make_app(ws)
    async with app.run_test(size=SIZE) as pilot:
        await pilot.pause()
        app.open_screen("deploy", use_case="ner")
        await settle(pilot)
        screen = app.screen
        screen.query_one("#target").value = "kubernetes"
        await settle(pilot)
        assert not screen.query_one("#llm-box").display  # the LLM endpoint is for local only
        text = plain(screen.query_one("#dp-plan"))
        assert "ner env dev -> kubernetes" in text
        assert "kind: Deployment" in text and "kind: HTTPRoute" in text and "kind: Service" in text
        assert "$ kubectl apply -f" in text and "$ docker build" in text
        assert screen.plan_data["dry_run"] and screen.plan_data["target"] == "kubernetes"
    assert tree(ws / "use_cases" / "ner") == before
    assert not (ws / ".llmops" / "deploy").exists()


async def test_require_approval_without_one_refuses_without_crashing(ws):
    app = make_app(ws)
    async with app.run_test(size=SIZE) as pilot:
        await pilot.pause()
        app.open_screen("deploy", use_case="ner")
        await settle(pilot)
        screen = app.screen
        screen.query_one("#require").value = True
        await settle(pilot)
        assert "cannot deploy with these settings" in plain(screen.query_one("#dp-plan"))
        await pilot.press("ctrl+g")
        await settle(pilot)
        assert app.screen is screen
        result = plain(screen.query_one("#dp-result"))
        assert result.startswith("not deployed: ") and "approval" in result and "\n" not in result
        assert screen.last_result is None and screen.last_error
        assert not (ws / ".llmops" / "deployments").exists()


@pytest.mark.integration
async def test_local_deploy_against_the_sandbox_then_undeploy_from_the_screen(ws):
    from llmops_tui.deploy import registry
    from llmops_tui.deploy.local import undeploy

    app = make_app(ws)
    try:
        async with app.run_test(size=SIZE) as pilot:
            await pilot.pause()
            app.open_screen("deploy", use_case="ner")
            await settle(pilot)
            screen = app.screen
            assert screen.query_one("#llm").value == "sandbox"
            await pilot.press("ctrl+g")
            await settle(pilot)
            assert screen.last_error is None, screen.last_error
            result = screen.last_result
            assert result["ok"] and result["test"]["ok"]
            assert result["endpoint_url"].startswith("http://127.0.0.1:")
            shown = plain(screen.query_one("#dp-result"))
            assert f"endpoint: {result['endpoint_url']}" in shown and "endpoint test passed" in shown
            table = screen.query_one("#dp-deployments")
            assert table.row_count == 1 and screen.deployments[0]["alive"]
            table.focus()
            await pilot.press("x")
            await pilot.pause()
            assert type(app.screen).__name__ == "ConfirmScreen"  # undeploy asks, like delete-run
            await pilot.press("y")
            await settle(pilot)
            assert "stopped flow" in plain(screen.query_one("#dp-result"))
            assert table.row_count == 0
            assert registry.load(ws) == []
    finally:
        if registry.load(ws):
            undeploy(ws, "ner", all_versions=True)


def test_deploy_screen_snapshot(snap_compare, monkeypatch):
    # A fixed folder: the plan shows paths under the workspace.
    shutil.rmtree(SNAPSHOT_ROOT, ignore_errors=True)
    shutil.copytree(FIXTURE, SNAPSHOT_ROOT)
    prepare(SNAPSHOT_ROOT)
    monkeypatch.setenv("LLMOPS_TUI_CONFIG_DIR", "/tmp/llmops-tui-snapshot-config")

    async def run_before(pilot) -> None:
        await pilot.pause()
        pilot.app.open_screen("deploy", use_case="ner")
        await settle(pilot)
        pilot.app.screen.query_one("#target").value = "kubernetes"
        await settle(pilot)
        await pilot.pause()

    try:
        assert snap_compare(make_app(SNAPSHOT_ROOT), terminal_size=SIZE, run_before=run_before)
    finally:
        shutil.rmtree(SNAPSHOT_ROOT, ignore_errors=True)
