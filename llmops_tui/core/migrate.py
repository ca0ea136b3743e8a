"""``llmops migrate UC --to agent-framework``: a use case's DAG flows as Agent Framework code people keep.

For each DAG flow of the use case (the standard flow and each evaluator) it writes one folder holding:

- ``flow.py``: readable Python: the chosen variants, one function per node, the executors, a workflow
  factory (``build_workflow``: one edge per ``${node.output}`` reference, fan-in where a node waits for
  several), ``run(inputs)`` for one line and ``run_batch(rows)`` for lines plus the aggregation metrics;
- the flow's own Python modules and templates, with ``from promptflow... import tool, log_metric``
  pointed at the stand-ins in ``pf_semantics.py``;
- ``pf_semantics.py``: the same module the llmops-tui backend runs (Prompt flow's rendering, role
  parsing, request building, activate and bypass rules), copied verbatim;
- ``requirements.txt``, a ``README.md`` and, for the standard flow, the use case's ``sample-request.json``.

Beside the flow folders, ``llmops-migration.json`` (:data:`MANIFEST_FILE`) records where the code came
from: the use case, each flow's source folder, the variants and parameter overrides migrated, the source
files' sha256 and, for the standard flow, the hash an approval binds (``core.approval.approved_flow_hash``
of the source with those variants), and the sha256 of every file written. ``llmops deploy-migrated
--require-approval`` checks the approval and the written files against it (llmops_tui.deploy.migrated).
No secret is in it: connections are names.

:func:`verify_migration` then runs what was written as its user would (``python -I``, llmops_tui and
promptflow unimportable) on the first lines of the dataset and compares every flow, line by line and
metric by metric, with Prompt flow on the same lines (:func:`llmops_tui.core.equivalence.compare_cell`).

The result runs without llmops-tui and without Prompt flow. What does not map (flex flows, custom tool
packages, image inputs, Prompt flow APIs other than ``tool`` and ``log_metric``) is listed by
:func:`plan_migration` with its file and node, and never silently dropped: ``write_migration`` refuses a
flow that has any.
"""

from __future__ import annotations

import json
import re
import shutil
import textwrap
from dataclasses import dataclass, field
from pathlib import Path
from pprint import pformat
from typing import Any

from llmops_tui.core.errors import LlmopsError
from llmops_tui.core.files import load_yaml, rel, walk_files
from llmops_tui.core.flows import flow_kind
from llmops_tui.core.workspace import UseCase

AF_REQUIREMENTS = ["agent-framework-core==1.23.0", "agent-framework-openai==1.17.0"]
_PF_IMPORT = re.compile(r"^(\s*)from\s+promptflow(?:\.core)?\s+import\s+(.+)$", re.MULTILINE)
_PF_ANY = re.compile(r"^\s*(?:from|import)\s+promptflow\b.*$", re.MULTILINE)
_STAND_INS = {"tool", "log_metric"}
MANIFEST_FILE = "llmops-migration.json"
MANIFEST_KIND = "llmops-tui/migration"
# What is never part of a migrated flow folder as written and shipped: bytecode, a virtual environment
# made to run it (its README says how), .env files with keys. Hashed and deployed alike without them.
NOT_SHIPPED_NAMES = frozenset({"__pycache__", ".venv", ".env"})
NOT_SHIPPED_SUFFIXES = frozenset({".pyc", ".pyo", ".env"})


@dataclass
class Unmapped:
    file: str
    node: str | None
    reason: str

    def __str__(self) -> str:
        return f"{self.file}: " + (f"node {self.node}: " if self.node else "") + self.reason


@dataclass
class FlowToMigrate:
    role: str  # "standard" or "evaluator NAME"
    folder: str  # the output folder's name
    flow_dir: Path
    variants: dict[str, str] = field(default_factory=dict)


@dataclass
class MigrationPlan:
    use_case: str
    flows: list[FlowToMigrate]
    unmapped: list[Unmapped]

    def to_dict(self) -> dict[str, Any]:
        return {
            "use_case": self.use_case,
            "flows": [{"role": f.role, "folder": f.folder, "variants": f.variants} for f in self.flows],
            "unmapped": [{"file": u.file, "node": u.node, "reason": u.reason} for u in self.unmapped],
        }


def _chosen_variants(data: dict[str, Any], wanted: dict[str, str], file: str) -> dict[str, str]:
    """The variant of each node that has variants: the one asked for, else the default."""
    node_variants = data.get("node_variants") or {}
    out = {}
    for node, spec in node_variants.items():
        vid = wanted.get(str(node)) or str((spec or {}).get("default_variant_id"))
        known = [str(v) for v in ((spec or {}).get("variants") or {})]
        if vid not in known:
            raise LlmopsError(
                f"node '{node}' has no variant '{vid}'",
                file=file,
                field="--variant",
                hint=f"variants: {', '.join(known)}",
            )
        out[str(node)] = vid
    return out


