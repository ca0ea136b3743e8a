"""Flex flows (``flow.flex.yaml``) and code-only evaluator folders, in-process.

A flex flow's entry is a function (``module:function``) or a callable class (``module:Class``) built
from ``init`` parameters (``init.json`` in the flow folder; a cell's ``init.X`` overrides are written
there by :mod:`llmops_tui.core.materialize`). A code-only evaluator is a folder of Python modules whose
``eval*`` functions take mapped inputs and return a score or a dict of scores: it runs as one function
entry whose output is the union of those scores, aggregated as the mean of numbers and the rate of
booleans.

Semantics follow Prompt flow's own flex executor (``ScriptExecutor``), which ``pf.run`` uses, so
metrics equal ``pf.run`` + ``pf.get_metrics``: a plain return value is the output named ``output``, a
dict is the outputs, a dataclass its fields; ``__aggregate__`` takes one parameter, the list of the
succeeded lines' outputs (dicts as attribute dicts), and returns the metrics. What differs, on purpose:

- Modules are loaded by file path under a name private to the flow folder, so two flows (or two cells'
  copies of one flow) with the same module names never share code through ``sys.modules``.
- Model configurations in init (``AzureOpenAIModelConfiguration`` / ``OpenAIModelConfiguration``, as an
  object type or a mapping in init.json) resolve to the run's connection: the one named by their
  ``connection`` field, else the run's first connection (``--llm-endpoint sandbox`` included).
- Flows that build their own OpenAI client from the usual environment variables get them set from the
  run's first connection (only when the flow's code or prompty files mention them).
- What a line prints is captured per line by a context-aware stream installed once (Prompt flow's own
  per-line swap of ``sys.stdout`` is not safe across threads).
- Each line's trace (:mod:`llmops_tui.core.backends.tracing`): the entry call, every function decorated
  with Prompt flow's ``@trace`` (prompty calls included) and every model call made through the
  ``openai`` client. Prompt flow records these offline with its context-local ``Tracer`` when tracing is
  on; tracing stays off for the process (``PF_DISABLE_TRACING=true``, so DAG lines pay nothing) and is
  switched on only inside a flex line, through a context variable its on/off check consults.

Every Prompt flow import of this backend lives here.
"""

from __future__ import annotations

import asyncio
import contextvars
import dataclasses
import datetime
import importlib.util
import inspect
import io
import json
import logging
import os
import sys
import threading
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

from llmops_tui.core.backends import tracing
from llmops_tui.core.backends.base import (
    AggregationError,
    BackendOptions,
    ConnectionSpec,
    FlowBackend,
    FlowLoadError,
    LineOutcome,
)
from llmops_tui.core.flows import (
    FLEX_FILE,
    INIT_FILE,
    MODEL_CONFIG_TYPES,
    code_evaluator_functions,
    is_model_config_value,
    module_file,
)
from llmops_tui.core.redact import redact

log = logging.getLogger(__name__)
_IMPORT_LOCK = threading.Lock()
_MAX_LOG_CHARS = 20_000
_ENV_MARKERS = ("AZURE_OPENAI_", "OPENAI_API_KEY", "OPENAI_BASE_URL", "OPENAI_API_VERSION", "${env:")

# ------------------------------------------------------------------------------------ output capture

_line_logs: contextvars.ContextVar[dict[str, io.StringIO] | None] = contextvars.ContextVar(
    "llmops_flex_line_logs", default=None
)
_CAPTURE_LOCK = threading.Lock()


class _LineStream(io.TextIOBase):
    """Writes go to the running line's buffer when there is one, else to the stream it replaced."""

    def __init__(self, stream_name: str, previous: Any):
        self.stream_name = stream_name
        self.previous = previous

    def write(self, s: str) -> int:
        buffers = _line_logs.get()
        if buffers is None:
            return int(self.previous.write(s) or 0)
        buffers[self.stream_name].write(s)
        return len(s)

    def flush(self) -> None:
        if _line_logs.get() is None:
            self.previous.flush()

    def isatty(self) -> bool:
        return False


def _install_capture() -> None:
    with _CAPTURE_LOCK:
        if not isinstance(sys.stdout, _LineStream):
            sys.stdout = _LineStream("stdout", sys.stdout)
        if not isinstance(sys.stderr, _LineStream):
            sys.stderr = _LineStream("stderr", sys.stderr)


# ------------------------------------------------------------------------------------------ traces

