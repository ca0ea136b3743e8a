"""The sweep engine against the real sandbox server over real HTTP, with real promptflow execution."""

from __future__ import annotations

import json
import os
import shutil
import signal
import sqlite3
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
from builders import make_use_case

from llmops_tui.core import events as ev
from llmops_tui.core.engine import resume_sweep, run_sweep
from llmops_tui.core.errors import LlmopsError
from llmops_tui.core.store import RunStore
from llmops_tui.core.sweep import SweepOptions, plan_sweep
from llmops_tui.core.workspace import load_workspace

pytestmark = pytest.mark.integration
REPO = Path(__file__).resolve().parent.parent


def sweep(
    ws_root: Path, options: SweepOptions, cancel: threading.Event | None = None
) -> tuple[ev.SweepFinished, list]:
    uc = load_workspace(ws_root).use_cases[0]
    plan = plan_sweep(uc, options)
    seen = []
    final = None
    for event in run_sweep(ws_root, uc, plan, cancel=cancel, progress_interval=0.05):
        seen.append(event)
        if isinstance(event, ev.SweepFinished):
            final = event
    assert final is not None
    return final, seen


def test_sweep_evaluates_caches_and_reruns_only_what_changed(tmp_path, sandbox):
    make_use_case(tmp_path, rows=12)
    before = sandbox.stats()["requests"]
    final, seen = sweep(tmp_path, SweepOptions(llm_endpoint=sandbox.url))
    assert final.status == "completed"
    s = final.summary
    assert s["cell_count"] == 2 and s["lines_done"] == 24 and s["errors"] == 0
    assert s["llm_calls"] == 24 == sandbox.stats()["requests"] - before
    for cell in s["cells"]:
        assert 0 <= cell["metrics"]["label_match"]["accuracy"] <= 1
        assert cell["tokens"]["total"] > 0 and cell["latency_ms"]["p50"] is not None
    assert {type(e) for e in seen} >= {
        ev.SweepStarted,
        ev.Progress,
        ev.CellFinished,
        ev.MetricsReady,
        ev.SweepFinished,
    }
    # per-line evaluator scores are stored for statistics
    with RunStore.for_workspace(tmp_path) as store:
        cell_id = s["cells"][0]["cell_id"]
        scores = store.eval_lines(final.run_id, cell_id, "label_match")
        assert len(scores) == 12 and all(r["outputs"]["correct"] in (0, 1) for r in scores)
        assert store.get_run(final.run_id).status == "completed"

    # a warm re-run makes no LLM call at all
    before = sandbox.stats()["requests"]
    warm, _ = sweep(tmp_path, SweepOptions(llm_endpoint=sandbox.url))
    assert warm.summary["llm_calls"] == 0 and warm.summary["cache_hits"] == 24
    assert sandbox.stats()["requests"] == before
    assert [c["metrics"] for c in warm.summary["cells"]] == [c["metrics"] for c in s["cells"]]

    # editing one variant's prompt re-runs only the cells that use it
    prompt = tmp_path / "use_cases" / "tickets" / "flows" / "standard" / "prompt_v1.jinja2"
    prompt.write_text(prompt.read_text() + "\nBe brief.\n")
    before = sandbox.stats()["requests"]
    edited, _ = sweep(tmp_path, SweepOptions(llm_endpoint=sandbox.url))
    calls = {c["variants"]["classify"]: c["llm_calls"] for c in edited.summary["cells"]}
    assert calls == {"variant_0": 0, "variant_1": 12}
    assert sandbox.stats()["requests"] - before == 12

    # --no-cache bypasses it
    nocache, _ = sweep(tmp_path, SweepOptions(llm_endpoint=sandbox.url, no_cache=True, variants="defaults"))
    assert nocache.summary["llm_calls"] == 12


def test_bundled_variants_differ_in_metrics(tmp_path, sandbox):
    shutil.copytree(REPO / "use_cases" / "support_ticket_classification", tmp_path / "use_cases" / "stc")
    final, _ = sweep(tmp_path, SweepOptions(llm_endpoint=sandbox.url, limit=40))
    values = {json.dumps(c["metrics"], sort_keys=True) for c in final.summary["cells"]}
    assert len(values) >= 2


