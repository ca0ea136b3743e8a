"""One dispatcher for every front end: the CLI, the app and the Python API start and resume sweeps here.

The plan says where it runs (``plan.options.target``): ``local`` runs in this process through the engine
and its backends, ``azureml`` in an Azure ML workspace. Both yield the same events
(:mod:`llmops_tui.core.events`) and write the same records into the workspace's run store, so nothing
downstream knows where a run ran. Nothing heavy is imported here: the engine (and Prompt flow with it)
is imported when a sweep starts.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from pathlib import Path

from llmops_tui.core import events as ev
from llmops_tui.core.errors import LlmopsError
from llmops_tui.core.store import RunStore
from llmops_tui.core.sweep import SweepPlan
from llmops_tui.core.workspace import UseCase

TARGETS = ("local", "azureml")


def start_sweep(
    ws_root: Path,
    uc: UseCase,
    plan: SweepPlan,
    *,
    cancel: threading.Event | None = None,
    progress_interval: float = 0.25,
    run_id: str | None = None,
) -> Iterator[ev.Event]:
    """Start a planned sweep where its plan says; yields events, first ``SweepStarted``, last
    ``SweepFinished``. Bad input raises :class:`LlmopsError` before anything runs."""
    target = plan.options.target or "local"
    if target == "azureml":
        from llmops_tui.core.cloud import run_cloud_sweep

        return run_cloud_sweep(ws_root, uc, plan, cancel=cancel, run_id=run_id)
    if target == "local":
        from llmops_tui.core.engine import run_sweep

        return run_sweep(ws_root, uc, plan, cancel=cancel, progress_interval=progress_interval, run_id=run_id)
    raise LlmopsError(f"unknown target '{target}'", field="--target", hint="use " + " or ".join(TARGETS))


def resume(
    ws_root: Path, run_id: str, *, cancel: threading.Event | None = None, progress_interval: float = 0.25
) -> Iterator[ev.Event]:
    """Resume an unfinished run: only what is missing or failed runs. Cloud runs cannot be resumed."""
    with RunStore.for_workspace(Path(ws_root).resolve()) as store:
        previous = store.require_run(run_id, field="--resume")
    if previous.target != "local":
        raise LlmopsError(
            f"run {previous.run_id} ran on {previous.target}; cloud runs cannot be resumed",
            field="--resume",
            hint="start a new sweep with --target azureml",
        )
    from llmops_tui.core.engine import resume_sweep

    return resume_sweep(ws_root, previous.run_id, cancel=cancel, progress_interval=progress_interval)
