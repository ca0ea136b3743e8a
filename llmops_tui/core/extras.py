"""Our optional per-use-case file, ``llmops.yaml``: sweep grid, quality gates, prices, rate limits.

It sits beside the template's own config so the template's tooling still accepts the folder.
Validated with pydantic at the edge; everything inside the core is plain data.
"""

from __future__ import annotations

import re
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

EXTRAS_FILE = "llmops.yaml"
# Caps shared with the command line and the app (core.sweep checks the same ones).
MAX_REPEAT = 100
MAX_CONCURRENCY = 256
MAX_TIMEOUT_S = 24 * 3600.0
MAX_RETRIES = 50
_GATE_RE = re.compile(r"^\s*([A-Za-z0-9_.\-/]+)\s*(>=|<=|==|>|<)\s*(-?[0-9.eE+-]+)\s*$")
GateOp = Literal[">=", "<=", ">", "<", "=="]


class GateSpec(BaseModel):
    """A quality gate: ``metric op value``, e.g. ``matcher.f1 >= 0.8`` or ``latency_p95_ms <= 2000``."""

    model_config = ConfigDict(extra="forbid")
    metric: str
    op: GateOp = ">="
    value: float

    def __str__(self) -> str:
        return f"{self.metric} {self.op} {self.value:g}"


class SweepSpec(BaseModel):
    model_config = ConfigDict(extra="forbid")
    variants: str | list[str] = "all"
    grid: dict[str, list[Any]] = Field(default_factory=dict)
    datasets: list[str] = Field(default_factory=list)
    repeat: int = Field(default=1, ge=1, le=MAX_REPEAT)
    concurrency: int = Field(default=16, ge=1, le=MAX_CONCURRENCY)
    line_timeout_s: float = Field(default=120.0, gt=0, le=MAX_TIMEOUT_S, allow_inf_nan=False)
    max_retries: int = Field(default=6, ge=0, le=MAX_RETRIES)

    @field_validator("variants")
    @classmethod
    def _mode(cls, value: str | list[str]) -> str | list[str]:
        if isinstance(value, str) and value not in {"all", "one-at-a-time", "defaults"}:
            raise ValueError("must be all, one-at-a-time, defaults or a list of NODE.variant_id")
        return value


class Price(BaseModel):
    model_config = ConfigDict(extra="forbid")
    prompt: float = Field(ge=0, description="USD per 1K prompt tokens")
    completion: float = Field(ge=0, description="USD per 1K completion tokens")


class RateLimit(BaseModel):
    model_config = ConfigDict(extra="forbid")
    rpm: int | None = Field(default=None, ge=1)
    tpm: int | None = Field(default=None, ge=1)


class AzureMLSpec(BaseModel):
    model_config = ConfigDict(extra="allow")
    subscription_id: str | None = None
    resource_group: str | None = None
    workspace_name: str | None = None
    compute: str | None = None
    instance_type: str | None = None


class CaptureSpec(BaseModel):
    """``capture:``: record each request and answer of an A/B deployment per arm (opt-in, bounded)."""

    model_config = ConfigDict(extra="forbid")
    enabled: bool = False
    sample_rate: float = Field(default=1.0, ge=0, le=1)
    redact: dict[Literal["drop", "hash"], list[str]] = Field(default_factory=dict)
    max_value_chars: int = Field(default=4000, ge=16, le=1_000_000)
    max_records: int = Field(default=100_000, ge=1, le=100_000_000)


class ApprovalPolicy(BaseModel):
    """What an approval of one environment needs (``approvals: {prod: {approvers: 2, not_by_sweeper: true}}``,
    or just ``prod: 2``). Checked by ``verify-approval`` and deploy (core.approval)."""

    model_config = ConfigDict(extra="forbid")
    approvers: int = Field(default=1, ge=1, le=20, description="distinct people who must sign")
    not_by_sweeper: bool = Field(default=False, description="whoever ran the sweep may not approve it")


