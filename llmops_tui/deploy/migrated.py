"""``llmops deploy-migrated DIR``: serve a flow written by ``llmops migrate --to agent-framework``.

The migrated folder is copied into a deployment folder beside ``serve_migrated.py`` (standard library
only: the image and the local process need nothing of llmops-tui or Prompt flow):

    <out>/flow/                 the migrated flow folder (flow.py, pf_semantics.py, node code, prompts)
    <out>/serve_migrated.py     GET /health, POST /score: the contract of our Prompt flow deployments
    <out>/requirements.txt      the migrated flow's own
    <out>/sample-request.json   what the endpoint test posts (when migrate wrote one)
    <out>/llmops-deployment.json
    <out>/Dockerfile, .dockerignore, wheels/README.txt      (container target)

Targets:

- ``local``: the server runs detached on 127.0.0.1 with a minimal environment plus the endpoint and key
  variables of the connections the flow calls (``--llm-endpoint sandbox`` starts the sandbox model,
  ``--llm-endpoint URL`` points every connection at URL, else ``<NAME>_API_BASE``/``_API_KEY``/
  ``_API_VERSION`` are taken from this process's environment). It is recorded in the local deployments
  registry under the name ``<name>`` and environment ``migrated``: ``llmops deployments`` lists it,
  ``llmops undeploy NAME --env migrated`` stops it. The endpoint test posts the sample request and checks
  the flow's output keys.
- ``container``: the folder is a Docker build context whose command serves on port 8080; nothing runs.

The flow's facts (inputs, outputs, connections, variants) are read from ``flow.py``'s literals with
``ast``: this process never imports the migrated code (nor Agent Framework).
"""

from __future__ import annotations

import ast
import json
import os
import shutil
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from llmops_tui.core.errors import LlmopsError, RunFailed
from llmops_tui.core.files import safe_join
from llmops_tui.core.hashing import hash_folder
from llmops_tui.deploy import registry
from llmops_tui.deploy.plan import DeployResult
from llmops_tui.deploy.prepare import HEALTH_ROUTE, SERVING_PORT

SERVE_SCRIPT = Path(__file__).with_name("serve_migrated.py")
SERVE_MARKER = "serve_migrated.py"
ENV_NAME = "migrated"  # the registry's environment for migrated deployments
META_FILE = "llmops-deployment.json"
TARGETS = ("local", "container")
BASE_IMAGE = "python:3.11-slim"
_LITERALS = ("INPUTS", "OUTPUTS", "CONNECTIONS", "VARIANTS")


@dataclass
class MigratedFlow:
    """A flow folder written by ``llmops migrate`` (its ``flow.py``'s literals)."""

    folder: Path
    name: str
    inputs: dict[str, Any] = field(default_factory=dict)
    outputs: dict[str, Any] = field(default_factory=dict)
    connections: dict[str, str] = field(default_factory=dict)
    variants: dict[str, str] = field(default_factory=dict)
    version: str = ""

    @property
    def required(self) -> list[str]:
        return [k for k, v in self.inputs.items() if not (isinstance(v, dict) and "default" in v)]


def _bad(folder: Path, message: str, hint: str) -> LlmopsError:
    return LlmopsError(message, file=folder, field="DIR", hint=hint)


def load_migrated(folder: Path) -> MigratedFlow:
    """The migrated flow in ``folder`` (a flow folder with flow.py, or the folder migrate wrote, whose
    ``standard/`` is served). Anything else is one line naming the folder (exit code 2)."""
    folder = Path(folder)
    hint = "give a folder written by llmops migrate (it holds flow.py, or standard/flow.py)"
    if not folder.is_dir():
        raise _bad(folder, "no such folder", hint)
    name = folder.resolve().name
    if not (folder / "flow.py").is_file() and (folder / "standard" / "flow.py").is_file():
        folder = folder / "standard"
    elif folder.resolve().name == "standard":
        name = folder.resolve().parent.name
    flow_py = folder / "flow.py"
    if not flow_py.is_file() or not (folder / "pf_semantics.py").is_file():
        raise _bad(folder, "not a flow written by llmops migrate (no flow.py and pf_semantics.py)", hint)
    try:
        tree = ast.parse(flow_py.read_text(encoding="utf-8"))
    except (SyntaxError, UnicodeDecodeError) as exc:
        raise _bad(flow_py, f"flow.py does not parse: {exc}", "migrate the use case again") from None
    found: dict[str, Any] = {}
    for node in tree.body:
        if not isinstance(node, ast.Assign) or len(node.targets) != 1:
            continue
        target = node.targets[0]
        if isinstance(target, ast.Name) and target.id in _LITERALS:
            try:
                found[target.id] = ast.literal_eval(node.value)
            except ValueError:
                raise _bad(flow_py, f"{target.id} is not a literal", "migrate the use case again") from None
    if "OUTPUTS" not in found or "INPUTS" not in found or "def run_line" not in flow_py.read_text("utf-8"):
        raise _bad(flow_py, "flow.py lacks INPUTS, OUTPUTS or run_line", "migrate the use case again")
    safe = "".join(c if c.isalnum() or c in "-_." else "-" for c in name).strip(".-") or "flow"
    return MigratedFlow(
        folder=folder,
        name=safe,
        inputs=dict(found.get("INPUTS") or {}),
        outputs=dict(found.get("OUTPUTS") or {}),
        connections={str(k): str(v) for k, v in (found.get("CONNECTIONS") or {}).items()},
        variants={str(k): str(v) for k, v in (found.get("VARIANTS") or {}).items()},
        version=hash_folder(folder),
    )


