"""Lines in worker processes (``--workers``): the same results as one process, and the same honesty when a
worker dies, a flow cannot load or a person cancels."""

from __future__ import annotations

import threading

import pytest
from builders import make_use_case

from llmops_tui.core import events as ev
from llmops_tui.core.engine import SweepRunner, resume_sweep
from llmops_tui.core.store import RunStore
from llmops_tui.core.sweep import SweepOptions, plan_sweep
from llmops_tui.core.workers import default_workers
from llmops_tui.core.workspace import load_workspace

pytestmark = pytest.mark.integration


def _runner(root, **options) -> SweepRunner:
    uc = load_workspace(root).use_cases[0]
    plan = plan_sweep(uc, SweepOptions(llm_endpoint="sandbox", **options))
    return SweepRunner(root, uc, plan, progress_interval=0.05)


def _finish(events) -> ev.SweepFinished:
    final = None
    for e in events:
        if isinstance(e, ev.SweepFinished):
            final = e
    assert final is not None
    return final


def _outputs(root, run_id):
    with RunStore.for_workspace(root) as store:
        return {(ln.cell_id, ln.line): (ln.status, ln.outputs) for ln in store.lines(run_id)}


def test_default_workers_use_every_core_only_for_big_sweeps():
    assert default_workers(100, cores=2) == 1
    assert default_workers(800, cores=2) == 1  # a latency-bound sweep: one process is faster (measured)
    assert default_workers(8_000, cores=2) == 2
    assert default_workers(100_000, cores=4) == 4
    assert default_workers(100_000, cores=1) == 1


def test_two_workers_give_the_same_lines_and_metrics_as_one_process(tmp_path):
    make_use_case(tmp_path, rows=10)
    one = _finish(_runner(tmp_path, workers=1, no_cache=True).events())
    two = _finish(_runner(tmp_path, workers=2).events())  # an empty cache: runs every line, fills it
    assert one.status == two.status == "completed"
    assert [c["metrics"] for c in one.summary["cells"]] == [c["metrics"] for c in two.summary["cells"]]
    assert _outputs(tmp_path, one.run_id) == _outputs(tmp_path, two.run_id)
    assert two.summary["llm_calls"] == 20 and two.summary["requests"] == 20
    # the cache is shared: a warm run through the workers calls nothing
    warm = _finish(_runner(tmp_path, workers=2).events())
    assert warm.status == "completed" and warm.summary["cache_hits"] == 20 and warm.summary["llm_calls"] == 0


def test_a_flow_that_cannot_load_in_a_worker_fails_its_cell_in_one_line(tmp_path):
    uc = make_use_case(tmp_path, rows=4)
    parse = uc / "flows" / "standard" / "parse.py"
    parse.write_text("__import__('no_such_module_in_worker')\n" + parse.read_text())
    final = _finish(_runner(tmp_path, workers=2, variants="defaults").events())
    assert final.status == "failed"
    assert "no_such_module_in_worker" in final.error and "\n" not in final.error
    assert "use_cases/tickets/flows/standard/flow.dag.yaml" in final.error


def test_a_worker_that_dies_fails_the_run_and_resume_finishes_it(tmp_path):
    make_use_case(tmp_path, rows=12)
    runner = _runner(tmp_path, workers=2, variants="defaults", sandbox_latency_ms=300, concurrency=2)
    final = None
    killed = False
    for e in runner.events():
        if isinstance(e, ev.Progress) and e.done >= 1 and not killed:
            runner._pool._procs[0].kill()
            killed = True
        if isinstance(e, ev.SweepFinished):
            final = e
    assert killed and final is not None
    assert final.status == "failed" and "died" in final.error
    resumed = _finish(resume_sweep(tmp_path, final.run_id))
    assert resumed.status == "completed" and resumed.summary["lines_done"] == 12


def test_cancel_reaches_the_workers(tmp_path):
    make_use_case(tmp_path, rows=12)
    cancel = threading.Event()
    uc = load_workspace(tmp_path).use_cases[0]
    plan = plan_sweep(
        uc, SweepOptions(llm_endpoint="sandbox", workers=2, sandbox_latency_ms=300, concurrency=2)
    )
    runner = SweepRunner(tmp_path, uc, plan, cancel=cancel, progress_interval=0.05)
    final = None
    for e in runner.events():
        if isinstance(e, ev.Progress) and e.done >= 1:
            cancel.set()
        if isinstance(e, ev.SweepFinished):
            final = e
    assert final is not None and final.status == "cancelled"
    assert final.summary["lines_done"] < 24
