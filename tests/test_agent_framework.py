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
    # the command says so with exit code 1, its JSON the same verdict
    from llmops_tui.cli import _main

    rc = _main(
        [
            "compare-backends",
            "support_ticket_classification",
            "--workspace",
            str(ws.root),
            "--llm-endpoint",
            sandbox.url,
            "--limit",
            "3",
            "--variants",
            "defaults",
            "--json",
        ]
    )
    assert rc == 1


def _skew_agent_framework(monkeypatch) -> None:
    """Agent Framework's outputs upper-cased: every line differs (only that backend uses flow_outputs)."""
    from llmops_tui.core.backends import pf_semantics

    real = pf_semantics.flow_outputs

    def skewed(defs, inputs, outputs):
        out = real(defs, inputs, outputs)
        return {k: (v.upper() if isinstance(v, str) else v) for k, v in out.items()}

    monkeypatch.setattr(pf_semantics, "flow_outputs", skewed)


def _compare_with_report(root: Path, sandbox, report: Path, capfd) -> tuple[int, dict, str]:
    """`compare-backends --json --report REPORT` on 3 lines of the default cell: exit code, JSON, stderr."""
    from llmops_tui.cli import _main

    rc = _main(
        [
            "compare-backends",
            "support_ticket_classification",
            "--workspace",
            str(root),
            "--llm-endpoint",
            sandbox.url,
            "--limit",
            "3",
            "--variants",
            "defaults",
            "--report",
            str(report),
            "--json",
        ]
    )
    out, err = capfd.readouterr()
    return rc, json.loads(out), err


def _dump_dom(path: Path, tmp_path: Path) -> str:
    """The page's DOM after real headless Chromium loaded it (as tests/test_exporters.py does)."""
    from test_exporters import dump_dom

    return dump_dom(path, tmp_path)


@needs_af
@pytest.mark.integration
@pytest.mark.browser
@pytest.mark.skipif(
    shutil.which("chromium") is None and shutil.which("chromium-browser") is None,
    reason="chromium is not installed",
)
def test_the_html_report_shows_differing_lines_side_by_side(tmp_path, sandbox, monkeypatch, capfd):
    import html as html_lib

    _skew_agent_framework(monkeypatch)
    root = _ws(tmp_path, "support_ticket_classification")
    report = tmp_path / "out" / "backends.html"
    rc, data, _ = _compare_with_report(root, sandbox, report, capfd)
    assert rc == 1 and data["report"] == str(report) and report.is_file()
    cells = data["cells"]
    differing = [c for c in cells if c["differing_lines"]]
    assert differing and len(differing) == len(cells)  # every line differs
    first = differing[0]["differing_lines"][0]
    pf = first["promptflow-dag"]["outputs"]["category"]
    af = first["agent-framework"]["outputs"]["category"]
    assert pf != af == pf.upper()
    dom = _dump_dom(report, tmp_path)
    assert '<table id="verdicts">' in dom and html_lib.escape(data["verdict"]) in dom
    for cell in cells:  # the verdict per cell, by label
        assert html_lib.escape(cell["cell"]) + "</td><td>" in dom
        assert html_lib.escape(cell["verdict"]) in dom
    # each cell's differing lines side by side: Prompt flow's output, then Agent Framework's
    assert dom.count('<table class="side-by-side">') == len(differing) and "No line differs" not in dom
    section = dom.split("Lines differing: ")[1]
    assert section.startswith(html_lib.escape(differing[0]["cell"]))
    row = section.split('<table class="side-by-side">')[1].split("</tr>")[1]
    tds = row.split("<td")
    assert pf in tds[3] and af not in tds[3] and af in tds[4] and pf not in tds[4]
    # cells are named by label, never by hash: no cell id of either run appears anywhere
    from llmops_tui.core.store import RunStore

    with RunStore.for_workspace(root) as store:
        ids = {c.cell_id for run in data["runs"] for c in store.cells(run)}
    assert ids and not any(cid in dom for cid in ids)
    assert "Prompt flow · " in dom and "Agent Framework · " in dom


