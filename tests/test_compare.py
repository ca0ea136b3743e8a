"""The comparison model over a real RunStore filled with a synthetic but realistic run."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "benchmarks"))

from synthetic_run import make_run, write_workspace  # noqa: E402

from llmops_tui.core import stats  # noqa: E402
from llmops_tui.core.compare import build_comparison  # noqa: E402
from llmops_tui.core.errors import LlmopsError  # noqa: E402
from llmops_tui.core.linediff import line_diff, word_diff  # noqa: E402
from llmops_tui.core.store import RunStore  # noqa: E402


@pytest.fixture()
def ws(tmp_path):
    root = write_workspace(tmp_path / "ws")
    store = RunStore.for_workspace(root)
    cells = make_run(store, n_cells=4, n_lines=200)
    yield root, store, cells
    store.close()


def test_rows_and_baseline(ws):
    root, store, cells = ws
    comp = build_comparison(store, "run-0001", workspace_root=root)
    assert comp.use_case == "ner_demo"
    assert [c.cell_id for c in comp.cells] == cells
    assert comp.baseline == cells[0]  # all default variants, no params
    assert comp.cells[0].is_baseline and not comp.cells[1].is_baseline
    keys = [r.key for r in comp.rows]
    for key in (
        "matcher.exact_match",
        "matcher.f1",
        "matcher.precision",
        "success_rate",
        "error_rate",
        "latency_p50_ms",
        "latency_p95_ms",
        "latency_p99_ms",
        "prompt_tokens",
        "completion_tokens",
        "total_tokens",
        "cost_usd",
        "llm_calls",
        "cache_hits",
    ):
        assert key in keys
    assert {r.group for r in comp.rows} == {"metric", "quality", "latency", "tokens", "cost", "calls"}
    assert [w for w in comp.warnings if not w.startswith("sandbox model:")] == []


def test_values_match_the_store(ws):
    root, store, cells = ws
    comp = build_comparison(store, "run-0001", workspace_root=root)
    lines = store.lines("run-0001", cells[1])
    ok = [ln for ln in lines if ln.status == "ok"]
    sr = comp.row("success_rate").values[cells[1]]
    assert sr.value == pytest.approx(len(ok) / len(lines))
    assert comp.row("error_rate").values[cells[1]].value == pytest.approx(1 - len(ok) / len(lines))
    assert comp.row("prompt_tokens").values[cells[1]].value == sum(ln.prompt_tokens for ln in lines)
    assert comp.row("llm_calls").values[cells[1]].value == len(lines)
    agg = store.metrics("run-0001", cells[1])[cells[1]]["matcher"]["f1"]
    f1 = comp.row("matcher.f1").values[cells[1]]
    assert f1.value == pytest.approx(agg)
    assert f1.ci_low < f1.value < f1.ci_high
    assert f1.per_line and f1.n == len(ok)


def test_significance_against_baseline(ws):
    root, store, cells = ws
    comp = build_comparison(store, "run-0001", workspace_root=root)
    f1 = comp.row("matcher.f1")
    assert f1.values[cells[0]].delta is None and f1.values[cells[0]].significant is None  # the baseline
    better, same, worse = (f1.values[c] for c in cells[1:])
    assert better.significant is True and better.delta > 0.1 and better.p_value < 0.05
    assert same.significant is False and abs(same.delta) < 0.03
    assert worse.significant is True and worse.delta < 0
    assert "paired bootstrap" in better.note
    em = comp.row("matcher.exact_match").values[cells[1]]
    assert "McNemar" in em.note and em.significant is True
    assert f1.best_cell() == cells[1]
    assert comp.row("latency_p50_ms").higher_is_better is False


def test_aggregate_only_metric_has_no_interval(ws):
    root, store, cells = ws
    comp = build_comparison(store, "run-0001", workspace_root=root)
    prec = comp.row("matcher.precision").values[cells[1]]
    assert prec.value == pytest.approx(0.85)
    assert prec.ci_low is None and prec.p_value is None and prec.significant is None
    assert not prec.per_line and "aggregate only" in prec.note
    assert prec.delta == pytest.approx(0.15)


def test_cost_from_prices_and_variant_model(ws):
    root, store, cells = ws
    # the synthetic run answered from the sandbox model: free, whatever the prices say (core.cost)
    free = build_comparison(store, "run-0001", workspace_root=root).row("cost_usd")
    assert {(v.value, v.free) for v in free.values.values()} == {(0.0, True)}
    cells = make_run(store, run_id="run-0002", n_cells=4, n_lines=60, llm_endpoint="http://127.0.0.1:9/v1")
    comp = build_comparison(store, "run-0002", workspace_root=root)
    cost = comp.row("cost_usd")
    assert not any(v.free for v in cost.values.values())
    for cid, price in ((cells[0], (0.0005, 0.0015)), (cells[1], (0.005, 0.015))):
        lines = store.lines("run-0002", cid)
        pt = sum(ln.prompt_tokens for ln in lines)
        ct = sum(ln.completion_tokens for ln in lines)
        assert cost.values[cid].value == pytest.approx((pt * price[0] + ct * price[1]) / 1000)
    # without a workspace: unknown, and said so
    bare = build_comparison(store, "run-0002")
    assert bare.row("cost_usd").values[cells[0]].value is None
    assert bare.gates == [] and any("gates and prices" in w for w in bare.warnings)


def test_gates_and_best_cell(ws):
    root, store, cells = ws
    comp = build_comparison(store, "run-0001", workspace_root=root)
    assert len(comp.gates) == 2 * len(cells)
    f1_gates = [g for g in comp.gates if g.gate.startswith("f1")]
    assert all(g.metric == "matcher.f1" for g in f1_gates)  # bare name resolved
    assert comp.best_cell() == cells[1]
    assert all(g.passed for g in comp.gates_for(cells[1]))
    failed = [g for g in comp.gates_for(cells[0]) if not g.passed]
    assert failed and "fails" in failed[0].reason


def test_unknown_gate_metric_fails_with_reason(tmp_path):
    root = write_workspace(tmp_path / "ws", gates=["bleu >= 0.3", "latency_p95_ms <= 100000"])
    with RunStore.for_workspace(root) as store:
        cells = make_run(store, n_cells=2, n_lines=30)
        comp = build_comparison(store, "run-0001", workspace_root=root)
    bleu = [g for g in comp.gates_for(cells[0]) if g.gate.startswith("bleu")][0]
    assert not bleu.passed and "no metric 'bleu'" in bleu.reason
    lat = [g for g in comp.gates_for(cells[0]) if g.metric == "latency_p95_ms"][0]
    assert lat.passed


def test_explicit_baseline_and_errors(ws):
    root, store, cells = ws
    comp = build_comparison(store, "run-0001", workspace_root=root, baseline=cells[2])
    assert comp.baseline == cells[2]
    assert comp.row("matcher.f1").values[cells[0]].delta is not None
    with pytest.raises(LlmopsError, match="no cell"):
        build_comparison(store, "run-0001", baseline="nope")
    with pytest.raises(LlmopsError, match="no run"):
        build_comparison(store, "missing-run")


def test_config_baseline_is_used(tmp_path):
    with RunStore(tmp_path / "s.sqlite") as store:
        cells = make_run(store, n_cells=3, n_lines=25)
        run = store.get_run("run-0001")
        store.update_run_config("run-0001", {**run.config, "baseline": cells[2]})
        assert build_comparison(store, "run-0001").baseline == cells[2]


def test_few_lines_warns(tmp_path):
    with RunStore(tmp_path / "s.sqlite") as store:
        cells = make_run(store, n_cells=2, n_lines=10)
        comp = build_comparison(store, "run-0001")
    assert any("fewer than 20" in w for w in comp.warnings)
    assert "too few" in comp.row("matcher.f1").values[cells[1]].note


def test_multiple_datasets_pair_within_dataset(tmp_path):
    with RunStore(tmp_path / "s.sqlite") as store:
        cells = make_run(store, n_cells=2, n_lines=40, datasets=("main", "hard"))
        comp = build_comparison(store, "run-0001")
    assert comp.baseline == cells[0]
    f1 = comp.row("matcher.f1")
    # cells on "hard" are compared with the baseline configuration on "hard", never across datasets
    hard_base, hard_other = cells[2], cells[3]
    assert f1.values[hard_base].delta is None
    assert f1.values[hard_other].delta == pytest.approx(
        f1.values[hard_other].value - f1.values[hard_base].value
    )


def test_two_runs(tmp_path):
    with RunStore(tmp_path / "s.sqlite") as store:
        make_run(store, run_id="run-a", n_cells=2, n_lines=30)
        make_run(store, run_id="run-b", n_cells=2, n_lines=30, seed=9)
        comp = build_comparison(store, ["run-a", "run-b"])
    assert len(comp.cells) == 4
    assert comp.cells[2].cell_id.startswith("run-b:")
    assert comp.run_ids == ["run-a", "run-b"]


def test_to_dict_is_json(ws):
    root, store, _ = ws
    data = build_comparison(store, "run-0001", workspace_root=root).to_dict()
    text = json.dumps(data, allow_nan=False)
    back = json.loads(text)
    assert back["best_cell"] and back["rows"][0]["values"]
    assert back["latency_hist"]["edges"]


def test_line_diff(ws):
    _, store, cells = ws
    all_lines = line_diff(store, "run-0001", cells[0], cells[1])
    assert len(all_lines) == 200
    differ = line_diff(store, "run-0001", cells[0], cells[1], only="differ")
    assert differ and all(d.differs for d in differ) and len(differ) < 200
    failed = line_diff(store, "run-0001", cells[0], cells[1], only="failed")
    assert all("failed" in (d.status_a, d.status_b) for d in failed)
    d = differ[0]
    assert d.inputs["text"] and "matcher.f1" in d.scores_a
    with pytest.raises(LlmopsError):
        line_diff(store, "run-0001", cells[0], "zzz")


def test_word_diff_round_trips():
    a, b = "the quick brown fox", "the slow brown fox jumps"
    ops = word_diff(a, b)
    assert "".join(t for k, t in ops if k != "insert") == a
    assert "".join(t for k, t in ops if k != "delete") == b
    assert ("delete", "quick") in ops and ("insert", "slow") in ops


def test_latency_token_and_call_rows_match_the_store(ws):
    _, store, cells = ws
    comp = build_comparison(store, "run-0001")
    for cid in cells[:2]:
        lines = store.lines("run-0001", cid)
        ok_latency = [ln.latency_ms for ln in lines if ln.status == "ok"]
        p95 = comp.row("latency_p95_ms").values[cid]
        assert p95.value == pytest.approx(stats.percentile(ok_latency, 95)) and p95.n == len(ok_latency)
        assert comp.row("total_tokens").values[cid].value == sum(ln.total_tokens for ln in lines)
        assert comp.row("completion_tokens").values[cid].value == sum(ln.completion_tokens for ln in lines)
        assert comp.row("cache_hits").values[cid].value == sum(1 for ln in lines if ln.cache_hit)
    base, other = (comp.row("latency_p50_ms").values[c] for c in cells[:2])
    assert base.delta is None and other.delta == pytest.approx(other.value - base.value)
    assert comp.row("cache_hits").higher_is_better is None and comp.row("cache_hits").best_cell() is None
    assert sum(comp.latency_hist["counts"][cells[0]]) == comp.row("latency_p50_ms").values[cells[0]].n


def test_warnings_name_cells_by_their_label_never_by_id(tmp_path):
    with RunStore(tmp_path / "s.sqlite") as store:
        make_run(store, run_id="run-a", n_cells=3, n_lines=10, datasets=("main",))
        make_run(store, run_id="run-b", n_cells=2, n_lines=10, datasets=("hard",), seed=9)
        comp = build_comparison(store, ["run-a", "run-b"], baseline="run-a:c0000002")
    # run-b has no cell with the baseline's configuration on its dataset
    no_base = [w for w in comp.warnings if "no baseline configuration on dataset 'hard'" in w]
    assert len(no_base) == 2
    assert any("fewer than 20" in w for w in comp.warnings)
    for col in comp.cells:
        assert not any(col.cell_id in w or col.cell_id.split(":")[1] in w for w in comp.warnings)
    for col in comp.cells[3:]:
        assert any(f"cell '{col.label}'" in w for w in no_base)
