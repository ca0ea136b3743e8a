"""`llmops compare`, `llmops report` and `llmops gate` end to end over a real store."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "benchmarks"))

from synthetic_run import make_run, write_workspace  # noqa: E402

from llmops_tui.cli import main  # noqa: E402
from llmops_tui.core.store import RunStore  # noqa: E402


@pytest.fixture(scope="module")
def ws(tmp_path_factory):
    root = write_workspace(tmp_path_factory.mktemp("ws"))
    with RunStore.for_workspace(root) as store:
        cells = make_run(store, n_cells=4, n_lines=50)
    return root, cells


def test_compare_table(ws, capsys):
    root, cells = ws
    assert main(["compare", "run-0001", "-w", str(root)]) == 0
    out = capsys.readouterr().out
    assert "matcher.f1" in out and "success rate" in out and "baseline" in out
    assert "gates" in out and "FAIL" in out


def test_compare_json_and_baseline(ws, capsys):
    root, cells = ws
    assert main(["compare", "run-0001", "--baseline", cells[1], "--json", "-w", str(root)]) == 0
    data = json.loads(capsys.readouterr().out)
    assert data["baseline"] == cells[1]
    assert {r["key"] for r in data["rows"]} >= {"matcher.f1", "latency_p95_ms", "cost_usd"}


def test_compare_unknown_run_is_a_person_error(ws, capsys):
    root, _ = ws
    assert main(["compare", "nope", "-w", str(root)]) == 2
    assert "no run 'nope'" in capsys.readouterr().err


@pytest.mark.parametrize(
    "fmt,name",
    [
        ("html", "report-run-0001.html"),
        ("markdown", "report-run-0001.md"),
        ("junit", "report-run-0001.junit.xml"),
        ("json", "report-run-0001.json"),
        ("csv", "report-run-0001-csv"),
    ],
)
def test_report_default_names(ws, capsys, fmt, name):
    root, _ = ws
    assert main(["report", "run-0001", "--format", fmt, "-w", str(root)]) == 0
    assert (root / ".llmops" / "reports" / name).exists()
    assert name in capsys.readouterr().out


def test_report_out_and_bad_format(ws, tmp_path, capsys):
    root, _ = ws
    out = tmp_path / "mine.json"
    assert main(["report", "run-0001", "--format", "json", "--out", str(out), "-w", str(root), "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["path"] == str(out)
    assert json.loads(out.read_text(encoding="utf-8"))["lines"]
    assert main(["report", "run-0001", "--format", "pdf", "-w", str(root)]) == 2


def test_gate_exit_codes(ws, capsys):
    root, cells = ws
    assert main(["gate", "run-0001", "-w", str(root)]) == 0  # the best cell passes
    assert "pass" in capsys.readouterr().out
    assert main(["gate", "run-0001", "--cell", cells[0], "-w", str(root)]) == 1
    out = capsys.readouterr().out
    assert "FAIL" in out and "f1 >= 0.6" in out
    assert main(["gate", "run-0001", "--cell", cells[0], "--json", "-w", str(root)]) == 1
    data = json.loads(capsys.readouterr().out)
    assert data["passed"] is False and data["cell"] == cells[0]
    assert main(["gate", "run-0001", "--cell", "zzz", "-w", str(root)]) == 2


def test_no_store_is_a_person_error(tmp_path, capsys):
    assert main(["compare", "x", "-w", str(tmp_path)]) == 2
    assert "no run store" in capsys.readouterr().err


def test_report_lines_pair_within_one_dataset(tmp_path, capsys):
    # Baseline on the second dataset, best cell on the first: the line table must compare the best cell
    # with the baseline configuration on the best cell's own dataset, never line n of another dataset.
    root = write_workspace(tmp_path / "ws")
    with RunStore.for_workspace(root) as store:
        cells = make_run(store, n_cells=2, n_lines=25, datasets=("main", "hard"))
    out = tmp_path / "r.json"
    args = ["report", "run-0001", "--format", "json", "--baseline", cells[2], "--out", str(out)]
    assert main([*args, "-w", str(root)]) == 0
    data = json.loads(out.read_text(encoding="utf-8"))
    a, b = data["line_cells"]
    assert data["references"][b] == a
    datasets = {c["cell_id"]: c["dataset"] for c in data["cells"]}
    assert datasets[a] == datasets[b]
    assert data["lines"] and all(d["status_a"] is not None for d in data["lines"])
    csv_dir = tmp_path / "csv"
    assert main(["report", "run-0001", "--format", "csv", "--out", str(csv_dir), "-w", str(root)]) == 0
    header = (csv_dir / "lines.csv").read_text(encoding="utf-8").splitlines()[0]
    assert header.endswith("cell_a,cell_b")


def test_report_with_another_baseline_does_not_overwrite_the_default(ws, capsys):
    root, cells = ws
    reports = root / ".llmops" / "reports"
    assert main(["report", "run-0001", "--format", "markdown", "-w", str(root)]) == 0
    assert main(["report", "run-0001", "--format", "markdown", "-b", cells[2], "-w", str(root)]) == 0
    default, other = reports / "report-run-0001.md", reports / f"report-run-0001-vs-{cells[2]}.md"
    assert default.is_file() and other.is_file()
    assert f"`{cells[2]}` (baseline" not in default.read_text(encoding="utf-8")
    assert f"`{cells[2]}` (baseline" in other.read_text(encoding="utf-8")
