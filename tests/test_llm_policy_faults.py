"""The LLM-call policy against hostile endpoints (issue 12, items 4 and 5).

- Answers that are not completions (invalid JSON, empty body, HTML, no ``choices``, null content) are one
  readable sentence, retried only where transient.
- A line's deadline stops its requests and retries; nothing is left sending after a run.
- Requests, retries and successful LLM calls are counted apart.

Real sandbox over real HTTP on 127.0.0.1, the real ``openai`` client through our hooks, real promptflow
for the sweep cases. No wall-clock assertions: we count requests at the server and wait for threads to end.
"""

from __future__ import annotations

import contextlib
import http.server
import json
import os
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from builders import make_use_case
from openai import OpenAI

from llmops_tui.core import llmhooks
from llmops_tui.core.llmhooks import LineContext, LineTimedOut, RateLimiter, RetryPolicy, current_line
from llmops_tui.sandbox import start_sandbox

QUESTION = [{"role": "user", "content": "what is 2 plus 3"}]
FAST = RetryPolicy(max_retries=2, base_delay_s=0.01, max_delay_s=0.05, request_timeout_s=30.0)


@pytest.fixture(autouse=True, scope="module")
def _hooks_installed() -> None:
    llmhooks.install()


@pytest.fixture(autouse=True)
def _default_call_error():
    """These tests call the policy directly, outside any backend: it raises its own error class."""
    previous = llmhooks._call_error
    llmhooks.use_call_error(llmhooks.LlmCallError)
    yield
    llmhooks.use_call_error(previous)


@contextlib.contextmanager
def line(policy: RetryPolicy = FAST, **kwargs: Any) -> Iterator[LineContext]:
    """Run the body as one engine line would: a LineContext set for this thread."""
    limiter = kwargs.pop("limiter", None) or RateLimiter()
    ctx = LineContext(
        policy=policy,
        cancel=kwargs.pop("cancel", None) or threading.Event(),
        limiter_for=lambda url: limiter,
        **kwargs,
    )
    token = current_line.set(ctx)
    try:
        yield ctx
    finally:
        current_line.reset(token)


def call(base_url: str, api: str = "chat") -> Any:
    client = OpenAI(base_url=base_url, api_key="sk-test", max_retries=0)
    if api == "chat":
        return client.chat.completions.create(model="gpt-4o", messages=QUESTION)
    return client.completions.create(model="gpt-4o", prompt="what is 2 plus 3")


def failure(base_url: str, api: str = "chat", **line_kwargs: Any) -> tuple[str, LineContext]:
    """The message of the error a call raises under a line context, and the context."""
    with line(**line_kwargs) as ctx, pytest.raises(llmhooks.LlmCallError) as info:
        call(base_url, api)
    return str(info.value), ctx


def settle(handle: Any, quiet_s: float = 1.0, limit_s: float = 30.0) -> int:
    """Wait until no hooked call is running and the server's request count has stopped growing."""
    end = time.monotonic() + limit_s
    while llmhooks.active_calls() and time.monotonic() < end:
        time.sleep(0.05)
    seen = handle.stats()["total_requests"]
    while time.monotonic() < end:
        time.sleep(quiet_s)
        now = handle.stats()["total_requests"]
        if now == seen:
            return now
        seen = now
    return seen


# --------------------------------------------------------------------------------------------------
# Answers that are not completions: the hook, one call, the real openai client
# --------------------------------------------------------------------------------------------------

TRANSIENT = 1 + FAST.max_retries  # attempts for a transient bad answer that never goes away

BAD_ANSWER_CASES = [
    # (kind, api, message fragment, requests sent)
    ("invalid_json", "chat", "answered with invalid JSON (", TRANSIENT),
    ("invalid_json", "completion", "answered with invalid JSON (", TRANSIENT),
    ("empty", "chat", "answered with an empty body, not a chat completion (status 200)", TRANSIENT),
    ("empty", "completion", "answered with an empty body, not a completion (status 200)", TRANSIENT),
    (
        "html",
        "chat",
        "answered with an HTML page ('Sign in - Corporate Proxy'), not a chat completion (status 200)",
        1,
    ),
    ("html", "completion", "answered with an HTML page ('Sign in - Corporate Proxy'), not a completion", 1),
    ("no_choices", "chat", "answered with JSON without `choices`, not a chat completion (status 200)", 1),
    ("no_choices", "completion", "answered with JSON without `choices`, not a completion (status 200)", 1),
    (
        "null_content",
        "chat",
        "answered a chat completion with nothing in it (content null, no tool calls, finish_reason 'stop', "
        "status 200)",
        1,
    ),
    ("null_content", "completion", "answered a completion with nothing in it (text null", 1),
]


