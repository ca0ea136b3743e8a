"""The workspace model: use cases, their flows, variants, datasets, evaluators, connections, environments.

A workspace is a folder holding ``use_cases/<name>/`` or, as in repositories made from the
LLMOps-with-Prompt-flow template, use-case folders at the repository root. A use case is configured by
``experiment.yaml`` (with ``experiment.<env>.yaml`` overlays that replace whole top-level blocks) or by
the older ``llmops_config.json`` + ``configs/`` layout. Our own additions live in ``llmops.yaml``.

Loading never imports promptflow and never raises for one broken use case: problems are collected per
use case (``UseCase.problems``) so healthy use cases stay visible.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from llmops_tui.core.errors import LlmopsError, Problem
from llmops_tui.core.experiment import EXPERIMENT_FILE, DatasetSpec, key_env_var, parse_experiment
from llmops_tui.core.extras import EXTRAS_FILE, Extras, parse_extras
from llmops_tui.core.files import (
    NAME_HINT,
    ConfigError,
    inspect_data,
    load_json,
    load_yaml,
    name_problem,
    rel,
)
from llmops_tui.core.flowcheck import check_mapping_value
from llmops_tui.core.flows import Flow, add_init_sets, flow_kind, load_flow
from llmops_tui.core.mappings import mapping_ref

OLD_CONFIG_FILE = "llmops_config.json"
SKIP_DIRS = {
    ".git",
    ".llmops",
    ".venv",
    "node_modules",
    "__pycache__",
    ".github",
    ".azure-pipelines",
    "docs",
    "tests",
}


@dataclass
class Connection:
    """A connection the use case declares. ``api_key`` holds the reference (``${api_key}``), never a secret."""

    name: str
    connection_type: str
    api_base: str | None = None
    api_version: str | None = None
    api_type: str | None = None
    api_key_ref: str | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def key_env_var(self) -> str:
        """The environment variable that holds this connection's key: ``<NAME>_API_KEY``."""
        return key_env_var(self.name)

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "connection_type": self.connection_type,
            "api_base": self.api_base,
            "api_version": self.api_version,
            "api_type": self.api_type,
            "key_env_var": self.key_env_var,
        }


@dataclass
class Dataset:
    """A dataset as the use case uses it. ``role`` is ``experiment`` (runs the standard flow) or
    ``evaluation`` (feeds an evaluator; ``reference`` names the experiment dataset it evaluates)."""

    name: str
    source: str
    path: Path | None
    role: str = "experiment"
    description: str = ""
    mappings: dict[str, str] = field(default_factory=dict)
    reference: str | None = None
    evaluator: str | None = None
    rows: int | None = None
    columns: list[str] = field(default_factory=list)
    remote: bool = False
    # where it is declared, for problems: the file (relative to the workspace) and the field
    config_file: str = ""
    where: str = "datasets"

    def to_dict(self, root: Path | None = None) -> dict[str, Any]:
        return {
            "name": self.name,
            "path": rel(self.path, root) if self.path else self.source,
            "source": self.source,
            "role": self.role,
            "rows": self.rows,
            "columns": self.columns,
            "mappings": self.mappings,
            "reference": self.reference,
            "evaluator": self.evaluator,
            "description": self.description,
        }


@dataclass
class Evaluator:
    name: str
    flow: Flow | None
    flow_source: str
    datasets: list[Dataset] = field(default_factory=list)

    def datasets_for(self, experiment_dataset: str) -> list[Dataset]:
        """The evaluation datasets that evaluate runs on ``experiment_dataset``."""
        return [d for d in self.datasets if d.reference == experiment_dataset]


