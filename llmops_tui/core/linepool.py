"""The line pool: runs lines on a fixed number of threads, each line under a deadline a watchdog enforces.

The engine (flow lines, evaluation lines) and every worker process (:mod:`llmops_tui.core.workers`) run
their lines here, so one mechanism bounds a line whatever the backend and wherever it runs:

- **One watchdog thread per pool** knows each running line's deadline. A line still running at its
  deadline is *overdue*: the pool reports it once, through the job's ``overdue`` callback (the owner
  records it as failed with a timeout error), and **abandons** its thread. Python cannot stop a thread,
  so code that never returns (``time.sleep(3600)``, a blocking socket read) keeps its thread; the pool
  starts a replacement so it keeps its concurrency.
- **Exactly once.** A job ends in exactly one of ``deliver`` (its result, from its own thread),
  ``overdue`` (from the watchdog) or ``skip`` (it never started: the pool was shut down or broken). A
  result an abandoned thread returns late is dropped: never recorded twice, never overwriting.
- **A cap on abandoned threads.** Past ``max_abandoned`` abandoned threads still alive (by default the
  pool's concurrency) the pool is *broken*: ``on_broken`` gets one message, no thread is started any more
  and every job not yet started is skipped, so a run whose code blocks everywhere stops as failed instead
  of leaking a thread per line.
- **Cancellation.** Once the ``cancel`` event is set, lines still running ``cancel_grace_s`` later are
  abandoned too (reported with the reason ``"cancelled"``), so a cancelled run does not wait for code
  that never returns; they do not count against the cap.
- **Lazy feeding.** :meth:`LinePool.submit` blocks while the bounded queue of pending jobs is full, so a
  producer feeds the pool as lines finish instead of holding every line of a big sweep at once.
"""

from __future__ import annotations

import itertools
import logging
import queue
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, Generic, TypeVar

log = logging.getLogger(__name__)

T = TypeVar("T")
R = TypeVar("R")

TIMEOUT = "timeout"
CANCELLED = "cancelled"
# Before a line's own work starts (its flow still loading, or waiting for another thread to load it; a
# worker process still starting) its deadline has this much more room; see :func:`line_started`.
START_ALLOWANCE_S = 60.0
_current = threading.local()  # the job and pool of the line running in this thread


def line_started() -> None:
    """Called from a line's own thread when its flow is open and the line proper starts: its deadline is
    counted from now (opening a flow, done once per flow for every line waiting on it, is not the
    line's time). Does nothing outside a line pool."""
    job, pool = getattr(_current, "job", None), getattr(_current, "pool", None)
    if job is None or pool is None or job.timeout_s is None:
        return
    with pool._lock:
        if job.state == "running":
            job.deadline = time.monotonic() + job.timeout_s


def deadline_grace(timeout_s: float) -> float:
    """How long after a line's own deadline the watchdog abandons it: a tenth of the timeout, between
    0.5 and 2 s. A line in a model call is stopped at the deadline by the call policy
    (:mod:`llmops_tui.core.llmhooks`) and returns within a moment; the grace lets it report that itself
    (with its request counts) rather than have its thread abandoned."""
    return min(2.0, max(0.5, 0.1 * timeout_s))


def line_deadline(timeout_s: float) -> float:
    """The watchdog's timeout for a line with the given ``--line-timeout``: the timeout plus its grace."""
    return timeout_s + deadline_grace(timeout_s)


def timeout_error(timeout_s: float) -> str:
    """What a line the watchdog abandoned records, wherever it ran."""
    return (
        f"line timed out after {timeout_s:g} s (--line-timeout): its code was still running; "
        "its thread is abandoned and anything it returns later is ignored"
    )


class LinePoolBroken(Exception):
    """The pool stopped taking lines (too many abandoned threads, or it was shut down)."""


@dataclass(eq=False)
class LineJob(Generic[T]):
    """One line for the pool. ``run`` may block forever; exactly one of ``deliver(result)``,
    ``overdue(reason)`` or ``skip()`` is called for it. ``run`` should not raise: if it does, ``deliver``
    is not called and ``fail(exc)`` is (the default logs it and calls ``skip``)."""

    run: Callable[[], T]
    deliver: Callable[[T], None]
    overdue: Callable[[str], None]
    skip: Callable[[], None]
    timeout_s: float | None = None  # None: no deadline (an aggregation step)
    fail: Callable[[BaseException], None] | None = None
    # extra room before :func:`line_started` is called (never called: the deadline stays this late)
    start_allowance_s: float = 0.0
    # the pool's bookkeeping
    state: str = field(default="queued", init=False)  # queued | running | done | abandoned
    deadline: float | None = field(default=None, init=False)
    thread: threading.Thread | None = field(default=None, init=False)


