"""Serve a flow written by ``llmops migrate --to agent-framework`` over HTTP, with Prompt flow's contract.

This file is self-contained on purpose (the standard library and the migrated flow only, no llmops-tui,
no Prompt flow, no web framework): ``llmops deploy-migrated`` runs it for local deployments and copies it
into container build contexts, beside the migrated flow folder.

    python serve_migrated.py --flow flow --host 127.0.0.1 --port 8080

Routes, as our Prompt flow deployments serve them (``serve_flow.py``):

- ``GET /health``: 200 ``{"status": "Healthy", "version": ...}``;
- ``POST /score``: a JSON object of flow inputs; 200 with the flow's outputs as a JSON object. A request
  that is not a JSON object, or lacks a required flow input (one without a default), gets 400 naming
  the problem (``{"error": {"code": "MissingRequiredFlowInput", "message": ...}}``). A line whose node
  fails gets 400 ``{"error": {"code": "UserError", "message": "Execution failure in 'node': ..."}}``, as
  Prompt flow's app answers an exception raised by a node.

No CORS headers (a web page must not be able to spend the key of a loopback endpoint). Connections come
from the environment as the migrated flow reads them (``<NAME>_API_BASE``, ``<NAME>_API_KEY``,
``<NAME>_API_VERSION``); nothing is written anywhere.
"""

from __future__ import annotations

import argparse
import importlib
import json
import os
import sys
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

MAX_BODY = 10 * 1024 * 1024


def load_flow(flow_dir: Path) -> Any:
    """The migrated flow's module (``flow.py`` of ``flow_dir``)."""
    flow_dir = Path(flow_dir).resolve()
    if not (flow_dir / "flow.py").is_file():
        raise SystemExit(f"error: {flow_dir / 'flow.py'} not found (a folder written by llmops migrate)")
    sys.path.insert(0, str(flow_dir))
    return importlib.import_module("flow")


def required_inputs(flow: Any) -> list[str]:
    inputs = getattr(flow, "INPUTS", {}) or {}
    return [str(k) for k, v in inputs.items() if not (isinstance(v, dict) and "default" in v)]


def _error(code: str, message: str) -> dict[str, Any]:
    return {"error": {"code": code, "message": message}}


def score(flow: Any, required: list[str], body: bytes) -> tuple[int, dict[str, Any]]:
    """HTTP status and JSON answer for one ``POST /score`` body."""
    try:
        data = json.loads(body or b"null")
    except ValueError:
        return 400, _error("BadRequest", "the request body is not JSON")
    if not isinstance(data, dict):
        return 400, _error("BadRequest", "the request body must be a JSON object of flow inputs")
    missing = [k for k in required if k not in data]
    if missing:
        return 400, _error(
            "MissingRequiredFlowInput", f"required flow input(s) missing: {', '.join(missing)}"
        )
    try:
        line = flow.run_line(data)
    except Exception as exc:  # inputs that do not convert to their declared types, and the like
        return 400, _error("UserError", f"{type(exc).__name__}: {exc}")
    if line.error is not None or line.result is None:
        return 400, _error("UserError", line.error or "the workflow ended without outputs")
    return 200, line.result


def make_server(flow: Any, host: str, port: int) -> ThreadingHTTPServer:
    """A threaded HTTP server for ``flow`` (not started)."""
    required = required_inputs(flow)
    version = os.environ.get("LLMOPS_FLOW_VERSION") or "migrated"

    class Handler(BaseHTTPRequestHandler):
        server_version = "llmops-migrated"
        sys_version = ""
        protocol_version = "HTTP/1.1"

        def _send(self, status: int, payload: Any) -> None:
            data = json.dumps(payload, default=str).encode("utf-8")
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def do_GET(self) -> None:  # noqa: N802 (http.server's naming)
            if self.path.split("?", 1)[0].rstrip("/") == "/health":
                self._send(200, {"status": "Healthy", "version": version})
            else:
                self._send(404, _error("NotFound", f"no route {self.path}"))

        def do_POST(self) -> None:  # noqa: N802
            length = int(self.headers.get("Content-Length") or 0)
            if length > MAX_BODY:
                self.close_connection = True
                self._send(413, _error("RequestTooLarge", f"the body is over {MAX_BODY} bytes"))
                return
            body = self.rfile.read(length) if length else b""
            if self.path.split("?", 1)[0].rstrip("/") != "/score":
                self._send(404, _error("NotFound", f"no route {self.path}"))
                return
            status, payload = score(flow, required, body)
            self._send(status, payload)

        def log_message(self, format: str, *args: Any) -> None:  # noqa: A002
            sys.stderr.write(f"{self.address_string()} {format % args}\n")

    server = ThreadingHTTPServer((host, port), Handler)
    server.daemon_threads = True
    return server


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Serve a flow written by llmops migrate.")
    parser.add_argument("--flow", default="flow", help="the migrated flow folder (with flow.py)")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8080)
    args = parser.parse_args(argv)
    flow = load_flow(Path(args.flow))
    server = make_server(flow, args.host, args.port)
    host, port = str(server.server_address[0]), int(server.server_address[1])
    print(f"serving {args.flow} on http://{host}:{port}", file=sys.stderr, flush=True)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
