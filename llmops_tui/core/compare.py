"""The comparison model: cells of one run (or several runs of one use case) side by side.

One column per cell, one row per number: every evaluation metric (``<evaluator>.<metric>``), line-level
success and error rates, latency percentiles, tokens, estimated cost, LLM calls and cache hits. Every value
of a non-baseline cell carries its delta to the baseline cell on the same dataset; where per-line scores
exist it also carries a 95% confidence interval and a paired significance test (see ``core.stats``).
Quality gates from the use case's ``llmops.yaml`` are evaluated per cell.

Headless and fast: no promptflow, no UI toolkit. Reads the run store only.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from llmops_tui.core import stats
from llmops_tui.core.cost import price_tokens
from llmops_tui.core.errors import LlmopsError
from llmops_tui.core.flows import model_name
from llmops_tui.core.format import json_safe
from llmops_tui.core.store import CellRecord, LineRecord, RunRecord, RunStore
from llmops_tui.core.sweep import cell_label

GROUPS = ("metric", "quality", "latency", "tokens", "cost", "calls")
_LOWER_IS_BETTER_WORDS = (
    "error",
    "loss",
    "latency",
    "distance",
    "wer",
    "cer",
    "perplexity",
    "toxicity",
    "cost",
)
LATENCY_BINS = 20


@dataclass
class MetricValue:
    """One number of one cell, with what we know about its uncertainty and its difference to the baseline."""

    value: float | None
    ci_low: float | None = None
    ci_high: float | None = None
    n: int = 0  # lines behind the value (0 for aggregate-only metrics)
    delta: float | None = None  # value - baseline value on the same dataset
    p_value: float | None = None  # paired test against the baseline over the same lines
    significant: bool | None = None  # None: not tested (baseline itself, aggregate-only, no pairs)
    per_line: bool = False  # True when per-line scores exist (CI and tests possible)
    note: str = ""
    free: bool = False  # a cost of 0 because the sandbox model answered (core.cost)


@dataclass
class CellColumn:
    cell_id: str
    label: str
    variants: dict
    params: dict
    dataset: str
    repeat: int
    run_id: str
    is_baseline: bool
    lines_done: int = 0  # lines with a stored result (ok or failed)
    lines_total: int = 0  # lines the cell should run
    # evaluator -> lines whose evaluation failed (only evaluators with at least one failure)
    eval_failures: dict[str, int] = field(default_factory=dict)

    @property
    def complete(self) -> bool:
        return self.lines_done >= self.lines_total


@dataclass
class Row:
    key: str
    group: str  # "metric" | "quality" | "latency" | "tokens" | "cost" | "calls"
    label: str
    higher_is_better: bool | None
    values: dict[str, MetricValue]  # by cell_id

    def best_cell(self) -> str | None:
        """The cell with the best value; None when direction is unknown, values are missing or all equal."""
        if self.higher_is_better is None:
            return None
        known = [
            (cid, v.value)
            for cid, v in self.values.items()
            if v.value is not None and not math.isnan(v.value)
        ]
        if not known:
            return None
        if len(known) > 1 and len({round(val, 12) for _, val in known}) == 1:
            return None
        pick = max if self.higher_is_better else min
        return pick(known, key=lambda item: item[1])[0]


@dataclass
class GateResult:
    gate: str  # as written, e.g. "matcher.f1 >= 0.8"
    cell_id: str
    metric: str  # the row key the gate resolved to (or the name as written when unresolved)
    op: str
    threshold: float
    value: float | None
    passed: bool
    reason: str


@dataclass
class Comparison:
    use_case: str
    run_ids: list[str]
    cells: list[CellColumn]
    rows: list[Row]
    baseline: str
    gates: list[GateResult]
    warnings: list[str]
    # Latency histogram over shared bins, for the report's distribution chart:
    # {"edges": [...], "counts": {cell_id: [...]}}
    latency_hist: dict[str, Any] = field(default_factory=dict)
    # cell_id -> the cell it is compared with (the baseline's configuration on the cell's own dataset);
    # None for the baseline itself and for cells whose dataset has no baseline configuration.
    references: dict[str, str | None] = field(default_factory=dict)
    # run_id -> its status (completed, completed_with_errors, failed, cancelled, interrupted, running)
    run_status: dict[str, str] = field(default_factory=dict)

    def row(self, key: str) -> Row | None:
        for r in self.rows:
            if r.key == key:
                return r
        return None

    def cell(self, cell_id: str) -> CellColumn | None:
        for c in self.cells:
            if c.cell_id == cell_id:
                return c
        return None

    def gates_for(self, cell_id: str) -> list[GateResult]:
        return [g for g in self.gates if g.cell_id == cell_id]

    def passes(self, cell_id: str) -> bool:
        return all(g.passed for g in self.gates_for(cell_id))

    def primary_row(self) -> Row | None:
        """The first evaluation metric with a known direction, else the success rate."""
        for r in self.rows:
            if r.group == "metric" and r.higher_is_better is not None:
                return r
        return self.row("success_rate")

    def best_cell(self) -> str | None:
        """The cell that passes the most gates, then has the best primary metric, then comes first."""
        if not self.cells:
            return None
        primary = self.primary_row()

        def score(idx_cell: tuple[int, CellColumn]) -> tuple[float, float, int]:
            idx, cell = idx_cell
            passed = sum(1 for g in self.gates_for(cell.cell_id) if g.passed)
            metric = -math.inf
            if primary is not None:
                mv = primary.values.get(cell.cell_id)
                if mv is not None and mv.value is not None and not math.isnan(mv.value):
                    metric = mv.value if primary.higher_is_better is not False else -mv.value
            return (passed, metric, -idx)

        return max(enumerate(self.cells), key=score)[1].cell_id

    def to_dict(self) -> dict[str, Any]:
        """Everything, JSON-ready (NaN becomes null)."""
        return json_safe(
            {
                "use_case": self.use_case,
                "run_ids": list(self.run_ids),
                "baseline": self.baseline,
                "best_cell": self.best_cell(),
                "cells": [asdict(c) for c in self.cells],
                "rows": [
                    {
                        "key": r.key,
                        "group": r.group,
                        "label": r.label,
                        "higher_is_better": r.higher_is_better,
                        "best_cell": r.best_cell(),
                        "values": {cid: asdict(v) for cid, v in r.values.items()},
                    }
                    for r in self.rows
                ],
                "gates": [asdict(g) for g in self.gates],
                "warnings": list(self.warnings),
                "latency_hist": self.latency_hist,
                "references": dict(self.references),
                "run_status": dict(self.run_status),
            }
        )


# ------------------------------------------------------------------------------------------- helpers


_PARAM_SHORT = {"temperature": "t", "top_p": "top_p", "max_tokens": "max_tokens"}


def short_labels(cells: Iterable[Any]) -> dict[str, str]:
    """A short label per cell in the words people use, made of what differs between the given cells:
    ``variant_2 · t=0.7``, ``variant_1 · tickets_dev``, ``variant_0 · #2`` (repetition). Works on sweep
    ``Cell``s, store ``CellRecord``s and ``CellColumn``s (anything with cell_id, variants, params, dataset
    and repeat). A cell that differs in nothing shows its variants (or "defaults"); labels that would
    still collide get the cell id's first characters."""
    items = list(cells)
    if not items:
        return {}

    def varies(get: Any) -> bool:
        return len({repr(get(c)) for c in items}) > 1

    nodes: list[str] = []
    for c in items:
        nodes += [n for n in c.variants if n not in nodes]
    var_nodes = [n for n in nodes if varies(lambda c, n=n: c.variants.get(n))]
    keys: list[str] = []
    for c in items:
        keys += [k for k in c.params if k not in keys]
    var_keys = [k for k in keys if varies(lambda c, k=k: c.params.get(k))]
    names = [k.partition(".")[2] or k for k in var_keys]
    short = {
        k: (_PARAM_SHORT.get(name, name) if names.count(name) == 1 else k)
        for k, name in zip(var_keys, names, strict=True)
    }
    show_dataset = varies(lambda c: c.dataset)
    show_repeat = varies(lambda c: c.repeat)
    out: dict[str, str] = {}
    for c in items:
        parts: list[str] = []
        if len(var_nodes) == 1:
            parts.append(str(c.variants.get(var_nodes[0], "-")))
        else:
            parts += [f"{n}={c.variants.get(n, '-')}" for n in var_nodes]
        parts += [f"{short[k]}={c.params[k]}" for k in var_keys if k in c.params]
        if show_dataset:
            parts.append(str(c.dataset))
        if show_repeat:
            parts.append(f"#{c.repeat + 1}")
        if not parts:
            parts = [" ".join(str(v) for v in c.variants.values()) or "defaults"]
        out[c.cell_id] = " · ".join(parts)
    seen: dict[str, int] = {}
    for label in out.values():
        seen[label] = seen.get(label, 0) + 1
    for cid, label in out.items():
        if seen[label] > 1:
            # several runs: the run tells them apart; else the cell id does
            out[cid] = f"{label} ({cid.split(':')[0][-6:] if ':' in cid else cid[:6]})"
    return out


