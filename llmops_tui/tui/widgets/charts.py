"""Terminal charts for the Compare screen (textual-plotext): one bar per cell with its 95% interval
drawn beside the bar (so it never cuts into it), and latency as one box plot per cell. Cells are
numbered on the x axis; the legend (number -> cell label) is printed outside the plot by the screen.
Imported only when the charts are opened."""

from __future__ import annotations

from typing import Any

from textual_plotext import PlotextPlot

#: How far right of a bar's centre its interval is drawn (bars are 0.4 wide: the whisker clears it).
WHISKER_OFFSET = 0.3


def quintuple(values: list[float]) -> list[float] | None:
    """min, 25th, 50th, 75th percentile and max of a cell's latencies (None without data)."""
    from llmops_tui.core.stats import percentile

    five = [percentile(values, q) for q in (0, 25, 50, 75, 100)]
    return None if any(q is None for q in five) else [float(q) for q in five if q is not None]


def legend(labels: list[str]) -> str:
    """``1 variant_0 · t=0   2 variant_1 · t=0.7 ...``: the key to the numbered x axis."""
    return "   ".join(f"{i} {label}" for i, label in enumerate(labels, start=1))


class MetricBars(PlotextPlot):
    """One bar per cell for one metric, with its 95% CI as a whisker beside the bar."""

    def show(
        self,
        title: str,
        labels: list[str],
        values: list[float],
        lows: list[float | None],
        highs: list[float | None],
    ) -> None:
        plt = self.plt
        plt.clear_figure()
        plt.title(title)
        # float: plotext's tick positions are floats; the values stay ints so the labels read "1", "2"
        xs: list[float] = list(range(1, len(values) + 1))
        plt.bar(xs, values, width=0.4)
        for x, lo, hi in zip(xs, lows, highs, strict=True):
            if lo is not None and hi is not None:
                wx = x + WHISKER_OFFSET
                plt.plot([wx, wx], [lo, hi], marker="braille", color="red")
        plt.xticks(xs, [str(x) for x in xs])
        self.refresh()


class LatencyBoxes(PlotextPlot):
    """Latency per cell as box plots (min, quartiles, median, max of its lines)."""

    def show(self, latencies: dict[str, list[float]], order: list[str]) -> None:
        plt = self.plt
        plt.clear_figure()
        boxes: list[Any] = []
        xs: list[float] = []  # ints in practice, so the tick labels read "1", "2"
        for i, cid in enumerate(order, start=1):
            q = quintuple(latencies.get(cid) or [])
            if q is not None:
                xs.append(i)
                boxes.append(q)
        if not boxes:
            plt.title("no latency data")
            self.refresh()
            return
        plt.title("latency (ms) per cell: min, quartiles, median, max")
        # textual-plotext's stub of plotext's figure omits box(), which plotext 5.3 has at runtime
        plt.box(xs, boxes, quintuples=True, width=0.5)  # type: ignore[attr-defined]
        plt.xticks(xs, [str(x) for x in xs])
        self.refresh()
