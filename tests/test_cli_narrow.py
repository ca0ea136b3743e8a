"""The CLI's tables in an 80-column terminal: nothing wider than the terminal, run ids never cut, cells
named by what was chosen."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest
from builders import make_use_case

from llmops_tui.cli import main

pytestmark = pytest.mark.integration


def _cli(args: list[str], columns: int) -> str:
    env = dict(os.environ, COLUMNS=str(columns), LINES="24", TERM="xterm")
    proc = subprocess.run(
        [sys.executable, "-m", "llmops_tui.cli", *args], capture_output=True, text=True, env=env, timeout=120
    )
    assert proc.returncode == 0, proc.stderr
    return proc.stdout


def test_runs_and_show_run_fit_80_columns(tmp_path, capfd):
    make_use_case(tmp_path, rows=3)
    assert main(["sweep", "tickets", "-w", str(tmp_path), "--llm-endpoint", "sandbox", "--json"]) == 0
    run_id = json.loads(capfd.readouterr().out)["run_id"]
    runs = _cli(["runs", "-w", str(tmp_path)], 80)
    shown = _cli(["show-run", run_id, "-w", str(tmp_path)], 80)
    for text in (runs, shown):
        assert max(len(line) for line in text.splitlines()) <= 80, text
    assert run_id in runs  # whole, never cut with an ellipsis
    assert "variant_0" in shown and "variant_1" in shown and "accuracy=" in shown
    wide = _cli(["show-run", run_id, "-w", str(tmp_path)], 160)
    assert "cached" in wide and "cached" not in shown
