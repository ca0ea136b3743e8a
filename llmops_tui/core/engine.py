"""The sweep engine: every line of every cell through Prompt flow's own executor, in-process.

One ``FlowExecutor`` per materialised flow (variants applied, grid overrides baked in), one bounded thread
pool shared by all cells (``concurrency``), our LLM-call policy from :mod:`llmops_tui.core.llmhooks`
(rate limits, retries, timeouts, token usage), a persistent content-addressed line cache, and every
finished line committed to the run store as it finishes. Evaluators run per cell as soon as the
cell's lines are done, through the same executor (line nodes, then aggregation nodes with
``log_metric``), exactly as ``pf.run`` would.

The engine reports through events (:mod:`llmops_tui.core.events`) and stops when a
``threading.Event`` is set; it never knows who is listening.
"""

from __future__ import annotations

import logging
import math
import queue
import re
import statistics
import sys
import threading
import time
import uuid
from collections.abc import Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from llmops_tui.core import events as ev
from llmops_tui.core.errors import LlmopsError
from llmops_tui.core.files import read_rows
from llmops_tui.core.flows import model_name
from llmops_tui.core.hashing import hash_folder, hash_value
from llmops_tui.core.materialize import materialize_flow
from llmops_tui.core.pfenv import configure_promptflow_env
from llmops_tui.core.store import CellRecord, LineRecord, RunStore
from llmops_tui.core.sweep import Cell, SweepOptions, SweepPlan, plan_sweep
from llmops_tui.core.workspace import Evaluator, UseCase, load_workspace

log = logging.getLogger(__name__)
_MAP_RE = re.compile(r"^\$\{(data|run\.outputs|run\.inputs|inputs)\.([^}]+)\}$")
LINE_NUMBER_KEY = "line_number"
# Prompt flow's log_metric goes to process-wide loggers: two aggregations at once would see each
# other's metrics, so aggregation nodes run one at a time (they are cheap).
_AGGREGATION_LOCK = threading.Lock()


def quiet_promptflow_logs(level: int = logging.CRITICAL) -> None:
    """Prompt flow logs every failed node with a traceback to stderr; failures are ours to report
    (one line each, in the store and in events). ``LLMOPS_DEBUG=1`` keeps its logs."""
    import os

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


def new_run_id(use_case: str) -> str:
    return time.strftime("%Y%m%d-%H%M%S", time.gmtime()) + "-" + uuid.uuid4().hex[:6]


