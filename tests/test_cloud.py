"""Cloud sweeps on Azure ML, driven end to end with substituted Azure clients.

The substitutes stand at the Azure boundary only: they record every call and answer with the SDK's own
entities (``promptflow.entities.Run`` built the way the real client builds it from run history,
``azure.ai.ml.entities.Data``, pandas DataFrames shaped like ``get_details``). Everything else is real:
materialised flows on disk, the SQLite run store, the comparison.
"""

from __future__ import annotations

import json
import shutil
import socket
import subprocess
import sys
import threading
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
import yaml
from builders import make_use_case

from llmops_tui.core import events as ev
from llmops_tui.core.cloud import (
    AzureCoords,
    azure_coords,
    cloud_plan,
    describe_cloud_plan,
    details_rows,
    run_cloud_sweep,
)
from llmops_tui.core.errors import LlmopsError
from llmops_tui.core.store import RunStore
from llmops_tui.core.sweep import SweepOptions, plan_sweep
from llmops_tui.core.workspace import load_workspace

REPO = Path(__file__).resolve().parent.parent
COORDS = AzureCoords("sub-123", "rg-llmops", "ws-llmops", instance_type="Standard_D2as_v4")


# ------------------------------------------------------------------------------------ substitutes


class FakeDataOps:
    """``MLClient.data``: versions per name, ``get(label='latest')`` raising ResourceNotFoundError."""

    def __init__(self) -> None:
        self.assets: dict[str, list[Any]] = {}
        self.calls: list[tuple[str, Any]] = []

    def get(self, name: str, version: str | None = None, label: str | None = None) -> Any:
        from azure.core.exceptions import ResourceNotFoundError

        self.calls.append(("get", name))
        versions = self.assets.get(name)
        if not versions:
            raise ResourceNotFoundError(f"Asset {name} not found")
        if version is not None:
            return next(v for v in versions if v.version == version)
        return versions[-1]

    def list(self, name: str | None = None) -> list[Any]:
        return list(self.assets.get(name or "", []))

    def create_or_update(self, data: Any) -> Any:
        from azure.ai.ml.entities import Data

        self.calls.append(("create_or_update", data))
        stored = Data(
            name=data.name,
            version=data.version,
            path=str(data.path),
            type=data.type,
            tags=dict(data.tags or {}),
            description=data.description,
        )
        self.assets.setdefault(data.name, []).append(stored)
        return stored

    def local_path(self, ref: str) -> Path:
        _, name, version = ref.split(":")
        data = next(v for v in self.assets[name] if v.version == version)
        return Path(data.path)


class FakeMLClient:
    def __init__(self) -> None:
        self.data = FakeDataOps()


def _rows(path: Path) -> list[dict[str, Any]]:
    return [json.loads(x) for x in path.read_text().splitlines() if x.strip()]


def _map(
    mapping: dict[str, str], row: dict[str, Any], outputs: dict[str, Any] | None = None
) -> dict[str, Any]:
    out = {}
    for key, value in mapping.items():
        kind, _, name = value.strip("${}").rpartition(".")
        out[key] = (outputs or {}).get(name) if kind == "run.outputs" else row.get(name)
    return out


