"""Portable runs: one self-contained file that carries a run from one workspace's store to another's.

A run exported here holds everything compare, the line view, reports, gates and approval read from the
store: the run record (config, status, error, summary, target), its cells (with the flow hash each was
measured with), every line (inputs, outputs, error, status, logs, figures), the evaluation lines and the
metrics, plus the tool version. Keys are never in the store, and the export refuses to write a file in
which the value of a key-like environment variable shows up anyway.

The file is gzip-compressed JSON. A SHA-256 digest over a canonical serialisation of each section (and of
the whole payload) is recorded, so an import refuses a file that was changed after export and names the
section that changed. The digest proves integrity against edits and damage, not who made the file: a
person who recomputes the digests can forge one (signed approvals are what say who decided).
"""

from __future__ import annotations

import dataclasses
import gzip
import hashlib
import json
import os
import re
import socket
import time
import zlib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from llmops_tui import __version__
from llmops_tui.core.errors import LlmopsError
from llmops_tui.core.store import CellRecord, LineRecord, RunRecord, RunStore

FORMAT = "llmops-run"
FORMAT_VERSION = 1
SECTIONS = ("meta", "run", "cells", "lines", "eval_lines", "metrics")
SUFFIX = ".llmops-run.json.gz"

# Environment variables whose values are secrets: none of their values may appear in an exported file.
_SECRET_NAME = re.compile(r"(KEY|SECRET|TOKEN|PASSWORD|PASSWD|CREDENTIAL)", re.IGNORECASE)
# Config entries that would hold a key if someone ever put one there.
_SECRET_FIELD = re.compile(r"(api_?key|secret|token|password|passwd|credential)", re.IGNORECASE)


@dataclass
class ExportResult:
    run_id: str
    path: Path
    digest: str
    lines: int
    cells: int


@dataclass
class ImportResult:
    run_id: str
    imported: bool  # False: the same run was already in this store (nothing was written)
    digest: str
    status: str
    message: str
    evidence: str = ""  # whether the workspace's flow and datasets still match what the run measured
    matches: bool | None = None  # None: unknown (no such use case here, or an older run without evidence)


def canonical(obj: Any) -> bytes:
    """The canonical bytes of a JSON value: sorted keys, no whitespace, UTF-8."""
    return json.dumps(obj, sort_keys=True, separators=(",", ":"), ensure_ascii=False, default=str).encode()


def _sha256(obj: Any) -> str:
    return hashlib.sha256(canonical(obj)).hexdigest()


def digests(payload: dict[str, Any]) -> dict[str, Any]:
    """The digest record of a payload: one SHA-256 per section and one over the whole payload."""
    return {
        "algorithm": "sha256",
        "payload": _sha256(payload),
        "sections": {name: _sha256(payload.get(name)) for name in SECTIONS},
    }


# ------------------------------------------------------------------------------------------------ export


def build_payload(store: RunStore, run: RunRecord) -> dict[str, Any]:
    """Everything the store holds about ``run``, as plain JSON data (no ``run_id`` repeated per row)."""
    cells = store.cells(run.run_id)
    return {
        "meta": {
            "tool": "llmops-tui",
            "tool_version": __version__,
            "exported_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
            "exported_from_host": socket.gethostname(),
        },
        "run": {
            "run_id": run.run_id,
            "use_case": run.use_case,
            "env": run.env,
            "status": run.status,
            "started_at": run.started_at,
            "finished_at": run.finished_at,
            "host": run.host,
            "target": run.target,
            "config": run.config,
            "summary": run.summary,
            "error": run.error,
        },
        "cells": [_without_run_id(dataclasses.asdict(c)) for c in cells],
        "lines": [_without_run_id(dataclasses.asdict(ln)) for ln in store.lines(run.run_id)],
        "eval_lines": store.run_eval_lines(run.run_id),
        "metrics": [
            {"cell_id": cell_id, "evaluator": evaluator, "name": name, "value": value}
            for cell_id, by_eval in sorted(store.metrics(run.run_id).items())
            for evaluator, named in sorted(by_eval.items())
            for name, value in sorted(named.items())
        ],
    }


def _without_run_id(row: dict[str, Any]) -> dict[str, Any]:
    row.pop("run_id", None)
    return row


def _secret_values() -> list[str]:
    """Values of key-like environment variables long enough to be keys (short values are not secrets)."""
    return [v for k, v in os.environ.items() if _SECRET_NAME.search(k) and len(v) >= 8]


def _secret_fields(obj: Any, path: str = "") -> list[str]:
    """Paths of config entries named like a key that hold a literal value (``${...}`` references are fine)."""
    found: list[str] = []
    if isinstance(obj, dict):
        for k, v in obj.items():
            here = f"{path}.{k}" if path else str(k)
            if _SECRET_FIELD.search(str(k)) and isinstance(v, str) and v and not v.startswith("${"):
                found.append(here)
            else:
                found.extend(_secret_fields(v, here))
    elif isinstance(obj, list):
        for i, v in enumerate(obj):
            found.extend(_secret_fields(v, f"{path}[{i}]"))
    return found


