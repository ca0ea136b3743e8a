"""`llmops deploy-migrated`: a flow written by `llmops migrate` served with our Prompt flow deployments'
`/score` contract, for real over HTTP on 127.0.0.1 against the sandbox model; the container target's build
context, whose own command serves locally; bad input is one line and exit code 2; servers always stop."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import httpx
import pytest
from test_deploy_support import CANARY, all_text
from test_migrate import _pf_lines

from llmops_tui.cli import main
from llmops_tui.core.backends.agent_framework import available
from llmops_tui.deploy import registry
from llmops_tui.deploy.endpoint_test import wait_healthy
from llmops_tui.deploy.local import free_port

REPO = Path(__file__).resolve().parents[1]
UC = "named_entity_recognition"
needs_af = pytest.mark.skipif(
    available() is not None, reason=f"agent_framework is not importable: {available()}"
)


def _migrated(tmp_path: Path) -> tuple[Path, Path]:
    """A workspace with the use case (its `text` input made required) and its migrated code."""
    from llmops_tui.core.migrate import plan_migration, write_migration
    from llmops_tui.core.workspace import load_workspace

    ws = tmp_path / "ws"
    shutil.copytree(REPO / "use_cases" / UC, ws / "use_cases" / UC)
    dag = ws / "use_cases" / UC / "flows" / "standard" / "flow.dag.yaml"
    text = dag.read_text()
    text, n = re.subn(r"(\n  text:\n    type: string\n)    default: [^\n]*\n", r"\1", text)
    assert n == 1
    dag.write_text(text)
    loaded = load_workspace(ws)
    uc = loaded.get(UC)
    write_migration(loaded.root, uc, ws / "migrated" / UC, plan_migration(loaded.root, uc))
    return ws, ws / "migrated" / UC


def _stop_all(ws: Path) -> list[dict]:
    """Whatever the test started, whatever it is named: stopped, and forgotten."""
    items = registry.load(ws)
    for d in items:
        registry.stop_process(d.get("pid"), d.get("marker"))
        if d.get("sandbox_pid"):
            registry.stop_process(d["sandbox_pid"], "sandbox")
    registry.remove(ws, {str(d.get("id")) for d in items})
    return items


@pytest.mark.integration
@needs_af
def test_local_deploy_serves_score_and_stops(tmp_path, monkeypatch, capsys, sandbox):
    ws, migrated = _migrated(tmp_path)
    # Connections from the environment, as the migrated code reads them; the key must not reach a file.
    monkeypatch.setenv("AOAI_API_BASE", sandbox.url)
    monkeypatch.setenv("AOAI_API_KEY", CANARY)
    monkeypatch.setenv("AOAI_API_VERSION", "2024-02-01")
    items: list[dict] = []
    try:
        code = main(["deploy-migrated", str(migrated), "-w", str(ws), "--json", "--timeout", "90"])
        result = json.loads(capsys.readouterr().out)
        assert code == 0, result
        assert result["target"] == "migrated-local" and result["env"] == "migrated"
        assert result["test"]["ok"] and result["test"]["output_keys"] == ["entities"]
        assert result["test"]["response"]["entities"]
        url = result["endpoint_url"]
        assert url.startswith("http://127.0.0.1:")
        sample = json.loads((migrated / "standard" / "sample-request.json").read_text())
        with httpx.Client(trust_env=False, timeout=30) as client:
            health = client.get(url + "/health")
            assert health.status_code == 200 and health.json()["status"] == "Healthy"
            ok = client.post(url + "/score", json=sample, headers={"Origin": "http://evil.example"})
            assert ok.status_code == 200 and list(ok.json()) == ["entities"]
            # The same answer Prompt flow's executor gives for the request (default variant, same model).
            (ref,), _ = _pf_lines(
                ws / "use_cases" / UC / "flows" / "standard", [sample], sandbox.url, tmp_path
            )
            assert ref.ok and ok.json() == ref.outputs
            assert not any(h.lower().startswith("access-control-") for h in ok.headers)
            missing = client.post(url + "/score", json={"entity_type": "person"})
            assert missing.status_code == 400
            assert missing.json() == {
                "error": {
                    "code": "MissingRequiredFlowInput",
                    "message": "required flow input(s) missing: text",
                }
            }
            assert client.post(url + "/score", content=b"not json").status_code == 400
            assert client.get(url + "/nope").status_code == 404

        assert main(["deployments", "-w", str(ws), "--json"]) == 0
        items = json.loads(capsys.readouterr().out)["deployments"]
        assert [(d["use_case"], d["env"], d["alive"]) for d in items] == [(UC, "migrated", True)]
        assert main(["undeploy", UC, "--env", "migrated", "-w", str(ws)]) == 0
        assert "stopped flow" in capsys.readouterr().out
    finally:
        _stop_all(ws)
    assert items and not registry.is_alive(items[0]["pid"], "serve_migrated.py")
    assert registry.load(ws) == []
    assert CANARY not in all_text(ws / ".llmops")


@pytest.mark.integration
@needs_af
def test_local_deploy_with_its_own_sandbox_stops_both(tmp_path, capsys):
    ws, migrated = _migrated(tmp_path)
    item: dict = {}
    try:
        code = main(
            ["deploy-migrated", str(migrated / "standard"), "-w", str(ws), "--llm-endpoint", "sandbox"]
        )
        out = capsys.readouterr().out
        assert code == 0, out
        assert "endpoint test passed" in out and "request: sample-request.json" in out
        (item,) = registry.load(ws)
        assert item["sandbox_pid"] and registry.is_alive(item["sandbox_pid"], "sandbox")
    finally:
        stopped = _stop_all(ws)
    assert stopped and not registry.is_alive(item["pid"], "serve_migrated.py")
    assert not registry.is_alive(item["sandbox_pid"], "sandbox")


@pytest.mark.integration
@needs_af
def test_container_context_and_its_command_serve(tmp_path, capsys, sandbox):
    ws, migrated = _migrated(tmp_path)
    ctx = tmp_path / "ctx"
    code = main(["deploy-migrated", str(migrated), "-t", "container", "--out", str(ctx), "-w", str(ws)])
    out = capsys.readouterr().out
    assert code == 0, out
    assert "docker build -t named_entity_recognition:" in out
    docker = (ctx / "Dockerfile").read_text()
    for needed in ("FROM ${BASE_IMAGE}", "COPY flow/ ./flow/", "COPY serve_migrated.py ./", "USER 10001"):
        assert needed in docker
    assert "promptflow" not in (ctx / "requirements.txt").read_text()
    assert "agent-framework-core==" in (ctx / "requirements.txt").read_text()
    assert (ctx / "flow" / "flow.py").is_file() and (ctx / ".dockerignore").is_file()
    assert not (ctx / "logs").exists()  # nothing was started
    cmd = json.loads(re.search(r"^CMD (\[.*\])$", docker, re.MULTILINE).group(1))
    assert cmd[:2] == ["python", "serve_migrated.py"] and "0.0.0.0" in cmd
    # The image's command, run here: the only changes are the interpreter, loopback and a free port.
    port = free_port()
    local_cmd = [sys.executable, *cmd[1:]]
    local_cmd[local_cmd.index("0.0.0.0")] = "127.0.0.1"
    local_cmd[local_cmd.index("--port") + 1] = str(port)
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    env.update(
        {"AOAI_API_BASE": sandbox.url, "AOAI_API_KEY": "sandbox-no-key", "AOAI_API_VERSION": "2024-02-01"}
    )
    proc = subprocess.Popen(local_cmd, cwd=ctx, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        url = f"http://127.0.0.1:{port}"
        assert wait_healthy(url, timeout=60, alive=lambda: proc.poll() is None), proc.stderr
        sample = json.loads((ctx / "flow" / "sample-request.json").read_text())
        resp = httpx.post(url + "/score", json=sample, timeout=30, trust_env=False)
        assert resp.status_code == 200 and resp.json()["entities"]
    finally:
        proc.terminate()
        proc.wait(timeout=15)
    assert proc.returncode is not None


def test_a_bad_dir_is_one_line_and_exit_2(tmp_path, capsys):
    (tmp_path / "empty").mkdir()
    for bad in (tmp_path / "missing", tmp_path / "empty"):
        assert main(["deploy-migrated", str(bad), "-w", str(tmp_path)]) == 2
        err = capsys.readouterr().err.strip()
        assert len(err.splitlines()) == 1 and str(bad) in err and "DIR" in err and "llmops migrate" in err
    assert main(["deploy-migrated", str(tmp_path / "empty"), "-t", "webapp", "-w", str(tmp_path)]) == 2
    assert "--target" in capsys.readouterr().err
    assert not (tmp_path / ".llmops").exists()
