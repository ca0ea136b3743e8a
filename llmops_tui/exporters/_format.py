"""Formatting for the exporters: the shared number formats live in :mod:`llmops_tui.core.format`."""

from __future__ import annotations

from llmops_tui.core.compare import Comparison
from llmops_tui.core.format import RATE_KEYS, fmt, fmt_ci, fmt_delta, fmt_money, fmt_value, sig_mark

__all__ = [
    "RATE_KEYS",
    "cell_title",
    "fmt",
    "fmt_ci",
    "fmt_delta",
    "fmt_money",
    "fmt_value",
    "sig_mark",
]


def cell_title(comparison: Comparison, cell_id: str) -> str:
    cell = comparison.cell(cell_id)
    if cell is None:
        return cell_id
    return f"{cell_id} ({cell.label})"
