"""What a run measured, recorded at run time, and whether the workspace still holds the same thing.

A sweep records in its run config (so it travels with ``llmops runs export``):

- ``ran_by``: who ran it (``LLMOPS_USER``, else git's ``user.email`` in the workspace, else the OS
  user), so an approval policy can say the approver may not be that person;
- ``flow_files``: the sha256 of every file of the standard flow folder;
- ``dataset_hashes``: per experiment dataset, the sha256 of its file and of every evaluation dataset
  that evaluates it (the same paths an approval record names).

:func:`evidence_mismatches` compares those with the workspace as it is now; the runs import and
approval both use it, and name the files that differ.
"""

from __future__ import annotations

import getpass
import os
import shutil
import socket
import subprocess
from pathlib import Path
from typing import Any

from llmops_tui.core.errors import LlmopsError

USER_ENV = "LLMOPS_USER"


def run_identity(workspace_root: Path | None = None) -> str:
    """Who is running this: ``LLMOPS_USER``, else git's ``user.email``, else ``user@host``."""
    value = os.environ.get(USER_ENV, "").strip()
    if value:
        return value
    git = shutil.which("git")
    if git and workspace_root is not None:
        try:
            proc = subprocess.run(
                [git, "config", "user.email"],
                cwd=str(workspace_root),
                capture_output=True,
                timeout=10,
                env={**os.environ, "GIT_TERMINAL_PROMPT": "0"},
            )
            email = proc.stdout.decode("utf-8", "replace").strip()
            if proc.returncode == 0 and email:
                return email
        except (OSError, subprocess.SubprocessError):
            pass
    try:
        user = getpass.getuser()
    except Exception:  # no user name on this platform/container: the host alone still says something
        user = "unknown"
    return f"{user}@{socket.gethostname()}"


def run_evidence(workspace_root: Path, use_case: Any, datasets: list[str]) -> dict[str, Any]:
    """The evidence a sweep stores in its run config (see the module docstring). Never raises: what
    cannot be hashed is left out (the approval then reports it)."""
    from llmops_tui.core.approval import dataset_hashes, source_file_hashes

    out: dict[str, Any] = {"ran_by": run_identity(workspace_root)}
    flow = getattr(use_case, "standard_flow", None)
    if flow is not None:
        try:
            out["flow_files"] = source_file_hashes(flow.path)
        except OSError:
            pass
    hashes: dict[str, dict[str, str]] = {}
    for name in datasets:
        try:
            hashes[name] = dataset_hashes(Path(workspace_root), use_case, name)
        except (LlmopsError, OSError):
            continue
    out["dataset_hashes"] = hashes
    return out


def evidence_mismatches(workspace_root: Path, use_case: Any, config: dict[str, Any]) -> dict[str, list[str]]:
    """{"flow": [...], "datasets": [...]}: files whose content differs from what the run measured
    (``name (changed)``, ``(added)``, ``(removed)``, ``(missing)``). Empty lists: all match. A run
    recorded before this evidence existed gives ``{"unknown": [...]}``."""
    from llmops_tui.core.approval import _describe_files, source_file_hashes
    from llmops_tui.core.hashing import hash_file

    root = Path(workspace_root).resolve()
    out: dict[str, list[str]] = {"flow": [], "datasets": []}
    before = config.get("flow_files")
    flow = getattr(use_case, "standard_flow", None)
    if isinstance(before, dict) and flow is not None:
        text = _describe_files(before, source_file_hashes(flow.path))
        out["flow"] = [p for p in text.split(", ") if p]
    elif not isinstance(before, dict):
        out.setdefault("unknown", []).append("the run did not record its flow files")
    ds = config.get("dataset_hashes")
    if isinstance(ds, dict):
        seen: set[str] = set()
        for files in ds.values():
            for rel, expected in sorted((files or {}).items()):
                if rel in seen or expected == "remote":
                    continue
                seen.add(rel)
                path = root / rel
                if not path.is_file():
                    out["datasets"].append(f"{rel} (missing)")
                elif hash_file(path) != expected:
                    out["datasets"].append(f"{rel} (changed)")
    else:
        out.setdefault("unknown", []).append("the run did not record its dataset hashes")
    return out


def describe_mismatches(found: dict[str, list[str]]) -> str:
    """One line: ``flow: a.jinja2 (changed); datasets: data/x.jsonl (changed)`` or ``""`` when all match."""
    parts = []
    if found.get("flow"):
        parts.append("flow: " + ", ".join(found["flow"]))
    if found.get("datasets"):
        parts.append("datasets: " + ", ".join(found["datasets"]))
    return "; ".join(parts)
