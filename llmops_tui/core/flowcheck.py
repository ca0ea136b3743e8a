"""Plan-time checks: what would make every line of a flow fail, found without importing promptflow.

Listing must stay fast, so this module reads the flow's own files with plain tools: the DAG as YAML,
prompt templates with ``jinja2.Environment().parse``, Python tool files with ``ast``, and installed
packages with ``importlib.metadata`` / ``importlib.util.find_spec`` (neither imports the package).

The rules follow what Prompt flow 1.18.5's executor refuses (``FlowValidator``, ``ToolResolver``,
``collect_tool_function_in_module``): a reference to a node, flow input or output that does not exist, a
node cycle, a tool type the Python executor cannot run, a template or script that does not parse, a script
without exactly one ``@tool``, a module a script imports that is not installed. Where Prompt flow would
still run (an output that references an aggregation node is dropped, a requirements line we cannot read),
the finding is a warning, not an error.

Errors go to ``Flow.problems`` (the use case shows them in ``llmops list`` / ``show`` and sweeps refuse
to start); warnings go to ``Flow.warnings``.
"""

from __future__ import annotations

import ast
import difflib
import importlib.metadata
import importlib.util
import math
import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from llmops_tui.core.errors import LlmopsError, Problem
from llmops_tui.core.files import rel
from llmops_tui.core.mappings import mapping_ref

# The node types Prompt flow's Python executor resolves (``ToolResolver.resolve_tool_by_node``).
TOOL_TYPES = ("llm", "python", "prompt", "custom_llm")
# Types Prompt flow's contract knows but this (Python, in-process) executor cannot run.
OTHER_EXECUTOR_TYPES = {"csharp", "action"}
SOURCE_TYPES = {"code", "package", "package_with_prompt"}

# Parameters of Prompt flow's built-in LLM tool (AzureOpenAI/OpenAI chat and completion) -> value type.
LLM_PARAMS: dict[str, str] = {
    "connection": "str",
    "deployment_name": "str",
    "model": "str",
    "temperature": "float",
    "top_p": "float",
    "n": "int",
    "stream": "bool",
    "stop": "any",
    "max_tokens": "int",
    "presence_penalty": "float",
    "frequency_penalty": "float",
    "logit_bias": "any",
    "user": "str",
    "function_call": "any",
    "functions": "any",
    "tool_choice": "any",
    "tools": "any",
    "response_format": "any",
    "seed": "int",
    "suffix": "str",
    "logprobs": "int",
    "echo": "bool",
    "best_of": "int",
}
# Ranges the OpenAI-compatible APIs accept: a value outside fails every request with a 400.
LLM_RANGES: dict[str, tuple[float | None, float | None]] = {
    "temperature": (0.0, 2.0),
    "top_p": (0.0, 1.0),
    "max_tokens": (1, None),
    "n": (1, None),
    "best_of": (1, None),
    "logprobs": (0, None),
    "presence_penalty": (-2.0, 2.0),
    "frequency_penalty": (-2.0, 2.0),
}
NOT_INSTALLED = "is not installed in this environment"
_SIMPLE_TYPES = {"int": "int", "float": "float", "bool": "bool", "str": "str"}
_REQ_NAME = re.compile(r"^\s*([A-Za-z0-9][A-Za-z0-9._-]*)\s*(\[[^\]]*\])?\s*(.*)$")


def is_environment_problem(problem: Problem) -> bool:
    """A package missing from *this* Python environment: it stops local runs, not a cloud sweep (Azure ML
    builds its own environment from the flow's requirements.txt)."""
    return NOT_INSTALLED in problem.message


# ------------------------------------------------------------------------------------ references


@dataclass(frozen=True)
class Ref:
    """A ``${...}`` reference as Prompt flow reads it: a flow input, or a node with a section."""

    kind: str  # input | node | unclosed
    name: str = ""
    section: str = ""


