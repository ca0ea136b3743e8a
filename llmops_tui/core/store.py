"""The run store: everything a sweep produced, in SQLite (WAL) under the workspace's ``.llmops/``.

Each finished line is committed as it finishes, so a ``kill -9`` loses at most the lines in flight.
Reports, comparisons and approvals are derived from here, never the other way round. The persistent
line cache lives in the same database (table ``cache``). Secrets are never written here.
"""

from __future__ import annotations

import json
import os
import socket
import sqlite3
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from llmops_tui.core.errors import LlmopsError, StorageError

SCHEMA_VERSION = 1
STORE_DIR = ".llmops"
STORE_FILE = "store.sqlite"

_SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT);
CREATE TABLE IF NOT EXISTS runs (
    run_id TEXT PRIMARY KEY,
    use_case TEXT NOT NULL,
    env TEXT,
    status TEXT NOT NULL,          -- running | completed | completed_with_errors | failed | cancelled
                                   -- (interrupted is derived: running, and its process is gone)
    started_at REAL NOT NULL,
    finished_at REAL,
    pid INTEGER,
    host TEXT,
    target TEXT DEFAULT 'local',
    config_json TEXT NOT NULL,     -- what is needed to resume: the sweep spec (never a key)
    summary_json TEXT,
    error TEXT
);
CREATE TABLE IF NOT EXISTS cells (
    run_id TEXT NOT NULL,
    cell_id TEXT NOT NULL,
    idx INTEGER NOT NULL,
    variants_json TEXT NOT NULL,
    params_json TEXT NOT NULL,
    dataset TEXT NOT NULL,
    repeat INTEGER NOT NULL,
    flow_hash TEXT,
    lines_total INTEGER NOT NULL,
    status TEXT NOT NULL DEFAULT 'pending',
    extra_json TEXT,
    PRIMARY KEY (run_id, cell_id)
);
CREATE TABLE IF NOT EXISTS lines (
    run_id TEXT NOT NULL,
    cell_id TEXT NOT NULL,
    line INTEGER NOT NULL,
    status TEXT NOT NULL,          -- ok | failed
    inputs_json TEXT,
    outputs_json TEXT,
    error TEXT,
    attempts INTEGER NOT NULL DEFAULT 1,
    latency_ms REAL,
    prompt_tokens INTEGER DEFAULT 0,
    completion_tokens INTEGER DEFAULT 0,
    total_tokens INTEGER DEFAULT 0,
    llm_calls INTEGER DEFAULT 0,
    cache_hit INTEGER DEFAULT 0,
    finished_at REAL,
    logs_json TEXT,                -- what the flow printed on this line: {"stdout": ..., "stderr": ...}
    requests INTEGER DEFAULT 0,    -- HTTP requests sent for this line (failed attempts included)
    traces_json TEXT,              -- the line's spans (core/backends/tracing.py), when its backend records them
    PRIMARY KEY (run_id, cell_id, line)
);
CREATE TABLE IF NOT EXISTS eval_lines (
    run_id TEXT NOT NULL,
    cell_id TEXT NOT NULL,
    evaluator TEXT NOT NULL,
    line INTEGER NOT NULL,
    status TEXT NOT NULL,
    outputs_json TEXT,
    error TEXT,
    PRIMARY KEY (run_id, cell_id, evaluator, line)
);
CREATE TABLE IF NOT EXISTS metrics (
    run_id TEXT NOT NULL,
    cell_id TEXT NOT NULL,
    evaluator TEXT NOT NULL,
    name TEXT NOT NULL,
    value REAL,
    PRIMARY KEY (run_id, cell_id, evaluator, name)
);
CREATE TABLE IF NOT EXISTS cache (
    key TEXT PRIMARY KEY,
    outputs_json TEXT NOT NULL,
    prompt_tokens INTEGER DEFAULT 0,
    completion_tokens INTEGER DEFAULT 0,
    total_tokens INTEGER DEFAULT 0,
    llm_calls INTEGER DEFAULT 0,
    latency_ms REAL,
    created_at REAL NOT NULL
);
CREATE INDEX IF NOT EXISTS lines_by_cell ON lines (run_id, cell_id);
CREATE TABLE IF NOT EXISTS traffic (   -- captured A/B requests: which line of a traffic run each request is
    request_id TEXT PRIMARY KEY,
    run_id TEXT NOT NULL,
    cell_id TEXT NOT NULL,         -- the arm
    line INTEGER NOT NULL,
    captured_at REAL NOT NULL,
    feedback_json TEXT             -- {"score": ..., "label": ..., "data": {...}} when someone gave feedback
);
CREATE INDEX IF NOT EXISTS traffic_by_run ON traffic (run_id, cell_id, line);
"""


@dataclass
class RunRecord:
    run_id: str
    use_case: str
    env: str | None
    status: str
    started_at: float
    finished_at: float | None
    pid: int | None
    host: str | None
    target: str
    config: dict[str, Any]
    summary: dict[str, Any] | None
    error: str | None = None

    @property
    def uses_sandbox(self) -> bool:
        """True when the run's answers came from the bundled sandbox model."""
        return self.config.get("llm_endpoint") == "sandbox"

    @property
    def resumable(self) -> bool:
        """Resume runs what is missing and retries failed lines, so every unfinished state resumes."""
        return self.status in RESUMABLE

    def to_dict(self) -> dict[str, Any]:
        return {
            "run_id": self.run_id,
            "use_case": self.use_case,
            "env": self.env,
            "status": self.status,
            "started_at": _iso(self.started_at),
            "finished_at": _iso(self.finished_at),
            "target": self.target,
            "resumable": self.resumable,
            "cells": (self.summary or {}).get("cell_count", self.config.get("cell_count")),
            "lines": (self.summary or {}).get("lines_done"),
            "error": self.error,
        }


