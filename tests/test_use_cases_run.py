"""The bundled use cases run offline against the sandbox model, and their variants score differently.

For each use case in ``use_cases/``: every flow loads with Prompt flow, every referenced prompt file
exists, and every variant of the standard flow runs in-process on the first rows of the experiment
dataset; the evaluation flow's per-line and aggregation functions then score those outputs.
Prompt flow's environment (private home, offline) is set up by ``tests/conftest.py``.
"""

from __future__ import annotations

import importlib.util
import json
import re
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
import yaml

REPO = Path(__file__).resolve().parent.parent
USE_CASES = REPO / "use_cases"
FIXTURE_REPO = Path(__file__).resolve().parent / "fixtures" / "template_repo"
ROWS = 12  # per variant; the whole module stays well under the 40 s budget

NAMES = sorted(p.name for p in USE_CASES.iterdir() if (p / "experiment.yaml").is_file())
EXPECTED_OUTPUTS = {
    "named_entity_recognition": ({"entities"}, {"exact_match", "precision", "recall", "f1"}),
    "support_ticket_classification": ({"category"}, {"correct", "predicted", "expected"}),
    "document_qa": ({"answer", "context"}, {"f1", "exact_match", "contains"}),
}
EXPECTED_METRICS = {
    "named_entity_recognition": {"exact_match", "precision", "recall", "f1"},
    "support_ticket_classification": {"accuracy", "precision", "recall", "f1"},
    "document_qa": {"f1", "exact_match", "exact_or_contained"},
}


def _yaml(path: Path) -> dict:
    return yaml.safe_load(path.read_text(encoding="utf-8"))


def _jsonl(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]


def _column(expression: str, prefix: str) -> str:
    match = re.fullmatch(r"\$\{" + re.escape(prefix) + r"\.([A-Za-z0-9_]+)\}", expression.strip())
    assert match, f"unexpected mapping {expression!r}"
    return match.group(1)


def _all_flow_dirs() -> list[Path]:
    roots = [USE_CASES, FIXTURE_REPO]
    return sorted({p.parent for root in roots if root.is_dir() for p in root.rglob("flow.dag.yaml")})


