"""Prompt flow DAG flows (``flow.dag.yaml``) on Microsoft Agent Framework's ``Workflow``, without Prompt flow's
executor.

Selected with ``--backend agent-framework`` (``llmops sweep``, ``compare-backends``) or ``backend:
agent-framework`` in a use case's llmops.yaml. Every Agent Framework import of llmops-tui lives in this
module (an import-linter contract keeps it so), and it is imported only when a flow opens on this backend:
without the ``agent-framework-core`` wheel installed, everything else works and opening a flow here says
how to install it (``llmops deps --backend agent-framework --install``).

How a flow maps:

- each node is an ``Executor``; each ``${node.output}`` reference is an edge, and a node with several
  upstream nodes waits for all of them through a fan-in edge group (diamonds included);
- the node that depends on no other node is the start executor (with several, a start executor fans out
  to them); the node nothing depends on yields the flow's declared outputs (with several, an output
  executor fans in from them). Each executor is a superstep of Agent Framework's runner, the runner's
  main cost per line, so there is none beyond the nodes when the flow does not need one.

A workflow instance cannot run two lines at once but runs one after another: its executors hold only node
names and run the nodes of the line's backend (a context variable), so the flows of one shape (the
variants and grid cells of a sweep) share a pool of idle workflows, and a sweep builds about as many as
it runs lines of that shape at once.

Each node executor decides, when its upstream nodes are done, whether it is bypassed (activate conditions
and all-inputs-bypassed, as Prompt flow defines them), then runs: Python nodes call the same ``@tool``
function from the flow folder; LLM nodes render the same Jinja template, parse role blocks the same way
and send the same request as promptflow-tools (see :mod:`.pf_semantics`). LLM calls go through the
``openai`` SDK's synchronous client inside the executor, not Agent Framework's chat client: that client
is async (our call policy wraps the SDK's sync ``create``), sends ``max_tokens`` as
``max_completion_tokens`` and reshapes messages, so requests and outputs would not be identical to Prompt
flow's. So rate limits, retries, the line deadline, cancellation and token counts of
:mod:`llmops_tui.core.llmhooks` apply unchanged, and orchestration is Agent Framework's.

A line's nodes run in the line's own thread, on an event loop kept per thread (like the DAG backend's
inline node executor). Aggregation nodes run in :meth:`run_aggregation` over the succeeded lines, in
flow order, with ``log_metric`` collecting metrics as Prompt flow's executor does.
"""

from __future__ import annotations

import asyncio
import collections
import contextvars
import inspect
import io
import logging
import threading
import time
from pathlib import Path
from typing import Any

from llmops_tui.core.backends import pf_semantics as pf
from llmops_tui.core.backends.base import (
    AggregationError,
    BackendOptions,
    FlowBackend,
    FlowLoadError,
    LineOutcome,
)
from llmops_tui.core.redact import redact

log = logging.getLogger(__name__)
NAME = "agent-framework"
INSTALL_HINT = "llmops deps --backend agent-framework --install"
#: installed with pip --no-deps (see requirements-agent-framework.txt for why); a test keeps them equal
PINS = ("agent-framework-core==1.23.0", "agent-framework-openai==1.17.0", "msgspec==0.22.0")
_MAX_LOG_CHARS = 20_000
_loops = threading.local()
_line: contextvars.ContextVar[_Line] = contextvars.ContextVar("llmops_af_line")
_metrics_lock = threading.Lock()
_metric_sink: list[dict[str, Any]] = []  # the aggregation running now (one at a time)
#: idle workflows by flow shape (node names and references, last nodes), shared by the flows of that shape
_idle: dict[tuple[Any, ...], collections.deque[Any]] = {}
_idle_lock = threading.Lock()
_clients: dict[tuple[str, str, str, str | None], Any] = {}  # see _client
_clients_lock = threading.Lock()


def available() -> str | None:
    """None when Agent Framework can be imported, else the reason (one line)."""
    try:
        import agent_framework  # noqa: F401
    except Exception as exc:  # noqa: BLE001 - any import failure means the backend is unavailable
        return f"agent-framework-core is not importable ({type(exc).__name__}: {exc}); install it with `{INSTALL_HINT}`"
    return None


