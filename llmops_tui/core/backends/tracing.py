"""A line's trace, neutral of the backend: a flat list of spans in call order, each with its depth in
the call tree, so the store keeps it as plain JSON and the line view draws it as an indented tree.

A span is a dict::

    {"name": "classify_ticket", "kind": "entry" | "function" | "llm" | "node",
     "start_ms": 0.0,          # from the start of the line's first span
     "duration_ms": 212.4,
     "depth": 0,               # 0 for the entry (flex) or a node (DAG); children follow their parent
     "inputs": "ticket='I was charged twice'",   # summarised, at most SUMMARY_CHARS, secrets redacted
     "output": "'billing'",
     "error": None | "ValueError: ..."}

Kept small on purpose (a sweep stores one per line): at most :data:`MAX_SPANS` spans per line, every
text summarised. Nothing here imports Prompt flow; the backends turn what they observe into spans.
"""

from __future__ import annotations

import json
from datetime import datetime
from typing import Any

from llmops_tui.core.redact import redact

MAX_SPANS = 100
SUMMARY_CHARS = 160
KINDS = ("entry", "function", "llm", "node")


def _clip(text: str, limit: int) -> str:
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit - 1] + "…"


def summarise(value: Any, secrets: list[str] | None = None, limit: int = SUMMARY_CHARS) -> str | None:
    """A short one-line text for a span's inputs or output (None for nothing)."""
    if value is None:
        return None
    if isinstance(value, dict) and not value:
        return None
    if isinstance(value, dict):
        parts = [f"{k}={_one(v)}" for k, v in value.items()]
        text = ", ".join(parts)
    else:
        text = _one(value)
    # redact before the final cut, so a secret is never left half-shown at the edge
    return _clip(redact(text[: limit * 8], list(secrets or [])), limit)


def _one(value: Any) -> str:
    if isinstance(value, Text):
        return str(value)
    if isinstance(value, str):
        return repr(value)
    try:
        return json.dumps(value, ensure_ascii=False, default=str)
    except (TypeError, ValueError):
        return str(value)


def _seconds(value: Any) -> float | None:
    if isinstance(value, int | float):
        return float(value)
    if isinstance(value, datetime):
        return value.timestamp()
    if isinstance(value, str):
        try:
            return datetime.fromisoformat(value).timestamp()
        except ValueError:
            return None
    return None


def span(
    name: str,
    kind: str,
    start_s: float,
    end_s: float,
    t0: float,
    depth: int,
    *,
    inputs: str | None = None,
    output: str | None = None,
    error: str | None = None,
) -> dict[str, Any]:
    """One span; ``start_s``/``end_s``/``t0`` in seconds on one clock."""
    return {
        "name": name,
        "kind": kind if kind in KINDS else "function",
        "start_ms": round(max(0.0, start_s - t0) * 1000, 1),
        "duration_ms": round(max(0.0, end_s - start_s) * 1000, 1),
        "depth": depth,
        "inputs": inputs,
        "output": output,
        "error": error,
    }


def _llm_inputs(inputs: Any) -> Any:
    """A model call's inputs as a person reads them: the model and the last message."""
    if not isinstance(inputs, dict):
        return inputs
    messages = inputs.get("messages")
    if isinstance(messages, list) and messages and isinstance(messages[-1], dict):
        last = messages[-1]
        out = {"model": inputs.get("model"), "messages": len(messages)}
        out[str(last.get("role", "message"))] = last.get("content")
        return {k: v for k, v in out.items() if v is not None}
    if "prompt" in inputs:
        return {"model": inputs.get("model"), "prompt": inputs.get("prompt")}
    return inputs


def _llm_output(output: Any) -> Any:
    """A completion as its text (and token usage), not the whole response object."""
    if not isinstance(output, dict):
        return output
    choices = output.get("choices")
    if isinstance(choices, list) and choices and isinstance(choices[0], dict):
        first = choices[0]
        message = first.get("message")
        text = message.get("content") if isinstance(message, dict) else first.get("text")
        usage = output.get("usage")
        tokens = usage.get("total_tokens") if isinstance(usage, dict) else None
        return Text(f"{_one(text)} ({tokens} tokens)") if tokens else text
    return output


class Text(str):
    """Already a summary: shown as is, not quoted."""


def from_promptflow(
    traces: list[Any], t0: float, secrets: list[str], depth: int = 0, out: list[dict[str, Any]] | None = None
) -> list[dict[str, Any]]:
    """Spans from Prompt flow's own trace records (``Tracer.end_tracing()``: dicts with name, type,
    inputs, output, start_time, end_time, error and children), depth first."""
    out = [] if out is None else out
    for trace in traces or []:
        if len(out) >= MAX_SPANS or not isinstance(trace, dict):
            break
        kind_raw = str(trace.get("type") or "").lower()
        kind = "llm" if kind_raw in ("llm", "embedding", "tracetype.llm") else "function"
        start = _seconds(trace.get("start_time")) or t0
        end = _seconds(trace.get("end_time")) or start
        inputs, output = trace.get("inputs"), trace.get("output")
        if kind == "llm":
            inputs, output = _llm_inputs(inputs), _llm_output(output)
        error = trace.get("error")
        if isinstance(error, dict):
            error = f"{error.get('type') or 'Error'}: {error.get('message') or ''}".strip()
        out.append(
            span(
                _short_name(str(trace.get("name") or "?"), kind),
                kind,
                start,
                end,
                t0,
                depth,
                inputs=summarise(inputs, secrets),
                output=summarise(output, secrets),
                error=_clip(redact(str(error), secrets), 300) if error else None,
            )
        )
        from_promptflow(trace.get("children") or [], t0, secrets, depth + 1, out)
    return out


def _short_name(name: str, kind: str) -> str:
    """``openai.resources.chat.completions.Completions.create`` reads better as ``chat.completions.create``."""
    if kind == "llm" and name.startswith("openai.resources."):
        parts = name.removeprefix("openai.resources.").split(".")
        keep = [p for p in parts if p and not p[0].isupper()]
        return ".".join(dict.fromkeys(keep)) or name
    return name
