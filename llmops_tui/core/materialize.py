"""Materialise a flow: a plain flow folder with chosen variants applied and parameter overrides baked in.

Prompt flow can select only one node's variant per run (and ``pf flow build --variant`` copies the
original flow unchanged), so full grids, cloud runs and deployments all run a materialised copy: every
node that used variants becomes the chosen variant's node, ``node_variants`` is removed, and overrides
such as ``NODE.temperature`` are written into the node's inputs. The result is content-addressed.

Flex flows and code-only evaluators have no nodes: a flex flow's overrides are ``init.X`` (or
``init.X.field`` inside a model configuration) and are written into the copy's ``init.json``.
"""

from __future__ import annotations

import json
import shutil
import tempfile
from pathlib import Path
from typing import Any

import yaml

from llmops_tui.core.errors import LlmopsError
from llmops_tui.core.files import copy_confined, load_yaml, walk_files
from llmops_tui.core.flows import DAG_FILE, INIT_FILE
from llmops_tui.core.hashing import IGNORED_DIRS, IGNORED_SUFFIXES, hash_folder, hash_value


def to_openai_compatible(data: dict[str, Any]) -> dict[str, Any]:
    """Switch Azure OpenAI LLM nodes to the OpenAI provider (``deployment_name`` becomes ``model``), so a
    flow written for Azure OpenAI runs against any OpenAI-compatible server (vLLM, Ollama, LM Studio...)."""
    for node in data.get("nodes") or []:
        if node.get("type") != "llm":
            continue
        if node.get("provider") in (None, "AzureOpenAI") or str(node.get("module", "")).endswith(".aoai"):
            node["provider"] = "OpenAI"
            node["module"] = "promptflow.tools.openai"
            inputs = dict(node.get("inputs") or {})
            deployment = inputs.pop("deployment_name", None)
            if "model" not in inputs and deployment is not None:
                inputs["model"] = deployment
            node["inputs"] = inputs
    return data


def materialized_dag(
    flow_dir: Path, variants: dict[str, str] | None = None, overrides: dict[str, Any] | None = None
) -> dict[str, Any]:
    """The flow.dag.yaml content with ``variants`` (node -> variant id; others at default) applied and
    ``overrides`` (``NODE.input`` -> value) set."""
    data = load_yaml(Path(flow_dir) / DAG_FILE)
    variants = dict(variants or {})
    node_variants = data.pop("node_variants", None) or {}
    nodes = []
    for raw in data.get("nodes") or []:
        node = dict(raw)
        name = node.get("name")
        if node.pop("use_variants", False):
            spec = node_variants.get(name) or {}
            chosen = variants.pop(str(name), None) or spec.get("default_variant_id")
            body = (spec.get("variants") or {}).get(chosen)
            if not body or not isinstance(body.get("node"), dict):
                raise LlmopsError(
                    f"node '{name}' has no variant '{chosen}'",
                    file=Path(flow_dir) / DAG_FILE,
                    field=f"node_variants.{name}",
                )
            node = {"name": name, **{k: v for k, v in body["node"].items() if k != "name"}}
        nodes.append(node)
    if variants:
        unknown = ", ".join(f"{n}.{v}" for n, v in variants.items())
        raise LlmopsError(
            f"no such node with variants: {unknown}", file=Path(flow_dir) / DAG_FILE, field="node_variants"
        )
    by_name = {n.get("name"): n for n in nodes}
    for key, value in (overrides or {}).items():
        node_name, _, param = key.partition(".")
        if node_name.startswith("nodes") and param:  # promptflow style nodes.NODE.inputs.param
            parts = key.split(".")
            node_name, param = parts[1], parts[-1]
        target = by_name.get(node_name)
        if target is None or not param:
            raise LlmopsError(
                f"override '{key}' names no node of the flow",
                file=Path(flow_dir) / DAG_FILE,
                field="--grid",
                hint=f"use NODE.param with NODE one of: {', '.join(map(str, by_name))}",
            )
        if param in {"connection", "deployment_name_node"}:
            target[param] = value
        else:
            target.setdefault("inputs", {})
            target["inputs"] = {**target["inputs"], param: value}
    data["nodes"] = nodes
    return data


