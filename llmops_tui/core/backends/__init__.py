"""Backends behind the executor seam (see :mod:`llmops_tui.core.backends.base`).

``open_backend(flow_dir, options)`` picks the backend for a flow folder by what it holds. Importing this
package is cheap: a backend module (and Prompt flow with it) is imported only when a flow is opened.
"""

from __future__ import annotations

from pathlib import Path

from llmops_tui.core.backends.base import (
    AggregationError,
    BackendOptions,
    ConnectionSpec,
    FlowBackend,
    FlowLoadError,
    LineOutcome,
)

#: the backends that can run a DAG flow (flow.dag.yaml); the first is the default
DAG_BACKENDS = ("promptflow-dag", "agent-framework")

__all__ = [
    "DAG_BACKENDS",
    "AggregationError",
    "BackendOptions",
    "ConnectionSpec",
    "FlowBackend",
    "FlowLoadError",
    "LineOutcome",
    "backend_for",
    "open_backend",
    "prepare_process",
]


def backend_for(flow_dir: Path, preferred: str | None = None) -> str:
    """The backend name that runs this flow folder: ``promptflow-dag`` for flow.dag.yaml (or
    ``preferred`` when it is another DAG backend, ``agent-framework``), ``flex`` for flow.flex.yaml and
    for code-only evaluator folders (Python modules with ``eval*`` functions)."""
    from llmops_tui.core.flows import flow_kind

    kind = flow_kind(Path(flow_dir))
    if kind == "dag":
        return preferred if preferred in DAG_BACKENDS else "promptflow-dag"
    if kind in ("flex", "code"):
        return "flex"
    raise FlowLoadError(
        f"{flow_dir}: no flow.dag.yaml or flow.flex.yaml, and no eval* functions (no backend runs it)"
    )


def open_backend(flow_dir: Path, options: BackendOptions) -> FlowBackend:
    """Open the flow in ``flow_dir`` with the backend that runs it (``options.backend`` chooses among the
    DAG backends); :class:`FlowLoadError` when it cannot."""
    name = backend_for(flow_dir, options.backend)
    if name == "agent-framework":  # imports Agent Framework only now
        from llmops_tui.core.backends.agent_framework import AgentFrameworkBackend

        return AgentFrameworkBackend(Path(flow_dir), options)
    if name == "promptflow-dag":
        from llmops_tui.core.backends.promptflow_dag import PromptflowDagBackend

        return PromptflowDagBackend(Path(flow_dir), options)
    if name == "flex":
        from llmops_tui.core.backends.flex import FlexBackend

        return FlexBackend(Path(flow_dir), options)
    raise FlowLoadError(f"{flow_dir}: unknown backend {name}")  # pragma: no cover


def prepare_process(store_dir: Path) -> None:
    """Once per process, before the first flow opens: keep every backend offline and quiet, with its
    home under the workspace's ``.llmops/``."""
    from llmops_tui.core.backends.promptflow_dag import prepare

    prepare(store_dir)
