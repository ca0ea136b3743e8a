"""Our policy around every LLM call a flow makes in this process: rate limits, retries, timeouts, usage.

Prompt flow's LLM tools build an ``openai`` client per call and retry up to 100 times with fixed
waits (printing to stderr), which hides 429s from us and can stall a sweep. We wrap the ``openai``
``create`` methods once per process: when a line runs under the engine (a :data:`current_line` context is
set), each call waits for the connection's rate limiter, gets a per-request timeout, and is retried with
jittered exponential backoff on 429, 5xx, timeouts and connection errors, honouring ``Retry-After``.
When retries run out we raise the backend's "user error" class (for Prompt flow its
``UserErrorException``, which the tool passes through without its own retry; registered by the backend
with :func:`use_call_error`, so this module imports no backend). Outside the engine (no context) calls pass through untouched.

Two more duties:

- **The line's deadline.** Prompt flow's ``line_timeout_sec`` reports a line as timed out but leaves the
  line's thread running, retries and all. The context carries a monotonic deadline; it is checked before
  every attempt and every back-off, each request's timeout is cut to the time left, and once it passes
  the call stops with "line timed out after N s". So a timed-out line sends nothing more.
- **Answers that are not completions.** An endpoint can answer 200 with an empty body, half a JSON
  document, an HTML page (a proxy's sign-in page, a wrong URL), JSON without ``choices``, or a choice
  whose content is null. Each becomes one readable sentence naming the endpoint and what it sent (see
  :func:`_check_answer`). Empty bodies and invalid JSON are retried (typically a proxy or a connection
  cut mid-answer); the others are what the server means to send, so a retry would repeat them and they
  fail at once.

Counters per line (:class:`LineContext`): ``requests`` (every HTTP attempt, failed or not), ``retries``
(attempts after the first), ``llm_calls`` (calls that returned a usable answer) and tokens.
"""

from __future__ import annotations

import contextvars
import json
import random
import re
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

    def acquire(self, tokens: int, cancel: threading.Event | None, deadline: float | None = None) -> None:
        """Wait for a slot; raises :class:`LineCancelled` on cancel, :class:`LineTimedOut` when the wait
        would pass ``deadline`` (monotonic)."""
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
            if deadline is not None and now + wait >= deadline:
                raise LineTimedOut()
            if cancel is not None:
                if cancel.wait(min(wait, 1.0)):
                    raise LineCancelled()
            else:
                time.sleep(min(wait, 1.0))


class LineCancelled(Exception):
    """The sweep was cancelled while this line waited."""


class LineTimedOut(Exception):
    """The line's deadline passed while this call waited."""


@dataclass
class LineContext:
    """Counters and limits for one line, shared with the node threads Prompt flow starts (context is
    copied). ``line_timeout_s`` sets ``deadline`` (a :func:`time.monotonic` value) when none is given."""

    policy: RetryPolicy
    cancel: threading.Event
    limiter_for: Callable[[str], RateLimiter]
    on_retry: Callable[[int, str, float], None] | None = None
    request_seed: int | None = None  # sent as the request's `seed` (sandbox repetitions)
    line_timeout_s: float | None = None
    deadline: float | None = None
    requests: int = 0  # every HTTP attempt, whatever its fate
    llm_calls: int = 0  # calls that returned a usable answer
    retries: int = 0
    timed_out: bool = False  # a call of this line was stopped by the deadline
    prompt_tokens: int = 0
    completion_tokens: int = 0
    total_tokens: int = 0
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def __post_init__(self) -> None:
        if self.deadline is None and self.line_timeout_s is not None and self.line_timeout_s > 0:
            self.deadline = time.monotonic() + self.line_timeout_s

    def remaining(self) -> float | None:
        """Seconds left before the deadline (0 once it passed), or None without a deadline."""
        if self.deadline is None:
            return None
        return max(0.0, self.deadline - time.monotonic())

    def add_usage(self, usage: Any) -> None:
        with self._lock:
            self.llm_calls += 1
            if usage is not None:
                self.prompt_tokens += int(getattr(usage, "prompt_tokens", 0) or 0)
                self.completion_tokens += int(getattr(usage, "completion_tokens", 0) or 0)
                self.total_tokens += int(getattr(usage, "total_tokens", 0) or 0)

    def count_request(self) -> None:
        with self._lock:
            self.requests += 1

    def timeout_text(self) -> str:
        """The line timeout as messages say it: "2 s", "1.5 s"."""
        return f"{self.line_timeout_s:g} s" if self.line_timeout_s is not None else "its deadline"

    @property
    def tokens(self) -> dict[str, int]:
        return {
            "prompt_tokens": self.prompt_tokens,
            "completion_tokens": self.completion_tokens,
            "total_tokens": self.total_tokens,
        }

    @property
    def counters(self) -> dict[str, int]:
        """The line's figures: requests, retries, successful LLM calls and tokens."""
        with self._lock:
            return {
                "requests": self.requests,
                "retries": self.retries,
                "llm_calls": self.llm_calls,
                **self.tokens,
            }


