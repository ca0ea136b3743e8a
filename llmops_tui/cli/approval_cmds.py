"""`llmops approve`, `reject`, `approvals`, `verify-approval`, `approval-key`: signed approval records.

Thin commands over ``core.approval``. Nothing here ever prints the approval key, except
``approval-key --generate``, which shows a new key once so it can be copied into a CI secret.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated

import typer
from rich.markup import escape
from rich.table import Table

from llmops_tui.cli.common import JsonOpt, WorkspaceOpt, console, err_console, print_json
from llmops_tui.core import approval as core
from llmops_tui.core.errors import LlmopsError, RunFailed
from llmops_tui.core.workspace import load_workspace

RunIdArg = Annotated[str, typer.Argument(help="Run id (or a unique prefix) from `llmops runs`.")]
CellOpt = Annotated[
    str, typer.Option("--cell", help="Cell id (or a unique prefix) of the run.", show_default=False)
]
EnvsOpt = Annotated[
    list[str],
    typer.Option("--env", "-e", help="Target environment; repeat for several.", show_default=False),
]
ByOpt = Annotated[str, typer.Option("--by", help="Who decides (name or e-mail).", show_default=False)]


def register(app: typer.Typer) -> None:
    app.command("approve")(approve_cmd)
    app.command("reject")(reject_cmd)
    app.command("approvals")(approvals_cmd)
    app.command("verify-approval")(verify_cmd)
    app.command("approval-key")(key_cmd)


def _report(results: list, workspace: Path, json_out: bool) -> None:
    root = workspace.resolve()
    if json_out:
        print_json(
            {
                "records": [
                    {
                        "path": core._posix_rel(path, root),
                        **{k: v for k, v in rec.to_dict().items() if k != "source_files"},
                    }
                    for rec, path in results
                ]
            }
        )
        return
    for rec, path in results:
        verb = "approved" if rec.decision == "approved" else "rejected"
        console.print(
            f"{verb} cell {rec.cell_id} of run {rec.run_id} for {escape(rec.environment)} "
            f"-> {escape(core._posix_rel(path, root))}",
            soft_wrap=True,
        )
        console.print(f"  flow hash {rec.flow_hash[:16]}  signed with key {rec.key_id}")
        failing = rec.failing_gates
        if failing and rec.decision == "approved":
            console.print(f"  gates overridden ({len(failing)} failing): {escape(rec.override_reason or '')}")
    console.print("Commit the approvals/ folder so CI can verify it with `llmops verify-approval`.")


def approve_cmd(
    run_id: RunIdArg,
    cell: CellOpt,
    env: EnvsOpt,
    by: ByOpt,
    comment: Annotated[str, typer.Option("--comment", "-m", help="Why (kept in the record).")] = "",
    override_gates: Annotated[
        str | None,
        typer.Option(
            "--override-gates",
            help="Approve a cell that fails a gate; the REASON is recorded.",
            metavar="REASON",
        ),
    ] = None,
    workspace: WorkspaceOpt = Path("."),
    json_out: JsonOpt = False,
) -> None:
    """Approve one cell of a run for one or more environments (writes signed approval records)."""
    results = core.approve(
        workspace, run_id, cell, env, by=by, comment=comment, override_reason=override_gates
    )
    _report(results, workspace, json_out)


def reject_cmd(
    run_id: RunIdArg,
    cell: CellOpt,
    env: EnvsOpt,
    by: ByOpt,
    comment: Annotated[
        str, typer.Option("--comment", "-m", help="Why it is rejected (required).", show_default=False)
    ],
    workspace: WorkspaceOpt = Path("."),
    json_out: JsonOpt = False,
) -> None:
    """Reject one cell of a run for one or more environments (a signed record that blocks deployment)."""
    results = core.reject(workspace, run_id, cell, env, by=by, comment=comment)
    _report(results, workspace, json_out)


def approvals_cmd(
    use_case: Annotated[str | None, typer.Argument(help="Use case name (default: all).")] = None,
    workspace: WorkspaceOpt = Path("."),
    json_out: JsonOpt = False,
) -> None:
    """Show current approval records and their history, with whether each current one verifies now."""
    ws = load_workspace(workspace)
    names = [ws.get(use_case).name] if use_case else [uc.name for uc in ws.use_cases if uc.ok]
    key = core.load_approval_key(required=False)
    entries = [e for name in names for e in core.list_approvals(ws.root, name, key=key)]
    if json_out:
        print_json({"approvals": entries, "key_id": key.key_id if key else None})
        return
    if not entries:
        console.print("No approval records yet (see `llmops approve --help`).")
        return
    table = Table(title="Approvals", show_lines=True)
    for col in ("use case", "env", "current", "status", "history"):
        table.add_column(col)
    for e in entries:
        cur = e["current"]
        current = (
            f"{cur['decision']} {cur['cell_id']} (run {cur['run_id']})\nby {cur['approver']} at {cur['decided_at']}"
            if cur
            else "-"
        )
        status = "valid" if e["ok"] else "\n".join(e["reasons"])
        history = "\n".join(
            f"{h['decided_at']} {h['decision']} {h['cell_id']} by {h['approver']}" for h in e["history"]
        )
        table.add_row(
            escape(e["use_case"]),
            escape(e["environment"]),
            escape(current),
            escape(status),
            escape(history or "-"),
        )
    console.print(table)
    if key is None:
        err_console.print(
            f"note: no approval key, signatures were not checked ({core.KEY_ENV_VAR} or the keyring)"
        )


def verify_cmd(
    use_case: Annotated[str, typer.Argument(help="Use case name.")],
    env: Annotated[str, typer.Option("--env", "-e", help="Environment to verify.", show_default=False)],
    workspace: WorkspaceOpt = Path("."),
    json_out: JsonOpt = False,
) -> None:
    """Exit 0 only when a valid, signed, approved record matches the flow and datasets as they are now."""
    core.check_env_name(env)  # it names a file: refuse '../x' and the like before anything is read (exit 2)
    ws = load_workspace(workspace)
    name = ws.get(use_case).name  # unknown use case: exit 2
    uc = core.use_case_for_env(ws.root, name, env)
    result = core.verify_approval(ws.root, uc, env)
    for warning in result.warnings:
        print(f"warning: {warning}", file=sys.stderr)
    if json_out:
        data = result.to_dict()
        if data["record"]:
            data["record"] = {k: v for k, v in data["record"].items() if k != "source_files"}
        print_json(data)
    elif result.ok:
        rec = result.record or {}
        seq = (
            f"decision #{rec['sequence']}, "
            if isinstance(rec.get("sequence"), int) and rec["sequence"]
            else ""
        )
        print(
            f"ok: {uc.name} {env} approved by {rec.get('approver')} at {rec.get('decided_at')} "
            f"({seq}run {rec.get('run_id')}, cell {rec.get('cell_id')}, flow {str(rec.get('flow_hash'))[:16]})"
        )
        sandbox_note = core.sandbox_warning(rec)
        if sandbox_note:
            print(f"warning: {sandbox_note}", file=sys.stderr)
    else:
        for reason in result.reasons:
            print(f"{uc.name} {env}: {reason}")
    if not result.ok:
        # RunFailed: exit code 1 (not valid) as opposed to 2 (bad input), with one closing line on stderr.
        raise RunFailed(f"no valid approval of {uc.name} for {env} ({len(result.reasons)} reason(s) above)")


def key_cmd(
    generate: Annotated[
        bool,
        typer.Option(
            "--generate", help="Make a new random key, store it in the OS keyring and show it once."
        ),
    ] = False,
) -> None:
    """Show which approval key would sign (its id and source, never the key), or make a new one."""
    from llmops_tui.core.secrets import keyring_status, set_keyring_secret

    if generate:
        import secrets

        value = secrets.token_urlsafe(32)
        try:
            source = set_keyring_secret(core.KEYRING_NAME, value)
            stored = f"stored in the OS keyring ({source})"
        except LlmopsError as exc:
            stored = f"NOT stored: {exc}"
        new_id = core.key_id(value.encode())
        print(f"new approval key {new_id}: {stored}")
        print("Copy it now into your CI secret LLMOPS_APPROVAL_KEY (it is not shown again):")
        print(value)
        return
    key = core.load_approval_key(required=False)
    if key is None:
        raise RunFailed(f"no approval key ({keyring_status()}); {core._KEY_HINT}")
    print(f"approval key {key.key_id} from {key.source}")