@dataclass
class UseCase:
    name: str
    path: Path
    format: str  # experiment_yaml | llmops_config
    config_file: Path
    env: str | None = None
    standard_flow: Flow | None = None
    flow_source: str = ""
    evaluators: list[Evaluator] = field(default_factory=list)
    datasets: list[Dataset] = field(default_factory=list)  # experiment datasets
    connections: list[Connection] = field(default_factory=list)
    environments: list[str] = field(default_factory=list)
    extras: Extras = field(default_factory=Extras)
    problems: list[Problem] = field(default_factory=list)
    # shown by list and show, but do not stop a sweep (errors under `llmops list --strict`)
    warnings: list[Problem] = field(default_factory=list)
    runtime: str | None = None
    env_settings: dict[str, Any] = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        return not self.problems

    def dataset(self, name: str) -> Dataset | None:
        return next((d for d in self.datasets if d.name == name), None)

    def connection(self, name: str) -> Connection | None:
        return next((c for c in self.connections if c.name == name), None)

    @property
    def deployment_config(self) -> Path:
        return self.path / "configs" / "deployment_config.json"

    @property
    def sample_request(self) -> Path:
        return self.path / "sample-request.json"

    @property
    def all_datasets(self) -> list[Dataset]:
        out = list(self.datasets)
        for ev in self.evaluators:
            out.extend(ev.datasets)
        return out


@dataclass
class Workspace:
    root: Path
    layout: str  # use_cases | template_root
    use_cases: list[UseCase] = field(default_factory=list)
    problems: list[Problem] = field(default_factory=list)

    def get(self, name: str) -> UseCase:
        for uc in self.use_cases:
            if uc.name == name or uc.path.name == name:
                return uc
        names = ", ".join(u.name for u in self.use_cases) or "none"
        raise LlmopsError(
            f"no use case named '{name}'", file=self.root, field="use case", hint=f"known use cases: {names}"
        )

    @property
    def healthy(self) -> list[UseCase]:
        return [u for u in self.use_cases if u.ok]


# --------------------------------------------------------------------------------------------- discovery


def is_use_case_dir(path: Path) -> bool:
    return (path / EXPERIMENT_FILE).is_file() or (path / OLD_CONFIG_FILE).is_file()


def _maybe_use_case(path: Path, *, skip: set[str] | None = None) -> bool:
    """Whether ``path`` is (or may be) a use-case folder. A folder that cannot be read counts: it is
    listed with its error rather than silently left out or allowed to stop the listing."""
    if path.name.startswith(".") or (skip is not None and path.name in skip):
        return False
    try:
        return path.is_dir() and is_use_case_dir(path)
    except OSError:
        return True


def _children(folder: Path) -> list[Path]:
    try:
        return sorted(folder.iterdir())
    except OSError as exc:
        raise LlmopsError(
            f"cannot read folder: {exc.strerror or exc}",
            file=folder,
            field="--workspace",
            hint="check the folder's permissions",
        ) from exc


def discover(root: Path) -> tuple[str, list[Path]]:
    """Find use-case folders: ``root/use_cases/*`` first, else folders at the root (template layout)."""
    uc_dir = root / "use_cases"
    try:
        has_uc_dir = uc_dir.is_dir()
        single = is_use_case_dir(root)
    except OSError as exc:
        raise LlmopsError(
            f"cannot read folder: {exc.strerror or exc}",
            file=root,
            field="--workspace",
            hint="check the folder's permissions",
        ) from exc
    if has_uc_dir:
        found = [p for p in _children(uc_dir) if not p.name.startswith("_") and _maybe_use_case(p)]
        if found:
            return "use_cases", found
    if single:
        return "single", [root]
    found = [p for p in _children(root) if _maybe_use_case(p, skip=SKIP_DIRS)]
    return "template_root", found


def load_workspace(
    root: Path | str = ".", *, env: str | None = None, inspect_datasets: bool = True
) -> Workspace:
    """Load every use case under ``root``. Never raises for a broken use case; raises LlmopsError only
    when ``root`` itself is unusable."""
    root = Path(root).resolve()
    if not root.is_dir():
        raise LlmopsError(
            "workspace folder not found", file=root, field="--workspace", hint="pass an existing folder"
        )
    layout, folders = discover(root)
    ws = Workspace(root=root, layout=layout)
    seen: dict[str, Path] = {}
    for folder in folders:
        uc = load_use_case(folder, root=root, env=env, inspect_datasets=inspect_datasets)
        if uc.name in seen:
            problem = Problem(
                rel(uc.config_file, root),
                "name",
                f"duplicate use-case name '{uc.name}' (also in {rel(seen[uc.name], root)})",
                "give each use case a unique name",
            )
            uc.problems.append(problem)
            ws.problems.append(problem)
        else:
            seen[uc.name] = folder
        ws.use_cases.append(uc)
    return ws


