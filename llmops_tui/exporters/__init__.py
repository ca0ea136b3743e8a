"""Report exporters: turn a ``core.compare.Comparison`` into files people and CI tools read.

Each format is one module with one public function ``export_<format>(comparison, out_path, **options)``
returning the path written; they are registered by name in ``EXPORTERS``. Options the exporters accept:
``line_diffs`` (a list of ``core.linediff.LineDiff``) and ``line_cells`` (the two cell ids they compare);
html and markdown also take ``summary``, ``line_sections`` (several titled cell pairs side by side) and
``by_label`` (cells named by label, not id): see ``exporters/sections.py``.
No UI toolkit is imported here (import-linter contract).
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from llmops_tui.core.compare import Comparison
from llmops_tui.core.errors import LlmopsError
from llmops_tui.exporters.to_csv import export_csv
from llmops_tui.exporters.to_html import export_html
from llmops_tui.exporters.to_json import export_json
from llmops_tui.exporters.to_junit import export_junit
from llmops_tui.exporters.to_markdown import export_markdown

EXPORTERS: dict[str, Callable[..., Path]] = {
    "csv": export_csv,
    "html": export_html,
    "markdown": export_markdown,
    "junit": export_junit,
    "json": export_json,
}

# Default file name suffix per format (csv writes a folder).
SUFFIXES = {"csv": "-csv", "html": ".html", "markdown": ".md", "junit": ".junit.xml", "json": ".json"}


def default_name(name: str, run_ids: str | list[str], baseline: str | None = None) -> str:
    """``report-<run id>[+<run id>...][-vs-<baseline>]<suffix>``: the run id keeps reports of different
    runs apart, and a baseline chosen by hand keeps a report against it apart from the default one."""
    ids = [run_ids] if isinstance(run_ids, str) else list(run_ids)
    vs = f"-vs-{baseline.replace(':', '_')}" if baseline else ""
    return "report-" + "+".join(ids) + vs + SUFFIXES[name]


def export(name: str, comparison: Comparison, out_path: Path | str, **options: Any) -> Path:
    """Write ``comparison`` in format ``name`` to ``out_path``; returns the path written."""
    try:
        fn = EXPORTERS[name]
    except KeyError:
        raise LlmopsError(
            f"unknown report format '{name}'", field="--format", hint=f"use one of: {', '.join(EXPORTERS)}"
        ) from None
    return fn(comparison, Path(out_path), **options)


__all__ = ["EXPORTERS", "SUFFIXES", "default_name", "export"]
