"""App responsiveness while a 10,000-line sweep runs in the run monitor (2 variants x 5,000 lines against
an in-process sandbox model, concurrency 16).

Measures, while the sweep runs:
- event-loop lag: a 50 ms interval timer records the gap between ticks; lag = gap - 50 ms (max and p99);
- key latency: a few presses of "down" on the cells table, from the key being sent to the table's
  cursor action running;
- progress messages posted by the sweep worker vs handled by the screen (the rest were collapsed).

Targets: p99 tick lag < 100 ms, key handled < 200 ms. Prints figures; never asserts.
Run: python benchmarks/tui_sweep_responsiveness.py [--rows 5000] [--concurrency 16]
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO / "tests"))

TICK_S = 0.05
LAG_TARGET_S = 0.100
KEY_TARGET_S = 0.200


def p99(values: list[float]) -> float:
    if not values:
        return 0.0
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(0.99 * (len(ordered) - 1))))]


async def measure(root: Path, url: str, concurrency: int, keys: int) -> dict:
    from llmops_tui.core.sweep import SweepOptions, plan_sweep
    from llmops_tui.tui import messages
    from llmops_tui.tui.app import LlmopsApp
    from llmops_tui.tui.screens.run_monitor import RunMonitorScreen
    from llmops_tui.tui.settings import AppSettings

    counts = {"posted": 0, "handled": 0, "errors": 0}
    handler_s: list[float] = []  # time the screen spends on each progress snapshot (UI thread)
    gc_pauses: list[tuple[int, float]] = []  # (generation, seconds) of each full/older collection
    gc_started = [0.0]

    def on_gc(phase: str, info: dict) -> None:
        if phase == "start":
            gc_started[0] = time.perf_counter()
        elif info["generation"] >= 1:
            gc_pauses.append((info["generation"], time.perf_counter() - gc_started[0]))

    gc.callbacks.append(on_gc)
    original_init = messages.SweepProgressed.__init__
    original_handler = RunMonitorScreen.on_sweep_progressed

    def counting_init(self, event):  # every snapshot the worker posts
        counts["posted"] += 1
        original_init(self, event)

    def counting_handler(self, message):  # every snapshot that reached the screen
        counts["handled"] += 1
        counts["errors"] = message.event.errors
        t = time.perf_counter()
        original_handler(self, message)
        handler_s.append(time.perf_counter() - t)

    messages.SweepProgressed.__init__ = counting_init
    RunMonitorScreen.on_sweep_progressed = counting_handler

    app = LlmopsApp(root, settings=AppSettings(), debug=True)
    gaps: list[float] = []
    spikes: list[tuple[float, float, int, str]] = []  # (lag, seconds into the run, lines done, status)
    key_latencies: list[float] = []
    result: dict = {}
    try:
        async with app.run_test(size=(140, 45)) as pilot:
            await pilot.pause()
            uc = app.use_case("bench")
            plan = plan_sweep(uc, SweepOptions(llm_endpoint=url, concurrency=concurrency))
            last = [time.perf_counter()]

            def tick() -> None:
                now = time.perf_counter()
                gaps.append(now - last[0])
                if now - last[0] - TICK_S > 0.05:
                    screen = app.screen
                    done = screen.query_one("ProgressBar").progress if hasattr(screen, "running") else 0
                    status = getattr(screen, "status", "")
                    spikes.append((now - last[0] - TICK_S, now - start, int(done or 0), status))
                last[0] = now

            start = time.perf_counter()
            app.open_screen("monitor", use_case="bench", plan=plan)
            await pilot.pause()
            monitor = app.screen
            table = monitor.query_one("#cells")
            table.focus()
            handled_at: list[float] = []
            original_down = table.action_cursor_down

            def timed_down() -> None:
                handled_at.append(time.perf_counter())
                original_down()

            table.action_cursor_down = timed_down  # the binding looks the action up on the instance
            last[0] = time.perf_counter()
            timer = app.set_interval(TICK_S, tick)

            expected = plan.lines_total
            pressed = 0
            next_press = time.perf_counter() + 2.0
            while monitor.running:
                await asyncio.sleep(0.02)
                done = monitor.query_one("ProgressBar").progress or 0
                if pressed < keys and time.perf_counter() >= next_press and 0 < done < expected:
                    sent = time.perf_counter()
                    before = len(handled_at)
                    await app._press_keys(["down"])
                    while len(handled_at) == before and time.perf_counter() - sent < 10:
                        await asyncio.sleep(0.001)
                    if len(handled_at) > before:
                        key_latencies.append(handled_at[-1] - sent)
                    pressed += 1
                    next_press = time.perf_counter() + 3.0
            wall = time.perf_counter() - start
            timer.stop()
            await app.workers.wait_for_complete()
            await pilot.pause()
            result = {
                "status": monitor.status,
                "run_id": monitor.run_id,
                "lines": expected,
                "wall": wall,
            }
    finally:
        messages.SweepProgressed.__init__ = original_init
        RunMonitorScreen.on_sweep_progressed = original_handler
        gc.callbacks.remove(on_gc)
    lags = [max(0.0, g - TICK_S) for g in gaps]
    result.update(
        ticks=len(gaps),
        max_lag=max(lags) if lags else 0.0,
        p99_lag=p99(lags),
        mean_gap=statistics.fmean(gaps) if gaps else 0.0,
        keys=key_latencies,
        posted=counts["posted"],
        errors=counts["errors"],
        handler_max=max(handler_s, default=0.0),
        handler_mean=statistics.fmean(handler_s) if handler_s else 0.0,
        gc_gen2=[d for g, d in gc_pauses if g == 2],
        gc_gen1=[d for g, d in gc_pauses if g == 1],
        spikes=sorted(spikes, reverse=True)[:5],
        handled=counts["handled"],
    )
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=5000, help="lines per dataset (x 2 variants)")
    parser.add_argument("--concurrency", type=int, default=16)
    parser.add_argument("--keys", type=int, default=5, help="key presses during the run")
    args = parser.parse_args()

    from builders import make_use_case

    from llmops_tui.sandbox import start_sandbox

    with tempfile.TemporaryDirectory(prefix="llmops-bench-") as tmp:
        root = Path(tmp) / "ws"
        root.mkdir()
        make_use_case(root, "bench", rows=args.rows)
        os.environ["LLMOPS_TUI_CONFIG_DIR"] = str(Path(tmp) / "config")
        sb = start_sandbox()
        try:
            r = asyncio.run(measure(root, sb.url, args.concurrency, args.keys))
        finally:
            sb.stop()

    keys = r["keys"]
    key_max = max(keys) if keys else float("nan")
    print(
        f"sweep:        {r['lines']:,} lines, status {r['status']}, {r['errors']} line errors, run {r['run_id']}"
    )
    print(f"wall:         {r['wall']:.1f} s  ({r['lines'] / r['wall']:.0f} lines/s, incl. evaluation)")
    print(
        f"tick lag:     max {r['max_lag'] * 1000:.0f} ms, p99 {r['p99_lag'] * 1000:.0f} ms "
        f"(target < {LAG_TARGET_S * 1000:.0f} ms; {r['ticks']} ticks of {TICK_S * 1000:.0f} ms, "
        f"mean gap {r['mean_gap'] * 1000:.0f} ms)"
    )
    print(
        f"key latency:  max {key_max * 1000:.0f} ms over {len(keys)} presses "
        f"[{', '.join(f'{k * 1000:.0f}' for k in keys)}] (target < {KEY_TARGET_S * 1000:.0f} ms)"
    )
    print(
        f"progress:     {r['posted']} snapshots posted, {r['handled']} handled, "
        f"{r['posted'] - r['handled']} collapsed"
    )
    print(
        f"UI work:      {r['handler_mean'] * 1000:.1f} ms mean, {r['handler_max'] * 1000:.1f} ms max "
        "per progress snapshot on the UI thread"
    )
    g2, g1 = r["gc_gen2"], r["gc_gen1"]
    print(
        f"GC:           {len(g2)} full collections ({', '.join(f'{d * 1000:.0f}' for d in g2)} ms), "
        f"{len(g1)} gen-1 (max {max(g1, default=0) * 1000:.0f} ms)"
    )
    for lag, at, done, status in r["spikes"]:
        print(f"  lag spike:  {lag * 1000:.0f} ms at {at:.1f} s ({done:,} lines done, {status})")
    print(
        f"vs targets:   p99 lag {r['p99_lag'] / LAG_TARGET_S:.2f}x, key {key_max / KEY_TARGET_S:.2f}x "
        "(< 1 is within target)"
    )


if __name__ == "__main__":
    main()
