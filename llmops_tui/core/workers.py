"""Lines in worker processes, so that a sweep uses every core.

One Python process tops out near 300 LLM lines a second whatever the concurrency (the GIL, measured in
PROMPTFLOW_NOTES.md). With ``workers > 1`` the engine keeps everything that must happen once (planning,
the cache, the run store and its single writer, events, statuses) and sends only the work of a line to a
pool of worker processes: each hosts the backends of the flows it is given (see
:mod:`llmops_tui.core.backends`) and runs lines on its own threads under the same LLM-call policy.
Evaluation lines and aggregation steps go there too, so the engine's own process never imports Prompt
flow and stays small.

- Rate limits are shared by splitting each endpoint's budget evenly across the workers.
- Cancellation is one ``multiprocessing.Event`` every worker's lines watch.
- Keys travel to the workers through the pool's pipe, in memory; never through the environment.
- A worker whose parent died stops by itself; a worker that dies fails the lines it held and the run.
- A worker runs its lines in a :class:`~llmops_tui.core.linepool.LinePool`, as the engine does: a line
  past its deadline is answered as timed out by the worker's watchdog (its thread abandoned); a worker
  whose pool gives up (too many stuck lines) sends one message and the run stops as failed.
- Workers are started with ``spawn`` (no fork of a threaded process).
"""

from __future__ import annotations

import itertools
import logging
import multiprocessing as mp
import os
import queue
import threading
import time
from collections.abc import Callable
from concurrent.futures import Future
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from llmops_tui.core.backends import (
    AggregationError,
    BackendOptions,
    ConnectionSpec,
    FlowBackend,
    FlowLoadError,
    LineOutcome,
)
from llmops_tui.core.linepool import (
    START_ALLOWANCE_S,
    TIMEOUT,
    LineJob,
    LinePool,
    line_deadline,
    line_started,
    timeout_error,
)

log = logging.getLogger(__name__)
# Below this many lines (flow and evaluation) per worker, one process is faster: each worker pays Prompt flow's
# import (about 2.5 s) before its first line.
LINES_PER_WORKER = 2000


