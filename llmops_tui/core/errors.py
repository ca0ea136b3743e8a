"""Errors meant for people: one line naming the file, the field and what to do."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class Problem:
    """One problem found in a workspace file: where it is, what is wrong, how to fix it."""

    file: str
    field: str
    message: str
    hint: str = ""

    def __str__(self) -> str:
        where = self.file + (f": {self.field}" if self.field else "")
        text = f"{where}: {self.message}"
        if self.hint:
            text += f" ({self.hint})"
        return text

    def to_dict(self) -> dict[str, str]:
        return {"file": self.file, "field": self.field, "message": self.message, "hint": self.hint}


class LlmopsError(Exception):
    """Bad input from a person: the CLI prints it on one line and exits with code 2."""

    exit_code = 2

    def __init__(self, message: str, *, file: str | Path | None = None, field: str = "", hint: str = ""):
        self.problem = Problem(str(file) if file is not None else "", field, message, hint)
        super().__init__(str(self.problem) if file is not None else self._plain(message, field, hint))

    @staticmethod
    def _plain(message: str, field: str, hint: str) -> str:
        text = f"{field}: {message}" if field else message
        return f"{text} ({hint})" if hint else text

    @classmethod
    def from_problem(cls, problem: Problem) -> LlmopsError:
        return cls(problem.message, file=problem.file, field=problem.field, hint=problem.hint)


class RunFailed(Exception):
    """A run that could not complete (exit code 1), as opposed to bad input (exit code 2)."""

    exit_code = 1


class StorageError(RunFailed):
    """The run store (``.llmops/``) cannot be read or written: full disk, read-only folder, corrupt file.

    Not bad input (exit code 1), but still one line naming the file and what to do."""

    def __init__(self, path: Path, message: str, hint: str = ""):
        self.path = Path(path)
        self.problem = Problem(str(path), "", message, hint)
        super().__init__(str(self.problem))

    @classmethod
    def from_exception(cls, path: Path, exc: BaseException) -> StorageError:
        text = str(exc) or type(exc).__name__
        low = text.lower()
        errno = getattr(exc, "errno", None)
        folder = Path(path).parent
        if "full" in low or errno == 28:  # ENOSPC
            return cls(path, "the disk is full", f"free space under {folder}, then resume the run")
        if "readonly" in low or "read-only" in low or errno in (13, 30):  # EACCES, EROFS
            return cls(path, "the run store is read-only", f"make {folder} writable, then resume the run")
        if "malformed" in low or "not a database" in low or "corrupt" in low:
            return cls(
                path,
                f"the run store is corrupt ({text})",
                f"move it aside (mv {path} {path}.broken) and run again; the flows are not affected",
            )
        if "unable to open" in low:
            return cls(path, "cannot open the run store", f"check that {folder} exists and is writable")
        return cls(path, f"run store error: {text}", "")
