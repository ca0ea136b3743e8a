"""``llmops-tui``: the Textual app over the headless core.

Startup stays light: the workspace model is read from YAML/JSON (no promptflow import), screens other
than the home screen are imported when first opened, and the engine only when a sweep starts.
"""

from __future__ import annotations

import argparse
import sys
import traceback
from pathlib import Path
from typing import Any

from textual.app import App
from textual.binding import Binding
from textual.message import Message
from textual.message_pump import MessagePump
from textual.reactive import reactive
from textual.screen import Screen
from textual.worker import Worker, WorkerState

from llmops_tui import __version__
from llmops_tui.core.errors import LlmopsError
from llmops_tui.core.workspace import UseCase, Workspace, load_workspace
from llmops_tui.tui.palette import LlmopsCommands
from llmops_tui.tui.settings import AppSettings, load_settings, log_dir, save_settings

THEMES = ("textual-dark", "textual-light")


class LlmopsApp(App):
    """The app. ``workspace`` is the folder to open; ``llm_endpoint`` "sandbox" or a URL (None: the
    use case's configured connections)."""

    CSS_PATH = "app.tcss"
    TITLE = "llmops"
    COMMANDS = App.COMMANDS | {LlmopsCommands}
    BINDINGS = [
        # Shown in the footer by every screen (BaseScreen), first; this one serves modal screens.
        Binding("question_mark,f1", "help", "Help", id="help", key_display="?", show=False),
        Binding("ctrl+t", "toggle_theme", "Theme", id="toggle_theme"),
        Binding("ctrl+r", "reload", "Reload", id="reload"),
        Binding("ctrl+q", "quit", "Quit", id="quit", priority=True),
    ]

    sandbox_active: reactive[bool] = reactive(False)

    def __init__(
        self,
        workspace: Path | str = ".",
        *,
        llm_endpoint: str | None = None,
        settings: AppSettings | None = None,
        debug: bool = False,
    ) -> None:
        super().__init__()
        self.workspace_root = Path(workspace).resolve()
        if settings is None:
            settings, warning = load_settings()
        else:
            warning = None
        self.settings = settings
        self.llm_endpoint = llm_endpoint or settings.llm_endpoint
        self.debug_errors = debug
        self._settings_warning = warning
        self._workspace: Workspace | None = None
        self._workspace_error: str | None = None
        self._showing_error = False
        self.theme = settings.theme if settings.theme in self.available_themes else THEMES[0]
        self.sandbox_active = self.llm_endpoint == "sandbox"

    # ------------------------------------------------------------------------------------ workspace

    @property
    def workspace(self) -> Workspace:
        if self._workspace is None:
            self.load()
        assert self._workspace is not None
        return self._workspace

    def load(self) -> None:
        """(Re)read the workspace. An unusable folder gives an empty workspace and an error message."""
        try:
            self._workspace = load_workspace(self.workspace_root)
            self._workspace_error = None
        except LlmopsError as exc:
            self._workspace = Workspace(root=self.workspace_root, layout="none")
            self._workspace_error = str(exc)
        except Exception as exc:  # noqa: BLE001 - never crash on a strange folder
            self._workspace = Workspace(root=self.workspace_root, layout="none")
            self._workspace_error = (
                f"{self.workspace_root}: cannot read the workspace ({type(exc).__name__}: {exc})"
            )

    @property
    def workspace_error(self) -> str | None:
        return self._workspace_error

    def use_case(self, name: str) -> UseCase:
        return self.workspace.get(name)

    def store(self, *, create: bool = False):
        from llmops_tui.tui.data import open_store

        return open_store(self.workspace_root, create=create)

    # ------------------------------------------------------------------------------------- lifecycle

    def get_default_screen(self):
        from llmops_tui.tui.screens.use_cases import UseCasesScreen

        screen = UseCasesScreen()
        self.keep_alive(screen)
        return screen

    def on_mount(self) -> None:
        self.workspace  # noqa: B018 - load now so a bad folder is reported at once
        if self._settings_warning:
            self.notify(self._settings_warning, severity="warning", timeout=8)
        if self.workspace_error:
            self.show_error(self.workspace_error, title="The workspace could not be opened")

    # --------------------------------------------------------------------------------------- errors

    def show_error(self, error: BaseException | str, *, title: str = "Something went wrong") -> None:
        """One clear message in a modal; the full traceback (if any) goes to the log file, not the screen."""
        if isinstance(error, LlmopsError):
            message, detail = str(error), ""
        elif isinstance(error, BaseException):
            message = f"{type(error).__name__}: {error}"
            detail = self._log_traceback(error)
        else:
            message, detail = str(error), ""
        from llmops_tui.tui.screens.dialogs import ErrorScreen

        try:
            self.push_screen(ErrorScreen(title, message, detail))
        except Exception:  # noqa: BLE001 - last resort: a toast
            self.notify(message, title=title, severity="error", timeout=10)

    def _log_traceback(self, error: BaseException) -> str:
        try:
            folder = log_dir()
            folder.mkdir(parents=True, exist_ok=True)
            path = folder / "errors.log"
            with path.open("a", encoding="utf-8") as fh:
                fh.write("".join(traceback.format_exception(error)) + "\n")
            return f"Details were written to {path}"
        except OSError:
            return ""

    def on_worker_state_changed(self, event: Worker.StateChanged) -> None:
        """Workers of the app itself: an error becomes the error screen, never an exit."""
        if event.state == WorkerState.ERROR and event.worker.error is not None:
            self.show_error(event.worker.error, title=f"Background task '{event.worker.name}' failed")

    # Why errors are caught at dispatch: Textual reports an exception raised while a message pump (the app,
    # a screen, a widget) handles a message to ``App._handle_exception`` and then *leaves that pump's
    # message loop for good* (it expects the app to exit). Showing the error box from
    # ``_handle_exception`` alone therefore left the failing pump dead: after an action bound to a key
    # raised (actions run in the app's own loop) nothing answered keys any more, and after a screen's
    # handler raised that screen stopped handling its messages (no repaint, no worker results). So the
    # app's and every screen's message dispatch is wrapped: the error is shown and the loop goes on.

    def recover_from(self, error: Exception) -> bool:
        """Show an unexpected error in the error screen and keep the app running. False when it must
        take Textual's default path instead (``--debug``, shutting down, or the error screen itself failing)."""
        if self.debug_errors or self._showing_error or not self.is_running or not self.screen_stack:
            return False
        self._showing_error = True
        try:
            self.show_error(error, title="Unexpected error (the app is still running)")
        except Exception:  # noqa: BLE001 - fall back to the default handling
            return False
        finally:
            self._showing_error = False
        return True

    def keep_alive(self, pump: MessagePump) -> None:
        """Wrap ``pump``'s message dispatch so an error in its handlers is shown instead of ending its loop."""
        if getattr(pump, "_llmops_guarded", False):
            return
        dispatch = pump._dispatch_message

        async def guarded_dispatch(message: Message) -> None:
            try:
                await dispatch(message)
            except Exception as error:
                if not self.recover_from(error):
                    raise

        pump._dispatch_message = guarded_dispatch  # type: ignore[method-assign]
        pump._llmops_guarded = True  # type: ignore[attr-defined]

    async def _dispatch_message(self, message: Message) -> None:
        # The app's own loop: key bindings and actions (also those of screens) run here.
        try:
            await super()._dispatch_message(message)
        except Exception as error:
            if not self.recover_from(error):
                raise

    def push_screen(self, screen: Any, *args: Any, **kwargs: Any) -> Any:
        if isinstance(screen, Screen):
            self.keep_alive(screen)
        return super().push_screen(screen, *args, **kwargs)

    def switch_screen(self, screen: Any) -> Any:
        if isinstance(screen, Screen):
            self.keep_alive(screen)
        return super().switch_screen(screen)

    def _handle_exception(self, error: Exception) -> None:
        # Last resort for errors that do not pass through a guarded dispatch (timers, compose, widgets'
        # own handlers): show them rather than end the app with a traceback in the shell. The pump that
        # raised may stop (Textual ends its loop), but the app and the other screens go on. --debug keeps
        # the default behaviour for developers and tests.
        if not self.recover_from(error):
            super()._handle_exception(error)

    # --------------------------------------------------------------------------------------- actions

    def action_help(self) -> None:
        from llmops_tui.tui.screens.dialogs import HelpScreen, bindings_text

        screen = self.screen
        title = getattr(screen, "TITLE", "") or type(screen).__name__
        # The screen's own keys (ours all carry an id; Textual's focus and copy keys do not).
        own = [
            b
            for keyed in screen._bindings.key_to_bindings.values()
            for b in keyed
            if b.id and b.id != "screen_help"
        ]
        self.push_screen(HelpScreen(bindings_text(title, own, list(self.BINDINGS))))

    def action_toggle_theme(self) -> None:
        self.theme = THEMES[1] if self.theme == THEMES[0] else THEMES[0]
        self.settings.theme = self.theme
        save_settings(self.settings)

    def action_reload(self) -> None:
        self.load()
        refresh = getattr(self.screen, "refresh_data", None)
        if refresh:
            refresh()
        self.notify("workspace reloaded", timeout=2)

    # ------------------------------------------------------------------------------------ navigation

    def open_screen(self, name: str, **kwargs: Any) -> None:
        """Open a screen by name (used by screens, the palette and tests)."""
        try:
            screen = _make_screen(name, **kwargs)
        except LlmopsError as exc:
            self.show_error(exc, title="Cannot open that")
            return
        self.push_screen(screen)

    def default_use_case(self) -> str | None:
        """The use case selected on the home screen (or the first healthy one)."""
        from llmops_tui.tui.screens.use_cases import UseCasesScreen

        for screen in reversed(self.screen_stack):
            if isinstance(screen, UseCasesScreen):
                name = screen.selected_name()
                if name:
                    return name
        healthy = self.workspace.healthy
        return healthy[0].name if healthy else None


