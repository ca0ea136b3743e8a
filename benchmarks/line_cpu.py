"""CPU per executor line, in one thread: the flow line and the evaluation line of peer_promptfoo's matrix.

Opens the benchmark's standard flow (variant_1 materialised) and its evaluation flow with the engine's
backends and LLM-call policy, runs N lines of each one after another against the sandbox at 0 ms latency
(its own process, as in peer_promptfoo.py), and prints this process's CPU milliseconds per line
(``time.process_time``). One thread, so no GIL hand-offs are counted: this is the floor of
what a line costs, the figure to compare before and after a change on the line path.

    python benchmarks/line_cpu.py                 # 1,000 lines of each
    python benchmarks/line_cpu.py --profile 30    # also cProfile: the 30 most expensive functions
"""

from __future__ import annotations

import argparse
import cProfile
import pstats
import sys
import tempfile
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))

import peer_promptfoo as bench  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--lines", type=int, default=1000)
    parser.add_argument("--profile", type=int, default=0, help="print the N most expensive functions")
    args = parser.parse_args()

    from llmops_tui.core import llmhooks
    from llmops_tui.core.backends import BackendOptions, ConnectionSpec, open_backend, prepare_process
    from llmops_tui.core.materialize import materialize_flow

    scratch = Path(tempfile.mkdtemp(prefix="llmops-linecpu-"))
    bench.write_use_case(scratch, args.lines)
    uc = scratch / "use_cases" / bench.USE_CASE
    prepare_process(scratch / ".llmops")
    llmhooks.install()
    sandbox = bench.Sandbox(0, scratch / "sandbox.log")
    try:
        flow_dir, _ = materialize_flow(
            uc / "flows" / "standard", scratch / ".llmops" / "flows", {"classify": "variant_1"}, {}
        )
        conns = {
            "aoai": ConnectionSpec("aoai", "AzureOpenAIConnection", sandbox.url, "sandbox", "2024-02-01")
        }
        options = BackendOptions(connections=conns, line_timeout_s=60, workspace=scratch)
        flow = open_backend(flow_dir, options)
        evaluation = open_backend(uc / "flows" / "evaluation", options)
        policy = llmhooks.RetryPolicy()
        limiter = llmhooks.RateLimiter()
        cancel = threading.Event()
        rows = bench.rows(args.lines)

        def flow_line(i: int) -> dict:
            ctx = llmhooks.LineContext(policy=policy, cancel=cancel, limiter_for=lambda _u: limiter)
            token = llmhooks.current_line.set(ctx)
            try:
                out = flow.run_line({"ticket": rows[i]["ticket"]}, i, "bench")
            finally:
                llmhooks.current_line.reset(token)
            assert out.ok, out.error
            return out.outputs or {}

        def eval_line(i: int, category: str) -> None:
            out = evaluation.run_line({"category": category, "label": rows[i]["label"]}, i, "bench-eval")
            assert out.ok, out.error

        for i in range(20):  # warm-up: imports, first connections, caches
            eval_line(i, flow_line(i)["category"])
        profiler = cProfile.Profile(time.process_time) if args.profile else None
        categories = []
        if profiler:
            profiler.enable()
        t0, w0 = time.process_time(), time.perf_counter()
        for i in range(args.lines):
            categories.append(flow_line(i)["category"])
        t1 = time.process_time()
        for i in range(args.lines):
            eval_line(i, categories[i])
        t2, w2 = time.process_time(), time.perf_counter()
        if profiler:
            profiler.disable()
    finally:
        sandbox.close()
    n = args.lines
    flow_ms = (t1 - t0) / n * 1000
    eval_ms = (t2 - t1) / n * 1000
    print(f"{n} flow lines + {n} evaluation lines in one thread, {w2 - w0:.2f} s wall")
    print(f"  flow line:       {flow_ms:.2f} ms CPU")
    print(f"  evaluation line: {eval_ms:.2f} ms CPU")
    if profiler:
        pstats.Stats(profiler).sort_stats("cumulative").print_stats(args.profile)
        pstats.Stats(profiler).sort_stats("tottime").print_stats(args.profile)
        profiler.dump_stats(str(Path(tempfile.gettempdir()) / "line_cpu.prof"))


if __name__ == "__main__":
    main()
