"""A/B traffic in the run store: capture, import, feedback, evaluation and the comparison of arms.

A *traffic run* is an ordinary run of the store (``target = "traffic"``) whose cells are the arms of an
A/B deployment (cell id = the arm's name, the served flow version as ``flow_hash``, the arm's variants and
parameters) and whose lines are the captured requests, in the order they arrived per arm. So everything
that reads runs (``llmops runs``, ``compare``, gates, exporters) reads traffic too. The ``traffic`` table
maps each request id (returned to callers in ``X-LLMOps-Request-Id``) to its line and holds feedback.

- :class:`TrafficRecorder` writes captured records (the router uses it; ``llmops traffic import`` too);
- :func:`import_traffic` reads JSONL records written by a served container (Kubernetes) and the request /
  response files of Azure ML's data collector;
- :func:`add_feedback` joins scores and labels to captured requests;
- :func:`evaluate_traffic` runs the use case's evaluators over captured lines with the sweep engine's own
  evaluation step (backends, LLM-call policy, cache): evaluators that need no ground truth on every line,
  and evaluators that do on the lines whose feedback supplies it;
- :func:`compare_traffic` puts the arms side by side with intervals, unpaired tests, gates and a verdict.
"""

from __future__ import annotations

import csv
import json
import math
import os
import secrets as _secrets
import threading
import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from llmops_tui.core import stats
from llmops_tui.core.capture import CaptureSettings, clean_inputs, secrets_from_env
from llmops_tui.core.errors import LlmopsError
from llmops_tui.core.mappings import mapping_ref
from llmops_tui.core.store import STORE_DIR, CellRecord, LineRecord, RunRecord, RunStore
from llmops_tui.core.summary import new_run_id

TRAFFIC_TARGET = "traffic"
TRAFFIC_DATASET = "traffic"
SALT_FILE = "capture.salt"
FEEDBACK_EVALUATOR = "feedback"


# ------------------------------------------------------------------------------------------ settings


def capture_settings(root: Path, uc: Any, *, force: bool = False, salt: bool = True) -> CaptureSettings:
    """The use case's ``capture:`` block as settings (enabled when it says so or ``force``), with the
    workspace's hashing key (created on first use, owner-only, under ``.llmops``)."""
    spec = uc.extras.capture
    settings = CaptureSettings(
        enabled=bool(spec.enabled or force),
        sample_rate=spec.sample_rate,
        drop=list(spec.redact.get("drop", [])),
        hash=list(spec.redact.get("hash", [])),
        max_value_chars=spec.max_value_chars,
        max_records=spec.max_records,
    )
    if settings.hash and salt:
        settings.salt = workspace_salt(root)
    return settings


def capture_env(
    settings: CaptureSettings, arm: str, configuration: dict[str, Any], dest: str = "stdout"
) -> list[dict[str, str]]:
    """Environment of a served container that captures (Kubernetes, Azure ML): see ``serve_flow.py``."""
    config = {k: v for k, v in configuration.items() if k in {"variants", "params", "source"}}
    return [
        {"name": "LLMOPS_CAPTURE", "value": dest},
        {"name": "LLMOPS_CAPTURE_ARM", "value": arm},
        {"name": "LLMOPS_CAPTURE_SETTINGS", "value": json.dumps(settings.to_dict(), sort_keys=True)},
        {"name": "LLMOPS_CAPTURE_CONFIGURATION", "value": json.dumps(config, sort_keys=True, default=str)},
    ]


def workspace_salt(root: Path) -> str:
    path = Path(root) / STORE_DIR / SALT_FILE
    if path.is_file():
        return path.read_text(encoding="utf-8").strip()
    path.parent.mkdir(parents=True, exist_ok=True)
    value = _secrets.token_hex(32)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as fh:
        fh.write(value + "\n")
    return value


# ------------------------------------------------------------------------------------------ recording


@dataclass
class Arm:
    """One arm of an A/B deployment: a name, the flow version it serves and its configuration."""

    name: str
    version: str
    configuration: dict[str, Any] = field(default_factory=dict)
    url: str = ""
    weight: int = 0
    role: str = ""  # "A" (control, the prior version) or "B" (candidate, the new version)

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "version": self.version,
            "configuration": self.configuration,
            "url": self.url,
            "weight": self.weight,
            "role": self.role,
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Arm:
        return cls(
            name=str(data["name"]),
            version=str(data.get("version") or data["name"]),
            configuration=dict(data.get("configuration") or {}),
            url=str(data.get("url") or ""),
            weight=int(data.get("weight") or 0),
            role=str(data.get("role") or ""),
        )