@needs_af
@pytest.mark.integration
def test_the_markdown_report_shows_differing_lines_side_by_side(tmp_path, sandbox, monkeypatch, capfd):
    _skew_agent_framework(monkeypatch)
    root = _ws(tmp_path, "support_ticket_classification")
    report = tmp_path / "backends.md"
    rc, data, _ = _compare_with_report(root, sandbox, report, capfd)
    assert rc == 1 and data["report"] == str(report)
    text = report.read_text(encoding="utf-8")
    assert data["verdict"] in text and "| line | inputs | Prompt flow | Agent Framework |" in text
    assert "No line differs" not in text
    sections = text.split("#### Lines differing: ")[1:]
    assert len(sections) == len(data["cells"])  # every line differs
    for cell, section in zip(data["cells"], sections, strict=True):
        label = cell["cell"].replace("|", "\\|")
        assert f"| {label} | " in text and section.startswith(label)  # verdict table, then its lines
        for d in cell["differing_lines"]:
            pf = d["promptflow-dag"]["outputs"]["category"]
            af = d["agent-framework"]["outputs"]["category"]
            rows = [r for r in section.splitlines() if r.startswith(f"| {d['line']} | ")]
            assert len(rows) == 1
            _line, _inputs, left, right = rows[0].strip("| ").split(" | ")
            assert pf in left and af not in left and af in right and pf not in right
    from llmops_tui.core.store import RunStore

    with RunStore.for_workspace(root) as store:
        ids = {c.cell_id for run in data["runs"] for c in store.cells(run)}
    assert ids and not any(cid in text for cid in ids)


@needs_af
@pytest.mark.integration
def test_an_equivalent_comparison_reports_no_lines(tmp_path, sandbox, capfd):
    root = _ws(tmp_path, "support_ticket_classification")
    report = tmp_path / "backends.md"
    rc, data, _ = _compare_with_report(root, sandbox, report, capfd)
    assert rc == 0 and data["equivalent"] and data["report"] == str(report)
    text = report.read_text(encoding="utf-8")
    assert data["verdict"].startswith("equivalent") and data["verdict"] in text
    assert "No line differs." in text and "Lines differing" not in text


@needs_af
@pytest.mark.integration
def test_a_failed_comparison_writes_no_report(tmp_path, sandbox, capfd):
    from llmops_tui.cli import _main

    root = _ws(tmp_path, "support_ticket_classification")
    tool = root / "use_cases" / "support_ticket_classification" / "flows" / "standard" / "prepare_ticket.py"
    tool.write_text(
        tool.read_text().replace("    title = ", "    raise ValueError('broken on purpose')\n    title = ", 1)
    )
    report = tmp_path / "backends.html"
    args = ["compare-backends", "support_ticket_classification", "--workspace", str(root)]
    rc = _main([*args, "--llm-endpoint", sandbox.url, "--limit", "2", "--report", str(report)])
    out, err = capfd.readouterr()
    assert rc == 1 and not report.exists()
    assert "no report written: the comparison failed" in err and "wrote report" not in out + err


@needs_af
def test_a_report_of_an_unknown_format_is_refused_before_anything_runs(tmp_path, capfd):
    from llmops_tui.cli import _main

    root = _ws(tmp_path, "support_ticket_classification")
    report = tmp_path / "backends.pdf"
    rc = _main(
        [
            "compare-backends",
            "support_ticket_classification",
            "--workspace",
            str(root),
            "--report",
            str(report),
        ]
    )
    out, err = capfd.readouterr()
    assert rc == 2
    assert "--report" in err and ".html or .md" in err and "Traceback" not in err
    assert len(err.strip().splitlines()) == 1
    assert _runs(root) == [] and not report.exists()


def _runs(root: Path) -> list:
    from llmops_tui.core.store import RunStore

    if not (root / ".llmops").exists():
        return []
    with RunStore.for_workspace(root) as store:
        return store.list_runs()


