"""A tiny weighted HTTP router for trying A/B splits locally: one loopback address in front of two (or more)
local deployments, sending each request to a backend by weight.

Backends are picked by smooth weighted round robin (the nginx algorithm): deterministic, and over any
window of ``sum(weights)`` requests each backend gets exactly its weight (80/20 -> 400/100 of 500),
interleaved rather than in bursts. Each answer carries ``X-LLMOps-Backend`` naming the backend; no answer
carries CORS (``Access-Control-*``) headers.

    python -m llmops_tui.deploy.router --port 0 --backend v1=http://127.0.0.1:8001=80 \\
        --backend v2=http://127.0.0.1:8002=20

The first stdout line is the router's URL. ``GET /health`` is the router's own health (backends, weights,
requests per backend).

Every answer carries ``X-LLMOps-Request-Id``. With ``--capture CONFIG`` (a JSON file written by the local
deploy: the workspace store, use case, environment, arms and capture settings) each ``POST /score`` and its
answer are recorded per arm into the workspace's run store as a traffic run
(:mod:`llmops_tui.core.traffic`), sampled, redacted and capped as configured; headers are never recorded.
``POST /feedback`` (``{"request_id": ..., "score": ..., "label": ...}``, or a list of them) joins feedback to
a captured request. ``POST /admin/weights`` (``{"weights": {"NAME": 100, "OTHER": 0}}``) changes the split
live; it needs the ``X-LLMOps-Router-Token`` header with the token the router was started with
(``LLMOPS_ROUTER_TOKEN`` in its environment).
"""

from __future__ import annotations

import argparse
import hmac
import http.client
import json
import os
import signal
import socket
import sys
import threading
import time
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from llmops_tui.core.capture import REQUEST_ID_HEADER, build_record, new_request_id, sampled, secrets_from_env

TOKEN_HEADER = "X-LLMOps-Router-Token"
MAX_FEEDBACK_BYTES = 1_000_000

_HOP_HEADERS = {
    "connection",
    "keep-alive",
    "transfer-encoding",
    "te",
    "trailer",
    "upgrade",
    "host",
    "content-length",
}


@dataclass
class Backend:
    name: str
    url: str
    weight: int


class SmoothWeightedRoundRobin:
    """Thread-safe smooth weighted round robin over backends with positive weights."""

    def __init__(self, backends: list[Backend]):
        self.all = list(backends)
        self._lock = threading.Lock()
        self.counts = {b.name: 0 for b in self.all}
        self._activate()

    def _activate(self) -> None:
        self.backends = [b for b in self.all if b.weight > 0]
        if not self.backends:
            raise ValueError("at least one backend needs a positive weight")
        self._current = [0] * len(self.backends)
        self._total = sum(b.weight for b in self.backends)

    def set_weights(self, weights: dict[str, int]) -> None:
        """Change the split live (names must be known; at least one positive weight)."""
        unknown = set(weights) - {b.name for b in self.all}
        if unknown:
            raise ValueError(f"unknown backend(s): {', '.join(sorted(unknown))}")
        if any(not isinstance(w, int) or isinstance(w, bool) or w < 0 for w in weights.values()):
            raise ValueError("weights must be whole numbers, 0 or more")
        new = [Backend(b.name, b.url, weights.get(b.name, b.weight)) for b in self.all]
        if sum(b.weight for b in new) <= 0:
            raise ValueError("refusing weights that route nothing")
        with self._lock:
            self.all = new
            self._activate()

    @property
    def weights(self) -> dict[str, int]:
        return {b.name: b.weight for b in self.all}

    def pick(self) -> Backend:
        with self._lock:
            best = 0
            for i, backend in enumerate(self.backends):
                self._current[i] += backend.weight
                if self._current[i] > self._current[best]:
                    best = i
            self._current[best] -= self._total
            chosen = self.backends[best]
            self.counts[chosen.name] += 1
            return chosen


