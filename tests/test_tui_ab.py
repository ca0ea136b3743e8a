"""The A/B screen on an 80x24 terminal: a seeded traffic run (two arms, per-line scores), the comparison
and verdict, live counts, and a promotion that is refused (no router running) shown as an error, never a
crash."""

from __future__ import annotations

import time
from pathlib import Path

import pytest
from tui_support import copy_workspace

from llmops_tui.core.capture import CaptureSettings
from llmops_tui.core.store import RunStore
from llmops_tui.core.traffic import Arm, TrafficRecorder
from llmops_tui.tui.app import LlmopsApp
from llmops_tui.tui.settings import AppSettings


@pytest.fixture(autouse=True)
def _isolated(monkeypatch, tmp_path):
    monkeypatch.setenv("LLMOPS_TUI_CONFIG_DIR", str(tmp_path / "config"))
    monkeypatch.delenv("AOAI_API_KEY", raising=False)


def seed_traffic(root: Path, n: int = 60) -> str:
    """A traffic run of ``ner`` env dev: arm B answers right far more often than arm A."""
    with RunStore.for_workspace(root) as store:
        rec = TrafficRecorder(
            store,
            "ner",
            "dev",
            [Arm("aaaa11112222", "a" * 40, role="A"), Arm("bbbb33334444", "b" * 40, role="B")],
            CaptureSettings(enabled=True),
        )
        for i in range(n):
            for arm in ("aaaa11112222", "bbbb33334444"):
                rec.record(
                    {
                        "request_id": f"{arm}-{i}",
                        "arm": arm,
                        "timestamp": time.time(),
                        "inputs": {"text": f"t{i}"},
                        "outputs": {"entities": []},
                        "status": 200,
                        "latency_ms": 20.0 + i % 7,
                    }
                )
        for arm, right_every in (("aaaa11112222", 2), ("bbbb33334444", 10)):
            rows = [(i, "ok", {"exact_match": 0 if i % right_every == 0 else 1}, None) for i in range(n)]
            store.record_eval_lines(rec.run_id, arm, "ner_eval", rows)
        return rec.run_id


async def test_ab_screen_compares_arms_and_refuses_an_unapproved_promotion(tmp_path):
    root = copy_workspace(tmp_path)
    run_id = seed_traffic(root)
    app = LlmopsApp(root, settings=AppSettings(), debug=True)
    async with app.run_test(size=(80, 24)) as pilot:
        app.open_screen("ab", use_case="ner")
        await pilot.pause()
        await app.workers.wait_for_complete()
        await pilot.pause()
        screen = app.screen
        assert type(screen).__name__ == "ABScreen" and screen.run_id == run_id
        arms = screen.query_one("#ab-arms")
        assert arms.row_count == 2
        verdict = str(screen.query_one("#ab-verdict").render())
        assert "B better on ner_eval.exact_match" in verdict
        info = str(screen.query_one("#ab-info").render())
        assert run_id in info
        # Live counts pick up new requests between comparisons.
        with RunStore.for_workspace(root) as store:
            assert store.traffic_count(run_id) == {"aaaa11112222": 60, "bbbb33334444": 60}
        # Promote asks first; "no" changes nothing.
        await pilot.press("p")
        await pilot.pause()
        assert type(app.screen).__name__ == "ConfirmScreen"
        await pilot.press("n")
        await pilot.pause()
        assert type(app.screen).__name__ == "ABScreen"
        # "yes" with no router running: refused, shown as an error, the app keeps going.
        await pilot.press("p")
        await pilot.pause()
        await pilot.press("y")
        await pilot.pause()
        await app.workers.wait_for_complete()
        await pilot.pause()
        assert type(app.screen).__name__ == "ErrorScreen"
        await pilot.press("escape")
        await pilot.pause()
        assert type(app.screen).__name__ == "ABScreen"
