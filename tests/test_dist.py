"""The release check: build the wheel and sdist, check what they hold, install the wheel into a fresh virtual
environment outside the source tree and use it there as a user would (`list`, a sandbox sweep, `compare`,
`report`, `demo`, `llmops-tui --demo` headless).

Slow (it installs llmops-tui and its dependencies, pinned by constraints.txt, from the package index; a
few minutes with a warm pip cache): marked ``slow`` and ``dist``; `.github/workflows/release-check.yml`
runs it with ``-m dist``. It needs the ``build`` package (in the dev extra), or ``LLMOPS_BUILD_PYTHON``
naming a Python that has it.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tarfile
import time
import venv
import zipfile
from pathlib import Path

import pytest

from llmops_tui import __version__

pytestmark = [pytest.mark.slow, pytest.mark.dist]

REPO = Path(__file__).resolve().parent.parent
SOURCES = [
    "pyproject.toml",
    "setup.py",
    "MANIFEST.in",
    "README.md",
    "constraints.txt",
    "llmops_tui",
    "use_cases",
    "docs",
]
SKIP = {"__pycache__", ".llmops", ".promptflow", ".env", ".mypy_cache", ".ruff_cache"}


def _build_python() -> str:
    for python in (os.environ.get("LLMOPS_BUILD_PYTHON"), sys.executable):
        if python and subprocess.run([python, "-c", "import build"], capture_output=True).returncode == 0:
            return python
    pytest.skip("the `build` package is not installed here (it is in the dev extra: pip install -e '.[dev]')")


def _source_files(folder: Path) -> list[str]:
    out = []
    for path in folder.rglob("*"):
        rel = path.relative_to(folder)
        if path.is_file() and not SKIP & set(rel.parts) and path.suffix not in (".pyc", ".pyo"):
            out.append(rel.as_posix())
    return sorted(out)


def _run(
    cmd: list[str], *, cwd: Path, env: dict[str, str], timeout: float = 600
) -> subprocess.CompletedProcess:
    result = subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout)
    assert result.returncode == 0, (
        f"{' '.join(map(str, cmd))} -> {result.returncode}\n{result.stdout}\n{result.stderr}"
    )
    return result


def test_built_wheel_holds_only_llmops_tui_and_runs_from_a_fresh_venv(tmp_path):
    build_python = _build_python()
    # Build from a copy: the source tree is never written to (no build/ or egg-info left in it).
    src = tmp_path / "src"
    src.mkdir()
    for name in SOURCES:
        path = REPO / name
        if path.is_dir():
            shutil.copytree(path, src / name, ignore=shutil.ignore_patterns(*SKIP, "*.pyc"))
        else:
            shutil.copy2(path, src / name)
    dist = tmp_path / "dist"
    _run([build_python, "-m", "build", "--outdir", str(dist), str(src)], cwd=tmp_path, env=dict(os.environ))
    (wheel,) = dist.glob("llmops_tui-*.whl")
    (sdist,) = dist.glob("llmops_tui-*.tar.gz")
    assert wheel.name == f"llmops_tui-{__version__}-py3-none-any.whl"  # one version source

    # What the wheel holds: only llmops_tui, every runtime file, the bundled use cases.
    names = set(zipfile.ZipFile(wheel).namelist())
    assert {n.split("/")[0] for n in names} == {"llmops_tui", f"llmops_tui-{__version__}.dist-info"}
    runtime = [f"llmops_tui/{f}" for f in _source_files(REPO / "llmops_tui")]
    assert [f for f in runtime if f not in names] == []
    assert "llmops_tui/tui/app.tcss" in names and "llmops_tui/exporters/templates/report.html.j2" in names
    demo = [
        f"llmops_tui/_demo/use_cases/{f}"
        for f in _source_files(REPO / "use_cases")
        if not f.startswith("_tools/")
    ]
    assert len(demo) > 20 and [f for f in demo if f not in names] == []
    assert not [n for n in names if "/_tools/" in n or "__pycache__" in n]
    entry_points = (
        zipfile.ZipFile(wheel).read(f"llmops_tui-{__version__}.dist-info/entry_points.txt").decode()
    )
    assert (
        "llmops = llmops_tui.cli:main" in entry_points
        and "llmops-tui = llmops_tui.tui.app:main" in entry_points
    )
    members = tarfile.open(sdist).getnames()
    prefix = f"llmops_tui-{__version__}/"
    assert prefix + "setup.py" in members and prefix + "use_cases/document_qa/experiment.yaml" in members
    twine = shutil.which("twine", path=str(Path(build_python).parent))
    if twine:
        _run([twine, "check", "--strict", str(wheel), str(sdist)], cwd=tmp_path, env=dict(os.environ))

    # A fresh virtual environment, no system site-packages, outside the source tree; nothing of the
    # checkout on the path.
    env_dir = tmp_path / "venv"
    venv.EnvBuilder(with_pip=True, system_site_packages=False, clear=True).create(env_dir)
    bin_dir = env_dir / "bin"
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV", "PYTHONHOME")}
    env.update(
        PATH=f"{bin_dir}{os.pathsep}{env.get('PATH', '')}",
        LLMOPS_TUI_DATA_DIR=str(tmp_path / "data"),
        LLMOPS_TUI_CONFIG_DIR=str(tmp_path / "config"),
    )
    work = tmp_path / "work"
    work.mkdir()
    started = time.monotonic()
    _run(
        [
            str(bin_dir / "python"),
            "-m",
            "pip",
            "install",
            "--quiet",
            "-c",
            str(REPO / "constraints.txt"),
            str(wheel),
        ],
        cwd=work,
        env=env,
        timeout=1800,
    )
    print(f"installing the wheel and its pinned dependencies took {time.monotonic() - started:.0f} s")
    where = _run(
        [str(bin_dir / "python"), "-c", "import llmops_tui; print(llmops_tui.__file__)"], cwd=work, env=env
    )
    assert Path(where.stdout.strip()).is_relative_to(env_dir)
    assert (
        _run([str(bin_dir / "llmops"), "--version"], cwd=work, env=env).stdout.strip()
        == f"llmops {__version__}"
    )
    tui_version = _run([str(bin_dir / "llmops-tui"), "--version"], cwd=work, env=env).stdout.strip()
    assert tui_version == f"llmops-tui {__version__}"
    doctor = json.loads(_run([str(bin_dir / "llmops"), "doctor", "--json"], cwd=work, env=env).stdout)
    assert doctor["ok"] is True

    # A template-shaped repository outside the source tree: list, a sandbox sweep, compare, report.
    repo = work / "repo"
    shutil.copytree(REPO / "tests" / "fixtures" / "template_repo", repo)
    llmops = str(bin_dir / "llmops")
    listed = json.loads(_run([llmops, "list", "--json"], cwd=repo, env=env).stdout)
    assert sorted(uc["name"] for uc in listed["use_cases"]) == ["math_coding", "web_classification"]
    sweep = _run(
        [llmops, "sweep", "web_classification", "--llm-endpoint", "sandbox", "--limit", "3", "--json"],
        cwd=repo,
        env=env,
    )
    run = json.loads(sweep.stdout)
    assert run["status"] == "completed"
    compare = _run([llmops, "compare", run["run_id"]], cwd=repo, env=env)
    assert "variant_1" in compare.stdout
    _run([llmops, "report", run["run_id"], "--format", "html", "--out", "report.html"], cwd=repo, env=env)
    assert "<html" in (repo / "report.html").read_text().lower()
    _run([llmops, "init", "--ci", "github"], cwd=repo, env=env)
    assert f"llmops-tui=={__version__}" in (repo / ".github/workflows/llmops.yml").read_text().replace(
        "$LLMOPS_TUI_VERSION", __version__
    )

    # The demo travels with the tool: copied out of the installed package, and the app opens it.
    _run([llmops, "demo", str(work / "demo")], cwd=work, env=env)
    assert (work / "demo" / "use_cases" / "support_ticket_classification" / "experiment.yaml").is_file()
    headless = (
        "import asyncio, json, sys\n"
        "from llmops_tui.tui import app as m\n"
        "seen = {}\n"
        "def run(self, *a, **k):\n"
        "    async def go():\n"
        "        async with self.run_test(size=(120, 40)) as pilot:\n"
        "            await pilot.pause()\n"
        "            seen.update(rows=[r.name for r in self.screen.rows], endpoint=self.llm_endpoint,\n"
        "                        root=str(self.workspace_root), error=self.workspace_error)\n"
        "    asyncio.run(go())\n"
        "m.LlmopsApp.run = run\n"
        "rc = m.main(['--demo'])\n"
        "print(json.dumps(seen))\n"
        "sys.exit(rc)\n"
    )
    opened = json.loads(
        _run([str(bin_dir / "python"), "-c", headless], cwd=work, env=env).stdout.splitlines()[-1]
    )
    assert opened["rows"] == ["document_qa", "named_entity_recognition", "support_ticket_classification"]
    assert opened["endpoint"] == "sandbox" and opened["error"] is None
    assert Path(opened["root"]).is_relative_to(
        tmp_path / "data"
    )  # a copy: the installed package is not written
