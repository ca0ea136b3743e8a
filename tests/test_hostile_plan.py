"""Fail before spending: defects that would fail every line are refused at plan time (issue 12, item 3).

Each case mutates a copy of the bundled support-ticket use case (or passes hostile options) and expects
exit code 2 with a message fragment from `llmops list` (flow defects), `llmops sweep --dry-run` and a
real `llmops sweep` pointed at a counting HTTP endpoint: no traceback, and the endpoint never called.
The CLI runs in-process through its real entry point (``llmops_tui.cli.main``), which is what the
console script calls.
"""

from __future__ import annotations

import http.server
import re
import shutil
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from llmops_tui.cli import main

REPO = Path(__file__).resolve().parent.parent
UC = "support_ticket_classification"


# ------------------------------------------------------------------------------------------ helpers


class _Counter(http.server.BaseHTTPRequestHandler):
    calls = 0

    def _any(self) -> None:
        type(self).calls += 1
        self.send_response(500)
        self.end_headers()

    do_GET = do_POST = _any

    def log_message(self, *args: object) -> None:  # keep test output clean
        pass


@pytest.fixture(scope="module")
def endpoint():
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Counter)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/v1"
    finally:
        server.shutdown()
        server.server_close()


def _edit(path: Path, old: str, new: str, count: int = 1) -> None:
    text = path.read_text()
    assert old in text, (path, old)
    path.write_text(text.replace(old, new, count))


def _flow(uc: Path) -> Path:
    return uc / "flows" / "standard" / "flow.dag.yaml"


def _dag(old: str, new: str, count: int = 1) -> Callable[[Path], None]:
    return lambda uc: _edit(_flow(uc), old, new, count)


def _file(rel_path: str, old: str, new: str) -> Callable[[Path], None]:
    return lambda uc: _edit(uc / rel_path, old, new)


def _append(rel_path: str, text: str) -> Callable[[Path], None]:
    def mutate(uc: Path) -> None:
        p = uc / rel_path
        p.write_text(p.read_text() + text)

    return mutate


def _delete(rel_path: str) -> Callable[[Path], None]:
    return lambda uc: (uc / rel_path).unlink()


def _write(rel_path: str, text: str) -> Callable[[Path], None]:
    return lambda uc: (uc / rel_path).write_text(text)


EXTRA_NODE = """\
- name: {name}
  type: {type}
  source:
    type: {source_type}
    {source_key}: {source}
  inputs:
    {inputs}
"""


def _add_node(
    name: str = "extra",
    type_: str = "python",
    source_type: str = "code",
    source_key: str = "path",
    source: str = "prepare_ticket.py",
    inputs: str = "title: ${inputs.title}",
    flow: str = "standard",
) -> Callable[[Path], None]:
    def mutate(uc: Path) -> None:
        dag = uc / "flows" / flow / "flow.dag.yaml"
        node = EXTRA_NODE.format(
            name=name,
            type=type_,
            source_type=source_type,
            source_key=source_key,
            source=source,
            inputs=inputs,
        )
        anchor = "node_variants:\n" if flow == "standard" else None
        text = dag.read_text()
        dag.write_text(text.replace(anchor, node + anchor) if anchor else text + node)

    return mutate


@dataclass
class Case:
    id: str
    fragment: str  # expected in the error output (case-insensitive)
    mutate: Callable[[Path], None] | None = None
    args: list[str] = field(default_factory=list)
    list_fails: bool = True  # a defect of the use case (list/show show it), not of the options
    also: str = ""  # a second expected fragment (file name, did-you-mean, ...)