class LinePool:
    """``threads`` line threads fed from a bounded queue, plus one watchdog thread."""

    def __init__(
        self,
        threads: int,
        *,
        name: str = "llmops-line",
        cancel: Any = None,  # threading.Event or multiprocessing.Event
        max_abandoned: int | None = None,
        cancel_grace_s: float = 2.0,
        on_broken: Callable[[str], None] | None = None,
        queue_size: int | None = None,
        tick_s: float = 0.05,
    ):
        self.threads = max(1, int(threads))
        self.name = name
        self.cancel = cancel
        self.max_abandoned = self.threads if max_abandoned is None else max(0, max_abandoned)
        self.cancel_grace_s = cancel_grace_s
        self.on_broken = on_broken
        self.tick_s = tick_s
        self._queue: queue.Queue[LineJob[Any] | None] = queue.Queue(maxsize=queue_size or 2 * self.threads)
        self._lock = threading.Lock()
        self._running: set[LineJob[Any]] = set()
        self._workers: set[threading.Thread] = set()  # live, not abandoned
        self._abandoned: set[threading.Thread] = set()  # abandoned and still running
        self._busy = 0  # jobs submitted and not yet delivered, overdue or skipped
        self._ids = itertools.count()
        self._closed = False
        self._stopped = threading.Event()
        self._cancelled_at: float | None = None
        self.broken: str | None = None
        self.abandoned_total = 0
        with self._lock:
            for _ in range(self.threads):
                self._start_worker()
        self._watchdog = threading.Thread(target=self._watch, name=f"{name}-watchdog", daemon=True)
        self._watchdog.start()

    # ------------------------------------------------------------------------------------ public

    def submit(self, job: LineJob[Any]) -> None:
        """Queue one job; blocks while the queue is full. A broken or shut-down pool skips the job."""
        with self._lock:
            self._busy += 1
        while True:
            with self._lock:
                refused = self._closed or self.broken is not None
            if refused:
                self._end(job, "skip")
                return
            try:
                self._queue.put(job, timeout=0.1)
                return
            except queue.Full:
                continue

    def map(
        self,
        fn: Callable[[T], R],
        items: Sequence[T],
        *,
        timeout_s: float | None,
        on_overdue: Callable[[T, str], R],
        start_allowance_s: float = 0.0,
    ) -> list[R]:
        """``[fn(x) for x in items]`` on the pool's threads, in order; an item whose line is overdue gets
        ``on_overdue(item, reason)`` instead. Raises :class:`LinePoolBroken` when some item never ran."""
        results: list[Any] = [None] * len(items)
        errors: list[BaseException] = []
        left = [len(items)]
        done = threading.Condition()

        def finish() -> None:
            with done:
                left[0] -= 1
                done.notify_all()

        def job(i: int, item: T) -> LineJob[R]:
            def deliver(value: R) -> None:
                results[i] = value
                finish()

            def overdue(reason: str) -> None:
                try:
                    results[i] = on_overdue(item, reason)
                except Exception as exc:
                    errors.append(exc)
                finally:
                    finish()

            def skip() -> None:
                errors.append(LinePoolBroken(self.broken or "the line pool was shut down"))
                finish()

            def fail(exc: BaseException) -> None:
                errors.append(exc)
                finish()

            return LineJob(lambda: fn(item), deliver, overdue, skip, timeout_s, fail, start_allowance_s)

        for i, item in enumerate(items):
            self.submit(job(i, item))
        with done:
            while left[0]:
                done.wait()
        if errors:
            raise errors[0]
        return results

    def idle(self) -> bool:
        """No job queued, running or being reported."""
        with self._lock:
            return self._busy == 0

    def abandoned_alive(self) -> int:
        with self._lock:
            return len(self._abandoned)

    def shutdown(self, *, cancel_pending: bool = True, timeout_s: float | None = None) -> None:
        """Stop the pool: jobs not started are skipped (``cancel_pending``) or run first; lines running
        on live threads finish (or are abandoned at their deadline); abandoned threads are not waited for."""
        with self._lock:
            if self._closed:
                return
            self._closed = True
        if cancel_pending:
            self._drain()
        with self._lock:
            workers = list(self._workers)
        for _ in workers:
            while True:  # one sentinel per live thread; the queue is bounded
                try:
                    self._queue.put(None, timeout=0.1)
                    break
                except queue.Full:
                    if not any(t.is_alive() for t in workers):
                        break
        end = None if timeout_s is None else time.monotonic() + timeout_s
        while True:
            with self._lock:
                live = [t for t in self._workers if t.is_alive()]
            if not live:
                break
            live[0].join(timeout=0.1 if end is None else max(0.0, min(0.1, end - time.monotonic())))
            if end is not None and time.monotonic() >= end:
                break
        self._drain()
        self._stopped.set()
        self._watchdog.join(timeout=2)

    # ----------------------------------------------------------------------------------- threads

    def _start_worker(self) -> None:  # with the lock held
        t = threading.Thread(target=self._work, name=f"{self.name}-{next(self._ids)}", daemon=True)
        self._workers.add(t)
        t.start()

    def _work(self) -> None:
        me = threading.current_thread()
        while True:
            job = self._queue.get()
            if job is None:
                with self._lock:
                    self._workers.discard(me)
                return
            with self._lock:
                refused = self.broken is not None
                if not refused:
                    job.state = "running"
                    job.thread = me
                    job.deadline = (
                        None
                        if job.timeout_s is None
                        else time.monotonic() + job.timeout_s + job.start_allowance_s
                    )
                    self._running.add(job)
            if refused:
                self._end(job, "skip")
                continue
            failure: BaseException | None = None
            result: Any = None
            _current.job, _current.pool = job, self
            try:
                result = job.run()
            except BaseException as exc:  # noqa: BLE001 - reported through the job's fail callback
                failure = exc
            finally:
                _current.job = _current.pool = None
            with self._lock:
                won = job.state == "running"
                if won:
                    job.state = "done"
                    self._running.discard(job)
                abandoned = me in self._abandoned
                if abandoned:
                    self._abandoned.discard(me)
            if won:
                self._end(job, "fail" if failure is not None else "deliver", result, failure)
            if abandoned:
                return  # replaced when it was abandoned: this thread ends here

    def _end(
        self, job: LineJob[Any], how: str, result: Any = None, failure: BaseException | None = None
    ) -> None:
        """Call the one callback that ends ``job``; never lets an owner's exception kill a pool thread."""
        try:
            if how == "deliver":
                job.deliver(result)
            elif how == "fail":
                assert failure is not None
                if job.fail is not None:
                    job.fail(failure)
                else:
                    log.error("a line raised in the line pool", exc_info=failure)
                    job.skip()
            elif how == "skip":
                job.skip()
            else:
                job.overdue(how)
        except Exception:
            log.exception("reporting a line of the line pool failed")
        finally:
            with self._lock:
                self._busy -= 1

    def _drain(self) -> None:
        while True:
            try:
                job = self._queue.get_nowait()
            except queue.Empty:
                return
            if job is not None:
                self._end(job, "skip")

    # ---------------------------------------------------------------------------------- watchdog

    def _watch(self) -> None:
        while not self._stopped.wait(self.tick_s):
            try:
                self._check()
            except Exception:  # the watchdog must outlive any surprise
                log.exception("line pool watchdog")

    def _check(self) -> None:
        now = time.monotonic()
        cancelled = self.cancel is not None and self.cancel.is_set()
        if cancelled and self._cancelled_at is None:
            self._cancelled_at = now
        cancel_due = cancelled and now - (self._cancelled_at or now) >= self.cancel_grace_s
        ended: list[tuple[LineJob[Any], str]] = []
        newly_broken: str | None = None
        with self._lock:
            for job in list(self._running):
                if job.deadline is not None and now >= job.deadline:
                    ended.append((job, TIMEOUT))
                elif cancel_due:
                    ended.append((job, CANCELLED))
            for job, reason in ended:
                job.state = "abandoned"
                self._running.discard(job)
                if job.thread is not None:
                    self._workers.discard(job.thread)
                    self._abandoned.add(job.thread)
                if reason == TIMEOUT:
                    self.abandoned_total += 1
            timeouts = sum(1 for _, reason in ended if reason == TIMEOUT)
            if timeouts and self.broken is None and len(self._abandoned) > self.max_abandoned:
                newly_broken = self.broken = (
                    f"{len(self._abandoned)} lines ran past their deadline and are still running in threads "
                    f"Python cannot stop (more than {self.max_abandoned}, the pool's limit): the run stops "
                    "here rather than leak a thread per line"
                )
            if self.broken is None and not self._closed:
                for _ in ended:
                    self._start_worker()
        for job, reason in ended:
            self._end(job, reason)
        if newly_broken is not None:
            if self.on_broken is not None:  # first, so the owner knows why before the skips arrive
                try:
                    self.on_broken(newly_broken)
                except Exception:
                    log.exception("line pool on_broken")
            self._drain()
