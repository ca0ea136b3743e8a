"""The sandbox model server: OpenAI and Azure OpenAI chat-completions over real HTTP on loopback.

aiohttp on its own asyncio loop in a background thread. Latency is ``asyncio.sleep`` (never blocks the
loop), so hundreds of requests can be in flight at once. Faults (429, 500, held requests, and answers
that are not completions: see :data:`BAD_ANSWER_KINDS`) are decided per request from a seeded hash of
(seed, request content, attempt number for that content): the same run reproduces the same faults, and
a retry of a failed request gets a fresh draw.

API keys are accepted and ignored; headers are never logged (the access log is off).
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import json
import math
import socket
import struct
import threading
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web

from llmops_tui.sandbox import tasks

MODELS = ("gpt-4o", "gpt-4o-mini", "gpt-35-turbo", "gpt-4", "text-embedding-3-small", "sandbox")
_ROLES = frozenset({"system", "user", "assistant", "tool", "function", "developer"})
_FAULT_KINDS = ("429", "500", "timeout")
# Answers with status 200 that are not a completion, as broken proxies, wrong URLs and odd servers send:
# truncated JSON, an empty body, an HTML page, a JSON object without `choices`, a choice whose content
# is null (and that has no tool calls).
BAD_ANSWER_KINDS = ("invalid_json", "empty", "html", "no_choices", "null_content")


@dataclass
class SandboxConfig:
    """How the sandbox behaves: latency, fault rates, seed."""

    latency_ms: float = 0.0
    jitter_ms: float = 0.0
    rate_429: float = 0.0
    rate_500: float = 0.0
    rate_timeout: float = 0.0
    seed: int = 0
    timeout_hold_s: float = 30.0
    bad_answer_rate: float = 0.0  # share of chat/completion requests answered 200 with a non-completion
    bad_answer_kinds: tuple[str, ...] = BAD_ANSWER_KINDS  # drawn among these (seeded), one per bad answer

    def validate(self) -> None:
        for name in ("rate_429", "rate_500", "rate_timeout", "bad_answer_rate"):
            value = getattr(self, name)
            if not 0.0 <= value <= 1.0:
                raise ValueError(f"{name} must be between 0 and 1, got {value}")
        if self.rate_429 + self.rate_500 + self.rate_timeout + self.bad_answer_rate > 1.0:
            raise ValueError("rate_429 + rate_500 + rate_timeout + bad_answer_rate must not exceed 1")
        self.bad_answer_kinds = tuple(self.bad_answer_kinds)
        unknown = [k for k in self.bad_answer_kinds if k not in BAD_ANSWER_KINDS]
        if unknown or not self.bad_answer_kinds:
            raise ValueError(
                f"bad answer kinds must be among {', '.join(BAD_ANSWER_KINDS)}, got "
                f"{', '.join(unknown) if unknown else 'none'}"
            )
        if self.latency_ms < 0 or self.jitter_ms < 0 or self.timeout_hold_s < 0:
            raise ValueError("latency_ms, jitter_ms and timeout_hold_s must not be negative")


@dataclass
class _Stats:
    requests: int = 0  # chat/completion calls answered successfully
    embeddings: int = 0
    total_requests: int = 0  # every HTTP request received, whatever its fate
    bad_requests: int = 0
    in_flight: int = 0
    max_in_flight: int = 0
    prompt_tokens: int = 0
    completion_tokens: int = 0
    errors_injected: dict[str, int] = field(default_factory=lambda: dict.fromkeys(_FAULT_KINDS, 0))
    bad_answers_injected: dict[str, int] = field(default_factory=lambda: dict.fromkeys(BAD_ANSWER_KINDS, 0))

    def snapshot(self) -> dict[str, Any]:
        errors = dict(self.errors_injected)
        bad = dict(self.bad_answers_injected)
        return {
            "requests": self.requests,
            "embeddings": self.embeddings,
            "total_requests": self.total_requests,
            "bad_requests": self.bad_requests,
            "in_flight": self.in_flight,
            "max_in_flight": self.max_in_flight,
            "prompt_tokens": self.prompt_tokens,
            "completion_tokens": self.completion_tokens,
            "errors_injected": errors,
            "bad_answers_injected": bad,
            "errors_injected_total": sum(errors.values()) + sum(bad.values()),
        }


class BadRequest(Exception):
    """A request the OpenAI API would refuse; becomes an OpenAI-shaped error body."""

    def __init__(self, message: str, *, param: str | None = None, code: str | None = None, status: int = 400):
        super().__init__(message)
        self.message, self.param, self.code, self.status = message, param, code, status


def _error_response(
    status: int, message: str, *, param: str | None = None, code: str | None = None, **kw
) -> web.Response:
    kind = "invalid_request_error" if status < 500 else "server_error"
    if status == 429:
        kind = "rate_limit_error" if code != "insufficient_quota" else "insufficient_quota"
    body = {"error": {"message": message, "type": kind, "param": param, "code": code}}
    return web.json_response(body, status=status, **kw)


def _digest(*parts: Any) -> bytes:
    return hashlib.sha256(json.dumps(parts, sort_keys=True, default=str).encode("utf-8")).digest()


# --------------------------------------------------------------------------------------------------
# Validation
# --------------------------------------------------------------------------------------------------


async def _read_json(request: web.Request) -> dict[str, Any]:
    raw = await request.read()
    try:
        body = json.loads(raw.decode("utf-8")) if raw else None
    except (UnicodeDecodeError, json.JSONDecodeError):
        raise BadRequest(
            "We could not parse the JSON body of your request. (HINT: This likely means you aren't using your "
            "HTTP library correctly. The OpenAI API expects a JSON payload.)"
        ) from None
    if not isinstance(body, dict):
        raise BadRequest("The request body must be a JSON object.", code="invalid_type")
    return body


def _check_range(body: dict[str, Any], name: str, low: float, high: float, *, integer: bool = False) -> None:
    """OpenAI's 400 for a parameter of the wrong type or out of range; a missing one is fine."""
    value = body.get(name)
    if value is None:
        return
    wanted, kinds = ("an integer", int) if integer else ("a decimal", int | float)
    if isinstance(value, bool) or not isinstance(value, kinds):
        raise BadRequest(
            f"Invalid type for '{name}': expected {wanted}, but got {type(value).__name__}.",
            param=name,
            code="invalid_type",
        )
    if not low <= value <= high:
        raise BadRequest(
            f"Invalid '{name}': {value} is not between {low} and {high}.", param=name, code="invalid_value"
        )


