"""``experiment.yaml``, the template's use-case file, read with pydantic models.

As lenient as the LLMOps template and Prompt flow, which read the keys they know and ignore the rest:

- an unknown key is a warning naming the key the author probably meant, never a refusal;
- an empty block (``connections:`` or ``mappings:`` with nothing under it, as the template ships) is empty;
- a number or a date where text is expected (``api_version: 2024-02-01`` unquoted) is read as its text;
- one broken dataset, evaluator or connection is reported without hiding the others.

Every problem is a ``core.errors.Problem``: the file (the base file or the ``experiment.<env>.yaml`` overlay
the block came from), the field as a path (``evaluators[0].datasets[1].mappings``) and what to do.
What needs the file system (flow folders, dataset files, their columns) is checked by ``core.workspace``.
"""

from __future__ import annotations

import datetime as _dt
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Annotated, Any, TypeVar

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, PrivateAttr, ValidationError

from llmops_tui.core.errors import Problem
from llmops_tui.core.flowcheck import did_you_mean

EXPERIMENT_FILE = "experiment.yaml"


def _as_text(value: Any) -> Any:
    """YAML turns ``2024-02-01`` into a date and ``3`` into a number; the template reads them as text."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float, _dt.date)):
        return str(value)
    return value


def _none_as_empty_list(value: Any) -> Any:
    return [] if value is None else value


def _none_as_empty_dict(value: Any) -> Any:
    return {} if value is None else value


Text = Annotated[str, BeforeValidator(_as_text)]
Name = Annotated[str, BeforeValidator(_as_text), Field(min_length=1)]
# Blocks whose items are read one at a time (parse_experiment), so one bad item hides no other.
Items = Annotated[list[Any], BeforeValidator(_none_as_empty_list)]
Mappings = Annotated[dict[Text, Text], BeforeValidator(_none_as_empty_dict)]


class _Block(BaseModel):
    """A block of the file. Unknown keys are kept (``model_extra``) and reported as warnings."""

    model_config = ConfigDict(extra="allow")
    _where: str = PrivateAttr(default="")
    _file: str = PrivateAttr(default="")

    @property
    def where(self) -> str:
        """The block's place in the file, e.g. ``datasets[2]``."""
        return self._where

    @property
    def file(self) -> str:
        """The file the block was read from (experiment.yaml or an overlay)."""
        return self._file


class ConnectionSpec(_Block):
    """A connection. Keys beyond these (the template passes type-specific ones through) are kept."""

    name: Name
    connection_type: Text = "AzureOpenAIConnection"
    api_base: Text | None = None
    api_endpoint: Text | None = None  # the template's older spelling of api_base
    base_url: Text | None = None  # the OpenAI client's spelling
    api_version: Text | None = None
    api_type: Text | None = None
    api_key: Text | None = None  # a reference such as ${api_key}, never the key

    @property
    def endpoint(self) -> str | None:
        return self.api_base or self.api_endpoint or self.base_url

    @property
    def extra(self) -> dict[str, Any]:
        return dict(self.model_extra or {})


class DatasetSpec(_Block):
    """A dataset: an experiment dataset, or (with ``reference``) an evaluator's dataset."""

    name: Name
    source: Text | None = None
    path: Text | None = None  # accepted for source, as older files have it
    description: Text | None = None
    mappings: Mappings = Field(default_factory=dict)
    reference: Text | None = None

    @property
    def location(self) -> str:
        return self.source or self.path or ""


class EvaluatorSpec(_Block):
    """An evaluation flow and the datasets it evaluates (read into ``dataset_specs``)."""

    name: Name
    flow: Text | None = None
    datasets: Items = Field(default_factory=list)
    _datasets: list[DatasetSpec] = PrivateAttr(default_factory=list)

    @property
    def dataset_specs(self) -> list[DatasetSpec]:
        return self._datasets


class ExperimentSpec(_Block):
    """The top level of ``experiment.yaml`` (with an overlay's blocks already in place)."""

    name: Text | None = None
    flow: Text | None = None
    runtime: Text | None = None
    connections: Items = Field(default_factory=list)
    datasets: Items = Field(default_factory=list)
    evaluators: Items = Field(default_factory=list)


@dataclass
class Experiment:
    """What ``parse_experiment`` read: the blocks that are usable, and what was wrong with the rest."""

    spec: ExperimentSpec
    connections: list[ConnectionSpec] = field(default_factory=list)
    datasets: list[DatasetSpec] = field(default_factory=list)
    evaluators: list[EvaluatorSpec] = field(default_factory=list)
    problems: list[Problem] = field(default_factory=list)
    warnings: list[Problem] = field(default_factory=list)