@pytest.mark.parametrize(
    ("kind", "api", "fragment", "requests"),
    BAD_ANSWER_CASES,
    ids=[f"{c[0]}-{c[1]}" for c in BAD_ANSWER_CASES],
)
def test_bad_answer_is_one_readable_sentence(kind, api, fragment, requests):
    with start_sandbox(bad_answer_rate=1.0, bad_answer_kinds=(kind,)) as sb:
        message, ctx = failure(sb.url + "/v1", api)
        sent = sb.stats()["total_requests"]
    assert fragment in message
    assert f"the model endpoint {sb.url}/v1 " in message
    assert "Traceback" not in message and "\n" not in message
    if requests > 1:  # transient: retried, then the count of attempts leads the sentence
        assert message.startswith(f"LLM call failed after {requests} attempts: the model endpoint")
    else:  # not transient: failed at once
        assert message.startswith("the model endpoint")
    assert ctx.requests == requests == sent
    assert ctx.retries == requests - 1 and ctx.llm_calls == 0


def test_transient_bad_answers_are_retried_until_a_real_answer():
    # half the attempts draw a bad answer (seeded per attempt), so retries get through
    with start_sandbox(bad_answer_rate=0.5, bad_answer_kinds=("empty", "invalid_json"), seed=4) as sb:
        policy = RetryPolicy(max_retries=20, base_delay_s=0.001, max_delay_s=0.01)
        contexts = []
        for i in range(12):
            client = OpenAI(base_url=sb.url + "/v1", api_key="k", max_retries=0)
            with line(policy) as ctx:
                answer = client.chat.completions.create(
                    model="gpt-4o", messages=[{"role": "user", "content": f"what is {i} plus 1"}]
                )
            assert answer.choices[0].message.content
            contexts.append(ctx)
        stats = sb.stats()
    assert sum(c.llm_calls for c in contexts) == 12
    assert sum(c.requests for c in contexts) == stats["total_requests"]
    assert sum(stats["bad_answers_injected"].values()) == sum(c.retries for c in contexts) > 0


class _Canned(http.server.BaseHTTPRequestHandler):
    """Answers every POST with the (status, content type, body) the server was given."""

    def do_POST(self) -> None:  # noqa: N802 (http.server's naming)
        self.rfile.read(int(self.headers.get("Content-Length") or 0))
        status, content_type, body = self.server.canned  # type: ignore[attr-defined]
        self.server.hits += 1  # type: ignore[attr-defined]
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: Any) -> None:
        pass


@contextlib.contextmanager
def canned(status: int, content_type: str, body: bytes | dict[str, Any]) -> Iterator[Any]:
    raw = json.dumps(body).encode() if isinstance(body, dict) else body
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Canned)
    server.canned = (status, content_type, raw)  # type: ignore[attr-defined]
    server.hits = 0  # type: ignore[attr-defined]
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield server
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=10)


def _completion(message: dict[str, Any]) -> dict[str, Any]:
    return {
        "id": "chatcmpl-1",
        "object": "chat.completion",
        "created": 1,
        "model": "m",
        "choices": [{"index": 0, "message": message, "finish_reason": "stop", "logprobs": None}],
        "usage": {"prompt_tokens": 3, "completion_tokens": 2, "total_tokens": 5},
    }


