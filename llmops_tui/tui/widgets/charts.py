"""Terminal charts for the Compare screen (textual-plotext): metric bars with CI whiskers, latency
distribution. Imported only when the charts are opened."""

from __future__ import annotations

from typing import Any

from textual_plotext import PlotextPlot


class MetricBars(PlotextPlot):
    """One bar per cell for one metric, with its 95% CI drawn as a whisker."""

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
        xs = list(range(1, len(values) + 1))
        plt.bar(xs, values, width=0.4)
        for x, lo, hi in zip(xs, lows, highs, strict=True):
            if lo is not None and hi is not None:
                plt.plot([x, x], [lo, hi], marker="braille", color="red")
        plt.xticks(xs, labels)
        self.refresh()


class LatencyHistogram(PlotextPlot):
    """Latency distribution per cell over shared bins (from the comparison's latency_hist)."""

    def show(self, hist: dict[str, Any], labels: dict[str, str]) -> None:
        plt = self.plt
        plt.clear_figure()
        plt.title("latency (ms): lines per bin")
        edges = hist.get("edges") or []
        if len(edges) < 2:
            plt.title("no latency data")
            self.refresh()
            return
        centers = [round((a + b) / 2) for a, b in zip(edges[:-1], edges[1:], strict=True)]
        for cell_id, counts in (hist.get("counts") or {}).items():
            plt.plot(centers, counts, label=labels.get(cell_id, cell_id), marker="braille")
        self.refresh()