def check_no_secrets(payload: dict[str, Any]) -> None:
    """Refuse a payload that holds a key: a literal under a key-like config name, or the value of a
    key-like environment variable anywhere. The message names where, never the value."""
    fields = _secret_fields(payload["run"].get("config") or {})
    if fields:
        raise LlmopsError(
            f"the run's config holds a value under {', '.join(fields[:3])}, which looks like a key",
            field="RUN_ID",
            hint="a run file never carries keys; remove it from the run before exporting",
        )
    secrets = _secret_values()
    if not secrets:
        return
    for name in SECTIONS:
        text = canonical(payload.get(name)).decode()
        for value in secrets:
            if value in text or json.dumps(value, ensure_ascii=False)[1:-1] in text:
                env_name = next(k for k, v in os.environ.items() if v == value)
                raise LlmopsError(
                    f"the value of {env_name} appears in the run's {name} section",
                    field="RUN_ID",
                    hint="a run file never carries keys; find where the flow printed or returned it",
                )


def export_run(store: RunStore, run_id: str, out: Path | None = None) -> ExportResult:
    """Write run ``run_id`` (or a unique prefix) to ``out`` (default ``RUN_ID.llmops-run.json.gz`` in the
    current directory). A running run is refused: it must finish or be interrupted first."""
    run = store.require_run(run_id)
    if run.status == "running":
        raise LlmopsError(
            f"run {run.run_id} is still running (pid {run.pid} on {run.host})",
            field="RUN_ID",
            hint="wait for it to finish, or stop it, then export",
        )
    payload = build_payload(store, run)
    check_no_secrets(payload)
    digest = digests(payload)
    document = {"format": FORMAT, "version": FORMAT_VERSION, "digest": digest, "payload": payload}
    path = Path(out) if out is not None else Path(f"{run.run_id}{SUFFIX}")
    data = gzip.compress(canonical(document), compresslevel=6, mtime=0)
    tmp = path.with_name(path.name + ".part")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp.write_bytes(data)
        os.replace(tmp, path)
    except OSError as exc:
        tmp.unlink(missing_ok=True)
        raise LlmopsError(
            f"cannot write the run file: {exc.strerror or exc}", file=path, field="--out"
        ) from exc
    return ExportResult(run.run_id, path, digest["payload"], len(payload["lines"]), len(payload["cells"]))


# ------------------------------------------------------------------------------------------------ import


def read_run_file(path: Path) -> tuple[dict[str, Any], str]:
    """The verified payload of a run file and its digest. Refuses (LlmopsError naming the file) a file
    that is not a run file, is of a newer format, or was altered after export (naming the sections)."""
    path = Path(path)
    try:
        raw = path.read_bytes()
    except OSError as exc:
        raise LlmopsError(f"cannot read: {exc.strerror or exc}", file=path, field="FILE") from exc
    try:
        text = gzip.decompress(raw) if raw[:2] == b"\x1f\x8b" else raw
        document = json.loads(text)
    except (OSError, EOFError, zlib.error, UnicodeDecodeError, ValueError) as exc:
        raise LlmopsError(
            f"not a readable run file ({type(exc).__name__})",
            file=path,
            field="FILE",
            hint="give a file written by `llmops runs export`",
        ) from exc
    if not isinstance(document, dict) or document.get("format") != FORMAT:
        raise LlmopsError(
            "not a run file (no 'format: llmops-run')",
            file=path,
            field="format",
            hint="give a file written by `llmops runs export`",
        )
    version = document.get("version")
    if not isinstance(version, int) or version > FORMAT_VERSION:
        raise LlmopsError(
            f"run file format version {version!r} is newer than this tool reads ({FORMAT_VERSION})",
            file=path,
            field="version",
            hint="upgrade llmops-tui on this machine",
        )
    payload = document.get("payload")
    recorded = document.get("digest")
    if not isinstance(payload, dict) or not isinstance(recorded, dict):
        raise LlmopsError("the run file has no payload or no digest", file=path, field="payload")
    actual = digests(payload)
    rec_sections = recorded.get("sections")
    if not isinstance(rec_sections, dict):
        rec_sections = {}
    changed = [name for name in SECTIONS if rec_sections.get(name) != actual["sections"][name]]
    if changed:
        raise LlmopsError(
            "the file was altered after export: the "
            + ", ".join(changed)
            + (" section does" if len(changed) == 1 else " sections do")
            + " not match the digest recorded at export",
            file=path,
            field="payload." + changed[0],
            hint="export the run again from its workspace",
        )
    if recorded.get("payload") != actual["payload"] or set(payload) - set(SECTIONS):
        raise LlmopsError(
            "the file was altered after export: its digest record does not match the payload",
            file=path,
            field="digest",
            hint="export the run again from its workspace",
        )
    _check_shape(payload, path)
    return payload, actual["payload"]


