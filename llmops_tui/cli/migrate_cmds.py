"""`llmops compare-backends` (the same cells on Prompt flow and on Agent Framework, compared line by line)
and `llmops migrate` (a use case's DAG flows as Agent Framework code that runs without llmops-tui)."""

from __future__ import annotations

import threading
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from rich.table import Table

from llmops_tui.cli.common import JsonOpt, WorkspaceOpt, console, err_console, print_json
from llmops_tui.core.errors import LlmopsError, RunFailed

if TYPE_CHECKING:
    from llmops_tui.core.equivalence import BackendComparison
    from llmops_tui.core.migrate import MigrationPlan

#: ``--report`` formats, by the file's suffix.
REPORT_SUFFIXES = {".html": "html", ".md": "markdown"}
#: How a report names the backends it compares.
BACKEND_NAMES = {"promptflow-dag": "Prompt flow", "agent-framework": "Agent Framework"}


def register(app: typer.Typer) -> None:
    app.command("compare-backends")(compare_backends_cmd)
    app.command("migrate")(migrate_cmd)


def compare_backends_cmd(
    use_case: Annotated[str, typer.Argument(help="Use case to run on both backends.")],
    workspace: WorkspaceOpt = Path("."),
    variants: Annotated[
        str | None,
        typer.Option(
            "--variants", help="all, one-at-a-time, defaults or NODE.variant,... (as llmops sweep)."
        ),
    ] = None,
    dataset: Annotated[list[str] | None, typer.Option("--dataset", help="Only these datasets.")] = None,
    limit: Annotated[
        int | None, typer.Option("--limit", min=1, help="Only the first N lines of each dataset.")
    ] = None,
    llm_endpoint: Annotated[
        str | None,
        typer.Option(
            "--llm-endpoint", help="sandbox (offline model server) or an OpenAI-compatible base URL."
        ),
    ] = None,
    env: Annotated[
        str | None, typer.Option("--env", help="Environment whose connections and data to use.")
    ] = None,
    report: Annotated[
        Path | None,
        typer.Option(
            "--report",
            help="Also write a report of the two runs (.html or .md): the verdict per cell, then each "
            "cell's differing lines side by side.",
        ),
    ] = None,
    json_out: JsonOpt = False,
) -> None:
    """Run the same cells on the promptflow-dag and agent-framework backends (cache off) and compare them
    line by line: outputs identical or not, metric deltas, paired tests, a verdict per cell.

    Both sweeps are planned before anything runs (bad input for either: exit code 2, nothing run); their
    progress is shown on stderr. Ctrl-C cancels (lines in flight finish; a second Ctrl-C stops now).

    Exit code 0 when every cell is equivalent (identical lines and metrics), 1 otherwise (a cell differs,
    or a sweep failed), 130 when cancelled with Ctrl-C. --report FILE.html|FILE.md writes a report of the
    two runs once they are compared (none when the comparison was cancelled or failed)."""
    from llmops_tui.cli.common import sigint_cancels, stdout_for_json
    from llmops_tui.cli.sweep_cmds import SweepProgressView
    from llmops_tui.core.backends.agent_framework import available
    from llmops_tui.core.equivalence import BackendEvent, plan_backends, run_backends
    from llmops_tui.core.sweep import SweepOptions
    from llmops_tui.core.workspace import load_workspace

    if report is not None and report.suffix.lower() not in REPORT_SUFFIXES:
        raise LlmopsError(
            f"cannot tell the report's format from '{report.name}'",
            field="--report",
            hint="name the file .html or .md",
        )
    reason = available()
    if reason is not None:
        raise LlmopsError(reason, field="--backend", hint="llmops deps --backend agent-framework --install")
    ws = load_workspace(workspace, env=env)
    uc = ws.get(use_case)
    options = SweepOptions(
        variants=variants, datasets=dataset or None, limit=limit, llm_endpoint=llm_endpoint, env=env
    )
    plans = plan_backends(uc, options)  # both, before anything runs
    if llm_endpoint is None:
        from llmops_tui.core.connections import build_connections

        build_connections(uc, ws.root, None)  # fail fast with the fix when a key is missing
    cancel = threading.Event()
    result: BackendComparison | None = None
    with sigint_cancels(cancel), stdout_for_json(json_out), SweepProgressView(json_out) as view:
        for item in run_backends(ws.root, uc, plans, cancel=cancel):
            if isinstance(item, BackendEvent):
                view.show(item.event, item.backend)
            else:
                result = item
    if result is None:
        raise RunFailed("the comparison ended without a result")
    written: Path | None = None
    if report is not None and result.status == "compared":
        written = write_backends_report(ws.root, result, report)
    if json_out:
        print_json({**result.to_dict(), "report": str(written) if written else None})
    elif result.status != "compared":
        err_console.print(result.verdict, markup=False, soft_wrap=True)
        ran = [r for r in result.runs if r]
        if ran:
            err_console.print(f"runs so far: {', '.join(ran)} (llmops runs {uc.name})", markup=False)
    else:
        a, b = result.backends
        table = Table(title=f"{uc.name}: {a} (run {result.runs[0]}) vs {b} (run {result.runs[1]})")
        for col in ("cell", "lines identical", "metric deltas", "verdict"):
            table.add_column(col, overflow="fold")
        for cell in result.cells:
            nonzero = [
                f"{k} {v['delta']:+.4g}" if v["delta"] is not None else f"{k} missing"
                for k, v in cell.metrics.items()
                if v["delta"] != 0
            ]
            deltas = (
                ", ".join(nonzero) if nonzero else f"all {len(cell.metrics)} equal" if cell.metrics else ""
            )
            table.add_row(cell.label, f"{cell.identical}/{cell.lines}", deltas or "-", cell.verdict)
        console.print(table)
        for cell in result.cells:
            for d in cell.differing[:5]:
                console.print(f"[bold]{cell.label}[/bold] line {d['line']}:", highlight=False)
                console.print(f"  {a}: {d[a]}", markup=False)
                console.print(f"  {b}: {d[b]}", markup=False)
        console.print(result.verdict, markup=False)
    if not json_out and report is not None:
        if written is not None:
            console.print(f"wrote report: {written}", markup=False, soft_wrap=True)
        else:
            err_console.print(f"no report written: the comparison {result.status}", markup=False)
    if result.status == "cancelled" and cancel.is_set():
        raise typer.Exit(130)
    if not result.equivalent:
        raise typer.Exit(1)