def _cell_for(run_id: str, idx: int, arm: Arm) -> CellRecord:
    config = arm.configuration
    label = (f"{arm.role} " if arm.role else "") + arm.name
    return CellRecord(
        run_id,
        arm.name,
        idx,
        dict(config.get("variants") or {}),
        dict(config.get("params") or {}),
        TRAFFIC_DATASET,
        0,
        arm.version,
        0,
        "running",
        {"label": label, "role": arm.role, "version": arm.version, "source": config.get("source")},
    )


class TrafficRecorder:
    """Writes captured records of one traffic run into the workspace's store (thread-safe)."""

    def __init__(
        self,
        store: RunStore,
        use_case: str,
        env: str,
        arms: list[Arm],
        settings: CaptureSettings,
        *,
        run_id: str | None = None,
        source: str = "router",
        llm_endpoint: str | None = None,
    ):
        self.store = store
        self.run_id = run_id or f"traffic-{new_run_id(use_case)}"
        self.settings = settings
        self.arms = {a.name: a for a in arms}
        self._lock = threading.RLock()  # record() adds an unknown arm while holding it
        self.stored = 0
        self.skipped = 0  # not sampled, over the cap, or a known request id
        config = {
            "kind": TRAFFIC_TARGET,
            "source": source,
            "arms": [a.to_dict() for a in arms],
            "capture": settings.to_dict(),
            "llm_endpoint": llm_endpoint,
        }
        store.create_run(self.run_id, use_case, env, config, target=TRAFFIC_TARGET)
        store.add_cells(self.run_id, [_cell_for(self.run_id, i, a) for i, a in enumerate(arms)])

    def add_arm(self, arm: Arm) -> None:
        with self._lock:
            if arm.name in self.arms:
                return
            self.arms[arm.name] = arm
            self.store.add_cells(self.run_id, [_cell_for(self.run_id, len(self.arms) - 1, arm)])

    def record(self, rec: dict[str, Any]) -> bool:
        """Store one record (see :func:`llmops_tui.core.capture.build_record`). False when the size cap is
        reached or the request id is already stored."""
        with self._lock:
            if self.stored >= self.settings.max_records:
                self.skipped += 1
                return False
            arm = str(rec.get("arm") or "")
            if arm not in self.arms:
                self.add_arm(Arm(arm, str(rec.get("version") or arm), dict(rec.get("configuration") or {})))
            status = int(rec.get("status") or 0)
            ts = float(rec.get("timestamp") or time.time())
            line = LineRecord(
                run_id=self.run_id,
                cell_id=arm,
                line=0,
                status="ok" if 200 <= status < 300 else "failed",
                inputs=rec.get("inputs")
                if isinstance(rec.get("inputs"), dict)
                else {"_body": rec.get("inputs")},
                outputs=rec.get("outputs") if isinstance(rec.get("outputs"), dict) else None,
                error=rec.get("error") or (None if 200 <= status < 300 else f"HTTP {status}"),
                latency_ms=rec.get("latency_ms"),
                prompt_tokens=int(rec.get("prompt_tokens") or 0),
                completion_tokens=int(rec.get("completion_tokens") or 0),
                total_tokens=int(rec.get("total_tokens") or 0),
                finished_at=ts,
            )
            if not self.store.record_traffic_line(line, str(rec["request_id"]), ts):
                self.skipped += 1
                return False
            self.stored += 1
            return True

    def close(self, status: str = "completed") -> None:
        """Mark the traffic run finished (the router calls this when it stops)."""
        from llmops_tui.core.summary import summarize

        counts = self.store.traffic_count(self.run_id)
        for name in self.arms:
            self.store.set_cell_status(self.run_id, name, "done")
        summary = summarize(self.store, self.run_id)
        summary["captured"] = counts
        summary["skipped"] = self.skipped
        self.store.finish_run(self.run_id, status, summary)


# ------------------------------------------------------------------------------------------- runs


def traffic_runs(store: RunStore, use_case: str, env: str | None = None) -> list[RunRecord]:
    """Traffic runs of a use case (newest first), for one environment when given."""
    return [
        r for r in store.list_runs(use_case) if r.target == TRAFFIC_TARGET and (env is None or r.env == env)
    ]


