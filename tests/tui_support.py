"""Shared helpers for the app's tests: a copy of the fixture workspace and a seeded run store with fixed
ids, times and values (so snapshots are deterministic without running the engine)."""

from __future__ import annotations

import shutil
from pathlib import Path

FIXTURE = Path(__file__).parent / "fixtures" / "tui_workspace"
RUN_ID = "20250101-120000-a1b2c3"
OLD_RUN_ID = "20241231-090000-d4e5f6"
T0 = 1735732800.0  # 2025-01-01 12:00 UTC


def copy_workspace(tmp_path: Path) -> Path:
    root = tmp_path / "workspace"
    shutil.copytree(FIXTURE, root)
    return root


def seed_store(root: Path) -> dict[str, str]:
    """Two runs of ``ner``: a completed 2-cell run with metrics and per-line scores, and a cancelled one."""
    import json

    from llmops_tui.core.store import CellRecord, LineRecord, RunStore
    from llmops_tui.core.sweep import SweepOptions, plan_sweep
    from llmops_tui.core.workspace import load_workspace

    uc = load_workspace(root).get("ner")
    plan = plan_sweep(uc, SweepOptions(llm_endpoint="sandbox"))
    base, other = plan.cells[0], plan.cells[1]
    rows = [
        json.loads(x) for x in (root / "use_cases/ner/data/data.jsonl").read_text().splitlines() if x.strip()
    ]
    truth = [
        json.loads(x)["results"]
        for x in (root / "use_cases/ner/data/eval_data.jsonl").read_text().splitlines()
        if x.strip()
    ]
    store = RunStore.for_workspace(root)
    for run_id, status, started in ((OLD_RUN_ID, "cancelled", T0 - 97200), (RUN_ID, "completed", T0)):
        config = {
            "options": plan.options.to_dict(),
            "defaults": plan.defaults,
            "cell_count": 2,
            "llm_endpoint": "sandbox",
            "baseline": base.cell_id,
        }
        store.create_run(run_id, "ner", None, config)
        store.add_cells(
            run_id,
            [
                CellRecord(
                    run_id, c.cell_id, c.idx, c.variants, c.params, c.dataset, c.repeat, None, c.lines, "done"
                )
                for c in (base, other)
            ],
        )
        done = len(rows) if status == "completed" else 3
        for cell, wrong_every in ((base, 4), (other, 2)):
            evals = []
            for i, row in enumerate(rows[:done]):
                right = i % wrong_every != 1
                entities = truth[i] if right else ["Somebody Else"]
                store.record_line(
                    LineRecord(
                        run_id,
                        cell.cell_id,
                        i,
                        "ok",
                        row,
                        {"entities": entities},
                        latency_ms=40.0 + 7 * i + (15 if cell is other else 0),
                        prompt_tokens=60 + i,
                        completion_tokens=9,
                        total_tokens=69 + i,
                        llm_calls=1,
                        finished_at=started + i,
                    )
                )
                evals.append((i, "ok", {"exact_match": int(right), "f1": 1.0 if right else 0.0}, None))
            store.record_eval_lines(run_id, cell.cell_id, "ner_eval", evals)
            score = sum(e[2]["exact_match"] for e in evals) / max(len(evals), 1)
            store.record_metrics(run_id, cell.cell_id, "ner_eval", {"exact_match": score, "f1": score})
        summary = {"cell_count": 2, "lines_done": 2 * done, "errors": 0}
        store.finish_run(run_id, status, summary)
        store._exec(
            "UPDATE runs SET started_at=?, finished_at=? WHERE run_id=?", (started, started + 42, run_id)
        )
    store.close()
    return {"baseline": base.cell_id, "other": other.cell_id}


def plain(widget) -> str:
    """A widget's text as shown: its rendered Text, else what rich prints of its content (200 columns)."""
    rendered = widget.render()
    if hasattr(rendered, "plain"):
        return rendered.plain
    from rich.console import Console

    console = Console(width=200, record=True, color_system=None)
    console.print(getattr(widget, "renderable", None) or getattr(widget, "content", None) or rendered)
    return console.export_text()
