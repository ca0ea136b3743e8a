"""Prompt flow DAG flows (``flow.dag.yaml``) through Prompt flow's own ``FlowExecutor``, in-process.

Every Prompt flow import of the engine lives here, private ones included (``_run_tracker``,
``promptflow._utils``), so that the day Prompt flow retires only this module has to go. Measured facts
this relies on are in PROMPTFLOW_NOTES.md: ``exec_line`` is thread-safe, keeps per-line run infos
forever unless dropped, and captures each node's stdout/stderr in its run info.
"""

from __future__ import annotations

import inspect
import logging
import math
import os
import threading
import types
import uuid
import weakref
from concurrent.futures import Future
from pathlib import Path
from typing import Any

from llmops_tui.core.backends.base import (
    AggregationError,
    BackendOptions,
    ConnectionSpec,
    FlowBackend,
    FlowLoadError,
    LineOutcome,
)
from llmops_tui.core.pfenv import configure_promptflow_env
from llmops_tui.core.redact import redact

log = logging.getLogger(__name__)
LINE_NUMBER_KEY = "line_number"
_MAX_LOG_CHARS = 20_000
_AGGREGATION_LOCK = threading.Lock()


class _LazyModule(types.ModuleType):
    """A Prompt flow module whose import is put off until a name it defines is used.

    Executing a flow needs Prompt flow's executor and its tools, yet three modules on that path import its
    whole SDK for names the executor never calls: ``promptflow/__init__.py`` (``PFClient``, whose imports
    bring Flask, SQLAlchemy and the trace service), ``promptflow._internal`` (imported by the LLM tools for
    four names) and ``promptflow._cli._utils`` (imported by the LLM tools for one function; its imports
    bring the Azure Monitor exporter, azure-identity and cryptography). Measured in a worker opening the
    benchmark's two flows: 146 MB and about 1.5 s of imports with them, see benchmarks/README.md.

    The stand-in carries the light names it is given (the very objects the real module re-exports); any
    other name runs the real module into this same object first, so ``from promptflow import tool`` in a
    flow's code, or ``PFClient``, work as before (and then cost what they always cost)."""

    def __init__(self, spec: Any, light: dict[str, Any]) -> None:
        super().__init__(spec.name)
        self.__spec__ = spec
        self.__dict__["_llmops_loader"] = spec.loader
        self.__loader__ = spec.loader
        self.__file__ = spec.origin
        if spec.submodule_search_locations is not None:
            self.__path__ = list(spec.submodule_search_locations)
        self.__dict__.update(light)
        self.__dict__["_llmops_real_loaded"] = False

    def __getattr__(self, name: str) -> Any:
        if name.startswith("__") and name.endswith("__") and name not in ("__version__", "__all__"):
            raise AttributeError(name)
        if not self.__dict__["_llmops_real_loaded"]:
            self._llmops_load_real()
            return getattr(self, name)  # now the real module's names, and its own ``__getattr__``
        raise AttributeError(f"module {self.__name__!r} has no attribute {name!r}")

    def _llmops_load_real(self) -> None:
        with _LAZY_LOCK:
            if self.__dict__["_llmops_real_loaded"]:
                return
            self.__dict__["_llmops_real_loaded"] = True
            self.__dict__["_llmops_loader"].exec_module(self)


_LAZY_LOCK = threading.RLock()