def pick_run(store: RunStore, use_case: str, env: str, run_id: str | None = None) -> RunRecord:
    """The traffic run to work on: ``run_id`` (checked to be a traffic run of this use case), else the
    newest one of the use case and environment."""
    if run_id:
        run = store.require_run(run_id, field="--run")
        if run.target != TRAFFIC_TARGET or run.use_case != use_case:
            raise LlmopsError(
                f"run {run.run_id} is not a traffic run of '{use_case}'",
                field="--run",
                hint="see `llmops runs`; traffic runs start with 'traffic-'",
            )
        return run
    runs = traffic_runs(store, use_case, env)
    if not runs:
        raise LlmopsError(
            f"no captured traffic for '{use_case}' env '{env}'",
            field="--env",
            hint="deploy an A/B split with --capture, or `llmops traffic import`",
        )
    return runs[0]


# ------------------------------------------------------------------------------------------ import


def _read_json_lines(path: Path) -> Iterable[tuple[int, Any]]:
    with open(path, encoding="utf-8", errors="replace") as fh:
        for n, text in enumerate(fh, 1):
            text = text.strip()
            if not text or not text.startswith("{"):
                continue  # a container's stdout also holds its log lines: only JSON objects count
            try:
                yield n, json.loads(text)
            except ValueError:
                continue


def _azureml_arm(path: Path, item: dict[str, Any]) -> str:
    source = str(item.get("source") or "")
    if "/deployments/" in source:
        return source.rsplit("/deployments/", 1)[1].split("/")[0]
    parts = path.parts
    for marker in ("request", "response", "model_inputs", "model_outputs"):
        if marker in parts:
            i = parts.index(marker)
            if i > 0:
                return parts[i - 1]
    return "default"


def read_captured(folder: Path) -> tuple[list[dict[str, Any]], list[str]]:
    """Records from every ``*.jsonl`` / ``*.json`` / ``*.log`` under ``folder``: our own capture records,
    and Azure ML data collector request/response pairs (joined by their correlation id). Returns the
    records and notes for people (what was skipped and why)."""
    folder = Path(folder)
    if not folder.is_dir():
        raise LlmopsError("not a folder", file=folder, field="--from", hint="give the folder you downloaded")
    records: list[dict[str, Any]] = []
    notes: list[str] = []
    requests: dict[str, dict[str, Any]] = {}
    responses: dict[str, dict[str, Any]] = {}
    files = sorted(p for p in folder.rglob("*") if p.is_file() and p.suffix in {".jsonl", ".json", ".log"})
    for path in files:
        for _, item in _read_json_lines(path):
            if not isinstance(item, dict):
                continue
            if item.get("kind") == "llmops.traffic.v1" and item.get("request_id") and item.get("arm"):
                records.append(item)
                continue
            kind = str(item.get("type") or "")
            cid = str(item.get("correlationid") or item.get("xrequestid") or item.get("id") or "")
            if not cid or "data" not in item:
                continue
            where = "/".join(path.parts).lower()
            if kind.endswith(".request") or kind.endswith("model_inputs") or "/request/" in where:
                requests[cid] = {**item, "_arm": _azureml_arm(path, item)}
            elif kind.endswith(".response") or kind.endswith("model_outputs") or "/response/" in where:
                responses[cid] = item
    for cid, req in requests.items():
        resp = responses.get(cid)
        data_in = req.get("data")
        data_out = resp.get("data") if resp else None
        if isinstance(data_in, list) and len(data_in) == 1:
            data_in = data_in[0]
        if isinstance(data_out, list) and len(data_out) == 1:
            data_out = data_out[0]
        ts = req.get("time")
        try:
            from datetime import datetime

            stamp = datetime.fromisoformat(str(ts).replace("Z", "+00:00")).timestamp() if ts else time.time()
        except ValueError:
            stamp = time.time()
        records.append(
            {
                "request_id": cid,
                "arm": req["_arm"],
                "version": str(req.get("modelversion") or req["_arm"]),
                "timestamp": stamp,
                "inputs": data_in if isinstance(data_in, dict) else {"_body": data_in},
                "outputs": data_out if isinstance(data_out, dict) else None,
                "status": 200 if resp is not None else 0,
                "error": None if resp is not None else "no response collected",
                "latency_ms": None,
            }
        )
    unmatched = len(responses.keys() - requests.keys())
    if unmatched:
        notes.append(f"{unmatched} collected response(s) without their request were skipped")
    if not records:
        notes.append("no capture records and no Azure ML request/response files found")
    return records, notes