def metric_direction(name: str) -> bool:
    """Guess whether a higher evaluation metric is better from its name (errors, losses, latency: lower)."""
    low = name.lower()
    return not any(word in low for word in _LOWER_IS_BETTER_WORDS)


def _num(value: Any) -> float | None:
    if isinstance(value, bool):
        return float(value)
    if isinstance(value, int | float):
        f = float(value)
        return f if math.isfinite(f) else None
    return None


def _resolve_runs(store: RunStore, run_ids: str | list[str]) -> list[RunRecord]:
    ids = [run_ids] if isinstance(run_ids, str) else list(run_ids)
    if not ids:
        raise LlmopsError("no run id given", field="RUN_ID", hint="see `llmops runs` for run ids")
    runs = []
    for rid in ids:
        run = store.require_run(rid)
        runs.append(run)
    names = {r.use_case for r in runs}
    if len(names) > 1:
        raise LlmopsError(
            f"runs belong to different use cases ({', '.join(sorted(names))})",
            field="RUN_ID",
            hint="compare runs of one use case",
        )
    return runs


def _load_use_case(workspace_root: Path | None, name: str, env: str | None, warnings: list[str]) -> Any:
    if workspace_root is None:
        warnings.append("no workspace given: gates and prices from llmops.yaml are not applied")
        return None
    from llmops_tui.core.workspace import load_workspace

    try:
        ws = load_workspace(workspace_root, env=env, inspect_datasets=False)
        return ws.get(name)
    except LlmopsError as exc:
        warnings.append(f"use case '{name}' not loaded ({exc}): gates and prices are not applied")
        return None


