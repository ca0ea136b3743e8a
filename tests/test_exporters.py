"""Every exporter over a real comparison; the HTML report is opened in a real headless Chromium."""

from __future__ import annotations

import csv
import json
import shutil
import subprocess
import sys
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "benchmarks"))

from synthetic_run import make_run, write_workspace  # noqa: E402

from llmops_tui import exporters  # noqa: E402
from llmops_tui.core.compare import build_comparison  # noqa: E402
from llmops_tui.core.linediff import line_diff  # noqa: E402
from llmops_tui.core.store import RunStore  # noqa: E402

INJECTED = "<script>alert(1)</script>"


@pytest.fixture(scope="module")
def report_data(tmp_path_factory):
    root = write_workspace(tmp_path_factory.mktemp("ws"))
    with RunStore.for_workspace(root) as store:
        cells = make_run(store, n_cells=4, n_lines=60, injected_output=INJECTED)
        comp = build_comparison(store, "run-0001", workspace_root=root)
        diffs = line_diff(store, "run-0001", cells[0], cells[1])
    return comp, diffs, (cells[0], cells[1])


def test_registry():
    assert set(exporters.EXPORTERS) == {"csv", "html", "markdown", "junit", "json"}
    assert exporters.default_name("html", "run-9") == "report-run-9.html"
    assert exporters.default_name("json", ["a", "b"]) == "report-a+b.json"
    with pytest.raises(Exception, match="unknown report format"):
        exporters.export("pdf", None, "x")


def test_json(report_data, tmp_path):
    comp, diffs, _ = report_data
    path = exporters.export("json", comp, tmp_path / "r.json", line_diffs=diffs)
    data = json.loads(path.read_text(encoding="utf-8"))
    assert data["baseline"] == comp.baseline and len(data["rows"]) == len(comp.rows)
    assert len(data["lines"]) == len(diffs) and data["gates"]


def test_csv_folder_and_suffix(report_data, tmp_path):
    comp, diffs, _ = report_data
    folder = exporters.export("csv", comp, tmp_path / "out", line_diffs=diffs)
    names = sorted(p.name for p in folder.iterdir())
    assert names == ["cells.csv", "comparison.csv", "gates.csv", "lines.csv", "long.csv"]
    with open(folder / "long.csv", encoding="utf-8") as fh:
        long_rows = list(csv.DictReader(fh))
    assert len(long_rows) == len(comp.rows) * len(comp.cells)
    f1 = [r for r in long_rows if r["key"] == "matcher.f1" and r["cell_id"] == comp.cells[1].cell_id][0]
    assert float(f1["ci_low"]) < float(f1["value"]) < float(f1["ci_high"])
    with open(folder / "comparison.csv", encoding="utf-8") as fh:
        wide = list(csv.reader(fh))
    assert wide[0][3:] == [c.cell_id for c in comp.cells]
    exporters.export("csv", comp, tmp_path / "flat" / "report.csv")
    assert (tmp_path / "flat" / "report-long.csv").is_file()


def test_markdown(report_data, tmp_path):
    comp, _, _ = report_data
    text = exporters.export("markdown", comp, tmp_path / "r.md").read_text(encoding="utf-8")
    table = [ln for ln in text.splitlines() if ln.startswith("|")]
    assert len(table) >= 3
    assert all(ln.count("|") == table[0].count("|") for ln in table)
    assert "(baseline)" in table[0] and "**" in text and "Gates:" in text


def test_junit_structure(report_data, tmp_path):
    comp, _, _ = report_data
    path = exporters.export("junit", comp, tmp_path / "r.xml")
    root = ET.parse(path).getroot()
    assert root.tag == "testsuites"
    suites = root.findall("testsuite")
    assert len(suites) == len(comp.cells)
    cases = root.findall("testsuite/testcase")
    assert len(cases) == len(comp.gates)  # one per gate per cell
    failures = root.findall("testsuite/testcase/failure")
    assert len(failures) == sum(1 for g in comp.gates if not g.passed) == int(root.get("failures"))
    assert int(root.get("tests")) == len(cases)
    for suite in suites:
        assert int(suite.get("tests")) == len(suite.findall("testcase"))
        assert int(suite.get("failures")) == len(suite.findall("testcase/failure"))
        for case in suite.findall("testcase"):
            assert case.get("classname") and case.get("name")
    for f in failures:
        assert f.get("message") and f.get("type")


def test_html_is_self_contained_and_escaped(report_data, tmp_path):
    comp, diffs, pair = report_data
    html = exporters.export("html", comp, tmp_path / "r.html", line_diffs=diffs, line_cells=pair).read_text(
        encoding="utf-8"
    )
    assert "<script" not in html.replace("&lt;script", "")  # no script element of ours or the model's
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in html
    for external in ("http://", "https://", "src=", "@import", "url("):
        assert external not in html.replace('xmlns="http://www.w3.org/2000/svg"', "")


def _chromium() -> str | None:
    return shutil.which("chromium") or shutil.which("chromium-browser")


def dump_dom(path: Path, tmp_path: Path) -> str:
    """The page's DOM after real headless Chromium loaded it (offline: no background networking)."""
    proc = subprocess.run(
        [
            str(_chromium()),
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-background-networking",
            "--disable-component-update",
            "--no-first-run",
            f"--user-data-dir={tmp_path / 'chromium'}",
            "--dump-dom",
            path.resolve().as_uri(),
        ],
        capture_output=True,
        text=True,
        timeout=90,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    return proc.stdout


@pytest.mark.browser
@pytest.mark.skipif(_chromium() is None, reason="chromium is not installed")
def test_html_renders_in_headless_chromium(report_data, tmp_path):
    comp, diffs, pair = report_data
    path = exporters.export("html", comp, tmp_path / "r.html", line_diffs=diffs, line_cells=pair)
    dom = dump_dom(path, tmp_path)
    assert '<table id="comparison">' in dom and '<table id="lines">' in dom
    assert dom.count("<svg") >= 4 and dom.count("<rect") >= len(comp.cells) * 3
    assert 'data-metric="latency_distribution"' in dom
    # The model output is text inside the page, never an element: the DOM holds it escaped, no script runs.
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in dom
    assert "<script" not in dom
