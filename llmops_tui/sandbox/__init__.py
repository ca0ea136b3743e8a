"""The offline sandbox model: an OpenAI / Azure OpenAI compatible chat-completions server on loopback.

A deterministic stand-in for a model, with task heuristics (see :mod:`llmops_tui.sandbox.tasks`) and
fault injection, so flows, sweeps and the app run end to end without a network or a key. Its answers
and metrics say nothing about a real model's quality. Importing this package is light (aiohttp only;
no promptflow, no textual, no rich).

    from llmops_tui.sandbox import start_sandbox

    with start_sandbox(latency_ms=200, seed=1) as sandbox:
        client = OpenAI(base_url=sandbox.url + "/v1", api_key="anything")
"""

from __future__ import annotations

from llmops_tui.sandbox.server import SandboxConfig, SandboxHandle, start_sandbox

__all__ = ["SandboxConfig", "SandboxHandle", "start_sandbox", "is_loopback"]


def is_loopback(host: str) -> bool:
    """True for hosts that only this machine can reach (127.0.0.0/8, ::1, localhost)."""
    import ipaddress

    if host.lower() in ("localhost", "localhost.localdomain"):
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False
