"""JSON exporter: the whole comparison (and line diffs when given), machine-readable."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from llmops_tui.core.compare import Comparison


def export_json(
    comparison: Comparison,
    out_path: Path,
    *,
    line_diffs: list[Any] | None = None,
    line_cells: tuple[str, str] | None = None,
    **_: Any,
) -> Path:
    """Write ``comparison.to_dict()`` (plus ``line_diffs`` under "lines", and the two cells they compare,
    a then b, under "line_cells") as indented UTF-8 JSON."""
    out_path = Path(out_path)
    out_path.parent.mkdir(parents=True, exist_ok=True)
    data = comparison.to_dict()
    if line_diffs is not None:
        data["lines"] = [d.to_dict() for d in line_diffs]
        data["line_cells"] = list(line_cells) if line_cells else None
    out_path.write_text(json.dumps(data, indent=2, ensure_ascii=False, default=str) + "\n", encoding="utf-8")
    return out_path
