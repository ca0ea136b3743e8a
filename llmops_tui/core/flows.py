"""Prompt flow flow folders as plain data: inputs, outputs, nodes, LLM nodes and node variants.

Reads ``flow.dag.yaml`` directly (no promptflow import: listing must stay fast). Flex flows
(``flow.flex.yaml``) have no nodes or variants: their entry, inputs and ``init`` parameters are read from
the YAML or, when it does not declare them, from the entry's Python signature (parsed, never imported),
with the values of ``init.json``. A folder with Python modules and no flow file whose modules define
``eval_*`` functions is a code-only evaluator (kind ``code``).
"""

from __future__ import annotations

import ast
import json
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from llmops_tui.core.errors import Problem
from llmops_tui.core.files import ConfigError, load_yaml, rel
from llmops_tui.core.flowcheck import check_flow_dag

DAG_FILE = "flow.dag.yaml"
FLEX_FILE = "flow.flex.yaml"
INIT_FILE = "init.json"
INIT_NODE = "init"  # the pseudo node whose variants are a flex flow's named init sets
DEFAULT_INIT_SET = "default"
CODE_EVAL_PREFIX = "eval"
MODEL_CONFIG_TYPES = ("AzureOpenAIModelConfiguration", "OpenAIModelConfiguration")
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
    # flex flows: init parameters (name -> {"type", "default"}), the values init.json gives them, and
    # the .prompty files of the folder; code evaluators: their ``module:function`` entries
    init: dict[str, dict[str, Any]] = field(default_factory=dict)
    init_values: dict[str, Any] = field(default_factory=dict)
    prompty_files: list[str] = field(default_factory=list)
    functions: list[str] = field(default_factory=list)
    warnings: list[Problem] = field(default_factory=list)  # Prompt flow would still run

    @property
    def file(self) -> Path:
        if self.kind == "code":
            return self.path
        return self.path / (DAG_FILE if self.kind == "dag" else FLEX_FILE)

    @property
    def response_keys(self) -> list[str]:
        """The keys of a served flow's JSON answer. Prompt flow's serving app answers a flex entry's plain
        return value (the output named ``output``) as a bare JSON value, with no keys."""
        if self.kind == "flex" and list(self.outputs) == ["output"]:
            return []
        return list(self.outputs)

    @property
    def is_chat(self) -> bool:
        """A chat flow: an input marked ``is_chat_input`` or named ``chat_history``."""
        return any(
            bool(v.get("is_chat_input")) or k == "chat_history" or bool(v.get("is_chat_history"))
            for k, v in self.inputs.items()
        )

    def model_connections(self) -> list[str | None]:
        """Flex flows: the connection each model configuration of init names (None: no name given)."""
        out: list[str | None] = []
        for name, spec in self.init.items():
            value = self.init_values.get(name, spec.get("default"))
            if str(spec.get("type", "")) in MODEL_CONFIG_TYPES or is_model_config_value(value):
                conn = value.get("connection") if isinstance(value, dict) else None
                out.append(str(conn) if conn else None)
        return out

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
    if path.is_dir() and code_evaluator_functions(path):
        return "code"
    return None


def is_model_config_value(value: Any) -> bool:
    """An init value that is a model configuration written as a mapping (init.json)."""
    return isinstance(value, dict) and any(
        k in value for k in ("azure_deployment", "azure_endpoint", "connection", "model")
    )


def _parse_module(path: Path) -> ast.Module | None:
    try:
        return ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    except (OSError, SyntaxError, ValueError):
        return None


def _literal(node: ast.expr | None) -> Any:
    if node is None:
        return None
    try:
        return ast.literal_eval(node)
    except (ValueError, SyntaxError, TypeError):
        return ast.unparse(node)


def _annotation(node: ast.expr | None) -> str:
    if node is None:
        return ""
    text = ast.unparse(node).strip("'\"")
    return text.rsplit(".", 1)[-1]


