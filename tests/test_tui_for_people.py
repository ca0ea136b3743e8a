"""The app for people (issue 15): a sweep builder that cannot hang, labels instead of hash ids, a
comparison readable at 80x24, one best cell everywhere, and run statuses that never say "completed"
for anything else."""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest
from rich.text import Text
from tui_support import OLD_RUN_ID, RUN_ID, copy_workspace, seed_store

from llmops_tui.core.compare import short_labels
from llmops_tui.core.format import fmt_money
from llmops_tui.tui.app import LlmopsApp
from llmops_tui.tui.settings import AppSettings

SMALL = (80, 24)


@pytest.fixture(autouse=True)
def _isolated(monkeypatch, tmp_path):
    monkeypatch.setenv("LLMOPS_TUI_CONFIG_DIR", str(tmp_path / "config"))
    monkeypatch.setenv("TZ", "UTC")
    time.tzset()
    monkeypatch.delenv("AOAI_API_KEY", raising=False)


@pytest.fixture
def ws(tmp_path) -> Path:
    return copy_workspace(tmp_path)


def make_app(root: Path) -> LlmopsApp:
    return LlmopsApp(root, settings=AppSettings(), debug=True)


def _plain(widget) -> str:
    rendered = widget.render()
    return rendered.plain if isinstance(rendered, Text) else str(rendered)


def _screen_text(app) -> str:
    """What the terminal shows, as text (the same as a tmux capture)."""
    strips = app.screen._compositor.render_strips()
    return "\n".join("".join(segment.text for segment in strip) for strip in strips)


async def _shows(app, pilot, text: str) -> None:
    """Wait until the screen shows ``text`` (screens load in workers started on mount; under load the first
    frames come late). Gives up after a few seconds and lets the test's own assertion report it."""
    for _ in range(200):
        await _settle(app, pilot)
        if text in _screen_text(app):
            return


async def _settle(app, pilot) -> None:
    await pilot.pause()  # let change messages start their workers
    await app.workers.wait_for_complete()
    await pilot.pause()
    await pilot.pause()


# --------------------------------------------------------------------------------------- the freeze


async def test_typing_a_grid_into_repeat_is_refused_at_once_and_the_app_answers(ws, monkeypatch):
    import llmops_tui.tui.screens.sweep_builder as builder

    planned: list[int] = []
    real_plan = builder.plan_sweep

    def spy(uc, options, **kw):
        plan = real_plan(uc, options, **kw)
        planned.append(len(plan.cells))
        return plan

    monkeypatch.setattr(builder, "plan_sweep", spy)
    app = make_app(ws)
    async with app.run_test(size=SMALL) as pilot:
        await pilot.pause()
        app.open_screen("sweep", use_case="ner")
        await _settle(app, pilot)
        screen = app.screen
        assert len(screen.plan.cells) == 2
        repeat = screen.query_one("#repeat")
        repeat.focus()
        repeat.value = ""
        await pilot.press(*"1_64128")
        await _settle(app, pilot)
        assert repeat.value == "164128"  # digits only
        assert screen.plan is None and screen.query_one("#start").disabled
        assert "164,128 is out of range" in _plain(screen.query_one("#plan-error"))
        assert max(planned) <= builder.MAX_CELLS
        # the app answers the next key at once
        await pilot.press("backspace", "backspace", "backspace", "backspace", "backspace")
        await _settle(app, pilot)
        assert repeat.value == "1" and len(screen.plan.cells) == 2

        # a repeat of 10^9 is refused without building a cell
        planned.clear()
        repeat.value = "1000000000"
        await _settle(app, pilot)
        assert screen.plan is None and planned == []
        assert "out of range" in _plain(screen.query_one("#plan-error"))

        # within every bound but too many cells in all: refused before planning, with the count
        repeat.value = "100"
        screen.query_one("#grid").value = "NER_LLM.temperature=" + ",".join(str(i / 10) for i in range(10))
        await _settle(app, pilot)
        assert screen.plan is None and planned == []
        assert "2,000 cells is too many" in _plain(screen.query_one("#plan-error"))
        await pilot.press("ctrl+g")  # start refuses too, nothing opens
        await pilot.pause()
        assert type(app.screen).__name__ == "SweepBuilderScreen"


async def test_grid_errors_show_beside_the_grid_and_clear_the_old_plan(ws):
    app = make_app(ws)
    async with app.run_test(size=SMALL) as pilot:
        await pilot.pause()
        app.open_screen("sweep", use_case="ner")
        await _settle(app, pilot)
        screen = app.screen
        screen.query_one("#grid").value = "nonsense"
        await pilot.pause()
        assert screen.plan is None
        assert "NODE.param=v1,v2" in _plain(screen.query_one("#grid-error"))
        screen.query_one("#grid").value = "NER_LLM.temperature=0,0.7"
        await _settle(app, pilot)
        assert _plain(screen.query_one("#grid-error")) == ""
        assert len(screen.plan.cells) == 4
        text = _screen_text(app)
        assert "variant_1 · t=0.7" in text  # the plan lists cells by name
        for cell in screen.plan.cells:
            assert cell.cell_id not in text