def test_both_plans_are_checked_before_anything_runs(tmp_path):
    """Prompt flow plans a cloud sweep, Agent Framework refuses it: refused before Prompt flow runs."""
    from llmops_tui.core.equivalence import compare_backends
    from llmops_tui.core.errors import LlmopsError
    from llmops_tui.core.sweep import SweepOptions, plan_sweep
    from llmops_tui.core.workspace import load_workspace

    ws = load_workspace(_ws(tmp_path, "support_ticket_classification"))
    uc = ws.get("support_ticket_classification")
    options = SweepOptions(target="azureml", limit=2)
    assert plan_sweep(uc, options).lines_total  # the first plan alone is fine
    with pytest.raises(LlmopsError, match="cloud sweeps run on Prompt flow") as exc:
        compare_backends(ws.root, uc, options)
    assert "\n" not in str(exc.value) and exc.value.problem.field == "--backend"
    assert _runs(ws.root) == []


@needs_af
def test_the_command_refuses_bad_input_with_exit_code_2(tmp_path, capfd):
    from llmops_tui.cli import _main

    root = _ws(tmp_path, "support_ticket_classification")
    rc = _main(
        ["compare-backends", "support_ticket_classification", "--workspace", str(root), "--dataset", "nope"]
    )
    out, err = capfd.readouterr()
    assert rc == 2
    assert "nope" in err and len(err.strip().splitlines()) == 1 and "Traceback" not in err
    assert _runs(root) == []


@needs_af
@pytest.mark.integration
def test_progress_arrives_for_both_backends(tmp_path, sandbox, capfd):
    from llmops_tui.cli import _main
    from llmops_tui.core import events as ev
    from llmops_tui.core.equivalence import compare_backends
    from llmops_tui.core.sweep import SweepOptions
    from llmops_tui.core.workspace import load_workspace

    ws = load_workspace(_ws(tmp_path, "support_ticket_classification"))
    uc = ws.get("support_ticket_classification")
    seen: list[tuple[str, str]] = []
    result = compare_backends(
        ws.root,
        uc,
        SweepOptions(llm_endpoint=sandbox.url, limit=2, variants="defaults"),
        on_event=lambda backend, event: seen.append((backend, type(event).__name__)),
    )
    assert result.status == "compared" and result.equivalent, result.verdict
    for backend in ("promptflow-dag", "agent-framework"):
        kinds = [k for b, k in seen if b == backend]
        assert kinds[0] == "SweepStarted" and kinds[-1] == "SweepFinished"
        assert "Progress" in kinds and "MetricsReady" in kinds
    # one after the other: every Prompt flow event before the first Agent Framework one
    backends = [b for b, _ in seen]
    assert backends == sorted(backends, key=("promptflow-dag", "agent-framework").index)
    assert ev.SweepFinished  # the events are the engine's own
    # the command: the same progress on stderr, the verdict on stdout, exit code 0
    capfd.readouterr()
    args = ["compare-backends", uc.name, "--workspace", str(ws.root), "--llm-endpoint", sandbox.url]
    rc = _main([*args, "--limit", "2", "--variants", "defaults"])
    out, err = capfd.readouterr()
    assert rc == 0, out + err
    total = sum(c.lines for c in result.cells)
    assert "promptflow-dag" in err and "agent-framework" in err and f"{total}/{total}" in err
    assert out.strip().splitlines()[-1].startswith(f"equivalent: {total}/{total} lines identical")
    rc = _main([*args, "--limit", "2", "--variants", "defaults", "--json"])
    out, err = capfd.readouterr()
    assert rc == 0 and json.loads(out)["status"] == "compared" and json.loads(out)["equivalent"]


