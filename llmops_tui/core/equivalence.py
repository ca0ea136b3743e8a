"""Proof of equivalence between two backends: the same cells run on both, compared line by line.

:func:`plan_backends` plans the sweep once per backend (cache off, so each backend really runs every
line) before anything runs: bad input for either backend raises :class:`LlmopsError` and nothing runs.
:func:`run_backends` runs the two plans one after the other through the ordinary dispatcher (both runs
land in the run store like any sweep) and yields every engine event as a :class:`BackendEvent` (the
backend that produced it, and the event: the CLI and the app show progress from them), then, last, the
:class:`BackendComparison`. :func:`compare_backends` does both for callers that only want the result.

The comparison pairs the cells (same variants, parameters, dataset and repetition) and reports for each:

- lines identical or not: the same status and the same outputs (JSON-equal), the differing lines listed;
- evaluator metrics of both runs and their difference;
- a paired test (:func:`llmops_tui.core.stats.paired_test`) per numeric per-line evaluator score;
- a verdict: ``equivalent: 64/64 lines identical`` when every line succeeded on both backends and every
  line and every metric is identical, ``no significant difference (N/M lines differ)`` when lines differ
  but no paired test finds a significant difference, else ``differs on N lines``. Lines that failed on
  both backends prove nothing: such a cell is ``inconclusive`` (or ``failed`` when every line failed),
  and a cell without lines is never equivalent.

A comparison that did not get to compare says so in its ``status``: ``cancelled`` (the cancellation
event stops the running sweep, and the second never starts) or ``failed`` (a sweep failed: the backend
and the first cause are named); neither is ever ``equivalent``.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from llmops_tui.core import events as ev
from llmops_tui.core.errors import RunFailed
from llmops_tui.core.store import RunStore
from llmops_tui.core.sweep import SweepOptions, SweepPlan, plan_sweep
from llmops_tui.core.workspace import UseCase

DEFAULT_PAIR = ("promptflow-dag", "agent-framework")


@dataclass
class CellComparison:
    label: str
    lines: int
    identical: int
    differing: list[dict[str, Any]] = field(default_factory=list)  # line, a, b (status and outputs)
    metrics: dict[str, dict[str, Any]] = field(default_factory=dict)  # "evaluator.metric" -> a, b, delta
    tests: dict[str, dict[str, Any]] = field(default_factory=dict)  # "evaluator.score" -> n, delta, p, note
    verdict: str = ""
    failed: int = 0  # lines that failed on both sides (the same way): not counted as identical
    cell_ids: tuple[str, str] | None = None  # the paired cells' ids in the two runs (for line_diff)

    @property
    def equivalent(self) -> bool:
        return self.verdict.startswith("equivalent")

    def to_dict(self) -> dict[str, Any]:
        return {
            "cell": self.label,
            "lines": self.lines,
            "identical": self.identical,
            "failed_on_both": self.failed,
            "equivalent": self.equivalent,
            "verdict": self.verdict,
            "differing_lines": self.differing,
            "metrics": self.metrics,
            "paired_tests": self.tests,
        }


@dataclass
class BackendComparison:
    use_case: str
    backends: tuple[str, str]
    runs: tuple[str | None, str | None]  # None: that backend's sweep never started
    cells: list[CellComparison]
    status: str = "compared"  # compared | cancelled | failed (nothing compared: see stopped_on, error)
    stopped_on: str | None = None  # the backend whose sweep was cancelled or failed
    error: str | None = None  # why it failed, one line (the sweep's first cause)

    @property
    def equivalent(self) -> bool:
        return self.status == "compared" and bool(self.cells) and all(c.equivalent for c in self.cells)

    @property
    def verdict(self) -> str:
        if self.status == "cancelled":
            return f"cancelled on {self.stopped_on}: nothing compared"
        if self.status != "compared":
            return f"{self.status}: the sweep on {self.stopped_on} {self.status}: {self.error or 'no cause given'}"
        if not self.cells:
            return "nothing compared: no cells"
        lines = sum(c.lines for c in self.cells)
        same = sum(c.identical for c in self.cells)
        if self.equivalent:
            return f"equivalent: {same}/{lines} lines identical in {len(self.cells)} cell(s)"
        bad = sum(1 for c in self.cells if not c.equivalent)
        return f"not equivalent in {bad}/{len(self.cells)} cell(s): {same}/{lines} lines identical"

    def to_dict(self) -> dict[str, Any]:
        return {
            "use_case": self.use_case,
            "backends": list(self.backends),
            "runs": list(self.runs),
            "status": self.status,
            "stopped_on": self.stopped_on,
            "error": self.error,
            "equivalent": self.equivalent,
            "verdict": self.verdict,
            "cells": [c.to_dict() for c in self.cells],
        }


def run_sweep_to_end(
    ws_root: Path,
    uc: UseCase,
    options: SweepOptions,
    cancel: threading.Event | None = None,
    on_event: Callable[[Any], None] | None = None,
) -> str:
    """Plan and run ``options`` through the ordinary engine; the run's id. A sweep that failed or was
    cancelled raises RunFailed. ``on_event`` sees every engine event (progress)."""
    from llmops_tui.core.dispatch import start_sweep

    plan = plan_sweep(uc, options)
    run_id = None
    finished: ev.SweepFinished | None = None
    for event in start_sweep(ws_root, uc, plan, cancel=cancel):
        if on_event is not None:
            on_event(event)
        if isinstance(event, ev.SweepStarted):
            run_id = event.run_id
        elif isinstance(event, ev.SweepFinished):
            finished = event
    if run_id is None or finished is None:
        raise RunFailed(f"the sweep on the {options.backend} backend did not finish")
    if finished.status in ("failed", "cancelled"):
        raise RunFailed(
            f"the sweep on the {options.backend} backend {finished.status}: {finished.error or ''}"
        )
    return run_id


def _same(a: Any, b: Any) -> bool:
    return json.dumps(a, sort_keys=True, default=str) == json.dumps(b, sort_keys=True, default=str)


def _cell_key(cell: Any) -> str:
    return json.dumps([cell.variants, cell.params, cell.dataset, cell.repeat], sort_keys=True, default=str)


@dataclass
class BackendEvent:
    """One engine event of one backend's sweep while :func:`run_backends` runs (progress of a comparison)."""

    backend: str
    event: ev.Event