def _tool_function(path: Path, name: str):
    """The plain function behind a ``@tool`` in a flow's python file (loaded without running a flow)."""
    spec = importlib.util.spec_from_file_location(f"_uc_{path.parent.parent.parent.name}_{path.stem}", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    func = getattr(module, name)
    return getattr(func, "__wrapped__", func)


@pytest.mark.parametrize("flow_dir", _all_flow_dirs(), ids=lambda p: str(p.relative_to(REPO)))
def test_flow_loads_and_references_exist(flow_dir: Path) -> None:
    from promptflow.client import load_flow

    dag = _yaml(flow_dir / "flow.dag.yaml")
    nodes = list(dag.get("nodes", []))
    for variants in (dag.get("node_variants") or {}).values():
        assert variants["default_variant_id"] in variants["variants"]
        nodes += [v["node"] for v in variants["variants"].values()]
    for node in nodes:
        source = node.get("source")
        if source:
            assert (flow_dir / source["path"]).is_file(), f"{flow_dir}: missing {source['path']}"
    assert load_flow(str(flow_dir)) is not None


@pytest.fixture(scope="module")
def scored(sandbox) -> dict[str, dict[str, dict]]:
    """use case -> variant -> {"outputs", "lines", "metrics"} for the first ROWS rows."""
    from promptflow.client import load_flow
    from promptflow.entities import AzureOpenAIConnection, FlowContext

    results: dict[str, dict[str, dict]] = {}
    for name in NAMES:
        folder = USE_CASES / name
        experiment = _yaml(folder / "experiment.yaml")
        dataset = experiment["datasets"][0]
        evaluator = experiment["evaluators"][0]
        eval_dataset = next(d for d in evaluator["datasets"] if d["reference"] == dataset["name"])
        rows = _jsonl(folder / dataset["source"])[:ROWS]
        eval_rows = _jsonl(folder / eval_dataset["source"])[:ROWS]
        flow_dir = folder / experiment["flow"]
        dag = _yaml(flow_dir / "flow.dag.yaml")
        eval_dir = folder / evaluator["flow"]
        eval_dag = _yaml(eval_dir / "flow.dag.yaml")
        line_node = next(n for n in eval_dag["nodes"] if not n.get("aggregation"))
        agg_node = next(n for n in eval_dag["nodes"] if n.get("aggregation"))
        score_line = _tool_function(eval_dir / line_node["source"]["path"], line_node["name"])
        aggregate = _tool_function(eval_dir / agg_node["source"]["path"], agg_node["name"])
        (agg_input,) = agg_node["inputs"]

        results[name] = {}
        for node, spec in dag["node_variants"].items():
            for variant in spec["variants"]:
                flow = load_flow(str(flow_dir))
                connection = AzureOpenAIConnection(
                    api_base=sandbox.url, api_key="sk-test", api_type="azure", api_version="2024-02-01"
                )
                flow.context = FlowContext(
                    variant=f"${{{node}.{variant}}}", connections={node: {"connection": connection}}
                )

                def run(row: dict, flow=flow, mappings=dataset["mappings"]) -> dict:
                    inputs = {k: row[_column(v, "data")] for k, v in mappings.items()}
                    return flow(**inputs)

                with ThreadPoolExecutor(max_workers=8) as pool:
                    outputs = list(pool.map(run, rows))
                lines = []
                for output, eval_row in zip(outputs, eval_rows, strict=True):
                    kwargs = {
                        k: output[_column(v, "run.outputs")]
                        if v.startswith("${run.")
                        else eval_row[_column(v, "data")]
                        for k, v in eval_dataset["mappings"].items()
                    }
                    lines.append(score_line(**kwargs))
                metrics = aggregate(**{agg_input: lines})
                results[name][f"{node}.{variant}"] = {"outputs": outputs, "lines": lines, "metrics": metrics}
    return results


@pytest.mark.parametrize("name", NAMES)
def test_every_variant_runs_and_scores(scored, name: str) -> None:
    flow_keys, line_keys = EXPECTED_OUTPUTS[name]
    variants = scored[name]
    assert len(variants) >= 2
    for result in variants.values():
        assert len(result["outputs"]) == ROWS
        for output in result["outputs"]:
            assert flow_keys <= set(output), output
        for line in result["lines"]:
            assert line_keys <= set(line), line
        metrics = result["metrics"]
        assert EXPECTED_METRICS[name] <= set(metrics)
        assert all(0.0 <= float(v) <= 1.0 for v in metrics.values()), metrics


def test_outputs_have_the_right_shape(scored) -> None:
    for result in scored["named_entity_recognition"].values():
        assert all(isinstance(o["entities"], list) for o in result["outputs"])
    labels = {"billing", "technical", "account", "shipping", "other"}
    for result in scored["support_ticket_classification"].values():
        assert {o["category"] for o in result["outputs"]} <= labels
    for result in scored["document_qa"].values():
        assert all(isinstance(o["answer"], str) and o["answer"] for o in result["outputs"])
        assert all(len(o["context"]) == 2 for o in result["outputs"])  # top_k 2


def test_variants_differ_in_some_metric(scored) -> None:
    differing = [
        name
        for name, variants in scored.items()
        for metric in EXPECTED_METRICS[name]
        if len({round(float(r["metrics"][metric]), 4) for r in variants.values()}) > 1
    ]
    assert differing, {n: {v: r["metrics"] for v, r in vs.items()} for n, vs in scored.items()}


def test_retrieval_finds_the_source_document() -> None:
    folder = USE_CASES / "document_qa"
    search = _tool_function(folder / "flows" / "standard" / "retrieve.py", "search")
    rows = _jsonl(folder / "data" / "questions.jsonl")
    hits = sum(any(src == row["source"] for _, src, _ in search(row["question"], 2)) for row in rows)
    assert hits / len(rows) >= 0.8


def test_datasets_are_large_enough_and_dev_overlays_exist() -> None:
    for name in NAMES:
        folder = USE_CASES / name
        experiment = _yaml(folder / "experiment.yaml")
        for dataset in experiment["datasets"]:
            assert len(_jsonl(folder / dataset["source"])) >= 60
        overlay = _yaml(folder / "experiment.dev.yaml")
        for dataset in overlay["datasets"]:
            assert 5 <= len(_jsonl(folder / dataset["source"])) <= 20
        for key in ("sample-request.json", "configs/deployment_config.json", "llmops.yaml", "README.md"):
            assert (folder / key).is_file(), f"{name}: missing {key}"
        sample = json.loads((folder / "sample-request.json").read_text(encoding="utf-8"))
        flow_inputs = set(_yaml(folder / experiment["flow"] / "flow.dag.yaml")["inputs"])
        assert set(sample) == flow_inputs
