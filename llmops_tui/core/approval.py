"""Human-in-the-loop approval: a lead approves (or rejects) one measured configuration for an environment.

The decision is an ``ApprovalRecord``: a small signed JSON file in the use case folder, committed with the
code so it reaches CI through git.

- ``<use case>/approvals/<env>.json`` is the current decision for that environment;
- ``<use case>/approvals/history/<env>-<UTC time>-<short signature>.json`` keeps every decision ever made.

The record binds the decision to exactly what was measured: the variants and parameter overrides of
the cell, the content hash of the standard flow *as it will be deployed* (variants applied, overrides
baked in, see :func:`approved_flow_hash`), the hash of every file of the source flow folder (so a
failed check can name the edited file), the sha256 of every dataset the cell ran and was evaluated on,
the metrics and gate results at approval time, the run and cell, who decided, when and why.

It is signed with HMAC-SHA256 over its canonical JSON (sorted keys, no whitespace, without the
``signature`` field). The key comes from ``LLMOPS_APPROVAL_KEY`` when set (CI), else from the OS
keyring entry ("llmops-tui", "approval-key") on a lead's machine. Records are never written unsigned.
Only a key id (an HMAC of a fixed label, which reveals nothing about the key) is stored.

:func:`verify_approval` is what ``llmops verify-approval`` and the deploy module call: it passes only
when a validly signed, approved, current record exists whose hashes match the flow and datasets as
they are now, and otherwise lists every reason in one line each.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import math
import os
import re
import shutil
import subprocess
import tempfile
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from llmops_tui.core import sshsig
from llmops_tui.core.errors import LlmopsError
from llmops_tui.core.extras import EXTRAS_FILE
from llmops_tui.core.files import name_problem, safe_join
from llmops_tui.core.hashing import canonical_json, flow_files, hash_file, hash_folder
from llmops_tui.core.secrets import get_secret
from llmops_tui.core.store import RunRecord
from llmops_tui.core.workspace import UseCase, load_workspace

SCHEMA_VERSION = 2  # 2: ``sequence`` and ``previous`` (rollback protection); 1 is still verified
KNOWN_SCHEMAS = (1, 2)
RECORD_KIND = "llmops-tui/approval"
APPROVALS_DIR = "approvals"
HISTORY_DIR = "history"
KEY_ENV_VAR = "LLMOPS_APPROVAL_KEY"
KEYRING_NAME = "approval-key"
MIN_KEY_LENGTH = 16
DECISIONS = ("approved", "rejected")
_ENV_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.]*$")
_KEY_HINT = (
    f"set the environment variable {KEY_ENV_VAR} (in CI: a pipeline secret), or store the key in the "
    "OS keyring with `llmops approval-key --generate`; see docs/approval.md"
)

# Reason texts, stable so that CI logs and tests can match them.
MISSING = "missing"
SIGNATURE_INVALID = "signature invalid (record edited or wrong key)"
REJECTED = "rejected"
SUPERSEDED = "superseded"
FLOW_EDITED = "flow edited after approval"
DATASET_CHANGED = "dataset changed"
VARIANT_GONE = "variant in record no longer exists"
ROLLED_BACK = "rolled back"
CONFLICT = "conflicting decisions"
HISTORY_BROKEN = "history truncated"
SIGNATURE_MISMATCH = "signature does not match this record (record edited after signing, or signature copied from another record)"
KEY_NOT_ALLOWED = "key not in allowed signers"
ENV_NOT_ALLOWED = "key not allowed for this environment"
KEY_EXPIRED = "key expired"
NO_ALLOWED_SIGNERS = "no allowed_signers file"
NOT_ENOUGH = "not enough approvers"
SWEEPER_APPROVED = "approver ran the sweep"
SHARED_KEY = "shared-key"  # the mode of HMAC-signed records
SSH = "ssh"
LEDGER_FILE = "approval-ledger.json"  # under <workspace>/.llmops/: the newest decision seen per use case/env


# ------------------------------------------------------------------------------------------------ keys


@dataclass(frozen=True)
class ApprovalKey:
    """The signing key in memory only. ``source`` says where it came from; ``key_id`` identifies it."""

    value: bytes = field(repr=False)
    source: str

    @property
    def key_id(self) -> str:
        return key_id(self.value)


def key_id(key: bytes) -> str:
    """A short public id of a key: HMAC of a fixed label, so it reveals nothing about the key itself."""
    return "hmac-sha256:" + hmac.new(key, b"llmops-tui approval key id", hashlib.sha256).hexdigest()[:16]


def load_approval_key(*, required: bool = True) -> ApprovalKey | None:
    """The approval key: ``LLMOPS_APPROVAL_KEY`` wins when set, else the OS keyring
    ("llmops-tui", "approval-key"). Raises LlmopsError with what to do when there is none (or returns
    None when ``required`` is false)."""
    secret, notes = get_secret(KEYRING_NAME, env_var=KEY_ENV_VAR, keyring_name=KEYRING_NAME)
    if secret is None:
        if not required:
            return None
        where = f"; keyring: {'; '.join(notes)}" if notes else ""
        raise LlmopsError(f"no approval key found{where}", field=KEY_ENV_VAR, hint=_KEY_HINT)
    if len(secret.value) < MIN_KEY_LENGTH:
        # Never say what the value is, only how long it should be.
        raise LlmopsError(
            f"the approval key from {secret.source} is too short (at least {MIN_KEY_LENGTH} characters)",
            field=KEY_ENV_VAR,
            hint="generate one with `llmops approval-key --generate`",
        )
    return ApprovalKey(secret.value.encode("utf-8"), secret.source)


def signing_payload(record: dict[str, Any]) -> bytes:
    """The bytes that are signed: canonical JSON of the record without its ``signature`` and
    ``signatures`` fields (the SSH signatures of co-signers are added without changing the decision)."""
    return canonical_json({k: v for k, v in record.items() if k not in ("signature", "signatures")}).encode(
        "utf-8"
    )


def decision_id(record: dict[str, Any]) -> str:
    """The id of an SSH-signed decision (its ``signature`` field): sha256 of the signed payload."""
    return "sha256:" + hashlib.sha256(signing_payload(record)).hexdigest()


# ------------------------------------------------------------------------------------ SSH signing


@dataclass(frozen=True)
class SshSigner:
    """A person's SSH key: a private key file, or a public key file whose private half ssh-agent holds.
    The passphrase, when given, only ever reaches ssh-keygen (see core.sshsig)."""

    key_file: Path
    passphrase: str | None = field(default=None, repr=False)

    def public_key(self) -> str:
        return sshsig.read_public_key(self.key_file)

    def fingerprint(self) -> str:
        return sshsig.fingerprint(self.public_key())


def ssh_signer_from_env() -> SshSigner | None:
    """The signing key named by ``LLMOPS_SIGNING_KEY`` (a path), or None."""
    value = os.environ.get(sshsig.SIGNING_KEY_ENV, "").strip()
    return SshSigner(Path(value).expanduser()) if value else None


def allowed_signers_path(workspace_root: Path, use_case: UseCase) -> Path | None:
    """The allowed-signers file that governs ``use_case``: ``<use case>/allowed_signers`` when there is
    one, else ``<workspace>/allowed_signers``, else None."""
    for folder in (use_case.path, Path(workspace_root)):
        path = Path(folder) / sshsig.ALLOWED_SIGNERS_FILE
        if path.is_file():
            return path
    return None


def approval_policy(use_case: UseCase, env: str) -> Any:
    """The ``approvals:`` policy of ``env`` in the use case's llmops.yaml (default: one approver)."""
    from llmops_tui.core.extras import ApprovalPolicy

    policies = getattr(use_case.extras, "approvals", None) or {}
    return policies.get(env) or ApprovalPolicy()


def _same_person(a: str, b: str) -> bool:
    """``Ada <ada@example.com>``, ``ada@example.com`` and ``ADA@example.com`` are the same person."""

    def norm(text: str) -> str:
        m = re.search(r"<([^>]+)>", text or "")
        return (m.group(1) if m else text or "").strip().casefold()

    return bool(norm(a)) and norm(a) == norm(b)


def sign(record: dict[str, Any], key: ApprovalKey) -> str:
    return hmac.new(key.value, signing_payload(record), hashlib.sha256).hexdigest()


