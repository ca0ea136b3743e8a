"""Modal dialogs: the error screen, a yes/no confirmation, and the help screen."""

from __future__ import annotations

from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical, VerticalScroll
from textual.screen import ModalScreen
from textual.widgets import Button, Label, Static


class ErrorScreen(ModalScreen[None]):
    """A failure, in one clear paragraph. The app keeps running; escape closes it."""

    BINDINGS = [Binding("escape,enter", "dismiss", "Close", id="close_error")]
    DEFAULT_CSS = """
    ErrorScreen { align: center middle; }
    ErrorScreen > Vertical { width: 90; max-width: 95%; height: auto; max-height: 80%; border: thick $error;
        background: $surface; padding: 1 2; }
    ErrorScreen #error-title { text-style: bold; color: $error; margin-bottom: 1; }
    ErrorScreen #error-detail { color: $text-muted; margin-top: 1; }
    ErrorScreen Button { margin-top: 1; }
    """

    def __init__(self, title: str, message: str, detail: str = "") -> None:
        super().__init__()
        self.title_text = title
        self.message = message
        self.detail = detail

    def compose(self) -> ComposeResult:
        with Vertical():
            yield Label(self.title_text, id="error-title")
            yield Static(self.message, id="error-message", markup=False)
            if self.detail:
                yield Static(self.detail, id="error-detail", markup=False)
            yield Button("Close", variant="error", id="close")

    def on_button_pressed(self, event: Button.Pressed) -> None:
        event.stop()
        self.dismiss(None)

    def action_dismiss(self, result: None = None) -> None:  # type: ignore[override]
        self.dismiss(None)


class ConfirmScreen(ModalScreen[bool]):
    """Ask before doing something that cannot be undone."""

    BINDINGS = [
        Binding("y", "answer(True)", "Yes", id="confirm_yes"),
        Binding("n,escape", "answer(False)", "No", id="confirm_no"),
    ]
    DEFAULT_CSS = """
    ConfirmScreen { align: center middle; }
    ConfirmScreen > Vertical { width: 70; height: auto; border: thick $warning; background: $surface; padding: 1 2; }
    ConfirmScreen Horizontal { height: auto; margin-top: 1; }
    ConfirmScreen Button { margin-right: 2; }
    """

    def __init__(self, question: str) -> None:
        super().__init__()
        self.question = question

    def compose(self) -> ComposeResult:
        with Vertical():
            yield Static(self.question, markup=False)
            with Horizontal():
                yield Button("Yes (y)", variant="warning", id="yes")
                yield Button("No (n)", id="no")

    def on_button_pressed(self, event: Button.Pressed) -> None:
        event.stop()
        self.dismiss(event.button.id == "yes")

    def action_answer(self, value: bool) -> None:
        self.dismiss(value)


class HelpScreen(ModalScreen[None]):
    """A compact list of the keys of the screen it was opened from and the app-wide ones (fits 80x24)."""

    BINDINGS = [Binding("escape,q,question_mark,f1", "dismiss", "Close help", id="close_help")]
    DEFAULT_CSS = """
    HelpScreen { align: center middle; }
    HelpScreen > VerticalScroll { width: auto; max-width: 95%; height: auto; max-height: 90%;
        border: round $primary; background: $surface; padding: 0 1; }
    HelpScreen Static { width: auto; }
    """

    def __init__(self, keys: Text | str) -> None:
        super().__init__()
        self.keys = keys

    def compose(self) -> ComposeResult:
        with VerticalScroll():
            yield Static(self.keys)

    def action_dismiss(self, result: None = None) -> None:  # type: ignore[override]
        self.dismiss(None)


def bindings_text(title: str, bindings: list, app_bindings: list) -> Text:
    """Keys as two aligned columns, the screen's first, then the app-wide ones (as lazygit and k9s do)."""

    def rows(items: list) -> list[tuple[str, str]]:
        seen: set[str] = set()
        out = []
        for b in items:
            if not getattr(b, "description", "") or b.description in seen:
                continue
            seen.add(b.description)
            out.append((" ".join(_key_name(k) for k in b.key.split(",")), b.description))
        return out

    screen_rows, app_rows = rows(bindings), rows(app_bindings)
    width = max((len(k) for k, _ in screen_rows + app_rows), default=4) + 2
    text = Text()
    text.append(f"Keys: {title}\n", style="bold")
    for key, what in screen_rows:
        text.append(f"{key:<{width}}", style="bold cyan")
        text.append(f"{what}\n")
    text.append("Everywhere\n", style="bold")
    for key, what in app_rows + [("ctrl+p", "command palette")]:
        text.append(f"{key:<{width}}", style="bold cyan")
        text.append(f"{what}\n")
    text.append("esc closes", style="dim")
    return text


def bindings_markdown(title: str, bindings: list, app_bindings: list) -> str:
    """A Markdown table of bindings (also used to write the docs' key table)."""

    def rows(items: list) -> list[str]:
        out = []
        for b in items:
            if not getattr(b, "description", ""):
                continue
            keys = ", ".join(_key_name(k) for k in b.key.split(","))
            out.append(f"| `{keys}` | {b.description} |")
        return out

    parts = [f"# Keys: {title}", "", "| Key | Action |", "| --- | --- |", *rows(bindings)]
    parts += ["", "## Everywhere", "", "| Key | Action |", "| --- | --- |", *rows(app_bindings)]
    parts += ["", "Press `ctrl+p` for the command palette: every main action by name."]
    return "\n".join(parts)


def _key_name(key: str) -> str:
    return {"question_mark": "?", "escape": "esc", "enter": "enter", "delete": "del"}.get(
        key.strip(), key.strip()
    )
