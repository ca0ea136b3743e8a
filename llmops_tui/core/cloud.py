"""Cloud sweeps on Azure ML: the same sweep plan, submitted to Prompt flow in an Azure ML workspace.

Three public functions, used by ``llmops sweep USE_CASE --target azureml [--dry-run]`` and the app:

- :func:`azure_coords` finds the workspace (env vars first, then the ``azureml:`` block of llmops.yaml).
- :func:`cloud_plan` lists every object a cloud sweep creates or submits (data assets, materialised flows,
  flow runs, evaluation runs, connections by name). It never touches the network and never imports the
  Azure SDK, so ``--dry-run`` works offline.
- :func:`run_cloud_sweep` submits that plan with promptflow's Azure client and yields the same engine
  events as the local engine (:mod:`llmops_tui.core.events`), writing into the same run store, so the CLI
  progress, the app's run monitor, ``llmops compare``, reports, gates and approvals work unchanged.

Why each cell uploads a materialised flow: a cloud run selects one variant of one node only, so a full
grid (several nodes with variants, plus parameter overrides) can only run as flows with the chosen
variants applied and the overrides written in (:func:`llmops_tui.core.materialize.materialize_flow`).

Connections are referenced by name: the flows name them, and the workspace must hold connections with
the same names. Keys never leave this machine. The Azure clients are created lazily and can be replaced
(``client=`` / ``ml_client=``), which is how the tests drive the whole path offline.
"""

from __future__ import annotations

import json
import logging
import os
import re
import threading
import time
from collections.abc import Iterator, Mapping
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from llmops_tui.core import events as ev
from llmops_tui.core.errors import LlmopsError
from llmops_tui.core.files import ConfigError, load_yaml, read_rows
from llmops_tui.core.format import json_safe
from llmops_tui.core.hashing import hash_file, hash_folder
from llmops_tui.core.materialize import materialize_flow
from llmops_tui.core.pfenv import configure_promptflow_env
from llmops_tui.core.store import CellRecord, LineRecord, RunStore
from llmops_tui.core.sweep import SweepPlan
from llmops_tui.core.workspace import Dataset, UseCase

log = logging.getLogger(__name__)

TARGET = "azureml"
HASH_TAG = "sha256"
LINE_NUMBER = "line_number"

# Environment variable -> AzureCoords field. The first three are required.
ENV_VARS = {
    "SUBSCRIPTION_ID": "subscription_id",
    "RESOURCE_GROUP_NAME": "resource_group",
    "WORKSPACE_NAME": "workspace_name",
    "COMPUTE_TARGET": "compute",
    "SERVERLESS_INSTANCE_TYPE": "instance_type",
}
REQUIRED = ("SUBSCRIPTION_ID", "RESOURCE_GROUP_NAME", "WORKSPACE_NAME")

# Prompt flow's run statuses (promptflow._sdk._constants.RunStatus), grouped by what they mean to us.
DONE_STATUSES = {"Completed"}
FAILED_STATUSES = {"Failed", "NotResponding", "Unapproved"}
CANCELLED_STATUSES = {"Canceled", "Cancelled", "CancelRequested"}

_NAME_RE = re.compile(r"[^A-Za-z0-9_\-]")
_ASSET_RE = re.compile(r"[^A-Za-z0-9_.\-]")


# ------------------------------------------------------------------------------------------- coordinates


@dataclass
class AzureCoords:
    """Where cloud runs go. ``compute`` (a compute cluster or instance) wins over ``instance_type``
    (serverless compute); with neither, the workspace's serverless default is used."""

    subscription_id: str
    resource_group: str
    workspace_name: str
    compute: str | None = None
    instance_type: str | None = None
    runtime: str | None = None
    missing: list[str] = field(default_factory=list)

    @property
    def resources(self) -> dict[str, str] | None:
        if self.compute:
            return {"compute": self.compute}
        if self.instance_type:
            return {"instance_type": self.instance_type}
        return None

    def to_dict(self) -> dict[str, Any]:
        out = asdict(self)
        out["resources"] = self.resources
        if not self.missing:
            out.pop("missing")
        return out


