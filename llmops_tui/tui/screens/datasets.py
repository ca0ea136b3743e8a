"""Datasets: schema, row count, first rows, and which flows and evaluators use each one, with mappings."""

from __future__ import annotations

import json

from rich.table import Table
from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical
from textual.widgets import DataTable, Static

from llmops_tui.core.files import ConfigError, read_rows
from llmops_tui.core.workspace import Dataset, UseCase
from llmops_tui.tui.screens.base import BaseScreen

PREVIEW_ROWS = 50


def _cell(value: object, width: int = 60) -> str:
    text = value if isinstance(value, str) else json.dumps(value, ensure_ascii=False, default=str)
    text = text.replace("\n", " ")
    return text if len(text) <= width else text[: width - 1] + "…"


def usage(uc: UseCase, ds: Dataset) -> Table:
    """Who reads this dataset and how its columns feed the flow inputs."""
    table = Table(box=None, pad_edge=False, header_style="bold", expand=False)
    table.add_column("used by")
    table.add_column("flow input")
    table.add_column("comes from")
    if ds.role == "experiment":
        who = f"standard flow {uc.standard_flow.name if uc.standard_flow else uc.flow_source}"
        for ev in uc.evaluators:
            for eds in ev.datasets_for(ds.name):
                table.add_row(f"evaluator {ev.name}", "", f"evaluated with {eds.name}")
    else:
        who = f"evaluator {ds.evaluator} (evaluates runs on {ds.reference})"
    if ds.mappings:
        first = True
        for key, value in ds.mappings.items():
            table.add_row(who if first else "", key, value)
            first = False
    else:
        table.add_row(who, "-", "no mappings (inputs matched by column name)")
    return table


class DatasetsScreen(BaseScreen):
    TITLE = "Datasets"
    BINDINGS = [Binding("s", "sweep", "Sweep", id="sweep")]
    DEFAULT_CSS = """
    DatasetsScreen #ds-list { width: 44; }
    DatasetsScreen #ds-info { height: auto; padding: 0 1; }
    DatasetsScreen #ds-rows { height: 1fr; }
    """

    def __init__(self, use_case: str) -> None:
        super().__init__()
        self.use_case_name = use_case
        self.datasets: list[Dataset] = []

    def header_title(self) -> str:
        return f"Datasets · {self.use_case_name}"

    def compose_body(self) -> ComposeResult:
        with Horizontal(classes="body"):
            yield DataTable(id="ds-list", cursor_type="row")
            with Vertical():
                yield Static(id="ds-info", markup=False)
                yield DataTable(id="ds-rows", zebra_stripes=True)

    def on_mount(self) -> None:
        uc = self.llmops.use_case(self.use_case_name)
        self.uc = uc
        self.datasets = list(uc.all_datasets)
        table = self.query_one("#ds-list", DataTable)
        table.add_column("dataset", key="name")
        table.add_column("role", key="role")
        table.add_column("rows", key="rows")
        for ds in self.datasets:
            table.add_row(ds.name, ds.role, "-" if ds.rows is None else str(ds.rows), key=ds.name)
        if self.datasets:
            self._show(0)
        else:
            self.query_one("#ds-info", Static).update(Text("this use case declares no datasets", style="dim"))
        table.focus()

    def on_data_table_row_highlighted(self, event: DataTable.RowHighlighted) -> None:
        if event.data_table.id == "ds-list":
            self._show(event.cursor_row)

    def _show(self, index: int) -> None:
        if index >= len(self.datasets):
            return
        ds = self.datasets[index]
        info = Table.grid(padding=(0, 1))
        info.add_column(style="bold")
        info.add_column()
        info.add_row("dataset", ds.name + (f" · {ds.description}" if ds.description else ""))
        info.add_row("source", ds.source)
        info.add_row("rows", "-" if ds.rows is None else str(ds.rows))
        info.add_row("columns", ", ".join(ds.columns) or "-")
        info.add_row("", "")
        info.add_row("usage", usage(self.uc, ds))
        self.query_one("#ds-info", Static).update(info)
        rows_table = self.query_one("#ds-rows", DataTable)
        rows_table.clear(columns=True)
        if ds.remote or ds.path is None:
            rows_table.add_column("note")
            rows_table.add_row("remote data asset: rows are not read locally")
            return
        try:
            rows = read_rows(ds.path)[:PREVIEW_ROWS]
        except ConfigError as exc:
            rows_table.add_column("problem")
            rows_table.add_row(Text(str(exc.problem), style="red"))
            return
        columns = list(ds.columns) or sorted({k for r in rows for k in r})
        rows_table.add_column("#", key="#")
        for col in columns:
            rows_table.add_column(col, key=col)
        rows_table.add_rows([[str(i), *(_cell(r.get(c, "")) for c in columns)] for i, r in enumerate(rows)])

    def action_sweep(self) -> None:
        self.llmops.open_screen("sweep", use_case=self.use_case_name)