_tracing_on: contextvars.ContextVar[bool] = contextvars.ContextVar("llmops_flex_tracing", default=False)
_TRACING_LOCK = threading.Lock()
_tracing_ready = False


def _enable_line_tracing() -> None:
    """Once per process: Prompt flow's tracing on inside flex lines only, and ``openai`` calls traced.

    ``@trace`` and Prompt flow's ``Tracer`` ask ``promptflow.tracing._utils.is_tracing_disabled()`` on
    every call; it is replaced by a check that answers "enabled" while a flex line runs in this context
    and otherwise what it answered before. The ``openai`` create methods get Prompt flow's LLM tracing
    wrapper (after our call policy's, so a model call's span covers its retries)."""
    global _tracing_ready
    with _TRACING_LOCK:
        if _tracing_ready:
            return
        from promptflow.tracing import _utils as pf_trace_utils
        from promptflow.tracing._integrations._openai_injector import inject_openai_api

        from llmops_tui.core import llmhooks

        original = pf_trace_utils.is_tracing_disabled
        if not getattr(original, "_llmops", False):

            def is_tracing_disabled() -> bool:
                return False if _tracing_on.get() else bool(original())

            is_tracing_disabled._llmops = True  # type: ignore[attr-defined]
            pf_trace_utils.is_tracing_disabled = is_tracing_disabled
        llmhooks.install()  # first, so Prompt flow's wrapper sits outside ours and is applied once
        inject_openai_api()
        _tracing_ready = True


def _now() -> float:
    # Prompt flow stamps its traces with datetime.utcnow().timestamp(): the same clock, the same offset
    return datetime.datetime.utcnow().timestamp()


# ------------------------------------------------------------------------------------ loading code


def _code_stamp(flow_dir: Path) -> str:
    """Changes when the folder's Python files change (a long-lived process reloads edited code)."""
    parts = [str(flow_dir.resolve())]
    for path in sorted(flow_dir.rglob("*.py")):
        try:
            st = path.stat()
        except OSError:
            continue
        parts.append(f"{path.relative_to(flow_dir)}:{st.st_mtime_ns}:{st.st_size}")
    return uuid.uuid5(uuid.NAMESPACE_URL, "|".join(parts)).hex[:12]


def _local_names(flow_dir: Path) -> set[str]:
    """Top-level module names the folder defines (``x.py`` and packages ``x/__init__.py``)."""
    names = {p.stem for p in flow_dir.glob("*.py")}
    names |= {p.parent.name for p in flow_dir.glob("*/__init__.py")}
    return names


def load_module(flow_dir: Path, module: str) -> Any:
    """Import ``module`` of ``flow_dir`` by file path under a name private to the folder (and its code).

    While it loads, the folder is first on ``sys.path`` and cached modules named like the folder's own
    are set aside, so ``from helpers import x`` finds this folder's ``helpers.py``; afterwards the
    folder's modules move to private names and the set-aside ones come back."""
    path = module_file(flow_dir, module)
    if path is None:
        raise ModuleNotFoundError(f"no module '{module}' in the flow folder")
    stamp = _code_stamp(flow_dir)
    unique = f"_llmops_flex_{stamp}_{module.replace('.', '_')}"
    with _IMPORT_LOCK:
        if unique in sys.modules:
            return sys.modules[unique]
        local = _local_names(flow_dir)
        saved = {n: sys.modules.pop(n) for n in list(sys.modules) if n.split(".")[0] in local}
        before = set(sys.modules)
        folder = str(flow_dir)
        sys.path.insert(0, folder)
        try:
            spec = importlib.util.spec_from_file_location(unique, path)
            if spec is None or spec.loader is None:
                raise ImportError(f"cannot load {path.name}")
            mod = importlib.util.module_from_spec(spec)
            sys.modules[unique] = mod
            try:
                spec.loader.exec_module(mod)
            except BaseException:
                sys.modules.pop(unique, None)
                raise
        finally:
            try:
                sys.path.remove(folder)
            except ValueError:
                pass
            for name in set(sys.modules) - before - {unique}:
                if name.split(".")[0] in local:
                    sys.modules[f"_llmops_flex_{stamp}_{name}"] = sys.modules.pop(name)
            sys.modules.update(saved)
        return mod


# ----------------------------------------------------------------------------------- model configs


def _type_name(annotation: Any) -> str:
    if annotation is inspect.Parameter.empty:
        return ""
    name = getattr(annotation, "__name__", None) or str(annotation)
    return name.strip("'\"").rsplit(".", 1)[-1]