def import_traffic(root: Path, uc: Any, env: str, folder: Path) -> dict[str, Any]:
    """Import captured records from ``folder`` into a new traffic run (requests already in the store are
    skipped). The use case's redaction rules apply again on the way in; secrets are masked."""
    records, notes = read_captured(folder)
    settings = capture_settings(root, uc, force=True)
    settings.sample_rate = 1.0
    secret_values = secrets_from_env()
    arms: dict[str, Arm] = {}
    for rec in records:
        arms.setdefault(
            str(rec["arm"]),
            Arm(str(rec["arm"]), str(rec.get("version") or rec["arm"]), dict(rec.get("configuration") or {})),
        )
    if not records:
        return {"run_id": None, "imported": 0, "skipped": 0, "notes": notes}
    with RunStore.for_workspace(root) as store:
        rec_ = TrafficRecorder(store, uc.name, env, list(arms.values()), settings, source=f"import:{folder}")
        for rec in sorted(records, key=lambda r: float(r.get("timestamp") or 0)):
            rec = dict(rec)
            rec["inputs"] = clean_inputs(rec.get("inputs"), settings, secret_values)
            rec_.record(rec)
        rec_.close()
        if rec_.stored == 0:
            store.delete_run(rec_.run_id)
            notes.append("every record was already in the store: nothing new")
            return {"run_id": None, "imported": 0, "skipped": rec_.skipped, "notes": notes}
        return {
            "run_id": rec_.run_id,
            "imported": rec_.stored,
            "skipped": rec_.skipped,
            "arms": sorted(arms),
            "notes": notes,
        }


# ----------------------------------------------------------------------------------------- feedback


def parse_feedback(item: Any, *, where: str = "feedback") -> dict[str, Any]:
    """Validate one feedback item: ``request_id`` and at least one of ``score`` (number), ``label``
    (text) and ``data`` (an object of columns, e.g. the right answer)."""
    if not isinstance(item, dict):
        raise LlmopsError("feedback must be a JSON object", file=where, field="request_id")
    rid = str(item.get("request_id") or "").strip()
    if not rid:
        raise LlmopsError(
            "feedback has no request_id",
            file=where,
            field="request_id",
            hint="use the X-LLMOps-Request-Id header of the answer",
        )
    out: dict[str, Any] = {}
    if item.get("score") not in (None, ""):
        try:
            score = float(item["score"])
        except (TypeError, ValueError):
            raise LlmopsError(f"score {item['score']!r} is not a number", file=where, field="score") from None
        if not math.isfinite(score):
            raise LlmopsError("score must be a finite number", file=where, field="score")
        out["score"] = score
    if item.get("label") not in (None, ""):
        out["label"] = str(item["label"])[:1000]
    if isinstance(item.get("data"), dict):
        out["data"] = {str(k): v for k, v in item["data"].items()}
    if item.get("comment"):
        out["comment"] = str(item["comment"])[:2000]
    if not ({"score", "label", "data"} & out.keys()):
        raise LlmopsError("feedback needs a score, a label or data", file=where, field="score")
    out["request_id"] = rid
    return out


def read_feedback_file(path: Path) -> list[dict[str, Any]]:
    """Feedback items from a JSONL, JSON (a list) or CSV file (columns request_id, score, label, comment)."""
    path = Path(path)
    if not path.is_file():
        raise LlmopsError("no such file", file=path, field="FILE")
    text = path.read_text(encoding="utf-8", errors="replace")
    if path.suffix.lower() == ".csv":
        return [dict(r) for r in csv.DictReader(text.splitlines())]
    stripped = text.strip()
    if stripped.startswith("["):
        try:
            data = json.loads(stripped)
        except ValueError as exc:
            raise LlmopsError(f"not valid JSON: {exc}", file=path, field="FILE") from None
        return list(data)
    out = []
    for n, line in enumerate(text.splitlines(), 1):
        if not line.strip():
            continue
        try:
            out.append(json.loads(line))
        except ValueError:
            raise LlmopsError(
                f"line {n} is not JSON", file=path, field="FILE", hint="one JSON object per line, or a .csv"
            ) from None
    return out


def add_feedback(store: RunStore, items: Iterable[Any], *, where: str = "feedback") -> dict[str, Any]:
    """Join feedback to captured requests. Returns counts and the unknown request ids."""
    joined = 0
    unknown: list[str] = []
    parsed = [parse_feedback(item, where=where) for item in items]  # all valid, or nothing is joined
    for fb in parsed:
        rid = fb.pop("request_id")
        fb["at"] = time.time()
        if store.set_feedback(rid, fb) is None:
            unknown.append(rid)
        else:
            joined += 1
    return {"joined": joined, "unknown": unknown}