def env_prefix(connection: str) -> str:
    """The prefix of a connection's variables in migrated code: ``aoai`` -> ``AOAI``."""
    return "".join(c if c.isalnum() else "_" for c in connection).upper()


def serve_command(folder: Path, port: int, host: str = "127.0.0.1") -> list[str]:
    return [
        sys.executable,
        str(folder / "serve_migrated.py"),
        "--flow",
        str(folder / "flow"),
        "--host",
        host,
        "--port",
        str(port),
    ]


def dockerfile(flow: MigratedFlow, *, base_image: str = BASE_IMAGE) -> str:
    envs = ", ".join(
        f"{env_prefix(c)}_API_BASE / _API_KEY" + ("" if t.startswith("OpenAI") else " / _API_VERSION")
        for c, t in flow.connections.items()
    )
    return f"""# Written by `llmops deploy-migrated`: serves {flow.name} (migrated to Agent Framework), version {flow.version[:12]}.
# No secrets inside: connection endpoints and keys come from the environment when the container starts
# ({envs or "no connections"}).
ARG BASE_IMAGE={base_image}
FROM ${{BASE_IMAGE}}
ARG PIP_ARGS=""
ENV PYTHONDONTWRITEBYTECODE=1 \\
    PYTHONUNBUFFERED=1 \\
    LLMOPS_FLOW_VERSION={flow.version}
WORKDIR /app
COPY requirements.txt ./
COPY wheels/ ./wheels/
RUN pip install --no-cache-dir $PIP_ARGS -r requirements.txt && rm -rf ./wheels
COPY flow/ ./flow/
COPY serve_migrated.py ./
RUN useradd --create-home --uid 10001 flow && chown -R flow /app
USER 10001
EXPOSE {SERVING_PORT}
HEALTHCHECK --interval=15s --timeout=3s --start-period=10s CMD python -c "import urllib.request,sys; sys.exit(0 if urllib.request.urlopen('http://127.0.0.1:{SERVING_PORT}{HEALTH_ROUTE}').status == 200 else 1)"
CMD ["python", "serve_migrated.py", "--flow", "flow", "--host", "0.0.0.0", "--port", "{SERVING_PORT}"]
"""


DOCKERIGNORE = """# Written by `llmops deploy-migrated`
logs/
llmops-deployment.json
**/__pycache__/
**/.venv/
.env
*.env
"""


def prepare(flow: MigratedFlow, out: Path, target: str) -> list[Path]:
    """Write the deployment folder (see the module docstring); the files written."""
    out = Path(out)
    meta = out / META_FILE
    if out.exists() and any(out.iterdir()) and not meta.is_file():
        raise LlmopsError(
            "folder exists and was not written by llmops deploy-migrated",
            file=out,
            field="--out",
            hint="choose an empty or new folder",
        )
    if (out / "flow").exists():
        shutil.rmtree(out / "flow")
    out.mkdir(parents=True, exist_ok=True)
    shutil.copytree(
        flow.folder,
        out / "flow",
        ignore=shutil.ignore_patterns("__pycache__", ".venv", "*.pyc", ".env", "*.env"),
    )
    files: dict[str, str] = {
        "serve_migrated.py": SERVE_SCRIPT.read_text(encoding="utf-8"),
        "requirements.txt": (flow.folder / "requirements.txt").read_text(encoding="utf-8")
        if (flow.folder / "requirements.txt").is_file()
        else "",
        META_FILE: json.dumps(
            {
                "kind": "migrated",
                "name": flow.name,
                "source": str(flow.folder.resolve()),
                "version": flow.version,
                "target": target,
                "variants": flow.variants,
            },
            indent=2,
        ),
    }
    if target == "container":
        files.update(
            {
                "Dockerfile": dockerfile(flow),
                ".dockerignore": DOCKERIGNORE,
                "wheels/README.txt": "Optional: wheels for offline image builds "
                "(pip download -r requirements.txt -d wheels).\n",
            }
        )
    sample = flow.folder / "sample-request.json"
    if sample.is_file():
        files["sample-request.json"] = sample.read_text(encoding="utf-8")
    written = [out / "flow"]
    for rel_path, text in files.items():
        path = safe_join(out, rel_path)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")
        written.append(path)
    return written