class Extras(BaseModel):
    """The whole ``llmops.yaml``. Every block is optional; an unknown key is refused (a typo such as
    ``gate:`` would otherwise silently drop every gate)."""

    model_config = ConfigDict(extra="forbid")
    sweep: SweepSpec = Field(default_factory=SweepSpec)
    gates: list[GateSpec] = Field(default_factory=list)
    prices: dict[str, Price] = Field(default_factory=dict)
    rate_limits: dict[str, RateLimit] = Field(default_factory=dict)
    environments: list[str] = Field(default_factory=list)
    azureml: AzureMLSpec = Field(default_factory=AzureMLSpec)
    deploy: dict[str, Any] = Field(default_factory=dict)
    # flex flows: named sets of init values, swept like node variants (the "init" dimension)
    init_sets: dict[str, dict[str, Any]] = Field(default_factory=dict)
    capture: CaptureSpec = Field(default_factory=CaptureSpec)
    # per environment: how many distinct approvers, and whether the sweep's runner may approve
    approvals: dict[str, ApprovalPolicy] = Field(default_factory=dict)

    @field_validator("approvals", mode="before")
    @classmethod
    def _short_policies(cls, value: Any) -> Any:
        if isinstance(value, dict):
            return {
                k: ({"approvers": v} if isinstance(v, int) and not isinstance(v, bool) else v)
                for k, v in value.items()
            }
        return value

    # what runs DAG flows: "promptflow-dag" (default) or "agent-framework"; --backend wins
    backend: Literal["promptflow-dag", "agent-framework"] | None = None

    @field_validator("gates", mode="before")
    @classmethod
    def _short_gates(cls, value: Any) -> Any:
        if not isinstance(value, list):
            return value
        out = []
        for item in value:
            if isinstance(item, str):
                match = _GATE_RE.match(item)
                if not match:
                    raise ValueError(f"gate '{item}' is not 'METRIC OP NUMBER' (e.g. 'accuracy >= 0.8')")
                out.append({"metric": match.group(1), "op": match.group(2), "value": float(match.group(3))})
            else:
                out.append(item)
        return out


class ExtrasError(ValueError):
    """A problem in ``llmops.yaml``: ``str()`` is 'field: message'; ``hint`` says what to do."""

    def __init__(self, text: str, hint: str = ""):
        super().__init__(text)
        self.hint = hint


def _model_at(loc: tuple[Any, ...]) -> type[BaseModel] | None:
    """The model that holds the key at ``loc`` (for did-you-mean on unknown keys)."""
    model: type[BaseModel] | None = Extras
    blocks: dict[str, type[BaseModel]] = {
        "sweep": SweepSpec,
        "gates": GateSpec,
        "prices": Price,
        "rate_limits": RateLimit,
        "azureml": AzureMLSpec,
        "capture": CaptureSpec,
        "approvals": ApprovalPolicy,
    }
    if loc:
        model = blocks.get(str(loc[0]))
    return model


def parse_extras(data: Any) -> Extras:
    """Validate ``llmops.yaml`` content. Raises ExtrasError ('field: message', with a hint) on the
    first problem."""
    if data is None:
        return Extras()
    if not isinstance(data, dict):
        raise ExtrasError(": must be a mapping")
    try:
        return Extras.model_validate(data)
    except ValidationError as exc:
        err = exc.errors()[0]
        loc = ".".join(str(p) for p in err["loc"])
        if err.get("type") == "extra_forbidden":
            import difflib

            key = str(err["loc"][-1])
            model = _model_at(tuple(err["loc"][:-1]))
            known = sorted(model.model_fields) if model else []
            close = difflib.get_close_matches(key, known, n=1, cutoff=0.6)
            hint = (f"did you mean '{close[0]}'? " if close else "") + f"known keys: {', '.join(known)}"
            raise ExtrasError(f"{loc}: unknown key '{key}'", hint) from None
        raise ExtrasError(f"{loc}: {err['msg']}") from None