def azure_coords(uc: UseCase, *, env: Mapping[str, str] | None = None, strict: bool = True) -> AzureCoords:
    """The workspace coordinates: env vars ``SUBSCRIPTION_ID``, ``RESOURCE_GROUP_NAME``, ``WORKSPACE_NAME``,
    optional ``COMPUTE_TARGET`` or ``SERVERLESS_INSTANCE_TYPE``; else the ``azureml:`` block of the use
    case's llmops.yaml. Raises LlmopsError naming the first missing variable; with ``strict=False`` a
    missing value becomes a ``${NAME}`` placeholder listed in ``missing`` (for dry runs)."""
    env = os.environ if env is None else env
    spec = uc.extras.azureml
    values: dict[str, str | None] = {}
    missing: list[str] = []
    for var, attr in ENV_VARS.items():
        value = (env.get(var) or "").strip() or getattr(spec, attr, None)
        if not value and var in REQUIRED:
            if strict:
                raise LlmopsError(
                    f"no Azure ML {attr.replace('_', ' ')}: set {var}",
                    file=f"{uc.path.name}/llmops.yaml",
                    field=f"azureml.{attr}",
                    hint=f"export {var}=... or add azureml.{attr} to llmops.yaml (see docs/azureml.md)",
                )
            missing.append(var)
            value = "${" + var + "}"
        values[attr] = value or None
    return AzureCoords(
        subscription_id=str(values["subscription_id"]),
        resource_group=str(values["resource_group"]),
        workspace_name=str(values["workspace_name"]),
        compute=values["compute"],
        instance_type=values["instance_type"],
        runtime=uc.runtime or None,
        missing=missing,
    )


# ---------------------------------------------------------------------------------------------- the plan


def _run_name(*parts: str) -> str:
    return _NAME_RE.sub("_", "_".join(["llmops", *parts]))


def asset_name(ds: Dataset, limit: int | None = None) -> str:
    """The data asset name: the dataset's own name (as the template registers it); a ``--limit`` sweep
    registers its first N lines under a separate name so the full asset's versions are left alone."""
    base = _ASSET_RE.sub("_", ds.name)
    return f"{base}-first{limit}" if limit else base


def _limited_file(ws_root: Path, ds: Dataset, limit: int) -> Path:
    """The first ``limit`` rows of a dataset as JSONL under ``.llmops/cloud/data`` (what gets uploaded)."""
    assert ds.path is not None
    try:
        rows = read_rows(ds.path, ws_root)[:limit]
    except ConfigError as exc:
        raise LlmopsError.from_problem(exc.problem) from None
    out = ws_root / ".llmops" / "cloud" / "data" / f"{asset_name(ds, limit)}.jsonl"
    out.parent.mkdir(parents=True, exist_ok=True)
    text = "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows)
    if not out.is_file() or out.read_text(encoding="utf-8") != text:
        out.write_text(text, encoding="utf-8")
    return out


def _asset_entry(ws_root: Path, uc: UseCase, ds: Dataset, limit: int | None) -> dict[str, Any]:
    if ds.remote:
        return {
            "name": ds.source,
            "dataset": ds.name,
            "remote": True,
            "uri": ds.source,
            "action": "use as is",
        }
    if ds.path is None or not ds.path.exists():
        raise LlmopsError(
            f"dataset '{ds.name}' file not found", file=uc.config_file.name, field="datasets.source"
        )
    path = _limited_file(ws_root, ds, limit) if limit else ds.path
    folder = path.is_dir()
    digest = hash_folder(path) if folder else hash_file(path)
    return {
        "name": asset_name(ds, limit),
        "dataset": ds.name,
        "remote": False,
        "path": str(path),
        "type": "uri_folder" if folder else "uri_file",
        "sha256": digest,
        "tags": {HASH_TAG: digest, "use_case": uc.name, "source": ds.source},
        "action": f"register a new version unless the latest version is tagged {HASH_TAG}={digest[:12]}...",
    }


def _flow_connections(flow_dir: Path) -> set[str]:
    data = load_yaml(flow_dir / "flow.dag.yaml") or {}
    return {
        str(n["connection"]) for n in data.get("nodes") or [] if isinstance(n, dict) and n.get("connection")
    }