def _os_problem(exc: OSError, folder: Path, root: Path) -> Problem:
    where = Path(exc.filename) if exc.filename else folder
    return Problem(
        rel(where, root),
        "",
        f"cannot read: {exc.strerror or exc}",
        "check the permissions of the use-case folder and its files",
    )


def load_use_case(
    folder: Path, *, root: Path | None = None, env: str | None = None, inspect_datasets: bool = True
) -> UseCase:
    folder = Path(folder).resolve()
    root = root or folder.parent
    try:
        experiment = (folder / EXPERIMENT_FILE).is_file()
    except OSError as exc:
        # An unreadable folder is this use case's error; the others are still listed.
        uc = UseCase(
            name=folder.name,
            path=folder,
            format="unreadable",
            config_file=folder / EXPERIMENT_FILE,
            env=env,
        )
        uc.problems.append(_os_problem(exc, folder, root))
        return uc
    if experiment:
        uc = UseCase(
            name=folder.name,
            path=folder,
            format="experiment_yaml",
            config_file=folder / EXPERIMENT_FILE,
            env=env,
        )
        loader = _load_experiment_yaml
    else:
        uc = UseCase(
            name=folder.name,
            path=folder,
            format="llmops_config",
            config_file=folder / OLD_CONFIG_FILE,
            env=env,
        )
        loader = _load_old_layout
    try:
        _load_extras(uc, root)
        loader(uc, root, env)
        _dotenv_connections(uc, root)
        if uc.standard_flow is not None:
            add_init_sets(uc.standard_flow, uc.extras.init_sets, rel(uc.path / "llmops.yaml", root))
        if inspect_datasets:
            _inspect_datasets(uc, root)
        _check_mappings(uc, root)
    except ConfigError as exc:
        uc.problems.append(exc.problem)
    except OSError as exc:
        uc.problems.append(_os_problem(exc, folder, root))
    _check_names(uc, root)
    for flow in [uc.standard_flow] + [ev.flow for ev in uc.evaluators]:
        if flow:
            uc.problems.extend(flow.problems)
            uc.warnings.extend(flow.warnings)
    return uc


def _check_names(uc: UseCase, root: Path) -> None:
    """Names that become paths (the use case's name, its environments) must be safe names
    (core.files.NAME_RE). A bad use-case name is reported first and replaced by the folder's name, so
    nothing downstream ever builds a path from it; a bad environment name is reported and dropped."""
    config = rel(uc.config_file, root)
    problem = name_problem(uc.name)
    if problem:
        source = "name" if uc.name != uc.path.name else "(folder name)"
        uc.problems.insert(0, Problem(config, source, problem, NAME_HINT))
        uc.name = uc.path.name
    bad = [e for e in uc.environments if name_problem(e)]
    for env in bad:
        file, field_name = _env_source(uc, env, root)
        uc.problems.append(Problem(file, field_name, f"environment name {name_problem(env)}", NAME_HINT))
    uc.environments = [e for e in uc.environments if e not in bad]


def _env_source(uc: UseCase, env: str, root: Path) -> tuple[str, str]:
    """Where an environment name was declared: (file, field) for the error message."""
    if env in uc.extras.environments:
        return rel(uc.path / EXTRAS_FILE, root), "environments"
    if env in _deployment_envs(uc):
        return rel(uc.path / "configs" / "deployment_config.json", root), "ENV_NAME"
    if uc.format == "llmops_config":
        return rel(uc.config_file, root), "envs[].ENV_NAME"
    return rel(uc.path / f"experiment.{env}.yaml", root), "(file name)"