def _log_metric(key: str, value: Any, variant_id: str | None = None) -> None:
    """Stands in for Prompt flow's ``log_metric`` in the flow's aggregation modules."""
    if _metric_sink:
        _metric_sink[-1][key] = value


def _loop() -> asyncio.AbstractEventLoop:
    loop = getattr(_loops, "loop", None)
    if loop is None or loop.is_closed():
        loop = asyncio.new_event_loop()
        _loops.loop = loop
    return loop


_BYPASSED = object()  # a span's output marker: the node was bypassed by an activate condition


class _Line:
    """What one line's executors share: inputs, node outputs, bypassed nodes, logs, the first error."""

    def __init__(self, backend: AgentFrameworkBackend, inputs: dict[str, Any]):
        self.backend = backend  # the executors run the nodes of this backend (variants, templates...)
        self.inputs = inputs
        self.outputs: dict[str, Any] = {}
        self.bypassed: set[str] = set()
        self.logs: dict[str, list[str]] = {"stdout": [], "stderr": []}
        self.error: str | None = None
        self.result: dict[str, Any] | None = None
        # (node, start, end, output, error) per node that ran or was bypassed, for the line's trace
        self.spans: list[tuple[str, float, float, Any, str | None]] = []


class AgentFrameworkBackend(FlowBackend):
    name = NAME

    def __init__(self, flow_dir: Path, options: BackendOptions):
        reason = available()
        if reason is not None:
            raise FlowLoadError(f"{self._show(flow_dir, options)}: backend {NAME}: {reason}")
        from llmops_tui.core.backends.flex import _install_capture
        from llmops_tui.core.materialize import materialized_dag

        self.flow_dir = flow_dir
        self.options = options
        self._secrets = options.secrets
        shown = self._show(flow_dir, options)
        try:
            data = materialized_dag(flow_dir)  # default variants, when the flow still has any
        except Exception as exc:
            raise FlowLoadError(redact(f"{shown}: {exc}", self._secrets)) from exc
        self.input_defs: dict[str, Any] = dict(data.get("inputs") or {})
        self.output_defs: dict[str, Any] = dict(data.get("outputs") or {})
        nodes = [pf.node_spec(n) for n in data.get("nodes") or []]
        self.nodes = [n for n in nodes if not n.aggregation]
        self.aggregation_nodes = [n for n in nodes if n.aggregation]
        self._functions: dict[str, Any] = {}
        self._literals: dict[str, dict[str, Any]] = {}
        self._templates: dict[str, str] = {}
        self._clients: dict[str, Any] = {}
        self._escape: dict[str, list[str]] = {}
        names = {n.name for n in nodes}
        for node in nodes:
            where = f"{shown}: node {node.name}"
            for dep in node.deps:
                if dep not in names:
                    raise FlowLoadError(
                        f"{where}: refers to ${{{dep}.output}}, but the flow has no node {dep}"
                    )
            self._load_node(node, where)
        self._order = self._topological(where=shown)
        self._sinks = [n.name for n in self.nodes if not any(n.name in m.deps for m in self.nodes)]
        self._by_name = {n.name: n for n in self.nodes}
        # What a workflow depends on: node names and references only (see _take_workflow)
        shape = (tuple((n.name, tuple(n.deps)) for n in self.nodes), tuple(self._sinks))
        with _idle_lock:
            self._idle = _idle.setdefault(shape, collections.deque())
        # What the aggregation nodes need from each line: the outputs of the line nodes they refer to.
        line_nodes = {n.name for n in self.nodes}
        self._aggr_refs = sorted({d for n in self.aggregation_nodes for d in n.deps if d in line_nodes})
        _install_capture()

    @staticmethod
    def _show(flow_dir: Path, options: BackendOptions) -> str:
        path = (options.source_dir or flow_dir) / "flow.dag.yaml"
        if options.workspace is not None:
            try:
                return str(path.resolve().relative_to(Path(options.workspace).resolve()))
            except ValueError:
                pass
        return str(path)

    def _load_node(self, node: pf.NodeSpec, where: str) -> None:
        from llmops_tui.core.backends.flex import load_module

        if node.type == "python":
            if not node.source_path or not str(node.source_path).endswith(".py"):
                raise FlowLoadError(f"{where}: a python node needs source.path to a .py file")
            module = Path(node.source_path).with_suffix("").as_posix().replace("/", ".")
            try:
                mod = load_module(self.flow_dir, module)
            except Exception as exc:
                text = " ".join(f"{type(exc).__name__}: {exc}".split())
                raise FlowLoadError(redact(f"{where}: {text}", self._secrets)) from exc
            fn = self._tool_function(mod, node)
            if fn is None:
                raise FlowLoadError(f"{where}: no @tool function in {node.source_path}")
            if hasattr(mod, "log_metric"):
                mod.log_metric = _log_metric
            self._functions[node.name] = fn
            literals = {k: v for k, v in node.inputs.items() if pf.parse_ref(v) is None}
            self._literals[node.name] = pf.convert_literals(fn, literals)
        elif node.type in ("llm", "prompt"):
            path = self.flow_dir / str(node.source_path or "")
            if not node.source_path or not path.is_file():
                raise FlowLoadError(f"{where}: template {node.source_path} not found")
            self._templates[node.name] = path.read_text(encoding="utf-8")
            if node.type == "llm":
                conn = self.options.connections.get(str(node.connection))
                if conn is None:
                    raise FlowLoadError(
                        f"{where}: connection '{node.connection}' is not a connection of this run "
                        f"({', '.join(self.options.connections) or 'none'})"
                    )
                if conn.name not in self._clients:
                    self._clients[conn.name] = _client(conn)
                self._escape[node.name] = [
                    k for k, v in node.inputs.items() if (r := pf.parse_ref(v)) is not None and not r.is_node
                ]
        else:
            raise FlowLoadError(f"{where}: node type '{node.type}' is not supported by the {NAME} backend")

    @staticmethod
    def _tool_function(mod: Any, node: pf.NodeSpec) -> Any:
        if node.function:
            return getattr(mod, node.function, None)
        own = [
            v
            for v in vars(mod).values()
            if inspect.isfunction(v) and getattr(v, "__module__", None) == mod.__name__
        ]
        tools = [f for f in own if "__tool" in vars(f)]  # what Prompt flow's @tool marks
        if len(tools) == 1:
            return tools[0]
        return own[0] if not tools and len(own) == 1 else None

    def _topological(self, where: str) -> list[pf.NodeSpec]:
        done: list[pf.NodeSpec] = []
        seen: set[str] = set()
        pending = list(self.nodes)
        while pending:
            ready = [n for n in pending if all(d in seen for d in n.deps)]
            if not ready:
                raise FlowLoadError(
                    f"{where}: the nodes {', '.join(n.name for n in pending)} refer to each other"
                )
            for n in ready:
                done.append(n)
                seen.add(n.name)
                pending.remove(n)
        return done

    # ------------------------------------------------------------------------------------ one node

    def _run_node(self, node: pf.NodeSpec, line: _Line) -> None:
        """Decide bypass, run the node, record its output (in the line's thread)."""
        from llmops_tui.core import llmhooks
        from llmops_tui.core.backends.flex import _line_logs

        if line.error is not None:
            return
        ctx = llmhooks.current_line.get()
        if ctx is not None and ctx.cancel.is_set():
            line.error = "cancelled"
            return
        try:
            if pf.is_bypassed(node, line.inputs, line.outputs, line.bypassed):
                line.bypassed.add(node.name)
                line.outputs[node.name] = None
                now = time.time()
                line.spans.append((node.name, now, now, _BYPASSED, None))
                return
        except Exception as exc:  # noqa: BLE001 - an activate condition that does not resolve
            line.error = f"Execution failure in '{node.name}': ({type(exc).__name__}) {exc}"
            return
        buffers = {"stdout": io.StringIO(), "stderr": io.StringIO()}
        token = _line_logs.set(buffers)
        start = time.time()
        try:
            line.outputs[node.name] = self._execute(node, line)
            line.spans.append((node.name, start, time.time(), line.outputs[node.name], None))
        except Exception as exc:  # noqa: BLE001 - the line fails with one line of text
            log.debug("node %s failed", node.name, exc_info=True)
            line.error = f"Execution failure in '{node.name}': ({type(exc).__name__}) {exc}"
            line.spans.append((node.name, start, time.time(), None, line.error))
        finally:
            _line_logs.reset(token)
            for stream, buf in buffers.items():
                text = buf.getvalue()
                if text.strip():
                    line.logs[stream].append(f"[{node.name}] {text.rstrip()}")

    def _execute(self, node: pf.NodeSpec, line: _Line) -> Any:
        if node.type == "python":
            fn = self._functions[node.name]
            kwargs = pf.node_kwargs(node, line.inputs, line.outputs, line.bypassed, fn)
            kwargs.update({k: v for k, v in self._literals[node.name].items() if k in kwargs})
            result = fn(**kwargs)
            if inspect.isawaitable(result):
                result = _loop_run_nested(result)
            return result
        kwargs = pf.node_kwargs(node, line.inputs, line.outputs, line.bypassed)
        template = self._templates[node.name]
        if node.type == "prompt":
            return pf.render_jinja(template, **kwargs)
        kind, req = pf.llm_request(node, template, kwargs, self._escape.get(node.name, []))
        conn = self.options.connections[str(node.connection)]
        response = pf.call_llm(self._clients[conn.name], kind, req)
        return pf.llm_result(kind, response, req)

    # ------------------------------------------------------------------------------------ workflow

    def _take_workflow(self) -> Any:
        """A workflow no line is running, built when there is none. A workflow cannot run two lines at
        once but runs one line after another, on whichever thread's loop (Agent Framework re-creates its
        loop-bound locks and queues when the loop changes). Its executors hold only node names: they run
        the nodes of the backend of the line in the context variable ``_line``. So flows of the same
        shape (the variants and grid cells of one flow) share their idle workflows, and a sweep builds
        about as many as it runs lines of that shape at once. Building one costs more than running a
        short line."""
        try:
            return self._idle.pop()
        except IndexError:
            return self._workflow()

    def _workflow(self) -> Any:
        """One executor per node, an edge per reference. The node that depends on no other node is the
        start executor, and the node nothing depends on yields the flow's outputs; only a flow with
        several such nodes gets a start executor that fans out to them, or an output executor that fans
        in from them (each executor is a superstep of Agent Framework's runner, its main cost per line)."""
        from agent_framework import WorkflowBuilder

        start_cls, node_cls, last_cls, outputs_cls = _executor_classes()
        last = self._sinks[0] if len(self._sinks) == 1 else None
        executors = {n.name: (last_cls(n.name) if n.name == last else node_cls(n.name)) for n in self.nodes}
        roots = [executors[n.name] for n in self.nodes if not n.deps]
        sinks = [executors[s] for s in self._sinks]
        end = executors[last] if last is not None else outputs_cls("outputs")
        start = roots[0] if len(roots) == 1 else (start_cls("inputs") if roots else end)
        builder = WorkflowBuilder(start_executor=start, output_executors=[end])
        if len(roots) > 1:
            builder.add_fan_out_edges(start, roots)
        for n in self.nodes:
            sources = [executors[d] for d in n.deps]
            if len(sources) == 1:
                builder.add_edge(sources[0], executors[n.name])
            elif len(sources) > 1:
                builder.add_fan_in_edges(sources, executors[n.name])
        if last is None and sinks:
            builder.add_fan_in_edges(sinks, end)
        return builder.build()

    def _finish(self, line: _Line) -> None:
        if line.error is None:
            try:
                line.result = pf.flow_outputs(self.output_defs, line.inputs, line.outputs)
            except Exception as exc:  # noqa: BLE001 - an output reference that does not resolve
                line.error = f"flow output failed: ({type(exc).__name__}) {exc}"

    # ------------------------------------------------------------------------------------ lines

    @property
    def has_aggregation(self) -> bool:
        return bool(self.aggregation_nodes)

    def run_line(self, inputs: dict[str, Any], index: int, run_id: str) -> LineOutcome:
        try:
            line = _Line(self, pf.flow_inputs(self.input_defs, inputs))
        except pf.NodeError as exc:
            return LineOutcome(ok=False, error=redact(" ".join(str(exc).split()), self._secrets))
        token = _line.set(line)
        workflow = self._take_workflow()
        try:
            _loop().run_until_complete(workflow.run("line"))  # the executors read the line from _line
        except Exception as exc:  # noqa: BLE001 - the workflow itself failed: the line fails
            log.debug("workflow failed", exc_info=True)
            if line.error is None:
                line.error = f"{type(exc).__name__}: {exc}"
        else:
            self._idle.append(workflow)  # a failed workflow is not reused
        finally:
            _line.reset(token)
        logs = {k: redact("\n".join(v)[-_MAX_LOG_CHARS:], self._secrets) for k, v in line.logs.items() if v}
        if line.error is not None or line.result is None:
            text = line.error or "the workflow ended without the flow's outputs"
            return LineOutcome(
                ok=False,
                error=redact(" ".join(text.split()), self._secrets),
                logs=logs or None,
                traces=self._node_spans(line),
            )
        return LineOutcome(
            ok=True,
            outputs=line.result,
            logs=logs or None,
            traces=self._node_spans(line),
            aggregation_inputs={k: line.outputs.get(k) for k in self._aggr_refs},
        )

    def _node_spans(self, line: _Line) -> list[dict[str, Any]] | None:
        """One span per node that ran (or was bypassed), in start order, as the Prompt flow backend records
        them: name, timing, output or error."""
        from llmops_tui.core.backends import tracing

        if not line.spans:
            return None
        ordered = sorted(line.spans, key=lambda s: s[1])[: tracing.MAX_SPANS]
        t0 = ordered[0][1]
        return [
            tracing.span(
                name,
                "node",
                start,
                end,
                t0,
                0,
                output=tracing.Text("(bypassed)")
                if output is _BYPASSED
                else (tracing.summarise(output, self._secrets) if error is None else None),
                error=None if error is None else redact(error, self._secrets)[:300],
            )
            for name, start, end, output, error in ordered
        ]

    # ------------------------------------------------------------------------------------ aggregation

    def run_aggregation(self, inputs: list[dict[str, Any]], outcomes: list[LineOutcome]) -> dict[str, float]:
        if not inputs or not self.aggregation_nodes:
            return {}
        resolved = [pf.flow_inputs(self.input_defs, x) for x in inputs]
        batch_inputs = {k: [r.get(k) for r in resolved] for k in self.input_defs}
        aggr = [o.aggregation_inputs or {} for o in outcomes]
        batch_outputs: dict[str, Any] = {k: [a.get(k) for a in aggr] for k in self._aggr_refs}
        metrics: dict[str, Any] = {}
        # Aggregation steps run one at a time: log_metric goes to whichever step is running.
        with _metrics_lock:
            _metric_sink.append(metrics)
            try:
                for node in self.aggregation_nodes:
                    fn = self._functions.get(node.name)
                    if fn is None:
                        raise AggregationError(f"aggregation node {node.name}: only python nodes aggregate")
                    kwargs = {}
                    for key, value in node.inputs.items():
                        ref = pf.parse_ref(value)
                        if ref is None:
                            kwargs[key] = self._literals[node.name].get(key, value)
                        elif ref.source == "inputs":
                            kwargs[key] = [
                                pf._dig(v, ref.path[1:]) for v in batch_inputs.get(ref.path[0], [])
                            ]
                        elif ref.source in self._aggr_refs:  # a line node: one value per line
                            kwargs[key] = [pf._dig(v, ref.path) for v in batch_outputs.get(ref.source, [])]
                        else:  # an earlier aggregation node: its one result
                            kwargs[key] = pf._dig(batch_outputs.get(ref.source), ref.path)
                    try:
                        result = fn(**kwargs)
                        if inspect.isawaitable(result):
                            result = _loop_run_nested(result)
                        batch_outputs[node.name] = result
                    except Exception as exc:
                        text = " ".join(f"({type(exc).__name__}) {exc}".split())
                        raise AggregationError(
                            f"aggregation node {node.name} failed: {redact(text, self._secrets)}"
                        ) from exc
            finally:
                _metric_sink.pop()
        return dict(metrics)


