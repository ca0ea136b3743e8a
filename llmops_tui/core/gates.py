"""Quality gates: ``metric op threshold`` from the use case's ``llmops.yaml``, evaluated per cell.

A gate's metric is a comparison row key (``matcher.f1``, ``latency_p95_ms``, ``error_rate``) or a bare
evaluation-metric name (``f1``) matched against ``<evaluator>.f1``. A gate whose metric is missing or
ambiguous (several evaluators have it), or whose value is unknown for a cell, fails for that cell and says
why: a gate can never pass by accident. For the
same reason every gate fails for a cell whose lines did not all run (a cancelled or interrupted run), and a
gate on an evaluation metric fails for a cell where that evaluator failed on some lines (the metric would
describe only the lines it could grade).
"""

from __future__ import annotations

import operator
from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from llmops_tui.core.compare import Comparison, GateResult, Row

OPS: dict[str, Callable[[float, float], bool]] = {
    ">=": operator.ge,
    "<=": operator.le,
    ">": operator.gt,
    "<": operator.lt,
    "==": operator.eq,
}


def resolve_metric(comparison: Comparison, metric: str) -> tuple[Row | None, str]:
    """The row a gate metric names, and a note when the name was ambiguous or unknown."""
    row = comparison.row(metric)
    if row is not None:
        return row, ""
    matches = [r for r in comparison.rows if r.group == "metric" and r.key.split(".", 1)[-1] == metric]
    if len(matches) == 1:
        return matches[0], ""
    if matches:
        # Picking one would let a gate pass on a metric nobody meant: fail and ask for the full name.
        return None, f"'{metric}' is ambiguous ({', '.join(r.key for r in matches)}): write the full name"
    return None, f"no metric '{metric}' in this run"


def evaluate_gates(comparison: Comparison, specs: Iterable[Any]) -> list[GateResult]:
    """One GateResult per gate per cell. ``specs`` are ``extras.GateSpec`` (metric, op, value)."""
    from llmops_tui.core.compare import GateResult

    results: list[GateResult] = []
    for spec in specs:
        text = f"{spec.metric} {spec.op} {spec.value:g}"
        row, note = resolve_metric(comparison, spec.metric)
        compare = OPS[spec.op]
        for cell in comparison.cells:
            if row is None:
                results.append(
                    GateResult(text, cell.cell_id, spec.metric, spec.op, spec.value, None, False, note)
                )
                continue
            mv = row.values.get(cell.cell_id)
            value = mv.value if mv is not None else None
            if value is None:
                reason = f"{row.key} unknown for this cell" + (
                    f" ({mv.note})" if mv is not None and mv.note else ""
                )
                results.append(
                    GateResult(text, cell.cell_id, row.key, spec.op, spec.value, None, False, reason)
                )
                continue
            passed = bool(compare(value, spec.value))
            reason = f"{row.key} = {value:.6g} {'meets' if passed else 'fails'} {spec.op} {spec.value:g}"
            if note:
                reason += f" ({note})"
            evaluator = row.key.split(".", 1)[0] if row.group == "metric" else ""
            failed_evals = cell.eval_failures.get(evaluator, 0) if evaluator else 0
            if not cell.complete:
                passed = False
                reason += f", but the cell is incomplete ({cell.lines_done} of {cell.lines_total} lines run)"
            elif failed_evals:
                passed = False
                reason += f", but evaluator '{evaluator}' failed on {failed_evals} line(s)"
            results.append(
                GateResult(text, cell.cell_id, row.key, spec.op, spec.value, value, passed, reason)
            )
    return results
