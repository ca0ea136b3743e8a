"""`llmops X` imports X's command module alone; the command registry and the modules agree; a command
module that cannot be imported is an error a person sees, never a command that quietly disappears.

What is imported is checked in fresh processes (``sys.modules`` at the end), never how long it took.
"""

from __future__ import annotations

import inspect
import os
import subprocess
import sys
from pathlib import Path

import pytest

from llmops_tui.cli import main, registry

REPO = Path(__file__).resolve().parent.parent
CLI_DIR = REPO / "llmops_tui" / "cli"

# Runs the CLI in-process, then reports which command modules and heavy packages were imported.
RUNNER = """\
import sys
{prelude}
from llmops_tui.cli import main
rc = main(sys.argv[1:])
cmds = sorted(m.rsplit('.', 1)[1] for m in sys.modules if m.startswith('llmops_tui.cli.') and m.endswith('_cmds'))
heavy = sorted(m for m in ('openai', 'promptflow', 'llmops_tui.core.approval', 'textual') if m in sys.modules)
sys.stderr.write('\\nMODULES=' + ','.join(cmds) + '\\nHEAVY=' + ','.join(heavy) + '\\nRC=%d\\n' % rc)
"""


def _cli(*args: str, prelude: str = "") -> tuple[int, str, str, list[str], list[str]]:
    env = {**os.environ, "COLUMNS": "100"}
    env.pop("LLMOPS_DEBUG", None)
    code = RUNNER.format(prelude=prelude)
    proc = subprocess.run(
        [sys.executable, "-c", code, *args], capture_output=True, text=True, cwd=REPO, env=env, timeout=120
    )
    assert "RC=" in proc.stderr, proc.stderr  # the runner itself got to the end
    report = dict(line.split("=", 1) for line in proc.stderr.splitlines() if line.split("=")[0].isupper())
    modules = [m for m in report["MODULES"].split(",") if m]
    heavy = [m for m in report["HEAVY"].split(",") if m]
    return int(report["RC"]), proc.stdout, proc.stderr, modules, heavy


def _cmd_modules() -> list[str]:
    return sorted(p.stem for p in CLI_DIR.glob("*_cmds.py"))


def _defined(module: str) -> dict[str, str]:
    """The top-level commands ``module.register`` defines, as the CLI loads them: name -> help as written."""
    return {name: cmd.help or "" for name, cmd in registry.load_module(module).items()}


def _first_paragraph(text: str) -> str:
    return " ".join(inspect.cleandoc(text).split("\n\n")[0].split())


# --------------------------------------------------------------------------------- what is imported


def test_sweep_help_imports_only_the_sweep_module():
    rc, out, err, modules, heavy = _cli("sweep", "--help")
    assert rc == 0, err
    assert "--llm-endpoint" in out
    assert modules == ["sweep_cmds"]
    assert heavy == []  # neither openai, Prompt flow nor the approvals (and their cryptography)


def test_root_help_lists_every_command_without_importing_any_module():
    rc, out, err, modules, _ = _cli("--help")
    assert rc == 0, err
    assert modules == []
    # A command's row starts with its name; its help's continuation lines start with spaces.
    listed = [line.split()[1] for line in out.splitlines() if line.startswith("│ ") and line[2] != " "]
    names = registry.command_names()
    assert [n for n in listed if not n.startswith("-")] == names  # options come first, in their own panel
    assert "Run a sweep: every variant combination" in out  # the one-line help comes with the names


def test_running_a_command_imports_its_module_alone():
    rc, _, err, modules, _ = _cli("list", "--workspace", str(REPO), "--json")
    assert rc == 0, err
    assert modules == ["workspace_cmds"]


# --------------------------------------------------------------------------- a module that cannot load


def test_a_command_module_that_fails_to_import_is_an_error_not_a_missing_command():
    # A dependency the sweep module needs is missing (as after a broken install).
    broken = "sys.modules['rich.progress'] = None"
    rc, out, err, _, _ = _cli("sweep", "--help", prelude=broken)
    assert rc == 1
    assert "error: llmops_tui.cli.sweep_cmds failed to load" in err
    assert "rich.progress" in err  # what is missing
    assert "`llmops sweep`" in err and "`llmops runs`" in err  # what cannot run
    assert "reinstall" in err
    assert "Traceback" not in err
    # Still listed: the command did not vanish from the help.
    rc, out, err, _, _ = _cli("--help", prelude=broken)
    assert rc == 0 and " sweep " in out
    # The other commands are unaffected.
    rc, _, err, _, _ = _cli("list", "--workspace", str(REPO), "--json", prelude=broken)
    assert rc == 0, err


def test_a_broken_command_module_shows_its_traceback_with_debug():
    code = "import sys\nsys.modules['rich.progress'] = None\nfrom llmops_tui.cli import main\nmain(sys.argv[1:])\n"
    proc = subprocess.run(
        [sys.executable, "-c", code, "--debug", "sweep", "--help"], capture_output=True, text=True, cwd=REPO
    )
    assert proc.returncode != 0
    err = proc.stderr
    assert "Traceback" in err and "CommandModuleError" in err and "import of rich.progress halted" in err


def test_a_registry_line_whose_module_lacks_the_command_says_so(monkeypatch, capsys):
    ghost = registry.Command("ghost", "demo_cmds", "Not defined anywhere.")
    monkeypatch.setattr(registry, "COMMANDS", (*registry.COMMANDS, ghost))
    monkeypatch.setitem(registry.BY_NAME, "ghost", ghost)
    assert main(["ghost"]) == 1
    err = capsys.readouterr().err
    assert "`llmops ghost`" in err and "llmops_tui.cli.demo_cmds" in err and "does not define it" in err


def test_a_mistyped_command_suggests_the_registered_one(capsys):
    assert main(["swep"]) == 2
    assert "Did you mean 'sweep'?" in capsys.readouterr().err


# ------------------------------------------------------------------- the registry and the modules agree


def test_every_command_module_is_in_the_registry_and_every_registry_module_exists():
    in_registry = sorted({c.module for c in registry.COMMANDS})
    assert in_registry == _cmd_modules(), (
        "llmops_tui/cli/registry.py COMMANDS and the *_cmds.py files differ: add a line per command of a new "
        "module, remove the lines of a deleted one"
    )


@pytest.mark.parametrize("module", _cmd_modules())
def test_registry_and_module_agree_on_commands_and_help(module):
    defined = _defined(module)
    registered = {c.name: c.help for c in registry.COMMANDS if c.module == module}
    missing = sorted(set(defined) - set(registered))
    assert not missing, (
        f"{module} defines {missing}: add a line for each to COMMANDS in llmops_tui/cli/registry.py"
    )
    extra = sorted(set(registered) - set(defined))
    assert not extra, (
        f"COMMANDS puts {extra} in {module}, which does not define them: fix or remove the lines"
    )
    for name, help_text in defined.items():
        assert registered[name] == _first_paragraph(help_text), (
            f"`llmops {name}`: its help in COMMANDS (llmops_tui/cli/registry.py) must be the first paragraph of "
            f"its own help, {_first_paragraph(help_text)!r}"
        )


def test_command_names_are_unique():
    names = registry.command_names()
    assert len(names) == len(set(names)) == len(registry.BY_NAME)
