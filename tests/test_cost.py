"""One cost everywhere (issue 15, item 5): the estimate, the live progress, the comparison, the CLI, the
reports and the app all ask core.cost, so one run shows one cost; against the sandbox model it is free."""

from __future__ import annotations

import json
from pathlib import Path
from types import SimpleNamespace

import pytest
from builders import make_use_case

from llmops_tui.cli import main
from llmops_tui.core import events as ev
from llmops_tui.core.compare import build_comparison
from llmops_tui.core.cost import FREE_TEXT, fmt_cost, price_tokens
from llmops_tui.core.engine import run_sweep
from llmops_tui.core.format import fmt_money
from llmops_tui.core.store import RunStore
from llmops_tui.core.sweep import SweepOptions, estimate, plan_sweep
from llmops_tui.core.workspace import load_workspace

PRICES = {"m": SimpleNamespace(prompt=0.5, completion=1.5), "other": SimpleNamespace(prompt=1, completion=1)}


def test_price_tokens_rules():
    free = price_tokens(PRICES, ["m"], 1000, 1000, sandbox=True)
    assert (free.usd, free.free, free.text) == (0.0, True, FREE_TEXT)
    priced = price_tokens(PRICES, ["m", "m"], 1000, 2000, sandbox=False)
    assert priced.usd == pytest.approx(3.5) and not priced.free and priced.text == "$3.50"
    assert price_tokens(PRICES, ["m", "other"], 1, 1, sandbox=False).usd is None  # not split by model
    assert "no price for 'x'" in price_tokens(PRICES, ["x"], 1, 1, sandbox=False).note
    assert price_tokens(PRICES, [None], 1, 1, sandbox=False).usd is None
    assert price_tokens(PRICES, [], 1, 1, sandbox=False).usd is None
    assert fmt_cost(None) == "n/a (no prices)"
    assert fmt_cost(4.95e-05, signed=True) == "+$0.0000495"  # never 4.95e-05


def _sweep(root: Path, endpoint: str) -> tuple[str, ev.Progress]:
    ws = load_workspace(root)
    uc = ws.get("tickets")
    plan = plan_sweep(uc, SweepOptions(llm_endpoint=endpoint, no_cache=True))
    last = None
    run_id = ""
    for event in run_sweep(root, uc, plan, progress_interval=0.05):
        if isinstance(event, ev.Progress):
            last = event
        elif isinstance(event, ev.SweepFinished):
            run_id = event.run_id
    assert last is not None and run_id
    return run_id, last


def _cli_json(capfd, *args: str) -> dict:
    assert main([*args, "--json"]) == 0
    return json.loads(capfd.readouterr().out)


def _cli_text(capfd, *args: str) -> str:
    assert main(list(args)) == 0
    return capfd.readouterr().out


def _report(capfd, root: Path, run_id: str) -> str:
    out = root / "report.md"
    assert main(["report", run_id, "-w", str(root), "--format", "markdown", "--out", str(out)]) == 0
    capfd.readouterr()
    return out.read_text()


@pytest.mark.integration
def test_a_sandbox_run_is_free_everywhere(tmp_path, capfd):
    from llmops_tui.tui.screens.compare import value_text

    make_use_case(tmp_path, rows=3)
    w = ("-w", str(tmp_path))
    # the dry-run estimate
    plan = _cli_json(capfd, "sweep", "tickets", *w, "--llm-endpoint", "sandbox", "--dry-run")
    assert plan["estimate"]["cost"] == 0 and plan["estimate"]["cost_free"] is True
    dry = _cli_text(capfd, "sweep", "tickets", *w, "--llm-endpoint", "sandbox", "--dry-run")
    assert f"cost {FREE_TEXT}" in dry and "$" not in dry
    # the live progress (app run monitor and CLI progress bar read this event)
    run_id, progress = _sweep(tmp_path, "sandbox")
    assert progress.cost == 0 and progress.cost_free
    # compare --json: numeric 0 plus the flag, no delta shown between free cells
    cmp = _cli_json(capfd, "compare", run_id, *w)
    cost_row = next(r for r in cmp["rows"] if r["key"] == "cost_usd")
    assert {(v["value"], v["free"]) for v in cost_row["values"].values()} == {(0.0, True)}
    # the CLI table, a report and the app's compare cells say the same words
    assert FREE_TEXT in _cli_text(capfd, "compare", run_id, *w, "--wide")
    report = _report(capfd, tmp_path, run_id)
    cost_line = next(line for line in report.splitlines() if line.startswith("| estimated cost"))
    assert cost_line.count(FREE_TEXT) == len(cost_row["values"]) and "$" not in cost_line
    with RunStore.for_workspace(tmp_path) as store:
        comparison = build_comparison(store, run_id, workspace_root=tmp_path)
    row = comparison.row("cost_usd")
    assert row is not None
    for cell in comparison.cells:
        shown = value_text(
            row.values[cell.cell_id],
            best=False,
            baseline=cell.is_baseline,
            higher_is_better=False,
            key=row.key,
        )
        assert shown.plain.startswith(FREE_TEXT) and "$" not in shown.plain


@pytest.mark.integration
def test_a_priced_run_costs_the_same_in_progress_compare_cli_and_report(tmp_path, capfd, sandbox):
    # The sandbox reached by URL is, as far as the app knows, a real endpoint: priced from llmops.yaml.
    make_use_case(tmp_path, rows=3)
    w = ("-w", str(tmp_path))
    run_id, progress = _sweep(tmp_path, sandbox.url)
    assert not progress.cost_free and progress.cost is not None and progress.cost > 0
    cmp = _cli_json(capfd, "compare", run_id, *w)
    cost_row = next(r for r in cmp["rows"] if r["key"] == "cost_usd")
    per_cell = [v["value"] for v in cost_row["values"].values()]
    assert not any(v["free"] for v in cost_row["values"].values())
    assert sum(per_cell) == pytest.approx(progress.cost, abs=1e-6)
    # tokens x prices from llmops.yaml: the same sum the compare rows give
    prompt = next(r for r in cmp["rows"] if r["key"] == "prompt_tokens")["values"]
    completion = next(r for r in cmp["rows"] if r["key"] == "completion_tokens")["values"]
    for cid, v in cost_row["values"].items():
        expected = (prompt[cid]["value"] * 0.0005 + completion[cid]["value"] * 0.0015) / 1000
        assert v["value"] == pytest.approx(expected)
    table = _cli_text(capfd, "compare", run_id, *w, "--wide")
    report = _report(capfd, tmp_path, run_id)
    for value in per_cell:
        assert fmt_money(value) in table
        assert fmt_money(value) in report
    assert FREE_TEXT not in table and FREE_TEXT not in report
    # the estimate prices the same way (its token counts are guesses, its rule is the same)
    ws = load_workspace(tmp_path)
    uc = ws.get("tickets")
    est = estimate(uc, plan_sweep(uc, SweepOptions(llm_endpoint=sandbox.url)))
    assert est.cost is not None and est.cost > 0 and not est.cost_free