def plan_backends(
    uc: UseCase, options: SweepOptions, backends: tuple[str, str] = DEFAULT_PAIR
) -> tuple[SweepPlan, SweepPlan]:
    """The sweep ``options`` describe, planned for each backend with the cache off, both before anything
    runs: bad input for either raises :class:`LlmopsError` (one line) and nothing has run."""
    a, b = (plan_sweep(uc, replace(options, backend=backend, no_cache=True)) for backend in backends)
    return a, b


def run_backends(
    ws_root: Path,
    uc: UseCase,
    plans: tuple[SweepPlan, SweepPlan],
    *,
    cancel: threading.Event | None = None,
    progress_interval: float = 0.25,
) -> Iterator[BackendEvent | BackendComparison]:
    """Run the two plans of :func:`plan_backends` one after the other through the dispatcher; yields each
    sweep's events as :class:`BackendEvent` and, last, the :class:`BackendComparison` (its ``status`` says
    ``cancelled`` or ``failed`` when it could not compare). ``cancel`` stops the running sweep (lines in
    flight finish) and the next one never starts."""
    from llmops_tui.core.dispatch import start_sweep

    backends = (plans[0].options.backend or DEFAULT_PAIR[0], plans[1].options.backend or DEFAULT_PAIR[1])
    cancel = cancel or threading.Event()
    runs: list[str | None] = [None, None]
    for i, (backend, plan) in enumerate(zip(backends, plans, strict=True)):
        finished: ev.SweepFinished | None = None
        events = start_sweep(ws_root, uc, plan, cancel=cancel, progress_interval=progress_interval)
        try:
            for event in events:
                if isinstance(event, ev.SweepStarted):
                    runs[i] = event.run_id
                elif isinstance(event, ev.SweepFinished):
                    finished = event
                yield BackendEvent(backend, event)
        finally:
            close = getattr(events, "close", None)
            if close is not None:  # a consumer that stops early ends the sweep too (it is marked cancelled)
                close()
        pair = (runs[0], runs[1])
        if cancel.is_set() or (finished is not None and finished.status == "cancelled"):
            yield BackendComparison(uc.name, backends, pair, [], status="cancelled", stopped_on=backend)
            return
        if finished is None or runs[i] is None:
            yield BackendComparison(
                uc.name, backends, pair, [], status="failed", stopped_on=backend, error="it did not finish"
            )
            return
        if finished.status not in ("completed", "completed_with_errors"):
            why = finished.error or f"it ended {finished.status}"
            yield BackendComparison(
                uc.name, backends, pair, [], status="failed", stopped_on=backend, error=why
            )
            return
    with RunStore.for_workspace(ws_root) as store:
        result = compare_runs(store, uc.name, (str(runs[0]), str(runs[1])), backends)
    yield result