def _check_common(body: dict[str, Any], model: str | None) -> str:
    if model is None:
        model = body.get("model")
        if model is None:
            raise BadRequest(
                "Missing required parameter: 'model'.", param="model", code="missing_required_parameter"
            )
        if not isinstance(model, str) or not model:
            raise BadRequest(
                "Invalid type for 'model': expected a string.", param="model", code="invalid_type"
            )
    _check_range(body, "temperature", 0.0, 2.0)
    _check_range(body, "top_p", 0.0, 1.0)
    _check_range(body, "presence_penalty", -2.0, 2.0)
    _check_range(body, "frequency_penalty", -2.0, 2.0)
    _check_range(body, "max_tokens", 1, 1_000_000, integer=True)
    _check_range(body, "max_completion_tokens", 1, 1_000_000, integer=True)
    _check_range(body, "n", 1, 128, integer=True)
    seed = body.get("seed")
    if seed is not None and (isinstance(seed, bool) or not isinstance(seed, int)):
        raise BadRequest("Invalid type for 'seed': expected an integer.", param="seed", code="invalid_type")
    if "stream" in body and body["stream"] is not None and not isinstance(body["stream"], bool):
        raise BadRequest(
            "Invalid type for 'stream': expected a boolean.", param="stream", code="invalid_type"
        )
    options = body.get("stream_options")
    if options is not None and not isinstance(options, dict):
        raise BadRequest(
            "Invalid type for 'stream_options': expected an object.",
            param="stream_options",
            code="invalid_type",
        )
    return model


