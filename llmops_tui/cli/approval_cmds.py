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
ByOpt = Annotated[
    str,
    typer.Option(
        "--by",
        help="Who decides (name or e-mail); shared-key mode only (an SSH signer is named by the allowed-signers file).",
        show_default=False,
    ),
]
KeyOpt = Annotated[
    Path | None,
    typer.Option(
        "--key",
        "-k",
        help="Your SSH key: a private key file, or its .pub when ssh-agent holds the private key "
        "(default: $LLMOPS_SIGNING_KEY).",
        show_default=False,
    ),
]


def register(app: typer.Typer) -> None:
    app.command("approve")(approve_cmd)
    app.command("reject")(reject_cmd)
    app.command("approvals")(approvals_cmd)
    app.command("verify-approval")(verify_cmd)
    app.command("approval-key")(key_cmd)
    approvers = typer.Typer(
        help="Who may approve which environments: the allowed-signers file (public SSH keys).",
        no_args_is_help=True,
    )
    approvers.command("add")(approvers_add_cmd)
    approvers.command("list")(approvers_list_cmd)
    approvers.command("remove")(approvers_remove_cmd)
    app.add_typer(approvers, name="approvers")


def _signer(key: Path | None) -> core.SshSigner | None:
    if key is not None:
        return core.SshSigner(key.expanduser())
    return core.ssh_signer_from_env()


def _decide(
    decision: str, workspace: Path, run_id: str, cell: str, env: list[str], by: str, key: Path | None, **kw
):
    """core.decide, asking for the SSH key's passphrase on the terminal when the key needs one."""
    from llmops_tui.core.sshsig import PassphraseNeeded

    signer = _signer(key)
    try:
        return core.decide(workspace, run_id, cell, env, decision=decision, by=by, signer=signer, **kw)
    except PassphraseNeeded:
        if signer is None or not sys.stdin.isatty():
            raise
        passphrase = typer.prompt(f"Passphrase for {signer.key_file}", hide_input=True)
        signer = core.SshSigner(signer.key_file, passphrase)
        return core.decide(workspace, run_id, cell, env, decision=decision, by=by, signer=signer, **kw)


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
        if rec.signing == core.SSH:
            who = ", ".join(f"{s.get('principal')} ({s.get('fingerprint')})" for s in rec.signatures)
            console.print(f"  flow hash {rec.flow_hash[:16]}  signed by {escape(who)}")
        else:
            console.print(
                f"  flow hash {rec.flow_hash[:16]}  signed with the shared key {rec.key_id} (shared-key approval)"
            )
        failing = rec.failing_gates
        if failing and rec.decision == "approved":
            console.print(f"  gates overridden ({len(failing)} failing): {escape(rec.override_reason or '')}")
    console.print("Commit the approvals/ folder so CI can verify it with `llmops verify-approval`.")