def compare_backends(
    ws_root: Path,
    uc: UseCase,
    options: SweepOptions,
    *,
    backends: tuple[str, str] = DEFAULT_PAIR,
    cancel: threading.Event | None = None,
    on_event: Callable[[str, ev.Event], None] | None = None,
) -> BackendComparison:
    """Plan the sweep ``options`` describe on both backends (cache off; bad input raises before anything
    runs), run both and compare the cells. ``on_event(backend, event)`` sees every engine event."""
    plans = plan_backends(uc, options, backends)
    result: BackendComparison | None = None
    for item in run_backends(ws_root, uc, plans, cancel=cancel):
        if isinstance(item, BackendEvent):
            if on_event is not None:
                on_event(item.backend, item.event)
        else:
            result = item
    if result is None:  # run_backends always ends with the comparison
        raise RunFailed("the comparison ended without a result")
    return result


def compare_runs(
    store: RunStore, use_case: str, runs: tuple[str, str], backends: tuple[str, str] = DEFAULT_PAIR
) -> BackendComparison:
    """Compare two stored runs of the same cells, cell by cell (see the module's docstring)."""
    from llmops_tui.core.sweep import cell_label

    a_run, b_run = runs
    b_cells = {_cell_key(c): c for c in store.cells(b_run)}
    a_metrics, b_metrics = store.metrics(a_run), store.metrics(b_run)
    out: list[CellComparison] = []
    for a_cell in store.cells(a_run):
        b_cell = b_cells.get(_cell_key(a_cell))
        label = cell_label(a_cell.variants, a_cell.params, a_cell.dataset, a_cell.repeat)
        if b_cell is None:
            out.append(CellComparison(label, 0, 0, verdict=f"missing from the {backends[1]} run"))
            continue
        ma, mb = a_metrics.get(a_cell.cell_id, {}), b_metrics.get(b_cell.cell_id, {})
        evaluators = sorted(set(ma) | set(mb))

        cell = compare_cell(
            label,
            backends,
            {r.line: LineView(r.status, r.outputs, r.error) for r in store.lines(a_run, a_cell.cell_id)},
            {r.line: LineView(r.status, r.outputs, r.error) for r in store.lines(b_run, b_cell.cell_id)},
            ma,
            mb,
            _scores(store, a_run, a_cell.cell_id, evaluators),
            _scores(store, b_run, b_cell.cell_id, evaluators),
        )
        cell.cell_ids = (a_cell.cell_id, b_cell.cell_id)
        out.append(cell)
    return BackendComparison(use_case, backends, runs, out)


def _scores(store: RunStore, run: str, cell_id: str, evaluators: list[str]) -> dict[str, dict[int, Any]]:
    return {e: {r["line"]: r["outputs"] or {} for r in store.eval_lines(run, cell_id, e)} for e in evaluators}


@dataclass
class LineView:
    """What is compared of one line: its status ("ok" or "failed"), its outputs; the error is shown."""

    status: str
    outputs: Any
    error: str | None = None


