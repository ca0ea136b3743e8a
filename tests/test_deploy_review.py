"""Regressions from the deploy review: bad input is refused with one line and exit 2 before anything is
written, generated names are ones Kubernetes and Azure ML accept, and clean-up is idempotent."""

from __future__ import annotations

import json
import re

import pytest
import yaml
from test_deploy_support import CANARY, DEPLOYMENT_CONFIG, USE_CASE, make_workspace

from llmops_tui.cli import main
from llmops_tui.core.errors import LlmopsError
from llmops_tui.deploy.api import DeployOptions, deploy
from llmops_tui.deploy.config import entry_for
from llmops_tui.deploy.endpoint_test import check_url
from llmops_tui.deploy.kubernetes import dns_name, validate_httproute
from llmops_tui.deploy.local import undeploy

DNS_1035 = re.compile(r"^[a-z]([-a-z0-9]{0,61}[a-z0-9])?$")


def _config(**changes) -> dict:
    data = json.loads(json.dumps(DEPLOYMENT_CONFIG))
    for block, fields in changes.items():
        data[block][0].update(fields)
    return data


@pytest.fixture()
def ws(tmp_path, monkeypatch):
    monkeypatch.setenv("AOAI_API_KEY", CANARY)
    monkeypatch.setenv("KUBECONFIG", str(tmp_path / "no-kubeconfig"))
    monkeypatch.setattr("llmops_tui.deploy.kubernetes.kubectl_context", lambda: None)
    return make_workspace(tmp_path)


def _cli(capsys, *args: str) -> tuple[int, str]:
    code = main(list(args))
    return code, capsys.readouterr().err.strip()


def test_boolean_traffic_is_refused(tmp_path):
    ws = make_workspace(
        tmp_path, _config(azure_managed_endpoint={"CURRENT_DEPLOYMENT_TRAFFIC_ALLOCATION": True})
    )
    path = ws / "use_cases" / USE_CASE / "configs" / "deployment_config.json"
    with pytest.raises(LlmopsError, match="CURRENT_DEPLOYMENT_TRAFFIC_ALLOCATION: must be a whole number"):
        entry_for(path, "azureml", "dev", root=ws)


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("ENDPOINT_NAME", "ner_endpoint"),  # underscore
        ("ENDPOINT_NAME", "n"),  # too short
        ("ENDPOINT_NAME", "named-entity-recognition-endpoint-dev"),  # 37 characters
        ("CURRENT_DEPLOYMENT_NAME", "1-blue"),  # starts with a digit
        ("CURRENT_DEPLOYMENT_NAME", "blue-"),  # ends with a hyphen
    ],
)
def test_azureml_names_azure_would_reject_are_refused_in_dry_run(tmp_path, capsys, field, value):
    ws = make_workspace(tmp_path, _config(azure_managed_endpoint={field: value}))
    code, err = _cli(
        capsys, "deploy", USE_CASE, "--env", "dev", "--target", "azureml", "--dry-run", "-w", str(ws)
    )
    assert code == 2 and len(err.splitlines()) == 1
    assert f"azure_managed_endpoint[].{field}" in err and "not a valid Azure ML name" in err


@pytest.mark.parametrize(
    ("args", "where"), [(["--mirror", "80"], "--mirror"), (["--mirror", "-1"], "--mirror")]
)
def test_mirror_beyond_azure_limit_is_refused(ws, capsys, args, where):
    code, err = _cli(
        capsys, "deploy", USE_CASE, "--env", "dev", "--target", "azureml", "--dry-run", *args, "-w", str(ws)
    )
    assert code == 2 and where in err and "0 to 50%" in err


def test_mirror_in_config_beyond_limit_names_the_field(tmp_path, capsys):
    ws = make_workspace(tmp_path, _config(azure_managed_endpoint={"MIRROR_TRAFFIC_PERCENT": 60}))
    code, err = _cli(
        capsys, "deploy", USE_CASE, "--env", "dev", "--target", "azureml", "--dry-run", "-w", str(ws)
    )
    assert code == 2 and "azure_managed_endpoint[].MIRROR_TRAFFIC_PERCENT" in err


@pytest.mark.parametrize(
    ("target", "args"),
    [
        ("azureml", ["--traffic", "20"]),
        ("kubernetes", ["--prior", "abc"]),
        ("webapp", ["--port", "8080"]),
        ("azureml", ["--image", "x/y:1"]),
        ("kubernetes", ["--mirror", "10"]),
    ],
)
def test_options_of_another_target_are_refused_not_ignored(ws, capsys, target, args):
    code, err = _cli(
        capsys, "deploy", USE_CASE, "--env", "dev", "--target", target, "--dry-run", *args, "-w", str(ws)
    )
    assert code == 2 and args[0] in err and "only applies to --target" in err
    assert not (ws / ".llmops" / "deploy").exists()


@pytest.mark.parametrize("value", ["0", "150", "-5"])
def test_traffic_out_of_range_is_refused_before_anything_is_written(ws, capsys, value):
    code, err = _cli(capsys, "deploy", USE_CASE, "--env", "dev", "--traffic", value, "-w", str(ws))
    assert code == 2 and f"--traffic {value} must be from 1 to 100" in err
    assert not (ws / ".llmops" / "deployments").exists()


def test_undeclared_env_is_refused_for_local(ws, capsys):
    code, err = _cli(
        capsys, "deploy", USE_CASE, "--env", "prdo", "--target", "local", "--dry-run", "-w", str(ws)
    )
    assert code == 2 and "unknown environment 'prdo'" in err and "dev" in err


