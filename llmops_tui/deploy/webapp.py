"""The webapp target: a Docker build context for the flow and the ``az`` commands that provision and update
an Azure Web App for Containers running it.

The deploy folder is the build context (see :mod:`llmops_tui.deploy.container`). The commands, also written
to ``commands.sh``: build the image in Azure Container Registry (``az acr build``: no local Docker daemon
needed), create the App Service plan and the web app when missing (or point an existing app at the new
image), attach the user-assigned identity, and set app settings, with every connection key as a Key
Vault reference (``@Microsoft.KeyVault(VaultName=...;SecretName=...)``) that the identity resolves at
run time: no key is ever in an app setting, the image or a file.

They run when the Azure CLI is installed and signed in (``az account show`` succeeds); otherwise they are
printed and written for you to run.
"""

from __future__ import annotations

import os
import shlex
import shutil
import subprocess
from typing import TYPE_CHECKING, Any

from llmops_tui.core.errors import LlmopsError, RunFailed
from llmops_tui.deploy.kubernetes import dns_name
from llmops_tui.deploy.prepare import SERVING_PORT

if TYPE_CHECKING:
    from llmops_tui.deploy.api import DeployContext


def keyvault_secret_name(env_var: str) -> str:
    """``AOAI_API_KEY`` -> ``aoai-api-key`` (Key Vault secret names allow letters, digits and dashes)."""
    return env_var.lower().replace("_", "-")


def az_commands(ctx: DeployContext) -> list[dict[str, Any]]:
    """The commands in order: each {"summary", "command" (argv), "unless" (argv of a check, optional)}."""
    e = ctx.entry
    block = "webapp_endpoint[]"
    for name in ("REGISTRY_NAME", "WEB_APP_NAME", "WEB_APP_RG_NAME", "APP_PLAN_NAME"):
        if not getattr(e, name):
            raise LlmopsError("missing", file=ctx.config_file, field=f"{block}.{name}")
    repo = dns_name(ctx.uc.name)
    tag = ctx.bundle.short_version
    image = f"{e.REGISTRY_NAME}.azurecr.io/{repo}:{tag}"
    vault = e.KEY_VAULT_NAME or "<KEY_VAULT_NAME>"
    rg, app, plan = e.WEB_APP_RG_NAME, e.WEB_APP_NAME, e.APP_PLAN_NAME
    settings = [f"WEBSITES_PORT={SERVING_PORT}", f"LLMOPS_FLOW_VERSION={ctx.bundle.version}"]
    settings += [f"{k}={v}" for k, v in sorted(e.ENVIRONMENT_VARIABLES.items())]
    settings += [f"{k}={v}" for k, v in sorted(ctx.bundle.plain_env.items())]
    wanted = set(e.CONNECTION_NAMES) if e.CONNECTION_NAMES else None
    for ref in ctx.bundle.connections:
        if wanted is not None and ref.name not in wanted:
            continue
        if ref.usable_base:
            settings.append(f"{ref.base_env_var}={ref.api_base}")
        secret = keyvault_secret_name(ref.key_env_var)
        settings.append(f"{ref.key_env_var}=@Microsoft.KeyVault(VaultName={vault};SecretName={secret})")
    commands: list[dict[str, Any]] = [
        {
            "summary": "build the image in the container registry from the deploy folder",
            "command": [
                "az",
                "acr",
                "build",
                "--registry",
                e.REGISTRY_NAME,
                "--resource-group",
                e.REGISTRY_RG_NAME or rg,
                "--image",
                f"{repo}:{tag}",
                str(ctx.out),
            ],
        },
        {
            "summary": "create the App Service plan (Linux) when missing",
            "command": [
                "az",
                "appservice",
                "plan",
                "create",
                "--name",
                plan,
                "--resource-group",
                rg,
                "--is-linux",
                "--sku",
                e.WEB_APP_SKU or "B3",
            ],
            "unless": ["az", "appservice", "plan", "show", "--name", plan, "--resource-group", rg],
        },
        {
            "summary": "create the web app when missing",
            "command": [
                "az",
                "webapp",
                "create",
                "--name",
                app,
                "--resource-group",
                rg,
                "--plan",
                plan,
                "--deployment-container-image-name",
                image,
            ],
            "unless": ["az", "webapp", "show", "--name", app, "--resource-group", rg],
        },
    ]
    if e.USER_MANAGED_ID:
        sub = os.environ.get("SUBSCRIPTION_ID") or "<SUBSCRIPTION_ID>"
        identity = (
            f"/subscriptions/{sub}/resourcegroups/{rg}/providers/Microsoft.ManagedIdentity/"
            f"userAssignedIdentities/{e.USER_MANAGED_ID}"
        )
        commands.append(
            {
                "summary": "attach the user-assigned identity (it pulls the image and reads the Key Vault secrets)",
                "command": [
                    "az",
                    "webapp",
                    "identity",
                    "assign",
                    "--name",
                    app,
                    "--resource-group",
                    rg,
                    "--identities",
                    identity,
                ],
            }
        )
        commands.append(
            {
                "summary": "resolve Key Vault references with that identity",
                "command": [
                    "az",
                    "webapp",
                    "update",
                    "--name",
                    app,
                    "--resource-group",
                    rg,
                    "--set",
                    f"keyVaultReferenceIdentity={identity}",
                ],
            }
        )
    commands += [
        {
            "summary": "point the web app at the new image",
            "command": [
                "az",
                "webapp",
                "config",
                "container",
                "set",
                "--name",
                app,
                "--resource-group",
                rg,
                "--container-image-name",
                image,
                "--container-registry-url",
                f"https://{e.REGISTRY_NAME}.azurecr.io",
            ],
        },
        {
            "summary": "app settings: port, version, environment, connection keys as Key Vault references",
            "command": [
                "az",
                "webapp",
                "config",
                "appsettings",
                "set",
                "--name",
                app,
                "--resource-group",
                rg,
                "--settings",
                *settings,
            ],
        },
        {
            "summary": "restart so the new image and settings take effect",
            "command": ["az", "webapp", "restart", "--name", app, "--resource-group", rg],
        },
    ]
    return commands