@needs_af
@pytest.mark.integration
def test_cancel_gives_cancelled_never_equivalent(tmp_path, sandbox):
    from llmops_tui.core import events as ev
    from llmops_tui.core.equivalence import compare_backends
    from llmops_tui.core.sweep import SweepOptions
    from llmops_tui.core.workspace import load_workspace

    ws = load_workspace(_ws(tmp_path, "support_ticket_classification"))
    uc = ws.get("support_ticket_classification")
    cancel = threading.Event()
    seen: list[str] = []

    def on_event(backend, event):
        seen.append(backend)
        if isinstance(event, ev.SweepStarted):
            cancel.set()  # as soon as the first sweep starts

    result = compare_backends(
        ws.root, uc, SweepOptions(llm_endpoint=sandbox.url, limit=4), cancel=cancel, on_event=on_event
    )
    assert result.status == "cancelled" and not result.equivalent
    assert result.verdict == "cancelled on promptflow-dag: nothing compared"
    assert result.runs[1] is None and set(seen) == {"promptflow-dag"}  # the second never started
    runs = _runs(ws.root)
    assert [r.status for r in runs] == ["cancelled"]
    assert result.to_dict()["status"] == "cancelled" and not result.to_dict()["equivalent"]


@needs_af
@pytest.mark.integration
def test_every_line_failing_is_failed_not_equivalent(tmp_path, sandbox):
    from llmops_tui.core.equivalence import compare_backends
    from llmops_tui.core.sweep import SweepOptions
    from llmops_tui.core.workspace import load_workspace

    root = _ws(tmp_path, "support_ticket_classification")
    tool = root / "use_cases" / "support_ticket_classification" / "flows" / "standard" / "prepare_ticket.py"
    tool.write_text(
        tool.read_text().replace("    title = ", "    raise ValueError('broken on purpose')\n    title = ", 1)
    )
    ws = load_workspace(root)
    uc = ws.get("support_ticket_classification")
    result = compare_backends(
        ws.root, uc, SweepOptions(llm_endpoint=sandbox.url, limit=2, variants="defaults")
    )
    assert result.status == "failed" and not result.equivalent
    assert result.stopped_on == "promptflow-dag" and "every line failed" in (result.error or "")
    assert result.verdict.startswith("failed: the sweep on promptflow-dag failed")
    assert "equivalent" not in result.verdict


def test_lines_that_failed_on_both_sides_prove_nothing():
    from llmops_tui.core.equivalence import BackendComparison, LineView, compare_cell

    pair = ("a", "b")
    failed = {n: LineView("failed", None, "boom") for n in range(2)}
    comp = compare_cell("cell", pair, failed, dict(failed))
    assert not comp.equivalent and comp.verdict == "failed: all 2 lines failed on both backends"
    assert comp.identical == 0 and comp.failed == 2 and not comp.differing
    ok = {0: LineView("ok", {"x": 1}), 1: LineView("failed", None, "boom")}
    comp = compare_cell("cell", pair, ok, dict(ok))
    assert not comp.equivalent and comp.verdict == "inconclusive: 1/2 lines failed on both backends"
    empty = compare_cell("cell", pair, {}, {})
    assert not empty.equivalent and empty.verdict == "nothing compared: no lines"
    assert not BackendComparison("uc", pair, ("r1", "r2"), []).equivalent
    whole = BackendComparison("uc", pair, ("r1", "r2"), [empty])
    assert not whole.equivalent and not whole.verdict.startswith("equivalent")
    same = compare_cell("cell", pair, {0: LineView("ok", {"x": 1})}, {0: LineView("ok", {"x": 1})})
    assert same.equivalent and same.verdict == "equivalent: 1/1 lines identical"


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


def _line(backend, inputs, index, run_id="diamond"):
    """One line of ``backend`` in a line context of its own (retry policy, cancel, rate limiter)."""
    ctx = llmhooks.LineContext(
        policy=llmhooks.RetryPolicy(max_retries=1),
        cancel=threading.Event(),
        limiter_for=lambda u: llmhooks.RateLimiter(),
    )
    token = llmhooks.current_line.set(ctx)
    try:
        return backend.run_line(inputs, index, run_id)
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