def cloud_plan(
    ws_root: Path, uc: UseCase, plan: SweepPlan, coords: AzureCoords, *, run_id: str | None = None
) -> dict[str, Any]:
    """Every object a cloud sweep would create or submit, as plain data (``--dry-run`` prints it).

    Materialises each cell's flow under ``.llmops/flows`` (local files only: no network, no Azure SDK).
    Run names use ``run_id`` (``RUNID`` when not given); data references read ``azureml:NAME:<version>``
    until the assets are registered."""
    ws_root = Path(ws_root).resolve()
    rid = run_id or "RUNID"
    options = plan.options
    if options.llm_endpoint:
        raise LlmopsError(
            "--llm-endpoint applies to local sweeps only",
            field="--llm-endpoint",
            hint="cloud runs use the workspace's connections of the same names",
        )
    flow = uc.standard_flow
    if flow is None:
        raise LlmopsError("use case has no standard flow", file=uc.config_file, field="flow")
    limit = options.limit

    assets: dict[str, dict[str, Any]] = {}

    def asset_for(ds: Dataset) -> dict[str, Any]:
        key = f"{ds.evaluator or ''}/{ds.name}"
        if key not in assets:
            assets[key] = _asset_entry(ws_root, uc, ds, limit)
        return assets[key]

    connections: set[str] = set()
    experiment = _NAME_RE.sub("_", uc.name)
    dest = ws_root / ".llmops" / "flows"
    env_vars = {"PF_WORKER_COUNT": str(plan.concurrency)}
    timeout = options.line_timeout_s or uc.extras.sweep.line_timeout_s
    if timeout:
        env_vars["PF_LINE_TIMEOUT_SEC"] = str(int(timeout))
    runs: list[dict[str, Any]] = []
    eval_runs: list[dict[str, Any]] = []
    for cell in plan.cells:
        ds = uc.dataset(cell.dataset)
        if ds is None:
            raise LlmopsError(f"no experiment dataset named '{cell.dataset}'", file=uc.config_file.name)
        asset = asset_for(ds)
        folder, version = materialize_flow(flow.path, dest, cell.variants, cell.params)
        connections |= _flow_connections(folder)
        name = _run_name(rid, cell.cell_id)
        runs.append(
            {
                "kind": "flow",
                "name": name,
                "cell_id": cell.cell_id,
                "label": cell.label,
                "display_name": f"{uc.name} {cell.label}",
                "flow": str(folder),
                "flow_hash": version,
                "data_asset": asset["name"],
                "data": asset["uri"] if asset["remote"] else f"azureml:{asset['name']}:<version>",
                "column_mapping": dict(ds.mappings),
                "resources": coords.resources,
                "runtime": coords.runtime,
                "environment_variables": dict(env_vars),
                "experiment": experiment,
                "tags": {"llmops.run_id": rid, "llmops.cell_id": cell.cell_id, "llmops.use_case": uc.name},
                "lines": cell.lines,
            }
        )
        for evaluator in uc.evaluators:
            if evaluator.flow is None:
                continue
            for eds in evaluator.datasets_for(cell.dataset):
                easset = asset_for(eds)
                connections |= _flow_connections(evaluator.flow.path)
                eval_runs.append(
                    {
                        "kind": "evaluation",
                        "name": _run_name(rid, cell.cell_id, evaluator.name),
                        "cell_id": cell.cell_id,
                        "evaluator": evaluator.name,
                        "display_name": f"{uc.name} {evaluator.name} of {cell.label}",
                        "flow": str(evaluator.flow.path),
                        "run": name,
                        "data_asset": easset["name"],
                        "data": easset["uri"] if easset["remote"] else f"azureml:{easset['name']}:<version>",
                        "column_mapping": dict(eds.mappings),
                        "experiment": experiment,
                        "resources": coords.resources,
                        "runtime": coords.runtime,
                        "tags": {
                            "llmops.run_id": rid,
                            "llmops.cell_id": cell.cell_id,
                            "llmops.evaluator": evaluator.name,
                        },
                    }
                )
    declared = {c.name for c in uc.connections}
    return {
        "target": TARGET,
        "use_case": uc.name,
        "run_id": rid,
        "workspace": coords.to_dict(),
        "cells": len(plan.cells),
        "lines_total": plan.lines_total,
        "data_assets": list(assets.values()),
        "connections": [
            {
                "name": n,
                "declared_in_experiment": n in declared,
                "note": "referenced by name; no key uploaded",
            }
            for n in sorted(connections)
        ],
        "runs": runs,
        "evaluation_runs": eval_runs,
        "notes": [
            "no line cache in the cloud: every line runs again",
            "evaluation runs start when their base run completes; results are pulled into the local store",
        ],
    }


def describe_cloud_plan(plan: dict[str, Any]) -> list[str]:
    """The dry-run plan as plain lines for a terminal (the CLI adds colour; ``--json`` prints the dict)."""
    ws = plan["workspace"]
    compute = ws.get("compute") or ws.get("instance_type") or "serverless (workspace default)"
    lines = [
        f"Azure ML workspace {ws['workspace_name']} (resource group {ws['resource_group']}, "
        f"subscription {ws['subscription_id']}), compute {compute}",
    ]
    if ws.get("missing"):
        lines.append(f"  not set yet: {', '.join(ws['missing'])}")
    lines.append(f"Data assets ({len(plan['data_assets'])}):")
    for a in plan["data_assets"]:
        if a.get("remote"):
            lines.append(f"  {a['dataset']}: {a['uri']} (existing asset, used as is)")
        else:
            lines.append(
                f"  {a['name']} <- {a['path']} [{a['type']}, sha256 {a['sha256'][:12]}]: {a['action']}"
            )
    lines.append("Connections (referenced by name, must exist in the workspace; no keys are uploaded):")
    lines += [f"  {c['name']}" for c in plan["connections"]] or ["  none"]
    lines.append(f"Flow runs ({len(plan['runs'])}), one per cell, each with its materialised flow:")
    for r in plan["runs"]:
        lines.append(f"  {r['name']}: {r['label']}")
        lines.append(f"    flow {r['flow']} (hash {r['flow_hash'][:12]})")
        lines.append(f"    data {r['data']}, column mapping {json.dumps(r['column_mapping'])}")
    lines.append(f"Evaluation runs ({len(plan['evaluation_runs'])}), each after its flow run completes:")
    for e in plan["evaluation_runs"]:
        lines.append(f"  {e['name']}: {e['evaluator']} on run {e['run']}")
        lines.append(f"    data {e['data']}, column mapping {json.dumps(e['column_mapping'])}")
    lines += [f"Note: {n}" for n in plan["notes"]]
    return lines


