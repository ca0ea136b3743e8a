"""Markdown exporter: a compact table fit for a pull-request comment."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from llmops_tui.core.compare import Comparison
from llmops_tui.core.format import fmt_delta, fmt_value, sig_mark
from llmops_tui.exporters.sections import LineSection, Summary, namer

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


def render_markdown(
    comparison: Comparison,
    *,
    summary: Summary | None = None,
    line_sections: list[LineSection] | None = None,
    by_label: bool = False,
) -> str:
    """The table; optionally a ``summary`` above it, ``line_sections`` below it (an empty list says no
    line differs) and cells named by label (``by_label``): see ``exporters/sections.py``."""
    best = comparison.best_cell()
    name = namer(comparison, by_label)

    def cell_ref(cid: str | None) -> str:
        return _esc(name(cid)) if by_label else f"`{cid}`"

    lines = [
        f"### llmops comparison: {_esc(comparison.use_case)} ({_esc(', '.join(comparison.run_ids))})",
        "",
    ]
    if summary is not None:
        lines += [f"**{_esc(summary.headline)}**", ""]
        lines.append("| " + " | ".join(_esc(c) for c in summary.columns) + " |")
        lines.append("|" + "---|" * len(summary.columns))
        lines += ["| " + " | ".join(_esc(v) for v in row) + " |" for row in summary.rows]
        lines.append("")
    header = ["metric"]
    for c in comparison.cells:
        tags = []
        if c.cell_id == comparison.baseline:
            tags.append("baseline")
        if c.cell_id == best:
            tags.append("best")
        header.append(cell_ref(c.cell_id) + (f" ({', '.join(tags)})" if tags else ""))
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
    if not by_label:
        lines.append("Cells: " + "; ".join(f"`{c.cell_id}` {_esc(c.label)}" for c in comparison.cells))
    if comparison.gates:
        lines.append("")
        failed = [g for g in comparison.gates if not g.passed]
        passing = [c.cell_id for c in comparison.cells if comparison.passes(c.cell_id)]
        lines.append(
            f"**Gates:** {len(comparison.gates) - len(failed)}/{len(comparison.gates)} checks passed; "
            f"cells passing every gate: {', '.join(cell_ref(p) for p in passing) or 'none'}"
        )
        if best:
            for g in comparison.gates_for(best):
                mark = "pass" if g.passed else "FAIL"
                lines.append(f"- {mark} {_esc(g.gate)} on {cell_ref(best)}: {_esc(g.reason)}")
    for w in comparison.warnings:
        lines.append(f"> warning: {_esc(w)}")
    if line_sections is not None:
        lines += _sections(line_sections)
    return "\n".join(lines) + "\n"


def _side(diff: list[tuple[str, str]], keep: str) -> str:
    """One side of a word diff: the equal words and the ``keep`` ones (delete: a's, insert: b's) in bold."""
    return "".join(
        _esc(text) if op == "equal" else f"**{_esc(text).strip()}**" if text.strip() else _esc(text)
        for op, text in diff
        if op in ("equal", keep)
    )


def _sections(sections: list[LineSection]) -> list[str]:
    out: list[str] = [""]
    if not sections:
        return out + ["No line differs."]
    for s in sections:
        out += ["", f"#### Lines differing: {_esc(s.title)}", ""]
        out.append(f"| line | inputs | {_esc(s.name_a)} | {_esc(s.name_b)} |")
        out.append("|---|---|---|---|")
        for d in s.diffs:
            a, b = _side(d.diff, "delete"), _side(d.diff, "insert")
            if d.status_a != "ok":
                a += f" ({_esc(d.status_a or 'missing')}{': ' + _esc(d.error_a) if d.error_a else ''})"
            if d.status_b != "ok":
                b += f" ({_esc(d.status_b or 'missing')}{': ' + _esc(d.error_b) if d.error_b else ''})"
            inputs = _esc(json.dumps(d.inputs, ensure_ascii=False, sort_keys=True))
            out.append(f"| {d.line} | {inputs} | {a} | {b} |")
    return out


def export_markdown(
    comparison: Comparison,
    out_path: Path,
    *,
    summary: Summary | None = None,
    line_sections: list[LineSection] | None = None,
    by_label: bool = False,
    **_: Any,
) -> Path:
    """Write the compact Markdown table to ``out_path`` (options: see :func:`render_markdown`)."""
    out_path = Path(out_path)
    out_path.parent.mkdir(parents=True, exist_ok=True)
    out_path.write_text(
        render_markdown(comparison, summary=summary, line_sections=line_sections, by_label=by_label),
        encoding="utf-8",
    )
    return out_path
