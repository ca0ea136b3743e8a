"""`llmops sweep`, `llmops runs`, `llmops show-run`: the sweep engine from the command line."""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.markup import escape
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table
from typer.core import TyperGroup

from llmops_tui.cli.common import (
    JsonOpt,
    WorkspaceOpt,
    console,
    err_console,
    print_json,
    sigint_cancels,
    stdout_for_json,
    styled_status,
)
from llmops_tui.core import events as ev
from llmops_tui.core.cost import fmt_cost
from llmops_tui.core.errors import LlmopsError, RunFailed
from llmops_tui.core.store import RunStore
from llmops_tui.core.sweep import SweepOptions, estimate, parse_grid_args, plan_sweep
from llmops_tui.core.workspace import load_workspace


class _RunsGroup(TyperGroup):
    """`llmops runs [USE_CASE]` lists runs, and `llmops runs export|import ...` are its subcommands: a first
    argument that names a subcommand runs it, anything else is the listing's use case (options may follow
    it, as they could before `runs` became a group)."""

    allow_interspersed_args = True

    def parse_args(self, ctx: Any, args: list[str]) -> list[str]:
        if args and args[0] in self.commands:
            super(TyperGroup, self).parse_args(ctx, [])  # the listing's parameters at their defaults
            ctx._protected_args, ctx.args = [args[0]], list(args[1:])
            return ctx.args
        return super().parse_args(ctx, args)


runs_app = typer.Typer(
    cls=_RunsGroup,
    invoke_without_command=True,
    help="List runs (newest first), or carry one to another machine: `runs export`, `runs import`.",
)


def register(app: typer.Typer) -> None:
    app.command("sweep")(sweep_cmd)
    runs_app.callback(invoke_without_command=True)(runs_cmd)
    runs_app.command("export")(export_run_cmd)
    runs_app.command("import")(import_run_cmd)
    app.add_typer(runs_app, name="runs")
    app.command("show-run")(show_run_cmd)
    app.command("delete-run")(delete_run_cmd)


WideOpt = Annotated[
    bool, typer.Option("--wide", help="Every column, whatever the terminal's width (ids, calls, cache).")
]