# ------------------------------------------------------------------------------------------- the clients


def make_clients(coords: AzureCoords) -> tuple[Any, Any]:
    """promptflow's Azure ``PFClient`` with DefaultAzureCredential, and its ``MLClient`` (for data assets)."""
    try:
        from azure.identity import DefaultAzureCredential
        from promptflow.azure import PFClient
    except ImportError as exc:
        raise LlmopsError(
            f"promptflow's Azure client cannot be imported ({exc})",
            field="--target azureml",
            hint="pip install 'promptflow[azure]' with azure-ai-ml<1.33 (see docs/azureml.md)",
        ) from None
    pf = PFClient(
        credential=DefaultAzureCredential(),
        subscription_id=coords.subscription_id,
        resource_group_name=coords.resource_group,
        workspace_name=coords.workspace_name,
    )
    return pf, pf.ml_client


def register_data_asset(ml_client: Any, entry: dict[str, Any]) -> tuple[str, bool]:
    """Make sure the asset holds this content; returns (``azureml:name:version``, created?).

    The latest version is reused when its ``sha256`` tag matches; otherwise a new version is created
    (latest + 1, or 1 for a new asset) with the hash in its tags."""
    if entry.get("remote"):
        return str(entry["uri"]), False
    from azure.ai.ml.constants import AssetTypes
    from azure.ai.ml.entities import Data
    from azure.core.exceptions import ResourceNotFoundError

    latest = None
    try:
        latest = ml_client.data.get(name=entry["name"], label="latest")
    except ResourceNotFoundError:  # a new asset
        latest = None
    if latest is not None and (getattr(latest, "tags", None) or {}).get(HASH_TAG) == entry["sha256"]:
        return f"azureml:{latest.name}:{latest.version}", False
    version = "1"
    if latest is not None:
        try:
            version = str(int(str(latest.version)) + 1)
        except ValueError:
            version = entry["sha256"][:12]
    data = Data(
        name=entry["name"],
        version=version,
        path=entry["path"],
        type=AssetTypes.URI_FOLDER if entry["type"] == "uri_folder" else AssetTypes.URI_FILE,
        description=f"llmops-tui dataset {entry['dataset']}",
        tags=dict(entry["tags"]),
    )
    created = ml_client.data.create_or_update(data)
    return f"azureml:{created.name}:{created.version}", True


def _run_entity(spec: dict[str, Any], data: str) -> Any:
    from promptflow.entities import Run

    kwargs: dict[str, Any] = {}
    if spec.get("resources"):
        kwargs["resources"] = dict(spec["resources"])
    if spec.get("runtime"):
        kwargs["runtime"] = spec["runtime"]
    entity = Run(
        flow=Path(spec["flow"]),
        name=spec["name"],
        data=data,
        run=spec.get("run"),
        column_mapping=dict(spec["column_mapping"]) or None,
        display_name=spec["display_name"],
        tags=dict(spec["tags"]),
        environment_variables=dict(spec.get("environment_variables") or {}) or None,
        **kwargs,
    )
    # Prompt flow names the Azure ML experiment after the flow folder, which for a materialised flow is a
    # content hash; group the runs under the use case's name instead (what people look for in the studio).
    if spec.get("experiment") and hasattr(entity, "_experiment_name"):
        entity._experiment_name = spec["experiment"]
    return entity


def _status(run: Any) -> str:
    return str(getattr(run, "status", "") or "")


def _portal_url(run: Any) -> str | None:
    url = getattr(run, "_portal_url", None)
    if url:
        return str(url)
    try:
        return run._to_dict().get("portal_url")
    except Exception:
        return None


def _run_error(run: Any, status: str) -> str:
    err = getattr(run, "_error", None)
    message = None
    if isinstance(err, dict):
        nested = err.get("error")
        inner: dict[str, Any] = nested if isinstance(nested, dict) else err
        message = inner.get("message") or inner.get("code")
    elif err:
        message = str(err)
    if status in CANCELLED_STATUSES:
        return f"cloud run {run.name} was cancelled" + (f": {message}" if message else "")
    return (
        f"cloud run {run.name} {status.lower() or 'failed'}: {message or 'no error message (see the portal)'}"
    )