# --------------------------------------------------------------------------------------- evaluation


def _data_columns(mappings: dict[str, str]) -> dict[str, str]:
    """evaluator input -> dataset column, for every ``${data.X}`` mapping."""
    out = {}
    for key, value in mappings.items():
        ref = mapping_ref(value)
        if ref is not None and ref[0] == "data":
            out[key] = ref[1]
    return out


def traffic_row(
    inputs: dict[str, Any], feedback: dict[str, Any] | None, columns: Iterable[str]
) -> dict[str, Any]:
    """The "dataset row" of a captured request: its inputs, then the feedback's ``data`` columns; a
    feedback ``label`` fills the one column the request itself does not carry (the ground truth)."""
    row = dict(inputs or {})
    fb = feedback or {}
    row.update(fb.get("data") or {})
    missing = [c for c in columns if c not in row]
    if "label" in fb and len(set(missing)) == 1:
        row[missing[0]] = fb["label"]
    return row


def evaluate_traffic(
    root: Path,
    uc: Any,
    env: str,
    *,
    run_id: str | None = None,
    since: float | None = None,
    llm_endpoint: str | None = None,
    no_cache: bool = False,
) -> dict[str, Any]:
    """Run the use case's evaluators over the captured lines of each arm, through the sweep engine's own
    evaluation step (see module docstring). Results are stored as the traffic run's evaluation lines and
    metrics, so ``compare`` and gates read them. Returns what ran, per evaluator and arm."""
    from llmops_tui.core.engine import EvaluationJob, evaluate_stored_lines
    from llmops_tui.core.sweep import SweepOptions, SweepPlan

    root = Path(root).resolve()
    report: dict[str, Any] = {"evaluators": {}, "notes": []}
    with RunStore.for_workspace(root) as store:
        run = pick_run(store, uc.name, env, run_id)
        report["run_id"] = run.run_id
        cells = store.cells(run.run_id)
        feedback = {(t["cell_id"], t["line"]): t["feedback"] for t in store.traffic_lines(run.run_id)}
        endpoint = llm_endpoint if llm_endpoint is not None else run.config.get("llm_endpoint")
        evaluators = [e for e in uc.evaluators if e.flow is not None]
        if endpoint is None and not any(e.flow.llm_nodes for e in evaluators if e.flow is not None):
            # Evaluators without model calls need no key: give them the in-process sandbox, never called.
            endpoint = "sandbox"
        options = SweepOptions(llm_endpoint=endpoint, no_cache=no_cache, workers=1, env=env, concurrency=8)
        plan = SweepPlan(uc.name, env, options, [], {}, 8, 1)
        if not evaluators:
            report["notes"].append("the use case has no evaluators: only feedback scores are compared")
        jobs: list[EvaluationJob] = []
        placed: list[tuple[dict[str, Any], str, int]] = []  # (report entry, cell id, skipped lines) per job
        for ev in evaluators:
            mappings = ev.datasets[0].mappings if ev.datasets else {}
            columns = _data_columns(mappings)
            entry: dict[str, Any] = {"arms": {}, "needs": sorted(set(columns.values()))}
            report["evaluators"][ev.name] = entry
            for cell in cells:
                lines = [
                    ln
                    for ln in store.lines(run.run_id, cell.cell_id)
                    if ln.status == "ok" and (since is None or (ln.finished_at or 0) >= since)
                ]
                rows: dict[int, dict[str, Any]] = {}
                for ln in lines:
                    row = traffic_row(
                        ln.inputs or {}, feedback.get((cell.cell_id, ln.line)), columns.values()
                    )
                    if all(col in row for col in columns.values()):
                        rows[ln.line] = row
                usable = {ln.line: ln for ln in lines if ln.line in rows}
                if not usable:
                    entry["arms"][cell.cell_id] = {"lines": 0, "skipped": len(lines), "metrics": {}}
                    continue
                entry["arms"][cell.cell_id] = None  # filled in below, in the arms' order
                # The engine's evaluation step takes rows indexed by line number.
                dense = [rows.get(i, {}) for i in range(max(rows) + 1)]
                jobs.append((ev, mappings, dense, usable))
                placed.append((entry, cell.cell_id, len(lines) - len(usable)))
        results = evaluate_stored_lines(root, uc, plan, run_id=run.run_id, store=store, jobs=jobs)
        for (ev, _, _, usable), (entry, cell_id, skipped), (metrics, eval_rows) in zip(
            jobs, placed, results, strict=True
        ):
            store.record_eval_lines(run.run_id, cell_id, ev.name, eval_rows)
            store.record_metrics(run.run_id, cell_id, ev.name, metrics)
            entry["arms"][cell_id] = {
                "lines": len(usable),
                "skipped": skipped,
                "failed": sum(1 for r in eval_rows if r[1] != "ok"),
                "metrics": metrics,
            }
        for name, entry in report["evaluators"].items():
            if all(a["lines"] == 0 for a in entry["arms"].values()):
                report["notes"].append(
                    f"evaluator {name} needs {', '.join(entry['needs'])}: no captured request carries it "
                    "and no feedback supplies it"
                )
        # Feedback scores are a metric of their own (per line, so they get intervals and tests).
        fb_rows: dict[str, list[tuple[int, str, Any, str | None]]] = {}
        for (cell_id, line), fb in feedback.items():
            if fb and "score" in fb:
                fb_rows.setdefault(cell_id, []).append((line, "ok", {"score": fb["score"]}, None))
        for cell_id, rows_ in fb_rows.items():
            store.record_eval_lines(run.run_id, cell_id, FEEDBACK_EVALUATOR, rows_)
            mean = float(np.mean([r[2]["score"] for r in rows_]))
            store.record_metrics(run.run_id, cell_id, FEEDBACK_EVALUATOR, {"score": mean})
    return report