CASES = [
    # --- DAG references
    Case(
        "unknown-node-in-input",
        "references node 'classify_lm'",
        _dag("answer: ${classify_llm.output}", "answer: ${classify_lm.output}"),
        also="did you mean 'classify_llm'",
    ),
    Case(
        "unknown-flow-input",
        "flow input 'bodyy'",
        _dag("body: ${inputs.body}", "body: ${inputs.bodyy}"),
        also="did you mean 'body'",
    ),
    Case(
        "unknown-node-output-section",
        "only its output can be referenced",
        _dag("ticket: ${prepare_ticket.output}", "ticket: ${prepare_ticket.outputs}", count=3),
    ),
    Case(
        "flow-output-unknown-node",
        "flow output 'category' references node 'normalise_label'",
        _dag("reference: ${normalize_label.output}", "reference: ${normalise_label.output}"),
    ),
    Case(
        "flow-output-unknown-input",
        "flow output 'category' references flow input 'nope'",
        _dag("reference: ${normalize_label.output}", "reference: ${inputs.nope}"),
    ),
    Case(
        "flow-output-without-reference",
        "flow output 'category' has no reference",
        _dag("    reference: ${normalize_label.output}\n", ""),
    ),
    Case(
        "activate-unknown-node",
        "references node 'missing_node'",
        _dag(
            "    answer: ${classify_llm.output}\n",
            "    answer: ${classify_llm.output}\n  activate:\n    when: ${missing_node.output}\n    is: true\n",
        ),
        also="activate.when",
    ),
    Case(
        "activate-without-is",
        "activate needs both 'when' and 'is'",
        _dag(
            "    answer: ${classify_llm.output}\n",
            "    answer: ${classify_llm.output}\n  activate:\n    when: ${inputs.title}\n",
        ),
    ),
    Case(
        "cycle",
        "reference each other in a cycle",
        _dag("    title: ${inputs.title}\n", "    title: ${normalize_label.output}\n"),
        also="prepare_ticket",
    ),
    Case(
        "duplicate-node-name",
        "appears more than once",
        _add_node(name="prepare_ticket"),
    ),
    Case(
        "non-aggregation-references-aggregation",
        "references aggregation node 'aggregate_scores'",
        _add_node(
            name="late", source="grade.py", inputs="category: ${aggregate_scores.output}", flow="evaluation"
        ),
    ),
    # --- tool types and sources
    Case(
        "unknown-tool-type",
        "unknown tool type 'pyhton'",
        _dag("- name: prepare_ticket\n  type: python\n", "- name: prepare_ticket\n  type: pyhton\n"),
        also="did you mean 'python'",
    ),
    Case(
        "csharp-tool-type",
        "Python executor cannot run",
        _dag("- name: prepare_ticket\n  type: python\n", "- name: prepare_ticket\n  type: csharp\n"),
    ),
    Case(
        "node-without-type",
        "has no type",
        _dag("- name: prepare_ticket\n  type: python\n", "- name: prepare_ticket\n"),
    ),
    Case(
        "llm-node-without-api",
        "names no api",
        _dag("          connection: aoai\n          api: chat\n", "          connection: aoai\n"),
        also="variant_0",
    ),
    Case(
        "package-tool-not-installed",
        "from package 'no_such_tool_pkg', which is not installed",
        _add_node(source_type="package", source_key="tool", source="no_such_tool_pkg.tools.lookup.lookup"),
    ),
    # --- templates and scripts
    Case(
        "jinja-syntax-error",
        "Jinja syntax error",
        _append("flows/standard/classify_described.jinja2", "\n{% if ticket %}\nunclosed block\n"),
        also="classify_described.jinja2: line",
    ),
    Case(
        "jinja-bad-expression",
        "Jinja syntax error",
        _append("flows/standard/classify_plain.jinja2", "\n{{ ticket | }}\n"),
        also="classify_plain.jinja2",
    ),
    Case(
        "python-syntax-error",
        "Python syntax error",
        _append("flows/standard/normalize_label.py", "\ndef broken(:\n    pass\n"),
        also="normalize_label.py: line",
    ),
    Case(
        "no-tool-decorator",
        "no function decorated with @tool",
        _file("flows/standard/prepare_ticket.py", "@tool\n", ""),
        also="prepare_ticket.py",
    ),
    Case(
        "two-tool-functions",
        "2 functions decorated with @tool",
        _append("flows/standard/prepare_ticket.py", "\n\n@tool\ndef second(x: str) -> str:\n    return x\n"),
    ),
    Case(
        "evaluator-script-syntax-error",
        "Python syntax error",
        _append("flows/evaluation/grade.py", "\nreturn = 3\n"),
        also="grade.py",
    ),
    Case(
        "missing-prompt-file",
        "prompt file 'classify_plain.jinja2' not found",
        _delete("flows/standard/classify_plain.jinja2"),
    ),
    Case(
        "missing-python-source",
        "file 'normalize_label.py' not found",
        _delete("flows/standard/normalize_label.py"),
    ),
    # --- packages
    Case(
        "requirement-not-installed",
        "flow package 'surely-not-installed-pkg-xyz' is not installed",
        _append("flows/standard/requirements.txt", "surely-not-installed-pkg-xyz>=1.0\n"),
        also="pip install -r",
    ),
    Case(
        "import-not-installed",
        "imports 'bs4_not_here', which is not installed",
        _file(
            "flows/standard/prepare_ticket.py",
            "from promptflow.core import tool\n",
            "import bs4_not_here\nfrom promptflow.core import tool\n",
        ),
        also="No module named 'bs4_not_here'",
    ),
    # --- unclosed ${...}
    Case(
        "unclosed-node-input",
        "never closes",
        _dag("    title: ${inputs.title}\n", "    title: ${inputs.title\n"),
        also="nodes.prepare_ticket.inputs.title",
    ),
    Case(
        "unclosed-dataset-mapping",
        "never closes",
        _file("experiment.yaml", 'title: "${data.title}"', 'title: "${data.title"'),
        also="mappings.title",
    ),
    Case(
        "mapping-unknown-source",
        "reads from no known source",
        _file("experiment.yaml", 'body: "${data.body}"', 'body: "${dta.body}"'),
    ),
    # --- llmops.yaml
    Case(
        "llmops-yaml-unknown-top-key",
        "unknown key 'gate'",
        _file("llmops.yaml", "gates:\n", "gate:\n"),
        also="did you mean 'gates'",
    ),
    Case(
        "llmops-yaml-unknown-sweep-key",
        "unknown key 'repet'",
        _file("llmops.yaml", "  repeat: 1\n", "  repet: 1\n"),
        also="llmops.yaml: sweep.repet",
    ),
    Case(
        "llmops-yaml-repeat-too-large",
        "sweep.repeat",
        _file("llmops.yaml", "  repeat: 1\n", "  repeat: 1000000000\n"),
    ),
    Case(
        "llmops-yaml-grid-typo",
        "takes no parameter 'temprature'",
        _file("llmops.yaml", "classify_llm.temperature:", "classify_llm.temprature:"),
        list_fails=False,
        also="llmops.yaml",
    ),
    # --- grids
    Case(
        "grid-param-typo",
        "node 'classify_llm' takes no parameter 'temprature'",
        args=["--grid", "classify_llm.temprature=0,0.7"],
        list_fails=False,
        also="did you mean classify_llm.temperature",
    ),
    Case(
        "grid-python-param-typo",
        "takes no parameter 'anwser'",
        args=["--grid", "normalize_label.anwser=x"],
        list_fails=False,
        also="did you mean normalize_label.answer",
    ),
    Case(
        "grid-value-not-a-number",
        "value 'hot' for parameter 'temperature' of node 'classify_llm' is not a number",
        args=["--grid", "classify_llm.temperature=hot"],
        list_fails=False,
    ),
    Case(
        "grid-value-not-whole",
        "value 1.5 for parameter 'max_tokens' of node 'classify_llm' is not a whole number",
        args=["--grid", "classify_llm.max_tokens=1.5"],
        list_fails=False,
    ),
    Case(
        "grid-value-out-of-range",
        "is out of range (must be between 0 and 2)",
        args=["--grid", "classify_llm.temperature=0,5"],
        list_fails=False,
    ),
    Case(
        "grid-value-repeated",
        "lists the value 0 twice",
        args=["--grid", "classify_llm.temperature=0,0"],
        list_fails=False,
    ),
    Case(
        "grid-unknown-node",
        "names no node of the flow",
        args=["--grid", "classify.temperature=0"],
        list_fails=False,
    ),
    # --- ranges of options
    Case("repeat-zero", "--repeat", args=["--repeat", "0"], list_fails=False),
    Case("repeat-huge", "between 1 and 100", args=["--repeat", "1000000000"], list_fails=False),
    Case("concurrency-zero", "--concurrency", args=["--concurrency", "0"], list_fails=False),
    Case("concurrency-huge", "between 1 and 256", args=["--concurrency", "100000"], list_fails=False),
    Case("limit-zero", "--limit", args=["--limit", "0"], list_fails=False),
    Case("limit-negative", "--limit", args=["--limit", "-3"], list_fails=False),
    Case("line-timeout-zero", "a line's timeout", args=["--line-timeout", "0"], list_fails=False),
    Case("line-timeout-negative", "a line's timeout", args=["--line-timeout", "-1"], list_fails=False),
    Case("line-timeout-nan", "finite", args=["--line-timeout", "nan"], list_fails=False),
    Case("line-timeout-inf", "finite", args=["--line-timeout", "inf"], list_fails=False),
    Case(
        "plan-too-large",
        "at most 10,000 are allowed",
        args=[
            "--grid",
            "classify_llm.temperature=" + ",".join(f"{i / 100:g}" for i in range(40)),
            "--repeat",
            "100",
        ],
        list_fails=False,
        also="narrow --variants",
    ),
    Case(
        "endpoint-not-url",
        "neither 'sandbox' nor an http(s) URL",
        args=["--llm-endpoint", "ftp://127.0.0.1/v1"],
        list_fails=False,
    ),
    Case(
        "endpoint-typo",
        "'sandboxx' is neither",
        args=["--llm-endpoint", "sandboxx"],
        list_fails=False,
    ),
]