@dataclass
class CellRecord:
    run_id: str
    cell_id: str
    idx: int
    variants: dict[str, str]
    params: dict[str, Any]
    dataset: str
    repeat: int
    flow_hash: str | None
    lines_total: int
    status: str
    extra: dict[str, Any] = field(default_factory=dict)


@dataclass
class LineRecord:
    run_id: str
    cell_id: str
    line: int
    status: str
    inputs: dict[str, Any] | None
    outputs: dict[str, Any] | None
    error: str | None = None
    attempts: int = 1
    latency_ms: float | None = None
    prompt_tokens: int = 0
    completion_tokens: int = 0
    total_tokens: int = 0
    llm_calls: int = 0
    cache_hit: bool = False
    finished_at: float | None = None
    logs: dict[str, str] | None = None  # what the flow printed on this line (stdout / stderr)
    requests: int = 0  # HTTP requests sent, failed attempts included
    traces: list[dict[str, Any]] | None = None  # the line's spans (see core/backends/tracing.py)


# Run statuses. ``interrupted`` is never written: it is read off a ``running`` run whose process is gone.
RUN_STATUSES = ("running", "completed", "completed_with_errors", "failed", "cancelled", "interrupted")
RESUMABLE = frozenset({"interrupted", "cancelled", "failed", "completed_with_errors"})


_CELL_INSERT = (
    "INTO cells(run_id, cell_id, idx, variants_json, params_json, dataset, repeat, flow_hash, lines_total, "
    "status, extra_json) VALUES (?,?,?,?,?,?,?,?,?,?,?)"
)
_LINE_INSERT = (
    "INTO lines(run_id, cell_id, line, status, inputs_json, outputs_json, error, attempts, latency_ms, "
    "prompt_tokens, completion_tokens, total_tokens, llm_calls, cache_hit, finished_at, logs_json, requests, "
    "traces_json) VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?)"
)


def _cell_row(run_id: str, c: CellRecord) -> tuple[Any, ...]:
    return (
        run_id,
        c.cell_id,
        c.idx,
        _dumps(c.variants),
        _dumps(c.params),
        c.dataset,
        c.repeat,
        c.flow_hash,
        c.lines_total,
        c.status,
        _dumps(c.extra),
    )


def _line_row(run_id: str, rec: LineRecord, finished_at: float | None) -> tuple[Any, ...]:
    return (
        run_id,
        rec.cell_id,
        rec.line,
        rec.status,
        _dumps(rec.inputs),
        _dumps(rec.outputs) if rec.outputs is not None else None,
        rec.error,
        rec.attempts,
        rec.latency_ms,
        rec.prompt_tokens,
        rec.completion_tokens,
        rec.total_tokens,
        rec.llm_calls,
        int(rec.cache_hit),
        finished_at,
        _dumps(rec.logs) if rec.logs else None,
        rec.requests,
        _dumps(rec.traces) if rec.traces else None,
    )


def _iso(ts: float | None) -> str | None:
    if ts is None:
        return None
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(ts))


