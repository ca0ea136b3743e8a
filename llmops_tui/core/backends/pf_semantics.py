"""Prompt flow's DAG semantics, without Prompt flow: references, input types, activate conditions and
bypassed nodes, Jinja rendering, role-block parsing of chat prompts, and the LLM tools' request
parameters (``promptflow-tools`` 1.6.1, ``aoai`` and ``openai`` providers, chat and completion APIs).

Written from Prompt flow 1.18.5's documented and measured behaviour (see PROMPTFLOW_NOTES.md) so that a
flow run here sends byte-for-byte the same requests and gets the same outputs as under Prompt flow's own
executor. This module imports nothing from llmops-tui, Prompt flow or Agent Framework (only the standard
library, ``jinja2`` and, when a call is made, ``openai``): ``llmops migrate`` copies it verbatim next to
the migrated flows, which then run without llmops-tui installed.
"""

from __future__ import annotations

import ast
import functools
import inspect
import json
import re
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

VALID_ROLES = ["system", "user", "assistant", "function", "tool"]
_REF = re.compile(r"^\$\{([^.}]+)\.([^}]*)\}$")
_ROLE_LINE = r"(?i)^\s*#?\s*(" + "|".join(VALID_ROLES) + r")\s*:\s*\n"


class NodeError(Exception):
    """A node failed; the message is what a person reads."""


# ----------------------------------------------------------------------------------------- references


@dataclass(frozen=True)
class Ref:
    """``${inputs.x}`` (source "inputs") or ``${node.output[.field...]}`` (source the node's name)."""

    source: str
    path: tuple[str, ...]

    @property
    def is_node(self) -> bool:
        return self.source != "inputs"


def parse_ref(value: Any) -> Ref | None:
    if not isinstance(value, str):
        return None
    return _parse_ref(value)


@functools.lru_cache(maxsize=4096)  # a flow's few reference strings, parsed for every node of every line
def _parse_ref(value: str) -> Ref | None:
    m = _REF.match(value.strip())
    if not m:
        return None
    source, rest = m.group(1), m.group(2)
    parts = tuple(p for p in rest.split(".") if p)
    if source == "inputs":
        return Ref("inputs", parts)
    if not parts or parts[0] != "output":
        return None
    return Ref(source, parts[1:])


def _dig(value: Any, path: tuple[str, ...]) -> Any:
    for key in path:
        if isinstance(value, dict):
            value = value[key]
        else:
            value = getattr(value, key)
    return value


def resolve(value: Any, inputs: dict[str, Any], outputs: dict[str, Any]) -> Any:
    """A node input's value: a reference resolved against flow inputs and node outputs, else the literal."""
    ref = parse_ref(value)
    if ref is None:
        return value
    if ref.source == "inputs":
        return _dig(inputs, ref.path)
    return _dig(outputs[ref.source], ref.path)


# ----------------------------------------------------------------------------------------- value types


def parse_value(type_name: str, v: Any) -> Any:
    """Prompt flow's ``ValueType.parse`` for a flow input's declared type."""
    t = str(type_name or "string").lower()
    if t == "int":
        return int(v)
    if t == "double":
        return float(v)
    if t == "bool":
        if isinstance(v, bool):
            return v
        if isinstance(v, str) and v.lower() in {"true", "false"}:
            return v.lower() == "true"
        raise ValueError(f"Invalid boolean value {v!r}")
    if t == "string":
        return str(v)
    if t == "list":
        if isinstance(v, str):
            v = json.loads(v)
        if not isinstance(v, list):
            raise ValueError(f"Invalid list value {v!r}")
        return v
    if t == "object":
        if isinstance(v, str):
            try:
                return json.loads(v)
            except json.JSONDecodeError:
                pass
        return v
    return v


def flow_inputs(definitions: dict[str, Any], given: dict[str, Any]) -> dict[str, Any]:
    """The line's inputs as Prompt flow's executor sees them: defaults applied for missing inputs, every
    declared input present and of its declared type; inputs not declared are passed on as given."""
    out = dict(given)
    for name, spec in (definitions or {}).items():
        spec = spec or {}
        if name not in out:
            if "default" not in spec:
                raise NodeError(f"The value for flow input '{name}' is not provided in input data.")
            out[name] = spec["default"]
        try:
            out[name] = parse_value(spec.get("type", "string"), out[name])
        except (ValueError, TypeError) as exc:
            raise NodeError(
                f"The input for flow is incorrect. The value for flow input '{name}' does not match the "
                f"expected type '{spec.get('type', 'string')}': {exc}"
            ) from None
    return out


