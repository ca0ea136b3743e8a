"""Home: every use case with its lifecycle at a glance. Broken use cases are listed with their error."""

from __future__ import annotations

from rich.text import Text
from textual import events, work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.widgets import DataTable, Static

from llmops_tui.tui.data import UseCaseRow, best_cell, overview, status_text
from llmops_tui.tui.messages import DataLoaded
from llmops_tui.tui.screens.base import BaseScreen

# (key, title, the narrowest terminal that shows it): lower-priority columns drop out first on small
# terminals; the detail below the table always has everything.
COLUMNS = [
    ("name", "Use case", 0),
    ("status", "Last run", 0),
    ("best", "Best cell", 0),
    ("approvals", "Approval", 0),
    ("deployments", "Deployed", 100),
    ("last_run", "Started", 120),
    ("variants", "Variants", 140),
    ("datasets", "Datasets (rows)", 170),
    ("flows", "Flows", 200),
    ("format", "Format", 230),
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
        Binding("b", "open('backends')", "Compare backends", id="compare_backends"),
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
        self.columns = self._columns_for(self.size.width or self.app.size.width)
        for key, label in self.columns:
            table.add_column(label, key=key)
        self.refresh_data()
        table.focus()

    def on_screen_resume(self) -> None:
        super().on_screen_resume()
        # Back from a sweep, an approval or a deploy: show what changed without ctrl+r.
        if getattr(self, "_resumed_once", False):
            self.refresh_data()
        self._resumed_once = True

    @staticmethod
    def _columns_for(width: int) -> list[tuple[str, str]]:
        return [(key, label) for key, label, min_width in COLUMNS if width >= min_width]

    def on_resize(self, event: events.Resize) -> None:
        super().on_resize(event)
        columns = self._columns_for(event.size.width)
        if columns != getattr(self, "columns", None):
            self.columns = columns
            table = self.query_one(DataTable)
            table.clear(columns=True)
            for key, label in columns:
                table.add_column(label, key=key)
            self._fill()

    def refresh_data(self) -> None:
        """Read the workspace and the run store again; the best cells follow from a background worker."""
        app = self.llmops
        try:
            store = app.store()
            self.rows = overview(app.workspace, store)
        except Exception as exc:  # noqa: BLE001 - show the failure, keep the screen
            self.rows = []
            self.query_one("#detail", Static).update(f"Could not read the run store: {exc}")
            return
        self._fill()
        if not self.rows:
            msg = app.workspace_error or f"No use cases found under {app.workspace_root}."
            self.query_one("#detail", Static).update(
                msg
                + "\nA use case is a folder with experiment.yaml (or llmops_config.json), usually under use_cases/."
            )
        else:
            self._show_detail(self._cursor())
        pending = [(r.name, r.last_run_id) for r in self.rows if r.last_run_id]
        if pending:
            self.load_best_cells(pending)

    def _cursor(self) -> int:
        row = self.query_one(DataTable).cursor_row
        return row if row is not None and row < len(self.rows) else 0

    def _fill(self) -> None:
        table = self.query_one(DataTable)
        cursor = self._cursor() if table.row_count else 0
        table.clear()
        for row in self.rows:
            broken = bool(row.problems)
            values = {
                "name": Text(row.name, style="bold red" if broken else "bold"),
                "format": row.format,
                "flows": row.flows,
                "datasets": row.datasets,
                "variants": str(row.variants) if row.variants else "-",
                "last_run": row.last_run,
                "status": Text("broken", style="red") if broken else _status_text(row.last_status),
                "best": _clip(row.best_label),
                "approvals": row.approvals,
                "deployments": row.deployments,
            }
            table.add_row(*(values[key] for key, _ in self.columns), key=row.name)
        if self.rows:
            table.move_cursor(row=min(cursor, len(self.rows) - 1))

    @work(thread=True, exclusive=True, exit_on_error=False, group="home-best")
    def load_best_cells(self, runs: list[tuple[str, str]]) -> None:
        store = self.llmops.store()
        found: dict[str, tuple[str | None, str, str]] = {}
        for name, run_id in runs:
            try:
                found[name] = (
                    best_cell(store, run_id, self.llmops.workspace_root) if store else (None, "-", "-")
                )
            except Exception as exc:  # noqa: BLE001 - a broken run must not hide the use case
                found[name] = (None, "?", f"? ({type(exc).__name__}: {exc})")
        self.post_message(DataLoaded("best_cells", found))

    def on_data_loaded(self, message: DataLoaded) -> None:
        if message.key != "best_cells":
            return
        table = self.query_one(DataTable)
        for row in self.rows:
            if row.name in message.payload:
                row.best_cell_id, row.best_label, row.best_cell = message.payload[row.name]
                if any(key == "best" for key, _ in self.columns):
                    table.update_cell(row.name, "best", _clip(row.best_label), update_width=True)
        self._show_detail(self._cursor())

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
            text.append("  last run: ")
            if row.last_run_id:
                text.append(f"{row.last_run_id} {row.last_run} ")
                text.append_text(_status_text(row.last_status))
            else:
                text.append("-")
            text.append(f"   best: {row.best_cell}\n")
            text.append(f"  approvals: {row.approvals}   deployed: {row.deployments}\n")
            keys = "  f flow  d datasets  s sweep  r runs  c compare  a approve"
            more = "  k keys  b backends  D deploy"
            # two lines on a narrow terminal, so a key never wraps away from its word
            narrow = (self.size.width or self.app.size.width) < len(keys + more) + 2
            text.append(keys + ("\n" if narrow else "") + more, style="dim")
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
        row = self._require(healthy=screen in {"sweep", "deploy", "backends"})
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


def _clip(text: str, width: int = 24) -> str:
    return text if len(text) <= width else text[: width - 1] + "…"


def _status_text(status: str) -> Text:
    return Text("-", style="dim") if status == "-" else status_text(status)
