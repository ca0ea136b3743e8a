"""What a reviewer reads on one line: the flow's answer (the output the evaluator judges, not the whole
JSON), the expected answer (from the evaluator's ground-truth mapping), the per-line scores, and for a
chat flow the conversation (the history turns, then the current question)."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from llmops_tui.core.mappings import mapping_ref
from llmops_tui.core.workspace import UseCase


@dataclass
class Review:
    """How to read a cell's lines: which output is the answer and where the expected answer lives."""

    answer_keys: list[str] = field(default_factory=list)  # flow outputs the evaluators judge
    truth: list[tuple[str, Path, str]] = field(default_factory=list)  # (evaluator input, file, column)
    # chat flows: the input holding the conversation so far, the question input, the answer output
    chat_history: str | None = None
    chat_input: str | None = None
    chat_output: str | None = None
    _rows: dict[Path, list[dict[str, Any]]] = field(default_factory=dict)

    def answer(self, outputs: Any) -> str:
        """The answer as text: the judged output field(s), else the single output, else compact JSON."""
        if outputs is None:
            return ""
        if isinstance(outputs, dict):
            keys = [k for k in self.answer_keys if k in outputs] or (
                list(outputs)
                if len(outputs) == 1
                else [self.chat_output]
                if self.chat_output is not None and self.chat_output in outputs
                else []
            )
            if keys:
                parts = [_text(outputs[k]) for k in keys]
                return (
                    parts[0]
                    if len(parts) == 1
                    else "\n".join(f"{k}: {p}" for k, p in zip(keys, parts, strict=True))
                )
        return _text(outputs)

    def conversation(self, inputs: Any) -> list[tuple[str, str]] | None:
        """A chat line's conversation as (role, text) turns: the history, then the current question.
        None for a line that is not a chat (no history input, or one that is not a list of turns).

        History turns come in the two shapes chat flows use: Prompt flow's ``{"inputs": {...},
        "outputs": {...}}`` (a user turn and an assistant turn each) and chat messages ``{"role",
        "content"}``."""
        if not self.chat_history or not isinstance(inputs, dict):
            return None
        history = inputs.get(self.chat_history)
        if not isinstance(history, list):
            return None
        turns: list[tuple[str, str]] = []
        for turn in history:
            turns.extend(self._turn(turn))
        if self.chat_input and self.chat_input in inputs:
            turns.append(("user", _text(inputs[self.chat_input])))
        return turns

    def _turn(self, turn: Any) -> list[tuple[str, str]]:
        if isinstance(turn, dict) and ("inputs" in turn or "outputs" in turn):
            out = []
            asked, said = turn.get("inputs"), turn.get("outputs")
            if asked is not None:
                out.append(("user", self._pick(asked, self.chat_input)))
            if said is not None:
                out.append(("assistant", self._pick(said, self.chat_output)))
            return out
        if isinstance(turn, dict) and "content" in turn:
            return [(str(turn.get("role") or "message"), _text(turn["content"]))]
        return [("message", _text(turn))]

    @staticmethod
    def _pick(values: Any, key: str | None) -> str:
        """The turn's question or answer: the chat key's value, else the only value, else all as JSON."""
        if isinstance(values, dict):
            if key and key in values:
                return _text(values[key])
            if len(values) == 1:
                return _text(next(iter(values.values())))
        return _text(values)

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
    flow = uc.standard_flow
    if flow is not None and flow.is_chat:
        _chat_keys(review, flow.inputs, flow.outputs)
    for evaluator in uc.evaluators:
        for ds in evaluator.datasets_for(dataset):
            for name, value in ds.mappings.items():
                ref = mapping_ref(value)
                if ref is not None and ref[0] == "run.outputs":
                    if ref[1] not in review.answer_keys:
                        review.answer_keys.append(ref[1])
                elif ref is not None and ref[0] == "data" and ds.path is not None:
                    review.truth.append((name, ds.path, ref[1]))
    return review


def _chat_keys(review: Review, inputs: dict[str, dict[str, Any]], outputs: dict[str, dict[str, Any]]) -> None:
    """Which inputs hold the history and the question, and which output the answer: the ones marked
    ``is_chat_history``/``is_chat_input``/``is_chat_output``, else the usual names."""
    marked = [k for k, v in inputs.items() if isinstance(v, dict) and v.get("is_chat_history")]
    review.chat_history = marked[0] if marked else ("chat_history" if "chat_history" in inputs else None)
    asked = [k for k, v in inputs.items() if isinstance(v, dict) and v.get("is_chat_input")]
    others = [k for k in inputs if k != review.chat_history]
    review.chat_input = (
        asked[0] if asked else ("question" if "question" in inputs else next(iter(others), None))
    )
    said = [k for k, v in outputs.items() if isinstance(v, dict) and v.get("is_chat_output")]
    review.chat_output = said[0] if said else ("answer" if "answer" in outputs else next(iter(outputs), None))