_ANNOTATION_TYPES = {str: "string", int: "int", float: "double", bool: "bool", list: "list", dict: "object"}


def convert_literals(fn: Callable[..., Any], literals: dict[str, Any]) -> dict[str, Any]:
    """A Python node's literal inputs converted to its function's annotated types, as Prompt flow does
    when it loads the flow."""
    try:
        params = inspect.signature(fn).parameters
    except (TypeError, ValueError):
        return dict(literals)
    out = {}
    for name, value in literals.items():
        p = params.get(name)
        t = _ANNOTATION_TYPES.get(p.annotation) if p is not None else None
        if t is None or value is None:
            out[name] = value
            continue
        try:
            out[name] = parse_value(t, value)
        except (ValueError, TypeError):
            out[name] = value
    return out


# ---------------------------------------------------------------------------------------------- nodes


@dataclass
class NodeSpec:
    """One node of a flow.dag.yaml, with its inputs still written as references or literals."""

    name: str
    type: str  # "python" | "llm" | "prompt"
    inputs: dict[str, Any]
    source_path: str | None = None
    function: str | None = None
    api: str = "chat"
    provider: str = "AzureOpenAI"
    connection: str | None = None
    activate_when: Any = None
    activate_is: Any = None
    has_activate: bool = False
    aggregation: bool = False
    deps: list[str] = field(default_factory=list)  # nodes it references (inputs and activate condition)


def node_spec(raw: dict[str, Any]) -> NodeSpec:
    source = raw.get("source") or {}
    activate = raw.get("activate") or None
    provider = str(raw.get("provider") or "")
    module = str(raw.get("module") or "")
    if not provider:
        provider = "OpenAI" if module.endswith(".openai") else "AzureOpenAI"
    spec = NodeSpec(
        name=str(raw.get("name")),
        type=str(raw.get("type") or ""),
        inputs=dict(raw.get("inputs") or {}),
        source_path=source.get("path"),
        function=source.get("function") or raw.get("function"),
        api=str(raw.get("api") or "chat"),
        provider=provider,
        connection=raw.get("connection"),
        aggregation=bool(raw.get("aggregation", False)),
    )
    if activate:
        spec.has_activate = True
        spec.activate_when = activate.get("when")
        spec.activate_is = activate.get("is")
    deps: list[str] = []
    for value in [*spec.inputs.values(), spec.activate_when]:
        ref = parse_ref(value)
        if ref is not None and ref.is_node and ref.source not in deps:
            deps.append(ref.source)
    spec.deps = deps
    return spec


def is_bypassed(node: NodeSpec, inputs: dict[str, Any], outputs: dict[str, Any], bypassed: set[str]) -> bool:
    """Prompt flow's rule: with an activate condition, the node is bypassed when the condition refers to a
    bypassed node or its value is not ``is``; without one, when all the nodes it refers to are bypassed."""
    if node.has_activate:
        ref = parse_ref(node.activate_when)
        if ref is not None and ref.is_node and ref.source in bypassed:
            return True
        return bool(resolve(node.activate_when, inputs, outputs) != node.activate_is)
    node_refs = [r for r in (parse_ref(v) for v in node.inputs.values()) if r is not None and r.is_node]
    return bool(node_refs) and all(r.source in bypassed for r in node_refs)


def node_kwargs(
    node: NodeSpec,
    inputs: dict[str, Any],
    outputs: dict[str, Any],
    bypassed: set[str],
    fn: Callable[..., Any] | None = None,
) -> dict[str, Any]:
    """The node's inputs resolved; an input referring to a bypassed node is left out when the function
    has a default for it, else it is None (Prompt flow's rule)."""
    out: dict[str, Any] = {}
    for name, value in node.inputs.items():
        ref = parse_ref(value)
        if ref is not None and ref.is_node and ref.source in bypassed:
            p = _parameters(fn).get(name) if fn is not None else None
            if p is not None and p.default is not inspect.Parameter.empty:
                continue
            out[name] = None
            continue
        out[name] = resolve(value, inputs, outputs)
    return out


def _parameters(fn: Callable[..., Any]) -> dict[str, inspect.Parameter]:
    try:
        return dict(inspect.signature(fn).parameters)
    except (TypeError, ValueError):
        return {}