def _load_extras(uc: UseCase, root: Path) -> None:
    path = uc.path / EXTRAS_FILE
    if not path.is_file():
        return
    data = load_yaml(path, root)
    try:
        uc.extras = parse_extras(data)
    except ValueError as exc:
        field_name, _, message = str(exc).partition(": ")
        hint = getattr(exc, "hint", "") or "see docs/workspace.md for llmops.yaml"
        raise ConfigError(Problem(rel(path, root), field_name, message, hint)) from None


def _resolve_flow_path(uc: UseCase, source: str) -> Path:
    """The template accepts a path relative to the use case, or a bare folder name under ``flows/``."""
    candidates = [uc.path / source, uc.path / "flows" / source]
    for c in candidates:
        if flow_kind(c):
            return c
    return candidates[0]


def _flow(
    uc: UseCase, source: str, root: Path, field_name: str, config: Path, name: str | None = None
) -> Flow | None:
    path = _resolve_flow_path(uc, source)
    if not path.is_dir():
        uc.problems.append(
            Problem(
                rel(config, root),
                field_name,
                f"flow folder '{source}' not found",
                "fix the path or create the flow",
            )
        )
        return None
    try:
        return load_flow(path, root, name=name)
    except ConfigError as exc:
        uc.problems.append(exc.problem)
        return None


# ------------------------------------------------------------------------------------- experiment.yaml


def _overlay(
    uc: UseCase, root: Path, base: dict[str, Any], env: str | None
) -> tuple[dict[str, Any], dict[str, Path]]:
    """The blocks of ``experiment.yaml`` with the overlay of ``env`` in place, and the overlay file of each
    top-level key it replaced (for problems)."""
    envs = sorted(
        p.name[len("experiment.") : -len(".yaml")]
        for p in uc.path.glob("experiment.*.yaml")
        if p.name != EXPERIMENT_FILE
    )
    uc.environments = sorted(set(envs) | set(uc.extras.environments) | set(_deployment_envs(uc)))
    if not env:
        return base, {}
    if name_problem(env):
        raise ConfigError(Problem(rel(uc.config_file, root), "--env", f"{name_problem(env)}", NAME_HINT))
    path = uc.path / f"experiment.{env}.yaml"
    if not path.is_file():
        # The template uses experiment.yaml as it is when an environment has no overlay; an env name
        # nothing declares is more likely a typo, so that one is refused.
        if env in uc.environments:
            return base, {}
        raise ConfigError(
            Problem(
                rel(uc.config_file, root),
                "--env",
                f"no overlay experiment.{env}.yaml",
                f"known environments: {', '.join(uc.environments) or 'none'}",
            )
        )
    overlay = load_yaml(path, root) or {}
    if not isinstance(overlay, dict):
        raise ConfigError(Problem(rel(path, root), "", "must be a mapping of top-level blocks"))
    merged = dict(base)
    merged.update(overlay)  # whole top-level blocks are replaced
    return merged, {str(key): path for key in overlay}


def _deployment_envs(uc: UseCase) -> list[str]:
    """ENV_NAMEs declared in configs/deployment_config.json (best effort: deploy validates the file)."""
    path = uc.path / "configs" / "deployment_config.json"
    if not path.is_file():
        return []
    try:
        data = load_json(path, allow_comments=True)
    except ConfigError:
        return []
    out: list[str] = []
    if isinstance(data, dict):
        for entries in data.values():
            for entry in entries if isinstance(entries, list) else []:
                name = entry.get("ENV_NAME") if isinstance(entry, dict) else None
                if isinstance(name, str) and name and name not in out:
                    out.append(name)
    return out


