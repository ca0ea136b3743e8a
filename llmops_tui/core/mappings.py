"""Dataset and evaluator mappings: ``${data.col}``, ``${run.outputs.x}``, ``${run.inputs.y}``, ``${inputs.z}``.

One grammar for the whole tool: the workspace model validates mappings with it, the engine resolves them
per line with it.
"""

from __future__ import annotations

import re
from typing import Any

#: ``${KIND.NAME}`` where KIND is data, run.outputs, run.inputs, inputs (an alias of data) or target (an
#: alias of run.outputs: the template's form for flex flows, ``${target.output}``).
MAPPING_RE = re.compile(r"^\$\{(data|run\.outputs|run\.inputs|inputs|target)\.([^}]+)\}$")


def map_inputs(
    mappings: dict[str, str],
    row: dict[str, Any],
    outputs: dict[str, Any] | None = None,
    run_inputs: dict[str, Any] | None = None,
    flow_inputs: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """Resolve ``${data.x}`` / ``${run.outputs.y}`` / ``${run.inputs.z}`` mappings for one line.

    Flow inputs without a mapping take the same-named column, as ``pf.run`` does."""
    out: dict[str, Any] = {}
    for name in flow_inputs or {}:
        if name in row:
            out[name] = row[name]
    for key, value in mappings.items():
        match = MAPPING_RE.match(str(value).strip())
        if not match:
            out[key] = value
            continue
        kind, name = match.groups()
        if kind in {"data", "inputs"}:
            if name in row:
                out[key] = row[name]
        elif kind in {"run.outputs", "target"}:
            if outputs is not None and name in outputs:
                out[key] = outputs[name]
        elif kind == "run.inputs":
            if run_inputs is not None and name in run_inputs:
                out[key] = run_inputs[name]
    return out


def missing_columns(
    mappings: dict[str, str], row: dict[str, Any], flow_inputs: dict[str, Any] | None
) -> list[tuple[str, str]]:
    """(input, column) for each ``${data.column}`` mapping of a flow input that this row lacks.

    Mappings to inputs the flow does not have are ignored, as Prompt flow ignores them."""
    missing = []
    for key, value in mappings.items():
        match = MAPPING_RE.match(str(value).strip())
        if match and match.group(1) in {"data", "inputs"} and match.group(2) not in row:
            if flow_inputs is None or key in flow_inputs:
                missing.append((key, match.group(2)))
    return missing
