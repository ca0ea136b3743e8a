"""A small public Python API for notebooks and scripts.

    from llmops_tui import api

    ws = api.open_workspace(".")
    plan = api.plan(ws, "named_entity_recognition", llm_endpoint="sandbox", limit=10)
    run_id = api.run(ws, plan)                      # runs the sweep, returns the run id
    api.lines(ws, run_id)                           # pandas DataFrame, one row per cell and line
    comparison = api.compare(ws, run_id)            # core.compare.Comparison
    api.comparison_table(comparison)                # wide DataFrame: metrics x cells
    api.comparison_frame(comparison)                # tidy long DataFrame with CIs, deltas, p-values

Everything reads and writes the same run store as the CLI and the app (``<workspace>/.llmops/``), so runs
made here show up in ``llmops runs`` and in the app. Prompt flow is only imported when ``run`` runs a sweep.
"""

from __future__ import annotations

import threading
from pathlib import Path
from typing import TYPE_CHECKING, Any

from llmops_tui.core.compare import Comparison, build_comparison
from llmops_tui.core.store import RunStore
from llmops_tui.core.sweep import SweepOptions, SweepPlan, plan_sweep
from llmops_tui.core.workspace import Workspace, load_workspace

if TYPE_CHECKING:
    import pandas as pd

__all__ = [
    "open_workspace",
    "plan",
    "run",
    "runs",
    "lines",
    "compare",
    "comparison_table",
    "comparison_frame",
    "line_diff_frame",
]


def _ws(ws: Workspace | str | Path) -> Workspace:
    return ws if isinstance(ws, Workspace) else load_workspace(ws)


def open_workspace(root: str | Path = ".", *, env: str | None = None) -> Workspace:
    """Load every use case of the workspace folder ``root`` (optionally with an environment overlay)."""
    return load_workspace(root, env=env)


def plan(ws: Workspace | str | Path, use_case: str, **options: Any) -> SweepPlan:
    """Plan a sweep of ``use_case``. ``options`` are ``SweepOptions`` fields: variants, grid, datasets,
    repeat, concurrency, llm_endpoint ("sandbox" runs offline), limit, no_cache, ..."""
    w = _ws(ws)
    return plan_sweep(
        w.get(use_case), SweepOptions(**options), allow_remote=options.get("target") == "azureml"
    )


def run(
    ws: Workspace | str | Path,
    sweep: SweepPlan | str,
    *,
    on_event: Any = None,
    cancel: threading.Event | None = None,
    **options: Any,
) -> str:
    """Run a sweep to the end, where its plan says (``target="azureml"`` runs in Azure ML), and return its
    run id. ``sweep`` is a plan or a use-case name (then ``options`` plan it). ``on_event`` is called with
    every engine event (progress, metrics, ...)."""
    from llmops_tui.core.dispatch import start_sweep

    w = _ws(ws)
    the_plan = sweep if isinstance(sweep, SweepPlan) else plan(w, sweep, **options)
    uc = w.get(the_plan.use_case)
    run_id: str | None = None
    for event in start_sweep(w.root, uc, the_plan, cancel=cancel):
        run_id = run_id or getattr(event, "run_id", None)
        if on_event is not None:
            on_event(event)
    if run_id is None:
        raise RuntimeError("the engine reported no run id")
    return run_id


def _store(ws: Workspace | str | Path) -> RunStore:
    return RunStore.for_workspace(_ws(ws).root)


def _run_id(store: RunStore, run_id: str) -> str:
    """The full id of run ``run_id`` (or a unique prefix of it); LlmopsError when there is none."""
    return store.require_run(run_id, field="run_id").run_id


def runs(ws: Workspace | str | Path) -> pd.DataFrame:
    """Every run in the workspace's store, newest first."""
    import pandas as pd

    with _store(ws) as store:
        return pd.DataFrame([r.to_dict() for r in store.list_runs()])