current_line: contextvars.ContextVar[LineContext | None] = contextvars.ContextVar("llmops_line", default=None)
_installed = False
_install_lock = threading.Lock()
_active_lock = threading.Lock()
_active = 0  # create() calls under a line context that have not returned yet, in any thread


def active_calls() -> int:
    """How many LLM calls made under a line context are still running in this process (including those of
    lines Prompt flow already reported as timed out). 0 after a run means nothing is left sending."""
    with _active_lock:
        return _active


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

    if isinstance(exc, BadAnswer):
        return exc.reason if exc.transient else None
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


# --------------------------------------------------------------------------------------------------
# Answers that are not completions
# --------------------------------------------------------------------------------------------------


class BadAnswer(Exception):
    """The endpoint answered, but not with a completion. ``str()`` is one readable sentence; ``reason`` a
    few words for retry events; ``transient`` whether a retry may get a real answer."""

    def __init__(self, sentence: str, reason: str, transient: bool):
        super().__init__(sentence)
        self.reason = reason
        self.transient = transient


_EXPECTED = {"chat": "a chat completion", "completion": "a completion", "embedding": "an embeddings response"}
_EMPTY = "\0empty "  # marks a well-formed answer that carries nothing: phrased differently by _sentence
_TITLE_RE = re.compile(r"<title[^>]*>(.*?)</title>", re.IGNORECASE | re.DOTALL)


def _clip(text: str, limit: int = 80) -> str:
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _not_json(raw: Any) -> tuple[str, str, bool] | None:
    """(what it is, short reason, transient) for a raw HTTP answer that is plainly not a JSON answer:
    an empty body, an HTML page, or text of another type that does not parse; None otherwise."""
    response = getattr(raw, "http_response", raw)
    content = bytes(getattr(response, "content", b"") or b"")
    headers = getattr(response, "headers", None) or {}
    content_type = str(headers.get("content-type", "") or "").split(";")[0].strip().lower()
    if not content.strip():
        return "an empty body", "empty body", True
    if content_type.endswith("json"):
        return None  # parsed (and any JSON error named) by the caller
    text = content.decode("utf-8", "replace").strip()
    head = text[:1024].lower()
    if "html" in content_type or head.startswith(("<!doctype html", "<html")):
        title = _TITLE_RE.search(text[:8192])
        named = f" ({_clip(title.group(1), 60)!r})" if title and title.group(1).strip() else ""
        return f"an HTML page{named}", "HTML page", False
    try:
        json.loads(text)
    except ValueError:
        return f"a {content_type or 'non-JSON'} body ({_clip(text, 60)!r})", "not JSON", False
    return None


def _invalid_json(exc: json.JSONDecodeError, size: int) -> str:
    problem = exc.msg.removesuffix(" starting at").lower()
    return f"invalid JSON ({size} bytes, unreadable from character {exc.pos}: {problem})"


def _check_answer(kind: str, parsed: Any) -> tuple[str, str, bool] | None:
    """(what is wrong, short reason, transient) for a parsed answer that is not usable; None when it is."""
    if isinstance(parsed, str | bytes):
        return f"a non-JSON body ({_clip(str(parsed), 60)!r})", "not JSON", False
    extra = getattr(parsed, "model_extra", None) or {}
    if kind == "embedding":
        data = getattr(parsed, "data", None)
        if not isinstance(data, list) or not data:
            return _error_or(extra, "JSON without `data`", "no data")
        return None
    choices = getattr(parsed, "choices", None)
    if not isinstance(choices, list) or not choices:
        return _error_or(
            extra, "JSON without `choices`" if choices is None else "an empty `choices` list", "no choices"
        )
    first = choices[0]
    finish = getattr(first, "finish_reason", None)
    finished = f", finish_reason {finish!r}" if finish else ""
    if kind == "completion":
        if getattr(first, "text", None) is None:
            return f"{_EMPTY}(text null{finished})", "null text", False
        return None
    message = getattr(first, "message", None)
    if message is None:
        return "a choice without a `message`", "no message", False
    if getattr(message, "content", None) is None and not (
        getattr(message, "tool_calls", None) or getattr(message, "function_call", None)
    ):
        refusal = getattr(message, "refusal", None)
        if refusal:
            return f"{_EMPTY}(a refusal: {_clip(str(refusal), 80)!r}{finished})", "refusal", False
        return f"{_EMPTY}(content null, no tool calls{finished})", "null content", False
    return None


