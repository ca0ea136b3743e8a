"""Small use cases written into tmp folders, for tests that mutate files (bad input, tampering, resume)."""

from __future__ import annotations

import json
import textwrap
from pathlib import Path

STANDARD_DAG = """\
inputs:
  ticket:
    type: string
outputs:
  category:
    type: string
    reference: ${parse.output}
nodes:
- name: classify
  use_variants: true
- name: parse
  type: python
  source:
    type: code
    path: parse.py
  inputs:
    answer: ${classify.output}
node_variants:
  classify:
    default_variant_id: variant_0
    variants:
      variant_0:
        node:
          type: llm
          source:
            type: code
            path: prompt_v0.jinja2
          inputs:
            deployment_name: gpt-35-turbo
            temperature: 0.0
            max_tokens: 20
            ticket: ${inputs.ticket}
          connection: aoai
          api: chat
          provider: AzureOpenAI
          module: promptflow.tools.aoai
      variant_1:
        node:
          type: llm
          source:
            type: code
            path: prompt_v1.jinja2
          inputs:
            deployment_name: gpt-35-turbo
            temperature: 0.0
            max_tokens: 20
            ticket: ${inputs.ticket}
          connection: aoai
          api: chat
          provider: AzureOpenAI
          module: promptflow.tools.aoai
"""

PROMPT_V0 = """\
# system:
Classify the support ticket. Categories: billing, technical, account, shipping, other

# user:
Ticket: {{ticket}}
"""

PROMPT_V1 = """\
# system:
Classify the support ticket carefully into one of the categories.
Categories:
- billing: invoices, refunds, charges, payment cards
- technical: errors, crashes, bugs, installs
- account: passwords, login, profile, email
- shipping: delivery, packages, tracking, courier
- other: anything else
Answer with "Category: <label>".
Example: "I was charged twice" -> Category: billing

# user:
Ticket: {{ticket}}
"""

PARSE_PY = """\
from promptflow.core import tool


@tool
def parse(answer: str) -> str:
    text = answer.strip()
    if text.lower().startswith("category:"):
        text = text.split(":", 1)[1]
    return text.strip().strip('"').lower()
"""

EVAL_DAG = """\
inputs:
  category:
    type: string
  label:
    type: string
outputs:
  correct:
    type: int
    reference: ${score.output}
nodes:
- name: score
  type: python
  source:
    type: code
    path: score.py
  inputs:
    category: ${inputs.category}
    label: ${inputs.label}
- name: aggregate
  type: python
  source:
    type: code
    path: aggregate.py
  inputs:
    scores: ${score.output}
  aggregation: true
"""

SCORE_PY = """\
from promptflow.core import tool


@tool
def score(category: str, label: str) -> int:
    return int(str(category).strip().lower() == str(label).strip().lower())
"""

AGGREGATE_PY = """\
from typing import List

from promptflow.core import log_metric, tool


@tool
def aggregate(scores: List[int]) -> dict:
    accuracy = round(sum(scores) / len(scores), 4) if scores else 0.0
    log_metric("accuracy", accuracy)
    return {"accuracy": accuracy}
"""

TICKETS = [
    ("I was charged twice for my subscription, please refund", "billing"),
    ("The app crashes with an error after the update", "technical"),
    ("I forgot my password and cannot login", "account"),
    ("My package has not arrived, the tracking shows nothing", "shipping"),
    ("Do you have a newsletter?", "other"),
    ("The invoice amount is wrong, the price changed", "billing"),
    ("Install fails with error code 5 on Windows", "technical"),
    ("My account is locked after three sign in attempts", "account"),
    ("Courier left the delivery at the wrong address", "shipping"),
    ("Payment card declined but money was taken", "billing"),
    ("The dashboard is very slow and shows a bug", "technical"),
    ("Please change the email on my profile", "account"),
]


