"""The local A/B router: 500 requests split 80/20 within tolerance (smooth weighted round robin)."""

from __future__ import annotations

import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import httpx
import pytest

from llmops_tui.deploy.router import Backend, SmoothWeightedRoundRobin, parse_backend, start_router


def _backend(name):
    class Handler(BaseHTTPRequestHandler):
        disable_nagle_algorithm = True

        def log_message(self, *args):
            return

        def do_POST(self):
            body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
            data = json.dumps({"served_by": name, "echo": json.loads(body or b"{}")}).encode()
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server


@pytest.fixture()
def backends():
    servers = [_backend("current"), _backend("prior")]
    try:
        yield [f"http://127.0.0.1:{s.server_address[1]}" for s in servers]
    finally:
        for s in servers:
            s.shutdown()
            s.server_close()


def test_500_requests_split_80_20(backends):
    router = start_router([Backend("current", backends[0], 80), Backend("prior", backends[1], 20)])
    seen = {"current": 0, "prior": 0}
    try:
        with httpx.Client(trust_env=False, timeout=10) as client:
            assert client.get(router.url + "/health").json()["status"] == "Healthy"
            for i in range(500):
                resp = client.post(router.url + "/score", json={"i": i})
                assert resp.status_code == 200
                body = resp.json()
                assert body["echo"] == {"i": i}
                assert resp.headers["X-LLMOps-Backend"] == body["served_by"]
                seen[body["served_by"]] += 1
    finally:
        router.stop()
    assert abs(seen["current"] - 400) <= 10 and abs(seen["prior"] - 100) <= 10
    assert router.counts == seen


def test_smooth_weighted_round_robin_interleaves():
    rr = SmoothWeightedRoundRobin([Backend("a", "u", 4), Backend("b", "v", 1)])
    picks = "".join(rr.pick().name for _ in range(10))
    assert picks.count("a") == 8 and "bb" not in picks
    assert parse_backend("v1=http://127.0.0.1:8000=80") == Backend("v1", "http://127.0.0.1:8000", 80)
    with pytest.raises(ValueError):
        SmoothWeightedRoundRobin([Backend("a", "u", 0)])


def test_unreachable_backend_is_a_502():
    router = start_router([Backend("gone", "http://127.0.0.1:9", 1)])
    try:
        resp = httpx.post(router.url + "/score", json={}, trust_env=False)
        assert resp.status_code == 502 and resp.headers["X-LLMOps-Backend"] == "gone"
    finally:
        router.stop()
