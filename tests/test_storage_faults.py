"""Storage faults under `.llmops/`: a full disk, a read-only folder, a corrupt store. One line naming the
file and what to do; the run never says completed; resume after the fault is cleared still works.

The faults are real: a small tmpfs is mounted on the workspace's `.llmops/` (tests run as root; where
mounting is not permitted the tests are skipped and say why)."""

from __future__ import annotations

import contextlib
import json
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest
from builders import make_use_case

from llmops_tui.cli import main
from llmops_tui.core import events as ev
from llmops_tui.core.engine import resume_sweep, run_sweep
from llmops_tui.core.store import RunStore
from llmops_tui.core.sweep import SweepOptions, plan_sweep
from llmops_tui.core.workspace import load_workspace

pytestmark = pytest.mark.integration


@contextlib.contextmanager
def tmpfs(at: Path, size: str) -> Iterator[Path]:
    at.mkdir(parents=True, exist_ok=True)
    proc = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(at)], capture_output=True
    )
    if proc.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {proc.stderr.decode().strip()}")
    try:
        yield at
    finally:
        subprocess.run(["umount", "-l", str(at)], capture_output=True)


def fill(folder: Path) -> Path:
    """Write a ballast file until the file system is full."""
    ballast = folder / "ballast"
    with open(ballast, "wb") as f:
        with contextlib.suppress(OSError):
            while True:
                f.write(b"\0" * 65536)
                f.flush()
    return ballast


def test_full_disk_fails_the_run_names_the_store_and_resume_recovers(tmp_path):
    make_use_case(tmp_path, rows=40)
    with tmpfs(tmp_path / ".llmops", "4m") as llmops:
        uc = load_workspace(tmp_path).use_cases[0]
        plan = plan_sweep(uc, SweepOptions(llm_endpoint="sandbox", concurrency=2, variants="defaults"))
        final = None
        ballast = None
        for event in run_sweep(tmp_path, uc, plan, progress_interval=0.05):
            if isinstance(event, ev.Progress) and event.done >= 2 and ballast is None:
                ballast = fill(llmops)
            if isinstance(event, ev.SweepFinished):
                final = event
        assert final is not None and ballast is not None
        assert final.status == "failed"
        assert "the disk is full" in final.error and "store.sqlite" in final.error
        assert final.summary["status"] == "failed"
        ballast.unlink()
        with RunStore.for_workspace(tmp_path) as store:
            run = store.require_run(final.run_id)
            assert run.status in {"failed", "interrupted"} and run.resumable
            kept = len(store.done_lines(final.run_id, plan.cells[0].cell_id))
        assert 0 < kept < 40
        resumed = [e for e in resume_sweep(tmp_path, final.run_id) if isinstance(e, ev.SweepFinished)][0]
        assert resumed.status == "completed", resumed.error
        assert resumed.summary["lines_done"] == 40 and resumed.summary["errors"] == 0


def test_read_only_store_is_one_line_and_exit_1(tmp_path, capfd):
    make_use_case(tmp_path, rows=3)
    with tmpfs(tmp_path / ".llmops", "4m") as llmops:
        args = [
            "sweep",
            "tickets",
            "-w",
            str(tmp_path),
            "--llm-endpoint",
            "sandbox",
            "--variants",
            "defaults",
        ]
        assert main([*args, "--json"]) == 0
        capfd.readouterr()
        subprocess.run(["mount", "-o", "remount,ro", str(llmops)], check=True)
        rc = main([*args, "--no-cache", "--json"])
        out, err = capfd.readouterr()
        assert rc == 1 and out == ""
        assert "Traceback" not in err and len(err.strip().splitlines()) == 1, err
        assert "store.sqlite" in err and ("read-only" in err or "cannot open" in err), err
        subprocess.run(["mount", "-o", "remount,rw", str(llmops)], check=True)
        assert main(["runs", "-w", str(tmp_path), "--json"]) == 0
        runs = json.loads(capfd.readouterr().out)["runs"]
        assert [r["status"] for r in runs] == ["completed"]


def test_corrupt_store_names_the_file_for_every_command(tmp_path, capfd):
    make_use_case(tmp_path, rows=3)
    store = tmp_path / ".llmops" / "store.sqlite"
    store.parent.mkdir()
    store.write_bytes(b"garbage" * 1000)
    for args in (["runs"], ["show-run", "x"], ["compare", "x"]):
        rc = main([*args, "-w", str(tmp_path)])
        _, err = capfd.readouterr()
        assert rc == 1, (args, err)
        assert "Traceback" not in err and "the run store is corrupt" in err and str(store) in err, err
