"""Serve a materialised flow with Prompt flow's own serving app, with connections from YAML files.

This file is self-contained on purpose (standard library, PyYAML and promptflow only): the deploy module
runs it for local deployments and copies it into container build contexts (web app, Kubernetes, Azure
ML), so every target serves a flow the same way.

Why not plain ``pf flow serve``: it reads connections from Prompt flow's local connection store, whose
secrets are encrypted with a key kept in the OS keyring; headless machines, CI runners and containers
have no keyring daemon. Here each ``connections/<name>.yaml`` holds the connection's settings with the
key as an environment reference (``api_key: ${env:AOAI_API_KEY}``); the value is read from this process's
environment at start-up and kept in memory only. ``<NAME>_API_BASE`` in the environment overrides a
connection's ``api_base`` (this is how a local deployment is pointed at the sandbox model).

    python serve_flow.py --flow flow --connections connections --host 127.0.0.1 --port 8080

A flex flow (``flow.flex.yaml``) is served the same way: its class entry is built from ``init.json``
(a model configuration without a ``connection`` takes the first connection's name), and a flow that
builds its own client from ``AZURE_OPENAI_ENDPOINT``/``OPENAI_BASE_URL`` and their keys finds them set
from the first connection (only where the environment does not set them already).

Routes are Prompt flow's: ``GET /health``, ``POST /score``, ``GET /swagger.json``. Two things differ
from Prompt flow's app (see :class:`RequestGuard`): no CORS headers (Prompt flow allows every origin,
which would let any web page a developer visits call a loopback endpoint holding real keys), and a JSON
request missing a required flow input (one without a default) gets HTTP 400 naming the input instead
of a run with the input absent.

Traffic capture (A/B on Kubernetes or Azure ML): with ``LLMOPS_CAPTURE`` set (``stdout`` or a file path,
e.g. on a mounted volume) every ``POST /score`` and its answer become one JSON line, built by
``llmops_capture.py`` (a copy of :mod:`llmops_tui.core.capture` shipped beside this file) with the settings
in ``LLMOPS_CAPTURE_SETTINGS`` (sampling, redaction, size caps), the arm in ``LLMOPS_CAPTURE_ARM`` and the
configuration in ``LLMOPS_CAPTURE_CONFIGURATION``. Each answer carries ``X-LLMOps-Request-Id``.
``llmops traffic import`` reads these lines back. Headers are never captured.
"""

from __future__ import annotations

import argparse
import functools
import io
import json
import os
import re
import sys
from pathlib import Path
from typing import Any

ENV_REF = re.compile(r"^\$\{env:([A-Za-z_][A-Za-z0-9_]*)\}$")

_OFFLINE_ENV = {
    "PF_TRACING_SKIP_LOCAL_SETUP": "true",
    "PF_DISABLE_TELEMETRY": "true",
    "PROMPTFLOW_DISABLE_TELEMETRY": "true",
    "APPLICATIONINSIGHTS_CONTROLPLANE_DISABLED": "true",
    "APPLICATIONINSIGHTS_STATSBEAT_DISABLED_ALL": "true",
    "PF_DISABLE_TRACING": "true",
}


def env_var_name(connection_name: str, field: str) -> str:
    """``aoai`` + ``api_key`` -> ``AOAI_API_KEY`` (the same rule as Prompt flow's connection overrides)."""
    return re.sub(r"[^A-Za-z0-9]", "_", connection_name).upper() + "_" + field.upper()


def _resolve(value: Any, what: str) -> Any:
    if not isinstance(value, str):
        return value
    match = ENV_REF.match(value.strip())
    if not match:
        return value
    name = match.group(1)
    if not os.environ.get(name):
        # The name of the variable only: never a value.
        raise SystemExit(f"error: {what} needs the environment variable {name}, which is not set")
    return os.environ[name]