def _lines_from_properties(run: Any) -> tuple[int, int] | None:
    """(completed, failed) lines if the run reports them while running (Prompt flow's system metrics)."""
    try:
        props = dict(run.properties or {})
    except Exception:
        return None
    sources = [props]
    system = props.get("system_metrics")
    if isinstance(system, str):
        try:
            system = json.loads(system)
        except ValueError:
            system = None
    if isinstance(system, dict):
        sources.insert(0, system)
    for src in sources:
        if "__pf__.lines.completed" in src:
            try:
                return int(src["__pf__.lines.completed"]), int(src.get("__pf__.lines.failed") or 0)
            except (TypeError, ValueError):
                return None
    return None


def _tokens_from_properties(run: Any) -> int:
    try:
        props = dict(run.properties or {})
    except Exception:
        return 0
    for key in ("azureml.promptflow.total_tokens", "total_tokens"):
        if key in props:
            try:
                return int(float(props[key]))
            except (TypeError, ValueError):
                return 0
    return 0


def details_rows(df: Any) -> list[tuple[int, dict[str, Any], dict[str, Any] | None]]:
    """``get_details`` DataFrame -> [(line, inputs, outputs or None when the line failed)]."""
    out = []
    columns = list(df.columns)
    records = df.to_dict(orient="records")
    index = list(df.index)
    for pos, rec in enumerate(records):
        inputs = {c[len("inputs.") :]: json_safe(rec[c]) for c in columns if c.startswith("inputs.")}
        outputs = {c[len("outputs.") :]: json_safe(rec[c]) for c in columns if c.startswith("outputs.")}
        line = outputs.pop(LINE_NUMBER, None)
        line_in = inputs.pop(LINE_NUMBER, None)
        if line is None:
            raw = index[pos] if df.index.name == f"outputs.{LINE_NUMBER}" else line_in
            line = raw if raw is not None else pos
        try:
            line = int(line)
        except (TypeError, ValueError):
            line = pos
        failed = bool(outputs) and all(v is None for v in outputs.values())
        out.append((line, inputs, None if failed or not outputs else outputs))
    return out


# ------------------------------------------------------------------------------------------- the sweep


@dataclass
class _CloudCell:
    spec: dict[str, Any]
    total: int
    run: Any = None
    status: str = "pending"  # pending | running | evaluating | done | failed | cancelled
    done: int = 0
    errors: int = 0
    tokens: int = 0
    portal_url: str | None = None
    evals: list[dict[str, Any]] = field(default_factory=list)  # eval specs with "submitted"/"state"
    cause: str | None = None

    @property
    def cell_id(self) -> str:
        return str(self.spec["cell_id"])