def _cell_models(uc: Any, cell: CellRecord) -> list[str | None]:
    """The model (deployment_name or model) each LLM node of the flow used in this cell."""
    flow = getattr(uc, "standard_flow", None) if uc is not None else None
    if flow is None:
        return []
    return [model_name(n.run_inputs(cell.variants.get(n.name), cell.params)) for n in flow.llm_nodes]


def _cost(
    uc: Any, cell: CellRecord, prompt_tokens: int, completion_tokens: int, sandbox: bool
) -> MetricValue:
    if uc is None and not sandbox:
        return MetricValue(None, note="no workspace: prices unknown")
    models = _cell_models(uc, cell) if uc is not None else []
    cost = price_tokens(
        uc.extras.prices if uc is not None else {}, models, prompt_tokens, completion_tokens, sandbox=sandbox
    )
    return MetricValue(cost.usd, note=cost.note, free=cost.free)


# -------------------------------------------------------------------------------------- the builder


@dataclass
class _CellData:
    col: CellColumn
    rec: CellRecord
    lines: dict[int, LineRecord]
    # "<evaluator>.<metric>" -> {line: score}
    scores: dict[str, dict[int, float]]
    aggregates: dict[str, float]


def _pick_baseline(runs: list[RunRecord], cells: list[_CellData], requested: str | None) -> _CellData:
    if requested:
        for c in cells:
            if requested in (c.col.cell_id, c.rec.cell_id):
                return c
        matches = [
            c for c in cells if c.col.cell_id.startswith(requested) or c.rec.cell_id.startswith(requested)
        ]
        if len(matches) == 1:
            return matches[0]
        what = f"cell '{requested}' is ambiguous" if matches else f"no cell '{requested}'"
        raise LlmopsError(
            f"{what} in the compared runs",
            field="--baseline",
            hint="cells: "
            + ", ".join(c.col.cell_id for c in cells[:12])
            + (" ..." if len(cells) > 12 else ""),
        )
    configured = runs[0].config.get("baseline")
    for c in cells:
        if configured and c.rec.cell_id == configured and c.col.run_id == runs[0].run_id:
            return c
    defaults = runs[0].config.get("defaults") or {}
    for c in cells:
        if c.rec.variants == defaults and not c.rec.params and c.rec.repeat == 0:
            return c
    return cells[0]