def _error_or(extra: dict[str, Any], default: str, reason: str) -> tuple[str, str, bool]:
    error = extra.get("error")
    if isinstance(error, dict) and error.get("message"):
        return f"an error object ({_clip(str(error['message']), 80)!r})", "error object", False
    return default, reason, False


def _kind_of(resource: Any) -> str:
    module = type(resource).__module__
    if "embeddings" in module:
        return "embedding"
    if "chat" in module:
        return "chat"
    return "completion"


def _sentence(base_url: str, kind: str, what: str, status: int | None) -> str:
    """E.g. "the model endpoint http://127.0.0.1:8000/v1 answered with an HTML page ('Sign in'), not a chat
    completion (status 200)", or "... answered a chat completion with nothing in it (content null, no tool
    calls, finish_reason 'stop', status 200)"."""
    where = f"the model endpoint {base_url}" if base_url else "the model endpoint"
    if what.startswith(_EMPTY):  # "answered a chat completion with nothing in it (content null, ...)"
        detail = what[len(_EMPTY) :]
        if status:
            detail = detail[:-1] + f", status {status})"
        return f"{where} answered {_EXPECTED[kind]} with nothing in it {detail}"
    code = f" (status {status})" if status else ""
    return f"{where} answered with {what}, not {_EXPECTED[kind]}{code}"


def _call_once(
    original: Callable[..., Any], resource: Any, args: Any, kwargs: dict[str, Any], base_url: str
) -> Any:
    """One HTTP attempt; returns the parsed answer or raises an openai error or :class:`BadAnswer`.

    Non-streaming calls are made in openai's raw-response mode (the switch its ``with_raw_response`` uses)
    so that a body that is not a completion can be named with its status; the caller still gets the parsed
    object. Streams, and callers that asked for the raw response themselves, are returned as they are.
    """
    from openai._constants import RAW_RESPONSE_HEADER

    kind = _kind_of(resource)
    headers = kwargs.get("extra_headers") or {}
    if kwargs.get("stream") or RAW_RESPONSE_HEADER in headers:
        return original(resource, *args, **kwargs)
    raw = original(resource, *args, **dict(kwargs, extra_headers={**headers, RAW_RESPONSE_HEADER: "true"}))
    status: int | None = None
    if not hasattr(raw, "parse") or not hasattr(raw, "http_response"):
        parsed = raw  # not the raw-response object we asked for: check what we got
    else:
        status = getattr(raw, "status_code", None)
        bad = _not_json(raw)
        if bad is not None:
            raise BadAnswer(_sentence(base_url, kind, bad[0], status), bad[1], bad[2])
        try:
            parsed = raw.parse()
        except json.JSONDecodeError as exc:  # cut off or garbled: typically a proxy or a dropped connection
            size = len(getattr(raw.http_response, "content", b"") or b"")
            raise BadAnswer(
                _sentence(base_url, kind, _invalid_json(exc, size), status), "invalid JSON", True
            ) from None
        except Exception as exc:  # JSON that openai cannot turn into its type
            raise BadAnswer(
                _sentence(base_url, kind, f"JSON that openai cannot read ({type(exc).__name__})", status),
                "unreadable JSON",
                False,
            ) from None
    problem = _check_answer(kind, parsed)
    if problem is not None:
        raise BadAnswer(_sentence(base_url, kind, problem[0], status), problem[1], problem[2])
    return parsed


def _display_url(url: str) -> str:
    """The endpoint as messages show it: no user:password@, no query string, no trailing slash."""
    from urllib.parse import urlsplit, urlunsplit

    try:
        parts = urlsplit(url)
        netloc = parts.netloc.rsplit("@", 1)[-1]
        return urlunsplit((parts.scheme, netloc, parts.path, "", "")).rstrip("/")
    except ValueError:
        return "(the endpoint)"


