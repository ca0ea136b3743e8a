"""`llmops keys` and `llmops set-key`: which connection keys are found, and storing one in the OS keyring.

The same as the app's Connections and keys screen. A key is never printed: only where it was found.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated

import typer
from rich.table import Table

from llmops_tui.cli.common import JsonOpt, WorkspaceOpt, console, print_json
from llmops_tui.core.errors import LlmopsError
from llmops_tui.core.workspace import load_workspace


def register(app: typer.Typer) -> None:
    app.command("keys")(keys_cmd)
    app.command("set-key")(set_key_cmd)


def keys_cmd(
    use_case: Annotated[str | None, typer.Argument(help="Only this use case.")] = None,
    workspace: WorkspaceOpt = Path("."),
    json_out: JsonOpt = False,
) -> None:
    """Show, per connection, the variable that holds its key and where it was found (never the key)."""
    from llmops_tui.core.connections import key_status
    from llmops_tui.core.secrets import keyring_status

    ws = load_workspace(workspace, inspect_datasets=False)
    ucs = [ws.get(use_case)] if use_case else ws.use_cases
    rows = [
        {"use_case": uc.name, "connection": k.connection, "env_var": k.env_var, "found_in": k.source}
        for uc in ucs
        for k in key_status(uc, ws.root)
    ]
    signing = _signing_key_status()
    if json_out:
        print_json({"keyring": keyring_status(), "connections": rows, "approval_signing_key": signing})
        return
    table = Table(title="Connection keys")
    for col in ("use case", "connection", "variable", "found in"):
        table.add_column(col)
    for r in rows:
        table.add_row(r["use_case"], r["connection"], r["env_var"], r["found_in"] or "[red]not found[/red]")
    console.print(table)
    console.print(f"keyring: {keyring_status()}")
    if signing["key"]:
        what = signing["fingerprint"] or signing["problem"]
        console.print(f"approval signing key ($LLMOPS_SIGNING_KEY): {signing['key']} ({what})", markup=False)
    else:
        console.print("approval signing key: none ($LLMOPS_SIGNING_KEY, or approve --key; docs/approval.md)")
    if any(r["found_in"] is None for r in rows):
        console.print(
            "Missing keys: set the variable, add it to .env, or `llmops set-key VARIABLE`; "
            "or run offline with --llm-endpoint sandbox."
        )


def set_key_cmd(
    variable: Annotated[
        str, typer.Argument(help="The key's variable name, e.g. AOAI_API_KEY (see llmops keys).")
    ],
) -> None:
    """Store a connection key in the OS keyring (read from a hidden prompt, or from stdin when piped)."""
    from llmops_tui.core.secrets import set_keyring_secret

    if not variable.replace("_", "").isalnum():
        raise LlmopsError(f"'{variable}' is not a variable name", field="VARIABLE", hint="e.g. AOAI_API_KEY")
    if sys.stdin.isatty():
        value = typer.prompt(f"{variable}", hide_input=True)
    else:
        value = sys.stdin.readline().strip()
    where = set_keyring_secret(variable, value.strip())
    console.print(f"stored {variable} in {where}")


def _signing_key_status() -> dict:
    """The SSH key approvals would be signed with (``LLMOPS_SIGNING_KEY``): its path and fingerprint, never
    anything private."""
    from llmops_tui.core.approval import ssh_signer_from_env

    signer = ssh_signer_from_env()
    if signer is None:
        return {"key": None, "fingerprint": None, "problem": None}
    try:
        return {"key": str(signer.key_file), "fingerprint": signer.fingerprint(), "problem": None}
    except (LlmopsError, ValueError) as exc:
        return {"key": str(signer.key_file), "fingerprint": None, "problem": str(exc)}
