"""What ``lint-imports`` cannot see: imports at run time.

The import-linter contracts (pyproject.toml) already forbid the headless packages from importing the UI
toolkits, and keep Prompt flow behind the seam, statically. They cannot see an import that happens
through a third-party package or ``importlib``, nor whether an import is deferred until it is needed.
So: one process importing every headless module ends with no UI toolkit loaded, and listing and
showing use cases load neither Prompt flow nor the other heavy packages.
"""

from __future__ import annotations

import pkgutil
import subprocess
import sys
from pathlib import Path

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


def test_headless_modules_load_no_ui_toolkit_even_indirectly():
    modules = _modules()
    code = (
        "import importlib, sys\n"
        f"for name in {modules!r}:\n"
        "    importlib.import_module(name)\n"
        "bad = [m for m in ('textual', 'rich') if m in sys.modules]\n"
        "print(','.join(bad))\n"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=REPO, timeout=300)
    assert proc.returncode == 0, proc.stderr
    assert len(modules) > 20  # the walk found the packages
    assert proc.stdout.strip() == "", f"importing the headless modules loaded {proc.stdout.strip()}"


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
