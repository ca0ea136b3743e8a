"""How long `llmops` takes to start, and how soon a 1-row sweep's first line runs (issue 13, "Start-up").

Each figure comes from fresh processes, as a person or CI would start them; one or more source trees side
by side (``--tree``: a checkout whose ``llmops_tui`` is put first on PYTHONPATH; default this one):

- ``llmops --help`` and ``llmops sweep --help``: whole-process wall time and CPU seconds (user + system);
- ``sweep --help`` in-process: the time from ``from llmops_tui.cli import main`` until it returned, and
  which command modules and heavy packages it imported;
- a 1-row sweep (2 cells: 2 prompt variants x 1 row, an exact-match evaluator; peer_promptfoo.py's
  matrix) against the sandbox in its own process: whole-process wall and CPU, the engine's own
  ``wall_s`` (from the JSON summary), start-up = whole process - engine wall (target <= 0.6 s), and
  spawn -> first line: from spawning the process to the start of the first flow line (the run store's
  ``finished_at - latency_ms`` of the earliest line), which is about when the first model call is sent.

Medians of ``--repeats`` runs, the trees taking turns. Nothing here asserts a time.

    python benchmarks/cli_startup.py                                  # this checkout
    python benchmarks/cli_startup.py --tree /work/main --tree .       # before and after, side by side
    python benchmarks/cli_startup.py --repeats 9 --keep
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

from peer_promptfoo import STARTUP_TARGET_S, USE_CASE, Sandbox, write_use_case

REPO = Path(__file__).resolve().parent.parent
HEAVY = ("openai", "promptflow", "numpy", "cryptography", "pandas", "textual", "jinja2")

IN_PROCESS = """\
import sys, time
started = time.perf_counter()
from llmops_tui.cli import main
main(sys.argv[1:])
took = time.perf_counter() - started
cli = sorted(m.rsplit('.', 1)[1] for m in sys.modules if m.startswith('llmops_tui.cli.') and m.endswith('_cmds'))
heavy = [m for m in {heavy!r} if m in sys.modules]
sys.stderr.write('\\nRESULT=' + repr((took, cli, heavy)) + '\\n')
"""


@dataclass
class Tree:
    label: str
    path: Path
    workspace: Path
    pycache: Path
    figures: dict[str, list[float]] = field(default_factory=dict)
    notes: dict[str, str] = field(default_factory=dict)

    def add(self, name: str, value: float) -> None:
        self.figures.setdefault(name, []).append(value)

    def env(self) -> dict[str, str]:
        env = dict(os.environ)
        env["PYTHONPATH"] = os.pathsep.join([str(self.path), *filter(None, [env.get("PYTHONPATH")])])
        env.pop("LLMOPS_DEBUG", None)
        # Compiled bytecode as an installed package has it, kept out of the source trees: without this, a
        # tree without __pycache__ (or PYTHONDONTWRITEBYTECODE set) compiles every module on every start.
        env.pop("PYTHONDONTWRITEBYTECODE", None)
        env["PYTHONPYCACHEPREFIX"] = str(self.pycache)
        return env


def run(cmd: list[str], env: dict[str, str], cwd: Path) -> tuple[float, float, str, str]:
    """One whole process: wall seconds from spawn to exit, CPU seconds (user + system), stdout, stderr."""
    with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err:
        started = time.perf_counter()
        proc = subprocess.Popen(cmd, env=env, cwd=cwd, stdout=out, stderr=err)
        _, status, usage = os.wait4(proc.pid, 0)
        wall = time.perf_counter() - started
        proc.returncode = os.waitstatus_to_exitcode(status)
        out.seek(0)
        err.seek(0)
        stdout, stderr = out.read().decode(), err.read().decode()
    if proc.returncode != 0:
        sys.exit(f"{' '.join(cmd[2:6])} ... exited with {proc.returncode}:\n{stderr[-3000:]}")
    return wall, usage.ru_utime + usage.ru_stime, stdout, stderr


def first_line_start(workspace: Path, run_id: str) -> float:
    """When the run's first flow line started (epoch seconds), from the run store."""
    with sqlite3.connect(workspace / ".llmops" / "store.sqlite") as db:
        row = db.execute(
            "SELECT MIN(finished_at - latency_ms / 1000.0) FROM lines WHERE run_id = ?", (run_id,)
        ).fetchone()
    if row is None or row[0] is None:
        sys.exit(f"run {run_id} stored no lines")
    return float(row[0])


