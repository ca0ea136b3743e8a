"""Runs: the history of runs per use case; open (Compare), resume (Run monitor), delete (confirmed), and
import a run exported elsewhere (``llmops runs export``), which then opens in Compare. The columns are
picked again whenever the terminal is resized."""

from __future__ import annotations

from pathlib import Path

from rich.text import Text
from textual import events
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical
from textual.screen import ModalScreen
from textual.widgets import Button, DataTable, Input, Static

from llmops_tui.core.errors import LlmopsError
from llmops_tui.tui.data import fmt_time
from llmops_tui.tui.screens.base import BaseScreen
from llmops_tui.tui.screens.use_cases import _status_text


class ImportRunScreen(ModalScreen[str | None]):
    """Ask for the path of an exported run file (``*.llmops-run.json.gz``)."""

    BINDINGS = [Binding("escape", "cancel", "Cancel", id="cancel_import")]
    DEFAULT_CSS = """
    ImportRunScreen { align: center middle; }
    ImportRunScreen > Vertical { width: 76; max-width: 98%; height: auto; border: thick $primary;
        background: $surface; padding: 1 2; }
    ImportRunScreen Horizontal { height: auto; margin-top: 1; }
    ImportRunScreen Button { margin-right: 2; }
    """

    def compose(self) -> ComposeResult:
        with Vertical():
            yield Static(
                "Import a run exported with `llmops runs export` (e.g. a CI artifact):", markup=False
            )
            yield Input(placeholder="path/to/run.llmops-run.json.gz", id="import-path")
            with Horizontal():
                yield Button("Import and open", variant="success", id="do-import")
                yield Button("Cancel", id="cancel")

    def on_mount(self) -> None:
        self.query_one("#import-path", Input).focus()

    def on_input_submitted(self, event: Input.Submitted) -> None:
        event.stop()
        self.dismiss(event.value.strip() or None)

    def on_button_pressed(self, event: Button.Pressed) -> None:
        event.stop()
        value = self.query_one("#import-path", Input).value.strip()
        self.dismiss((value or None) if event.button.id == "do-import" else None)

    def action_cancel(self) -> None:
        self.dismiss(None)


