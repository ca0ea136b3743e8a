"""`--line-timeout` stops every line, whatever it is stuck in, on every backend, here and in workers.

A flow whose Python code blocks far past the timeout (no model call the call policy could stop) must not
hang the sweep: the line pool's watchdog (core/linepool.py) records the line once as failed with the
timeout error, abandons its thread and goes on; the run's status and the exit code show the failure.
The sweeps run as subprocesses with a generous timeout: a safety net, not the assertion.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
from builders import make_flex_use_case, make_use_case

from llmops_tui.core.linepool import CANCELLED, TIMEOUT, LineJob, LinePool, LinePoolBroken
from llmops_tui.core.store import RunStore

SAFETY_NET_S = 240  # far above any of these sweeps: only a hang reaches it
TIMEOUT_PREFIX = "line timed out after 1 s (--line-timeout)"

# The parse node blocks for the tickets it is told to (row 2 by default) until a release file appears:
# time.sleep(3600) in effect, but a test in this process can let the abandoned thread end.
BLOCKING_PARSE_PY = """\
import os
import time

from promptflow.core import tool

RELEASE = {release!r}
STUCK = {stuck!r}


@tool
def parse(answer: str, ticket: str = "") -> str:
    if any(mark in ticket for mark in STUCK):
        while not os.path.exists(RELEASE):
            time.sleep(0.02)
        return "late"
    text = answer.strip()
    if text.lower().startswith("category:"):
        text = text.split(":", 1)[1]
    return text.strip().strip('"').lower()
"""

BLOCKING_CLASSIFY_PY = """\
import os
import time
from pathlib import Path
from typing import TypedDict

from parse import parse
from promptflow.core import AzureOpenAIModelConfiguration, Prompty

HERE = Path(__file__).absolute().parent
RELEASE = {release!r}
STUCK = {stuck!r}


class Result(TypedDict):
    category: str


class Classifier:
    def __init__(self, model_config: AzureOpenAIModelConfiguration, max_tokens: int = 20):
        self.prompty = Prompty.load(
            source=HERE / "classify.prompty",
            model={{"configuration": model_config, "parameters": {{"max_tokens": max_tokens}}}},
        )

    def __call__(self, ticket: str) -> Result:
        if any(mark in ticket for mark in STUCK):
            while not os.path.exists(RELEASE):
                time.sleep(0.02)
            return {{"category": "late"}}
        return {{"category": parse(self.prompty(ticket=ticket))}}
