"""Hostile input at run time: what only shows when lines run. Each case is a mutation of a small use case,
the `llmops sweep` arguments, and what a person (and CI) must see: the exit code, the run's status in the
store and a fragment of the one-line cause. No case may end "completed" with exit 0 while something failed,
and none may print a traceback. Plan-time checks (flows that cannot load, bad options) and security cases
live in tests/test_hostile_plan.py and tests/test_hostile_security.py.
"""

from __future__ import annotations

import json
import socket
import textwrap
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pytest
from builders import make_use_case

from llmops_tui.cli import main
from llmops_tui.core.store import RunStore

pytestmark = pytest.mark.integration

UC = "tickets"


def _uc(ws: Path) -> Path:
    return ws / "use_cases" / UC


def _write(ws: Path, rel: str, text: str) -> None:
    (_uc(ws) / rel).write_text(textwrap.dedent(text))


def _parse_raising_on(predicate: str) -> Callable[[Path], None]:
    def mutate(ws: Path) -> None:
        _write(
            ws,
            "flows/standard/parse.py",
            f"""\
            from promptflow.core import tool


            @tool
            def parse(answer: str) -> str:
                if {predicate}:
                    raise ValueError("parse refused this answer")
                return answer.strip().lower()
            """,
        )

    return mutate


def _import_missing_package(ws: Path) -> None:
    path = _uc(ws) / "flows" / "standard" / "parse.py"
    # A dynamic import: a plain `import` is refused at plan time (tests/test_hostile_plan.py); this one
    # only shows when the flow loads.
    path.write_text('__import__("no_such_package_xyz")\n' + path.read_text())


def _printing_flow(ws: Path) -> None:
    _write(
        ws,
        "flows/standard/parse.py",
        """\
        import sys

        from promptflow.core import tool


        @tool
        def parse(answer: str) -> str:
            print("parse saw:", answer)
            print("a warning on stderr", file=sys.stderr)
            return answer.strip().lower()
        """,
    )


def _eval_score_raising_on_some(ws: Path) -> None:
    _write(
        ws,
        "flows/evaluation/score.py",
        """\
        from promptflow.core import tool


        @tool
        def score(category: str, label: str) -> int:
            if label == "billing":
                raise RuntimeError("cannot score billing")
            return int(category == label)
        """,
    )


def _eval_aggregate_raising(ws: Path) -> None:
    _write(
        ws,
        "flows/evaluation/aggregate.py",
        """\
        from typing import List

        from promptflow.core import tool


        @tool
        def aggregate(scores: List[int]) -> dict:
            raise ZeroDivisionError("aggregate broke")
        """,
    )


def _eval_missing_module(ws: Path) -> None:
    path = _uc(ws) / "flows" / "evaluation" / "score.py"
    path.write_text(
        '__import__("no_such_eval_package")  # dynamic: only loading finds it\n' + path.read_text()
    )


def _rows_missing_column(which: str) -> Callable[[Path], None]:
    def mutate(ws: Path) -> None:
        path = _uc(ws) / "data" / "tickets.jsonl"
        rows = [json.loads(x) for x in path.read_text().splitlines() if x.strip()]
        for i, row in enumerate(rows):
            if which == "all" or i % 2 == 0:
                row["text"] = row.pop("ticket")
        path.write_text("\n".join(json.dumps(r) for r in rows) + "\n")

    return mutate


def _corrupt_store(ws: Path) -> None:
    store = ws / ".llmops" / "store.sqlite"
    store.parent.mkdir(parents=True, exist_ok=True)
    store.write_bytes(b"this is not a database, it is a text file " * 200)


def _nothing(ws: Path) -> None:
    pass


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@dataclass
class Case:
    id: str
    mutate: Callable[[Path], None]
    args: list[str]
    rc: int
    status: str | None  # the run's status in the store (None: no run was recorded)
    fragment: str  # in the one-line cause (stderr, or the JSON's error)
    endpoint: str = "sandbox"  # "sandbox" | "dead"
    one_line: bool = True  # typer's own usage errors print a usage block