def build_comparison(
    store: RunStore,
    run_ids: str | list[str],
    *,
    workspace_root: Path | None = None,
    baseline: str | None = None,
) -> Comparison:
    """Build the side-by-side comparison of every cell of the given run(s).

    ``baseline`` is a cell id (or unique prefix); by default the run config's ``baseline`` cell, else the
    all-default-variant cell without params. With ``workspace_root`` the use case's ``llmops.yaml`` supplies
    gates and prices. Raises LlmopsError for unknown runs or cells.
    """
    runs = _resolve_runs(store, run_ids)
    warnings = _run_warnings(runs)
    uc = _load_use_case(workspace_root, runs[0].use_case, runs[0].env, warnings)
    cells = _load_cells(store, runs)
    if not cells:
        raise LlmopsError(f"run '{runs[0].run_id}' has no cells", field="RUN_ID")
    # People read cells by what differs between them (variant, parameter, dataset), not by hash.
    labels = short_labels([c.col for c in cells])
    for c in cells:
        c.col.label = labels[c.col.cell_id]
        for evaluator, failed in sorted(c.col.eval_failures.items()):
            warnings.append(
                f"cell '{c.col.label}': evaluator '{evaluator}' failed on {failed} line(s): its metrics "
                "leave those lines out, and gates on them fail"
            )
    base = _pick_baseline(runs, cells, baseline)
    base.col.is_baseline = True
    ctx = _Context(cells, _baseline_for(cells, base, warnings), warnings)
    sandboxed = {r.run_id for r in runs if r.uses_sandbox}
    latency = _latencies(cells)
    sums = _line_sums(cells)
    rows = [
        *_metric_rows(ctx),
        *_quality_rows(ctx),
        *_latency_rows(ctx, latency),
        *_token_rows(ctx, sums),
        *_cost_rows(ctx, sums, uc, sandboxed),
        *_call_rows(ctx, sums),
    ]
    comparison = Comparison(
        use_case=runs[0].use_case,
        run_ids=[r.run_id for r in runs],
        cells=[c.col for c in cells],
        rows=rows,
        baseline=base.col.cell_id,
        gates=[],
        warnings=warnings,
        latency_hist=_latency_hist(latency),
        references={
            cid: (None if b is None or b.col.cell_id == cid else b.col.cell_id)
            for cid, b in ctx.base_for.items()
        },
        run_status={r.run_id: r.status for r in runs},
    )
    if uc is not None:
        from llmops_tui.core.gates import evaluate_gates

        comparison.gates = evaluate_gates(comparison, uc.extras.gates)
    comparison.gates += _run_status_gates(comparison, runs)
    return comparison


