"""Portable runs: a real sandbox sweep exported from one workspace and imported into another reads the same
everywhere (compare, report, gate, the app); an altered file, an id clash, a running run and keys are refused."""

from __future__ import annotations

import gzip
import json
import os
from pathlib import Path

import pytest
from builders import make_use_case

from llmops_tui.cli import main
from llmops_tui.core.errors import LlmopsError
from llmops_tui.core.portable import export_run
from llmops_tui.core.store import LineRecord, RunStore

pytestmark = pytest.mark.integration

CANARY = "canary-aoai-key-9f8e7d6c5b4a"


def _run(capfd, *args: str) -> tuple[int, str, str]:
    rc = main(list(args))
    out, err = capfd.readouterr()
    return rc, out, err


@pytest.fixture(scope="module")
def exported(tmp_path_factory) -> dict:
    """One sandbox sweep in workspace ``src`` (with a canary key in the environment), exported once."""
    root = tmp_path_factory.mktemp("portable")
    src = root / "src"
    make_use_case(src, rows=5)
    saved = os.environ.get("AOAI_API_KEY")
    os.environ["AOAI_API_KEY"] = CANARY
    try:
        rc = main(["sweep", "tickets", "-w", str(src), "--llm-endpoint", "sandbox", "--json"])
    finally:
        if saved is None:
            os.environ.pop("AOAI_API_KEY", None)
        else:
            os.environ["AOAI_API_KEY"] = saved
    assert rc == 0
    with RunStore.for_workspace(src) as store:
        (run,) = store.list_runs()
    file = root / "run.llmops-run.json.gz"
    assert main(["runs", "export", run.run_id, "-w", str(src), "--out", str(file)]) == 0
    return {"root": root, "src": src, "run_id": run.run_id, "file": file}


def _fresh(tmp_path: Path, name: str = "dst") -> Path:
    ws = tmp_path / name
    make_use_case(ws, rows=5)
    return ws


def _rewrite(src: Path, dst: Path, change) -> None:
    document = json.loads(gzip.decompress(src.read_bytes()))
    change(document)
    dst.write_bytes(gzip.compress(json.dumps(document).encode()))


def test_round_trip_reads_the_same_in_compare_report_gate_and_lines(exported, tmp_path, capfd, monkeypatch):
    monkeypatch.setenv("LLMOPS_APPROVAL_KEY", "portable-approval-key-0123456789")
    capfd.readouterr()
    src, run_id, file = exported["src"], exported["run_id"], exported["file"]
    dst = _fresh(tmp_path)
    rc, out, err = _run(capfd, "runs", "import", str(file), "-w", str(dst))
    assert rc == 0, err
    assert f"imported run {run_id} (completed)" in out

    rc_a, cmp_a, _ = _run(capfd, "compare", run_id, "-w", str(src), "--json")
    rc_b, cmp_b, _ = _run(capfd, "compare", run_id, "-w", str(dst), "--json")
    assert rc_a == rc_b == 0
    assert json.loads(cmp_a) == json.loads(cmp_b)
    assert json.loads(cmp_b)["cells"], cmp_b

    gate_a = _run(capfd, "gate", run_id, "-w", str(src))
    gate_b = _run(capfd, "gate", run_id, "-w", str(dst))
    assert gate_a[0] == gate_b[0] and gate_a[1] == gate_b[1] and "label_match.accuracy" in gate_b[1]

    html = tmp_path / "report.html"
    rc, _, err = _run(capfd, "report", run_id, "-w", str(dst), "--format", "html", "--out", str(html))
    assert rc == 0, err
    assert run_id in html.read_text()

    cell = json.loads(cmp_b)["cells"][0]["cell_id"]
    rc, _, err = _run(
        capfd, "approve", run_id, "--cell", cell, "--env", "dev", "--by", "lead", "-w", str(dst)
    )
    assert rc == 0, err
    rc, out, err = _run(capfd, "verify-approval", "tickets", "--env", "dev", "-w", str(dst))
    assert rc == 0 and f"run {run_id}, cell {cell[:8]}" in out, (out, err)

    with RunStore.for_workspace(src) as a, RunStore.for_workspace(dst) as b:
        ra, rb = a.require_run(run_id), b.require_run(run_id)
        assert rb.status == ra.status == "completed" and rb.summary == ra.summary
        imported = rb.config.pop("imported_from")
        assert rb.config == ra.config
        assert imported["digest"] and imported["host"] and imported["exported_at"]
        assert a.cells(run_id) == b.cells(run_id)
        assert all(c.flow_hash for c in b.cells(run_id))
        assert a.lines(run_id) == b.lines(run_id)  # inputs, outputs, logs, tokens, latency...
        assert a.metrics(run_id) == b.metrics(run_id) and b.metrics(run_id)
        assert a.run_eval_lines(run_id) == b.run_eval_lines(run_id) and b.run_eval_lines(run_id)