def map_inputs(
    mappings: dict[str, str],
    row: dict[str, Any],
    outputs: dict[str, Any] | None = None,
    run_inputs: dict[str, Any] | None = None,
    flow_inputs: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """Resolve ``${data.x}`` / ``${run.outputs.y}`` / ``${run.inputs.z}`` mappings for one line.

    Flow inputs without a mapping take the same-named column, as ``pf.run`` does."""
    out: dict[str, Any] = {}
    for name in flow_inputs or {}:
        if name in row:
            out[name] = row[name]
    for key, value in mappings.items():
        match = _MAP_RE.match(str(value).strip())
        if not match:
            out[key] = value
            continue
        kind, name = match.groups()
        if kind in {"data", "inputs"}:
            if name in row:
                out[key] = row[name]
        elif kind == "run.outputs":
            if outputs is not None and name in outputs:
                out[key] = outputs[name]
        elif kind == "run.inputs":
            if run_inputs is not None and name in run_inputs:
                out[key] = run_inputs[name]
    return out


def _percentile(values: list[float], q: float) -> float | None:
    if not values:
        return None
    values = sorted(values)
    k = (len(values) - 1) * q
    lo = int(k)
    hi = min(lo + 1, len(values) - 1)
    return values[lo] + (values[hi] - values[lo]) * (k - lo)


def _error_text(error: Any, secrets: list[str]) -> str:
    if isinstance(error, dict):
        text = str(error.get("message") or error)
    else:
        text = str(error)
    return redact(text, secrets)


def redact(text: str, secrets: list[str]) -> str:
    for s in secrets:
        if s and len(s) >= 4:
            text = text.replace(s, "***")
    return text


@dataclass
class _CellState:
    cell: Cell
    flow_dir: Path
    flow_hash: str
    total: int
    pending: int
    done: int = 0
    errors: int = 0
    finished: bool = False
    exec_hash: str | None = None  # the executed copy's hash, when it differs from flow_hash


class SweepRunner:
    """One sweep (or the resumption of one). Use :func:`run_sweep` / :func:`resume_sweep`."""

    def __init__(
        self,
        ws_root: Path,
        uc: UseCase,
        plan: SweepPlan,
        *,
        run_id: str | None = None,
        cancel: threading.Event | None = None,
        progress_interval: float = 0.25,
        resumed: bool = False,
        store: RunStore | None = None,
    ):
        self.ws_root = Path(ws_root).resolve()
        self.uc = uc
        self.plan = plan
        self.options: SweepOptions = plan.options
        self.run_id = run_id or new_run_id(uc.name)
        self.cancel = cancel or threading.Event()
        self.progress_interval = progress_interval
        self.resumed = resumed
        self.store = store or RunStore.for_workspace(self.ws_root)
        self._own_store = store is None
        self._events: queue.Queue[Any] = queue.Queue()
        self._lock = threading.Lock()
        self._llm_calls = 0
        self._cache_hits = 0
        self._retries = 0
        self._tokens = 0
        self._cost = 0.0
        self._priced = True
        self._secrets: list[str] = []
        self._sandbox: Any = None
        self._limiters: dict[str, Any] = {}
        self._executors: dict[Path, Any] = {}
        self._exec_lock = threading.Lock()
        self._target = ""
        # --llm-endpoint URL means any OpenAI-compatible server: Azure OpenAI nodes are switched to the
        # OpenAI provider for execution (the sandbox speaks both, so it keeps the flows as written).
        endpoint = self.options.llm_endpoint
        self._openai_compatible = (
            bool(endpoint) and endpoint != "sandbox" and "/openai/deployments" not in str(endpoint)
        )

    # ------------------------------------------------------------------------------------- set-up

    def _setup(self) -> None:
        configure_promptflow_env(self.ws_root / ".llmops" / "promptflow")
        from llmops_tui.core import llmhooks
        from llmops_tui.core.connections import SANDBOX, build_connections, execution_dicts

        llmhooks.install()
        quiet_promptflow_logs()
        endpoint = self.options.llm_endpoint
        if endpoint == SANDBOX:
            from llmops_tui.sandbox import start_sandbox

            self._sandbox = start_sandbox(
                host="127.0.0.1", port=0, latency_ms=self.options.sandbox_latency_ms
            )
            base = self._sandbox.url
            self._target = "sandbox"
        elif endpoint:
            base = endpoint
            self._target = endpoint
        else:
            base = None
        conns = build_connections(self.uc, self.ws_root, base, openai_compatible=self._openai_compatible)
        for c in conns.values():
            key = getattr(c, "api_key", None)
            if key:
                self._secrets.append(str(key))
        if not self._target:
            self._target = hash_value(
                {n: getattr(c, "api_base", None) or getattr(c, "base_url", None) for n, c in conns.items()}
            )
        self._conn_dicts = execution_dicts(conns)
        self._conn_url = {}
        for name, c in conns.items():
            url = (getattr(c, "api_base", None) or getattr(c, "base_url", None) or "").rstrip("/")
            self._conn_url[url] = name
        spec = self.uc.extras.sweep
        line_timeout = self.options.line_timeout_s or spec.line_timeout_s
        self._policy = llmhooks.RetryPolicy(
            max_retries=self.options.max_retries
            if self.options.max_retries is not None
            else spec.max_retries,
            request_timeout_s=self.options.request_timeout_s or min(60.0, line_timeout),
        )
        self._line_timeout = self.options.line_timeout_s or spec.line_timeout_s

    def _limiter_for(self, base_url: str) -> Any:
        from llmops_tui.core.llmhooks import RateLimiter

        with self._lock:
            lim = self._limiters.get(base_url)
            if lim is None:
                name = next(
                    (n for u, n in self._conn_url.items() if u and base_url.rstrip("/").startswith(u)), None
                )
                spec = self.uc.extras.rate_limits.get(name) if name else None
                lim = RateLimiter(rpm=spec.rpm if spec else None, tpm=spec.tpm if spec else None)
                self._limiters[base_url] = lim
            return lim

    def _executor(self, flow_dir: Path) -> Any:
        with self._exec_lock:
            executor = self._executors.get(flow_dir)
            if executor is None:
                from promptflow.executor import FlowExecutor

                executor = FlowExecutor.create(
                    flow_dir / "flow.dag.yaml",
                    self._conn_dicts,
                    working_dir=flow_dir,
                    raise_ex=False,
                    line_timeout_sec=max(1, math.ceil(self._line_timeout)),  # Prompt flow takes whole seconds
                )
                self._executors[flow_dir] = executor
            return executor

    # ---------------------------------------------------------------------------------- one line

    def _cache_key(self, flow_hash: str, inputs: dict[str, Any], repeat: int) -> str:
        return hash_value({"flow": flow_hash, "inputs": inputs, "target": self._target, "repeat": repeat})

    def _exec(
        self,
        executor: Any,
        inputs: dict[str, Any],
        index: int,
        tag: str,
        *,
        on_retry: Any = None,
        seed: int | None = None,
    ) -> tuple[Any, Any]:
        """Run one line through ``executor`` under our LLM-call policy; every line the engine runs (flow
        or evaluator) goes through here. Returns (LineResult, or the exception the executor raised, the
        line's counters) and drops the run infos Prompt flow keeps per line, so memory stays flat."""
        from llmops_tui.core import llmhooks

        ctx = llmhooks.LineContext(
            policy=self._policy,
            cancel=self.cancel,
            limiter_for=self._limiter_for,
            on_retry=on_retry,
            request_seed=seed,
            line_timeout_s=self._line_timeout,  # the deadline that stops the line's calls and retries
        )
        token = llmhooks.current_line.set(ctx)
        run_id = f"{self.run_id}-{tag}-{index}-{uuid.uuid4().hex[:6]}"
        result: Any
        try:
            result = executor.exec_line(inputs, index=index, run_id=run_id)
        except Exception as exc:
            result = exc
        finally:
            llmhooks.current_line.reset(token)
        tracker = getattr(executor, "_run_tracker", None)
        if tracker is not None:
            for rid in [r for r in list(tracker._node_runs) if r.startswith(run_id)]:
                tracker._node_runs.pop(rid, None)
            tracker._flow_runs.pop(run_id, None)
        return result, ctx

    def _run_line(self, state: _CellState, index: int, inputs: dict[str, Any]) -> None:
        if self.cancel.is_set():
            return
        cell = state.cell
        key = self._cache_key(state.exec_hash or state.flow_hash, inputs, cell.repeat)
        started = time.perf_counter()
        if not self.options.no_cache:
            hit = self.store.cache_get(key)
            if hit is not None:
                rec = LineRecord(
                    run_id=self.run_id,
                    cell_id=cell.cell_id,
                    line=index,
                    status="ok",
                    inputs=inputs,
                    outputs=hit["outputs"],
                    attempts=0,
                    latency_ms=hit.get("latency_ms") or (time.perf_counter() - started) * 1000,
                    prompt_tokens=hit["prompt_tokens"],
                    completion_tokens=hit["completion_tokens"],
                    total_tokens=hit["total_tokens"],
                    llm_calls=0,
                    cache_hit=True,
                )
                self.store.record_line(rec)
                self._events.put(("line", state, rec, 0))
                return
        executor = self._executor(state.flow_dir)
        retries_seen: list[tuple[int, str, float]] = []

        def on_retry(attempt: int, reason: str, delay: float) -> None:
            retries_seen.append((attempt, reason, delay))
            self._events.put(("retry", state, index, attempt, reason, delay))

        # The sandbox is deterministic per request; repetitions carry their index as the request seed so
        # that at temperature > 0 they differ as a real model's would (real models vary on their own).
        seed = cell.repeat if (self._target == "sandbox" and cell.repeat) else None
        result, ctx = self._exec(executor, inputs, index, cell.cell_id, on_retry=on_retry, seed=seed)
        error: str | None = None
        if isinstance(result, Exception):  # the executor itself failed: record, never stop the sweep
            error = redact(f"{type(result).__name__}: {result}", self._secrets)
            result = None
        latency = (time.perf_counter() - started) * 1000
        outputs = None
        if result is not None:
            status_value = str(getattr(result.run_info.status, "value", result.run_info.status))
            ok = status_value == "Completed"
            error = None if ok else _error_text(result.run_info.error, self._secrets)
            if ok and isinstance(result.output, dict):
                outputs = {k: v for k, v in result.output.items() if k != LINE_NUMBER_KEY}
        else:
            ok = False
        if not ok and self.cancel.is_set():
            return  # cancelled mid-line: not a failure; resume runs it again
        rec = LineRecord(
            run_id=self.run_id,
            cell_id=cell.cell_id,
            line=index,
            status="ok" if ok else "failed",
            inputs=inputs,
            outputs=outputs,
            error=error,
            attempts=1 + len(retries_seen),
            latency_ms=latency,
            prompt_tokens=ctx.prompt_tokens,
            completion_tokens=ctx.completion_tokens,
            total_tokens=ctx.total_tokens,
            llm_calls=ctx.llm_calls,
            cache_hit=False,
        )
        self.store.record_line(rec)
        if ok and not self.options.no_cache:
            self.store.cache_put(key, outputs, ctx.tokens, ctx.llm_calls, latency)
        self._events.put(("line", state, rec, len(retries_seen)))

    # ------------------------------------------------------------------------------- evaluation

    def _evaluators_for(self, dataset: str) -> list[tuple[Evaluator, Any]]:
        out = []
        for evaluator in self.uc.evaluators:
            for ds in evaluator.datasets_for(dataset):
                out.append((evaluator, ds))
        return out

    def _evaluate_cell(self, state: _CellState) -> None:
        cell = state.cell
        try:
            lines = {r.line: r for r in self.store.lines(self.run_id, cell.cell_id) if r.status == "ok"}
            for evaluator, ds in self._evaluators_for(cell.dataset):
                if self.cancel.is_set():
                    return
                if evaluator.flow is None or ds.path is None:
                    continue
                rows = read_rows(ds.path, self.ws_root)
                if self.options.limit:
                    rows = rows[: self.options.limit]
                self._events.put(("eval_started", cell.cell_id, evaluator.name, len(lines)))
                metrics, eval_rows = self._run_evaluator(evaluator, ds.mappings, rows, lines)
                self.store.record_eval_lines(self.run_id, cell.cell_id, evaluator.name, eval_rows)
                self.store.record_metrics(self.run_id, cell.cell_id, evaluator.name, metrics)
                self._events.put(("metrics", cell.cell_id, evaluator.name, metrics))
        except Exception as exc:  # an evaluator failing must not lose the run
            log.exception("evaluation failed")
            self._events.put(
                ("eval_error", cell.cell_id, redact(f"{type(exc).__name__}: {exc}", self._secrets))
            )

    def _run_evaluator(
        self,
        evaluator: Evaluator,
        mappings: dict[str, str],
        rows: list[dict[str, Any]],
        lines: dict[int, LineRecord],
    ) -> tuple[dict[str, float], list[tuple[int, str, Any, str | None]]]:
        from promptflow._utils.execution_utils import collect_lines, get_aggregation_inputs_properties
        from promptflow._utils.utils import transpose
        from promptflow.executor.flow_validator import FlowValidator

        assert evaluator.flow is not None
        flow_dir = evaluator.flow.path
        if self._openai_compatible and evaluator.flow.llm_nodes:
            flow_dir, _ = materialize_flow(
                flow_dir, self.ws_root / ".llmops" / "flows", openai_compatible=True
            )
        executor = self._executor(flow_dir)
        eval_hash = hash_folder(flow_dir)
        line_ids = sorted(i for i in lines if i < len(rows))

        def one(i: int) -> tuple[int, Any, dict[str, Any]]:
            rec = lines[i]
            inputs = map_inputs(
                mappings, rows[i], rec.outputs, rec.inputs, evaluator.flow.inputs if evaluator.flow else None
            )
            key = hash_value({"eval": eval_hash, "inputs": inputs, "target": self._target})
            if not self.options.no_cache:
                hit = self.store.cache_get(key)
                if hit is not None and "aggregation_inputs" in hit["outputs"]:
                    return i, hit["outputs"], inputs
            result, _ = self._exec(executor, inputs, i, f"eval-{evaluator.name}")
            if isinstance(result, Exception):
                raise result
            status_value = str(getattr(result.run_info.status, "value", result.run_info.status))
            data = {
                "ok": status_value == "Completed",
                "output": {k: v for k, v in (result.output or {}).items() if k != LINE_NUMBER_KEY},
                "aggregation_inputs": result.aggregation_inputs or {},
                "error": None
                if status_value == "Completed"
                else _error_text(result.run_info.error, self._secrets),
            }
            if data["ok"] and not self.options.no_cache:
                self.store.cache_put(key, data, {}, 0)
            return i, data, inputs

        workers = max(1, min(8, self.plan.concurrency))
        with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="llmops-eval") as pool:
            results = list(pool.map(one, line_ids))
        eval_rows: list[tuple[int, str, Any, str | None]] = []
        ok_inputs, ok_aggr = [], []
        for i, data, inputs in results:
            eval_rows.append(
                (i, "ok" if data["ok"] else "failed", data["output"] if data["ok"] else None, data["error"])
            )
            if data["ok"]:
                ok_inputs.append(inputs)
                ok_aggr.append(data["aggregation_inputs"])
        metrics: dict[str, float] = {}
        if ok_inputs and any(n.aggregation for n in evaluator.flow.nodes):
            flow = executor._flow
            resolved = [FlowValidator.ensure_flow_inputs_type(flow=flow, inputs=x) for x in ok_inputs]
            batch_inputs = transpose(resolved, keys=list(flow.inputs.keys()))
            aggregation_inputs = transpose(ok_aggr, keys=get_aggregation_inputs_properties(flow))
            aggregation_inputs = collect_lines(list(range(len(ok_aggr))), aggregation_inputs)
            with _AGGREGATION_LOCK:
                result = executor.exec_aggregation(
                    batch_inputs, aggregation_inputs, run_id=f"{self.run_id}-aggr"
                )
            metrics = {k: v for k, v in (result.metrics or {}).items()}
        return metrics, eval_rows

    # ------------------------------------------------------------------------------------ the run

    def _prepare_cells(self) -> list[_CellState]:
        flow = self.uc.standard_flow
        assert flow is not None
        dest = self.ws_root / ".llmops" / "flows"
        states = []
        for cell in self.plan.cells:
            # The recorded version is the flow as written (approvals and deploys compare with it); the
            # executed copy may differ only by the provider switch for OpenAI-compatible endpoints.
            flow_dir, version = materialize_flow(flow.path, dest, cell.variants, cell.params)
            state = _CellState(cell=cell, flow_dir=flow_dir, flow_hash=version, total=cell.lines, pending=0)
            if self._openai_compatible:
                state.flow_dir, state.exec_hash = materialize_flow(
                    flow.path, dest, cell.variants, cell.params, openai_compatible=True
                )
            states.append(state)
        return states

    def _dataset_rows(self) -> dict[str, list[dict[str, Any]]]:
        out = {}
        for name in self.plan.datasets:
            ds = self.uc.dataset(name)
            assert ds is not None and ds.path is not None
            rows = read_rows(ds.path, self.ws_root)
            out[name] = rows[: self.options.limit] if self.options.limit else rows
        return out

    def _config(self) -> dict[str, Any]:
        baseline = self.plan.baseline()
        return {
            "options": self.options.to_dict(),
            "defaults": self.plan.defaults,
            "cell_count": len(self.plan.cells),
            "lines_total": self.plan.lines_total,
            "llm_endpoint": "sandbox"
            if self.options.llm_endpoint == "sandbox"
            else (self.options.llm_endpoint or None),
            "baseline": baseline.cell_id if baseline else None,
            "concurrency": self.plan.concurrency,
            "workspace": str(self.ws_root),
        }

    def events(self) -> Iterator[ev.Event]:
        # Prompt flow swaps sys.stdout/stderr per line to capture node logs; with lines in parallel the
        # swaps interleave and can leave a capture writer installed. Restore the real streams at the end.
        self._streams = (sys.stdout, sys.stderr)
        started = time.perf_counter()
        status, error = "completed", None
        states: list[_CellState] = []
        try:
            if self.resumed:
                self.store.mark_running(self.run_id)
            else:
                self.store.create_run(self.run_id, self.uc.name, self.plan.env, self._config())
            self._setup()
            states = self._prepare_cells()
            if not self.resumed:
                self.store.add_cells(
                    self.run_id,
                    [
                        CellRecord(
                            self.run_id,
                            s.cell.cell_id,
                            s.cell.idx,
                            s.cell.variants,
                            s.cell.params,
                            s.cell.dataset,
                            s.cell.repeat,
                            s.flow_hash,
                            s.total,
                            "pending",
                            {"label": s.cell.label},
                        )
                        for s in states
                    ],
                )
            rows = self._dataset_rows()
            work: list[tuple[_CellState, int, dict[str, Any]]] = []
            already = 0
            flow_inputs = self.uc.standard_flow.inputs if self.uc.standard_flow else {}
            ds_map = {d.name: d for d in self.uc.datasets}
            for s in states:
                done = self.store.done_lines(self.run_id, s.cell.cell_id) if self.resumed else set()
                s.done = len(done)
                already += len(done)
                for i, row in enumerate(rows[s.cell.dataset]):
                    if i in done:
                        continue
                    inputs = map_inputs(ds_map[s.cell.dataset].mappings, row, flow_inputs=flow_inputs)
                    work.append((s, i, inputs))
                    s.pending += 1
            yield ev.SweepStarted(
                self.run_id, self.uc.name, len(states), self.plan.lines_total, self.resumed, already
            )
            yield from self._execute(states, work, started)
            if self.cancel.is_set():
                status = "cancelled"
        except LlmopsError:
            status, error = "failed", "bad input"
            self._finish(states, status, started, error)
            raise
        except GeneratorExit:
            self.cancel.set()
            status = "cancelled"
            self._finish(states, status, started, None)
            raise
        except KeyboardInterrupt:
            self.cancel.set()
            self._finish(states, "cancelled", started, None)
            raise
        except Exception as exc:
            status, error = "failed", redact(f"{type(exc).__name__}: {exc}", self._secrets)
            log.exception("sweep failed")
        summary = self._finish(states, status, started, error)
        yield ev.SweepFinished(self.run_id, status, summary, error)

    def _execute(
        self, states: list[_CellState], work: list[tuple[_CellState, int, dict[str, Any]]], started: float
    ) -> Iterator[ev.Event]:
        pool = ThreadPoolExecutor(max_workers=self.plan.concurrency, thread_name_prefix="llmops-line")
        eval_threads: list[threading.Thread] = []
        futures: list[Future[Any]] = []
        try:
            for s in states:
                if s.pending == 0:
                    # nothing to run (resumed or empty): evaluate now if needed
                    s.finished = True
                    t = threading.Thread(target=self._evaluate_cell, args=(s,), daemon=True)
                    t.start()
                    eval_threads.append(t)
                    yield ev.CellFinished(self.run_id, s.cell.cell_id, s.done, s.errors)
            for s, i, inputs in work:
                futures.append(pool.submit(self._run_line, s, i, inputs))
            last = 0.0
            done_count = sum(s.done for s in states)
            total = sum(s.total for s in states)
            errors_reported = 0
            while True:
                all_done = all(f.done() for f in futures) and all(not t.is_alive() for t in eval_threads)
                try:
                    item = self._events.get(timeout=self.progress_interval / 2)
                except queue.Empty:
                    item = None
                if item is not None:
                    kind = item[0]
                    if kind == "line":
                        _, s, rec, retries = item
                        s.done += 1
                        s.pending -= 1
                        done_count += 1
                        with self._lock:
                            self._llm_calls += rec.llm_calls
                            self._cache_hits += int(rec.cache_hit)
                            self._tokens += rec.total_tokens
                            self._cost_add(s, rec)
                        if rec.status != "ok":
                            s.errors += 1
                            if errors_reported < 200:  # rate-limit the error stream
                                errors_reported += 1
                                yield ev.LineFailed(
                                    self.run_id, s.cell.cell_id, rec.line, rec.error or "", rec.attempts
                                )
                        if s.pending == 0 and not s.finished:
                            s.finished = True
                            self.store.set_cell_status(self.run_id, s.cell.cell_id, "done")
                            yield ev.CellFinished(self.run_id, s.cell.cell_id, s.done, s.errors)
                            if not self.cancel.is_set():
                                t = threading.Thread(target=self._evaluate_cell, args=(s,), daemon=True)
                                t.start()
                                eval_threads.append(t)
                    elif kind == "retry":
                        _, s, line, attempt, reason, delay = item
                        with self._lock:
                            self._retries += 1
                        yield ev.RetryScheduled(self.run_id, s.cell.cell_id, line, attempt, reason, delay)
                    elif kind == "eval_started":
                        yield ev.EvaluationStarted(self.run_id, item[1], item[2], item[3])
                    elif kind == "metrics":
                        yield ev.MetricsReady(self.run_id, item[1], item[2], item[3])
                    elif kind == "eval_error":
                        yield ev.LineFailed(self.run_id, item[1], -1, f"evaluation failed: {item[2]}", 1)
                now = time.perf_counter()
                if now - last >= self.progress_interval:
                    last = now
                    yield self._progress(states, done_count, total, started)
                if self.cancel.is_set():
                    for f in futures:
                        f.cancel()
                if all_done and self._events.empty():
                    break
            yield self._progress(states, done_count, total, started)
        finally:
            pool.shutdown(wait=True, cancel_futures=True)
            for t in eval_threads:
                t.join(timeout=60)

    def _cost_add(self, s: _CellState, rec: LineRecord) -> None:
        model = self._cell_model(s.cell)
        price = self.uc.extras.prices.get(model) if model else None
        if price is None:
            self._priced = False
            return
        self._cost += (rec.prompt_tokens * price.prompt + rec.completion_tokens * price.completion) / 1000

    def _cell_model(self, cell: Cell) -> str | None:
        flow = self.uc.standard_flow
        if flow is None:
            return None
        models = (model_name(n.run_inputs(cell.variants.get(n.name), cell.params)) for n in flow.llm_nodes)
        return next((m for m in models if m), None)

    def _progress(self, states: list[_CellState], done: int, total: int, started: float) -> ev.Progress:
        elapsed = time.perf_counter() - started
        with self._lock:
            return ev.Progress(
                run_id=self.run_id,
                done=done,
                total=total,
                errors=sum(s.errors for s in states),
                llm_calls=self._llm_calls,
                cache_hits=self._cache_hits,
                retries=self._retries,
                tokens=self._tokens,
                cost=round(self._cost, 6) if self._priced else None,
                elapsed_s=elapsed,
                lines_per_s=done / elapsed if elapsed > 0 else 0.0,
                cells=[ev.CellProgress(s.cell.cell_id, s.done, s.total, s.errors) for s in states],
            )

    def _finish(
        self, states: list[_CellState], status: str, started: float, error: str | None
    ) -> dict[str, Any]:
        try:
            summary = summarize(self.store, self.run_id, wall_s=time.perf_counter() - started, status=status)
            self.store.finish_run(self.run_id, status, summary, error)
        finally:
            sys.stdout, sys.stderr = self._streams
            if self._sandbox is not None:
                self._sandbox.stop()
                self._sandbox = None
            if self._own_store:
                self.store.close()
        return summary