def test_faults_every_line_accounted_for(tmp_path):
    from llmops_tui.sandbox import start_sandbox

    make_use_case(tmp_path, rows=60)
    with start_sandbox(rate_429=0.2, rate_500=0.05, rate_timeout=0.01, timeout_hold_s=2.0, seed=7) as faulty:
        options = SweepOptions(llm_endpoint=faulty.url, request_timeout_s=0.5, max_retries=8, concurrency=16)
        final, seen = sweep(tmp_path, options)
        injected = faulty.stats()["errors_injected"]
    assert final.status == "completed"
    assert any(isinstance(e, ev.RetryScheduled) for e in seen)
    assert injected
    with RunStore.for_workspace(tmp_path) as store:
        lines = store.lines(final.run_id)
    assert len(lines) == 120  # none lost, none duplicated (primary key run/cell/line)
    assert {(r.cell_id, r.line) for r in lines} == {
        (c, i) for c in {r.cell_id for r in lines} for i in range(60)
    }
    for r in lines:
        assert (r.status == "ok" and r.outputs is not None) or (r.status == "failed" and r.error)
    assert sum(r.attempts > 1 for r in lines) > 0


def test_cancel_leaves_a_resumable_run(tmp_path):
    from llmops_tui.sandbox import start_sandbox

    make_use_case(tmp_path, rows=40)
    cancel = threading.Event()
    with start_sandbox(latency_ms=100) as slow:
        uc = load_workspace(tmp_path).use_cases[0]
        plan = plan_sweep(uc, SweepOptions(llm_endpoint=slow.url, concurrency=2))
        final = None
        for event in run_sweep(tmp_path, uc, plan, cancel=cancel, progress_interval=0.05):
            if isinstance(event, ev.Progress) and event.done >= 4:
                cancel.set()
            if isinstance(event, ev.SweepFinished):
                final = event
        assert final is not None and final.status == "cancelled"
        with RunStore.for_workspace(tmp_path) as store:
            run = store.get_run(final.run_id)
            assert run.resumable and 4 <= len(store.lines(final.run_id)) < 80
        resumed = list(resume_sweep(tmp_path, final.run_id, progress_interval=0.05))
    assert resumed[-1].status == "completed" and resumed[-1].summary["lines_done"] == 80


def _wait_lines(db: Path, n: int, timeout: float = 60) -> int:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if db.exists():
            try:
                with sqlite3.connect(db) as conn:
                    count = conn.execute("SELECT COUNT(*) FROM lines").fetchone()[0]
                if count >= n:
                    return count
            except sqlite3.OperationalError:
                pass
        time.sleep(0.05)
    raise AssertionError("sweep made no progress")


def test_sigkill_then_resume_matches_uninterrupted_run(tmp_path):
    from llmops_tui.sandbox import start_sandbox

    killed_ws = tmp_path / "killed"
    clean_ws = tmp_path / "clean"
    make_use_case(killed_ws, rows=40)
    make_use_case(clean_ws, rows=40)
    with start_sandbox(latency_ms=60) as sb:
        cmd = [
            sys.executable,
            "-m",
            "llmops_tui.cli",
            "sweep",
            "tickets",
            "--workspace",
            str(killed_ws),
            "--llm-endpoint",
            sb.url,
            "--concurrency",
            "2",
            "--no-cache",
            "--json",
        ]
        proc = subprocess.Popen(
            cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=os.environ.copy()
        )
        try:
            _wait_lines(killed_ws / ".llmops" / "store.sqlite", 30)
            proc.send_signal(signal.SIGKILL)
            proc.wait(timeout=30)
        finally:
            if proc.poll() is None:
                proc.kill()
        with RunStore.for_workspace(killed_ws) as store:
            [run] = store.list_runs()
            assert run.status == "interrupted" and run.resumable
            done = len(store.lines(run.run_id))
        assert 30 <= done < 80
        # requests the killed process left in flight still reach the server: let them land first
        deadline = time.monotonic() + 10
        while sb.stats()["in_flight"] and time.monotonic() < deadline:
            time.sleep(0.02)
        before = sb.stats()["requests"]
        resumed = list(resume_sweep(killed_ws, run.run_id))[-1]
        resumed_calls = sb.stats()["requests"] - before
        clean, _ = sweep(clean_ws, SweepOptions(llm_endpoint=sb.url, no_cache=True))
    assert resumed.status == "completed"
    # the resumed part called the model only for lines that were not done
    assert resumed_calls == 80 - done
    metrics = lambda s: sorted((c["cell_id"], json.dumps(c["metrics"], sort_keys=True)) for c in s["cells"])  # noqa: E731
    assert metrics(resumed.summary) == metrics(clean.summary)