def _load_experiment_yaml(uc: UseCase, root: Path, env: str | None) -> None:
    config = uc.config_file
    data = load_yaml(config, root)
    # an overlay's name: (the template's files carry one) never renames the use case
    base_name = data.get("name") if isinstance(data, dict) else None
    if not isinstance(data, dict):
        raise ConfigError(parse_experiment(data, lambda key: rel(config, root)).problems[0])
    data, origin = _overlay(uc, root, data, env)
    exp = parse_experiment(data, lambda key: rel(origin.get(key, config), root))
    uc.problems.extend(exp.problems)
    uc.warnings.extend(exp.warnings)
    spec = exp.spec
    uc.name = str(base_name) if base_name not in (None, "") else uc.path.name
    uc.runtime = spec.runtime
    uc.flow_source = spec.flow or uc.name
    uc.standard_flow = _flow(uc, uc.flow_source, root, "flow", origin.get("flow", config))
    for conn in exp.connections:
        uc.connections.append(
            Connection(
                name=conn.name,
                connection_type=conn.connection_type,
                api_base=conn.endpoint,
                api_version=conn.api_version,
                api_type=conn.api_type,
                api_key_ref=conn.api_key,
                extra=conn.extra,
            )
        )
    uc.datasets = [_dataset_from_spec(uc, d, root, "experiment") for d in exp.datasets]
    names = [d.name for d in uc.datasets]
    for ev_spec in exp.evaluators:
        source = ev_spec.flow or ev_spec.name
        ev_file = origin.get("evaluators", config)
        ev = Evaluator(
            name=ev_spec.name,
            flow=_flow(uc, source, root, f"{ev_spec.where}.flow", ev_file, name=ev_spec.name),
            flow_source=source,
        )
        for d in ev_spec.dataset_specs:
            ds = _dataset_from_spec(uc, d, root, "evaluation", evaluator=ev.name)
            if ds.reference is None:
                uc.problems.append(
                    Problem(d.file, f"{d.where}.reference", "missing", f"name one of: {', '.join(names)}")
                )
            elif ds.reference not in names:
                uc.problems.append(
                    Problem(
                        d.file,
                        f"{d.where}.reference",
                        f"'{ds.reference}' is not an experiment dataset",
                        f"use one of: {', '.join(names) or 'none'}",
                    )
                )
            ev.datasets.append(ds)
        uc.evaluators.append(ev)


def _dataset_from_spec(
    uc: UseCase, spec: DatasetSpec, root: Path, role: str, *, evaluator: str | None = None
) -> Dataset:
    source = spec.location
    remote = source.startswith("azureml:")
    return Dataset(
        name=spec.name,
        source=source,
        path=None if remote or not source else (uc.path / source),
        role=role,
        description=spec.description or "",
        mappings=dict(spec.mappings),
        reference=spec.reference,
        evaluator=evaluator,
        remote=remote,
        config_file=spec.file,
        where=spec.where,
    )


def _dataset(
    uc: UseCase, raw: Any, root: Path, config: Path, where: str, *, role: str, evaluator: str | None = None
) -> Dataset | None:
    if not isinstance(raw, dict) or not raw.get("name"):
        uc.problems.append(Problem(rel(config, root), where, "a dataset needs a name and a source"))
        return None
    source = str(raw.get("source") or raw.get("path") or "")
    mappings = raw.get("mappings") or {}
    if not isinstance(mappings, dict):
        uc.problems.append(
            Problem(rel(config, root), f"{where}.mappings", "must be a mapping of input -> ${data.col}")
        )
        mappings = {}
    remote = source.startswith("azureml:")
    ds = Dataset(
        name=str(raw["name"]),
        source=source,
        path=None if remote or not source else (uc.path / source),
        role=role,
        description=str(raw.get("description") or ""),
        mappings={str(k): str(v) for k, v in mappings.items()},
        reference=raw.get("reference"),
        evaluator=evaluator,
        remote=remote,
        config_file=rel(config, root),
        where=where,
    )
    if not source:
        uc.problems.append(
            Problem(rel(config, root), f"{where}.source", "missing", "give the path of a .jsonl file")
        )
    return ds


# --------------------------------------------------------------------------------- older layout (json)


