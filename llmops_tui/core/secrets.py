"""Secrets resolved at the last moment: from an environment variable, a ``.env`` file or the OS keyring.

Every lookup says where the value came from (``source``) so people can tell which one won, and the
value itself is never logged, printed, written or put in an error message (``Secret`` hides it from
``repr``). The keyring is optional: headless machines, CI runners and containers usually have no
keyring daemon, so every keyring error is caught and reported as "no keyring available".
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from llmops_tui.core.errors import LlmopsError

KEYRING_SERVICE = "llmops-tui"


@dataclass(frozen=True)
class Secret:
    """A secret value and where it came from: ``env:VAR``, ``.env:<file>`` or ``keyring:llmops-tui/NAME``."""

    name: str
    value: str = field(repr=False)
    source: str

    def __str__(self) -> str:  # never the value
        return f"{self.name} (from {self.source})"


class KeyringUnavailable(Exception):
    """The OS keyring could not be used; the message says why, never a secret."""


def _keyring():
    try:
        import keyring
    except Exception as exc:  # not installed or broken at import: same as no keyring
        raise KeyringUnavailable(f"no keyring available ({type(exc).__name__})") from None
    return keyring


def _describe(exc: BaseException) -> str:
    # Backend errors can be long and platform specific; the type name is enough and cannot leak a value.
    return f"no keyring available ({type(exc).__name__})"


def get_keyring_secret(name: str, *, service: str = KEYRING_SERVICE) -> str | None:
    """The value stored in the OS keyring under (``service``, ``name``), or None when there is none.

    Raises KeyringUnavailable when no usable keyring backend exists (no daemon, locked, refused)."""
    keyring = _keyring()
    try:
        return keyring.get_password(service, name)
    except Exception as exc:
        raise KeyringUnavailable(_describe(exc)) from None


def _plaintext_backend(backend: object) -> bool:
    """Backends that would write a secret to a plain file (keyrings.alt's file backends) or drop it."""
    module = type(backend).__module__
    return module.startswith("keyrings.alt") or module.endswith(("backends.null", "backends.fail"))


def set_keyring_secret(name: str, value: str, *, service: str = KEYRING_SERVICE) -> str:
    """Store ``value`` in the OS keyring under (``service``, ``name``); returns the source label.

    Raises LlmopsError (exit 2) saying there is no keyring available, with what to do instead."""
    if not value:
        raise LlmopsError("refusing to store an empty secret", field=name)
    try:
        keyring = _keyring()
        backend = keyring.get_keyring()
        if type(backend).__module__.endswith("backends.fail"):
            raise KeyringUnavailable("no keyring available (no backend)")
        if _plaintext_backend(backend):
            raise KeyringUnavailable(
                f"no secure keyring (backend {type(backend).__module__} would not protect it)"
            )
        keyring.set_password(service, name, value)
    except KeyringUnavailable as exc:
        raise LlmopsError(
            f"cannot store '{name}': {exc}", hint="set it as an environment variable instead"
        ) from None
    except Exception as exc:
        raise LlmopsError(
            f"cannot store '{name}': {_describe(exc)}", hint="set it as an environment variable instead"
        ) from None
    return f"keyring:{service}/{name}"


def keyring_status(*, service: str = KEYRING_SERVICE) -> str:
    """One line for people: which keyring backend would be used, or why there is none."""
    try:
        keyring = _keyring()
        backend = keyring.get_keyring()
        # The "fail" backend is what keyring picks when nothing usable exists.
        if type(backend).__module__.endswith("backends.fail"):
            return "no keyring available (no backend)"
        if _plaintext_backend(backend):
            return f"no secure keyring (backend {type(backend).__module__} stores secrets in plain files)"
        return f"keyring backend {type(backend).__module__}.{type(backend).__name__}"
    except KeyringUnavailable as exc:
        return str(exc)
    except Exception as exc:
        return _describe(exc)


def _dotenv_value(path: Path, key: str) -> str | None:
    if not path.is_file():
        return None
    from dotenv import dotenv_values  # small import, but only needed here

    # dotenv_values reads the file without touching os.environ.
    return dotenv_values(path).get(key) or None


def get_secret(
    name: str,
    *,
    env_var: str | None = None,
    dotenv: Path | None = None,
    keyring_name: str | None = None,
    service: str = KEYRING_SERVICE,
) -> tuple[Secret | None, list[str]]:
    """Look ``name`` up in order: the environment variable ``env_var``, the ``.env`` file ``dotenv``,
    then the OS keyring entry (``service``, ``keyring_name``). Each source is tried only when given.

    Returns (secret or None, notes): notes say why sources were skipped (e.g. "no keyring available"),
    never a value. An empty value counts as not set."""
    notes: list[str] = []
    if env_var:
        value = os.environ.get(env_var, "").strip()
        if value:
            return Secret(name, value, f"env:{env_var}"), notes
    if dotenv is not None and env_var:
        try:
            value = (_dotenv_value(Path(dotenv), env_var) or "").strip()
        except Exception as exc:  # unreadable .env: note it, go on
            notes.append(f"{dotenv}: unreadable ({type(exc).__name__})")
            value = ""
        if value:
            return Secret(name, value, f".env:{dotenv}"), notes
    if keyring_name:
        try:
            value = (get_keyring_secret(keyring_name, service=service) or "").strip()
        except KeyringUnavailable as exc:
            notes.append(str(exc))
            value = ""
        if value:
            return Secret(name, value, f"keyring:{service}/{keyring_name}"), notes
    return None, notes


def template_dotenv_connections(path: Path) -> dict[str, dict[str, Any]]:
    """Connections written the template's way in a ``.env`` file, one a line:
    ``aoai={"api_key": "...", "api_base": "https://...", "api_type": "azure", "api_version": "..."}``.

    Returns name -> the parsed mapping (it holds the key: keep it in memory, never print it). Lines that
    are not a JSON object with ``api_key`` or ``api_base`` are ordinary variables and left out; an
    unreadable file is treated as empty."""
    if not Path(path).is_file():
        return {}
    import json

    from dotenv import dotenv_values

    try:
        values = dotenv_values(path)
    except Exception:  # unreadable or undecodable: no connections from it
        return {}
    out: dict[str, dict[str, Any]] = {}
    for name, raw in values.items():
        text = (raw or "").strip()
        if not text.startswith("{"):
            continue
        try:
            data = json.loads(text)
        except ValueError:
            continue
        if isinstance(data, dict) and ("api_key" in data or "api_base" in data):
            out[name] = data
    return out
