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

import dataclasses
import logging
import queue
import sys
import threading
import time
from collections.abc import Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from llmops_tui.core import events as ev
from llmops_tui.core import linepool
from llmops_tui.core.backends import (
    AggregationError,
    BackendOptions,
    FlowBackend,
    FlowLoadError,
    LineOutcome,
    open_backend,
    prepare_process,
)
from llmops_tui.core.cost import is_free_endpoint, price_tokens
from llmops_tui.core.errors import LlmopsError, StorageError
from llmops_tui.core.files import read_rows
from llmops_tui.core.flows import model_name
from llmops_tui.core.hashing import hash_folder, hash_value
from llmops_tui.core.linepool import LineJob, LinePool, LinePoolBroken, deadline_grace
from llmops_tui.core.mappings import map_inputs, missing_columns
from llmops_tui.core.materialize import materialize_flow
from llmops_tui.core.redact import redact
from llmops_tui.core.store import CellRecord, LineRecord, RunLock, RunStore
from llmops_tui.core.summary import decide_status, new_run_id, summarize
from llmops_tui.core.sweep import Cell, SweepOptions, SweepPlan, plan_sweep
from llmops_tui.core.workers import WorkerDied
from llmops_tui.core.workspace import Evaluator, UseCase, load_workspace

log = logging.getLogger(__name__)


@dataclass
class _CellState:
    cell: Cell
    flow_dir: Path
    flow_hash: str
    total: int
    pending: int
    source_dir: Path  # the flow as written (error messages name it, never the materialised copy)
    done: int = 0
    errors: int = 0
    finished: bool = False
    exec_hash: str | None = None  # the executed copy's hash, when it differs from flow_hash
    error: str | None = None  # the cell could not run at all (its flow does not load)
    pending_total: int = 0  # lines to run when the run started (pending counts down)


# What the line workers and evaluation tasks tell the engine's loop. Typed, so the loop's branches are
# checked; only the loop turns them into public events and owns the cell counters.
@dataclass
class _LineDone:
    state: _CellState
    rec: LineRecord


@dataclass
class _Ran:
    """What running one line produced, for :meth:`SweepRunner._deliver`: the line to store (and its cache
    entry), nothing (skipped: its cell cannot load, or the run is stopping) or a fault that ends the run."""

    rec: LineRecord | None = None
    cache: tuple[str, Any, dict[str, int], int, float] | None = None
    fatal: str | None = None


@dataclass
class _LineSkipped:  # not run: its cell cannot load, or the run is stopping
    state: _CellState


@dataclass
class _RetryMsg:
    state: _CellState
    line: int
    attempt: int
    reason: str
    delay: float


@dataclass
class _CellFailed:
    state: _CellState
    error: str


@dataclass
class _EvalStarted:
    cell_id: str
    evaluator: str
    lines: int


@dataclass
class _EvalMetrics:
    cell_id: str
    evaluator: str
    metrics: dict[str, float]


@dataclass
class _EvalFailed:
    cell_id: str
    evaluator: str
    error: str


@dataclass
class _EvalDone:
    cell_id: str


