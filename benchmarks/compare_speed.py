"""How fast is `llmops compare` on a big run? Target: under 2 s for 20 cells x 1,000 lines.

Builds the run in a temporary store through the real RunStore API (synthetic lines, per-line evaluator
scores and metrics), then times ``build_comparison`` in-process and ``llmops compare --json`` as a fresh
process (interpreter start and imports included). Prints seconds and the ratio to the target.

    python benchmarks/compare_speed.py [--cells 20] [--lines 1000]
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from synthetic_run import make_run, write_workspace  # noqa: E402

from llmops_tui.core.compare import build_comparison  # noqa: E402
from llmops_tui.core.store import RunStore  # noqa: E402

TARGET_S = 2.0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--cells", type=int, default=20)
    parser.add_argument("--lines", type=int, default=1000)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="llmops-bench-") as tmp:
        root = write_workspace(Path(tmp))
        t0 = time.perf_counter()
        with RunStore.for_workspace(root) as store:
            make_run(store, n_cells=args.cells, n_lines=args.lines)
        print(f"built {args.cells} cells x {args.lines} lines in {time.perf_counter() - t0:.1f} s")

        with RunStore.for_workspace(root) as store:
            t0 = time.perf_counter()
            comp = build_comparison(store, "run-0001", workspace_root=root)
            in_process = time.perf_counter() - t0
        print(
            f"build_comparison: {in_process:.2f} s ({in_process / TARGET_S:.2f} of the {TARGET_S:g} s target), "
            f"{len(comp.rows)} rows, best {comp.best_cell()}"
        )

        llmops = Path(sys.executable).with_name("llmops")
        cmd = [str(llmops)] if llmops.exists() else [sys.executable, "-m", "llmops_tui.cli"]
        t0 = time.perf_counter()
        proc = subprocess.run(
            [*cmd, "compare", "run-0001", "--json", "-w", str(root)], capture_output=True, text=True
        )
        cli = time.perf_counter() - t0
        if proc.returncode != 0:
            print(proc.stderr, file=sys.stderr)
            return 1
        print(
            f"llmops compare --json: {cli:.2f} s ({cli / TARGET_S:.2f} of the {TARGET_S:g} s target), "
            f"{len(proc.stdout) / 1e6:.1f} MB of JSON"
        )
        return 0 if cli < TARGET_S else 1


if __name__ == "__main__":
    sys.exit(main())