def approve_cmd(
    run_id: RunIdArg,
    cell: CellOpt,
    env: EnvsOpt,
    by: ByOpt = "",
    key: KeyOpt = None,
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
    results = _decide(
        "approved", workspace, run_id, cell, env, by, key, comment=comment, override_reason=override_gates
    )
    _report(results, workspace, json_out)


def reject_cmd(
    run_id: RunIdArg,
    cell: CellOpt,
    env: EnvsOpt,
    comment: Annotated[
        str, typer.Option("--comment", "-m", help="Why it is rejected (required).", show_default=False)
    ],
    by: ByOpt = "",
    key: KeyOpt = None,
    workspace: WorkspaceOpt = Path("."),
    json_out: JsonOpt = False,
) -> None:
    """Reject one cell of a run for one or more environments (a signed record that blocks deployment)."""
    results = _decide("rejected", workspace, run_id, cell, env, by, key, comment=comment)
    _report(results, workspace, json_out)


def approvals_cmd(
    use_case: Annotated[str | None, typer.Argument(help="Use case name (default: all).")] = None,
    workspace: WorkspaceOpt = Path("."),
    json_out: JsonOpt = False,
) -> None:
    """Show current approval records and their history, with whether each current one verifies now."""
    ws = load_workspace(workspace)
    if use_case and ws.get(use_case).problems:
        raise LlmopsError.from_problem(ws.get(use_case).problems[0])
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
    for col in ("use case", "env", "current", "status", "still needed", "history"):
        table.add_column(col)
    for e in entries:
        cur = e["current"]
        current = (
            f"{cur['decision']} {cur['cell_id']} (run {cur['run_id']})\nby {cur['approver']} at {cur['decided_at']}"
            if cur
            else "-"
        )
        status = "valid" if e["ok"] else "\n".join(e["reasons"])
        if e["current"] and e.get("mode"):
            signed = ", ".join(str(s.get("principal")) for s in e.get("signers") or []) or "nobody valid"
            status = f"{'SSH' if e['mode'] == core.SSH else 'shared key'}: {signed}\n{status}"
        needed = "\n".join(e.get("missing") or []) or "-"
        history = "\n".join(
            f"{h['decided_at']} {h['decision']} {h['cell_id']} by {h['approver']}" for h in e["history"]
        )
        table.add_row(
            escape(e["use_case"]),
            escape(e["environment"]),
            escape(current),
            escape(status),
            escape(needed),
            escape(history or "-"),
        )
    console.print(table)
    if key is None and any(e.get("mode") == core.SHARED_KEY and e["current"] for e in entries):
        err_console.print(
            f"note: no shared approval key, shared-key records were not checked ({core.KEY_ENV_VAR} or the keyring)"
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
        if result.mode == core.SSH:
            who = ", ".join(f"{s['principal']} ({s['fingerprint']})" for s in result.signers)
        else:
            who = f"{rec.get('approver')} (shared-key approval)"
        print(
            f"ok: {uc.name} {env} approved by {who} at {rec.get('decided_at')} "
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
    """Shared-key mode (HMAC, the older one): show which shared key would sign (its id and source, never
    the key), or make a new one. Approvals signed by people use SSH keys instead (`llmops approvers`)."""
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


def _approvers_file(workspace: Path, use_case: str | None) -> Path:
    ws = load_workspace(workspace, inspect_datasets=False)
    if use_case:
        uc = ws.get(use_case)
        return uc.path / core.sshsig.ALLOWED_SIGNERS_FILE
    return ws.root / core.sshsig.ALLOWED_SIGNERS_FILE


UseCaseOpt = Annotated[
    str | None,
    typer.Option(
        "--use-case",
        "-u",
        help="The use case's own allowed_signers file (default: the workspace's, which every use case "
        "without its own file uses).",
        show_default=False,
    ),
]


def approvers_add_cmd(
    principal: Annotated[str, typer.Argument(help="Who: an e-mail address (the name approvals show).")],
    public_key: Annotated[
        Path, typer.Argument(help="Their PUBLIC key file (.pub); never a private key.", show_default=False)
    ],
    env: Annotated[
        list[str] | None,
        typer.Option(
            "--env", "-e", help="An environment they may approve; repeat (default: all).", show_default=False
        ),
    ] = None,
    valid_before: Annotated[
        str | None,
        typer.Option(
            "--valid-before", help="Expiry date, YYYY-MM-DD (UTC): the key approves nothing from then on."
        ),
    ] = None,
    use_case: UseCaseOpt = None,
    workspace: WorkspaceOpt = Path("."),
) -> None:
    """Allow a person's SSH key to approve some environments (a line in allowed_signers; commit it)."""
    path = _approvers_file(workspace, use_case)
    entry = core.add_approver(path, principal, public_key, env or [], valid_before)
    envs = ", ".join(entry.environments) or "every environment"
    until = f" until {core.sshsig.display_time(entry.valid_before)}" if entry.valid_before else ""
    console.print(f"{escape(entry.principal)} ({entry.fingerprint}) may approve {escape(envs)}{until}")
    console.print(f"-> {escape(str(path))} line {entry.line}: commit it so CI verifies with it")


def approvers_remove_cmd(
    who: Annotated[str, typer.Argument(help="A principal (e-mail) or a key fingerprint (SHA256:...).")],
    use_case: UseCaseOpt = None,
    workspace: WorkspaceOpt = Path("."),
) -> None:
    """Remove every line of that principal or key from allowed_signers."""
    path = _approvers_file(workspace, use_case)
    removed = core.remove_approver(path, who)
    if not removed:
        raise LlmopsError(
            f"'{who}' is not in {path}", file=path, field="WHO", hint="see `llmops approvers list`"
        )
    console.print(f"removed {removed} line(s) from {escape(str(path))}")


def approvers_list_cmd(
    use_case: Annotated[str | None, typer.Argument(help="Use case (default: all).")] = None,
    workspace: WorkspaceOpt = Path("."),
    json_out: JsonOpt = False,
) -> None:
    """Who may approve which environments, from which file, until when."""
    ws = load_workspace(workspace, inspect_datasets=False)
    ucs = [ws.get(use_case)] if use_case else [uc for uc in ws.use_cases if uc.ok]
    files: dict[str, dict] = {}
    for uc in ucs:
        path = core.allowed_signers_path(ws.root, uc)
        if path is None:
            continue
        rel = core._posix_rel(path, ws.root)
        if rel not in files:
            entries, problems = core.sshsig.parse_allowed_signers(path)
            files[rel] = {
                "file": rel,
                "use_cases": [],
                "signers": [e.to_dict() for e in entries],
                "problems": problems,
            }
        files[rel]["use_cases"].append(uc.name)
    if json_out:
        print_json({"files": list(files.values())})
        return
    if not files:
        console.print(
            "No allowed_signers file: approvals are shared-key (HMAC). Add people with "
            "`llmops approvers add EMAIL KEY.pub --env ENV`."
        )
        return
    for info in files.values():
        table = Table(title=f"{info['file']} (use cases: {', '.join(info['use_cases'])})")
        for col in ("principal", "key", "environments", "valid before"):
            table.add_column(col)
        for e in info["signers"]:
            expiry = core.sshsig.display_time(e["valid_before"]) if e["valid_before"] else "-"
            table.add_row(
                escape(e["principal"]), e["fingerprint"], escape(", ".join(e["environments"])), expiry
            )
        console.print(table)
        for problem in info["problems"]:
            err_console.print(f"warning: {escape(problem)}")