CANNED_FAILURES = [
    # (case, status, content type, body, fragment, requests)
    (
        "plain-text",
        200,
        "text/plain",
        b"upstream says hello",
        "answered with a text/plain body ('upstream says hello'), not a chat completion (status 200)",
        1,
    ),
    (
        "error-object-200",
        200,
        "application/json",
        {"error": {"message": "deployment not found", "code": "404"}},
        "answered with an error object ('deployment not found'), not a chat completion (status 200)",
        1,
    ),
    (
        "json-list",
        200,
        "application/json",
        b"[1, 2, 3]",
        "not a chat completion (status 200)",
        1,
    ),
    (
        "empty-choices",
        200,
        "application/json",
        dict(_completion({"role": "assistant", "content": "x"}), choices=[]),
        "answered with an empty `choices` list, not a chat completion (status 200)",
        1,
    ),
    (
        "refusal",
        200,
        "application/json",
        _completion({"role": "assistant", "content": None, "refusal": "I can't help with that."}),
        'answered a chat completion with nothing in it (a refusal: "I can\'t help with that."',
        1,
    ),
    (
        "html-without-content-type",
        200,
        "application/octet-stream",
        b"<!DOCTYPE html><html><head><title>Welcome to nginx!</title></head><body></body></html>",
        "answered with an HTML page ('Welcome to nginx!'), not a chat completion (status 200)",
        1,
    ),
    (
        "garbled-json-201",
        201,
        "application/json",
        b'{"id": "chatcmpl-1", "choices": [',
        "answered with invalid JSON (",
        TRANSIENT,
    ),
]


@pytest.mark.parametrize(
    ("case", "status", "content_type", "body", "fragment", "requests"),
    CANNED_FAILURES,
    ids=[c[0] for c in CANNED_FAILURES],
)
def test_other_non_completions_from_a_real_server(case, status, content_type, body, fragment, requests):
    with canned(status, content_type, body) as server:
        message, ctx = failure(f"http://127.0.0.1:{server.server_port}/v1")
        assert server.hits == requests == ctx.requests
    assert fragment in message and "Traceback" not in message and "\n" not in message


CANNED_ANSWERS = [
    # well-formed answers that must not be mistaken for bad ones
    (
        "tool-call-with-null-content",
        _completion(
            {
                "role": "assistant",
                "content": None,
                "tool_calls": [
                    {"id": "c1", "type": "function", "function": {"name": "f", "arguments": "{}"}}
                ],
            }
        ),
    ),
    ("content-that-is-html", _completion({"role": "assistant", "content": "<html><title>x</title></html>"})),
    ("empty-string-content", _completion({"role": "assistant", "content": ""})),
]


@pytest.mark.parametrize(("case", "body"), CANNED_ANSWERS, ids=[c[0] for c in CANNED_ANSWERS])
def test_well_formed_answers_pass(case, body):
    with canned(200, "application/json", body) as server, line() as ctx:
        answer = call(f"http://127.0.0.1:{server.server_port}/v1")
    sent = body["choices"][0]["message"]
    assert answer.choices[0].message.content == sent["content"]
    assert len(answer.choices[0].message.tool_calls or []) == len(sent.get("tool_calls") or [])
    assert ctx.requests == ctx.llm_calls == 1 and ctx.retries == 0 and ctx.total_tokens == 5


def test_calls_outside_a_line_are_untouched():
    with start_sandbox(bad_answer_rate=1.0, bad_answer_kinds=("no_choices",)) as sb:
        answer = call(sb.url + "/v1")  # no LineContext: the openai client's own behaviour
    assert getattr(answer, "choices", None) is None


# --------------------------------------------------------------------------------------------------
# The line's deadline: hook level
# --------------------------------------------------------------------------------------------------

DEADLINE_CASES = [
    # (case, sandbox options, line timeout, policy, message fragment, most requests)
    ("slow-endpoint", {"latency_ms": 8000}, 1.0, RetryPolicy(), "line timed out after 1 s", 1),
    (
        "held-request",
        {"rate_timeout": 1.0, "timeout_hold_s": 30.0},
        1.0,
        RetryPolicy(),
        "line timed out after 1 s",
        1,
    ),
    (
        "request-timeout-shorter-than-line",
        {"latency_ms": 8000},
        1.5,
        RetryPolicy(request_timeout_s=0.2, base_delay_s=0.01, max_delay_s=0.02, max_retries=1000),
        # which check stops it depends on where the last 0.2 s attempt ends (a loaded machine): the
        # deadline itself, or the back-off that would cross it; either way the line stops at 1.5 s
        ("line timed out after 1.5 s", "line would time out (1.5 s) before the next retry"),
        10,
    ),
    (
        "retry-after-past-the-deadline",
        {"rate_429": 1.0},
        0.5,
        RetryPolicy(),
        "line would time out (0.5 s) before the next retry: LLM call stopped after 1 request; "
        "last error: 429 rate limited",
        1,
    ),
    (
        "back-off-past-the-deadline",
        {"rate_500": 1.0},
        1.0,
        RetryPolicy(base_delay_s=5.0),
        "line would time out (1 s) before the next retry",
        1,
    ),
]