def flow_outputs(
    definitions: dict[str, Any], inputs: dict[str, Any], outputs: dict[str, Any]
) -> dict[str, Any]:
    """The flow's declared outputs; one referring to a bypassed node is None."""
    out: dict[str, Any] = {}
    for name, spec in (definitions or {}).items():
        reference = (spec or {}).get("reference")
        ref = parse_ref(reference)
        if ref is not None and ref.is_node and outputs.get(ref.source, None) is None:
            out[name] = None
            continue
        out[name] = resolve(reference, inputs, outputs)
    return out


# ------------------------------------------------------------------------------ templates and chat


class ChatInputList(list):
    """A list input of an Azure OpenAI chat node renders as its items, one a line (as Prompt flow's)."""

    def __str__(self) -> str:
        return "\n".join(map(str, self))


def convert_to_chat_list(obj: Any) -> Any:
    if isinstance(obj, dict):
        return {k: convert_to_chat_list(v) for k, v in obj.items()}
    if isinstance(obj, list):
        return ChatInputList([convert_to_chat_list(x) for x in obj])
    return obj


def render_jinja(template: str, escape_dict: dict[str, str] | None = None, **kwargs: Any) -> str:
    """Prompt flow's rendering: a sandboxed Jinja environment, trim_blocks, trailing newline kept."""
    try:
        return _compiled(template).render(**kwargs)
    except Exception as exc:
        text = unescape_roles(str(exc), escape_dict or {})
        raise NodeError(
            f"Failed to render jinja template: {type(exc).__name__}: {text}. Please modify your prompt to fix the issue."
        ) from exc


@functools.lru_cache(maxsize=256)  # keyed by the template's text: a flow's few prompts, compiled once
def _compiled(template: str) -> Any:
    """The template compiled in a sandboxed environment of its own, as Prompt flow compiles it for every
    call (a template that does not compile raises here, every time: failures are not cached)."""
    from jinja2.sandbox import SandboxedEnvironment

    return SandboxedEnvironment(trim_blocks=True, keep_trailing_newline=True).from_string(template)


def _escape_dict_for(values: list[Any]) -> dict[str, str]:
    escape: dict[str, str] = {}

    def walk(v: Any) -> None:
        if isinstance(v, list):
            for item in v:
                walk(item)
        elif isinstance(v, dict):
            for item in v.values():
                walk(item)
        elif isinstance(v, str):
            for role in re.findall(_ROLE_LINE, v, flags=re.MULTILINE):
                if role not in escape.values():
                    escape[str(uuid.uuid4())] = role

    for value in values:
        walk(value)
    return escape


def _escape(v: Any, escape: dict[str, str]) -> Any:
    if isinstance(v, ChatInputList):
        return ChatInputList([_escape(x, escape) for x in v])
    if isinstance(v, str):
        for encoded, role in escape.items():
            v = v.replace(role, encoded)
        return v
    if isinstance(v, dict):
        return {k: _escape(x, escape) for k, x in v.items()}
    return v


def unescape_roles(v: Any, escape: dict[str, str]) -> Any:
    if not escape:
        return v
    if isinstance(v, str):
        for encoded, role in escape.items():
            v = v.replace(encoded, role)
        return v
    if isinstance(v, list):
        for i, item in enumerate(v):
            if isinstance(item, dict) and "text" in item:
                for encoded, role in escape.items():
                    v[i]["text"] = item["text"].replace(encoded, role)
    return v


def _try(pattern: str, text: str) -> tuple[str, str] | None:
    m = re.search(pattern, text, re.DOTALL)
    return (m.group(1), m.group(2)) if m else None