def _request_timeout(kwargs: dict[str, Any], ctx: LineContext) -> tuple[float, bool]:
    """This attempt's timeout: the policy's (or the caller's, if shorter), cut to the time the line has
    left; and whether it was cut (a timeout of this attempt is then the line's deadline passing)."""
    given = kwargs.get("timeout")
    timeout = ctx.policy.request_timeout_s
    if isinstance(given, int | float) and not isinstance(given, bool) and given > 0:
        timeout = min(timeout, float(given))
    remaining = ctx.remaining()
    if remaining is not None and remaining <= timeout:
        return max(remaining, 0.001), True
    return timeout, False


def _wrap(original: Callable[..., Any]) -> Callable[..., Any]:
    def create(self: Any, *args: Any, **kwargs: Any) -> Any:
        ctx = current_line.get()
        if ctx is None:
            return original(self, *args, **kwargs)
        global _active
        with _active_lock:
            _active += 1
        try:
            return _create(original, self, ctx, args, kwargs)
        finally:
            with _active_lock:
                _active -= 1

    create.__wrapped__ = original  # type: ignore[attr-defined]
    create._llmops = True  # type: ignore[attr-defined]
    return create


class LlmCallError(Exception):
    """An LLM call that failed for good under the policy (the default error class)."""


_call_error: type[Exception] = LlmCallError


def use_call_error(cls: type[Exception]) -> None:
    """The exception class raised when a call fails for good: a backend registers the one its tools pass
    through untouched (Prompt flow's tools retry on other errors)."""
    global _call_error
    _call_error = cls


def _create(
    original: Callable[..., Any], resource: Any, ctx: LineContext, args: Any, kwargs: dict[str, Any]
) -> Any:
    UserErrorException = _call_error  # noqa: N806  (the registered class)

    if ctx.request_seed is not None and _kind_of(resource) != "embedding":
        kwargs.setdefault("seed", ctx.request_seed)
    raw_url = str(getattr(getattr(resource, "_client", None), "base_url", ""))
    limiter = ctx.limiter_for(raw_url)
    base_url = _display_url(raw_url)
    tokens = _estimate_tokens(kwargs)
    attempt = 0
    last = ""

    def timed_out() -> Exception:
        ctx.timed_out = True
        done = f" after {attempt} request{'s' if attempt != 1 else ''}" if attempt else ""
        cause = f"; last error: {last}" if last else ""
        return UserErrorException(f"line timed out after {ctx.timeout_text()}: LLM call stopped{done}{cause}")

    while True:
        if ctx.cancel.is_set():
            raise UserErrorException("cancelled")
        if ctx.remaining() == 0.0:
            raise timed_out()
        try:
            limiter.acquire(tokens, ctx.cancel, ctx.deadline)
        except LineCancelled:
            raise UserErrorException("cancelled") from None
        except LineTimedOut:
            raise timed_out() from None
        if limiter.unreachable:
            raise UserErrorException(
                f"endpoint {base_url or '(unknown)'} unreachable: no answer, only connection errors "
                "(check the endpoint URL or api_base, and that the server is running)"
            )
        timeout, cut = _request_timeout(kwargs, ctx)
        call_kwargs = dict(kwargs, timeout=timeout)
        ctx.count_request()
        try:
            response = _call_once(original, resource, args, call_kwargs, base_url)
        except Exception as exc:  # openai errors, answers that are not completions
            reason = _classify(exc)
            limiter.record(None if isinstance(exc, BadAnswer) else (reason or "other"))
            attempt += 1
            if reason is None:  # not worth a retry: say what it was
                if isinstance(exc, BadAnswer):
                    raise UserErrorException(str(exc)) from None
                raise
            last = reason
            if (cut and reason == "timeout") or ctx.remaining() == 0.0:
                raise timed_out() from None  # the request was cut short by the deadline, or ended past it
            detail = str(exc) if isinstance(exc, BadAnswer) else reason
            if attempt > ctx.policy.max_retries:
                raise UserErrorException(f"LLM call failed after {attempt} attempts: {detail}") from None
            hinted = _retry_after(exc)
            backoff = min(ctx.policy.max_delay_s, ctx.policy.base_delay_s * (2 ** (attempt - 1)))
            delay = hinted if hinted is not None else backoff * random.uniform(0.5, 1.5)
            if reason.startswith("429"):
                limiter.cool_down(delay)  # the endpoint's word holds for every line, whatever this one does
            remaining = ctx.remaining()
            if remaining is not None and delay >= remaining:
                ctx.timed_out = True
                raise UserErrorException(
                    f"line would time out ({ctx.timeout_text()}) before the next retry: LLM call stopped after "
                    f"{attempt} request{'s' if attempt != 1 else ''}; last error: {detail}"
                ) from None
            with ctx._lock:
                ctx.retries += 1
            if ctx.on_retry:
                ctx.on_retry(attempt, reason, delay)
            if ctx.cancel.wait(delay):
                raise UserErrorException("cancelled") from None
            continue
        limiter.record(None)
        ctx.add_usage(getattr(response, "usage", None))
        return response


