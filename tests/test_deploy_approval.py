"""--require-approval: refuses a missing, rejected or tampered approval (fail closed, also when the
approval module is missing) and deploys exactly the approved configuration."""

from __future__ import annotations

import json
import sys

import pytest
from test_deploy_support import APPROVAL_KEY, USE_CASE, make_workspace, write_approval

from llmops_tui.cli import main

APPROVED = {"ner_llm": "variant_1"}
PARAMS = {"ner_llm.temperature": 0.3}


@pytest.fixture()
def ws(tmp_path, monkeypatch):
    monkeypatch.setenv("LLMOPS_APPROVAL_KEY", APPROVAL_KEY)
    monkeypatch.setattr("llmops_tui.deploy.webapp.az_signed_in", lambda: False)
    return make_workspace(tmp_path)


def deploy_args(ws, *extra):
    return [
        "deploy",
        USE_CASE,
        "--env",
        "dev",
        "--target",
        "webapp",
        "--require-approval",
        "--json",
        "-w",
        str(ws),
        *extra,
    ]


def test_missing_approval_is_refused(ws, capsys):
    assert main(deploy_args(ws)) == 2
    err = capsys.readouterr().err
    assert "does not verify" in err and "missing" in err
    assert not (ws / ".llmops" / "deploy").exists()


def test_approved_configuration_is_deployed(ws, capsys):
    write_approval(ws, "dev", APPROVED, PARAMS)
    assert main(deploy_args(ws)) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["configuration"]["variants"] == APPROVED and out["configuration"]["params"] == PARAMS
    assert out["configuration"]["approval"]["verified"] is True
    assert out["version"] == out["configuration"]["approval"]["flow_hash"]
    dag = (ws / ".llmops" / "deploy" / USE_CASE / "dev" / "webapp" / "flow" / "flow.dag.yaml").read_text()
    assert "ner_format.jinja2" in dag and "temperature: 0.3" in dag and "node_variants" not in dag


def test_tampered_record_is_refused(ws, capsys):
    path = write_approval(ws, "dev", APPROVED, PARAMS)
    data = json.loads(path.read_text())
    data["variants"] = {"ner_llm": "variant_2"}  # edited after signing
    path.write_text(json.dumps(data))
    assert main(deploy_args(ws)) == 2
    assert "signature invalid" in capsys.readouterr().err


def test_flow_edited_after_approval_is_refused(ws, capsys):
    write_approval(ws, "dev", APPROVED, PARAMS)
    prompt = ws / "use_cases" / USE_CASE / "flows" / "standard" / "ner_format.jinja2"
    prompt.write_text(prompt.read_text() + "\nBe brief.\n")
    assert main(deploy_args(ws)) == 2
    assert "flow edited after approval" in capsys.readouterr().err


def test_rejected_record_is_refused(ws, capsys):
    write_approval(ws, "dev", APPROVED, PARAMS, decision="rejected")
    assert main(deploy_args(ws)) == 2
    assert "rejected" in capsys.readouterr().err


def test_missing_approval_module_fails_closed(ws, capsys, monkeypatch):
    write_approval(ws, "dev", APPROVED, PARAMS)
    monkeypatch.setitem(sys.modules, "llmops_tui.core.approval", None)  # import now raises ImportError
    # deploy imports core.approval with itself (no guard that could skip verification): re-import it
    import llmops_tui

    monkeypatch.setattr(llmops_tui, "deploy", llmops_tui.deploy)  # the package object is put back after
    for name in [m for m in sys.modules if m.startswith("llmops_tui.deploy")]:
        monkeypatch.delitem(sys.modules, name)
    assert main(deploy_args(ws)) == 1
    assert "llmops_tui.core.approval" in capsys.readouterr().err


def test_without_require_approval_the_record_is_used_and_said(ws, capsys):
    write_approval(ws, "dev", APPROVED, PARAMS)
    args = [a for a in deploy_args(ws) if a != "--require-approval"] + ["--dry-run"]
    assert main(args) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["configuration"]["variants"] == APPROVED
    assert (
        "approval record" in out["configuration"]["source"] and "(verified)" in out["configuration"]["source"]
    )