def _load_old_layout(uc: UseCase, root: Path, env: str | None) -> None:
    config = uc.config_file
    data = load_json(config, root, allow_comments=True)
    envs = data.get("envs") if isinstance(data, dict) else None
    if not isinstance(envs, list) or not envs:
        raise ConfigError(Problem(rel(config, root), "envs", "must be a non-empty list of environments"))
    uc.environments = [str(e.get("ENV_NAME")) for e in envs if isinstance(e, dict) and e.get("ENV_NAME")]
    uc.environments += [e for e in uc.extras.environments if e not in uc.environments]
    chosen_env = env or (
        "dev" if "dev" in uc.environments else uc.environments[0] if uc.environments else None
    )
    settings = next((e for e in envs if isinstance(e, dict) and e.get("ENV_NAME") == chosen_env), None)
    if settings is None:
        raise ConfigError(
            Problem(
                rel(config, root),
                "envs[].ENV_NAME",
                f"no environment '{chosen_env}'",
                f"known: {', '.join(uc.environments)}",
            )
        )
    uc.env = chosen_env
    uc.env_settings = dict(settings)
    where = f"envs[ENV_NAME={chosen_env}]"
    uc.flow_source = str(settings.get("STANDARD_FLOW_PATH") or "")
    if not uc.flow_source:
        raise ConfigError(
            Problem(
                rel(config, root), f"{where}.STANDARD_FLOW_PATH", "missing", "set the standard flow folder"
            )
        )
    uc.standard_flow = _flow(uc, uc.flow_source, root, f"{where}.STANDARD_FLOW_PATH", config)
    eval_paths = [p.strip() for p in str(settings.get("EVALUATION_FLOW_PATH") or "").split(",") if p.strip()]

    mapping_file = uc.path / "configs" / "mapping_config.json"
    mapping = load_json(mapping_file, root, allow_comments=True) if mapping_file.is_file() else {}
    exp_mapping = mapping.get("experiment") or {}
    eval_mappings = mapping.get("evaluation") or {}

    data_file = uc.path / "configs" / "data_config.json"
    rows: list[Any] = []
    if data_file.is_file():
        dc = load_json(data_file, root, allow_comments=True)
        found = dc.get("datasets") if isinstance(dc, dict) else None
        if not isinstance(found, list):
            raise ConfigError(Problem(rel(data_file, root), "datasets", "must be a list"))
        rows = found
    else:
        uc.problems.append(
            Problem(rel(data_file, root), "", "file not found", "add configs/data_config.json")
        )
    exp_purposes = {"training_data", "pr_data"} if chosen_env == "pr" else {"training_data"}
    if chosen_env == "postprodeval":
        exp_purposes = {"post_production_eval_data"}
    test_rows = []
    for i, row in enumerate(rows):
        if not isinstance(row, dict) or row.get("ENV_NAME") != chosen_env:
            continue
        purpose = row.get("DATA_PURPOSE")
        name = str(row.get("DATASET_NAME") or f"dataset_{i}")
        raw = {"name": name, "source": row.get("DATA_PATH"), "description": row.get("DATASET_DESC", "")}
        if purpose in exp_purposes:
            raw["mappings"] = exp_mapping
            ds = _dataset(uc, raw, root, data_file, f"datasets[{i}]", role="experiment")
            if ds:
                ds.where = f"datasets[{i}].DATA_PATH"
                uc.datasets.append(ds)
        elif purpose == "test_data":
            test_rows.append((i, row, raw))
        elif purpose not in {"pr_data", "training_data", "test_data", "post_production_eval_data"}:
            uc.problems.append(
                Problem(
                    rel(data_file, root),
                    f"datasets[{i}].DATA_PURPOSE",
                    f"unknown purpose '{purpose}'",
                    "use pr_data, training_data, test_data or post_production_eval_data",
                )
            )
    exp_names = [d.name for d in uc.datasets]
    for source in eval_paths:
        folder_name = Path(source).name
        ev = Evaluator(
            name=folder_name,
            flow=_flow(uc, source, root, f"{where}.EVALUATION_FLOW_PATH", config, name=folder_name),
            flow_source=source,
        )
        for i, row, raw in test_rows:
            raw = dict(raw)
            raw["mappings"] = eval_mappings.get(folder_name) or {}
            reference = row.get("RELATED_EXP_DATASET") or (exp_names[0] if len(exp_names) == 1 else None)
            raw["reference"] = reference
            ds = _dataset(uc, raw, root, data_file, f"datasets[{i}]", role="evaluation", evaluator=ev.name)
            if ds:
                ds.where = f"datasets[{i}].DATA_PATH"
                if reference not in exp_names:
                    uc.problems.append(
                        Problem(
                            rel(data_file, root),
                            f"datasets[{i}].RELATED_EXP_DATASET",
                            f"'{reference}' is not an experiment dataset of env {chosen_env}",
                            f"use one of: {', '.join(exp_names) or 'none'}",
                        )
                    )
                ev.datasets.append(ds)
        uc.evaluators.append(ev)
    if eval_mappings:
        for key in eval_mappings:
            if key not in {Path(p).name for p in eval_paths}:
                # the template shares one mapping file across environments: not an error
                uc.warnings.append(
                    Problem(
                        rel(mapping_file, root),
                        f"evaluation.{key}",
                        f"names no evaluation flow of environment {chosen_env} (ignored)",
                    )
                )