def _defer_sdk_imports() -> None:
    """Put the three SDK-pulling modules above off, if Prompt flow is not imported yet in this process."""
    import importlib.util
    import sys

    if "promptflow" in sys.modules or os.environ.get("LLMOPS_PF_FULL_IMPORT") == "1":
        return
    root_spec = importlib.util.find_spec("promptflow")
    if root_spec is None or root_spec.loader is None:
        return
    root = _LazyModule(root_spec, {})
    sys.modules["promptflow"] = root
    try:
        from promptflow._core.cache_manager import enable_cache
        from promptflow._core.tool import ToolProvider, tool
        from promptflow._core.tools_manager import register_apis

        internal_spec = importlib.util.find_spec("promptflow._internal")
        cli_utils_spec = importlib.util.find_spec("promptflow._cli._utils")
        if internal_spec is not None:
            light = {"enable_cache": enable_cache, "ToolProvider": ToolProvider, "tool": tool}
            internal = _LazyModule(internal_spec, {**light, "register_apis": register_apis})
            sys.modules["promptflow._internal"] = internal
            root._internal = internal  # type: ignore[attr-defined]
        if cli_utils_spec is not None:
            import promptflow._cli

            cli_utils = _LazyModule(cli_utils_spec, {})

            def get_workspace_triad_from_local() -> Any:
                cli_utils._llmops_load_real()
                return cli_utils.get_workspace_triad_from_local()

            cli_utils.__dict__["get_workspace_triad_from_local"] = get_workspace_triad_from_local
            sys.modules["promptflow._cli._utils"] = cli_utils
            promptflow._cli._utils = cli_utils
    except Exception:  # a Prompt flow whose layout differs: import it the ordinary way
        log.debug("deferring Prompt flow's SDK imports failed", exc_info=True)
        for name in ("promptflow._cli._utils", "promptflow._internal", "promptflow"):
            if isinstance(sys.modules.get(name), _LazyModule):
                sys.modules[name]._llmops_load_real()


def prepare(store_dir: Path) -> None:
    """Prompt flow's home under the workspace's ``.llmops/``, offline, its loggers quiet, its SDK not
    imported unless used (see :class:`_LazyModule`), and its nodes run in the line's own thread (see
    :class:`InlineNodeExecutor`)."""
    configure_promptflow_env(Path(store_dir) / "promptflow")
    _defer_sdk_imports()
    quiet_promptflow_logs()
    if os.environ.get("LLMOPS_PF_NODE_THREADS") != "1":  # escape hatch: Prompt flow's own threads
        from promptflow.executor import _flow_nodes_scheduler

        _flow_nodes_scheduler.ThreadPoolExecutor = InlineNodeExecutor
    from promptflow.exceptions import UserErrorException

    from llmops_tui.core import llmhooks

    llmhooks.use_call_error(UserErrorException)


def quiet_promptflow_logs(level: int = logging.CRITICAL) -> None:
    """Prompt flow logs every failed node with a traceback to stderr; failures are ours to report
    (one line each, in the store and in events). ``LLMOPS_DEBUG=1`` keeps its logs."""
    if os.environ.get("LLMOPS_DEBUG") == "1":
        return
    import promptflow.executor  # noqa: F401  (creates its loggers)
    from promptflow._utils import logger_utils

    # These are plain logging.Logger objects, not registered with logging's manager.
    for attr in ("flow_logger", "bulk_logger", "logger", "service_logger"):
        obj = getattr(logger_utils, attr, None)
        if isinstance(obj, logging.Logger):
            obj.setLevel(level)
    for name in list(logging.root.manager.loggerDict):
        if name.startswith(("execution", "promptflow")):
            logging.getLogger(name).setLevel(level)


class InlineNodeExecutor:
    """Stands in for the ``ThreadPoolExecutor`` that Prompt flow's ``FlowNodesScheduler`` builds for every
    line: the line's ready nodes run one after another in the line's own thread.

    Why: the engine already runs lines concurrently; a pool per line starts two OS threads per line (a
    node thread and a timeout waiter), and under load starting them waits for the GIL. Profiled on a
    CPU-bound sweep (2,000 rows x 2 variants, concurrency 64), thread start-up inside
    ``FlowNodesScheduler`` took most of the engine's time. What changes: nodes of one line that could
    run in parallel (a diamond-shaped DAG) run in sequence, so such a line takes longer, while the
    sweep's throughput is unchanged. Prompt flow's own line timeout (which abandons, never stops, a
    line) is not armed: the LLM-call policy's deadline stops a line's model calls and retries, and the
    engine's line pool (:mod:`llmops_tui.core.linepool`) abandons a line whose node runs past its
    deadline by other means (a sleep, a blocking read), whatever the backend."""

    def __init__(self, max_workers: int | None = None, initializer: Any = None, initargs: Any = ()) -> None:
        pass  # the calling thread already carries the line's context

    def submit(self, fn: Any, /, *args: Any, **kwargs: Any) -> Future[Any]:
        future: Future[Any] = Future()
        if getattr(fn, "__name__", "") == "wait_within_timeout":
            return future  # never completes: see the class docstring
        try:
            future.set_result(fn(*args, **kwargs))
        except BaseException as exc:  # noqa: BLE001 - delivered through the future, as a pool would
            future.set_exception(exc)
        return future

    def shutdown(self, wait: bool = True, *, cancel_futures: bool = False) -> None:
        pass


