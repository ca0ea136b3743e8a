"""A tiny weighted HTTP router for trying A/B splits locally: one loopback address in front of two (or more)
local deployments, sending each request to a backend by weight.

Backends are picked by smooth weighted round robin (the nginx algorithm): deterministic, and over any
window of ``sum(weights)`` requests each backend gets exactly its weight (80/20 -> 400/100 of 500),
interleaved rather than in bursts. Each answer carries ``X-LLMOps-Backend`` naming the backend; no answer
carries CORS (``Access-Control-*``) headers.

    python -m llmops_tui.deploy.router --port 0 --backend v1=http://127.0.0.1:8001=80 \\
        --backend v2=http://127.0.0.1:8002=20

The first stdout line is the router's URL. ``GET /health`` is the router's own health.
"""

from __future__ import annotations

import argparse
import http.client
import json
import signal
import socket
import sys
import threading
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import urlsplit

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
        self.backends = [b for b in backends if b.weight > 0]
        if not self.backends:
            raise ValueError("at least one backend needs a positive weight")
        self._current = [0] * len(self.backends)
        self._total = sum(b.weight for b in self.backends)
        self._lock = threading.Lock()
        self.counts = {b.name: 0 for b in self.backends}

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


def _make_handler(balancer: SmoothWeightedRoundRobin, timeout: float):
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

        def _proxy(self) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            body = self.rfile.read(length) if length else b""
            if self.command == "GET" and self.path.rstrip("/") == "/health":
                payload = {
                    "status": "Healthy",
                    "router": True,
                    "backends": [b.__dict__ for b in balancer.backends],
                }
                self._send(200, json.dumps(payload).encode(), {"Content-Type": "application/json"})
                return
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
                out["X-LLMOps-Backend"] = backend.name
                self._send(resp.status, data, out)
            except OSError as exc:
                msg = json.dumps(
                    {"error": f"backend {backend.name} unreachable: {type(exc).__name__}"}
                ).encode()
                self._send(502, msg, {"Content-Type": "application/json", "X-LLMOps-Backend": backend.name})
            finally:
                conn.close()

        do_GET = _proxy
        do_POST = _proxy

    return Handler


class RouterHandle:
    """A running router: ``url``, ``counts`` (requests per backend) and ``stop()``."""

    def __init__(self, server: ThreadingHTTPServer, balancer: SmoothWeightedRoundRobin):
        self._server = server
        self.balancer = balancer
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


def start_router(
    backends: list[Backend], *, host: str = "127.0.0.1", port: int = 0, timeout: float = 60.0
) -> RouterHandle:
    """Start the router in a background thread of this process."""
    balancer = SmoothWeightedRoundRobin(backends)
    server = ThreadingHTTPServer((host, port), _make_handler(balancer, timeout))
    server.daemon_threads = True
    return RouterHandle(server, balancer)


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
    args = parser.parse_args(argv)
    handle = start_router([parse_backend(b) for b in args.backend], host=args.host, port=args.port)
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