async def test_sweep_builder_form_is_readable_at_80x24(ws):
    app = make_app(ws)
    async with app.run_test(size=SMALL) as pilot:
        await pilot.pause()
        app.open_screen("sweep", use_case="ner")
        await _settle(app, pilot)
        assert app.screen.has_class("narrow")
        form = app.screen.query_one("#form")
        assert form.size.width >= 40
        assert app.screen.query_one("#repeat").size.width >= 20


# ------------------------------------------------------------------------------------------ labels


def test_short_labels_say_what_differs():
    class C:
        def __init__(self, cid, variants, params, dataset="d1", repeat=0):
            self.cell_id, self.variants, self.params = cid, variants, params
            self.dataset, self.repeat = dataset, repeat

    cells = [
        C("a", {"llm": "variant_0"}, {"llm.temperature": 0}),
        C("b", {"llm": "variant_0"}, {"llm.temperature": 0.7}),
        C("c", {"llm": "variant_2"}, {"llm.temperature": 0.7}, dataset="d2"),
    ]
    assert short_labels(cells) == {
        "a": "variant_0 · t=0 · d1",
        "b": "variant_0 · t=0.7 · d1",
        "c": "variant_2 · t=0.7 · d2",
    }
    assert short_labels([C("x", {"llm": "variant_1"}, {})]) == {"x": "variant_1"}
    twins = short_labels([C("r1:abc", {"llm": "v"}, {}), C("r2:abc", {"llm": "v"}, {})])
    assert len(set(twins.values())) == 2


def test_money_reads_as_money():
    assert fmt_money(0.0376) == "$0.0376"
    assert fmt_money(4.95e-05, signed=True) == "+$0.0000495"
    assert fmt_money(12.3) == "$12.30"
    assert fmt_money(None) == "-"
    assert "e-" not in fmt_money(1e-9)


async def test_compare_at_80x24_shows_metric_names_labels_and_gate_marks(ws):
    cells = seed_store(ws)
    config = ws / "use_cases/ner/llmops.yaml"
    config.write_text(config.read_text().replace(">= 0.5", ">= 0.6"))  # the other cell fails it
    app = make_app(ws)
    async with app.run_test(size=SMALL) as pilot:
        await pilot.pause()
        app.open_screen("compare", run_id=RUN_ID)
        await _shows(app, pilot, "ner_eval.exact_match")
        screen = app.screen
        text = _screen_text(app)
        assert "ner_eval.exact_match" in text and "success rate" in text
        assert "variant_0" in text and "variant_1" in text  # headers are names
        table = screen.query_one("#cmp-table")
        assert table.fixed_columns == 1
        headers = [str(col.label) for col in table.columns.values()]
        assert not any(cells["baseline"] in h or cells["other"] in h for h in headers)
        # gate cells are marks; the reason is in the detail panel of the selected cell
        gate_row = screen.row_keys.index("gate:ner_eval.exact_match >= 0.6")
        marks = [str(table.get_cell_at((gate_row, i))) for i in range(1, len(screen.cell_order) + 1)]
        assert set(marks) <= {"✓ pass", "✗ FAIL"} and "✗ FAIL" in marks
        failing = screen.cell_order[marks.index("✗ FAIL")]
        table.cursor_coordinate = (0, screen.cell_order.index(failing) + 1)
        await pilot.pause()
        detail = _plain(screen.query_one("#cmp-detail"))
        assert "✗ ner_eval.exact_match >= 0.6" in detail and failing in detail
        # every cell column stays narrow
        assert all(col.get_render_width(table) <= 24 for col in list(table.columns.values())[1:])
        # scrolling right keeps the metric names
        await pilot.press("right", "right", "right")
        await pilot.pause()
        assert "ner_eval.exact_match" in _screen_text(app)


async def test_best_cell_agrees_between_home_compare_and_cli(ws, capsys):
    from llmops_tui.cli import main

    seed_store(ws)
    app = make_app(ws)
    async with app.run_test(size=SMALL) as pilot:
        await _settle(app, pilot)
        home_row = next(r for r in app.screen.rows if r.name == "ner")
        home_best = home_row.best_cell_id
        assert home_best is not None
        assert "Best cell" in _screen_text(app) and "Approval" in _screen_text(app)
        app.open_screen("compare", run_id=RUN_ID)
        await _settle(app, pilot)
        compare_best = app.screen.comparison.best_cell()
        assert app.screen.label(compare_best) in _plain(app.screen.query_one("#cmp-head"))
    assert main(["compare", RUN_ID, "--workspace", str(ws), "--json"]) == 0
    cli_best = json.loads(capsys.readouterr().out)["best_cell"]
    assert home_best == compare_best == cli_best