def test_canary_key_never_reaches_disk_or_output(tmp_path, sandbox, monkeypatch, capsys):
    from llmops_tui.cli import main

    canary = "sk-canary-7f3a9c1e5b"
    make_use_case(tmp_path, rows=6, api_base=sandbox.url)
    monkeypatch.setenv("AOAI_API_KEY", canary)
    code = main(["sweep", "tickets", "--workspace", str(tmp_path), "--json"])
    out = capsys.readouterr()
    assert code == 0, out.err
    assert canary not in out.out and canary not in out.err
    for path in (tmp_path / ".llmops").rglob("*"):
        if path.is_file():
            assert canary.encode() not in path.read_bytes(), path
    # and an unreachable endpoint's error messages do not carry it either
    make_use_case(tmp_path / "b", rows=2, api_base="http://127.0.0.1:9")
    code = main(["sweep", "tickets", "--workspace", str(tmp_path / "b"), "--json", "--line-timeout", "5"])
    out = capsys.readouterr()
    assert canary not in out.out + out.err
    for path in (tmp_path / "b" / ".llmops").rglob("*"):
        if path.is_file():
            assert canary.encode() not in path.read_bytes(), path


def test_missing_key_says_how_to_use_the_sandbox(tmp_path, monkeypatch, capsys):
    from llmops_tui.cli import main

    monkeypatch.delenv("AOAI_API_KEY", raising=False)
    make_use_case(tmp_path, rows=2)
    code = main(["sweep", "tickets", "--workspace", str(tmp_path)])
    err = capsys.readouterr().err
    assert code == 2
    assert "AOAI_API_KEY" in err and "--llm-endpoint sandbox" in err and "Traceback" not in err
    with pytest.raises(LlmopsError):
        from llmops_tui.core.connections import build_connections

        build_connections(load_workspace(tmp_path).use_cases[0], tmp_path, None)


def test_cli_dry_run_prints_plan(tmp_path, capsys):
    from llmops_tui.cli import main

    make_use_case(tmp_path, rows=5)
    code = main(
        [
            "sweep",
            "tickets",
            "--workspace",
            str(tmp_path),
            "--dry-run",
            "--json",
            "--grid",
            "classify.temperature=0,0.7",
            "--llm-endpoint",
            "sandbox",
        ]
    )
    data = json.loads(capsys.readouterr().out)
    assert code == 0 and len(data["cells"]) == 4
    assert data["estimate"]["llm_calls"] == 20
    assert data["estimate"]["cost"] == 0 and data["estimate"]["cost_free"]  # the sandbox is free
    assert not (tmp_path / ".llmops" / "store.sqlite").exists()


def test_rate_limits_from_llmops_yaml_reach_the_connection(tmp_path, sandbox):
    from llmops_tui.core.engine import SweepRunner

    uc_dir = make_use_case(tmp_path, rows=2)
    (uc_dir / "llmops.yaml").write_text("rate_limits:\n  aoai: {rpm: 30, tpm: 5000}\n")
    uc = load_workspace(tmp_path).use_cases[0]
    runner = SweepRunner(tmp_path, uc, plan_sweep(uc, SweepOptions(llm_endpoint=sandbox.url)))
    try:
        runner._setup()
        limiter = runner._limiter_for(sandbox.url + "/v1/")
        assert (limiter.rpm, limiter.tpm) == (30, 5000)
        assert runner._limiter_for("http://127.0.0.1:1/v1").rpm is None
    finally:
        runner.store.close()


def test_ctrl_c_cancels_cleanly_and_says_how_to_resume(tmp_path):
    from llmops_tui.sandbox import start_sandbox

    make_use_case(tmp_path, rows=40)
    with start_sandbox(latency_ms=100) as slow:
        cmd = [
            sys.executable,
            "-m",
            "llmops_tui.cli",
            "sweep",
            "tickets",
            "--workspace",
            str(tmp_path),
            "--llm-endpoint",
            slow.url,
            "--concurrency",
            "2",
        ]
        proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        try:
            _wait_lines(tmp_path / ".llmops" / "store.sqlite", 4)
            proc.send_signal(signal.SIGINT)
            out, err = proc.communicate(timeout=60)
        finally:
            if proc.poll() is None:
                proc.kill()
    assert proc.returncode == 130, err
    assert "Traceback" not in err and "llmops sweep --resume" in err
    with RunStore.for_workspace(tmp_path) as store:
        [run] = store.list_runs()
        assert run.status == "cancelled" and run.resumable
        assert len(store.lines(run.run_id)) < 80