def plan_migration(ws_root: Path, uc: UseCase, variants: dict[str, str] | None = None) -> MigrationPlan:
    """What would be written, and what does not map (file and node for each)."""
    from llmops_tui.core.materialize import materialized_dag

    flows: list[tuple[str, str, Path | None]] = [
        ("standard", "standard", uc.standard_flow.path if uc.standard_flow else None)
    ]
    flows += [
        (f"evaluator {e.name}", f"evaluator_{e.name}", e.flow.path if e.flow else None) for e in uc.evaluators
    ]
    plan = MigrationPlan(uc.name, [], [])
    std = uc.standard_flow.path if uc.standard_flow else None
    nodes_with_variants = set(
        (load_yaml(std / "flow.dag.yaml").get("node_variants") or {})
        if std and flow_kind(std) == "dag"
        else {}
    )
    for node in variants or {}:
        if node not in nodes_with_variants:
            raise LlmopsError(
                f"the standard flow has no node '{node}' with variants",
                field="--variant",
                hint=f"nodes with variants: {', '.join(sorted(nodes_with_variants)) or 'none'}",
            )
    for role, folder, path in flows:
        if path is None:
            continue
        kind = flow_kind(path)
        shown = rel(path, ws_root)
        if kind != "dag":
            what = "flex flow" if kind == "flex" else "code-only evaluator"
            plan.unmapped.append(
                Unmapped(
                    str(shown), None, f"{role} is a {what}: only DAG flows (flow.dag.yaml) migrate for now"
                )
            )
            continue
        raw = load_yaml(path / "flow.dag.yaml")
        chosen = _chosen_variants(raw, variants or {}, f"{shown}/flow.dag.yaml")
        data = materialized_dag(path, chosen)
        dag_file = f"{shown}/flow.dag.yaml"
        for name, spec in (data.get("inputs") or {}).items():
            if str((spec or {}).get("type", "")).lower() == "image":
                plan.unmapped.append(Unmapped(dag_file, None, f"input {name} is an image input"))
        for node in data.get("nodes") or []:
            name = str(node.get("name"))
            source = node.get("source") or {}
            ntype = node.get("type")
            if (
                source.get("type") == "package"
                or source.get("tool")
                or ntype not in ("python", "llm", "prompt")
            ):
                plan.unmapped.append(
                    Unmapped(
                        dag_file,
                        name,
                        f"custom tool package or node type '{ntype}' ({source.get('tool', '')})",
                    )
                )
                continue
            if ntype == "llm" and str((node.get("inputs") or {}).get("stream", "")).lower() == "true":
                plan.unmapped.append(Unmapped(dag_file, name, "streaming LLM output"))
            if ntype == "python":
                code = path / str(source.get("path", ""))
                text = code.read_text(encoding="utf-8") if code.is_file() else ""
                for m in _PF_ANY.finditer(text):
                    imp = _PF_IMPORT.match(m.group(0))
                    names = {x.strip() for x in imp.group(2).split(",")} if imp else set()
                    if not names or not names <= _STAND_INS:
                        plan.unmapped.append(
                            Unmapped(
                                f"{shown}/{source.get('path')}",
                                name,
                                f"uses Prompt flow beyond tool and log_metric: {m.group(0).strip()}",
                            )
                        )
        plan.flows.append(FlowToMigrate(role, folder, path, chosen))
    return plan


def _literal(value: Any) -> str:
    return pformat(value, sort_dicts=False, width=100)


def _ident(name: str) -> str:
    out = re.sub(r"\W", "_", name)
    return out if out and not out[0].isdigit() else f"n_{out}"


def _rewrite_imports(text: str) -> str:
    return _PF_IMPORT.sub(lambda m: f"{m.group(1)}from pf_semantics import {m.group(2)}", text)


def write_migration(ws_root: Path, uc: UseCase, out_dir: Path, plan: MigrationPlan) -> list[Path]:
    """Write every flow of ``plan``; refuses when anything does not map (see :func:`plan_migration`)."""
    from llmops_tui.core.backends import pf_semantics
    from llmops_tui.core.materialize import materialized_dag

    if plan.unmapped:
        raise LlmopsError(
            f"{len(plan.unmapped)} part(s) of {uc.name} do not map to Agent Framework; first: {plan.unmapped[0]}",
            field="USE_CASE",
            hint="see them all with llmops migrate --dry-run",
        )
    written: list[Path] = []
    conn_types = {c.name: c.connection_type for c in getattr(uc, "connections", []) or []}
    for flow in plan.flows:
        dest = Path(out_dir) / flow.folder
        if dest.exists():
            shutil.rmtree(dest)
        dest.mkdir(parents=True)
        data = materialized_dag(flow.flow_dir, flow.variants)
        used = {str((n.get("source") or {}).get("path")) for n in data.get("nodes") or []}
        for src in sorted(flow.flow_dir.rglob("*")):
            relp = src.relative_to(flow.flow_dir)
            if src.is_dir() or relp.parts[0] in {".promptflow", "__pycache__"} or src.name == "flow.dag.yaml":
                continue
            if src.suffix == ".jinja2" and relp.as_posix() not in used:
                continue  # another variant's prompt
            target = dest / relp
            target.parent.mkdir(parents=True, exist_ok=True)
            if src.suffix == ".py":
                target.write_text(_rewrite_imports(src.read_text(encoding="utf-8")), encoding="utf-8")
            elif src.name == "requirements.txt":
                continue
            else:
                shutil.copy2(src, target)
        shutil.copy2(Path(pf_semantics.__file__), dest / "pf_semantics.py")
        (dest / "flow.py").write_text(_flow_module(uc, flow, data, conn_types, ws_root), encoding="utf-8")
        reqs = AF_REQUIREMENTS + ["openai", "jinja2"]
        own = flow.flow_dir / "requirements.txt"
        if own.is_file():
            reqs += [
                x.strip()
                for x in own.read_text(encoding="utf-8").splitlines()
                if x.strip() and not x.startswith("#") and not x.strip().lower().startswith("promptflow")
            ]
        (dest / "requirements.txt").write_text("\n".join(dict.fromkeys(reqs)) + "\n", encoding="utf-8")
        (dest / "README.md").write_text(_readme(uc, flow, data, conn_types, ws_root), encoding="utf-8")
        sample = Path(uc.path) / "sample-request.json"
        if flow.role == "standard" and sample.is_file():
            shutil.copy2(sample, dest / "sample-request.json")  # what `llmops deploy-migrated` tests with
        written.append(dest)
    write_manifest(ws_root, uc, Path(out_dir), plan)
    return written


