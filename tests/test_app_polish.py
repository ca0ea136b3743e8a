"""Issue 15's last pieces: one definition of the run's figures (lines, calls, requests, retries) in the
progress and the summary, the Kubernetes secret command, endpoint-test's use case request, CLI tables at
80 columns with --wide, and the app's deploy wording, flow table and compare title at 80x24."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
from builders import make_use_case
from rich.text import Text
from tui_support import RUN_ID, copy_workspace, seed_store

from llmops_tui.cli import main
from llmops_tui.core import events as ev
from llmops_tui.core.engine import resume_sweep, run_sweep
from llmops_tui.core.store import RunStore
from llmops_tui.core.summary import summarize
from llmops_tui.core.sweep import SweepOptions, plan_sweep
from llmops_tui.core.workspace import load_workspace
from llmops_tui.deploy.endpoint_test import request_file
from llmops_tui.deploy.kubernetes import secret_command

FIGURES = ("llm_calls", "requests", "retries", "cache_hits")


def _drain(events, cancel_after: int | None = None, cancel: threading.Event | None = None):
    last = final = None
    for event in events:
        if isinstance(event, ev.Progress):
            last = event
            if cancel is not None and cancel_after is not None and event.done >= cancel_after:
                cancel.set()
        elif isinstance(event, ev.SweepFinished):
            final = event
    assert last is not None and final is not None
    return last, final


def _agree(progress: ev.Progress, summary: dict) -> None:
    assert progress.done == summary["lines_done"] and progress.total == summary["lines_total"]
    for key in FIGURES:
        assert getattr(progress, key) == summary[key], key
    assert progress.tokens == sum(c["tokens"]["total"] for c in summary["cells"])


@pytest.mark.integration
def test_progress_and_summary_count_the_same_lines_calls_requests_and_retries(tmp_path, sandbox):
    """A fresh run, a cached run and a resumed run: the last progress event (the app's run monitor, the
    CLI bar) says what the summary (the CLI table, --json, show-run) says."""
    make_use_case(tmp_path, rows=8)
    uc = load_workspace(tmp_path).get("tickets")
    options = SweepOptions(llm_endpoint=sandbox.url, concurrency=1)
    progress, final = _drain(run_sweep(tmp_path, uc, plan_sweep(uc, options), progress_interval=0.01))
    _agree(progress, final.summary)
    assert final.summary["llm_calls"] > 0
    cached, final2 = _drain(run_sweep(tmp_path, uc, plan_sweep(uc, options), progress_interval=0.01))
    _agree(cached, final2.summary)
    assert cached.cache_hits == final2.summary["lines_done"] and cached.llm_calls == 0
    # cancelled part-way, then resumed: the resumed run's figures start from the lines it keeps
    cancel = threading.Event()
    nocache = SweepOptions(llm_endpoint=sandbox.url, concurrency=1, no_cache=True)
    _, stopped = _drain(
        run_sweep(tmp_path, uc, plan_sweep(uc, nocache), cancel=cancel, progress_interval=0.01),
        cancel_after=3,
        cancel=cancel,
    )
    assert stopped.status == "cancelled"
    resumed, final3 = _drain(resume_sweep(tmp_path, stopped.run_id, progress_interval=0.01))
    assert final3.status == "completed"
    _agree(resumed, final3.summary)
    with RunStore.for_workspace(tmp_path) as store:
        again = summarize(store, stopped.run_id)
    for key in FIGURES:
        assert again[key] == final3.summary[key]
    assert again["llm_calls"] == again["lines_done"]  # one LLM node per line, none cached


def test_kubernetes_secret_command_expands_the_key_from_the_environment(tmp_path):
    """Printed shell-quoted like every plan command, pasted into a shell, it stores the key's value."""
    import shlex

    fake = tmp_path / "bin"
    fake.mkdir()
    (fake / "kubectl").write_text('#!/bin/sh\nfor a in "$@"; do echo "$a"; done\n')
    (fake / "kubectl").chmod(0o755)
    command = secret_command("ner-llm-keys", ["AOAI_API_KEY", "OTHER_KEY"], namespace="team a")
    printed = shlex.join(command)
    assert "'--from-literal=AOAI_API_KEY=${AOAI_API_KEY}'" not in printed
    env = dict(
        os.environ, PATH=f"{fake}:{os.environ['PATH']}", AOAI_API_KEY="k-123 with space", OTHER_KEY="o"
    )
    out = subprocess.run(["sh", "-c", printed], env=env, capture_output=True, text=True, check=True).stdout
    args = out.splitlines()
    assert args == [
        "create",
        "secret",
        "generic",
        "ner-llm-keys",
        "--namespace",
        "team a",
        "--from-literal=AOAI_API_KEY=k-123 with space",
        "--from-literal=OTHER_KEY=o",
    ]
    with pytest.raises(ValueError):
        secret_command("x", ["BAD;rm -rf /"])