def write_backends_report(ws_root: Path, result: BackendComparison, path: Path) -> Path:
    """The report of a comparison's two runs (format by ``path``'s suffix): the ordinary report of both
    runs with cells named by backend and label, the verdict per cell at the top and, for each cell with
    differing lines, those lines side by side (``core.linediff.line_diff`` across the two runs)."""
    from llmops_tui import exporters
    from llmops_tui.core.compare import build_comparison, short_labels
    from llmops_tui.core.linediff import line_diff
    from llmops_tui.core.store import RunStore
    from llmops_tui.exporters.sections import LineSection, Summary

    run_a, run_b = (str(r) for r in result.runs)
    name_a, name_b = (BACKEND_NAMES.get(b, b) for b in result.backends)
    with RunStore.for_workspace(ws_root) as store:
        comparison = build_comparison(store, [run_a, run_b], workspace_root=ws_root)
        sections = [
            LineSection(
                cell.label,
                name_a,
                name_b,
                line_diff(store, run_a, cell.cell_ids[0], cell.cell_ids[1], only="differ", run_id_b=run_b),
            )
            for cell in result.cells
            if cell.differing and cell.cell_ids is not None
        ]
        records = {run: store.cells(run) for run in (run_a, run_b)}
    # The columns are named by backend and short label (one run's cells differ only in their
    # configuration), never by cell id; warnings that quote a label follow.
    for run, backend in ((run_a, name_a), (run_b, name_b)):
        short = short_labels(records[run])
        for col in comparison.cells:
            if col.run_id == run and col.cell_id.split(":")[-1] in short:
                new = f"{backend} · {short[col.cell_id.split(':')[-1]]}"
                comparison.warnings = [w.replace(f"'{col.label}'", f"'{new}'") for w in comparison.warnings]
                col.label = new
    summary = Summary(
        result.verdict,
        ("cell", "lines identical", "verdict"),
        [(c.label, f"{c.identical}/{c.lines}", c.verdict) for c in result.cells],
    )
    fmt = REPORT_SUFFIXES[path.suffix.lower()]
    title = f"{comparison.use_case}: {name_a} (run {run_a}) vs {name_b} (run {run_b})"
    options: dict = {"summary": summary, "line_sections": sections, "by_label": True}
    if fmt == "html":
        options["title"] = title
    return exporters.export(fmt, comparison, path, **options)


