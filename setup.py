"""The one build step pyproject.toml cannot express: the bundled use cases travel inside the wheel.

``use_cases/`` (the offline demo) lives once in the source tree. Building a wheel copies it to
``llmops_tui/_demo/use_cases`` so an installed tool can open it (``llmops-tui --demo``, ``llmops demo``).
An editable install skips the copy: ``llmops_tui.core.demo`` finds ``use_cases/`` beside the package.
Everything else about the distribution is in pyproject.toml.
"""

from __future__ import annotations

import shutil
from pathlib import Path

from setuptools import setup
from setuptools.command.build_py import build_py

ROOT = Path(__file__).resolve().parent
DEMO_SOURCE = ROOT / "use_cases"
DEMO_TARGET = ("llmops_tui", "_demo", "use_cases")
# Development helpers, caches and run stores stay out of the demo.
SKIP_NAMES = {"_tools", "__pycache__", ".llmops", ".promptflow", ".env"}


class BuildPyWithDemo(build_py):
    def run(self) -> None:
        super().run()
        if getattr(self, "editable_mode", False):
            return
        if not DEMO_SOURCE.is_dir():
            raise SystemExit(f"{DEMO_SOURCE}: the bundled use cases are missing (an sdist must include them)")
        target = Path(self.build_lib, *DEMO_TARGET)
        if target.exists():
            shutil.rmtree(target)
        shutil.copytree(
            DEMO_SOURCE,
            target,
            ignore=lambda _dir, names: [n for n in names if n in SKIP_NAMES or n.endswith(".pyc")],
        )


setup(cmdclass={"build_py": BuildPyWithDemo})