def _check_messages(body: dict[str, Any]) -> list[dict[str, Any]]:
    if "messages" not in body:
        raise BadRequest(
            "Missing required parameter: 'messages'.", param="messages", code="missing_required_parameter"
        )
    messages = body["messages"]
    if not isinstance(messages, list):
        raise BadRequest(
            "Invalid type for 'messages': expected an array of objects.",
            param="messages",
            code="invalid_type",
        )
    if not messages:
        raise BadRequest(
            "Invalid 'messages': empty array. Expected an array with minimum length 1.",
            param="messages",
            code="empty_array",
        )
    for i, message in enumerate(messages):
        if not isinstance(message, dict):
            raise BadRequest(
                f"Invalid type for 'messages[{i}]': expected an object.",
                param=f"messages[{i}]",
                code="invalid_type",
            )
        role = message.get("role")
        if role is None:
            raise BadRequest(
                f"Missing required parameter: 'messages[{i}].role'.",
                param=f"messages[{i}].role",
                code="missing_required_parameter",
            )
        if role not in _ROLES:
            raise BadRequest(
                f"Invalid value: '{role}'. Supported values are: {', '.join(sorted(_ROLES))}.",
                param=f"messages[{i}].role",
                code="invalid_value",
            )
        content = message.get("content")
        if content is not None and not isinstance(content, str | list):
            raise BadRequest(
                f"Invalid type for 'messages[{i}].content': expected one of a string or array of objects.",
                param=f"messages[{i}].content",
                code="invalid_type",
            )
        if content is None and role in ("system", "user", "developer"):
            raise BadRequest(
                f"Missing required parameter: 'messages[{i}].content'.",
                param=f"messages[{i}].content",
                code="missing_required_parameter",
            )
    return messages


# --------------------------------------------------------------------------------------------------
# The server
# --------------------------------------------------------------------------------------------------