def test_dns_name_is_dns_1035_and_long_names_do_not_collide():
    endpoint = "named-entity-recognition-kubernetes-endpoint-for-the-dev-env"
    blue, green = dns_name(endpoint, "blue"), dns_name(endpoint, "green")
    assert blue != green and len(blue) <= 63 and len(green) <= 63
    for name in (
        blue,
        green,
        dns_name("2024_release"),
        dns_name("Named_Entity__Recognition"),
        dns_name("__"),
    ):
        assert DNS_1035.match(name), name
    assert dns_name("ner-k8s", "green") == "ner-k8s-green"  # short names are unchanged


def test_long_and_odd_kubernetes_names_make_valid_manifests(tmp_path):
    long_name = "Named_Entity_Recognition_Kubernetes_Endpoint_For_Dev"
    config = _config(
        kubernetes_endpoint={
            "ENDPOINT_NAME": long_name,
            "CURRENT_DEPLOYMENT_NAME": "2025_green_deployment_of_the_new_version",
            "PRIOR_DEPLOYMENT_NAME": "2025_green_deployment_of_the_old_version",
        }
    )
    ws = make_workspace(tmp_path, config)
    result = deploy(
        ws, DeployOptions(USE_CASE, "dev", "kubernetes", dry_run=True), kubectl_context=lambda: None
    )
    objects = [s.obj for s in result.steps if isinstance(s.obj, dict) and "kind" in s.obj]
    names = [o["metadata"]["name"] for o in objects]
    backends = [
        b["name"] for o in objects if o["kind"] == "HTTPRoute" for b in o["spec"]["rules"][0]["backendRefs"]
    ]
    assert len(set(backends)) == 2, backends
    for name in names + backends:
        assert DNS_1035.match(name), name
    for obj in objects:
        for key, value in obj["metadata"]["labels"].items():
            assert len(value) <= 63 and re.match(r"^[A-Za-z0-9]([-A-Za-z0-9_.]*[A-Za-z0-9])?$", value), (
                key,
                value,
            )
    validate_httproute(next(o for o in objects if o["kind"] == "HTTPRoute"))


def test_bad_namespace_is_refused(tmp_path, capsys):
    ws = make_workspace(tmp_path, _config(kubernetes_endpoint={"NAMESPACE": "LLM_Ops"}))
    code, err = _cli(
        capsys, "deploy", USE_CASE, "--env", "dev", "--target", "kubernetes", "--dry-run", "-w", str(ws)
    )
    assert code == 2 and "kubernetes_endpoint[].NAMESPACE" in err


def test_manifests_have_no_yaml_aliases(ws, capsys):
    deploy(ws, DeployOptions(USE_CASE, "dev", "kubernetes"), kubectl_context=lambda: None)
    folder = ws / ".llmops" / "deploy" / USE_CASE / "dev" / "kubernetes" / "k8s"
    for path in folder.glob("*.yaml"):
        text = path.read_text()
        assert "&id0" not in text and "*id0" not in text, path.name
        assert all(isinstance(o, dict) for o in yaml.safe_load_all(text))
    code = main(["deploy", USE_CASE, "--env", "dev", "--target", "kubernetes", "--dry-run", "-w", str(ws)])
    assert code == 0 and "&id0" not in capsys.readouterr().out


def test_undeploy_all_with_nothing_running_is_success(ws, capsys):
    assert undeploy(ws, USE_CASE, all_versions=True) == []
    code = main(["undeploy", USE_CASE, "--all", "-w", str(ws)])
    assert code == 0 and "no local deployment" in capsys.readouterr().out
    with pytest.raises(LlmopsError, match="no local deployment"):
        undeploy(ws, USE_CASE)  # without --all, naming nothing running is still an error


@pytest.mark.parametrize("url", ["notaurl", "ftp://host/x", "http://", "http://127.0.0.1:port"])
def test_endpoint_test_refuses_a_non_http_url_with_exit_2(ws, capsys, url):
    request = ws / "use_cases" / USE_CASE / "sample-request.json"
    code, err = _cli(capsys, "endpoint-test", url, "-r", str(request), "--timeout", "30", "-w", str(ws))
    assert code == 2 and "is not an http(s) URL" in err
    assert check_url("http://127.0.0.1:8080") == "http://127.0.0.1:8080"


def test_llm_endpoint_url_never_receives_the_connection_key(tmp_path, monkeypatch):
    """With --llm-endpoint URL the server process gets LLMOPS_LLM_API_KEY (or a placeholder), never AOAI_API_KEY."""
    from types import SimpleNamespace

    from llmops_tui.deploy import local

    monkeypatch.setenv("AOAI_API_KEY", "sk-canary-real-azure-key")
    monkeypatch.delenv("LLMOPS_LLM_API_KEY", raising=False)
    ref = SimpleNamespace(name="aoai", base_env_var="AOAI_API_BASE", key_env_var="AOAI_API_KEY")
    ctx = SimpleNamespace(bundle=SimpleNamespace(connections=[ref]))
    env, _ = local._llm_env(ctx, "http://127.0.0.1:9/v1")
    assert env["AOAI_API_KEY"] != "sk-canary-real-azure-key"
    monkeypatch.setenv("LLMOPS_LLM_API_KEY", "sk-local-server")
    env, _ = local._llm_env(ctx, "http://127.0.0.1:9/v1")
    assert env["AOAI_API_KEY"] == "sk-local-server"