def parse_chat(chat_str: str, escape: dict[str, str] | None = None) -> list[dict[str, Any]]:
    """Role blocks (``# system:``, ``user:``...) into chat messages, as Prompt flow parses them."""
    escape = escape or {}
    chunks = re.split(_ROLE_LINE, chat_str, flags=re.MULTILINE)
    messages: list[dict[str, Any]] = []
    for chunk in chunks:
        last = messages[-1] if messages else None
        if last and last.get("role") == "tool" and "content" not in last:
            parsed = _try(
                r"\n*#{0,2}\s*tool_call_id\s*:\s*\n+\s*(\S+)\s*\n*#{0,2}\s*content\s*:\s*\n?(.*)", chunk
            )
            if parsed is None:
                raise NodeError(
                    "Failed to parse tool role prompt. Please make sure the prompt follows the format: "
                    "'tool_call_id:\\ntool_call_id\\ncontent:\\ntool_content'."
                )
            last["tool_call_id"], last["content"] = parsed[0], parsed[1].strip()
            continue
        if last and last.get("role") == "assistant":
            m = re.search(r"\n*#{0,2}\s*tool_calls\s*:\s*\n+\s*(\[.*?\])", chunk, re.DOTALL)
            if m:
                try:
                    last["tool_calls"] = ast.literal_eval(m.group(1))
                    continue
                except Exception:  # noqa: BLE001 - not a tool call list: plain content, as Prompt flow
                    pass
        if last and "role" in last and "content" not in last and "tool_calls" not in last:
            parsed = _try(r"\n*#{0,2}\s*name\s*:\s*\n+\s*(\S+)\s*\n*#{0,2}\s*content\s*:\s*\n?(.*)", chunk)
            if parsed is None:
                if last["role"] == "function":
                    raise NodeError(
                        "Failed to parse function role prompt. Please make sure the prompt follows the format: "
                        "'name:\\nfunction_name\\ncontent:\\nfunction_content'."
                    )
                last["content"] = chunk.strip()
            else:
                last["name"], last["content"] = parsed[0], parsed[1].strip()
            continue
        if chunk.strip() == "":
            continue
        role = chunk.strip().lower()
        if role not in VALID_ROLES:
            shown = unescape_roles(role, escape)
            raise NodeError(
                "The Chat API requires a specific format for prompt definition, and the prompt should include "
                f"separate lines as role delimiters: 'system:\\n','user:\\n','assistant:\\n','function:\\n',"
                f"'tool:\\n'. Current parsed role '{shown}' does not meet the requirement."
            )
        messages.append({"role": role})
    return messages


def build_messages(template: str, inputs_to_escape: list[str], **kwargs: Any) -> list[dict[str, Any]]:
    """Render a chat prompt and parse its role blocks; role lines inside flow inputs are escaped first
    so that user text cannot open a new message (Prompt flow's prompt-injection guard)."""
    escape = _escape_dict_for([v for k, v in kwargs.items() if k in inputs_to_escape])
    values = {k: (_escape(v, escape) if k in inputs_to_escape and escape else v) for k, v in kwargs.items()}
    chat_str = render_jinja(template, escape_dict=escape, **values)
    messages = parse_chat(chat_str, escape)
    if escape:
        for message in messages:
            for key, val in message.items():
                message[key] = unescape_roles(val, escape)
    return messages


# ---------------------------------------------------------------------------------------- LLM calls

_LLM_PARAMS = {
    "deployment_name",
    "model",
    "temperature",
    "top_p",
    "n",
    "stream",
    "stop",
    "max_tokens",
    "presence_penalty",
    "frequency_penalty",
    "logit_bias",
    "user",
    "function_call",
    "functions",
    "tool_choice",
    "tools",
    "response_format",
    "seed",
    "suffix",
    "logprobs",
    "echo",
    "best_of",
}


def _is_true(value: Any) -> bool:
    return str(value).lower() == "true"


