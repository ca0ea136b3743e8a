"""docs/notebooks/offline_sweep.ipynb runs top to bottom (nbclient) against the sandbox, offline."""

from __future__ import annotations

import importlib.util
import os
import shutil
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
NOTEBOOK = REPO / "docs" / "notebooks" / "offline_sweep.ipynb"

pytestmark = pytest.mark.integration


@pytest.mark.skipif(
    importlib.util.find_spec("llmops_tui.core.engine") is None, reason="the sweep engine is not there yet"
)
def test_offline_sweep_notebook_runs(tmp_path, monkeypatch):
    nbformat = pytest.importorskip("nbformat")
    nbclient = pytest.importorskip("nbclient")
    ws = tmp_path / "ws"
    shutil.copytree(
        REPO / "use_cases" / "named_entity_recognition",
        ws / "use_cases" / "named_entity_recognition",
        ignore=shutil.ignore_patterns(".llmops", ".promptflow", "__pycache__"),
    )
    monkeypatch.setenv("LLMOPS_NOTEBOOK_WORKSPACE", str(ws))
    nb = nbformat.read(NOTEBOOK, as_version=4)
    client = nbclient.NotebookClient(
        nb, timeout=240, kernel_name="python3", resources={"metadata": {"path": str(NOTEBOOK.parent)}}
    )
    client.execute(env=dict(os.environ))
    outputs = [o for cell in nb.cells if cell.cell_type == "code" for o in cell.get("outputs", [])]
    assert not [o for o in outputs if o.get("output_type") == "error"]
    text = "\n".join(str(o.get("text", "")) + str(o.get("data", {}).get("text/plain", "")) for o in outputs)
    assert "'best cell'" in text and "SweepFinished" in text, text[-3000:]
    assert (ws / ".llmops" / "store.sqlite").is_file()
