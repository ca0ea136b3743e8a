"""The local target: serve the materialised flow on loopback with Prompt flow's serving app.

``serve_flow.py`` (Prompt flow's Flask serving app under waitress) runs as a detached process bound to
127.0.0.1. Its LLM connections point at ``--llm-endpoint`` (``sandbox`` starts the bundled sandbox model as
another detached process) or at the use case's declared endpoint with its key. The key is put only in the
server process's environment: the bundle's connection files hold ``${env:NAME}`` references.

With a traffic share below 100 (``--traffic N`` or ``CURRENT_DEPLOYMENT_TRAFFIC_ALLOCATION`` of a
``local_endpoint`` entry) a weighted router (:mod:`llmops_tui.deploy.router`) is started in front of the new
version (N %) and the prior local version (100 - N %).
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from llmops_tui.core.errors import LlmopsError, RunFailed
from llmops_tui.deploy import registry
from llmops_tui.deploy.endpoint_test import run_endpoint_test, wait_healthy

if TYPE_CHECKING:
    from llmops_tui.deploy.api import DeployContext

SERVE_MARKER = "serve_flow.py"
ROUTER_MARKER = "llmops_tui.deploy.router"
SANDBOX_MARKER = "sandbox"
LOCALHOST = "127.0.0.1"


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((LOCALHOST, 0))
        return sock.getsockname()[1]


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds").replace("+00:00", "Z")


# What a local deployment's processes inherit from ours: the basics to find and run Python, locale and
# time zone, TLS trust and proxy settings (to reach a declared endpoint the way this process does), and
# Prompt flow's own settings. Nothing else: no approval key, no cloud credentials, no keys of connections
# the flow does not use. Connection keys are added per deployment by :func:`_llm_env`.
_INHERITED = frozenset(
    {
        "PATH",
        "HOME",
        "USER",
        "LOGNAME",
        "SHELL",
        "LANG",
        "LANGUAGE",
        "TZ",
        "TMPDIR",
        "TEMP",
        "TMP",
        "SYSTEMROOT",
        "PYTHONPATH",
        "PYTHONHOME",
        "PYTHONIOENCODING",
        "PYTHONUTF8",
        "PYTHONDONTWRITEBYTECODE",
        "VIRTUAL_ENV",
        "SSL_CERT_FILE",
        "SSL_CERT_DIR",
        "REQUESTS_CA_BUNDLE",
        "CURL_CA_BUNDLE",
        "HTTP_PROXY",
        "HTTPS_PROXY",
        "http_proxy",
        "https_proxy",
        "NO_PROXY",
        "no_proxy",
    }
)
_INHERITED_PREFIXES = ("LC_", "PF_", "PROMPTFLOW_")


def _base_env(root: Path, extra: dict[str, str] | None = None) -> dict[str, str]:
    """The minimal environment of a local deployment's child processes (see ``_INHERITED``), plus
    ``extra`` (a ``local_endpoint`` entry's ENVIRONMENT_VARIABLES)."""
    from llmops_tui.core.pfenv import _OFFLINE_ENV, default_pf_home

    env = {k: v for k, v in os.environ.items() if k in _INHERITED or k.startswith(_INHERITED_PREFIXES)}
    for key, value in _OFFLINE_ENV.items():
        env.setdefault(key, value)
    env.setdefault("PF_HOME_DIRECTORY", str(default_pf_home(root)))
    for name in ("NO_PROXY", "no_proxy"):
        env[name] = ",".join(x for x in (env.get(name, ""), "127.0.0.1", "localhost") if x)
    env.update(extra or {})
    return env


def _entry_env(ctx: DeployContext) -> dict[str, str]:
    entry = ctx.entry
    values = getattr(entry, "ENVIRONMENT_VARIABLES", None) if entry is not None else None
    return dict(values) if isinstance(values, dict) else {}


def _spawn(
    cmd: list[str], env: dict[str, str], cwd: Path, log: Path, stdout: Path | None = None
) -> subprocess.Popen:
    log.parent.mkdir(parents=True, exist_ok=True)
    with open(log, "ab") as log_fh:
        out_fh = open(stdout, "wb") if stdout else log_fh
        try:
            return subprocess.Popen(
                cmd,
                cwd=str(cwd),
                env=env,
                stdin=subprocess.DEVNULL,
                stdout=out_fh,
                stderr=log_fh,
                start_new_session=True,
            )
        finally:
            if stdout:
                out_fh.close()


def _first_line(path: Path, proc: subprocess.Popen, timeout: float) -> str | None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if path.is_file():
            text = path.read_text(encoding="utf-8", errors="replace")
            if "\n" in text:
                return text.splitlines()[0].strip()
        if proc.poll() is not None:
            return None
        time.sleep(0.05)
    return None


def _log_tail(log: Path, lines: int = 6) -> str:
    try:
        text = log.read_text(encoding="utf-8", errors="replace").strip().splitlines()
    except OSError:
        return ""
    return " | ".join(t.strip() for t in text[-lines:])


def sandbox_command() -> list[str]:
    return [sys.executable, "-m", "llmops_tui.cli", "sandbox", "--host", LOCALHOST, "--port", "0"]


def serve_command(folder: Path, port: int) -> list[str]:
    return [
        sys.executable,
        str(folder / "serve_flow.py"),
        "--flow",
        str(folder / "flow"),
        "--connections",
        str(folder / "connections"),
        "--host",
        LOCALHOST,
        "--port",
        str(port),
    ]


def router_command(backends: list[tuple[str, str, int]], capture: Path | None = None) -> list[str]:
    cmd = [sys.executable, "-m", ROUTER_MARKER, "--host", LOCALHOST, "--port", "0"]
    for name, url, weight in backends:
        cmd += ["--backend", f"{name}={url}={weight}"]
    if capture is not None:
        cmd += ["--capture", str(capture)]
    return cmd


def _folder_configuration(folder: Any) -> dict[str, Any]:
    """The configuration a local deployment serves, from its bundle's llmops-deployment.json."""
    import json

    try:
        meta = json.loads((Path(str(folder)) / "llmops-deployment.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    config = meta.get("configuration") if isinstance(meta, dict) else None
    return config if isinstance(config, dict) else {}


def _capture_config(
    ctx: DeployContext, backends: list[tuple[str, str, int]], prior: dict[str, Any]
) -> dict[str, Any] | None:
    """What the router needs to capture traffic (``deploy --capture`` or ``capture.enabled`` in
    llmops.yaml), or None when capture is off. No secret in it: the hashing key stays in its own file."""
    from llmops_tui.core.store import STORE_DIR, STORE_FILE
    from llmops_tui.core.traffic import SALT_FILE, Arm, capture_settings

    # No hashing key here: a dry run must leave the workspace as it is (it is made when the router starts).
    settings = capture_settings(ctx.root, ctx.uc, force=bool(getattr(ctx.opts, "capture", False)), salt=False)
    if not settings.enabled:
        return None
    (new_name, new_url, new_weight), (old_name, old_url, old_weight) = backends
    arms = [
        Arm(
            old_name,
            str(prior["version"]),
            _folder_configuration(prior.get("folder")),
            old_url,
            old_weight,
            "A",
        ),
        Arm(new_name, ctx.bundle.version, ctx.config.to_dict(), new_url, new_weight, "B"),
    ]
    for arm in arms:
        arm.configuration.pop("warnings", None)
    return {
        "store": str(ctx.root / STORE_DIR / STORE_FILE),
        "salt_file": str(ctx.root / STORE_DIR / SALT_FILE) if settings.hash else None,
        "use_case": ctx.uc.name,
        "env": ctx.env,
        "arms": [a.to_dict() for a in arms],
        "capture": settings.to_dict(),
        "llm_endpoint": ctx.opts.llm_endpoint or None,
    }


def _llm_env(ctx: DeployContext, base_url: str | None) -> tuple[dict[str, str], list[str]]:
    """Environment for the server process (connection bases and keys) and what to tell people (no values)."""
    from llmops_tui.core.connections import find_key

    env: dict[str, str] = {}
    notes: list[str] = []
    for ref in ctx.bundle.connections:
        if base_url is not None:
            env[ref.base_env_var] = base_url
            # Never forward the connection's real key (e.g. AOAI_API_KEY) to another server.
            env[ref.key_env_var] = os.environ.get("LLMOPS_LLM_API_KEY") or "sandbox-no-key"
            continue
        declared = ctx.uc.connection(ref.name)
        if declared is None or not ref.usable_base:
            raise LlmopsError(
                f"connection '{ref.name}' has no usable api_base ({ref.api_base or 'none'})",
                file=ctx.uc.config_file,
                field=f"connections.{ref.name}.api_base",
                hint="set your endpoint URL, or deploy with --llm-endpoint sandbox",
            )
        key, source = find_key(declared, ctx.uc.path, ctx.root)
        if not key:
            raise LlmopsError(
                f"no API key for connection '{ref.name}'",
                file=ctx.uc.config_file,
                field=f"connections.{ref.name}.api_key",
                hint=f"set {ref.key_env_var} (env or .env) or deploy with --llm-endpoint sandbox",
            )
        env[ref.key_env_var] = key
        notes.append(
            f"connection {ref.name}: key from {source} ({ref.key_env_var}), passed to the server process only"
        )
    return env, notes


def _running(root: Path, uc: str, env: str) -> list[dict[str, Any]]:
    return [
        d for d in registry.load(root) if d.get("use_case") == uc and d.get("env") == env and d.get("alive")
    ]


def deploy_local(ctx: DeployContext) -> None:
    """Serve the bundle locally (see the module docstring). Fills ``ctx.result``."""
    opts, result, root = ctx.opts, ctx.result, ctx.root
    folder = ctx.out
    traffic = opts.traffic if opts.traffic is not None else (ctx.entry.current_traffic if ctx.entry else 100)
    if not 0 < traffic <= 100:
        raise LlmopsError(
            f"CURRENT_DEPLOYMENT_TRAFFIC_ALLOCATION {traffic} must be from 1 to 100 for a local deployment",
            file=ctx.config_file,
            field="local_endpoint[].CURRENT_DEPLOYMENT_TRAFFIC_ALLOCATION",
        )
    running = _running(root, ctx.uc.name, ctx.env)
    same = [d for d in running if d.get("kind") == "flow" and d.get("version") == ctx.bundle.version]
    priors = [d for d in running if d.get("kind") == "flow" and d.get("version") != ctx.bundle.version]
    prior = None
    if traffic < 100:
        wanted = opts.prior
        matches = [d for d in priors if not wanted or str(d.get("version", "")).startswith(wanted)]
        if not matches:
            raise LlmopsError(
                f"a {traffic}% share needs a prior local deployment of '{ctx.uc.name}' env '{ctx.env}' running",
                field="--prior" if wanted else "--traffic",
                hint="deploy the prior version first, or use --traffic 100",
            )
        prior = sorted(matches, key=lambda d: str(d.get("started_at", "")))[-1]

    base_url: str | None = None
    if opts.llm_endpoint and opts.llm_endpoint != "sandbox":
        base_url = opts.llm_endpoint.rstrip("/")
    port = opts.port or 0
    if same:
        record = same[0]
        result.add(
            "note",
            f"version {ctx.bundle.short_version} already serves at {record['url']} (pid {record['pid']})",
        )
    else:
        sandbox_step = None
        if opts.llm_endpoint == "sandbox":
            sandbox_step = result.add(
                "start", "start the sandbox model on a free loopback port", command=sandbox_command()
            )
        shown_port = port or "<free port>"
        serve_step = result.add(
            "start",
            f"serve the flow with Prompt flow's serving app on http://{LOCALHOST}:{shown_port}",
            command=serve_command(folder, port or 0),
        )
        if opts.dry_run:
            result.add(
                "test",
                "wait for GET /health, then POST sample-request.json to /score and check the output keys",
            )
            result.endpoint_url = f"http://{LOCALHOST}:{shown_port}"
            _plan_router(ctx, traffic, prior)
            return
        env = _base_env(root, _entry_env(ctx))
        sandbox_pid = None
        sandbox_url = None
        log = folder / "logs" / "serve.log"
        try:
            if sandbox_step is not None:
                sb_log = folder / "logs" / "sandbox.log"
                url_file = folder / "logs" / "sandbox.url"
                url_file.unlink(missing_ok=True)
                proc = _spawn(sandbox_command(), _base_env(root), folder, sb_log, stdout=url_file)
                sandbox_pid = proc.pid
                sandbox_url = _first_line(url_file, proc, 30.0)
                if not sandbox_url:
                    raise RunFailed(f"the sandbox model did not start: {_log_tail(sb_log)}")
                sandbox_step.done = True
                base_url = sandbox_url
            llm_env, notes = _llm_env(ctx, base_url)
            result.notes.extend(notes)
            port = port or free_port()
            serve_step.command = serve_command(folder, port)
            serve_step.summary = f"serve the flow with Prompt flow's serving app on http://{LOCALHOST}:{port}"
            proc = _spawn(serve_command(folder, port), {**env, **llm_env}, folder, log)
            url = f"http://{LOCALHOST}:{port}"
            if not wait_healthy(url, timeout=opts.timeout, alive=lambda: proc.poll() is None):
                registry.stop_process(proc.pid, SERVE_MARKER)
                raise RunFailed(f"the flow server did not become healthy at {url}: {_log_tail(log)}")
            serve_step.done = True
        except BaseException:
            if sandbox_pid:
                registry.stop_process(sandbox_pid, SANDBOX_MARKER)
            raise
        record = {
            "id": f"{ctx.uc.name}:{ctx.env}:{ctx.bundle.short_version}",
            "kind": "flow",
            "use_case": ctx.uc.name,
            "env": ctx.env,
            "version": ctx.bundle.version,
            "url": url,
            "port": port,
            "pid": proc.pid,
            "marker": SERVE_MARKER,
            "sandbox_pid": sandbox_pid,
            "sandbox_url": sandbox_url,
            "llm_endpoint": "sandbox" if sandbox_pid else (base_url or "declared connections"),
            "folder": str(folder),
            "log": str(log),
            "configuration": ctx.config.source,
            # The approval's sequence number: which decision this deployment carries out.
            "approval_sequence": (ctx.config.approval or {}).get("sequence"),
            "started_at": _now(),
        }
        registry.add(root, record)
    result.deployment = {k: v for k, v in record.items() if k not in {"marker", "alive"}}
    result.endpoint_url = record["url"]
    test = run_endpoint_test(record["url"], ctx.request, expect_keys=ctx.expect_keys, timeout=opts.timeout)
    result.test = test.to_dict()
    result.add("test", test.summary(), done=test.ok)
    if not test.ok:
        result.ok = False
        if not same:
            undeploy(root, ctx.uc.name, env=ctx.env, version=ctx.bundle.version)
            result.notes.append("the new version failed its endpoint test and was stopped")
        return
    _plan_router(ctx, traffic, prior)


def _plan_router(ctx: DeployContext, traffic: int, prior: dict[str, Any] | None) -> None:
    result, root = ctx.result, ctx.root
    if prior is None:
        return
    backends = [
        (ctx.bundle.short_version, result.endpoint_url or "", traffic),
        (str(prior["version"])[:12], str(prior["url"]), 100 - traffic),
    ]
    capture = _capture_config(ctx, backends, prior)
    folder = ctx.out
    capture_file = folder / "logs" / "router-capture.json" if capture else None
    step = result.add(
        "start",
        f"route traffic: {backends[0][0]} {traffic}% / {backends[1][0]} {100 - traffic}% (smooth weighted round robin)"
        + (", capturing requests per arm into the run store" if capture else ""),
        command=router_command(backends, capture_file),
    )
    if ctx.opts.dry_run:
        return
    import json
    import secrets as _secrets

    token = _secrets.token_hex(16)
    token_file = folder / "logs" / "router.token"
    token_file.parent.mkdir(parents=True, exist_ok=True)
    token_file.unlink(missing_ok=True)
    fd = os.open(token_file, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as fh:
        fh.write(token)
    if capture_file is not None and capture is not None:
        if capture["salt_file"]:
            from llmops_tui.core.traffic import workspace_salt

            workspace_salt(root)  # the router reads the key from its file; it is never in the config
        capture_file.write_text(json.dumps(capture, indent=2), encoding="utf-8")
    old = [
        d
        for d in registry.load(root)
        if d.get("kind") == "router" and d.get("use_case") == ctx.uc.name and d.get("env") == ctx.env
    ]
    url_file = folder / "logs" / "router.url"
    url_file.unlink(missing_ok=True)
    log = folder / "logs" / "router.log"
    # No keys at all; only the router's own admin token (for live weight changes: promote, rollback).
    env = {**_base_env(root), "LLMOPS_ROUTER_TOKEN": token}
    proc = _spawn(router_command(backends, capture_file), env, folder, log, stdout=url_file)
    url = _first_line(url_file, proc, 15.0)
    if not url or not wait_healthy(url, timeout=15.0, alive=lambda: proc.poll() is None):
        registry.stop_process(proc.pid, ROUTER_MARKER)
        raise RunFailed(f"the A/B router did not start: {_log_tail(log)}")
    # The new router is up before the old one goes: the shared URL changes, the versions keep serving.
    for item in old:
        registry.stop_process(item.get("pid"), ROUTER_MARKER)
    registry.remove(root, {str(i.get("id")) for i in old})
    record = {
        "id": f"{ctx.uc.name}:{ctx.env}:router",
        "kind": "router",
        "use_case": ctx.uc.name,
        "env": ctx.env,
        "version": f"{backends[0][0]}={traffic},{backends[1][0]}={100 - traffic}",
        "url": url,
        "port": int(url.rsplit(":", 1)[-1]),
        "pid": proc.pid,
        "marker": ROUTER_MARKER,
        "backends": [{"version": n, "url": u, "weight": w} for n, u, w in backends],
        "roles": {"B": backends[0][0], "A": backends[1][0]},
        "token_file": str(token_file),
        "capture_run": _capture_run(url) if capture else None,
        "folder": str(folder),
        "log": str(log),
        "started_at": _now(),
    }
    registry.add(root, record)
    step.done = True
    result.deployment = {
        **(result.deployment or {}),
        "router": {k: v for k, v in record.items() if k != "marker"},
    }
    result.endpoint_url = url


def _capture_run(url: str) -> str | None:
    """The traffic run a capturing router writes to (from its /health)."""
    import json
    import urllib.request

    try:
        with urllib.request.urlopen(url + "/health", timeout=5) as resp:  # noqa: S310 (loopback URL we started)
            data = json.loads(resp.read())
        return (data.get("capture") or {}).get("run_id")
    except (OSError, ValueError):
        return None


def undeploy(
    root: Path,
    use_case: str,
    *,
    env: str | None = None,
    version: str | None = None,
    all_versions: bool = False,
) -> list[dict[str, Any]]:
    """Stop local deployments of ``use_case`` (one version, or all) and forget them. Returns what was stopped.

    Routers in front of a stopped version are stopped too; so is a sandbox started for a version."""
    items = [
        d
        for d in registry.load(root)
        if d.get("use_case") == use_case and (env is None or d.get("env") == env)
    ]
    flows = [d for d in items if d.get("kind") == "flow"]
    if not items and all_versions:
        return []  # --all is a clean-up: nothing running is success (scripts run it unconditionally)
    if not items:
        raise LlmopsError(
            f"no local deployment of '{use_case}'", field="USE_CASE", hint="see `llmops deployments`"
        )
    if version:
        chosen = [d for d in flows if str(d.get("version", "")).startswith(version)]
        if not chosen:
            known = ", ".join(str(d.get("version", ""))[:12] for d in flows) or "none"
            raise LlmopsError(
                f"no local deployment of '{use_case}' at version '{version}'",
                field="--version",
                hint=f"running: {known}",
            )
    elif all_versions or len(flows) <= 1:
        chosen = list(items)
    else:
        known = ", ".join(str(d.get("version", ""))[:12] for d in flows)
        raise LlmopsError(
            f"'{use_case}' has {len(flows)} local versions ({known})",
            field="--version",
            hint="name one with --version or use --all",
        )
    versions = {str(d.get("version", ""))[:12] for d in chosen if d.get("kind") == "flow"}
    routers = [
        d
        for d in items
        if d.get("kind") == "router" and any(b.get("version") in versions for b in d.get("backends") or [])
    ]
    stopped = []
    for item in {id(d): d for d in chosen + routers}.values():
        registry.stop_process(item.get("pid"), item.get("marker"))
        if item.get("sandbox_pid"):
            registry.stop_process(item.get("sandbox_pid"), SANDBOX_MARKER)
        stopped.append({k: v for k, v in item.items() if k != "marker"})
    registry.remove(root, {str(d.get("id")) for d in stopped})
    return stopped
