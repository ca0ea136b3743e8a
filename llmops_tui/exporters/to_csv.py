"""CSV exporter: one file per table plus a tidy long-format file.

``out_path`` is a folder (files ``comparison.csv``, ``long.csv``, ``cells.csv``, ``gates.csv`` and, with line
diffs, ``lines.csv``) or, when it ends in ``.csv``, a stem: ``report.csv`` gives ``report-comparison.csv`` ...
"""

from __future__ import annotations

import csv
import json
from pathlib import Path
from typing import Any

from llmops_tui.core.compare import Comparison


def _writer(path: Path, header: list[str], rows: list[list[Any]]) -> Path:
    with open(path, "w", newline="", encoding="utf-8") as fh:
        w = csv.writer(fh)
        w.writerow(header)
        w.writerows(rows)
    return path


def export_csv(
    comparison: Comparison,
    out_path: Path,
    *,
    line_diffs: list[Any] | None = None,
    line_cells: tuple[str, str] | None = None,
    **_: Any,
) -> Path:
    """Write the CSV tables; returns the folder (or the first file's folder for the suffix form)."""
    out_path = Path(out_path)
    if out_path.suffix.lower() == ".csv":
        folder, stem = out_path.parent, out_path.stem + "-"
    else:
        folder, stem = out_path, ""
    folder.mkdir(parents=True, exist_ok=True)
    cells = comparison.cells
    _writer(
        folder / f"{stem}comparison.csv",
        ["key", "group", "label"] + [c.cell_id for c in cells],
        [
            [r.key, r.group, r.label]
            + [r.values[c.cell_id].value if c.cell_id in r.values else None for c in cells]
            for r in comparison.rows
        ],
    )
    long_rows = []
    for r in comparison.rows:
        for c in cells:
            mv = r.values.get(c.cell_id)
            if mv is None:
                continue
            long_rows.append(
                [
                    r.key,
                    r.group,
                    c.cell_id,
                    c.run_id,
                    mv.value,
                    mv.ci_low,
                    mv.ci_high,
                    mv.n,
                    mv.delta,
                    mv.p_value,
                    "" if mv.significant is None else mv.significant,
                    mv.per_line,
                    c.is_baseline,
                    mv.note,
                ]
            )
    _writer(
        folder / f"{stem}long.csv",
        [
            "key",
            "group",
            "cell_id",
            "run_id",
            "value",
            "ci_low",
            "ci_high",
            "n",
            "delta",
            "p_value",
            "significant",
            "per_line",
            "is_baseline",
            "note",
        ],
        long_rows,
    )
    _writer(
        folder / f"{stem}cells.csv",
        [
            "cell_id",
            "run_id",
            "label",
            "variants",
            "params",
            "dataset",
            "repeat",
            "is_baseline",
            "passes_gates",
        ],
        [
            [
                c.cell_id,
                c.run_id,
                c.label,
                json.dumps(c.variants),
                json.dumps(c.params),
                c.dataset,
                c.repeat,
                c.is_baseline,
                comparison.passes(c.cell_id),
            ]
            for c in cells
        ],
    )
    _writer(
        folder / f"{stem}gates.csv",
        ["gate", "cell_id", "metric", "op", "threshold", "value", "passed", "reason"],
        [
            [g.gate, g.cell_id, g.metric, g.op, g.threshold, g.value, g.passed, g.reason]
            for g in comparison.gates
        ],
    )
    if line_diffs is not None:
        _writer(
            folder / f"{stem}lines.csv",
            [
                "line",
                "inputs",
                "output_a",
                "output_b",
                "status_a",
                "status_b",
                "error_a",
                "error_b",
                "scores_a",
                "scores_b",
                "differs",
                "cell_a",
                "cell_b",
            ],
            [
                [
                    d.line,
                    json.dumps(d.inputs, ensure_ascii=False),
                    json.dumps(d.output_a, ensure_ascii=False),
                    json.dumps(d.output_b, ensure_ascii=False),
                    d.status_a,
                    d.status_b,
                    d.error_a,
                    d.error_b,
                    json.dumps(d.scores_a),
                    json.dumps(d.scores_b),
                    d.differs,
                    line_cells[0] if line_cells else "",
                    line_cells[1] if line_cells else "",
                ]
                for d in line_diffs
            ],
        )
    return folder