async def test_home_refreshes_when_you_come_back(ws):
    app = make_app(ws)
    async with app.run_test(size=SMALL) as pilot:
        await _settle(app, pilot)
        assert next(r for r in app.screen.rows if r.name == "ner").last_run_id is None
        app.open_screen("runs", use_case="ner")
        await pilot.pause()
        seed_store(ws)  # a sweep, an approval or a deploy changed things meanwhile
        await pilot.press("escape")
        await _settle(app, pilot)
        row = next(r for r in app.screen.rows if r.name == "ner")
        assert row.last_run_id == RUN_ID and row.best_cell_id is not None


# ---------------------------------------------------------------------------------------- statuses


@pytest.mark.parametrize(
    ("status", "words"),
    [
        ("completed", "✓ completed"),
        ("completed_with_errors", "! completed with errors"),
        ("failed", "✗ failed"),
        ("cancelled", "■ cancelled"),
        ("interrupted", "⚡ interrupted"),
    ],
)
async def test_run_monitor_shows_each_end_status_and_no_cell_stays_running(ws, monkeypatch, status, words):
    from llmops_tui.core import events as ev
    from llmops_tui.tui.messages import SweepEventPosted, SweepProgressed
    from llmops_tui.tui.screens.run_monitor import RunMonitorScreen

    seed_store(ws)
    monkeypatch.setattr(RunMonitorScreen, "start", lambda self: None)  # events are posted by the test
    app = make_app(ws)
    async with app.run_test(size=SMALL) as pilot:
        await pilot.pause()
        app.open_screen("monitor", run_id=OLD_RUN_ID)
        await pilot.pause()
        monitor = app.screen
        ids = list(monitor.cell_states)
        monitor.post_message(
            SweepProgressed(
                ev.Progress(
                    OLD_RUN_ID,
                    5,
                    16,
                    0,
                    5,
                    0,
                    0,
                    100,
                    None,
                    1.0,
                    5.0,
                    [ev.CellProgress(ids[0], 3, 8, 0), ev.CellProgress(ids[1], 2, 8, 0)],
                )
            )
        )
        await pilot.pause()
        assert "running" in str(monitor.query_one("#cells").get_cell(ids[0], "status"))
        error = "endpoint refused the connection" if status == "failed" else None
        monitor.post_message(SweepEventPosted(ev.SweepFinished(OLD_RUN_ID, status, {}, error)))
        await pilot.pause()
        head = _plain(monitor.query_one("#run-head"))
        assert words in head
        if status != "completed":
            assert "✓ completed" not in head
        if error:
            assert error in head
        cell_statuses = [str(monitor.query_one("#cells").get_cell(i, "status")) for i in ids]
        assert not any("running" in s for s in cell_statuses)
        # the table names cells, the hash is secondary
        assert str(monitor.query_one("#cells").get_cell(ids[0], "label")) in {"variant_0", "variant_1"}


async def test_home_and_runs_show_statuses_in_words(ws):
    seed_store(ws)
    app = make_app(ws)
    async with app.run_test(size=SMALL) as pilot:
        await _settle(app, pilot)
        assert "✓ completed" in _screen_text(app)
        app.open_screen("runs", use_case="ner")
        await pilot.pause()
        text = _screen_text(app)
        assert "■ cancelled" in text and "✓ completed" in text


async def test_variant_boxes_show_what_the_mode_runs_and_keep_hand_picks(ws):
    app = make_app(ws)
    async with app.run_test(size=SMALL) as pilot:
        await pilot.pause()
        app.open_screen("sweep", use_case="ner")
        await _settle(app, pilot)
        screen = app.screen
        boxes = [screen.query_one(f"#{b}") for b in screen.variant_boxes]
        assert [b.value for b in boxes] == [True, True]  # all combinations: every variant runs
        screen.query_one("#mode-defaults").value = True
        await _settle(app, pilot)
        assert [b.value for b in boxes] == [True, False] and all(b.disabled for b in boxes)
        screen.query_one("#mode-picked").value = True
        await _settle(app, pilot)
        boxes[1].value = True
        boxes[0].value = False
        await _settle(app, pilot)
        assert len(screen.plan.cells) == 1
        screen.query_one("#mode-all").value = True
        await _settle(app, pilot)
        assert [b.value for b in boxes] == [True, True]
        screen.query_one("#mode-picked").value = True
        await _settle(app, pilot)
        assert [b.value for b in boxes] == [False, True] and not boxes[0].disabled


