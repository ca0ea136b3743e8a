"""A line's trace and a chat line's conversation, from the sweep to the line view: a flex chat flow (class
entry, .prompty, chat messages as history) and a DAG chat flow (Prompt flow's inputs/outputs turns) are
swept against the sandbox by the CLI; the store keeps each line's spans; the app's line view shows the
conversation as turns and the trace as an indented tree. Also: stores from before the traces column
gain it in place."""

from __future__ import annotations

import json
import os
import re
import shutil
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest
from rich.console import Console

from llmops_tui.core.store import LineRecord, RunStore
from llmops_tui.tui.app import LlmopsApp
from llmops_tui.tui.settings import AppSettings

# a span's duration as the line view prints it: "212 ms" or, on a slow machine, "1.05 s"
_DURATION = re.compile(r" \d+(?:\.\d+)? m?s ")

FIXTURE = Path(__file__).resolve().parent / "fixtures" / "byo_repo"


@pytest.fixture(autouse=True)
def _isolated(monkeypatch, tmp_path):
    monkeypatch.setenv("LLMOPS_TUI_CONFIG_DIR", str(tmp_path / "config"))
    monkeypatch.setenv("TZ", "UTC")
    time.tzset()


@pytest.fixture
def repo(tmp_path) -> Path:
    ws = tmp_path / "repo"
    shutil.copytree(FIXTURE, ws)
    shutil.copyfile(FIXTURE / "template.env", ws / ".env")
    return ws


def _sweep(repo: Path, use_case: str) -> dict:
    proc = subprocess.run(
        [sys.executable, "-m", "llmops_tui.cli", "sweep", use_case, "--workspace", str(repo)]
        + ["--llm-endpoint", "sandbox", "--json"],
        capture_output=True,
        text=True,
        env={**os.environ, "AOAI_API_KEY": ""},
        timeout=300,
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    return json.loads(proc.stdout)


async def _detail_text(repo: Path, run_id: str, cell_id: str, line: int) -> str:
    app = LlmopsApp(repo, settings=AppSettings(), debug=True)
    async with app.run_test(size=(160, 60)) as pilot:
        await pilot.pause()
        app.open_screen("line_diff", run_id=run_id, cell_a=cell_id, cell_b=cell_id)
        await pilot.pause()
        await app.workers.wait_for_complete()
        await pilot.pause()
        for _ in range(line):
            await pilot.press("down")
        await pilot.pause()
        detail = app.screen.query_one("#ld-detail")
        console = Console(width=150, record=True, file=open(os.devnull, "w"))  # noqa: SIM115
        console.print(detail.content)
        return console.export_text()


@pytest.mark.integration
async def test_flex_chat_line_shows_the_conversation_and_the_trace(repo):
    sweep = _sweep(repo, "chat_flow")
    cell = sweep["cells"][0]["cell_id"]
    with RunStore.for_workspace(repo) as store:
        lines = store.lines(sweep["run_id"], cell)
    # stored with the line: the entry, the prompty it calls and the model call under it
    spans = lines[1].traces
    assert [(s["depth"], s["kind"], s["name"]) for s in spans][:2] == [
        (0, "entry", "ChatFlow"),
        (1, "function", "Prompty"),
    ]
    assert any(s["kind"] == "llm" and s["depth"] == 2 for s in spans)

    shown = await _detail_text(repo, sweep["run_id"], cell, 1)
    rows = [" ".join(r.split()) for r in shown.splitlines() if r.strip()]
    # the history turns, then the current question, as a conversation (not the chat_history JSON)
    start = rows.index("user: Who was Marie Curie?")
    assert rows[start + 1 : start + 3] == ["assistant: A physicist and chemist.", "user: Where was she born?"]
    before_trace = shown[: shown.index("A trace")]
    assert '"role"' not in before_trace and "chat_history:" not in before_trace
    assert "context: Marie Curie was born in Warsaw and worked in Paris." in rows  # other inputs stay
    # the trace as a tree: one row per span, children indented under the entry
    trace = rows[rows.index(f"A trace ({len(spans)} spans)") + 1 :]
    assert trace[0].startswith("ChatFlow ") and _DURATION.search(trace[0])
    assert trace[1].startswith("└ Prompty ") and trace[-1].startswith("└ openai_chat llm ")
    indent = {
        name: row.index("└")
        for row in shown.splitlines()
        for name in ("Prompty", "openai")
        if f"└ {name}" in row
    }
    assert indent["openai"] > indent["Prompty"]
    assert _DURATION.split(trace[-1], 1)[1].startswith("'Marie Curie") and " tokens) ← model=" in trace[-1]


@pytest.mark.integration
async def test_dag_chat_line_shows_prompt_flow_turns_and_node_spans(repo):
    sweep = _sweep(repo, "chat_dag")
    cell = sweep["cells"][0]["cell_id"]
    shown = await _detail_text(repo, sweep["run_id"], cell, 1)
    rows = [" ".join(r.split()) for r in shown.splitlines() if r.strip()]
    start = rows.index("user: Who was Marie Curie?")  # from {"inputs": {"question": ...}}
    assert rows[start + 1 : start + 3] == ["assistant: A physicist and chemist.", "user: Where was she born?"]
    node = rows[rows.index("A trace (1 span)") + 1]
    assert node.startswith("chat node ") and _DURATION.search(node)


def test_stores_from_before_traces_gain_the_column_in_place(tmp_path):
    path = tmp_path / "runs.sqlite"
    RunStore(path).close()
    db = sqlite3.connect(path)
    db.execute("ALTER TABLE lines DROP COLUMN traces_json")  # as a store written before traces
    db.commit()
    db.close()
    with RunStore(path) as store:
        store.create_run("r1", "uc", None, {})
        spans = [{"name": "run", "kind": "entry", "start_ms": 0.0, "duration_ms": 1.5, "depth": 0,
                  "inputs": "x='1'", "output": "'1'", "error": None}]  # fmt: skip
        store.record_line(LineRecord("r1", "c1", 0, "ok", {"x": "1"}, {"output": "1"}, traces=spans))
        store.record_line(LineRecord("r1", "c1", 1, "ok", {"x": "2"}, {"output": "2"}))
        first, second = store.lines("r1", "c1")
    assert first.traces == spans and second.traces is None