def materialized_init(flow_dir: Path, overrides: dict[str, Any] | None = None) -> dict[str, Any]:
    """A flex flow's init.json content with ``init.X`` / ``init.X.field`` overrides applied."""
    path = Path(flow_dir) / INIT_FILE
    data: dict[str, Any] = {}
    if path.is_file():
        try:
            loaded = json.loads(path.read_text(encoding="utf-8"))
        except ValueError as exc:
            raise LlmopsError(f"not valid JSON ({exc})", file=path, field="", hint="fix the file") from exc
        if not isinstance(loaded, dict):
            raise LlmopsError("must be a JSON object of init parameters", file=path, field="")
        data = loaded
    for key, value in (overrides or {}).items():
        head, _, rest = key.partition(".")
        if head != "init" or not rest:
            raise LlmopsError(
                f"override '{key}' is not init.PARAM",
                file=Path(flow_dir) / "flow.flex.yaml",
                field="--grid",
                hint="a flex flow's dimensions are its init parameters: init.PARAM or init.PARAM.field",
            )
        parts = rest.split(".")
        target = data
        for part in parts[:-1]:
            child = target.get(part)
            if not isinstance(child, dict):
                child = {}
            target[part] = child = dict(child)
            target = child
        target[parts[-1]] = value
    return data


def _is_dag(flow_dir: Path) -> bool:
    return (Path(flow_dir) / DAG_FILE).is_file()


def _materialize_flex(
    flow_dir: Path, dest_root: Path, overrides: dict[str, Any] | None, confine: Path | None
) -> tuple[Path, str]:
    init = materialized_init(flow_dir, overrides)
    dest_root = Path(dest_root)
    dest_root.mkdir(parents=True, exist_ok=True)
    key = hash_value({"src": _hash_used(flow_dir, set()), "init": init})[:16]
    final = dest_root / key
    check_links(flow_dir, confine=confine)
    if final.is_dir() and (final / ".complete").exists():
        return final, (final / ".complete").read_text().strip()
    tmp = Path(tempfile.mkdtemp(prefix=".tmp-", dir=dest_root))
    try:
        target = tmp / "flow"
        copy_flow(flow_dir, target, confine=confine)
        if init or (Path(flow_dir) / INIT_FILE).is_file():
            (target / INIT_FILE).write_text(json.dumps(init, indent=2) + "\n", encoding="utf-8")
        version = hash_folder(target)
        (target / ".complete").write_text(version)
        if final.exists():
            shutil.rmtree(final, ignore_errors=True)
        target.rename(final)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return final, version


def _hash_used(flow_dir: Path, unused: set[str]) -> str:
    from llmops_tui.core.hashing import flow_files, hash_file

    files = {p.relative_to(flow_dir).as_posix(): hash_file(p) for p in flow_files(flow_dir)}
    return hash_value({k: v for k, v in files.items() if k not in unused})


USE_CASE_MARKERS = ("experiment.yaml", "llmops_config.json")


def use_case_root(flow_dir: Path) -> Path:
    """The use case folder a flow belongs to: the nearest folder at or above ``flow_dir`` holding
    experiment.yaml or llmops_config.json (else ``flow_dir`` itself). Symlinks in a flow may point
    anywhere inside it, never outside."""
    start = Path(flow_dir).absolute()
    for folder in (start, *start.parents):
        if any((folder / m).is_file() for m in USE_CASE_MARKERS):
            return folder.resolve()
    return start.resolve()


def check_links(flow_dir: Path, *, confine: Path | None = None) -> Path:
    """Raise LlmopsError for a symlink of the flow that points outside ``confine`` (default: the use case
    folder), dangles or loops; returns the confining folder."""
    limit = Path(confine).resolve() if confine is not None else use_case_root(flow_dir)
    real = Path(flow_dir).resolve()
    if real != limit and not real.is_relative_to(limit):
        raise LlmopsError(
            f"the flow folder resolves to {real}, outside the use case {limit}",
            file=flow_dir,
            field="symlink",
            hint="copy the flow into the use case folder instead of linking to it",
        )
    walk_files(flow_dir, confine=limit, ignore_dirs=frozenset(IGNORED_DIRS))
    return limit


def copy_flow(flow_dir: Path, dest: Path, *, confine: Path | None = None) -> None:
    """Copy a flow folder's files into ``dest`` (logs and caches left out). Symlinks are resolved into
    plain files; a link pointing outside ``confine`` (default: the use case, see :func:`use_case_root`),
    a dangling link or a symlink loop is an LlmopsError naming the link, raised before anything is
    written."""
    limit = check_links(flow_dir, confine=confine)
    copy_confined(
        flow_dir,
        dest,
        confine=limit,
        ignore_dirs=frozenset(IGNORED_DIRS),
        ignore_suffixes=frozenset(IGNORED_SUFFIXES),
    )


