"""The local target for real: Prompt flow's serving app serves a bundled use case against the sandbox
model, the endpoint test passes, two versions share traffic through the router, and everything stops."""

from __future__ import annotations

import json

import httpx
import pytest
from test_deploy_support import CANARY, USE_CASE, all_text, make_workspace

from llmops_tui.cli import main
from llmops_tui.deploy import registry
from llmops_tui.deploy.api import DeployOptions, deploy
from llmops_tui.deploy.local import undeploy

pytestmark = pytest.mark.integration


def test_local_deploy_serves_and_splits(tmp_path, monkeypatch, capsys, sandbox):
    monkeypatch.setenv("AOAI_API_KEY", CANARY)
    ws = make_workspace(tmp_path)
    try:
        # v1: default variants, with its own sandbox model process (--llm-endpoint sandbox).
        first = deploy(ws, DeployOptions(USE_CASE, "dev", "local", llm_endpoint="sandbox", timeout=90))
        assert first.ok and first.test["ok"], first.test
        assert first.test["output_keys"] == ["entities"] and first.test["response"]["entities"]
        assert first.deployment["sandbox_pid"] and first.endpoint_url.startswith("http://127.0.0.1:")

        # The endpoint test command against it (default keys from the use case's flow outputs).
        request = ws / "use_cases" / USE_CASE / "sample-request.json"
        code = main(["endpoint-test", first.endpoint_url, "--request", str(request), "-w", str(ws), "--json"])
        out = json.loads(capsys.readouterr().out)
        assert code == 0 and out["ok"] and out["expected_keys"] == ["entities"]
        code = main(
            [
                "endpoint-test",
                first.endpoint_url,
                "--request",
                str(request),
                "--expect-keys",
                "nope",
                "--timeout",
                "5",
            ]
        )
        assert code == 1
        capsys.readouterr()

        # v2: another variant at 20 %, LLM calls to the session's sandbox; a router in front of both.
        second = deploy(
            ws,
            DeployOptions(
                USE_CASE, "dev", "local", llm_endpoint=sandbox.url, variants="ner_llm.variant_1", traffic=20
            ),
        )
        assert second.ok and second.version != first.version
        router = second.deployment["router"]
        assert second.endpoint_url == router["url"]
        seen: dict[str, int] = {}
        with httpx.Client(trust_env=False, timeout=30) as client:
            for _ in range(10):
                resp = client.post(router["url"] + "/score", json=json.loads(request.read_text()))
                assert resp.status_code == 200 and "entities" in resp.json()
                seen[resp.headers["X-LLMOps-Backend"]] = seen.get(resp.headers["X-LLMOps-Backend"], 0) + 1
        assert seen == {first.version[:12]: 8, second.version[:12]: 2}

        code = main(["deployments", "-w", str(ws), "--json"])
        listed = json.loads(capsys.readouterr().out)["deployments"]
        assert sorted(d["kind"] for d in listed) == ["flow", "flow", "router"] and all(
            d["alive"] for d in listed
        )

        # Deploying the same version again reuses the running server.
        again = deploy(ws, DeployOptions(USE_CASE, "dev", "local", llm_endpoint="sandbox"))
        assert again.deployment["pid"] == first.deployment["pid"]
    finally:
        items = registry.load(ws)
        if items:
            undeploy(ws, USE_CASE, all_versions=True)
    pids = [(d["pid"], d.get("marker")) for d in items] + [
        (d["sandbox_pid"], "sandbox") for d in items if d.get("sandbox_pid")
    ]
    assert pids and not any(registry.is_alive(pid, marker) for pid, marker in pids)
    assert registry.load(ws) == []
    # No key in the bundle, the logs, the registry or the output.
    assert CANARY not in all_text(ws / ".llmops")
    captured = capsys.readouterr()
    assert CANARY not in captured.out + captured.err
