"""How fast `llmops list` and `llmops show` answer (target: well under a second), and proof that they
import neither promptflow nor textual. Runs each command as a fresh process, as a person would.

    python benchmarks/list_speed.py [--workspace DIR] [--repeat 5]
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent


def timed(args: list[str], repeat: int) -> list[float]:
    out = []
    for _ in range(repeat):
        started = time.perf_counter()
        proc = subprocess.run([sys.executable, "-m", "llmops_tui.cli", *args], capture_output=True, text=True)
        out.append(time.perf_counter() - started)
        if proc.returncode not in (0, 2):
            raise SystemExit(proc.stderr)
    return out


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--workspace", default=str(REPO))
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args()
    ws = args.workspace
    baseline = timed(["--version"], args.repeat)
    print(f"python + CLI start (llmops --version): median {statistics.median(baseline):.3f} s")
    for label, cmd in (
        ("llmops list --json", ["list", "--workspace", ws, "--json"]),
        ("llmops list", ["list", "--workspace", ws]),
        (
            "llmops show support_ticket_classification --json",
            ["show", "support_ticket_classification", "--workspace", ws, "--json"],
        ),
    ):
        times = timed(cmd, args.repeat)
        print(f"{label}: median {statistics.median(times):.3f} s, max {max(times):.3f} s (target < 1 s)")
    code = (
        "import sys, time\nt = time.perf_counter()\nfrom llmops_tui.cli import main\n"
        f"main(['list', '--workspace', {ws!r}, '--json'])\n"
        "sys.stderr.write('IN_PROCESS=%.3f\\n' % (time.perf_counter() - t))\n"
        "sys.stderr.write('IMPORTED=' + ','.join(m for m in ('promptflow', 'textual', 'pandas') if m in sys.modules))\n"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    lines = dict(line.split("=", 1) for line in proc.stderr.splitlines() if "=" in line)
    print(f"in-process list (imports + load + print): {float(lines['IN_PROCESS']):.3f} s")
    print(f"heavy modules imported by list: {lines.get('IMPORTED') or 'none'} (target: none)")


if __name__ == "__main__":
    main()