def test_kubernetes_dry_run_plan_uses_the_expanding_secret_command(tmp_path, monkeypatch, capsys):
    from test_deploy_support import USE_CASE, make_workspace

    monkeypatch.setenv("KUBECONFIG", str(tmp_path / "no-kubeconfig"))
    monkeypatch.setattr("llmops_tui.deploy.kubernetes.kubectl_context", lambda: None)
    ws = make_workspace(tmp_path)
    assert (
        main(["deploy", USE_CASE, "--env", "dev", "--target", "kubernetes", "-w", str(ws), "--dry-run"]) == 0
    )
    out = capsys.readouterr().out
    assert 'AOAI_API_KEY="$AOAI_API_KEY"' in out and "${AOAI_API_KEY}'" not in out


class _Recorder(BaseHTTPRequestHandler):
    bodies: list = []

    def do_POST(self):  # noqa: N802 - http.server's name
        length = int(self.headers.get("content-length") or 0)
        _Recorder.bodies.append(json.loads(self.rfile.read(length) or b"null"))
        payload = json.dumps({"category": "billing"}).encode()
        self.send_response(200)
        self.send_header("content-type", "application/json")
        self.send_header("content-length", str(len(payload)))
        self.end_headers()
        self.wfile.write(payload)

    def log_message(self, *args):
        pass


def test_endpoint_test_use_case_sends_its_sample_request(tmp_path, monkeypatch, capsys):
    uc = make_use_case(tmp_path, rows=2)
    sample = json.loads((uc / "sample-request.json").read_text())
    assert request_file(None, uc) == uc / "sample-request.json"
    assert request_file(Path("mine.json"), uc) == Path("mine.json")
    assert request_file(None, tmp_path / "nowhere") == Path("sample-request.json")
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)  # no sample-request.json here: the use case's is the one sent
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Recorder)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    _Recorder.bodies = []
    try:
        url = f"http://127.0.0.1:{server.server_address[1]}"
        code = main(["endpoint-test", url, "--use-case", "tickets", "-w", str(tmp_path), "--timeout", "5"])
    finally:
        server.shutdown()
        server.server_close()
        thread.join()
    assert code == 0, capsys.readouterr()
    assert _Recorder.bodies == [sample]
    assert "endpoint test passed" in capsys.readouterr().out


# ------------------------------------------------------------------------------ CLI tables at 80 columns


def _cli(args: list[str], columns: int) -> str:
    env = dict(os.environ, COLUMNS=str(columns), LINES="24", TERM="xterm")
    proc = subprocess.run(
        [sys.executable, "-m", "llmops_tui.cli", *args], capture_output=True, text=True, env=env, timeout=120
    )
    assert proc.returncode == 0, proc.stderr
    return proc.stdout


def _words_whole(text: str, words: list[str]) -> None:
    for word in words:
        assert word in text, f"{word!r} is not shown whole:\n{text}"


@pytest.mark.integration
def test_compare_and_dry_run_fit_80_columns_without_mid_word_breaks_and_wide_shows_all(tmp_path, capfd):
    make_use_case(tmp_path, rows=3)
    w = ["-w", str(tmp_path)]
    grid = ["--grid", "classify.temperature=0,0.7"]
    assert main(["sweep", "tickets", *w, "--llm-endpoint", "sandbox", *grid, "--json"]) == 0
    run = json.loads(capfd.readouterr().out)
    ids = [c["cell_id"] for c in run["cells"]]
    narrow = _cli(["compare", run["run_id"], *w], 80)
    assert max(len(line) for line in narrow.splitlines()) <= 80, narrow
    _words_whole(
        narrow,
        [
            "variant_0",
            "variant_1",
            "t=0.7",
            "(baseline",
            "label_match.accuracy",
            "estimated",
            "free (sandbox)",
        ],
    )
    tables = narrow.split("warning:")[0]  # the comparison's own warnings name cells by id
    for cell_id in ids:
        assert cell_id not in tables  # ids are --wide detail
    assert tables.count("·") >= len(ids)  # every cell's label is shown, over as many tables as needed
    wide = _cli(["compare", run["run_id"], *w, "--wide"], 80)
    assert all(cell_id in wide for cell_id in ids) and "[" in wide  # ids and intervals
    plan = _cli(["sweep", "tickets", *w, "--llm-endpoint", "sandbox", *grid, "--dry-run"], 80)
    assert max(len(line) for line in plan.splitlines()) <= 80, plan
    _words_whole(plan, ["variant_0", "variant_1", "t=0.7", "tickets_train", "free (sandbox)"])
    assert "…" not in plan
    wide_plan = _cli(["sweep", "tickets", *w, "--llm-endpoint", "sandbox", *grid, "--dry-run", "--wide"], 80)
    assert all(cell_id in wide_plan for cell_id in ids)
    shown = _cli(["show-run", run["run_id"], *w, "--wide"], 80)
    assert "cached" in shown and ids[0] in shown
    narrow_runs = _cli(["runs", *w], 80)
    wide_runs = _cli(["runs", *w, "--wide"], 80)
    header = next(line for line in wide_runs.splitlines() if "┳" in line)
    assert header.count("┳") == next(x for x in narrow_runs.splitlines() if "┳" in x).count("┳") + 2


