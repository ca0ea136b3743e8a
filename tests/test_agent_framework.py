"""The Agent Framework backend against Prompt flow's executor: identical outputs and metrics on every
bundled use case at temperature 0 against the sandbox (through `compare-backends`), Prompt flow's
activate/bypass rules on a diamond-shaped flow, a difference that is reported, and the install story
(pins, `llmops deps --backend`, everything else working without the package)."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import textwrap
import threading
from pathlib import Path

import pytest

from llmops_tui.core import llmhooks
from llmops_tui.core.backends import (
    BackendOptions,
    FlowLoadError,
    open_backend,
    prepare_process,
)
from llmops_tui.core.backends.agent_framework import PINS, available

REPO = Path(__file__).resolve().parents[1]
needs_af = pytest.mark.skipif(
    available() is not None, reason=f"agent_framework is not importable: {available()}"
)
BUNDLED = sorted(p.name for p in (REPO / "use_cases").iterdir() if (p / "experiment.yaml").is_file())


def _ws(tmp_path: Path, name: str) -> Path:
    shutil.copytree(REPO / "use_cases" / name, tmp_path / "use_cases" / name)
    return tmp_path


@needs_af
@pytest.mark.integration
@pytest.mark.parametrize("use_case", BUNDLED)
def test_bundled_use_cases_are_identical_on_both_backends(tmp_path, sandbox, use_case):
    from llmops_tui.core.equivalence import compare_backends
    from llmops_tui.core.sweep import SweepOptions
    from llmops_tui.core.workspace import load_workspace

    ws = load_workspace(_ws(tmp_path, use_case))
    uc = ws.get(use_case)
    node = next(iter(uc.standard_flow.variants)) if uc.standard_flow and uc.standard_flow.variants else None
    grid = {f"{node}.temperature": [0.0]} if node else None
    result = compare_backends(ws.root, uc, SweepOptions(llm_endpoint=sandbox.url, limit=2, grid=grid))
    assert result.cells and all(c.lines == 2 for c in result.cells)
    assert result.equivalent, json.dumps(result.to_dict(), indent=1)[:3000]
    assert result.verdict.startswith(
        f"equivalent: {2 * len(result.cells)}/{2 * len(result.cells)} lines identical"
    )
    for cell in result.cells:
        assert cell.metrics and all(m["delta"] == 0 for m in cell.metrics.values())
        assert all(t["method"] if "method" in t else True for t in cell.tests.values())


@needs_af
@pytest.mark.integration
def test_a_difference_is_reported_line_by_line(tmp_path, sandbox, monkeypatch):
    from llmops_tui.core.backends import pf_semantics
    from llmops_tui.core.equivalence import compare_backends
    from llmops_tui.core.sweep import SweepOptions
    from llmops_tui.core.workspace import load_workspace

    real = pf_semantics.flow_outputs

    def skewed(defs, inputs, outputs):
        out = real(defs, inputs, outputs)
        return {k: (v.upper() if isinstance(v, str) else v) for k, v in out.items()}

    monkeypatch.setattr(pf_semantics, "flow_outputs", skewed)  # only the Agent Framework backend uses it
    ws = load_workspace(_ws(tmp_path, "support_ticket_classification"))
    uc = ws.get("support_ticket_classification")
    options = SweepOptions(
        llm_endpoint=sandbox.url, limit=3, variants="defaults", grid={"classify_llm.temperature": [0.0]}
    )
    result = compare_backends(ws.root, uc, options)
    assert not result.equivalent
    cell = result.cells[0]
    assert cell.identical == 0 and len(cell.differing) == 3
    first = cell.differing[0]
    assert (
        first["agent-framework"]["outputs"]["category"]
        == first["promptflow-dag"]["outputs"]["category"].upper()
    )
    assert not cell.verdict.startswith("equivalent")


DIAMOND = """\
inputs:
  x:
    type: int
    default: 1
  go:
    type: bool
    default: true
outputs:
  joined:
    type: object
    reference: ${join.output}
  gated:
    type: object
    reference: ${gated.output}
  after_gate:
    type: object
    reference: ${after_gate.output}
  kind:
    type: string
    reference: ${double.output.kind}