# ---------------------------------------------------------------------------------------- comparison


@dataclass
class ArmStats:
    name: str
    role: str
    version: str
    configuration: dict[str, Any]
    requests: int
    errors: int
    latency: dict[str, float | None]
    tokens: int
    cost: float | None
    metrics: dict[str, dict[str, Any]]  # key -> {value, low, high, n}
    feedback: int

    def to_dict(self) -> dict[str, Any]:
        return {
            "arm": self.name,
            "role": self.role,
            "version": self.version,
            "configuration": self.configuration,
            "requests": self.requests,
            "errors": self.errors,
            "error_rate": (self.errors / self.requests) if self.requests else None,
            "latency_ms": self.latency,
            "tokens": self.tokens,
            "cost": self.cost,
            "metrics": self.metrics,
            "feedback": self.feedback,
        }


@dataclass
class TrafficComparison:
    run_id: str
    use_case: str
    env: str | None
    a: str
    b: str
    arms: list[ArmStats]
    tests: list[dict[str, Any]]
    gates: list[dict[str, Any]]
    verdict: str
    decision: str  # "promote" | "rollback" | "wait"
    primary: str | None
    warnings: list[str]

    def to_dict(self) -> dict[str, Any]:
        return {
            "run_id": self.run_id,
            "use_case": self.use_case,
            "env": self.env,
            "a": self.a,
            "b": self.b,
            "arms": [a.to_dict() for a in self.arms],
            "tests": self.tests,
            "gates": self.gates,
            "verdict": self.verdict,
            "decision": self.decision,
            "primary": self.primary,
            "warnings": self.warnings,
        }


def _roles(cells: list[CellRecord], run: RunRecord) -> tuple[str, str]:
    """(A, B): A is the control (the prior version), B the candidate. From the arms' roles when the
    router recorded them, else the first two arms in order."""
    names = [c.cell_id for c in cells]
    roles = {c.extra.get("role"): c.cell_id for c in cells if c.extra.get("role")}
    a = roles.get("A") or (names[0] if names else "")
    b = roles.get("B") or next((n for n in names if n != a), a)
    return a, b


def resolve_arm(run: RunRecord, cells: list[CellRecord], arm: str) -> CellRecord:
    """An arm by role (A, B), name or version prefix."""
    a, b = _roles(cells, run)
    wanted = {"A": a, "B": b}.get(arm.upper(), arm) if arm.upper() in {"A", "B"} else arm
    matches = [c for c in cells if c.cell_id == wanted] or [
        c for c in cells if c.cell_id.startswith(wanted) or str(c.flow_hash or "").startswith(wanted)
    ]
    if len(matches) != 1:
        known = ", ".join(f"{c.extra.get('role') or '-'}={c.cell_id}" for c in cells)
        raise LlmopsError(
            f"no single arm '{arm}' in traffic run {run.run_id}", field="--arm", hint=f"arms: {known}"
        )
    return matches[0]


