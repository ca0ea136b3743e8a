"""Which module defines each `llmops` command, so that `llmops X` imports only X's module.

Importing every command module at start-up cost about a third of a second before any command ran
(approvals and cryptography for `llmops sweep`, the sweep engine for `llmops approve`, ...). The table
below names each command, the module that defines it and its one-line help, so `llmops --help` lists
every command without importing any of them, and running a command imports its module alone.

Adding a command is one line in :data:`COMMANDS` (next to its module's other commands). The one-line
help here must be the first paragraph of the command's own help: ``tests/test_cli_startup.py`` checks
that the table and the modules agree, both ways, and says which line to fix.

A command module that fails to import is never skipped: running one of its commands prints what failed
and exits 1 (``--debug`` shows the traceback), and ``llmops --help`` still lists it.
"""

from __future__ import annotations

import importlib
from difflib import get_close_matches
from typing import Any, NamedTuple

import typer
import typer.main
from typer.core import TyperCommand, TyperGroup


class Command(NamedTuple):
    name: str  # as typed: `llmops NAME`
    module: str  # the module of this package whose ``register(app)`` defines it
    help: str  # its one-line help in `llmops --help` (the first paragraph of its own help)


COMMANDS: tuple[Command, ...] = (
    Command(
        "list",
        "workspace_cmds",
        "List use cases with their flows, variants per node, datasets and evaluators.",
    ),
    Command(
        "show",
        "workspace_cmds",
        "Show the full model of one use case: flows, nodes, variants, datasets, mappings, connections.",
    ),
    Command(
        "sandbox",
        "sandbox_cmds",
        "Serve the offline sandbox model (OpenAI / Azure OpenAI compatible) until interrupted.",
    ),
    Command(
        "sweep",
        "sweep_cmds",
        "Run a sweep: every variant combination x grid x dataset x repetition, concurrently, cached, "
        "resumable.",
    ),
    Command("show-run", "sweep_cmds", "Show one run: its status, cells, metrics and figures."),
    Command(
        "delete-run",
        "sweep_cmds",
        "Delete a run and everything it stored (lines, scores, metrics). The line cache is kept.",
    ),
    Command(
        "runs",
        "sweep_cmds",
        "List runs (newest first), or carry one to another machine: `runs export`, `runs import`.",
    ),
    Command(
        "compare",
        "report_cmds",
        "Compare the cells of a run side by side: metrics with 95% CIs, deltas, significance and gates.",
    ),
    Command(
        "report",
        "report_cmds",
        "Write a report of a run: csv, html (self-contained), markdown, junit (gates) or json.",
    ),
    Command(
        "gate",
        "report_cmds",
        "Exit 0 when the chosen (or best) cell passes every gate in llmops.yaml, 1 otherwise.",
    ),
    Command(
        "approve",
        "approval_cmds",
        "Approve one cell of a run for one or more environments (writes signed approval records).",
    ),
    Command(
        "reject",
        "approval_cmds",
        "Reject one cell of a run for one or more environments (a signed record that blocks deployment).",
    ),
    Command(
        "approvals",
        "approval_cmds",
        "Show current approval records and their history, with whether each current one verifies now.",
    ),
    Command(
        "verify-approval",
        "approval_cmds",
        "Exit 0 only when a valid, signed, approved record matches the flow and datasets as they are now.",
    ),
    Command(
        "approval-key",
        "approval_cmds",
        "Shared-key mode (HMAC, the older one): show which shared key would sign (its id and source, "
        "never the key), or make a new one. Approvals signed by people use SSH keys instead "
        "(`llmops approvers`).",
    ),
    Command(
        "approvers",
        "approval_cmds",
        "Who may approve which environments: the allowed-signers file (public SSH keys).",
    ),
    Command(
        "deploy",
        "deploy_cmds",
        "Deploy a use case's approved (or chosen) configuration to a target and test the endpoint.",
    ),
    Command("deployments", "deploy_cmds", "List local deployments (and A/B routers) of the workspace."),
    Command("undeploy", "deploy_cmds", "Stop local deployments of a use case."),
    Command(
        "endpoint-test",
        "deploy_cmds",
        "POST a request to an endpoint until it is ready; assert 200 and the output keys (exit 1 if not).",
    ),
    Command(
        "deploy-migrated",
        "deploy_cmds",
        "Serve a flow migrated to Agent Framework with the /score contract of our Prompt flow deployments "
        "(local: started on 127.0.0.1 and tested; container: a Docker build context; kubernetes, azureml, "
        "webapp: as llmops deploy, with --env). Stop a local one with `llmops undeploy NAME --env migrated`.",
    ),
    Command(
        "keys",
        "keys_cmds",
        "Show, per connection, the variable that holds its key and where it was found (never the key).",
    ),
    Command(
        "set-key",
        "keys_cmds",
        "Store a connection key in the OS keyring (read from a hidden prompt, or from stdin when piped).",
    ),
    Command(
        "deps",
        "deps_cmds",
        "List the packages each flow of USE_CASE names in its requirements.txt, installed or missing.",
    ),
    Command(
        "init",
        "init_cmds",
        "Write llmops.yaml for each use case, add .llmops/ to .gitignore and (with --ci) a CI workflow.",
    ),
    Command(
        "demo",
        "demo_cmds",
        "Copy the bundled use cases into FOLDER/use_cases, ready to sweep against the offline sandbox model.",
    ),
    Command(
        "doctor",
        "doctor_cmds",
        "Check Python, package versions, Prompt flow's home, the keyring, the approval key and tools.",
    ),
    Command("traffic", "traffic_cmds", "A/B traffic: import, feedback, evaluate, compare."),
    Command(
        "promote",
        "traffic_cmds",
        "Shift traffic to an approved arm by the target's own mechanism, and record who and why.",
    ),
    Command(
        "rollback",
        "traffic_cmds",
        "Send all traffic back to the control arm (or --arm), and record who and why.",
    ),
    Command(
        "compare-backends",
        "migrate_cmds",
        "Run the same cells on the promptflow-dag and agent-framework backends (cache off) and compare "
        "them line by line: outputs identical or not, metric deltas, paired tests, a verdict per cell.",
    ),
    Command(
        "migrate",
        "migrate_cmds",
        "Write USE_CASE's DAG flows as Agent Framework code that runs without llmops-tui (one folder per "
        "flow: flow.py with the executors, the workflow factory and run(inputs), the flow's code and "
        "prompts, a README).",
    ),
)