def _dotenv_connections(uc: UseCase, root: Path) -> None:
    """Connections from ``.env`` files the template's way (``name={"api_key": ..., "api_base": ...}``),
    beside the use case, then at the workspace root, for names the config does not declare (the older
    layout declares none). Only the endpoint, type and version are kept here; the key is read when a
    run or a deployment needs it (``core.connections.find_key``)."""
    from llmops_tui.core.secrets import template_dotenv_connections

    for path in (uc.path / ".env", Path(root) / ".env"):
        for name, data in template_dotenv_connections(path).items():
            api_type = str(data.get("api_type") or "azure").lower()
            kind = "OpenAIConnection" if api_type in ("open_ai", "openai") else "AzureOpenAIConnection"
            declared = uc.connection(name)
            if declared is not None:
                # a declared connection without an endpoint takes the .env one
                declared.api_base = declared.api_base or data.get("api_base") or data.get("base_url")
                declared.api_version = declared.api_version or (
                    str(data["api_version"]) if data.get("api_version") else None
                )
                continue
            uc.connections.append(
                Connection(
                    name=name,
                    connection_type=kind,
                    api_base=data.get("api_base") or data.get("base_url"),
                    api_version=str(data["api_version"]) if data.get("api_version") else None,
                    api_type=api_type,
                    api_key_ref="${.env}",
                    extra={"source": rel(path, root)},
                )
            )


# ------------------------------------------------------------------------------------------ validation


def _inspect_datasets(uc: UseCase, root: Path) -> None:
    for ds in uc.all_datasets:
        if ds.remote or ds.path is None:
            continue
        if not ds.path.exists():
            where = ds.where
            uc.problems.append(
                Problem(
                    ds.config_file or rel(uc.config_file, root),
                    f"{where}.source" if not where.endswith("DATA_PATH") else where,
                    f"dataset file '{ds.source}' not found",
                    "fix the path or add the file",
                )
            )
            continue
        try:
            info = inspect_data(ds.path, root)
        except ConfigError as exc:
            uc.problems.append(exc.problem)
            continue
        ds.rows, ds.columns = info.rows, info.columns


