"""`llmops doctor`: is everything llmops-tui needs on this machine, and what to do about what is not.

Needed (exit 1 when one is missing): a supported Python, the packages llmops-tui depends on at versions
it accepts, a writable Prompt flow home. Optional (reported, never a failure): the OS keyring, an
approval key, ssh-keygen, and the command-line tools some deploy targets and checks call.
Never imports promptflow (versions come from package metadata) and never prints a secret.
"""

from __future__ import annotations

import os
import shutil
import sys
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import typer
from rich.markup import escape

from llmops_tui import __version__
from llmops_tui.cli.common import JsonOpt, WorkspaceOpt, console, print_json

MIN_PYTHON = (3, 11)
DIST_NAME = "llmops-tui"
# Shown first (and checked even when the installed metadata cannot be read).
KEY_PACKAGES = [
    "promptflow",
    "promptflow-tools",
    "promptflow-azure",
    "textual",
    "typer",
    "pydantic",
    "openai",
    "keyring",
    "azure-ai-ml",
]
REINSTALL = f"pipx reinstall {DIST_NAME} (or: pip install --force-reinstall {DIST_NAME}=={__version__})"


@dataclass
class Check:
    name: str
    status: str  # ok | missing | warning
    needed: bool
    detail: str
    fix: str = ""


def register(app: typer.Typer) -> None:
    app.command("doctor")(doctor_cmd)


def doctor_cmd(workspace: WorkspaceOpt = Path("."), json_out: JsonOpt = False) -> None:
    """Check Python, package versions, Prompt flow's home, the keyring, the approval key and tools.

    Exit code 0 when everything needed is there (optional things may still be missing), 1 otherwise."""
    checks = run_checks(workspace)
    ok = all(c.status == "ok" for c in checks if c.needed)
    if json_out:
        print_json({"version": __version__, "ok": ok, "checks": [asdict(c) for c in checks]})
    else:
        console.print(f"llmops-tui {__version__}", markup=False)
        for c in checks:
            colour = {"ok": "green", "warning": "yellow"}.get(c.status, "red" if c.needed else "yellow")
            label = c.status if c.needed or c.status == "ok" else f"{c.status} (optional)"
            console.print(f"[{colour}]{label:<18}[/] [b]{escape(c.name)}[/b]: {escape(c.detail)}")
            if c.fix:
                console.print(f"{'':<19}what to do: {escape(c.fix)}")
        console.print(
            "[green]everything needed is there[/]" if ok else "[red]something needed is missing: see above[/]"
        )
    if not ok:
        raise typer.Exit(1)


def run_checks(workspace: Path) -> list[Check]:
    checks = [_python()]
    checks += _packages()
    checks.append(_pf_home(workspace))
    checks.append(_keyring())
    checks.append(_signing_key())
    checks.append(_approval_key())
    checks += _tools()
    return checks


def _python() -> Check:
    version = ".".join(map(str, sys.version_info[:3]))
    if sys.version_info[:2] >= MIN_PYTHON:
        return Check("python", "ok", True, f"{version} ({sys.executable})")
    return Check(
        "python",
        "missing",
        True,
        f"{version} is too old",
        f"install Python {MIN_PYTHON[0]}.{MIN_PYTHON[1]}+ and reinstall: pipx install --python python3.11 {DIST_NAME}",
    )


def _requirements() -> list[Any]:
    """The non-optional requirements of the installed distribution (None entries when unreadable)."""
    from importlib import metadata

    try:
        from packaging.requirements import Requirement
    except ImportError:  # pragma: no cover - packaging comes with every dependency tree we support
        return []
    try:
        raw = metadata.requires(DIST_NAME) or []
    except metadata.PackageNotFoundError:
        return []
    reqs = []
    for text in raw:
        req = Requirement(text)
        if req.marker is not None and not req.marker.evaluate({"extra": ""}):
            continue  # an optional extra ([dev], backends) or another platform's dependency
        reqs.append(req)
    return reqs


def _packages() -> list[Check]:
    from importlib import metadata

    reqs = {r.name.lower(): r for r in _requirements()}
    for extra in ("azure",):  # promptflow[azure] brings promptflow-azure
        if any(extra in r.extras for r in reqs.values() if r.name.lower() == "promptflow"):
            reqs.setdefault("promptflow-azure", None)
    names = [n for n in KEY_PACKAGES if n in reqs or not reqs] + sorted(
        n for n in reqs if n not in KEY_PACKAGES
    )
    checks = []
    for name in names:
        req = reqs.get(name)
        spec = str(req.specifier) if req is not None and req.specifier else ""
        try:
            version = metadata.version(name)
        except metadata.PackageNotFoundError:
            checks.append(
                Check(f"package {name}", "missing", True, f"not installed (needs {name}{spec})", REINSTALL)
            )
            continue
        if req is not None and req.specifier and not req.specifier.contains(version, prereleases=True):
            checks.append(
                Check(
                    f"package {name}",
                    "missing",
                    True,
                    f"{version} installed, {DIST_NAME} needs {spec}",
                    f'pip install "{name}{spec}" in the environment {DIST_NAME} runs in, or {REINSTALL}',
                )
            )
            continue
        checks.append(Check(f"package {name}", "ok", True, version))
    return checks


