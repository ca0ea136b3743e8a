"""What one captured request becomes: redaction, sampling and size caps for traffic capture.

Standard library only, on purpose: the local A/B router imports it, and the deploy module copies it next to
``serve_flow.py`` into container builds (Kubernetes, Azure ML) as ``llmops_capture.py`` so a served
container writes the very same JSONL records (to stdout or a mounted volume) that ``llmops traffic import``
reads back.

A record holds the arm, the version and configuration it serves, the request's inputs (after redaction), its
outputs, status, latency, tokens where known, a UTC timestamp and the request id (also returned to the
caller in the ``X-LLMOps-Request-Id`` header, so feedback can name it). Headers are never captured (an
``Authorization`` or ``api-key`` header never reaches a record), and every value of a secret-looking
environment variable of the capturing process is replaced by ``***`` wherever it appears.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import os
import re
import time
import uuid
from dataclasses import dataclass, field
from typing import Any

REQUEST_ID_HEADER = "X-LLMOps-Request-Id"
RECORD_KIND = "llmops.traffic.v1"
TRUNCATED = "...[truncated]"
# Environment variable names whose values are secrets: never captured, whatever field they turn up in.
_SECRET_NAME = re.compile(r"(KEY|SECRET|TOKEN|PASSWORD|PASSWD|CREDENTIAL|CONNECTION_STRING|SAS)", re.I)


@dataclass
class CaptureSettings:
    """The ``capture:`` block of ``llmops.yaml`` (and ``deploy --capture``), as plain data."""

    enabled: bool = False
    sample_rate: float = 1.0  # share of requests captured, 0..1 (decided per request id)
    drop: list[str] = field(default_factory=list)  # input fields never stored
    hash: list[str] = field(
        default_factory=list
    )  # input fields stored as a keyed hash (joinable, not readable)
    max_value_chars: int = 4000  # longer strings are cut (inputs and outputs)
    max_records: int = 100_000  # capture stops after this many records in one traffic run
    salt: str = ""  # the hashing key (a workspace secret under .llmops; never in a record)

    def to_dict(self, *, with_salt: bool = False) -> dict[str, Any]:
        out = {
            "enabled": self.enabled,
            "sample_rate": self.sample_rate,
            "drop": list(self.drop),
            "hash": list(self.hash),
            "max_value_chars": self.max_value_chars,
            "max_records": self.max_records,
        }
        if with_salt:
            out["salt"] = self.salt
        return out

    @classmethod
    def from_dict(cls, data: dict[str, Any] | None) -> CaptureSettings:
        data = dict(data or {})
        return cls(
            enabled=bool(data.get("enabled", False)),
            sample_rate=float(data.get("sample_rate", 1.0)),
            drop=[str(x) for x in data.get("drop") or []],
            hash=[str(x) for x in data.get("hash") or []],
            max_value_chars=int(data.get("max_value_chars", 4000)),
            max_records=int(data.get("max_records", 100_000)),
            salt=str(data.get("salt") or ""),
        )


def new_request_id() -> str:
    return uuid.uuid4().hex


def sampled(request_id: str, rate: float) -> bool:
    """Whether this request is captured: a hash of its id against ``rate`` (the same answer every time)."""
    if rate >= 1:
        return True
    if rate <= 0:
        return False
    bucket = int.from_bytes(hashlib.sha256(request_id.encode()).digest()[:8], "big") / 2**64
    return bucket < rate


def secrets_from_env(environ: dict[str, str] | None = None) -> list[str]:
    """Values of the secret-looking variables of ``environ`` (8 characters or more)."""
    env = os.environ if environ is None else environ
    return sorted({v for k, v in env.items() if _SECRET_NAME.search(k) and v and len(v) >= 8}, key=len)[::-1]


def _scrub(value: Any, secrets: list[str], limit: int) -> Any:
    if isinstance(value, str):
        for s in secrets:
            if s and len(s) >= 4 and s in value:
                value = value.replace(s, "***")
        return value if len(value) <= limit else value[:limit] + TRUNCATED
    if isinstance(value, dict):
        return {str(k): _scrub(v, secrets, limit) for k, v in value.items()}
    if isinstance(value, list):
        return [_scrub(v, secrets, limit) for v in value]
    return value


def hash_value(value: Any, salt: str) -> str:
    text = value if isinstance(value, str) else json.dumps(value, sort_keys=True, default=str)
    return "hmac-sha256:" + hmac.new(salt.encode(), text.encode(), hashlib.sha256).hexdigest()[:32]


def clean_inputs(inputs: Any, settings: CaptureSettings, secrets: list[str]) -> Any:
    """Inputs as stored: dropped fields gone, hashed fields hashed, secrets masked, long strings cut."""
    if not isinstance(inputs, dict):
        return _scrub(inputs, secrets, settings.max_value_chars)
    out: dict[str, Any] = {}
    for key, value in inputs.items():
        if key in settings.drop:
            continue
        if key in settings.hash:
            out[key] = hash_value(_scrub(value, secrets, 10**9), settings.salt)
            continue
        out[key] = _scrub(value, secrets, settings.max_value_chars)
    return out


def _tokens(outputs: Any) -> dict[str, int]:
    """Token counts where the answer carries them (an OpenAI-style ``usage`` object); else none."""
    usage = outputs.get("usage") if isinstance(outputs, dict) else None
    if not isinstance(usage, dict):
        return {}
    out = {}
    for k in ("prompt_tokens", "completion_tokens", "total_tokens"):
        if isinstance(usage.get(k), int):
            out[k] = int(usage[k])
    return out


def build_record(
    *,
    request_id: str,
    arm: str,
    version: str,
    configuration: dict[str, Any] | None,
    body: bytes,
    status: int,
    response: bytes,
    latency_ms: float,
    settings: CaptureSettings,
    secrets: list[str],
    timestamp: float | None = None,
) -> dict[str, Any]:
    """One JSONL record for a request and its answer (see the module docstring)."""
    try:
        inputs: Any = json.loads(body or b"null")
    except ValueError:
        inputs = {"_body": body.decode("utf-8", "replace")}
    try:
        outputs: Any = json.loads(response or b"null")
    except ValueError:
        outputs = {"_body": response.decode("utf-8", "replace")}
    ok = 200 <= status < 300
    error = None
    if not ok:
        error = json.dumps(outputs, default=str)[:500] if outputs is not None else f"HTTP {status}"
    tokens = _tokens(outputs)
    return {
        "kind": RECORD_KIND,
        "request_id": request_id,
        "arm": arm,
        "version": version,
        "configuration": configuration or {},
        "timestamp": time.time() if timestamp is None else timestamp,
        "inputs": clean_inputs(inputs, settings, secrets),
        "outputs": _scrub(outputs, secrets, settings.max_value_chars) if ok else None,
        "status": status,
        "error": _scrub(error, secrets, 500) if error else None,
        "latency_ms": round(latency_ms, 3),
        **tokens,
    }


def settings_from_env(environ: dict[str, str] | None = None) -> tuple[CaptureSettings, str | None]:
    """For a served container: ``LLMOPS_CAPTURE`` (``stdout`` or a file path; unset = off) and
    ``LLMOPS_CAPTURE_SETTINGS`` (the settings as JSON). Returns the settings and the destination."""
    env = os.environ if environ is None else environ
    dest = env.get("LLMOPS_CAPTURE") or None
    raw = env.get("LLMOPS_CAPTURE_SETTINGS") or "{}"
    try:
        data = json.loads(raw)
    except ValueError:
        data = {}
    settings = CaptureSettings.from_dict(data if isinstance(data, dict) else {})
    settings.enabled = bool(dest)
    settings.salt = env.get("LLMOPS_CAPTURE_SALT", settings.salt)
    return settings, dest