def parse_ref(value: Any) -> Ref | None:
    """Prompt flow's ``InputAssignment.deserialize``: a string ``${...}`` is a reference, else a literal.

    ``${inputs.x`` without its closing brace is a literal to Prompt flow, which would then send the text
    ``${inputs.x`` to the model on every line: reported as ``unclosed``."""
    if not isinstance(value, str):
        return None
    if value.lstrip().startswith("${") and "}" not in value:
        return Ref("unclosed")
    if not (value.startswith("${") and value.endswith("}") and len(value) > 2):
        return None
    inner = value[2:-1]
    for prefix in ("flow.", "inputs."):
        if inner.startswith(prefix):
            return Ref("input", inner[len(prefix) :])
    node, _, rest = inner.partition(".")
    return Ref("node", node, rest.partition(".")[0] if rest else "output")


def unclosed_mapping(value: Any) -> bool:
    """A dataset mapping or node input that opens ``${`` and never closes it."""
    return isinstance(value, str) and value.strip().startswith("${") and "}" not in value


def check_mapping_value(value: Any) -> tuple[str, str] | None:
    """(message, hint) when a dataset mapping cannot work: an unclosed ``${`` (the engine would pass the
    text itself on every line) or a ``${...}`` whose source is not data, run.outputs or run.inputs."""
    if not isinstance(value, str):
        return None
    text = value.strip()
    if unclosed_mapping(text):
        return f"'{text}' opens '${{' but never closes it", "write ${data.COLUMN} with the closing '}'"
    if text.startswith("${") and text.endswith("}"):
        if mapping_ref(text) is None:
            return (
                f"'{text}' reads from no known source",
                "use ${data.COLUMN}, ${run.outputs.NAME} or ${run.inputs.NAME}",
            )
    return None


def did_you_mean(word: str, choices: list[str] | set[str]) -> str:
    """``did you mean 'x'?`` for the closest choice, or an empty string."""
    match = difflib.get_close_matches(word, sorted(choices), n=1, cutoff=0.6)
    return f"did you mean '{match[0]}'?" if match else ""


def _choices_hint(word: str, choices: list[str] | set[str], what: str) -> str:
    close = did_you_mean(word, choices)
    known = ", ".join(sorted(choices)) or "none"
    return f"{close} {what}: {known}" if close else f"{what}: {known}"


# -------------------------------------------------------------------------------- node definitions


@dataclass
class NodeDef:
    """One definition a node can run with: the node itself, or one of its variants."""

    name: str
    where: str  # field path in flow.dag.yaml
    body: dict[str, Any]
    variant: str | None = None

    @property
    def type(self) -> Any:
        return self.body.get("type")

    @property
    def aggregation(self) -> bool:
        return bool(self.body.get("aggregation") or self.body.get("reduce"))

    @property
    def label(self) -> str:
        return f"node '{self.name}'" + (f" (variant {self.variant})" if self.variant else "")

    @property
    def source(self) -> dict[str, Any]:
        src = self.body.get("source")
        return src if isinstance(src, dict) else {}

    @property
    def source_path(self) -> str | None:
        path = self.source.get("path")
        return str(path) if isinstance(path, str) and path else None


def node_definitions(data: dict[str, Any]) -> list[NodeDef]:
    """Every node as it can run: a node with ``use_variants`` stands for each of its variants' nodes
    (as the materialised flow runs them)."""
    raw_variants = data.get("node_variants") if isinstance(data.get("node_variants"), dict) else {}
    out: list[NodeDef] = []
    for raw in data.get("nodes") or []:
        if not isinstance(raw, dict) or "name" not in raw:
            continue
        name = str(raw["name"])
        if raw.get("use_variants"):
            spec = (raw_variants or {}).get(name)
            variants = spec.get("variants") if isinstance(spec, dict) else None
            for vid, vbody in (variants or {}).items() if isinstance(variants, dict) else []:
                vnode = vbody.get("node") if isinstance(vbody, dict) else None
                if isinstance(vnode, dict):
                    out.append(NodeDef(name, f"node_variants.{name}.variants.{vid}.node", vnode, str(vid)))
        else:
            out.append(NodeDef(name, f"nodes.{name}", raw))
    return out


# ------------------------------------------------------------------------------- file inspections


@dataclass
class ToolScript:
    """What ``ast`` tells about a Python tool file."""

    error: Problem | None = None
    params: set[str] | None = field(default_factory=set)  # None: takes **kwargs (any name)
    types: dict[str, str] = field(default_factory=dict)
    missing_modules: list[tuple[str, int]] = field(default_factory=list)
    warning: Problem | None = None