@pytest.mark.parametrize(
    ("case", "options", "timeout", "policy", "fragment", "most"),
    DEADLINE_CASES,
    ids=[c[0] for c in DEADLINE_CASES],
)
def test_the_deadline_stops_requests_and_retries(case, options, timeout, policy, fragment, most):
    with start_sandbox(**options) as sb:
        message, ctx = failure(sb.url + "/v1", policy=policy, line_timeout_s=timeout)
        sent = settle(sb)
    fragments = fragment if isinstance(fragment, tuple) else (fragment,)
    assert any(f in message for f in fragments), message
    assert ctx.timed_out and ctx.llm_calls == 0
    assert 1 <= ctx.requests == sent <= most
    assert llmhooks.active_calls() == 0


def test_a_rate_limit_wait_past_the_deadline_sends_nothing():
    limiter = RateLimiter()
    limiter.cool_down(60)
    with start_sandbox() as sb:
        message, ctx = failure(sb.url + "/v1", limiter=limiter, line_timeout_s=1.0)
        assert sb.stats()["total_requests"] == 0
    assert message.startswith("line timed out after 1 s") and ctx.requests == 0


def test_limiter_refuses_a_wait_that_ends_past_the_deadline():
    limiter = RateLimiter(rpm=1)
    limiter.acquire(1, None, deadline=time.monotonic() + 3600)
    with pytest.raises(LineTimedOut):  # the next slot is a minute away, the deadline a second
        limiter.acquire(1, None, deadline=time.monotonic() + 1)


def test_cancel_ends_a_back_off_wait_at_once():
    cancel = threading.Event()
    errors: list[BaseException] = []
    patient = RetryPolicy(base_delay_s=600.0, max_delay_s=600.0)  # the first back-off is 5 to 15 minutes
    with start_sandbox(rate_500=1.0) as sb:

        def run() -> None:
            with line(patient, cancel=cancel):
                try:
                    call(sb.url + "/v1")
                except BaseException as exc:
                    errors.append(exc)

        worker = threading.Thread(target=run, daemon=True)
        worker.start()
        end = time.monotonic() + 30
        while sb.stats()["total_requests"] == 0 and time.monotonic() < end:
            time.sleep(0.02)
        cancel.set()
        worker.join(timeout=60)
        assert not worker.is_alive()  # it did not sit out its back-off
        assert sb.stats()["total_requests"] == 1
    assert len(errors) == 1 and isinstance(errors[0], llmhooks.LlmCallError) and str(errors[0]) == "cancelled"


def test_requests_retries_and_calls_are_separate_figures():
    with start_sandbox(rate_500=0.5, seed=11) as sb:
        policy = RetryPolicy(max_retries=30, base_delay_s=0.001, max_delay_s=0.005)
        contexts = []
        for i in range(16):
            client = OpenAI(base_url=sb.url + "/v1", api_key="k", max_retries=0)
            with line(policy) as ctx:
                client.chat.completions.create(
                    model="gpt-4o", messages=[{"role": "user", "content": f"what is {i} plus 2"}]
                )
            contexts.append(ctx)
        stats = sb.stats()
    for ctx in contexts:
        assert ctx.llm_calls == 1 and ctx.requests == ctx.retries + 1
        assert ctx.counters["requests"] == ctx.requests and ctx.counters["llm_calls"] == 1
    assert sum(c.requests for c in contexts) == stats["total_requests"]
    assert sum(c.retries for c in contexts) == stats["errors_injected"]["500"] > 0


# --------------------------------------------------------------------------------------------------
# Through the engine: real promptflow lines
# --------------------------------------------------------------------------------------------------


def _sweep(ws: Path, **options: Any) -> tuple[Any, list[Any]]:
    from llmops_tui.core import events as ev
    from llmops_tui.core.engine import run_sweep
    from llmops_tui.core.store import RunStore
    from llmops_tui.core.sweep import SweepOptions, plan_sweep
    from llmops_tui.core.workspace import load_workspace

    uc = load_workspace(ws).use_cases[0]
    plan = plan_sweep(uc, SweepOptions(variants="defaults", no_cache=True, **options))
    final = None
    for event in run_sweep(ws, uc, plan, progress_interval=0.05):
        if isinstance(event, ev.SweepFinished):
            final = event
    assert final is not None
    with RunStore.for_workspace(ws) as store:
        return final, store.lines(final.run_id)


