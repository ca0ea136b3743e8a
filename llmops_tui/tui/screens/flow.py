"""Flow: the DAG's nodes in order, each variant's prompt and parameters, and a diff of two variants."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from rich.console import Group, RenderableType
from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical, VerticalScroll
from textual.widgets import ContentSwitcher, DataTable, Select, Static

from llmops_tui.core.flows import Flow
from llmops_tui.tui.screens.base import BaseScreen
from llmops_tui.tui.widgets.prompt_view import params_table, prompt_syntax, side_by_side_diff

if TYPE_CHECKING:
    from llmops_tui.core.workspace import UseCase


def _read(path: Path) -> str:
    try:
        return path.read_text(encoding="utf-8")
    except OSError as exc:
        return f"(cannot read {path.name}: {exc.strerror or exc})"


class FlowScreen(BaseScreen):
    TITLE = "Flow"
    BINDINGS = [
        Binding("v", "toggle_diff", "Diff variants", id="toggle_diff"),
        Binding("n", "next_flow", "Next flow", id="next_flow"),
        Binding("s", "sweep", "Sweep", id="sweep"),
    ]
    DEFAULT_CSS = """
    FlowScreen #flow-left { width: 40%; min-width: 36; max-width: 64; }
    FlowScreen #nodes { height: 1fr; width: 100%; }
    FlowScreen #flow-info { height: auto; padding: 0 1; color: $text-muted; }
    FlowScreen #diff-pickers { height: auto; }
    FlowScreen #diff-pickers Select { width: 1fr; }
    FlowScreen ContentSwitcher { height: 1fr; }
    """

    def __init__(self, use_case: str) -> None:
        super().__init__()
        self.use_case_name = use_case
        self.uc: UseCase | None = None  # set in on_mount
        self.flows: list[Flow] = []
        self.flow_index = 0
        self.row_keys: list[tuple[str, str | None]] = []  # (node, variant) per table row

    def header_title(self) -> str:
        return f"Flow · {self.use_case_name}"

    def compose_body(self) -> ComposeResult:
        with Horizontal(classes="body"):
            with Vertical(id="flow-left"):
                yield Static(id="flow-info", markup=False)
                yield DataTable(id="nodes", cursor_type="row")
            with ContentSwitcher(initial="prompt-view"):
                with VerticalScroll(id="prompt-view"):
                    yield Static(id="prompt", markup=False)
                with Vertical(id="diff-view"):
                    with Horizontal(id="diff-pickers"):
                        yield Select([], id="diff-a", prompt="variant A", allow_blank=True)
                        yield Select([], id="diff-b", prompt="variant B", allow_blank=True)
                    with VerticalScroll():
                        yield Static(id="diff", markup=False)

    def on_mount(self) -> None:
        uc = self.llmops.use_case(self.use_case_name)
        self.uc = uc
        self.flows = [f for f in [uc.standard_flow, *(e.flow for e in uc.evaluators)] if f is not None]
        table = self.query_one("#nodes", DataTable)
        if not self.flows:
            msg = "; ".join(str(p) for p in uc.problems) or "this use case has no flow"
            self.query_one("#prompt", Static).update(Text(msg, style="red"))
            return
        self._show_flow()
        table.focus()

    # -------------------------------------------------------------------------------------- content

    def _show_flow(self) -> None:
        flow = self.flows[self.flow_index]
        role = "standard flow" if self.flow_index == 0 else "evaluation flow"
        info = f"{flow.name} ({role}, {flow.kind}) {self.flow_index + 1}/{len(self.flows)}"
        if flow.inputs:
            info += "\ninputs: " + ", ".join(flow.inputs)
        if flow.outputs:
            info += "\noutputs: " + ", ".join(flow.outputs)
        self.query_one("#flow-info", Static).update(info)
        table = self.query_one("#nodes", DataTable)
        # Columns are rebuilt per flow: a column keeps the width of its widest value, so an evaluation
        # flow's wide "kind" would otherwise push the table past its pane. The variant column only shows
        # when the flow has variants.
        table.clear(columns=True)
        table.add_column("#", key="n")
        table.add_column("node", key="node")
        table.add_column("kind", key="kind")
        with_variants = any(node.variants for node in flow.nodes)
        if with_variants:
            table.add_column("variant", key="variant")
        self.row_keys = []
        for i, node in enumerate(flow.nodes, 1):
            kind = "LLM" if node.is_llm else node.type
            if node.aggregation:
                kind += " (agg.)"
            if node.variants:
                for j, v in enumerate(node.variants):
                    label = Text(
                        v.id + (" *" if v.is_default else ""),
                        style="bold magenta" if v.is_default else "magenta",
                    )
                    table.add_row(
                        str(i) if j == 0 else "", node.name if j == 0 else "", kind if j == 0 else "", label
                    )
                    self.row_keys.append((node.name, v.id))
            else:
                table.add_row(str(i), node.name, kind, *(["-"] if with_variants else []))
                self.row_keys.append((node.name, None))
        if flow.kind == "flex":
            self.query_one("#prompt", Static).update(Text(f"flex flow: entry {flow.entry}", style="dim"))
        self._fill_diff_pickers(flow)
        if self.row_keys:
            table.move_cursor(row=0)
            self._show_row(0)

    def _fill_diff_pickers(self, flow: Flow) -> None:
        options = [
            (f"{n.name} · {v.id}", f"{n.name}\t{v.id}")
            for n in flow.nodes
            for v in n.variants
            if v.prompt_file
        ]
        a, b = self.query_one("#diff-a", Select), self.query_one("#diff-b", Select)
        a.set_options(options)
        b.set_options(options)
        if len(options) >= 2:
            a.value = options[0][1]
            b.value = options[1][1]

    def _show_row(self, index: int) -> None:
        if index >= len(self.row_keys):
            return
        flow = self.flows[self.flow_index]
        node_name, variant_id = self.row_keys[index]
        node = flow.node(node_name)
        if node is None:
            return
        if variant_id:
            variant = next(v for v in node.variants if v.id == variant_id)
            source, params, title = variant.prompt_file, variant.params, f"{node.name} · {variant.id}"
            if variant.is_default:
                title += " (default)"
        else:
            source, params, title = node.source_file, node.params, node.name
        parts: list[RenderableType] = [Text(title, style="bold")]
        details = []
        if node.connection:
            details.append(f"connection: {node.connection}")
        if node.api:
            details.append(f"api: {node.api}")
        if details:
            parts.append(Text("  ".join(details), style="dim"))
        parts.append(Text("\nparameters", style="bold"))
        parts.append(params_table(params))
        if source:
            path = flow.path / source
            parts.append(Text(f"\n{source}", style="bold"))
            parts.append(prompt_syntax(_read(path), source, dark=self.app.current_theme.dark))
        self.query_one("#prompt", Static).update(Group(*parts))

    def _show_diff(self) -> None:
        flow = self.flows[self.flow_index] if self.flows else None
        a, b = self.query_one("#diff-a", Select).value, self.query_one("#diff-b", Select).value
        target = self.query_one("#diff", Static)
        if flow is None or not isinstance(a, str) or not isinstance(b, str):
            target.update(Text("this flow has fewer than two prompt variants to compare", style="dim"))
            return
        texts = []
        for value in (a, b):
            node_name, vid = value.split("\t")
            node = flow.node(node_name)
            variant = next(v for v in node.variants if v.id == vid) if node else None
            texts.append(_read(flow.path / variant.prompt_file) if variant and variant.prompt_file else "")
        target.update(side_by_side_diff(texts[0], texts[1], a.replace("\t", " · "), b.replace("\t", " · ")))

    # --------------------------------------------------------------------------------------- events

    def on_data_table_row_highlighted(self, event: DataTable.RowHighlighted) -> None:
        self._show_row(event.cursor_row)

    def on_select_changed(self, event: Select.Changed) -> None:
        self._show_diff()

    def action_toggle_diff(self) -> None:
        switcher = self.query_one(ContentSwitcher)
        switcher.current = "diff-view" if switcher.current == "prompt-view" else "prompt-view"
        if switcher.current == "diff-view":
            self._show_diff()

    def action_next_flow(self) -> None:
        if self.flows:
            self.flow_index = (self.flow_index + 1) % len(self.flows)
            self._show_flow()

    def action_sweep(self) -> None:
        self.llmops.open_screen("sweep", use_case=self.use_case_name)