_Msg = (
    _LineDone | _LineSkipped | _RetryMsg | _CellFailed | _EvalStarted | _EvalMetrics | _EvalFailed | _EvalDone
)


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
        self._lock = threading.Lock()
        self._llm_calls = 0
        self._requests = 0
        self._cache_hits = 0
        self._retries = 0
        self._tokens = 0
        self._cost = 0.0
        self._priced = True
        self._models: dict[str, list[str | None]] = {}  # cell id -> the model of each LLM node
        self._secrets: list[str] = []
        self._sandbox: Any = None
        self._limiters: dict[str, Any] = {}
        self._backends: dict[Path, FlowBackend] = {}
        self._pool: Any = None  # core.workers.WorkerPool when lines run in worker processes
        self._backend_errors: dict[Path, str] = {}
        self._exec_lock = threading.Lock()
        self._target = ""
        # DAG flows run on Prompt flow's executor unless --backend or llmops.yaml's backend: say otherwise;
        # another backend's lines have cache keys of their own (None keeps the existing keys)
        chosen = self.options.backend or uc.extras.backend
        self._dag_backend: str | None = None if chosen in (None, "promptflow-dag") else chosen
        # Set by a person's cancel (``cancel``) or by a fault that ends the run (``_fatal``): every line,
        # retry wait and evaluation checks it.
        self._stop = threading.Event()
        self._fatal: str | None = None
        self._msgs: queue.Queue[_Msg] = queue.Queue()
        # --llm-endpoint URL means any OpenAI-compatible server: Azure OpenAI nodes are switched to the
        # OpenAI provider for execution (the sandbox speaks both, so it keeps the flows as written).
        endpoint = self.options.llm_endpoint
        self._openai_compatible = (
            bool(endpoint) and endpoint != "sandbox" and "/openai/deployments" not in str(endpoint)
        )

    # ------------------------------------------------------------------------------------- set-up

    def _setup(self) -> None:
        from llmops_tui.core import llmhooks
        from llmops_tui.core.connections import SANDBOX, build_connections

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
        self._secrets.extend(c.api_key for c in conns.values() if c.api_key)
        if not self._target:
            self._target = hash_value({n: c.url for n, c in conns.items()})
        self._conns = conns
        self._conn_url = {c.url.rstrip("/"): name for name, c in conns.items()}
        spec = self.uc.extras.sweep
        line_timeout = self.options.line_timeout_s or spec.line_timeout_s
        self._policy = llmhooks.RetryPolicy(
            max_retries=self.options.max_retries
            if self.options.max_retries is not None
            else spec.max_retries,
            request_timeout_s=self.options.request_timeout_s or min(60.0, line_timeout),
        )
        self._line_timeout = self.options.line_timeout_s or spec.line_timeout_s
        # The line pool's watchdog abandons a line a moment after its deadline (the call policy stops its
        # model calls at the deadline itself); a line in a worker process is abandoned there first, and
        # here only if the worker does not answer a moment later.
        self._start_workers()
        self._pool_timeout = linepool.line_deadline(self._line_timeout)
        if self._pool is not None:
            self._pool_timeout += deadline_grace(self._line_timeout) + 1.0

    def _start_workers(self) -> None:
        """Worker processes when the sweep is big enough to gain from them (``--workers``); else this
        process runs the lines itself (and only then imports the backends)."""
        from llmops_tui.core.workers import WorkerConfig, WorkerPool, default_workers

        evaluators = max(1, len(self.uc.evaluators))
        n = self.options.workers or default_workers(self.plan.lines_total * (1 + evaluators))
        if n <= 1:
            from llmops_tui.core import llmhooks

            llmhooks.install()  # only where lines run: with workers, this process never imports openai
            prepare_process(self.ws_root / ".llmops")
            return
        threads = max(1, -(-self.plan.concurrency // n))
        limits: dict[str, tuple[int | None, int | None]] = {}
        for url, name in self._conn_url.items():
            rl = self.uc.extras.rate_limits.get(name)
            if rl is not None:  # each worker gets its share of the endpoint's budget
                limits[url] = (
                    max(1, rl.rpm // n) if rl.rpm else None,
                    max(1, rl.tpm // n) if rl.tpm else None,
                )
        config = WorkerConfig(
            store_dir=str(self.ws_root / ".llmops"),
            workspace=str(self.ws_root),
            connections=self._conns,
            line_timeout_s=self._line_timeout,
            policy=self._policy,
            threads=threads,
            rate_limits=limits,
            secrets=self._secrets,
            backend=self._dag_backend,
        )
        self._pool = WorkerPool(n, config)

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

    def _backend(self, flow_dir: Path, source_dir: Path | None = None) -> FlowBackend:
        """The backend of one materialised flow, opened once. A flow that cannot load raises
        :class:`FlowLoadError` (one line naming the flow file as written and the node), also for every
        later caller, so a broken cell costs one load attempt, not one per line."""
        with self._exec_lock:
            backend = self._backends.get(flow_dir)
            if backend is not None:
                return backend
            if flow_dir in self._backend_errors:
                raise FlowLoadError(self._backend_errors[flow_dir])
            options = BackendOptions(
                connections=self._conns,
                line_timeout_s=self._line_timeout,
                secrets=self._secrets,
                source_dir=source_dir,
                workspace=self.ws_root,
                backend=self._dag_backend,
            )
            try:
                backend = open_backend(flow_dir, options)
            except FlowLoadError as exc:
                self._backend_errors[flow_dir] = str(exc)
                raise
            self._backends[flow_dir] = backend
            return backend

    # ---------------------------------------------------------------------------------- one line

    def _cache_key(self, flow_hash: str, inputs: dict[str, Any], repeat: int) -> str:
        key = {"flow": flow_hash, "inputs": inputs, "target": self._target, "repeat": repeat}
        return hash_value({**key, "backend": self._dag_backend} if self._dag_backend else key)

    def _exec(
        self,
        flow_dir: Path,
        source_dir: Path | None,
        inputs: dict[str, Any],
        index: int,
        tag: str,
        *,
        on_retry: Any = None,
        seed: int | None = None,
    ) -> tuple[LineOutcome, Any]:
        """Run one line of the flow in ``flow_dir`` under our LLM-call policy, here or in a worker
        process; every line the engine runs (flow or evaluator) goes through here. Returns the line's
        outcome and its counters; raises :class:`FlowLoadError` when the flow cannot load."""
        if self._pool is not None:
            return self._pool.run_line(
                flow_dir, source_dir, inputs, index, f"{self.run_id}-{tag}", seed=seed, on_retry=on_retry
            )
        from llmops_tui.core import llmhooks

        backend = self._backend(flow_dir, source_dir)
        linepool.line_started()  # the flow is open: the line's deadline counts from here
        ctx = llmhooks.LineContext(
            policy=self._policy,
            cancel=self._stop,
            limiter_for=self._limiter_for,
            on_retry=on_retry,
            request_seed=seed,
            line_timeout_s=self._line_timeout,  # the deadline that stops the line's calls and retries
        )
        token = llmhooks.current_line.set(ctx)
        try:
            outcome = backend.run_line(inputs, index, f"{self.run_id}-{tag}")
        finally:
            llmhooks.current_line.reset(token)
        return outcome, ctx

    def _line_job(self, state: _CellState, index: int, row: dict[str, Any], ds: Any) -> LineJob[_Ran]:
        """One flow line for the line pool, run under its watchdog; whatever happens (a result, the
        deadline, the pool refusing it), the loop hears about the line exactly once."""
        holder: dict[str, Any] = {}

        def run() -> _Ran:
            holder["started"] = time.perf_counter()
            try:
                inputs = holder["inputs"] = self._map_row(ds, row)
                return self._run_line(state, index, inputs)
            except (StorageError, WorkerDied, LinePoolBroken) as exc:
                return _Ran(fatal=str(exc))
            except Exception as exc:  # our own fault: the line fails with it, the run goes on
                log.debug("line %s of %s raised", index, state.cell.cell_id, exc_info=True)
                error = redact(f"internal error: {type(exc).__name__}: {exc}", self._secrets)
                rec = LineRecord(
                    self.run_id,
                    state.cell.cell_id,
                    index,
                    "failed",
                    holder.get("inputs", {}),
                    None,
                    error=error,
                )
                return _Ran(rec)

        def overdue(reason: str) -> None:
            if self._stop.is_set() or reason != linepool.TIMEOUT:
                self._msgs.put(_LineSkipped(state))  # stopped mid-line: resume runs it again
                return
            inputs = holder.get("inputs")
            if inputs is None:
                inputs = self._map_row(ds, row)
            rec = LineRecord(
                self.run_id,
                state.cell.cell_id,
                index,
                "failed",
                inputs,
                None,
                error=self._timeout_error(),
                latency_ms=(time.perf_counter() - holder.get("started", time.perf_counter())) * 1000,
            )
            self._deliver(state, _Ran(rec))

        return LineJob(
            run,
            lambda ran: self._deliver(state, ran),
            overdue,
            lambda: self._msgs.put(_LineSkipped(state)),
            self._pool_timeout,
            start_allowance_s=linepool.START_ALLOWANCE_S,
        )

    def _timeout_error(self) -> str:
        """What a line the pool's watchdog abandoned records (flow and evaluation lines alike)."""
        return linepool.timeout_error(self._line_timeout)

    def _deliver(self, state: _CellState, ran: _Ran) -> None:
        """Store a line's result (and cache it) and tell the loop; called once per line."""
        if ran.fatal is not None:
            self._fail_run(ran.fatal)
            self._msgs.put(_LineSkipped(state))
            return
        if ran.rec is None:
            self._msgs.put(_LineSkipped(state))
            return
        try:
            self.store.record_line(ran.rec)
            if ran.cache is not None:
                self.store.cache_put(*ran.cache)
        except Exception as exc:
            self._fail_run(str(exc) if isinstance(exc, StorageError) else f"internal error: {exc}")
            self._msgs.put(_LineSkipped(state))
            return
        self._msgs.put(_LineDone(state, ran.rec))

    def _fail_run(self, error: str) -> None:
        """A fault that ends the whole run (the store cannot be written): stop every line, keep the cause."""
        with self._lock:
            if self._fatal is None:
                self._fatal = error
        self._stop.set()

    def _run_line(self, state: _CellState, index: int, inputs: dict[str, Any]) -> _Ran:
        """Run one line (or take it from the cache); the result is stored by :meth:`_deliver`."""
        if self._stop.is_set() or state.error:
            return _Ran()
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
                return _Ran(rec)
        retries_seen: list[tuple[int, str, float]] = []

        def on_retry(attempt: int, reason: str, delay: float) -> None:
            retries_seen.append((attempt, reason, delay))
            self._msgs.put(_RetryMsg(state, index, attempt, reason, delay))

        # The sandbox is deterministic per request; repetitions carry their index as the request seed so
        # that at temperature > 0 they differ as a real model's would (real models vary on their own).
        seed = cell.repeat if (self._target == "sandbox" and cell.repeat) else None
        try:
            outcome, ctx = self._exec(
                state.flow_dir, state.source_dir, inputs, index, cell.cell_id, on_retry=on_retry, seed=seed
            )
        except FlowLoadError as exc:
            with self._lock:
                first = state.error is None
                state.error = state.error or str(exc)
            if first:
                self._msgs.put(_CellFailed(state, str(exc)))
            return _Ran()
        latency = (time.perf_counter() - started) * 1000
        ok, outputs, error, logs = outcome.ok, outcome.outputs, outcome.error, outcome.logs
        if not ok and self._stop.is_set():
            return _Ran()  # stopped mid-line: not a failure; resume runs it again
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
            logs=logs,
            requests=ctx.requests,
            traces=outcome.traces,
        )
        cache = (
            (key, outputs, ctx.tokens, ctx.llm_calls, latency) if ok and not self.options.no_cache else None
        )
        return _Ran(rec, cache)

    # ------------------------------------------------------------------------------- evaluation

    def _evaluators_for(self, dataset: str) -> list[tuple[Evaluator, Any]]:
        out = []
        for evaluator in self.uc.evaluators:
            for ds in evaluator.datasets_for(dataset):
                out.append((evaluator, ds))
        return out

    def _evaluate_cell(self, state: _CellState) -> None:
        """Every evaluator of one finished cell. An evaluator that cannot run is recorded on the cell
        (the run then fails: its metrics are missing); the loop always hears ``_EvalDone``."""
        cell = state.cell
        try:
            # only what evaluators map from (a line's traces and logs would stay in memory for nothing)
            lines = {
                r.line: dataclasses.replace(r, traces=None, logs=None)
                for r in self.store.lines(self.run_id, cell.cell_id)
                if r.status == "ok"
            }
            for evaluator, ds in self._evaluators_for(cell.dataset):
                if self._stop.is_set():
                    return
                if evaluator.flow is None or ds.path is None:
                    continue
                if not lines:
                    continue  # no line to score: the cell's own failures already say why
                try:
                    rows = read_rows(ds.path, self.ws_root)
                    if self.options.limit:
                        rows = rows[: self.options.limit]
                    self._msgs.put(_EvalStarted(cell.cell_id, evaluator.name, len(lines)))
                    metrics, eval_rows = self._run_evaluator(evaluator, ds.mappings, rows, lines)
                    self.store.record_eval_lines(self.run_id, cell.cell_id, evaluator.name, eval_rows)
                    self.store.record_metrics(self.run_id, cell.cell_id, evaluator.name, metrics)
                    self._msgs.put(_EvalMetrics(cell.cell_id, evaluator.name, metrics))
                except StorageError:
                    raise
                except Exception as exc:  # this evaluator could not run: record it, go on with the next
                    log.debug("evaluator %s failed", evaluator.name, exc_info=True)
                    known = isinstance(exc, FlowLoadError | AggregationError)
                    text = str(exc) if known else f"{type(exc).__name__}: {exc}"
                    error = redact(" ".join(text.split()), self._secrets)
                    with self._lock:
                        errors = dict(self._eval_errors.get(cell.cell_id, {}))
                        errors[evaluator.name] = error
                        self._eval_errors[cell.cell_id] = errors
                    self.store.merge_cell_extra(self.run_id, cell.cell_id, eval_errors=errors)
                    self._msgs.put(_EvalFailed(cell.cell_id, evaluator.name, error))
        except StorageError as exc:
            self._fail_run(str(exc))
        except Exception as exc:  # reading the cell's lines or rows failed: the run cannot be trusted
            log.debug("evaluation of %s failed", cell.cell_id, exc_info=True)
            self._fail_run(redact(f"evaluation of {cell.label}: {type(exc).__name__}: {exc}", self._secrets))
        finally:
            self._msgs.put(_EvalDone(cell.cell_id))

    def _run_evaluator(
        self,
        evaluator: Evaluator,
        mappings: dict[str, str],
        rows: list[dict[str, Any]],
        lines: dict[int, LineRecord],
    ) -> tuple[dict[str, float], list[tuple[int, str, Any, str | None]]]:
        assert evaluator.flow is not None
        flow_dir = evaluator.flow.path
        if self._openai_compatible and evaluator.flow.llm_nodes:
            flow_dir, _ = materialize_flow(
                flow_dir, self.ws_root / ".llmops" / "flows", openai_compatible=True
            )
        source_dir = evaluator.flow.path
        eval_hash = hash_folder(flow_dir)
        line_ids = sorted(i for i in lines if i < len(rows))

        def one(i: int) -> tuple[int, LineOutcome, dict[str, Any]]:
            rec = lines[i]
            inputs = map_inputs(
                mappings, rows[i], rec.outputs, rec.inputs, evaluator.flow.inputs if evaluator.flow else None
            )
            key = hash_value(
                {"eval": eval_hash, "inputs": inputs, "target": self._target}
                | ({"backend": self._dag_backend} if self._dag_backend else {})
            )
            if not self.options.no_cache:
                hit = self.store.cache_get(key)
                if hit is not None and "aggregation_inputs" in hit["outputs"]:
                    data = hit["outputs"]
                    return (
                        i,
                        LineOutcome(True, data["output"], aggregation_inputs=data["aggregation_inputs"]),
                        inputs,
                    )
            outcome, _ = self._exec(flow_dir, source_dir, inputs, i, f"eval-{evaluator.name}")
            if outcome.ok and not self.options.no_cache:
                data = {
                    "ok": True,
                    "output": outcome.outputs or {},
                    "aggregation_inputs": outcome.aggregation_inputs or {},
                    "error": None,
                }
                self.store.cache_put(key, data, {}, 0)
            # what the rows and the aggregation step use; the line's traces and logs are not kept
            return (
                i,
                LineOutcome(outcome.ok, outcome.outputs, outcome.error, None, outcome.aggregation_inputs),
                inputs,
            )

        def overdue(i: int, reason: str) -> tuple[int, LineOutcome, dict[str, Any]]:
            error = self._timeout_error() if reason == linepool.TIMEOUT else "cancelled"
            return i, LineOutcome(False, error=error), {}

        results = self._eval_pool.map(
            one,
            line_ids,
            timeout_s=self._pool_timeout,
            on_overdue=overdue,
            start_allowance_s=linepool.START_ALLOWANCE_S,
        )
        eval_rows: list[tuple[int, str, Any, str | None]] = []
        ok_inputs: list[dict[str, Any]] = []
        ok_outcomes: list[LineOutcome] = []
        for i, outcome, inputs in results:
            if outcome.ok:
                eval_rows.append((i, "ok", outcome.outputs or {}, None))
                ok_inputs.append(inputs)
                ok_outcomes.append(outcome)
            else:
                eval_rows.append((i, "failed", None, outcome.error))
        metrics: dict[str, float] = {}
        if ok_inputs and self._pool is not None:
            metrics = self._pool.aggregate(flow_dir, source_dir, ok_inputs, ok_outcomes)
        elif ok_inputs:
            backend = self._backend(flow_dir, source_dir)
            if backend.has_aggregation:
                metrics = backend.run_aggregation(ok_inputs, ok_outcomes)
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
            state = _CellState(
                cell=cell,
                flow_dir=flow_dir,
                flow_hash=version,
                total=cell.lines,
                pending=0,
                source_dir=flow.path,
            )
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
        from llmops_tui.core.evidence import run_evidence

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
            # who ran it, the flow files and dataset hashes measured (core.evidence; approvals check them)
            **run_evidence(self.ws_root, self.uc, list(self.plan.datasets)),
        }

    def events(self) -> Iterator[ev.Event]:
        # One runner per run: a second process resuming the same run is refused before anything is
        # written (the lock is the kernel's, so a killed runner never leaves it held).
        lock = RunLock(self.store.path, self.run_id).acquire()
        # Prompt flow swaps sys.stdout/stderr per line to capture node logs; with lines in parallel the
        # swaps interleave and can leave a capture writer installed. Restore the real streams at the end.
        self._streams = (sys.stdout, sys.stderr)
        started = time.perf_counter()
        states: list[_CellState] = []
        try:
            try:
                if self.resumed:
                    self.store.mark_running(self.run_id)
                else:
                    self.store.create_run(self.run_id, self.uc.name, self.plan.env, self._config())
                self._setup()
                states = self._prepare_cells()
                self._store_cells(states)
                work, already = self._work(states)
                yield ev.SweepStarted(
                    self.run_id, self.uc.name, len(states), self.plan.lines_total, self.resumed, already
                )
                yield from self._execute(states, work, started)
            except LlmopsError as exc:
                self._finish(states, started, fatal=str(exc))
                raise
            except (GeneratorExit, KeyboardInterrupt):
                self.cancel.set()
                self._finish(states, started)
                raise
            except StorageError as exc:
                self._fail_run(str(exc))
            except Exception as exc:
                log.debug("sweep failed", exc_info=True)
                self._fail_run(redact(f"{type(exc).__name__}: {exc}", self._secrets))
            summary = self._finish(states, started)
            yield ev.SweepFinished(self.run_id, summary["status"], summary, summary.get("error"))
        finally:
            lock.release()

    def _store_cells(self, states: list[_CellState]) -> None:
        """Cells go into the store before any line runs; a resumed run starts its cells afresh (a cell
        that could not load last time is tried again) and stores cells a killed first attempt lacked."""
        records = [
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
        ]
        self.store.add_cells(self.run_id, records)  # INSERT OR IGNORE: cells already stored are kept
        if self.resumed:
            for s in states:
                self.store.merge_cell_extra(
                    self.run_id, s.cell.cell_id, status="pending", error=None, eval_errors=None
                )

    def _work(
        self, states: list[_CellState]
    ) -> tuple[Iterator[tuple[_CellState, int, dict[str, Any], Any]], int]:
        """How many lines each cell still has to run (``pending``), and the lines themselves, lazily:
        each with its dataset row, mapped onto the flow's inputs only when the line pool has room."""
        rows = self._dataset_rows()
        already = 0
        ds_map = {d.name: d for d in self.uc.datasets}
        todo: list[tuple[_CellState, set[int]]] = []
        for s in states:
            done = self.store.done_lines(self.run_id, s.cell.cell_id) if self.resumed else set()
            s.done = len(done)
            already += len(done)
            if done:
                self._count_done(s, done)
            s.pending = sum(1 for i in range(len(rows[s.cell.dataset])) if i not in done)
            todo.append((s, done))

        def lines() -> Iterator[tuple[_CellState, int, dict[str, Any], Any]]:
            for s, done in todo:
                ds = ds_map[s.cell.dataset]
                for i, row in enumerate(rows[s.cell.dataset]):
                    if i not in done:
                        yield s, i, row, ds

        return lines(), already

    def _map_row(self, ds: Any, row: dict[str, Any]) -> dict[str, Any]:
        flow_inputs = self.uc.standard_flow.inputs if self.uc.standard_flow else {}
        return map_inputs(ds.mappings, row, flow_inputs=flow_inputs)

    def _row_problem(self, ds: Any, index: int, row: dict[str, Any]) -> str | None:
        """Why a row cannot be mapped onto the flow's inputs (a failed line naming the column, not run)."""
        flow_inputs = self.uc.standard_flow.inputs if self.uc.standard_flow else {}
        missing = missing_columns(ds.mappings, row, flow_inputs)
        if not missing:
            return None
        return "; ".join(
            f"dataset {ds.name} row {index + 1} has no column '{col}' (mapped to input '{name}')"
            for name, col in missing
        )

    def _feed(self, pool: LinePool, work: Iterator[tuple[_CellState, int, dict[str, Any], Any]]) -> None:
        """The line pool's producer (its own thread): one line at a time, as the pool has room. If it
        fails, every line it did not hand over is reported as skipped, so the loop still hears of each."""
        fed: dict[int, int] = {}  # id(cell state) -> lines handed over
        try:
            for s, i, row, ds in work:
                problem = self._row_problem(ds, i, row)
                if problem is None:
                    pool.submit(self._line_job(s, i, row, ds))
                else:
                    rec = LineRecord(
                        self.run_id, s.cell.cell_id, i, "failed", self._map_row(ds, row), None, error=problem
                    )
                    self._deliver(s, _Ran(rec))
                fed[id(s)] = fed.get(id(s), 0) + 1
        except Exception as exc:  # the loop must still hear about every line
            log.debug("feeding the line pool failed", exc_info=True)
            self._fail_run(redact(f"internal error: {type(exc).__name__}: {exc}", self._secrets))
            for s in self._states:
                for _ in range(s.pending_total - fed.get(id(s), 0)):
                    self._msgs.put(_LineSkipped(s))

    def _execute(
        self,
        states: list[_CellState],
        work: Iterator[tuple[_CellState, int, dict[str, Any], Any]],
        started: float,
    ) -> Iterator[ev.Event]:
        self._states = states
        for s in states:
            s.pending_total = s.pending
        # Lines run in the line pool (core/linepool.py): its watchdog ends a line at its deadline,
        # whatever it is stuck in; the feeder hands it lines as it has room.
        pool = LinePool(
            self.plan.concurrency, name="llmops-line", cancel=self._stop, on_broken=self._pool_broken
        )
        # Evaluation: cells are evaluated two at a time; their lines share one bounded line pool.
        cell_pool = ThreadPoolExecutor(max_workers=2, thread_name_prefix="llmops-eval-cell")
        self._eval_pool = LinePool(
            max(1, min(8, self.plan.concurrency)),
            name="llmops-eval",
            cancel=self._stop,
            on_broken=self._pool_broken,
        )
        self._eval_errors: dict[str, dict[str, str]] = {}
        futures: list[Future[Any]] = []
        evaluating = 0
        lines_left = sum(s.pending for s in states)
        feeder = threading.Thread(
            target=self._feed, args=(pool, work), name="llmops-line-feeder", daemon=True
        )
        try:
            for s in states:
                if s.pending == 0:  # nothing to run (resumed or empty): evaluate now if needed
                    s.finished = True
                    self.store.set_cell_status(self.run_id, s.cell.cell_id, "done")
                    futures.append(cell_pool.submit(self._evaluate_cell, s))
                    evaluating += 1
                    yield ev.CellFinished(self.run_id, s.cell.cell_id, s.done, s.errors)
            feeder.start()
            last = 0.0
            done_count = sum(s.done for s in states)
            total = sum(s.total for s in states)
            errors_reported = 0
            while lines_left or evaluating:
                if self.cancel.is_set():
                    self._stop.set()
                if self._stop.is_set() and self._pool is not None:
                    self._pool.cancel.set()
                try:
                    msg: _Msg | None = self._msgs.get(timeout=self.progress_interval / 2)
                except queue.Empty:
                    msg = None
                    if (
                        not feeder.is_alive()
                        and pool.idle()
                        and self._eval_pool.idle()
                        and all(f.done() for f in futures)
                        and self._msgs.empty()
                    ):
                        # every worker returned, yet the loop still waits: a worker died without a word
                        self._fail_run("internal error: a line worker ended without reporting its line")
                        break
                if isinstance(msg, _LineDone | _LineSkipped):
                    s = msg.state
                    lines_left -= 1
                    s.pending -= 1
                    if isinstance(msg, _LineDone):
                        rec = msg.rec
                        s.done += 1
                        done_count += 1
                        self._count(s, rec)
                        if rec.status != "ok":
                            s.errors += 1
                            if errors_reported < 200:  # rate-limit the error stream
                                errors_reported += 1
                                yield ev.LineFailed(
                                    self.run_id, s.cell.cell_id, rec.line, rec.error or "", rec.attempts
                                )
                    if s.pending == 0 and not s.finished:
                        s.finished = True
                        status = "failed" if s.error else "done"
                        if s.done < s.total and not s.error:
                            status = "pending"  # stopped early: resume runs the rest
                        self.store.merge_cell_extra(self.run_id, s.cell.cell_id, status=status, error=s.error)
                        yield ev.CellFinished(self.run_id, s.cell.cell_id, s.done, s.errors, s.error)
                        if status == "done" and not self._stop.is_set():
                            futures.append(cell_pool.submit(self._evaluate_cell, s))
                            evaluating += 1
                elif isinstance(msg, _RetryMsg):
                    yield ev.RetryScheduled(
                        self.run_id, msg.state.cell.cell_id, msg.line, msg.attempt, msg.reason, msg.delay
                    )
                elif isinstance(msg, _CellFailed):
                    yield ev.CellFailed(self.run_id, msg.state.cell.cell_id, msg.error)
                elif isinstance(msg, _EvalStarted):
                    yield ev.EvaluationStarted(self.run_id, msg.cell_id, msg.evaluator, msg.lines)
                elif isinstance(msg, _EvalMetrics):
                    yield ev.MetricsReady(self.run_id, msg.cell_id, msg.evaluator, msg.metrics)
                elif isinstance(msg, _EvalFailed):
                    yield ev.EvaluationFailed(self.run_id, msg.cell_id, msg.evaluator, msg.error)
                elif isinstance(msg, _EvalDone):
                    evaluating -= 1
                now = time.perf_counter()
                if now - last >= self.progress_interval:
                    last = now
                    yield self._progress(states, done_count, total, started)
            yield self._progress(states, done_count, total, started)
        finally:
            if self.cancel.is_set():
                self._stop.set()
            pool.shutdown(cancel_pending=True)
            if feeder.is_alive():
                feeder.join()  # the pool is shut: whatever it still hands over is skipped at once
            cell_pool.shutdown(wait=True, cancel_futures=True)
            self._eval_pool.shutdown(cancel_pending=True)
        for f in futures:  # the workers catch everything; anything that still escaped fails the run
            exc = f.exception() if f.done() and not f.cancelled() else None
            if exc is not None:
                self._fail_run(redact(f"internal error: {type(exc).__name__}: {exc}", self._secrets))

    def _pool_broken(self, reason: str) -> None:
        """Too many lines' threads are stuck past the deadline: the run stops as failed, with one message."""
        self._fail_run(f"{reason} (--line-timeout {self._line_timeout:g} s)")

    def _count(self, s: _CellState, rec: LineRecord) -> None:
        """Add a stored line to the run's figures. One definition with the summary (core.summary) and
        the store: LLM calls, requests, cache hits and tokens as the line recorded them, retries as its
        attempts beyond the first."""
        with self._lock:
            self._llm_calls += rec.llm_calls
            self._requests += rec.requests
            self._cache_hits += int(rec.cache_hit)
            self._tokens += rec.total_tokens
            self._retries += max(rec.attempts - 1, 0)
            self._cost_add(s, rec)

    def _count_done(self, s: _CellState, done: set[int]) -> None:
        """A resumed run starts its figures from the lines it keeps, so progress and summary agree."""
        for rec in self.store.iter_lines(self.run_id, s.cell.cell_id):
            if rec.line in done:
                self._count(s, rec)

    def _cost_add(self, s: _CellState, rec: LineRecord) -> None:
        # core.cost decides, as for the estimate and the comparison: the sandbox is free, mixed models unpriced
        cost = price_tokens(
            self.uc.extras.prices,
            self._cell_models(s.cell),
            rec.prompt_tokens,
            rec.completion_tokens,
            sandbox=is_free_endpoint(self.options.llm_endpoint),
        )
        if cost.usd is None:
            self._priced = False
            return
        self._cost += cost.usd

    def _cell_models(self, cell: Cell) -> list[str | None]:
        """The model each LLM node of the cell names (computed once per cell, called per line)."""
        models = self._models.get(cell.cell_id)
        if models is None:
            flow = self.uc.standard_flow
            nodes = flow.llm_nodes if flow is not None else []
            models = [model_name(n.run_inputs(cell.variants.get(n.name), cell.params)) for n in nodes]
            self._models[cell.cell_id] = models
        return models

    def _progress(self, states: list[_CellState], done: int, total: int, started: float) -> ev.Progress:
        elapsed = time.perf_counter() - started
        with self._lock:
            return ev.Progress(
                run_id=self.run_id,
                done=done,
                total=total,
                errors=sum(s.errors for s in states),
                llm_calls=self._llm_calls,
                requests=self._requests,
                cache_hits=self._cache_hits,
                retries=self._retries,
                tokens=self._tokens,
                cost=round(self._cost, 6) if self._priced else None,
                cost_free=is_free_endpoint(self.options.llm_endpoint),
                elapsed_s=elapsed,
                lines_per_s=done / elapsed if elapsed > 0 else 0.0,
                cells=[ev.CellProgress(s.cell.cell_id, s.done, s.total, s.errors) for s in states],
            )

    def _finish(self, states: list[_CellState], started: float, fatal: str | None = None) -> dict[str, Any]:
        """Decide the run's status from what the store holds and record it. If the store itself cannot
        be written, the run stays ``running`` there (read back as ``interrupted``) and the summary says
        ``failed`` with the storage error."""
        fatal = fatal or self._fatal
        wall = time.perf_counter() - started
        summary: dict[str, Any]
        try:
            try:
                summary = summarize(self.store, self.run_id, wall_s=wall)
                verdict = decide_status(summary, cancelled=self.cancel.is_set() and not fatal, fatal=fatal)
                summary["status"], summary["error"] = verdict.status, verdict.error
                self.store.finish_run(self.run_id, verdict.status, summary, verdict.error)
            except StorageError as exc:
                error = fatal or str(exc)
                summary = {
                    "run_id": self.run_id,
                    "status": "failed",
                    "error": error,
                    "use_case": self.uc.name,
                    "wall_s": round(wall, 3),
                    "lines_total": sum(s.total for s in states),
                    "lines_done": sum(s.done for s in states),
                    "errors": sum(s.errors for s in states),
                    "cell_count": len(states),
                    "cells": [],
                }
        finally:
            sys.stdout, sys.stderr = self._streams
            self._close_resources()
            if self._own_store:
                self.store.close()
        return summary

    def _close_resources(self) -> None:
        """Stop the worker processes, close every opened backend and stop the in-process sandbox; a
        failure to close is logged, never raised over the run's own outcome."""
        if self._pool is not None:
            self._pool.close()
            self._pool = None
        for backend in self._backends.values():
            try:
                backend.close()
            except Exception:  # closing must not hide the run's outcome
                log.debug("closing a backend failed", exc_info=True)
        if self._sandbox is not None:
            self._sandbox.stop()
            self._sandbox = None


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
    # A run killed before its cells were stored has none: it simply starts them now.
    if stored and {c.cell_id for c in plan.cells} != stored:
        raise LlmopsError(
            "the use case's variants, grid or datasets changed since this run; its cells no longer match",
            file=uc.config_file,
            field="--resume",
            hint="start a new sweep instead",
        )
    return SweepRunner(
        ws_root, uc, plan, run_id=run.run_id, cancel=cancel, progress_interval=progress_interval, resumed=True
    ).events()


EvaluationJob = tuple[Evaluator, dict[str, str], list[dict[str, Any]], dict[int, LineRecord]]


def evaluate_stored_lines(
    ws_root: Path, uc: UseCase, plan: SweepPlan, *, run_id: str, store: RunStore, jobs: list[EvaluationJob]
) -> list[tuple[dict[str, float], list[tuple[int, str, Any, str | None]]]]:
    """Run evaluators over lines already in the store, outside a sweep (``llmops traffic evaluate``), with
    the engine's own evaluation step: mappings, cache, connections, sandbox, worker processes, aggregation.

    Each job is (evaluator, its mappings, the dataset rows indexed by line number, the stored lines to
    evaluate by line number). The engine is set up once for all jobs (``plan.options`` decide the endpoint
    and the cache) and torn down after, whatever happens. Returns, per job in order, the evaluator's
    aggregate metrics and its evaluation lines ``(line, status, outputs, error)``, ready for
    ``RunStore.record_metrics`` and ``RunStore.record_eval_lines``."""
    if not jobs:
        return []
    runner = SweepRunner(ws_root, uc, plan, run_id=run_id, store=store)
    runner._eval_pool = LinePool(max(1, min(8, plan.concurrency)), name="llmops-traffic-eval")
    try:
        runner._setup()
        return [runner._run_evaluator(*job) for job in jobs]
    finally:
        runner._eval_pool.shutdown()
        runner._close_resources()
