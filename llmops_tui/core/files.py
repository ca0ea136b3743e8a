"""Reading config and data files with errors that name the file and the field."""

from __future__ import annotations

import csv
import io
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from llmops_tui.core.errors import Problem


class ConfigError(Exception):
    """A problem with one file, carried as a :class:`Problem`."""

    def __init__(self, problem: Problem):
        self.problem = problem
        super().__init__(str(problem))


def rel(path: Path, root: Path | None) -> str:
    """A path as people should see it: relative to the workspace when possible."""
    if root is not None:
        try:
            return str(Path(path).resolve().relative_to(Path(root).resolve()))
        except ValueError:
            pass
    return str(path)


def read_text(path: Path, root: Path | None = None) -> str:
    try:
        data = path.read_bytes()
    except FileNotFoundError as exc:
        raise ConfigError(
            Problem(rel(path, root), "", "file not found", "create it or fix the path")
        ) from exc
    except OSError as exc:
        raise ConfigError(Problem(rel(path, root), "", f"cannot read: {exc.strerror}")) from exc
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise ConfigError(
            Problem(
                rel(path, root), "", f"not UTF-8 text (bad byte at offset {exc.start})", "save it as UTF-8"
            )
        ) from exc


def load_yaml(path: Path, root: Path | None = None) -> Any:
    text = read_text(path, root)
    try:
        return yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"line {mark.line + 1}, column {mark.column + 1}" if mark is not None else ""
        what = getattr(exc, "problem", None) or str(exc).splitlines()[0]
        raise ConfigError(
            Problem(rel(path, root), where, f"invalid YAML: {what}", "fix the syntax at that position")
        ) from exc


def load_json(path: Path, root: Path | None = None, *, allow_comments: bool = False) -> Any:
    """Load JSON; with ``allow_comments`` accept ``//`` comments and trailing commas (template files have them)."""
    text = read_text(path, root)
    try:
        if allow_comments:
            import json5

            return json5.loads(text)
        return json.loads(text)
    except json.JSONDecodeError as exc:
        raise ConfigError(
            Problem(rel(path, root), f"line {exc.lineno}, column {exc.colno}", f"invalid JSON: {exc.msg}")
        ) from exc
    except ValueError as exc:  # json5 errors
        raise ConfigError(Problem(rel(path, root), "", f"invalid JSON: {exc}")) from exc


@dataclass
class DataFile:
    """The shape of a dataset file: its columns and row count (and the rows, when asked)."""

    path: Path
    rows: int
    columns: list[str] = field(default_factory=list)


DATA_SUFFIXES = {".jsonl", ".json", ".csv", ".tsv"}


def read_rows(path: Path, root: Path | None = None, *, field_name: str = "source") -> list[dict[str, Any]]:
    """Every row of a JSONL / JSON / CSV / TSV dataset, as dicts. Raises ConfigError with the line."""
    shown = rel(path, root)
    if not path.exists():
        raise ConfigError(Problem(shown, "", "dataset file not found", "fix the path or add the file"))
    if path.is_dir():
        files = sorted(p for p in path.iterdir() if p.suffix.lower() in DATA_SUFFIXES)
        if not files:
            raise ConfigError(Problem(shown, "", "dataset folder has no .jsonl/.json/.csv file"))
        rows: list[dict[str, Any]] = []
        for f in files:
            rows.extend(read_rows(f, root, field_name=field_name))
        return rows
    text = read_text(path, root)
    suffix = path.suffix.lower()
    rows = []
    if suffix == ".jsonl" or (suffix not in {".csv", ".tsv", ".json"}):
        for number, line in enumerate(text.splitlines(), start=1):
            if not line.strip():
                continue
            try:
                row = json.loads(line)
            except json.JSONDecodeError as exc:
                raise ConfigError(
                    Problem(
                        shown, f"line {number}", f"invalid JSON line: {exc.msg}", "one JSON object per line"
                    )
                ) from exc
            if not isinstance(row, dict):
                raise ConfigError(Problem(shown, f"line {number}", "each line must be a JSON object"))
            rows.append(row)
    elif suffix == ".json":
        try:
            data = json.loads(text)
        except json.JSONDecodeError as exc:
            raise ConfigError(Problem(shown, f"line {exc.lineno}", f"invalid JSON: {exc.msg}")) from exc
        if not isinstance(data, list) or not all(isinstance(r, dict) for r in data):
            raise ConfigError(Problem(shown, "", "a .json dataset must be a list of objects"))
        rows = data
    else:
        reader = csv.DictReader(io.StringIO(text), delimiter="\t" if suffix == ".tsv" else ",")
        rows = [dict(r) for r in reader]
    if not rows:
        raise ConfigError(Problem(shown, "", "dataset is empty", "add at least one row"))
    return rows


def inspect_data(path: Path, root: Path | None = None) -> DataFile:
    rows = read_rows(path, root)
    columns: list[str] = []
    seen: set[str] = set()
    for row in rows[:200]:
        for key in row:
            if key not in seen:
                seen.add(key)
                columns.append(key)
    return DataFile(path=path, rows=len(rows), columns=columns)
