"""The executor seam's conformance suite: every backend behind ``core.backends`` must pass it.

It checks the contract written in ``llmops_tui/core/backends/base.py`` against real flows and the real
sandbox over HTTP: outputs are the flow's declared outputs, a failing line is an outcome and not an
exception, a flow that cannot load is one line naming the file, what the code printed is captured per
line, lines run safely from many threads, a cancelled line sends no request, and aggregation metrics
equal Prompt flow's own ``pf.run`` + ``pf.get_metrics`` for the same lines (the reference engine).

A new backend adds its name to ``BACKENDS`` and a way to write the same test flows in its own format.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
import threading
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
from builders import make_flex_use_case, make_use_case

from llmops_tui.core import llmhooks
from llmops_tui.core.backends import (
    BackendOptions,
    ConnectionSpec,
    FlowLoadError,
    backend_for,
    open_backend,
    prepare_process,
)

pytestmark = pytest.mark.integration


@pytest.fixture(autouse=True)
def _environment_restored():
    """The flex backend sets the usual OpenAI variables for flows that build their own client: keep them
    from leaking into other tests of this process."""
    saved = dict(os.environ)
    yield
    os.environ.clear()
    os.environ.update(saved)


def _agent_framework_missing() -> str | None:
    from llmops_tui.core.backends.agent_framework import available

    return available()


BACKENDS = [
    "promptflow-dag",
    "flex",
    pytest.param(
        "agent-framework",
        marks=pytest.mark.skipif(
            _agent_framework_missing() is not None,
            reason=f"agent_framework is not importable: {_agent_framework_missing()}",
        ),
    ),
]
# the Agent Framework backend runs the same DAG flows as Prompt flow's executor
BUILDERS = {"promptflow-dag": make_use_case, "flex": make_flex_use_case, "agent-framework": make_use_case}


@pytest.fixture(params=BACKENDS)
def backend_name(request):
    return request.param


def _options(sandbox, tmp_path: Path, backend_name: str | None = None) -> BackendOptions:
    conn = ConnectionSpec("aoai", "AzureOpenAIConnection", sandbox.url, "sandbox-no-key", "2024-02-01")
    return BackendOptions(
        connections={"aoai": conn},
        line_timeout_s=30,
        workspace=tmp_path,
        backend=backend_name if backend_name == "agent-framework" else None,
    )


def _flows(tmp_path: Path, backend_name: str) -> tuple[Path, Path]:
    uc = BUILDERS[backend_name](tmp_path, rows=12)
    standard, evaluation = uc / "flows" / "standard", uc / "flows" / "evaluation"
    preferred = backend_name if backend_name == "agent-framework" else None
    assert backend_for(standard, preferred) == backend_name
    return standard, evaluation


def _line(backend, inputs, index=0):
    ctx = llmhooks.LineContext(
        policy=llmhooks.RetryPolicy(max_retries=2, request_timeout_s=10),
        cancel=threading.Event(),
        limiter_for=lambda url: llmhooks.RateLimiter(),
    )
    token = llmhooks.current_line.set(ctx)
    try:
        return backend.run_line(inputs, index, "conformance")
    finally:
        llmhooks.current_line.reset(token)


@pytest.fixture(autouse=True)
def _prepared(tmp_path):
    prepare_process(tmp_path / ".llmops")
    llmhooks.install()


def test_outputs_are_the_declared_outputs(tmp_path, sandbox, backend_name):
    standard, _ = _flows(tmp_path, backend_name)
    backend = open_backend(standard, _options(sandbox, tmp_path, backend_name))
    try:
        out = _line(backend, {"ticket": "I was charged twice for my subscription"})
    finally:
        backend.close()
    assert out.ok and out.error is None
    assert set(out.outputs) == {"category"} and isinstance(out.outputs["category"], str)


def test_a_failing_line_is_an_outcome_not_an_exception(tmp_path, sandbox, backend_name):
    standard, _ = _flows(tmp_path, backend_name)
    (standard / "parse.py").write_text(
        "from promptflow.core import tool\n\n\n@tool\ndef parse(answer: str) -> str:\n"
        "    raise ValueError('no parse\\nfor you')\n"
    )
    backend = open_backend(standard, _options(sandbox, tmp_path, backend_name))
    out = _line(backend, {"ticket": "x"})
    assert not out.ok and out.outputs is None
    assert "no parse for you" in out.error and "\n" not in out.error


def test_a_flow_that_cannot_load_is_one_line_naming_the_file(tmp_path, sandbox, backend_name):
    standard, _ = _flows(tmp_path, backend_name)
    (standard / "parse.py").write_text("import no_such_module_for_conformance\n")
    with pytest.raises(FlowLoadError) as info:
        open_backend(standard, _options(sandbox, tmp_path, backend_name))
    text = str(info.value)
    assert "\n" not in text and "no_such_module_for_conformance" in text
    assert text.startswith("use_cases/tickets/flows/standard/")


def test_printed_output_is_captured_per_line(tmp_path, sandbox, backend_name):
    standard, _ = _flows(tmp_path, backend_name)
    (standard / "parse.py").write_text(
        "import sys\nfrom promptflow.core import tool\n\n\n@tool\ndef parse(answer: str) -> str:\n"
        "    print('parsed', answer[:5])\n    print('careful', file=sys.stderr)\n    return answer\n"
    )
    backend = open_backend(standard, _options(sandbox, tmp_path, backend_name))
    out = _line(backend, {"ticket": "hello"})
    assert out.ok
    assert "parsed" in out.logs["stdout"] and "careful" in out.logs["stderr"]


def test_a_line_records_its_spans_and_a_failing_one_its_error(tmp_path, sandbox, backend_name):
    """Optional in the contract, recorded by both backends: a DAG line's nodes; a flex line's entry, its
    traced functions and its model calls. Plain JSON, in start order, secrets left out."""
    standard, _ = _flows(tmp_path, backend_name)
    backend = open_backend(standard, _options(sandbox, tmp_path, backend_name))
    out = _line(backend, {"ticket": "sandbox-no-key charged twice"})
    assert out.ok and out.traces
    assert json.loads(json.dumps(out.traces)) == out.traces and "sandbox-no-key" not in json.dumps(out.traces)
    assert out.traces[0]["depth"] == 0 and all(s["duration_ms"] >= 0 for s in out.traces)
    assert [s["start_ms"] for s in out.traces if s["depth"] == 0] == sorted(
        s["start_ms"] for s in out.traces if s["depth"] == 0
    )
    kinds = {s["kind"] for s in out.traces}
    assert (kinds == {"node"}) if backend_name != "flex" else ({"entry", "llm"} <= kinds)
    if backend_name != "flex":
        assert [s["name"] for s in out.traces] == ["classify", "parse"]

    (standard / "parse.py").write_text(
        "from promptflow.core import tool\n\n\n@tool\ndef parse(answer: str) -> str:\n"
        "    raise ValueError('no parse')\n"
    )
    failing = open_backend(standard, _options(sandbox, tmp_path, backend_name))
    out = _line(failing, {"ticket": "x"})
    assert not out.ok and any("no parse" in (s["error"] or "") for s in out.traces)


def test_lines_from_many_threads_match_lines_run_one_by_one(tmp_path, sandbox, backend_name):
    standard, _ = _flows(tmp_path, backend_name)
    backend = open_backend(standard, _options(sandbox, tmp_path, backend_name))
    rows = [{"ticket": f"ticket number {i} about my invoice"} for i in range(24)]
    one_by_one = [_line(backend, r, i).outputs for i, r in enumerate(rows)]
    with ThreadPoolExecutor(8) as pool:
        parallel = list(pool.map(lambda ir: _line(backend, ir[1], ir[0]).outputs, enumerate(rows)))
    assert parallel == one_by_one


def test_a_cancelled_line_sends_no_request(tmp_path, sandbox, backend_name):
    standard, _ = _flows(tmp_path, backend_name)
    backend = open_backend(standard, _options(sandbox, tmp_path, backend_name))
    cancel = threading.Event()
    cancel.set()
    ctx = llmhooks.LineContext(
        policy=llmhooks.RetryPolicy(max_retries=2, request_timeout_s=10),
        cancel=cancel,
        limiter_for=lambda url: llmhooks.RateLimiter(),
    )
    before = sandbox.stats()["requests"]
    token = llmhooks.current_line.set(ctx)
    try:
        out = backend.run_line({"ticket": "x"}, 0, "cancelled")
    finally:
        llmhooks.current_line.reset(token)
    assert not out.ok
    assert sandbox.stats()["requests"] == before


def test_aggregation_metrics_equal_pf_run(tmp_path, sandbox, backend_name):
    """The reference: Prompt flow's own batch run and metrics over the same evaluation inputs."""
    _, evaluation = _flows(tmp_path, backend_name)
    rows = [
        {"category": c, "label": label}
        for c, label in [("billing", "billing"), ("technical", "account"), ("shipping", "shipping")] * 4
    ]
    backend = open_backend(evaluation, _options(sandbox, tmp_path, backend_name))
    outcomes = [_line(backend, r, i) for i, r in enumerate(rows)]
    assert all(o.ok for o in outcomes) and backend.has_aggregation
    ours = backend.run_aggregation(rows, outcomes)
    data = tmp_path / "eval_input.jsonl"
    data.write_text("\n".join(json.dumps(r) for r in rows))
    script = tmp_path / "pf_run.py"
    script.write_text(
        textwrap.dedent(f"""
        import json
        from promptflow.client import PFClient
        if __name__ == "__main__":
            pf = PFClient()
            run = pf.run(flow={str(evaluation)!r}, data={str(data)!r},
                         column_mapping={{"category": "${{data.category}}", "label": "${{data.label}}"}})
            print("METRICS=" + json.dumps(pf.get_metrics(run)))
    """)
    )
    proc = subprocess.run(
        [sys.executable, str(script)], capture_output=True, text=True, timeout=240, cwd=tmp_path
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    reference = json.loads(proc.stdout.split("METRICS=")[1].strip().splitlines()[0])
    assert ours == reference == {"accuracy": round(8 / 12, 4)}


def test_flex_line_outputs_equal_pf_run(tmp_path, sandbox):
    """A class flex flow (init with a model configuration) and a function flex flow (its own client from
    the environment): our outputs line by line equal ``pf.run``'s against the same sandbox."""
    uc = make_flex_use_case(tmp_path, rows=6)
    standard = uc / "flows" / "standard"
    function = uc / "flows" / "function"
    function.mkdir()
    (function / "flow.flex.yaml").write_text("entry: ask:classify\n")
    (function / "ask.py").write_text(
        textwrap.dedent("""\
        import os

        from openai import AzureOpenAI


        def classify(ticket: str) -> str:
            client = AzureOpenAI(
                azure_endpoint=os.environ["AZURE_OPENAI_ENDPOINT"],
                api_key=os.environ["AZURE_OPENAI_API_KEY"],
                api_version=os.environ["OPENAI_API_VERSION"],
            )
            answer = client.chat.completions.create(
                model="gpt-35-turbo",
                messages=[{"role": "user", "content": "Classify the support ticket.\\nTicket: " + ticket}],
                temperature=0.0,
                max_tokens=20,
            )
            return answer.choices[0].message.content
        """)
    )
    rows = [json.loads(x) for x in (uc / "data" / "tickets.jsonl").read_text().splitlines()]
    ours = {}
    for name, folder in (("class", standard), ("function", function)):
        backend = open_backend(folder, _options(sandbox, tmp_path))
        outcomes = [_line(backend, {"ticket": r["ticket"]}, i) for i, r in enumerate(rows)]
        assert all(o.ok for o in outcomes), [o.error for o in outcomes]
        ours[name] = [o.outputs for o in outcomes]
    script = tmp_path / "pf_run_flex.py"
    script.write_text(
        textwrap.dedent(f"""
        import json
        from promptflow.client import PFClient
        from promptflow.core import AzureOpenAIModelConfiguration
        if __name__ == "__main__":
            pf = PFClient()
            data = {str(uc / "data" / "tickets.jsonl")!r}
            mapping = {{"ticket": "${{data.ticket}}"}}
            config = AzureOpenAIModelConfiguration(
                azure_endpoint={sandbox.url!r}, api_key="sandbox-no-key", api_version="2024-02-01",
                azure_deployment="gpt-35-turbo")
            out = {{}}
            for name, flow, kwargs in (
                ("class", {str(standard)!r}, {{"init": {{"model_config": config, "max_tokens": 20}}}}),
                ("function", {str(function)!r}, {{"environment_variables": {{
                    "AZURE_OPENAI_ENDPOINT": {sandbox.url!r}, "AZURE_OPENAI_API_KEY": "sandbox-no-key",
                    "OPENAI_API_VERSION": "2024-02-01"}}}}),
            ):
                run = pf.run(flow=flow, data=data, column_mapping=mapping, **kwargs)
                details = pf.get_details(run)
                cols = [c for c in details.columns if c.startswith("outputs.")]
                out[name] = [{{c[len("outputs."):]: row[c] for c in cols}} for _, row in details.iterrows()]
            print("OUTPUTS=" + json.dumps(out))
    """)
    )
    proc = subprocess.run(
        [sys.executable, str(script)], capture_output=True, text=True, timeout=300, cwd=tmp_path
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    reference = json.loads(proc.stdout.split("OUTPUTS=")[1].strip().splitlines()[0])
    assert reference["class"] == ours["class"]
    assert reference["function"] == ours["function"]