def _is_tool_decorator(deco: ast.expr, names: set[str]) -> bool:
    if isinstance(deco, ast.Call):
        deco = deco.func
    if isinstance(deco, ast.Name):
        return deco.id in names
    return isinstance(deco, ast.Attribute) and deco.attr == "tool"


def _module_findable(module: str, local_dirs: list[Path], local_names: set[str] | None = None) -> bool:
    if module in (local_names or set()):
        return True
    for d in local_dirs:
        if (d / f"{module}.py").is_file() or (d / module).is_dir():
            return True
    try:
        return importlib.util.find_spec(module) is not None
    except (ImportError, ValueError):  # a broken or odd package: not ours to judge here
        return True


def inspect_tool_script(
    path: Path, shown: str, label: str, local_dirs: list[Path], local_names: set[str] | None = None
) -> ToolScript:
    """Parse a Python tool file: syntax, exactly one ``@tool``, its parameters, unguarded imports of
    modules that are not installed."""
    info = ToolScript()
    try:
        text = path.read_text(encoding="utf-8-sig")
        tree = ast.parse(text, filename=str(path))
    except SyntaxError as exc:
        info.error = Problem(
            shown,
            f"line {exc.lineno}",
            f"Python syntax error in the tool of {label}: {exc.msg}",
            "fix the script",
        )
        return info
    except (OSError, UnicodeDecodeError, ValueError) as exc:
        info.error = Problem(shown, "", f"cannot read the tool of {label}: {exc}", "save it as UTF-8 text")
        return info
    names = {"tool"}
    for stmt in ast.walk(tree):
        if isinstance(stmt, ast.ImportFrom):
            names |= {a.asname or a.name for a in stmt.names if a.name == "tool"}
    tools: list[ast.FunctionDef | ast.AsyncFunctionDef] = []
    for stmt in tree.body:
        if isinstance(stmt, ast.FunctionDef | ast.AsyncFunctionDef):
            if any(_is_tool_decorator(d, names) for d in stmt.decorator_list):
                tools.append(stmt)
        elif isinstance(stmt, ast.ClassDef):
            for item in stmt.body:
                if isinstance(item, ast.FunctionDef | ast.AsyncFunctionDef) and any(
                    _is_tool_decorator(d, names) for d in item.decorator_list
                ):
                    tools.append(item)
    unique = {t.name: t for t in tools}
    if not unique:
        nested = [
            n
            for n in ast.walk(tree)
            if isinstance(n, ast.FunctionDef | ast.AsyncFunctionDef)
            and any(_is_tool_decorator(d, names) for d in n.decorator_list)
        ]
        if nested:  # defined conditionally: Prompt flow may still find it at run time
            info.warning = Problem(
                shown, "", f"the @tool function of {label} is not defined at the top level of the script"
            )
            info.params = None
        else:
            info.error = Problem(
                shown,
                "",
                f"no function decorated with @tool in the script of {label}",
                "add 'from promptflow.core import tool' and decorate the node's function with @tool",
            )
    elif len(unique) > 1:
        info.error = Problem(
            shown,
            "",
            f"{len(unique)} functions decorated with @tool ({', '.join(unique)}) in the script of {label}",
            "Prompt flow needs exactly one @tool per script: split them into files",
        )
    else:
        func = next(iter(unique.values()))
        args = func.args
        params = [a for a in args.posonlyargs + args.args + args.kwonlyargs if a.arg not in {"self", "cls"}]
        info.params = None if args.kwarg is not None else {a.arg for a in params}
        for a in params:
            ann = a.annotation
            if isinstance(ann, ast.Name) and ann.id in _SIMPLE_TYPES:
                info.types[a.arg] = _SIMPLE_TYPES[ann.id]
    # Unguarded module-level imports fail when Prompt flow loads the script, on every line.
    for stmt in tree.body:
        modules: list[str] = []
        if isinstance(stmt, ast.Import):
            modules = [a.name.split(".")[0] for a in stmt.names]
        elif isinstance(stmt, ast.ImportFrom) and stmt.level == 0 and stmt.module:
            modules = [stmt.module.split(".")[0]]
        for module in modules:
            if module != "__future__" and not _module_findable(module, local_dirs, local_names):
                info.missing_modules.append((module, stmt.lineno))
    return info