def _run_warnings(runs: list[RunRecord]) -> list[str]:
    """What holds for whole runs: answers from the sandbox, runs that did not complete."""
    warnings: list[str] = []
    sandboxed = [r.run_id for r in runs if r.uses_sandbox]
    if sandboxed:
        # Answers shown from these runs come from a stand-in: say so wherever they are shown.
        warnings.append(
            "sandbox model: the answers and metrics of "
            + ("this run" if len(runs) == 1 else "run(s) " + ", ".join(sandboxed))
            + " come from the offline sandbox model, a deterministic stand-in; they say nothing about a real"
            " model's quality"
        )
    for r in runs:
        if r.status != "completed":
            warnings.append(
                f"run {r.run_id} is {r.status}"
                + (f": {r.error}" if r.error else "")
                + "; its cells fail the "
                f"'{RUN_COMPLETED_GATE}' gate"
            )
    return warnings


def _load_cells(store: RunStore, runs: list[RunRecord]) -> list[_CellData]:
    """Every cell of the runs with its lines, per-line scores and aggregate metrics. With several runs a
    cell's id is ``<run_id>:<cell_id>``."""
    multi = len(runs) > 1
    cells: list[_CellData] = []
    for run in runs:
        metrics = store.metrics(run.run_id)
        by_cell: dict[str, dict[int, LineRecord]] = {}
        for ln in store.lines(run.run_id):
            by_cell.setdefault(ln.cell_id, {})[ln.line] = ln
        for rec in store.cells(run.run_id):
            col = CellColumn(
                cell_id=f"{run.run_id}:{rec.cell_id}" if multi else rec.cell_id,
                label=cell_label(rec.variants, rec.params, rec.dataset, rec.repeat),
                variants=dict(rec.variants),
                params=dict(rec.params),
                dataset=rec.dataset,
                repeat=rec.repeat,
                run_id=run.run_id,
                is_baseline=False,
            )
            lines = by_cell.get(rec.cell_id, {})
            col.lines_done = len(lines)
            col.lines_total = max(rec.lines_total, len(lines))
            scores: dict[str, dict[int, float]] = {}
            for ev in store.eval_lines(run.run_id, rec.cell_id):
                if ev["status"] != "ok" or not isinstance(ev["outputs"], dict):
                    col.eval_failures[ev["evaluator"]] = col.eval_failures.get(ev["evaluator"], 0) + 1
                    continue
                for name, raw in ev["outputs"].items():
                    val = _num(raw)
                    if val is not None:
                        scores.setdefault(f"{ev['evaluator']}.{name}", {})[ev["line"]] = val
            aggregates = {
                f"{ev}.{name}": value
                for ev, named in (metrics.get(rec.cell_id) or {}).items()
                for name, value in named.items()
                if value is not None
            }
            cells.append(_CellData(col, rec, lines, scores, aggregates))
    return cells


def _baseline_for(
    cells: list[_CellData], base: _CellData, warnings: list[str]
) -> dict[str, _CellData | None]:
    """The cell each cell is compared with: the baseline's configuration on the cell's own dataset (line
    numbers only pair up within one dataset), the same repetition as the baseline when there is one."""
    base_for: dict[str, _CellData | None] = {}
    for c in cells:
        if c.rec.dataset == base.rec.dataset:
            base_for[c.col.cell_id] = base
            continue
        twins = [
            o
            for o in cells
            if o.rec.dataset == c.rec.dataset
            and o.rec.variants == base.rec.variants
            and o.rec.params == base.rec.params
        ]
        twin = next((o for o in twins if o.rec.repeat == base.rec.repeat), None) or next(
            (o for o in twins if o.rec.repeat == 0), None
        )
        base_for[c.col.cell_id] = twin
        if twin is None:
            warnings.append(
                f"cell '{c.col.label}': no baseline configuration on dataset '{c.rec.dataset}', no deltas"
            )
    return base_for