class RunsScreen(BaseScreen):
    TITLE = "Runs"
    BINDINGS = [
        Binding("enter,o", "open", "Open in Compare", id="open_run"),
        Binding("R", "resume", "Resume", id="resume_run"),
        Binding("delete,x", "delete", "Delete", id="delete_run"),
        Binding("i", "import_run", "Import", id="import_run"),
    ]

    def __init__(self, use_case: str | None = None) -> None:
        super().__init__()
        self.use_case_name = use_case
        self.runs: list = []

    def header_title(self) -> str:
        return f"Runs · {self.use_case_name or 'all use cases'}"

    def compose_body(self) -> ComposeResult:
        yield DataTable(id="runs", cursor_type="row", zebra_stripes=True)
        yield Static(id="detail", markup=False)

    def on_mount(self) -> None:
        self.refresh_data()
        self.query_one(DataTable).focus()

    def _columns(self) -> list[tuple[str, str]]:
        """The run, its status and size first; on a small terminal the rest drop out (the detail has it)."""
        narrow = (self.size.width or self.app.size.width) < 120
        cols = [("run", "Run")]
        if self.use_case_name is None:
            cols.append(("uc", "Use case"))
        cols += [("status", "Status"), ("started", "Started"), ("cells", "Cells"), ("lines", "Lines")]
        if not narrow:
            cols += [("finished", "Finished"), ("errors", "Errors"), ("endpoint", "Model")]
        return cols

    def on_resize(self, event: events.Resize) -> None:
        """Pick the columns again for the new width, keeping the selected run."""
        table = self.query_one(DataTable)
        if [str(c.key.value) for c in table.columns.values()] != [k for k, _ in self._columns()]:
            row = table.cursor_row
            self.refresh_data()
            if self.runs:
                table.move_cursor(row=min(row, len(self.runs) - 1))

    def refresh_data(self) -> None:
        table = self.query_one(DataTable)
        table.clear(columns=True)
        columns = self._columns()
        for key, label in columns:
            table.add_column(label, key=key)
        store = self.llmops.store()
        self.runs = store.list_runs(self.use_case_name) if store else []
        for run in self.runs:
            summary = run.summary or {}
            endpoint = run.config.get("llm_endpoint") or "connections"
            values = {
                "run": run.run_id,
                "uc": run.use_case,
                "status": _status_text(run.status),
                "started": fmt_time(run.started_at),
                "finished": fmt_time(run.finished_at),
                "cells": str(summary.get("cell_count", run.config.get("cell_count", "-"))),
                "lines": str(summary.get("lines_done", "-")),
                "errors": str(summary.get("errors", "-")),
                "endpoint": Text(str(endpoint), style="yellow" if endpoint == "sandbox" else ""),
            }
            table.add_row(*(values[k] for k, _ in columns), key=run.run_id)
        if not self.runs:
            self.query_one("#detail", Static).update(
                "No runs yet. Start one from the sweep builder (s on the use cases screen), "
                "or import an exported run file with i."
            )
        else:
            self._show_detail(0)

    def on_data_table_row_highlighted(self, event: DataTable.RowHighlighted) -> None:
        self._show_detail(event.cursor_row)

    def _show_detail(self, index: int) -> None:
        if index >= len(self.runs):
            return
        run = self.runs[index]
        summary = run.summary or {}
        text = Text()
        text.append(f"{run.run_id} ", style="bold")
        text.append_text(_status_text(run.status))
        if run.error:
            text.append(f": {run.error}", style="red")
        text.append(
            f"\n{run.use_case} · model {run.config.get('llm_endpoint') or 'connections'} · "
            f"finished {fmt_time(run.finished_at)} · errors {summary.get('errors', '-')}\n"
        )
        text.append(
            "enter open in Compare · R resume an interrupted, cancelled or failed run · x delete · i import",
            style="dim",
        )
        self.query_one("#detail", Static).update(text)

    def _selected(self):
        table = self.query_one(DataTable)
        if not self.runs or table.cursor_row >= len(self.runs):
            return None
        return self.runs[table.cursor_row]

    def on_data_table_row_selected(self, event: DataTable.RowSelected) -> None:
        self.action_open()

    def action_open(self) -> None:
        run = self._selected()
        if run:
            self.llmops.open_screen("compare", run_id=run.run_id)

    def action_resume(self) -> None:
        run = self._selected()
        if run is None:
            return
        if not run.resumable:
            self.notify(f"run {run.run_id} is {run.status}: nothing to resume", severity="warning")
            return
        self.llmops.open_screen("monitor", use_case=run.use_case, run_id=run.run_id)

    def action_delete(self) -> None:
        run = self._selected()
        if run is None:
            return
        if run.status == "running":
            self.notify("cannot delete a running run", severity="error")
            return
        from llmops_tui.tui.screens.dialogs import ConfirmScreen

        def answer(yes: bool | None) -> None:
            if yes:
                store = self.llmops.store()
                if store:
                    store.delete_run(run.run_id)
                self.notify(f"deleted run {run.run_id}")
                self.refresh_data()

        self.app.push_screen(ConfirmScreen(f"Delete run {run.run_id} and all its lines and metrics?"), answer)

    def action_import_run(self) -> None:
        self.app.push_screen(ImportRunScreen(), self._import)

    def _import(self, path: str | None) -> None:
        """Import the file into this workspace's store, say whether the workspace still matches what the
        run measured, and open the run in Compare."""
        if not path:
            return
        from llmops_tui.core.portable import import_run

        store = self.llmops.store(create=True)  # a fresh clone has no store yet
        if store is None:
            self.notify("cannot open this workspace's run store", severity="error")
            return
        try:
            with store:
                result = import_run(store, Path(path).expanduser())
        except (LlmopsError, OSError) as exc:
            self.notify(str(exc), severity="error", timeout=10)
            return
        warn = result.matches is False
        self.notify(result.message, severity="warning" if warn else "information", timeout=10 if warn else 5)
        self.refresh_data()
        self.llmops.open_screen("compare", run_id=result.run_id)
