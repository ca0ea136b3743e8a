"""Per-line work done once (issue 13, CPU): each cache must give exactly what the uncached path gives.

- the request body without openai's per-call type walk (llmhooks), against openai's own transform;
- the compiled Jinja prompt per template (the DAG backend), against Prompt flow's own renderer, errors too;
- a node function's signature per function (the DAG backend), against ``inspect.signature``.
"""

from __future__ import annotations

import datetime
import inspect
from pathlib import Path
from typing import Annotated, Required

import pytest
from openai._types import NOT_GIVEN, omit
from openai._utils._transform import PropertyInfo, transform
from openai.types import completion_create_params, embedding_create_params
from openai.types.chat import completion_create_params as chat_params
from typing_extensions import TypedDict

from llmops_tui.core import llmhooks

CHAT = chat_params.CompletionCreateParamsNonStreaming


class _Aliased(TypedDict, total=False):
    card_id: Required[Annotated[str, PropertyInfo(alias="cardID")]]
    when: Annotated[datetime.date, PropertyInfo(format="iso8601")]


def _chat_body(**extra: object) -> dict[str, object]:
    return {
        "messages": [
            {"role": "system", "content": "Classify.\nCategories: a, b"},
            {"role": "user", "content": [{"type": "text", "text": "Ticket: x (#1)"}]},
        ],
        "model": "gpt-35-turbo",
        "temperature": 0.0,
        "max_tokens": 20,
        "seed": 3,
        "stop": None,
        "top_p": NOT_GIVEN,
        "tools": omit,
        "logit_bias": {"50256": -100},
        "user": "",
        **extra,
    }


@pytest.mark.parametrize(
    "body, expected",
    [
        (_chat_body(), CHAT),
        (_chat_body(stream=False, response_format={"type": "json_object"}), CHAT),
        (
            {"model": "m", "prompt": "Say x", "max_tokens": 5, "echo": NOT_GIVEN},
            completion_create_params.CompletionCreateParamsNonStreaming,
        ),
        (
            {"model": "m", "input": ["a", "b"], "dimensions": NOT_GIVEN},
            embedding_create_params.EmbeddingCreateParams,
        ),
    ],
)
def test_the_fast_body_equals_openais_transform(body: dict[str, object], expected: object):
    fast = llmhooks._fast_transform(transform)
    assert llmhooks._alias_free(expected)
    assert fast(body, expected) == transform(body, expected)
    assert "top_p" not in fast(body, expected)  # parameters not given are dropped, as openai does


def test_what_is_not_plain_json_goes_through_openai():
    calls: list[object] = []

    def original(data: object, expected: object) -> object:
        calls.append(data)
        return transform(data, expected)

    fast = llmhooks._fast_transform(original)
    fast(_chat_body(stop=("a", "b")), CHAT)  # a tuple: openai turns it into a list
    fast({"card_id": "c", "when": datetime.date(2026, 1, 2)}, _Aliased)  # an aliased type
    fast(None, CHAT)
    assert len(calls) == 3
    assert fast({"card_id": "c"}, _Aliased) == {"cardID": "c"}
    assert not llmhooks._alias_free(_Aliased)


def test_install_puts_the_fast_body_in_openais_create_modules():
    from openai.resources import completions, embeddings
    from openai.resources.chat.completions import completions as chat_completions

    llmhooks.install()
    for module in (chat_completions, completions, embeddings):
        assert getattr(module.maybe_transform, "_llmops", False)


# ---------------------------------------------------------------------------------- the DAG backend


def test_the_cached_jinja_renderer_renders_and_fails_as_prompt_flows():
    from promptflow.tools import common
    from promptflow.tools.exception import JinjaTemplateError

    from llmops_tui.core.backends.promptflow_dag import _TEMPLATES, _cached_renderer

    original = getattr(common.render_jinja_template, "__wrapped__", None) or common.render_jinja_template
    cached = _cached_renderer(original)
    template = "# system:\nClassify.\n{% if x %}\n{{ x }}\n{% endif %}\n# user:\nTicket: {{ticket}}\n"
    for values in ({"x": "hint", "ticket": "t1"}, {"x": "", "ticket": "t2"}, {"ticket": "t3"}):
        assert cached(template, trim_blocks=True, keep_trailing_newline=True, **values) == original(
            template, trim_blocks=True, keep_trailing_newline=True, **values
        )
        assert cached(template, trim_blocks=False, keep_trailing_newline=False, **values) == original(
            template, trim_blocks=False, keep_trailing_newline=False, **values
        )
    assert any(key[0] == template for key in _TEMPLATES)
    with pytest.raises(JinjaTemplateError) as ours:
        cached("{{ ticket.missing() }}", ticket="t")
    with pytest.raises(JinjaTemplateError) as theirs:
        original("{{ ticket.missing() }}", ticket="t")
    assert str(ours.value) == str(theirs.value)
    with pytest.raises(JinjaTemplateError):
        cached("{% if %}")  # does not even compile


def test_the_cached_signature_is_inspects():
    import functools

    from llmops_tui.core.backends.promptflow_dag import _CachedSignatures

    def tool(answer: str, hint: str = "x") -> str:
        return answer

    shim = _CachedSignatures()
    bound = functools.partial(tool, hint="y")
    for f in (tool, bound, tool, bound, print):  # print: a builtin with no signature for some versions
        try:
            expected = inspect.signature(f)
        except ValueError:
            with pytest.raises(ValueError):
                shim.signature(f)
            continue
        assert shim.signature(f) == expected
    assert shim.Parameter.empty is inspect.Parameter.empty


def test_prompt_flows_sdk_is_not_imported_to_run_a_flow_yet_stays_reachable(tmp_path):
    """In a fresh process: opening and running a DAG flow with an LLM node imports neither Prompt flow's
    SDK nor the Azure Monitor exporter; legacy ``from promptflow import tool`` and ``PFClient`` still work."""
    import subprocess
    import sys
    import textwrap

    code = textwrap.dedent(
        f"""
        import sys
        from pathlib import Path
        from llmops_tui.core.backends import BackendOptions, ConnectionSpec, open_backend, prepare_process
        sys.path.insert(0, {str(Path(__file__).parent.parent / "benchmarks")!r})
        import peer_promptfoo as bench
        ws = Path({str(tmp_path)!r})
        bench.write_use_case(ws, 2)
        prepare_process(ws / ".llmops")
        conns = {{"aoai": ConnectionSpec("aoai", "AzureOpenAIConnection", "http://127.0.0.1:9", "k", "2024-02-01")}}
        options = BackendOptions(connections=conns, line_timeout_s=5)
        flow = open_backend(ws / "use_cases/tickets/flows/standard", options)
        out = flow.run_line({{"ticket": "x"}}, 0, "t")  # nothing listens on port 9: the line fails
        assert not out.ok and out.error
        heavy = sorted(m for m in ("promptflow._sdk", "azure.monitor", "flask", "sqlalchemy") if m in sys.modules)
        print("HEAVY", heavy)
        from promptflow import tool
        from promptflow.client import PFClient
        print("LEGACY", tool.__name__, PFClient.__name__)
        """
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    assert "HEAVY []" in done.stdout
    assert "LEGACY tool PFClient" in done.stdout