class FakeRunOps:
    """``PFClient.runs``: each run goes NotStarted -> Running (with line counts) -> final status, one step per
    ``get``. ``fail`` maps a run-name fragment to an error message; ``hang`` keeps runs running."""

    def __init__(self, data: FakeDataOps, *, fail: dict[str, str] | None = None, hang: bool = False):
        self.data = data
        self.fail = fail or {}
        self.hang = hang
        self.calls: list[tuple[str, Any]] = []
        self.submitted: dict[str, dict[str, Any]] = {}

    # what the cloud "ran"
    def _snapshot(self, run: Any) -> dict[str, Any]:
        flow = Path(run.flow)
        dag = yaml.safe_load((flow / "flow.dag.yaml").read_text())
        return {
            "entity": run,
            "flow": flow,
            "dag": dag,
            "files": sorted(p.name for p in flow.iterdir()),
            "prompts": {p.name: p.read_text() for p in flow.glob("*.jinja2")},
            "polls": 0,
            "cancelled": False,
        }

    def create_or_update(self, run: Any, **kwargs: Any) -> Any:
        self.calls.append(("create_or_update", run.name))
        snap = self._snapshot(run)
        snap["kwargs"] = kwargs
        self.submitted[run.name] = snap
        return self._entity(run.name, "NotStarted")

    def _final(self, name: str) -> tuple[str, str | None]:
        for fragment, message in self.fail.items():
            if fragment in name:
                return "Failed", message
        return "Completed", None

    def _entity(self, name: str, status: str, error: str | None = None, props: dict | None = None) -> Any:
        from promptflow._sdk.entities._run import Run

        snap = self.submitted[name]
        entity = snap["entity"]
        return Run._from_run_history_entity(
            {
                "runId": name,
                "runType": "azureml.promptflow.FlowRun",
                "createdUtc": "2025-01-01T00:00:00Z",
                "status": status,
                "displayName": entity.display_name,
                "description": None,
                "tags": entity.tags,
                "properties": {"azureml.promptflow.flow_name": snap["flow"].name, **(props or {})},
                "portal_url": f"https://ml.azure.com/prompts/flow/bulkrun/run/{name}/details",
                "createdBy": {"userName": "test"},
                "data": entity.data,
                "run": entity.run,
                "output": None,
                "error": {"error": {"message": error}} if error else None,
            }
        )

    def get(self, run: Any, **kwargs: Any) -> Any:
        name = run if isinstance(run, str) else run.name
        self.calls.append(("get", name))
        snap = self.submitted[name]
        snap["polls"] += 1
        lines = len(self._data_rows(name))
        if snap["cancelled"]:
            return self._entity(name, "Canceled")
        if snap["polls"] == 1 or self.hang:
            half = {"__pf__.lines.completed": lines // 2, "__pf__.lines.failed": 0}
            return self._entity(name, "Running", props={"system_metrics": half})
        status, error = self._final(name)
        return self._entity(name, status, error, props={"azureml.promptflow.total_tokens": "240"})

    def cancel(self, run: Any, **kwargs: Any) -> None:
        name = run if isinstance(run, str) else run.name
        self.calls.append(("cancel", name))
        self.submitted[name]["cancelled"] = True

    def _data_rows(self, name: str) -> list[dict[str, Any]]:
        return _rows(self.data.local_path(self.submitted[name]["entity"].data))

    def _outputs(self, name: str) -> list[dict[str, Any]]:
        """The standard flow's outputs: variant_1's careful prompt gets every label right, variant_0 only
        the even lines (so the two cells differ measurably)."""
        snap = self.submitted[name]
        careful = any("carefully" in t for t in snap["prompts"].values())
        out = []
        for i, row in enumerate(self._data_rows(name)):
            out.append({"category": row["label"] if careful or i % 2 == 0 else "other"})
        return out

    def get_details(self, run: Any, max_results: int = 100, all_results: bool = False, **kw: Any) -> Any:
        name = run if isinstance(run, str) else run.name
        self.calls.append(("get_details", name))
        snap = self.submitted[name]
        entity = snap["entity"]
        rows = self._data_rows(name)
        if entity.run:  # an evaluation run: base outputs + its own data
            base = self._outputs(entity.run)
            inputs = [_map(entity.column_mapping, r, base[i]) for i, r in enumerate(rows)]
            outputs = [{"correct": int(x["category"] == x["label"])} for x in inputs]
        else:
            inputs = [_map(entity.column_mapping, r) for r in rows]
            outputs = self._outputs(name)
        data: dict[str, list[Any]] = {}
        for k in inputs[0]:
            data[f"inputs.{k}"] = [x[k] for x in inputs]
        data["inputs.line_number"] = list(range(len(rows)))
        for k in outputs[0]:
            data[f"outputs.{k}"] = [x[k] for x in outputs]
        data["outputs.line_number"] = list(range(len(rows)))
        return pd.DataFrame(data).set_index("outputs.line_number")

    def get_metrics(self, run: Any, **kwargs: Any) -> dict[str, Any]:
        name = run if isinstance(run, str) else run.name
        self.calls.append(("get_metrics", name))
        df = self.get_details(name)
        return {"accuracy": round(float(df["outputs.correct"].mean()), 4)}

    def names(self, kind: str) -> list[str]:
        return [n for k, n in self.calls if k == kind]


class FakePFClient:
    def __init__(self, **kwargs: Any) -> None:
        self.ml_client = FakeMLClient()
        self.runs = FakeRunOps(self.ml_client.data, **kwargs)


# ---------------------------------------------------------------------------------------- helpers


def _setup(tmp_path: Path, rows: int = 6) -> tuple[Path, Any]:
    make_use_case(tmp_path, "tickets", rows)
    ws = load_workspace(tmp_path)
    return tmp_path, ws.get("tickets")


def _sweep(ws_root: Path, uc: Any, client: Any, options: SweepOptions | None = None, **kw: Any) -> list[Any]:
    plan = plan_sweep(uc, options or SweepOptions(variants="all"))
    return list(run_cloud_sweep(ws_root, uc, plan, client=client, coords=COORDS, poll_interval=0, **kw))


# ------------------------------------------------------------------------------------ coordinates


def test_coords_from_env_then_llmops_yaml(tmp_path: Path) -> None:
    _, uc = _setup(tmp_path)
    env = {
        "SUBSCRIPTION_ID": "s",
        "RESOURCE_GROUP_NAME": "rg",
        "WORKSPACE_NAME": "w",
        "COMPUTE_TARGET": "cpu",
    }
    c = azure_coords(uc, env=env)
    assert (c.subscription_id, c.resource_group, c.workspace_name, c.resources) == (
        "s",
        "rg",
        "w",
        {"compute": "cpu"},
    )

    (uc.path / "llmops.yaml").write_text(
        "azureml:\n  subscription_id: s2\n  resource_group: rg2\n  workspace_name: w2\n"
        "  instance_type: Standard_D2as_v4\n"
    )
    uc = load_workspace(tmp_path).get("tickets")
    c = azure_coords(uc, env={"WORKSPACE_NAME": "from-env"})
    assert (c.subscription_id, c.workspace_name) == ("s2", "from-env")
    assert c.resources == {"instance_type": "Standard_D2as_v4"}


def test_missing_coordinate_names_the_variable(tmp_path: Path) -> None:
    _, uc = _setup(tmp_path)
    with pytest.raises(LlmopsError, match="RESOURCE_GROUP_NAME"):
        azure_coords(uc, env={"SUBSCRIPTION_ID": "s", "WORKSPACE_NAME": "w"})
    loose = azure_coords(uc, env={}, strict=False)
    assert loose.missing == ["SUBSCRIPTION_ID", "RESOURCE_GROUP_NAME", "WORKSPACE_NAME"]
    assert loose.subscription_id == "${SUBSCRIPTION_ID}"


# --------------------------------------------------------------------------------------- dry run


def test_dry_run_plan_on_bundled_use_case_without_network(tmp_path: Path, monkeypatch) -> None:
    shutil.copytree(
        REPO / "use_cases" / "support_ticket_classification",
        tmp_path / "use_cases" / "support_ticket_classification",
    )

    def refuse(*args: Any, **kwargs: Any) -> None:
        raise OSError("network access in a dry run")

    monkeypatch.setattr(socket.socket, "connect", refuse)
    monkeypatch.setattr(socket.socket, "connect_ex", refuse)
    monkeypatch.setattr(socket, "create_connection", refuse)
    uc = load_workspace(tmp_path).get("support_ticket_classification")
    plan = plan_sweep(uc, SweepOptions(variants="all"))
    coords = azure_coords(uc, env={}, strict=False)
    out = cloud_plan(tmp_path, uc, plan, coords)
    assert len(out["runs"]) == len(plan.cells) >= 2
    assert len(out["evaluation_runs"]) == len(plan.cells)
    assert {a["name"] for a in out["data_assets"]} == {"tickets", "tickets_eval"}
    assert all(len(a["sha256"]) == 64 and a["tags"]["sha256"] == a["sha256"] for a in out["data_assets"])
    for r in out["runs"]:
        dag = yaml.safe_load((Path(r["flow"]) / "flow.dag.yaml").read_text())
        assert "node_variants" not in dag and r["data"].startswith("azureml:tickets:")
    for e in out["evaluation_runs"]:
        assert e["run"] in {r["name"] for r in out["runs"]}
    assert out["connections"] and all("api_key" not in json.dumps(c) for c in out["connections"])
    json.dumps(out)  # printable as --json
    text = "\n".join(describe_cloud_plan(out))
    assert "SUBSCRIPTION_ID" in text and "label_match on run" in text and "sha256" in text


def test_cloud_plan_imports_no_azure_sdk(tmp_path: Path) -> None:
    make_use_case(tmp_path, "tickets", 4)
    code = (
        "import sys; from pathlib import Path\n"
        "from llmops_tui.core.workspace import load_workspace\n"
        "from llmops_tui.core.sweep import plan_sweep\n"
        "from llmops_tui.core.cloud import azure_coords, cloud_plan\n"
        f"root = Path({str(tmp_path)!r}); uc = load_workspace(root).get('tickets')\n"
        "p = cloud_plan(root, uc, plan_sweep(uc), azure_coords(uc, env={}, strict=False))\n"
        "bad = [m for m in sys.modules if m.startswith(('promptflow', 'azure'))]\n"
        "assert not bad, bad\nprint(len(p['runs']))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=REPO, timeout=60)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "2"


def test_llm_endpoint_is_local_only(tmp_path: Path) -> None:
    ws_root, uc = _setup(tmp_path)
    plan = plan_sweep(uc, SweepOptions(llm_endpoint="sandbox"))
    with pytest.raises(LlmopsError, match="--llm-endpoint"):
        cloud_plan(ws_root, uc, plan, COORDS)


# ------------------------------------------------------------------------------------- full path


def test_cloud_sweep_end_to_end(tmp_path: Path) -> None:
    from llmops_tui.core.compare import build_comparison

    ws_root, uc = _setup(tmp_path, rows=6)
    client = FakePFClient()
    events = _sweep(ws_root, uc, client)

    assert isinstance(events[0], ev.SweepStarted) and isinstance(events[-1], ev.SweepFinished)
    run_id = events[0].run_id
    fin = events[-1]
    assert fin.status == "completed", fin.error
    assert fin.summary["lines_done"] == 12 and fin.summary["cell_count"] == 2
    assert [c["metrics"]["label_match"]["accuracy"] for c in fin.summary["cells"]] == [0.5, 1.0]

    # data: both datasets registered once, tagged with their content hash
    created = [d for k, d in client.ml_client.data.calls if k == "create_or_update"]
    assert sorted(d.name for d in created) == ["tickets_eval", "tickets_train"]
    assert all(len(d.tags["sha256"]) == 64 and d.type == "uri_file" for d in created)

    # one run per cell with the materialised flow of that cell
    runs = client.runs
    base = [
        n
        for n in runs.names("create_or_update")
        if "llmops.evaluator" not in runs.submitted[n]["entity"].tags
    ]
    assert len(base) == 2
    for name in base:
        snap = runs.submitted[name]
        assert "node_variants" not in snap["dag"]
        classify = next(n for n in snap["dag"]["nodes"] if n["name"] == "classify")
        prompt = classify["source"]["path"]
        assert prompt in snap["prompts"] and len(snap["prompts"]) == 1  # the chosen variant's prompt only
        entity = snap["entity"]
        assert entity.data == "azureml:tickets_train:1"
        assert entity.column_mapping == {"ticket": "${data.ticket}"}
        assert entity._resources == {"instance_type": "Standard_D2as_v4"}
        assert entity.environment_variables["PF_WORKER_COUNT"] == "16"
        assert entity.connections == {}  # connections stay the workspace's, by name
        assert entity._experiment_name == "tickets"
    prompts = {next(iter(runs.submitted[n]["prompts"])) for n in base}
    assert prompts == {"prompt_v0.jinja2", "prompt_v1.jinja2"}

    # evaluation runs wired to their base runs with the evaluator's mappings and data
    evals = [n for n in runs.names("create_or_update") if n not in base]
    assert len(evals) == 2
    for name in evals:
        entity = runs.submitted[name]["entity"]
        assert entity.run in base and name.startswith(entity.run)
        assert entity.data == "azureml:tickets_eval:1"
        assert entity.column_mapping == {"category": "${run.outputs.category}", "label": "${data.label}"}

    # progress from polling, per cell
    progress = [e for e in events if isinstance(e, ev.Progress)]
    assert progress and progress[0].done == 6 and progress[0].total == 12  # half of each run, mid-way
    assert progress[-1].done == 12 and len(progress[-1].cells) == 2
    assert sum(isinstance(e, ev.CellFinished) for e in events) == 2
    assert sum(isinstance(e, ev.MetricsReady) for e in events) == 2

    # results landed in the store like a local run
    with RunStore.for_workspace(ws_root) as store:
        run = store.get_run(run_id)
        assert run.target == "azureml" and run.status == "completed"
        assert run.config["baseline"] and run.config["defaults"] == {"classify": "variant_0"}
        for cell in store.cells(run_id):
            assert cell.status == "done"
            assert cell.extra["cloud_run"] in base
            assert cell.extra["portal_url"].startswith("https://ml.azure.com/")
            assert cell.extra["label"].startswith("classify=")
            lines = store.lines(run_id, cell.cell_id)
            assert [ln.line for ln in lines] == list(range(6))
            assert lines[0].inputs == {
                "ticket": "I was charged twice for my subscription, please refund (#0)"
            }
            assert lines[0].outputs == {"category": "billing"}
            ev_lines = store.eval_lines(run_id, cell.cell_id, "label_match")
            assert len(ev_lines) == 6 and set(ev_lines[0]["outputs"]) == {"correct"}
        comparison = build_comparison(store, run_id, workspace_root=ws_root)
    assert len(comparison.cells) == 2
    assert comparison.gates  # llmops.yaml gates evaluated on cloud results


def test_second_sweep_reuses_data_until_the_file_changes(tmp_path: Path) -> None:
    ws_root, uc = _setup(tmp_path, rows=4)
    client = FakePFClient()
    opts = SweepOptions(variants="defaults")
    assert _sweep(ws_root, uc, client, opts)[-1].status == "completed"
    data_calls = client.ml_client.data.calls
    assert sum(k == "create_or_update" for k, _ in data_calls) == 2

    data_calls.clear()
    assert _sweep(ws_root, uc, client, opts)[-1].status == "completed"
    assert not [c for c in data_calls if c[0] == "create_or_update"]  # hash unchanged: reused
    last = list(client.runs.submitted.values())[-2]["entity"]
    assert last.data == "azureml:tickets_train:1"

    data_file = uc.path / "data" / "tickets.jsonl"
    data_file.write_text(data_file.read_text().replace("(#0)", "(#0, edited)"))
    uc = load_workspace(ws_root).get("tickets")
    assert _sweep(ws_root, uc, client, opts)[-1].status == "completed"
    created = [d for k, d in data_calls if k == "create_or_update"]
    assert sorted((d.name, d.version) for d in created) == [("tickets_eval", "2"), ("tickets_train", "2")]


def test_limit_registers_the_first_lines_separately(tmp_path: Path) -> None:
    ws_root, uc = _setup(tmp_path, rows=6)
    client = FakePFClient()
    events = _sweep(ws_root, uc, client, SweepOptions(variants="defaults", limit=3))
    assert events[-1].status == "completed" and events[-1].summary["lines_done"] == 3
    names = {d.name for k, d in client.ml_client.data.calls if k == "create_or_update"}
    assert names == {"tickets_train-first3", "tickets_eval-first3"}


# -------------------------------------------------------------------------------------- failures


def test_failed_cloud_run_is_reported_per_cell(tmp_path: Path) -> None:
    ws_root, uc = _setup(tmp_path, rows=4)
    plan = plan_sweep(uc, SweepOptions(variants="all"))
    bad = plan.cells[1].cell_id
    client = FakePFClient(fail={bad: "ModelError: deployment gpt-35-turbo not found"})
    events = list(run_cloud_sweep(ws_root, uc, plan, client=client, coords=COORDS, poll_interval=0))
    fin = events[-1]
    assert fin.status == "failed" and bad in fin.error
    failed = [e for e in events if isinstance(e, ev.LineFailed)]
    assert [(e.cell_id, e.line) for e in failed] == [(bad, -1)]
    assert "deployment gpt-35-turbo not found" in failed[0].error
    with RunStore.for_workspace(ws_root) as store:
        cells = {c.cell_id: c for c in store.cells(fin.run_id)}
        assert cells[bad].status == "failed" and "not found" in cells[bad].extra["error"]
        assert cells[plan.cells[0].cell_id].status == "done"
        assert not store.lines(fin.run_id, bad)  # nothing partial presented as a result
        assert store.get_run(fin.run_id).status == "failed"
    # the failed cell's evaluation was never submitted
    submitted = [client.runs.submitted[n]["entity"].tags for n in client.runs.names("create_or_update")]
    assert [t["llmops.cell_id"] for t in submitted if "llmops.evaluator" in t] == [plan.cells[0].cell_id]


def test_failed_evaluation_run_fails_the_cell(tmp_path: Path) -> None:
    ws_root, uc = _setup(tmp_path, rows=4)
    client = FakePFClient(fail={"label_match": "UserError: score.py raised"})
    events = _sweep(ws_root, uc, client, SweepOptions(variants="defaults"))
    fin = events[-1]
    assert fin.status == "failed"
    assert any(isinstance(e, ev.LineFailed) and "score.py raised" in e.error for e in events)
    with RunStore.for_workspace(ws_root) as store:
        (cell,) = store.cells(fin.run_id)
        assert cell.status == "failed"
        assert len(store.lines(fin.run_id, cell.cell_id)) == 4  # the flow run itself completed


def test_cancel_cancels_the_cloud_runs(tmp_path: Path) -> None:
    ws_root, uc = _setup(tmp_path, rows=4)
    client = FakePFClient(hang=True)
    cancel = threading.Event()
    plan = plan_sweep(uc, SweepOptions(variants="all"))
    events = []
    for item in run_cloud_sweep(
        ws_root, uc, plan, client=client, coords=COORDS, poll_interval=0, cancel=cancel
    ):
        events.append(item)
        if isinstance(item, ev.Progress):
            cancel.set()
    fin = events[-1]
    assert fin.status == "cancelled"
    submitted = client.runs.names("create_or_update")
    assert sorted(client.runs.names("cancel")) == sorted(submitted) and len(submitted) == 2
    assert sum(isinstance(e, ev.LineFailed) and e.line == -1 for e in events) == 2
    with RunStore.for_workspace(ws_root) as store:
        assert {c.status for c in store.cells(fin.run_id)} == {"cancelled"}
        assert store.get_run(fin.run_id).status == "cancelled"


def test_timeout_cancels_and_fails(tmp_path: Path) -> None:
    ws_root, uc = _setup(tmp_path, rows=4)
    client = FakePFClient(hang=True)
    events = _sweep(ws_root, uc, client, SweepOptions(variants="defaults"), timeout_s=0)
    fin = events[-1]
    assert fin.status == "failed" and "timed out" in fin.error
    assert client.runs.names("cancel") == client.runs.names("create_or_update")


def test_client_that_cannot_start_fails_every_cell(tmp_path: Path) -> None:
    ws_root, uc = _setup(tmp_path, rows=4)

    class Broken(FakePFClient):
        def __init__(self) -> None:
            super().__init__()
            self.runs.create_or_update = self._boom  # type: ignore[method-assign]

        @staticmethod
        def _boom(run: Any, **kwargs: Any) -> Any:
            raise RuntimeError("AuthorizationFailed: missing role AzureML Data Scientist")

    events = _sweep(ws_root, uc, Broken(), SweepOptions(variants="all"))
    fin = events[-1]
    assert fin.status == "failed" and "AzureML Data Scientist" in fin.error
    assert sum(isinstance(e, ev.LineFailed) for e in events) == 2


def test_details_rows_marks_failed_lines() -> None:
    df = pd.DataFrame(
        {
            "inputs.ticket": ["a", "b", "c"],
            "inputs.line_number": [0, 1, 2],
            "outputs.category": ["billing", None, "other"],
            "outputs.line_number": [0, 1, 2],
        }
    ).set_index("outputs.line_number")
    rows = details_rows(df)
    assert rows == [
        (0, {"ticket": "a"}, {"category": "billing"}),
        (1, {"ticket": "b"}, None),
        (2, {"ticket": "c"}, {"category": "other"}),
    ]


def test_closing_the_event_stream_cancels_the_cloud_runs(tmp_path: Path) -> None:
    ws_root, uc = _setup(tmp_path, rows=4)
    client = FakePFClient(hang=True)
    plan = plan_sweep(uc, SweepOptions(variants="defaults"))
    events = run_cloud_sweep(ws_root, uc, plan, client=client, coords=COORDS, poll_interval=0)
    run_id = next(events).run_id
    assert isinstance(next(e for e in events if isinstance(e, ev.Progress)), ev.Progress)
    events.close()  # e.g. the app's worker went away
    assert client.runs.names("cancel") == client.runs.names("create_or_update")
    with RunStore.for_workspace(ws_root) as store:
        assert store.get_run(run_id).status == "cancelled"
        assert {c.status for c in store.cells(run_id)} == {"cancelled"}
