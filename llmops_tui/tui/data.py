"""Read-only look-ups the screens share: the run store, approvals, deployments, key presence.

Everything optional (modules that may not exist in an older install, files that may be missing) is
read defensively: a screen shows "-" rather than failing.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from rich.text import Text

from llmops_tui.core.store import STORE_DIR, STORE_FILE, RunStore
from llmops_tui.core.workspace import Connection, UseCase, Workspace


def store_path(root: Path) -> Path:
    return Path(root) / STORE_DIR / STORE_FILE


def open_store(root: Path, *, create: bool = False) -> RunStore | None:
    """The workspace's run store, or None when there is none yet and ``create`` is False."""
    if not create and not store_path(root).is_file():
        return None
    return RunStore.for_workspace(root)


def fmt_time(ts: float | None) -> str:
    if not ts:
        return "-"
    return time.strftime("%Y-%m-%d %H:%M", time.localtime(ts))


def fmt_num(value: Any, digits: int = 3) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        return (
            f"{value:.{digits}f}".rstrip("0").rstrip(".")
            if value != int(value)
            else f"{value:.{min(digits, 1)}f}"
        )
    return str(value)


#: How each run status looks: a mark, the words and a colour. The five end states stay distinct, so
#: nothing that was cancelled, interrupted or failed can read as "completed".
RUN_STATUSES: dict[str, tuple[str, str, str]] = {
    "completed": ("✓", "completed", "green"),
    "completed_with_errors": ("!", "completed with errors", "dark_orange"),
    "failed": ("✗", "failed", "bold red"),
    "cancelled": ("■", "cancelled", "magenta"),
    "interrupted": ("⚡", "interrupted", "yellow"),
    "running": ("▶", "running", "cyan"),
    "starting": ("…", "starting", "dim"),
    "cancelling": ("…", "cancelling", "magenta"),
}


def status_words(status: str) -> str:
    mark, words, _ = RUN_STATUSES.get(status, ("?", status.replace("_", " "), ""))
    return f"{mark} {words}"


def status_text(status: str) -> Text:
    """A run status as coloured words with a mark (for tables and the run monitor's head)."""
    _, _, style = RUN_STATUSES.get(status, ("?", status, ""))
    return Text(status_words(status), style=style)


# ------------------------------------------------------------------------------------------ approvals


def approval_states(uc: UseCase) -> dict[str, str]:
    """env -> decision of the current approval record ("approved", "rejected"). Read as plain data: the
    Approval screen and ``llmops verify-approval`` do the (slower) signature and hash verification."""
    from llmops_tui.core.approval import approval_envs, current_path

    out: dict[str, str] = {}
    for env in approval_envs(uc):
        path = current_path(uc, env)
        if not path.is_file():
            out[env] = "history only"
            continue
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            out[env] = "unreadable"
            continue
        out[env] = str(data.get("decision") or "?") if isinstance(data, dict) else "unreadable"
    return out


def _get(obj: Any, name: str) -> Any:
    if isinstance(obj, dict):
        return obj.get(name)
    return getattr(obj, name, None)


# ---------------------------------------------------------------------------------------- deployments


def deployments(root: Path) -> dict[str, dict[str, str]]:
    """use case -> env -> short description, from ``<workspace>/.llmops/deployments.json`` if present.
    Accepts a list of records or a mapping keyed by use case."""
    path = Path(root) / STORE_DIR / "deployments.json"
    if not path.is_file():
        return {}
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    records: list[dict[str, Any]] = []
    if isinstance(data, dict) and isinstance(data.get("deployments"), list):
        data = data["deployments"]
    if isinstance(data, list):
        records = [r for r in data if isinstance(r, dict)]
    elif isinstance(data, dict):
        for uc_name, envs in data.items():
            if isinstance(envs, dict):
                for env, rec in envs.items():
                    rec = rec if isinstance(rec, dict) else {"status": str(rec)}
                    records.append({"use_case": uc_name, "env": env, **rec})
    out: dict[str, dict[str, str]] = {}
    for rec in records:
        uc_name = str(rec.get("use_case") or "")
        env = str(rec.get("env") or rec.get("environment") or "?")
        what = str(rec.get("target") or rec.get("status") or "deployed")
        out.setdefault(uc_name, {})[env] = what  # later records win: the list is in time order
    return out


# ------------------------------------------------------------------------------------------- overview


@dataclass
class UseCaseRow:
    name: str
    format: str
    flows: str
    datasets: str
    variants: int
    last_run: str
    last_status: str
    best_cell: str
    approvals: str
    deployments: str
    problems: list[str] = field(default_factory=list)
    last_run_id: str | None = None
    best_cell_id: str | None = None
    best_label: str = "-"  # the short form for the table


