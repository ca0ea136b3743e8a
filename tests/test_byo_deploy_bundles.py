"""Flex flows to Kubernetes, Azure ML (managed and Kubernetes flavours) and a Web App: the bundles build
for the two flex fixtures of ``tests/fixtures/byo_repo`` (a class entry with init.json, a .prompty and
chat_history; a function entry with its own client) with ``--dry-run``, from the template's
``deployment_config.json`` as shipped (empty endpoint and deployment names). The manifests validate
against the Kubernetes schemas and the Azure ML SDK's own loaders, nothing is written, and no key
reaches the output. Also ``--variants init.SET``: a named init set of llmops.yaml is what is deployed."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import kubernetes_validate
import pytest
import yaml

from llmops_tui.cli import main
from llmops_tui.deploy.api import DeployOptions, deploy
from llmops_tui.deploy.kubernetes import validate_httproute

FIXTURE = Path(__file__).resolve().parent / "fixtures" / "byo_repo"
KEY = "placeholder-key-not-real"  # the fixture's .env key: must never reach an output
K8S_VERSION = "1.30.0"
FLEX = [("chat_flow", "pr"), ("function_flow", "dev")]
TARGETS = ("kubernetes", "azureml", "azureml-kubernetes", "webapp")


def _deployment_config(env: str) -> dict:
    """The template's deployment_config.json as shipped: names left empty, one entry per target kind."""
    managed = {
        "ENV_NAME": env,
        "TEST_FILE_PATH": "sample-request.json",
        "ENDPOINT_NAME": "",
        "ENDPOINT_DESC": "An online endpoint",
        "DEPLOYMENT_DESC": "A deployment",
        "PRIOR_DEPLOYMENT_NAME": "",
        "PRIOR_DEPLOYMENT_TRAFFIC_ALLOCATION": "",
        "CURRENT_DEPLOYMENT_NAME": "",
        "CURRENT_DEPLOYMENT_TRAFFIC_ALLOCATION": "100",
        "DEPLOYMENT_VM_SIZE": "Standard_F4s_v2",
        "DEPLOYMENT_INSTANCE_COUNT": 1,
        "ENVIRONMENT_VARIABLES": {"example-name": "example-value"},
    }
    kubernetes = {
        **managed,
        "COMPUTE_NAME": "k8s-compute",
        "DEPLOYMENT_VM_SIZE": "defaultinstancetype",
        "CPU_ALLOCATION": "500m",
        "MEMORY_ALLOCATION": "1Gi",
    }
    webapp = {
        "ENV_NAME": env,
        "TEST_FILE_PATH": "sample-request.json",
        "CONNECTION_NAMES": ["aoai"],
        "REGISTRY_NAME": "byoregistry",
        "REGISTRY_RG_NAME": "registry-rg",
        "APP_PLAN_NAME": "byo-plan",
        "WEB_APP_NAME": "byo-webapp",
        "WEB_APP_RG_NAME": "webapp-rg",
        "WEB_APP_SKU": "B3",
        "USER_MANAGED_ID": "byo-identity",
        "KEY_VAULT_NAME": "byo-vault",
    }
    return {
        "azure_managed_endpoint": [managed],
        "kubernetes_endpoint": [kubernetes],
        "webapp_endpoint": [webapp],
    }


@pytest.fixture
def repo(tmp_path, monkeypatch) -> Path:
    ws = tmp_path / "repo"
    shutil.copytree(FIXTURE, ws)
    shutil.copyfile(FIXTURE / "template.env", ws / ".env")
    for use_case, env in FLEX:
        (ws / use_case / "configs").mkdir(exist_ok=True)
        (ws / use_case / "configs" / "deployment_config.json").write_text(json.dumps(_deployment_config(env)))
    monkeypatch.delenv("AOAI_API_KEY", raising=False)
    # never touch a real cluster or subscription from tests, whatever this machine has configured
    monkeypatch.setenv("KUBECONFIG", str(tmp_path / "no-kubeconfig"))
    monkeypatch.setattr("llmops_tui.deploy.kubernetes.kubectl_context", lambda: None)
    monkeypatch.setattr("llmops_tui.deploy.webapp.az_signed_in", lambda: False)
    return ws


def _dry_run(repo: Path, use_case: str, env: str, target: str, capsys) -> dict:
    code = main(
        ["deploy", use_case, "--env", env, "--target", target, "--dry-run", "--json", "-w", str(repo)]
    )
    captured = capsys.readouterr()
    assert code == 0, captured.err
    assert KEY not in captured.out and KEY not in captured.err
    return json.loads(captured.out)


def _written(plan: dict) -> dict[str, object]:
    """What the dry run would write: path (from the target folder) -> the object or text."""
    return {
        s["summary"].removeprefix("write ").split(f"/{plan['target']}/", 1)[1]: s.get("object")
        for s in plan["steps"]
        if s["action"] == "write" and s["summary"].startswith("write .llmops/") and "object" in s
    }