# --------------------------------------------------------------------------------------------------
# The request body, without openai's per-call type walk
# --------------------------------------------------------------------------------------------------
#
# openai's ``create`` passes every request body through ``maybe_transform(body, ParamsTypedDict)``, which
# walks the body against the params' type annotations to rename aliased keys and format dates/files. It
# costs about a fifth of a line's CPU (measured, benchmarks/line_cpu.py). For a params type with no alias
# and no format anywhere in its annotations (true of chat completions, completions and embeddings in the
# openai versions we support, checked once per type at run time) and a body made of plain JSON values,
# the walk's only effect is dropping the parameters that were not given: that is done directly. Anything
# else (an aliased or formatted type, a tuple, a pydantic model, a date, a file) goes through openai.

_PLAIN_SCALARS = (str, int, float, bool, type(None))
_alias_free_types: dict[int, tuple[Any, bool]] = {}  # id(type) -> (the type, kept alive; verdict)


def _plain(value: Any) -> bool:
    """Whether a value is plain JSON (str/int/float/bool/None, and lists and str-keyed dicts of them)."""
    if isinstance(value, _PLAIN_SCALARS):
        return True
    if type(value) is list:
        return all(_plain(v) for v in value)
    if type(value) is dict:
        return all(type(k) is str and _plain(v) for k, v in value.items())
    return False


def _alias_free(expected_type: Any) -> bool:
    """Whether no ``PropertyInfo`` with an alias or a format appears anywhere in the type's annotations."""
    known = _alias_free_types.get(id(expected_type))
    if known is not None and known[0] is expected_type:
        return known[1]
    from typing import get_args

    from openai._utils._transform import PropertyInfo
    from typing_extensions import get_type_hints, is_typeddict

    seen: set[int] = set()

    def clean(t: Any) -> bool:
        if id(t) in seen:
            return True
        seen.add(id(t))
        for meta in getattr(t, "__metadata__", ()):
            if isinstance(meta, PropertyInfo) and (meta.alias or meta.format):
                return False
        if is_typeddict(t):
            try:
                hints = get_type_hints(t, include_extras=True)
            except Exception:  # annotations we cannot resolve: let openai do it
                return False
            return all(clean(a) for a in hints.values())
        return all(clean(a) for a in get_args(t))

    verdict = is_typeddict(expected_type) and clean(expected_type)
    _alias_free_types[id(expected_type)] = (expected_type, verdict)
    return verdict


def _fast_transform(original: Callable[..., Any]) -> Callable[..., Any]:
    from openai._utils import is_given

    def maybe_transform(data: Any, expected_type: Any) -> Any:
        if type(data) is dict and _alias_free(expected_type):
            body = {k: v for k, v in data.items() if is_given(v)}
            if all(type(k) is str and _plain(v) for k, v in body.items()):
                return body
        return original(data, expected_type)

    maybe_transform._llmops = True  # type: ignore[attr-defined]
    return maybe_transform


def install() -> None:
    """Wrap the openai client's create methods once per process (idempotent), and give them the request
    body transform above."""
    global _installed
    with _install_lock:
        if _installed:
            return
        from openai.resources import completions, embeddings
        from openai.resources.chat.completions import completions as chat_completions

        for cls in (chat_completions.Completions, completions.Completions, embeddings.Embeddings):
            current = cls.create
            if not getattr(current, "_llmops", False):
                cls.create = _wrap(current)  # type: ignore[method-assign]
        for module in (chat_completions, completions, embeddings):
            body_transform = getattr(module, "maybe_transform", None)
            if body_transform is not None and not getattr(body_transform, "_llmops", False):
                module.maybe_transform = _fast_transform(body_transform)  # type: ignore[attr-defined]
        _installed = True