def default_workers(lines: int, cores: int | None = None) -> int:
    """The machine's cores for big sweeps; 1 where a single process is faster (small sweeps, one core)."""
    cores = cores or os.cpu_count() or 1
    return max(1, min(cores, lines // LINES_PER_WORKER))


@dataclass
class WorkerConfig:
    """Everything a worker needs, picklable. Holds keys: it lives in memory and in the pool's pipe only."""

    store_dir: str
    workspace: str
    connections: dict[str, ConnectionSpec]
    line_timeout_s: float
    policy: Any  # llmhooks.RetryPolicy
    threads: int
    rate_limits: dict[str, tuple[int | None, int | None]] = field(default_factory=dict)  # url -> rpm, tpm
    secrets: list[str] = field(default_factory=list)
    backend: str | None = None  # the DAG backend (None: Prompt flow's)


@dataclass
class _LineJob:
    job_id: int
    flow_dir: str
    source_dir: str | None
    inputs: dict[str, Any]
    index: int
    tag: str
    seed: int | None


@dataclass
class _AggregateJob:
    job_id: int
    flow_dir: str
    source_dir: str | None
    inputs: list[dict[str, Any]]
    outcomes: list[LineOutcome]


class WorkerDied(Exception):
    """A worker process ended while it held lines."""


# ---------------------------------------------------------------------------------- in the worker


def _worker_main(config: WorkerConfig, jobs: Any, results: Any, cancel: Any, parent: int) -> None:
    from llmops_tui.core import llmhooks
    from llmops_tui.core.backends import open_backend, prepare_process

    prepare_process(Path(config.store_dir))
    llmhooks.install()
    backends: dict[str, FlowBackend] = {}
    load_errors: dict[str, str] = {}
    open_lock = threading.Lock()
    limiters: dict[str, Any] = {}
    limiter_lock = threading.Lock()

    def limiter_for(url: str) -> Any:
        with limiter_lock:
            lim = limiters.get(url)
            if lim is None:
                rpm, tpm = next(
                    (v for u, v in config.rate_limits.items() if u and url.rstrip("/").startswith(u)),
                    (None, None),
                )
                lim = limiters[url] = llmhooks.RateLimiter(rpm=rpm, tpm=tpm)
            return lim

    def backend(flow_dir: str, source_dir: str | None) -> FlowBackend:
        with open_lock:
            if flow_dir in backends:
                return backends[flow_dir]
            if flow_dir in load_errors:
                raise FlowLoadError(load_errors[flow_dir])
            options = BackendOptions(
                connections=config.connections,
                line_timeout_s=config.line_timeout_s,
                secrets=config.secrets,
                source_dir=Path(source_dir) if source_dir else None,
                workspace=Path(config.workspace),
                backend=config.backend,
            )
            try:
                backends[flow_dir] = open_backend(Path(flow_dir), options)
            except FlowLoadError as exc:
                load_errors[flow_dir] = str(exc)
                raise
            return backends[flow_dir]

    def line_job(job: _LineJob | _AggregateJob) -> LineJob[tuple[Any, ...]]:
        """One job for the worker's line pool: its answer (or the watchdog's, at the line's deadline)
        goes to the engine exactly once, and frees the worker's slot."""
        holder: dict[str, Any] = {}

        def run() -> tuple[Any, ...]:
            try:
                if isinstance(job, _LineJob):
                    b = backend(job.flow_dir, job.source_dir)
                    line_started()  # the flow is open: the line's deadline counts from here
                    ctx = holder["ctx"] = llmhooks.LineContext(
                        policy=config.policy,
                        cancel=cancel,
                        limiter_for=limiter_for,
                        on_retry=lambda a, r, d: results.put(("retry", job.job_id, a, r, d)),
                        request_seed=job.seed,
                        line_timeout_s=config.line_timeout_s,
                    )
                    token = llmhooks.current_line.set(ctx)
                    try:
                        outcome = b.run_line(job.inputs, job.index, job.tag)
                    finally:
                        llmhooks.current_line.reset(token)
                    return ("done", job.job_id, outcome, ctx.counters)
                b = backend(job.flow_dir, job.source_dir)
                metrics = b.run_aggregation(job.inputs, job.outcomes) if b.has_aggregation else {}
                return ("done", job.job_id, metrics, None)
            except FlowLoadError as exc:
                return ("load_error", job.job_id, str(exc))
            except AggregationError as exc:
                return ("aggregation_error", job.job_id, str(exc))
            except BaseException as exc:  # noqa: BLE001 - reported to the engine, which records it
                return ("error", job.job_id, f"{type(exc).__name__}: {exc}")

        def answer(msg: tuple[Any, ...]) -> None:
            try:
                results.put(msg)
            finally:
                slots.release()

        def overdue(reason: str) -> None:
            ctx = holder.get("ctx")
            counters = ctx.counters if ctx is not None else Counters().__dict__
            if isinstance(job, _AggregateJob):
                answer(("error", job.job_id, "cancelled"))
                return
            error = timeout_error(config.line_timeout_s) if reason == TIMEOUT else "cancelled"
            answer(("done", job.job_id, LineOutcome(ok=False, error=error), counters))

        def skip() -> None:
            answer(("error", job.job_id, pool.broken or "the worker is stopping"))

        timeout = None if isinstance(job, _AggregateJob) else line_deadline(config.line_timeout_s)
        return LineJob(run, answer, overdue, skip, timeout, start_allowance_s=START_ALLOWANCE_S)

    def broken(message: str) -> None:
        results.put(("fatal", -1, f"{message} (--line-timeout {config.line_timeout_s:g} s)"))

    slots = threading.Semaphore(config.threads)
    # The worker's lines run in its own line pool: the same watchdog as the engine's (core/linepool.py).
    pool = LinePool(
        config.threads, name="llmops-worker", cancel=cancel, on_broken=broken, queue_size=config.threads
    )
    while True:
        # Take a job only with a free thread, so the other workers get their share of the queue.
        while not slots.acquire(timeout=1.0):
            if os.getppid() != parent:
                os._exit(0)
        try:
            job = jobs.get(timeout=1.0)
        except queue.Empty:
            slots.release()
            if os.getppid() != parent:
                os._exit(0)  # the engine is gone: nobody will read what we would do
            continue
        if job is None:
            slots.release()
            break
        pool.submit(line_job(job))
    pool.shutdown(cancel_pending=False)
    for b in backends.values():
        b.close()
    # Every answer is queued: flush the queue's feeder, then end without tearing Prompt flow's import
    # graph down (1.5-3 s of interpreter teardown, for nothing).
    results.close()
    results.join_thread()
    os._exit(0)


# --------------------------------------------------------------------------------- in the engine


@dataclass
class Counters:
    """A remote line's figures, read like an ``llmhooks.LineContext``."""

    requests: int = 0
    retries: int = 0
    llm_calls: int = 0
    prompt_tokens: int = 0
    completion_tokens: int = 0
    total_tokens: int = 0

    @property
    def tokens(self) -> dict[str, int]:
        return {
            "prompt_tokens": self.prompt_tokens,
            "completion_tokens": self.completion_tokens,
            "total_tokens": self.total_tokens,
        }


@dataclass
class _Pending:
    future: Future[Any]
    on_retry: Callable[[int, str, float], None] | None = None


class WorkerPool:
    """``n`` worker processes fed from one queue; :meth:`run_line` and :meth:`aggregate` block the
    calling thread until a worker answers."""

    def __init__(self, n: int, config: WorkerConfig):
        ctx = mp.get_context("spawn")
        self.n = n
        self._jobs: Any = ctx.Queue()
        self._results: Any = ctx.Queue()
        self.cancel = ctx.Event()
        self._ids = itertools.count()
        self._pending: dict[int, _Pending] = {}
        self._lock = threading.Lock()
        self._closed = threading.Event()
        self.broken: str | None = None
        self._procs = [
            ctx.Process(
                target=_worker_main,
                args=(config, self._jobs, self._results, self.cancel, os.getpid()),
                name=f"llmops-worker-{i}",
                daemon=True,
            )
            for i in range(n)
        ]
        for p in self._procs:
            p.start()
        self._reader = threading.Thread(target=self._read, name="llmops-worker-results", daemon=True)
        self._reader.start()

    def _submit(self, job: Any, on_retry: Callable[[int, str, float], None] | None = None) -> Any:
        fut: Future[Any] = Future()
        with self._lock:
            if self.broken:
                raise WorkerDied(self.broken)
            self._pending[job.job_id] = _Pending(fut, on_retry)
        self._jobs.put(job)
        return fut.result()

    def run_line(
        self,
        flow_dir: Path,
        source_dir: Path | None,
        inputs: dict[str, Any],
        index: int,
        tag: str,
        *,
        seed: int | None = None,
        on_retry: Callable[[int, str, float], None] | None = None,
    ) -> tuple[LineOutcome, Counters]:
        """Run one line in a worker. Raises :class:`FlowLoadError` when the flow cannot load there."""
        job = _LineJob(
            next(self._ids), str(flow_dir), str(source_dir) if source_dir else None, inputs, index, tag, seed
        )
        outcome, counters = self._submit(job, on_retry)
        return outcome, Counters(**counters)

    def aggregate(
        self,
        flow_dir: Path,
        source_dir: Path | None,
        inputs: list[dict[str, Any]],
        outcomes: list[LineOutcome],
    ) -> dict[str, float]:
        """The flow's metrics over these lines, computed in a worker (``{}`` without an aggregation step)."""
        job = _AggregateJob(
            next(self._ids), str(flow_dir), str(source_dir) if source_dir else None, inputs, outcomes
        )
        metrics, _ = self._submit(job)
        return dict(metrics)

    def _read(self) -> None:
        checked = time.monotonic()
        while not self._closed.is_set():
            if time.monotonic() - checked >= 0.5:  # also while answers flow from the other workers
                checked = time.monotonic()
                self._check_alive()
            try:
                msg = self._results.get(timeout=0.5)
            except queue.Empty:
                continue
            except (EOFError, OSError):
                break
            kind, job_id = msg[0], msg[1]
            if kind == "fatal":  # a worker's line pool gave up (too many stuck lines): the run stops
                self._break(msg[2])
                continue
            if kind == "retry":
                pending = self._pending.get(job_id)
                if pending is not None and pending.on_retry is not None:
                    pending.on_retry(msg[2], msg[3], msg[4])
                continue
            with self._lock:
                pending = self._pending.pop(job_id, None)
            if pending is None:
                continue
            if kind == "done":
                pending.future.set_result((msg[2], msg[3]))
            elif kind == "load_error":
                pending.future.set_exception(FlowLoadError(msg[2]))
            elif kind == "aggregation_error":
                pending.future.set_exception(AggregationError(msg[2]))
            else:
                pending.future.set_exception(RuntimeError(msg[2]))

    def _check_alive(self) -> None:
        dead = [p for p in self._procs if not p.is_alive()]
        if not dead or self._closed.is_set():
            return
        self._break(f"worker process {dead[0].name} died (exit code {dead[0].exitcode})")

    def _break(self, reason: str) -> None:
        """The pool can no longer be trusted: every line it holds, and every later one, fails the run."""
        with self._lock:
            if self.broken is None:
                self.broken = reason
            pending, self._pending = self._pending, {}
        for p in pending.values():
            p.future.set_exception(WorkerDied(self.broken))

    def close(self) -> None:
        """Stop every worker (lines in flight finish first, up to a few seconds) and the reader."""
        if self._closed.is_set():
            return
        for _ in self._procs:
            try:
                self._jobs.put(None)
            except (OSError, ValueError):
                pass
        for p in self._procs:
            p.join(timeout=10)
        for p in self._procs:
            if p.is_alive():
                p.terminate()
                p.join(timeout=5)
        self._closed.set()
        self._reader.join(timeout=2)
        with self._lock:
            pending, self._pending = self._pending, {}
        for left in pending.values():
            if not left.future.done():
                left.future.set_exception(WorkerDied("the worker pool was closed"))
        for q in (self._jobs, self._results):
            q.close()
            q.join_thread()
