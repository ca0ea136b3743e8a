"""Sweep planning: the three variant modes, explicit lists, grids, datasets, repeats, estimates."""

from __future__ import annotations

from pathlib import Path

import pytest
from builders import make_use_case

from llmops_tui.core.errors import LlmopsError
from llmops_tui.core.sweep import SweepOptions, estimate, parse_grid_args, plan_sweep
from llmops_tui.core.workspace import load_workspace

REPO = Path(__file__).resolve().parent.parent


def _two_node_uc(tmp_path):
    uc_dir = make_use_case(tmp_path)
    dag = uc_dir / "flows" / "standard" / "flow.dag.yaml"
    text = dag.read_text()
    # a second node with three variants (python nodes can have variants too)
    text = text.replace(
        "- name: parse\n  type: python\n  source:\n    type: code\n    path: parse.py\n  inputs:\n    answer: ${classify.output}\n",
        "- name: parse\n  use_variants: true\n",
    )
    text += "  parse:\n    default_variant_id: strict\n    variants:\n" + "".join(
        f"      {v}:\n        node:\n          type: python\n          source:\n            type: code\n"
        f"            path: parse.py\n          inputs:\n            answer: ${{classify.output}}\n"
        for v in ("strict", "loose", "lower")
    )
    dag.write_text(text)
    ws = load_workspace(tmp_path)
    uc = ws.use_cases[0]
    assert uc.ok, [str(p) for p in uc.problems]
    return uc


def test_all_is_the_full_cartesian_grid(tmp_path):
    uc = _two_node_uc(tmp_path)
    plan = plan_sweep(uc, SweepOptions(variants="all"))
    assert len(plan.cells) == 2 * 3
    combos = {tuple(sorted(c.variants.items())) for c in plan.cells}
    assert len(combos) == 6
    assert plan.baseline().variants == {"classify": "variant_0", "parse": "strict"}


def test_one_at_a_time_matches_the_template(tmp_path):
    uc = _two_node_uc(tmp_path)
    plan = plan_sweep(uc, SweepOptions(variants="one-at-a-time"))
    # 1 + sum(n_i - 1) = 1 + 1 + 2
    assert len(plan.cells) == 4
    for c in plan.cells:
        non_default = [n for n, v in c.variants.items() if v != plan.defaults[n]]
        assert len(non_default) <= 1


def test_defaults_and_explicit_list(tmp_path):
    uc = _two_node_uc(tmp_path)
    assert len(plan_sweep(uc, SweepOptions(variants="defaults")).cells) == 1
    plan = plan_sweep(uc, SweepOptions(variants="classify.variant_1,parse.loose,parse.lower"))
    assert {(c.variants["classify"], c.variants["parse"]) for c in plan.cells} == {
        ("variant_1", "loose"),
        ("variant_1", "lower"),
    }
    with pytest.raises(LlmopsError, match="no variant 'variant_7'"):
        plan_sweep(uc, SweepOptions(variants=["classify.variant_7"]))
    with pytest.raises(LlmopsError, match="has no variants"):
        plan_sweep(uc, SweepOptions(variants=["nonode.v"]))


def test_grid_datasets_and_repeat(tmp_path):
    uc = _two_node_uc(tmp_path)
    grid = parse_grid_args(["classify.temperature=0,0.7", "classify.max_tokens=16,64"])
    assert grid == {"classify.temperature": [0, 0.7], "classify.max_tokens": [16, 64]}
    plan = plan_sweep(uc, SweepOptions(variants="defaults", grid=grid, repeat=2))
    assert len(plan.cells) == 4 * 2
    assert len({c.cell_id for c in plan.cells}) == len(plan.cells)
    assert plan.lines_total == 8 * 12
    with pytest.raises(LlmopsError, match="names no node"):
        plan_sweep(uc, SweepOptions(grid={"nonode.temperature": [0]}))
    with pytest.raises(LlmopsError, match="not NODE.param"):
        parse_grid_args(["temperature"])
    with pytest.raises(LlmopsError, match="no experiment dataset named 'nope'"):
        plan_sweep(uc, SweepOptions(datasets=["nope"]))


def test_cell_ids_are_stable(tmp_path):
    uc = _two_node_uc(tmp_path)
    a = [c.cell_id for c in plan_sweep(uc, SweepOptions()).cells]
    b = [c.cell_id for c in plan_sweep(uc, SweepOptions()).cells]
    assert a == b


def test_llmops_yaml_sweep_block_is_the_default(tmp_path):
    uc_dir = make_use_case(tmp_path)
    (uc_dir / "llmops.yaml").write_text(
        "sweep:\n  variants: defaults\n  grid:\n    classify.temperature: [0.0, 1.0]\n"
    )
    uc = load_workspace(tmp_path).use_cases[0]
    plan = plan_sweep(uc)
    assert len(plan.cells) == 2 and plan.grid == {"classify.temperature": [0.0, 1.0]}


def test_estimate_uses_prices(tmp_path):
    uc = load_workspace(tmp_path if make_use_case(tmp_path) else tmp_path).use_cases[0]
    plan = plan_sweep(uc, SweepOptions())
    est = estimate(uc, plan, latency_s=0.2)
    assert est.cells == 2 and est.lines == 24 and est.llm_calls == 24
    assert est.cost is not None and est.cost > 0
    assert est.prompt_tokens > 0 and est.wall_s > 0


def test_bundled_use_cases_plan():
    ws = load_workspace(REPO)
    for uc in ws.use_cases:
        plan = plan_sweep(uc, SweepOptions())
        assert plan.cells and plan.lines_total >= 50