def measure_once(tree: Tree, sandbox: Sandbox, scratch: Path) -> None:
    cli = [sys.executable, "-m", "llmops_tui.cli"]
    env = tree.env()
    for name, args in (("llmops --help", ["--help"]), ("llmops sweep --help", ["sweep", "--help"])):
        wall, cpu, _, _ = run([*cli, *args], env, scratch)
        tree.add(f"{name}: wall s", wall)
        tree.add(f"{name}: CPU s", cpu)

    code = IN_PROCESS.format(heavy=HEAVY)
    _, _, _, stderr = run([sys.executable, "-c", code, "sweep", "--help"], env, scratch)
    took, modules, heavy = eval(stderr.rsplit("RESULT=", 1)[1])  # noqa: S307 - our own repr
    tree.add("sweep --help in-process: s", took)
    tree.notes["sweep --help imported command modules"] = ", ".join(modules) or "none"
    tree.notes["sweep --help imported heavy packages"] = ", ".join(heavy) or "none"

    cmd = [*cli, "sweep", USE_CASE, "--workspace", str(tree.workspace), "--llm-endpoint", sandbox.url]
    cmd += ["--no-cache", "--json"]
    spawned = time.time()
    wall, cpu, stdout, _ = run(cmd, env, scratch)
    summary = json.loads(stdout)
    if summary["status"] != "completed":
        sys.exit(f"the 1-row sweep ended {summary['status']}: {stdout[:2000]}")
    tree.add("1-row sweep: wall s", wall)
    tree.add("1-row sweep: CPU s", cpu)
    tree.add("1-row sweep: engine wall_s", summary["wall_s"])
    tree.add("1-row sweep: start-up s (wall - engine)", wall - summary["wall_s"])
    tree.add(
        "1-row sweep: spawn -> first line s", first_line_start(tree.workspace, summary["run_id"]) - spawned
    )


def report(trees: list[Tree]) -> None:
    names = list(trees[0].figures)
    width = max(len(n) for n in [*names, *trees[0].notes]) + 2
    col = max(14, *(len(t.label) + 2 for t in trees))
    print()
    print("median of each figure".ljust(width) + "".join(t.label.rjust(col) for t in trees))
    for name in names:
        cells = "".join(f"{statistics.median(t.figures[name]):.3f}".rjust(col) for t in trees)
        print(name.ljust(width) + cells)
    for name in trees[0].notes:
        for t in trees:
            print(f"{name} ({t.label}): {t.notes[name]}")
    for t in trees:
        startup = statistics.median(t.figures["1-row sweep: start-up s (wall - engine)"])
        verdict = "MET" if startup <= STARTUP_TARGET_S else f"MISSED by {startup - STARTUP_TARGET_S:.3f} s"
        print(f"{t.label}: start-up {startup:.3f} s, target <= {STARTUP_TARGET_S} s: {verdict}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument(
        "--tree",
        action="append",
        type=Path,
        help="a source tree to measure (repeat the option to compare; default: this checkout)",
    )
    parser.add_argument("--repeats", type=int, default=5, help="runs per figure; the median is shown")
    parser.add_argument(
        "--keep", action="store_true", help="keep the scratch folder (workspaces, sandbox log)"
    )
    args = parser.parse_args()
    if args.repeats < 1:
        parser.error("--repeats must be at least 1")
    paths = [p.resolve() for p in (args.tree or [REPO])]
    for path in paths:
        if not (path / "llmops_tui" / "cli" / "__init__.py").is_file():
            parser.error(f"{path} is not a checkout of llmops-tui (no llmops_tui/cli/__init__.py)")
    scratch = Path(tempfile.mkdtemp(prefix="llmops-startup-"))
    labels = [p.name for p in paths]
    if len(set(labels)) < len(labels):
        labels = [str(p) for p in paths]
    trees = [
        Tree(label, path, scratch / f"ws{i}", scratch / f"pycache{i}")
        for i, (label, path) in enumerate(zip(labels, paths, strict=True))
    ]
    print(f"scratch folder {scratch}; {os.cpu_count()} cores, load average {os.getloadavg()[0]:.1f}")
    try:
        for tree in trees:
            write_use_case(tree.workspace, 1)
        with Sandbox(0, scratch / "sandbox.log") as sandbox:
            for tree in trees:  # untimed: byte-compile each tree, warm the file cache
                measure_once(tree, sandbox, scratch)
                tree.figures.clear()
            for i in range(args.repeats):
                order = trees if i % 2 == 0 else trees[::-1]
                for tree in order:
                    measure_once(tree, sandbox, scratch)
                print(
                    f"repeat {i + 1}/{args.repeats} done, load average {os.getloadavg()[0]:.1f}", flush=True
                )
        report(trees)
    except KeyboardInterrupt:
        sys.exit("interrupted: no figures")
    finally:
        if args.keep:
            print(f"kept {scratch}")
        else:
            shutil.rmtree(scratch, ignore_errors=True)


if __name__ == "__main__":
    main()