# ------------------------------------------------------------------------ per-line work done once
#
# Two things Prompt flow redoes on every line that give the same answer every time (measured with
# benchmarks/line_cpu.py): its LLM tools compile the node's Jinja prompt template on every call, and the
# DAG manager computes each node function's ``inspect.signature`` on every line. Both are cached here,
# keyed on what they are computed from; results are identical.

_TEMPLATES: dict[tuple[str, bool, bool, bool], Any] = {}
_MAX_TEMPLATES = 512
_SIGNATURES: weakref.WeakKeyDictionary[Any, inspect.Signature] = weakref.WeakKeyDictionary()
_patch_lock = threading.Lock()


def _cached_renderer(original: Any) -> Any:
    """``render_jinja_template`` with the compiled template kept per (text, options): compiling is the
    expensive half, and a compiled template renders safely from many threads. Any failure goes through
    the original, so errors read exactly as Prompt flow's."""

    def render_jinja_template(
        template_content: Any,
        trim_blocks: bool = True,
        keep_trailing_newline: bool = True,
        escape_dict: Any = None,
        **kwargs: Any,
    ) -> Any:
        sandboxed = os.environ.get("PF_USE_SANDBOX_FOR_JINJA", "true").lower() != "false"
        key = (template_content, trim_blocks, keep_trailing_newline, sandboxed)
        escapes = {} if escape_dict is None else escape_dict
        try:
            template = _TEMPLATES.get(key) if isinstance(template_content, str) else None
            if template is None and isinstance(template_content, str):
                from jinja2 import Environment
                from jinja2.sandbox import SandboxedEnvironment

                env_cls = SandboxedEnvironment if sandboxed else Environment
                env = env_cls(trim_blocks=trim_blocks, keep_trailing_newline=keep_trailing_newline)
                template = env.from_string(template_content)
                if len(_TEMPLATES) >= _MAX_TEMPLATES:
                    _TEMPLATES.clear()
                _TEMPLATES[key] = template
            if template is not None:
                return template.render(**kwargs)
        except Exception:  # noqa: BLE001 - the original raises it with Prompt flow's own message
            pass
        return original(template_content, trim_blocks, keep_trailing_newline, escapes, **kwargs)

    render_jinja_template._llmops = True  # type: ignore[attr-defined]
    return render_jinja_template


class _CachedSignatures:
    """Stands in for the ``inspect`` module inside Prompt flow's DAG manager: ``signature`` is cached per
    node function (the executor resolves each node's function once), everything else is ``inspect``'s."""

    def __getattr__(self, name: str) -> Any:
        return getattr(inspect, name)

    @staticmethod
    def signature(f: Any) -> inspect.Signature:
        try:
            return _SIGNATURES[f]
        except (KeyError, TypeError):
            pass
        sig = inspect.signature(f)
        try:
            _SIGNATURES[f] = sig
        except TypeError:  # not weak-referenceable: computed every time, as before
            pass
        return sig


def _cache_per_line_work() -> None:
    """Install both caches (idempotent); the tools' modules are patched once Prompt flow has loaded them."""
    import sys

    with _patch_lock:
        from promptflow.executor import _dag_manager

        if not isinstance(getattr(_dag_manager, "inspect", None), _CachedSignatures):
            _dag_manager.inspect = _CachedSignatures()
        for name in ("promptflow.tools.common", "promptflow.tools.aoai", "promptflow.tools.openai"):
            module = sys.modules.get(name)
            current = getattr(module, "render_jinja_template", None)
            if current is not None and not getattr(current, "_llmops", False):
                module.render_jinja_template = _cached_renderer(current)  # type: ignore[union-attr]