def _signature(fn: ast.FunctionDef | ast.AsyncFunctionDef, *, skip_self: bool) -> dict[str, dict[str, Any]]:
    """name -> {"type", "default"?} for a function's parameters (``*args``/``**kwargs`` left out)."""
    args = list(fn.args.posonlyargs) + list(fn.args.args)
    if skip_self and args:
        args = args[1:]
    defaults: list[ast.expr | None] = [None] * (len(args) - len(fn.args.defaults)) + list(fn.args.defaults)
    out: dict[str, dict[str, Any]] = {}
    for arg, default in zip(args, defaults, strict=True):
        spec: dict[str, Any] = {"type": _annotation(arg.annotation) or "object"}
        if default is not None:
            spec["default"] = _literal(default)
        out[arg.arg] = spec
    for arg, kw_default in zip(fn.args.kwonlyargs, fn.args.kw_defaults, strict=True):
        spec = {"type": _annotation(arg.annotation) or "object"}
        if kw_default is not None:
            spec["default"] = _literal(kw_default)
        out[arg.arg] = spec
    return out


def module_file(folder: Path, module: str) -> Path | None:
    """The file of ``module`` (dotted) inside ``folder``: ``a/b.py`` or ``a/b/__init__.py``."""
    base = folder.joinpath(*module.split("."))
    for candidate in (base.with_suffix(".py"), base / "__init__.py"):
        if candidate.is_file():
            return candidate
    return None


SCALAR_TYPES = {"str", "int", "float", "bool", "list", "List"}


def entry_signature(
    folder: Path, entry: str
) -> tuple[dict[str, dict[str, Any]], dict[str, dict[str, Any]], str] | None:
    """(inputs, init, return annotation) of a flex entry ``module:name``, read from the source (never
    imported); None when the module or the name is not found."""
    module, _, name = entry.partition(":")
    path = module_file(folder, module.strip()) if module.strip() else None
    tree = _parse_module(path) if path else None
    if tree is None:
        return None
    for node in tree.body:
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef) and node.name == name.strip():
            return _signature(node, skip_self=False), {}, _annotation(node.returns)
        if isinstance(node, ast.ClassDef) and node.name == name.strip():
            methods = {m.name: m for m in node.body if isinstance(m, ast.FunctionDef | ast.AsyncFunctionDef)}
            call = methods.get("__call__")
            init = methods.get("__init__")
            inputs = _signature(call, skip_self=True) if call else {}
            init_sig = _signature(init, skip_self=True) if init else {}
            return inputs, init_sig, _annotation(call.returns) if call else ""
    return None


def code_evaluator_functions(folder: Path) -> list[str]:
    """``module:function`` for every top-level ``eval*`` function of the folder's Python modules (a
    code-only evaluator folder has no flow file), sorted. Private modules (``_x.py``) and tests are left out."""
    out: list[str] = []
    try:
        files = sorted(p for p in folder.glob("*.py") if p.is_file())
    except OSError:
        return []
    for path in files:
        if path.name.startswith(("_", "test_")):
            continue
        tree = _parse_module(path)
        if tree is None:
            continue
        for node in tree.body:
            if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef) and node.name.startswith(
                CODE_EVAL_PREFIX
            ):
                out.append(f"{path.stem}:{node.name}")
    return out


def _load_code_evaluator(flow: Flow, path: Path) -> Flow:
    flow.functions = code_evaluator_functions(path)
    flow.entry = ", ".join(flow.functions)
    for item in flow.functions:
        found = entry_signature(path, item)
        if found:
            for key, spec in found[0].items():
                flow.inputs.setdefault(key, spec)
    return flow