def signature_valid(record: dict[str, Any], key: ApprovalKey) -> bool:
    given = record.get("signature")
    if not isinstance(given, str):
        return False
    return hmac.compare_digest(given, sign(record, key))


# ------------------------------------------------------------------------------------------- hashing


def _posix_rel(path: Path, root: Path) -> str:
    try:
        return Path(path).resolve().relative_to(Path(root).resolve()).as_posix()
    except ValueError:
        return Path(path).resolve().as_posix()


def _flow_dir(use_case: UseCase) -> Path:
    flow = use_case.standard_flow
    if flow is None:
        raise LlmopsError("use case has no standard flow", file=use_case.config_file, field="flow")
    if flow.kind not in ("dag", "flex"):
        raise LlmopsError(
            "only DAG flows (flow.dag.yaml) and flex flows (flow.flex.yaml) can be approved",
            file=flow.file,
            field="",
        )
    return flow.path


def approved_flow_hash(
    use_case: UseCase, variants: dict[str, str] | None, params: dict[str, Any] | None
) -> str:
    """Content hash of the standard flow folder exactly as it will be deployed: the chosen variants
    applied (all others stripped) and the parameter overrides baked in. The deploy module calls this
    same function on the folder it ships, so equal hashes mean equal bytes."""
    from llmops_tui.core.materialize import export_flow

    with tempfile.TemporaryDirectory(prefix="llmops-approval-") as tmp:
        return export_flow(_flow_dir(use_case), Path(tmp) / "flow", variants or {}, params or {})


def source_file_hashes(folder: Path) -> dict[str, str]:
    """Relative path -> sha256 of every file of a flow folder (logs and caches left out)."""
    folder = Path(folder)
    return {p.relative_to(folder).as_posix(): hash_file(p) for p in flow_files(folder)}


def model_targets(
    use_case: UseCase, variants: dict[str, str], params: dict[str, Any]
) -> dict[str, dict[str, Any]]:
    """LLM node -> connection, deployment_name, model, api as the approved configuration calls them."""
    from llmops_tui.core.flows import is_model_config_value
    from llmops_tui.core.materialize import materialized_dag, materialized_init

    out: dict[str, dict[str, Any]] = {}
    if use_case.standard_flow is not None and use_case.standard_flow.kind == "flex":
        # a flex flow's model calls are its init's model configurations: "init.<param>"
        for name, value in materialized_init(_flow_dir(use_case), params).items():
            if is_model_config_value(value):
                out[f"init.{name}"] = {
                    "connection": value.get("connection"),
                    "deployment_name": value.get("azure_deployment"),
                    "model": value.get("model"),
                    "api": "chat",
                }
        return out
    dag = materialized_dag(_flow_dir(use_case), variants, params)
    for node in dag.get("nodes") or []:
        if node.get("type") != "llm":
            continue
        inputs = node.get("inputs") or {}
        out[str(node.get("name"))] = {
            "connection": node.get("connection"),
            "deployment_name": inputs.get("deployment_name"),
            "model": inputs.get("model"),
            "api": node.get("api"),
        }
    return out


def dataset_hashes(workspace_root: Path, use_case: UseCase, dataset: str) -> dict[str, str]:
    """Relative path -> sha256 of the experiment dataset ``dataset`` and of every evaluation dataset
    that evaluates it. Azure ML data assets cannot be hashed locally and are recorded as ``remote``."""
    exp = use_case.dataset(dataset)
    if exp is None:
        raise LlmopsError(
            f"the run's dataset '{dataset}' is no longer an experiment dataset of the use case",
            file=use_case.config_file,
            field="datasets",
        )
    out: dict[str, str] = {}
    for ds in [exp] + [d for ev in use_case.evaluators for d in ev.datasets_for(dataset)]:
        if ds.remote or ds.path is None:
            out[ds.source] = "remote"
            continue
        if not ds.path.is_file():
            raise LlmopsError(
                f"dataset file '{ds.source}' not found", file=use_case.config_file, field="datasets"
            )
        out[_posix_rel(ds.path, workspace_root)] = hash_file(ds.path)
    return out


# ------------------------------------------------------------------------------------- the record


@dataclass
class ApprovalRecord:
    """One decision about one cell for one environment (see the module docstring)."""

    use_case: str
    environment: str
    decision: str
    run_id: str
    cell_id: str
    variants: dict[str, str]
    params: dict[str, Any]
    dataset: str
    dataset_hashes: dict[str, str]
    flow_path: str
    flow_hash: str
    source_flow_hash: str
    source_files: dict[str, str]
    metrics: dict[str, float | None]
    measurements: dict[str, float | None]
    gates: list[dict[str, Any]]
    model_targets: dict[str, dict[str, Any]]
    approver: str
    decided_at: str
    comment: str = ""
    override_reason: str | None = None
    baseline_cell_id: str | None = None
    line_stats: dict[str, Any] = field(default_factory=dict)
    measured_with: str | None = None  # "sandbox model", an endpoint URL, or "configured connections"
    ran_by: str | None = None  # who ran the sweep (the run's evidence), for the not_by_sweeper policy
    signing: str = "hmac"  # "ssh": signed by people's SSH keys (``signatures``); "hmac": the shared key
    sequence: int = 0  # 1, 2, 3... per use case and environment, set when the record is written
    previous: str = ""  # the signature of the decision this one replaces ("" for the first)
    key_id: str = ""
    signature: str = ""
    schema_version: int = SCHEMA_VERSION
    kind: str = RECORD_KIND
    # SSH records: one entry per signer {principal, fingerprint, signed_at, signature}; not in the payload
    signatures: list[dict[str, Any]] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @property
    def failing_gates(self) -> list[dict[str, Any]]:
        return [g for g in self.gates if not g.get("passed")]


def _measured_with(run: RunRecord) -> str:
    if run.uses_sandbox:
        return "sandbox model"
    if run.target == "azureml":
        return "azureml"
    endpoint = run.config.get("llm_endpoint")
    return str(endpoint) if endpoint else "configured connections"


def sandbox_warning(record: dict[str, Any] | None) -> str | None:
    """A warning for people when the approved metrics came from the sandbox model, not a real one."""
    if record and record.get("measured_with") == "sandbox model":
        return (
            "the approved metrics were measured with the offline sandbox model, not a real model: "
            "they say nothing about the quality of the deployed flow"
        )
    return None


def _clean_number(value: Any) -> float | None:
    try:
        num = float(value)
    except (TypeError, ValueError):
        return None
    return num if math.isfinite(num) else None


def _gate_dict(g: Any) -> dict[str, Any]:
    """A GateResult (core.compare) as plain JSON data."""
    get = g.get if isinstance(g, dict) else (lambda k, d=None: getattr(g, k, d))
    return {
        "gate": str(get("gate", "")),
        "metric": str(get("metric", "")),
        "op": str(get("op", "")),
        "threshold": _clean_number(get("threshold")),
        "value": _clean_number(get("value")),
        "passed": bool(get("passed", False)),
        "reason": str(get("reason") or ""),
    }


def _evidence(store: Any, run_id: str, cell_id: str, workspace_root: Path, comparison: Any):
    """Gate results and the comparison's other numbers (latency, error rate, tokens, cost) for one cell.

    ``comparison`` is a ``core.compare.Comparison`` of the run (the Approval screen passes the one it
    shows); built here when not given."""
    if comparison is None:
        from llmops_tui.core.compare import build_comparison

        comparison = build_comparison(store, run_id, workspace_root=workspace_root)
    # the run's completion is checked by _completion_check, with the cell's line counts
    gates = [_gate_dict(g) for g in comparison.gates_for(cell_id) if g.gate != RUN_COMPLETED_GATE]
    measurements = {}
    for row in getattr(comparison, "rows", []):
        mv = row.values.get(cell_id)
        if mv is not None and getattr(row, "group", "") != "metric":
            measurements[row.key] = _clean_number(mv.value)
    return gates, measurements


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="microseconds").replace("+00:00", "Z")


