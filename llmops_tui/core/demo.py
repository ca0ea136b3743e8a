"""The bundled use cases, wherever llmops-tui is installed: the offline demo.

The use cases live once, in ``use_cases/`` of the source tree. A wheel carries them as
``llmops_tui/_demo/use_cases`` (copied by the build step in setup.py); an editable install or a checkout
on ``PYTHONPATH`` finds ``use_cases/`` beside the package. The installed copy is never written to: the
demo is opened from a copy (``llmops demo DIR``, or the user data folder for ``llmops-tui --demo``).
"""

from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path

from llmops_tui import __version__
from llmops_tui.core.errors import LlmopsError

PACKAGE_DIR = Path(__file__).resolve().parents[1]
PACKAGED_DEMO = PACKAGE_DIR / "_demo" / "use_cases"
CHECKOUT_DEMO = PACKAGE_DIR.parent / "use_cases"
DATA_DIR_ENV = "LLMOPS_TUI_DATA_DIR"
# Never copied: development helpers, caches, run stores, local secrets.
_SKIP = {"_tools", "__pycache__", ".llmops", ".promptflow", ".env"}


def bundled_use_cases() -> Path:
    """The folder holding the bundled use cases (one sub-folder each), read-only by convention."""
    if PACKAGED_DEMO.is_dir():
        return PACKAGED_DEMO
    if CHECKOUT_DEMO.is_dir() and (PACKAGE_DIR.parent / "pyproject.toml").is_file():
        return CHECKOUT_DEMO
    raise LlmopsError(
        f"the bundled use cases are not part of this installation (looked in {PACKAGED_DEMO})",
        hint="reinstall the tool from a wheel: pipx install --force llmops-tui",
    )


def demo_names() -> list[str]:
    return sorted(p.name for p in bundled_use_cases().iterdir() if p.is_dir() and p.name not in _SKIP)


def _ignore(_folder: str, names: list[str]) -> list[str]:
    return [n for n in names if n in _SKIP or n.endswith((".pyc", ".pyo"))]


def copy_demo(dest: Path, *, force: bool = False) -> list[Path]:
    """Copy the bundled use cases into ``dest/use_cases/<name>``; returns the folders written.

    An existing use case folder is left alone unless ``force`` (then it is replaced)."""
    source = bundled_use_cases()
    dest = Path(dest)
    if dest.exists() and not dest.is_dir():
        raise LlmopsError("exists and is not a folder", file=dest, hint="pass a folder path")
    target_root = dest / "use_cases"
    names = demo_names()
    existing = [n for n in names if (target_root / n).exists()]
    if existing and not force:
        raise LlmopsError(
            f"already holds {', '.join(existing)}",
            file=target_root,
            hint="pass another folder, or --force to replace them",
        )
    written = []
    for name in names:
        target = target_root / name
        if target.exists():
            shutil.rmtree(target)
        target_root.mkdir(parents=True, exist_ok=True)
        shutil.copytree(source / name, target, ignore=_ignore)
        for path in target.rglob("*"):  # a copy from a read-only install must be editable
            path.chmod(path.stat().st_mode | 0o200)
        target.chmod(target.stat().st_mode | 0o200)
        written.append(target)
    return written


def data_dir() -> Path:
    """The user data folder of llmops-tui (``$LLMOPS_TUI_DATA_DIR`` overrides it)."""
    override = os.environ.get(DATA_DIR_ENV)
    if override:
        return Path(override)
    from platformdirs import user_data_path

    return user_data_path("llmops-tui", appauthor=False)


def demo_workspace() -> Path:
    """A writable workspace holding the demo for ``llmops-tui --demo``: ``<data dir>/demo-<version>``.

    Made once per version and reused (its run history stays); made in a temporary sibling and renamed so
    a second app starting at the same time never sees half a copy."""
    folder = data_dir() / f"demo-{__version__}"
    if (folder / "use_cases").is_dir():
        return folder
    folder.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=".demo-", dir=folder.parent))
    try:
        copy_demo(staging)
        try:
            staging.rename(folder)
        except OSError:
            if not (folder / "use_cases").is_dir():  # not another process winning the race
                raise
    finally:
        if staging.exists():
            shutil.rmtree(staging, ignore_errors=True)
    return folder
