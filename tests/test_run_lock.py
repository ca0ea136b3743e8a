"""One runner per run: a second runner is refused naming the first; a killed runner never blocks a resume;
a run killed before its cells were stored resumes."""

from __future__ import annotations

import json
import subprocess
import sys
import threading

import pytest
from builders import make_use_case

from llmops_tui.cli import main
from llmops_tui.core import events as ev
from llmops_tui.core.engine import run_sweep
from llmops_tui.core.store import RunLock, RunStore
from llmops_tui.core.summary import new_run_id
from llmops_tui.core.sweep import SweepOptions, plan_sweep
from llmops_tui.core.workspace import load_workspace

pytestmark = pytest.mark.integration


def _resume(ws, run_id, capfd):
    rc = main(["sweep", "--resume", run_id, "-w", str(ws), "--json"])
    out, err = capfd.readouterr()
    return rc, out, err


def test_resume_while_another_process_runs_it_is_refused(tmp_path, capfd):
    make_use_case(tmp_path, rows=4)
    uc = load_workspace(tmp_path).use_cases[0]
    plan = plan_sweep(uc, SweepOptions(llm_endpoint="sandbox", variants="defaults", sandbox_latency_ms=400))
    events = run_sweep(tmp_path, uc, plan, progress_interval=0.05)
    started = next(e for e in events if isinstance(e, ev.SweepStarted))
    release = threading.Event()

    def drain() -> None:
        for _ in events:
            pass
        release.set()

    t = threading.Thread(target=drain)
    t.start()
    try:
        rc, out, err = _resume(tmp_path, started.run_id, capfd)
        assert rc == 2 and out == ""
        assert "is still running" in err or "is being run by" in err, err
    finally:
        t.join(timeout=120)
    assert release.is_set()
    with RunStore.for_workspace(tmp_path) as store:
        assert store.require_run(started.run_id).status == "completed"


def test_a_second_resume_racing_the_first_is_refused_naming_it(tmp_path, capfd):
    make_use_case(tmp_path, rows=2)
    assert main(["sweep", "tickets", "-w", str(tmp_path), "--llm-endpoint", "sandbox", "--json"]) == 0
    run_id = json.loads(capfd.readouterr().out)["run_id"]
    # the first resume has taken the lock but not yet marked the run as running
    with RunLock(tmp_path / ".llmops" / "store.sqlite", run_id):
        rc, out, err = _resume(tmp_path, run_id, capfd)
    assert rc == 2 and "is being run by process" in err and "Traceback" not in err, err
    # once it let go, a resume runs (nothing left to do: the run completes at once)
    rc, out, err = _resume(tmp_path, run_id, capfd)
    assert rc == 0, err
    assert json.loads(out)["status"] == "completed"


def test_killed_runner_leaves_a_resumable_run_and_no_stale_lock(tmp_path, capfd):
    make_use_case(tmp_path, rows=3)
    uc = load_workspace(tmp_path).use_cases[0]
    plan = plan_sweep(uc, SweepOptions(llm_endpoint="sandbox", variants="defaults"))
    run_id = new_run_id()
    # a runner killed right after it recorded the run, before any cell was stored
    code = (
        "import os, sys\n"
        "from llmops_tui.core.store import RunLock, RunStore\n"
        f"s = RunStore.for_workspace({str(tmp_path)!r})\n"
        f"lock = RunLock(s.path, {run_id!r}).acquire()\n"
        f"s.create_run({run_id!r}, 'tickets', None, {{'options': {plan.options.to_dict()!r}}})\n"
        "os.kill(os.getpid(), 9)\n"
    )
    subprocess.run([sys.executable, "-c", code], timeout=60)
    with RunStore.for_workspace(tmp_path) as store:
        run = store.require_run(run_id)
        assert run.status == "interrupted" and run.resumable
        assert store.cells(run_id) == []
    rc, out, err = _resume(tmp_path, run_id, capfd)
    assert rc == 0, err
    summary = json.loads(out)
    assert summary["status"] == "completed" and summary["lines_done"] == 3
