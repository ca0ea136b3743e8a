"""Prompt flow flow folders as plain data: inputs, outputs, nodes, LLM nodes and node variants.

Reads ``flow.dag.yaml`` directly (no promptflow import: listing must stay fast). Flex flows
(``flow.flex.yaml``) are listed with their entry and inputs but have no nodes or variants.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from llmops_tui.core.errors import Problem
from llmops_tui.core.files import ConfigError, load_yaml, rel
from llmops_tui.core.flowcheck import check_flow_dag

DAG_FILE = "flow.dag.yaml"
FLEX_FILE = "flow.flex.yaml"
LLM_TYPES = {"llm"}
_TEMPLATE_VAR = re.compile(r"{{\s*([A-Za-z_][A-Za-z0-9_]*)")


@dataclass
class Variant:
    """One variant of a node: the full node definition it stands for."""

    id: str
    node: dict[str, Any]
    prompt_file: str | None = None
    is_default: bool = False

    @property
    def params(self) -> dict[str, Any]:
        """Literal inputs (model parameters), leaving out ``${...}`` references."""
        return {k: v for k, v in (self.node.get("inputs") or {}).items() if not _is_reference(v)}


@dataclass
class Node:
    name: str
    type: str
    source_file: str | None
    inputs: dict[str, Any]
    connection: str | None = None
    deployment_name: str | None = None
    model: str | None = None
    api: str | None = None
    provider: str | None = None
    aggregation: bool = False
    use_variants: bool = False
    variants: list[Variant] = field(default_factory=list)  # default first
    default_variant: str | None = None

    @property
    def is_llm(self) -> bool:
        return self.type in LLM_TYPES

    @property
    def params(self) -> dict[str, Any]:
        return {k: v for k, v in self.inputs.items() if not _is_reference(v)}

    @property
    def variant_ids(self) -> list[str]:
        return [v.id for v in self.variants]

    def definition(self, variant_id: str | None) -> dict[str, Any]:
        """The node as it runs with ``variant_id`` chosen: that variant's node, else the default one."""
        variant = next((v for v in self.variants if v.id == variant_id), None)
        if variant is not None:
            return variant.node
        return {"type": self.type, "inputs": self.inputs, "source": {"path": self.source_file}}

    def run_inputs(self, variant_id: str | None, params: dict[str, Any]) -> dict[str, Any]:
        """The inputs the node runs with: the chosen variant's, with a cell's ``NODE.param`` overrides."""
        inputs = dict(self.definition(variant_id).get("inputs") or {})
        prefix = self.name + "."
        for key, value in params.items():
            if key.startswith(prefix):
                inputs[key[len(prefix) :]] = value
        return inputs


@dataclass
class Flow:
    """A flow folder: ``kind`` is ``dag`` or ``flex``."""

    name: str
    path: Path
    kind: str
    inputs: dict[str, dict[str, Any]] = field(default_factory=dict)
    outputs: dict[str, dict[str, Any]] = field(default_factory=dict)
    nodes: list[Node] = field(default_factory=list)
    entry: str | None = None
    problems: list[Problem] = field(default_factory=list)
    warnings: list[Problem] = field(default_factory=list)  # Prompt flow would still run

    @property
    def file(self) -> Path:
        return self.path / (DAG_FILE if self.kind == "dag" else FLEX_FILE)

    @property
    def variants(self) -> dict[str, list[str]]:
        """Node name -> variant ids, default first (only nodes that have variants)."""
        return {n.name: n.variant_ids for n in self.nodes if n.variants}

    def node(self, name: str) -> Node | None:
        return next((n for n in self.nodes if n.name == name), None)

    @property
    def llm_nodes(self) -> list[Node]:
        return [n for n in self.nodes if n.is_llm]

    @property
    def aggregation_nodes(self) -> list[Node]:
        return [n for n in self.nodes if n.aggregation]


def _is_reference(value: Any) -> bool:
    return isinstance(value, str) and value.strip().startswith("${")


def flow_kind(path: Path) -> str | None:
    if (path / DAG_FILE).is_file():
        return "dag"
    if (path / FLEX_FILE).is_file():
        return "flex"
    return None


def _source_file(node: dict[str, Any]) -> str | None:
    source = node.get("source")
    if isinstance(source, dict):
        return source.get("path")
    return node.get("path") if isinstance(node.get("path"), str) else None


def _make_node(raw: dict[str, Any]) -> Node:
    inputs = raw.get("inputs") or {}
    if not isinstance(inputs, dict):
        inputs = {}
    return Node(
        name=str(raw.get("name", "")),
        type=str(raw.get("type", "")),
        source_file=_source_file(raw),
        inputs=dict(inputs),
        connection=raw.get("connection"),
        deployment_name=inputs.get("deployment_name")
        if isinstance(inputs.get("deployment_name"), str)
        else None,
        model=inputs.get("model") if isinstance(inputs.get("model"), str) else None,
        api=raw.get("api"),
        provider=raw.get("provider"),
        aggregation=bool(raw.get("aggregation", False)),
        use_variants=bool(raw.get("use_variants", False)),
    )


