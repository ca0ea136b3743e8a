"""Number formatting shared by the exporters (plain text, no markup)."""

from __future__ import annotations

import math

from llmops_tui.core.compare import Comparison, MetricValue, Row
from llmops_tui.core.format import fmt_money

RATE_KEYS = {"success_rate", "error_rate"}


def fmt(row: Row | str, value: float | None, *, signed: bool = False) -> str:
    """A value as a person reads it: rates in percent, latency in ms, tokens and calls as integers."""
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


def fmt_ci(row: Row, mv: MetricValue) -> str:
    if mv.ci_low is None or mv.ci_high is None:
        return ""
    return f"[{fmt(row, mv.ci_low)}, {fmt(row, mv.ci_high)}]"


def sig_mark(mv: MetricValue) -> str:
    """'*' significant, '~' tested but not significant, '' not tested."""
    if mv.significant is None:
        return ""
    return "*" if mv.significant else "~"


def cell_title(comparison: Comparison, cell_id: str) -> str:
    cell = comparison.cell(cell_id)
    if cell is None:
        return cell_id
    return f"{cell_id} ({cell.label})"
