"""The record of local deployments: ``<workspace>/.llmops/deployments.json``.

Each entry says what runs where: the served flow's version, URL, port and process id, the sandbox model
process it talks to (when started for it) and, for A/B, the router in front of two versions. Processes are
started in their own session so they outlive ``llmops deploy``; ``llmops undeploy`` stops them by the
recorded process id, after checking that the process is still the one started (its command line carries a
marker), so a reused process id is never signalled.
"""

from __future__ import annotations

import json
import os
import signal
import time
from contextlib import contextmanager
from pathlib import Path
from typing import Any

REGISTRY_FILE = "deployments.json"


def registry_path(root: Path) -> Path:
    return Path(root) / ".llmops" / REGISTRY_FILE


@contextmanager
def _locked(root: Path):
    path = registry_path(root)
    path.parent.mkdir(parents=True, exist_ok=True)
    lock = path.with_suffix(".lock")
    with open(lock, "a+") as fh:
        try:
            import fcntl

            fcntl.flock(fh, fcntl.LOCK_EX)
        except ImportError:  # Windows: no advisory lock; the file is rewritten atomically anyway
            pass
        yield path


def _read(path: Path) -> list[dict[str, Any]]:
    if not path.is_file():
        return []
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except ValueError:
        return []
    items = data.get("deployments") if isinstance(data, dict) else None
    return [d for d in items or [] if isinstance(d, dict)]


def _write(path: Path, items: list[dict[str, Any]]) -> None:
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    tmp.write_text(json.dumps({"deployments": items}, indent=2, sort_keys=True) + "\n", encoding="utf-8")
    os.replace(tmp, path)


def load(root: Path) -> list[dict[str, Any]]:
    """Every recorded local deployment and router, each with ``alive`` filled in."""
    if not registry_path(root).is_file():
        return []  # reading never creates anything (dry runs leave the workspace unchanged)
    with _locked(root) as path:
        items = _read(path)
    for item in items:
        item["alive"] = is_alive(item.get("pid"), item.get("marker"))
    return items


def add(root: Path, record: dict[str, Any]) -> None:
    with _locked(root) as path:
        items = [i for i in _read(path) if i.get("id") != record.get("id")]
        items.append({k: v for k, v in record.items() if k != "alive"})
        _write(path, items)


def remove(root: Path, ids: set[str]) -> None:
    with _locked(root) as path:
        _write(path, [i for i in _read(path) if i.get("id") not in ids])


# ------------------------------------------------------------------------------------------ processes


def _cmdline(pid: int) -> str | None:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
    except OSError:
        return None


def _zombie(pid: int) -> bool:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat.rsplit(")", 1)[-1].split()[0] == "Z"


def is_alive(pid: Any, marker: str | None = None) -> bool:
    """True when ``pid`` runs and (where the OS shows command lines) still carries ``marker``."""
    if not isinstance(pid, int) or pid <= 0:
        return False
    try:
        done, _ = os.waitpid(pid, os.WNOHANG)  # reaps our own exited children
        if done == pid:
            return False
    except (ChildProcessError, OSError):
        pass
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return False
    if _zombie(pid):
        return False
    cmd = _cmdline(pid)
    if marker and cmd is not None and marker not in cmd:
        return False  # the id now belongs to another process
    return True


def stop_process(pid: Any, marker: str | None = None, *, timeout: float = 10.0) -> bool:
    """Stop a process we started (SIGTERM to its session, SIGKILL after ``timeout``). False if not running."""
    if not is_alive(pid, marker):
        return False
    for sig in (signal.SIGTERM, getattr(signal, "SIGKILL", signal.SIGTERM)):
        try:
            os.killpg(pid, sig)  # started with start_new_session: the group id is the pid
        except (AttributeError, ProcessLookupError, PermissionError, OSError):
            try:
                os.kill(pid, sig)
            except OSError:
                return True
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if not is_alive(pid, marker):
                return True
            time.sleep(0.05)
    return not is_alive(pid, marker)
