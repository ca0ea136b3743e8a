"""Our sweep engine vs the template's way, on the same sweep, in one process run.

The sweep: one LLM node with 4 variants (4 cells) x 200 lines, the sandbox model at 200 ms latency,
one evaluator. The template's way: one ``pf.run`` per variant (default settings) plus one evaluation
``pf.run`` per standard run, sequentially. Ours: ``run_sweep`` at concurrency 16, no cache.

Prints both wall times, the ratio, and ours as a fraction of the physical limit
(LLM calls x latency / concurrency). Targets: ours >= 0.8 of the limit, >= 8x faster than the
template's way. Then re-runs ours warm and prints the LLM calls the sandbox saw (target 0).

    python benchmarks/sweep_vs_template.py [--lines 200] [--latency-ms 200] [--skip-template]
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO / "tests"))


class SandboxProcess:
    """`llmops sandbox` in a subprocess; .url and .stats() like the in-process handle."""

    def __init__(self, latency_ms: float):
        import subprocess

        self.proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "llmops_tui.cli",
                "sandbox",
                "--port",
                "0",
                "--latency-ms",
                str(latency_ms),
            ],
            stdout=subprocess.PIPE,
            text=True,
        )
        self.url = self.proc.stdout.readline().strip()

    def stats(self) -> dict:
        import httpx

        return httpx.get(self.url + "/stats", timeout=10).json()

    def __enter__(self) -> SandboxProcess:
        return self

    def __exit__(self, *exc: object) -> None:
        self.proc.terminate()
        self.proc.wait(timeout=10)


def make_workspace(root: Path, lines: int) -> Path:
    from builders import make_use_case

    uc = make_use_case(root, "tickets", rows=lines)
    dag = uc / "flows" / "standard" / "flow.dag.yaml"
    text = dag.read_text()
    block = text[text.index("      variant_1:") :]
    for i in (2, 3):
        (uc / "flows" / "standard" / f"prompt_v{i}.jinja2").write_text(
            (uc / "flows" / "standard" / "prompt_v1.jinja2").read_text()
            + f"\nVariant {i}: think step by step.\n"
        )
        text += block.replace("variant_1:", f"variant_{i}:").replace(
            "prompt_v1.jinja2", f"prompt_v{i}.jinja2"
        )
    dag.write_text(text)
    return uc


def template_way(uc: Path, url: str) -> tuple[float, int]:
    """One pf.run per variant + one evaluation pf.run each, default settings, sequential."""
    # Named connections are encrypted with a key Prompt flow keeps in the OS keyring, and this machine
    # has none: give this process an in-memory encryption key instead (nothing is written to a keyring).
    from cryptography.fernet import Fernet
    from promptflow._sdk._utilities import general_utils

    general_utils.CUSTOMIZED_ENCRYPTION_KEY_IN_KEY_RING = Fernet.generate_key().decode()
    from promptflow.client import PFClient
    from promptflow.entities import AzureOpenAIConnection

    pf = PFClient()
    pf.connections.create_or_update(
        AzureOpenAIConnection(
            name="aoai", api_key="sandbox", api_base=url, api_type="azure", api_version="2024-02-01"
        )
    )
    data = str(uc / "data" / "tickets.jsonl")
    started = time.perf_counter()
    runs = 0
    for variant in ("variant_0", "variant_1", "variant_2", "variant_3"):
        base = pf.run(
            flow=str(uc / "flows" / "standard"),
            data=data,
            variant="${classify." + variant + "}",
            column_mapping={"ticket": "${data.ticket}"},
            stream=False,
        )
        pf.run(
            flow=str(uc / "flows" / "evaluation"),
            data=data,
            run=base,
            column_mapping={"category": "${run.outputs.category}", "label": "${data.label}"},
            stream=False,
        )
        runs += 2
    return time.perf_counter() - started, runs


def ours(ws: Path, url: str, concurrency: int, no_cache: bool) -> tuple[float, dict]:
    from llmops_tui.core.engine import run_sweep
    from llmops_tui.core.sweep import SweepOptions, plan_sweep
    from llmops_tui.core.workspace import load_workspace

    uc = load_workspace(ws).use_cases[0]
    plan = plan_sweep(uc, SweepOptions(llm_endpoint=url, concurrency=concurrency, no_cache=no_cache))
    started = time.perf_counter()
    final = list(run_sweep(ws, uc, plan))[-1]
    return time.perf_counter() - started, final.summary


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--lines", type=int, default=200)
    parser.add_argument("--latency-ms", type=float, default=200)
    parser.add_argument("--concurrency", type=int, default=16)
    parser.add_argument("--skip-template", action="store_true")
    args = parser.parse_args()

    home = Path(tempfile.mkdtemp(prefix="llmops-bench-", dir=os.path.expanduser("~")))
    os.environ["PF_HOME_DIRECTORY"] = str(home / "pf")
    from llmops_tui.core.pfenv import configure_promptflow_env

    configure_promptflow_env(home / "pf")
    # Both ways run in this one process: pay Prompt flow's import (about 2.5 s) once, before timing either.
    import promptflow.client  # noqa: F401
    import promptflow.executor  # noqa: F401

    ws = home / "ws"
    uc = make_workspace(ws, args.lines)
    # The model server runs in its own process, as a real one would (in-process it would compete with
    # the engine for the GIL and slow both ways down).
    with SandboxProcess(args.latency_ms) as sb:
        t_ours, summary = ours(ws, sb.url, args.concurrency, no_cache=True)
        calls = summary["llm_calls"]
        limit = calls * args.latency_ms / 1000 / args.concurrency
        print(
            f"ours: {t_ours:.2f} s for {summary['cell_count']} cells x {args.lines} lines, {calls} LLM calls, "
            f"errors {summary['errors']}"
        )
        print(
            f"physical limit (calls x latency / concurrency): {limit:.2f} s -> ours at {limit / t_ours:.2f} of the limit "
            f"(target >= 0.8)"
        )
        for c in summary["cells"]:
            print(f"  {c['label']}: {c['metrics']}")
        before = sb.stats()["requests"]
        t_warm, warm = ours(ws, sb.url, args.concurrency, no_cache=False)
        before = sb.stats()["requests"] if warm["llm_calls"] else before
        t_warm2, warm2 = ours(ws, sb.url, args.concurrency, no_cache=False)
        print(
            f"warm re-run: {t_warm2:.2f} s, LLM calls {warm2['llm_calls']}, cache hits {warm2['cache_hits']}, "
            f"sandbox requests during it: {sb.stats()['requests'] - before} (target 0)"
        )
        if not args.skip_template:
            t_tpl, runs = template_way(uc, sb.url)
            print(f"template's way: {t_tpl:.2f} s ({runs} pf.run calls, sequential)")
            print(f"speed-up: {t_tpl / t_ours:.1f}x (target >= 8x)")


if __name__ == "__main__":
    main()