def _make_screen(name: str, **kwargs: Any) -> Screen[Any]:
    cls: type[Screen[Any]]
    if name == "flow":
        from llmops_tui.tui.screens.flow import FlowScreen as cls
    elif name == "datasets":
        from llmops_tui.tui.screens.datasets import DatasetsScreen as cls
    elif name == "connections":
        from llmops_tui.tui.screens.connections import ConnectionsScreen as cls
    elif name == "sweep":
        from llmops_tui.tui.screens.sweep_builder import SweepBuilderScreen as cls
    elif name == "monitor":
        from llmops_tui.tui.screens.run_monitor import RunMonitorScreen as cls
    elif name == "compare":
        from llmops_tui.tui.screens.compare import CompareScreen as cls
    elif name == "runs":
        from llmops_tui.tui.screens.runs import RunsScreen as cls
    elif name == "approval":
        from llmops_tui.tui.screens.approval import ApprovalScreen as cls
    elif name == "line_diff":
        from llmops_tui.tui.screens.line_diff import LineDiffScreen as cls
    elif name == "deploy":
        from llmops_tui.tui.screens.deploy import DeployScreen as cls
    elif name == "backends":
        from llmops_tui.tui.screens.backends import BackendsScreen as cls
    elif name == "ab":
        from llmops_tui.tui.screens.ab import ABScreen as cls
    else:
        raise LlmopsError(f"unknown screen '{name}'")
    return cls(**kwargs)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="llmops-tui", description="Terminal app for LLMOps on Prompt flow.")
    parser.add_argument("--workspace", "-w", default=".", help="workspace folder (default: current folder)")
    parser.add_argument(
        "--llm-endpoint",
        default=None,
        help="'sandbox' for the offline sandbox model, or an OpenAI-compatible URL (default: configured connections)",
    )
    parser.add_argument(
        "--debug", action="store_true", help="let unexpected errors end the app with a traceback"
    )
    parser.add_argument(
        "--demo",
        action="store_true",
        help="open the bundled use cases with the offline sandbox model (a copy in your user data folder)",
    )
    parser.add_argument("--version", action="version", version=f"llmops-tui {__version__}")
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.demo:
        if args.workspace != ".":
            parser.error("--demo opens its own copy of the bundled use cases: leave out --workspace")
        from llmops_tui.core.demo import demo_workspace

        try:
            args.workspace = str(demo_workspace())
        except (LlmopsError, OSError) as exc:
            print(f"--demo: {exc}", file=sys.stderr)
            return 2
        args.llm_endpoint = args.llm_endpoint or "sandbox"
    root = Path(args.workspace)
    if not root.is_dir():
        print(f"{root}: --workspace: folder not found (pass an existing folder)", file=sys.stderr)
        return 2
    app = LlmopsApp(root, llm_endpoint=args.llm_endpoint, debug=args.debug)
    app.run()
    return app.return_code or 0


if __name__ == "__main__":
    raise SystemExit(main())
