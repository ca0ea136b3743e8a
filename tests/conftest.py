"""Shared fixtures. Prompt flow is confined to a temp home and kept offline for the whole session."""

from __future__ import annotations

import atexit
import os
import shutil
import tempfile
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent

# Before anything imports promptflow: a private home under $HOME (pf flow build needs that), no telemetry.
_PF_HOME = Path(tempfile.mkdtemp(prefix="llmops-test-pf-", dir=os.path.expanduser("~")))
os.environ["PF_HOME_DIRECTORY"] = str(_PF_HOME)
atexit.register(shutil.rmtree, _PF_HOME, ignore_errors=True)
os.environ.setdefault("NO_PROXY", "127.0.0.1,localhost")
os.environ.setdefault("no_proxy", "127.0.0.1,localhost")

from llmops_tui.core.pfenv import configure_promptflow_env  # noqa: E402

configure_promptflow_env(_PF_HOME)


@pytest.fixture(scope="session")
def repo_root() -> Path:
    return REPO


@pytest.fixture(scope="session")
def sandbox():
    """The bundled sandbox model on a free loopback port, stopped at the end of the session."""
    from llmops_tui.sandbox import start_sandbox

    handle = start_sandbox(host="127.0.0.1", port=0, seed=0)
    try:
        yield handle
    finally:
        handle.stop()