nodes:
- name: double
  type: python
  source: {type: code, path: double.py}
  inputs: {x: "${inputs.x}"}
- name: left
  type: python
  source: {type: code, path: side.py}
  inputs: {value: "${double.output.value}", tag: left}
- name: gated
  type: python
  source: {type: code, path: side.py}
  inputs: {value: "${double.output.value}", tag: gated}
  activate: {when: "${inputs.go}", is: true}
- name: after_gate
  type: python
  source: {type: code, path: side.py}
  inputs: {value: "${gated.output}", tag: after}
- name: join
  type: python
  source: {type: code, path: join.py}
  inputs: {a: "${left.output}", b: "${gated.output}", c: "${after_gate.output}"}
- name: total
  type: python
  source: {type: code, path: total.py}
  inputs: {values: "${join.output}", xs: "${inputs.x}"}
  aggregation: true
"""
CODE = {
    "double.py": "from promptflow.core import tool\n\n\n@tool\ndef double(x: int) -> dict:\n"
    "    print('doubling', x)\n    return {'value': 2 * x, 'kind': 'even'}\n",
    "side.py": "from promptflow.core import tool\n\n\n@tool\ndef side(value, tag: str) -> str:\n"
    "    return f'{tag}:{value}'\n",
    "join.py": "from promptflow.core import tool\n\n\n@tool\ndef join(a: str, b: str = 'no-b', c=None) -> dict:\n"
    "    return {'a': a, 'b': b, 'c': c}\n",
    "total.py": "from promptflow.core import log_metric, tool\n\n\n@tool\ndef total(values: list, xs: list) -> None:\n"
    "    log_metric('n', len(values))\n    log_metric('sum_x', sum(xs))\n"
    "    log_metric('with_b', sum(1 for v in values if v['b'] != 'no-b'))\n",
}


def _line(backend, inputs, index):
    ctx = llmhooks.LineContext(
        policy=llmhooks.RetryPolicy(max_retries=1),
        cancel=threading.Event(),
        limiter_for=lambda u: llmhooks.RateLimiter(),
    )
    token = llmhooks.current_line.set(ctx)
    try:
        return backend.run_line(inputs, index, "diamond")
    finally:
        llmhooks.current_line.reset(token)


@needs_af
def test_diamond_with_activate_and_bypass_matches_promptflow(tmp_path):
    flow = tmp_path / "flow"
    flow.mkdir()
    (flow / "flow.dag.yaml").write_text(DIAMOND)
    for name, text in CODE.items():
        (flow / name).write_text(text)
    prepare_process(tmp_path / ".llmops")
    rows = [{"x": 1, "go": True}, {"x": "3", "go": "false"}, {"x": 1, "go": False}]
    results = {}
    for name in ("promptflow-dag", "agent-framework"):
        backend = open_backend(flow, BackendOptions(connections={}, line_timeout_s=30, backend=name))
        outcomes = [_line(backend, r, i) for i, r in enumerate(rows)]
        assert all(o.ok for o in outcomes), [o.error for o in outcomes]
        results[name] = (
            [o.outputs for o in outcomes],
            backend.run_aggregation(rows, outcomes),
            [o.logs for o in outcomes],
        )
    pf_out, af_out = results["promptflow-dag"], results["agent-framework"]
    assert af_out[0] == pf_out[0]  # outputs, bypassed nodes (None) included
    assert af_out[0][1]["gated"] is None and af_out[0][0]["gated"] == "gated:2"
    assert af_out[1] == pf_out[1] == {"n": 3, "sum_x": 5, "with_b": 1}
    assert "doubling 3" in af_out[2][1]["stdout"]


def test_pins_are_the_requirements_file():
    lines = (REPO / "requirements-agent-framework.txt").read_text().splitlines()
    pins = tuple(x.strip() for x in lines if x.strip() and not x.startswith("#"))
    assert pins == PINS
    constraints = set((REPO / "constraints.txt").read_text().split())
    assert set(PINS) <= constraints


def test_deps_reports_the_backend_packages(tmp_path):
    proc = subprocess.run(
        [sys.executable, "-m", "llmops_tui.cli", "deps", "--backend", "agent-framework", "--json"],
        capture_output=True,
        text=True,
        cwd=tmp_path,
        timeout=120,
    )
    data = json.loads(proc.stdout)
    assert [p["name"] for p in data["packages"]] == [p.split("==")[0] for p in PINS]
    assert "--no-deps" in data["install_command"]
    assert proc.returncode == (0 if available() is None else 1)
    bad = subprocess.run(
        [sys.executable, "-m", "llmops_tui.cli", "deps", "--backend", "nope"],
        capture_output=True,
        text=True,
        cwd=tmp_path,
        timeout=120,
    )
    assert bad.returncode == 2 and "--backend" in bad.stderr


def test_without_agent_framework_the_rest_works_and_opening_says_how_to_install(tmp_path):
    """agent_framework made unimportable: listing works, and a flow opened on the backend fails with
    one line naming the flow file and the install command."""
    shutil.copytree(REPO / "use_cases" / "support_ticket_classification", tmp_path / "use_cases" / "stc")
    script = textwrap.dedent(f"""
        import sys
        sys.modules["agent_framework"] = None  # import fails, as when the wheel is not installed
        from pathlib import Path
        from llmops_tui.core.backends import BackendOptions, FlowLoadError, open_backend
        from llmops_tui.core.workspace import load_workspace
        ws = load_workspace(Path({str(tmp_path)!r}))
        assert ws.get("support_ticket_classification").standard_flow is not None
        flow = Path({str(tmp_path)!r}) / "use_cases" / "stc" / "flows" / "standard"
        try:
            open_backend(flow, BackendOptions(connections={{}}, line_timeout_s=5, backend="agent-framework",
                                              workspace=Path({str(tmp_path)!r})))
        except FlowLoadError as exc:
            print("ERROR=" + str(exc))
    """)
    proc = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=120, env={**os.environ}
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    text = proc.stdout.split("ERROR=")[1].strip()
    assert text.startswith("use_cases/stc/flows/standard/flow.dag.yaml: backend agent-framework:")
    assert "llmops deps --backend agent-framework --install" in text and "\n" not in text


def test_an_unknown_backend_is_refused(tmp_path):
    from llmops_tui.core.errors import LlmopsError
    from llmops_tui.core.sweep import SweepOptions, check_options

    with pytest.raises(LlmopsError) as info:
        check_options(SweepOptions(backend="langchain"))
    assert info.value.problem.field == "--backend"
    with pytest.raises(FlowLoadError):
        open_backend(tmp_path, BackendOptions(connections={}, line_timeout_s=1, backend="agent-framework"))


def test_llmops_yaml_backend_key(tmp_path):
    from llmops_tui.core.extras import ExtrasError, parse_extras

    assert parse_extras({"backend": "agent-framework"}).backend == "agent-framework"
    with pytest.raises(ExtrasError):
        parse_extras({"backend": "other"})


@needs_af
@pytest.mark.integration
def test_each_backend_has_its_own_cache_keys(tmp_path, sandbox):
    from llmops_tui.core import events as ev
    from llmops_tui.core.engine import run_sweep
    from llmops_tui.core.sweep import SweepOptions, plan_sweep
    from llmops_tui.core.workspace import load_workspace

    ws = load_workspace(_ws(tmp_path, "support_ticket_classification"))
    uc = ws.get("support_ticket_classification")

    def sweep(backend):
        options = SweepOptions(llm_endpoint=sandbox.url, limit=2, variants="defaults", backend=backend)
        events = list(run_sweep(ws.root, uc, plan_sweep(uc, options)))
        final = events[-1]
        assert isinstance(final, ev.SweepFinished) and final.status == "completed", final
        return final.summary

    first = sweep("agent-framework")
    again = sweep("agent-framework")
    other = sweep(None)
    assert first["cache_hits"] == 0 and first["llm_calls"] > 0
    assert again["llm_calls"] == 0 and again["cache_hits"] == first["llm_calls"]
    assert other["cache_hits"] == 0 and other["llm_calls"] == first["llm_calls"]