# Keys people write for the ones the template reads: a did-you-mean that difflib alone would not find.
_MEANT: dict[type[_Block], dict[str, str]] = {
    ExperimentSpec: {
        "evaluation": "evaluators",
        "evaluations": "evaluators",
        "eval": "evaluators",
        "standard_flow": "flow",
        "flow_path": "flow",
        "data": "datasets",
    },
    DatasetSpec: {
        "column_mapping": "mappings",  # pf.run's name for it
        "inputs_mapping": "mappings",
        "data": "source",
        "file": "source",
        "data_path": "source",
        "references": "reference",
        "evaluates": "reference",
    },
    EvaluatorSpec: {"path": "flow", "flow_path": "flow", "data": "datasets", "dataset": "datasets"},
}

_ITEM_HINTS: dict[type[_Block], str] = {
    ConnectionSpec: "write each connection as '- name: ...' with connection_type, api_base and api_key under it",
    DatasetSpec: "write each dataset as '- name: ...' with source and mappings under it",
    EvaluatorSpec: "write each evaluator as '- name: ...' with flow and datasets under it",
}
_BLOCK_OF: dict[str, type[_Block]] = {
    "connections": ConnectionSpec,
    "datasets": DatasetSpec,
    "evaluators": EvaluatorSpec,
}

B = TypeVar("B", bound=_Block)


class _Reader:
    """Validates one block at a time and turns pydantic's errors into problems at their place."""

    def __init__(self, file_of: Callable[[str], str]):
        self.file_of = file_of
        self.problems: list[Problem] = []
        self.warnings: list[Problem] = []

    def read(self, model: type[B], raw: Any, where: str, top: str) -> B | None:
        """``raw`` as a ``model``, or None (with its problems recorded). ``top`` is the top-level block it
        is in; at the top level itself (``where`` empty) each key names its own file."""

        def file(key: str) -> str:
            return self.file_of(top if where else key)

        try:
            spec = model.model_validate(raw)
        except ValidationError as exc:
            for err in exc.errors():
                first = str(err["loc"][0]) if err["loc"] else ""
                self.problems.append(self._problem(model, file(first), where, err))
            return None
        self.check_keys(spec, where, file)
        spec._where, spec._file = where, file("")
        return spec

    def check_keys(self, spec: _Block, where: str, file: Callable[[str], str]) -> None:
        if isinstance(spec, ConnectionSpec):
            return  # type-specific keys are passed through, as the template does
        for key in spec.model_extra or {}:
            self.warnings.append(self._unknown(type(spec), file(str(key)), where, str(key)))

    def items(self, model: type[B], raw: list[Any], where: str, top: str) -> list[B]:
        out = []
        for i, item in enumerate(raw):
            spec = self.read(model, item, f"{where}[{i}]", top)
            if spec is not None:
                out.append(spec)
        return out

    @staticmethod
    def _unknown(model: type[_Block], file: str, where: str, key: str) -> Problem:
        known = [k for k in model.model_fields if not (model is DatasetSpec and k == "path")]
        meant = _MEANT.get(model, {}).get(key)
        close = f"did you mean '{meant}'?" if meant else did_you_mean(key, known)
        hint = (close + " " if close else "") + f"known keys: {', '.join(known)}"
        return Problem(file, _join(where, key), f"unknown key '{key}' (ignored)", hint)

    @staticmethod
    def _problem(model: type[_Block], file: str, where: str, err: Mapping[str, Any]) -> Problem:
        loc = [str(p) for p in err["loc"]]
        kind = err["type"]
        given = err.get("input")
        path = where
        for part in loc:
            path = f"{path}[{part}]" if part.isdigit() else _join(path, part)
        if kind == "missing":
            message = "missing"
        elif kind in ("model_type", "model_attributes_type", "dict_type"):
            message = f"must be a mapping, not {_kind(given)}"
        elif kind == "list_type":
            message = f"must be a list, not {_kind(given)}"
        elif kind == "string_type":
            message = f"must be text, not {_kind(given)}"
        elif kind == "string_too_short":
            message = "is empty"
        else:
            message = str(err["msg"])
        return Problem(file, path, message, _hint(model, loc, kind, given))


