"""Reading config and data files with errors that name the file and the field."""

from __future__ import annotations

import csv
import io
import json
import os
import re
import shutil
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from llmops_tui.core.errors import LlmopsError, Problem


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


# ------------------------------------------------------------------------------- names that become paths

# A name that becomes one path component (a use case, an environment, a deployment, a connection file):
# letters, digits, '_', '-' and '.', starting with a letter or digit. That rules out '/', '\\', '..',
# absolute paths, hidden names and empty names, so joining it to a folder can never leave that folder.
NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,127}$")
NAME_HINT = "use letters, digits, '_', '-' and '.', starting with a letter or digit"


def name_problem(value: Any) -> str | None:
    """Why ``value`` cannot be a name that becomes a path component, or None when it can."""
    if not isinstance(value, str) or not value:
        return "must be a non-empty name"
    if not NAME_RE.match(value):
        return f"'{value}' is not a safe name (it would be used as a file or folder name)"
    return None


def check_name(value: Any, *, file: str | Path | None = None, field: str = "name") -> str:
    """``value`` when it is a safe name (see :data:`NAME_RE`), else LlmopsError naming the file and field."""
    problem = name_problem(value)
    if problem:
        raise LlmopsError(problem, file=file, field=field, hint=NAME_HINT)
    return str(value)


def safe_join(base: Path | str, *parts: str | Path, field: str = "") -> Path:
    """``base / parts...`` resolved, refusing any result outside ``base`` (``..``, absolute parts, or a
    symlink on the way that points elsewhere). Every writer that builds a path from a name uses this, so
    a name that slipped past validation still cannot write outside its folder."""
    root = Path(base).resolve()
    target = root.joinpath(*[str(p) for p in parts]).resolve()
    if target != root and not target.is_relative_to(root):
        shown = "/".join(str(p) for p in parts)
        raise LlmopsError(
            f"refusing to use '{shown}': it resolves to {target}, outside {root}",
            file=root,
            field=field,
            hint="names that become paths may not contain '/', '..' or point through a symlink",
        )
    return target


# ------------------------------------------------------------------------- walking folders with symlinks


def _link_error(link: Path, message: str, hint: str) -> LlmopsError:
    return LlmopsError(message, file=link, field="symlink", hint=hint)


def walk_files(
    folder: Path | str,
    *,
    confine: Path | str | None = None,
    ignore_dirs: set[str] | frozenset[str] = frozenset(),
    ignore_suffixes: set[str] | frozenset[str] = frozenset(),
) -> list[tuple[str, Path]]:
    """(relative POSIX path, path to read) of every regular file under ``folder``, sorted.

    Symlinks are followed, but: a link that points outside ``confine`` (when given), a dangling link and
    a symlink loop (a link to itself, a cycle of links, or a folder link to one of its own ancestors) are
    LlmopsErrors naming the link. Names in ``ignore_dirs`` are skipped wherever they appear; sockets,
    FIFOs and devices are skipped (reading them could block or never end)."""
    folder = Path(folder)
    limit = Path(confine).resolve() if confine is not None else None
    out: list[tuple[tuple[str, ...], Path]] = []

    def visit(directory: Path, parts: tuple[str, ...], stack: frozenset[Path], via: Path | None) -> None:
        try:
            entries = sorted(os.scandir(directory), key=lambda e: e.name)
        except OSError as exc:
            raise LlmopsError(f"cannot read folder: {exc.strerror or exc}", file=directory, field="") from exc
        for entry in entries:
            if entry.name in ignore_dirs:
                continue
            path = directory / entry.name
            rel_parts = (*parts, entry.name)
            if entry.is_symlink():
                try:
                    target = path.resolve(strict=True)
                except RuntimeError:
                    raise _link_error(
                        path, "symlink loop", "remove the link or point it at a real file"
                    ) from None
                except OSError as exc:
                    raise _link_error(
                        path,
                        f"symlink points to a missing file ({os.readlink(path)})",
                        "fix or remove the link",
                    ) from exc
                if limit is not None and target != limit and not target.is_relative_to(limit):
                    raise _link_error(
                        path,
                        f"symlink points outside {limit} (to {target})",
                        "copy the file into the use case folder instead of linking to it",
                    )
                is_dir, is_file = target.is_dir(), target.is_file()
            else:
                is_dir = entry.is_dir(follow_symlinks=False)
                is_file = entry.is_file(follow_symlinks=False)
            if is_dir:
                real = path.resolve()
                link = path if entry.is_symlink() else via
                if real in stack:
                    # Name the link that led here (``up -> ..``), not the path through it.
                    raise _link_error(
                        link or path, f"symlink loop (it leads back to {real})", "remove the link"
                    )
                visit(path, rel_parts, stack | {real}, link)
            elif is_file and Path(entry.name).suffix not in ignore_suffixes:
                out.append((rel_parts, path))

    root = folder.resolve()
    visit(folder, (), frozenset({root}), None)
    out.sort(key=lambda item: item[0])
    return [("/".join(parts), path) for parts, path in out]


def copy_confined(
    src: Path | str,
    dest: Path | str,
    *,
    confine: Path | str | None,
    ignore_dirs: set[str] | frozenset[str] = frozenset(),
    ignore_suffixes: set[str] | frozenset[str] = frozenset(),
) -> list[str]:
    """Copy every file :func:`walk_files` yields from ``src`` into ``dest`` as plain files (links are
    resolved, never copied as links). Checks every link before writing anything. Returns the relative
    paths written."""
    files = walk_files(src, confine=confine, ignore_dirs=ignore_dirs, ignore_suffixes=ignore_suffixes)
    dest = Path(dest)
    dest.mkdir(parents=True, exist_ok=True)
    for rel_path, path in files:
        target = safe_join(dest, rel_path)
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(path, target)
    return [r for r, _ in files]