def variant_count(uc: UseCase) -> int:
    flow = uc.standard_flow
    if not flow:
        return 0
    n = 1
    for ids in flow.variants.values():
        n *= max(len(ids), 1)
    return n if flow.variants else 0


def best_cell(store: RunStore, run_id: str, root: Path) -> tuple[str | None, str, str]:
    """(cell id, label, "label (metric value)") of a run's best cell, chosen by the comparison itself
    (``Comparison.best_cell``: gates first, then the primary metric in its direction), so home, Compare,
    ``llmops compare --json`` and the reports always agree."""
    from llmops_tui.core.compare import build_comparison
    from llmops_tui.tui.screens.compare import fmt_value

    comparison = build_comparison(store, run_id, workspace_root=root)
    cid = comparison.best_cell()
    cell = comparison.cell(cid) if cid else None
    if not cid or cell is None:
        return None, "-", "-"
    primary = comparison.primary_row()
    mv = primary.values.get(cid) if primary is not None else None
    text = cell.label
    if primary is not None and mv is not None and mv.value is not None:
        text += f" ({primary.label} {fmt_value(mv.value, primary.key)})"
    label = cell.label
    if comparison.gates and not comparison.passes(cid):
        text += " fails a gate"
        label += " ✗gate"
    return cid, label, text


def overview(ws: Workspace, store: RunStore | None) -> list[UseCaseRow]:
    deps = deployments(ws.root)
    rows = []
    for uc in ws.use_cases:
        flow = uc.standard_flow
        flows = [flow.name if flow else (uc.flow_source or "?")] + [e.name for e in uc.evaluators]
        datasets = (
            ", ".join(f"{d.name} ({d.rows if d.rows is not None else '?'})" for d in uc.datasets) or "-"
        )
        runs = store.list_runs(uc.name) if store else []
        last = runs[0] if runs else None
        # The best cell needs the run's comparison: the home screen fills it in the background.
        best = "…" if last is not None else "-"
        approvals = approval_states(uc)
        envs = uc.environments or sorted(approvals)
        approvals_text = " ".join(f"{e}:{approvals.get(e, '-')}" for e in envs) or "-"
        dep = deps.get(uc.name, {})
        rows.append(
            UseCaseRow(
                name=uc.name,
                format="experiment.yaml" if uc.format == "experiment_yaml" else "llmops_config.json",
                flows=", ".join(flows),
                datasets=datasets,
                variants=variant_count(uc),
                last_run=fmt_time(last.started_at) if last else "-",
                last_status=last.status if last else "-",
                best_cell=best,
                best_label=best,
                approvals=approvals_text,
                deployments=" ".join(f"{e}:{t}" for e, t in dep.items()) or "-",
                problems=[str(p) for p in uc.problems],
                last_run_id=last.run_id if last else None,
            )
        )
    return rows


# ----------------------------------------------------------------------------------------------- keys


@dataclass
class KeyRow:
    connection: str
    connection_type: str
    env_var: str
    found: bool
    source: str
    used_by: str


def key_rows(uc: UseCase, root: Path) -> list[KeyRow]:
    """For every connection a use case declares or its LLM nodes reference: is a key found, and where.
    Never the key itself (core.connections looks it up and we keep only the source)."""
    from llmops_tui.core.connections import find_key, referenced_connections

    referenced = referenced_connections(uc)
    names = list(dict.fromkeys([c.name for c in uc.connections] + list(referenced)))
    rows = []
    for name in names:
        conn = uc.connection(name) or Connection(
            name=name, connection_type=f"{referenced.get(name, 'AzureOpenAI')}Connection"
        )
        try:
            value, source = find_key(conn, uc.path, root)
        except Exception as exc:  # noqa: BLE001 - an unreadable .env or keyring is "not found", with why
            value, source = None, f"lookup failed ({type(exc).__name__})"
        found = bool(value)
        del value  # never kept
        rows.append(
            KeyRow(
                connection=name,
                connection_type=conn.connection_type,
                env_var=conn.key_env_var,
                found=found,
                source=source or "not found",
                used_by="LLM nodes" if name in referenced else "declared only",
            )
        )
    return rows


def any_key_missing(uc: UseCase, root: Path) -> bool:
    try:
        return any(not r.found for r in key_rows(uc, root))
    except Exception:  # noqa: BLE001
        return True


def keyring_state() -> tuple[bool, str]:
    """(usable, one line) for the OS keyring."""
    from llmops_tui.core.secrets import keyring_status

    status = keyring_status()
    return (not status.startswith("no keyring")), status


def keyring_store(env_var: str, secret: str) -> str:
    """Store or replace a connection key in the OS keyring under its env var name (what the engine
    looks up). Raises LlmopsError with a one-line reason (e.g. no keyring available)."""
    from llmops_tui.core.secrets import set_keyring_secret

    return set_keyring_secret(env_var, secret)