def _scores(store: RunStore, run_id: str, cell_id: str) -> dict[str, dict[int, float]]:
    out: dict[str, dict[int, float]] = {}
    for ev in store.eval_lines(run_id, cell_id):
        if ev["status"] != "ok" or not isinstance(ev["outputs"], dict):
            continue
        for name, raw in ev["outputs"].items():
            if isinstance(raw, bool):
                val: float | None = float(raw)
            elif isinstance(raw, int | float) and math.isfinite(float(raw)):
                val = float(raw)
            else:
                val = None
            if val is not None:
                out.setdefault(f"{ev['evaluator']}.{name}", {})[ev["line"]] = val
    return out


def compare_traffic(
    root: Path, uc: Any, env: str, *, run_id: str | None = None, effect: float | None = None
) -> TrafficComparison:
    """The arms of a traffic run side by side: requests, error rate, latency p50/p95/p99, tokens and cost,
    evaluator metrics and feedback with 95% intervals and unpaired tests of B against A, the use case's
    gates per arm, and a verdict (see :func:`_verdict`)."""
    from llmops_tui.core.compare import RUN_COMPLETED_GATE, build_comparison, metric_direction

    root = Path(root).resolve()
    with RunStore.for_workspace(root) as store:
        run = pick_run(store, uc.name, env, run_id)
        cells = store.cells(run.run_id)
        if len(cells) < 2:
            raise LlmopsError(
                f"traffic run {run.run_id} has {len(cells)} arm(s): an A/B comparison needs two",
                field="--run",
            )
        a, b = _roles(cells, run)
        warnings: list[str] = []
        try:
            comparison = build_comparison(store, run.run_id, workspace_root=root, baseline=a)
            gates = [
                {"gate": g.gate, "arm": g.cell_id, "passed": g.passed, "reason": g.reason}
                for g in comparison.gates
                if g.gate != RUN_COMPLETED_GATE
            ]
            cost_row = comparison.row("cost_usd")
            # The sweep comparison's paired-test remarks do not apply: arms see different requests.
            warnings.extend(
                w
                for w in comparison.warnings
                if "run " + run.run_id + " is" not in w and "pair with the baseline" not in w
            )
        except LlmopsError as exc:
            comparison, gates, cost_row = None, [], None
            warnings.append(f"gates not evaluated: {exc}")
        lines = {c.cell_id: store.lines(run.run_id, c.cell_id) for c in cells}
        scores = {c.cell_id: _scores(store, run.run_id, c.cell_id) for c in cells}
        fb_counts: dict[str, int] = {}
        for t in store.traffic_lines(run.run_id):
            if t["feedback"]:
                fb_counts[t["cell_id"]] = fb_counts.get(t["cell_id"], 0) + 1
    arms: list[ArmStats] = []
    for c in cells:
        lns = lines[c.cell_id]
        lat = [ln.latency_ms for ln in lns if ln.latency_ms is not None and ln.status == "ok"]
        metrics = {}
        for key, per_line in sorted(scores[c.cell_id].items()):
            vals = np.fromiter(per_line.values(), float, len(per_line))
            lo, hi = stats.mean_ci(vals)
            metrics[key] = {"value": float(vals.mean()), "low": lo, "high": hi, "n": int(vals.size)}
        cost = None
        if cost_row is not None and any(ln.total_tokens for ln in lns):
            mv = cost_row.values.get(c.cell_id)
            cost = mv.value if mv is not None else None
        arms.append(
            ArmStats(
                name=c.cell_id,
                role=str(c.extra.get("role") or ("A" if c.cell_id == a else "B" if c.cell_id == b else "")),
                version=str(c.flow_hash or ""),
                configuration={"variants": c.variants, "params": c.params, "source": c.extra.get("source")},
                requests=len(lns),
                errors=sum(1 for ln in lns if ln.status != "ok"),
                latency={f"p{q}": stats.percentile(lat, q) for q in (50, 95, 99)},
                tokens=sum(ln.total_tokens for ln in lns),
                cost=cost,
                metrics=metrics,
                feedback=fb_counts.get(c.cell_id, 0),
            )
        )
    # Unpaired tests of B against A: every per-line metric, the error rate and the latency.
    tests: list[dict[str, Any]] = []
    series: dict[str, tuple[np.ndarray, np.ndarray, bool]] = {}
    for key in sorted(set(scores[a]) | set(scores[b])):
        name = key.split(".", 1)[-1]
        series[key] = (
            np.fromiter(scores[a].get(key, {}).values(), float),
            np.fromiter(scores[b].get(key, {}).values(), float),
            metric_direction(name),
        )
    series["error_rate"] = (
        np.fromiter((0.0 if ln.status == "ok" else 1.0 for ln in lines[a]), float),
        np.fromiter((0.0 if ln.status == "ok" else 1.0 for ln in lines[b]), float),
        False,
    )
    series["latency_ms"] = (
        np.fromiter((ln.latency_ms for ln in lines[a] if ln.latency_ms is not None), float),
        np.fromiter((ln.latency_ms for ln in lines[b] if ln.latency_ms is not None), float),
        False,
    )
    for key, (xa, xb, higher_better) in series.items():
        res = stats.unpaired_test(xa, xb)
        d = effect if effect else (abs(res.delta) if res.delta and math.isfinite(res.delta) else None)
        if not d and xa.size:
            d = 0.05 if stats.is_binary(xa) else 0.1 * abs(float(xa.mean()) or 1.0)
        need = stats.sample_size_per_arm(xa, xb, d or 0.0) if d else None
        better = None
        if res.significant:
            better = (res.delta > 0) == higher_better
        tests.append(
            {
                "metric": key,
                "a": float(xa.mean()) if xa.size else None,
                "b": float(xb.mean()) if xb.size else None,
                "delta": res.delta if math.isfinite(res.delta) else None,
                "p_value": res.p_value,
                "significant": res.significant,
                "method": res.note,
                "n_a": res.n_a,
                "n_b": res.n_b,
                "b_better": better,
                "higher_is_better": higher_better,
                "effect": d,
                "needed_per_arm": need,
            }
        )
    primary = _primary(uc, tests)
    verdict, decision = _verdict(tests, primary, gates, b)
    return TrafficComparison(
        run.run_id, uc.name, run.env, a, b, arms, tests, gates, verdict, decision, primary, warnings
    )