def migrate_cmd(
    use_case: Annotated[str, typer.Argument(help="Use case whose DAG flows to migrate.")],
    workspace: WorkspaceOpt = Path("."),
    to: Annotated[
        str, typer.Option("--to", help="The target framework: agent-framework.")
    ] = "agent-framework",
    out: Annotated[
        Path | None,
        typer.Option("--out", help="Folder to write (default: migrated/USE_CASE in the workspace)."),
    ] = None,
    variant: Annotated[
        list[str] | None,
        typer.Option("--variant", help="NODE=VARIANT to migrate instead of the default variant."),
    ] = None,
    dry_run: Annotated[
        bool,
        typer.Option("--dry-run", help="List what would be written and what does not map; write nothing."),
    ] = False,
    verify_lines: Annotated[
        int,
        typer.Option(
            "--verify-lines", min=1, help="Verify the written code on the first N lines of the dataset."
        ),
    ] = 8,
    no_verify: Annotated[
        bool, typer.Option("--no-verify", help="Write the code without running it against Prompt flow.")
    ] = False,
    llm_endpoint: Annotated[
        str | None,
        typer.Option(
            "--llm-endpoint",
            help="Verification's model: sandbox (offline), or none for the use case's declared connections.",
        ),
    ] = None,
    env: Annotated[
        str | None, typer.Option("--env", help="Environment whose connections and data to use.")
    ] = None,
    json_out: JsonOpt = False,
) -> None:
    """Write USE_CASE's DAG flows as Agent Framework code that runs without llmops-tui (one folder per flow:
    flow.py with the executors, the workflow factory and run(inputs), the flow's code and prompts, a README).

    --dry-run lists what does not map (flex flows, custom tool packages, image inputs, other Prompt flow
    APIs) with the file and the node. Exit code 1 when something does not map.

    Then the written code is verified: it runs on its own (a process without llmops-tui) on the first
    --verify-lines lines of the dataset, and each flow's lines and metrics are compared with Prompt flow's
    on the same lines and variants. Exit code 1 when a line differs or the migrated code fails."""
    from llmops_tui.core.migrate import (
        check_verifiable,
        plan_migration,
        verify_migration,
        write_migration,
    )
    from llmops_tui.core.workspace import load_workspace

    if to != "agent-framework":
        raise LlmopsError(f"unknown target '{to}'", field="--to", hint="use agent-framework")
    chosen: dict[str, str] = {}
    for item in variant or []:
        node, _, vid = item.partition("=")
        if not node or not vid:
            raise LlmopsError(
                f"'{item}' is not NODE=VARIANT",
                field="--variant",
                hint="e.g. --variant classify_llm=variant_2",
            )
        chosen[node.strip()] = vid.strip()
    ws = load_workspace(workspace, env=env, inspect_datasets=False)
    uc = ws.get(use_case)
    plan = plan_migration(ws.root, uc, chosen)
    dest = out or ws.root / "migrated" / uc.name
    written: list[Path] = []
    verify = not dry_run and not plan.unmapped and not no_verify
    if verify:
        check_verifiable(ws.root, uc, llm_endpoint)  # a missing key says so before anything is written
    if not dry_run and not plan.unmapped:
        written = write_migration(ws.root, uc, dest, plan)
    if not json_out:
        _print_plan(plan, dest, dry_run)
    check = None
    if verify:

        def progress(text: str) -> None:
            if not json_out:
                err_console.print(f"  {text}", markup=False, highlight=False)

        if not json_out:
            console.print(
                f"verifying: the migrated code against Prompt flow on {verify_lines} line(s)", markup=False
            )
        check = verify_migration(
            ws.root,
            uc,
            dest,
            plan,
            lines=verify_lines,
            llm_endpoint=llm_endpoint,
            env=env,
            on_progress=progress,
        )
    if json_out:
        print_json(
            {
                **plan.to_dict(),
                "out": str(dest),
                "written": [str(p) for p in written],
                "dry_run": dry_run,
                "verified": check is not None,
                "verification": check.to_dict() if check is not None else None,
            }
        )
    elif check is not None:
        for f in check.flows:
            console.print(f"{f.folder}: {f.verdict}", markup=False)
            first = f.first_difference()
            if first:
                console.print(f"  first difference: {first}", markup=False)
        verdict = "equivalent" if check.equivalent else "NOT equivalent"
        console.print(
            f"migration {verdict} to Prompt flow on {check.lines} line(s) of {check.dataset}"
            f" (reference run {check.run_id})",
            markup=False,
        )
    elif written:
        console.print("not verified (--no-verify): the written code was not run", markup=False)
    if plan.unmapped or (check is not None and not check.equivalent):
        raise typer.Exit(1)


def _print_plan(plan: MigrationPlan, dest: Path, dry_run: bool) -> None:
    for flow in plan.flows:
        verb = "would write" if dry_run else "wrote"
        variants = ", ".join(f"{k}={v}" for k, v in flow.variants.items()) or "no variants"
        console.print(f"{verb} {dest / flow.folder} ({flow.role}; {variants})", markup=False)
    for u in plan.unmapped:
        console.print(f"does not map: {u}", markup=False)
    if plan.unmapped and not dry_run:
        console.print("nothing written: every part must map (see above)", markup=False)
