"""The sandbox's bad answers: 200s that are not completions, drawn deterministically by seed."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections import Counter

import httpx
import pytest

from llmops_tui.sandbox import SandboxConfig, start_sandbox
from llmops_tui.sandbox.server import BAD_ANSWER_KINDS


def _body(i: int, **extra: object) -> dict:
    return {"model": "gpt-4o", "messages": [{"role": "user", "content": f"what is {i} plus 1"}], **extra}


def _kind(r: httpx.Response) -> str:
    """Which bad answer (or "ok") a response is, judged from the outside."""
    if not r.content:
        return "empty"
    if r.headers["content-type"].startswith("text/html"):
        return "html"
    try:
        data = r.json()
    except ValueError:
        return "invalid_json"
    if "choices" not in data:
        return "no_choices"
    first = data["choices"][0]
    if first.get("message", {}).get("content", "") is None or ("text" in first and first["text"] is None):
        return "null_content"
    return "ok"


@pytest.mark.parametrize("kind", BAD_ANSWER_KINDS)
@pytest.mark.parametrize("path", ["/v1/chat/completions", "/v1/completions"])
def test_each_kind_is_what_it_says(kind, path):
    with start_sandbox(bad_answer_rate=1.0, bad_answer_kinds=(kind,)) as sb:
        body = _body(1) if "chat" in path else {"model": "gpt-4o", "prompt": "what is 1 plus 1"}
        r = httpx.post(sb.url + path, json=body)
        stats = sb.stats()
    assert r.status_code == 200
    assert _kind(r) == kind
    assert stats["bad_answers_injected"] == {k: int(k == kind) for k in BAD_ANSWER_KINDS}
    assert stats["errors_injected_total"] == 1 and stats["requests"] == 0


def test_bad_answers_are_reproducible_by_seed_and_honour_the_rate():
    def draw(seed: int) -> list[str]:
        with start_sandbox(bad_answer_rate=0.3, seed=seed) as sb, httpx.Client() as client:
            kinds = [_kind(client.post(sb.url + "/v1/chat/completions", json=_body(i))) for i in range(400)]
            assert sb.stats()["requests"] == kinds.count("ok")
        return kinds

    first, again, other = draw(5), draw(5), draw(6)
    assert first == again  # same seed, same bad answers on the same requests
    assert first != other
    counts = Counter(first)
    assert abs((400 - counts["ok"]) - 120) <= 37  # Binomial(400, 0.3): about 4 standard deviations
    assert set(counts) == {"ok", *BAD_ANSWER_KINDS}  # every kind is drawn


def test_retries_of_a_bad_answer_get_a_fresh_draw():
    with start_sandbox(bad_answer_rate=0.5, bad_answer_kinds=("empty",), seed=2) as sb:
        seen = [_kind(httpx.post(sb.url + "/v1/chat/completions", json=_body(0))) for _ in range(30)]
    assert "ok" in seen and "empty" in seen


def test_streams_and_embeddings_never_get_one():
    with start_sandbox(bad_answer_rate=1.0) as sb:
        stream = httpx.post(sb.url + "/v1/chat/completions", json=_body(0, stream=True))
        embedding = httpx.post(
            sb.url + "/v1/embeddings", json={"model": "text-embedding-3-small", "input": "x"}
        )
        stats = sb.stats()
    assert stream.status_code == 200 and stream.text.rstrip().endswith("data: [DONE]")
    assert embedding.status_code == 200 and embedding.json()["data"]
    assert stats["errors_injected_total"] == 0


@pytest.mark.parametrize(
    ("options", "fragment"),
    [
        ({"bad_answer_rate": 1.5}, "bad_answer_rate must be between 0 and 1"),
        ({"bad_answer_rate": 0.6, "rate_500": 0.6}, "must not exceed 1"),
        ({"bad_answer_rate": 0.1, "bad_answer_kinds": ("html", "xml")}, "got xml"),
        ({"bad_answer_rate": 0.1, "bad_answer_kinds": ()}, "got none"),
    ],
)
def test_config_is_checked(options, fragment):
    with pytest.raises(ValueError) as info:
        SandboxConfig(**options).validate()
    assert fragment in str(info.value)


def test_cli_flags():
    env = dict(os.environ, PYTHONUNBUFFERED="1")
    cmd = [sys.executable, "-m", "llmops_tui.cli", "sandbox", "--port", "0"]
    proc = subprocess.Popen(
        [*cmd, "--bad-answer-rate", "1", "--bad-answer-kind", "html", "--bad-answer-kind", "no_choices"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
    )
    try:
        url = proc.stdout.readline().strip()
        kinds = {
            _kind(httpx.post(url + "/v1/chat/completions", json=_body(i), timeout=10)) for i in range(40)
        }
        stats = httpx.get(url + "/stats", timeout=10).json()
    finally:
        proc.terminate()
        proc.wait(timeout=10)
    assert kinds == {"html", "no_choices"}
    assert json.dumps(stats["bad_answers_injected"]) and sum(stats["bad_answers_injected"].values()) == 40
    bad = subprocess.run(
        [*cmd, "--bad-answer-rate", "0.1", "--bad-answer-kind", "xml"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert bad.returncode == 2 and bad.stdout == ""
    assert "xml" in bad.stderr and "invalid_json" in bad.stderr and "Traceback" not in bad.stderr