@dataclass
class _Context:
    """What every row builder needs: the cells, whom each is compared with, and the warnings so far."""

    cells: list[_CellData]
    base_for: dict[str, _CellData | None]
    warnings: list[str]
    few_warned: set[str] = field(default_factory=set)  # cells already warned about too few pairs

    def deltas(self, row: Row) -> Row:
        _add_deltas(row, self.cells, self.base_for)
        return row

    def tests(self, row: Row, per_line: Any) -> Row:
        _add_tests(row, self.cells, self.base_for, per_line, self.few_warned, self.warnings)
        return row


def _metric_rows(ctx: _Context) -> list[Row]:
    """One row per evaluation metric (``<evaluator>.<metric>``), in the order the cells report them."""
    keys: list[str] = []
    for c in ctx.cells:
        for k in list(c.aggregates) + list(c.scores):
            if k not in keys:
                keys.append(k)
    rows = []
    for key in keys:
        metric_name = key.split(".", 1)[1] if "." in key else key
        row = Row(key, "metric", key, metric_direction(metric_name), {})
        evaluator = key.split(".", 1)[0]
        for c in ctx.cells:
            mv = _metric_value(c, key)
            eval_failed = c.col.eval_failures.get(evaluator)
            if eval_failed:
                mv.note = "; ".join(x for x in (f"evaluator failed on {eval_failed} line(s)", mv.note) if x)
            row.values[c.col.cell_id] = mv
        rows.append(ctx.tests(row, lambda c, k=key: c.scores.get(k)))
    return rows


def _quality_rows(ctx: _Context) -> list[Row]:
    """Line-level success and error rates, with intervals and paired tests."""
    ok_row = Row("success_rate", "quality", "success rate", True, {})
    err_row = Row("error_rate", "quality", "error rate", False, {})
    for c in ctx.cells:
        total = max(c.rec.lines_total, len(c.lines))
        done = len(c.lines)
        ok = sum(1 for ln in c.lines.values() if ln.status == "ok")
        note = "" if done >= total else f"{done} of {total} lines done"
        if done == 0:
            ok_row.values[c.col.cell_id] = MetricValue(None, note="no lines")
            err_row.values[c.col.cell_id] = MetricValue(None, note="no lines")
            continue
        flags = np.fromiter((1.0 if ln.status == "ok" else 0.0 for ln in c.lines.values()), float, done)
        lo, hi = stats.mean_ci(flags)
        ok_row.values[c.col.cell_id] = MetricValue(ok / done, lo, hi, done, per_line=True, note=note)
        err_row.values[c.col.cell_id] = MetricValue(
            (done - ok) / done,
            None if hi is None else 1 - hi,
            None if lo is None else 1 - lo,
            done,
            per_line=True,
            note=note,
        )

    def ok_flags(c: _CellData) -> dict[int, float]:
        return {n: (1.0 if ln.status == "ok" else 0.0) for n, ln in c.lines.items()}

    def err_flags(c: _CellData) -> dict[int, float]:
        return {n: (0.0 if ln.status == "ok" else 1.0) for n, ln in c.lines.items()}

    return [ctx.tests(ok_row, ok_flags), ctx.tests(err_row, err_flags)]


def _latencies(cells: list[_CellData]) -> dict[str, np.ndarray]:
    """Latencies (ms) of each cell's successful lines."""
    return {
        c.col.cell_id: np.fromiter(
            (ln.latency_ms for ln in c.lines.values() if ln.latency_ms is not None and ln.status == "ok"),
            float,
        )
        for c in cells
    }