def to_connection(spec: ConnectionSpec) -> Any:
    """The Prompt flow connection object for a resolved connection (in memory only)."""
    from promptflow.connections import AzureOpenAIConnection, OpenAIConnection

    if spec.is_openai:
        return OpenAIConnection(name=spec.name, api_key=spec.api_key, base_url=spec.url)
    return AzureOpenAIConnection(
        name=spec.name,
        api_key=spec.api_key,
        api_base=spec.api_base,
        api_type="azure",
        api_version=spec.api_version or "2024-02-01",
    )


def execution_dicts(specs: dict[str, ConnectionSpec]) -> dict[str, dict[str, Any]]:
    """The executor's in-memory connection form (never persisted)."""
    return {name: to_connection(spec)._to_execution_connection_dict() for name, spec in specs.items()}


def describe_load_error(
    exc: BaseException, flow_file: Path, copy_dir: Path | None, ws_root: Path | None
) -> str:
    """One line for a flow that cannot load: the flow file (as written), the node, Prompt flow's reason."""
    shown: Path | str = flow_file
    if ws_root is not None:
        try:
            shown = flow_file.relative_to(ws_root)
        except ValueError:
            pass
    text = str(getattr(exc, "message", None) or exc) or type(exc).__name__
    if copy_dir is not None:
        text = text.replace(str(copy_dir), str(flow_file.parent))
    text = " ".join(text.split())
    params = getattr(exc, "message_parameters", None) or {}
    node = params.get("node_name") if isinstance(params, dict) else None
    where = f"{shown}: node {node}" if node and f"'{node}'" not in text else str(shown)
    kind = type(exc).__name__
    return f"{where}: {text}" if kind in text else f"{where}: {kind}: {text}"


def error_text(error: Any) -> str:
    """Prompt flow's error record (a dict with ``message``) or exception as one line."""
    text = str(error.get("message") or error) if isinstance(error, dict) else str(error)
    return " ".join(text.split())


def _status_ok(status: Any) -> bool:
    return str(getattr(status, "value", status)) == "Completed"