class Capture:
    """Records ``/score`` requests of a router into the workspace's store (see the module docstring)."""

    def __init__(self, config: dict[str, Any]):
        from llmops_tui.core.capture import CaptureSettings
        from llmops_tui.core.store import RunStore
        from llmops_tui.core.traffic import Arm, TrafficRecorder

        self.settings = CaptureSettings.from_dict(config.get("capture"))
        salt_file = config.get("salt_file")
        if salt_file and Path(salt_file).is_file():
            self.settings.salt = Path(salt_file).read_text(encoding="utf-8").strip()
        self.arms = {a["name"]: Arm.from_dict(a) for a in config.get("arms") or []}
        self.secrets = secrets_from_env()
        self.store = RunStore(Path(config["store"]))
        self.recorder = TrafficRecorder(
            self.store,
            str(config["use_case"]),
            str(config["env"]),
            list(self.arms.values()),
            self.settings,
            source="router",
            llm_endpoint=config.get("llm_endpoint"),
        )
        self.errors = 0

    @property
    def run_id(self) -> str:
        return self.recorder.run_id

    def record(
        self, request_id: str, arm: str, body: bytes, status: int, response: bytes, latency_ms: float
    ) -> None:
        if not sampled(request_id, self.settings.sample_rate):
            return
        info = self.arms.get(arm)
        try:
            rec = build_record(
                request_id=request_id,
                arm=arm,
                version=info.version if info else arm,
                configuration=info.configuration if info else {},
                body=body,
                status=status,
                response=response,
                latency_ms=latency_ms,
                settings=self.settings,
                secrets=self.secrets,
            )
            self.recorder.record(rec)
        except Exception as exc:  # capture must never break serving; the log says what went wrong
            self.errors += 1
            if self.errors <= 5:
                print(f"capture error: {type(exc).__name__}: {exc}", file=sys.stderr, flush=True)

    def feedback(self, items: list[Any]) -> dict[str, Any]:
        from llmops_tui.core.traffic import add_feedback

        return add_feedback(self.store, items, where="POST /feedback")

    def close(self) -> None:
        try:
            self.recorder.close()
        finally:
            self.store.close()


def _make_handler(
    balancer: SmoothWeightedRoundRobin,
    timeout: float,
    capture: Capture | None = None,
    token: str | None = None,
):
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"
        disable_nagle_algorithm = (
            True  # headers and body go out as separate writes: no 40 ms delayed-ACK stalls
        )

        def log_message(self, format: str, *args) -> None:  # quiet: no request logs
            return

        def _send(self, status: int, body: bytes, headers: dict[str, str]) -> None:
            self.send_response(status)
            for key, value in headers.items():
                self.send_header(key, value)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def _json(self, status: int, payload: Any) -> None:
            self._send(status, json.dumps(payload).encode(), {"Content-Type": "application/json"})

        def _feedback(self, body: bytes) -> None:
            from llmops_tui.core.errors import LlmopsError

            if capture is None:
                self._json(404, {"error": "this router does not capture traffic (deploy with --capture)"})
                return
            try:
                data = json.loads(body or b"null")
                items = data if isinstance(data, list) else [data]
                result = capture.feedback(items)
            except ValueError:
                self._json(400, {"error": "feedback must be JSON"})
                return
            except LlmopsError as exc:
                self._json(400, {"error": str(exc)})
                return
            self._json(200 if result["joined"] or not result["unknown"] else 404, result)

        def _weights(self, body: bytes) -> None:
            given = self.headers.get(TOKEN_HEADER) or ""
            if not token or not hmac.compare_digest(given.encode(), token.encode()):
                self._json(403, {"error": f"missing or wrong {TOKEN_HEADER}"})
                return
            try:
                data = json.loads(body or b"null")
                balancer.set_weights(dict(data["weights"]))
            except (ValueError, KeyError, TypeError) as exc:
                self._json(400, {"error": str(exc) or "bad weights"})
                return
            self._json(200, {"weights": balancer.weights})

        def _proxy(self) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            path = self.path.rstrip("/")
            if (
                self.command == "POST"
                and path in {"/feedback", "/admin/weights"}
                and length > MAX_FEEDBACK_BYTES
            ):
                self._json(413, {"error": "request too large"})
                return
            body = self.rfile.read(length) if length else b""
            if self.command == "GET" and path == "/health":
                payload = {
                    "status": "Healthy",
                    "router": True,
                    "backends": [b.__dict__ for b in balancer.all],
                    "weights": balancer.weights,
                    "counts": dict(balancer.counts),
                    "capture": {"run_id": capture.run_id, "stored": capture.recorder.stored}
                    if capture is not None
                    else None,
                }
                self._json(200, payload)
                return
            if self.command == "POST" and path == "/feedback":
                self._feedback(body)
                return
            if self.command == "POST" and path == "/admin/weights":
                self._weights(body)
                return
            request_id = new_request_id()
            started = time.perf_counter()
            backend = balancer.pick()
            parts = urlsplit(backend.url)
            headers = {k: v for k, v in self.headers.items() if k.lower() not in _HOP_HEADERS}
            conn = http.client.HTTPConnection(
                parts.hostname or "127.0.0.1", parts.port or 80, timeout=timeout
            )
            try:
                conn.connect()
                conn.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
                conn.request(self.command, self.path, body=body, headers=headers)
                resp = conn.getresponse()
                data = resp.read()
                # No CORS headers pass through (a backend may be an older serving script that sends
                # ``Access-Control-Allow-Origin: *``): web pages must not call a loopback endpoint.
                out = {
                    k: v
                    for k, v in resp.getheaders()
                    if k.lower() not in _HOP_HEADERS and not k.lower().startswith("access-control-")
                }
                status = resp.status
            except OSError as exc:
                data = json.dumps(
                    {"error": f"backend {backend.name} unreachable: {type(exc).__name__}"}
                ).encode()
                status, out = 502, {"Content-Type": "application/json"}
            finally:
                conn.close()
            out["X-LLMOps-Backend"] = backend.name
            out[REQUEST_ID_HEADER] = request_id
            if capture is not None and self.command == "POST" and path == "/score":
                # Stored before the answer leaves: a client that sends feedback for this request id as
                # soon as it has the answer finds the request already captured.
                latency = (time.perf_counter() - started) * 1000
                capture.record(request_id, backend.name, body, status, data, latency)
            self._send(status, data, out)

        do_GET = _proxy
        do_POST = _proxy

    return Handler