def migrated_file_hashes(folder: Path) -> dict[str, str]:
    """Relative POSIX path -> sha256 of every file of a migrated flow folder that ships (see
    :data:`NOT_SHIPPED_NAMES`)."""
    from llmops_tui.core.hashing import hash_file

    return {
        rel_path: hash_file(path)
        for rel_path, path in walk_files(
            folder, ignore_dirs=NOT_SHIPPED_NAMES, ignore_suffixes=NOT_SHIPPED_SUFFIXES
        )
    }


def write_manifest(ws_root: Path, uc: UseCase, out_dir: Path, plan: MigrationPlan) -> Path:
    """``out_dir/llmops-migration.json``: the provenance of what :func:`write_migration` wrote (see the
    module docstring). Written last, from the files as they are on disk."""
    from datetime import UTC, datetime

    from llmops_tui.core.approval import approved_flow_hash, source_file_hashes

    flows = []
    for flow in plan.flows:
        entry: dict[str, Any] = {
            "role": flow.role,
            "folder": flow.folder,
            "source": Path(rel(flow.flow_dir, ws_root)).as_posix(),
            "variants": dict(flow.variants),
            "params": {},  # migrate carries no parameter overrides: the flow's own values are written
            "source_files": source_file_hashes(flow.flow_dir),
            "files": migrated_file_hashes(Path(out_dir) / flow.folder),
        }
        if flow.role == "standard":
            entry["flow_hash"] = approved_flow_hash(uc, flow.variants, {})
        flows.append(entry)
    manifest = {
        "kind": MANIFEST_KIND,
        "schema_version": 1,
        "to": "agent-framework",
        "use_case": uc.name,
        "migrated_at": datetime.now(UTC).replace(microsecond=0).isoformat(),
        "flows": flows,
    }
    path = Path(out_dir) / MANIFEST_FILE
    path.write_text(json.dumps(manifest, indent=2) + "\n", encoding="utf-8")
    return path