"""


def _dag_use_case(root: Path, rows: int = 4, stuck: tuple[str, ...] = ("(#1)",)) -> Path:
    uc = make_use_case(root, rows=rows)
    flow = uc / "flows" / "standard"
    dag = (flow / "flow.dag.yaml").read_text()
    (flow / "flow.dag.yaml").write_text(
        dag.replace("answer: ${classify.output}", "answer: ${classify.output}\n    ticket: ${inputs.ticket}")
    )
    (flow / "parse.py").write_text(BLOCKING_PARSE_PY.format(release=str(root / "release"), stuck=stuck))
    return uc


def _flex_use_case(root: Path, rows: int = 4) -> Path:
    uc = make_flex_use_case(root, rows=rows)
    classify = BLOCKING_CLASSIFY_PY.format(release=str(root / "release"), stuck=("(#1)",))
    (uc / "flows" / "standard" / "classify.py").write_text(classify)
    return uc


def _sweep_cli(root: Path, *extra: str) -> tuple[int, dict]:
    cmd = [sys.executable, "-m", "llmops_tui.cli", "sweep", "tickets", "--workspace", str(root)]
    cmd += ["--llm-endpoint", "sandbox", "--line-timeout", "1", "--variants", "defaults", "--no-cache"]
    cmd += ["--json", *extra]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=SAFETY_NET_S, env=dict(os.environ))
    assert proc.stdout.strip(), proc.stderr[-3000:]
    return proc.returncode, json.loads(proc.stdout)


def _lines(root: Path, run_id: str) -> dict[int, tuple[str, str | None, object]]:
    with RunStore.for_workspace(root) as store:
        return {ln.line: (ln.status, ln.error, ln.outputs) for ln in store.lines(run_id)}


def _assert_one_line_timed_out(root: Path, code: int, summary: dict, lines: int = 4) -> None:
    assert summary["status"] == "completed_with_errors", summary.get("error")
    assert summary["error"].startswith(f"1 of {lines} lines failed; first: line 1 of ")
    assert TIMEOUT_PREFIX in summary["error"]
    assert code == 1
    assert summary["lines_done"] == lines and summary["errors"] == 1
    recorded = _lines(root, summary["run_id"])
    assert sorted(recorded) == list(range(lines))
    status, error, outputs = recorded[1]
    assert status == "failed" and outputs is None and error.startswith(TIMEOUT_PREFIX)
    assert all(recorded[i][0] == "ok" for i in recorded if i != 1)


# ------------------------------------------------------------------------------ every backend, CLI


@pytest.mark.integration
def test_a_dag_python_node_that_never_returns_is_stopped(tmp_path):
    _dag_use_case(tmp_path)
    code, summary = _sweep_cli(tmp_path)
    _assert_one_line_timed_out(tmp_path, code, summary)
    # the evaluator scored the lines that ran; the stuck line has no score to give
    assert summary["cells"][0]["metrics"]["label_match"]["accuracy"] is not None


@pytest.mark.integration
def test_a_stuck_line_in_a_worker_process_is_stopped(tmp_path):
    _dag_use_case(tmp_path)
    code, summary = _sweep_cli(tmp_path, "--workers", "2")
    _assert_one_line_timed_out(tmp_path, code, summary)


@pytest.mark.integration
def test_a_flex_entry_that_never_returns_is_stopped(tmp_path):
    _flex_use_case(tmp_path)
    code, summary = _sweep_cli(tmp_path)
    _assert_one_line_timed_out(tmp_path, code, summary)


@pytest.mark.integration
def test_an_agent_framework_python_node_that_never_returns_is_stopped(tmp_path):
    pytest.importorskip("agent_framework")
    _dag_use_case(tmp_path)
    code, summary = _sweep_cli(tmp_path, "--backend", "agent-framework")
    _assert_one_line_timed_out(tmp_path, code, summary)


@pytest.mark.integration
@pytest.mark.parametrize(("extra", "cap"), [((), 2), (("--workers", "2"), 1)], ids=["here", "workers"])
def test_too_many_stuck_lines_stop_the_run_as_failed(tmp_path, extra, cap):
    # every line blocks: past the cap of abandoned threads (the pool's concurrency: 2 here, 1 in each of
    # two workers) the run stops
    _dag_use_case(tmp_path, rows=8, stuck=("(#",))
    code, summary = _sweep_cli(tmp_path, "--concurrency", "2", *extra)
    assert summary["status"] == "failed" and code == 1
    assert f"more than {cap}, the pool's limit" in summary["error"], summary["error"]
    assert "--line-timeout 1 s" in summary["error"]
    recorded = _lines(tmp_path, summary["run_id"])
    assert recorded and len(recorded) < 8  # it stopped: not one abandoned thread per line
    assert all(
        status == "failed" and error.startswith(TIMEOUT_PREFIX) for status, error, _ in recorded.values()
    )


# ------------------------------------------------------------------- in this process: a late result


@pytest.mark.integration
def test_a_late_result_is_ignored(tmp_path, monkeypatch):
    from llmops_tui.core import events as ev
    from llmops_tui.core.engine import SweepRunner, run_sweep
    from llmops_tui.core.sweep import SweepOptions, plan_sweep
    from llmops_tui.core.workspace import load_workspace

    _dag_use_case(tmp_path)
    delivered: list[tuple[str, int, str]] = []
    original = SweepRunner._deliver

    def deliver(self, state, ran):
        if ran.rec is not None:
            delivered.append((ran.rec.cell_id, ran.rec.line, ran.rec.status))
        return original(self, state, ran)

    monkeypatch.setattr(SweepRunner, "_deliver", deliver)
    uc = load_workspace(tmp_path).use_cases[0]
    plan = plan_sweep(uc, SweepOptions(llm_endpoint="sandbox", line_timeout_s=1, variants="defaults"))
    finished: list[ev.SweepFinished] = []
    cancel = threading.Event()

    def sweep() -> None:
        for event in run_sweep(tmp_path, uc, plan, cancel=cancel, progress_interval=0.05):
            if isinstance(event, ev.SweepFinished):
                finished.append(event)

    runner = threading.Thread(target=sweep)
    runner.start()
    runner.join(timeout=SAFETY_NET_S)
    if runner.is_alive():  # the safety net: stop it, then fail
        cancel.set()
        (tmp_path / "release").write_text("")
        runner.join(timeout=30)
        pytest.fail("the sweep did not finish")
    [final] = finished
    assert final.status == "completed_with_errors"
    stuck = [t for t in threading.enumerate() if t.name.startswith("llmops-line-")]
    assert stuck  # the abandoned thread is still in the node
    (tmp_path / "release").write_text("")  # now the node returns "late"
    for t in stuck:
        t.join(timeout=30)
    assert not any(t.is_alive() for t in stuck)
    assert [d for d in delivered if d[1] == 1] == [(final.summary["cells"][0]["cell_id"], 1, "failed")]
    assert len(delivered) == 4
    status, error, outputs = _lines(tmp_path, final.run_id)[1]
    assert status == "failed" and error.startswith(TIMEOUT_PREFIX) and outputs is None

    # nothing of the abandoned line reached the cache: a second sweep takes the three other lines from
    # it and runs line 1 afresh (the node now returns at once)
    again = [e for e in run_sweep(tmp_path, uc, plan) if isinstance(e, ev.SweepFinished)][0]
    assert again.status == "completed" and again.summary["cache_hits"] == 3
    assert _lines(tmp_path, again.run_id)[1][:2] == ("ok", None)


@pytest.mark.integration
def test_cancelling_does_not_wait_for_a_stuck_line_and_resume_runs_it(tmp_path):
    from llmops_tui.core import events as ev
    from llmops_tui.core.engine import resume_sweep, run_sweep
    from llmops_tui.core.sweep import SweepOptions, plan_sweep
    from llmops_tui.core.workspace import load_workspace

    _flex_use_case(tmp_path)
    uc = load_workspace(tmp_path).use_cases[0]
    # a deadline far away: only the cancel can end the stuck line
    plan = plan_sweep(uc, SweepOptions(llm_endpoint="sandbox", line_timeout_s=600, no_cache=True))
    cancel = threading.Event()
    finished: list[ev.SweepFinished] = []

    def sweep() -> None:
        for event in run_sweep(tmp_path, uc, plan, cancel=cancel, progress_interval=0.05):
            if isinstance(event, ev.Progress) and event.done == 3:
                cancel.set()  # the three other lines are in: cancel while line 1 is stuck
            if isinstance(event, ev.SweepFinished):
                finished.append(event)

    runner = threading.Thread(target=sweep)
    runner.start()
    runner.join(timeout=SAFETY_NET_S)
    (tmp_path / "release").write_text("")  # lets the abandoned thread end (and the safety net's sweep)
    runner.join(timeout=30)
    assert not runner.is_alive(), "the cancelled sweep waited for the stuck line"
    [final] = finished
    assert final.status == "cancelled"
    assert sorted(_lines(tmp_path, final.run_id)) == [0, 2, 3]  # the stuck line is not a failure
    for t in [t for t in threading.enumerate() if t.name.startswith("llmops-line-")]:
        t.join(timeout=30)
    assert sorted(_lines(tmp_path, final.run_id)) == [0, 2, 3]  # its late result was not recorded

    resumed = [e for e in resume_sweep(tmp_path, final.run_id) if isinstance(e, ev.SweepFinished)]
    assert resumed[0].status == "completed"
    recorded = _lines(tmp_path, final.run_id)
    assert (
        sorted(recorded) == [0, 1, 2, 3] and recorded[1][0] == "ok" and recorded[1][2] == {"category": "late"}
    )


# ------------------------------------------------------------------------------- the pool itself


def _job(calls: list, run, timeout_s: float | None, ended: threading.Event | None = None) -> LineJob:
    def note(what):
        def f(*args):
            calls.append((what, *args))
            if ended is not None:
                ended.set()

        return f

    return LineJob(run, note("deliver"), note("overdue"), note("skip"), timeout_s)


def test_the_watchdog_reports_an_overdue_line_once_and_drops_its_late_result():
    pool = LinePool(1, name="test-pool")
    release = threading.Event()
    calls: list = []
    ended = threading.Event()
    try:
        pool.submit(_job(calls, lambda: release.wait() and "late", 0.2, ended))
        assert ended.wait(10)
        assert calls == [("overdue", TIMEOUT)]
        # the pool kept its concurrency: a replacement thread runs the next line
        more: list = []
        done = threading.Event()
        pool.submit(_job(more, lambda: "next", 5, done))
        assert done.wait(10) and more == [("deliver", "next")]
        [abandoned] = list(pool._abandoned)
        release.set()
        abandoned.join(timeout=10)
        assert not abandoned.is_alive()
        assert calls == [("overdue", TIMEOUT)]  # the late "late" was never delivered
        assert pool.abandoned_alive() == 0 and pool.idle()
    finally:
        release.set()
        pool.shutdown()


def test_past_the_cap_the_pool_breaks_once_and_skips_what_did_not_start():
    broken: list[str] = []
    pool = LinePool(1, name="test-pool", max_abandoned=1, on_broken=broken.append, queue_size=4)
    release = threading.Event()
    calls: list = []
    try:
        for _ in range(4):
            pool.submit(_job(calls, release.wait, 0.2))
        end = time.monotonic() + 20
        while not pool.idle() and time.monotonic() < end:
            time.sleep(0.02)
        assert pool.idle()
        assert calls == [("overdue", TIMEOUT), ("overdue", TIMEOUT), ("skip",), ("skip",)]
        assert len(broken) == 1 and "more than 1, the pool's limit" in broken[0]
        later: list = []
        pool.submit(_job(later, lambda: "x", 1))
        assert later == [("skip",)]
        with pytest.raises(LinePoolBroken):
            pool.map(lambda x: x, [1], timeout_s=1, on_overdue=lambda x, r: -1)
    finally:
        release.set()
        pool.shutdown()


def test_a_cancelled_pool_abandons_running_lines_after_its_grace():
    cancel = threading.Event()
    pool = LinePool(2, name="test-pool", cancel=cancel, cancel_grace_s=0.1)
    release = threading.Event()
    calls: list = []
    ended = threading.Event()
    try:
        pool.submit(_job(calls, release.wait, None, ended))  # no deadline at all
        time.sleep(0.1)
        assert not ended.is_set()
        cancel.set()
        assert ended.wait(10) and calls == [("overdue", CANCELLED)]
        assert pool.broken is None  # cancelled lines do not count against the cap
    finally:
        release.set()
        pool.shutdown()


def test_map_keeps_order_and_puts_the_overdue_value_in_place():
    pool = LinePool(3, name="test-pool")
    release = threading.Event()
    try:
        out = pool.map(
            lambda x: release.wait() if x == 2 else x * 10,
            [1, 2, 3],
            timeout_s=0.3,
            on_overdue=lambda x, reason: f"{x} {reason}",
        )
        assert out == [10, f"2 {TIMEOUT}", 30]
    finally:
        release.set()
        pool.shutdown()


def test_submit_blocks_while_the_queue_is_full():
    pool = LinePool(1, name="test-pool", queue_size=1)
    release = threading.Event()
    calls: list = []
    fed: list[int] = []
    try:

        def feed() -> None:
            for i in range(4):
                pool.submit(_job(calls, release.wait, None))
                fed.append(i)

        feeder = threading.Thread(target=feed, daemon=True)
        feeder.start()
        end = time.monotonic() + 10
        while len(fed) < 2 and time.monotonic() < end:
            time.sleep(0.02)
        time.sleep(0.2)
        assert len(fed) == 2  # one running, one queued; the third waits for room
        release.set()
        feeder.join(timeout=10)
        assert fed == [0, 1, 2, 3]
    finally:
        release.set()
        pool.shutdown(cancel_pending=False)