class CloudSweep:
    """One cloud sweep. Use :func:`run_cloud_sweep`."""

    def __init__(
        self,
        ws_root: Path,
        uc: UseCase,
        plan: SweepPlan,
        *,
        cancel: threading.Event | None,
        client: Any,
        ml_client: Any,
        coords: AzureCoords | None,
        poll_interval: float,
        timeout_s: float,
        run_id: str | None,
        store: RunStore | None,
    ):
        from llmops_tui.core.summary import new_run_id

        self.ws_root = Path(ws_root).resolve()
        self.uc = uc
        self.plan = plan
        self.cancel = cancel or threading.Event()
        self.client = client
        self.ml_client = ml_client
        self.coords = coords
        self.poll_interval = poll_interval
        self.timeout_s = timeout_s
        self.run_id = run_id or new_run_id(uc.name)
        self._given_store = store
        self._own_store = store is None
        self.cells: list[_CloudCell] = []
        self.assets: dict[str, str] = {}
        self.registered: list[str] = []

    # ----------------------------------------------------------------------------------- set-up

    def _config(self, cloud: dict[str, Any]) -> dict[str, Any]:
        baseline = self.plan.baseline()
        return {
            "options": self.plan.options.to_dict(),
            "defaults": self.plan.defaults,
            "cell_count": len(self.plan.cells),
            "lines_total": self.plan.lines_total,
            "llm_endpoint": None,
            "baseline": baseline.cell_id if baseline else None,
            "concurrency": self.plan.concurrency,
            "workspace": str(self.ws_root),
            "target": TARGET,
            "azureml": cloud["workspace"],
        }

    def _extra(self, c: _CloudCell) -> dict[str, Any]:
        extra: dict[str, Any] = {
            "label": c.spec["label"],
            "cloud_run": c.spec["name"],
            "portal_url": c.portal_url,
            "target": TARGET,
        }
        evals = {e["evaluator"]: e["name"] for e in c.evals}
        if evals:
            extra["cloud_eval_runs"] = evals
        if c.tokens:
            extra["tokens"] = c.tokens
        if c.cause:
            extra["error"] = c.cause
        return extra

    def _set_status(self, c: _CloudCell, status: str) -> None:
        c.status = status
        stored = {"running": "running", "evaluating": "running"}.get(status, status)
        self.store.set_cell_status(self.run_id, c.cell_id, stored, extra=self._extra(c))

    # ------------------------------------------------------------------------------------- events

    def events(self) -> Iterator[ev.Event]:
        started = time.perf_counter()
        status, error = "completed", None
        # Bad input (coordinates, options, files) raises before anything is recorded.
        coords = self.coords or azure_coords(self.uc)
        cloud = cloud_plan(self.ws_root, self.uc, self.plan, coords, run_id=self.run_id)
        evals_by_cell: dict[str, list[dict[str, Any]]] = {}
        for e in cloud["evaluation_runs"]:
            evals_by_cell.setdefault(e["cell_id"], []).append(dict(e, state="pending"))
        cell_lines = {c.cell_id: c.lines for c in self.plan.cells}
        self.cells = [
            _CloudCell(spec=r, total=cell_lines[r["cell_id"]], evals=evals_by_cell.get(r["cell_id"], []))
            for r in cloud["runs"]
        ]
        # Opened only now, so bad input above leaves no open database behind.
        self.store = self._given_store or RunStore.for_workspace(self.ws_root)
        try:
            self.store.create_run(
                self.run_id, self.uc.name, self.plan.env, self._config(cloud), target=TARGET
            )
            by_id = {c.cell_id: c for c in self.plan.cells}
            self.store.add_cells(
                self.run_id,
                [
                    CellRecord(
                        self.run_id,
                        c.cell_id,
                        by_id[c.cell_id].idx,
                        by_id[c.cell_id].variants,
                        by_id[c.cell_id].params,
                        by_id[c.cell_id].dataset,
                        by_id[c.cell_id].repeat,
                        c.spec["flow_hash"],
                        c.total,
                        "pending",
                        self._extra(c),
                    )
                    for c in self.cells
                ],
            )
            yield ev.SweepStarted(self.run_id, self.uc.name, len(self.cells), self.plan.lines_total)
            try:
                configure_promptflow_env(self.ws_root / ".llmops" / "promptflow")
                if self.client is None:
                    self.client, default_ml = make_clients(coords)
                    self.ml_client = self.ml_client or default_ml
                if self.ml_client is None:
                    self.ml_client = getattr(self.client, "ml_client", None)
                self._register(cloud)
                yield from self._submit_all()
                yield from self._poll(started)
            except LlmopsError as exc:
                status, error = "failed", str(exc)
                yield from self._fail_open(error)
            if status == "completed":
                if self.cancel.is_set() or any(c.status == "cancelled" for c in self.cells):
                    status = "cancelled"
                elif any(c.status == "failed" for c in self.cells):
                    status = "failed"
                    error = "; ".join(f"{c.cell_id}: {c.cause}" for c in self.cells if c.cause)[:2000]
        except (GeneratorExit, KeyboardInterrupt):
            self.cancel.set()
            self._cancel_active()
            for c in self.cells:
                if c.status in {"pending", "running", "evaluating"}:
                    c.cause = "cancelled: the sweep was stopped"
                    self._set_status(c, "cancelled")
            self._finish("cancelled", started, None)
            raise
        except Exception as exc:
            log.debug("cloud sweep failed", exc_info=True)
            status, error = "failed", f"{type(exc).__name__}: {exc}"
            yield from self._fail_open(error)
            self._cancel_active()
        summary = self._finish(status, started, error)
        yield ev.SweepFinished(self.run_id, summary["status"], summary, summary["error"])

    def _finish(self, status: str, started: float, error: str | None) -> dict[str, Any]:
        from llmops_tui.core.summary import decide_status, summarize

        try:
            summary = summarize(self.store, self.run_id, wall_s=time.perf_counter() - started, status=status)
            if status == "completed":  # every cloud run finished: the lines decide (errors, missing lines)
                verdict = decide_status(summary)
                status, error = verdict.status, verdict.error
            summary["status"], summary["error"] = status, error
            summary["target"] = TARGET
            summary["cloud_runs"] = {c.cell_id: c.spec["name"] for c in self.cells}
            self.store.finish_run(self.run_id, status, summary, error)
        finally:
            if self._own_store:
                self.store.close()
        return summary

    def _fail_open(self, cause: str) -> Iterator[ev.Event]:
        """Mark every unfinished cell failed with ``cause`` (one LineFailed per cell)."""
        for c in self.cells:
            if c.status in {"pending", "running", "evaluating"}:
                c.cause = c.cause or cause
                self._set_status(c, "failed")
                yield ev.LineFailed(self.run_id, c.cell_id, -1, c.cause, 1)

    # ------------------------------------------------------------------------------------ phases

    def _register(self, cloud: dict[str, Any]) -> None:
        for entry in cloud["data_assets"]:
            if self.cancel.is_set():
                return
            ref, created = register_data_asset(self.ml_client, entry)
            self.assets[entry["name"]] = ref
            if created:
                self.registered.append(ref)

    def _data_ref(self, spec: dict[str, Any]) -> str:
        return self.assets.get(spec["data_asset"], spec["data"])

    def _submit(self, spec: dict[str, Any]) -> Any:
        entity = _run_entity(spec, self._data_ref(spec))
        kwargs = {"runtime": spec["runtime"]} if spec.get("runtime") else {}
        return self.client.runs.create_or_update(run=entity, **kwargs)

    def _submit_all(self) -> Iterator[ev.Event]:
        for c in self.cells:
            if self.cancel.is_set():
                return
            try:
                c.run = self._submit(c.spec)
            except Exception as exc:
                c.cause = f"submitting cloud run {c.spec['name']} failed: {type(exc).__name__}: {exc}"
                self._set_status(c, "failed")
                yield ev.LineFailed(self.run_id, c.cell_id, -1, c.cause, 1)
                yield ev.CellFinished(self.run_id, c.cell_id, 0, 0)
                continue
            c.portal_url = _portal_url(c.run)
            self._set_status(c, "running")

    def _poll(self, started: float) -> Iterator[ev.Event]:
        deadline = time.monotonic() + self.timeout_s
        while True:
            if self.cancel.is_set():
                self._cancel_active()
                for c in self.cells:
                    if c.status in {"pending", "running", "evaluating"}:
                        submitted = c.run is not None
                        c.cause = (
                            f"cancelled: cancel requested for cloud run {c.spec['name']}"
                            if submitted
                            else "cancelled before submission"
                        )
                        self._set_status(c, "cancelled")
                        yield ev.LineFailed(self.run_id, c.cell_id, -1, c.cause, 1)
                break
            active = [c for c in self.cells if c.status in {"running", "evaluating"}]
            if not active:
                break
            if time.monotonic() >= deadline:
                self._cancel_active()
                for c in active:
                    c.cause = f"timed out after {self.timeout_s:g} s: cloud run {c.spec['name']} cancelled"
                    self._set_status(c, "failed")
                    yield ev.LineFailed(self.run_id, c.cell_id, -1, c.cause, 1)
                break
            for c in active:
                if self.cancel.is_set():
                    break
                try:
                    if c.status == "running":
                        yield from self._poll_base(c)
                    else:
                        yield from self._poll_evals(c)
                except Exception as exc:
                    c.cause = f"polling cloud run {c.spec['name']} failed: {type(exc).__name__}: {exc}"
                    self._set_status(c, "failed")
                    yield ev.LineFailed(self.run_id, c.cell_id, -1, c.cause, 1)
            yield self._progress(started)
            if any(c.status in {"running", "evaluating"} for c in self.cells):
                self.cancel.wait(self.poll_interval)
        yield self._progress(started)

    def _poll_base(self, c: _CloudCell) -> Iterator[ev.Event]:
        run = self.client.runs.get(c.spec["name"])
        c.portal_url = _portal_url(run) or c.portal_url
        status = _status(run)
        c.tokens = _tokens_from_properties(run) or c.tokens
        if status in DONE_STATUSES:
            yield from self._pull_base(c, run)
            return
        if status in FAILED_STATUSES or status in CANCELLED_STATUSES:
            c.cause = _run_error(run, status)
            self._set_status(c, "cancelled" if status in CANCELLED_STATUSES else "failed")
            yield ev.LineFailed(self.run_id, c.cell_id, -1, c.cause, 1)
            yield ev.CellFinished(self.run_id, c.cell_id, 0, 0)
            return
        counts = _lines_from_properties(run)
        if counts is not None:
            c.done = min(c.total, counts[0] + counts[1])
            c.errors = counts[1]

    def _pull_base(self, c: _CloudCell, run: Any) -> Iterator[ev.Event]:
        df = self.client.runs.get_details(run=c.spec["name"], all_results=True)
        rows = details_rows(df)
        done = errors = 0
        reported = 0
        for line, inputs, outputs in rows:
            ok = outputs is not None
            err = None if ok else f"line failed in cloud run {c.spec['name']} (see the portal)"
            self.store.record_line(
                LineRecord(
                    run_id=self.run_id,
                    cell_id=c.cell_id,
                    line=line,
                    status="ok" if ok else "failed",
                    inputs=inputs,
                    outputs=outputs,
                    error=err,
                )
            )
            done += 1
            if not ok:
                errors += 1
                if reported < 200:
                    reported += 1
                    yield ev.LineFailed(self.run_id, c.cell_id, line, err or "", 1)
        c.done, c.errors = done, errors
        if done < c.total:
            c.cause = f"cloud run {c.spec['name']} returned {done} of {c.total} lines"
            self._set_status(c, "failed")
            yield ev.LineFailed(self.run_id, c.cell_id, -1, c.cause, 1)
            yield ev.CellFinished(self.run_id, c.cell_id, done, errors)
            return
        yield ev.CellFinished(self.run_id, c.cell_id, done, errors)
        if not c.evals:
            self._set_status(c, "done")
            return
        self._set_status(c, "evaluating")
        for e in c.evals:
            try:
                e["submitted"] = self._submit(e)
                e["state"] = "running"
                yield ev.EvaluationStarted(self.run_id, c.cell_id, e["evaluator"], done)
            except Exception as exc:
                e["state"] = "failed"
                c.cause = f"submitting evaluation run {e['name']} failed: {type(exc).__name__}: {exc}"
                yield ev.LineFailed(self.run_id, c.cell_id, -1, c.cause, 1)
        self._settle(c)

    def _poll_evals(self, c: _CloudCell) -> Iterator[ev.Event]:
        for e in c.evals:
            if e["state"] != "running":
                continue
            run = self.client.runs.get(e["name"])
            status = _status(run)
            if status in DONE_STATUSES:
                df = self.client.runs.get_details(run=e["name"], all_results=True)
                rows = [
                    (line, "ok" if out is not None else "failed", out, None if out is not None else "failed")
                    for line, _inputs, out in details_rows(df)
                ]
                self.store.record_eval_lines(self.run_id, c.cell_id, e["evaluator"], rows)
                raw = self.client.runs.get_metrics(run=e["name"]) or {}
                metrics = {k: float(v) for k, v in raw.items() if _is_number(v)}
                self.store.record_metrics(self.run_id, c.cell_id, e["evaluator"], metrics)
                e["state"] = "done"
                yield ev.MetricsReady(self.run_id, c.cell_id, e["evaluator"], metrics)
            elif status in FAILED_STATUSES or status in CANCELLED_STATUSES:
                e["state"] = "cancelled" if status in CANCELLED_STATUSES else "failed"
                c.cause = f"evaluation {e['evaluator']}: {_run_error(run, status)}"
                yield ev.LineFailed(self.run_id, c.cell_id, -1, c.cause, 1)
        self._settle(c)

    def _settle(self, c: _CloudCell) -> None:
        """A cell is done when all its evaluation runs are; a failed evaluation fails the cell (its
        metrics would be missing, so it must not look complete)."""
        states = {e["state"] for e in c.evals}
        if states & {"running", "pending"}:
            return
        if "cancelled" in states:
            self._set_status(c, "cancelled")
        elif "failed" in states:
            self._set_status(c, "failed")
        else:
            self._set_status(c, "done")

    def _cancel_active(self) -> None:
        """Ask the cloud to cancel every run still in flight (flow runs and evaluation runs)."""
        if self.client is None:
            return
        for c in self.cells:
            names = []
            if c.status == "running" and c.run is not None:
                names.append(c.spec["name"])
            if c.status == "evaluating":
                names += [e["name"] for e in c.evals if e["state"] == "running"]
            for name in names:
                try:
                    self.client.runs.cancel(run=name)
                except Exception as exc:  # keep cancelling the others
                    log.warning("cancelling cloud run %s failed: %s", name, exc)

    def _progress(self, started: float) -> ev.Progress:
        elapsed = time.perf_counter() - started
        done = sum(c.done for c in self.cells)
        return ev.Progress(
            run_id=self.run_id,
            done=done,
            total=sum(c.total for c in self.cells),
            errors=sum(c.errors for c in self.cells),
            llm_calls=0,
            cache_hits=0,
            retries=0,
            tokens=sum(c.tokens for c in self.cells),
            cost=None,
            elapsed_s=elapsed,
            lines_per_s=done / elapsed if elapsed > 0 else 0.0,
            cells=[ev.CellProgress(c.cell_id, c.done, c.total, c.errors) for c in self.cells],
        )