def read_manifest(path: Path) -> dict[str, Any]:
    """The manifest at ``path``; anything unreadable or of another kind is one line naming the file."""
    hint = "run llmops migrate again: it writes this file"
    try:
        data = json.loads(Path(path).read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise LlmopsError("no migration manifest", file=path, field="", hint=hint) from None
    except (OSError, ValueError) as exc:
        raise LlmopsError(
            f"cannot read the migration manifest: {exc}", file=path, field="", hint=hint
        ) from None
    if (
        not isinstance(data, dict)
        or data.get("kind") != MANIFEST_KIND
        or not isinstance(data.get("flows"), list)
    ):
        raise LlmopsError(
            "not a migration manifest written by llmops migrate", file=path, field="kind", hint=hint
        )
    return data


def _env_prefix(conn: str) -> str:
    return re.sub(r"\W", "_", conn).upper()


def _flow_module(
    uc: UseCase, flow: FlowToMigrate, data: dict[str, Any], conn_types: dict[str, str], ws_root: Path
) -> str:
    from llmops_tui.core.backends import pf_semantics as pf

    nodes = data.get("nodes") or []
    specs = [pf.node_spec(n) for n in nodes]
    line_nodes = [s for s in specs if not s.aggregation]
    aggr_nodes = [s for s in specs if s.aggregation]
    conns = sorted({str(s.connection) for s in specs if s.type == "llm"})
    lines: list[str] = []
    w = lines.append
    shown = rel(flow.flow_dir, ws_root)
    w(f'"""{uc.name} ({flow.role}): the Prompt flow DAG flow {shown} on Microsoft Agent Framework.')
    w("")
    w("Written by `llmops migrate --to agent-framework`. Runs without llmops-tui and without Prompt flow:")
    w('    python flow.py \'{"input": "value"}\'     # one line, prints the outputs as JSON')
    w(
        "    from flow import run, run_batch            # run(inputs) -> outputs; run_batch(rows) -> (outputs, metrics)"
    )
    if conns:
        w(
            "Connections come from the environment: "
            + ", ".join(f"{_env_prefix(c)}_API_BASE / _API_KEY" for c in conns)
            + "."
        )
    w('"""')
    w("")
    w("import asyncio")
    w("import json")
    w("import os")
    w("import sys")
    w("from pathlib import Path")
    w("from typing import Any")
    w("")
    w("from agent_framework import Executor, WorkflowBuilder, WorkflowContext, handler")
    w("")
    w("HERE = Path(__file__).resolve().parent")
    w("sys.path.insert(0, str(HERE))")
    w("import pf_semantics as pf  # noqa: E402  (Prompt flow's rendering, parsing and DAG rules)")
    functions: dict[str, str] = {}
    for s in specs:
        if s.type == "python":
            module = Path(str(s.source_path)).with_suffix("").as_posix().replace("/", ".")
            fn = s.function or _tool_name(flow.flow_dir / str(s.source_path))
            functions[s.name] = fn
            w(f"from {module} import {fn}  # noqa: E402")
    w("")
    w(f"VARIANTS = {pformat(flow.variants)}  # the chosen variant of each node that has variants")
    w(f"INPUTS = {_literal(data.get('inputs') or {})}")
    w(f"OUTPUTS = {_literal(data.get('outputs') or {})}")
    w("NODE_SPECS = [  # flow.dag.yaml's nodes, with the chosen variants applied")
    for n in nodes:
        w(textwrap.indent(_literal(n), "    ") + ",")
    w("]")
    w("NODES = {spec.name: spec for spec in map(pf.node_spec, NODE_SPECS)}")
    w(f"CONNECTIONS = {pformat({c: conn_types.get(c, 'AzureOpenAIConnection') for c in conns})}")
    w("_clients: dict[str, Any] = {}")
    w("")
    w("")
    w("def client(connection: str) -> Any:")
    w(
        '    """An openai client for a connection, from <NAME>_API_BASE, <NAME>_API_KEY, <NAME>_API_VERSION."""'
    )
    w("    if connection not in _clients:")
    w("        prefix = connection.upper().replace('-', '_')")
    w("        _clients[connection] = pf.make_client(")
    w("            CONNECTIONS[connection],")
    w("            os.environ[f'{prefix}_API_BASE'],")
    w("            os.environ.get(f'{prefix}_API_KEY', ''),")
    w("            os.environ.get(f'{prefix}_API_VERSION'),")
    w("        )")
    w("    return _clients[connection]")
    w("")
    w("")
    w("class Line:")
    w('    """One line: its inputs, the outputs of the nodes so far, the bypassed nodes, the first error."""')
    w("")
    w("    def __init__(self, inputs: dict[str, Any]):")
    w("        self.inputs = inputs")
    w("        self.outputs: dict[str, Any] = {}")
    w("        self.bypassed: set[str] = set()")
    w("        self.error: str | None = None")
    w("        self.result: dict[str, Any] | None = None")
    w("")
    w("    def kwargs(self, node: str, fn: Any = None) -> dict[str, Any]:")
    w("        spec = NODES[node]")
    w("        values = pf.node_kwargs(spec, self.inputs, self.outputs, self.bypassed, fn)")
    w("        if fn is not None:  # literal inputs take the function's annotated types, as in Prompt flow")
    w(
        "            literals = {k: v for k, v in spec.inputs.items() if pf.parse_ref(v) is None and k in values}"
    )
    w("            values.update(pf.convert_literals(fn, literals))")
    w("        return values")
    w("")
    w("")
    w("# ---- one function per node")
    for s in line_nodes + aggr_nodes:
        if s.aggregation:
            continue
        w("")
        w("")
        w(f"def {_ident(s.name)}_node(line: Line) -> Any:")
        if s.type == "python":
            w(f'    """python node {s.name}: {s.source_path}"""')
            fn = functions[s.name]
            w(f"    return {fn}(**line.kwargs({s.name!r}, {fn}))")
        elif s.type == "prompt":
            w(f'    """prompt node {s.name}: {s.source_path}"""')
            w(f"    template = (HERE / {s.source_path!r}).read_text(encoding='utf-8')")
            w(f"    return pf.render_jinja(template, **line.kwargs({s.name!r}))")
        else:
            escape = [k for k, v in s.inputs.items() if (r := pf.parse_ref(v)) is not None and not r.is_node]
            w(
                f'    """llm node {s.name} ({s.api} API, {s.provider}, connection {s.connection}): {s.source_path}"""'
            )
            w(f"    template = (HERE / {s.source_path!r}).read_text(encoding='utf-8')")
            w(
                f"    kind, request = pf.llm_request(NODES[{s.name!r}], template, line.kwargs({s.name!r}), {escape!r})"
            )
            w(f"    response = pf.call_llm(client({s.connection!r}), kind, request)")
            w("    return pf.llm_result(kind, response, request)")
    w("")
    w("")
    w("STEPS = {" + ", ".join(f"{s.name!r}: {_ident(s.name)}_node" for s in line_nodes) + "}")
    w("")
    w("")
    w("# ---- the executors")
    w("")
    w("")
    w("class Start(Executor):")
    w('    """Takes the line\'s inputs and starts the nodes that depend on no other node."""')
    w("")
    w("    @handler")
    w("    async def start(self, inputs: dict, ctx: WorkflowContext[str]) -> None:")
    w("        await ctx.send_message('inputs')")
    w("")
    w("")
    w("class Step(Executor):")
    w(
        '    """One node: once its upstream nodes are done it runs, or is bypassed (Prompt flow\'s activate rules)."""'
    )
    w("")
    w("    def __init__(self, name: str, line: Line):")
    w("        super().__init__(id=name)")
    w("        self.line = line")
    w("")
    w("    @handler")
    w("    async def run_node(self, message: object, ctx: WorkflowContext[str]) -> None:")
    w("        line, node = self.line, NODES[self.id]")
    w("        if line.error is None:")
    w("            try:")
    w("                if pf.is_bypassed(node, line.inputs, line.outputs, line.bypassed):")
    w("                    line.bypassed.add(self.id)")
    w("                    line.outputs[self.id] = None")
    w("                else:")
    w("                    line.outputs[self.id] = STEPS[self.id](line)")
    w("            except Exception as exc:")
    w("                line.error = f\"Execution failure in '{self.id}': ({type(exc).__name__}) {exc}\"")
    w("        await ctx.send_message(self.id)")
    w("")
    w("")
    w("class Outputs(Executor):")
    w('    """Waits for the last nodes and yields the flow\'s declared outputs."""')
    w("")
    w("    def __init__(self, line: Line):")
    w("        super().__init__(id='outputs')")
    w("        self.line = line")
    w("")
    w("    @handler")
    w("    async def finish(self, message: object, ctx: WorkflowContext[Any, dict]) -> None:")
    w("        if self.line.error is None:")
    w("            self.line.result = pf.flow_outputs(OUTPUTS, self.line.inputs, self.line.outputs)")
    w("        await ctx.yield_output(self.line.result or {})")
    w("")
    w("")
    w("def build_workflow(line: Line) -> Any:")
    w('    """The line\'s workflow (a workflow runs one line at a time: build one per line, it is cheap)."""')
    w("    start = Start(id='inputs')")
    w("    end = Outputs(line)")
    for s in line_nodes:
        w(f"    {_ident(s.name)} = Step({s.name!r}, line)")
    w("    builder = WorkflowBuilder(start_executor=start, output_executors=[end])")
    roots = [_ident(s.name) for s in line_nodes if not s.deps]
    if len(roots) > 1:
        w(f"    builder.add_fan_out_edges(start, [{', '.join(roots)}])")
    elif roots:
        w(f"    builder.add_edge(start, {roots[0]})")
    for s in line_nodes:
        deps = [_ident(d) for d in s.deps]
        if len(deps) == 1:
            w(f"    builder.add_edge({deps[0]}, {_ident(s.name)})")
        elif deps:
            w(f"    builder.add_fan_in_edges([{', '.join(deps)}], {_ident(s.name)})")
    sinks = [_ident(s.name) for s in line_nodes if not any(s.name in m.deps for m in line_nodes)] or ["start"]
    if len(sinks) == 1:
        w(f"    builder.add_edge({sinks[0]}, end)")
    else:
        w(f"    builder.add_fan_in_edges([{', '.join(sinks)}], end)")
    w("    return builder.build()")
    w("")
    w("")
    w("def run_line(inputs: dict[str, Any]) -> Line:")
    w("    line = Line(pf.flow_inputs(INPUTS, inputs))")
    w("    asyncio.run(build_workflow(line).run(line.inputs))")
    w("    return line")
    w("")
    w("")
    w("def run(inputs: dict[str, Any]) -> dict[str, Any]:")
    w(
        '    """One line: the flow\'s outputs; raises RuntimeError with the node\'s error when the line fails."""'
    )
    w("    line = run_line(inputs)")
    w("    if line.error is not None or line.result is None:")
    w("        raise RuntimeError(line.error or 'the workflow ended without outputs')")
    w("    return line.result")
    w("")
    w("")
    w(f"AGGREGATION = {[s.name for s in aggr_nodes]!r}  # run over all succeeded lines, in this order")
    aggr_fns = {s.name: functions.get(s.name) for s in aggr_nodes}
    w("AGGREGATION_FUNCTIONS = {" + ", ".join(f"{k!r}: {v}" for k, v in aggr_fns.items()) + "}")
    w("")
    w("")
    w("def run_lines(rows: list[dict[str, Any]]) -> list[Line]:")
    w('    """Every row as a line (a failed line keeps its error in ``line.error``)."""')
    w("    return [run_line(r) for r in rows]")
    w("")
    w("")
    w("def aggregate(lines: list[Line]) -> dict[str, Any]:")
    w(
        '    """The aggregation nodes over the lines that succeeded; the metrics they logged with log_metric."""'
    )
    w("    ok = [ln for ln in lines if ln.error is None and ln.result is not None]")
    w("    metrics = pf.collect_metrics()")
    w("    try:")
    w("        done: dict[str, Any] = {}")
    w("        for name in AGGREGATION:")
    w("            spec, fn = NODES[name], AGGREGATION_FUNCTIONS[name]")
    w("            kwargs = {}")
    w("            for key, value in spec.inputs.items():")
    w("                ref = pf.parse_ref(value)")
    w("                if ref is None:")
    w("                    kwargs[key] = pf.convert_literals(fn, {key: value})[key]")
    w("                elif ref.source == 'inputs':")
    w("                    kwargs[key] = [pf.resolve(value, ln.inputs, ln.outputs) for ln in ok]")
    w("                elif ref.source in done:")
    w("                    kwargs[key] = pf.resolve(value, {}, done)")
    w("                else:")
    w("                    kwargs[key] = [pf.resolve(value, ln.inputs, ln.outputs) for ln in ok]")
    w("            done[name] = fn(**kwargs)")
    w("    finally:")
    w("        pf.stop_metrics()")
    w("    return dict(metrics)")
    w("")
    w("")
    w("def run_batch(rows: list[dict[str, Any]]) -> tuple[list[dict[str, Any] | None], dict[str, Any]]:")
    w('    """Every row as a line (None for a failed line), then the aggregation nodes over the lines that')
    w('    succeeded; returns the outputs and the metrics they logged with log_metric."""')
    w("    lines = run_lines(rows)")
    w("    return [ln.result if ln.error is None else None for ln in lines], aggregate(lines)")
    w("")
    w("")
    w("if __name__ == '__main__':")
    w("    given = json.loads(sys.argv[1]) if len(sys.argv) > 1 else {}")
    w("    print(json.dumps(run(given), indent=2, default=str))")
    return "\n".join(lines) + "\n"


def _tool_name(path: Path) -> str:
    """The @tool function of a module (the one Prompt flow would run), by reading the source."""
    import ast

    tree = ast.parse(path.read_text(encoding="utf-8"))
    funcs = [n for n in tree.body if isinstance(n, ast.FunctionDef | ast.AsyncFunctionDef)]
    tools = [
        f
        for f in funcs
        if any(
            (isinstance(d, ast.Name) and d.id == "tool")
            or (isinstance(d, ast.Call) and getattr(d.func, "id", "") == "tool")
            for d in f.decorator_list
        )
    ]
    chosen = tools[0] if len(tools) == 1 else funcs[0] if len(funcs) == 1 else None
    if chosen is None:
        raise LlmopsError(f"{path.name}: no single @tool function", file=path, field="source.path")
    return chosen.name


def _readme(
    uc: UseCase, flow: FlowToMigrate, data: dict[str, Any], conn_types: dict[str, str], ws_root: Path
) -> str:
    conns = sorted({str(n.get("connection")) for n in data.get("nodes") or [] if n.get("type") == "llm"})
    example = {k: (v or {}).get("default", "...") for k, v in (data.get("inputs") or {}).items()}
    env = "\n".join(
        f"export {_env_prefix(c)}_API_BASE=https://YOUR-ENDPOINT  # {conn_types.get(c, 'AzureOpenAIConnection')}\n"
        f"export {_env_prefix(c)}_API_KEY=...\n"
        + (
            f"export {_env_prefix(c)}_API_VERSION=2024-02-01\n"
            if not conn_types.get(c, "Azure").startswith("OpenAI")
            else ""
        )
        for c in conns
    )
    variants = ", ".join(f"{k}={v}" for k, v in flow.variants.items()) or "none"
    return f"""# {uc.name}: {flow.role}, on Microsoft Agent Framework

Migrated from the Prompt flow DAG flow `{rel(flow.flow_dir, ws_root)}` by `llmops migrate --to agent-framework`.
Chosen variants: {variants}.

## Run it

```bash
python -m venv .venv && .venv/bin/pip install -r requirements.txt
{env}.venv/bin/python flow.py '{json.dumps(example)}'
```

From Python: `from flow import run, run_batch`; `run(inputs)` returns the flow's outputs for one line,
`run_batch(rows)` returns every line's outputs and the metrics the aggregation nodes log.

## What is where

- `flow.py`: one function per node, the executors (`Start`, `Step`, `Outputs`), `build_workflow` (one edge
  per `${{node.output}}` reference; fan-in where a node waits for several), `run` and `run_batch`.
- `pf_semantics.py`: Prompt flow's semantics kept exactly: Jinja rendering, role blocks of chat prompts,
  the requests of the LLM tools, activate conditions and bypassed nodes. Your node code imports `tool`
  and `log_metric` from it instead of Prompt flow.
- Your node code and prompt templates, unchanged but for that import.

Serve it behind `/score` (the contract of a Prompt flow deployment): `llmops deploy-migrated` with
llmops-tui, locally or as a container build context.

LLM calls use the `openai` SDK directly (the same requests Prompt flow's tools send); orchestration is
Agent Framework's `Workflow`. Retries: the client's own are off; wrap `run` in your retry policy.
"""


# ---------------------------------------------------------------------------------------- verification

DEFAULT_VERIFY_LINES = 8
REFERENCE = "promptflow"
MIGRATED = "migrated"

# The runner the verification starts with ``python -I``: the migrated folder is all it can see (llmops_tui
# and promptflow are made unimportable, as on a machine where only requirements.txt is installed).
_RUNNER = """\
import json, sys, traceback
sys.modules["llmops_tui"] = None
sys.modules["promptflow"] = None
job = json.load(open(sys.argv[1], encoding="utf-8"))
sys.path.insert(0, job["flow_dir"])
import flow
lines = flow.run_lines(job["rows"])
out = {"lines": [], "metrics": None, "aggregation_error": None}
for ln in lines:
    ok = ln.error is None and ln.result is not None
    out["lines"].append({"status": "ok" if ok else "failed", "outputs": ln.result if ok else None,
                         "error": ln.error or (None if ok else "the workflow ended without outputs")})
if flow.AGGREGATION:
    try:
        out["metrics"] = flow.aggregate(lines)
    except Exception as exc:
        out["aggregation_error"] = f"{type(exc).__name__}: {exc}"
with open(sys.argv[2], "w", encoding="utf-8") as fh:
    json.dump(out, fh, default=str)
"""

# What the migrated code's process inherits: enough to find and run Python, TLS trust, proxies. Only the
# connections of the flow it runs are added (their endpoint and key), nothing else of ours.
_CHILD_ENV = frozenset(
    {"PATH", "HOME", "LANG", "TZ", "TMPDIR", "SYSTEMROOT", "SSL_CERT_FILE", "SSL_CERT_DIR"}
    | {"HTTP_PROXY", "HTTPS_PROXY", "http_proxy", "https_proxy", "NO_PROXY", "no_proxy"}
)


@dataclass
class FlowVerification:
    """One migrated flow's verification: its lines (and metrics) against Prompt flow's on the same lines."""

    role: str
    folder: str
    comparison: Any = None  # core.equivalence.CellComparison
    error: str | None = None  # the migrated code failed as a whole, or the flow could not be verified

    @property
    def equivalent(self) -> bool:
        return self.error is None and self.comparison is not None and self.comparison.equivalent

    @property
    def verdict(self) -> str:
        if self.error is not None:
            return f"not verified: {self.error}"
        comp = self.comparison
        if comp.equivalent:
            same = f", {len(comp.metrics)} metric(s) identical" if comp.metrics else ""
            return f"{comp.verdict}{same}"
        differ = len(comp.differing)  # lines that failed on both sides are neither identical nor differing
        if differ:
            return f"differs on {differ} line(s) of {comp.lines}"
        if comp.failed or not comp.lines:
            return str(comp.verdict)
        changed = [k for k, v in comp.metrics.items() if v[REFERENCE] != v[MIGRATED]]
        return f"metrics differ: {', '.join(changed)}"

    def first_difference(self) -> str | None:
        """The first differing line (or metric) in one short text, None when there is none."""
        comp = self.comparison
        if self.error is not None or comp is None or comp.equivalent:
            return None
        if comp.differing:
            d = comp.differing[0]
            a, b = d[REFERENCE], d[MIGRATED]

            def side(x: dict[str, Any]) -> str:
                return (
                    json.dumps(x["outputs"], default=str) if x["status"] == "ok" else f"failed: {x['error']}"
                )

            return f"line {d['line']}: Prompt flow {side(a)} | migrated {side(b)}"
        for name, v in comp.metrics.items():
            if v[REFERENCE] != v[MIGRATED]:
                return f"metric {name}: Prompt flow {v[REFERENCE]} | migrated {v[MIGRATED]}"
        return None

    def to_dict(self) -> dict[str, Any]:
        return {
            "role": self.role,
            "folder": self.folder,
            "equivalent": self.equivalent,
            "verdict": self.verdict,
            "first_difference": self.first_difference(),
            "error": self.error,
            "comparison": self.comparison.to_dict() if self.comparison is not None else None,
        }


@dataclass
class MigrationVerification:
    dataset: str
    lines: int
    run_id: str  # the Prompt flow reference run, in the run store like any sweep
    flows: list[FlowVerification]

    @property
    def equivalent(self) -> bool:
        return bool(self.flows) and all(f.equivalent for f in self.flows)

    def to_dict(self) -> dict[str, Any]:
        return {
            "dataset": self.dataset,
            "lines": self.lines,
            "reference_run": self.run_id,
            "equivalent": self.equivalent,
            "flows": [f.to_dict() for f in self.flows],
        }


def check_verifiable(ws_root: Path, uc: UseCase, llm_endpoint: str | None) -> str:
    """Before anything is written: the dataset the verification will read, and the connections it needs
    resolve (a missing key is one line, with the way out)."""
    from llmops_tui.core.connections import build_connections

    if not uc.datasets:
        raise LlmopsError(
            f"{uc.name} has no dataset to verify the migrated code on",
            file=uc.config_file,
            field="datasets",
            hint="add one, or skip the check with --no-verify",
        )
    if llm_endpoint not in (None, "sandbox"):
        raise LlmopsError(
            f"'{llm_endpoint}' cannot verify a migration",
            field="--llm-endpoint",
            hint="use sandbox, or no --llm-endpoint for the declared connections, or --no-verify"
            " (sweeps speak OpenAI's protocol to a URL, the migrated code keeps its connection types)",
        )
    try:
        build_connections(uc, ws_root, None if llm_endpoint is None else "http://127.0.0.1:1")
    except LlmopsError as exc:
        p = exc.problem
        hint = ((p.hint + "; ") if p.hint else "") + "or skip the check with --no-verify"
        raise LlmopsError(p.message, file=p.file or None, field=p.field, hint=hint) from None
    return uc.datasets[0].name


def _child_env(conns: dict[str, Any], names: list[str]) -> dict[str, str]:
    import os

    env = {k: v for k, v in os.environ.items() if k in _CHILD_ENV or k.startswith("LC_")}
    env["NO_PROXY"] = ",".join(x for x in (env.get("NO_PROXY", ""), "127.0.0.1", "localhost") if x)
    env["PYTHONDONTWRITEBYTECODE"] = "1"
    for name in names:
        spec = conns.get(name)
        if spec is None:
            continue
        prefix = _env_prefix(name)
        env[f"{prefix}_API_BASE"] = spec.api_base
        env[f"{prefix}_API_KEY"] = spec.api_key
        if spec.api_version:
            env[f"{prefix}_API_VERSION"] = spec.api_version
    return env


def run_migrated(
    flow_dir: Path, rows: list[dict[str, Any]], env: dict[str, str], work: Path, timeout: float
) -> dict[str, Any]:
    """Run a migrated flow's ``run_lines`` (and ``aggregate``) on ``rows`` in a fresh ``python -I``
    process that cannot import llmops_tui or promptflow. Raises RunFailed when the process fails."""
    import subprocess
    import sys

    from llmops_tui.core.errors import RunFailed

    work.mkdir(parents=True, exist_ok=True)
    (work / "runner.py").write_text(_RUNNER, encoding="utf-8")
    (work / "job.json").write_text(
        json.dumps({"flow_dir": str(flow_dir), "rows": rows}, default=str), encoding="utf-8"
    )
    result = work / "result.json"
    result.unlink(missing_ok=True)
    try:
        proc = subprocess.run(
            [sys.executable, "-I", str(work / "runner.py"), str(work / "job.json"), str(result)],
            cwd=str(work),
            env=env,
            capture_output=True,
            text=True,
            timeout=timeout,
        )
    except subprocess.TimeoutExpired as exc:
        raise RunFailed(f"the migrated code did not finish in {timeout:.0f} s") from exc
    if proc.returncode != 0 or not result.is_file():
        tail = [x for x in (proc.stderr or "").strip().splitlines() if x.strip()][-1:] or ["no output"]
        raise RunFailed(f"the migrated code failed (exit code {proc.returncode}): {tail[0].strip()}")
    data: dict[str, Any] = json.loads(result.read_text(encoding="utf-8"))
    return data


def verify_migration(
    ws_root: Path,
    uc: UseCase,
    out_dir: Path,
    plan: MigrationPlan,
    *,
    lines: int = DEFAULT_VERIFY_LINES,
    llm_endpoint: str | None = None,
    env: str | None = None,
    on_progress: Any = None,
    cancel: Any = None,
) -> MigrationVerification:
    """Run the migrated code on the first ``lines`` lines of the use case's first dataset, as its user
    would (a subprocess without llmops_tui), and compare each flow line by line with Prompt flow on the
    same lines and variants (:func:`llmops_tui.core.equivalence.compare_cell`).

    The Prompt flow side is an ordinary sweep (cache off, grid and repetitions off: the migrated code
    carries the flow's own parameters), stored like any run. Evaluators get, on both sides, the inputs
    Prompt flow's standard lines give them, so each migrated flow is checked on its own."""
    import tempfile

    from llmops_tui.core import events as ev
    from llmops_tui.core.connections import build_connections
    from llmops_tui.core.equivalence import LineView, compare_cell, run_sweep_to_end
    from llmops_tui.core.errors import RunFailed
    from llmops_tui.core.files import read_rows
    from llmops_tui.core.mappings import map_inputs
    from llmops_tui.core.store import RunStore
    from llmops_tui.core.sweep import SweepOptions

    say = on_progress or (lambda _text: None)
    dataset = check_verifiable(ws_root, uc, llm_endpoint)
    standard = next((f for f in plan.flows if f.role == "standard"), None)
    chosen = standard.variants if standard else {}
    options = SweepOptions(
        variants=",".join(f"{n}.{v}" for n, v in chosen.items()) or None,
        grid={},
        repeat=1,
        datasets=[dataset],
        limit=lines,
        llm_endpoint=llm_endpoint,
        env=env,
        no_cache=True,
        backend="promptflow-dag",
    )
    import time

    seen = {"done": -1, "at": 0.0}

    def progress(event: Any) -> None:
        # at most one progress line a second (and the last one): long references stay readable
        total = event.total or lines if isinstance(event, ev.Progress) else 0
        if isinstance(event, ev.Progress) and event.done != seen["done"]:
            if event.done < total and time.monotonic() - seen["at"] < 1.0:
                return
            seen["done"], seen["at"] = event.done, time.monotonic()
            say(f"Prompt flow reference: {event.done}/{total} line(s)")
        elif isinstance(event, ev.EvaluationStarted):
            say(f"Prompt flow reference: evaluator {event.evaluator}")

    say(f"Prompt flow reference: the first {lines} line(s) of dataset {dataset}")
    run_id = run_sweep_to_end(ws_root, uc, options, cancel, progress)
    with RunStore.for_workspace(ws_root) as store:
        cells = store.cells(run_id)
        if len(cells) != 1:
            raise RunFailed(f"the Prompt flow reference run {run_id} has {len(cells)} cells, not one")
        cell = cells[0]
        if dict(cell.variants) != dict(chosen) or cell.params:
            raise RunFailed(
                f"the Prompt flow reference ran {cell.variants} {cell.params}, not the migrated variants {chosen}"
            )
        ref_lines = {r.line: r for r in store.lines(run_id, cell.cell_id)}
        ref_metrics = store.metrics(run_id).get(cell.cell_id, {})
        ref_evals = {
            e.name: {r["line"]: r for r in store.eval_lines(run_id, cell.cell_id, e.name)}
            for e in uc.evaluators
        }
    sandbox = None
    results: list[FlowVerification] = []
    try:
        base = None
        if llm_endpoint == "sandbox":
            from llmops_tui.sandbox import start_sandbox

            sandbox = start_sandbox(host="127.0.0.1", port=0)  # as the engine starts its own: same answers
            base = sandbox.url
        conns = build_connections(uc, ws_root, base)
        rows_of: dict[str, list[dict[str, Any]]] = {}
        with tempfile.TemporaryDirectory(prefix="llmops-verify-") as tmp:
            for flow in plan.flows:
                folder = Path(out_dir) / flow.folder
                data = load_yaml(flow.flow_dir / "flow.dag.yaml")
                names = sorted(
                    {str(n.get("connection")) for n in data.get("nodes") or [] if n.get("type") == "llm"}
                    | {str(v.get("connection")) for v in _variant_nodes(data) if v.get("type") == "llm"}
                )
                if flow.role == "standard":
                    index = sorted(ref_lines)
                    rows = [ref_lines[i].inputs or {} for i in index]
                    ref = {
                        i: LineView(ref_lines[i].status, ref_lines[i].outputs, ref_lines[i].error)
                        for i in index
                    }
                    ref_m: dict[str, Any] = {}
                else:
                    name = flow.role.split(" ", 1)[1]
                    evaluator = next(e for e in uc.evaluators if e.name == name)
                    mapping = next(iter(evaluator.datasets_for(dataset)), None)
                    if mapping is None or mapping.path is None or not ref_evals.get(name):
                        why = (
                            "no mapping of it for dataset " + dataset
                            if mapping is None
                            else "no line to score"
                        )
                        results.append(FlowVerification(flow.role, flow.folder, error=why))
                        continue
                    key = str(mapping.path)
                    if key not in rows_of:
                        rows_of[key] = read_rows(mapping.path, ws_root)[:lines]
                    drows = rows_of[key]
                    index = sorted(ref_evals[name])
                    flow_inputs = evaluator.flow.inputs if evaluator.flow else None
                    rows = [
                        map_inputs(
                            mapping.mappings, drows[i], ref_lines[i].outputs, ref_lines[i].inputs, flow_inputs
                        )
                        for i in index
                    ]
                    ref = {
                        i: LineView(r["status"], r["outputs"], r["error"]) for i, r in ref_evals[name].items()
                    }
                    ref_m = {name: ref_metrics.get(name, {})}
                say(f"migrated {flow.folder}: {len(rows)} line(s) in a process without llmops_tui")
                try:
                    got = run_migrated(
                        folder.resolve(),
                        rows,
                        _child_env(conns, names),
                        Path(tmp) / flow.folder,
                        timeout=120.0 + 60.0 * len(rows),
                    )
                except RunFailed as exc:
                    results.append(FlowVerification(flow.role, flow.folder, error=str(exc)))
                    continue
                mine = {i: LineView(**x) for i, x in zip(index, got["lines"], strict=True)}
                mine_m: dict[str, Any] = {}
                if flow.role != "standard":
                    if got.get("aggregation_error"):
                        results.append(
                            FlowVerification(
                                flow.role,
                                flow.folder,
                                error=f"aggregation failed: {got['aggregation_error']}",
                            )
                        )
                        continue
                    mine_m = {flow.role.split(" ", 1)[1]: got.get("metrics") or {}}
                comp = compare_cell(flow.role, (REFERENCE, MIGRATED), ref, mine, ref_m, mine_m)
                results.append(FlowVerification(flow.role, flow.folder, comp))
    finally:
        if sandbox is not None:
            sandbox.stop()
    return MigrationVerification(dataset, len(ref_lines), run_id, results)


def _variant_nodes(data: dict[str, Any]) -> list[dict[str, Any]]:
    out = []
    for spec in (data.get("node_variants") or {}).values():
        for v in ((spec or {}).get("variants") or {}).values():
            out.append((v or {}).get("node") or {})
    return out
