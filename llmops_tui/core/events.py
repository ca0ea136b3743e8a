"""Events the sweep engine yields. Plain dataclasses: the engine never knows who is listening.

The CLI (rich progress) and the app (worker -> messages) consume the same iterator. ``Progress`` is
throttled by time (default every 0.25 s), so a 10,000-line sweep yields a few hundred events, not
10,000; errors and retries are reported as they happen but also rate-limited.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


@dataclass
class SweepStarted:
    run_id: str
    use_case: str
    cells: int
    lines_total: int
    resumed: bool = False
    lines_already_done: int = 0


@dataclass
class CellProgress:
    cell_id: str
    done: int
    total: int
    errors: int


@dataclass
class Progress:
    run_id: str
    done: int
    total: int
    errors: int
    llm_calls: int
    cache_hits: int
    retries: int
    tokens: int
    cost: float | None
    elapsed_s: float
    lines_per_s: float
    cells: list[CellProgress] = field(default_factory=list)
    requests: int = 0  # HTTP requests sent, failed attempts included (llm_calls counts successes)
    cost_free: bool = False  # the sandbox model answered: ``cost`` is 0 and reads "free (sandbox)"


@dataclass
class LineFailed:
    run_id: str
    cell_id: str
    line: int
    error: str
    attempts: int


@dataclass
class RetryScheduled:
    run_id: str
    cell_id: str
    line: int
    attempt: int
    reason: str
    delay_s: float


@dataclass
class CellFinished:
    run_id: str
    cell_id: str
    lines: int
    errors: int
    error: str | None = None  # set when the cell could not run at all (see CellFailed)


@dataclass
class CellFailed:
    """A cell that cannot run at all (its flow does not load): none of its lines will run."""

    run_id: str
    cell_id: str
    error: str  # one line: the flow file as written, the node, the reason


@dataclass
class EvaluationStarted:
    run_id: str
    cell_id: str
    evaluator: str
    lines: int


@dataclass
class MetricsReady:
    run_id: str
    cell_id: str
    evaluator: str
    metrics: dict[str, float]


@dataclass
class EvaluationFailed:
    """An evaluator that could not run for a cell (it does not load, or its aggregation failed)."""

    run_id: str
    cell_id: str
    evaluator: str
    error: str


@dataclass
class SweepFinished:
    run_id: str
    status: str  # completed | completed_with_errors | failed | cancelled (see core.summary)
    summary: dict[str, Any]
    error: str | None = None  # the first cause, one line; None when completed


Event = (
    SweepStarted
    | Progress
    | LineFailed
    | RetryScheduled
    | CellFinished
    | CellFailed
    | EvaluationStarted
    | EvaluationFailed
    | MetricsReady
    | SweepFinished
)