def _client(conn: Any) -> Any:
    """The ``openai`` client of a connection, one per process for equal settings: the variants and grid
    cells of a sweep each open their flow, and building a client (its TLS context) costs tens of
    milliseconds. The client is thread-safe; the call policy wraps its calls, not the client."""
    key = (conn.kind, conn.api_base, conn.api_key, conn.api_version)
    with _clients_lock:
        client = _clients.get(key)
        if client is None:
            client = _clients[key] = pf.make_client(conn.kind, conn.api_base, conn.api_key, conn.api_version)
        return client


def _loop_run_nested(awaitable: Any) -> Any:
    """An async tool called from a handler (the loop is busy): run it on a loop of its own thread."""
    result: dict[str, Any] = {}
    context = contextvars.copy_context()  # the line's call policy and captured output follow the call

    def target() -> None:
        try:
            result["value"] = asyncio.run(awaitable)
        except BaseException as exc:  # noqa: BLE001 - re-raised in the caller
            result["error"] = exc

    # a daemon: if the tool never returns, the line pool abandons the line, and this thread must not
    # keep the process from exiting
    t = threading.Thread(target=context.run, args=(target,), name="llmops-af-async-tool", daemon=True)
    t.start()
    t.join()
    if "error" in result:
        raise result["error"]
    return result.get("value")


