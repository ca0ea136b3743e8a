"""Prompt flow's real LLM tool answers through the sandbox, over HTTP, with in-memory connections."""

from __future__ import annotations

import pytest

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def pf():
    from promptflow.client import load_flow
    from promptflow.entities import AzureOpenAIConnection, FlowContext, OpenAIConnection

    return load_flow, FlowContext, AzureOpenAIConnection, OpenAIConnection


def _close_to(answer: str, expected: int) -> bool:
    # The sandbox may degrade an answer by one (its prompt-quality error draw); it is never anything else.
    return answer.strip() in {str(expected - 1), str(expected), str(expected + 1)}


def test_llm_node_with_azure_connection(pf, sandbox, repo_root):
    load_flow, FlowContext, AzureOpenAIConnection, _ = pf
    flow = load_flow(str(repo_root / "tests" / "fixtures" / "sandbox_flow_azure"))
    connection = AzureOpenAIConnection(
        api_base=sandbox.url, api_key="azure-canary", api_type="azure", api_version="2024-02-01"
    )
    flow.context = FlowContext(connections={"answer": {"connection": connection}})
    before = sandbox.stats()["requests"]
    result = flow(question="what is 12 plus 7")
    assert _close_to(result["answer"], 19)
    assert sandbox.stats()["requests"] == before + 1
    assert flow(question="what is 12 plus 7") == result  # deterministic


def test_llm_node_with_openai_connection(pf, sandbox, repo_root):
    load_flow, FlowContext, _, OpenAIConnection = pf
    flow = load_flow(str(repo_root / "tests" / "fixtures" / "sandbox_flow_openai"))
    flow.context = FlowContext(
        connections={
            "answer": {"connection": OpenAIConnection(base_url=sandbox.url + "/v1", api_key="sk-canary")}
        }
    )
    assert _close_to(flow(question="what is 6 times 7")["answer"], 42)
