"""Resolve a use case's connections into in-memory connection specs (a backend makes its own objects).

No promptflow connection store and no keyring daemon are needed: keys are looked up at the last moment
(env var ``<NAME>_API_KEY``, a ``.env`` file beside the use case or at the workspace root, then the OS
keyring, then the template's ``.env`` line ``name={"api_key": ...}``) and live only in memory. ``--llm-endpoint`` routes every LLM node to one OpenAI-compatible server
(``sandbox`` starts the bundled sandbox model). Nothing here ever prints or stores a key.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from llmops_tui.core.backends.base import ConnectionSpec
from llmops_tui.core.errors import LlmopsError
from llmops_tui.core.workspace import Connection, UseCase

KEYRING_SERVICE = "llmops-tui"
SANDBOX = "sandbox"


@dataclass
class KeyLookup:
    """Where a connection's key was found (``env``, ``.env``, ``keyring``) or ``None``. Never the key."""

    connection: str
    env_var: str
    source: str | None

    @property
    def found(self) -> bool:
        return self.source is not None


def _dotenv_value(paths: list[Path], name: str) -> str | None:
    from llmops_tui.core.secrets import _dotenv_value as read_one

    for path in paths:
        value = read_one(path, name)
        if value:
            return value
    return None


def _keyring_value(name: str) -> str | None:
    from llmops_tui.core.secrets import KeyringUnavailable, get_keyring_secret

    try:
        return get_keyring_secret(name, service=KEYRING_SERVICE)
    except KeyringUnavailable:  # no backend / no daemon: treated as "not found"
        return None


def find_key(conn: Connection, uc_path: Path, ws_root: Path | None = None) -> tuple[str | None, str | None]:
    """(key, source) for a connection. The key must stay in memory."""
    name = conn.key_env_var
    if os.environ.get(name):
        return os.environ[name], "env"
    dotenvs = [uc_path / ".env"] + ([Path(ws_root) / ".env"] if ws_root else [])
    value = _dotenv_value(dotenvs, name)
    if value:
        return value, ".env"
    value = _keyring_value(name)
    if value:
        return value, "keyring"
    # last: the template's own form, a .env line `name={"api_key": ..., "api_base": ...}`
    from llmops_tui.core.secrets import template_dotenv_connections

    for path in dotenvs:
        data = template_dotenv_connections(path).get(conn.name) or {}
        if isinstance(data.get("api_key"), str) and data["api_key"].strip():
            return data["api_key"].strip(), ".env"
    return None, None


def key_status(uc: UseCase, ws_root: Path | None = None) -> list[KeyLookup]:
    out = []
    for conn in uc.connections:
        _, source = find_key(conn, uc.path, ws_root)
        out.append(KeyLookup(conn.name, conn.key_env_var, source))
    return out


def referenced_connections(uc: UseCase) -> dict[str, str]:
    """Connection name -> provider (AzureOpenAI/OpenAI) for every LLM node and variant of the flows."""
    names: dict[str, str] = {}
    flows = [uc.standard_flow] + [e.flow for e in uc.evaluators]
    for flow in flows:
        if flow is None:
            continue
        for node in flow.nodes:
            nodes = [v.node for v in node.variants] or [
                {"connection": node.connection, "provider": node.provider, "type": node.type}
            ]
            for raw in nodes:
                if raw.get("type") == "llm" and raw.get("connection"):
                    names[str(raw["connection"])] = str(raw.get("provider") or "AzureOpenAI")
        for conn in flow.model_connections() if flow.kind == "flex" else []:
            if conn:
                declared = uc.connection(conn)
                kind = declared.connection_type if declared else "AzureOpenAIConnection"
                names[conn] = "OpenAI" if kind.startswith("OpenAI") else "AzureOpenAI"
    return names


def _flex_needs_default(uc: UseCase) -> bool:
    """Flex flows whose model configurations name no connection, or that call a model themselves:
    they run against the use case's first connection (or the ``--llm-endpoint``)."""
    flows = [f for f in [uc.standard_flow] + [e.flow for e in uc.evaluators] if f is not None]
    return any(f.kind in ("flex", "code") for f in flows)


def _make(conn_type: str, name: str, base: str, key: str, api_version: str | None) -> ConnectionSpec:
    kind = "OpenAIConnection" if conn_type.startswith("OpenAI") else "AzureOpenAIConnection"
    return ConnectionSpec(name=name, kind=kind, api_base=base, api_key=key, api_version=api_version)


def build_connections(
    uc: UseCase, ws_root: Path | None, llm_endpoint: str | None, *, openai_compatible: bool = False
) -> dict[str, ConnectionSpec]:
    """name -> resolved connection (in memory; a backend turns it into its own form). ``llm_endpoint``
    is a base URL or None; with ``openai_compatible`` every connection is an OpenAI connection to it.

    Raises LlmopsError naming the missing variable and how to use the sandbox when a key is missing."""
    needed = referenced_connections(uc)
    if not needed and _flex_needs_default(uc):
        if uc.connections:
            first = uc.connections[0]
            needed[first.name] = "OpenAI" if first.connection_type.startswith("OpenAI") else "AzureOpenAI"
        elif llm_endpoint:
            needed["default"] = "AzureOpenAI"
    out: dict[str, Any] = {}
    for name, provider in needed.items():
        declared = uc.connection(name)
        conn_type = declared.connection_type if declared else f"{provider}Connection"
        if provider == "OpenAI":
            conn_type = "OpenAIConnection"
        if llm_endpoint:
            if openai_compatible:
                conn_type = "OpenAIConnection"
            key = os.environ.get("LLMOPS_LLM_API_KEY") or "sandbox-no-key"
            out[name] = _make(conn_type, name, llm_endpoint, key, declared.api_version if declared else None)
            continue
        if declared is None:
            raise LlmopsError(
                f"connection '{name}' is used by a flow but not declared",
                file=uc.config_file,
                field="connections",
                hint="declare it in experiment.yaml or run with --llm-endpoint sandbox",
            )
        found, _source = find_key(declared, uc.path, ws_root)
        if not found:
            raise LlmopsError(
                f"no API key for connection '{name}'",
                file=uc.config_file,
                field=f"connections.{name}.api_key",
                hint=f"set {declared.key_env_var} (env or .env) or store it in the keyring from the app's "
                "Connections and keys screen (k); or try it offline with --llm-endpoint sandbox",
            )
        api_base = declared.api_base
        if not api_base and conn_type.startswith("OpenAI"):
            api_base = "https://api.openai.com/v1"  # OpenAI itself when no base is given
        if not api_base or "YOUR-RESOURCE" in api_base:
            raise LlmopsError(
                f"connection '{name}' has no usable api_base ({declared.api_base})",
                file=uc.config_file,
                field=f"connections.{name}.api_base",
                hint="set your endpoint URL, or use --llm-endpoint sandbox",
            )
        out[name] = _make(conn_type, name, api_base, found, declared.api_version)
    return out