def load_connections(folder: Path) -> list[Any]:
    """In-memory Prompt flow connection objects for every ``*.yaml`` in ``folder``."""
    import yaml
    from promptflow.connections import AzureOpenAIConnection, CustomConnection, OpenAIConnection

    out = []
    for path in sorted(Path(folder).glob("*.y*ml")) if folder and Path(folder).is_dir() else []:
        data = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
        name = str(data.get("name") or path.stem)
        kind = str(data.get("type") or "azure_open_ai").lower()
        fields = {
            k: _resolve(v, f"connection '{name}' field '{k}'")
            for k, v in data.items()
            if k not in {"name", "type"}
        }
        base_override = os.environ.get(env_var_name(name, "api_base"))
        if kind in {"azure_open_ai", "azureopenai", "azureopenaiconnection"}:
            out.append(
                AzureOpenAIConnection(
                    name=name,
                    api_key=fields.get("api_key") or "",
                    api_base=base_override or fields.get("api_base") or "",
                    api_type=fields.get("api_type") or "azure",
                    api_version=str(fields.get("api_version") or "2024-02-01"),
                )
            )
        elif kind in {"open_ai", "openai", "openaiconnection"}:
            base = (base_override or fields.get("base_url") or fields.get("api_base") or "").rstrip("/")
            if base and not base.endswith("/v1"):
                base += "/v1"
            out.append(
                OpenAIConnection(name=name, api_key=fields.get("api_key") or "", base_url=base or None)
            )
        else:
            secrets = fields.pop("secrets", {}) or {}
            configs = fields.pop("configs", {}) or {}
            out.append(
                CustomConnection(
                    name=name,
                    secrets={k: _resolve(v, f"connection '{name}' secret '{k}'") for k, v in secrets.items()},
                    configs=configs,
                )
            )
    for conn in out:
        # Prompt flow 1.18.5's serving path for a connection-provider callable calls a public
        # ``to_execution_connection_dict`` that its connection classes only have with a leading underscore.
        if not hasattr(conn, "to_execution_connection_dict"):
            object.__setattr__(conn, "to_execution_connection_dict", conn._to_execution_connection_dict)
    return out


def flow_file(flow_dir: Path) -> Path:
    """flow.dag.yaml, else flow.flex.yaml."""
    dag = Path(flow_dir) / "flow.dag.yaml"
    return dag if dag.is_file() else Path(flow_dir) / "flow.flex.yaml"


def _is_model_config(value: Any) -> bool:
    return isinstance(value, dict) and any(
        k in value for k in ("azure_deployment", "azure_endpoint", "connection", "model")
    )


def flex_init(flow_dir: Path, connections: list[Any]) -> dict[str, Any]:
    """A flex flow's init kwargs from its init.json; model configurations without a connection or an
    endpoint use the first connection."""
    path = Path(flow_dir) / "init.json"
    init = json.loads(path.read_text(encoding="utf-8")) if path.is_file() else {}
    first = connections[0].name if connections else None
    for key, value in list(init.items()):
        if (
            _is_model_config(value)
            and first
            and not value.get("connection")
            and not value.get("azure_endpoint")
        ):
            init[key] = {**value, "connection": first}
    return init


def own_client_env(connections: list[Any]) -> None:
    """The variables a flow that builds its own OpenAI client reads, from the first connection (kept
    when already set)."""
    if not connections:
        return
    conn = connections[0]
    base = getattr(conn, "api_base", None) or str(getattr(conn, "base_url", "") or "").removesuffix("/v1")
    version = getattr(conn, "api_version", None) or "2024-02-01"
    for key, value in {
        "AZURE_OPENAI_ENDPOINT": base,
        "AZURE_OPENAI_API_KEY": conn.api_key,
        "OPENAI_API_VERSION": version,
        "AZURE_OPENAI_API_VERSION": version,
        "OPENAI_BASE_URL": str(base).rstrip("/") + "/v1",
        "OPENAI_API_KEY": conn.api_key,
    }.items():
        if value and not os.environ.get(key):
            os.environ[key] = str(value)


def required_inputs(flow_dir: Path) -> list[str]:
    """The flow's inputs that have no default (a request must give them)."""
    import yaml

    data = yaml.safe_load(flow_file(flow_dir).read_text(encoding="utf-8")) or {}
    inputs = data.get("inputs") or {}
    return [str(k) for k, v in inputs.items() if not (isinstance(v, dict) and "default" in v)]