def _check_env(use_case: UseCase, env: str) -> None:
    check_env_name(env)
    known = set(use_case.environments) | set(use_case.extras.deploy or {})
    if use_case.environments and env not in known:
        raise LlmopsError(
            f"use case '{use_case.name}' has no environment '{env}'",
            file=use_case.config_file,
            field="--env",
            hint=f"known environments: {', '.join(sorted(use_case.environments))}",
        )


def _find_cell(store: Any, run_id: str, cell_id: str):
    cells = store.cells(run_id)
    exact = [c for c in cells if c.cell_id == cell_id]
    found = exact or [c for c in cells if c.cell_id.startswith(cell_id)]
    if len(found) != 1:
        hint = f"cells of run {run_id}: {', '.join(c.cell_id for c in cells[:12])}" + (
            " ..." if len(cells) > 12 else ""
        )
        what = "is ambiguous" if found else "is not a cell of the run"
        raise LlmopsError(f"cell '{cell_id}' {what}", field="--cell", hint=hint)
    return found[0]


def build_record(
    workspace_root: Path,
    run_id: str,
    cell_id: str,
    env: str,
    *,
    decision: str,
    by: str,
    comment: str = "",
    override_reason: str | None = None,
    comparison: Any = None,
    check_gates: bool = True,
) -> ApprovalRecord:
    """Gather the evidence for a decision about one cell of a run (unsigned). Raises LlmopsError for a
    bad run, cell, environment, or an approval of a cell that fails a gate without an override (unless
    ``check_gates`` is false: the Approval screen previews the record that way, see :func:`preview`)."""
    from llmops_tui.core.store import STORE_DIR, STORE_FILE, RunStore

    if decision not in DECISIONS:
        raise LlmopsError(f"decision must be one of {', '.join(DECISIONS)}", field="decision")
    if not (by or "").strip():
        raise LlmopsError("say who decides", field="--by", hint="e.g. --by 'Ada Lovelace <ada@example.com>'")
    if decision == "rejected" and not (comment or "").strip():
        raise LlmopsError("a rejection needs a comment saying why", field="--comment")
    root = Path(workspace_root).resolve()
    if not (root / STORE_DIR / STORE_FILE).is_file():
        raise LlmopsError(
            "this workspace has no runs yet", file=root, field="--workspace", hint="run `llmops sweep` first"
        )
    with RunStore.for_workspace(root) as store:
        run = store.require_run(run_id)
        cell = _find_cell(store, run.run_id, cell_id)
        ws = load_workspace(root, env=run.env)
        uc = ws.get(run.use_case)
        if uc.problems:
            raise LlmopsError.from_problem(uc.problems[0])
        _check_env(uc, env)
        raw_metrics = store.metrics(run.run_id, cell.cell_id).get(cell.cell_id, {})
        metrics = {
            f"{ev}.{name}": _clean_number(v) for ev, names in raw_metrics.items() for name, v in names.items()
        }
        line_stats = store.line_stats(run.run_id).get(cell.cell_id, {})
        if not metrics and not line_stats.get("lines"):
            raise LlmopsError(
                f"cell {cell.cell_id} of run {run.run_id} has no results yet",
                field="--cell",
                hint="wait for the run to finish or resume it",
            )
        gates, measurements = _evidence(store, run.run_id, cell.cell_id, root, comparison)
        lines_run = int(line_stats.get("lines") or 0)
        if run.status != "completed" or lines_run < cell.lines_total:
            # Evidence from a run that did not finish is not what a full sweep would have measured: it
            # shows as a failing check, so approving it needs an override reason like a failing gate.
            gates.append(_completion_check(run.run_id, run.status, cell.cell_id, lines_run, cell.lines_total))

    from llmops_tui.core.evidence import evidence_mismatches

    flow_dir = _flow_dir(uc)
    variants = dict(cell.variants)
    params = dict(cell.params)
    flow_hash = approved_flow_hash(uc, variants, params)
    mismatch = evidence_mismatches(root, uc, run.config or {})
    if cell.flow_hash and cell.flow_hash != flow_hash:
        # The engine records the materialised flow's hash per cell: a difference means the flow on disk is
        # no longer what was measured, so approving it would approve something nobody evaluated.
        variants_only = approved_flow_hash(uc, variants, {})
        if cell.flow_hash != variants_only:
            files = f": {', '.join(mismatch['flow'])}" if mismatch.get("flow") else ""
            raise LlmopsError(
                f"the flow changed after run {run.run_id} measured cell {cell.cell_id}{files}",
                file=flow_dir,
                field="",
                hint="run the sweep again (or resume it) and approve a cell of the new run",
            )
    run_data = ((run.config or {}).get("dataset_hashes") or {}).get(cell.dataset)
    if decision == "approved" and isinstance(run_data, dict):
        now_data = dataset_hashes(root, uc, cell.dataset)
        changed = [
            f"{rel} ({'missing' if rel not in now_data else 'changed'})"
            for rel, sha in sorted(run_data.items())
            if now_data.get(rel) != sha
        ]
        if changed:
            raise LlmopsError(
                f"the data changed after run {run.run_id} measured cell {cell.cell_id}: {', '.join(changed)}",
                file=root / changed[0].rsplit(" (", 1)[0],
                field="datasets",
                hint="run the sweep again on the data as it is now, or restore the files",
            )
    record = ApprovalRecord(
        use_case=uc.name,
        environment=env,
        decision=decision,
        run_id=run.run_id,
        cell_id=cell.cell_id,
        variants=variants,
        params=params,
        dataset=cell.dataset,
        dataset_hashes=dataset_hashes(root, uc, cell.dataset),
        flow_path=_posix_rel(flow_dir, root),
        flow_hash=flow_hash,
        source_flow_hash=hash_folder(flow_dir),
        source_files=source_file_hashes(flow_dir),
        metrics=metrics,
        measurements=measurements,
        gates=gates,
        model_targets=model_targets(uc, variants, params),
        approver=by.strip(),
        decided_at=_now(),
        comment=(comment or "").strip(),
        override_reason=(override_reason or "").strip() or None,
        baseline_cell_id=(run.config or {}).get("baseline"),
        line_stats=line_stats,
        measured_with=_measured_with(run),
        ran_by=(run.config or {}).get("ran_by"),
    )
    failing = record.failing_gates
    if check_gates and decision == "approved" and failing and not record.override_reason:
        names = "; ".join(_gate_text(g) for g in failing)
        raise LlmopsError(
            f"cell {cell.cell_id} fails {len(failing)} gate(s): {names}",
            field="--override-gates",
            hint="approve anyway only with --override-gates REASON",
        )
    return record


RUN_COMPLETED_GATE = "run completed"


def _completion_check(run_id: str, status: str, cell_id: str, lines_run: int, lines_total: int) -> dict:
    """A failing pseudo-gate for a cell of an unfinished run (so the override rule applies to it)."""
    parts = [f"run {run_id} is {status}, not completed"] if status != "completed" else []
    if lines_run < lines_total:
        parts.append(f"cell {cell_id} ran {lines_run} of {lines_total} lines")
    reason = "; ".join(parts)
    return {
        "gate": RUN_COMPLETED_GATE,
        "metric": "run_status",
        "op": "==",
        "threshold": None,
        "value": None,
        "passed": False,
        "reason": f"{reason}; resume it with `llmops sweep --resume {run_id}`",
    }


def preview(
    workspace_root: Path, run_id: str, cell_id: str, env: str, *, comparison: Any = None
) -> ApprovalRecord:
    """The record an approval would write now, unsigned and not written, without the gate check: what
    the Approval screen shows (variants, params, flow files and hashes, dataset hashes, model targets,
    metrics, gates). ``record.failing_gates`` tells whether approving needs an override reason."""
    return build_record(
        workspace_root,
        run_id,
        cell_id,
        env,
        decision="approved",
        by="(preview)",
        comparison=comparison,
        check_gates=False,
    )


def _gate_text(g: dict[str, Any]) -> str:
    if g.get("gate") == RUN_COMPLETED_GATE:
        return f"{RUN_COMPLETED_GATE} ({g.get('reason')})"
    value = "no value" if g.get("value") is None else f"value {g['value']:g}"
    return f"{g.get('gate') or g.get('metric')} ({value})"


def approvals_dir(use_case: UseCase) -> Path:
    return use_case.path / APPROVALS_DIR


