"""The plan of a deployment: every object written and every command run, in order, and the result.

A dry run builds the same plan and executes nothing, so what ``--dry-run`` prints is what a real run does.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any


@dataclass
class Step:
    """One thing a deployment does. ``action``: write | run | start | call | test | note."""

    action: str
    summary: str
    command: list[str] | None = None
    obj: Any = None
    done: bool = False
    skipped: str = ""

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"action": self.action, "summary": self.summary, "done": self.done}
        if self.command is not None:
            out["command"] = self.command
        if self.obj is not None:
            out["object"] = self.obj
        if self.skipped:
            out["skipped"] = self.skipped
        return out


@dataclass
class DeployResult:
    """What ``llmops deploy`` reports (``--json`` prints :meth:`to_dict`)."""

    target: str
    use_case: str
    env: str
    version: str
    configuration: dict[str, Any]
    dry_run: bool
    endpoint_url: str | None = None
    artifacts: list[str] = field(default_factory=list)
    steps: list[Step] = field(default_factory=list)
    test: dict[str, Any] | None = None
    deployment: dict[str, Any] | None = None
    notes: list[str] = field(default_factory=list)
    ok: bool = True

    def add(self, action: str, summary: str, **kw: Any) -> Step:
        step = Step(action, summary, **kw)
        self.steps.append(step)
        return step

    def add_artifact(self, path: Path, root: Path | None = None) -> None:
        text = str(path)
        if root is not None:
            try:
                text = Path(path).resolve().relative_to(Path(root).resolve()).as_posix()
            except ValueError:
                text = Path(path).as_posix()
        if text not in self.artifacts:
            self.artifacts.append(text)

    def to_dict(self) -> dict[str, Any]:
        return {
            "ok": self.ok,
            "target": self.target,
            "use_case": self.use_case,
            "env": self.env,
            "version": self.version,
            "endpoint_url": self.endpoint_url,
            "dry_run": self.dry_run,
            "configuration": self.configuration,
            "artifacts": self.artifacts,
            "steps": [s.to_dict() for s in self.steps],
            "test": self.test,
            "deployment": self.deployment,
            "notes": self.notes,
        }
