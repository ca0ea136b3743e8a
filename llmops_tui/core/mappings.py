"""Dataset and evaluator mappings: ``${data.col}``, ``${run.outputs.x}``, ``${run.inputs.y}``, ``${inputs.z}``.

One grammar for the whole tool: the workspace model validates mappings with it, the engine resolves them
per line with it, traffic evaluation and the line view read them with it.
"""

from __future__ import annotations

import re
from typing import Any

#: The sources a mapping reads from. ``inputs`` is an alias of ``data`` and ``target`` of ``run.outputs``
#: (the template's form for flex flows, ``${target.output}``).
MAPPING_SOURCES = ("data", "run.outputs", "run.inputs", "inputs", "target")
_ALIASES = {"inputs": "data", "target": "run.outputs"}
#: ``${SOURCE.NAME}``: the one grammar of a mapping (see :func:`mapping_ref`).
MAPPING_RE = re.compile(r"^\$\{(" + "|".join(re.escape(k) for k in MAPPING_SOURCES) + r")\.([^}]+)\}$")


def mapping_ref(value: Any) -> tuple[str, str] | None:
    """``(source, name)`` of a mapping such as ``${data.question}``, with the aliases folded in: source is
    ``data``, ``run.outputs`` or ``run.inputs``. None for a literal value."""
    match = MAPPING_RE.match(str(value).strip())
    if match is None:
        return None
    kind, name = match.groups()
    return _ALIASES.get(kind, kind), name


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
        ref = mapping_ref(value)
        if ref is None:
            out[key] = value
            continue
        kind, name = ref
        if kind == "data":
            if name in row:
                out[key] = row[name]
        elif kind == "run.outputs":
            if outputs is not None and name in outputs:
                out[key] = outputs[name]
        elif run_inputs is not None and name in run_inputs:
            out[key] = run_inputs[name]
    return out


def missing_columns(
    mappings: dict[str, str], row: dict[str, Any], flow_inputs: dict[str, Any] | None
) -> list[tuple[str, str]]:
    """(input, column) for each ``${data.column}`` mapping of a flow input that this row lacks.

    Mappings to inputs the flow does not have are ignored, as Prompt flow ignores them."""
    missing = []
    for key, value in mappings.items():
        ref = mapping_ref(value)
        if ref is not None and ref[0] == "data" and ref[1] not in row:
            if flow_inputs is None or key in flow_inputs:
                missing.append((key, ref[1]))
    return missing
