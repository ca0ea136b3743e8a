"""JUnit XML exporter: one test case per gate per cell, for CI test reporters.

Shape: ``<testsuites><testsuite name=CELL tests failures><testcase classname name><failure/></testcase>``.
A run without gates gives one suite per cell with a single skipped case, so CI shows why nothing ran.
"""

from __future__ import annotations

import xml.etree.ElementTree as ET
from pathlib import Path
from typing import Any

from llmops_tui.core.compare import Comparison


def export_junit(comparison: Comparison, out_path: Path, **_: Any) -> Path:
    """Write the gate results as JUnit XML to ``out_path``."""
    root = ET.Element("testsuites", name=f"llmops gates: {comparison.use_case}")
    total = failures = 0
    for cell in comparison.cells:
        gates = comparison.gates_for(cell.cell_id)
        suite = ET.SubElement(
            root,
            "testsuite",
            name=f"{comparison.use_case}.{cell.cell_id}",
            tests=str(max(len(gates), 1)),
            failures=str(sum(1 for g in gates if not g.passed)),
            errors="0",
            skipped="0" if gates else "1",
        )
        props = ET.SubElement(suite, "properties")
        ET.SubElement(props, "property", name="label", value=cell.label)
        ET.SubElement(props, "property", name="run_id", value=cell.run_id)
        ET.SubElement(props, "property", name="baseline", value=str(cell.is_baseline).lower())
        if not gates:
            case = ET.SubElement(
                suite, "testcase", classname=f"{comparison.use_case}.{cell.cell_id}", name="gates"
            )
            ET.SubElement(case, "skipped", message="no gates declared in llmops.yaml")
            total += 1
            continue
        for g in gates:
            total += 1
            case = ET.SubElement(
                suite, "testcase", classname=f"{comparison.use_case}.{cell.cell_id}", name=g.gate, time="0"
            )
            if not g.passed:
                failures += 1
                failure = ET.SubElement(case, "failure", message=g.reason, type="GateFailed")
                failure.text = f"{g.gate}: {g.reason}"
    root.set("tests", str(total))
    root.set("failures", str(failures))
    root.set("errors", "0")
    ET.indent(root)
    out_path = Path(out_path)
    out_path.parent.mkdir(parents=True, exist_ok=True)
    ET.ElementTree(root).write(out_path, encoding="utf-8", xml_declaration=True)
    return out_path