def _check_shape(payload: dict[str, Any], path: Path) -> None:
    run = payload.get("run")
    if not isinstance(run, dict) or not all(
        isinstance(run.get(k), str) and run.get(k) for k in ("run_id", "use_case", "status")
    ):
        raise LlmopsError("the run section lacks run_id, use_case or status", file=path, field="payload.run")
    for name in ("cells", "lines", "eval_lines", "metrics"):
        rows = payload.get(name)
        if not isinstance(rows, list) or not all(isinstance(r, dict) for r in rows):
            raise LlmopsError(f"the {name} section is not a list of rows", file=path, field=f"payload.{name}")


def import_run(store: RunStore, path: Path) -> ImportResult:
    """Bring the run in ``path`` into ``store``, in one transaction. Importing the same file again is a
    no-op (``imported`` False); a different run with the same id in the store is refused."""
    payload, digest = read_run_file(path)
    run_id = payload["run"]["run_id"]
    existing = store.run_by_exact_id(run_id)
    if existing is not None:
        if _same_run(store, existing, payload, digest):
            return ImportResult(
                run_id, False, digest, existing.status, f"run {run_id} is already in this workspace"
            )
        raise LlmopsError(
            f"a different run with id {run_id} is already in this workspace",
            file=path,
            field="run_id",
            hint=f"delete it first (llmops delete-run {run_id}) or import into another workspace",
        )
    meta = payload.get("meta") or {}
    r = payload["run"]
    config = dict(r.get("config") or {})
    config["imported_from"] = {
        "host": meta.get("exported_from_host"),
        "exported_at": meta.get("exported_at"),
        "tool_version": meta.get("tool_version"),
        "digest": digest,
        "file": Path(path).name,
        "imported_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
    }
    try:
        run = RunRecord(
            run_id=run_id,
            use_case=r["use_case"],
            env=r.get("env"),
            status=r["status"],
            started_at=float(r.get("started_at") or 0.0),
            finished_at=r.get("finished_at"),
            pid=None,
            host=r.get("host"),
            target=r.get("target") or "local",
            config=config,
            summary=r.get("summary"),
            error=r.get("error"),
        )
        cells = [CellRecord(run_id=run_id, **c) for c in payload["cells"]]
        lines = [LineRecord(run_id=run_id, **ln) for ln in payload["lines"]]
        evals = [
            (e["cell_id"], e["evaluator"], int(e["line"]), e["status"], e.get("outputs"), e.get("error"))
            for e in payload["eval_lines"]
        ]
        metrics = [(m["cell_id"], m["evaluator"], m["name"], m.get("value")) for m in payload["metrics"]]
    except (KeyError, TypeError, ValueError) as exc:
        raise LlmopsError(
            f"the run file's rows do not fit this tool's store ({type(exc).__name__}: {exc})",
            file=path,
            field="payload",
            hint="export it again with the same llmops-tui version as this machine",
        ) from exc
    store.insert_run(run, cells, lines, evals, metrics)
    matches, evidence = evidence_check(store, run)
    return ImportResult(
        run_id,
        True,
        digest,
        run.status,
        f"imported run {run_id} ({run.status}); {evidence}",
        evidence,
        matches,
    )


def evidence_check(store: RunStore, run: RunRecord) -> tuple[bool | None, str]:
    """Does the workspace of ``store`` still hold the flow and datasets ``run`` measured? (matches, one
    line naming the files that differ). Approving a cell of a run that does not match is refused."""
    from llmops_tui.core.evidence import describe_mismatches, evidence_mismatches
    from llmops_tui.core.workspace import load_workspace

    root = Path(store.path).resolve().parent.parent
    try:
        uc = load_workspace(root, env=run.env).get(run.use_case)
        found = evidence_mismatches(root, uc, run.config or {})
    except (LlmopsError, OSError) as exc:
        return None, f"cannot compare it with this workspace: {exc}"
    diff = describe_mismatches(found)
    if diff:
        return False, f"this workspace differs from what the run measured: {diff}"
    if found.get("unknown"):
        return None, f"cannot tell whether this workspace matches ({'; '.join(found['unknown'])})"
    return True, "this workspace's flow and datasets match what the run measured"


def _same_run(store: RunStore, existing: RunRecord, payload: dict[str, Any], digest: str) -> bool:
    """True when the stored run is the one in the file: imported from it before, or its original."""
    if (existing.config.get("imported_from") or {}).get("digest") == digest:
        return True
    if existing.status == "running":
        return False
    here = build_payload(store, existing)
    skip = ("meta",)
    return all(_sha256(here[name]) == _sha256(payload[name]) for name in SECTIONS if name not in skip)