def _dumps(obj: Any) -> str:
    return json.dumps(obj, ensure_ascii=False, default=str, sort_keys=False)


def _pid_alive(pid: int | None, host: str | None) -> bool:
    if not pid:
        return False
    if host != socket.gethostname():
        return True  # another machine's run: we cannot tell, so do not call it interrupted
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


class RunStore:
    """Thread-safe access to the store. One connection, serialised by a lock: SQLite allows one
    writer at a time anyway, and commits in WAL mode with synchronous=NORMAL cost well under 1 ms."""

    def __init__(self, path: Path):
        self.path = Path(path)
        self._lock = threading.RLock()
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self._db = sqlite3.connect(
                str(self.path), check_same_thread=False, timeout=30, isolation_level=None
            )
            self._db.row_factory = sqlite3.Row
            with self._lock:
                self._db.execute("PRAGMA journal_mode=WAL")
                self._db.execute("PRAGMA synchronous=NORMAL")
                self._db.execute("PRAGMA busy_timeout=30000")
                self._db.executescript(_SCHEMA)
                self._migrate()
                self._db.execute(
                    "INSERT OR IGNORE INTO meta(key, value) VALUES ('schema_version', ?)",
                    (str(SCHEMA_VERSION),),
                )
        except (sqlite3.Error, OSError) as exc:
            raise StorageError.from_exception(self.path, exc) from exc

    def _migrate(self) -> None:
        """Columns added after the first release; older stores gain them in place (no data is lost)."""
        have = {r[1] for r in self._db.execute("PRAGMA table_info(lines)")}
        for column, decl in (
            ("logs_json", "TEXT"),
            ("requests", "INTEGER DEFAULT 0"),
            ("traces_json", "TEXT"),
        ):
            if column not in have:
                self._db.execute(f"ALTER TABLE lines ADD COLUMN {column} {decl}")

    @classmethod
    def for_workspace(cls, root: Path | str) -> RunStore:
        return cls(Path(root) / STORE_DIR / STORE_FILE)

    def close(self) -> None:
        with self._lock:
            self._db.close()

    def __enter__(self) -> RunStore:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _exec(self, sql: str, params: tuple[Any, ...] = ()) -> sqlite3.Cursor:
        with self._lock, self._named_errors():
            return self._db.execute(sql, params)

    def _query(self, sql: str, params: tuple[Any, ...] = ()) -> list[sqlite3.Row]:
        with self._lock, self._named_errors():
            return self._db.execute(sql, params).fetchall()

    @contextmanager
    def _named_errors(self) -> Iterator[None]:
        """SQLite and OS errors become a :class:`StorageError` naming the store file and what to do."""
        try:
            yield
        except sqlite3.Error as exc:
            if self._db.in_transaction:
                try:
                    self._db.execute("ROLLBACK")
                except sqlite3.Error:
                    pass
            raise StorageError.from_exception(self.path, exc) from exc
        except OSError as exc:
            raise StorageError.from_exception(self.path, exc) from exc

    @contextmanager
    def _transaction(self) -> Iterator[sqlite3.Connection]:
        with self._lock, self._named_errors():
            self._db.execute("BEGIN")
            yield self._db
            self._db.execute("COMMIT")

    # ----------------------------------------------------------------------------------------- runs

    def create_run(
        self, run_id: str, use_case: str, env: str | None, config: dict[str, Any], target: str = "local"
    ) -> None:
        self._exec(
            "INSERT INTO runs(run_id, use_case, env, status, started_at, pid, host, target, config_json) "
            "VALUES (?,?,?,?,?,?,?,?,?)",
            (
                run_id,
                use_case,
                env,
                "running",
                time.time(),
                os.getpid(),
                socket.gethostname(),
                target,
                _dumps(config),
            ),
        )

    def mark_running(self, run_id: str) -> None:
        self._exec(
            "UPDATE runs SET status='running', pid=?, host=?, finished_at=NULL, error=NULL WHERE run_id=?",
            (os.getpid(), socket.gethostname(), run_id),
        )

    def finish_run(
        self, run_id: str, status: str, summary: dict[str, Any] | None = None, error: str | None = None
    ) -> None:
        self._exec(
            "UPDATE runs SET status=?, finished_at=?, summary_json=?, error=? WHERE run_id=?",
            (status, time.time(), _dumps(summary) if summary is not None else None, error, run_id),
        )

    def update_run_config(self, run_id: str, config: dict[str, Any]) -> None:
        self._exec("UPDATE runs SET config_json=? WHERE run_id=?", (_dumps(config), run_id))

    def _run(self, row: sqlite3.Row) -> RunRecord:
        status = row["status"]
        if status == "running" and not self._still_running(row):
            status = "interrupted"
        return RunRecord(
            run_id=row["run_id"],
            use_case=row["use_case"],
            env=row["env"],
            status=status,
            started_at=row["started_at"],
            finished_at=row["finished_at"],
            pid=row["pid"],
            host=row["host"],
            target=row["target"] or "local",
            config=json.loads(row["config_json"] or "{}"),
            summary=json.loads(row["summary_json"]) if row["summary_json"] else None,
            error=row["error"],
        )

    def _still_running(self, row: sqlite3.Row) -> bool:
        """A ``running`` run is still running only while a process holds its run lock (the kernel drops
        the lock when the runner dies or stops, whatever the pid says); runs of other machines, and
        runs from before run locks, are judged by their pid."""
        if row["host"] == socket.gethostname():
            held = RunLock(self.path, row["run_id"]).held()
            if held is not None:
                return held
        return _pid_alive(row["pid"], row["host"])

    def get_run(self, run_id: str) -> RunRecord | None:
        rows = self._query("SELECT * FROM runs WHERE run_id=?", (run_id,))
        if not rows:
            rows = self._query(
                "SELECT * FROM runs WHERE run_id LIKE ? ORDER BY started_at DESC", (run_id + "%",)
            )
            if len(rows) > 1:
                shown = ", ".join(r["run_id"] for r in rows[:5]) + (", ..." if len(rows) > 5 else "")
                raise LlmopsError(
                    f"run id prefix '{run_id}' matches {len(rows)} runs ({shown})",
                    field="RUN_ID",
                    hint="give more of the run id",
                )
            if not rows:
                return None
        return self._run(rows[0])

    def require_run(self, run_id: str, *, field: str = "RUN_ID") -> RunRecord:
        """The run with this id (or unique prefix); LlmopsError naming the store when there is none."""
        run = self.get_run(run_id)
        if run is None:
            raise LlmopsError(f"no run '{run_id}'", file=self.path, field=field, hint="see `llmops runs`")
        return run

    def list_runs(self, use_case: str | None = None) -> list[RunRecord]:
        if use_case:
            rows = self._query("SELECT * FROM runs WHERE use_case=? ORDER BY started_at DESC", (use_case,))
        else:
            rows = self._query("SELECT * FROM runs ORDER BY started_at DESC")
        return [self._run(r) for r in rows]

    def delete_run(self, run_id: str) -> None:
        with self._transaction() as db:
            for table in ("lines", "eval_lines", "metrics", "cells", "traffic", "runs"):
                db.execute(f"DELETE FROM {table} WHERE run_id=?", (run_id,))

    # ---------------------------------------------------------------------------------------- cells

    def add_cells(self, run_id: str, cells: list[CellRecord]) -> None:
        with self._transaction() as db:
            db.executemany("INSERT OR IGNORE " + _CELL_INSERT, [_cell_row(run_id, c) for c in cells])

    def set_cell_status(
        self, run_id: str, cell_id: str, status: str, extra: dict[str, Any] | None = None
    ) -> None:
        if extra is None:
            self._exec("UPDATE cells SET status=? WHERE run_id=? AND cell_id=?", (status, run_id, cell_id))
        else:
            self._exec(
                "UPDATE cells SET status=?, extra_json=? WHERE run_id=? AND cell_id=?",
                (status, _dumps(extra), run_id, cell_id),
            )

    def cells(self, run_id: str) -> list[CellRecord]:
        rows = self._query("SELECT * FROM cells WHERE run_id=? ORDER BY idx", (run_id,))
        return [
            CellRecord(
                run_id=r["run_id"],
                cell_id=r["cell_id"],
                idx=r["idx"],
                variants=json.loads(r["variants_json"]),
                params=json.loads(r["params_json"]),
                dataset=r["dataset"],
                repeat=r["repeat"],
                flow_hash=r["flow_hash"],
                lines_total=r["lines_total"],
                status=r["status"],
                extra=json.loads(r["extra_json"] or "{}"),
            )
            for r in rows
        ]

    # ---------------------------------------------------------------------------------------- lines

    def record_line(self, rec: LineRecord) -> None:
        """Commit one finished line (autocommit: durable as soon as this returns)."""
        self._exec(
            "INSERT OR REPLACE " + _LINE_INSERT, _line_row(rec.run_id, rec, rec.finished_at or time.time())
        )

    def record_traffic_line(self, rec: LineRecord, request_id: str, captured_at: float) -> bool:
        """Commit one captured request as a line of a traffic run and remember its request id, in one
        transaction. The line number is the arm's next one. False (nothing written) for a known id."""
        with self._transaction() as db:
            if db.execute("SELECT 1 FROM traffic WHERE request_id=?", (request_id,)).fetchone():
                return False
            row = db.execute(
                "SELECT COALESCE(MAX(line), -1) + 1 FROM lines WHERE run_id=? AND cell_id=?",
                (rec.run_id, rec.cell_id),
            ).fetchone()
            rec.line = int(row[0])
            db.execute("INSERT " + _LINE_INSERT, _line_row(rec.run_id, rec, rec.finished_at or captured_at))
            db.execute(
                "INSERT INTO traffic(request_id, run_id, cell_id, line, captured_at) VALUES (?,?,?,?,?)",
                (request_id, rec.run_id, rec.cell_id, rec.line, captured_at),
            )
            return True

    def traffic_lines(self, run_id: str) -> list[dict[str, Any]]:
        """Every captured request of a traffic run: request id, arm, line, capture time, feedback."""
        rows = self._query("SELECT * FROM traffic WHERE run_id=? ORDER BY cell_id, line", (run_id,))
        return [
            {
                "request_id": r["request_id"],
                "cell_id": r["cell_id"],
                "line": r["line"],
                "captured_at": r["captured_at"],
                "feedback": json.loads(r["feedback_json"]) if r["feedback_json"] else None,
            }
            for r in rows
        ]

    def traffic_count(self, run_id: str) -> dict[str, int]:
        """Captured requests per arm (fast: for live counts)."""
        rows = self._query(
            "SELECT cell_id, COUNT(*) n FROM traffic WHERE run_id=? GROUP BY cell_id", (run_id,)
        )
        return {r["cell_id"]: r["n"] for r in rows}

    def set_feedback(self, request_id: str, feedback: dict[str, Any]) -> str | None:
        """Attach feedback to a captured request (merged with earlier feedback); its run id, or None
        when no captured request has this id."""
        with self._transaction() as db:
            row = db.execute(
                "SELECT run_id, feedback_json FROM traffic WHERE request_id=?", (request_id,)
            ).fetchone()
            if row is None:
                return None
            merged = {**(json.loads(row["feedback_json"]) if row["feedback_json"] else {}), **feedback}
            db.execute("UPDATE traffic SET feedback_json=? WHERE request_id=?", (_dumps(merged), request_id))
            return str(row["run_id"])

    def done_lines(self, run_id: str, cell_id: str, *, ok_only: bool = True) -> set[int]:
        sql = "SELECT line FROM lines WHERE run_id=? AND cell_id=?" + (" AND status='ok'" if ok_only else "")
        return {r[0] for r in self._query(sql, (run_id, cell_id))}

    def lines(self, run_id: str, cell_id: str | None = None) -> list[LineRecord]:
        if cell_id is None:
            rows = self._query("SELECT * FROM lines WHERE run_id=? ORDER BY cell_id, line", (run_id,))
        else:
            rows = self._query(
                "SELECT * FROM lines WHERE run_id=? AND cell_id=? ORDER BY line", (run_id, cell_id)
            )
        return [self._line(r) for r in rows]

    def iter_lines(self, run_id: str, cell_id: str) -> Iterator[LineRecord]:
        yield from self.lines(run_id, cell_id)

    @staticmethod
    def _line(r: sqlite3.Row) -> LineRecord:
        return LineRecord(
            run_id=r["run_id"],
            cell_id=r["cell_id"],
            line=r["line"],
            status=r["status"],
            inputs=json.loads(r["inputs_json"]) if r["inputs_json"] else None,
            outputs=json.loads(r["outputs_json"]) if r["outputs_json"] else None,
            error=r["error"],
            attempts=r["attempts"],
            latency_ms=r["latency_ms"],
            prompt_tokens=r["prompt_tokens"] or 0,
            completion_tokens=r["completion_tokens"] or 0,
            total_tokens=r["total_tokens"] or 0,
            llm_calls=r["llm_calls"] or 0,
            cache_hit=bool(r["cache_hit"]),
            finished_at=r["finished_at"],
            logs=json.loads(r["logs_json"]) if r["logs_json"] else None,
            requests=r["requests"] or 0,
            traces=json.loads(r["traces_json"]) if r["traces_json"] else None,
        )

    def latencies(self, run_id: str) -> dict[str, list[float]]:
        """cell_id -> latency (ms) of every line that has one, without loading inputs or outputs."""
        out: dict[str, list[float]] = {}
        rows = self._query(
            "SELECT cell_id, latency_ms FROM lines WHERE run_id=? AND latency_ms IS NOT NULL", (run_id,)
        )
        for r in rows:
            out.setdefault(r["cell_id"], []).append(r["latency_ms"])
        return out

    def line_stats(self, run_id: str) -> dict[str, dict[str, Any]]:
        """Per cell: lines, errors, llm_calls, cache_hits, tokens (fast aggregate for summaries)."""
        rows = self._query(
            "SELECT cell_id, COUNT(*) n, SUM(status!='ok') errors, SUM(llm_calls) calls, SUM(cache_hit) hits, "
            "SUM(prompt_tokens) pt, SUM(completion_tokens) ct, SUM(total_tokens) tt, SUM(requests) req, "
            "SUM(MAX(attempts - 1, 0)) retries "
            "FROM lines WHERE run_id=? GROUP BY cell_id",
            (run_id,),
        )
        return {
            r["cell_id"]: {
                "lines": r["n"],
                "errors": r["errors"] or 0,
                "llm_calls": r["calls"] or 0,
                "cache_hits": r["hits"] or 0,
                "prompt_tokens": r["pt"] or 0,
                "completion_tokens": r["ct"] or 0,
                "total_tokens": r["tt"] or 0,
                "requests": r["req"] or 0,
                "retries": r["retries"] or 0,
            }
            for r in rows
        }

    def first_line_error(self, run_id: str) -> str | None:
        """The earliest failed line of the run, as one line in people's words (cell label, line, error)."""
        rows = self._query(
            "SELECT l.line, l.error, c.extra_json, c.cell_id FROM lines l JOIN cells c "
            "ON c.run_id=l.run_id AND c.cell_id=l.cell_id WHERE l.run_id=? AND l.status!='ok' "
            "ORDER BY l.finished_at, c.idx, l.line LIMIT 1",
            (run_id,),
        )
        if not rows:
            return None
        r = rows[0]
        label = json.loads(r["extra_json"] or "{}").get("label") or r["cell_id"]
        return f"line {r['line']} of {label}: {r['error'] or 'failed'}"

    # ----------------------------------------------------------------------------------- evaluation

    def eval_stats(self, run_id: str) -> dict[str, int]:
        """cell_id -> number of failed evaluation lines (all evaluators)."""
        rows = self._query(
            "SELECT cell_id, COUNT(*) n FROM eval_lines WHERE run_id=? AND status!='ok' GROUP BY cell_id",
            (run_id,),
        )
        return {r["cell_id"]: r["n"] for r in rows}

    def merge_cell_extra(self, run_id: str, cell_id: str, status: str | None = None, **values: Any) -> None:
        """Set keys of a cell's extra record (None removes a key), and its status when given."""
        with self._transaction() as db:
            row = db.execute(
                "SELECT extra_json FROM cells WHERE run_id=? AND cell_id=?", (run_id, cell_id)
            ).fetchone()
            extra = json.loads(row["extra_json"] or "{}") if row else {}
            for k, v in values.items():
                if v is None:
                    extra.pop(k, None)
                else:
                    extra[k] = v
            if status is None:
                db.execute(
                    "UPDATE cells SET extra_json=? WHERE run_id=? AND cell_id=?",
                    (_dumps(extra), run_id, cell_id),
                )
            else:
                db.execute(
                    "UPDATE cells SET status=?, extra_json=? WHERE run_id=? AND cell_id=?",
                    (status, _dumps(extra), run_id, cell_id),
                )

    def record_eval_lines(
        self, run_id: str, cell_id: str, evaluator: str, rows: list[tuple[int, str, Any, str | None]]
    ) -> None:
        """rows: (line, status, outputs, error)."""
        with self._transaction() as db:
            db.execute(
                "DELETE FROM eval_lines WHERE run_id=? AND cell_id=? AND evaluator=?",
                (run_id, cell_id, evaluator),
            )
            db.executemany(
                "INSERT INTO eval_lines(run_id, cell_id, evaluator, line, status, outputs_json, error) VALUES (?,?,?,?,?,?,?)",
                [
                    (run_id, cell_id, evaluator, ln, st, _dumps(out) if out is not None else None, err)
                    for ln, st, out, err in rows
                ],
            )

    def eval_lines(self, run_id: str, cell_id: str, evaluator: str | None = None) -> list[dict[str, Any]]:
        if evaluator:
            rows = self._query(
                "SELECT * FROM eval_lines WHERE run_id=? AND cell_id=? AND evaluator=? ORDER BY line",
                (run_id, cell_id, evaluator),
            )
        else:
            rows = self._query(
                "SELECT * FROM eval_lines WHERE run_id=? AND cell_id=? ORDER BY evaluator, line",
                (run_id, cell_id),
            )
        return [
            {
                "evaluator": r["evaluator"],
                "line": r["line"],
                "status": r["status"],
                "outputs": json.loads(r["outputs_json"]) if r["outputs_json"] else None,
                "error": r["error"],
            }
            for r in rows
        ]

    def record_metrics(self, run_id: str, cell_id: str, evaluator: str, metrics: dict[str, Any]) -> None:
        with self._transaction() as db:
            db.execute(
                "DELETE FROM metrics WHERE run_id=? AND cell_id=? AND evaluator=?",
                (run_id, cell_id, evaluator),
            )
            for name, value in metrics.items():
                try:
                    num = float(value)
                except (TypeError, ValueError):
                    continue
                db.execute(
                    "INSERT INTO metrics(run_id, cell_id, evaluator, name, value) VALUES (?,?,?,?,?)",
                    (run_id, cell_id, evaluator, str(name), num),
                )

    def metrics(self, run_id: str, cell_id: str | None = None) -> dict[str, dict[str, dict[str, float]]]:
        """cell_id -> evaluator -> metric -> value."""
        if cell_id:
            rows = self._query("SELECT * FROM metrics WHERE run_id=? AND cell_id=?", (run_id, cell_id))
        else:
            rows = self._query("SELECT * FROM metrics WHERE run_id=?", (run_id,))
        out: dict[str, dict[str, dict[str, float]]] = {}
        for r in rows:
            out.setdefault(r["cell_id"], {}).setdefault(r["evaluator"], {})[r["name"]] = r["value"]
        return out

    # ------------------------------------------------------------------------------- portable runs

    def run_by_exact_id(self, run_id: str) -> RunRecord | None:
        """The run with exactly this id (no prefix matching), or None."""
        rows = self._query("SELECT * FROM runs WHERE run_id=?", (run_id,))
        return self._run(rows[0]) if rows else None

    def run_eval_lines(self, run_id: str) -> list[dict[str, Any]]:
        """Every evaluation line of the run, with its cell id, in a stable order."""
        rows = self._query(
            "SELECT * FROM eval_lines WHERE run_id=? ORDER BY cell_id, evaluator, line", (run_id,)
        )
        return [
            {
                "cell_id": r["cell_id"],
                "evaluator": r["evaluator"],
                "line": r["line"],
                "status": r["status"],
                "outputs": json.loads(r["outputs_json"]) if r["outputs_json"] else None,
                "error": r["error"],
            }
            for r in rows
        ]

    def insert_run(
        self,
        run: RunRecord,
        cells: list[CellRecord],
        lines: list[LineRecord],
        eval_lines: list[tuple[str, str, int, str, Any, str | None]],
        metrics: list[tuple[str, str, str, float | None]],
    ) -> None:
        """Write a whole finished run (an imported one) in one transaction: all of it or none of it.
        ``eval_lines``: (cell_id, evaluator, line, status, outputs, error); ``metrics``: (cell_id,
        evaluator, name, value). A run with the same id already in the store is an error."""
        with self._lock:
            if self._query("SELECT 1 FROM runs WHERE run_id=?", (run.run_id,)):
                raise LlmopsError(
                    f"run {run.run_id} is already in this store", file=self.path, field="run_id"
                )
            # (another process inserting the same id meanwhile fails the INSERT, which rolls everything back)
            self._insert_run(run, cells, lines, eval_lines, metrics)

    def _insert_run(
        self,
        run: RunRecord,
        cells: list[CellRecord],
        lines: list[LineRecord],
        eval_lines: list[tuple[str, str, int, str, Any, str | None]],
        metrics: list[tuple[str, str, str, float | None]],
    ) -> None:
        with self._transaction() as db:
            db.execute(
                "INSERT INTO runs(run_id, use_case, env, status, started_at, finished_at, pid, host, target, "
                "config_json, summary_json, error) VALUES (?,?,?,?,?,?,?,?,?,?,?,?)",
                (
                    run.run_id,
                    run.use_case,
                    run.env,
                    run.status,
                    run.started_at,
                    run.finished_at,
                    run.pid,
                    run.host,
                    run.target,
                    _dumps(run.config),
                    _dumps(run.summary) if run.summary is not None else None,
                    run.error,
                ),
            )
            db.executemany("INSERT " + _CELL_INSERT, [_cell_row(run.run_id, c) for c in cells])
            db.executemany(
                "INSERT " + _LINE_INSERT, [_line_row(run.run_id, ln, ln.finished_at) for ln in lines]
            )
            db.executemany(
                "INSERT INTO eval_lines(run_id, cell_id, evaluator, line, status, outputs_json, error) "
                "VALUES (?,?,?,?,?,?,?)",
                [
                    (run.run_id, cid, evaluator, ln, st, _dumps(out) if out is not None else None, err)
                    for cid, evaluator, ln, st, out, err in eval_lines
                ],
            )
            db.executemany(
                "INSERT INTO metrics(run_id, cell_id, evaluator, name, value) VALUES (?,?,?,?,?)",
                [(run.run_id, cid, evaluator, name, value) for cid, evaluator, name, value in metrics],
            )

    # ---------------------------------------------------------------------------------------- cache

    def cache_get(self, key: str) -> dict[str, Any] | None:
        rows = self._query("SELECT * FROM cache WHERE key=?", (key,))
        if not rows:
            return None
        r = rows[0]
        return {
            "outputs": json.loads(r["outputs_json"]),
            "prompt_tokens": r["prompt_tokens"],
            "completion_tokens": r["completion_tokens"],
            "total_tokens": r["total_tokens"],
            "llm_calls": r["llm_calls"],
            "latency_ms": r["latency_ms"],
        }

    def cache_put(
        self, key: str, outputs: Any, tokens: dict[str, int], llm_calls: int, latency_ms: float | None = None
    ) -> None:
        self._exec(
            "INSERT OR REPLACE INTO cache(key, outputs_json, prompt_tokens, completion_tokens, total_tokens, llm_calls, "
            "latency_ms, created_at) VALUES (?,?,?,?,?,?,?,?)",
            (
                key,
                _dumps(outputs),
                tokens.get("prompt_tokens", 0),
                tokens.get("completion_tokens", 0),
                tokens.get("total_tokens", 0),
                llm_calls,
                latency_ms,
                time.time(),
            ),
        )

    def cache_clear(self) -> int:
        return self._exec("DELETE FROM cache").rowcount