def _primary(uc: Any, tests: list[dict[str, Any]]) -> str | None:
    """The metric the verdict is about: the first gate on an evaluation metric that has per-line
    scores, else the first evaluator metric, else feedback, else the error rate."""
    keys = [t["metric"] for t in tests]
    evals = [k for k in keys if k not in {"error_rate", "latency_ms"}]
    for gate in uc.extras.gates:
        hits = [k for k in evals if k == gate.metric or k.split(".", 1)[-1] == gate.metric.split(".", 1)[-1]]
        if hits:
            return hits[0]
    # An aggregate-only gate (accuracy) is scored per line by another name (correct): take the
    # evaluator's first 0/1 score.
    named = [k for k in evals if not k.startswith(FEEDBACK_EVALUATOR + ".")]
    return (named or evals or ["error_rate"])[0]


def _fmt_p(p: float | None) -> str:
    """``p = 0.012`` or ``p < 0.001`` (``p n/a`` without a test)."""
    if p is None:
        return "p n/a"
    return f"p = {p:.2g}" if p >= 0.001 else "p < 0.001"


def _verdict(
    tests: list[dict[str, Any]], primary: str | None, gates: list[dict[str, Any]], b: str
) -> tuple[str, str]:
    """One sentence and a decision (promote | rollback | wait) from the tests and gates."""
    by = {t["metric"]: t for t in tests}
    worse = [t for t in tests if t["b_better"] is False and t["metric"] != "latency_ms"]
    failed_b = [g for g in gates if g["arm"] == b and not g["passed"]]
    p = by.get(primary or "")
    if worse:
        t = worse[0]
        return (
            f"B worse on {t['metric']} ({t['a']:.3g} -> {t['b']:.3g}, {_fmt_p(t['p_value'])}): roll back",
            "rollback",
        )
    if p is not None and p["b_better"]:
        text = f"B better on {p['metric']} ({p['a']:.3g} -> {p['b']:.3g}, {_fmt_p(p['p_value'])})"
        if failed_b:
            text += f", but B fails {len(failed_b)} gate(s): {failed_b[0]['gate']}"
            return text, "wait"
        return text, "promote"
    last = p or by.get("error_rate")
    if last is None:
        return "nothing to compare yet", "wait"
    need = last.get("needed_per_arm")
    have = min(last["n_a"], last["n_b"])
    more = f"; about {max(0, need - have)} more requests per arm needed" if need else ""
    eff = f" for a difference of {last['effect']:.3g}" if need and last.get("effect") else ""
    return (
        f"no significant difference yet on {last['metric']} ({_fmt_p(last['p_value'])}){more}{eff}",
        "wait",
    )
