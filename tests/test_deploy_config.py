"""deployment_config.json parsing, configuration choice, materialisation and the CLI's errors."""

from __future__ import annotations

import json

import pytest
from test_deploy_support import DEPLOYMENT_CONFIG, USE_CASE, make_workspace

from llmops_tui.cli import main
from llmops_tui.core.errors import LlmopsError
from llmops_tui.deploy.config import entry_for


@pytest.fixture()
def ws(tmp_path):
    return make_workspace(tmp_path)


def config_path(ws):
    return ws / "use_cases" / USE_CASE / "configs" / "deployment_config.json"


def test_entry_for_reads_template_strings(ws):
    entry = entry_for(config_path(ws), "azureml", "prod", root=ws)
    assert entry.CURRENT_DEPLOYMENT_NAME == "green"
    assert entry.current_traffic == 20 and entry.prior_traffic == 80
    assert entry.ENVIRONMENT_VARIABLES == {"LOG_LEVEL": "info"}
    dev = entry_for(config_path(ws), "azureml", "dev", root=ws)
    assert dev.current_traffic == 100 and dev.prior_traffic == 0


def test_missing_env_names_file_and_field(ws):
    with pytest.raises(LlmopsError) as err:
        entry_for(config_path(ws), "kubernetes", "staging", root=ws)
    text = str(err.value)
    assert "deployment_config.json" in text and "kubernetes_endpoint[].ENV_NAME" in text and "staging" in text


def test_bad_json_is_one_line_exit_2(ws, capsys):
    config_path(ws).write_text('{"azure_managed_endpoint": [ {"ENV_NAME": "dev",, } ]')
    code = main(["deploy", USE_CASE, "--env", "dev", "--target", "azureml", "--dry-run", "-w", str(ws)])
    err = capsys.readouterr().err.strip()
    assert code == 2
    assert len(err.splitlines()) == 1 and "deployment_config.json" in err and "invalid JSON" in err


def test_bad_traffic_names_the_field(ws):
    data = json.loads(json.dumps(DEPLOYMENT_CONFIG))
    data["azure_managed_endpoint"][1]["PRIOR_DEPLOYMENT_TRAFFIC_ALLOCATION"] = "70"
    config_path(ws).write_text(json.dumps(data))
    with pytest.raises(LlmopsError) as err:
        entry_for(config_path(ws), "azureml", "prod", root=ws)
    assert "azure_managed_endpoint[ENV_NAME=prod]" in str(err.value) and "must be 100" in str(err.value)


def test_unknown_env_via_cli_exit_2(ws, capsys):
    code = main(["deploy", USE_CASE, "--env", "nope", "--target", "webapp", "--dry-run", "-w", str(ws)])
    err = capsys.readouterr().err
    assert code == 2 and "unknown environment 'nope'" in err and "--env" in err


def test_declared_env_without_target_entry_names_the_list(ws, capsys):
    # prod is declared (azure_managed_endpoint) but has no webapp entry: the error names that list.
    code = main(["deploy", USE_CASE, "--env", "prod", "--target", "webapp", "--dry-run", "-w", str(ws)])
    err = capsys.readouterr().err
    assert code == 2 and "webapp_endpoint[].ENV_NAME" in err and "known: dev" in err


def test_dry_run_changes_nothing_and_prints_json(ws, capsys):
    before = sorted(p.relative_to(ws) for p in ws.rglob("*"))
    code = main(
        ["deploy", USE_CASE, "--env", "dev", "--target", "kubernetes", "--dry-run", "--json", "-w", str(ws)]
    )
    out = json.loads(capsys.readouterr().out)
    assert code == 0
    assert sorted(p.relative_to(ws) for p in ws.rglob("*")) == before
    assert out["target"] == "kubernetes" and len(out["version"]) == 64 and out["dry_run"] is True
    assert any(a.endswith("k8s/httproute.yaml") for a in out["artifacts"])
    kinds = {
        s["object"]["kind"]
        for s in out["steps"]
        if isinstance(s.get("object"), dict) and "kind" in s["object"]
    }
    assert kinds == {"Deployment", "Service", "HTTPRoute"}
    assert out["configuration"]["source"].startswith("default variants")


def test_variants_flag_is_materialised(ws, capsys):
    code = main(
        [
            "deploy",
            USE_CASE,
            "--env",
            "dev",
            "--target",
            "webapp",
            "--variants",
            "ner_llm.variant_2",
            "--json",
            "-w",
            str(ws),
        ]
    )
    out = json.loads(capsys.readouterr().out)
    assert code == 0
    flow = ws / ".llmops" / "deploy" / USE_CASE / "dev" / "webapp" / "flow"
    dag = (flow / "flow.dag.yaml").read_text()
    assert "ner_json_examples.jinja2" in dag and "node_variants" not in dag and "variant_0" not in dag
    assert out["configuration"] == {
        **out["configuration"],
        "variants": {"ner_llm": "variant_2"},
        "source": "--variants",
    }


def test_unknown_variant_is_refused(ws, capsys):
    code = main(
        [
            "deploy",
            USE_CASE,
            "--env",
            "dev",
            "--target",
            "webapp",
            "--variants",
            "ner_llm.v9",
            "--dry-run",
            "-w",
            str(ws),
        ]
    )
    assert code == 2 and "ner_llm.v9" in capsys.readouterr().err
