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

__all__ = [
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


def backend_for(flow_dir: Path) -> str:
    """The backend name that runs this flow folder: ``promptflow-dag`` for flow.dag.yaml, ``flex`` for
    flow.flex.yaml and for code-only evaluator folders (Python modules with ``eval*`` functions)."""
    from llmops_tui.core.flows import flow_kind

    kind = flow_kind(Path(flow_dir))
    if kind == "dag":
        return "promptflow-dag"
    if kind in ("flex", "code"):
        return "flex"
    raise FlowLoadError(
        f"{flow_dir}: no flow.dag.yaml or flow.flex.yaml, and no eval* functions (no backend runs it)"
    )


def open_backend(flow_dir: Path, options: BackendOptions) -> FlowBackend:
    """Open the flow in ``flow_dir`` with the backend that runs it; :class:`FlowLoadError` when it cannot."""
    name = backend_for(flow_dir)
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