def template_variables(path: Path) -> tuple[set[str] | None, Problem | None]:
    """The undeclared variables of a Jinja template, or the syntax error (file and line)."""
    import jinja2
    import jinja2.meta

    try:
        text = path.read_text(encoding="utf-8-sig")
    except (OSError, UnicodeDecodeError) as exc:
        return None, Problem(str(path), "", f"cannot read the template: {exc}", "save it as UTF-8 text")
    try:
        parsed = jinja2.Environment().parse(text)
    except jinja2.TemplateSyntaxError as exc:
        return None, Problem(str(path), f"line {exc.lineno}", str(exc.message))
    return set(jinja2.meta.find_undeclared_variables(parsed)), None


def include_names(data: dict[str, Any]) -> set[str]:
    """Module names that ``additional_includes`` bring into the flow folder when it runs."""
    out: set[str] = set()
    for inc in (
        data.get("additional_includes") or [] if isinstance(data.get("additional_includes"), list) else []
    ):
        if isinstance(inc, str) and inc.strip():
            name = Path(inc.strip().rstrip("/\\")).name
            out.add(name[:-3] if name.endswith(".py") else name)
    return out


# ----------------------------------------------------------------------------------- requirements


def _install_hint(req: Path) -> str:
    try:
        shown = os.path.relpath(req)
        if shown.startswith(".."):
            shown = str(req)
    except ValueError:
        shown = str(req)
    return f"pip install -r {shown}"


def _installed(name: str) -> bool:
    try:
        importlib.metadata.distribution(name)
        return True
    except importlib.metadata.PackageNotFoundError:
        pass
    except Exception:  # unreadable metadata: not ours to judge
        return True
    # No distribution of that name: it may still be importable under it (a vendored or dev install).
    module = name.replace("-", "_").replace(".", "_")
    for candidate in (name, module, module.lower()):
        try:
            if importlib.util.find_spec(candidate) is not None:
                return True
        except (ImportError, ValueError):
            continue
    return False


def check_requirements(req: Path, root: Path | None) -> tuple[list[Problem], list[Problem]]:
    """Packages named in a flow's requirements file that are not installed (errors), and lines that
    cannot be checked (warnings)."""
    errors: list[Problem] = []
    warnings: list[Problem] = []
    shown = rel(req, root)
    try:
        lines = req.read_text(encoding="utf-8-sig").splitlines()
    except (OSError, UnicodeDecodeError) as exc:
        return [], [Problem(shown, "", f"cannot read the requirements file: {exc}")]
    for number, raw in enumerate(lines, 1):
        line = raw.split(" #", 1)[0].strip() if not raw.lstrip().startswith("#") else ""
        if not line:
            continue
        if line.startswith("-") or "://" in line.split("@", 1)[0] or line.startswith((".", "/")):
            warnings.append(
                Problem(shown, f"line {number}", f"'{line}' is not checked (only package names are)")
            )
            continue
        match = _REQ_NAME.match(line)
        if not match:
            warnings.append(Problem(shown, f"line {number}", f"cannot read '{line}' as a package name"))
            continue
        name, rest = match.group(1), match.group(3)
        if ";" in rest:
            marker = rest.split(";", 1)[1].strip()
            try:
                from packaging.markers import Marker

                if not Marker(marker).evaluate():
                    continue  # not meant for this interpreter
            except Exception:
                warnings.append(
                    Problem(shown, f"line {number}", f"cannot evaluate the marker '{marker}'; not checked")
                )
                continue
        if not _installed(name):
            errors.append(
                Problem(
                    shown,
                    f"line {number}",
                    f"flow package '{name}' {NOT_INSTALLED}",
                    _install_hint(req),
                )
            )
    return errors, warnings


# ------------------------------------------------------------------------------------- the checks


