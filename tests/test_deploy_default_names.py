"""Deployment configs as the template ships them: empty endpoint and deployment names get valid names
derived from the use case, the environment and the flow version, shown in the plan; a name that is
present and invalid is still refused."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from llmops_tui.cli import main
from llmops_tui.deploy.config import azureml_name

REPO = Path(__file__).resolve().parent / "fixtures" / "byo_repo"


@pytest.mark.parametrize(
    "parts, name",
    [
        (("chat_dag", "dev"), "chat-dag-dev"),
        (("1st use case", "prod"), "ep-1st-use-case-prod"),
        (("x",), "x-ep"),
        (("a" * 40, "dev"), "a" * 32),
    ],
)
def test_azureml_names_are_valid(parts, name):
    assert azureml_name(*parts) == name


def _repo(tmp_path: Path) -> Path:
    repo = tmp_path / "repo"
    shutil.copytree(REPO, repo)
    return repo


def test_empty_names_get_defaults_shown_in_the_plan(tmp_path, capfd):
    repo = _repo(tmp_path)
    rc = main(
        ["deploy", "chat_dag", "--env", "dev", "--target", "azureml", "--dry-run", "-w", str(repo), "--json"]
    )
    out, err = capfd.readouterr()
    assert rc == 0, err
    plan = json.loads(out)
    notes = " ".join(plan["notes"])
    assert "ENDPOINT_NAME is empty" in notes and "'chat-dag-dev'" in notes
    assert "CURRENT_DEPLOYMENT_NAME is empty" in notes
    steps = " ".join(s["summary"] for s in plan["steps"])
    assert "online_endpoints.get(chat-dag-dev)" in steps


def test_a_present_invalid_name_is_still_refused(tmp_path, capfd):
    repo = _repo(tmp_path)
    config = repo / "chat_dag" / "configs" / "deployment_config.json"
    data = json.loads(config.read_text())
    data["azure_managed_endpoint"][0]["ENDPOINT_NAME"] = "Bad_Name!"
    config.write_text(json.dumps(data))
    rc = main(["deploy", "chat_dag", "--env", "dev", "--target", "azureml", "--dry-run", "-w", str(repo)])
    _, err = capfd.readouterr()
    assert rc == 2 and "ENDPOINT_NAME" in err and "not a valid Azure ML name" in err