def summarize(
    store: RunStore, run_id: str, *, wall_s: float | None = None, status: str | None = None
) -> dict[str, Any]:
    """The run summary (``llmops sweep --json``): totals and per-cell figures from the store."""
    run = store.get_run(run_id)
    cells = store.cells(run_id)
    stats = store.line_stats(run_id)
    metrics = store.metrics(run_id)
    latencies = store.latencies(run_id)
    out_cells = []
    for c in cells:
        st = stats.get(c.cell_id, {})
        lat = latencies.get(c.cell_id, [])
        out_cells.append(
            {
                "cell_id": c.cell_id,
                "label": c.extra.get("label"),
                "variants": c.variants,
                "params": c.params,
                "dataset": c.dataset,
                "repeat": c.repeat,
                "lines": st.get("lines", 0),
                "lines_total": c.lines_total,
                "errors": st.get("errors", 0),
                "metrics": metrics.get(c.cell_id, {}),
                "llm_calls": st.get("llm_calls", 0),
                "cache_hits": st.get("cache_hits", 0),
                "tokens": {
                    "prompt": st.get("prompt_tokens", 0),
                    "completion": st.get("completion_tokens", 0),
                    "total": st.get("total_tokens", 0),
                },
                "latency_ms": {
                    "p50": round(statistics.median(lat), 2) if lat else None,
                    "p95": round(_percentile(lat, 0.95) or 0, 2) if lat else None,
                },
            }
        )
    return {
        "run_id": run_id,
        "status": status or (run.status if run else None),
        "use_case": run.use_case if run else None,
        "wall_s": round(wall_s, 3) if wall_s is not None else None,
        "llm_calls": sum(c["llm_calls"] for c in out_cells),
        "cache_hits": sum(c["cache_hits"] for c in out_cells),
        "lines_done": sum(c["lines"] for c in out_cells),
        "errors": sum(c["errors"] for c in out_cells),
        "cell_count": len(out_cells),
        "cells": out_cells,
    }