def load_flow(path: Path, root: Path | None = None, *, name: str | None = None) -> Flow:
    """Load a flow folder. Raises ConfigError when the folder or its flow file is unusable;
    smaller problems (a missing prompt file, an unknown default variant, and everything
    :mod:`llmops_tui.core.flowcheck` finds) are in ``flow.problems``, warnings in ``flow.warnings``."""
    shown = rel(path, root)
    if not path.is_dir():
        raise ConfigError(
            Problem(shown, "", "flow folder not found", "fix the flow path or create the folder")
        )
    kind = flow_kind(path)
    if kind is None:
        raise ConfigError(Problem(shown, "", f"no {DAG_FILE} or {FLEX_FILE} in the flow folder"))
    data = load_yaml(path / (DAG_FILE if kind == "dag" else FLEX_FILE), root)
    file_shown = rel(path / (DAG_FILE if kind == "dag" else FLEX_FILE), root)
    if not isinstance(data, dict):
        raise ConfigError(Problem(file_shown, "", "the flow file must be a mapping"))
    flow = Flow(name=name or path.name, path=path, kind=kind)
    flow.inputs = {
        k: (v if isinstance(v, dict) else {"type": v}) for k, v in (data.get("inputs") or {}).items()
    }
    flow.outputs = {k: (v if isinstance(v, dict) else {}) for k, v in (data.get("outputs") or {}).items()}
    if kind == "flex":
        flow.entry = data.get("entry")
        return flow

    raw_variants = data.get("node_variants") or {}
    if not isinstance(raw_variants, dict):
        flow.problems.append(
            Problem(file_shown, "node_variants", "must be a mapping of node name to variants")
        )
        raw_variants = {}
    for index, raw in enumerate(data.get("nodes") or []):
        if not isinstance(raw, dict) or "name" not in raw:
            flow.problems.append(Problem(file_shown, f"nodes[{index}]", "a node needs a name"))
            continue
        node = _make_node(raw)
        if node.use_variants:
            spec = raw_variants.get(node.name)
            if not isinstance(spec, dict):
                flow.problems.append(
                    Problem(
                        file_shown,
                        f"nodes[{index}].use_variants",
                        f"node '{node.name}' has no entry in node_variants",
                    )
                )
            else:
                _load_variants(flow, node, spec, file_shown)
        elif node.source_file and not (path / node.source_file).exists():
            flow.problems.append(
                Problem(file_shown, f"nodes.{node.name}.source.path", f"file '{node.source_file}' not found")
            )
        flow.nodes.append(node)
    known = {n.name for n in flow.nodes}
    for node_name in raw_variants:
        if node_name not in known:
            flow.problems.append(
                Problem(
                    file_shown,
                    f"node_variants.{node_name}",
                    "names a node that is not in nodes",
                    "rename or remove it",
                )
            )
    # What would fail every line (references, cycles, tool types, templates, scripts, packages).
    errors, warnings = check_flow_dag(path, data, file_shown, root)
    flow.problems.extend(errors)
    flow.warnings.extend(warnings)
    return flow


def _load_variants(flow: Flow, node: Node, spec: dict[str, Any], file_shown: str) -> None:
    variants = spec.get("variants") or {}
    where = f"node_variants.{node.name}"
    if not isinstance(variants, dict) or not variants:
        flow.problems.append(Problem(file_shown, f"{where}.variants", "no variants defined"))
        return
    default = spec.get("default_variant_id")
    if default not in variants:
        flow.problems.append(
            Problem(
                file_shown,
                f"{where}.default_variant_id",
                f"'{default}' is not one of the variants ({', '.join(map(str, variants))})",
                "set it to an existing variant id",
            )
        )
        default = next(iter(variants))
    ordered = [default] + [v for v in variants if v != default]
    for variant_id in ordered:
        body = variants[variant_id]
        vnode = (body or {}).get("node") if isinstance(body, dict) else None
        if not isinstance(vnode, dict):
            flow.problems.append(
                Problem(file_shown, f"{where}.variants.{variant_id}.node", "missing node definition")
            )
            continue
        prompt = _source_file(vnode)
        if prompt and not (flow.path / prompt).exists():
            flow.problems.append(
                Problem(
                    file_shown,
                    f"{where}.variants.{variant_id}.node.source.path",
                    f"prompt file '{prompt}' not found",
                    "fix the path or add the file",
                )
            )
        node.variants.append(
            Variant(id=str(variant_id), node=vnode, prompt_file=prompt, is_default=variant_id == default)
        )
    node.default_variant = str(default)
    # The node as it runs by default: the default variant's definition.
    base = _make_node({**vnode_or_empty(node), "name": node.name})
    node.type = base.type or node.type
    node.source_file = base.source_file
    node.inputs = base.inputs
    node.connection = base.connection
    node.deployment_name = base.deployment_name
    node.model = base.model
    node.api = base.api
    node.provider = base.provider


def vnode_or_empty(node: Node) -> dict[str, Any]:
    for v in node.variants:
        if v.is_default:
            return v.node
    return node.variants[0].node if node.variants else {}


def model_name(inputs: dict[str, Any]) -> str | None:
    """The deployment or model an LLM node's inputs name (prices are keyed by it), or None."""
    model = inputs.get("deployment_name") or inputs.get("model")
    return str(model) if isinstance(model, str | int | float) and model != "" else None


def template_variables(text: str) -> list[str]:
    """Names used as ``{{ name }}`` in a prompt template, in order of first use."""
    seen: list[str] = []
    for match in _TEMPLATE_VAR.finditer(text):
        if match.group(1) not in seen:
            seen.append(match.group(1))
    return seen
