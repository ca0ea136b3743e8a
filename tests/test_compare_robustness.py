"""Comparisons of runs that did not go to plan: evaluator failures, unfinished cells, repeats on two datasets.

Each case was found by running real sweeps (cancelled, a grader that raises on some lines, --repeat with two
datasets) and is reproduced here through the real RunStore, which is what the engine writes.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "benchmarks"))

from synthetic_run import make_run, write_workspace  # noqa: E402

from llmops_tui.core.compare import RUN_COMPLETED_GATE, build_comparison  # noqa: E402
from llmops_tui.core.store import RunStore  # noqa: E402

RUN = "run-0001"


@pytest.fixture()
def ws(tmp_path):
    root = write_workspace(tmp_path / "ws", gates=["f1 >= 0.0", "latency_p95_ms <= 1000000"])
    store = RunStore.for_workspace(root)
    cells = make_run(store, n_cells=3, n_lines=30, fail_rate=0.0)
    yield root, store, cells
    store.close()


def test_evaluator_failures_warn_and_fail_gates_on_its_metrics(ws):
    root, store, cells = ws
    # The grader raised on 5 lines of cell 1: the engine stores them as failed evaluation lines and the
    # aggregate covers only the lines it could grade.
    rows = store.eval_lines(RUN, cells[1], "matcher")
    store.record_eval_lines(
        RUN,
        cells[1],
        "matcher",
        [
            (r["line"], "failed", None, "ValueError: grader broke")
            if r["line"] < 5
            else (r["line"], r["status"], r["outputs"], r["error"])
            for r in rows
        ],
    )
    comp = build_comparison(store, RUN, workspace_root=root)
    assert any(comp.cell(cells[1]).label in w and "failed on 5 line(s)" in w for w in comp.warnings)
    assert comp.cell(cells[1]).eval_failures == {"matcher": 5}
    assert comp.row("matcher.f1").values[cells[1]].n == 25
    assert "evaluator failed on 5 line(s)" in comp.row("matcher.f1").values[cells[1]].note
    f1_gate = next(g for g in comp.gates_for(cells[1]) if g.metric == "matcher.f1")
    assert not f1_gate.passed and "evaluator 'matcher' failed on 5 line(s)" in f1_gate.reason
    # gates on other rows and other cells are not affected
    assert next(g for g in comp.gates_for(cells[1]) if g.metric == "latency_p95_ms").passed
    assert all(g.passed for g in comp.gates_for(cells[0]))
    assert comp.best_cell() != cells[1]
    json.dumps(comp.to_dict(), allow_nan=False)


def test_unfinished_cell_fails_every_gate(ws):
    root, store, cells = ws
    # A cancelled sweep leaves a cell with some of its lines and no metrics yet.
    store._exec("DELETE FROM lines WHERE run_id=? AND cell_id=? AND line>=12", (RUN, cells[2]))
    store._exec("DELETE FROM metrics WHERE run_id=? AND cell_id=?", (RUN, cells[2]))
    store.finish_run(RUN, "cancelled")
    comp = build_comparison(store, RUN, workspace_root=root)
    col = comp.cell(cells[2])
    assert (col.lines_done, col.lines_total, col.complete) == (12, 30, False)
    gates = comp.gates_for(cells[2])
    assert gates and not any(g.passed for g in gates)
    lat = next(g for g in gates if g.metric == "latency_p95_ms")
    assert "incomplete (12 of 30 lines run)" in lat.reason
    # the complete cell's own gates pass; the run's status still fails it: CI never passes a cancelled run
    own = [g for g in comp.gates_for(cells[0]) if g.gate != RUN_COMPLETED_GATE]
    assert own and all(g.passed for g in own)
    run_gate = [g for g in comp.gates_for(cells[0]) if g.gate == RUN_COMPLETED_GATE]
    assert len(run_gate) == 1 and not run_gate[0].passed and "is cancelled" in run_gate[0].reason
    assert comp.best_cell() != cells[2]


def test_other_dataset_is_paired_with_the_baselines_repetition(tmp_path):
    with RunStore(tmp_path / "s.sqlite") as store:
        cells = make_run(store, n_cells=2, n_lines=30, datasets=("main", "hard"))
        # Make the second cell of each dataset the baseline configuration's repetition 1.
        for cid in (cells[1], cells[3]):
            store._exec(
                "UPDATE cells SET variants_json=?, repeat=1 WHERE run_id=? AND cell_id=?",
                (json.dumps({"NER_LLM": "variant_0"}), RUN, cid),
            )
        comp = build_comparison(store, RUN, baseline=cells[1])
    f1 = comp.row("matcher.f1")
    # On "hard", repetition 1 of the baseline configuration is the reference, not repetition 0.
    assert f1.values[cells[3]].delta is None
    assert f1.values[cells[2]].delta == pytest.approx(f1.values[cells[2]].value - f1.values[cells[3]].value)


def test_line_diff_refuses_cells_of_different_datasets(tmp_path):
    from llmops_tui.core.errors import LlmopsError
    from llmops_tui.core.linediff import line_diff

    with RunStore(tmp_path / "s.sqlite") as store:
        cells = make_run(store, n_cells=2, n_lines=20, datasets=("main", "hard"))
        with pytest.raises(LlmopsError, match=r"ran different datasets \(main, hard\)"):
            line_diff(store, RUN, cells[0], cells[3])
        assert len(line_diff(store, RUN, cells[2], cells[3])) == 20


def test_api_line_diff_frame_takes_a_run_prefix(tmp_path):
    from llmops_tui import api
    from llmops_tui.core.errors import LlmopsError

    root = write_workspace(tmp_path / "ws")
    with RunStore.for_workspace(root) as store:
        cells = make_run(store, n_cells=2, n_lines=20)
    frame = api.line_diff_frame(root, "run-00", cells[0], cells[1])
    assert len(frame) == 20
    assert len(api.lines(root, "run-00")) == 40
    with pytest.raises(LlmopsError, match="no run 'nope'"):
        api.lines(root, "nope")


def test_one_line_per_cell_compares(tmp_path):
    # `llmops sweep ... --limit 1`: one paired line of continuous scores used to crash the bootstrap.
    with RunStore(tmp_path / "s.sqlite") as store:
        cells = make_run(store, n_cells=3, n_lines=1, fail_rate=0.0)
        comp = build_comparison(store, RUN)
    f1 = comp.row("matcher.f1").values[cells[1]]
    assert f1.n == 1 and f1.significant in (False, None)
    json.dumps(comp.to_dict(), allow_nan=False)


def test_ambiguous_bare_gate_name_fails(tmp_path):
    root = write_workspace(tmp_path / "ws", gates=["f1 >= 0.0"])
    with RunStore.for_workspace(root) as store:
        cells = make_run(store, n_cells=2, n_lines=20, fail_rate=0.0)
        # a second evaluator that also reports f1
        for cid in cells:
            store.record_metrics(RUN, cid, "judge", {"f1": 0.9})
        comp = build_comparison(store, RUN, workspace_root=root)
    [gate] = comp.gates_for(cells[0])
    assert not gate.passed
    assert "'f1' is ambiguous (judge.f1, matcher.f1): write the full name" in gate.reason


def test_sandbox_runs_say_so_in_the_comparison_and_reports(tmp_path):
    from llmops_tui.core.compare import build_comparison
    from llmops_tui.core.store import CellRecord, LineRecord, RunStore
    from llmops_tui.exporters import export

    with RunStore.for_workspace(tmp_path) as store:
        store.create_run("r1", "uc", None, {"llm_endpoint": "sandbox"})
        store.add_cells("r1", [CellRecord("r1", "c1", 0, {}, {}, "d", 0, None, 1, "done")])
        store.record_line(LineRecord("r1", "c1", 0, "ok", {"q": 1}, {"a": "x"}, latency_ms=1.0))
        cmp = build_comparison(store, "r1")
    assert any(w.startswith("sandbox model:") for w in cmp.warnings)
    out = export("html", cmp, tmp_path / "r.html")
    assert "offline sandbox model" in Path(out).read_text()