def _llm_env(flow: MigratedFlow, base_url: str | None) -> tuple[dict[str, str], list[str]]:
    """The server's connection variables and what to tell people (names, never values)."""
    env: dict[str, str] = {}
    notes: list[str] = []
    for name, kind in flow.connections.items():
        prefix = env_prefix(name)
        if base_url is not None:
            env[f"{prefix}_API_BASE"] = base_url
            env[f"{prefix}_API_KEY"] = os.environ.get("LLMOPS_LLM_API_KEY") or "sandbox-no-key"
            if not kind.startswith("OpenAI"):
                env[f"{prefix}_API_VERSION"] = os.environ.get(f"{prefix}_API_VERSION") or "2024-02-01"
            continue
        if not os.environ.get(f"{prefix}_API_BASE"):
            raise LlmopsError(
                f"connection '{name}' needs {prefix}_API_BASE, which is not set",
                field=f"{prefix}_API_BASE",
                hint=f"export {prefix}_API_BASE and {prefix}_API_KEY, or use --llm-endpoint sandbox",
            )
        for suffix in ("API_BASE", "API_KEY", "API_VERSION"):
            value = os.environ.get(f"{prefix}_{suffix}")
            if value:
                env[f"{prefix}_{suffix}"] = value
        notes.append(f"connection {name}: {prefix}_API_BASE and _API_KEY passed to the server process only")
    return env, notes


def _request(flow: MigratedFlow, request: Path | None) -> tuple[Any, str]:
    from llmops_tui.deploy.endpoint_test import load_request

    if request is not None:
        return load_request(request), str(request)
    sample = flow.folder / "sample-request.json"
    if sample.is_file():
        return load_request(sample), "sample-request.json"
    defaults = {k: v["default"] for k, v in flow.inputs.items() if isinstance(v, dict) and "default" in v}
    if flow.required:
        raise LlmopsError(
            f"no request to test the endpoint with: inputs {', '.join(flow.required)} have no default",
            file=flow.folder,
            field="--request",
            hint="give --request FILE (a JSON object of flow inputs)",
        )
    return defaults, "the inputs' defaults"


def default_out(root: Path, flow: MigratedFlow, target: str) -> Path:
    """``<workspace>/.llmops/deployments/migrated/<name>/<target>-<version>``."""
    base = root / ".llmops" / "deployments" / ENV_NAME / flow.name
    return safe_join(base, f"{target}-{flow.version[:12]}")