def sweep_cmd(
    use_case: Annotated[
        str | None, typer.Argument(help="Use case to sweep (not needed with --resume).")
    ] = None,
    workspace: WorkspaceOpt = Path("."),
    env: Annotated[
        str | None, typer.Option("--env", help="Environment overlay (experiment.<env>.yaml).")
    ] = None,
    variants: Annotated[
        str | None,
        typer.Option("--variants", help="all (default) | one-at-a-time | defaults | NODE.variant_id,..."),
    ] = None,
    grid: Annotated[
        list[str] | None, typer.Option("--grid", help="NODE.param=v1,v2 (repeatable), combined as a grid.")
    ] = None,
    dataset: Annotated[
        list[str] | None, typer.Option("--dataset", help="Experiment dataset (repeatable).")
    ] = None,
    repeat: Annotated[int | None, typer.Option("--repeat", min=1, help="Repetitions of every cell.")] = None,
    concurrency: Annotated[
        int | None, typer.Option("--concurrency", min=1, help="Lines in flight (default 16).")
    ] = None,
    llm_endpoint: Annotated[
        str | None,
        typer.Option("--llm-endpoint", help="'sandbox' or an OpenAI-compatible base URL for every LLM node."),
    ] = None,
    no_cache: Annotated[
        bool, typer.Option("--no-cache", help="Ignore and do not fill the line cache.")
    ] = False,
    resume: Annotated[
        str | None, typer.Option("--resume", help="Run only what is missing from RUN_ID.")
    ] = None,
    dry_run: Annotated[
        bool, typer.Option("--dry-run", help="Print the plan and its estimate; run nothing.")
    ] = False,
    limit: Annotated[
        int | None, typer.Option("--limit", min=1, help="Only the first N lines of each dataset.")
    ] = None,
    line_timeout: Annotated[
        float | None, typer.Option("--line-timeout", help="Seconds before a line fails.")
    ] = None,
    target: Annotated[
        str,
        typer.Option("--target", help="local (default) or azureml: the same sweep in an Azure ML workspace."),
    ] = "local",
    workers: Annotated[
        int | None,
        typer.Option(
            "--workers",
            min=1,
            max=64,
            help="Processes running lines (default: the machine's cores for big sweeps, 1 for small ones).",
        ),
    ] = None,
    backend: Annotated[
        str | None,
        typer.Option(
            "--backend",
            help="What runs DAG flows: promptflow-dag (default) or agent-framework (llmops.yaml's backend:).",
        ),
    ] = None,
    max_error_rate: Annotated[
        float,
        typer.Option(
            "--max-error-rate",
            min=0.0,
            max=1.0,
            help="Share of lines (flow or evaluation) allowed to fail before the exit code is 1 (default 0).",
        ),
    ] = 0.0,
    wide: WideOpt = False,
    json_out: JsonOpt = False,
) -> None:
    """Run a sweep: every variant combination x grid x dataset x repetition, concurrently, cached, resumable.

    Exit codes: 0 completed (or failed lines within --max-error-rate); 1 failed, too many failed lines,
    or cancelled; 2 bad input or usage; 130 stopped with Ctrl-C."""
    from llmops_tui.core import dispatch

    cancel = threading.Event()
    if target not in dispatch.TARGETS:
        raise LlmopsError(f"unknown target '{target}'", field="--target", hint="use local or azureml")
    if resume:
        events = dispatch.resume(workspace, resume, cancel=cancel)
        uc_name = None
    else:
        if not use_case:
            raise LlmopsError(
                "name a use case, or pass --resume RUN_ID", field="USE_CASE", hint="see llmops list"
            )
        ws = load_workspace(workspace, env=env)
        uc = ws.get(use_case)
        options = SweepOptions(
            variants=variants,
            grid=parse_grid_args(grid) if grid else None,
            datasets=dataset or None,
            repeat=repeat,
            concurrency=concurrency,
            llm_endpoint=llm_endpoint,
            no_cache=no_cache,
            env=env,
            limit=limit,
            line_timeout_s=line_timeout,
            target=target,
            workers=workers,
            backend=backend,
        )
        plan = plan_sweep(uc, options, allow_remote=target == "azureml")
        if target == "azureml":
            from llmops_tui.core import cloud

            if dry_run:
                cplan = cloud.cloud_plan(ws.root, uc, plan, cloud.azure_coords(uc, strict=False))
                if json_out:
                    print_json(cplan)
                else:
                    for line in cloud.describe_cloud_plan(cplan):
                        console.print(line, markup=False)
                return
            events = dispatch.start_sweep(ws.root, uc, plan, cancel=cancel)
            uc_name = uc.name
        elif dry_run:
            est = estimate(uc, plan, latency_s=0.05 if llm_endpoint == "sandbox" else 1.0)
            _print_plan(uc.name, plan, est, json_out, wide=wide)
            return
        else:
            if llm_endpoint is None:
                from llmops_tui.core.connections import build_connections

                build_connections(uc, ws.root, None)  # fail fast with the fix when a key is missing
            events = dispatch.start_sweep(ws.root, uc, plan, cancel=cancel)
            uc_name = uc.name

    # whatever a flow prints, stdout carries only the JSON object
    with sigint_cancels(cancel), stdout_for_json(json_out):
        final = _consume(events, json_out, uc_name)
    if final is None:
        raise RunFailed("the sweep ended without a result")
    summary = final.summary
    code = exit_code(final.status, summary, max_error_rate)
    summary["exit_code"] = 130 if final.status == "cancelled" and cancel.is_set() else code
    if json_out:
        print_json(summary)
    else:
        _print_summary(summary, wide=wide)
    if final.status == "cancelled":
        err_console.print(f"cancelled; resume with: llmops sweep --resume {final.run_id}")
        raise typer.Exit(130 if cancel.is_set() else 1)
    if final.error:
        where = err_console.print if (code or json_out) else console.print
        where(f"{final.status}: {final.error}", markup=False, soft_wrap=True)
    if code:
        err_console.print(
            f"exit code {code}: {_why(final.status, summary, max_error_rate)}; "
            f"retry failed lines with: llmops sweep --resume {final.run_id}",
            markup=False,
            soft_wrap=True,
        )
        raise typer.Exit(code)


def error_rate(summary: dict[str, Any]) -> float:
    """The share of lines whose flow line or evaluation line failed (0 when there were no lines)."""
    total = summary.get("lines_total") or 0
    failed = (summary.get("errors") or 0) + (summary.get("eval_errors") or 0)
    return min(1.0, failed / total) if total else 0.0


def exit_code(status: str, summary: dict[str, Any], max_error_rate: float = 0.0) -> int:
    """The sweep's exit code for CI: 0 completed, or failed lines within ``max_error_rate``; 1 otherwise."""
    if status == "completed":
        return 0
    if status == "completed_with_errors" and error_rate(summary) <= max_error_rate:
        return 0
    return 1