@pytest.mark.parametrize("name", ["math_coding", "web_classification"])
def test_both_config_formats_sweep_and_match_evaluators(tmp_path, sandbox, name):
    """Older layout (RELATED_EXP_DATASET, two evaluation flows) and experiment.yaml (reference)."""
    shutil.copytree(REPO / "tests" / "fixtures" / "template_repo", tmp_path / "repo")
    ws = load_workspace(tmp_path / "repo")
    uc = ws.get(name)
    plan = plan_sweep(uc, SweepOptions(llm_endpoint=sandbox.url))
    final = list(run_sweep(ws.root, uc, plan))[-1]
    assert final.status == "completed" and final.summary["errors"] == 0
    expected = {e.name for e in uc.evaluators if e.datasets_for(plan.cells[0].dataset)}
    assert expected and (len(expected) == 2 if name == "math_coding" else len(expected) == 1)
    for cell in final.summary["cells"]:
        assert set(cell["metrics"]) == expected
        assert all(cell["metrics"][e] for e in expected)


def test_openai_compatible_endpoint_runs_azure_flows_via_the_openai_provider(tmp_path, sandbox):
    """--llm-endpoint URL: any OpenAI-compatible server; Azure OpenAI nodes run through the OpenAI tool,
    while the recorded cell version stays the flow as written (approvals compare with it)."""
    import yaml

    from llmops_tui.core.materialize import materialize_flow

    uc_dir = make_use_case(tmp_path, rows=4)
    final, _ = sweep(tmp_path, SweepOptions(llm_endpoint=sandbox.url + "/v1", variants="defaults"))
    assert final.status == "completed" and final.summary["errors"] == 0
    with RunStore.for_workspace(tmp_path) as store:
        [cell] = store.cells(final.run_id)
    _, as_written = materialize_flow(
        uc_dir / "flows" / "standard", tmp_path / "m", cell.variants, cell.params
    )
    assert cell.flow_hash == as_written
    executed = [
        yaml.safe_load((d / "flow.dag.yaml").read_text())
        for d in (tmp_path / ".llmops" / "flows").iterdir()
        if (d / "flow.dag.yaml").is_file()
    ]
    providers = {n.get("provider") for dag in executed for n in dag["nodes"] if n.get("type") == "llm"}
    assert "OpenAI" in providers
    openai_node = next(n for dag in executed for n in dag["nodes"] if n.get("provider") == "OpenAI")
    assert openai_node["inputs"]["model"] == "gpt-35-turbo" and "deployment_name" not in openai_node["inputs"]


def test_unreachable_endpoint_fails_fast_with_a_clear_error(tmp_path):
    import socket

    with socket.socket() as s:  # a loopback port nobody listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    make_use_case(tmp_path, rows=30)
    final, _ = sweep(tmp_path, SweepOptions(llm_endpoint=f"http://127.0.0.1:{port}/v1", variants="defaults"))
    assert final.status == "failed" and final.summary["errors"] == 30
    assert final.error.startswith("every line failed (30 of 30)") and "unreachable" in final.error
    with RunStore.for_workspace(tmp_path) as store:
        errors = [r.error for r in store.lines(final.run_id)]
    assert sum("unreachable" in e for e in errors) >= 15
    assert final.summary["llm_calls"] < 30 * 7  # most lines did not retry at all


def test_sandbox_repetitions_differ_at_high_temperature(tmp_path):
    shutil.copytree(REPO / "use_cases" / "support_ticket_classification", tmp_path / "use_cases" / "stc")
    options = SweepOptions(
        llm_endpoint="sandbox",
        variants="defaults",
        grid={"classify_llm.temperature": [1.0]},
        repeat=3,
        limit=40,
    )
    final, _ = sweep(tmp_path, options)
    assert final.status == "completed" and final.summary["cell_count"] == 3
    with RunStore.for_workspace(tmp_path) as store:
        outputs = [
            tuple(json.dumps(r.outputs, sort_keys=True) for r in store.lines(final.run_id, c["cell_id"]))
            for c in final.summary["cells"]
        ]
    assert len(set(outputs)) > 1  # the repetitions are not copies of each other
