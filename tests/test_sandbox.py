"""The sandbox model server over real HTTP: OpenAI clients, errors, faults, stats, the CLI."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
from collections import Counter

import httpx
import pytest

from llmops_tui.sandbox import start_sandbox

QUESTION = [{"role": "user", "content": "what is 12 plus 7"}]


@pytest.fixture
def fresh_sandbox():
    """A private sandbox for tests that read counters or change settings."""
    handle = start_sandbox(host="127.0.0.1", port=0, seed=0)
    try:
        yield handle
    finally:
        handle.stop()


def test_start_and_stop_frees_the_port():
    handle = start_sandbox()
    assert handle.url == f"http://127.0.0.1:{handle.port}"
    assert httpx.get(handle.url + "/health").json() == {"status": "ok"}
    handle.stop()
    handle.stop()  # idempotent
    with pytest.raises(httpx.ConnectError):
        httpx.get(handle.url + "/health", timeout=2)
    with start_sandbox(port=handle.port) as again:  # the port is free again
        assert again.port == handle.port


def test_openai_client_chat(sandbox):
    from openai import OpenAI

    client = OpenAI(base_url=sandbox.url + "/v1", api_key="sk-canary", max_retries=0)
    first = client.chat.completions.create(model="gpt-4o", messages=QUESTION, temperature=0)
    assert first.object == "chat.completion"
    assert first.model == "gpt-4o"
    assert first.choices[0].message.role == "assistant"
    assert first.choices[0].finish_reason == "stop"
    assert first.usage.total_tokens == first.usage.prompt_tokens + first.usage.completion_tokens > 0
    again = client.chat.completions.create(model="gpt-4o", messages=QUESTION, temperature=0)
    assert (again.id, again.choices[0].message.content) == (first.id, first.choices[0].message.content)
    assert first.choices[0].message.content in ("18", "19", "20")

    chunks = list(
        client.chat.completions.create(
            model="gpt-4o",
            messages=QUESTION,
            temperature=0,
            stream=True,
            stream_options={"include_usage": True},
        )
    )
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text == first.choices[0].message.content
    assert chunks[-1].usage.total_tokens == first.usage.total_tokens
    assert all(c.object == "chat.completion.chunk" for c in chunks)


def test_azure_openai_client_chat(sandbox):
    from openai import AzureOpenAI

    client = AzureOpenAI(
        azure_endpoint=sandbox.url, api_key="azure-canary", api_version="2024-02-01", max_retries=0
    )
    messages = [{"role": "user", "content": "Tell me about lighthouses, please."}]
    reply = client.chat.completions.create(model="my-deployment", messages=messages)
    assert reply.model == "my-deployment"
    assert reply.choices[0].message.content.startswith("This is a sandbox answer")
    streamed = client.chat.completions.create(model="my-deployment", messages=messages, stream=True)
    text = "".join(c.choices[0].delta.content or "" for c in streamed if c.choices)
    assert text == reply.choices[0].message.content


def test_completions_embeddings_models(sandbox):
    from openai import OpenAI

    client = OpenAI(base_url=sandbox.url + "/v1", api_key="sk-canary", max_retries=0)
    completion = client.completions.create(model="gpt-35-turbo-instruct", prompt="12 * 3", temperature=0)
    assert completion.object == "text_completion" and completion.choices[0].text.strip()
    embedded = client.embeddings.create(
        model="text-embedding-3-small", input=["red apples", "red apples", "tax law"]
    )
    a, b, c = (d.embedding for d in embedded.data)
    assert len(a) == 256 and a == b
    assert abs(sum(x * x for x in a) - 1.0) < 1e-4
    small = client.embeddings.create(model="e", input="hello", dimensions=32, encoding_format="float")
    assert len(small.data[0].embedding) == 32
    assert "gpt-4o" in {m.id for m in client.models.list()}
    azure = httpx.post(
        sandbox.url + "/openai/deployments/emb/embeddings?api-version=2024-02-01",
        json={"input": "x", "dimensions": 8},
    )
    assert azure.status_code == 200 and len(azure.json()["data"][0]["embedding"]) == 8


def test_response_shape_is_exact(sandbox):
    r = httpx.post(
        sandbox.url + "/openai/deployments/dep/chat/completions?api-version=2024-02-01",
        json={"messages": QUESTION, "temperature": 0},
        headers={"api-key": "secret-canary"},
    )
    body = r.json()
    assert r.status_code == 200
    assert set(body) >= {"id", "object", "created", "model", "choices", "usage"}
    assert body["model"] == "dep"
    assert set(body["choices"][0]) >= {"index", "message", "finish_reason"}
    assert set(body["usage"]) == {"prompt_tokens", "completion_tokens", "total_tokens"}
    long = httpx.post(
        sandbox.url + "/v1/chat/completions",
        json={"model": "m", "messages": [{"role": "user", "content": "word " * 300}]},
    ).json()
    assert long["usage"]["prompt_tokens"] > 300  # scales with the prompt
    cut = httpx.post(
        sandbox.url + "/chat/completions",
        json={
            "model": "m",
            "messages": [{"role": "user", "content": "Tell me about lighthouses"}],
            "max_tokens": 3,
        },
    ).json()
    assert cut["choices"][0]["finish_reason"] == "length"


@pytest.mark.parametrize(
    ("path", "payload", "status", "param"),
    [
        ("/v1/chat/completions", b"{not json", 400, None),
        ("/v1/chat/completions", b"[1, 2]", 400, None),
        ("/v1/chat/completions", json.dumps({"model": "m"}).encode(), 400, "messages"),
        ("/v1/chat/completions", json.dumps({"messages": QUESTION}).encode(), 400, "model"),
        ("/v1/chat/completions", json.dumps({"model": "m", "messages": "hi"}).encode(), 400, "messages"),
        ("/v1/chat/completions", json.dumps({"model": "m", "messages": []}).encode(), 400, "messages"),
        (
            "/v1/chat/completions",
            json.dumps({"model": "m", "messages": [{"content": "x"}]}).encode(),
            400,
            "messages[0].role",
        ),
        (
            "/v1/chat/completions",
            json.dumps({"model": "m", "messages": [{"role": "wizard", "content": "x"}]}).encode(),
            400,
            "messages[0].role",
        ),
        (
            "/v1/chat/completions",
            json.dumps({"model": "m", "messages": QUESTION, "temperature": "hot"}).encode(),
            400,
            "temperature",
        ),
        (
            "/v1/chat/completions",
            json.dumps({"model": "m", "messages": QUESTION, "temperature": 3}).encode(),
            400,
            "temperature",
        ),
        (
            "/v1/chat/completions",
            json.dumps({"model": "m", "messages": QUESTION, "stream": "yes"}).encode(),
            400,
            "stream",
        ),
        ("/v1/completions", json.dumps({"model": "m"}).encode(), 400, "prompt"),
        ("/v1/embeddings", json.dumps({"model": "m", "input": 3}).encode(), 400, "input"),
        ("/v1/nope", b"{}", 404, None),
    ],
)
def test_bad_requests_get_openai_errors(sandbox, path, payload, status, param):
    r = httpx.post(sandbox.url + path, content=payload, headers={"Content-Type": "application/json"})
    assert r.status_code == status
    error = r.json()["error"]
    assert set(error) == {"message", "type", "param", "code"}
    assert error["type"] == "invalid_request_error"
    assert error["param"] == param


def test_wrong_method_is_404(sandbox):
    r = httpx.get(sandbox.url + "/v1/chat/completions")
    assert r.status_code == 404 and r.json()["error"]["code"] == "unknown_url"


def test_stats_counters(fresh_sandbox):
    url = fresh_sandbox.url
    for _ in range(3):
        httpx.post(url + "/v1/chat/completions", json={"model": "m", "messages": QUESTION})
    httpx.post(url + "/v1/chat/completions", content=b"{")
    stats = httpx.get(url + "/stats").json()
    assert stats == {**fresh_sandbox.stats(), "total_requests": stats["total_requests"]}
    assert stats["requests"] == 3
    assert stats["bad_requests"] == 1
    assert stats["in_flight"] == 0 and stats["max_in_flight"] >= 1
    assert stats["total_requests"] == 5
    assert stats["errors_injected_total"] == 0


async def _fire(url: str, bodies: list[dict], concurrency: int = 64) -> list[int]:
    """POST the bodies concurrently on keep-alive connections; statuses in order.

    aiohttp rather than httpx here: httpx's async pool is several times slower per request.
    """
    import aiohttp

    connector = aiohttp.TCPConnector(limit=concurrency)
    async with aiohttp.ClientSession(
        url, connector=connector, timeout=aiohttp.ClientTimeout(total=10)
    ) as session:

        async def one(body: dict) -> int:
            async with session.post("/v1/chat/completions", json=body) as response:
                await response.read()
                return response.status

        return list(await asyncio.gather(*(one(b) for b in bodies)))


def test_fault_rates_are_honoured_and_reproducible():
    bodies = [
        {"model": "m", "messages": [{"role": "user", "content": f"what is {i} plus 1"}]} for i in range(1000)
    ]
    rates = {"rate_429": 0.10, "rate_500": 0.05, "rate_timeout": 0.05}
    runs = []
    for _ in range(2):
        with start_sandbox(seed=7, timeout_hold_s=0.0, **rates) as handle:
            statuses = asyncio.run(_fire(handle.url, bodies))
            stats = handle.stats()
        runs.append(statuses)
        counts = Counter(statuses)
        # Binomial(1000, p): 4 standard deviations at most about 40 / 28 / 28.
        assert abs(counts[429] - 100) <= 40
        assert abs(counts[500] - 50) <= 28
        assert abs(counts[504] - 50) <= 28
        assert counts[200] == stats["requests"]
        assert stats["errors_injected"] == {"429": counts[429], "500": counts[500], "timeout": counts[504]}
    assert runs[0] == runs[1]  # same seed, same faults on the same requests
    with start_sandbox(seed=8, timeout_hold_s=0.0, **rates) as other:
        assert asyncio.run(_fire(other.url, bodies[:200])) != runs[0][:200]


def test_retries_of_the_same_request_can_succeed():
    with start_sandbox(seed=3, rate_429=0.5, rate_500=0.3) as handle:
        body = {"model": "m", "messages": QUESTION}
        seen = []
        for _ in range(40):
            r = httpx.post(handle.url + "/v1/chat/completions", json=body)
            seen.append(r.status_code)
            if r.status_code == 429:
                assert r.headers["Retry-After"] and float(r.headers["retry-after-ms"]) > 0
                assert r.json()["error"]["type"] == "rate_limit_error"
            if r.status_code == 200:
                break
        assert seen[-1] == 200


def test_held_request_times_out_the_client_and_stop_releases_it():
    from openai import APITimeoutError, OpenAI

    with start_sandbox(rate_timeout=1.0, timeout_hold_s=30.0) as handle:
        client = OpenAI(base_url=handle.url + "/v1", api_key="k", max_retries=0, timeout=0.3)
        with pytest.raises(APITimeoutError):
            client.chat.completions.create(model="m", messages=QUESTION)
        assert handle.stats()["errors_injected"]["timeout"] == 1
    # stop() returned promptly although a request was held for 30 s


def test_latency_is_concurrent():
    with start_sandbox(latency_ms=200) as handle:
        bodies = [{"model": "m", "messages": [{"role": "user", "content": f"q{i}"}]} for i in range(64)]
        statuses = asyncio.run(_fire(handle.url, bodies, concurrency=64))
        assert statuses == [200] * 64
        assert handle.stats()["max_in_flight"] >= 32  # they overlapped rather than queued


def test_cli_prints_the_url_first_and_serves():
    env = dict(os.environ, PYTHONUNBUFFERED="1")
    proc = subprocess.Popen(
        [sys.executable, "-m", "llmops_tui.cli", "sandbox", "--port", "0", "--seed", "1"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
    )
    try:
        url = proc.stdout.readline().strip()
        assert url.startswith("http://127.0.0.1:")
        assert httpx.get(url + "/health", timeout=5).json()["status"] == "ok"
    finally:
        proc.terminate()
        proc.wait(timeout=10)
    assert proc.returncode == 0


def test_cli_refuses_a_remote_host():
    proc = subprocess.run(
        [sys.executable, "-m", "llmops_tui.cli", "sandbox", "--host", "0.0.0.0"],
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert proc.returncode == 2
    assert proc.stdout == ""
    assert "loopback" in proc.stderr and "--allow-remote" in proc.stderr


def test_sandbox_package_import_is_light():
    code = (
        "import sys, llmops_tui.sandbox; "
        "bad = [m for m in ('promptflow', 'textual', 'rich') if m in sys.modules]; "
        "print(','.join(bad))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=30)
    assert out.returncode == 0 and out.stdout.strip() == ""
