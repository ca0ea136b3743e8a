"""Line-level view data: two cells' outputs for the same lines side by side, with a word-level diff and
the per-line evaluation scores, filterable to lines that differ or where one cell failed."""

from __future__ import annotations

import difflib
import json
import re
from dataclasses import dataclass, field
from typing import Any

from llmops_tui.core.errors import LlmopsError
from llmops_tui.core.store import RunStore

_TOKENS = re.compile(r"\s+|[^\s]+")
FILTERS = ("all", "differ", "failed")


@dataclass
class LineDiff:
    line: int
    inputs: dict
    output_a: Any
    output_b: Any
    status_a: str | None  # "ok" | "failed" | None (line missing in that cell)
    status_b: str | None
    error_a: str | None
    error_b: str | None
    scores_a: dict  # "<evaluator>.<metric>" -> score
    scores_b: dict
    differs: bool
    diff: list[tuple[str, str]] = field(default_factory=list)  # ("equal"|"delete"|"insert", text)
    logs_a: dict[str, str] | None = None  # what the flow printed on this line (stdout / stderr)
    logs_b: dict[str, str] | None = None
    traces_a: list[dict[str, Any]] | None = None  # the line's spans (core/backends/tracing.py)
    traces_b: list[dict[str, Any]] | None = None

    def to_dict(self) -> dict[str, Any]:
        return {
            "line": self.line,
            "inputs": self.inputs,
            "output_a": self.output_a,
            "output_b": self.output_b,
            "status_a": self.status_a,
            "status_b": self.status_b,
            "error_a": self.error_a,
            "error_b": self.error_b,
            "scores_a": self.scores_a,
            "scores_b": self.scores_b,
            "differs": self.differs,
            "diff": [list(op) for op in self.diff],
            "logs_a": self.logs_a,
            "logs_b": self.logs_b,
            "traces_a": self.traces_a,
            "traces_b": self.traces_b,
        }


def output_text(outputs: Any) -> str:
    """The text a person compares: a single output's value, else the outputs as sorted JSON."""
    if outputs is None:
        return ""
    if isinstance(outputs, dict) and len(outputs) == 1:
        (value,) = outputs.values()
        return value if isinstance(value, str) else json.dumps(value, ensure_ascii=False, sort_keys=True)
    if isinstance(outputs, str):
        return outputs
    return json.dumps(outputs, ensure_ascii=False, sort_keys=True)


def word_diff(a: str, b: str) -> list[tuple[str, str]]:
    """Word-level diff of ``a`` -> ``b`` as ("equal"|"delete"|"insert", text) ops; whitespace is kept,
    so joining the equal+delete texts gives ``a`` and the equal+insert texts give ``b``."""
    ta = _TOKENS.findall(a)
    tb = _TOKENS.findall(b)
    ops: list[tuple[str, str]] = []

    def push(kind: str, text: str) -> None:
        if not text:
            return
        if ops and ops[-1][0] == kind:
            ops[-1] = (kind, ops[-1][1] + text)
        else:
            ops.append((kind, text))

    matcher = difflib.SequenceMatcher(a=ta, b=tb, autojunk=False)
    for tag, i1, i2, j1, j2 in matcher.get_opcodes():
        if tag == "equal":
            push("equal", "".join(ta[i1:i2]))
        else:
            push("delete", "".join(ta[i1:i2]))
            push("insert", "".join(tb[j1:j2]))
    return ops


def _scores(store: RunStore, run_id: str, cell_id: str) -> dict[int, dict[str, Any]]:
    out: dict[int, dict[str, Any]] = {}
    for ev in store.eval_lines(run_id, cell_id):
        if isinstance(ev["outputs"], dict):
            for name, value in ev["outputs"].items():
                out.setdefault(ev["line"], {})[f"{ev['evaluator']}.{name}"] = value
    return out


def line_diff(
    store: RunStore,
    run_id: str,
    cell_a: str,
    cell_b: str,
    *,
    only: str = "all",
    run_id_b: str | None = None,
) -> list[LineDiff]:
    """Per-line outputs of ``cell_a`` and ``cell_b`` side by side (``cell_b`` may come from ``run_id_b``).

    ``only``: "all", "differ" (outputs or status differ) or "failed" (either cell failed or lacks the line).
    Cell ids of the ``RUN:CELL`` form (multi-run comparisons) are accepted.
    """
    if only not in FILTERS:
        raise LlmopsError(f"unknown filter '{only}'", field="only", hint="use all, differ or failed")
    if ":" in cell_a:
        run_id, cell_a = cell_a.split(":", 1)
    rb = run_id_b or run_id
    if ":" in cell_b:
        rb, cell_b = cell_b.split(":", 1)
    lines_a = {ln.line: ln for ln in store.lines(run_id, cell_a)}
    lines_b = {ln.line: ln for ln in store.lines(rb, cell_b)}
    rec_a = next((c for c in store.cells(run_id) if c.cell_id == cell_a), None)
    rec_b = next((c for c in store.cells(rb) if c.cell_id == cell_b), None)
    if rec_a is None and not lines_a:
        raise LlmopsError(f"no cell '{cell_a}' in run '{run_id}'", field="cell")
    if rec_b is None and not lines_b:
        raise LlmopsError(f"no cell '{cell_b}' in run '{rb}'", field="cell")
    if rec_a is not None and rec_b is not None and rec_a.dataset != rec_b.dataset:
        # Line n of one dataset is another input than line n of the other: pairing them would mislead.
        raise LlmopsError(
            f"cells {cell_a} and {cell_b} ran different datasets ({rec_a.dataset}, {rec_b.dataset}), "
            "so their lines do not pair",
            field="cell",
            hint="compare two cells of the same dataset",
        )
    scores_a = _scores(store, run_id, cell_a)
    scores_b = _scores(store, rb, cell_b)
    out: list[LineDiff] = []
    for n in sorted(set(lines_a) | set(lines_b)):
        la, lb = lines_a.get(n), lines_b.get(n)
        oa = la.outputs if la else None
        ob = lb.outputs if lb else None
        sa = la.status if la else None
        sb = lb.status if lb else None
        differs = oa != ob or sa != sb
        failed = sa != "ok" or sb != "ok"
        if only == "differ" and not differs:
            continue
        if only == "failed" and not failed:
            continue
        text_a, text_b = output_text(oa), output_text(ob)
        out.append(
            LineDiff(
                line=n,
                inputs=(la.inputs if la else None) or (lb.inputs if lb else None) or {},
                output_a=oa,
                output_b=ob,
                status_a=sa,
                status_b=sb,
                error_a=la.error if la else None,
                error_b=lb.error if lb else None,
                scores_a=scores_a.get(n, {}),
                scores_b=scores_b.get(n, {}),
                differs=differs,
                diff=word_diff(text_a, text_b) if differs else ([("equal", text_a)] if text_a else []),
                logs_a=la.logs if la else None,
                logs_b=lb.logs if lb else None,
                traces_a=la.traces if la else None,
                traces_b=lb.traces if lb else None,
            )
        )
    return out