SWEEP_BAD_ANSWERS = [
    ("invalid_json", "LLM call failed after 2 attempts: the model endpoint", "answered with invalid JSON ("),
    ("empty", "LLM call failed after 2 attempts: the model endpoint", "answered with an empty body"),
    ("html", "the model endpoint", "answered with an HTML page ('Sign in - Corporate Proxy')"),
    ("no_choices", "the model endpoint", "answered with JSON without `choices`"),
    ("null_content", "the model endpoint", "answered a chat completion with nothing in it (content null"),
]


@pytest.mark.integration
@pytest.mark.parametrize(
    ("kind", "start", "fragment"), SWEEP_BAD_ANSWERS, ids=[c[0] for c in SWEEP_BAD_ANSWERS]
)
def test_sweep_lines_fail_with_the_sentence(tmp_path, kind, start, fragment):
    make_use_case(tmp_path, rows=2)
    with start_sandbox(bad_answer_rate=1.0, bad_answer_kinds=(kind,)) as sb:
        final, lines = _sweep(tmp_path, llm_endpoint=sb.url, max_retries=1)
    assert len(lines) == 2 and final.summary["errors"] == 2
    for rec in lines:
        assert rec.status == "failed" and rec.outputs is None and rec.llm_calls == 0
        assert start in rec.error and fragment in rec.error, rec.error
        assert "Traceback" not in rec.error and 'File "' not in rec.error


@pytest.mark.integration
def test_sweep_line_timeout_leaves_nothing_sending(tmp_path):
    make_use_case(tmp_path, rows=4)
    with start_sandbox(latency_ms=8000) as sb:
        final, lines = _sweep(tmp_path, llm_endpoint=sb.url, line_timeout_s=1.0, concurrency=4)
        sent = settle(sb)
        assert llmhooks.active_calls() == 0  # no thread of the run is still in a call
        time.sleep(1.0)
        assert sb.stats()["total_requests"] == sent  # and nothing more arrives
    assert len(lines) == 4 and all(r.status == "failed" for r in lines)
    assert all("timed out" in r.error or "timeout" in r.error for r in lines)
    assert sent <= 4  # one request per line; before the deadline it was 7 per line, sent in the background


@pytest.mark.integration
def test_cli_sweep_against_a_slow_endpoint_exits_and_stops_sending(tmp_path):
    make_use_case(tmp_path, rows=4)
    env = dict(os.environ, PYTHONUNBUFFERED="1")
    server = subprocess.Popen(
        [sys.executable, "-m", "llmops_tui.cli", "sandbox", "--port", "0", "--latency-ms", "8000"],
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
        env=env,
    )
    try:
        url = server.stdout.readline().strip()
        assert url.startswith("http://127.0.0.1:")
        sweep = subprocess.run(
            [
                sys.executable,
                "-m",
                "llmops_tui.cli",
                "sweep",
                "tickets",
                "--workspace",
                str(tmp_path),
                "--llm-endpoint",
                url + "/v1",
                "--line-timeout",
                "1",
                "--variants",
                "defaults",
                "--no-cache",
                "--json",
            ],
            capture_output=True,
            text=True,
            env=env,
            timeout=300,
        )
        # the process has exited: whatever it started has ended with it; the server saw each line once
        import httpx

        stats = httpx.get(url + "/stats", timeout=10).json()
    finally:
        server.terminate()
        server.wait(timeout=30)
    assert "Traceback" not in sweep.stderr
    summary = json.loads(sweep.stdout)
    assert sum(c["errors"] for c in summary["cells"]) == 4
    assert 1 <= stats["total_requests"] - 1 <= 4  # minus this /stats request


def test_the_sentence_never_carries_url_credentials():
    with start_sandbox(bad_answer_rate=1.0, bad_answer_kinds=("html",)) as sb:
        host = sb.url.removeprefix("http://")
        message, _ = failure(f"http://user:sk-secret-in-url@{host}/v1")
    assert "sk-secret-in-url" not in message and f"the model endpoint http://{host}/v1 answered" in message