def compare_cell(
    label: str,
    backends: tuple[str, str],
    a_lines: dict[int, LineView],
    b_lines: dict[int, LineView],
    a_metrics: dict[str, dict[str, Any]] | None = None,
    b_metrics: dict[str, dict[str, Any]] | None = None,
    a_scores: dict[str, dict[int, dict[str, Any]]] | None = None,
    b_scores: dict[str, dict[int, dict[str, Any]]] | None = None,
) -> CellComparison:
    """One cell (or one flow's lines) run two ways: lines identical or not, metric deltas (``evaluator ->
    metric -> value``), a paired test per numeric per-line score (``evaluator -> line -> outputs``), and
    the verdict. Used by :func:`compare_runs` and by ``llmops migrate``'s verification."""
    from llmops_tui.core.stats import paired_test

    comp = CellComparison(label, len(set(a_lines) | set(b_lines)), 0)
    for n in sorted(set(a_lines) | set(b_lines)):
        ra, rb = a_lines.get(n), b_lines.get(n)
        sa = (ra.status, ra.outputs) if ra else ("missing", None)
        sb = (rb.status, rb.outputs) if rb else ("missing", None)
        if _same(sa, sb) and sa[0] != "ok":
            comp.failed += 1  # failed the same way on both: proves nothing
        elif _same(sa, sb):
            comp.identical += 1
        else:
            comp.differing.append(
                {
                    "line": n,
                    backends[0]: {"status": sa[0], "outputs": sa[1], "error": ra.error if ra else None},
                    backends[1]: {"status": sb[0], "outputs": sb[1], "error": rb.error if rb else None},
                }
            )
    ma, mb = a_metrics or {}, b_metrics or {}
    metrics_same = True
    for evaluator in sorted(set(ma) | set(mb)):
        for name in sorted(set(ma.get(evaluator, {})) | set(mb.get(evaluator, {}))):
            va, vb = ma.get(evaluator, {}).get(name), mb.get(evaluator, {}).get(name)
            delta = (
                vb - va if va is not None and vb is not None and _is_number(va) and _is_number(vb) else None
            )
            metrics_same = metrics_same and va == vb
            comp.metrics[f"{evaluator}.{name}"] = {backends[0]: va, backends[1]: vb, "delta": delta}
    significant = False
    sa_all, sb_all = a_scores or {}, b_scores or {}
    for evaluator in sorted(set(sa_all) | set(sb_all)):
        ea, eb = sa_all.get(evaluator, {}), sb_all.get(evaluator, {})
        paired = sorted(set(ea) & set(eb))
        names = sorted({k for n in paired for k, v in ea[n].items() if _is_number(v)})
        for score in names:
            xs = [float(ea[n][score]) if _is_number(ea[n].get(score)) else float("nan") for n in paired]
            ys = [float(eb[n][score]) if _is_number(eb[n].get(score)) else float("nan") for n in paired]
            res = paired_test(xs, ys)
            significant = significant or bool(res.significant)
            comp.tests[f"{evaluator}.{score}"] = {
                "n": res.n,
                "delta": res.delta,
                "p_value": res.p_value,
                "significant": res.significant,
                "note": res.note,
            }
    differ = len(comp.differing)
    if comp.lines == 0:
        comp.verdict = "nothing compared: no lines"
    elif comp.failed == comp.lines:
        comp.verdict = f"failed: all {comp.lines} lines failed on both backends"
    elif differ == 0 and metrics_same and comp.failed:
        comp.verdict = f"inconclusive: {comp.failed}/{comp.lines} lines failed on both backends"
    elif differ == 0 and metrics_same:
        comp.verdict = f"equivalent: {comp.identical}/{comp.lines} lines identical"
    elif not significant:
        what = f"{differ}/{comp.lines} lines differ" if differ else "metrics differ"
        comp.verdict = f"no significant difference ({what})"
    else:
        comp.verdict = f"differs on {differ} line(s)"
    return comp


def _is_number(v: Any) -> bool:
    return isinstance(v, int | float) and not isinstance(v, bool) or isinstance(v, bool)