class _Report:
    def __init__(self, file_shown: str):
        self.file_shown = file_shown
        self.errors: list[Problem] = []
        self.warnings: list[Problem] = []
        self._seen: set[str] = set()

    def error(self, field_name: str, message: str, hint: str = "", file: str | None = None) -> None:
        problem = Problem(file or self.file_shown, field_name, message, hint)
        if str(problem) not in self._seen:
            self._seen.add(str(problem))
            self.errors.append(problem)

    def warn(self, field_name: str, message: str, hint: str = "", file: str | None = None) -> None:
        self.warnings.append(Problem(file or self.file_shown, field_name, message, hint))


def check_flow_dag(
    flow_path: Path, data: dict[str, Any], file_shown: str, root: Path | None
) -> tuple[list[Problem], list[Problem]]:
    """Everything in a DAG flow that would fail every line. Returns (errors, warnings)."""
    report = _Report(file_shown)
    inputs = data.get("inputs") if isinstance(data.get("inputs"), dict) else {}
    input_names = {str(k) for k in inputs or {}}
    defs = node_definitions(data)
    includes = include_names(data)
    names: list[str] = []
    for raw in data.get("nodes") or []:
        if isinstance(raw, dict) and "name" in raw:
            if str(raw["name"]) in names:
                report.error(
                    f"nodes.{raw['name']}",
                    f"node name '{raw['name']}' appears more than once",
                    "give every node a unique name",
                )
            names.append(str(raw["name"]))
    known = set(names)
    aggregation = {d.name for d in defs if d.aggregation}
    deps: dict[str, set[str]] = {n: set() for n in names}

    def check_ref(d: NodeDef, field_name: str, value: Any) -> None:
        ref = parse_ref(value)
        if ref is None:
            return
        if ref.kind == "unclosed":
            report.error(field_name, f"'{value}' opens '${{' but never closes it", "write ${...} with '}'")
        elif ref.kind == "input":
            if ref.name not in input_names:
                report.error(
                    field_name,
                    f"{d.label} references flow input '{ref.name}', which the flow does not declare",
                    _choices_hint(ref.name, input_names, "flow inputs"),
                )
        elif ref.name not in known:
            report.error(
                field_name,
                f"{d.label} references node '{ref.name}', which is not in the flow",
                _choices_hint(ref.name, known, "nodes"),
            )
        elif ref.section != "output":
            report.error(
                field_name,
                f"{d.label} references '{ref.section}' of node '{ref.name}'; only its output can be referenced",
                f"use ${{{ref.name}.output}}",
            )
        else:
            deps[d.name].add(ref.name)
            if ref.name in aggregation and not d.aggregation:
                report.error(
                    field_name,
                    f"{d.label} references aggregation node '{ref.name}'; only aggregation nodes can",
                    "reference it from an aggregation node or make this one an aggregation node",
                )

    for d in defs:
        node_inputs = d.body.get("inputs") or {}
        if not isinstance(node_inputs, dict):
            report.error(f"{d.where}.inputs", f"{d.label}: inputs must be a mapping of name to value")
            node_inputs = {}
        for key, value in node_inputs.items():
            check_ref(d, f"{d.where}.inputs.{key}", value)
        if "activate" in d.body:
            activate = d.body["activate"]
            if not isinstance(activate, dict) or "when" not in activate or "is" not in activate:
                report.error(f"{d.where}.activate", f"{d.label}: activate needs both 'when' and 'is'")
            else:
                check_ref(d, f"{d.where}.activate.when", activate["when"])
        _check_tool(d, flow_path, root, report, includes)

    outputs = data.get("outputs") if isinstance(data.get("outputs"), dict) else {}
    for key, spec in (outputs or {}).items():
        where = f"outputs.{key}.reference"
        value = spec.get("reference", "") if isinstance(spec, dict) else ""
        ref = parse_ref(value)
        if value in ("", None):
            report.error(where, f"flow output '{key}' has no reference", "set reference: ${NODE.output}")
        elif ref is None:
            continue  # a literal output value
        elif ref.kind == "unclosed":
            report.error(where, f"'{value}' opens '${{' but never closes it", "write ${...} with '}'")
        elif ref.kind == "input" and ref.name not in input_names:
            report.error(
                where,
                f"flow output '{key}' references flow input '{ref.name}', which the flow does not declare",
                _choices_hint(ref.name, input_names, "flow inputs"),
            )
        elif ref.kind == "node" and ref.name not in known:
            report.error(
                where,
                f"flow output '{key}' references node '{ref.name}', which is not in the flow",
                _choices_hint(ref.name, known, "nodes"),
            )
        elif ref.kind == "node" and ref.section != "output":
            report.error(
                where,
                f"flow output '{key}' references '{ref.section}' of node '{ref.name}'",
                f"use ${{{ref.name}.output}}",
            )
        elif ref.kind == "node" and ref.name in aggregation:
            report.warn(
                where,
                f"flow output '{key}' references aggregation node '{ref.name}'; Prompt flow drops it",
            )

    cycle = _cycle(names, deps)
    if cycle:
        report.error(
            "nodes",
            f"nodes {', '.join(cycle)} reference each other in a cycle",
            "remove one of the references so the nodes can run in order",
        )
    _check_flow_requirements(flow_path, data, root, report)
    return report.errors, report.warnings