def _why(status: str, summary: dict[str, Any], max_error_rate: float) -> str:
    if status == "completed_with_errors":
        return f"{error_rate(summary):.1%} of lines failed, more than --max-error-rate {max_error_rate:g}"
    return f"the run {status}"


def _consume(events: Any, quiet: bool, uc_name: str | None) -> ev.SweepFinished | None:
    final = None
    with SweepProgressView(quiet) as view:
        for event in events:
            view.show(event)
            if isinstance(event, ev.SweepFinished):
                final = event
    return final


class SweepProgressView:
    """Live progress of one or more sweeps on stderr: a bar per sweep, failures and metrics as they come.
    ``llmops sweep`` shows one sweep; ``llmops compare-backends`` one per backend (``name`` says which,
    and prefixes its messages). ``quiet`` (``--json``) shows nothing."""

    def __init__(self, quiet: bool) -> None:
        self.quiet = quiet
        self.progress = Progress(
            TextColumn("[bold]{task.description}"),
            BarColumn(),
            MofNCompleteColumn(),
            TextColumn("{task.fields[info]}"),
            TimeElapsedColumn(),
            console=err_console,
            disable=quiet,
            transient=False,
        )
        self.tasks: dict[str, Any] = {}  # name -> rich task id

    def __enter__(self) -> SweepProgressView:
        self.progress.__enter__()
        return self

    def __exit__(self, *exc: Any) -> None:
        self.progress.__exit__(*exc)

    def show(self, event: ev.Event, name: str = "sweep") -> None:
        """Render one engine event of the sweep called ``name``."""
        quiet, progress = self.quiet, self.progress
        task = self.tasks.get(name)
        who = "" if name == "sweep" else f"{name}: "
        if isinstance(event, ev.SweepStarted):
            title = f"{name} {event.run_id}" if err_console.width >= 150 else name
            task = self.tasks[name] = progress.add_task(title, total=event.lines_total, info="")
            progress.update(task, completed=event.lines_already_done)
            if not quiet and event.resumed:
                err_console.print(
                    f"resuming: {event.lines_already_done} of {event.lines_total} lines already done"
                )
        elif isinstance(event, ev.Progress) and task is not None:
            # The same figures, under the same names, as the summary below and the app's run monitor.
            cost = fmt_cost(event.cost, free=event.cost_free)
            if err_console.width >= 150:
                info = (
                    f"{event.lines_per_s:5.1f} lines/s  LLM calls {event.llm_calls}  requests {event.requests}  "
                    f"cached {event.cache_hits}  retries {event.retries}  errors {event.errors}  "
                    f"tokens {event.tokens}  {cost}"
                )
            else:  # 80 columns: what a person watches; the summary has the rest
                info = f"calls {event.llm_calls} retries {event.retries} errors {event.errors}"
            progress.update(task, completed=event.done, info=info)
        elif isinstance(event, ev.LineFailed) and not quiet:
            progress.console.print(
                f"{escape(who)}[red]line {event.line} of {event.cell_id} failed[/red]: {escape(event.error[:200])}"
            )
        elif isinstance(event, ev.CellFailed) and not quiet:
            progress.console.print(f"{who}cell {event.cell_id} cannot run: {event.error}", markup=False)
        elif isinstance(event, ev.EvaluationFailed) and not quiet:
            progress.console.print(
                f"{escape(who)}[red]evaluator {event.evaluator} failed on {event.cell_id}[/red]: "
                f"{escape(event.error)}"
            )
        elif isinstance(event, ev.MetricsReady) and not quiet:
            shown = ", ".join(
                f"{k}={v:.3f}" if isinstance(v, float) else f"{k}={v}" for k, v in event.metrics.items()
            )
            progress.console.print(f"{escape(who)}[green]{event.cell_id}[/green] {event.evaluator}: {shown}")