class SandboxServer:
    """The aiohttp application and its state; runs on one event loop."""

    def __init__(self, config: SandboxConfig):
        config.validate()
        self.config = config
        self.stats = _Stats()
        self._attempts: dict[bytes, int] = {}
        self._stopping: asyncio.Event | None = None
        self.app = web.Application(middlewares=[self._middleware], client_max_size=32 * 1024 * 1024)
        r = self.app.router
        for path in ("/v1/chat/completions", "/chat/completions"):
            r.add_post(path, self._chat)
        r.add_post("/openai/deployments/{deployment}/chat/completions", self._chat)
        for path in ("/v1/completions", "/completions"):
            r.add_post(path, self._completions)
        r.add_post("/openai/deployments/{deployment}/completions", self._completions)
        for path in ("/v1/embeddings", "/embeddings"):
            r.add_post(path, self._embeddings)
        r.add_post("/openai/deployments/{deployment}/embeddings", self._embeddings)
        r.add_get("/v1/models", self._models)
        r.add_get("/models", self._models)
        r.add_get("/health", self._health)
        r.add_get("/stats", self._stats)

    # -- plumbing -----------------------------------------------------------------------------------

    @web.middleware
    async def _middleware(
        self, request: web.Request, handler: Callable[[web.Request], Awaitable[web.StreamResponse]]
    ):
        self.stats.total_requests += 1
        # asyncio already sets TCP_NODELAY on TCP transports; set it again in case a loop does not,
        # since keep-alive clients otherwise pay the Nagle/delayed-ACK penalty (~40 ms) per call.
        sock = request.transport.get_extra_info("socket") if request.transport else None
        if sock is not None and sock.family in (socket.AF_INET, socket.AF_INET6):
            try:
                sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            except OSError:
                pass
        try:
            return await handler(request)
        except BadRequest as exc:
            self.stats.bad_requests += 1
            return _error_response(exc.status, exc.message, param=exc.param, code=exc.code)
        except (web.HTTPNotFound, web.HTTPMethodNotAllowed):
            self.stats.bad_requests += 1
            return _error_response(
                404,
                f"Invalid URL ({request.method} {request.path})",
                code="unknown_url",
            )

    def _enter(self) -> None:
        self.stats.in_flight += 1
        self.stats.max_in_flight = max(self.stats.max_in_flight, self.stats.in_flight)

    def _leave(self) -> None:
        self.stats.in_flight -= 1

    async def _latency(self, key: bytes) -> None:
        cfg = self.config
        delay = cfg.latency_ms
        if cfg.jitter_ms:
            delay += cfg.jitter_ms * tasks.unit("jitter", cfg.seed, key.hex(), self._attempts.get(key, 0))
        if delay > 0:
            await asyncio.sleep(delay / 1000.0)

    def _fault(self, key: bytes, bad_answers: bool = True) -> str | None:
        """Decide a fault for this attempt at this content (deterministic for the seed). Bad answers
        (:data:`BAD_ANSWER_KINDS`) only where ``bad_answers``: non-streaming chat and completion requests."""
        cfg = self.config
        attempt = self._attempts.get(key, 0) + 1
        if len(self._attempts) > 1_000_000:
            self._attempts.clear()
        self._attempts[key] = attempt
        if not (cfg.rate_429 or cfg.rate_500 or cfg.rate_timeout or cfg.bad_answer_rate):
            return None
        u = tasks.unit("fault", cfg.seed, key.hex(), attempt)
        if u < cfg.rate_429:
            return "429"
        if u < cfg.rate_429 + cfg.rate_500:
            return "500"
        if u < cfg.rate_429 + cfg.rate_500 + cfg.rate_timeout:
            return "timeout"
        if bad_answers and u < cfg.rate_429 + cfg.rate_500 + cfg.rate_timeout + cfg.bad_answer_rate:
            kinds = cfg.bad_answer_kinds
            return kinds[int(tasks.unit("bad", cfg.seed, key.hex(), attempt) * len(kinds)) % len(kinds)]
        return None

    async def _injected(self, kind: str) -> web.Response:
        self.stats.errors_injected[kind] += 1
        if kind == "429":
            return _error_response(
                429,
                "Rate limit reached for requests (sandbox fault injection). Please retry after 1 second.",
                code="rate_limit_exceeded",
                headers={"Retry-After": "1", "retry-after-ms": "1000", "x-ratelimit-remaining-requests": "0"},
            )
        if kind == "500":
            return _error_response(
                500, "The server had an error while processing your request (sandbox fault injection)."
            )
        # Hold the request past the client's timeout, then give up with a 504; stop() releases it early.
        assert self._stopping is not None
        try:
            await asyncio.wait_for(self._stopping.wait(), timeout=self.config.timeout_hold_s)
        except TimeoutError:
            pass
        return _error_response(504, "The request timed out (sandbox fault injection).", code="timeout")

    def _bad_answer(self, kind: str, chat: bool, key: bytes, model: str) -> web.Response:
        """A 200 that is not a completion; ``kind`` is one of :data:`BAD_ANSWER_KINDS`."""
        self.stats.bad_answers_injected[kind] += 1
        head = {
            "id": self._id("chatcmpl" if chat else "cmpl", key),
            "object": "chat.completion" if chat else "text_completion",
            "created": int(time.time()),
            "model": model,
        }
        usage = {"prompt_tokens": 1, "completion_tokens": 0, "total_tokens": 1}
        if kind == "empty":
            return web.Response(status=200, body=b"", content_type="application/json")
        if kind == "html":
            page = (
                "<!DOCTYPE html>\n<html><head><title>Sign in - Corporate Proxy</title></head>"
                "<body><h1>Sign in</h1><p>sandbox fault injection: an HTML page, not an API answer</p>"
                "</body></html>\n"
            )
            return web.Response(status=200, text=page, content_type="text/html")
        if kind == "no_choices":
            return web.json_response(dict(head, usage=usage))
        if kind == "null_content":
            choice: dict[str, Any] = (
                {
                    "index": 0,
                    "message": {"role": "assistant", "content": None, "refusal": None},
                    "logprobs": None,
                    "finish_reason": "stop",
                }
                if chat
                else {"index": 0, "text": None, "logprobs": None, "finish_reason": "stop"}
            )
            return web.json_response(dict(head, choices=[choice], usage=usage))
        # invalid_json: a completion cut off in the middle, as a proxy that drops the connection sends
        whole = json.dumps(dict(head, choices=[], usage=usage))
        return web.Response(status=200, text=whole[: len(whole) // 2], content_type="application/json")

    def _request_key(self, body: dict[str, Any], model: str, kind: str) -> bytes:
        content = body.get("messages", body.get("prompt", body.get("input")))
        return _digest(kind, model, content, body.get("temperature"), body.get("n"), body.get("seed"))

    def _answer(self, messages: list[dict[str, Any]], model: str, body: dict[str, Any], index: int) -> str:
        temperature = body.get("temperature")
        temperature = 1.0 if temperature is None else float(temperature)  # OpenAI's default
        seed = self.config.seed
        if body.get("seed") is not None:
            seed = seed * 1_000_003 + int(body["seed"])
        return tasks.answer(messages, model, temperature, seed + index)

    @staticmethod
    def _truncate(text: str, body: dict[str, Any]) -> tuple[str, str]:
        limit = body.get("max_completion_tokens") or body.get("max_tokens")
        if limit and tasks.count_tokens(text) > limit:
            words = text.split()
            return " ".join(words[: max(1, (limit * 3) // 4)]), "length"
        return text, "stop"

    @staticmethod
    def _id(prefix: str, key: bytes) -> str:
        return f"{prefix}-{key.hex()[:29]}"

    # -- endpoints ---------------------------------------------------------------------------------

    async def _health(self, request: web.Request) -> web.Response:
        return web.json_response({"status": "ok"})

    async def _stats(self, request: web.Request) -> web.Response:
        return web.json_response(self.stats.snapshot())

    async def _models(self, request: web.Request) -> web.Response:
        data = [{"id": m, "object": "model", "created": 1700000000, "owned_by": "sandbox"} for m in MODELS]
        return web.json_response({"object": "list", "data": data})

    async def _chat(self, request: web.Request) -> web.StreamResponse:
        body = await _read_json(request)
        model = _check_common(body, request.match_info.get("deployment"))
        messages = _check_messages(body)
        return await self._serve(request, body, model, "chat", messages)

    async def _completions(self, request: web.Request) -> web.StreamResponse:
        body = await _read_json(request)
        model = _check_common(body, request.match_info.get("deployment"))
        if "prompt" not in body:
            raise BadRequest(
                "Missing required parameter: 'prompt'.", param="prompt", code="missing_required_parameter"
            )
        prompt = body["prompt"]
        if isinstance(prompt, list) and all(isinstance(p, str) for p in prompt):
            prompt = "\n".join(prompt)
        if not isinstance(prompt, str):
            raise BadRequest(
                "Invalid type for 'prompt': expected a string or an array of strings.",
                param="prompt",
                code="invalid_type",
            )
        return await self._serve(request, body, model, "completion", [{"role": "user", "content": prompt}])

    async def _serve(
        self,
        request: web.Request,
        body: dict[str, Any],
        model: str,
        kind: str,
        messages: list[dict[str, Any]],
    ) -> web.StreamResponse:
        key = self._request_key(body, model, kind)
        self._enter()
        try:
            fault = self._fault(key, bad_answers=not body.get("stream"))
            if fault == "429":
                return await self._injected(fault)
            await self._latency(key)
            if fault in BAD_ANSWER_KINDS:
                return self._bad_answer(fault, kind == "chat", key, model)
            if fault is not None:
                return await self._injected(fault)
            n = body.get("n") or 1
            choices = [self._truncate(self._answer(messages, model, body, i), body) for i in range(n)]
            prompt_tokens = (
                sum(tasks.count_tokens(tasks._content_to_text(m.get("content"))) + 4 for m in messages) + 3
            )
            completion_tokens = sum(tasks.count_tokens(text) for text, _ in choices)
            usage = {
                "prompt_tokens": prompt_tokens,
                "completion_tokens": completion_tokens,
                "total_tokens": prompt_tokens + completion_tokens,
            }
            self.stats.prompt_tokens += prompt_tokens
            self.stats.completion_tokens += completion_tokens
            created = int(time.time())
            if body.get("stream"):
                include_usage = bool((body.get("stream_options") or {}).get("include_usage"))
                response = await self._stream(
                    request, kind, key, model, created, choices, usage if include_usage else None
                )
            elif kind == "chat":
                response = web.json_response(
                    {
                        "id": self._id("chatcmpl", key),
                        "object": "chat.completion",
                        "created": created,
                        "model": model,
                        "system_fingerprint": "fp_sandbox",
                        "choices": [
                            {
                                "index": i,
                                "message": {"role": "assistant", "content": text, "refusal": None},
                                "logprobs": None,
                                "finish_reason": reason,
                            }
                            for i, (text, reason) in enumerate(choices)
                        ],
                        "usage": usage,
                    }
                )
            else:
                response = web.json_response(
                    {
                        "id": self._id("cmpl", key),
                        "object": "text_completion",
                        "created": created,
                        "model": model,
                        "choices": [
                            {"index": i, "text": text, "logprobs": None, "finish_reason": reason}
                            for i, (text, reason) in enumerate(choices)
                        ],
                        "usage": usage,
                    }
                )
            self.stats.requests += 1
            return response
        finally:
            self._leave()

    async def _stream(
        self,
        request: web.Request,
        kind: str,
        key: bytes,
        model: str,
        created: int,
        choices: list[tuple[str, str]],
        usage: dict[str, int] | None,
    ) -> web.StreamResponse:
        response = web.StreamResponse(
            status=200,
            headers={"Content-Type": "text/event-stream; charset=utf-8", "Cache-Control": "no-cache"},
        )
        await response.prepare(request)
        chat = kind == "chat"
        base = {
            "id": self._id("chatcmpl" if chat else "cmpl", key),
            "object": "chat.completion.chunk" if chat else "text_completion",
            "created": created,
            "model": model,
        }
        if chat:
            base["system_fingerprint"] = "fp_sandbox"

        async def send(chunk_choices: list[dict[str, Any]], extra: dict[str, Any] | None = None) -> None:
            payload: dict[str, Any] = dict(base, choices=chunk_choices)
            if usage is not None:
                payload["usage"] = None
            if extra:
                payload.update(extra)
            await response.write(b"data: " + json.dumps(payload).encode("utf-8") + b"\n\n")

        for i, (text, reason) in enumerate(choices):
            pieces = [w + " " for w in text.split(" ")]
            if pieces:
                pieces[-1] = pieces[-1][:-1]
            if chat:
                await send(
                    [
                        {
                            "index": i,
                            "delta": {"role": "assistant", "content": ""},
                            "logprobs": None,
                            "finish_reason": None,
                        }
                    ]
                )
                for piece in pieces:
                    await send(
                        [{"index": i, "delta": {"content": piece}, "logprobs": None, "finish_reason": None}]
                    )
                await send([{"index": i, "delta": {}, "logprobs": None, "finish_reason": reason}])
            else:
                for piece in pieces:
                    await send([{"index": i, "text": piece, "logprobs": None, "finish_reason": None}])
                await send([{"index": i, "text": "", "logprobs": None, "finish_reason": reason}])
        if usage is not None:
            await send([], {"usage": usage})
        await response.write(b"data: [DONE]\n\n")
        await response.write_eof()
        return response

    async def _embeddings(self, request: web.Request) -> web.Response:
        body = await _read_json(request)
        model = _check_common(body, request.match_info.get("deployment"))
        if "input" not in body:
            raise BadRequest(
                "Missing required parameter: 'input'.", param="input", code="missing_required_parameter"
            )
        raw = body["input"]
        if isinstance(raw, str):
            inputs: list[Any] = [raw]
        elif (
            isinstance(raw, list) and raw and all(isinstance(x, int) and not isinstance(x, bool) for x in raw)
        ):
            inputs = [raw]  # one input given as token ids
        elif isinstance(raw, list) and raw and all(isinstance(x, str | list) for x in raw):
            inputs = raw
        else:
            raise BadRequest(
                "Invalid type for 'input': expected a string or an array of strings.",
                param="input",
                code="invalid_type",
            )
        dims = body.get("dimensions", 256)
        if isinstance(dims, bool) or not isinstance(dims, int) or not 1 <= dims <= 8192:
            raise BadRequest(
                "Invalid 'dimensions': expected an integer between 1 and 8192.",
                param="dimensions",
                code="invalid_value",
            )
        encoding = body.get("encoding_format") or "float"
        if encoding not in ("float", "base64"):
            raise BadRequest(
                "Invalid 'encoding_format': expected 'float' or 'base64'.",
                param="encoding_format",
                code="invalid_value",
            )
        key = self._request_key(body, model, "embedding")
        self._enter()
        try:
            fault = self._fault(key, bad_answers=False)
            if fault == "429":
                return await self._injected(fault)
            await self._latency(key)
            if fault is not None:
                return await self._injected(fault)
            data, tokens = [], 0
            for i, item in enumerate(inputs):
                text = item if isinstance(item, str) else " ".join(str(t) for t in item)
                tokens += tasks.count_tokens(text)
                vector = embed(text, dims)
                value: Any = vector
                if encoding == "base64":
                    value = base64.b64encode(struct.pack(f"<{dims}f", *vector)).decode("ascii")
                data.append({"object": "embedding", "index": i, "embedding": value})
            self.stats.embeddings += 1
            return web.json_response(
                {
                    "object": "list",
                    "data": data,
                    "model": model,
                    "usage": {"prompt_tokens": tokens, "total_tokens": tokens},
                }
            )
        finally:
            self._leave()


def embed(text: str, dims: int = 256) -> list[float]:
    """A deterministic unit vector: hashed bag of words, so texts sharing words point the same way."""
    vector = [0.0] * dims
    words = tasks._WORD_RE.findall(text.lower()) or [text]
    for word in words:
        digest = hashlib.blake2b(word.encode("utf-8"), digest_size=16).digest()
        for k in range(4):
            h = int.from_bytes(digest[4 * k : 4 * k + 4], "little")
            vector[h % dims] += 1.0 if (h >> 31) & 1 else -1.0
    norm = math.sqrt(sum(v * v for v in vector))
    if norm == 0:  # every contribution cancelled: fall back to a hash-derived direction
        digest = hashlib.sha256(text.encode("utf-8")).digest()
        vector = [1.0 if (digest[i % 32] >> (i % 8)) & 1 else -1.0 for i in range(dims)]
        norm = math.sqrt(dims)
    return [v / norm for v in vector]


# --------------------------------------------------------------------------------------------------
# Running it in a background thread
# --------------------------------------------------------------------------------------------------


class SandboxHandle:
    """A running sandbox: ``.url``, ``.port``, ``.stats()``, ``.stop()``; a context manager."""

    def __init__(self, host: str, config: SandboxConfig):
        self.host = host
        self.config = config
        self.server = SandboxServer(config)
        self.port = 0
        self._loop: asyncio.AbstractEventLoop | None = None
        self._runner: web.AppRunner | None = None
        self._thread: threading.Thread | None = None
        self._ready = threading.Event()
        self._error: BaseException | None = None
        self._stop_lock = threading.Lock()
        self._stopped = False

    @property
    def url(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{host}:{self.port}"

    def _start(self, port: int) -> None:
        family = socket.AF_INET6 if ":" in self.host else socket.AF_INET
        sock = socket.socket(family, socket.SOCK_STREAM)
        try:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            sock.bind((self.host, port))
            sock.listen(1024)
            sock.setblocking(False)
        except OSError:
            sock.close()
            raise
        self.port = sock.getsockname()[1]
        self._thread = threading.Thread(
            target=self._run, args=(sock,), name=f"sandbox-{self.port}", daemon=True
        )
        self._thread.start()
        self._ready.wait()
        if self._error is not None:
            raise RuntimeError(f"the sandbox could not start: {self._error}") from self._error

    def _run(self, sock: socket.socket) -> None:
        loop = asyncio.new_event_loop()
        self._loop = loop
        asyncio.set_event_loop(loop)
        try:
            loop.run_until_complete(self._serve(sock))
        except BaseException as exc:  # surfaced to start_sandbox
            self._error = exc
            self._ready.set()
            sock.close()
            loop.close()
            return
        self._ready.set()
        try:
            loop.run_forever()
        finally:
            loop.run_until_complete(self._cleanup())
            loop.run_until_complete(loop.shutdown_asyncgens())
            loop.close()
            sock.close()

    async def _serve(self, sock: socket.socket) -> None:
        self.server._stopping = asyncio.Event()
        runner = web.AppRunner(self.server.app, access_log=None, handle_signals=False, shutdown_timeout=1.0)
        await runner.setup()
        site = web.SockSite(runner, sock, backlog=1024)
        await site.start()
        self._runner = runner

    async def _cleanup(self) -> None:
        if self.server._stopping is not None:
            self.server._stopping.set()
        if self._runner is not None:
            await self._runner.cleanup()
        # Handlers still sleeping out their latency for clients that went away: end them before the loop closes.
        pending = [t for t in asyncio.all_tasks() if t is not asyncio.current_task()]
        for task in pending:
            task.cancel()
        if pending:
            await asyncio.gather(*pending, return_exceptions=True)

    def stats(self) -> dict[str, Any]:
        """The same counters as ``GET /stats``."""
        return self.server.stats.snapshot()

    def stop(self) -> None:
        """Stop serving, join the thread and free the port; safe to call more than once."""
        with self._stop_lock:
            if self._stopped:
                return
            self._stopped = True
        loop, thread = self._loop, self._thread
        if loop is not None and thread is not None and thread.is_alive():
            loop.call_soon_threadsafe(loop.stop)
            thread.join(timeout=30)

    def __enter__(self) -> SandboxHandle:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    def __repr__(self) -> str:
        return f"SandboxHandle(url={self.url!r}, stopped={self._stopped})"


def start_sandbox(
    host: str = "127.0.0.1",
    port: int = 0,
    latency_ms: float = 0,
    jitter_ms: float = 0,
    rate_429: float = 0.0,
    rate_500: float = 0.0,
    rate_timeout: float = 0.0,
    seed: int = 0,
    timeout_hold_s: float = 30.0,
    bad_answer_rate: float = 0.0,
    bad_answer_kinds: tuple[str, ...] | list[str] = BAD_ANSWER_KINDS,
) -> SandboxHandle:
    """Start the sandbox in a background thread; returns once it accepts connections (port 0: any free port)."""
    config = SandboxConfig(
        latency_ms=latency_ms,
        jitter_ms=jitter_ms,
        rate_429=rate_429,
        rate_500=rate_500,
        rate_timeout=rate_timeout,
        seed=seed,
        timeout_hold_s=timeout_hold_s,
        bad_answer_rate=bad_answer_rate,
        bad_answer_kinds=tuple(bad_answer_kinds),
    )
    handle = SandboxHandle(host, config)
    handle._start(port)
    return handle