def make_use_case(
    root: Path,
    name: str = "tickets",
    rows: int = 12,
    api_base: str = "https://YOUR-RESOURCE.openai.azure.com/",
) -> Path:
    """A small experiment.yaml use case under ``root/use_cases/name``; returns its folder."""
    uc = root / "use_cases" / name
    flow = uc / "flows" / "standard"
    ev = uc / "flows" / "evaluation"
    data = uc / "data"
    for d in (flow, ev, data):
        d.mkdir(parents=True, exist_ok=True)
    (flow / "flow.dag.yaml").write_text(STANDARD_DAG)
    (flow / "prompt_v0.jinja2").write_text(PROMPT_V0)
    (flow / "prompt_v1.jinja2").write_text(PROMPT_V1)
    (flow / "parse.py").write_text(PARSE_PY)
    (ev / "flow.dag.yaml").write_text(EVAL_DAG)
    (ev / "score.py").write_text(SCORE_PY)
    (ev / "aggregate.py").write_text(AGGREGATE_PY)
    lines = []
    for i in range(rows):
        text, label = TICKETS[i % len(TICKETS)]
        lines.append(json.dumps({"ticket": f"{text} (#{i})", "label": label}))
    (data / "tickets.jsonl").write_text("\n".join(lines) + "\n")
    (uc / "experiment.yaml").write_text(
        textwrap.dedent(
            f"""\
            name: {name}
            flow: flows/standard
            connections:
            - name: aoai
              connection_type: AzureOpenAIConnection
              api_base: {api_base}
              api_version: "2024-02-01"
              api_key: ${{api_key}}
              api_type: azure
            datasets:
            - name: tickets_train
              source: data/tickets.jsonl
              description: tickets
              mappings:
                ticket: ${{data.ticket}}
            evaluators:
            - name: label_match
              flow: flows/evaluation
              datasets:
              - name: tickets_eval
                reference: tickets_train
                source: data/tickets.jsonl
                mappings:
                  category: ${{run.outputs.category}}
                  label: ${{data.label}}
            """
        )
    )
    (uc / "llmops.yaml").write_text(
        textwrap.dedent(
            """\
            gates:
              - "label_match.accuracy >= 0.5"
              - "error_rate <= 0.05"
            prices:
              gpt-35-turbo: {prompt: 0.0005, completion: 0.0015}
            """
        )
    )
    (uc / "sample-request.json").write_text(json.dumps({"ticket": "I was charged twice"}))
    return uc


# ------------------------------------------------------------------ the same use case with flex flows

FLEX_STANDARD_YAML = """\
$schema: https://azuremlschemas.azureedge.net/promptflow/latest/Flow.schema.json
entry: classify:Classifier
"""

FLEX_INIT_JSON = {
    "model_config": {"connection": "aoai", "azure_deployment": "gpt-35-turbo"},
    "max_tokens": 20,
}

FLEX_PROMPTY = """\
---
name: Classify a ticket
model:
  api: chat
  configuration:
    type: azure_openai
    azure_deployment: gpt-35-turbo
  parameters:
    temperature: 0.0
    max_tokens: 20
inputs:
  ticket:
    type: string
---
system:
Classify the support ticket. Categories: billing, technical, account, shipping, other

user:
Ticket: {{ticket}}
"""

FLEX_CLASSIFY_PY = """\
from pathlib import Path

from typing import TypedDict

from parse import parse
from promptflow.core import AzureOpenAIModelConfiguration, Prompty

HERE = Path(__file__).absolute().parent


class Result(TypedDict):
    category: str


class Classifier:
    def __init__(self, model_config: AzureOpenAIModelConfiguration, max_tokens: int = 20):
        self.prompty = Prompty.load(
            source=HERE / "classify.prompty",
            model={"configuration": model_config, "parameters": {"max_tokens": max_tokens}},
        )

    def __call__(self, ticket: str) -> Result:
        return {"category": parse(self.prompty(ticket=ticket))}
"""

FLEX_EVAL_YAML = """\
$schema: https://azuremlschemas.azureedge.net/promptflow/latest/Flow.schema.json
entry: score:LabelMatch
"""

FLEX_SCORE_PY = """\
from typing import List, TypedDict


class Score(TypedDict):
    correct: int


class LabelMatch:
    def __init__(self):  # Prompt flow's signature inference needs an explicit __init__
        pass

    def __call__(self, category: str, label: str) -> Score:
        return {"correct": int(str(category).strip().lower() == str(label).strip().lower())}

    def __aggregate__(self, line_results: List[dict]) -> dict:
        scores = [r["correct"] for r in line_results]
        return {"accuracy": round(sum(scores) / len(scores), 4) if scores else 0.0}
"""


def make_flex_use_case(root: Path, name: str = "tickets", rows: int = 12) -> Path:
    """:func:`make_use_case` with its two flows written as flex flows (a class entry built from
    init.json with a model configuration and a .prompty; a flex evaluator with ``__aggregate__``)."""
    uc = make_use_case(root, name=name, rows=rows)
    flow, ev = uc / "flows" / "standard", uc / "flows" / "evaluation"
    for d in (flow, ev):
        for f in d.iterdir():
            f.unlink()
    (flow / "flow.flex.yaml").write_text(FLEX_STANDARD_YAML)
    (flow / "init.json").write_text(json.dumps(FLEX_INIT_JSON, indent=2))
    (flow / "classify.prompty").write_text(FLEX_PROMPTY)
    (flow / "classify.py").write_text(FLEX_CLASSIFY_PY)
    (flow / "parse.py").write_text(PARSE_PY)
    (ev / "flow.flex.yaml").write_text(FLEX_EVAL_YAML)
    (ev / "score.py").write_text(FLEX_SCORE_PY)
    return uc
