"""What a reviewer reads on one line: the flow's answer (the output the evaluator judges, not the whole
JSON), the expected answer (from the evaluator's ground-truth mapping), and the per-line scores."""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from llmops_tui.core.workspace import UseCase

_DATA = re.compile(r"^\$\{data\.([^}]+)\}$")
_OUTPUT = re.compile(r"^\$\{run\.outputs\.([^}]+)\}$")


@dataclass
class Review:
    """How to read a cell's lines: which output is the answer and where the expected answer lives."""

    answer_keys: list[str] = field(default_factory=list)  # flow outputs the evaluators judge
    truth: list[tuple[str, Path, str]] = field(default_factory=list)  # (evaluator input, file, column)
    _rows: dict[Path, list[dict[str, Any]]] = field(default_factory=dict)

    def answer(self, outputs: Any) -> str:
        """The answer as text: the judged output field(s), else the single output, else compact JSON."""
        if outputs is None:
            return ""
        if isinstance(outputs, dict):
            keys = [k for k in self.answer_keys if k in outputs] or (
                list(outputs) if len(outputs) == 1 else []
            )
            if keys:
                parts = [_text(outputs[k]) for k in keys]
                return (
                    parts[0]
                    if len(parts) == 1
                    else "\n".join(f"{k}: {p}" for k, p in zip(keys, parts, strict=True))
                )
        return _text(outputs)

    def expected(self, line: int) -> str | None:
        """The expected answer of ``line`` (the evaluation dataset's row of the same number)."""
        out = []
        for name, path, column in self.truth:
            rows = self._load(path)
            if 0 <= line < len(rows) and column in rows[line]:
                value = _text(rows[line][column])
                out.append(value if len(self.truth) == 1 else f"{name}: {value}")
        return "\n".join(out) if out else None

    def _load(self, path: Path) -> list[dict[str, Any]]:
        if path not in self._rows:
            try:
                from llmops_tui.core.files import read_rows

                self._rows[path] = read_rows(path)
            except Exception:  # noqa: BLE001 - no expected answer is shown, nothing fails
                self._rows[path] = []
        return self._rows[path]


def _text(value: Any) -> str:
    return value if isinstance(value, str) else json.dumps(value, ensure_ascii=False)


def review_for(uc: UseCase | None, dataset: str) -> Review:
    review = Review()
    if uc is None:
        return review
    for evaluator in uc.evaluators:
        for ds in evaluator.datasets_for(dataset):
            for name, ref in ds.mappings.items():
                if m := _OUTPUT.match(str(ref).strip()):
                    if m.group(1) not in review.answer_keys:
                        review.answer_keys.append(m.group(1))
                elif (m := _DATA.match(str(ref).strip())) and ds.path is not None:
                    review.truth.append((name, ds.path, m.group(1)))
    return review