BY_NAME: dict[str, Command] = {c.name: c for c in COMMANDS}
PACKAGE = __name__.rpartition(".")[0]


def command_names() -> list[str]:
    """Every top-level command, in the order `llmops --help` lists them."""
    return [c.name for c in COMMANDS]


class CommandModuleError(Exception):
    """A command's module cannot be loaded: a broken installation or a bug, never bad input (exit 1)."""

    exit_code = 1


# Commands of the modules loaded so far in this process: module -> {name: click command}. A module's
# ``register`` runs once per process even when `main` is called many times (tests do).
_loaded: dict[str, dict[str, Any]] = {}


def load_module(module: str) -> dict[str, Any]:
    """Import one command module and return the commands its ``register(app)`` defines, by name.

    Raises :class:`CommandModuleError` naming the module and what failed, with the original error as
    its cause (``--debug`` shows both tracebacks)."""
    commands = _loaded.get(module)
    if commands is not None:
        return commands
    qualified = f"{PACKAGE}.{module}"
    try:
        mod = importlib.import_module(qualified)
        app = typer.Typer()
        mod.register(app)
        commands = dict(typer.main.get_group(app).commands)
    except Exception as exc:
        users = ", ".join(f"`llmops {c.name}`" for c in COMMANDS if c.module == module)
        raise CommandModuleError(
            f"{qualified} failed to load ({type(exc).__name__}: {exc}), so {users or 'its commands'} "
            "cannot run; the installation is broken or incomplete: reinstall llmops-tui "
            "(run again with --debug for the traceback)"
        ) from exc
    _loaded[module] = commands
    return commands


class LazyCommands(TyperGroup):
    """The root `llmops` group: lists the registry's commands, imports a command's module only when that
    command runs or shows its own help."""

    _listing = False  # True while `llmops --help` lists the commands: no module is imported for that

    def list_commands(self, ctx: Any) -> list[str]:
        return command_names()

    def get_command(self, ctx: Any, cmd_name: str) -> Any:
        entry = BY_NAME.get(cmd_name)
        if entry is None:
            return None
        if self._listing and entry.module not in _loaded:
            return TyperCommand(name=entry.name, help=entry.help)
        command = load_module(entry.module).get(cmd_name)
        if command is None:
            raise CommandModuleError(
                f"the command registry ({__name__}) puts `llmops {cmd_name}` in {PACKAGE}.{entry.module}, "
                "which does not define it: fix its line in COMMANDS"
            )
        return command

    def format_help(self, ctx: Any, formatter: Any) -> None:
        self._listing = True
        try:
            super().format_help(ctx, formatter)
        finally:
            self._listing = False

    def resolve_command(self, ctx: Any, args: list[str]) -> Any:
        # TyperGroup suggests close names from the commands it holds; these are loaded on demand, so
        # suggest from the registry instead.
        try:
            return self._click_resolve_command(ctx, args)
        except Exception as exc:  # click's UsageError (typer's copy of click)
            message = getattr(exc, "message", None)
            if message is not None and args and self.suggest_commands:
                matches = get_close_matches(args[0], command_names())
                if matches:
                    suggestions = ", ".join(f"{m!r}" for m in matches)
                    exc.message = f"{message.rstrip('.')}. Did you mean {suggestions}?"  # type: ignore[attr-defined]
            raise
