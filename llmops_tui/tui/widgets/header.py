"""The app header: app name, screen title, workspace, and the "sandbox model" badge."""

from __future__ import annotations

from textual.app import ComposeResult
from textual.containers import Horizontal
from textual.widgets import Label


class AppHeader(Horizontal):
    """One line at the top. The badge shows whenever answers come from the sandbox model."""

    DEFAULT_CSS = """
    AppHeader { dock: top; height: 1; background: $panel; color: $foreground; }
    AppHeader > #app-name { padding: 0 1; background: $primary; color: $text; text-style: bold; }
    AppHeader > #screen-title { padding: 0 1; text-style: bold; width: 1fr; text-wrap: nowrap; text-overflow: ellipsis; }
    AppHeader > #workspace { padding: 0 1; color: $text-muted; }
    AppHeader > #sandbox-badge { padding: 0 1; background: $warning; color: $text; text-style: bold; display: none; }
    AppHeader.-sandbox > #sandbox-badge { display: block; }
    """

    def __init__(self, title: str = "") -> None:
        super().__init__()
        self._title = title

    def compose(self) -> ComposeResult:
        yield Label("llmops", id="app-name")
        yield Label(self._title, id="screen-title")
        yield Label(self._workspace_label(), id="workspace")
        yield Label("sandbox model", id="sandbox-badge")

    def _workspace_label(self) -> str:
        root = getattr(self.app, "workspace_root", None)
        return f"workspace: {root.name}" if root is not None else ""

    def on_mount(self) -> None:
        self.watch(self.app, "sandbox_active", self._sandbox_changed)

    def _sandbox_changed(self, active: bool) -> None:
        self.set_class(bool(active), "-sandbox")

    def set_title(self, title: str) -> None:
        self._title = title
        self.query_one("#screen-title", Label).update(title)