class RouterHandle:
    """A running router: ``url``, ``counts`` (requests per backend) and ``stop()``."""

    def __init__(
        self, server: ThreadingHTTPServer, balancer: SmoothWeightedRoundRobin, capture: Capture | None = None
    ):
        self._server = server
        self.balancer = balancer
        self.capture = capture
        self._thread = threading.Thread(target=server.serve_forever, name="llmops-router", daemon=True)
        self._thread.start()

    @property
    def url(self) -> str:
        host, port = self._server.server_address[:2]
        return f"http://{host!s}:{port}" if isinstance(host, str) else f"http://{host.decode()}:{port}"

    @property
    def counts(self) -> dict[str, int]:
        return dict(self.balancer.counts)

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=5)
        if self.capture is not None:
            self.capture.close()
            self.capture = None


def start_router(
    backends: list[Backend],
    *,
    host: str = "127.0.0.1",
    port: int = 0,
    timeout: float = 60.0,
    capture: dict[str, Any] | None = None,
    token: str | None = None,
) -> RouterHandle:
    """Start the router in a background thread of this process. ``capture``: the capture config (see the
    module docstring); ``token``: the admin token for live weight changes (none: they are refused)."""
    balancer = SmoothWeightedRoundRobin(backends)
    recorder = Capture(capture) if capture else None
    server = ThreadingHTTPServer((host, port), _make_handler(balancer, timeout, recorder, token))
    server.daemon_threads = True
    return RouterHandle(server, balancer, recorder)


def parse_backend(text: str) -> Backend:
    """``NAME=URL=WEIGHT``."""
    name, _, rest = text.partition("=")
    url, _, weight = rest.rpartition("=")
    if not name or not url or not weight.isdigit():
        raise ValueError(f"backend '{text}' is not NAME=URL=WEIGHT")
    return Backend(name, url, int(weight))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Weighted HTTP router for local A/B deployments.")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--backend", action="append", required=True, help="NAME=URL=WEIGHT")
    parser.add_argument("--capture", default=None, help="capture config (JSON file)")
    args = parser.parse_args(argv)
    capture = json.loads(Path(args.capture).read_text(encoding="utf-8")) if args.capture else None
    token = os.environ.pop("LLMOPS_ROUTER_TOKEN", None) or None
    handle = start_router(
        [parse_backend(b) for b in args.backend], host=args.host, port=args.port, capture=capture, token=token
    )
    sys.stdout.write(handle.url + "\n")
    sys.stdout.flush()
    done = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: done.set())
    try:
        while not done.wait(0.5):
            pass
    except KeyboardInterrupt:
        pass
    handle.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