async def test_line_view_puts_the_answer_first_with_the_expected_answer_and_scores(ws):
    cells = seed_store(ws)
    app = make_app(ws)
    async with app.run_test(size=SMALL) as pilot:
        await pilot.pause()
        app.open_screen("line_diff", run_id=RUN_ID, cell_a=cells["baseline"], cell_b=cells["other"])
        await _settle(app, pilot)
        screen = app.screen
        text = _screen_text(app)
        assert "Lines · variant_0 vs variant_1" in text and cells["baseline"] not in text
        await pilot.press("down", "down", "down")  # line 3: only the other cell answers wrongly
        await pilot.pause()
        detail = screen.query_one("#ld-detail")
        from rich.console import Console

        console = Console(width=78, record=True, file=open("/dev/null", "w"))  # noqa: SIM115
        console.print(detail.content)
        shown = console.export_text()
        lines = [ln.strip() for ln in shown.splitlines() if ln.strip()]
        assert lines[0] == "line 3"
        assert '["Somebody Else"]' in lines[2]  # the answer, not {"entities": ...}
        assert "entities" not in lines[2]
        expected = next(ln for ln in lines if ln.startswith("expected:"))
        assert "Somebody Else" not in expected and expected != "expected:"
        assert any(ln.split()[:3] == ["ner_eval.exact_match", "1", "0"] for ln in lines)
        row = json.loads((ws / "use_cases/ner/data/data.jsonl").read_text().splitlines()[3])
        assert row["text"].split()[-1] in shown  # inputs in full, not cut
        await pilot.press("f", "f", "f")  # all -> differ -> failed -> lowest
        await _settle(app, pilot)
        assert screen.only == "lowest"
        assert screen.diffs[0].scores_b.get("ner_eval.exact_match") == 0


async def test_charts_open_at_80x24_with_a_legend_of_cell_names(ws):
    seed_store(ws)
    app = make_app(ws)
    async with app.run_test(size=SMALL) as pilot:
        await pilot.pause()
        app.open_screen("compare", run_id=RUN_ID)
        await _settle(app, pilot)
        await pilot.press("g")
        await _settle(app, pilot)
        await pilot.press("down")
        await _settle(app, pilot)
        assert type(app.screen).__name__ == "CompareScreen"
        legend = _plain(app.screen.query_one("#chart-legend"))
        assert legend == "1 variant_0   2 variant_1"
        assert set(app.screen.latencies) == set(app.screen.cell_order)


async def test_line_view_shows_what_the_flow_printed_on_the_line(ws):
    from rich.console import Console

    from llmops_tui.core.store import RunStore

    cells = seed_store(ws)
    with RunStore.for_workspace(ws) as store:
        line = store.lines(RUN_ID, cells["other"])[0]
        line.logs = {"stdout": "[parse] parsed 3 entities", "stderr": "[parse] careful: empty span"}
        store.record_line(line)
    app = make_app(ws)
    async with app.run_test(size=SMALL) as pilot:
        await pilot.pause()
        app.open_screen("line_diff", run_id=RUN_ID, cell_a=cells["baseline"], cell_b=cells["other"])
        await _settle(app, pilot)
        detail = app.screen.query_one("#ld-detail")
        console = Console(width=78, record=True, file=open("/dev/null", "w"))  # noqa: SIM115
        console.print(detail.content)
        shown = console.export_text()
    assert "B printed (stdout)" in shown and "[parse] parsed 3 entities" in shown
    assert "B printed (stderr)" in shown and "careful: empty span" in shown
    assert "A printed" not in shown


async def test_run_monitor_says_which_cells_cannot_run(ws, monkeypatch):
    from llmops_tui.core import events as ev
    from llmops_tui.tui.messages import SweepEventPosted
    from llmops_tui.tui.screens.run_monitor import RunMonitorScreen

    seed_store(ws)
    monkeypatch.setattr(RunMonitorScreen, "start", lambda self: None)  # events are posted by the test
    app = make_app(ws)
    async with app.run_test(size=SMALL) as pilot:
        await pilot.pause()
        app.open_screen("monitor", run_id=OLD_RUN_ID)
        await pilot.pause()
        monitor = app.screen
        broken, other = list(monitor.cell_states)[:2]
        cause = "flows/standard/flow.dag.yaml: ResolveToolError: No module named 'bs4'"
        monitor.post_message(SweepEventPosted(ev.CellFailed(OLD_RUN_ID, broken, cause)))
        monitor.post_message(SweepEventPosted(ev.CellFinished(OLD_RUN_ID, broken, 0, 0, cause)))
        monitor.post_message(SweepEventPosted(ev.EvaluationFailed(OLD_RUN_ID, other, "ner_eval", "boom")))
        await pilot.pause()
        table = monitor.query_one("#cells")
        assert "cannot run" in str(table.get_cell(broken, "status"))
        assert "ner_eval failed" in str(table.get_cell(other, "status"))
        assert monitor.cell_states[broken] == monitor.cell_states[other] == "failed"
