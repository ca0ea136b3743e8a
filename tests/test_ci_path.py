"""The path CI takes, through the headless CLI as separate processes: sweep, gate, approve, verify,
deploy with --require-approval, endpoint test, undeploy; and a stale approval stops the deploy."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.integration
REPO = Path(__file__).resolve().parent.parent
UC = "support_ticket_classification"


def llmops(*args: str, env: dict[str, str], check: bool = True) -> subprocess.CompletedProcess[str]:
    proc = subprocess.run(
        [sys.executable, "-m", "llmops_tui.cli", *args], capture_output=True, text=True, env=env, timeout=300
    )
    assert "Traceback" not in proc.stderr, proc.stderr
    if check:
        assert proc.returncode == 0, (args, proc.stdout[-2000:], proc.stderr[-2000:])
    return proc


def test_ci_path_end_to_end(tmp_path):
    ws = tmp_path / "repo"
    shutil.copytree(REPO / "use_cases" / UC, ws / "use_cases" / UC)
    # CI holds no signing secret: no shared approval key, no private key (it verifies with public keys).
    drop = ("LLMOPS_APPROVAL_KEY", "LLMOPS_SIGNING_KEY")
    env = {**{k: v for k, v in os.environ.items() if k not in drop}, "AOAI_API_KEY": ""}
    w = ["--workspace", str(ws)]
    # The lead's own SSH key, on the lead's machine (outside the repository); the repository holds
    # only the public key, in allowed_signers.
    lead_key = tmp_path / "lead-home" / "id_ed25519"
    lead_key.parent.mkdir()
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(lead_key)], check=True)
    lead_env = {**env, "LLMOPS_SIGNING_KEY": str(lead_key)}
    llmops("approvers", "add", "lead@example.com", str(lead_key) + ".pub", "--env", "dev", *w, env=env)

    sweep = json.loads(
        llmops("sweep", UC, *w, "--llm-endpoint", "sandbox", "--limit", "30", "--json", env=env).stdout
    )
    run_id = sweep["run_id"]
    assert sweep["status"] == "completed" and sweep["cell_count"] == 6  # 3 variants x 2 temperatures

    gate = llmops("gate", run_id, *w, env=env, check=False)
    assert gate.returncode in (0, 1)
    compare = json.loads(llmops("compare", run_id, *w, "--json", env=env).stdout)
    cells = compare["cells"]
    # approve the cell with the best accuracy, overriding gates if it fails one (with a reason)
    best = max(
        cells,
        key=lambda c: next(s for s in sweep["cells"] if s["cell_id"] == c["cell_id"])["metrics"][
            "label_match"
        ]["accuracy"],
    )
    approve = llmops(
        "approve",
        run_id,
        "--cell",
        best["cell_id"],
        "--env",
        "dev",
        "--comment",
        "best accuracy",
        "--override-gates",
        "sandbox sample of 30 lines",
        *w,
        env=lead_env,
    )
    assert (ws / "use_cases" / UC / "approvals" / "dev.json").is_file(), approve.stdout
    verified = llmops("verify-approval", UC, "--env", "dev", *w, env=env)
    assert "measured with the offline sandbox model" in verified.stderr
    assert "approved by lead@example.com (SHA256:" in verified.stdout
    record = json.loads((ws / "use_cases" / UC / "approvals" / "dev.json").read_text())
    assert record["measured_with"] == "sandbox model" and record["signing"] == "ssh"
    private = [p for p in ws.rglob("*") if p.is_file() and b"PRIVATE KEY" in p.read_bytes()]
    assert not private and not any("PRIVATE KEY" in v or "APPROVAL_KEY" in k for k, v in env.items())

    out = tmp_path / "deploy-out"
    deployed = json.loads(
        llmops(
            "deploy",
            UC,
            "--env",
            "dev",
            "--target",
            "local",
            "--require-approval",
            "--llm-endpoint",
            "sandbox",
            "--out",
            str(out),
            "--json",
            *w,
            env=env,
        ).stdout
    )
    try:
        assert deployed["endpoint_url"].startswith("http://127.0.0.1:")
        record = json.loads((ws / "use_cases" / UC / "approvals" / "dev.json").read_text())
        assert deployed["version"] == record["flow_hash"]
        llmops(
            "endpoint-test",
            deployed["endpoint_url"],
            "--request",
            str(ws / "use_cases" / UC / "sample-request.json"),
            "--expect-keys",
            "category",
            "--timeout",
            "60",
            env=env,
        )
    finally:
        llmops("undeploy", UC, "--all", *w, env=env, check=False)
    import httpx

    with pytest.raises(httpx.HTTPError):
        httpx.get(deployed["endpoint_url"].rstrip("/") + "/health", timeout=2)

    # a prompt edited after approval: verification names it and deploy refuses
    prompt = next((ws / "use_cases" / UC / "flows" / "standard").glob("*.jinja2"))
    prompt.write_text(prompt.read_text() + "\nOne more instruction.\n")
    verify = llmops("verify-approval", UC, "--env", "dev", *w, env=env, check=False)
    assert verify.returncode == 1 and "flow edited after approval" in verify.stdout + verify.stderr
    refused = llmops(
        "deploy",
        UC,
        "--env",
        "dev",
        "--target",
        "local",
        "--require-approval",
        "--llm-endpoint",
        "sandbox",
        *w,
        env=env,
        check=False,
    )
    assert refused.returncode != 0 and "flow edited after approval" in refused.stdout + refused.stderr


def test_verify_warns_when_approval_was_measured_with_the_sandbox():
    from llmops_tui.core.approval import sandbox_warning

    assert "sandbox model" in sandbox_warning({"measured_with": "sandbox model"})
    assert sandbox_warning({"measured_with": "configured connections"}) is None
    assert sandbox_warning(None) is None
