"""The pictures in docs/app.md are copies of the app's snapshot baselines, so the docs show the app as it
is. After ``pytest tests/test_tui_snapshots.py tests/test_tui_deploy.py --snapshot-update`` run
``python tests/doc_images.py`` to copy them; ``tests/test_doc_images.py`` fails while a copy is stale."""

from __future__ import annotations

import shutil
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
SNAPSHOTS = REPO / "tests" / "__snapshots__"
IMAGES = REPO / "docs" / "images"

_SCREENS = {
    "use_cases": "test_use_cases_screen",
    "flow": "test_flow_screen",
    "flow_variant_diff": "test_flow_variant_diff",
    "datasets": "test_datasets_screen",
    "connections": "test_connections_screen",
    "sweep_builder": "test_sweep_builder_screen",
    "run_monitor": "test_run_monitor_finished",
    "compare": "test_compare_screen",
    "compare_charts": "test_compare_charts",
    "line_diff": "test_line_diff_screen",
    "runs": "test_runs_screen",
    "approval": "test_approval_screen",
    "help": "test_help_screen",
    "backends": "test_backends_screen",
}

#: docs/images/<name> -> the snapshot it copies
DOC_IMAGES: dict[str, Path] = {
    **{
        f"app-{name}.svg": SNAPSHOTS / "test_tui_snapshots" / f"{test}[160x48].svg"
        for name, test in _SCREENS.items()
    },
    **{
        f"app-{name}-80x24.svg": SNAPSHOTS / "test_tui_snapshots" / f"{test}[80x24].svg"
        for name, test in _SCREENS.items()
    },
    "app-deploy.svg": SNAPSHOTS / "test_tui_deploy" / "test_deploy_screen_snapshot.svg",
}


def stale() -> list[str]:
    """The doc pictures that differ from (or lack) their snapshot."""
    return [
        name
        for name, source in DOC_IMAGES.items()
        if not (IMAGES / name).is_file() or (IMAGES / name).read_bytes() != source.read_bytes()
    ]


def main() -> None:
    IMAGES.mkdir(parents=True, exist_ok=True)
    for name in stale():
        shutil.copyfile(DOC_IMAGES[name], IMAGES / name)
        print(f"docs/images/{name} <- {DOC_IMAGES[name].relative_to(REPO)}")


if __name__ == "__main__":
    main()
