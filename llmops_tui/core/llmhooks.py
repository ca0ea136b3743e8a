"""Our policy around every LLM call a flow makes in this process: rate limits, retries, timeouts, usage.

Prompt flow's LLM tools build an ``openai`` client per call and retry up to 100 times with fixed
waits (printing to stderr), which hides 429s from us and can stall a sweep. We wrap the ``openai``
``create`` methods once per process: when a line runs under the engine (a :data:`current_line` context is
set), each call waits for the connection's rate limiter, gets a per-request timeout, and is retried with
jittered exponential backoff on 429, 5xx, timeouts and connection errors, honouring ``Retry-After``.
When retries run out we raise a Prompt flow ``UserErrorException``, which the tool passes through
without its own retry. Outside the engine (no context) calls pass through untouched.
"""

from __future__ import annotations

import contextvars
import random
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any


@dataclass
class RetryPolicy:
    max_retries: int = 6
    base_delay_s: float = 0.5
    max_delay_s: float = 20.0
    request_timeout_s: float = 60.0


class RateLimiter:
    """Requests and tokens per minute for one endpoint, plus a shared cool-down after a 429."""

    def __init__(self, rpm: int | None = None, tpm: int | None = None):
        self.rpm = rpm
        self.tpm = tpm
        self._lock = threading.Lock()
        self._requests: deque[float] = deque()
        self._tokens: deque[tuple[float, int]] = deque()
        self._token_sum = 0
        self.paused_until = 0.0
        # Circuit breaker for an endpoint that was never reached: after this many connection errors in a
        # row without a single answer, calls fail at once instead of each line retrying for half a minute.
        self.unreachable_after = 12
        self._conn_errors = 0
        self._answers = 0

    def record(self, reason: str | None) -> None:
        with self._lock:
            if reason is None:
                self._answers += 1
                self._conn_errors = 0
            elif reason == "connection error":
                self._conn_errors += 1

    @property
    def unreachable(self) -> bool:
        return self._answers == 0 and self._conn_errors >= self.unreachable_after

    def cool_down(self, seconds: float) -> None:
        with self._lock:
            self.paused_until = max(self.paused_until, time.monotonic() + seconds)

    def acquire(self, tokens: int, cancel: threading.Event | None) -> None:
        while True:
            with self._lock:
                now = time.monotonic()
                wait = max(0.0, self.paused_until - now)
                while self._requests and now - self._requests[0] >= 60:
                    self._requests.popleft()
                while self._tokens and now - self._tokens[0][0] >= 60:
                    self._token_sum -= self._tokens.popleft()[1]
                if wait == 0 and self.rpm and len(self._requests) >= self.rpm:
                    wait = 60 - (now - self._requests[0])
                if wait == 0 and self.tpm and self._tokens and self._token_sum + tokens > self.tpm:
                    wait = 60 - (now - self._tokens[0][0])
                if wait <= 0:
                    self._requests.append(now)
                    if self.tpm:
                        self._tokens.append((now, tokens))
                        self._token_sum += tokens
                    return
            if cancel is not None:
                if cancel.wait(min(wait, 1.0)):
                    raise LineCancelled()
            else:
                time.sleep(min(wait, 1.0))


class LineCancelled(Exception):
    """The sweep was cancelled while this line waited."""


@dataclass
class LineContext:
    """Counters for one line, shared with the node threads Prompt flow starts (context is copied)."""

    policy: RetryPolicy
    cancel: threading.Event
    limiter_for: Callable[[str], RateLimiter]
    on_retry: Callable[[int, str, float], None] | None = None
    request_seed: int | None = None  # sent as the request's `seed` (sandbox repetitions)
    llm_calls: int = 0
    retries: int = 0
    prompt_tokens: int = 0
    completion_tokens: int = 0
    total_tokens: int = 0
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def add_usage(self, usage: Any) -> None:
        with self._lock:
            self.llm_calls += 1
            if usage is not None:
                self.prompt_tokens += int(getattr(usage, "prompt_tokens", 0) or 0)
                self.completion_tokens += int(getattr(usage, "completion_tokens", 0) or 0)
                self.total_tokens += int(getattr(usage, "total_tokens", 0) or 0)

    def count_call(self) -> None:
        with self._lock:
            self.llm_calls += 1

    @property
    def tokens(self) -> dict[str, int]:
        return {
            "prompt_tokens": self.prompt_tokens,
            "completion_tokens": self.completion_tokens,
            "total_tokens": self.total_tokens,
        }