_CLASSES: tuple[Any, Any, Any, Any] | None = None


def _executor_classes() -> tuple[Any, Any, Any, Any]:
    """The four executor classes, defined once on first use (Agent Framework is imported only then).
    Handler types are given to ``@handler`` explicitly: this module's annotations are strings."""
    global _CLASSES
    if _CLASSES is not None:
        return _CLASSES
    from agent_framework import Executor, WorkflowContext, handler

    def typed(fn: Any) -> Any:
        # this module's annotations are strings naming a lazily imported class: give Agent Framework the class
        fn.__annotations__ = {**fn.__annotations__, "ctx": WorkflowContext}
        return fn

    class Start(Executor):
        """Starts the nodes that depend on no other node, when the flow has several."""

        @handler(input=object, output=str)
        @typed
        async def on_inputs(self, message: Any, ctx: Any) -> None:
            await ctx.send_message("inputs")

    class NodeExecutor(Executor):
        """One node of the flow: runs (or is bypassed) once its upstream nodes are done."""

        def __init__(self, name: str):
            super().__init__(id=f"node:{name}")
            self.node_name = name

        @handler(input=object, output=str)
        @typed
        async def on_ready(self, message: Any, ctx: Any) -> None:
            line = _line.get()
            line.backend._run_node(line.backend._by_name[self.node_name], line)
            await ctx.send_message(self.node_name)

    class LastNodeExecutor(Executor):
        """The node nothing depends on, when the flow has one: runs, then yields the flow's outputs."""

        def __init__(self, name: str):
            super().__init__(id=f"node:{name}")
            self.node_name = name

        @handler(input=object, workflow_output=dict)
        @typed
        async def on_ready(self, message: Any, ctx: Any) -> None:
            line = _line.get()
            line.backend._run_node(line.backend._by_name[self.node_name], line)
            line.backend._finish(line)
            await ctx.yield_output(line.result or {})

    class Outputs(Executor):
        """Joins the nodes nothing depends on, when the flow has several, and yields the flow's outputs."""

        @handler(input=object, workflow_output=dict)
        @typed
        async def on_done(self, message: Any, ctx: Any) -> None:
            line = _line.get()
            line.backend._finish(line)
            await ctx.yield_output(line.result or {})

    _CLASSES = (Start, NodeExecutor, LastNodeExecutor, Outputs)
    return _CLASSES