def _print_plan(uc_name: str, plan: Any, est: Any, json_out: bool, *, wide: bool = False) -> None:
    if json_out:
        print_json(
            {
                "use_case": uc_name,
                "cells": [
                    {
                        "cell_id": c.cell_id,
                        "variants": c.variants,
                        "params": c.params,
                        "dataset": c.dataset,
                        "repeat": c.repeat,
                        "lines": c.lines,
                    }
                    for c in plan.cells
                ],
                "estimate": est.to_dict(),
            }
        )
        return
    # Below 120 columns (without --wide) a cell is named by what differs between the cells, as everywhere
    # else, instead of its id and its full variant and parameter names, which broke mid-word at 80.
    from llmops_tui.core.compare import short_labels

    wide = wide or console.width >= 120
    labels = short_labels(plan.cells)
    table = Table(title=f"Sweep plan for {uc_name}")
    table.add_column("#", justify="right", no_wrap=True)
    if wide:
        for col in ("cell", "variants", "params"):
            table.add_column(col)
    else:
        table.add_column("cell", ratio=1)
    for col in ("dataset", "rep", "lines"):
        table.add_column(col, justify="right" if col != "dataset" else "left", no_wrap=col != "dataset")
    for c in plan.cells:
        row = [str(c.idx + 1)]
        if wide:
            row += [
                c.cell_id,
                ", ".join(f"{k}={v}" for k, v in c.variants.items()) or "-",
                ", ".join(f"{k}={v}" for k, v in c.params.items()) or "-",
            ]
        else:
            row.append(labels.get(c.cell_id, c.cell_id))
        row += [c.dataset, str(c.repeat), str(c.lines)]
        table.add_row(*row)
    console.print(table, soft_wrap=False)
    console.print(
        f"{est.cells} cells, {est.lines} lines, {est.llm_calls} LLM calls, ~{est.prompt_tokens + est.completion_tokens:,} "
        f"tokens, cost {fmt_cost(est.cost, free=est.cost_free)}, ~{est.wall_s:.0f} s at concurrency {est.concurrency}",
        soft_wrap=False,
    )


def _print_summary(summary: dict[str, Any], *, wide: bool = False) -> None:
    """The run's cells in people's words: what each cell chose, its lines, failures, metrics, calls and
    latency. Below 120 columns (without ``wide``) the cell id, cache and call columns give way so names and
    metrics fit."""
    from types import SimpleNamespace

    from llmops_tui.core.compare import short_labels

    cells = summary["cells"]
    labels = short_labels(SimpleNamespace(**c) for c in cells)
    evaluators = {e for c in cells for e in c["metrics"]}
    wide = wide or console.width >= 120
    table = Table(
        title=f"Run {summary['run_id']} ({styled_status(summary['status'])}, {summary['wall_s']} s)",
        expand=not wide,
    )
    table.add_column("cell", overflow="fold", ratio=2)
    if wide:
        table.add_column("id")
    table.add_column("lines", justify="right", no_wrap=True)
    table.add_column("failed", justify="right", no_wrap=True)
    table.add_column("metrics", overflow="fold", ratio=3)
    if wide:
        table.add_column("calls", justify="right")
        table.add_column("cached", justify="right")
    table.add_column("p50 ms", justify="right", no_wrap=True)
    for c in cells:
        metrics = "; ".join(
            ("" if len(evaluators) == 1 else f"{e}: ")
            + ", ".join(f"{k}={v:.3f}" if isinstance(v, float) else f"{k}={v}" for k, v in m.items())
            for e, m in c["metrics"].items()
        )
        p50 = c["latency_ms"]["p50"]
        row = [labels.get(c["cell_id"], c["cell_id"])]
        if wide:
            row.append(c["cell_id"])
        row += [
            f"{c['lines']}/{c['lines_total']}",
            "cannot run" if c.get("error") else str(c["errors"]),
            metrics or "-",
        ]
        if wide:
            row += [str(c["llm_calls"]), str(c["cache_hits"])]
        row.append(f"{p50:,.0f}" if p50 is not None else "-")
        table.add_row(*row)
    console.print(table, soft_wrap=False)
    console.print(
        f"lines {summary.get('lines_done', 0)}/{summary.get('lines_total', 0)}, failed {summary['errors']}, "
        f"evaluation failures {summary.get('eval_errors', 0)}\nLLM calls {summary['llm_calls']}, "
        f"requests {summary.get('requests', 0)}, retries {summary.get('retries', 0)}, "
        f"cache hits {summary['cache_hits']}"
    )


