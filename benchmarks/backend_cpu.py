"""CPU per line and whole-sweep time: the Agent Framework backend against Prompt flow's executor (issue 18).

The CPU-bound matrix: the bundled support_ticket_classification use case (3 variants x 2 temperatures x
74 tickets, plus its evaluator), sandbox at 0 ms latency in a process of its own, concurrency 64, one
engine process, cache off. Each backend sweeps the same matrix in a fresh child process (alternating,
``--repeats`` times); the figure is the child's CPU time (all threads) spent inside the sweep, divided by
the lines it ran (flow and evaluator lines), and the sweep's wall time. Prints the medians and the ratio.

    .venv/bin/python benchmarks/backend_cpu.py                 # repeat 2 (1,776 lines a sweep), 3 runs each
    .venv/bin/python benchmarks/backend_cpu.py --repeat 1 --repeats 1
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
UC = "support_ticket_classification"
BACKENDS = ("promptflow-dag", "agent-framework")


def child(backend: str, ws: str, url: str, repeat: int) -> None:
    from llmops_tui.core import events as ev
    from llmops_tui.core.engine import run_sweep
    from llmops_tui.core.sweep import SweepOptions, plan_sweep
    from llmops_tui.core.workspace import load_workspace

    uc = load_workspace(Path(ws)).get(UC)
    options = SweepOptions(
        llm_endpoint=url,
        no_cache=True,
        concurrency=64,
        workers=1,
        repeat=repeat,
        backend=backend,
        variants="all",
    )
    plan = plan_sweep(uc, options)
    cpu0, wall0 = time.process_time(), time.perf_counter()
    final = None
    for event in run_sweep(Path(ws), uc, plan):
        if isinstance(event, ev.SweepFinished):
            final = event
    cpu, wall = time.process_time() - cpu0, time.perf_counter() - wall0
    assert final is not None
    lines = plan.lines_total * (1 + len(uc.evaluators))
    print(json.dumps({"cpu_s": cpu, "wall_s": wall, "lines": lines, "status": final.status}))


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--repeat", type=int, default=2, help="repetitions of each cell (lines per sweep)")
    parser.add_argument("--repeats", type=int, default=3, help="sweeps per backend (medians are reported)")
    parser.add_argument("--child", nargs=4, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        backend, ws, url, repeat = args.child
        child(backend, ws, url, int(repeat))
        return
    scratch = Path(tempfile.mkdtemp(prefix="llmops-backend-cpu-"))
    port = _free_port()
    sandbox = subprocess.Popen(
        [sys.executable, "-m", "llmops_tui.cli", "sandbox", "--host", "127.0.0.1", "--port", str(port)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        for _ in range(100):
            try:
                socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
                break
            except OSError:
                time.sleep(0.1)
        results: dict[str, list[dict]] = {b: [] for b in BACKENDS}
        for i in range(args.repeats):
            for backend in BACKENDS:
                ws = scratch / f"ws-{backend}-{i}"
                shutil.copytree(REPO / "use_cases" / UC, ws / "use_cases" / UC)
                proc = subprocess.run(
                    [
                        sys.executable,
                        __file__,
                        "--child",
                        backend,
                        str(ws),
                        f"http://127.0.0.1:{port}",
                        str(args.repeat),
                    ],
                    capture_output=True,
                    text=True,
                    env={**os.environ},
                )
                if proc.returncode != 0:
                    sys.exit(f"{backend} sweep failed:\n{proc.stderr[-3000:]}")
                results[backend].append(json.loads(proc.stdout.strip().splitlines()[-1]))
        med = {}
        for backend, runs in results.items():
            cpu_ms = statistics.median(r["cpu_s"] * 1000 / r["lines"] for r in runs)
            wall = statistics.median(r["wall_s"] for r in runs)
            med[backend] = (cpu_ms, wall)
            print(
                f"{backend:16} {runs[0]['lines']} lines a sweep: CPU {cpu_ms:.2f} ms/line, "
                f"sweep {wall:.1f} s (median of {len(runs)}; {runs[0]['status']})"
            )
        a, b = med["promptflow-dag"], med["agent-framework"]
        print(
            f"agent-framework / promptflow-dag: CPU per line x{b[0] / a[0]:.2f}, sweep time x{b[1] / a[1]:.2f}"
        )
    finally:
        sandbox.terminate()
        sandbox.wait(timeout=10)
        shutil.rmtree(scratch, ignore_errors=True)


if __name__ == "__main__":
    main()