def test_the_file_carries_no_key(exported):
    raw = exported["file"].read_bytes()
    text = gzip.decompress(raw).decode()
    assert CANARY not in text and CANARY.encode() not in raw
    document = json.loads(text)
    assert document["format"] == "llmops-run" and document["version"] == 1
    assert document["payload"]["meta"]["tool_version"]
    assert "api_key" not in json.dumps(document["payload"]["run"]["config"])


def test_an_edited_line_output_is_refused_naming_the_lines_section(exported, tmp_path, capfd):
    capfd.readouterr()
    bad = tmp_path / "edited.json.gz"

    def edit(document: dict) -> None:
        line = document["payload"]["lines"][0]
        line["outputs"] = {"category": "billing-but-edited"}

    _rewrite(exported["file"], bad, edit)
    dst = _fresh(tmp_path)
    rc, out, err = _run(capfd, "runs", "import", str(bad), "-w", str(dst))
    assert rc == 2 and out == ""
    assert len(err.strip().splitlines()) == 1 and "Traceback" not in err
    assert "altered" in err and "lines section" in err and str(bad) in err
    assert "cells" not in err and "metrics" not in err
    with RunStore.for_workspace(dst) as store:
        assert store.list_runs() == []


def test_an_edited_digest_record_or_metric_is_refused(exported, tmp_path, capfd):
    capfd.readouterr()
    bad = tmp_path / "metric.json.gz"

    def edit(document: dict) -> None:
        document["payload"]["metrics"][0]["value"] = 0.99
        document["digest"]["payload"] = "0" * 64

    _rewrite(exported["file"], bad, edit)
    rc, _, err = _run(capfd, "runs", "import", str(bad), "-w", str(_fresh(tmp_path)))
    assert rc == 2 and "metrics section" in err

    not_a_run = tmp_path / "junk.gz"
    not_a_run.write_bytes(b"\x1f\x8b garbage")
    rc, _, err = _run(capfd, "runs", "import", str(not_a_run), "-w", str(tmp_path / "x"))
    assert rc == 2 and "not a readable run file" in err and str(not_a_run) in err


def test_import_twice_is_a_no_op_and_so_is_import_into_the_source(exported, tmp_path, capfd):
    capfd.readouterr()
    dst = _fresh(tmp_path)
    assert _run(capfd, "runs", "import", str(exported["file"]), "-w", str(dst))[0] == 0
    with RunStore.for_workspace(dst) as store:
        before = store.require_run(exported["run_id"]).config["imported_from"]
    rc, out, _ = _run(capfd, "runs", "import", str(exported["file"]), "-w", str(dst), "--json")
    assert rc == 0
    assert json.loads(out)["imported"] is False and "already" in json.loads(out)["message"]
    with RunStore.for_workspace(dst) as store:
        assert len(store.list_runs()) == 1
        assert store.require_run(exported["run_id"]).config["imported_from"] == before
    rc, out, _ = _run(capfd, "runs", "import", str(exported["file"]), "-w", str(exported["src"]))
    assert rc == 0 and "already in this workspace" in out


def test_a_different_run_with_the_same_id_is_refused(exported, tmp_path, capfd):
    capfd.readouterr()
    dst = _fresh(tmp_path)
    with RunStore.for_workspace(dst) as store:
        store.create_run(exported["run_id"], "tickets", None, {"note": "another run"})
        store.finish_run(exported["run_id"], "completed", {"cell_count": 0})
    rc, out, err = _run(capfd, "runs", "import", str(exported["file"]), "-w", str(dst))
    assert rc == 2 and out == ""
    assert "a different run with id" in err and exported["run_id"] in err
    with RunStore.for_workspace(dst) as store:
        assert store.require_run(exported["run_id"]).config == {"note": "another run"}