current_line: contextvars.ContextVar[LineContext | None] = contextvars.ContextVar("llmops_line", default=None)
_installed = False
_install_lock = threading.Lock()


def _estimate_tokens(kwargs: dict[str, Any]) -> int:
    text = 0
    for m in kwargs.get("messages") or []:
        content = m.get("content") if isinstance(m, dict) else None
        if isinstance(content, str):
            text += len(content)
    if isinstance(kwargs.get("prompt"), str):
        text += len(kwargs["prompt"])
    return text // 4 + int(kwargs.get("max_tokens") or 256)


def _retry_after(exc: Any) -> float | None:
    response = getattr(exc, "response", None)
    if response is None:
        return None
    headers = getattr(response, "headers", {}) or {}
    for name, scale in (("retry-after-ms", 0.001), ("retry-after", 1.0)):
        value = headers.get(name)
        if value:
            try:
                return max(0.0, float(value) * scale)
            except ValueError:
                continue
    return None


def _classify(exc: BaseException) -> str | None:
    """A short retriable reason, or None when the error must not be retried."""
    import openai

    if isinstance(exc, openai.APITimeoutError):
        return "timeout"
    if isinstance(exc, openai.APIConnectionError):
        return "connection error"
    if isinstance(exc, openai.APIStatusError):
        code = exc.status_code
        if code == 429:
            return "429 rate limited"
        if code >= 500:
            return f"{code} server error"
    return None


def _wrap(original: Callable[..., Any]) -> Callable[..., Any]:
    def create(self: Any, *args: Any, **kwargs: Any) -> Any:
        ctx = current_line.get()
        if ctx is None:
            return original(self, *args, **kwargs)
        from promptflow.exceptions import UserErrorException

        kwargs.setdefault("timeout", ctx.policy.request_timeout_s)
        if ctx.request_seed is not None:
            kwargs.setdefault("seed", ctx.request_seed)
        base_url = str(getattr(getattr(self, "_client", None), "base_url", ""))
        limiter = ctx.limiter_for(base_url)
        tokens = _estimate_tokens(kwargs)
        attempt = 0
        while True:
            if ctx.cancel.is_set():
                raise UserErrorException("cancelled")
            try:
                limiter.acquire(tokens, ctx.cancel)
            except LineCancelled:
                raise UserErrorException("cancelled") from None
            if limiter.unreachable:
                raise UserErrorException(
                    f"endpoint {base_url or '(unknown)'} unreachable: no answer, only connection errors "
                    "(check the endpoint URL or api_base, and that the server is running)"
                )
            try:
                response = original(self, *args, **kwargs)
            except Exception as exc:  # openai errors
                ctx.count_call()
                reason = _classify(exc)
                limiter.record(reason or "other")
                if reason is None:
                    raise
                if attempt >= ctx.policy.max_retries:
                    raise UserErrorException(
                        f"LLM call failed after {attempt + 1} attempts: {reason}"
                    ) from None
                hinted = _retry_after(exc)
                backoff = min(ctx.policy.max_delay_s, ctx.policy.base_delay_s * (2**attempt))
                delay = hinted if hinted is not None else backoff * random.uniform(0.5, 1.5)
                if reason.startswith("429"):
                    limiter.cool_down(delay)
                with ctx._lock:
                    ctx.retries += 1
                if ctx.on_retry:
                    ctx.on_retry(attempt + 1, reason, delay)
                attempt += 1
                if ctx.cancel.wait(delay):
                    raise UserErrorException("cancelled") from None
                continue
            limiter.record(None)
            ctx.add_usage(getattr(response, "usage", None))
            return response

    create.__wrapped__ = original  # type: ignore[attr-defined]
    create._llmops = True  # type: ignore[attr-defined]
    return create


def install() -> None:
    """Wrap the openai client's create methods once per process (idempotent)."""
    global _installed
    with _install_lock:
        if _installed:
            return
        from openai.resources import completions, embeddings
        from openai.resources.chat import completions as chat_completions

        for cls in (chat_completions.Completions, completions.Completions, embeddings.Embeddings):
            current = cls.create
            if not getattr(current, "_llmops", False):
                cls.create = _wrap(current)  # type: ignore[method-assign]
        _installed = True