def _is_number(value: Any) -> bool:
    try:
        float(value)
    except (TypeError, ValueError):
        return False
    return True


def run_cloud_sweep(
    ws_root: Path,
    uc: UseCase,
    plan: SweepPlan,
    *,
    cancel: threading.Event | None = None,
    client: Any = None,
    ml_client: Any = None,
    coords: AzureCoords | None = None,
    poll_interval: float = 10.0,
    timeout_s: float = 6 * 3600,
    run_id: str | None = None,
    store: RunStore | None = None,
) -> Iterator[ev.Event]:
    """Run a planned sweep in an Azure ML workspace; yields the local engine's events (first
    ``SweepStarted``, last ``SweepFinished``) and writes the results into the local run store.

    ``client`` defaults to promptflow's Azure ``PFClient`` (DefaultAzureCredential) and ``ml_client`` to
    its ``ml_client``; ``coords`` to :func:`azure_coords`. Setting ``cancel`` cancels the cloud runs.
    Raises LlmopsError for bad input before anything is submitted."""
    return CloudSweep(
        ws_root,
        uc,
        plan,
        cancel=cancel,
        client=client,
        ml_client=ml_client,
        coords=coords,
        poll_interval=poll_interval,
        timeout_s=timeout_s,
        run_id=run_id,
        store=store,
    ).events()
