"""App performance: time from launch to the first interactive screen (target < 1.5 s, and promptflow
must not be imported on the way), and the time until a 10,000-line line table is shown and interactive (target < 0.5 s).

Prints figures and ratios to the targets; never asserts. Run: python benchmarks/tui_startup.py [WORKSPACE]
"""

from __future__ import annotations

import asyncio
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
STARTUP_TARGET_S = 1.5
TABLE_TARGET_S = 0.5

CHILD = r"""
import asyncio, sys, time
t0 = time.perf_counter()
from llmops_tui.tui.app import LlmopsApp
from llmops_tui.tui.settings import AppSettings
async def main():
    app = LlmopsApp(sys.argv[1], settings=AppSettings())
    async with app.run_test(size=(140, 45)) as pilot:
        await pilot.pause()
        ready = time.perf_counter() - t0
        rows = len(app.screen.rows)
    print(f"{ready:.3f} {rows} {'promptflow' in sys.modules}")
asyncio.run(main())
"""


def startup(workspace: Path) -> tuple[float, float, int, bool]:
    start = time.perf_counter()
    out = subprocess.run(
        [sys.executable, "-c", CHILD, str(workspace)], capture_output=True, text=True, cwd=REPO, check=True
    )
    wall = time.perf_counter() - start
    ready, rows, pf = out.stdout.split()
    return wall, float(ready), int(rows), pf == "True"


def line_table(n: int = 10_000) -> float:
    """Time until the line-level table shows ``n`` lines and is interactive: the screen's LineTable gets all
    ``n`` core line diffs, adds its first page of rows, and the app has rendered. Afterwards (not timed)
    checks that moving the cursor loads more rows and that ctrl+end reaches the last line."""
    from llmops_tui.core.linediff import LineDiff, word_diff
    from llmops_tui.tui.screens.line_diff import LINE_COLUMNS, LineTable

    diffs = []
    for i in range(n):
        a, b = f"answer number {i} for the question", f"answer number {i + (i % 3 == 0)} for the question"
        diffs.append(
            LineDiff(
                i,
                {"question": f"q{i}"},
                {"answer": a},
                {"answer": b},
                "ok",
                "ok",
                None,
                None,
                {"ev.score": 1},
                {"ev.score": int(a == b)},
                a != b,
                word_diff(a, b),
            )
        )

    elapsed = 0.0

    async def run() -> None:
        nonlocal elapsed
        from textual.app import App

        class TableApp(App):
            def compose(self):
                yield LineTable()

        app = TableApp()
        async with app.run_test(size=(140, 45)) as pilot:
            table = app.query_one(LineTable)
            table.set_columns([label for label, _ in LINE_COLUMNS])
            await pilot.pause()
            t = time.perf_counter()
            table.show(diffs)
            await pilot.pause()
            elapsed = time.perf_counter() - t
            first = table.row_count
            await pilot.press(*["pagedown"] * 12)
            await pilot.pause()
            paged = table.row_count
            await pilot.press("ctrl+end")
            await pilot.pause()
            print(
                f"  (rows in the table: {first} at first, {paged} after 12 page-downs,"
                f" {table.row_count:,} after ctrl+end, cursor on row {table.cursor_row + 1:,})"
            )

    asyncio.run(run())
    return elapsed


def main() -> None:
    workspace = Path(sys.argv[1]) if len(sys.argv) > 1 else REPO
    runs = [startup(workspace) for _ in range(3)]
    best = min(runs, key=lambda r: r[1])
    wall, ready, rows, pf = best
    print(
        f"startup ({workspace}): first interactive screen after {ready:.2f} s in-process, {wall:.2f} s wall incl. interpreter;"
        f" {rows} use cases; ratio to {STARTUP_TARGET_S} s target: {wall / STARTUP_TARGET_S:.2f};"
        f" promptflow imported: {pf}"
    )
    with tempfile.TemporaryDirectory():
        t = line_table()
    print(
        f"line table: 10,000 lines shown and interactive in {t:.3f} s; ratio to {TABLE_TARGET_S} s target: {t / TABLE_TARGET_S:.2f}"
    )


if __name__ == "__main__":
    main()