def commands_script(commands: list[dict[str, Any]]) -> str:
    lines = [
        "#!/usr/bin/env bash",
        "# Written by `llmops deploy --target webapp`. No secrets: keys stay in Key Vault.",
        "set -euo pipefail",
        "",
    ]
    for item in commands:
        lines.append(f"# {item['summary']}")
        cmd = shlex.join(item["command"])
        if item.get("unless"):
            lines.append(f"{shlex.join(item['unless'])} >/dev/null 2>&1 || {cmd}")
        else:
            lines.append(cmd)
        lines.append("")
    return "\n".join(lines)


def az_signed_in() -> bool:
    if not shutil.which("az"):
        return False
    try:
        return (
            subprocess.run(["az", "account", "show"], capture_output=True, timeout=30, check=False).returncode
            == 0
        )
    except (OSError, subprocess.TimeoutExpired):
        return False


def deploy_webapp(ctx: DeployContext) -> None:
    """Write the build context and commands; run them when the Azure CLI is signed in. Fills ``ctx.result``."""
    from llmops_tui.deploy.container import build_context_files

    result = ctx.result
    for rel_path, text in build_context_files(ctx.bundle, ctx.uc.name).items():
        ctx.write(rel_path, text)
    commands = az_commands(ctx)
    ctx.write("commands.sh", commands_script(commands))
    steps = []
    for item in commands:
        steps.append(
            result.add(
                "run",
                item["summary"] + (" (skipped when it exists)" if item.get("unless") else ""),
                command=item["command"],
            )
        )
    app = ctx.entry.WEB_APP_NAME
    result.endpoint_url = f"https://{app}.azurewebsites.net/score"
    result.deployment = {
        "web_app": app,
        "image": commands[0]["command"][-2],
        "resource_group": ctx.entry.WEB_APP_RG_NAME,
    }
    if ctx.opts.dry_run:
        return
    signed_in = (ctx.az_signed_in or az_signed_in)()
    if not signed_in:
        for step in steps:
            step.skipped = "Azure CLI not installed or not signed in"
        result.notes.append(f"run the commands yourself: bash {ctx.display(ctx.out / 'commands.sh')}")
        result.endpoint_url = None
        return
    for item, step in zip(commands, steps, strict=True):
        if (
            item.get("unless")
            and subprocess.run(item["unless"], capture_output=True, check=False).returncode == 0
        ):
            step.skipped = "exists"
            continue
        proc = subprocess.run(item["command"], capture_output=True, text=True, check=False)
        if proc.returncode != 0:
            raise RunFailed(f"`{' '.join(item['command'][:4])} ...` failed: {proc.stderr.strip()[:400]}")
        step.done = True
