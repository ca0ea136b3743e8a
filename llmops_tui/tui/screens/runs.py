"""Runs: the history of runs per use case; open (Compare), resume (Run monitor), delete (confirmed)."""

from __future__ import annotations

from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding
from textual.widgets import DataTable, Static

from llmops_tui.tui.data import fmt_time
from llmops_tui.tui.screens.base import BaseScreen
from llmops_tui.tui.screens.use_cases import _status_text


class RunsScreen(BaseScreen):
    TITLE = "Runs"
    BINDINGS = [
        Binding("enter,o", "open", "Open in Compare", id="open_run"),
        Binding("R", "resume", "Resume", id="resume_run"),
        Binding("delete,x", "delete", "Delete", id="delete_run"),
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
                "No runs yet. Start one from the sweep builder (s on the use cases screen)."
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
            "enter open in Compare · R resume an interrupted, cancelled or failed run · x delete", style="dim"
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