def test_a_running_run_is_refused_and_an_interrupted_one_travels_as_interrupted(tmp_path, capfd):
    ws = tmp_path / "ws"
    with RunStore.for_workspace(ws) as store:
        store.create_run("run-live", "tickets", None, {})  # this process holds it: it is running
        store.create_run("run-dead", "tickets", None, {})
        store._exec("UPDATE runs SET pid=? WHERE run_id='run-dead'", (_dead_pid(),))
    capfd.readouterr()
    rc, out, err = _run(capfd, "runs", "export", "run-live", "-w", str(ws), "--out", str(tmp_path / "f"))
    assert rc == 2 and "still running" in err and not (tmp_path / "f").exists()

    file = tmp_path / "dead.gz"
    assert _run(capfd, "runs", "export", "run-dead", "-w", str(ws), "--out", str(file))[0] == 0
    dst = tmp_path / "dst"
    assert _run(capfd, "runs", "import", str(file), "-w", str(dst))[0] == 0
    with RunStore.for_workspace(dst) as store:
        run = store.require_run("run-dead")
        assert run.status == "interrupted" and run.resumable


def _dead_pid() -> int:
    import subprocess

    proc = subprocess.Popen(["true"])
    proc.wait()
    return proc.pid


def test_export_refuses_a_key_in_the_config_or_in_a_line(tmp_path, monkeypatch):
    with RunStore.for_workspace(tmp_path) as store:
        store.create_run("run-cfg", "tickets", None, {"connection": {"api_key": "sk-literal-0123456789"}})
        store.finish_run("run-cfg", "completed", {})
        with pytest.raises(LlmopsError, match=r"connection\.api_key") as exc:
            export_run(store, "run-cfg", tmp_path / "a.gz")
        assert "sk-literal" not in str(exc.value)

        monkeypatch.setenv("MY_SERVICE_TOKEN", "tok-canary-0123456789")
        store.create_run("run-line", "tickets", None, {})
        store.record_line(
            LineRecord("run-line", "c1", 0, "ok", {"q": "x"}, {"answer": "leaked tok-canary-0123456789"})
        )
        store.finish_run("run-line", "completed", {})
        with pytest.raises(LlmopsError, match="MY_SERVICE_TOKEN appears in the run's lines section") as exc:
            export_run(store, "run-line", tmp_path / "b.gz")
        assert "tok-canary" not in str(exc.value)
    assert not (tmp_path / "a.gz").exists() and not (tmp_path / "b.gz").exists()


async def test_the_app_compares_an_imported_run(exported, tmp_path, monkeypatch):
    from llmops_tui.tui.app import LlmopsApp
    from llmops_tui.tui.settings import AppSettings

    monkeypatch.setenv("LLMOPS_TUI_CONFIG_DIR", str(tmp_path / "config"))
    dst = _fresh(tmp_path)
    assert main(["runs", "import", str(exported["file"]), "-w", str(dst)]) == 0
    shown = {}
    for ws in (exported["src"], dst):
        app = LlmopsApp(ws, settings=AppSettings(), debug=True)
        async with app.run_test(size=(140, 45)) as pilot:
            await pilot.pause()
            app.open_screen("compare", run_id=exported["run_id"])
            await pilot.pause()
            await app.workers.wait_for_complete()
            await pilot.pause()
            screen = app.screen
            assert type(screen).__name__ == "CompareScreen" and screen.comparison is not None
            shown[ws] = (list(screen.cell_order), screen.comparison.to_dict())
    assert shown[exported["src"]] == shown[dst] and shown[dst][0]


def test_runs_listing_still_takes_a_use_case_and_options_after_it(exported, capfd):
    capfd.readouterr()
    rc, out, _ = _run(capfd, "runs", "tickets", "-w", str(exported["src"]), "--json")
    assert rc == 0 and [r["run_id"] for r in json.loads(out)["runs"]] == [exported["run_id"]]
    rc, out, _ = _run(capfd, "runs", "other", "-w", str(exported["src"]), "--json")
    assert rc == 0 and json.loads(out)["runs"] == []


def test_a_failed_insert_leaves_nothing_behind(exported, tmp_path):
    """The import is one transaction: a row the store rejects (here a duplicated line) rolls back the run,
    its cells and every line written before it."""
    from llmops_tui.core.errors import StorageError

    with RunStore.for_workspace(exported["src"]) as src:
        run = src.require_run(exported["run_id"])
        cells, lines = src.cells(run.run_id), src.lines(run.run_id)
    with RunStore.for_workspace(tmp_path / "dst") as store:
        with pytest.raises(StorageError):
            store.insert_run(run, cells, [*lines, lines[-1]], [], [])
        assert store.run_by_exact_id(run.run_id) is None
        assert store.cells(run.run_id) == [] and store.lines(run.run_id) == []
        store.insert_run(run, cells, lines, [], [])  # and the store is usable afterwards
        assert len(store.lines(run.run_id)) == len(lines)
