"""What a run came to: its summary and its status, both read from the run store.

Shared by the local engine and the Azure ML path, so that ``runs``, ``show-run``, ``compare``, reports and
the app all say the same thing about a run. The status is decided from what the store holds, never from
what the engine believes it did:

- ``completed``: every line of every cell ran and succeeded, and every evaluator produced its metrics;
- ``completed_with_errors``: everything ran, but some lines (flow or evaluation) failed;
- ``failed``: a cell could not run at all (the flow does not load, a tool or package is missing), an
  evaluator could not run, the store could not be written, lines never ran, or every line failed;
- ``cancelled``: a person stopped it; ``interrupted`` (derived by the store): its process died.
"""

from __future__ import annotations

import statistics
import time
import uuid
from dataclasses import dataclass
from typing import Any

from llmops_tui.core.store import RunStore

COMPLETED = "completed"
COMPLETED_WITH_ERRORS = "completed_with_errors"
FAILED = "failed"
CANCELLED = "cancelled"


def _percentile(values: list[float], q: float) -> float | None:
    # numpy (under stats) is imported when a run is summarised, not on the way to a sweep's first call
    from llmops_tui.core.stats import percentile

    return percentile(values, q)


def new_run_id(use_case: str = "") -> str:
    """A sortable, unique run id: UTC time plus six random hex digits."""
    return time.strftime("%Y%m%d-%H%M%S", time.gmtime()) + "-" + uuid.uuid4().hex[:6]


@dataclass(frozen=True)
class Verdict:
    status: str
    error: str | None  # the first cause, one line; None when completed


def decide_status(summary: dict[str, Any], *, cancelled: bool = False, fatal: str | None = None) -> Verdict:
    """The run's status from its summary (see the module docstring for the rules)."""
    if cancelled:
        return Verdict(CANCELLED, fatal)
    if fatal:
        return Verdict(FAILED, fatal)
    cells = summary.get("cells", [])
    for c in cells:
        if c.get("error"):
            return Verdict(FAILED, f"{c.get('label') or c['cell_id']}: {c['error']}")
    for c in cells:
        for evaluator, err in (c.get("eval_errors") or {}).items():
            return Verdict(FAILED, f"{c.get('label') or c['cell_id']}: evaluator {evaluator}: {err}")
    total = sum(c.get("lines_total", 0) for c in cells)
    ran = sum(c.get("lines", 0) for c in cells)
    failed = sum(c.get("errors", 0) for c in cells)
    first = summary.get("first_line_error")
    if ran and failed == ran:
        return Verdict(FAILED, f"every line failed ({failed} of {total}); first: {first}")
    if ran < total:
        return Verdict(FAILED, f"{total - ran} of {total} lines never ran")
    eval_failed = sum(c.get("eval_line_errors", 0) for c in cells)
    if failed or eval_failed:
        parts = []
        if failed:
            parts.append(f"{failed} of {total} lines failed")
        if eval_failed:
            parts.append(f"{eval_failed} evaluation lines failed")
        return Verdict(COMPLETED_WITH_ERRORS, "; ".join(parts) + (f"; first: {first}" if first else ""))
    return Verdict(COMPLETED, None)


def summarize(
    store: RunStore, run_id: str, *, wall_s: float | None = None, status: str | None = None
) -> dict[str, Any]:
    """The run summary (``llmops sweep --json``): totals and per-cell figures from the store."""
    run = store.get_run(run_id)
    cells = store.cells(run_id)
    stats = store.line_stats(run_id)
    eval_stats = store.eval_stats(run_id)
    metrics = store.metrics(run_id)
    latencies = store.latencies(run_id)
    out_cells = []
    for c in cells:
        st = stats.get(c.cell_id, {})
        lat = latencies.get(c.cell_id, [])
        out_cells.append(
            {
                "cell_id": c.cell_id,
                "label": c.extra.get("label"),
                "status": c.status,
                "error": c.extra.get("error"),
                "variants": c.variants,
                "params": c.params,
                "dataset": c.dataset,
                "repeat": c.repeat,
                "lines": st.get("lines", 0),
                "lines_total": c.lines_total,
                "errors": st.get("errors", 0),
                "eval_errors": c.extra.get("eval_errors") or {},
                "eval_line_errors": eval_stats.get(c.cell_id, 0),
                "metrics": metrics.get(c.cell_id, {}),
                "llm_calls": st.get("llm_calls", 0),
                "requests": st.get("requests", 0),
                "retries": st.get("retries", 0),
                "cache_hits": st.get("cache_hits", 0),
                "tokens": {
                    "prompt": st.get("prompt_tokens", 0),
                    "completion": st.get("completion_tokens", 0),
                    "total": st.get("total_tokens", 0),
                },
                "latency_ms": {
                    "p50": round(statistics.median(lat), 2) if lat else None,
                    "p95": round(_percentile(lat, 95) or 0, 2) if lat else None,
                },
            }
        )
    first_error = store.first_line_error(run_id)
    return {
        "run_id": run_id,
        "status": status or (run.status if run else None),
        "error": run.error if run else None,
        "use_case": run.use_case if run else None,
        "wall_s": round(wall_s, 3) if wall_s is not None else None,
        "llm_calls": sum(c["llm_calls"] for c in out_cells),
        "requests": sum(c["requests"] for c in out_cells),
        "retries": sum(c["retries"] for c in out_cells),
        "cache_hits": sum(c["cache_hits"] for c in out_cells),
        "lines_total": sum(c["lines_total"] for c in out_cells),
        "lines_done": sum(c["lines"] for c in out_cells),
        "errors": sum(c["errors"] for c in out_cells),
        "eval_errors": sum(c["eval_line_errors"] + len(c["eval_errors"]) for c in out_cells),
        "first_line_error": first_error,
        "cell_count": len(out_cells),
        "cells": out_cells,
    }