def check_env_name(env: str) -> str:
    """``env`` when it can name an approval file, else LlmopsError (exit 2): environment names become
    file names (``approvals/<env>.json``), so '/', '..' and the like are refused before any path is built."""
    if not _ENV_RE.match(env or "") or name_problem(env):
        raise LlmopsError(
            f"'{env}' is not a valid environment name",
            field="--env",
            hint="use letters, digits, '_' and '.' only",
        )
    return env


def current_path(use_case: UseCase, env: str) -> Path:
    return safe_join(approvals_dir(use_case), f"{check_env_name(env)}.json", field="--env")


def _write_json(path: Path, data: dict[str, Any]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    tmp.write_text(json.dumps(data, indent=2, sort_keys=True, ensure_ascii=False) + "\n", encoding="utf-8")
    os.replace(tmp, path)


def _sequence_of(record: dict[str, Any]) -> int:
    value = record.get("sequence")
    return value if isinstance(value, int) and not isinstance(value, bool) and value > 0 else 0


def _order(record: dict[str, Any]) -> tuple[int, str]:
    """How decisions are ordered: by sequence (records of schema 1 have none: 0), then by time."""
    return _sequence_of(record), str(record.get("decided_at", ""))


def _newer(a: dict[str, Any], b: dict[str, Any]) -> bool:
    """Whether decision ``a`` comes after ``b``: by sequence; by time only between schema-1 records
    (no sequence). Two records with the same sequence are a conflict, neither is newer."""
    sa, sb = _sequence_of(a), _sequence_of(b)
    if sa != sb:
        return sa > sb
    return sa == 0 and str(a.get("decided_at", "")) > str(b.get("decided_at", ""))


def write_record(
    use_case: UseCase,
    record: ApprovalRecord,
    key: ApprovalKey | None,
    *,
    workspace_root: Path | None = None,
    signer: SshSigner | None = None,
    principal: str = "",
) -> tuple[Path, Path]:
    """Sign ``record`` and write it as the current decision for its environment and into the history.
    Returns (current file, history file).

    The record gets the next ``sequence`` for its use case and environment (one more than any record
    in the history, the current file or the workspace's ledger) and ``previous``, the signature of the
    newest of those, so the history is a signed chain. With ``workspace_root`` the decision is also
    remembered in the workspace's ledger (see :func:`verify_approval`)."""
    env = check_env_name(record.environment)
    known = [data for _, data in history_records(use_case, env)]
    path_now = current_path(use_case, env)
    if path_now.is_file():
        data_now, _ = _read_record(path_now)
        if data_now is not None:
            known.append(data_now)
    ledger_entry = _ledger_get(workspace_root, use_case.name, env) if workspace_root else None
    newest = max(known, key=_order, default=None)
    record.sequence = 1 + max(
        [_sequence_of(d) for d in known] + [_sequence_of(ledger_entry or {})], default=0
    )
    record.previous = str(newest.get("signature") or "") if newest else ""
    record.signature = ""
    record.signatures = []
    if signer is not None:
        record.signing = SSH
        record.key_id = signer.fingerprint()
        data = record.to_dict()
        record.signature = decision_id(data)
        record.signatures = [_ssh_signature_entry(data, signer, principal)]
        data["signature"], data["signatures"] = record.signature, record.signatures
    else:
        if key is None:
            raise LlmopsError("no key to sign the record with", field="--key", hint=_KEY_HINT)
        record.signing = "hmac"
        record.key_id = key.key_id
        data = record.to_dict()
        record.signature = sign(data, key)
        data["signature"] = record.signature
    stamp = re.sub(
        r"[^0-9TZ]", "", record.decided_at
    )  # 2025-01-02T03:04:05.123456Z -> 20250102T030405123456Z
    history = safe_join(
        approvals_dir(use_case) / HISTORY_DIR,
        f"{env}-{stamp}-{record.signature.removeprefix('sha256:')[:8]}.json",
        field="--env",
    )
    _write_json(history, data)
    _write_json(path_now, data)
    if workspace_root is not None:
        _ledger_remember(workspace_root, use_case.name, env, data)
    return path_now, history


def _ssh_signature_entry(data: dict[str, Any], signer: SshSigner, principal: str) -> dict[str, Any]:
    return {
        "principal": principal,
        "fingerprint": signer.fingerprint(),
        "signed_at": _now(),
        "signature": sshsig.sign(signing_payload(data), signer.key_file, passphrase=signer.passphrase),
    }


def signer_entry(
    workspace_root: Path, use_case: UseCase, env: str, signer: SshSigner
) -> sshsig.AllowedSigner:
    """The allowed-signers entry that lets ``signer`` approve ``env`` now, or LlmopsError saying why
    not (checked before signing so that a person learns it at once, not when CI refuses)."""
    path = allowed_signers_path(workspace_root, use_case)
    fp = signer.fingerprint()
    if path is None:
        raise LlmopsError(
            f"no {sshsig.ALLOWED_SIGNERS_FILE} file in the use case or the workspace: nobody may sign approvals yet",
            file=use_case.path / sshsig.ALLOWED_SIGNERS_FILE,
            field="allowed signers",
            hint=f"add your key: llmops approvers add YOUR_EMAIL {signer.key_file} --env {env}",
        )
    entries, _ = sshsig.parse_allowed_signers(path)
    mine = [e for e in entries if e.fingerprint == fp]
    if not mine:
        raise LlmopsError(
            f"{KEY_NOT_ALLOWED}: your key {fp} is not in {path.name}",
            file=path,
            field="allowed signers",
            hint=f"ask a maintainer to add it (llmops approvers add YOUR_EMAIL {signer.key_file}.pub --env {env})",
        )
    for_env = [e for e in mine if e.allows_env(env)]
    if not for_env:
        envs = sorted({x for e in mine for x in e.environments})
        raise LlmopsError(
            f"{ENV_NOT_ALLOWED}: your key {fp} ({mine[0].principal}) may approve {', '.join(envs)} only, not {env}",
            file=path,
            field="environments",
        )
    live = [e for e in for_env if not e.expired() and not e.not_yet_valid()]
    if not live:
        e = for_env[0]
        raise LlmopsError(
            f"{KEY_EXPIRED}: your key {fp} ({e.principal}) is valid before {sshsig.display_time(e.valid_before or '')} only"
            if e.expired()
            else f"your key {fp} ({e.principal}) is not valid before {sshsig.display_time(e.valid_after or '')}",
            file=path,
            field="valid-before",
        )
    return live[0]


def _cosign_target(use_case: UseCase, record: ApprovalRecord) -> tuple[Path, dict[str, Any]] | None:
    """The current SSH-signed approval of the same cell, flow and data for the record's environment, to
    which a further approver adds a signature (instead of starting a new decision)."""
    path = current_path(use_case, record.environment)
    if not path.is_file():
        return None
    data, _ = _read_record(path)
    if data is None or data.get("signing") != SSH or data.get("decision") != "approved":
        return None
    if record.decision != "approved" or data.get("signature") != decision_id(data):
        return None
    same = all(
        data.get(k) == getattr(record, k)
        for k in ("run_id", "cell_id", "variants", "params", "flow_hash", "dataset_hashes", "use_case")
    )
    return (path, data) if same else None


def cosign(
    use_case: UseCase, path: Path, data: dict[str, Any], signer: SshSigner, principal: str
) -> dict[str, Any]:
    """Add ``signer``'s signature to the current record at ``path`` (and its history file)."""
    fp = signer.fingerprint()
    entries = [e for e in data.get("signatures") or [] if isinstance(e, dict)]
    if any(e.get("fingerprint") == fp for e in entries):
        return data  # already signed by this key: nothing to add
    entries.append(_ssh_signature_entry(data, signer, principal))
    data = {**data, "signatures": entries}
    _write_json(path, data)
    for hist_path, hist in history_records(use_case, str(data.get("environment"))):
        if hist.get("signature") == data.get("signature"):
            _write_json(hist_path, data)
    return data


# ------------------------------------------------------------------------------- the ledger (high water)


def ledger_path(workspace_root: Path) -> Path:
    return Path(workspace_root).resolve() / ".llmops" / LEDGER_FILE


def _ledger_load(workspace_root: Path) -> dict[str, Any]:
    path = ledger_path(workspace_root)
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return {}
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


def _ledger_get(workspace_root: Path, use_case: str, env: str) -> dict[str, Any] | None:
    entry = _ledger_load(workspace_root).get(f"{use_case}/{env}")
    return entry if isinstance(entry, dict) else None


def _ledger_remember(workspace_root: Path, use_case: str, env: str, record: dict[str, Any]) -> bool:
    """Remember ``record`` as the newest decision seen for use case/env if it is newer than what the
    ledger holds. Returns False when the ledger could not be written."""
    ledger = _ledger_load(workspace_root)
    key = f"{use_case}/{env}"
    old = ledger.get(key) if isinstance(ledger.get(key), dict) else None
    if old is not None and _order(old) >= _order(record):
        return True
    ledger[key] = {
        k: record.get(k) for k in ("sequence", "signature", "decision", "approver", "decided_at", "run_id")
    }
    try:
        _write_json(ledger_path(workspace_root), ledger)
    except OSError:
        return False
    return True


def decide(
    workspace_root: Path,
    run_id: str,
    cell_id: str,
    envs: list[str],
    *,
    decision: str,
    by: str,
    comment: str = "",
    override_reason: str | None = None,
    comparison: Any = None,
    key: ApprovalKey | None = None,
    signer: SshSigner | None = None,
) -> list[tuple[ApprovalRecord, Path]]:
    """Approve or reject one cell of a run for one or more environments (one signed record each).

    This is what the Approval screen and ``llmops approve``/``reject`` call.

    With ``signer`` (or ``LLMOPS_SIGNING_KEY``) the record is signed with that person's SSH key, who must
    be listed for the environment in the allowed-signers file; their principal there is the approver
    (``by`` is not needed). When the environment's current record already approves the same cell, flow
    and data, the signature is added to it (a second approver co-signs). Without an SSH key, the shared
    HMAC key signs (unless the use case has an allowed-signers file: then an SSH key is required).
    Keys are checked before anything is written. Returns (record, current file) per env."""
    if not envs:
        raise LlmopsError("name at least one environment", field="--env")
    signer = signer or (None if key is not None else ssh_signer_from_env())
    root = Path(workspace_root)
    signing_key: ApprovalKey | None = None
    if signer is None:
        from llmops_tui.core.store import STORE_DIR, STORE_FILE, RunStore

        governed, uc_name = None, ""
        if (root.resolve() / STORE_DIR / STORE_FILE).is_file():  # else build_record says there are no runs
            with RunStore.for_workspace(root.resolve()) as store_:
                uc_name = store_.require_run(run_id).use_case
            governed = allowed_signers_path(root, load_workspace(root, env=None).get(uc_name))
        if governed is not None and key is None:
            raise LlmopsError(
                f"approvals of {uc_name} are signed with people's SSH keys ({_posix_rel(governed, root.resolve())})",
                field="--key",
                hint=f"give --key ~/.ssh/id_ed25519 (or its .pub with ssh-agent), or set {sshsig.SIGNING_KEY_ENV}",
            )
        signing_key = key or load_approval_key()
    else:
        signer.public_key()  # a missing or unreadable key file fails before anything else
    if signer is not None and not (by or "").strip():
        by = "(from allowed signers)"
    records = [
        build_record(
            workspace_root,
            run_id,
            cell_id,
            env,
            decision=decision,
            by=by,
            comment=comment,
            override_reason=override_reason,
            comparison=comparison,
        )
        for env in dict.fromkeys(envs)
    ]
    ws = load_workspace(workspace_root, env=None)
    uc = ws.get(records[0].use_case)
    if signer is None:
        out = []
        for record in records:
            current, _ = write_record(uc, record, signing_key, workspace_root=root)
            out.append((record, current))
        return out
    entries = {r.environment: signer_entry(root, uc, r.environment, signer) for r in records}
    out = []
    for record in records:
        principal = entries[record.environment].principal
        record.approver = principal
        target = _cosign_target(uc, record)
        if target is not None:
            data = cosign(uc, target[0], target[1], signer, principal)
            _ledger_remember(root, uc.name, record.environment, data)
            done = ApprovalRecord(**{k: data[k] for k in ApprovalRecord.__dataclass_fields__ if k in data})
            out.append((done, target[0]))
            continue
        current, _ = write_record(uc, record, None, workspace_root=root, signer=signer, principal=principal)
        out.append((record, current))
    return out


def approve(workspace_root: Path, run_id: str, cell_id: str, envs: list[str], *, by: str, **kw: Any):
    """Approve a cell for ``envs``; see :func:`decide`."""
    return decide(workspace_root, run_id, cell_id, envs, decision="approved", by=by, **kw)


def reject(
    workspace_root: Path, run_id: str, cell_id: str, envs: list[str], *, by: str, comment: str, **kw: Any
):
    """Reject a cell for ``envs`` (a comment is required); see :func:`decide`."""
    return decide(workspace_root, run_id, cell_id, envs, decision="rejected", by=by, comment=comment, **kw)


# ---------------------------------------------------------------------------------------- verification


@dataclass
class VerifyResult:
    """``ok`` only when a valid, signed, approved current record matches the flow and datasets now."""

    ok: bool
    reasons: list[str]
    record: dict[str, Any] | None
    path: str | None = None
    environment: str = ""
    warnings: list[str] = field(default_factory=list)
    mode: str = ""  # "ssh" or "shared-key" (HMAC)
    signers: list[dict[str, Any]] = field(default_factory=list)  # valid signers: principal, fingerprint
    needed: int = 1  # distinct approvers the environment's policy asks for
    missing: list[str] = field(default_factory=list)  # what the policy still needs, for people

    def to_dict(self) -> dict[str, Any]:
        return {
            "ok": self.ok,
            "environment": self.environment,
            "reasons": self.reasons,
            "warnings": self.warnings,
            "path": self.path,
            "record": self.record,
            "mode": self.mode,
            "signers": self.signers,
            "needed": self.needed,
            "missing": self.missing,
        }


class _Auth:
    """Who signed a record, checked the way the record was signed: SSH signatures against the
    allowed-signers file (public keys only), or the shared HMAC key. Results are cached per record."""

    def __init__(self, root: Path, use_case: UseCase, env: str, key: ApprovalKey | None):
        self.root, self.use_case, self.env = root, use_case, env
        self.key = key
        self.key_problem: str | None = None
        self._key_loaded = key is not None
        self.allowed_path = allowed_signers_path(root, use_case)
        self.allowed: list[sshsig.AllowedSigner] = []
        if self.allowed_path is not None:
            self.allowed, _ = sshsig.parse_allowed_signers(self.allowed_path)
        self._cache: dict[str, tuple[list[str], list[dict[str, Any]]]] = {}

    @staticmethod
    def mode(record: dict[str, Any]) -> str:
        return SSH if record.get("signing") == SSH else SHARED_KEY

    def _hmac_key(self) -> ApprovalKey | None:
        if not self._key_loaded:
            self._key_loaded = True
            try:
                self.key = load_approval_key()
            except LlmopsError as exc:
                self.key_problem = f"cannot check the signature: {exc}"
        return self.key

    def unknown(self, record: dict[str, Any]) -> bool:
        """True when the record cannot be checked here at all (a shared-key record without the key)."""
        return self.mode(record) == SHARED_KEY and self._hmac_key() is None

    def ok(self, record: dict[str, Any]) -> bool:
        return not self.check(record)[0]

    def check(self, record: dict[str, Any]) -> tuple[list[str], list[dict[str, Any]]]:
        cache_key = canonical_json(
            [
                record.get("signature"),
                record.get("signatures"),
                hashlib.sha256(signing_payload(record)).hexdigest(),
            ]
        )
        if cache_key not in self._cache:
            self._cache[cache_key] = (
                self._check_ssh(record) if self.mode(record) == SSH else self._check_hmac(record)
            )
        return self._cache[cache_key]

    def _check_hmac(self, record: dict[str, Any]) -> tuple[list[str], list[dict[str, Any]]]:
        key = self._hmac_key()
        if key is None:
            return [self.key_problem or "cannot check the signature: no approval key"], []
        if signature_valid(record, key):
            return [], [{"principal": record.get("approver"), "fingerprint": key.key_id, "mode": SHARED_KEY}]
        detail = ""
        if record.get("key_id") and record.get("key_id") != key.key_id:
            detail = f": signed with key {record.get('key_id')}, the key from {key.source} is {key.key_id}"
        return [SIGNATURE_INVALID + detail], []

    def _check_ssh(self, record: dict[str, Any]) -> tuple[list[str], list[dict[str, Any]]]:
        reasons: list[str] = []
        signers: list[dict[str, Any]] = []
        payload = signing_payload(record)
        if record.get("signature") != decision_id(record):
            reasons.append(f"{SIGNATURE_INVALID}: the record's content is not what was signed")
        entries = record.get("signatures")
        if not isinstance(entries, list) or not entries:
            return reasons + ["no SSH signatures in the record"], []
        where = _posix_rel(self.allowed_path, self.root) if self.allowed_path else ""
        for entry in entries:
            sig = entry.get("signature") if isinstance(entry, dict) else None
            claimed = str(entry.get("principal") or "?") if isinstance(entry, dict) else "?"
            if not isinstance(sig, str):
                reasons.append(f"{SIGNATURE_INVALID}: a signature entry holds no signature")
                continue
            checked = sshsig.check_signature(payload, sig)
            if not checked.ok:
                reasons.append(f"{SIGNATURE_MISMATCH} (signer claims {claimed})")
                continue
            fp = checked.fingerprint
            if self.allowed_path is None:
                reasons.append(
                    f"{NO_ALLOWED_SIGNERS}: signed by key {fp} ({claimed}) but neither the use case nor the "
                    f"workspace has an {sshsig.ALLOWED_SIGNERS_FILE} file"
                )
                continue
            mine = [e for e in self.allowed if e.fingerprint == fp]
            if not mine:
                reasons.append(f"{KEY_NOT_ALLOWED}: key {fp} ({claimed}) is not in {where}")
                continue
            for_env = [e for e in mine if e.allows_env(self.env)]
            if not for_env:
                envs = ", ".join(sorted({x for e in mine for x in e.environments}))
                reasons.append(
                    f"{ENV_NOT_ALLOWED}: key {fp} ({mine[0].principal}) may approve {envs} only, not "
                    f"{self.env} ({where} line {mine[0].line})"
                )
                continue
            live = [e for e in for_env if not e.expired()]
            if not live:
                e = for_env[0]
                reasons.append(
                    f"{KEY_EXPIRED}: key {fp} ({e.principal}) was valid before "
                    f"{sshsig.display_time(e.valid_before or '')} ({where} line {e.line})"
                )
                continue
            entry_ok = live[0]
            final = sshsig.verify_allowed(payload, sig, entry_ok.principal, self.allowed_path)
            if not final.ok:
                reasons.append(
                    f"key {fp} ({entry_ok.principal}) is not accepted by ssh-keygen -Y verify with {where}: "
                    f"{final.detail}"
                )
                continue
            signers.append(
                {
                    "principal": entry_ok.principal,
                    "fingerprint": fp,
                    "signed_at": entry.get("signed_at"),
                    "mode": SSH,
                }
            )
        return reasons, signers


def _read_record(path: Path) -> tuple[dict[str, Any] | None, str | None]:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        return None, f"unreadable record {path.name}: {type(exc).__name__}"
    if not isinstance(data, dict):
        return None, f"unreadable record {path.name}: not a JSON object"
    return data, None


def history_records(use_case: UseCase, env: str) -> list[tuple[Path, dict[str, Any]]]:
    """Readable history records of ``env``, oldest first (by decision time, then file name)."""
    folder = approvals_dir(use_case) / HISTORY_DIR
    out = []
    for path in sorted(folder.glob(f"{env}-*.json")) if folder.is_dir() else []:
        if path.name.rsplit("-", 2)[0] != env:
            continue
        data, _ = _read_record(path)
        if data is not None:
            out.append((path, data))
    out.sort(key=lambda item: (str(item[1].get("decided_at", "")), item[0].name))
    return out


def _describe_files(before: dict[str, str], now: dict[str, str]) -> str:
    parts = [f"{p} (changed)" for p in sorted(before) if p in now and now[p] != before[p]]
    parts += [f"{p} (added)" for p in sorted(now) if p not in before]
    parts += [f"{p} (removed)" for p in sorted(before) if p not in now]
    if len(parts) > 6:
        parts = parts[:6] + [f"and {len(parts) - 6} more"]
    return ", ".join(parts)


def _who(record: dict[str, Any]) -> str:
    seq = _sequence_of(record)
    number = f"#{seq} " if seq else ""
    return f"{number}({record.get('decision')} by {record.get('approver')} at {record.get('decided_at')})"


def _rollback_reasons(
    root: Path,
    use_case: UseCase,
    env: str,
    record: dict[str, Any],
    auth: _Auth,
    warnings: list[str],
) -> list[str]:
    """Is ``record`` really the newest decision for use case/env, and is the history leading to it whole?

    Newer decisions are looked for in three places: the history folder, the git history of the
    approvals folder (``git log HEAD``, when the workspace is a git checkout) and the workspace's
    ledger (``.llmops/approval-ledger.json``, the newest decision this workspace has written or
    verified). The first that shows a newer decision gives the one reason. See docs/approval.md for
    what this protects against and what it cannot."""
    reasons: list[str] = []
    mine = _order(record)
    history = history_records(use_case, env)
    by_signature = {str(d.get("signature")): d for _, d in history if d.get("signature")}
    newest_path, newest = max(history, key=lambda item: _order(item[1]), default=(None, None))
    superseded = False
    if newest is not None and auth.ok(newest):
        _ledger_remember(root, use_case.name, env, newest)
    if newest is not None and newest.get("signature") != record.get("signature"):
        if _newer(newest, record):
            forged = "" if auth.unknown(newest) or auth.ok(newest) else " (its signature is invalid)"
            reasons.append(
                f"{SUPERSEDED} by {_posix_rel(newest_path, root)} "  # type: ignore[arg-type]
                f"({newest.get('decision')} by {newest.get('approver')} at {newest.get('decided_at')}){forged}"
            )
            superseded = True
    same = [
        (p, d)
        for p, d in history
        if mine[0] and _sequence_of(d) == mine[0] and d.get("signature") != record.get("signature")
    ]
    if not superseded and same:
        other_path, other = same[-1]
        reasons.append(
            f"{CONFLICT}: {_who(other)} ({_posix_rel(other_path, root)}) has the same sequence #{mine[0]} "
            "as the current record; decide again to settle it"
        )
        superseded = True
    if not superseded:
        committed = _git_records(root, use_case, env, warnings)
        valid = [c for c in committed if auth.ok(c[2])]
        top = max(valid, key=lambda c: _order(c[2]), default=None)
        if top is not None and top[2].get("signature") != record.get("signature") and _newer(top[2], record):
            reasons.append(
                f"{ROLLED_BACK}: a newer decision {_who(top[2])} was committed in git "
                f"({top[0][:12]}: {top[1]}); the current record is {_who(record)}"
            )
            superseded = True
        for _, _, data in valid:
            _ledger_remember(root, use_case.name, env, data)
    if not superseded:
        seen = _ledger_get(root, use_case.name, env)
        if seen is not None and seen.get("signature") != record.get("signature"):
            where = _posix_rel(ledger_path(root), root)
            if _newer(seen, record):
                reasons.append(
                    f"{ROLLED_BACK}: this workspace recorded decision {_who(seen)} in {where}; "
                    f"the current record is {_who(record)}"
                )
                superseded = True
            elif mine[0] and _sequence_of(seen) == mine[0]:
                reasons.append(
                    f"{CONFLICT}: this workspace recorded another decision {_who(seen)} with the same "
                    f"sequence in {where}; decide again to settle it"
                )
                superseded = True

    # The chain: every earlier decision the current one points to must still be in the history.
    link, checked = str(record.get("previous") or ""), 0
    while link and checked < 10_000:
        found = by_signature.get(link)
        if found is None:
            reasons.append(
                f"{HISTORY_BROKEN}: the decision before {_who(record) if checked == 0 else 'it'} "
                f"(signature {link[:8]}) is missing from {_posix_rel(approvals_dir(use_case) / HISTORY_DIR, root)}"
            )
            break
        link, checked = str(found.get("previous") or ""), checked + 1

    if record.get("schema_version") == 1:
        warnings.append(
            "this record predates rollback protection (schema 1, no sequence number): approve again "
            "so that restoring an older record can be detected"
        )
    elif not superseded and not _ledger_remember(root, use_case.name, env, record):
        warnings.append(
            f"could not write {_posix_rel(ledger_path(root), root)}: this workspace will not remember "
            "the newest decision"
        )
    return reasons


def _git(args: list[str], cwd: Path, data: bytes | None = None) -> bytes | None:
    git = shutil.which("git")
    if git is None:
        return None
    try:
        proc = subprocess.run(
            [git, *args],
            cwd=str(cwd),
            input=data,
            capture_output=True,
            timeout=60,
            env={**os.environ, "GIT_TERMINAL_PROMPT": "0", "LC_ALL": "C"},
        )
    except (OSError, subprocess.SubprocessError):
        return None
    return proc.stdout if proc.returncode == 0 else None


def _git_records(
    root: Path, use_case: UseCase, env: str, warnings: list[str]
) -> list[tuple[str, str, dict[str, Any]]]:
    """(commit, path, record) for every version of ``approvals/<env>.json`` and its history files ever
    committed in the history of HEAD. Empty when the workspace is not a git checkout (or git is
    missing). A shallow clone only shows what it fetched: CI should fetch the full history."""
    folder = use_case.path
    top = _git(["rev-parse", "--show-toplevel"], folder)
    if not top:
        return []
    toplevel = Path(top.decode().strip()).resolve()
    try:
        rel_dir = approvals_dir(use_case).resolve().relative_to(toplevel).as_posix()
    except ValueError:
        return []
    log = _git(
        ["log", "HEAD", "--no-renames", "--format=commit %H", "--raw", "--no-abbrev", "--", rel_dir], toplevel
    )
    if log is None:
        if _git(["rev-parse", "--verify", "-q", "HEAD"], toplevel) is not None:
            warnings.append("could not read the git history of the approvals folder")
        return []
    wanted: dict[str, tuple[str, str]] = {}
    commit = ""
    for line in log.decode("utf-8", "replace").splitlines():
        if line.startswith("commit "):
            commit = line[7:].strip()
            continue
        if not line.startswith(":") or "\t" not in line:
            continue
        meta, path = line.split("\t", 1)
        name = path.rsplit("/", 1)[-1]
        if not (name == f"{env}.json" or (name.startswith(f"{env}-") and name.rsplit("-", 2)[0] == env)):
            continue
        for blob in meta.split()[2:4]:
            if blob.strip("0") and blob not in wanted:
                wanted[blob] = (commit, path)
    if not wanted:
        return []
    out = _git(["cat-file", "--batch"], toplevel, data="".join(b + "\n" for b in wanted).encode())
    if out is None:
        return []
    records: list[tuple[str, str, dict[str, Any]]] = []
    pos = 0
    while pos < len(out):
        end = out.index(b"\n", pos)
        header = out[pos:end].split()
        pos = end + 1
        if len(header) != 3:
            continue  # "<sha> missing" (a shallow clone)
        size = int(header[2])
        body = out[pos : pos + size]
        pos += size + 1
        try:
            data = json.loads(body.decode("utf-8"))
        except ValueError:
            continue
        if (
            isinstance(data, dict)
            and data.get("use_case") == use_case.name
            and data.get("environment") == env
        ):
            commit, path = wanted.get(header[0].decode(), ("", ""))
            records.append((commit, path, data))
    return records


def verify_approval(
    workspace_root: Path, use_case: UseCase, env: str, *, key: ApprovalKey | None = None
) -> VerifyResult:
    """Check the current approval of ``use_case`` for ``env`` against the flow and datasets as they are
    now. Never raises for a bad record: every problem is one reason in ``reasons``."""
    root = Path(workspace_root).resolve()
    path = current_path(use_case, env)
    shown = _posix_rel(path, root)
    if not path.is_file():
        return VerifyResult(False, [MISSING], None, shown, env)
    record, error = _read_record(path)
    if record is None:
        return VerifyResult(False, [error or "unreadable record"], None, shown, env)
    reasons: list[str] = []

    if record.get("kind") != RECORD_KIND or record.get("schema_version") not in KNOWN_SCHEMAS:
        reasons.append(
            f"unknown record format (kind {record.get('kind')!r}, schema {record.get('schema_version')!r})"
        )
    for problem in use_case.problems:
        if str(problem.file).endswith(EXTRAS_FILE):  # the approval policy is unknown: fail closed
            reasons.append(
                f"{problem.file} cannot be read, so its approval policy is unknown: {problem.message}"
            )
    auth = _Auth(root, use_case, env, key)
    mode = auth.mode(record)
    auth_reasons, signers = auth.check(record)
    reasons.extend(auth_reasons)
    signed = not auth_reasons
    if record.get("use_case") != use_case.name or record.get("environment") != env:
        reasons.append(
            f"record is for use case {record.get('use_case')!r} env {record.get('environment')!r}, "
            f"not {use_case.name!r} env {env!r}"
        )
    if record.get("decision") != "approved":
        who = f" by {record.get('approver')}" if record.get("approver") else ""
        why = f": {record.get('comment')}" if record.get("comment") else ""
        reasons.append(
            f"{REJECTED}{who}{why}"
            if record.get("decision") == "rejected"
            else f"decision is {record.get('decision')!r}"
        )

    warnings: list[str] = []
    if signed:  # an edited or foreign record already fails; comparing its sequence would only add noise
        reasons.extend(_rollback_reasons(root, use_case, env, record, auth, warnings))
    if signed and mode == SHARED_KEY:
        warnings.append(
            "shared-key approval (HMAC): anyone holding the approval key could have written it; "
            "move to SSH-signed approvals (docs/approval.md)"
        )
    policy = approval_policy(use_case, env)
    missing = _policy_gaps(record, signers, policy, env) if record.get("decision") == "approved" else []
    if signed and missing:
        reasons.extend(missing)

    flow = use_case.standard_flow
    raw_variants, raw_params = record.get("variants"), record.get("params")
    variants: dict[str, Any] = raw_variants if isinstance(raw_variants, dict) else {}
    params: dict[str, Any] = raw_params if isinstance(raw_params, dict) else {}
    if flow is None:
        reasons.append("the use case has no standard flow")
    else:
        flow_rel = _posix_rel(flow.path, root)
        if record.get("flow_path") and record.get("flow_path") != flow_rel:
            reasons.append(f"flow folder changed: approved {record.get('flow_path')}, now {flow_rel}")
        known = flow.variants
        gone = [f"{n}.{v}" for n, v in variants.items() if v not in known.get(n, [])]
        if gone:
            reasons.append(f"{VARIANT_GONE}: {', '.join(gone)}")
        else:
            try:
                now_hash = approved_flow_hash(use_case, variants, params)
            except LlmopsError as exc:
                reasons.append(f"{FLOW_EDITED}: the approved configuration no longer applies ({exc})")
                now_hash = None
            if now_hash is not None and now_hash != record.get("flow_hash"):
                before = record.get("source_files") if isinstance(record.get("source_files"), dict) else {}
                changed = _describe_files(before, source_file_hashes(flow.path)) if before else ""
                detail = changed or f"flow hash {str(record.get('flow_hash'))[:12]} is now {now_hash[:12]}"
                reasons.append(f"{FLOW_EDITED}: {detail}")

    raw_hashes = record.get("dataset_hashes")
    hashes: dict[str, Any] = raw_hashes if isinstance(raw_hashes, dict) else {}
    if not hashes:
        reasons.append("record names no dataset hashes")
    for rel_path, expected in sorted(hashes.items()):
        if expected == "remote":
            continue
        path_now = root / rel_path
        if not path_now.is_file():
            reasons.append(f"{DATASET_CHANGED}: {rel_path} (missing)")
        elif hash_file(path_now) != expected:
            reasons.append(f"{DATASET_CHANGED}: {rel_path}")
    return VerifyResult(
        not reasons, reasons, record, shown, env, warnings, mode, signers, policy.approvers, missing
    )


def _policy_gaps(record: dict[str, Any], signers: list[dict[str, Any]], policy: Any, env: str) -> list[str]:
    """What the environment's policy still needs, one reason each (empty: satisfied). With
    ``not_by_sweeper``, the signature of whoever ran the sweep does not count towards ``approvers``."""
    ran_by = str(record.get("ran_by") or "")
    if policy.not_by_sweeper and not ran_by:
        return [
            f"{SWEEPER_APPROVED}: the policy for {env} forbids the sweep's runner to approve, but run "
            f"{record.get('run_id')} does not say who ran it (run the sweep again)"
        ]
    counted: list[str] = []
    notes: list[str] = []
    for s in signers:
        who = str(s.get("principal") or "")
        if policy.not_by_sweeper and _same_person(who, ran_by):
            notes.append(
                f"{SWEEPER_APPROVED}: {who} ran the sweep (run {record.get('run_id')}) and does not count "
                f"as an approver for {env}"
            )
        elif not any(_same_person(who, c) for c in counted):
            counted.append(who)
    if len(counted) >= policy.approvers:
        return []
    have = f" ({', '.join(counted)})" if counted else ""
    shared = (
        "; a shared-key approval counts as one" if any(s.get("mode") == SHARED_KEY for s in signers) else ""
    )
    return notes + [
        f"{NOT_ENOUGH}: {env} needs {policy.approvers} distinct approvers, {len(counted)} signed{have}{shared}"
    ]


def use_case_for_env(workspace_root: Path, name: str, env: str, *, refuse_unknown: bool = False) -> UseCase:
    """The use case as it will be deployed to ``env``: with that environment's overlay when it has one,
    else the base configuration. Raises LlmopsError for an unknown use case. With ``refuse_unknown``, an
    environment nothing declares (no overlay, no llmops.yaml entry, no deployment_config.json entry) is
    refused as a likely typo, unless an approval was recorded for it (deploy uses this)."""
    ws = load_workspace(workspace_root, env=env)
    uc = ws.get(name)
    env_problems = [p for p in uc.problems if p.field == "--env" or p.message.startswith("no environment")]
    if not env_problems:
        return uc
    if refuse_unknown and not (uc.path / "approvals" / f"{env}.json").is_file():
        problem = env_problems[0]
        raise LlmopsError(
            f"unknown environment '{env}'",
            file=problem.file,
            field="--env",
            hint=f"{problem.hint or 'known: none'}; declare it in llmops.yaml environments "
            "or configs/deployment_config.json",
        )
    return load_workspace(workspace_root, env=None).get(name)


def approval_envs(use_case: UseCase) -> list[str]:
    """Every environment with a current record or any history in the use case's approvals folder."""
    folder = approvals_dir(use_case)
    envs = {p.stem for p in folder.glob("*.json")} if folder.is_dir() else set()
    if (folder / HISTORY_DIR).is_dir():
        envs |= {
            p.name.rsplit("-", 2)[0] for p in (folder / HISTORY_DIR).glob("*.json") if p.name.count("-") >= 2
        }
    # A stray file whose name is no environment name ("notes.json" is one, "a b.json" is not) is left out.
    return sorted(e for e in envs if _ENV_RE.match(e) and not name_problem(e))


def list_approvals(
    workspace_root: Path, use_case_name: str, *, key: ApprovalKey | None = None
) -> list[dict[str, Any]]:
    """Per environment: the verification of the current record and the history (newest first)."""
    root = Path(workspace_root).resolve()
    base = load_workspace(root).get(use_case_name)
    out = []
    policies = getattr(base.extras, "approvals", None) or {}
    for env in sorted(
        set(approval_envs(base)) | {e for e in policies if _ENV_RE.match(e) and not name_problem(e)}
    ):
        uc = use_case_for_env(root, use_case_name, env)
        result = verify_approval(root, uc, env, key=key)
        missing = result.missing
        if result.record is None:
            missing = [f"{result.needed} approval(s) by allowed signers"]
        out.append(
            {
                "use_case": uc.name,
                "environment": env,
                "ok": result.ok,
                "reasons": result.reasons,
                "mode": result.mode,
                "signers": result.signers,
                "needed": result.needed,
                "missing": missing,
                "current": _summary(result.record, result.path) if result.record else None,
                "history": [
                    _summary(data, _posix_rel(p, root)) for p, data in reversed(history_records(uc, env))
                ],
            }
        )
    return out


def _summary(record: dict[str, Any], path: str | None) -> dict[str, Any]:
    keys = (
        "decision",
        "run_id",
        "cell_id",
        "variants",
        "params",
        "dataset",
        "approver",
        "decided_at",
        "comment",
    )
    out = {k: record.get(k) for k in keys}
    out["override_reason"] = record.get("override_reason")
    out["flow_hash"] = record.get("flow_hash")
    out["path"] = path
    return out


# ------------------------------------------------------------------------------ the allowed-signers file


def add_approver(
    path: Path, principal: str, public_key: Path, envs: list[str], valid_before: str | None = None
) -> sshsig.AllowedSigner:
    """Append a line to the allowed-signers file ``path`` (created when missing) letting ``principal``'s
    key approve ``envs`` (empty: every environment) until ``valid_before`` (YYYY-MM-DD, UTC)."""
    principal = (principal or "").strip()
    if not principal or any(c in principal for c in ' \t,"#'):
        raise LlmopsError(
            f"'{principal}' cannot be a principal", field="PRINCIPAL", hint="use an e-mail address"
        )
    for env in envs:
        check_env_name(env)
    public_key = Path(public_key).expanduser()
    try:
        text = public_key.read_text(encoding="utf-8", errors="replace")
    except OSError:
        raise LlmopsError(f"key file '{public_key}' not found", file=public_key, field="PUBLIC_KEY") from None
    if "PRIVATE KEY" in text:
        raise LlmopsError(
            f"'{public_key}' is a private key: only public keys go into the allowed-signers file",
            file=public_key,
            field="PUBLIC_KEY",
            hint=f"give {public_key}.pub",
        )
    key = sshsig.read_public_key(public_key)
    stamp = None
    if valid_before:
        m = re.match(r"^(\d{4})-?(\d{2})-?(\d{2})$", valid_before.strip())
        if not m:
            raise LlmopsError(
                f"'{valid_before}' is not a date", field="--valid-before", hint="YYYY-MM-DD (UTC)"
            )
        stamp = "".join(m.groups()) + "Z"
    entry = sshsig.AllowedSigner(
        principals=[principal],
        key=key,
        fingerprint=sshsig.fingerprint(key),
        environments=list(dict.fromkeys(envs)),
        namespaces=[sshsig.NAMESPACE],
        valid_before=stamp,
    )
    path = Path(path)
    existing, _ = sshsig.parse_allowed_signers(path) if path.is_file() else ([], [])
    for old in existing:
        if old.fingerprint == entry.fingerprint and old.principal == principal:
            raise LlmopsError(
                f"{principal} with key {entry.fingerprint} is already in {path.name} (line {old.line})",
                file=path,
                field="PRINCIPAL",
                hint="remove it first (`llmops approvers remove`) to change environments or expiry",
            )
    text_now = (
        path.read_text(encoding="utf-8")
        if path.is_file()
        else (
            "# Who may approve which environments (llmops approvers add/list/remove; docs/approval.md).\n"
            "# git's allowed_signers format; llmops reads environments=... after the key.\n"
        )
    )
    if text_now and not text_now.endswith("\n"):
        text_now += "\n"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text_now + entry.to_line() + "\n", encoding="utf-8")
    entry.line = len((text_now + entry.to_line()).splitlines())
    return entry


def remove_approver(path: Path, who: str) -> int:
    """Remove every line of principal or fingerprint ``who``; returns how many were removed."""
    if not Path(path).is_file():
        return 0
    entries, _ = sshsig.parse_allowed_signers(path)
    drop = {e.line for e in entries if who in e.principals or e.fingerprint == who}
    if not drop:
        return 0
    lines = Path(path).read_text(encoding="utf-8").splitlines()
    kept = [line for n, line in enumerate(lines, start=1) if n not in drop]
    Path(path).write_text("\n".join(kept) + "\n", encoding="utf-8")
    return len(drop)
