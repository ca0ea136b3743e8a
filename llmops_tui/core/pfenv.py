"""Keep Prompt flow offline, quiet and inside the workspace.

Prompt flow phones home (telemetry, version checks), starts a detached tracing service that outlives
the process, and writes its home under ``~/.promptflow``. Call :func:`configure_promptflow_env`
before the first ``import promptflow`` of a process (it is cheap and idempotent). See
shared PROMPTFLOW_NOTES for the measurements behind each variable.
"""

from __future__ import annotations

import os
from pathlib import Path

_OFFLINE_ENV = {
    "PF_TRACING_SKIP_LOCAL_SETUP": "true",
    "PF_DISABLE_TELEMETRY": "true",
    "PROMPTFLOW_DISABLE_TELEMETRY": "true",
    "APPLICATIONINSIGHTS_CONTROLPLANE_DISABLED": "true",
    "APPLICATIONINSIGHTS_STATSBEAT_DISABLED_ALL": "true",
    "PF_LOGGING_LEVEL": "CRITICAL",
    "PF_DISABLE_TRACING": "true",
}


def default_pf_home(workspace: Path | None = None) -> Path:
    """Prompt flow's home for this workspace: ``<workspace>/.llmops/promptflow``.

    ``pf flow build`` refuses a home outside ``$HOME``; callers that build flows use a home below $HOME.
    """
    base = Path(workspace) if workspace else Path.cwd()
    return (base / ".llmops" / "promptflow").resolve()


def configure_promptflow_env(pf_home: Path | None = None) -> Path:
    """Set the environment that keeps Prompt flow offline; returns the Prompt flow home used."""
    for key, value in _OFFLINE_ENV.items():
        os.environ.setdefault(key, value)
    home = Path(os.environ.get("PF_HOME_DIRECTORY") or pf_home or default_pf_home())
    home.mkdir(parents=True, exist_ok=True)
    os.environ["PF_HOME_DIRECTORY"] = str(home)
    config = home / "pf.yaml"
    if not config.exists():
        config.write_text("telemetry:\n  enabled: false\ntrace:\n  destination: none\n", encoding="utf-8")
    return home
