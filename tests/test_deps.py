"""`llmops deps`: the packages a use case's flows name, which are missing, and installing them."""

from __future__ import annotations

import json

from builders import make_use_case

from llmops_tui.cli import main


def _with_requirements(tmp_path, lines: str):
    uc = make_use_case(tmp_path, rows=2)
    (uc / "flows" / "standard" / "requirements.txt").write_text(lines)
    return uc


def test_missing_packages_are_named_with_the_file_and_the_install_command(tmp_path, capfd):
    _with_requirements(tmp_path, "promptflow\nno-such-package-for-llmops-tests==1.0\n# a comment\n")
    rc = main(["deps", "tickets", "-w", str(tmp_path), "--json"])
    out, _ = capfd.readouterr()
    assert rc == 1
    data = json.loads(out)
    assert data["missing"] == ["no-such-package-for-llmops-tests"]
    standard = next(f for f in data["files"] if f["flow"] == "standard")
    assert standard["file"] == "use_cases/tickets/flows/standard/requirements.txt"
    assert {p["name"]: p["installed"] for p in standard["packages"]} == {
        "promptflow": True,
        "no-such-package-for-llmops-tests": False,
    }
    assert data["install_commands"] and data["install_commands"][0].endswith(
        "-m pip install -r " + str(tmp_path / "use_cases/tickets/flows/standard/requirements.txt")
    )


def test_all_installed_exits_0(tmp_path, capfd):
    _with_requirements(tmp_path, "promptflow\n")
    assert main(["deps", "tickets", "-w", str(tmp_path)]) == 0
    assert "promptflow" in capfd.readouterr().out


def test_install_dry_run_prints_the_commands(tmp_path, capfd):
    _with_requirements(tmp_path, "no-such-package-for-llmops-tests\n")
    assert main(["deps", "tickets", "-w", str(tmp_path), "--install", "--dry-run"]) == 0
    assert "would run: " in capfd.readouterr().out


def test_install_that_pip_cannot_do_fails_in_one_line(tmp_path, capfd, monkeypatch):
    monkeypatch.setenv("PIP_NO_INDEX", "1")  # offline: pip finds nothing to install and says so
    monkeypatch.setenv("PIP_DISABLE_PIP_VERSION_CHECK", "1")
    _with_requirements(tmp_path, "no-such-package-for-llmops-tests\n")
    rc = main(["deps", "tickets", "-w", str(tmp_path), "--install"])
    _, err = capfd.readouterr()
    assert rc == 1
    assert "error: pip could not install" in err and "Traceback" not in err