CASES = [
    Case("healthy run", _nothing, [], 0, "completed", ""),
    Case(
        "every line raises",
        _parse_raising_on("True"),
        [],
        1,
        "failed",
        "every line failed",
    ),
    Case(
        "some lines raise",
        _parse_raising_on("'#1)' in answer or 'bill' in answer"),
        [],
        1,
        "completed_with_errors",
        "lines failed",
    ),
    Case(
        "some lines raise, within --max-error-rate",
        _parse_raising_on("'bill' in answer"),
        ["--max-error-rate", "0.9"],
        0,
        "completed_with_errors",
        "lines failed",
    ),
    Case(
        "a python node imports a package that is not installed",
        _import_missing_package,
        [],
        1,
        "failed",
        "no_such_package_xyz",
    ),
    Case("dead endpoint", _nothing, [], 1, "failed", "every line failed", endpoint="dead"),
    Case(
        "half the rows lack the mapped column",
        _rows_missing_column("half"),
        [],
        1,
        "completed_with_errors",
        "has no column 'ticket'",
    ),
    Case(  # caught before the sweep starts: no line could run
        "every row lacks the mapped column",
        _rows_missing_column("all"),
        [],
        2,
        None,
        "column 'ticket' is not in dataset 'tickets_train'",
    ),
    Case("a flow that prints", _printing_flow, [], 0, "completed", ""),
    Case(
        "an evaluator fails on some lines",
        _eval_score_raising_on_some,
        [],
        1,
        "completed_with_errors",
        "evaluation lines failed",
    ),
    Case(
        "an evaluator's aggregation raises",
        _eval_aggregate_raising,
        [],
        1,
        "failed",
        "aggregation node aggregate failed",
    ),
    Case(
        "an evaluator that cannot load",
        _eval_missing_module,
        [],
        1,
        "failed",
        "no_such_eval_package",
    ),
    Case("a corrupt run store", _corrupt_store, [], 1, None, "the run store is corrupt"),
    Case("resume of a run that does not exist", _nothing, ["--resume", "nosuchrun"], 2, None, "no run"),
    Case(
        "--max-error-rate out of range",
        _nothing,
        ["--max-error-rate", "1.5"],
        2,
        None,
        "max-error-rate",
        one_line=False,
    ),
]


@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
def test_hostile_runtime(case: Case, tmp_path, capfd, monkeypatch):
    monkeypatch.chdir(tmp_path)
    make_use_case(tmp_path, rows=6)
    case.mutate(tmp_path)
    endpoint = "sandbox" if case.endpoint == "sandbox" else f"http://127.0.0.1:{_free_port()}/v1"
    args = ["sweep", *([] if "--resume" in case.args else [UC])]
    args += ["--workspace", str(tmp_path), "--llm-endpoint", endpoint, "--variants", "defaults"]
    args += ["--json", *case.args]
    rc = main(args)
    out, err = capfd.readouterr()
    assert "Traceback" not in out + err
    assert rc == case.rc, (out, err)
    summary = json.loads(out) if out.strip() else None  # stdout is exactly one JSON object, or nothing
    if case.status is not None:
        assert summary is not None and summary["status"] == case.status, (summary, err)
        assert summary["exit_code"] == case.rc
        with RunStore.for_workspace(tmp_path) as store:
            assert store.require_run(summary["run_id"]).status == case.status
        if case.status != "completed":
            assert case.fragment in (summary["error"] or ""), summary["error"]
            assert "\n" not in summary["error"]
        else:
            assert summary["error"] is None and summary["errors"] == 0
    else:
        assert case.fragment in err, err
        if case.one_line:
            assert len(err.strip().splitlines()) == 1, err
    if case.status == "completed_with_errors" or case.status == "failed":
        assert case.rc != 0 or "--max-error-rate" in case.args  # never silent


def test_printed_output_is_kept_with_the_line(tmp_path, capfd, monkeypatch):
    monkeypatch.chdir(tmp_path)
    make_use_case(tmp_path, rows=3)
    _printing_flow(tmp_path)
    rc = main(
        ["sweep", UC, "-w", str(tmp_path), "--llm-endpoint", "sandbox", "--variants", "defaults", "--json"]
    )
    out, _ = capfd.readouterr()
    assert rc == 0
    summary = json.loads(out)
    with RunStore.for_workspace(tmp_path) as store:
        lines = store.lines(summary["run_id"])
    assert len(lines) == 3
    for line in lines:
        assert line.logs is not None
        assert "[parse] " in line.logs["stdout"] and "parse saw:" in line.logs["stdout"]
        assert "a warning on stderr" in line.logs["stderr"]