@pytest.fixture(scope="module")
def base(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("base")
    shutil.copytree(REPO / "use_cases" / UC, root / "use_cases" / UC)
    return root


def _run(capsys, *args: str) -> tuple[int, str]:
    capsys.readouterr()
    rc = main(list(args))
    out = capsys.readouterr()
    text = out.out + out.err
    assert "Traceback" not in text, text
    return rc, re.sub(r"\s+", " ", text)  # undo any wrapping of long lines


def _runs_in_store(ws: Path) -> int:
    if not (ws / ".llmops" / "store.sqlite").is_file():
        return 0
    from llmops_tui.core.store import RunStore

    with RunStore.for_workspace(ws) as store:
        return len(store.list_runs(None))


@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
def test_refused_before_spending(case: Case, base: Path, tmp_path: Path, endpoint: str, capsys, monkeypatch):
    monkeypatch.setenv("COLUMNS", "400")
    ws = tmp_path / "ws"
    shutil.copytree(base, ws)
    if case.mutate:
        case.mutate(ws / "use_cases" / UC)
    w = ["--workspace", str(ws)]
    fragments = [f.lower() for f in (case.fragment, case.also) if f]

    rc, text = _run(capsys, "list", *w)
    if case.list_fails:
        assert rc == 2, text
        assert all(f in text.lower() for f in fragments), text
        rc, text = _run(capsys, "show", UC, *w)
        assert rc == 2 and case.fragment.lower() in text.lower(), text
    else:
        assert rc == 0, text

    rc, text = _run(capsys, "sweep", UC, *w, "--dry-run", *case.args)
    assert rc == 2, text
    assert all(f in text.lower() for f in fragments), text

    _Counter.calls = 0
    target = [] if "--llm-endpoint" in case.args else ["--llm-endpoint", endpoint]
    rc, text = _run(capsys, "sweep", UC, *w, "--limit", "2", *target, *case.args)
    assert rc == 2, text
    assert case.fragment.lower() in text.lower(), text
    assert _Counter.calls == 0, "the model endpoint was called"
    assert _runs_in_store(ws) == 0, "a run was recorded"


def test_unmodified_copy_plans_cleanly(base: Path, capsys):
    """The control for the table: the same commands on the untouched copy succeed."""
    rc, text = _run(capsys, "list", "--workspace", str(base))
    assert rc == 0 and "warning" not in text.lower(), text
    rc, text = _run(
        capsys,
        "sweep",
        UC,
        "--workspace",
        str(base),
        "--dry-run",
        "--grid",
        "classify_llm.temperature=0,0.7",
        "--grid",
        "classify_llm.max_tokens=32,64",
        "--repeat",
        "2",
        "--llm-endpoint",
        "http://127.0.0.1:9/v1",
    )
    assert rc == 0, text


def test_python_api_gets_the_same_checks(base: Path):
    from llmops_tui import api
    from llmops_tui.core.errors import LlmopsError

    ws = api.open_workspace(base)
    for options, fragment in (
        ({"repeat": 0}, "--repeat"),
        ({"concurrency": 10**6}, "--concurrency"),
        ({"limit": 0}, "--limit"),
        ({"line_timeout_s": float("nan")}, "finite"),
        ({"llm_endpoint": "localhost:8000"}, "http(s) URL"),
        ({"grid": {"classify_llm.temprature": [0.0, 0.7]}}, "did you mean classify_llm.temperature"),
        ({"grid": {"classify_llm.temperature": ["hot"]}}, "is not a number"),
    ):
        with pytest.raises(LlmopsError, match=re.escape(fragment)):
            api.plan(ws, UC, **options)
    assert api.plan(ws, UC, llm_endpoint="https://models.example.org/v1", repeat=3).repeat == 3


def test_python_node_grid_follows_the_tool_signature(tmp_path):
    """A Python node takes its @tool function's parameters, typed by their annotations; with **kwargs
    it takes any name (Prompt flow passes them through)."""
    from builders import make_use_case

    from llmops_tui.core.errors import LlmopsError
    from llmops_tui.core.sweep import SweepOptions, plan_sweep
    from llmops_tui.core.workspace import load_workspace

    uc_dir = make_use_case(tmp_path)
    script = uc_dir / "flows" / "standard" / "parse.py"
    script.write_text(
        "from promptflow.core import tool\n\n\n@tool\n"
        "def parse(answer: str, limit: int = 3, strict: bool = False) -> str:\n    return answer[:limit]\n"
    )
    uc = load_workspace(tmp_path).use_cases[0]
    assert uc.ok, [str(p) for p in uc.problems]
    assert len(plan_sweep(uc, SweepOptions(grid={"parse.limit": [2, 3], "parse.strict": [True]})).cells) == 4
    for grid, fragment in (
        ({"parse.limit": ["many"]}, "is not a whole number"),
        ({"parse.strict": ["yes"]}, "is not true or false"),
        ({"parse.limt": [2]}, "did you mean parse.limit"),
    ):
        with pytest.raises(LlmopsError, match=re.escape(fragment)):
            plan_sweep(uc, SweepOptions(grid=grid))
    script.write_text(script.read_text().replace("strict: bool = False)", "strict: bool = False, **extra)"))
    uc = load_workspace(tmp_path).use_cases[0]
    assert plan_sweep(uc, SweepOptions(grid={"parse.anything": [1, 2]})).grid == {"parse.anything": [1, 2]}


def test_a_package_missing_here_does_not_stop_a_cloud_sweep(base: Path, tmp_path: Path):
    """Azure ML builds the flow's environment from requirements.txt: only local runs need it here."""
    from llmops_tui.core.errors import LlmopsError
    from llmops_tui.core.sweep import SweepOptions, plan_sweep
    from llmops_tui.core.workspace import load_workspace

    ws = tmp_path / "ws"
    shutil.copytree(base, ws)
    _append("flows/standard/requirements.txt", "surely-not-installed-pkg-xyz\n")(ws / "use_cases" / UC)
    uc = load_workspace(ws).get(UC)
    with pytest.raises(LlmopsError, match="surely-not-installed-pkg-xyz"):
        plan_sweep(uc, SweepOptions())
    plan = plan_sweep(uc, SweepOptions(target="azureml"), allow_remote=True)
    assert plan.cells
    _dag("body: ${inputs.body}", "body: ${inputs.bodyy}")(ws / "use_cases" / UC)
    with pytest.raises(LlmopsError, match="bodyy"):  # a flow defect stops the cloud sweep too
        plan_sweep(load_workspace(ws).get(UC), SweepOptions(target="azureml"), allow_remote=True)