def _cycle(names: list[str], deps: dict[str, set[str]]) -> list[str]:
    """Nodes left over by a topological sort (Prompt flow's ``_ensure_nodes_order``), sorted."""
    picked: set[str] = set()
    progress = True
    while progress:
        progress = False
        for n in names:
            if n not in picked and deps.get(n, set()) <= picked:
                picked.add(n)
                progress = True
    return sorted(set(names) - picked)


def _check_tool(d: NodeDef, flow_path: Path, root: Path | None, report: _Report, includes: set[str]) -> None:
    node_type = d.type
    if node_type is None:
        report.error(
            f"{d.where}.type", f"{d.label} has no type", f"set type to one of: {', '.join(TOOL_TYPES)}"
        )
        return
    if node_type in OTHER_EXECUTOR_TYPES:
        report.error(
            f"{d.where}.type",
            f"{d.label} has type '{node_type}', which the Python executor cannot run",
            f"use one of: {', '.join(TOOL_TYPES)}",
        )
        return
    if node_type not in TOOL_TYPES:
        close = did_you_mean(str(node_type), list(TOOL_TYPES))
        report.error(
            f"{d.where}.type",
            f"{d.label} has unknown tool type '{node_type}'",
            (close + " " if close else "") + f"types: {', '.join(TOOL_TYPES)}; a package tool is "
            "type python with source.type package and source.tool",
        )
        return
    if "source" not in d.body or not isinstance(d.body.get("source"), dict):
        report.error(f"{d.where}.source", f"{d.label} has no source", "set source.type and source.path")
        return
    source_type = str(d.source.get("type", "code"))
    if source_type not in SOURCE_TYPES:
        report.error(
            f"{d.where}.source.type",
            f"{d.label} has unknown source type '{source_type}'",
            f"use one of: {', '.join(sorted(SOURCE_TYPES))}",
        )
        return
    if node_type == "llm" and not d.body.get("api"):
        report.error(f"{d.where}.api", f"LLM {d.label} names no api", "set api: chat (or completion)")
    if node_type == "python" and source_type == "package_with_prompt":
        report.error(
            f"{d.where}.source.type",
            f"python {d.label} cannot use source.type package_with_prompt",
            "use source.type code (a script) or package (a package tool)",
        )
        return
    if source_type in {"package", "package_with_prompt"}:
        _check_package_tool(d, report)
        if node_type == "python":
            return
    if node_type == "custom_llm" and source_type != "package_with_prompt":
        report.error(
            f"{d.where}.source.type",
            f"custom_llm {d.label} needs source.type package_with_prompt",
            "set source.type: package_with_prompt, source.tool and source.path",
        )
        return
    path = d.source_path
    if path is None:
        report.error(f"{d.where}.source.path", f"{d.label} names no source file", "set source.path")
        return
    file = flow_path / path
    if not file.is_file():
        return  # reported where the flow is loaded ("file ... not found")
    shown = rel(file, root)
    if node_type == "python":
        info = inspect_tool_script(file, shown, d.label, [flow_path, file.parent], includes)
        if info.error:
            report.error(info.error.field, info.error.message, info.error.hint, file=info.error.file)
        if info.warning:
            report.warnings.append(info.warning)
        for module, lineno in info.missing_modules:
            report.error(
                f"line {lineno}",
                f"{d.label} imports '{module}', which {NOT_INSTALLED} (No module named '{module}')",
                "install it and list it in the flow's requirements.txt",
                file=shown,
            )
    else:
        _, problem = template_variables(file)
        if problem:
            report.error(
                problem.field,
                f"Jinja syntax error in the prompt of {d.label}: {problem.message}",
                "fix the template",
                file=shown,
            )