def runs_cmd(
    ctx: typer.Context,
    use_case: Annotated[str | None, typer.Argument(help="Only runs of this use case.")] = None,
    workspace: WorkspaceOpt = Path("."),
    wide: WideOpt = False,
    json_out: JsonOpt = False,
) -> None:
    """List runs, newest first. A killed run shows as interrupted and resumable.

    `llmops runs export RUN` writes a run to one file; `llmops runs import FILE` brings it into a workspace."""
    if ctx.invoked_subcommand is not None:
        return
    with RunStore.for_workspace(Path(workspace).resolve()) as store:
        runs = store.list_runs(use_case)
    if json_out:
        print_json({"runs": [r.to_dict() for r in runs]})
        return
    # The run id is what people copy: never cut. Narrow terminals lose the cells and resume columns
    # (every status but completed resumes, see docs/sweeps.md).
    wide = wide or console.width >= 100
    table = Table(title="Runs")
    table.add_column("run id", no_wrap=True)
    table.add_column("use case", overflow="fold")
    table.add_column("status", no_wrap=True)
    table.add_column("started (UTC)", no_wrap=True)
    if wide:
        table.add_column("cells", justify="right")
    table.add_column("lines", justify="right")
    if wide:
        table.add_column("resumable")
    for r in runs:
        d = r.to_dict()
        started = (d["started_at"] or "").replace("T", " ").rstrip("Z")[5:16]
        row = [d["run_id"], d["use_case"], styled_status(d["status"]), started]
        if wide:
            row.append(str(d["cells"] or ""))
        row.append(str(d["lines"] or ""))
        if wide:
            row.append("yes" if d["resumable"] else "")
        table.add_row(*row)
    console.print(table, soft_wrap=False)


def show_run_cmd(
    run_id: Annotated[str, typer.Argument(help="Run id (a unique prefix is enough).")],
    workspace: WorkspaceOpt = Path("."),
    wide: WideOpt = False,
    json_out: JsonOpt = False,
) -> None:
    """Show one run: its status, cells, metrics and figures."""
    from llmops_tui.core.summary import summarize

    with RunStore.for_workspace(Path(workspace).resolve()) as store:
        run = store.require_run(run_id)
        summary = summarize(store, run.run_id, wall_s=(run.summary or {}).get("wall_s"), status=run.status)
    summary["config"] = run.config
    summary["started_at"] = run.to_dict()["started_at"]
    summary["error"] = run.error
    if json_out:
        print_json(summary)
    else:
        _print_summary(summary, wide=wide)
        if run.error:
            console.print(f"{run.status}: {run.error}", markup=False, soft_wrap=True)


def delete_run_cmd(
    run_id: Annotated[str, typer.Argument(help="Run id (a unique prefix is enough).")],
    workspace: WorkspaceOpt = Path("."),
    yes: Annotated[bool, typer.Option("--yes", "-y", help="Do not ask for confirmation.")] = False,
) -> None:
    """Delete a run and everything it stored (lines, scores, metrics). The line cache is kept."""
    with RunStore.for_workspace(Path(workspace).resolve()) as store:
        run = store.require_run(run_id)
        if run.status == "running":
            raise LlmopsError(f"run {run.run_id} is still running (pid {run.pid})", field="RUN_ID")
        if not yes and not typer.confirm(f"delete run {run.run_id} of {run.use_case}?", default=False):
            raise typer.Exit(1)
        store.delete_run(run.run_id)
    console.print(f"deleted run {run.run_id}")


def export_run_cmd(
    run_id: Annotated[str, typer.Argument(help="Run id (a unique prefix is enough).")],
    workspace: WorkspaceOpt = Path("."),
    out: Annotated[
        Path | None,
        typer.Option("--out", "-o", help="File to write (default: RUN_ID.llmops-run.json.gz here)."),
    ] = None,
    json_out: JsonOpt = False,
) -> None:
    """Write a finished (or interrupted) run to one self-contained file (no keys), for `runs import`."""
    from llmops_tui.core.portable import export_run

    with RunStore.for_workspace(Path(workspace).resolve()) as store:
        result = export_run(store, run_id, out)
    if json_out:
        print_json(
            {
                "run_id": result.run_id,
                "file": str(result.path),
                "digest": result.digest,
                "cells": result.cells,
                "lines": result.lines,
            }
        )
    else:
        console.print(
            f"exported run {result.run_id} ({result.cells} cells, {result.lines} lines) to {result.path}\n"
            f"sha256 {result.digest}",
            markup=False,
        )


def import_run_cmd(
    file: Annotated[Path, typer.Argument(help="A file written by `llmops runs export`.")],
    workspace: WorkspaceOpt = Path("."),
    json_out: JsonOpt = False,
) -> None:
    """Bring an exported run into this workspace's store. Importing the same file again changes nothing;
    an altered file, or a different run with the same id here, is refused."""
    from llmops_tui.core.portable import import_run

    with RunStore.for_workspace(Path(workspace).resolve()) as store:
        result = import_run(store, file)
    if json_out:
        print_json(
            {
                "run_id": result.run_id,
                "imported": result.imported,
                "status": result.status,
                "digest": result.digest,
                "message": result.message,
            }
        )
    else:
        console.print(result.message, markup=False)
