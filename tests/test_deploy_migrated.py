"""`llmops deploy-migrated`: a flow written by `llmops migrate` served with our Prompt flow deployments'
`/score` contract, for real over HTTP on 127.0.0.1 against the sandbox model; the container target's build
context, whose own command serves locally; the kubernetes, azureml and webapp targets through `llmops
deploy`'s writers (manifests validated against the Kubernetes schemas, Azure ML specs loaded with the SDK's
loaders and rolled out on a recording client, the web app's commands), the Kubernetes image's command
served locally with the manifest's environment; bad input is one line and exit code 2; no key in any
file; servers always stop."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import httpx
import kubernetes_validate
import pytest
import yaml
from test_deploy_azureml import RecordingClient
from test_deploy_support import CANARY, all_text
from test_migrate import _pf_lines

from llmops_tui.cli import main
from llmops_tui.core.backends.agent_framework import available
from llmops_tui.deploy import registry
from llmops_tui.deploy.endpoint_test import wait_healthy
from llmops_tui.deploy.kubernetes import validate_httproute
from llmops_tui.deploy.local import free_port
from llmops_tui.deploy.migrated import deploy_migrated

REPO = Path(__file__).resolve().parents[1]
UC = "named_entity_recognition"
K8S_VERSION = "1.30.0"
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
    env = {"AOAI_API_BASE": sandbox.url, "AOAI_API_KEY": "sandbox-no-key", "AOAI_API_VERSION": "2024-02-01"}
    _serve_image_cmd(ctx, env)


def _serve_image_cmd(ctx: Path, env_vars: dict[str, str]) -> None:
    """Run the Dockerfile's CMD in the build context ``ctx`` with ``env_vars`` (what the container gets);
    the only changes are the interpreter, loopback and a free port. Its /score answers the sample."""
    docker = (ctx / "Dockerfile").read_text()
    cmd = json.loads(re.search(r"^CMD (\[.*\])$", docker, re.MULTILINE).group(1))
    assert cmd[:2] == ["python", "serve_migrated.py"] and "0.0.0.0" in cmd
    port = free_port()
    local_cmd = [sys.executable, *cmd[1:]]
    local_cmd[local_cmd.index("0.0.0.0")] = "127.0.0.1"
    local_cmd[local_cmd.index("--port") + 1] = str(port)
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH" and not k.startswith("AOAI_")}
    env.update(env_vars)
    proc = subprocess.Popen(local_cmd, cwd=ctx, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        url = f"http://127.0.0.1:{port}"
        assert wait_healthy(url, timeout=60, alive=lambda: proc.poll() is None), proc.stderr
        sample = json.loads((ctx / "sample-request.json").read_text())
        resp = httpx.post(url + "/score", json=sample, timeout=30, trust_env=False)
        assert resp.status_code == 200 and resp.json()["entities"], resp.text
        missing = httpx.post(url + "/score", json={"entity_type": "person"}, timeout=30, trust_env=False)
        assert missing.status_code == 400
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
    assert main(["deploy-migrated", str(tmp_path / "empty"), "-t", "nope", "-w", str(tmp_path)]) == 2
    assert "--target" in capsys.readouterr().err
    assert not (tmp_path / ".llmops").exists()


# ------------------------------------------------------------------ kubernetes, azureml, webapp


@pytest.fixture()
def cloud(tmp_path, monkeypatch):
    """The workspace and migrated code, with the canary key in the environment and no cluster or Azure CLI
    reachable whatever this machine has configured."""
    monkeypatch.setenv("AOAI_API_KEY", CANARY)
    monkeypatch.setenv("KUBECONFIG", str(tmp_path / "no-kubeconfig"))
    monkeypatch.setattr("llmops_tui.deploy.kubernetes.kubectl_context", lambda: None)
    monkeypatch.setattr("llmops_tui.deploy.webapp.az_signed_in", lambda: False)
    return _migrated(tmp_path)


def _set_entry(ws: Path, block: str, env: str, **values) -> None:
    path = ws / "use_cases" / UC / "configs" / "deployment_config.json"
    config = json.loads(path.read_text())
    next(e for e in config[block] if e["ENV_NAME"] == env).update(values)
    path.write_text(json.dumps(config, indent=2))


def _folder(ws: Path, target: str) -> Path:
    return ws / ".llmops" / "deploy" / UC / "dev" / f"migrated-{target}"


@pytest.mark.integration
@needs_af
def test_kubernetes_manifests_validate_and_the_image_command_serves(cloud, capsys, sandbox):
    ws, migrated = cloud
    # The endpoint comes from the deployment config (the use case's llmops connection has a placeholder).
    _set_entry(ws, "kubernetes_endpoint", "dev", DEPLOYMENT_INSTANCE_COUNT=3, CPU_ALLOCATION="500m",
               MEMORY_ALLOCATION="1Gi", ENVIRONMENT_VARIABLES={"AOAI_API_BASE": sandbox.url})  # fmt: skip
    args = ["deploy-migrated", str(migrated), "-t", "kubernetes", "--env", "dev", "-w", str(ws), "--json"]
    assert main([*args, "--dry-run"]) == 0
    plan = json.loads(capsys.readouterr().out)
    assert plan["dry_run"] and plan["target"] == "migrated-kubernetes" and not (ws / ".llmops").exists()

    assert main(args) == 0
    result = json.loads(capsys.readouterr().out)
    assert result["target"] == "migrated-kubernetes" and result["version"] == plan["version"]
    ctx = _folder(ws, "kubernetes")
    names = {p.relative_to(ctx).as_posix() for p in ctx.rglob("*") if p.is_file()}
    assert {"Dockerfile", "serve_migrated.py", "flow/flow.py", "requirements.txt", "k8s/all.yaml"} <= names
    assert not any(n.startswith("connections/") or n == "serve_flow.py" for n in names)
    assert "promptflow" not in (ctx / "requirements.txt").read_text()
    objects = list(yaml.safe_load_all((ctx / "k8s" / "all.yaml").read_text()))
    assert [o["kind"] for o in objects] == ["Service", "Deployment", "HTTPRoute"]
    for obj in objects[:2]:
        kubernetes_validate.validate(obj, K8S_VERSION, strict=True)
    validate_httproute(objects[2])
    dep = objects[1]
    assert (
        dep["spec"]["replicas"] == 3 and dep["metadata"]["name"] == "example-ner-k8s-dev-example-ner-k8s-blue"
    )
    container = dep["spec"]["template"]["spec"]["containers"][0]
    assert container["readinessProbe"]["httpGet"] == {"path": "/health", "port": 8080}
    assert container["resources"]["limits"] == {"cpu": "500m", "memory": "1Gi"}
    env = {e["name"]: e for e in container["env"]}
    secret = {"secretKeyRef": {"name": "example-ner-k8s-dev-llm-keys", "key": "AOAI_API_KEY"}}
    assert env["AOAI_API_KEY"] == {"name": "AOAI_API_KEY", "valueFrom": secret}
    assert env["AOAI_API_VERSION"]["value"] == "2024-02-01"
    secret_step = next(s for s in result["steps"] if (s.get("command") or [""])[0] == "sh")
    assert '--from-literal=AOAI_API_KEY="$AOAI_API_KEY"' in secret_step["command"][2]
    # The image's command with the container's environment as the manifest gives it (the Secret's key
    # here is the sandbox's): the names the manifest sets are the names the migrated code reads.
    container_env = {e["name"]: e.get("value", "sandbox-no-key") for e in container["env"]}
    _serve_image_cmd(ctx, container_env)
    assert CANARY not in all_text(ws / ".llmops")


def test_azureml_specs_load_with_the_sdk_and_roll_out(cloud, capsys):
    from azure.ai.ml import load_online_deployment, load_online_endpoint

    ws, migrated = cloud
    code = main(["deploy-migrated", str(migrated), "-t", "azureml", "--env", "dev", "--dry-run", "--json",
                 "-w", str(ws)])  # fmt: skip
    captured = capsys.readouterr()
    assert code == 0, captured.err
    plan = json.loads(captured.out)
    written = {
        s["summary"].rsplit("/", 2)[-2:][-1]: s.get("object") for s in plan["steps"] if s["action"] == "write"
    }
    # The build context is the deploy folder, which a dry run does not write: the loader gets a stand-in.
    stand_in = ws.parent / "build-context"
    stand_in.mkdir()
    (stand_in / "Dockerfile").write_text("FROM scratch\n")
    loaded = {}
    for name, loader in (
        ("endpoint.yaml", load_online_endpoint),
        ("deployment.yaml", load_online_deployment),
    ):
        data = json.loads(json.dumps(written[name]))
        if "environment" in data:
            assert data["environment"]["build"]["path"].endswith("/migrated-azureml")
            data["environment"]["build"]["path"] = str(stand_in)
        (ws.parent / name).write_text(yaml.safe_dump(data))
        loaded[name] = loader(source=ws.parent / name)
    endpoint, deployment = loaded["endpoint.yaml"], loaded["deployment.yaml"]
    assert endpoint.name == deployment.endpoint_name == "example-ner-endpoint-dev"
    assert endpoint.properties["enforce_access_to_default_secret_stores"] == "enabled"
    assert type(deployment).__name__ == "ManagedOnlineDeployment"
    assert deployment.name == "example-ner-blue" and deployment.instance_type == "Standard_F4s_v2"
    assert (
        deployment.environment_variables["AOAI_API_KEY"] == "${{azureml://connections/aoai/credentials/key}}"
    )
    assert deployment.environment_variables["AOAI_API_BASE"] == "${{azureml://connections/aoai/target}}"
    assert "PROMPTFLOW_CONNECTION_PROVIDER" not in deployment.environment_variables
    scoring = deployment.environment.inference_config.scoring_route
    assert (scoring.path, scoring.port) == ("/score", 8080)
    assert "serve_migrated.py" in written["Dockerfile"] and not (ws / ".llmops").exists()

    # The rollout, on a client that records calls with the SDK's own entities.
    client = RecordingClient()
    result = deploy_migrated(ws, migrated, target="azureml", env="dev", ml_client=client)
    assert result.ok and result.target == "migrated-azureml" and result.test["ok"]
    assert [c[0] for c in client.calls if c[0] != "endpoint.get"] == [
        "endpoint.update", "deployment.create", "invoke", "endpoint.update", "invoke"
    ]  # fmt: skip
    assert client.state.traffic == {"example-ner-blue": 100}
    ctx = _folder(ws, "azureml")
    assert "promptflow" not in (ctx / "requirements.txt").read_text()
    assert yaml.safe_load((ctx / "azureml" / "deployment.yaml").read_text())["instance_count"] == 1
    assert CANARY not in all_text(ws / ".llmops")


def test_webapp_build_context_and_commands(cloud, capsys):
    ws, migrated = cloud
    _set_entry(ws, "webapp_endpoint", "dev", KEY_VAULT_NAME="ner-vault")
    code = main(["deploy-migrated", str(migrated), "-t", "webapp", "--env", "dev", "-w", str(ws)])
    out = capsys.readouterr().out
    assert code == 0, out
    assert "-> migrated-webapp" in out and "Azure CLI not installed or not signed in" in out
    ctx = _folder(ws, "webapp")
    assert 'CMD ["python", "serve_migrated.py"' in (ctx / "Dockerfile").read_text()
    script = (ctx / "commands.sh").read_text()
    assert (
        "az acr build --registry exampleregistry --resource-group example-registry-rg --image named-entity-recognition:"
        in script
    )
    assert "'AOAI_API_KEY=@Microsoft.KeyVault(VaultName=ner-vault;SecretName=aoai-api-key)'" in script
    assert "AOAI_API_VERSION=2024-02-01" in script and "WEBSITES_PORT=8080" in script
    assert "set AOAI_API_BASE in ENVIRONMENT_VARIABLES" in out  # the placeholder endpoint is not shipped
    meta = json.loads((ctx / "llmops-deployment.json").read_text())
    assert meta["kind"] == "migrated" and meta["use_case"] == UC
    assert CANARY not in all_text(ws / ".llmops")


def test_cloud_bad_input_is_one_line_exit_2_and_writes_nothing(cloud, capsys):
    ws, migrated = cloud
    base = ["deploy-migrated", str(migrated), "-w", str(ws)]
    cases = [
        (["-t", "kubernetes"], "--env"),
        (["-t", "azureml", "--env", "staging"], "staging"),
        (["-t", "azureml", "--env", "prod"], "A/B traffic splits are not supported for migrated flows"),
        (["-t", "webapp", "--env", "dev", "--image", "x:1"], "--image only applies to --target kubernetes"),
        (["--env", "dev"], "--env only applies to"),
        (["-t", "local", "--dry-run"], "--dry-run"),
        (["-t", "kubernetes", "--env", "dev", "--use-case", "nope"], "nope"),
    ]
    for extra, needle in cases:
        assert main([*base, *extra]) == 2, extra
        err = capsys.readouterr().err.strip()
        assert len(err.splitlines()) == 1 and needle in err, (extra, err)
    # The A/B refusal names the file and the field.
    main([*base, "-t", "azureml", "--env", "prod"])
    err = capsys.readouterr().err
    assert "deployment_config.json" in err and "CURRENT_DEPLOYMENT_TRAFFIC_ALLOCATION" in err
    _set_entry(ws, "azure_managed_endpoint", "dev", MIRROR_TRAFFIC_PERCENT=10)
    assert main([*base, "-t", "azureml", "--env", "dev"]) == 2
    assert "mirrored traffic is not supported for migrated flows" in capsys.readouterr().err
    assert not (ws / ".llmops").exists()


def test_capture_is_noted_as_not_supported_and_not_configured(cloud, capsys):
    ws, migrated = cloud
    llmops_yaml = ws / "use_cases" / UC / "llmops.yaml"
    llmops_yaml.write_text(llmops_yaml.read_text() + "capture:\n  enabled: true\n")
    assert main(["deploy-migrated", str(migrated), "-t", "kubernetes", "--env", "dev", "--dry-run",
                 "--json", "-w", str(ws)]) == 0  # fmt: skip
    plan = json.loads(capsys.readouterr().out)
    assert any("traffic capture is not supported for migrated flows" in n for n in plan["notes"])
    dep = next(s["object"] for s in plan["steps"] if isinstance(s.get("object"), dict)
               and s["object"].get("kind") == "Deployment")  # fmt: skip
    names = {e["name"] for e in dep["spec"]["template"]["spec"]["containers"][0]["env"]}
    assert not any(n.startswith("LLMOPS_CAPTURE") for n in names)


def test_no_key_in_any_written_file_or_output(cloud, capsys):
    """The canary key is in the environment: no file, plan or output of any target holds it."""
    ws, migrated = cloud
    for target in ("container", "kubernetes", "azureml", "webapp"):
        for dry in (["--dry-run"], []):
            if target == "azureml" and not dry:
                continue  # a real rollout needs a workspace: the recording client's run is checked above
            env = [] if target == "container" else ["--env", "dev"]
            code = main(["deploy-migrated", str(migrated), "-t", target, *env, "--json", "-w", str(ws), *dry])
            captured = capsys.readouterr()
            assert code == 0, captured.err
            assert CANARY not in captured.out and CANARY not in captured.err
            if target == "container" and dry:
                assert '"dry_run": true' in captured.out and not (ws / ".llmops").exists()
    result = deploy_migrated(ws, migrated, target="azureml", env="dev", ml_client=RecordingClient())
    assert CANARY not in json.dumps(result.to_dict())
    assert CANARY not in all_text(ws)
