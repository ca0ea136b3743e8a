"""The Agent Framework backend shares idle workflows between flows of one shape (the variants and grid
cells of a flow): lines of two variants run interleaved on several threads still get each variant's own
prompt and literals, and a flow of another shape never gets their workflows."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
from test_agent_framework import _line

from llmops_tui.core.backends import BackendOptions, open_backend, prepare_process
from llmops_tui.core.backends.agent_framework import available

pytestmark = pytest.mark.skipif(available() is not None, reason=f"agent_framework: {available()}")

FLOW = """\
inputs:
  x: {type: string}
outputs:
  text: {type: string, reference: "${tag.output}"}
nodes:
- name: render
  type: prompt
  source: {type: code, path: prompt.jinja2}
  inputs: {x: "${inputs.x}"}
- name: tag
  type: python
  source: {type: code, path: tag.py}
  inputs: {text: "${render.output}", label: LABEL}
"""
EXTRA_NODE = """\
- name: again
  type: python
  source: {type: code, path: tag.py}
  inputs: {text: "${inputs.x}", label: again}
"""
TAG = "from promptflow.core import tool\n\n\n@tool\ndef tag(text: str, label: str) -> str:\n    return f'{label}|{text}'\n"


def _flow(root: Path, name: str, prompt: str, label: str, extra: str = "") -> Path:
    flow = root / name
    flow.mkdir()
    (flow / "flow.dag.yaml").write_text(FLOW.replace("LABEL", label) + extra)
    (flow / "prompt.jinja2").write_text(prompt)
    (flow / "tag.py").write_text(TAG)
    return flow


def _run(backend, inputs, index):
    return _line(backend, inputs, index, "shared")


def test_variants_of_one_shape_share_workflows_and_keep_their_own_outputs(tmp_path, monkeypatch):
    from llmops_tui.core.backends import agent_framework as af

    monkeypatch.setattr(af, "_idle", {})
    built = []
    build = af.AgentFrameworkBackend._workflow
    monkeypatch.setattr(af.AgentFrameworkBackend, "_workflow", lambda self: built.append(self) or build(self))
    prepare_process(tmp_path / ".llmops")
    options = BackendOptions(connections={}, line_timeout_s=30, backend="agent-framework")
    a = open_backend(_flow(tmp_path, "a", "A says {{ x }}", "a"), options)
    b = open_backend(_flow(tmp_path, "b", "B says {{ x }}!", "b"), options)
    other = open_backend(_flow(tmp_path, "c", "C says {{ x }}", "c", EXTRA_NODE), options)
    assert a._idle is b._idle and other._idle is not a._idle

    jobs = [(backend, i) for i in range(30) for backend in (a, b, other)]
    with ThreadPoolExecutor(4) as pool:
        outcomes = list(pool.map(lambda job: _run(job[0], {"x": str(job[1])}, job[1]), jobs))

    want = {a: "a|A says {}", b: "b|B says {}!", other: "c|C says {}"}
    for (backend, i), outcome in zip(jobs, outcomes, strict=True):
        assert outcome.ok, outcome.error
        assert outcome.outputs == {"text": want[backend].format(i)}
    # a and b built at most one workflow per line running at once (4 threads), not one each per thread
    assert len([x for x in built if x is not other]) <= 4
