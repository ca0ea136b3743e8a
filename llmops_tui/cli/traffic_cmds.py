"""`llmops traffic import|feedback|evaluate|compare`, `llmops promote`, `llmops rollback`: A/B deployments
that decide. Thin commands over llmops_tui.core.traffic and llmops_tui.deploy.promote."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Annotated, Any

import typer

from llmops_tui.cli.common import JsonOpt, WorkspaceOpt, console, print_json
from llmops_tui.core.errors import LlmopsError

EnvOpt = Annotated[str, typer.Option("--env", "-e", help="Environment.")]
RunOpt = Annotated[str | None, typer.Option("--run", help="Traffic run id (default: the newest).")]


def _use_case(workspace: Path, name: str, env: str) -> Any:
    from llmops_tui.core.approval import use_case_for_env

    return use_case_for_env(Path(workspace).resolve(), name, env)


def _since(text: str | None) -> float | None:
    """``--since``: an ISO time (2026-01-31T12:00, UTC when no zone) or a duration (30m, 2h, 1d)."""
    if not text:
        return None
    units = {"s": 1, "m": 60, "h": 3600, "d": 86400}
    if text[-1:] in units and text[:-1].replace(".", "", 1).isdigit():
        return time.time() - float(text[:-1]) * units[text[-1]]
    from datetime import UTC, datetime

    try:
        stamp = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        raise LlmopsError(
            f"--since '{text}' is neither a time nor a duration",
            field="--since",
            hint="e.g. 2h or 2026-01-31T12:00",
        ) from None
    if stamp.tzinfo is None:
        stamp = stamp.replace(tzinfo=UTC)
    return stamp.timestamp()


def _num(value: Any, fmt: str = ".3g") -> str:
    return "-" if value is None else format(value, fmt)


def print_comparison(data: dict[str, Any]) -> None:
    from rich.table import Table

    from llmops_tui.core.format import fmt_money

    console.print(
        f"[bold]A/B[/bold] {data['use_case']} env {data['env']} (traffic run {data['run_id']})", markup=True
    )
    table = Table(show_edge=False)
    table.add_column("")
    for arm in data["arms"]:
        table.add_column(f"{arm['role'] or '-'} {arm['arm']}")
    arms = data["arms"]
    table.add_row("requests", *[str(a["requests"]) for a in arms])
    table.add_row("error rate", *[_num(a["error_rate"], ".1%") for a in arms])
    for q in ("p50", "p95", "p99"):
        table.add_row(f"latency {q} ms", *[_num(a["latency_ms"][q], ".0f") for a in arms])
    table.add_row("tokens", *[str(a["tokens"]) if a["tokens"] else "-" for a in arms])
    table.add_row("cost", *[fmt_money(a["cost"]) for a in arms])
    keys = sorted({k for a in arms for k in a["metrics"]})
    for key in keys:
        cells = []
        for a in arms:
            m = a["metrics"].get(key)
            cells.append(
                "-" if m is None else f"{m['value']:.3g} [{_num(m['low'])}, {_num(m['high'])}] n={m['n']}"
            )
        table.add_row(key, *cells)
    table.add_row("feedback", *[str(a["feedback"]) for a in arms])
    console.print(table)
    for t in data["tests"]:
        console.print(
            f"  {t['metric']}: B-A {_num(t['delta'])}, p = {_num(t['p_value'], '.2g')} ({t['method']})",
            markup=False,
        )
    for g in data["gates"]:
        console.print(f"  gate {'pass' if g['passed'] else 'FAIL'} [{g['arm']}] {g['reason']}", markup=False)
    for w in data["warnings"]:
        console.print(f"warning: {w}", markup=False)
    console.print(f"[bold]verdict[/bold]: {data['verdict']}")


def register(app: typer.Typer) -> None:
    """Add `traffic`, `promote` and `rollback` to the CLI."""
    traffic = typer.Typer(help="A/B traffic: import, feedback, evaluate, compare.", no_args_is_help=True)
    app.add_typer(traffic, name="traffic")

    @traffic.command("import")
    def import_cmd(
        use_case: Annotated[str, typer.Argument(help="Use case name.")],
        env: EnvOpt,
        from_dir: Annotated[Path, typer.Option("--from", help="Folder of captured JSONL / collected files.")],
        workspace: WorkspaceOpt = Path("."),
        as_json: JsonOpt = False,
    ) -> None:
        """Import captured requests (Kubernetes JSONL, Azure ML data collector files) as a traffic run."""
        from llmops_tui.core.traffic import import_traffic

        root = Path(workspace).resolve()
        result = import_traffic(root, _use_case(root, use_case, env), env, from_dir)
        if as_json:
            print_json(result)
            return
        console.print(
            f"imported {result['imported']} request(s) into {result['run_id'] or 'no run'}"
            f" ({result['skipped']} skipped)",
            markup=False,
        )
        for note in result["notes"]:
            console.print(f"note: {note}", markup=False)

    @traffic.command("feedback")
    def feedback_cmd(
        file: Annotated[Path, typer.Argument(help="JSONL, JSON list or CSV: request_id, score, label.")],
        workspace: WorkspaceOpt = Path("."),
        as_json: JsonOpt = False,
    ) -> None:
        """Join feedback (scores, labels) to captured requests by request id."""
        from llmops_tui.core.store import RunStore
        from llmops_tui.core.traffic import add_feedback, read_feedback_file

        items = read_feedback_file(file)
        with RunStore.for_workspace(Path(workspace).resolve()) as store:
            result = add_feedback(store, items, where=str(file))
        if as_json:
            print_json(result)
        else:
            console.print(f"joined {result['joined']} feedback item(s)", markup=False)
            if result["unknown"]:
                console.print(
                    f"{len(result['unknown'])} request id(s) not captured: {', '.join(result['unknown'][:5])}",
                    markup=False,
                )
        if not result["joined"] and result["unknown"]:
            raise typer.Exit(1)

    @traffic.command("evaluate")
    def evaluate_cmd(
        use_case: Annotated[str, typer.Argument(help="Use case name.")],
        env: EnvOpt,
        since: Annotated[
            str | None, typer.Option("--since", help="Only requests since T (ISO time or 2h).")
        ] = None,
        run: RunOpt = None,
        llm_endpoint: Annotated[
            str | None, typer.Option("--llm-endpoint", help="LLM evaluators: URL or 'sandbox'.")
        ] = None,
        no_cache: Annotated[
            bool, typer.Option("--no-cache", help="Do not reuse cached evaluations.")
        ] = False,
        workspace: WorkspaceOpt = Path("."),
        as_json: JsonOpt = False,
    ) -> None:
        """Run the use case's evaluators over captured requests per arm (feedback can be the ground truth)."""
        from llmops_tui.core.traffic import evaluate_traffic

        root = Path(workspace).resolve()
        uc = _use_case(root, use_case, env)
        report = evaluate_traffic(
            root, uc, env, run_id=run, since=_since(since), llm_endpoint=llm_endpoint, no_cache=no_cache
        )
        if as_json:
            print_json(report)
            return
        console.print(f"traffic run {report['run_id']}", markup=False)
        for name, entry in report["evaluators"].items():
            for arm, data in entry["arms"].items():
                shown = ", ".join(f"{k}={v:.3g}" for k, v in data["metrics"].items()) or "no metrics"
                console.print(
                    f"  {name} [{arm}]: {data['lines']} line(s) scored, {data['skipped']} skipped: {shown}",
                    markup=False,
                )
        for note in report["notes"]:
            console.print(f"note: {note}", markup=False)

    @traffic.command("compare")
    def compare_cmd(
        use_case: Annotated[str, typer.Argument(help="Use case name.")],
        env: EnvOpt,
        run: RunOpt = None,
        effect: Annotated[
            float | None, typer.Option("--effect", help="Difference to detect, for the power estimate.")
        ] = None,
        workspace: WorkspaceOpt = Path("."),
        as_json: JsonOpt = False,
    ) -> None:
        """Compare the arms: counts, errors, latency, cost, metrics with intervals and tests, gates, verdict."""
        from llmops_tui.core.traffic import compare_traffic

        root = Path(workspace).resolve()
        result = compare_traffic(root, _use_case(root, use_case, env), env, run_id=run, effect=effect)
        if as_json:
            print_json(result.to_dict())
        else:
            print_comparison(result.to_dict())

    def _promote(
        use_case: str,
        env: str,
        arm: str,
        weight: int,
        target: str,
        reason: str,
        by: str | None,
        endpoint: str | None,
        workspace: Path,
        as_json: bool,
        rollback: bool,
    ) -> None:
        from llmops_tui.deploy.promote import promote

        ml_client = None
        folder = None
        kubectl = None
        if target in {"azureml", "azureml-kubernetes"}:
            from llmops_tui.deploy.azureml import make_client
            from llmops_tui.deploy.config import entry_for

            root = Path(workspace).resolve()
            uc = _use_case(root, use_case, env)
            if not endpoint:
                entry = entry_for(uc.deployment_config, target, env, root=root)
                endpoint = entry.ENDPOINT_NAME if entry is not None else None
            ml_client = make_client(_coords(uc))
        if target == "kubernetes":
            from llmops_tui.deploy.kubernetes import kubectl_context

            kubectl = kubectl_context
        done = promote(
            Path(workspace),
            use_case,
            env,
            arm,
            weight=weight,
            target=target,
            reason=reason,
            by=by,
            rollback=rollback,
            ml_client=ml_client,
            endpoint=endpoint,
            folder=folder,
            kubectl_context=kubectl,
        )
        if as_json:
            print_json(done)
            return
        verb = "rolled back to" if rollback else "promoted"
        console.print(
            f"{verb} {done['arm']} ({done['version'][:12]}) to {weight}%: {done['before']} -> {done['after']}",
            markup=False,
        )
        console.print(f"via {done['mechanism']}; recorded in {done['record']}", markup=False)

    @app.command("promote")
    def promote_cmd(
        use_case: Annotated[str, typer.Argument(help="Use case name.")],
        env: EnvOpt,
        arm: Annotated[str, typer.Option("--arm", help="A, B, an arm name or a version prefix.")],
        weight: Annotated[int, typer.Option("--weight", help="% of traffic for the arm.")] = 100,
        target: Annotated[str, typer.Option("--target", "-t", help="local | kubernetes | azureml")] = "local",
        reason: Annotated[str, typer.Option("--reason", help="Why (recorded).")] = "",
        by: Annotated[str | None, typer.Option("--by", help="Who (recorded; default: your user).")] = None,
        endpoint: Annotated[str | None, typer.Option("--endpoint", help="azureml: endpoint name.")] = None,
        workspace: WorkspaceOpt = Path("."),
        as_json: JsonOpt = False,
    ) -> None:
        """Shift traffic to an approved arm by the target's own mechanism, and record who and why."""
        _promote(use_case, env, arm, weight, target, reason, by, endpoint, workspace, as_json, False)

    @app.command("rollback")
    def rollback_cmd(
        use_case: Annotated[str, typer.Argument(help="Use case name.")],
        env: EnvOpt,
        arm: Annotated[
            str, typer.Option("--arm", help="The arm to go back to (default: A, the control).")
        ] = "A",
        target: Annotated[str, typer.Option("--target", "-t", help="local | kubernetes | azureml")] = "local",
        reason: Annotated[str, typer.Option("--reason", help="Why (recorded).")] = "",
        by: Annotated[str | None, typer.Option("--by", help="Who (recorded; default: your user).")] = None,
        endpoint: Annotated[str | None, typer.Option("--endpoint", help="azureml: endpoint name.")] = None,
        workspace: WorkspaceOpt = Path("."),
        as_json: JsonOpt = False,
    ) -> None:
        """Send all traffic back to the control arm (or --arm), and record who and why."""
        _promote(use_case, env, arm, 100, target, reason, by, endpoint, workspace, as_json, True)


def _coords(uc: Any) -> dict[str, str]:
    spec = uc.extras.azureml
    coords = {
        "subscription_id": spec.subscription_id or "",
        "resource_group_name": spec.resource_group or "",
        "workspace_name": spec.workspace_name or "",
    }
    missing = [k for k, v in coords.items() if not v]
    if missing:
        raise LlmopsError(
            f"missing Azure ML workspace coordinates: {', '.join(missing)}",
            file=uc.path / "llmops.yaml",
            field="azureml",
            hint="set azureml.subscription_id, resource_group and workspace_name",
        )
    return coords