def _check_package_tool(d: NodeDef, report: _Report) -> None:
    tool = d.source.get("tool")
    if not isinstance(tool, str) or not tool:
        report.error(
            f"{d.where}.source.tool",
            f"{d.label} uses a package tool but names no source.tool",
            "set source.tool to the tool's id, e.g. my_package.tools.my_tool.my_tool",
        )
        return
    top = tool.split(".")[0]
    if not _module_findable(top, []):
        report.error(
            f"{d.where}.source.tool",
            f"{d.label} uses tool '{tool}' from package '{top}', which {NOT_INSTALLED}",
            "install the package that provides the tool (list it in the flow's requirements.txt)",
        )


def requirements_file(flow_path: Path) -> Path | None:
    """The requirements file a flow folder declares (``environment.python_requirements_txt``) or keeps as
    ``requirements.txt``; None when it has none."""
    declared = None
    for name in ("flow.dag.yaml", "flow.flex.yaml"):
        spec = flow_path / name
        if spec.is_file():
            try:
                data = yaml.safe_load(spec.read_text(encoding="utf-8")) or {}
            except (OSError, yaml.YAMLError):
                data = {}
            env = data.get("environment") if isinstance(data, dict) else None
            declared = env.get("python_requirements_txt") if isinstance(env, dict) else None
            break
    req = flow_path / str(declared) if declared else flow_path / "requirements.txt"
    return req if req.is_file() else None


def requirement_status(req: Path) -> list[tuple[str, bool]]:
    """(package, installed) for every package name a requirements file lists and this interpreter uses
    (lines that are not plain names, and markers for other interpreters, are left out)."""
    out: list[tuple[str, bool]] = []
    try:
        lines = req.read_text(encoding="utf-8-sig").splitlines()
    except (OSError, UnicodeDecodeError):
        return out
    for raw in lines:
        line = raw.split(" #", 1)[0].strip() if not raw.lstrip().startswith("#") else ""
        if not line or line.startswith("-") or "://" in line.split("@", 1)[0] or line.startswith((".", "/")):
            continue
        match = _REQ_NAME.match(line)
        if not match:
            continue
        rest = match.group(3)
        if ";" in rest:
            try:
                from packaging.markers import Marker

                if not Marker(rest.split(";", 1)[1].strip()).evaluate():
                    continue
            except Exception:
                continue
        out.append((match.group(1), _installed(match.group(1))))
    return out


def _check_flow_requirements(
    flow_path: Path, data: dict[str, Any], root: Path | None, report: _Report
) -> None:
    env = data.get("environment") if isinstance(data.get("environment"), dict) else {}
    declared = (env or {}).get("python_requirements_txt")
    req = flow_path / str(declared) if declared else flow_path / "requirements.txt"
    if not req.is_file():
        if declared:
            report.warn(
                "environment.python_requirements_txt",
                f"requirements file '{declared}' not found",
                "fix the path or add the file (deployments install from it)",
            )
        return
    errors, warnings = check_requirements(req, root)
    report.errors.extend(errors)
    report.warnings.extend(warnings)


# ---------------------------------------------------------------------------------- sweep grids


def _node_params(flow_path: Path, defs: list[NodeDef]) -> tuple[set[str] | None, dict[str, str]]:
    """The parameter names a node takes over all its variants (None: any name), and their types."""
    names: set[str] = set()
    types: dict[str, str] = {}
    anything = False
    for d in defs:
        inputs = d.body.get("inputs") if isinstance(d.body.get("inputs"), dict) else {}
        names |= {str(k) for k in inputs or {}}
        file = flow_path / d.source_path if d.source_path else None
        source_type = str(d.source.get("type", "code"))
        if d.type == "llm":
            names |= set(LLM_PARAMS)
            types.update({k: v for k, v in LLM_PARAMS.items() if v != "any"})
        if d.type in {"llm", "prompt", "custom_llm"} and file is not None and file.is_file():
            variables, _ = template_variables(file)
            names |= variables or set()
        if d.type == "python" and source_type == "code" and file is not None and file.is_file():
            info = inspect_tool_script(file, str(file), d.label, [flow_path, file.parent])
            if info.error is None and info.params is None:
                anything = True
            elif info.params is not None:
                names |= info.params
                for k, v in info.types.items():
                    types.setdefault(k, v)
        if source_type in {"package", "package_with_prompt"} or d.type not in TOOL_TYPES:
            anything = True  # a package tool's parameters are not known without importing it
    return (None if anything else names), types


