"""HTML exporter: ONE self-contained file (inline CSS and SVG, no scripts, no external fonts or images).

Comparison table, a bar chart per quality metric with 95% CI whiskers, the latency distribution of every
cell, the gate results and a line-level table (baseline vs best cell) with word-level diffs. Rendered by
jinja2 with autoescape on, so any text from a model (``<script>...``) appears as text.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

from jinja2 import Environment, FileSystemLoader

from llmops_tui.core.compare import Comparison, Row
from llmops_tui.core.format import fmt_ci, fmt_delta, fmt_value, sig_mark
from llmops_tui.exporters.sections import LineSection, Summary, namer

TEMPLATES = Path(__file__).parent / "templates"
MAX_LINES = 300
_BAR_H, _GAP, _LABEL_W, _PLOT_W, _TOP = 18, 6, 96, 420, 8


def _bar_chart(row: Row, comparison: Comparison) -> dict[str, Any] | None:
    values = [(c.cell_id, row.values.get(c.cell_id)) for c in comparison.cells]
    known = [
        (cid, mv)
        for cid, mv in values
        if mv is not None and mv.value is not None and not math.isnan(mv.value)
    ]
    if not known:
        return None
    ends: list[float] = [
        float(v) for _, mv in known for v in (mv.value, mv.ci_low, mv.ci_high) if v is not None
    ]
    top, low = max(ends), min(ends)
    scale_min = min(0.0, low)
    span = (top - scale_min) or 1.0

    def x(v: float) -> float:
        return round(_LABEL_W + (v - scale_min) / span * _PLOT_W, 2)

    best = row.best_cell()
    bars = []
    for i, (cid, mv) in enumerate(values):
        y = _TOP + i * (_BAR_H + _GAP)
        bar: dict[str, Any] = {"cell": cid, "y": y, "ty": y + _BAR_H - 5, "mid": y + _BAR_H / 2}
        value = mv.value if mv is not None else None
        if mv is None or value is None:
            bar.update(x=x(scale_min), w=0, text="-", tx=x(scale_min) + 4, whisker=None)
        else:
            x0, x1 = x(scale_min), x(value)
            bar.update(x=min(x0, x1), w=round(abs(x1 - x0), 2), text=fmt_value(row, mv), tx=max(x0, x1) + 4)
            bar["whisker"] = (
                {"x1": x(mv.ci_low), "x2": x(mv.ci_high)}
                if mv.ci_low is not None and mv.ci_high is not None
                else None
            )
            if bar["whisker"]:
                bar["tx"] = max(bar["tx"], bar["whisker"]["x2"] + 4)
        bar["cls"] = "bar best" if cid == best else ("bar base" if cid == comparison.baseline else "bar")
        bars.append(bar)
    height = _TOP * 2 + len(values) * (_BAR_H + _GAP)
    return {
        "key": row.key,
        "label": row.label,
        "width": _LABEL_W + _PLOT_W + 150,
        "height": height,
        "bars": bars,
        "axis_x": x(scale_min),
        "has_ci": any(mv.ci_low is not None for _, mv in known),
    }


def _latency_chart(comparison: Comparison) -> dict[str, Any] | None:
    hist = comparison.latency_hist or {}
    edges = hist.get("edges") or []
    counts: dict[str, list[int]] = hist.get("counts") or {}
    if len(edges) < 2 or not counts:
        return None
    bins = len(edges) - 1
    bin_w = _PLOT_W / bins
    row_h = 30
    rows = []
    for i, c in enumerate(comparison.cells):
        cnt = counts.get(c.cell_id) or [0] * bins
        peak = max(cnt) or 1
        y0 = _TOP + i * (row_h + _GAP)
        rects = []
        for b, n in enumerate(cnt):
            h = round(n / peak * row_h, 2)
            rects.append(
                {
                    "x": round(_LABEL_W + b * bin_w, 2),
                    "y": round(y0 + row_h - h, 2),
                    "w": round(bin_w - 1, 2),
                    "h": h,
                    "n": n,
                }
            )
        rows.append({"cell": c.cell_id, "ty": y0 + row_h - 8, "rects": rects})
    height = _TOP * 2 + len(rows) * (row_h + _GAP) + 18
    return {
        "width": _LABEL_W + _PLOT_W + 40,
        "height": height,
        "rows": rows,
        "axis_y": height - 6,
        "min_label": f"{edges[0]:,.0f} ms",
        "max_label": f"{edges[-1]:,.0f} ms",
        "max_x": _LABEL_W + _PLOT_W,
        "min_x": _LABEL_W,
    }


def _table(comparison: Comparison) -> list[dict[str, Any]]:
    out = []
    for row in comparison.rows:
        best = row.best_cell()
        cells = []
        for c in comparison.cells:
            mv = row.values.get(c.cell_id)
            if mv is None:
                cells.append({"text": "-", "ci": "", "delta": "", "sig": "", "note": "", "cls": ""})
                continue
            cls = []
            if c.cell_id == best:
                cls.append("best")
            if mv.significant:
                cls.append("sig")
            cells.append(
                {
                    "text": fmt_value(row, mv),
                    "ci": fmt_ci(row, mv),
                    "delta": fmt_delta(row, mv),
                    "sig": sig_mark(mv),
                    "p": f"p={mv.p_value:.3g}" if mv.p_value is not None else "",
                    "note": mv.note,
                    "cls": " ".join(cls),
                }
            )
        out.append({"key": row.key, "label": row.label, "group": row.group, "cells": cells})
    return out


def render_html(
    comparison: Comparison,
    *,
    line_diffs: list[Any] | None = None,
    line_cells: tuple[str, str] | None = None,
    title: str | None = None,
    summary: Summary | None = None,
    line_sections: list[LineSection] | None = None,
    by_label: bool = False,
) -> str:
    """The report as one HTML string. ``summary`` (a table at the top), ``line_sections`` (pairs of cells'
    lines side by side, each titled; an empty list says no line differs) and ``by_label`` (cells named by
    their label, not their id) are optional (``exporters/sections.py``)."""
    env = Environment(
        loader=FileSystemLoader(str(TEMPLATES)), autoescape=True, trim_blocks=True, lstrip_blocks=True
    )
    charts = [
        ch
        for row in comparison.rows
        if row.group in ("metric", "quality", "cost")
        for ch in [_bar_chart(row, comparison)]
        if ch is not None
    ]
    diffs = list(line_diffs or [])
    diffs.sort(key=lambda d: (not d.differs, d.line))
    shown = diffs[:MAX_LINES]
    best = comparison.best_cell()
    return env.get_template("report.html.j2").render(
        title=title or f"llmops report: {comparison.use_case}",
        c=comparison,
        best=best,
        table=_table(comparison),
        charts=charts,
        latency=_latency_chart(comparison),
        lines=shown,
        lines_total=len(diffs),
        lines_differ=sum(1 for d in diffs if d.differs),
        line_cells=line_cells,
        gate_cells=[(cell, comparison.gates_for(cell.cell_id)) for cell in comparison.cells],
        name=namer(comparison, by_label),
        summary=summary,
        line_sections=None if line_sections is None else [_capped(s) for s in line_sections],
    )


def _capped(section: LineSection) -> LineSection:
    return LineSection(section.title, section.name_a, section.name_b, list(section.diffs)[:MAX_LINES])


def export_html(
    comparison: Comparison,
    out_path: Path,
    *,
    line_diffs: list[Any] | None = None,
    line_cells: tuple[str, str] | None = None,
    title: str | None = None,
    summary: Summary | None = None,
    line_sections: list[LineSection] | None = None,
    by_label: bool = False,
    **_: Any,
) -> Path:
    """Write the self-contained HTML report to ``out_path`` (options: see :func:`render_html`)."""
    out_path = Path(out_path)
    out_path.parent.mkdir(parents=True, exist_ok=True)
    out_path.write_text(
        render_html(
            comparison,
            line_diffs=line_diffs,
            line_cells=line_cells,
            title=title,
            summary=summary,
            line_sections=line_sections,
            by_label=by_label,
        ),
        encoding="utf-8",
    )
    return out_path
