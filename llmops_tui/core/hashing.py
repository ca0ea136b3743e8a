"""Content hashes: of a flow folder (as it will run or be deployed), of a dataset file, of JSON values."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

from llmops_tui.core.files import walk_files

# Never part of what a flow *is*: Prompt flow's own logs and caches, bytecode, editor files.
IGNORED_DIRS = {".promptflow", "__pycache__", ".runs", ".ipynb_checkpoints", ".git", ".llmops"}
IGNORED_SUFFIXES = {".pyc", ".pyo"}


def flow_files(folder: Path) -> list[Path]:
    """Every file that makes up a flow folder, sorted, skipping logs and caches.

    Symlinks are followed as the copy that runs or ships would follow them; a symlink loop or a dangling
    link is an LlmopsError naming the link (never an endless walk). Whether a link may point outside
    the use case is decided where flows are materialised (core.materialize), not here."""
    return [
        path
        for _, path in walk_files(
            folder, ignore_dirs=frozenset(IGNORED_DIRS), ignore_suffixes=frozenset(IGNORED_SUFFIXES)
        )
    ]


def hash_folder(folder: Path) -> str:
    """sha256 over (relative path, bytes) of every file of the folder: stable across machines."""
    digest = hashlib.sha256()
    files = walk_files(
        folder, ignore_dirs=frozenset(IGNORED_DIRS), ignore_suffixes=frozenset(IGNORED_SUFFIXES)
    )
    for rel_path, path in files:
        digest.update(rel_path.encode())
        digest.update(b"\0")
        digest.update(bytes.fromhex(hash_file(path)))
    return digest.hexdigest()


def hash_file(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def hash_path(path: Path) -> str:
    path = Path(path)
    return hash_folder(path) if path.is_dir() else hash_file(path)


def canonical_json(value: Any) -> str:
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False, default=str)


def hash_value(value: Any) -> str:
    return hashlib.sha256(canonical_json(value).encode()).hexdigest()