def deploy_migrated(
    root: Path,
    folder: Path,
    *,
    target: str = "local",
    out: Path | None = None,
    llm_endpoint: str | None = None,
    port: int | None = None,
    timeout: float = 60.0,
    request: Path | None = None,
) -> DeployResult:
    """Prepare (and for ``local``, start and test) a deployment of a migrated flow."""
    from llmops_tui.deploy import local
    from llmops_tui.deploy.endpoint_test import run_endpoint_test, wait_healthy

    if target not in TARGETS:
        raise LlmopsError(f"unknown target '{target}'", field="--target", hint="local or container")
    if target != "local" and (llm_endpoint or port):
        raise LlmopsError(
            "--llm-endpoint and --port only apply to --target local",
            field="--llm-endpoint" if llm_endpoint else "--port",
            hint="the container reads its connections from its environment",
        )
    if llm_endpoint and llm_endpoint != "sandbox" and not llm_endpoint.startswith(("http://", "https://")):
        raise LlmopsError(
            f"'{llm_endpoint}' is neither 'sandbox' nor an http(s) URL",
            field="--llm-endpoint",
            hint="use --llm-endpoint sandbox, or the base URL of a server",
        )
    root = Path(root).resolve()
    flow = load_migrated(folder)
    dest = Path(out) if out is not None else default_out(root, flow, target)
    result = DeployResult(
        target=f"migrated-{target}",
        use_case=flow.name,
        env=ENV_NAME,
        version=flow.version,
        configuration={"source": f"migrated flow {flow.folder}", "variants": flow.variants, "params": {}},
        dry_run=False,
    )
    if target == "local":
        running = [
            d
            for d in registry.load(root)
            if d.get("use_case") == flow.name and d.get("env") == ENV_NAME and d.get("alive")
        ]
        same = [d for d in running if d.get("version") == flow.version]
        if same:
            record = same[0]
            result.add(
                "note", f"version {flow.version[:12]} already serves at {record['url']} (pid {record['pid']})"
            )
            result.deployment = {k: v for k, v in record.items() if k not in {"marker", "alive"}}
            result.endpoint_url = record["url"]
            body, _ = _request(flow, request)
            test = run_endpoint_test(record["url"], body, expect_keys=list(flow.outputs), timeout=timeout)
            result.test = test.to_dict()
            result.add("test", test.summary(), done=test.ok)
            result.ok = test.ok
            return result
    body, shown = _request(flow, request) if target == "local" else (None, "")
    for path in prepare(flow, dest, target):
        result.add("write", f"write {path}", done=True)
        result.add_artifact(path, root)
    if target == "container":
        result.add(
            "note",
            f"build it: docker build -t {flow.name}:{flow.version[:12]} {dest}",
        )
        result.notes.append(
            "connections come from the container's environment: "
            + (", ".join(f"{env_prefix(c)}_API_BASE / _API_KEY" for c in flow.connections) or "none")
        )
        return result
    base_url = llm_endpoint.rstrip("/") if llm_endpoint and llm_endpoint != "sandbox" else None
    logs = dest / "logs"
    sandbox_pid = None
    proc = None
    try:
        if llm_endpoint == "sandbox":
            url_file = logs / "sandbox.url"
            url_file.unlink(missing_ok=True)
            sb = local._spawn(
                local.sandbox_command(), local._base_env(root), dest, logs / "sandbox.log", url_file
            )
            sandbox_pid = sb.pid
            base_url = local._first_line(url_file, sb, 30.0)
            if not base_url:
                raise RunFailed(f"the sandbox model did not start: {local._log_tail(logs / 'sandbox.log')}")
            result.add(
                "start", f"start the sandbox model at {base_url}", command=local.sandbox_command(), done=True
            )
        llm_env, notes = _llm_env(flow, base_url)
        result.notes.extend(notes)
        port = port or local.free_port()
        # The flow's process: the minimal environment of local deployments plus its connections, and not
        # our PYTHONPATH (the migrated flow must not find llmops_tui through it).
        env = {k: v for k, v in local._base_env(root).items() if k != "PYTHONPATH"}
        env.update(llm_env)
        env["LLMOPS_FLOW_VERSION"] = flow.version
        cmd = serve_command(dest, port)
        step = result.add("start", f"serve the migrated flow on http://{local.LOCALHOST}:{port}", command=cmd)
        proc = local._spawn(cmd, env, dest, logs / "serve.log")
        url = f"http://{local.LOCALHOST}:{port}"
        if not wait_healthy(url, timeout=timeout, alive=lambda: proc.poll() is None):
            raise RunFailed(
                f"the migrated flow's server did not become healthy at {url}: {local._log_tail(logs / 'serve.log')}"
            )
        step.done = True
    except BaseException:
        if proc is not None:
            registry.stop_process(proc.pid, SERVE_MARKER)
        if sandbox_pid:
            registry.stop_process(sandbox_pid, local.SANDBOX_MARKER)
        raise
    record = {
        "id": f"{flow.name}:{ENV_NAME}:{flow.version[:12]}",
        "kind": "flow",
        "use_case": flow.name,
        "env": ENV_NAME,
        "version": flow.version,
        "url": url,
        "port": port,
        "pid": proc.pid,
        "marker": SERVE_MARKER,
        "sandbox_pid": sandbox_pid,
        "llm_endpoint": "sandbox" if sandbox_pid else (base_url or "environment"),
        "folder": str(dest),
        "log": str(logs / "serve.log"),
        "configuration": f"migrated flow {flow.folder}",
        "started_at": local._now(),
    }
    registry.add(root, record)
    result.deployment = {k: v for k, v in record.items() if k != "marker"}
    result.endpoint_url = url
    test = run_endpoint_test(url, body, expect_keys=list(flow.outputs), timeout=timeout)
    result.test = test.to_dict()
    result.add("test", f"{test.summary()} (request: {shown})", done=test.ok)
    if not test.ok:
        result.ok = False
        local.undeploy(root, flow.name, env=ENV_NAME, version=flow.version)
        result.notes.append("the migrated flow failed its endpoint test and was stopped")
    return result