def _pick_connection(value: Any, connections: dict[str, ConnectionSpec], where: str) -> ConnectionSpec | None:
    named = value.get("connection") if isinstance(value, dict) else getattr(value, "connection", None)
    if named:
        spec = connections.get(str(named))
        if spec is None:
            raise FlowLoadError(
                f"{where}: connection '{named}' is not a connection of this run "
                f"({', '.join(connections) or 'none'})"
            )
        return spec
    return next(iter(connections.values()), None)


def resolve_model_config(value: Any, type_name: str, spec: ConnectionSpec | None) -> Any:
    """A Prompt flow model configuration for an init value (a mapping from init.json or an object),
    pointed at the run's connection when there is one. The key stays in memory."""
    from promptflow.core import AzureOpenAIModelConfiguration, OpenAIModelConfiguration

    if isinstance(value, AzureOpenAIModelConfiguration | OpenAIModelConfiguration):
        raw = {k: v for k, v in dataclasses.asdict(value).items() if v is not None}
    else:
        raw = {k: v for k, v in dict(value or {}).items() if k != "type"}
    deployment = raw.get("azure_deployment") or raw.get("model") or raw.get("deployment_name")
    if spec is None:
        raw.pop("connection", None) if "azure_endpoint" in raw or "base_url" in raw else None
        if type_name == "OpenAIModelConfiguration":
            return OpenAIModelConfiguration(**raw)
        return AzureOpenAIModelConfiguration(**raw)
    if spec.is_openai:
        return OpenAIModelConfiguration(model=deployment, base_url=spec.url, api_key=spec.api_key)
    return AzureOpenAIModelConfiguration(
        azure_deployment=deployment,
        azure_endpoint=spec.api_base,
        api_key=spec.api_key,
        api_version=spec.api_version or raw.get("api_version") or "2024-02-01",
    )


def _own_client_env(spec: ConnectionSpec) -> dict[str, str]:
    """The usual variables for a flow that builds its own client: both the Azure OpenAI and the OpenAI
    ones, pointed at the run's connection (a flow written for one keeps working with the other kind of
    endpoint when the server speaks both, as the sandbox does)."""
    azure_base = spec.api_base.rstrip("/").removesuffix("/v1") if spec.is_openai else spec.api_base
    version = spec.api_version or "2024-02-01"
    return {
        "AZURE_OPENAI_ENDPOINT": azure_base,
        "AZURE_OPENAI_API_KEY": spec.api_key,
        "OPENAI_API_VERSION": version,
        "AZURE_OPENAI_API_VERSION": version,
        "OPENAI_BASE_URL": spec.url if spec.is_openai else azure_base.rstrip("/") + "/v1",
        "OPENAI_API_KEY": spec.api_key,
    }


def _mentions_env(flow_dir: Path) -> bool:
    for path in list(flow_dir.rglob("*.py")) + list(flow_dir.rglob("*.prompty")):
        try:
            text = path.read_text(encoding="utf-8", errors="replace")
        except OSError:
            continue
        if any(m in text for m in _ENV_MARKERS):
            return True
    return False


# ------------------------------------------------------------------------------------ the entries


def _scores_mean(line_results: list[Any]) -> dict[str, float]:
    """Code-only evaluators' metrics: mean of numbers, rate of booleans, per score name."""
    values: dict[str, list[float]] = {}
    for result in line_results:
        for key, value in (result or {}).items():
            if key == "line_number":
                continue
            if isinstance(value, bool):
                values.setdefault(key, []).append(1.0 if value else 0.0)
            elif isinstance(value, int | float) and value == value:  # NaN left out
                values.setdefault(key, []).append(float(value))
    return {k: round(sum(v) / len(v), 4) for k, v in values.items() if v}


class _CodeEvaluator:
    """The functions of a code-only evaluator folder as one entry."""

    def __init__(self, functions: list[tuple[str, Callable[..., Any]]]):
        self.functions = functions
        self.params = [(name, inspect.signature(fn)) for name, fn in functions]

    def __call__(self, **inputs: Any) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for (name, fn), (_, sig) in zip(self.functions, self.params, strict=True):
            takes_all = any(p.kind is p.VAR_KEYWORD for p in sig.parameters.values())
            kwargs = inputs if takes_all else {k: v for k, v in inputs.items() if k in sig.parameters}
            result = _call(fn, kwargs)
            if isinstance(result, dict):
                out.update(result)
            else:
                out[name.removeprefix("eval_")] = result
        return out

    def __aggregate__(self, line_results: list[Any]) -> dict[str, float]:
        return _scores_mean(line_results)