def _source_paths(node: dict[str, Any]) -> set[str]:
    source = node.get("source")
    path = source.get("path") if isinstance(source, dict) else None
    return {str(path)} if path else set()


def unused_variant_files(flow_dir: Path, data: dict[str, Any]) -> set[str]:
    """Source files that only unchosen variants use: left out of a materialised flow, so editing the
    prompt of a variant that is not part of a cell neither changes that cell's hash nor ships."""
    original = load_yaml(Path(flow_dir) / DAG_FILE)
    used: set[str] = set()
    for node in data.get("nodes") or []:
        used |= _source_paths(node)
    candidates: set[str] = set()
    for spec in (original.get("node_variants") or {}).values():
        for body in (spec.get("variants") or {}).values():
            if isinstance(body, dict) and isinstance(body.get("node"), dict):
                candidates |= _source_paths(body["node"])
    return {c for c in candidates - used if (Path(flow_dir) / c).is_file()}


def _drop(folder: Path, files: set[str]) -> None:
    for rel_path in files:
        target = folder / rel_path
        if target.is_file():
            target.unlink()


def materialize_flow(
    flow_dir: Path,
    dest_root: Path,
    variants: dict[str, str] | None = None,
    overrides: dict[str, Any] | None = None,
    *,
    openai_compatible: bool = False,
    confine: Path | None = None,
) -> tuple[Path, str]:
    """Write the materialised flow under ``dest_root/<hash>/`` (reused if present); returns (folder, hash).

    The hash is the content hash of the resulting folder, so it works as a version for deployments.
    ``openai_compatible`` switches Azure OpenAI LLM nodes to the OpenAI provider (see
    :func:`to_openai_compatible`)."""
    flow_dir = Path(flow_dir)
    if not _is_dag(flow_dir):
        # flex flows and code evaluators: no variants; the model configs follow the run's connections
        return _materialize_flex(flow_dir, dest_root, overrides, confine)
    data = materialized_dag(flow_dir, variants, overrides)
    if openai_compatible:
        data = to_openai_compatible(data)
    dest_root = Path(dest_root)
    dest_root.mkdir(parents=True, exist_ok=True)
    unused = unused_variant_files(flow_dir, data)
    key = hash_value({"src": _hash_used(flow_dir, unused), "dag": data})[:16]
    final = dest_root / key
    check_links(flow_dir, confine=confine)  # even when a cached copy exists: refuse what cannot ship
    if final.is_dir() and (final / ".complete").exists():
        return final, (final / ".complete").read_text().strip()
    tmp = Path(tempfile.mkdtemp(prefix=".tmp-", dir=dest_root))
    try:
        target = tmp / "flow"
        copy_flow(flow_dir, target, confine=confine)
        _drop(target, unused_variant_files(flow_dir, data))
        (target / DAG_FILE).write_text(
            yaml.safe_dump(data, sort_keys=False, allow_unicode=True), encoding="utf-8"
        )
        version = hash_folder(target)
        (target / ".complete").write_text(version)
        if final.exists():
            shutil.rmtree(final, ignore_errors=True)
        target.rename(final)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return final, version


def export_flow(
    flow_dir: Path,
    out: Path,
    variants: dict[str, str] | None = None,
    overrides: dict[str, Any] | None = None,
    *,
    confine: Path | None = None,
) -> str:
    """Write a materialised flow folder to ``out`` (for deployment); returns its content hash (version).
    Symlinks out of ``confine`` (default: the use case folder) are refused, see :func:`copy_flow`."""
    out = Path(out)
    if not _is_dag(flow_dir):
        init = materialized_init(flow_dir, overrides)
        if out.exists():
            shutil.rmtree(out)
        copy_flow(flow_dir, out, confine=confine)
        if init or (Path(flow_dir) / INIT_FILE).is_file():
            (out / INIT_FILE).write_text(json.dumps(init, indent=2) + "\n", encoding="utf-8")
        return hash_folder(out)
    data = materialized_dag(flow_dir, variants, overrides)
    if out.exists():
        shutil.rmtree(out)
    copy_flow(flow_dir, out, confine=confine)
    _drop(out, unused_variant_files(flow_dir, data))
    (out / DAG_FILE).write_text(yaml.safe_dump(data, sort_keys=False, allow_unicode=True), encoding="utf-8")
    return hash_folder(out)
