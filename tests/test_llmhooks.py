"""Our LLM-call policy: rate limits, cool-down after 429, retry classification (no wall-clock asserts)."""

from __future__ import annotations

import threading

import httpx
import openai
import pytest

from llmops_tui.core.llmhooks import LineCancelled, RateLimiter, _classify, _retry_after


def _status_error(code: int, headers: dict[str, str] | None = None) -> openai.APIStatusError:
    request = httpx.Request("POST", "http://127.0.0.1/v1/chat/completions")
    response = httpx.Response(code, headers=headers or {}, request=request)
    cls = {429: openai.RateLimitError, 500: openai.InternalServerError, 400: openai.BadRequestError}[code]
    return cls("boom", response=response, body=None)


def test_requests_per_minute_limit_makes_the_next_call_wait():
    limiter = RateLimiter(rpm=2)
    cancel = threading.Event()
    limiter.acquire(10, cancel)
    limiter.acquire(10, cancel)
    cancel.set()  # the third call would have to wait for the minute window: it notices the cancel instead
    with pytest.raises(LineCancelled):
        limiter.acquire(10, cancel)


def test_tokens_per_minute_limit():
    limiter = RateLimiter(tpm=100)
    cancel = threading.Event()
    limiter.acquire(60, cancel)
    cancel.set()
    with pytest.raises(LineCancelled):
        limiter.acquire(60, cancel)


def test_cool_down_after_429_holds_every_caller():
    limiter = RateLimiter()
    limiter.cool_down(30)
    cancel = threading.Event()
    cancel.set()
    with pytest.raises(LineCancelled):
        limiter.acquire(1, cancel)


def test_unlimited_limiter_never_waits():
    limiter = RateLimiter()
    cancel = threading.Event()
    cancel.set()
    for _ in range(100):
        limiter.acquire(1000, cancel)  # would raise if it ever had to wait


def test_retry_classification_and_retry_after():
    assert _classify(_status_error(429)) == "429 rate limited"
    assert _classify(_status_error(500)) == "500 server error"
    assert _classify(_status_error(400)) is None
    assert _classify(openai.APITimeoutError(request=httpx.Request("POST", "http://x"))) == "timeout"
    assert (
        _classify(openai.APIConnectionError(request=httpx.Request("POST", "http://x"))) == "connection error"
    )
    assert _retry_after(_status_error(429, {"retry-after": "2"})) == 2.0
    assert _retry_after(_status_error(429, {"retry-after-ms": "250"})) == 0.25
    assert _retry_after(_status_error(429)) is None


def test_circuit_breaker_only_for_endpoints_never_reached():
    limiter = RateLimiter()
    for _ in range(11):
        limiter.record("connection error")
    assert not limiter.unreachable
    limiter.record("connection error")
    assert limiter.unreachable
    answered = RateLimiter()
    answered.record(None)
    for _ in range(50):
        answered.record("connection error")
    assert not answered.unreachable  # it answered once: transient errors keep their retries
