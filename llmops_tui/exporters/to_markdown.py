"""Markdown exporter: a compact table fit for a pull-request comment."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from llmops_tui.core.compare import Comparison
from llmops_tui.core.format import fmt_delta, fmt_value, sig_mark

_GROUPS = ("metric", "quality", "latency", "cost")


def _esc(text: str) -> str:
    return (
        str(text)
        .replace("\\", "\\\\")
        .replace("|", "\\|")
        .replace("\n", " ")
        .replace("<", "&lt;")
        .replace(">", "&gt;")
    )


def render_markdown(comparison: Comparison) -> str:
    best = comparison.best_cell()
    lines = [
        f"### llmops comparison: {_esc(comparison.use_case)} ({_esc(', '.join(comparison.run_ids))})",
        "",
    ]
    header = ["metric"]
    for c in comparison.cells:
        tags = []
        if c.cell_id == comparison.baseline:
            tags.append("baseline")
        if c.cell_id == best:
            tags.append("best")
        header.append(f"`{c.cell_id}`" + (f" ({', '.join(tags)})" if tags else ""))
    lines.append("| " + " | ".join(header) + " |")
    lines.append("|" + "---|" * len(header))
    for row in comparison.rows:
        if row.group not in _GROUPS:
            continue
        best_cell = row.best_cell()
        cells = [_esc(row.label)]
        for c in comparison.cells:
            mv = row.values.get(c.cell_id)
            if mv is None:
                cells.append("-")
                continue
            text = fmt_value(row, mv)
            if c.cell_id == best_cell:
                text = f"**{text}**"
            if fmt_delta(row, mv):
                text += f" ({fmt_delta(row, mv)}{sig_mark(mv)})"
            cells.append(text)
        lines.append("| " + " | ".join(cells) + " |")
    lines.append("")
    lines.append("Deltas are against the baseline; `*` significant (p < 0.05), `~` tested, not significant.")
    lines.append("")
    lines.append("Cells: " + "; ".join(f"`{c.cell_id}` {_esc(c.label)}" for c in comparison.cells))
    if comparison.gates:
        lines.append("")
        failed = [g for g in comparison.gates if not g.passed]
        passing = [c.cell_id for c in comparison.cells if comparison.passes(c.cell_id)]
        lines.append(
            f"**Gates:** {len(comparison.gates) - len(failed)}/{len(comparison.gates)} checks passed; "
            f"cells passing every gate: {', '.join(f'`{p}`' for p in passing) or 'none'}"
        )
        if best:
            for g in comparison.gates_for(best):
                mark = "pass" if g.passed else "FAIL"
                lines.append(f"- {mark} {_esc(g.gate)} on `{best}`: {_esc(g.reason)}")
    for w in comparison.warnings:
        lines.append(f"> warning: {_esc(w)}")
    return "\n".join(lines) + "\n"


def export_markdown(comparison: Comparison, out_path: Path, **_: Any) -> Path:
    """Write the compact Markdown table to ``out_path``."""
    out_path = Path(out_path)
    out_path.parent.mkdir(parents=True, exist_ok=True)
    out_path.write_text(render_markdown(comparison), encoding="utf-8")
    return out_path