def run_sweep(
    ws_root: Path,
    uc: UseCase,
    plan: SweepPlan,
    *,
    cancel: threading.Event | None = None,
    progress_interval: float = 0.25,
    run_id: str | None = None,
) -> Iterator[ev.Event]:
    """Run a planned sweep; yields events, first ``SweepStarted`` (with the run id), last ``SweepFinished``."""
    return SweepRunner(
        ws_root, uc, plan, run_id=run_id, cancel=cancel, progress_interval=progress_interval
    ).events()


def resume_sweep(
    ws_root: Path, run_id: str, *, cancel: threading.Event | None = None, progress_interval: float = 0.25
) -> Iterator[ev.Event]:
    """Run only what is missing from an earlier run (interrupted, cancelled or failed)."""
    ws_root = Path(ws_root).resolve()
    with RunStore.for_workspace(ws_root) as store:
        run = store.require_run(run_id)
        if run.status == "running":
            raise LlmopsError(f"run {run.run_id} is still running (pid {run.pid})", field="--resume")
        stored = {c.cell_id for c in store.cells(run.run_id)}
    options = SweepOptions.from_dict(run.config.get("options", {}))
    ws = load_workspace(ws_root, env=run.env if run.env else None)
    uc = ws.get(run.use_case)
    plan = plan_sweep(uc, options)
    if {c.cell_id for c in plan.cells} != stored:
        raise LlmopsError(
            "the use case's variants, grid or datasets changed since this run; its cells no longer match",
            file=uc.config_file,
            field="--resume",
            hint="start a new sweep instead",
        )
    return SweepRunner(
        ws_root, uc, plan, run_id=run.run_id, cancel=cancel, progress_interval=progress_interval, resumed=True
    ).events()