def _latency_rows(ctx: _Context, latency: dict[str, np.ndarray]) -> list[Row]:
    """Latency p50, p95 and p99 of successful lines."""
    rows = []
    for q in (50, 95, 99):
        row = Row(f"latency_p{q}_ms", "latency", f"latency p{q} (ms)", False, {})
        for c in ctx.cells:
            arr = latency[c.col.cell_id]
            val = stats.percentile(arr, q) if arr.size else None
            row.values[c.col.cell_id] = MetricValue(val, n=int(arr.size), note="successful lines only")
        rows.append(ctx.deltas(row))
    return rows


def _line_sums(cells: list[_CellData]) -> dict[str, dict[str, int]]:
    """Per cell: tokens, LLM calls and cache hits summed over its lines."""
    sums: dict[str, dict[str, int]] = {}
    for c in cells:
        s = {"prompt_tokens": 0, "completion_tokens": 0, "total_tokens": 0, "llm_calls": 0, "cache_hits": 0}
        for ln in c.lines.values():
            s["prompt_tokens"] += ln.prompt_tokens or 0
            s["completion_tokens"] += ln.completion_tokens or 0
            s["total_tokens"] += ln.total_tokens or 0
            s["llm_calls"] += ln.llm_calls or 0
            s["cache_hits"] += 1 if ln.cache_hit else 0
        sums[c.col.cell_id] = s
    return sums


def _sum_rows(
    ctx: _Context,
    sums: dict[str, dict[str, int]],
    group: str,
    specs: tuple[tuple[str, str, bool | None], ...],
) -> list[Row]:
    rows = []
    for key, label, direction in specs:
        row = Row(key, group, label, direction, {})
        for c in ctx.cells:
            row.values[c.col.cell_id] = MetricValue(float(sums[c.col.cell_id][key]), n=len(c.lines))
        rows.append(ctx.deltas(row))
    return rows


def _token_rows(ctx: _Context, sums: dict[str, dict[str, int]]) -> list[Row]:
    """Prompt, completion and total tokens."""
    return _sum_rows(
        ctx,
        sums,
        "tokens",
        (
            ("prompt_tokens", "prompt tokens", False),
            ("completion_tokens", "completion tokens", False),
            ("total_tokens", "total tokens", False),
        ),
    )


def _cost_rows(ctx: _Context, sums: dict[str, dict[str, int]], uc: Any, sandboxed: set[str]) -> list[Row]:
    """The estimated cost from the tokens and llmops.yaml's prices (free for sandbox runs)."""
    row = Row("cost_usd", "cost", "estimated cost (USD)", False, {})
    for c in ctx.cells:
        s = sums[c.col.cell_id]
        mv = _cost(uc, c.rec, s["prompt_tokens"], s["completion_tokens"], c.col.run_id in sandboxed)
        mv.n = len(c.lines)
        row.values[c.col.cell_id] = mv
    return [ctx.deltas(row)]


def _call_rows(ctx: _Context, sums: dict[str, dict[str, int]]) -> list[Row]:
    """LLM calls, and cache hits (no better direction)."""
    return _sum_rows(
        ctx, sums, "calls", (("llm_calls", "LLM calls", False), ("cache_hits", "cache hits", None))
    )


RUN_COMPLETED_GATE = "run completed"


def _run_status_gates(comparison: Comparison, runs: list[Any]) -> list[GateResult]:
    """A failing gate for every cell of a run that did not complete: CI must never pass such evidence."""
    out = []
    by_id = {r.run_id: r for r in runs}
    for col in comparison.cells:
        run = by_id.get(col.run_id)
        if run is None or run.status == "completed":
            continue
        out.append(
            GateResult(
                gate=RUN_COMPLETED_GATE,
                cell_id=col.cell_id,
                metric="run status",
                op="==",
                threshold=1.0,
                value=0.0,
                passed=False,
                reason=f"run {run.run_id} is {run.status}" + (f": {run.error}" if run.error else ""),
            )
        )
    return out


