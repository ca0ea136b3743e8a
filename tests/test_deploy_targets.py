"""Kubernetes manifests (validated against the Kubernetes schemas and a Gateway API HTTPRoute schema),
the web app build context and az commands, and the secret canary across every generated file."""

from __future__ import annotations

import json

import jsonschema
import kubernetes_validate
import pytest
import yaml
from test_deploy_support import CANARY, USE_CASE, all_text, make_workspace

from llmops_tui.cli import main
from llmops_tui.deploy.api import DeployOptions, deploy
from llmops_tui.deploy.kubernetes import validate_httproute

K8S_VERSION = "1.30.0"


@pytest.fixture()
def ws(tmp_path, monkeypatch):
    monkeypatch.setenv("AOAI_API_KEY", CANARY)
    # Never touch a real cluster or subscription from tests, whatever this machine has configured.
    monkeypatch.setenv("KUBECONFIG", str(tmp_path / "no-kubeconfig"))
    monkeypatch.setattr("llmops_tui.deploy.kubernetes.kubectl_context", lambda: None)
    monkeypatch.setattr("llmops_tui.deploy.webapp.az_signed_in", lambda: False)
    return make_workspace(tmp_path)


def _k8s(ws, **kw):
    return deploy(ws, DeployOptions(USE_CASE, "dev", "kubernetes", **kw), kubectl_context=lambda: None)


def test_kubernetes_manifests_validate(ws):
    result = _k8s(ws, image="registry.example/ner:1")
    folder = ws / ".llmops" / "deploy" / USE_CASE / "dev" / "kubernetes" / "k8s"
    objects = list(yaml.safe_load_all((folder / "all.yaml").read_text()))
    assert [o["kind"] for o in objects] == ["Service", "Deployment", "HTTPRoute"]
    for obj in objects[:2]:
        kubernetes_validate.validate(obj, K8S_VERSION, strict=True)
    route = objects[2]
    validate_httproute(route)
    refs = route["spec"]["rules"][0]["backendRefs"]
    assert [(r["name"], r["weight"]) for r in refs] == [("ner-k8s-green", 80), ("ner-k8s-blue", 20)]
    dep = objects[1]
    container = dep["spec"]["template"]["spec"]["containers"][0]
    assert container["image"] == "registry.example/ner:1"
    assert container["readinessProbe"]["httpGet"] == {"path": "/health", "port": 8080}
    assert container["livenessProbe"]["httpGet"]["path"] == "/health"
    assert container["resources"] == {
        "requests": {"cpu": "500m", "memory": "1Gi"},
        "limits": {"cpu": "500m", "memory": "1Gi"},
    }
    env = {e["name"]: e for e in container["env"]}
    assert env["LOG_LEVEL"]["value"] == "info"
    assert env["AOAI_API_KEY"] == {
        "name": "AOAI_API_KEY",
        "valueFrom": {"secretKeyRef": {"name": "ner-k8s-llm-keys", "key": "AOAI_API_KEY"}},
    }
    assert (
        dep["spec"]["replicas"] == 2 and dep["metadata"]["labels"]["llmops.io/version"] == result.version[:12]
    )
    apply_step = [s for s in result.steps if s.command and s.command[:2] == ["kubectl", "apply"]][0]
    assert apply_step.skipped and not apply_step.done  # no kubectl context: written only


def test_httproute_schema_rejects_bad_routes():
    good = {
        "apiVersion": "gateway.networking.k8s.io/v1",
        "kind": "HTTPRoute",
        "metadata": {"name": "r"},
        "spec": {
            "parentRefs": [{"name": "gw"}],
            "rules": [{"backendRefs": [{"name": "a", "port": 80, "weight": 1}]}],
        },
    }
    validate_httproute(good)
    for bad_ref in (
        {"name": "a", "port": 0},
        {"name": "A_b"},
        {"name": "a", "weight": -1},
        {"name": "a", "wieght": 1},
    ):
        bad = json.loads(json.dumps(good))
        bad["spec"]["rules"][0]["backendRefs"] = [bad_ref]
        with pytest.raises(jsonschema.ValidationError):
            validate_httproute(bad)
    zero = json.loads(json.dumps(good))
    zero["spec"]["rules"][0]["backendRefs"][0]["weight"] = 0
    with pytest.raises(ValueError, match="drop all traffic"):
        validate_httproute(zero)


def test_webapp_build_context_and_commands(ws):
    result = deploy(ws, DeployOptions(USE_CASE, "dev", "webapp"), az_signed_in=lambda: False)
    ctx = ws / ".llmops" / "deploy" / USE_CASE / "dev" / "webapp"
    names = {p.relative_to(ctx).as_posix() for p in ctx.rglob("*") if p.is_file()}
    assert {
        "Dockerfile",
        ".dockerignore",
        "requirements.txt",
        "serve_flow.py",
        "flow/flow.dag.yaml",
        "connections/aoai.yaml",
        "sample-request.json",
        "commands.sh",
    } <= names
    dockerfile = (ctx / "Dockerfile").read_text()
    assert "serve_flow.py" in dockerfile and "EXPOSE 8080" in dockerfile
    reqs = (ctx / "requirements.txt").read_text().splitlines()
    assert any(r.startswith("promptflow==1.18.") for r in reqs) and "promptflow" not in [
        r.strip() for r in reqs
    ]
    conn = yaml.safe_load((ctx / "connections" / "aoai.yaml").read_text())
    assert conn["api_key"] == "${env:AOAI_API_KEY}"
    commands = [s.command for s in result.steps if s.command]
    assert commands[0][:3] == ["az", "acr", "build"]
    settings = next(c for c in commands if c[:5] == ["az", "webapp", "config", "appsettings", "set"])
    assert "AOAI_API_KEY=@Microsoft.KeyVault(VaultName=ner-vault;SecretName=aoai-api-key)" in settings
    assert all(s.skipped for s in result.steps if s.command)  # no az here: printed and written only
    assert "az webapp show" in (ctx / "commands.sh").read_text()


def test_no_secret_in_any_generated_file_or_output(ws, capsys):
    """The canary key is in the environment; it must not reach a file, the plan or the JSON output."""
    for target in ("kubernetes", "webapp", "azureml", "azureml-kubernetes"):
        for dry in ([], ["--dry-run"]):
            args = ["deploy", USE_CASE, "--env", "dev", "--target", target, "--json", "-w", str(ws), *dry]
            if target.startswith("azureml") and not dry:
                continue  # a real Azure ML rollout needs a workspace; covered with a recorder in test_deploy_azureml
            code = main(args)
            captured = capsys.readouterr()
            assert code == 0, captured.err
            assert CANARY not in captured.out and CANARY not in captured.err
    assert CANARY not in all_text(ws)