def _bad_value(param: str, kind: str, value: Any, llm: bool) -> str:
    """Why ``value`` cannot be ``param`` (a ``kind``), or an empty string."""
    if value is None:
        return ""
    if kind == "float":
        if isinstance(value, bool) or not isinstance(value, int | float | str):
            return "is not a number"
        try:
            number = float(value)
        except ValueError:
            return "is not a number"
        if not math.isfinite(number):
            return "is not a finite number"
    elif kind == "int":
        if isinstance(value, bool) or not isinstance(value, int | float | str):
            return "is not a whole number"
        try:
            number = float(value)
        except ValueError:
            return "is not a whole number"
        if not math.isfinite(number) or not number.is_integer():
            return "is not a whole number"
    elif kind == "bool":
        if not (isinstance(value, bool) or (isinstance(value, str) and value.lower() in {"true", "false"})):
            return "is not true or false"
        return ""
    elif kind == "str":
        return "is not a single value" if isinstance(value, list | dict) else ""
    else:
        return ""
    low, high = LLM_RANGES.get(param, (None, None)) if llm else (None, None)
    if (low is not None and number < low) or (high is not None and number > high):
        upper = f" and {high:g}" if high is not None else ""
        where = f"between {low:g}{upper}" if high is not None else f"at least {low:g}"
        return f"is out of range (must be {where})"
    return ""


def check_grid(
    flow_path: Path, data: dict[str, Any], grid: dict[str, list[Any]], source: str, field_name: str
) -> None:
    """Refuse grid keys a node does not take (``classify_llm.temprature`` would make identical cells)
    and values of the wrong type (``temperature=hot``). Raises LlmopsError."""
    defs = node_definitions(data)
    by_node: dict[str, list[NodeDef]] = {}
    for d in defs:
        by_node.setdefault(d.name, []).append(d)
    for key, values in grid.items():
        node_name, _, param = key.partition(".")
        node_defs = by_node.get(node_name, [])
        if not node_defs:
            continue  # plan_sweep names unknown nodes itself
        accepted, types = _node_params(flow_path, node_defs)
        if accepted is not None and param not in accepted:
            close = difflib.get_close_matches(param, sorted(accepted), n=1, cutoff=0.6)
            hint = f"did you mean {node_name}.{close[0]}?" if close else ""
            listed = ", ".join(sorted(accepted))
            raise LlmopsError(
                f"node '{node_name}' takes no parameter '{param}': every cell would be the same",
                file=source,
                field=f"{field_name} {key}".strip(),
                hint=(hint + " " if hint else "") + f"parameters of {node_name}: {listed}",
            )
        kind = types.get(param)
        if not kind:
            continue
        is_llm = any(d.type == "llm" for d in node_defs)
        for value in values if isinstance(values, list) else []:
            why = _bad_value(param, kind, value, is_llm)
            if why:
                raise LlmopsError(
                    f"value {value!r} for parameter '{param}' of node '{node_name}' {why}",
                    file=source,
                    field=f"{field_name} {key}".strip(),
                    hint=f"give {key} {_expected(param, kind, is_llm)}",
                )


def _expected(param: str, kind: str, llm: bool) -> str:
    low, high = LLM_RANGES.get(param, (None, None)) if llm else (None, None)
    noun = {"float": "numbers", "int": "whole numbers", "bool": "true or false", "str": "text"}.get(
        kind, kind
    )
    if low is not None and high is not None:
        return f"{noun} between {low:g} and {high:g}"
    if low is not None:
        return f"{noun} of at least {low:g}"
    return noun
