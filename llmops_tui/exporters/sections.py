"""Optional parts of a report beside the comparison: a verdict table at the top, and several line-by-line
sections (two cells' outputs side by side, one section per cell pair, each with its title).

``llmops compare-backends --report`` fills them: the verdict per cell, then each cell's differing lines,
one backend's output beside the other's. ``llmops report`` uses none of them.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


@dataclass
class Summary:
    """A headline and a small table shown at the top of a report (e.g. the verdict per cell)."""

    headline: str
    columns: tuple[str, ...]
    rows: list[tuple[str, ...]] = field(default_factory=list)


@dataclass
class LineSection:
    """One pair of cells' lines side by side: ``diffs`` are ``core.linediff.LineDiff`` (a: left, b: right);
    ``name_a``/``name_b`` head the two output columns."""

    title: str
    name_a: str
    name_b: str
    diffs: list[Any] = field(default_factory=list)


def namer(comparison: Any, by_label: bool) -> Any:
    """What a report calls a cell: its id, or (``by_label``) its label."""
    labels = {c.cell_id: c.label for c in comparison.cells}
    if not by_label:
        return lambda cid: cid
    return lambda cid: labels.get(cid, cid) if cid else cid
