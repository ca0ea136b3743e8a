"""`llmops sweep --target azureml --dry-run` prints the cloud plan with no network access."""

from __future__ import annotations

import json
import shutil
import socket
from pathlib import Path

from llmops_tui.cli import main

REPO = Path(__file__).resolve().parent.parent


def test_cloud_dry_run_offline(tmp_path, monkeypatch, capsys):
    shutil.copytree(REPO / "use_cases" / "support_ticket_classification", tmp_path / "use_cases" / "stc")

    def no_network(*args, **kwargs):
        raise AssertionError("network access during --dry-run")

    monkeypatch.setattr(socket.socket, "connect", no_network)
    for var in ("SUBSCRIPTION_ID", "RESOURCE_GROUP_NAME", "WORKSPACE_NAME"):
        monkeypatch.delenv(var, raising=False)
    code = main(
        [
            "sweep",
            "support_ticket_classification",
            "-w",
            str(tmp_path),
            "--target",
            "azureml",
            "--dry-run",
            "--json",
        ]
    )
    out = capsys.readouterr()
    assert code == 0, out.err
    plan = json.loads(out.out)
    text = json.dumps(plan)
    assert "azureml:" in text and "api_key" not in text.lower().replace("api_key_ref", "")
    code = main(
        ["sweep", "support_ticket_classification", "-w", str(tmp_path), "--target", "azureml", "--dry-run"]
    )
    assert code == 0


def test_unknown_target(tmp_path, capsys):
    shutil.copytree(REPO / "use_cases" / "support_ticket_classification", tmp_path / "use_cases" / "stc")
    assert main(["sweep", "support_ticket_classification", "-w", str(tmp_path), "--target", "mars"]) == 2
    assert "unknown target" in capsys.readouterr().err


def test_substituted_clients_match_the_real_sdk_surface():
    """The tests' recording clients stand in for these real classes: the methods cloud.py calls exist
    with the parameters it passes (catches SDK drift, e.g. the azure-ai-ml >= 1.33 break)."""
    import inspect

    from azure.ai.ml.operations import DataOperations
    from promptflow.azure import PFClient  # imports only with a compatible azure-ai-ml
    from promptflow.azure.operations._run_operations import RunOperations

    assert PFClient is not None
    for name in ("create_or_update", "get", "get_details", "get_metrics", "cancel"):
        assert callable(getattr(RunOperations, name)), name
    assert "all_results" in inspect.signature(RunOperations.get_details).parameters
    for name in ("get", "create_or_update", "list"):
        assert callable(getattr(DataOperations, name)), name