def _metric_value(c: _CellData, key: str) -> MetricValue:
    per_line = c.scores.get(key)
    agg = c.aggregates.get(key)
    if not per_line:
        if agg is None:
            return MetricValue(None, note="not reported for this cell")
        return MetricValue(agg, note="aggregate only: no per-line scores, so no interval or test")
    arr = np.fromiter(per_line.values(), float, len(per_line))
    mean = float(arr.mean())
    lo, hi = stats.mean_ci(arr)
    if agg is None:
        return MetricValue(mean, lo, hi, int(arr.size), per_line=True, note="mean of per-line scores")
    if math.isclose(agg, mean, rel_tol=1e-6, abs_tol=1e-9):
        return MetricValue(agg, lo, hi, int(arr.size), per_line=True)
    if math.isclose(agg, mean * 100, rel_tol=1e-6, abs_tol=1e-7):
        return MetricValue(
            agg,
            None if lo is None else lo * 100,
            None if hi is None else hi * 100,
            int(arr.size),
            per_line=True,
            note="aggregate is the per-line mean in percent",
        )
    return MetricValue(
        agg,
        n=int(arr.size),
        per_line=True,
        note=f"aggregate differs from the per-line mean ({mean:.4g}): interval omitted, test uses per-line scores",
    )


def _add_deltas(row: Row, cells: list[_CellData], base_for: dict[str, _CellData | None]) -> None:
    for c in cells:
        mv = row.values[c.col.cell_id]
        b = base_for.get(c.col.cell_id)
        if b is None or b is c or mv.value is None:
            continue
        bv = row.values[b.col.cell_id].value
        if bv is not None:
            mv.delta = mv.value - bv


def _add_tests(
    row: Row,
    cells: list[_CellData],
    base_for: dict[str, _CellData | None],
    per_line: Any,
    few_warned: set[str],
    warnings: list[str],
) -> None:
    """Deltas for every cell; a paired test wherever both cells have per-line scores."""
    _add_deltas(row, cells, base_for)
    for c in cells:
        mv = row.values[c.col.cell_id]
        b = base_for.get(c.col.cell_id)
        if b is None or b is c or mv.value is None:
            continue
        xs: dict[int, float] | None = per_line(b)
        ys: dict[int, float] | None = per_line(c)
        if not xs or not ys:
            continue
        common = sorted(set(xs) & set(ys))
        if not common:
            continue
        a_arr = np.fromiter((xs[i] for i in common), float, len(common))
        b_arr = np.fromiter((ys[i] for i in common), float, len(common))
        res = stats.paired_test(a_arr, b_arr)
        mv.p_value = res.p_value
        mv.significant = bool(res.significant) if res.significant is not None else None
        mv.note = "; ".join(x for x in (mv.note, res.note) if x)
        if res.too_few and c.col.cell_id not in few_warned:
            few_warned.add(c.col.cell_id)
            warnings.append(
                f"cell '{c.col.label}': only {res.n} lines pair with the baseline "
                f"(fewer than {stats.MIN_PAIRED_LINES}): differences are hard to tell"
            )


def _latency_hist(lat: dict[str, np.ndarray]) -> dict[str, Any]:
    arrays = [a for a in lat.values() if a.size]
    if not arrays:
        return {}
    allv = np.concatenate(arrays)
    lo, top = float(allv.min()), stats.percentile(allv, 99.5)
    hi = top if top is not None and top > lo else lo + 1.0
    edges = np.linspace(lo, hi, LATENCY_BINS + 1)
    counts = {}
    for cid, arr in lat.items():
        clipped = np.clip(arr, lo, hi)
        counts[cid] = np.histogram(clipped, bins=edges)[0].astype(int).tolist()
    return {"edges": [float(e) for e in edges], "counts": counts}


def iter_rows(comparison: Comparison, groups: Iterable[str] | None = None) -> Iterable[Row]:
    wanted = set(groups) if groups else None
    for r in comparison.rows:
        if wanted is None or r.group in wanted:
            yield r