class RequestGuard:
    """WSGI middleware around Prompt flow's app: drops every ``Access-Control-*`` response header, and
    answers a ``POST /score`` whose JSON object lacks a required input with 400 naming the input(s)."""

    def __init__(self, app: Any, required: list[str]):
        self.app = app
        self.required = list(required)

    def __call__(self, environ: dict[str, Any], start_response: Any) -> Any:
        if (
            self.required
            and environ.get("REQUEST_METHOD") == "POST"
            and str(environ.get("PATH_INFO", "")).rstrip("/") == "/score"
        ):
            length = environ.get("CONTENT_LENGTH")
            stream = environ["wsgi.input"]
            body = stream.read(int(length)) if length else stream.read()
            environ["wsgi.input"] = io.BytesIO(body)
            environ["CONTENT_LENGTH"] = str(len(body))
            try:
                data = json.loads(body or b"null")
            except ValueError:
                data = None  # not JSON: Prompt flow maps a plain body to a single input, or refuses it
            missing = [k for k in self.required if k not in data] if isinstance(data, dict) else []
            if missing:
                payload = json.dumps(
                    {
                        "error": {
                            "code": "MissingRequiredFlowInput",
                            "message": f"required flow input(s) missing: {', '.join(missing)}",
                        }
                    }
                ).encode()
                start_response(
                    "400 Bad Request",
                    [("Content-Type", "application/json"), ("Content-Length", str(len(payload)))],
                )
                return [payload]

        def no_cors(status: str, headers: list[tuple[str, str]], exc_info: Any = None) -> Any:
            kept = [(k, v) for k, v in headers if not k.lower().startswith("access-control-")]
            return start_response(status, kept, exc_info) if exc_info else start_response(status, kept)

        return self.app(environ, no_cors)


class CaptureLog:
    """WSGI middleware writing one capture record per ``POST /score`` (see the module docstring)."""

    def __init__(self, app: Any, dest: str, settings: Any, capture: Any):
        import threading

        self.app = app
        self.dest = dest
        self.settings = settings
        self.capture = capture
        self.arm = os.environ.get("LLMOPS_CAPTURE_ARM") or "default"
        self.version = os.environ.get("LLMOPS_FLOW_VERSION") or self.arm
        try:
            self.configuration = json.loads(os.environ.get("LLMOPS_CAPTURE_CONFIGURATION") or "{}")
        except ValueError:
            self.configuration = {}
        self.secrets = capture.secrets_from_env()
        self.count = 0
        self.lock = threading.Lock()

    def _write(self, record: dict[str, Any]) -> None:
        line = json.dumps(record, default=str) + "\n"
        with self.lock:
            if self.count >= self.settings.max_records:
                return
            self.count += 1
            if self.dest == "stdout":
                sys.stdout.write(line)
                sys.stdout.flush()
            else:
                Path(self.dest).parent.mkdir(parents=True, exist_ok=True)
                with open(self.dest, "a", encoding="utf-8") as fh:
                    fh.write(line)

    def __call__(self, environ: dict[str, Any], start_response: Any) -> Any:
        import time

        if (
            environ.get("REQUEST_METHOD") != "POST"
            or str(environ.get("PATH_INFO", "")).rstrip("/") != "/score"
        ):
            return self.app(environ, start_response)
        length = environ.get("CONTENT_LENGTH")
        stream = environ["wsgi.input"]
        body = stream.read(int(length)) if length else stream.read()
        environ["wsgi.input"] = io.BytesIO(body)
        environ["CONTENT_LENGTH"] = str(len(body))
        request_id = environ.get("HTTP_X_LLMOPS_REQUEST_ID") or self.capture.new_request_id()
        seen: dict[str, Any] = {}
        started = time.perf_counter()

        def with_id(status: str, headers: list[tuple[str, str]], exc_info: Any = None) -> Any:
            seen["status"] = int(status.split()[0])
            headers = [*headers, (self.capture.REQUEST_ID_HEADER, request_id)]
            return start_response(status, headers, exc_info) if exc_info else start_response(status, headers)

        result = self.app(environ, with_id)
        try:
            data = b"".join(result)
        finally:
            if hasattr(result, "close"):
                result.close()
        if self.capture.sampled(request_id, self.settings.sample_rate):
            try:
                self._write(
                    self.capture.build_record(
                        request_id=request_id,
                        arm=self.arm,
                        version=self.version,
                        configuration=self.configuration,
                        body=body,
                        status=seen.get("status", 0),
                        response=data,
                        latency_ms=(time.perf_counter() - started) * 1000,
                        settings=self.settings,
                        secrets=self.secrets,
                    )
                )
            except Exception as exc:  # capture must never break serving
                print(f"capture error: {type(exc).__name__}: {exc}", file=sys.stderr, flush=True)
        return [data]


