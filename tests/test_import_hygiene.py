"""Core, deploy, sandbox and exporters never import the UI toolkits; listing never imports promptflow."""

from __future__ import annotations

import pkgutil
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
HEADLESS = ["llmops_tui.core", "llmops_tui.deploy", "llmops_tui.sandbox", "llmops_tui.exporters"]


def _modules() -> list[str]:
    out = []
    for pkg in HEADLESS:
        path = REPO / pkg.replace(".", "/")
        if not path.is_dir():
            continue
        out.append(pkg)
        for info in pkgutil.walk_packages([str(path)], prefix=pkg + "."):
            out.append(info.name)
    return out


@pytest.mark.parametrize("module", _modules())
def test_headless_module_imports_no_ui(module):
    code = (
        "import importlib, sys\n"
        f"importlib.import_module({module!r})\n"
        "bad = [m for m in ('textual', 'rich') if m in sys.modules]\n"
        "print(','.join(bad))\n"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=REPO, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == "", f"{module} imported {proc.stdout.strip()}"


def test_list_and_show_do_not_import_promptflow():
    code = (
        "import sys\n"
        "from llmops_tui.cli import main\n"
        f"main(['list', '--workspace', {str(REPO)!r}, '--json'])\n"
        f"main(['show', 'support_ticket_classification', '--workspace', {str(REPO)!r}, '--json'])\n"
        "bad = [m for m in ('promptflow', 'textual', 'pandas', 'openai') if m in sys.modules]\n"
        "sys.stderr.write('BAD=' + ','.join(bad))\n"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=REPO, timeout=120)
    assert "BAD=" in proc.stderr, proc.stderr
    assert proc.stderr.split("BAD=")[1].strip() == ""
