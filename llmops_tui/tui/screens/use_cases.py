"""Home: every use case with its lifecycle at a glance. Broken use cases are listed with their error."""

from __future__ import annotations

from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding
from textual.widgets import DataTable, Static

from llmops_tui.tui.data import UseCaseRow, overview
from llmops_tui.tui.screens.base import BaseScreen

COLUMNS = [
    ("name", "Use case"),
    ("format", "Format"),
    ("flows", "Flows"),
    ("datasets", "Datasets (rows)"),
    ("variants", "Variants"),
    ("last_run", "Last run"),
    ("status", "Status"),
    ("best", "Best cell"),
    ("approvals", "Approval per env"),
    ("deployments", "Deployed"),
]


class UseCasesScreen(BaseScreen):
    TITLE = "Use cases"
    BINDINGS = [
        Binding("escape", "back", "Back", id="back", show=False),
        Binding("enter", "open('flow')", "Flow", id="open_flow", show=False),
        Binding("f", "open('flow')", "Flow", id="flow"),
        Binding("d", "open('datasets')", "Datasets", id="datasets"),
        Binding("s", "open('sweep')", "Sweep", id="sweep"),
        Binding("r", "open('runs')", "Runs", id="runs"),
        Binding("c", "compare", "Compare last", id="compare_last"),
        Binding("a", "approve", "Approve", id="approval"),
        Binding("k", "connections", "Keys", id="connections"),
        # Listed by ? and in the palette (not yet in the footer).
        Binding("D", "open('deploy')", "Deploy", id="deploy"),
    ]

    def __init__(self) -> None:
        super().__init__()
        self.rows: list[UseCaseRow] = []

    def compose_body(self) -> ComposeResult:
        yield DataTable(id="use-cases", cursor_type="row", zebra_stripes=True)
        yield Static(id="detail", markup=False)

    def on_mount(self) -> None:
        table = self.query_one(DataTable)
        for key, label in COLUMNS:
            table.add_column(label, key=key)
        self.refresh_data()
        table.focus()

    def refresh_data(self) -> None:
        table = self.query_one(DataTable)
        table.clear()
        app = self.llmops
        try:
            store = app.store()
            self.rows = overview(app.workspace, store)
        except Exception as exc:  # noqa: BLE001 - show the failure, keep the screen
            self.rows = []
            self.query_one("#detail", Static).update(f"Could not read the run store: {exc}")
            return
        for row in self.rows:
            broken = bool(row.problems)
            name = Text(row.name, style="bold red" if broken else "bold")
            status = Text("broken", style="red") if broken else _status_text(row.last_status)
            table.add_row(
                name,
                row.format,
                row.flows,
                row.datasets,
                str(row.variants) if row.variants else "-",
                row.last_run,
                status,
                row.best_cell,
                row.approvals,
                row.deployments,
                key=row.name,
            )
        if not self.rows:
            msg = app.workspace_error or f"No use cases found under {app.workspace_root}."
            self.query_one("#detail", Static).update(
                msg
                + "\nA use case is a folder with experiment.yaml (or llmops_config.json), usually under use_cases/."
            )
        else:
            self._show_detail(0)

    def selected_name(self) -> str | None:
        table = self.query_one(DataTable)
        if not self.rows or table.cursor_row is None or table.cursor_row >= len(self.rows):
            return None
        return self.rows[table.cursor_row].name

    def _selected(self) -> UseCaseRow | None:
        name = self.selected_name()
        return next((r for r in self.rows if r.name == name), None)

    def on_data_table_row_highlighted(self, event: DataTable.RowHighlighted) -> None:
        self._show_detail(event.cursor_row)

    def on_data_table_row_selected(self, event: DataTable.RowSelected) -> None:
        self.action_open("flow")

    def _show_detail(self, index: int) -> None:
        if index >= len(self.rows):
            return
        row = self.rows[index]
        text = Text()
        text.append(row.name, style="bold")
        if row.problems:
            text.append(f"  {len(row.problems)} problem(s): fix these to sweep it\n", style="red")
            for p in row.problems[:8]:
                text.append(f"  x {p}\n", style="red")
        else:
            text.append(f"  flows: {row.flows}   datasets: {row.datasets}\n")
            text.append(f"  last run: {row.last_run} ({row.last_status})   best: {row.best_cell}\n")
            text.append(f"  approvals: {row.approvals}   deployed: {row.deployments}\n")
            text.append(
                "  f flow  d datasets  s sweep  r runs  c compare  a approve  k keys  D deploy", style="dim"
            )
        self.query_one("#detail", Static).update(text)

    def _require(self, healthy: bool = True) -> UseCaseRow | None:
        row = self._selected()
        if row is None:
            self.notify("no use case selected", severity="warning")
            return None
        if healthy and row.problems:
            self.notify(f"{row.name} is broken: {row.problems[0]}", severity="error", timeout=8)
            return None
        return row

    def action_open(self, screen: str) -> None:
        row = self._require(healthy=screen in {"sweep", "deploy"})
        if row:
            self.llmops.open_screen(screen, use_case=row.name)

    def action_compare(self) -> None:
        row = self._require(healthy=False)
        if row is None:
            return
        if not row.last_run_id:
            self.notify(f"{row.name}: no runs yet (press s to start a sweep)", severity="warning")
            return
        self.llmops.open_screen("compare", run_id=row.last_run_id)

    def action_approve(self) -> None:
        row = self._require(healthy=True)
        if row is None:
            return
        if not row.last_run_id:
            self.notify(f"{row.name}: nothing to approve yet (run a sweep first)", severity="warning")
            return
        self.llmops.open_screen("approval", run_id=row.last_run_id)

    def action_connections(self) -> None:
        row = self._selected()
        self.llmops.open_screen("connections", use_case=row.name if row else None)

    def action_back(self) -> None:
        pass  # home


def _status_text(status: str) -> Text:
    style = {
        "completed": "green",
        "failed": "red",
        "cancelled": "yellow",
        "interrupted": "yellow",
        "running": "cyan",
    }
    return Text(status, style=style.get(status, ""))