# ----------------------------------------------------------------------------------- the app at 80x24


def _screen_text(app) -> str:
    strips = app.screen._compositor.render_strips()
    return "\n".join("".join(segment.text for segment in strip) for strip in strips)


@pytest.fixture
def app_ws(tmp_path, monkeypatch):
    monkeypatch.setenv("LLMOPS_TUI_CONFIG_DIR", str(tmp_path / "config"))
    monkeypatch.delenv("AOAI_API_KEY", raising=False)
    monkeypatch.delenv("LLMOPS_APPROVAL_KEY", raising=False)
    root = copy_workspace(tmp_path)
    seed_store(root)
    return root


def _app(root: Path):
    from llmops_tui.tui.app import LlmopsApp
    from llmops_tui.tui.settings import AppSettings

    return LlmopsApp(root, settings=AppSettings(), debug=True)


async def _settle(app, pilot) -> None:
    for _ in range(2):
        await pilot.pause()
        await app.workers.wait_for_complete()
        await pilot.pause()


async def test_compare_title_keeps_the_run_id_at_80_columns(app_ws):
    app = _app(app_ws)
    async with app.run_test(size=(80, 24)) as pilot:
        app.open_screen("compare", run_id=RUN_ID)
        await _settle(app, pilot)
        first_line = _screen_text(app).splitlines()[0]
        assert f"Compare · {RUN_ID}" in first_line and "sandbox model" in first_line


async def test_flow_screen_evaluation_table_stays_in_its_pane(app_ws):
    from textual.widgets import DataTable

    app = _app(app_ws)
    async with app.run_test(size=(80, 24)) as pilot:
        app.open_screen("flow", use_case="ner")
        await _settle(app, pilot)
        await pilot.press("n")  # the evaluation flow: no variants, an aggregation node
        await _settle(app, pilot)
        table = app.screen.query_one("#nodes", DataTable)
        assert [str(c.label) for c in table.columns.values()] == ["#", "node", "kind"]
        assert table.virtual_size.width <= table.size.width
        assert "python (agg.)" in _screen_text(app)
        await pilot.press("n")  # back to the standard flow: its variants column returns
        await _settle(app, pilot)
        assert [str(c.label) for c in table.columns.values()] == ["#", "node", "kind", "variant"]


async def test_deploy_screen_says_what_the_approval_switch_means(app_ws, monkeypatch):
    from textual.widgets import Switch

    monkeypatch.setattr("llmops_tui.tui.screens.deploy.any_key_missing", lambda uc, root: True)
    app = _app(app_ws)
    async with app.run_test(size=(160, 48)) as pilot:
        app.open_screen("deploy", use_case="ner")
        await _settle(app, pilot)

        def approval_text() -> str:
            rendered = app.screen.query_one("#dp-approval").render()
            return rendered.plain if isinstance(rendered, Text) else str(rendered)

        assert app.screen.query_one("#require", Switch).value is False
        text = approval_text()
        assert "Require approval is off" in text and "nothing would be deployed" not in text
        app.screen.query_one("#require", Switch).value = True
        await _settle(app, pilot)
        deadline = time.monotonic() + 10
        while "Require approval is on" not in approval_text() and time.monotonic() < deadline:
            await pilot.pause(0.05)
        assert "Require approval is on: nothing is deployed" in approval_text()
