"""Settings / connections: which keys each use case needs, whether each is found (never shown), and
storing or replacing a key in the OS keyring."""

from __future__ import annotations

from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical
from textual.widgets import Button, DataTable, Input, Label, Static

from llmops_tui.core.errors import LlmopsError
from llmops_tui.tui.data import KeyRow, key_rows, keyring_state, keyring_store
from llmops_tui.tui.screens.base import BaseScreen


class ConnectionsScreen(BaseScreen):
    TITLE = "Connections and keys"
    BINDINGS = [
        Binding("e", "edit_key", "Store key", id="edit_key"),
        Binding("ctrl+s", "store_key", "Save key", id="store_key", show=False),
    ]
    DEFAULT_CSS = """
    ConnectionsScreen #keyring { height: auto; padding: 0 1; }
    ConnectionsScreen #key-form { height: auto; padding: 0 1; border-top: solid $primary 30%; }
    ConnectionsScreen #key-form Horizontal { height: auto; }
    ConnectionsScreen #key-form Input { width: 1fr; }
    ConnectionsScreen #key-target { padding: 1 1 0 0; }
    ConnectionsScreen #settings-info { height: auto; padding: 0 1; color: $text-muted; }
    """

    def __init__(self, use_case: str | None = None) -> None:
        super().__init__()
        self.use_case_name = use_case
        self.rows: list[tuple[str, KeyRow]] = []
        self.keyring_ok = False

    def compose_body(self) -> ComposeResult:
        with Vertical(classes="body"):
            yield Static(id="keyring", markup=False)
            yield DataTable(id="keys", cursor_type="row")
            with Vertical(id="key-form"):
                yield Label("", id="key-target")
                with Horizontal():
                    yield Input(
                        password=True,
                        placeholder="paste the key (it is never shown or written to disk)",
                        id="key-input",
                    )
                    yield Button("Store in keyring", id="store", variant="primary")
                yield Static(id="key-message", markup=False)
            yield Static(id="settings-info", markup=False)

    def on_mount(self) -> None:
        table = self.query_one("#keys", DataTable)
        for key, label in [
            ("uc", "Use case"),
            ("conn", "Connection"),
            ("type", "Type"),
            ("var", "Key variable"),
            ("found", "Key"),
            ("source", "Found in"),
            ("used", "Used by"),
        ]:
            table.add_column(label, key=key)
        self.refresh_data()
        from llmops_tui.tui.settings import config_dir

        endpoint = self.llmops.llm_endpoint or "configured connections"
        self.query_one("#settings-info", Static).update(
            f"model endpoint for sweeps: {endpoint}   settings folder: {config_dir()}   theme: {self.app.theme}"
        )
        table.focus()

    def refresh_data(self) -> None:
        ok, status = keyring_state()
        self.keyring_ok = ok
        self.query_one("#keyring", Static).update(
            Text(
                f"OS keyring: {status}"
                + ("" if ok else " — keys can still come from env variables or a .env file"),
                style="" if ok else "yellow",
            )
        )
        table = self.query_one("#keys", DataTable)
        table.clear()
        self.rows = []
        first_key_row = 0
        ws = self.llmops.workspace
        for uc in ws.use_cases:
            if self.use_case_name and uc.name != self.use_case_name:
                continue
            try:
                rows = key_rows(uc, ws.root)
            except Exception as exc:  # noqa: BLE001 - a broken use case lists its error, not a crash
                table.add_row(
                    uc.name, Text(f"cannot read connections: {exc}", style="red"), "", "", "", "", ""
                )
                continue
            if not rows:
                table.add_row(uc.name, Text("no connections needed", style="dim"), "", "", "", "", "")
            for row in rows:
                found = Text("found", style="green") if row.found else Text("missing", style="bold red")
                table.add_row(
                    uc.name, row.connection, row.connection_type, row.env_var, found, row.source, row.used_by
                )
                self.rows.append((uc.name, row))
                if len(self.rows) == 1:
                    first_key_row = table.row_count - 1
        if self.rows:
            table.move_cursor(row=first_key_row)
        self._update_target()

    def _selected(self) -> KeyRow | None:
        table = self.query_one("#keys", DataTable)
        index = table.cursor_row
        # rows without a connection (notes) are not in self.rows: map by env var column
        if index is None or index >= table.row_count:
            return None
        var = table.get_row_at(index)[3]
        return next((r for _, r in self.rows if r.env_var == var), None)

    def _update_target(self) -> None:
        row = self._selected()
        label = self.query_one("#key-target", Label)
        store = self.query_one("#store", Button)
        if not self.keyring_ok:
            label.update("no keyring available: set the key as an environment variable or in a .env file")
            store.disabled = True
            self.query_one("#key-input", Input).disabled = True
            return
        if row is None:
            label.update("select a connection to store its key")
            store.disabled = True
            return
        store.disabled = False
        verb = "Replace" if row.found and row.source == "keyring" else "Store"
        label.update(f"{verb} the key for {row.connection} (keyring entry {row.env_var})")

    def on_data_table_row_highlighted(self, event: DataTable.RowHighlighted) -> None:
        self._update_target()

    def action_edit_key(self) -> None:
        self.query_one("#key-input", Input).focus()

    def on_input_submitted(self, event: Input.Submitted) -> None:
        self.action_store_key()

    def on_button_pressed(self, event: Button.Pressed) -> None:
        if event.button.id == "store":
            self.action_store_key()

    def action_store_key(self) -> None:
        row = self._selected()
        box = self.query_one("#key-input", Input)
        message = self.query_one("#key-message", Static)
        secret = box.value.strip()
        box.value = ""  # the key leaves the widget at once
        if row is None:
            message.update(Text("select a connection first", style="yellow"))
            return
        if not secret:
            message.update(Text("type or paste a key first", style="yellow"))
            return
        try:
            keyring_store(row.env_var, secret)
        except LlmopsError as exc:
            message.update(Text(str(exc), style="red"))
            return
        except Exception as exc:  # noqa: BLE001 - keyring backends raise many things
            message.update(Text(f"no keyring available ({type(exc).__name__})", style="red"))
            return
        finally:
            del secret
        message.update(Text(f"stored the key for {row.connection} in the OS keyring", style="green"))
        self.refresh_data()