def llm_request(
    node: NodeSpec, template: str, kwargs: dict[str, Any], inputs_to_escape: list[str]
) -> tuple[str, dict[str, Any]]:
    """The request an LLM node sends: ("chat" | "completion", the ``create`` keyword arguments), exactly
    as the promptflow-tools provider (Azure OpenAI or OpenAI) builds it."""
    params = {k: v for k, v in kwargs.items() if k in _LLM_PARAMS}
    variables = {k: v for k, v in kwargs.items() if k not in _LLM_PARAMS}
    azure = node.provider != "OpenAI"
    model = params.get("deployment_name") if azure else params.get("model", "")
    if _is_true(params.get("stream", False)):
        raise NodeError(f"node {node.name}: stream: true is not supported outside a chat flow")
    if node.api == "completion":
        prompt = render_jinja(template, **variables)
        req: dict[str, Any] = {
            "prompt": prompt,
            "model": model,
            "suffix": params.get("suffix") or None,
            "max_tokens": int(params.get("max_tokens", 16))
            if params.get("max_tokens", 16) is not None
            else None,
            "temperature": float(params.get("temperature", 1.0)),
            "top_p": float(params.get("top_p", 1.0)),
            "n": int(params.get("n", 1)),
            "stream": False,
            "logprobs": int(params["logprobs"]) if params.get("logprobs") else None,
            "echo": _is_true(params.get("echo", False)),
            "stop": params.get("stop") or None,
            "best_of": int(params.get("best_of", 1)),
            "logit_bias": params.get("logit_bias") or {},
            "user": params.get("user", ""),
        }
        pp, fp = params.get("presence_penalty"), params.get("frequency_penalty")
        if azure:
            if pp is not None:
                req["presence_penalty"] = pp
            if fp is not None:
                req["frequency_penalty"] = fp
        else:
            req["presence_penalty"] = float(pp) if pp is not None else None
            req["frequency_penalty"] = float(fp) if fp is not None else None
        return "completion", req
    variables = convert_to_chat_list(variables) if azure else variables
    messages = build_messages(template, inputs_to_escape, **variables)
    req = {
        "model": model,
        "messages": messages,
        "temperature": params.get("temperature", 1.0),
        "top_p": params.get("top_p", 1.0),
    }
    if azure:
        req["n"] = params.get("n", 1)
    req["stream"] = False
    tools, functions = params.get("tools"), params.get("functions")
    if tools:
        req["tools"] = tools
        choice = params.get("tool_choice")
        req["tool_choice"] = ("auto" if choice is None else choice) if azure else choice
    elif functions:
        req["functions"] = functions
        call = params.get("function_call")
        req["function_call"] = "auto" if call is None else call
    if params.get("stop"):
        req["stop"] = params["stop"]
    mt = params.get("max_tokens")
    if mt is not None and str(mt).lower() != "inf":
        req["max_tokens"] = int(mt)
    if params.get("logit_bias"):
        req["logit_bias"] = params["logit_bias"]
    if params.get("response_format"):
        req["response_format"] = params["response_format"]
    if params.get("seed") is not None:
        req["seed"] = params["seed"]
    if params.get("presence_penalty") is not None:
        req["presence_penalty"] = params["presence_penalty"]
    if params.get("frequency_penalty") is not None:
        req["frequency_penalty"] = params["frequency_penalty"]
    if params.get("user"):
        req["user"] = params["user"]
    return "chat", req


def llm_result(kind: str, completion: Any, req: dict[str, Any]) -> Any:
    """What the LLM node outputs: the text, or the whole message when tools or functions were given."""
    if kind == "completion":
        return completion.choices[0].text
    if req.get("tools") or req.get("functions"):
        return completion.model_dump()["choices"][0]["message"]
    return getattr(completion.choices[0].message, "content", "")


def make_client(kind: str, api_base: str, api_key: str, api_version: str | None = None) -> Any:
    """An ``openai`` client as Prompt flow's tools build it (its own retries off: the caller's policy
    retries). ``kind`` is "AzureOpenAIConnection" or "OpenAIConnection"."""
    import openai

    if kind.startswith("OpenAI"):
        base = api_base.rstrip("/")
        base = base if base.endswith("/v1") else base + "/v1"
        return openai.OpenAI(max_retries=0, api_key=api_key, base_url=base)
    return openai.AzureOpenAI(
        max_retries=0, api_key=api_key, api_version=api_version or "2024-02-01", azure_endpoint=api_base
    )


def call_llm(client: Any, kind: str, req: dict[str, Any]) -> Any:
    if kind == "completion":
        return client.completions.create(**req)
    return client.chat.completions.create(**req)


# ------------------------------------------------------------------- stand-ins for migrated flows

_metrics: list[dict[str, Any]] = []


def tool(func: Any = None, **_: Any) -> Any:
    """Stands in for Prompt flow's ``@tool`` in migrated flows: marks the function, changes nothing."""

    def mark(f: Any) -> Any:
        f.__dict__["__tool"] = None
        return f

    return mark(func) if callable(func) else mark


def log_metric(key: str, value: Any, variant_id: str | None = None) -> None:
    """Stands in for Prompt flow's ``log_metric`` in migrated flows: the running aggregation collects it."""
    if _metrics:
        _metrics[-1][key] = value


def collect_metrics() -> dict[str, Any]:
    """Start collecting ``log_metric`` calls; :func:`stop_metrics` returns them."""
    _metrics.append({})
    return _metrics[-1]


def stop_metrics() -> dict[str, Any]:
    return _metrics.pop() if _metrics else {}