class RunLock:
    """One runner per run: an exclusive ``flock`` on ``.llmops/locks/RUN_ID.lock`` held while the run
    executes. The kernel drops it when the process dies (even on SIGKILL), so a stale lock never blocks
    a resume; a second runner, or a resume racing another resume, is refused naming the holder."""

    def __init__(self, store_path: Path, run_id: str):
        self.path = Path(store_path).parent / "locks" / f"{run_id}.lock"
        self.run_id = run_id
        self._fd: int | None = None

    def acquire(self) -> RunLock:
        import fcntl

        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o600)
        except OSError as exc:
            raise StorageError.from_exception(self.path, exc) from exc
        for attempt in range(6):  # a reader probing the lock (``held``) holds it for microseconds
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if attempt < 5:
                    time.sleep(0.02)
        else:
            holder = os.pread(fd, 200, 0).decode("utf-8", "replace").strip() or "another process"
            os.close(fd)
            raise LlmopsError(
                f"run {self.run_id} is being run by {holder}",
                field="--resume",
                hint="wait for it to finish, or stop that process first",
            ) from None
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"process {os.getpid()} on {socket.gethostname()}".encode(), 0)
        self._fd = fd
        return self

    def held(self) -> bool | None:
        """Whether some runner holds this lock now; None when the run never had a lock file."""
        import fcntl

        try:
            fd = os.open(self.path, os.O_RDONLY)
        except OSError:
            return None
        try:
            fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
        except BlockingIOError:
            return True
        finally:
            os.close(fd)
        return False

    def release(self) -> None:
        if self._fd is not None:
            os.close(self._fd)  # closing drops the flock; the file stays (harmless, tiny)
            self._fd = None

    def __enter__(self) -> RunLock:
        return self.acquire()

    def __exit__(self, *exc: object) -> None:
        self.release()
