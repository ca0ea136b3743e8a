"""The base of every full screen: header with the sandbox badge, a body, the footer with bindings."""

from __future__ import annotations

from typing import TYPE_CHECKING, cast

from textual import events
from textual.app import ComposeResult
from textual.binding import Binding
from textual.screen import Screen
from textual.widgets import Footer

from llmops_tui.tui.widgets.header import AppHeader

#: Below this many columns a screen has the ``narrow`` class: forms stack, tables drop columns.
NARROW_WIDTH = 120

if TYPE_CHECKING:
    from textual.worker import Worker

    from llmops_tui.tui.app import LlmopsApp


class BaseScreen(Screen):
    """Subclasses implement ``compose_body``; ``TITLE`` is shown in the header."""

    TITLE = ""
    #: True when what this screen shows comes from the sandbox model (None: follow the app's endpoint).
    uses_sandbox: bool | None = None
    # Help comes first so the footer shows it even on an 80-column terminal.
    BINDINGS = [
        Binding("question_mark,f1", "app.help", "Help", id="screen_help", key_display="?"),
        Binding("escape", "back", "Back", id="back"),
    ]

    @property
    def llmops(self) -> LlmopsApp:
        return cast("LlmopsApp", self.app)

    def compose(self) -> ComposeResult:
        self.set_class(self.app.size.width < NARROW_WIDTH, "narrow")
        yield AppHeader(self.header_title())
        yield from self.compose_body()
        yield Footer()

    def on_screen_resume(self) -> None:
        self.set_class(self.app.size.width < NARROW_WIDTH, "narrow")
        self.update_sandbox_badge()

    def on_resize(self, event: events.Resize) -> None:
        self.set_class(event.size.width < NARROW_WIDTH, "narrow")

    def update_sandbox_badge(self) -> None:
        app = self.llmops
        app.sandbox_active = (
            bool(self.uses_sandbox) if self.uses_sandbox is not None else app.llm_endpoint == "sandbox"
        )

    def header_title(self) -> str:
        return self.TITLE

    def compose_body(self) -> ComposeResult:
        yield from ()

    def action_back(self) -> None:
        if len(self.app.screen_stack) > 1:
            self.app.pop_screen()

    def confirm_cancel_and_leave(self, worker: Worker | None, question: str) -> None:
        """Leaving while this screen's long work runs: ask ``question``; on yes, cancel ``worker`` and leave."""
        from llmops_tui.tui.screens.dialogs import ConfirmScreen

        def answer(yes: bool | None) -> None:
            if yes:
                if worker is not None:
                    worker.cancel()
                self.app.pop_screen()

        self.app.push_screen(ConfirmScreen(question), answer)

    def fail(self, error: BaseException | str, *, title: str = "Something went wrong") -> None:
        """Show a failure without leaving the app."""
        self.llmops.show_error(error, title=title)
