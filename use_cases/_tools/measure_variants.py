"""Score every variant of the bundled use cases against the offline sandbox, in-process.

    python use_cases/_tools/measure_variants.py [--rows N] [--seed S] [--show] [use case name ...]

Runs the standard flow for the first N rows (default: all) of the experiment dataset with each variant
selected, scores the outputs with the evaluation flow's line and aggregation functions, and prints
the aggregated metrics. ``--show`` also prints every line that is not perfect. Needs no network.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import re
import shutil
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def _column(expression: str, prefix: str) -> str:
    match = re.fullmatch(r"\$\{" + re.escape(prefix) + r"\.([A-Za-z0-9_]+)\}", expression.strip())
    if not match:
        raise ValueError(f"unexpected mapping {expression!r}")
    return match.group(1)


def _tool_function(path: Path, name: str):
    spec = importlib.util.spec_from_file_location(f"_m_{path.parent.name}_{path.stem}", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    func = getattr(module, name)
    return getattr(func, "__wrapped__", func)


def _jsonl(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=0)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--show", action="store_true")
    parser.add_argument("names", nargs="*")
    args = parser.parse_args()

    own_home = None
    if not os.environ.get("PF_HOME_DIRECTORY"):
        own_home = tempfile.mkdtemp(prefix="llmops-measure-pf-", dir=os.path.expanduser("~"))
        os.environ["PF_HOME_DIRECTORY"] = own_home
    os.environ.setdefault("NO_PROXY", "127.0.0.1,localhost")
    from llmops_tui.core.pfenv import configure_promptflow_env

    configure_promptflow_env()
    import yaml
    from promptflow.client import load_flow
    from promptflow.entities import AzureOpenAIConnection, FlowContext

    from llmops_tui.sandbox import start_sandbox

    handle = start_sandbox(port=0, seed=args.seed)
    try:
        for folder in sorted(p for p in ROOT.iterdir() if (p / "experiment.yaml").is_file()):
            if args.names and folder.name not in args.names:
                continue
            experiment = yaml.safe_load((folder / "experiment.yaml").read_text(encoding="utf-8"))
            dataset = experiment["datasets"][0]
            evaluator = experiment["evaluators"][0]
            eval_dataset = next(d for d in evaluator["datasets"] if d["reference"] == dataset["name"])
            rows = _jsonl(folder / dataset["source"])
            eval_rows = _jsonl(folder / eval_dataset["source"])
            if args.rows:
                rows, eval_rows = rows[: args.rows], eval_rows[: args.rows]
            flow_dir = folder / experiment["flow"]
            dag = yaml.safe_load((flow_dir / "flow.dag.yaml").read_text(encoding="utf-8"))
            eval_dir = folder / evaluator["flow"]
            eval_dag = yaml.safe_load((eval_dir / "flow.dag.yaml").read_text(encoding="utf-8"))
            line_node = next(n for n in eval_dag["nodes"] if not n.get("aggregation"))
            agg_node = next(n for n in eval_dag["nodes"] if n.get("aggregation"))
            score_line = _tool_function(eval_dir / line_node["source"]["path"], line_node["name"])
            aggregate = _tool_function(eval_dir / agg_node["source"]["path"], agg_node["name"])
            (agg_input,) = agg_node["inputs"]
            for node, spec in dag["node_variants"].items():
                for variant in spec["variants"]:
                    flow = load_flow(str(flow_dir))
                    connection = AzureOpenAIConnection(
                        api_base=handle.url, api_key="sk-test", api_type="azure", api_version="2024-02-01"
                    )
                    flow.context = FlowContext(
                        variant=f"${{{node}.{variant}}}", connections={node: {"connection": connection}}
                    )

                    def run(row: dict, flow=flow, mappings=dataset["mappings"]) -> dict:
                        return flow(**{k: row[_column(v, "data")] for k, v in mappings.items()})

                    started = time.perf_counter()
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
                    elapsed = time.perf_counter() - started
                    print(f"{folder.name:30s} {node}.{variant}: n={len(rows)} {metrics} ({elapsed:.1f}s)", flush=True)
                    if args.show:
                        for row, output, line in zip(rows, outputs, lines, strict=True):
                            numbers = [v for v in line.values() if isinstance(v, int | float)]
                            if numbers and min(numbers) < 1:
                                print("   ", json.dumps(row, ensure_ascii=False)[:160], "->", output, line)
    finally:
        handle.stop()
        if own_home:
            shutil.rmtree(own_home, ignore_errors=True)


if __name__ == "__main__":
    main()
