"""Content hashes: of a flow folder (as it will run or be deployed), of a dataset file, of JSON values."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

# Never part of what a flow *is*: Prompt flow's own logs and caches, bytecode, editor files.
IGNORED_DIRS = {".promptflow", "__pycache__", ".runs", ".ipynb_checkpoints", ".git", ".llmops"}
IGNORED_SUFFIXES = {".pyc", ".pyo"}


def flow_files(folder: Path) -> list[Path]:
    """Every file that makes up a flow folder, sorted, skipping logs and caches."""
    out = []
    for path in sorted(Path(folder).rglob("*")):
        rel_parts = path.relative_to(folder).parts
        if any(part in IGNORED_DIRS for part in rel_parts):
            continue
        if path.is_file() and path.suffix not in IGNORED_SUFFIXES:
            out.append(path)
    return out


def hash_folder(folder: Path) -> str:
    """sha256 over (relative path, bytes) of every file of the folder: stable across machines."""
    digest = hashlib.sha256()
    folder = Path(folder)
    for path in flow_files(folder):
        digest.update(path.relative_to(folder).as_posix().encode())
        digest.update(b"\0")
        digest.update(hashlib.sha256(path.read_bytes()).digest())
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