class PromptflowDagBackend(FlowBackend):
    name = "promptflow-dag"

    def __init__(self, flow_dir: Path, options: BackendOptions):
        from promptflow.executor import FlowExecutor

        self.flow_dir = flow_dir
        self.options = options
        self._secrets = options.secrets
        try:
            self._executor = FlowExecutor.create(
                flow_dir / "flow.dag.yaml",
                execution_dicts(options.connections),
                working_dir=flow_dir,
                raise_ex=False,
                # Prompt flow takes whole seconds
                line_timeout_sec=max(1, math.ceil(options.line_timeout_s)),
            )
        except Exception as exc:
            log.debug("flow %s failed to load", flow_dir, exc_info=True)
            source = options.source_dir or flow_dir
            msg = describe_load_error(exc, source / "flow.dag.yaml", flow_dir, options.workspace)
            raise FlowLoadError(redact(msg, self._secrets)) from exc
        if os.environ.get("LLMOPS_PF_LINE_CACHES") != "0":  # escape hatch: Prompt flow's per-line work
            _cache_per_line_work()
        flow = self._executor._flow
        self._has_aggregation = any(getattr(n, "aggregation", False) for n in flow.nodes)

    @property
    def has_aggregation(self) -> bool:
        return self._has_aggregation

    def run_line(self, inputs: dict[str, Any], index: int, run_id: str) -> LineOutcome:
        line_run_id = f"{run_id}-{index}-{uuid.uuid4().hex[:6]}"
        try:
            result = self._executor.exec_line(inputs, index=index, run_id=line_run_id)
        except Exception as exc:  # the executor itself failed: the line fails, the sweep goes on
            log.debug("exec_line raised", exc_info=True)
            return LineOutcome(ok=False, error=redact(f"{type(exc).__name__}: {exc}", self._secrets))
        finally:
            self._forget(line_run_id)
        ok = _status_ok(result.run_info.status)
        outputs = None
        if ok and isinstance(result.output, dict):
            outputs = {k: v for k, v in result.output.items() if k != LINE_NUMBER_KEY}
        return LineOutcome(
            ok=ok,
            outputs=outputs,
            error=None if ok else redact(error_text(result.run_info.error), self._secrets),
            logs=self._logs(result),
            aggregation_inputs=dict(result.aggregation_inputs or {}) if ok else None,
            traces=self._node_spans(result),
        )

    def _node_spans(self, result: Any) -> list[dict[str, Any]] | None:
        """One span per node that ran, in start order: its name, timing, output and error (node inputs are
        the line's inputs and the prompt: left out to keep the hot path cheap)."""
        from llmops_tui.core.backends import tracing

        infos = [i for i in (getattr(result, "node_run_infos", None) or {}).values() if i.start_time]
        if not infos:
            return None
        infos.sort(key=lambda i: i.start_time)
        t0 = infos[0].start_time.timestamp()
        spans = []
        for info in infos[: tracing.MAX_SPANS]:
            start = info.start_time.timestamp()
            end = info.end_time.timestamp() if info.end_time else start
            ok = _status_ok(info.status)
            if not ok and not info.error:  # bypassed by an activate condition, or not finished
                ok, info_output = (
                    True,
                    tracing.Text(f"({getattr(info.status, 'value', info.status)})".lower()),
                )
            else:
                info_output = info.output
            spans.append(
                tracing.span(
                    str(info.node),
                    "node",
                    start,
                    end,
                    t0,
                    0,
                    output=tracing.summarise(info_output, self._secrets) if ok else None,
                    error=None if ok else redact(error_text(info.error), self._secrets)[:300],
                )
            )
        return spans

    def _forget(self, line_run_id: str) -> None:
        """Prompt flow keeps every line's run infos in its tracker: drop them, so memory stays flat."""
        tracker = getattr(self._executor, "_run_tracker", None)
        if tracker is None:
            return
        for rid in [r for r in list(tracker._node_runs) if r.startswith(line_run_id)]:
            tracker._node_runs.pop(rid, None)
        tracker._flow_runs.pop(line_run_id, None)

    def _logs(self, result: Any) -> dict[str, str] | None:
        """What the line's nodes printed (Prompt flow captures it per node), each line tagged with its node."""
        out: dict[str, list[str]] = {"stdout": [], "stderr": []}
        for name, info in (getattr(result, "node_run_infos", None) or {}).items():
            logs = getattr(info, "logs", None) or {}
            for stream in ("stdout", "stderr"):
                text = logs.get(stream) or ""
                if text.strip():
                    out[stream].append(f"[{name}] {text.rstrip()}")
        joined = {k: redact("\n".join(v)[-_MAX_LOG_CHARS:], self._secrets) for k, v in out.items() if v}
        return joined or None

    def run_aggregation(self, inputs: list[dict[str, Any]], outcomes: list[LineOutcome]) -> dict[str, float]:
        from promptflow._utils.execution_utils import collect_lines, get_aggregation_inputs_properties
        from promptflow._utils.utils import transpose
        from promptflow.executor.flow_validator import FlowValidator

        if not inputs or not self._has_aggregation:
            return {}
        flow = self._executor._flow
        resolved = [FlowValidator.ensure_flow_inputs_type(flow=flow, inputs=x) for x in inputs]
        batch_inputs = transpose(resolved, keys=list(flow.inputs.keys()))
        aggr = [o.aggregation_inputs or {} for o in outcomes]
        aggregation_inputs = transpose(aggr, keys=get_aggregation_inputs_properties(flow))
        aggregation_inputs = collect_lines(list(range(len(aggr))), aggregation_inputs)
        # Prompt flow's log_metric goes to process-wide loggers: two aggregations at once would see each
        # other's metrics, so aggregation steps run one at a time (they are cheap).
        with _AGGREGATION_LOCK:
            result = self._executor.exec_aggregation(
                batch_inputs, aggregation_inputs, run_id=f"aggr-{uuid.uuid4().hex[:8]}"
            )
        for name, info in (result.node_run_infos or {}).items():
            if not _status_ok(info.status):
                raise AggregationError(
                    f"aggregation node {name} failed: {redact(error_text(info.error), self._secrets)}"
                )
        return dict(result.metrics or {})