def _call(fn: Callable[..., Any], kwargs: dict[str, Any]) -> Any:
    result = fn(**kwargs)
    if inspect.isawaitable(result):
        return asyncio.run(_await(result))
    return result


async def _await(awaitable: Any) -> Any:
    return await awaitable


def _stringify(output: Any) -> Any:
    """A generator output (a streamed answer) becomes its joined text, as Prompt flow does."""
    if inspect.isgenerator(output):
        return "".join(str(x) for x in output)
    if isinstance(output, dict):
        return {k: _stringify(v) for k, v in output.items()}
    return output


def _to_json_able(value: Any) -> Any:
    try:
        json.dumps(value)
        return value
    except (TypeError, ValueError):
        return json.loads(json.dumps(value, default=str))


class FlexBackend(FlowBackend):
    name = "flex"

    def __init__(self, flow_dir: Path, options: BackendOptions):
        self.flow_dir = Path(flow_dir)
        self.options = options
        self._secrets = list(options.secrets)
        for spec in options.connections.values():
            if spec.api_key and spec.api_key not in self._secrets:
                self._secrets.append(spec.api_key)
        source = options.source_dir or self.flow_dir
        self._is_code = not (self.flow_dir / FLEX_FILE).is_file()
        self._entry_name = "entry"
        self._shown = self._show(source / FLEX_FILE if not self._is_code else source)
        _install_capture()
        try:
            self._func, self._aggregate = self._load()
        except FlowLoadError as exc:
            raise FlowLoadError(redact(str(exc), self._secrets)) from None
        except Exception as exc:
            log.debug("flex flow %s failed to load", flow_dir, exc_info=True)
            text = " ".join(f"{type(exc).__name__}: {exc}".split()).replace(str(self.flow_dir), str(source))
            raise FlowLoadError(redact(f"{self._shown}: {text}", self._secrets)) from exc

    def _show(self, path: Path) -> str:
        if self.options.workspace is not None:
            try:
                return str(Path(path).relative_to(self.options.workspace))
            except ValueError:
                pass
        return str(path)

    # --------------------------------------------------------------------------------- loading

    def _load(self) -> tuple[Callable[..., Any], Callable[..., Any] | None]:
        if _mentions_env(self.flow_dir) and self.options.connections:
            os.environ.update(_own_client_env(next(iter(self.options.connections.values()))))
        if self._is_code:
            functions = code_evaluator_functions(self.flow_dir)
            if not functions:
                raise FlowLoadError(f"{self._shown}: no flow file and no eval* functions in its modules")
            loaded = []
            for item in functions:
                module, _, name = item.partition(":")
                loaded.append((name, getattr(load_module(self.flow_dir, module), name)))
            evaluator = _CodeEvaluator(loaded)
            self._entry_name = "code evaluator (" + ", ".join(name for name, _ in loaded) + ")"
            return evaluator, evaluator.__aggregate__
        from llmops_tui.core.files import load_yaml

        data = load_yaml(self.flow_dir / FLEX_FILE) or {}
        entry = str((data.get("entry") if isinstance(data, dict) else "") or "")
        module, sep, name = entry.partition(":")
        if not sep or not module.strip() or not name.strip():
            raise FlowLoadError(f"{self._shown}: entry '{entry}' is not module:function or module:Class")
        target = getattr(load_module(self.flow_dir, module.strip()), name.strip(), None)
        if target is None:
            raise FlowLoadError(f"{self._shown}: entry '{entry}': module {module} has no '{name}'")
        self._entry_name = str(getattr(target, "__qualname__", name.strip()))
        if not inspect.isclass(target):
            if not callable(target):
                raise FlowLoadError(f"{self._shown}: entry '{entry}' is not callable")
            return target, None
        init = self._init_kwargs(target, data if isinstance(data, dict) else {})
        try:
            obj = target(**init)
        except Exception as exc:
            text = redact(" ".join(f"{type(exc).__name__}: {exc}".split()), self._secrets)
            raise FlowLoadError(f"{self._shown}: entry '{entry}' could not be initialised: {text}") from exc
        aggregate = getattr(obj, "__aggregate__", None)
        if aggregate is not None and len(inspect.signature(aggregate).parameters) != 1:
            raise FlowLoadError(f"{self._shown}: __aggregate__ must take exactly one parameter (the lines)")
        if not callable(obj):
            raise FlowLoadError(f"{self._shown}: entry '{entry}' has no __call__ method")
        return obj, aggregate

    def _init_kwargs(self, cls: type, data: dict[str, Any]) -> dict[str, Any]:
        values: dict[str, Any] = {}
        sample = (data.get("sample") or {}).get("init") if isinstance(data.get("sample"), dict) else None
        if isinstance(sample, dict):
            values.update(sample)
        init_file = self.flow_dir / INIT_FILE
        shown_init = self._show((self.options.source_dir or self.flow_dir) / INIT_FILE)
        if init_file.is_file():
            try:
                loaded = json.loads(init_file.read_text(encoding="utf-8"))
            except ValueError as exc:
                raise FlowLoadError(f"{shown_init}: not valid JSON ({exc})") from exc
            if not isinstance(loaded, dict):
                raise FlowLoadError(f"{shown_init}: must be a JSON object of init parameters")
            values.update(loaded)
        params = inspect.signature(cls.__init__).parameters  # type: ignore[misc]
        resolved: dict[str, Any] = {}
        for key, param in list(params.items())[1:]:
            if param.kind in (param.VAR_POSITIONAL, param.VAR_KEYWORD):
                continue
            if key not in values:
                if param.default is param.empty:
                    raise FlowLoadError(
                        f"{shown_init}: no value for init parameter '{key}' of {cls.__name__}"
                    )
                continue
            value = values[key]
            type_name = _type_name(param.annotation)
            if type_name in MODEL_CONFIG_TYPES or (not type_name and is_model_config_value(value)):
                spec = _pick_connection(value, self.options.connections, f"{shown_init}: {key}")
                value = resolve_model_config(value, type_name, spec)
            resolved[key] = value
        unknown = [k for k in values if k not in params]
        if unknown and not any(p.kind is p.VAR_KEYWORD for p in params.values()):
            raise FlowLoadError(
                f"{shown_init}: {cls.__name__} takes no init parameter '{unknown[0]}'"
                f" ({', '.join(list(params)[1:]) or 'none'})"
            )
        return resolved

    # ---------------------------------------------------------------------------------- lines

    @property
    def has_aggregation(self) -> bool:
        return self._aggregate is not None

    def run_line(self, inputs: dict[str, Any], index: int, run_id: str) -> LineOutcome:
        """Run one line in the calling thread. Its deadline is the line pool's business
        (:mod:`llmops_tui.core.linepool`): code that runs past it has its thread abandoned there, as for
        every backend; what the line prints is captured, and anything it raises (``SystemExit``
        included) fails the line, not the run."""
        try:
            return self._run_line(inputs, index, run_id)
        except BaseException as exc:  # noqa: BLE001 - SystemExit and the like end the line, not the run
            text = " ".join(f"{type(exc).__name__}: {exc}".split())
            return LineOutcome(ok=False, error=redact(text, self._secrets))

    def _run_line(self, inputs: dict[str, Any], index: int, run_id: str) -> LineOutcome:
        buffers = {"stdout": io.StringIO(), "stderr": io.StringIO()}
        token = _line_logs.set(buffers)
        try:
            kwargs = self._inputs_for(inputs)
            raw, failure, spans = self._traced_call(kwargs, f"{run_id}-{index}-{uuid.uuid4().hex[:6]}")
        finally:
            _line_logs.reset(token)
        if failure is not None:
            text = " ".join(f"{type(failure).__name__}: {failure}".split())
            return LineOutcome(
                ok=False, error=redact(text, self._secrets), logs=self._logs(buffers), traces=spans
            )
        try:
            from promptflow._utils.dataclass_serializer import convert_eager_flow_output_to_dict

            outputs = _to_json_able(convert_eager_flow_output_to_dict(raw))
        except Exception as exc:
            text = " ".join(f"output is not serialisable: {type(exc).__name__}: {exc}".split())
            return LineOutcome(
                ok=False, error=redact(text, self._secrets), logs=self._logs(buffers), traces=spans
            )
        # what __aggregate__ receives for this line, as Prompt flow's batch engine passes it: a dict
        # output (with the line number Prompt flow adds to it) or the plain value
        if isinstance(raw, dict):
            line_result: Any = {**outputs, "line_number": index}
        elif dataclasses.is_dataclass(raw):
            line_result = {"__dataclass__": outputs}
        else:
            line_result = _to_json_able(raw)
        return LineOutcome(
            ok=True,
            outputs=outputs,
            logs=self._logs(buffers),
            aggregation_inputs={"line_result": line_result},
            traces=spans,
        )

    def _traced_call(
        self, kwargs: dict[str, Any], line_run_id: str
    ) -> tuple[Any, Exception | None, list[dict[str, Any]]]:
        """Call the entry with Prompt flow's tracing on for this line only: its result (or the exception
        it raised) and the line's spans, the entry first."""
        from promptflow.tracing._tracer import Tracer

        _enable_line_tracing()
        switch = _tracing_on.set(True)
        Tracer.start_tracing(line_run_id)
        started = _now()
        raw: Any = None
        failure: Exception | None = None
        try:
            raw = _stringify(_call(self._func, kwargs))
        except Exception as exc:
            log.debug("flex line failed", exc_info=True)
            failure = exc
        finally:
            recorded = Tracer.end_tracing(line_run_id)
            _tracing_on.reset(switch)
        ended = _now()
        try:
            return raw, failure, self._spans(kwargs, raw, failure, started, ended, recorded)
        except Exception:  # a trace that cannot be read never fails the line
            log.debug("flex trace could not be summarised", exc_info=True)
            return raw, failure, []

    def _spans(
        self,
        kwargs: dict[str, Any],
        raw: Any,
        failure: Exception | None,
        started: float,
        ended: float,
        recorded: Any,
    ) -> list[dict[str, Any]]:
        """The entry's span, then what Prompt flow recorded under it. An entry decorated with ``@trace`` is
        recorded by Prompt flow already: its record becomes the entry span (no duplicate)."""
        records = [r for r in (recorded or []) if isinstance(r, dict)]
        if (
            len(records) == 1
            and str(records[0].get("name", "")).split(".")[-1] == self._entry_name.split(".")[-1]
        ):
            spans = tracing.from_promptflow(records, started, self._secrets)
            spans[0]["kind"] = "entry"
            return spans
        error = " ".join(f"{type(failure).__name__}: {failure}".split()) if failure is not None else None
        root = tracing.span(
            self._entry_name,
            "entry",
            started,
            ended,
            started,
            0,
            inputs=tracing.summarise(kwargs, self._secrets),
            output=tracing.summarise(_to_json_able(raw) if failure is None else None, self._secrets),
            error=redact(error, self._secrets)[:300] if error else None,
        )
        return [root, *tracing.from_promptflow(records, started, self._secrets, depth=1)][: tracing.MAX_SPANS]

    def _inputs_for(self, inputs: dict[str, Any]) -> dict[str, Any]:
        """Only the inputs the entry takes (Prompt flow drops the others), unless it takes ``**kwargs``."""
        sig = inspect.signature(self._func)
        if any(p.kind is p.VAR_KEYWORD for p in sig.parameters.values()):
            return dict(inputs)
        return {k: v for k, v in inputs.items() if k in sig.parameters}

    def _logs(self, buffers: dict[str, io.StringIO]) -> dict[str, str] | None:
        out = {}
        for stream, buf in buffers.items():
            text = buf.getvalue()
            if text.strip():
                out[stream] = redact(text.rstrip()[-_MAX_LOG_CHARS:], self._secrets)
        return out or None

    def run_aggregation(self, inputs: list[dict[str, Any]], outcomes: list[LineOutcome]) -> dict[str, float]:
        if not outcomes or self._aggregate is None:
            return {}
        from promptflow._utils.utils import AttrDict

        line_results: list[Any] = []
        for outcome in outcomes:
            value = (outcome.aggregation_inputs or {}).get("line_result", outcome.outputs)
            if isinstance(value, dict) and "__dataclass__" in value:
                value = AttrDict(value["__dataclass__"])
            elif isinstance(value, dict):
                value = AttrDict(value)
            line_results.append(value)
        try:
            result = _call(
                self._aggregate, {next(iter(inspect.signature(self._aggregate).parameters)): line_results}
            )
        except Exception as exc:
            text = " ".join(f"{type(exc).__name__}: {exc}".split())
            raise AggregationError(f"__aggregate__ failed: {redact(text, self._secrets)}") from exc
        if not isinstance(result, dict):
            return {}  # Prompt flow logs no metrics when __aggregate__ returns something else
        return {str(k): v for k, v in result.items()}