def _check_mappings(uc: UseCase, root: Path) -> None:
    flow = uc.standard_flow
    outputs = set(flow.outputs) if flow else set()
    for ds in uc.all_datasets:
        config = ds.config_file or rel(uc.config_file, root)
        where = ds.where.replace(".DATA_PATH", "")
        target = (
            flow
            if ds.role == "experiment"
            else next((e.flow for e in uc.evaluators if e.name == ds.evaluator), None)
        )
        for key, value in ds.mappings.items():
            # the older layout keeps mappings apart from the datasets, in configs/mapping_config.json
            field_name = f"{where}.mappings.{key}" if uc.format == "experiment_yaml" else f"mappings.{key}"
            mapping_problem = check_mapping_value(value)
            if mapping_problem:
                uc.problems.append(Problem(config, field_name, *mapping_problem))
                continue
            ref = mapping_ref(value)
            if ref is None:
                continue  # a literal value
            kind, name = ref
            if kind == "data" and ds.columns and name not in ds.columns:
                uc.problems.append(
                    Problem(
                        config,
                        field_name,
                        f"column '{name}' is not in dataset '{ds.name}' ({', '.join(ds.columns)})",
                        "map an existing column",
                    )
                )
            if kind == "run.inputs" and flow and flow.inputs and name not in flow.inputs:
                uc.problems.append(
                    Problem(
                        config,
                        field_name,
                        f"the standard flow has no input '{name}' ({', '.join(flow.inputs)})",
                        "map an existing flow input",
                    )
                )
            if kind == "run.outputs" and flow and outputs and name not in outputs:
                uc.problems.append(
                    Problem(
                        config,
                        field_name,
                        f"the standard flow has no output '{name}' ({', '.join(sorted(outputs))})",
                        "map an existing flow output",
                    )
                )
            if target and target.inputs and key not in target.inputs:
                # Prompt flow ignores a mapping to an input the flow does not have: so do we, loudly
                uc.warnings.append(
                    Problem(
                        config,
                        field_name,
                        f"flow '{target.name}' has no input '{key}' ({', '.join(target.inputs)}); ignored",
                        "map to an existing flow input or remove it",
                    )
                )


# --------------------------------------------------------------------------------------- serialisation


def flow_to_dict(flow: Flow | None, root: Path | None, *, full: bool = False) -> dict[str, Any] | None:
    if flow is None:
        return None
    out: dict[str, Any] = {
        "name": flow.name,
        "path": rel(flow.path, root),
        "kind": flow.kind,
        "variants": flow.variants,
    }
    if full:
        out["inputs"] = flow.inputs
        out["outputs"] = {k: v.get("reference") for k, v in flow.outputs.items()}
        out["nodes"] = [
            {
                "name": n.name,
                "type": n.type,
                "source": n.source_file,
                "llm": n.is_llm,
                "aggregation": n.aggregation,
                "connection": n.connection,
                "deployment_name": n.deployment_name,
                "api": n.api,
                "params": n.params if n.is_llm else {},
                "default_variant": n.default_variant,
                "variants": [
                    {"id": v.id, "default": v.is_default, "prompt_file": v.prompt_file, "params": v.params}
                    for v in n.variants
                ],
            }
            for n in flow.nodes
        ]
        if flow.entry:
            out["entry"] = flow.entry
        if flow.kind in ("flex", "code"):
            out["init"] = {
                k: {**v, "value": flow.init_values.get(k, v.get("default"))} for k, v in flow.init.items()
            }
            out["prompty_files"] = flow.prompty_files
            out["functions"] = flow.functions
        out["chat"] = flow.is_chat
    return out


def use_case_to_dict(uc: UseCase, root: Path | None, *, full: bool = False) -> dict[str, Any]:
    """The stable machine form of a use case (``llmops list --json`` / ``llmops show --json``)."""
    flow = uc.standard_flow
    out: dict[str, Any] = {
        "name": uc.name,
        "path": rel(uc.path, root),
        "format": uc.format,
        "env": uc.env,
        "environments": uc.environments,
        "standard_flow": rel(flow.path, root) if flow else None,
        "evaluation_flows": [rel(e.flow.path, root) if e.flow else e.flow_source for e in uc.evaluators],
        "evaluators": [
            {
                "name": e.name,
                "flow": rel(e.flow.path, root) if e.flow else e.flow_source,
                "datasets": [d.to_dict(root) for d in e.datasets],
            }
            for e in uc.evaluators
        ],
        "variants": flow.variants if flow else {},
        "datasets": [d.to_dict(root) for d in uc.datasets],
        "connections": [c.to_dict() for c in uc.connections],
        "errors": [p.to_dict() for p in uc.problems],
        "warnings": [p.to_dict() for p in uc.warnings],
    }
    if full:
        out["flow"] = flow_to_dict(flow, root, full=True)
        out["evaluator_flows"] = [flow_to_dict(e.flow, root, full=True) for e in uc.evaluators]
        out["extras"] = uc.extras.model_dump(mode="json")
        out["runtime"] = uc.runtime
    return out
