"""Command palette provider: the main actions by name (ctrl+p)."""

from __future__ import annotations

from collections.abc import Callable
from functools import partial
from typing import TYPE_CHECKING, cast

from textual.command import DiscoveryHit, Hit, Hits, Provider

if TYPE_CHECKING:
    from llmops_tui.tui.app import LlmopsApp

SCREEN_ACTIONS = [
    ("flow", "Flow", "DAG, variants and their prompts"),
    ("datasets", "Datasets", "schema, rows and mappings"),
    ("sweep", "Sweep builder", "plan and start a sweep"),
    ("runs", "Runs", "run history: open, resume, delete"),
    ("deploy", "Deploy", "dry-run plan, deploy, local deployments"),
    ("ab", "A/B", "live arms, comparison of the arms, promote or roll back"),
    ("backends", "Compare backends", "the same cells on Prompt flow and Agent Framework, line by line"),
]


class LlmopsCommands(Provider):
    """Open any screen for any use case, start a sweep, toggle the theme, reload the workspace."""

    def _commands(self) -> list[tuple[str, Callable[[], None], str]]:
        app = cast("LlmopsApp", self.app)
        out: list[tuple[str, Callable[[], None], str]] = []
        try:
            names = [uc.name for uc in app.workspace.use_cases]
        except Exception:  # noqa: BLE001 - the palette must open even on a broken workspace
            names = []
        for name in names:
            for screen, label, help_text in SCREEN_ACTIONS:
                out.append((f"{label}: {name}", partial(app.open_screen, screen, use_case=name), help_text))
            out.append(
                (f"Latest run in Compare: {name}", partial(_open_latest_compare, app, name), "compare cells")
            )
        out.append(
            (
                "Connections and keys",
                partial(app.open_screen, "connections"),
                "which keys are found; store a key",
            )
        )
        out.append(("Toggle light/dark theme", app.action_toggle_theme, "switch theme"))
        out.append(("Reload workspace", app.action_reload, "read the workspace files again"))
        out.append(("Help: key bindings", app.action_help, "every key of this screen"))
        return out

    async def discover(self) -> Hits:
        for text, callback, help_text in self._commands():
            yield DiscoveryHit(text, callback, help=help_text)

    async def search(self, query: str) -> Hits:
        matcher = self.matcher(query)
        for text, callback, help_text in self._commands():
            score = matcher.match(text)
            if score > 0:
                yield Hit(score, matcher.highlight(text), callback, help=help_text)


def _open_latest_compare(app: LlmopsApp, use_case: str) -> None:
    store = app.store()
    runs = store.list_runs(use_case) if store else []
    if not runs:
        app.notify(f"{use_case}: no runs yet; start one from the sweep builder", severity="warning")
        return
    app.open_screen("compare", run_id=runs[0].run_id)