def _pf_home(workspace: Path) -> Check:
    from llmops_tui.core.pfenv import default_pf_home

    configured = os.environ.get("PF_HOME_DIRECTORY")
    home = Path(configured) if configured else default_pf_home(workspace)
    source = "PF_HOME_DIRECTORY" if configured else "the workspace's .llmops/promptflow"
    existing = home
    while not existing.exists() and existing != existing.parent:
        existing = existing.parent
    if os.access(existing, os.W_OK):
        return Check("Prompt flow home", "ok", True, f"{home} ({source})")
    return Check(
        "Prompt flow home",
        "missing",
        True,
        f"{home} is not writable ({source})",
        "run from a writable workspace, or set PF_HOME_DIRECTORY to a writable folder below $HOME",
    )


def _keyring() -> Check:
    fix = (
        "keys can come from <CONNECTION>_API_KEY environment variables or a .env file; for the OS "
        "keyring on Linux run a Secret Service (GNOME Keyring, KeePassXC) in your desktop session"
    )
    try:
        import keyring

        backend = keyring.get_keyring()
    except Exception as exc:  # noqa: BLE001 - a broken keyring is a finding, not a crash
        return Check("keyring backend", "missing", False, f"unusable ({type(exc).__name__})", fix)
    from llmops_tui.core.secrets import _plaintext_backend

    name = f"{type(backend).__module__}.{type(backend).__name__}"
    if _plaintext_backend(backend):
        return Check("keyring backend", "missing", False, f"{name} (no usable OS keyring)", fix)
    priority = getattr(backend, "priority", 1)
    try:
        usable = float(priority) > 0
    except (TypeError, ValueError):
        usable = True
    if not usable:
        return Check("keyring backend", "missing", False, f"{name} (not usable here)", fix)
    return Check("keyring backend", "ok", False, name)


def _signing_key() -> Check:
    """The SSH key a person signs approvals with (``LLMOPS_SIGNING_KEY``, or ``approve --key``). CI needs
    none: it verifies with the public keys in ``allowed_signers``."""
    from llmops_tui.core.approval import ssh_signer_from_env
    from llmops_tui.core.errors import LlmopsError

    fix = (
        "only to approve: export LLMOPS_SIGNING_KEY=~/.ssh/id_ed25519 (or its .pub with ssh-agent), pass "
        "`approve --key`, or let the app's approval screen set one up; CI verifies with allowed_signers "
        "and needs no key (docs/approval.md)"
    )
    signer = ssh_signer_from_env()
    if signer is None:
        own = Path("~/.ssh/id_ed25519").expanduser()
        found = f"; {own} exists and can be used" if own.is_file() else ""
        return Check("approval signing key", "missing", False, f"LLMOPS_SIGNING_KEY not set{found}", fix)
    try:
        return Check("approval signing key", "ok", False, f"{signer.key_file} ({signer.fingerprint()})")
    except (LlmopsError, ValueError) as exc:
        return Check("approval signing key", "warning", False, f"{signer.key_file}: {exc}", fix)


def _approval_key() -> Check:
    from llmops_tui.core.approval import KEY_ENV_VAR, load_approval_key
    from llmops_tui.core.errors import LlmopsError

    name = "shared approval key (older mode)"
    fix = (
        f"only to verify approvals made with the shared key before SSH signing: the {KEY_ENV_VAR} secret; "
        "new approvals are signed with people's SSH keys (docs/approval.md, 'Moving from the shared key to SSH keys')"
    )
    try:
        key = load_approval_key(required=False)
    except LlmopsError as exc:
        return Check(name, "warning", False, str(exc), fix)
    if key is None:
        return Check(name, "missing", False, f"not set ({KEY_ENV_VAR} or the OS keyring)", fix)
    return Check(name, "ok", False, f"from {key.source}, key id {key.key_id}")


# Command-line tools: (name, what uses it, what to do when it is missing).
TOOLS = [
    (
        "ssh-keygen",
        "SSH-signed approvals",
        "install OpenSSH (apt-get install openssh-client; macOS and Windows ship it)",
    ),
    ("git", "the approvals' git history check (rollback protection)", "install git"),
    ("docker", "building the image of deploy --target kubernetes", "install Docker or Podman (docker CLI)"),
    ("kubectl", "deploy --target kubernetes", "install kubectl"),
    ("az", "deploy --target webapp", "install the Azure CLI"),
    ("chromium", "checking HTML reports in a headless browser, in tests", "apt-get install chromium"),
]


def _tools() -> list[Check]:
    checks = []
    for name, used_by, fix in TOOLS:
        path = shutil.which(name) or (shutil.which("chromium-browser") if name == "chromium" else None)
        if path:
            checks.append(Check(name, "ok", False, f"{path}, for {used_by}"))
        else:
            checks.append(Check(name, "missing", False, f"not found, needed for {used_by}", fix))
    return checks