def lines(ws: Workspace | str | Path, run_id: str, cell_id: str | None = None) -> pd.DataFrame:
    """One row per cell and line: status, latency, tokens, ``out.<name>`` outputs, ``in.<name>`` inputs and
    ``score.<evaluator>.<metric>`` per-line evaluation scores."""
    import pandas as pd

    with _store(ws) as store:
        rid = _run_id(store, run_id)
        records = []
        cells = [c for c in store.cells(rid) if cell_id is None or c.cell_id == cell_id]
        for cell in cells:
            scores: dict[int, dict[str, Any]] = {}
            for ev in store.eval_lines(rid, cell.cell_id):
                if isinstance(ev["outputs"], dict):
                    for name, value in ev["outputs"].items():
                        scores.setdefault(ev["line"], {})[f"score.{ev['evaluator']}.{name}"] = value
            for ln in store.lines(rid, cell.cell_id):
                row: dict[str, Any] = {
                    "cell_id": cell.cell_id,
                    "dataset": cell.dataset,
                    "variants": " ".join(f"{k}={v}" for k, v in cell.variants.items()),
                    "params": " ".join(f"{k}={v}" for k, v in cell.params.items()),
                    "line": ln.line,
                    "status": ln.status,
                    "error": ln.error,
                    "latency_ms": ln.latency_ms,
                    "prompt_tokens": ln.prompt_tokens,
                    "completion_tokens": ln.completion_tokens,
                    "total_tokens": ln.total_tokens,
                    "llm_calls": ln.llm_calls,
                    "cache_hit": ln.cache_hit,
                }
                row.update({f"in.{k}": v for k, v in (ln.inputs or {}).items()})
                row.update({f"out.{k}": v for k, v in (ln.outputs or {}).items()})
                row.update(scores.get(ln.line, {}))
                records.append(row)
    return pd.DataFrame(records)


def compare(
    ws: Workspace | str | Path, run_ids: str | list[str], *, baseline: str | None = None
) -> Comparison:
    """The comparison of the run(s): the same numbers as ``llmops compare``, gates and prices included."""
    w = _ws(ws)
    with RunStore.for_workspace(w.root) as store:
        return build_comparison(store, run_ids, workspace_root=w.root, baseline=baseline)


def comparison_table(comparison: Comparison) -> pd.DataFrame:
    """Wide table: one row per metric (index ``key``), one column per cell id, plain values."""
    import pandas as pd

    data = {
        c.cell_id: [r.values[c.cell_id].value if c.cell_id in r.values else None for r in comparison.rows]
        for c in comparison.cells
    }
    return pd.DataFrame(data, index=pd.Index([r.key for r in comparison.rows], name="key"))


def comparison_frame(comparison: Comparison) -> pd.DataFrame:
    """Tidy long table: one row per metric and cell with value, 95% CI, n, delta, p-value, significance."""
    import pandas as pd

    records = []
    for r in comparison.rows:
        for c in comparison.cells:
            mv = r.values.get(c.cell_id)
            if mv is None:
                continue
            records.append(
                {
                    "key": r.key,
                    "group": r.group,
                    "cell_id": c.cell_id,
                    "label": c.label,
                    "is_baseline": c.is_baseline,
                    "value": mv.value,
                    "ci_low": mv.ci_low,
                    "ci_high": mv.ci_high,
                    "n": mv.n,
                    "delta": mv.delta,
                    "p_value": mv.p_value,
                    "significant": mv.significant,
                    "note": mv.note,
                }
            )
    return pd.DataFrame(records)


def line_diff_frame(
    ws: Workspace | str | Path, run_id: str, cell_a: str, cell_b: str, *, only: str = "all"
) -> pd.DataFrame:
    """Two cells' outputs line by line (``only``: all, differ or failed), with their per-line scores."""
    import pandas as pd

    from llmops_tui.core.linediff import line_diff, output_text

    with _store(ws) as store:
        diffs = line_diff(store, _run_id(store, run_id), cell_a, cell_b, only=only)
    return pd.DataFrame(
        [
            {
                "line": d.line,
                "output_a": output_text(d.output_a),
                "output_b": output_text(d.output_b),
                "status_a": d.status_a,
                "status_b": d.status_b,
                "differs": d.differs,
                **{f"a.{k}": v for k, v in d.scores_a.items()},
                **{f"b.{k}": v for k, v in d.scores_b.items()},
            }
            for d in diffs
        ]
    )
