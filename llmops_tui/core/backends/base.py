"""The executor seam: what the sweep engine needs from whatever runs a flow.

The engine plans, schedules, retries, caches and stores; it only ever sees :class:`LineOutcome` objects.
A backend opens one flow (a folder, already materialised with the cell's variants and overrides), runs
one line at a time on any thread, runs the flow's aggregation over the lines that succeeded, and closes.
The LLM-call policy (rate limits, retries, timeouts, token counts) is not the backend's business: it is
applied around every model call by :mod:`llmops_tui.core.llmhooks`, whatever the backend.

Contract every backend honours (the conformance suite in ``tests/test_backend_conformance.py`` checks it):

- :meth:`FlowBackend.run_line` never raises for a failing line: the failure is a ``LineOutcome`` with
  ``ok=False`` and a one-line ``error``. It may be called from many threads at once.
- A flow that cannot be loaded raises :class:`FlowLoadError` from :func:`open_backend` with one line
  naming the flow file as written, the node and the reason.
- ``outputs`` hold exactly the flow's declared outputs; ``logs`` what the line's code printed, per stream;
  ``traces`` (optional) the line's spans in the neutral shape of :mod:`llmops_tui.core.backends.tracing`.
- :meth:`FlowBackend.run_aggregation` returns the metrics the flow logs, exactly as the reference
  engine (``pf.run`` + ``pf.get_metrics``) would for the same lines.
- Nothing a backend keeps per line outlives the line (memory stays flat over 10,000 lines).
- A backend does not bound a line's time: :meth:`FlowBackend.run_line` runs in the caller's thread, and
  the caller's line pool (:mod:`llmops_tui.core.linepool`) abandons a line past its deadline (its late
  outcome is ignored), so a backend must tolerate a line that never returns.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any


class FlowLoadError(Exception):
    """A flow (or evaluator) that cannot be loaded: every line would fail the same way. One line."""


class AggregationError(Exception):
    """A flow's aggregation step failed: its metrics are missing. One line."""


@dataclass(frozen=True)
class ConnectionSpec:
    """A resolved connection, in memory only: what a backend needs to reach a model. Never persisted;
    ``repr`` hides the key."""

    name: str
    kind: str  # "AzureOpenAIConnection" | "OpenAIConnection"
    api_base: str
    api_key: str = field(repr=False)
    api_version: str | None = None

    @property
    def is_openai(self) -> bool:
        return self.kind.startswith("OpenAI")

    @property
    def url(self) -> str:
        """Where requests go: an OpenAI base URL ends in ``/v1``; an Azure endpoint is as given."""
        if not self.is_openai:
            return self.api_base
        url = self.api_base.rstrip("/")
        return url if url.endswith("/v1") else url + "/v1"


@dataclass
class BackendOptions:
    """What every backend is opened with."""

    connections: dict[str, ConnectionSpec]
    line_timeout_s: float
    secrets: list[str] = field(default_factory=list)  # redacted from every error and log text
    source_dir: Path | None = None  # the flow as written (messages name it, not the materialised copy)
    workspace: Path | None = None  # paths in messages are shown relative to it
    backend: str | None = None  # what runs DAG flows: None or "promptflow-dag", or "agent-framework"


@dataclass
class LineOutcome:
    """One line's result, neutral of the backend that ran it."""

    ok: bool
    outputs: dict[str, Any] | None = None
    error: str | None = None  # one line; None when ok
    logs: dict[str, str] | None = None  # {"stdout": ..., "stderr": ...}, only streams with text
    aggregation_inputs: dict[str, Any] | None = None  # what the aggregation step needs from this line
    # the line's spans, flat and in call order, each with its depth (see core/backends/tracing.py);
    # None when the backend records none
    traces: list[dict[str, Any]] | None = None


class FlowBackend(ABC):
    """One opened flow. Thread-safe for :meth:`run_line`."""

    #: registry name, e.g. "promptflow-dag"
    name: str = ""

    @abstractmethod
    def run_line(self, inputs: dict[str, Any], index: int, run_id: str) -> LineOutcome:
        """Run one line. Never raises for a line's own failure."""

    @property
    @abstractmethod
    def has_aggregation(self) -> bool:
        """Whether the flow has an aggregation step (evaluation flows with ``log_metric``)."""

    @abstractmethod
    def run_aggregation(self, inputs: list[dict[str, Any]], outcomes: list[LineOutcome]) -> dict[str, float]:
        """The flow's metrics over the given lines (their inputs and outcomes, in the same order).
        Raises :class:`AggregationError` when the step fails."""

    def close(self) -> None:  # noqa: B027  (optional for backends that hold nothing)
        """Release what the backend holds."""