def _load_flex(flow: Flow, data: dict[str, Any], path: Path, file_shown: str, root: Path | None) -> Flow:
    entry = data.get("entry")
    flow.entry = str(entry) if entry else None
    if not flow.entry or ":" not in flow.entry:
        flow.problems.append(
            Problem(
                file_shown, "entry", "must be module:function or module:Class", "e.g. entry: flow:ChatFlow"
            )
        )
    raw_init = data.get("init") or {}
    flow.init = (
        {k: (v if isinstance(v, dict) else {"type": v}) for k, v in raw_init.items()}
        if isinstance(raw_init, dict)
        else {}
    )
    found = entry_signature(path, flow.entry) if flow.entry and ":" in flow.entry else None
    if found is None and flow.entry and ":" in flow.entry:
        flow.problems.append(
            Problem(
                file_shown,
                "entry",
                f"'{flow.entry}' names no function or class of the flow folder",
                "fix the module or the name",
            )
        )
    if found is not None:
        inputs, init, _ = found
        for key, spec in inputs.items():
            flow.inputs.setdefault(key, spec)
        for key, spec in init.items():
            flow.init.setdefault(key, spec)
    if not flow.outputs and found is not None and found[2].split("[")[0] in SCALAR_TYPES:
        flow.outputs = {"output": {}}  # a plain value is the output named "output", as Prompt flow does
    init_file = path / INIT_FILE
    if init_file.is_file():
        try:
            values = json.loads(init_file.read_text(encoding="utf-8"))
        except (OSError, ValueError) as exc:
            flow.problems.append(Problem(rel(init_file, root), "", f"not valid JSON ({exc})", "fix the file"))
            values = {}
        if isinstance(values, dict):
            flow.init_values = values
            for key in values:
                if flow.init and key not in flow.init:
                    flow.problems.append(
                        Problem(
                            rel(init_file, root),
                            key,
                            f"the entry takes no init parameter '{key}' ({', '.join(flow.init)})",
                            "remove it or rename it",
                        )
                    )
        else:
            flow.problems.append(Problem(rel(init_file, root), "", "must be a JSON object"))
    try:
        flow.prompty_files = sorted(p.name for p in path.glob("*.prompty"))
    except OSError:
        flow.prompty_files = []
    req = path / "requirements.txt"
    if req.is_file():  # packages it needs, named up front as for DAG flows
        from llmops_tui.core.flowcheck import check_requirements

        errors, warnings = check_requirements(req, root)
        flow.problems.extend(errors)
        flow.warnings.extend(warnings)
    return flow


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
        raise ConfigError(
            Problem(
                shown,
                "",
                f"no {DAG_FILE} or {FLEX_FILE} in the flow folder (and no eval* functions)",
                "add a flow file, or Python modules with eval_* functions for a code-only evaluator",
            )
        )
    if kind == "code":
        return _load_code_evaluator(Flow(name=name or path.name, path=path, kind=kind), path)
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
        return _load_flex(flow, data, path, file_shown, root)

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


def init_set_overrides(values: dict[str, Any]) -> dict[str, Any]:
    """A named init set as ``init.X`` overrides; a model configuration's fields one by one
    (``init.model_config.azure_deployment``), so a set changes only what it names."""
    out: dict[str, Any] = {}
    for key, value in values.items():
        if isinstance(value, dict) and value:
            for sub, sub_value in value.items():
                out[f"init.{key}.{sub}"] = sub_value
        else:
            out[f"init.{key}"] = value
    return out


def add_init_sets(flow: Flow, sets: dict[str, dict[str, Any]], source: str) -> None:
    """Give a flex flow the pseudo node ``init`` whose variants are ``default`` (init.json as it is) and
    each named set of ``llmops.yaml`` ``init_sets``; unknown init parameters are problems of ``source``."""
    if flow.kind != "flex" or not sets:
        return
    node = Node(name=INIT_NODE, type="init", source_file=INIT_FILE, inputs=dict(flow.init_values))
    node.variants.append(
        Variant(id=DEFAULT_INIT_SET, node={"inputs": dict(flow.init_values)}, is_default=True)
    )
    for name, values in sets.items():
        unknown = [k for k in values if flow.init and k not in flow.init]
        if unknown or name == DEFAULT_INIT_SET:
            flow.problems.append(
                Problem(
                    source,
                    f"init_sets.{name}",
                    f"'{unknown[0]}' is not an init parameter of {flow.entry}"
                    if unknown
                    else "'default' is the name of init.json as it is",
                    f"init parameters: {', '.join(flow.init) or 'none'}" if unknown else "rename the set",
                )
            )
            continue
        node.variants.append(Variant(id=str(name), node={"inputs": dict(values)}))
    node.default_variant = DEFAULT_INIT_SET
    node.use_variants = True
    flow.nodes.append(node)
