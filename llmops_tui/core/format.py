"""Number formatting shared by the app, the CLI and the exporters, so one figure reads the same
everywhere (no ``4.95e-05`` for money)."""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from llmops_tui.core.compare import MetricValue, Row

RATE_KEYS = {"success_rate", "error_rate"}


def fmt_money(value: float | None, *, signed: bool = False) -> str:
    """US dollars with about three significant digits below a dollar and cents above:
    ``$0.0376``, ``$0.0000495``, ``$12.30``, ``+$0.0049`` (``signed``); "-" when unknown."""
    if value is None or (isinstance(value, float) and not math.isfinite(value)):
        return "-"
    sign = "-" if value < 0 else ("+" if signed and value > 0 else "")
    amount = abs(float(value))
    if amount == 0:
        return f"{sign}$0.00"
    decimals = max(2, min(8, 2 - math.floor(math.log10(amount))))
    return f"{sign}${amount:,.{decimals}f}"


def fmt(row: Row | str, value: float | None, *, signed: bool = False) -> str:
    """A comparison value as a person reads it: rates in percent, latency in ms, money as money, tokens
    and calls as integers, metrics to four significant digits."""
    key = row if isinstance(row, str) else row.key
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "-"
    sign = "+" if signed and value > 0 else ""
    if key in RATE_KEYS:
        return f"{sign}{value * 100:.1f}%"
    if key.startswith("latency_"):
        return f"{sign}{value:,.0f} ms"
    if key == "cost_usd":
        return fmt_money(value, signed=signed)
    if key in {"prompt_tokens", "completion_tokens", "total_tokens", "llm_calls", "cache_hits"}:
        return f"{sign}{value:,.0f}"
    return f"{sign}{value:.4g}"


def fmt_value(row: Row | str, mv: MetricValue) -> str:
    """A comparison value as shown everywhere: like :func:`fmt`, but a free cost (the sandbox model
    answered, see ``core.cost``) reads "free (sandbox)" instead of ``$0.00``."""
    if getattr(mv, "free", False):
        from llmops_tui.core.cost import FREE_TEXT

        return FREE_TEXT
    return fmt(row, mv.value)


def fmt_delta(row: Row | str, mv: MetricValue) -> str:
    """The value's signed difference to the baseline, "" when there is none (or when both are free)."""
    delta = mv.delta
    if delta is None or (isinstance(delta, float) and math.isnan(delta)):
        return ""
    if getattr(mv, "free", False) and delta == 0:
        return ""
    return fmt(row, delta, signed=True)


def fmt_ci(row: Row, mv: MetricValue) -> str:
    """A confidence interval in the row's units, "" when there is none."""
    if mv.ci_low is None or mv.ci_high is None:
        return ""
    return f"[{fmt(row, mv.ci_low)}, {fmt(row, mv.ci_high)}]"


def sig_mark(mv: MetricValue) -> str:
    """'*' significant, '~' tested but not significant, '' not tested."""
    if mv.significant is None:
        return ""
    return "*" if mv.significant else "~"


def json_safe(value: Any) -> Any:
    """Values for JSON: NaN and infinities -> None, numpy scalars -> Python, recursively."""
    if hasattr(value, "item") and not isinstance(value, list | dict | str | tuple):
        try:
            value = value.item()
        except (ValueError, AttributeError, TypeError):
            pass
    if isinstance(value, float):
        return None if math.isnan(value) or math.isinf(value) else value
    if isinstance(value, dict):
        return {k: json_safe(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [json_safe(v) for v in value]
    return value