def _join(where: str, key: str) -> str:
    return f"{where}.{key}" if where else key


def _kind(value: Any) -> str:
    if isinstance(value, dict):
        return "a mapping"
    if isinstance(value, list):
        return "a list"
    if value is None:
        return "empty"
    # never the value itself: it may be a key written into the wrong place
    return "text" if isinstance(value, str) else type(value).__name__


def _hint(model: type[_Block], loc: list[str], kind: str, given: Any) -> str:
    """What to do about the common mistakes, in the file's own terms."""
    last = loc[-1] if loc else ""
    if not loc and kind in ("model_type", "model_attributes_type"):
        return _ITEM_HINTS.get(model, "write name: ..., flow: ..., datasets: ... at the top of the file")
    if last in _BLOCK_OF and kind == "list_type":
        if isinstance(given, dict):
            return f"start each item with '- ' (e.g. '- name: ...'): {_ITEM_HINTS[_BLOCK_OF[last]]}"
        return _ITEM_HINTS[_BLOCK_OF[last]]
    if loc[:1] == ["mappings"]:
        if len(loc) == 1 and isinstance(given, list):
            return "write one 'input: ${data.COLUMN}' per line under mappings, without '- '"
        if len(loc) > 1 and isinstance(given, dict):
            return "quote it as \"${data.COLUMN}\": a value in { } without '$' is read as a YAML mapping"
        return "write input: ${data.COLUMN} (or ${run.outputs.NAME}) pairs"
    if last == "name":
        what = {ConnectionSpec: "connection", DatasetSpec: "dataset", EvaluatorSpec: "evaluator"}.get(model)
        if what == "evaluator":
            return "give the evaluator a name (its flow defaults to a folder of that name under flows/)"
        return f"give the {what} a name" if what else "write the use case's name as text"
    if kind == "string_type":
        return "write a single value (quote it if it has ':' or '#')"
    return ""


def parse_experiment(data: Any, file_of: Callable[[str], str]) -> Experiment:
    """Read the content of ``experiment.yaml`` (an overlay's blocks already merged in).

    ``file_of(top_key)`` names the file a top-level block came from, for the problems' ``file``. Never
    raises: problems (the block is unusable) and warnings (ignored keys, keys in the file) are returned
    with whatever could be read."""
    reader = _Reader(file_of)
    if not isinstance(data, dict):
        spec = ExperimentSpec()
        problem = Problem(
            file_of(""),
            "",
            f"must be a mapping, not {_kind(data)}",
            "write name: ..., flow: ..., datasets: ... at the top of the file",
        )
        return Experiment(spec=spec, problems=[problem])
    top: ExperimentSpec | None = reader.read(ExperimentSpec, data, "", "")
    if top is None:
        # a top-level block is unusable (e.g. datasets: is a mapping): read the others
        bad = {p.field.split(".")[0].split("[")[0] for p in reader.problems}
        top = ExperimentSpec.model_validate({k: v for k, v in data.items() if k not in bad})
        reader.check_keys(top, "", file_of)
    exp = Experiment(spec=top)
    exp.connections = reader.items(ConnectionSpec, top.connections, "connections", "connections")
    exp.datasets = reader.items(DatasetSpec, top.datasets, "datasets", "datasets")
    exp.evaluators = reader.items(EvaluatorSpec, top.evaluators, "evaluators", "evaluators")
    for ev in exp.evaluators:
        ev._datasets = reader.items(DatasetSpec, ev.datasets, f"{ev.where}.datasets", "evaluators")
    for ds in exp.datasets + [d for ev in exp.evaluators for d in ev.dataset_specs]:
        if not ds.location:
            reader.problems.append(
                Problem(ds.file, f"{ds.where}.source", "missing", "give the path of a .jsonl file")
            )
    for conn in exp.connections:
        key = conn.api_key
        if key and not (key.startswith("${") and key.endswith("}")):
            reader.warnings.append(
                Problem(
                    conn.file,
                    f"{conn.where}.api_key",
                    "looks like a key written into the file",
                    f"write api_key: ${{api_key}} and set {key_env_var(conn.name)}; remove the key from git",
                )
            )
    exp.problems, exp.warnings = reader.problems, reader.warnings
    return exp


def key_env_var(connection: str) -> str:
    """The environment variable that holds a connection's key: ``<NAME>_API_KEY``."""
    return re.sub(r"[^A-Za-z0-9]", "_", connection).upper() + "_API_KEY"
