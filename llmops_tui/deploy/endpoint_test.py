"""The endpoint test run after every deployment: wait until the endpoint answers, then assert a 200 and the
flow's output keys in the JSON response.

Retries cover start-up (connection refused, 502/503/504, timeouts) until ``timeout`` seconds have passed;
any other answer is final. The result never holds request headers (they may carry a key).
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from llmops_tui.core.errors import LlmopsError

RETRY_STATUSES = {502, 503, 504}


@dataclass
class EndpointTestResult:
    ok: bool
    url: str
    status: int | None = None
    attempts: int = 0
    expected_keys: list[str] = field(default_factory=list)
    missing_keys: list[str] = field(default_factory=list)
    output_keys: list[str] = field(default_factory=list)
    error: str = ""
    response: Any = None

    def to_dict(self) -> dict[str, Any]:
        return {
            "ok": self.ok,
            "url": self.url,
            "status": self.status,
            "attempts": self.attempts,
            "expected_keys": self.expected_keys,
            "missing_keys": self.missing_keys,
            "output_keys": self.output_keys,
            "error": self.error,
            "response": self.response,
        }

    def summary(self) -> str:
        if self.ok:
            return f"endpoint test passed: {self.url} -> {self.status}, keys {', '.join(self.output_keys) or '-'}"
        return f"endpoint test FAILED: {self.url}: {self.error}"


def score_url(url: str) -> str:
    """``/score`` appended unless the URL already names a path beyond ``/``."""
    base = url.rstrip("/")
    tail = base.split("://", 1)[-1]
    if "/" in tail:
        return base
    return base + "/score"


def check_url(url: str) -> str:
    """``url`` if it is an http(s) URL with a host; LlmopsError (exit 2) otherwise, before any waiting."""
    from urllib.parse import urlsplit

    try:
        parts = urlsplit(url)
        parts.port  # noqa: B018 - raises ValueError for a port that is not a number
    except ValueError:
        parts = None
    if parts is None or parts.scheme not in {"http", "https"} or not parts.hostname:
        raise LlmopsError(
            f"'{url}' is not an http(s) URL",
            field="URL",
            hint="e.g. http://127.0.0.1:8080 or https://HOST/score",
        )
    return url


SAMPLE_REQUEST = "sample-request.json"


def request_file(explicit: Path | None, use_case_dir: Path | None = None) -> Path:
    """The request body to send: ``--request`` when given, else the use case's ``sample-request.json``
    when it has one, else ``sample-request.json`` in the current folder."""
    if explicit is not None:
        return Path(explicit)
    if use_case_dir is not None and (Path(use_case_dir) / SAMPLE_REQUEST).is_file():
        return Path(use_case_dir) / SAMPLE_REQUEST
    return Path(SAMPLE_REQUEST)


def load_request(path: Path) -> Any:
    path = Path(path)
    if not path.is_file():
        raise LlmopsError("request file not found", file=path, field="--request", hint="pass a JSON file")
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except ValueError as exc:
        raise LlmopsError(f"invalid JSON: {exc}", file=path, field="--request") from None


def check_response(result: EndpointTestResult, body: Any) -> EndpointTestResult:
    """Fill the key check of ``result`` from a decoded JSON body."""
    result.response = body
    if isinstance(body, dict):
        result.output_keys = sorted(body)
        result.missing_keys = [k for k in result.expected_keys if k not in body]
    else:
        result.missing_keys = list(result.expected_keys)
    if result.missing_keys:
        result.ok = False
        result.error = f"response lacks key(s) {', '.join(result.missing_keys)} (has: {', '.join(result.output_keys) or 'none'})"
    else:
        result.ok = True
    return result


def run_endpoint_test(
    url: str,
    request: Any,
    *,
    expect_keys: list[str] | None = None,
    timeout: float = 60.0,
    interval: float = 0.25,
    headers: dict[str, str] | None = None,
) -> EndpointTestResult:
    """POST ``request`` (a JSON value) to the score URL until it answers or ``timeout`` passes."""
    import httpx

    target = score_url(url)
    result = EndpointTestResult(ok=False, url=target, expected_keys=list(expect_keys or []))
    deadline = time.monotonic() + timeout
    last_error = ""
    with httpx.Client(timeout=min(30.0, max(timeout, 1.0)), trust_env=False) as client:
        while True:
            result.attempts += 1
            try:
                resp = client.post(target, json=request, headers=headers or {})
            except httpx.HTTPError as exc:
                last_error = f"{type(exc).__name__}"
                resp = None
            if resp is not None and resp.status_code not in RETRY_STATUSES:
                result.status = resp.status_code
                if resp.status_code != 200:
                    result.error = f"HTTP {resp.status_code}: {resp.text[:300]}"
                    try:
                        result.response = resp.json()
                    except ValueError:
                        result.response = resp.text[:300]
                    return result
                try:
                    body = resp.json()
                except ValueError:
                    result.error = "the response is not JSON"
                    result.response = resp.text[:300]
                    return result
                return check_response(result, body)
            if resp is not None:
                last_error = f"HTTP {resp.status_code}"
                result.status = resp.status_code
            if time.monotonic() >= deadline:
                result.error = f"not ready after {timeout:g} s ({last_error or 'no answer'})"
                return result
            time.sleep(interval)


def wait_healthy(base_url: str, *, timeout: float = 60.0, interval: float = 0.2, alive: Any = None) -> bool:
    """Poll ``GET base_url/health`` until 200. ``alive()`` (optional) returning False stops early."""
    import httpx

    deadline = time.monotonic() + timeout
    with httpx.Client(timeout=2.0, trust_env=False) as client:
        while time.monotonic() < deadline:
            if alive is not None and not alive():
                return False
            try:
                if client.get(base_url.rstrip("/") + "/health").status_code == 200:
                    return True
            except httpx.HTTPError:
                pass
            time.sleep(interval)
    return False