@pytest.mark.parametrize(("use_case", "env"), FLEX)
def test_flex_bundles_build_for_every_target_in_a_dry_run(repo, use_case, env, capsys):
    for target in TARGETS:
        plan = _dry_run(repo, use_case, env, target, capsys)
        assert plan["dry_run"] and plan["ok"]
        bundle = {a.split(f"/{target}/", 1)[1] for a in plan["artifacts"]}
        # the flex flow as written, its init values, the connection (no key), the server that runs it
        assert {"flow/flow.flex.yaml", "connections/aoai.yaml", "serve_flow.py", "Dockerfile"} <= bundle
        assert ("flow/init.json" in bundle) == (use_case == "chat_flow")
        names = " ".join(plan["notes"])
        assert "ENDPOINT_NAME is empty" in names and use_case.replace("_", "-") in names
        written = _written(plan)
        assert "serve_flow.py" in str(written["Dockerfile"])
        if target == "kubernetes":
            objects = [written[k] for k in sorted(written) if k.startswith("k8s/") and k != "k8s/all.yaml"]
            kinds = sorted(o["kind"] for o in objects)
            assert kinds == ["Deployment", "HTTPRoute", "Service"]
            for obj in objects:
                if obj["kind"] == "HTTPRoute":
                    validate_httproute(obj)
                else:
                    kubernetes_validate.validate(obj, K8S_VERSION, strict=True)
            assert list(yaml.safe_load_all(str(written["k8s/all.yaml"])))  # the applied file parses
            dep = next(o for o in objects if o["kind"] == "Deployment")
            env_vars = {e["name"]: e for e in dep["spec"]["template"]["spec"]["containers"][0]["env"]}
            assert "secretKeyRef" in env_vars["AOAI_API_KEY"]["valueFrom"]
        if target.startswith("azureml"):
            from azure.ai.ml import load_online_deployment, load_online_endpoint

            endpoint = load_online_endpoint(source=_as_file(repo, written["azureml/endpoint.yaml"]))
            deployment = load_online_deployment(source=_as_file(repo, written["azureml/deployment.yaml"]))
            assert endpoint.name == deployment.endpoint_name == f"{use_case.replace('_', '-')}-{env}"
            kind = type(deployment).__name__
            assert kind == (
                "KubernetesOnlineDeployment" if target == "azureml-kubernetes" else "ManagedOnlineDeployment"
            )
        if target == "webapp":
            assert any(
                "az webapp config appsettings set" in " ".join(s.get("command") or []) for s in plan["steps"]
            )
    assert not (repo / ".llmops" / "deploy").exists()  # a dry run writes nothing


def _as_file(repo: Path, obj: object) -> Path:
    """The object as a YAML file the SDK loads. The image's build context is the deploy folder, which a
    dry run does not write: the loader (which checks that the folder exists) gets a stand-in."""
    data = json.loads(json.dumps(obj))
    build = (
        (data.get("environment") or {}).get("build") if isinstance(data.get("environment"), dict) else None
    )
    if isinstance(build, dict) and build.get("path"):
        assert str(build["path"]).endswith(("/azureml", "/azureml-kubernetes"))
        stand_in = repo.parent / "build-context"
        stand_in.mkdir(exist_ok=True)
        (stand_in / "Dockerfile").write_text("FROM scratch\n")
        build["path"] = str(stand_in)
    path = repo.parent / "loaded.yaml"
    path.write_text(yaml.safe_dump(data))
    return path


def test_function_flow_bundle_carries_the_packages_its_code_needs(repo):
    deploy(repo, DeployOptions("function_flow", "dev", "kubernetes"), kubectl_context=lambda: None)
    folder = repo / ".llmops" / "deploy" / "function_flow" / "dev" / "kubernetes"
    lines = (folder / "requirements.txt").read_text().splitlines()
    assert {"openai", "jinja2"} <= set(lines) and any(r.startswith("promptflow") for r in lines)
    assert KEY not in "".join(p.read_text(errors="replace") for p in folder.rglob("*") if p.is_file())


def test_variants_init_set_deploys_the_named_init_values(repo, capsys):
    (repo / "chat_flow" / "llmops.yaml").write_text("init_sets:\n  tight: {max_total_token: 5}\n")
    result = deploy(
        repo,
        DeployOptions("chat_flow", "pr", "kubernetes", variants="init.tight"),
        kubectl_context=lambda: None,
    )
    assert result.configuration["variants"] == {"init": "tight"}
    assert result.configuration["params"] == {"init.max_total_token": 5}
    folder = repo / ".llmops" / "deploy" / "chat_flow" / "pr" / "kubernetes"
    init = json.loads((folder / "flow" / "init.json").read_text())
    assert init["max_total_token"] == 5 and init["model_config"]["azure_deployment"] == "gpt-35-turbo"
    meta = json.loads((folder / "llmops-deployment.json").read_text())
    assert meta["configuration"]["params"] == {"init.max_total_token": 5}

    default = deploy(
        repo,
        DeployOptions("chat_flow", "pr", "kubernetes", variants="init.default"),
        kubectl_context=lambda: None,
    )
    assert default.configuration["params"] == {} and default.version != result.version
    assert json.loads((folder / "flow" / "init.json").read_text())["max_total_token"] == 2048

    code = main(["deploy", "chat_flow", "--env", "pr", "--target", "kubernetes", "--variants", "init.nope",
                 "--dry-run", "-w", str(repo)])  # fmt: skip
    err = capsys.readouterr().err
    assert code == 2 and "no variant 'init.nope'" in err and "init.tight" in err