def _capture_module() -> Any:
    try:
        import llmops_capture  # the copy shipped beside this file in a bundle

        return llmops_capture
    except ImportError:
        from llmops_tui.core import capture

        return capture


def create_serving_app(flow_dir: Path, connections_dir: Path | None) -> Any:
    """Prompt flow's Flask serving app for ``flow_dir`` with in-memory connections."""
    for key, value in _OFFLINE_ENV.items():
        os.environ.setdefault(key, value)
    flow_dir = Path(flow_dir).resolve()
    # On Azure ML the workspace's connections are used by name (Prompt flow's own provider, managed identity).
    provider: Any = os.environ.get("PROMPTFLOW_CONNECTION_PROVIDER", "")
    connections: list[Any] = []
    if not provider.startswith("azureml:"):
        connections = load_connections(Path(connections_dir).resolve()) if connections_dir else []
        provider = functools.partial(list, connections)  # a callable returning connection objects
    os.environ["PROMPTFLOW_PROJECT_PATH"] = flow_dir.as_posix()
    os.chdir(flow_dir)
    from promptflow.core._serving.app import create_app

    extra: dict[str, Any] = {}
    if flow_file(flow_dir).name == "flow.flex.yaml":
        extra["init"] = flex_init(flow_dir, connections)
        own_client_env(connections)
        if connections:
            # Prompt flow 1.18.5 resolves a model configuration's `connection` through its process-wide
            # provider (the local connection store), not the connections it is given: point that at ours.
            from promptflow.connections import ConnectionProvider
            from promptflow.core._connection_provider._dict_connection_provider import DictConnectionProvider

            ConnectionProvider._instance = DictConnectionProvider(
                {c.name: c._to_execution_connection_dict() for c in connections}
            )
    app = create_app(
        connection_provider=provider,
        flow_file_path=flow_file(flow_dir).as_posix(),
        engine="flask",
        **extra,
    )
    app.wsgi_app = RequestGuard(app.wsgi_app, required_inputs(flow_dir))
    if os.environ.get("LLMOPS_CAPTURE"):
        capture = _capture_module()
        settings, dest = capture.settings_from_env()
        app.wsgi_app = CaptureLog(app.wsgi_app, str(dest), settings, capture)
    return app


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Serve a materialised Prompt flow flow.")
    parser.add_argument("--flow", default="flow", help="the flow folder (with flow.dag.yaml)")
    parser.add_argument("--connections", default="connections", help="folder of connection YAML files")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8080)
    parser.add_argument("--threads", type=int, default=8)
    args = parser.parse_args(argv)
    app = create_serving_app(Path(args.flow), Path(args.connections))
    try:
        from waitress import serve
    except ImportError:  # Flask's own server is enough for trying things out
        app.run(host=args.host, port=args.port, threaded=True)
        return 0
    print(f"serving {args.flow} on http://{args.host}:{args.port}", file=sys.stderr, flush=True)
    serve(app, host=args.host, port=args.port, threads=args.threads, ident="llmops-flow")
    return 0


if __name__ == "__main__":
    sys.exit(main())
