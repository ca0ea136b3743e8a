"""Sweep planning: cells = variant combination x hyperparameter combination x dataset x repetition.

Pure logic over the workspace model (no promptflow import), shared by ``llmops sweep --dry-run``, the
app's sweep builder and the engine.
"""

from __future__ import annotations

import itertools
import math
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import yaml

from llmops_tui.core.cost import is_free_endpoint, price_tokens
from llmops_tui.core.errors import LlmopsError
from llmops_tui.core.extras import MAX_CONCURRENCY, MAX_REPEAT, MAX_RETRIES, MAX_TIMEOUT_S
from llmops_tui.core.files import load_yaml
from llmops_tui.core.flowcheck import check_grid, is_environment_problem
from llmops_tui.core.flows import model_name
from llmops_tui.core.hashing import hash_value
from llmops_tui.core.workspace import UseCase

VARIANT_MODES = ("all", "one-at-a-time", "defaults")
# A plan is a list in memory and a row per cell in the store: beyond this it is a mistake, not a sweep.
MAX_CELLS = 10_000
MAX_LINES = 5_000_000


@dataclass
class SweepOptions:
    """What a person asks for. Unset fields fall back to the use case's llmops.yaml, then defaults."""

    variants: str | list[str] | None = None
    grid: dict[str, list[Any]] | None = None
    datasets: list[str] | None = None
    repeat: int | None = None
    concurrency: int | None = None
    llm_endpoint: str | None = None  # None: configured connections; "sandbox"; or an OpenAI-compatible URL
    no_cache: bool = False
    env: str | None = None
    line_timeout_s: float | None = None
    request_timeout_s: float | None = None  # one LLM request; retried after that
    max_retries: int | None = None
    limit: int | None = None  # first N lines of each dataset (quick trials)
    sandbox_latency_ms: float = 0.0
    target: str = "local"  # local | azureml (cloud sweep, see core.cloud)
    workers: int | None = None  # processes running lines; None: the machine's cores for big sweeps
    backend: str | None = None  # DAG flows on "promptflow-dag" (default) or "agent-framework"

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> SweepOptions:
        known = {f for f in cls.__dataclass_fields__}
        return cls(**{k: v for k, v in data.items() if k in known})


def cell_label(variants: dict[str, Any], params: dict[str, Any], dataset: str, repeat: int) -> str:
    """A cell in the words of what was chosen: variants, parameter values, dataset, repetition."""
    parts = [f"{n}={v}" for n, v in variants.items()] + [f"{k}={v}" for k, v in params.items()]
    text = " ".join(parts) or "defaults"
    return f"{text} | {dataset}" + (f" | r{repeat}" if repeat else "")


@dataclass
class Cell:
    cell_id: str
    idx: int
    variants: dict[str, str]  # node -> variant id, for every node that has variants
    params: dict[str, Any]  # NODE.param -> value (grid overrides only)
    dataset: str
    repeat: int
    lines: int

    @property
    def label(self) -> str:
        return cell_label(self.variants, self.params, self.dataset, self.repeat)

    def is_default(self, defaults: dict[str, str]) -> bool:
        return self.variants == defaults and not self.params


@dataclass
class Estimate:
    cells: int
    lines: int
    llm_calls: int
    prompt_tokens: int
    completion_tokens: int
    cost: float | None
    wall_s: float
    concurrency: int
    cost_free: bool = False  # against the sandbox model: ``cost`` is 0 (core.cost)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class SweepPlan:
    use_case: str
    env: str | None
    options: SweepOptions
    cells: list[Cell]
    defaults: dict[str, str]
    concurrency: int
    repeat: int
    grid: dict[str, list[Any]] = field(default_factory=dict)
    datasets: list[str] = field(default_factory=list)

    @property
    def lines_total(self) -> int:
        return sum(c.lines for c in self.cells)

    def baseline(self) -> Cell | None:
        """The all-default cell on the first dataset (first cell if there is none)."""
        for c in self.cells:
            if c.is_default(self.defaults) and c.repeat == 0:
                return c
        return self.cells[0] if self.cells else None


def parse_grid_args(items: list[str] | None) -> dict[str, list[Any]]:
    """``NODE.param=v1,v2`` (repeatable) -> {"NODE.param": [v1, v2]} with YAML-typed values."""
    grid: dict[str, list[Any]] = {}
    for item in items or []:
        key, sep, values = item.partition("=")
        if not sep or "." not in key or not values:
            raise LlmopsError(
                f"'{item}' is not NODE.param=v1,v2",
                field="--grid",
                hint="e.g. --grid NER_LLM.temperature=0,0.7",
            )
        parsed = []
        for raw in values.split(","):
            try:
                parsed.append(yaml.safe_load(raw.strip()))
            except yaml.YAMLError:
                parsed.append(raw.strip())
        grid[key.strip()] = parsed
    return grid


def _variant_combos(
    uc: UseCase, mode: str | list[str], source: str | None, field: str
) -> list[dict[str, str]]:
    flow = uc.standard_flow
    assert flow is not None
    per_node = {n.name: n.variant_ids for n in flow.nodes if n.variants}
    defaults = {n: ids[0] for n, ids in per_node.items()}
    if isinstance(mode, str) and "." in mode:
        mode = [m.strip() for m in mode.split(",") if m.strip()]
    if mode == "defaults" or not per_node:
        return [defaults]
    if mode == "all":
        names = list(per_node)
        return [
            dict(zip(names, combo, strict=True)) for combo in itertools.product(*(per_node[n] for n in names))
        ]
    if mode == "one-at-a-time":
        combos = [defaults]
        for node, ids in per_node.items():
            for vid in ids[1:]:
                combos.append({**defaults, node: vid})
        return combos
    if isinstance(mode, list):
        chosen: dict[str, list[str]] = {}
        for item in mode:
            node, _, vid = str(item).partition(".")
            if node not in per_node:
                raise LlmopsError(
                    f"'{item}': node '{node}' has no variants",
                    file=source,
                    field=field,
                    hint=f"nodes with variants: {', '.join(per_node) or 'none'}",
                )
            if vid not in per_node[node]:
                raise LlmopsError(
                    f"'{item}': node '{node}' has no variant '{vid}'",
                    file=source,
                    field=field,
                    hint=f"variants of {node}: {', '.join(per_node[node])}",
                )
            chosen.setdefault(node, [])
            if vid not in chosen[node]:
                chosen[node].append(vid)
        names = list(per_node)
        lists = [chosen.get(n, [defaults[n]]) for n in names]
        return [dict(zip(names, combo, strict=True)) for combo in itertools.product(*lists)]
    raise LlmopsError(
        f"unknown variants mode '{mode}'",
        file=source,
        field=field,
        hint="use all, one-at-a-time, defaults or NODE.variant,...",
    )


def _check_init_key(flow: Any, key: str, from_cli: bool, uc: UseCase) -> None:
    """A flex flow's grid key is ``init.PARAM`` (or ``init.PARAM.field``) naming an init parameter."""
    head, _, rest = key.partition(".")
    param = rest.split(".")[0]
    if head != "init" or not param or (flow.init and param not in flow.init):
        raise LlmopsError(
            f"'{key}' names no init parameter of the flex flow",
            file="--grid" if from_cli else f"{uc.path.name}/llmops.yaml",
            field="" if from_cli else "sweep.grid",
            hint=f"use init.PARAM with PARAM one of: {', '.join(flow.init) or 'none (the entry takes no init)'}",
        )


def _whole(value: Any, name: str, low: int, high: int | None, what: str) -> None:
    if value is None:
        return
    ok = isinstance(value, int) and not isinstance(value, bool)
    if not ok or value < low or (high is not None and value > high):
        limit = f"between {low} and {high}" if high is not None else f"at least {low}"
        raise LlmopsError(f"{value!r} is out of range: {what} must be a whole number {limit}", field=name)


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def _seconds(value: Any, name: str, what: str, *, allow_zero: bool = False) -> None:
    if value is None:
        return
    ok = _is_number(value) and math.isfinite(value)
    low_ok = ok and (value >= 0 if allow_zero else value > 0)
    if not low_ok or value > MAX_TIMEOUT_S:
        low = "0 or more" if allow_zero else "more than 0"
        raise LlmopsError(
            f"{value!r} is out of range: {what} must be a finite number of seconds, {low} and at most "
            f"{MAX_TIMEOUT_S:g}",
            field=name,
        )


def check_options(options: SweepOptions) -> None:
    """Refuse options that cannot make a sensible sweep (the CLI, the app and the Python API all plan
    through here). Raises LlmopsError naming the option."""
    _whole(options.repeat, "--repeat", 1, MAX_REPEAT, "the number of repetitions")
    _whole(options.concurrency, "--concurrency", 1, MAX_CONCURRENCY, "the number of lines in flight")
    _whole(options.limit, "--limit", 1, None, "the number of lines per dataset")
    _whole(options.max_retries, "max_retries", 0, MAX_RETRIES, "the number of retries")
    _seconds(options.line_timeout_s, "--line-timeout", "a line's timeout")
    _seconds(options.request_timeout_s, "request_timeout_s", "a request's timeout")
    latency = options.sandbox_latency_ms
    _seconds(
        latency / 1000 if _is_number(latency) else latency,
        "sandbox_latency_ms",
        "the latency",
        allow_zero=True,
    )
    endpoint = options.llm_endpoint
    if endpoint is not None and endpoint != "sandbox":
        from urllib.parse import urlparse

        parsed = urlparse(endpoint) if isinstance(endpoint, str) else None
        if parsed is None or parsed.scheme not in {"http", "https"} or not parsed.hostname:
            raise LlmopsError(
                f"'{endpoint}' is neither 'sandbox' nor an http(s) URL",
                field="--llm-endpoint",
                hint="use --llm-endpoint sandbox, or an OpenAI-compatible base URL such as http://127.0.0.1:8000/v1",
            )
    if options.target not in {"local", "azureml"}:
        raise LlmopsError(f"unknown target '{options.target}'", field="--target", hint="use local or azureml")
    if options.backend not in (None, "promptflow-dag", "agent-framework"):
        raise LlmopsError(
            f"unknown backend '{options.backend}'",
            field="--backend",
            hint="use promptflow-dag (the default) or agent-framework",
        )
    if options.backend == "agent-framework" and options.target == "azureml":
        raise LlmopsError(
            "cloud sweeps run on Prompt flow in Azure ML",
            field="--backend",
            hint="drop --backend for --target azureml",
        )


def _check_size(n_datasets: int, n_variants: int, n_params: int, repeat: int, lines: int) -> None:
    cells = n_datasets * n_variants * n_params * repeat
    why = (
        f"{n_variants} variant combination(s) x {n_params} grid combination(s) x {n_datasets} dataset(s) "
        f"x {repeat} repetition(s)"
    )
    if cells > MAX_CELLS:
        raise LlmopsError(
            f"the plan has {cells:,} cells ({why}); at most {MAX_CELLS:,} are allowed",
            field="--repeat" if repeat > 1 else "--grid",
            hint="narrow --variants, --grid or --dataset, or lower --repeat",
        )
    if lines > MAX_LINES:
        raise LlmopsError(
            f"the plan has {lines:,} lines ({why}); at most {MAX_LINES:,} are allowed",
            field="--limit",
            hint="use --limit or fewer cells",
        )


def _init_set_params(uc: UseCase, variants: dict[str, str]) -> dict[str, Any]:
    """A flex flow's named init set (its ``init`` variant) as the ``init.X`` overrides it stands for."""
    from llmops_tui.core.flows import DEFAULT_INIT_SET, INIT_NODE, init_set_overrides

    chosen = variants.get(INIT_NODE)
    flow = uc.standard_flow
    if not chosen or chosen == DEFAULT_INIT_SET or flow is None or flow.kind != "flex":
        return {}
    return init_set_overrides(dict(uc.extras.init_sets.get(chosen) or {}))


def plan_sweep(uc: UseCase, options: SweepOptions | None = None, *, allow_remote: bool = False) -> SweepPlan:
    """Build the sweep plan for a healthy use case. Raises LlmopsError for bad options.

    ``allow_remote`` accepts Azure ML data assets (``azureml:`` sources), for cloud sweeps."""
    options = options or SweepOptions()
    check_options(options)
    # A cloud sweep runs in an environment Azure ML builds from requirements.txt: packages missing here
    # do not stop it.
    cloud = options.target == "azureml"
    problems = [p for p in uc.problems if not (cloud and is_environment_problem(p))]
    if problems:
        first = problems[0]
        more = len(problems) - 1
        hint = first.hint + (f"; {more} more problem(s): llmops show {uc.name}" if more else "")
        raise LlmopsError(first.message, file=first.file, field=first.field, hint=hint.lstrip("; "))
    flow = uc.standard_flow
    if flow is None:
        raise LlmopsError("use case has no standard flow", file=uc.config_file, field="flow")
    if flow.kind not in ("dag", "flex"):
        raise LlmopsError(
            f"a {flow.kind} folder is an evaluator, not a standard flow",
            file=uc.config_file,
            field="flow",
            hint="point flow at a folder with flow.dag.yaml or flow.flex.yaml",
        )
    spec = uc.extras.sweep
    if options.variants is None:
        source, vfield = str(Path(uc.path.name) / "llmops.yaml"), "sweep.variants"
    else:
        source, vfield = None, "--variants"
    mode = options.variants if options.variants is not None else spec.variants
    combos = _variant_combos(uc, mode, source, vfield)
    defaults = {n.name: n.variant_ids[0] for n in flow.nodes if n.variants}

    grid = options.grid if options.grid is not None else dict(spec.grid)
    for key in grid:
        node_name, _, param = key.partition(".")
        if flow.kind == "flex":
            _check_init_key(flow, key, options.grid is not None, uc)
            if not isinstance(grid[key], list) or not grid[key]:
                raise LlmopsError(f"'{key}' needs at least one value", field="--grid")
            continue
        node = flow.node(node_name)
        if node is None or not param:
            raise LlmopsError(
                f"'{key}' names no node of the flow",
                file="--grid" if options.grid is not None else f"{uc.path.name}/llmops.yaml",
                field="sweep.grid" if options.grid is None else "",
                hint=f"use NODE.param with NODE one of: {', '.join(n.name for n in flow.nodes)}",
            )
        if not isinstance(grid[key], list) or not grid[key]:
            raise LlmopsError(f"'{key}' needs at least one value", field="--grid")
        seen: list[Any] = []
        for value in grid[key]:
            if any(value == s and type(value) is type(s) for s in seen):
                raise LlmopsError(
                    f"'{key}' lists the value {value!r} twice: the cells would be identical",
                    file="--grid" if options.grid is not None else f"{uc.path.name}/llmops.yaml",
                    field="sweep.grid" if options.grid is None else "",
                    hint="list each value once",
                )
            seen.append(value)
    if grid and flow.kind == "dag":
        check_grid(
            flow.path,
            load_yaml(flow.file) or {},
            grid,
            "--grid" if options.grid is not None else f"{uc.path.name}/llmops.yaml",
            "" if options.grid is not None else "sweep.grid",
        )
    grid_keys = list(grid)
    n_param_combos = math.prod(len(grid[k]) for k in grid_keys)

    names = list(dict.fromkeys(options.datasets or spec.datasets or [d.name for d in uc.datasets]))
    from_extras = not options.datasets and bool(spec.datasets)
    datasets = []
    for name in names:
        ds = uc.dataset(name)
        if ds is None:
            env_note = f" under env {uc.env}" if uc.env else ""
            raise LlmopsError(
                f"no experiment dataset named '{name}'{env_note}",
                file=f"{uc.path.name}/llmops.yaml" if from_extras else uc.config_file.name,
                field="sweep.datasets" if from_extras else "--dataset",
                hint=f"datasets: {', '.join(d.name for d in uc.datasets) or 'none'}",
            )
        if ds.remote and not allow_remote:
            raise LlmopsError(
                f"dataset '{name}' is an Azure ML data asset ({ds.source})",
                file=uc.config_file.name,
                field="datasets.source",
                hint="run it with --target azureml or use a local file",
            )
        datasets.append(ds)
    if not datasets:
        raise LlmopsError(
            "the use case has no experiment dataset", file=uc.config_file.name, field="datasets"
        )
    repeat = options.repeat or spec.repeat
    if repeat < 1:
        raise LlmopsError("must be at least 1", field="--repeat")
    concurrency = options.concurrency or spec.concurrency
    if concurrency < 1:
        raise LlmopsError("must be at least 1", field="--concurrency")
    lines_per_combo = sum(
        min(d.rows or 0, options.limit) if options.limit else (d.rows or 0) for d in datasets
    )
    _check_size(
        len(datasets),
        len(combos),
        n_param_combos,
        repeat,
        lines_per_combo * len(combos) * n_param_combos * repeat,
    )
    param_combos = [
        dict(zip(grid_keys, combo, strict=True)) for combo in itertools.product(*(grid[k] for k in grid_keys))
    ]

    cells: list[Cell] = []
    for ds in datasets:
        rows = ds.rows or 0
        if options.limit:
            rows = min(rows, options.limit)
        for variants in combos:
            for grid_params in param_combos:
                params = {**_init_set_params(uc, variants), **grid_params}
                for r in range(repeat):
                    cid = "c" + hash_value({"v": variants, "p": params, "d": ds.name, "r": r})[:7]
                    cells.append(Cell(cid, len(cells), dict(variants), dict(params), ds.name, r, rows))
    return SweepPlan(
        use_case=uc.name,
        env=options.env or uc.env,
        options=options,
        cells=cells,
        defaults=defaults,
        concurrency=concurrency,
        repeat=repeat,
        grid=grid,
        datasets=[d.name for d in datasets],
    )


def estimate(uc: UseCase, plan: SweepPlan, *, latency_s: float = 1.0) -> Estimate:
    """Rough cost and time: LLM calls per line = LLM nodes of the flow; tokens from template and input sizes."""
    flow = uc.standard_flow
    assert flow is not None
    llm_nodes = [n for n in flow.nodes if n.is_llm]
    calls = 0
    ptoks = ctoks = 0
    cost = 0.0
    priced = True
    sandbox = is_free_endpoint(plan.options.llm_endpoint)
    avg_input_chars = {}
    for ds in uc.datasets:
        if ds.path and ds.path.exists() and ds.rows:
            avg_input_chars[ds.name] = ds.path.stat().st_size / max(ds.rows, 1)
    for cell in plan.cells:
        for node in llm_nodes:
            chosen = cell.variants.get(node.name)
            inputs = node.run_inputs(chosen, cell.params)
            src = (node.definition(chosen).get("source") or {}).get("path")
            template_chars = 0
            if src and (flow.path / src).is_file():
                template_chars = (flow.path / src).stat().st_size
            per_prompt = int((template_chars + avg_input_chars.get(cell.dataset, 200)) / 4)
            max_tokens = inputs.get("max_tokens") or 256
            per_completion = int(min(float(max_tokens), 120))
            calls += cell.lines
            ptoks += per_prompt * cell.lines
            ctoks += per_completion * cell.lines
            node_cost = price_tokens(
                uc.extras.prices,
                [model_name(inputs)],
                per_prompt * cell.lines,
                per_completion * cell.lines,
                sandbox=sandbox,
            )
            if node_cost.usd is None:
                priced = False
            else:
                cost += node_cost.usd
    lines = plan.lines_total
    per_line_calls = max(len(llm_nodes), 1)
    wall = (lines * per_line_calls * latency_s) / max(plan.concurrency, 1) + 1.0
    return Estimate(
        cells=len(plan.cells),
        lines=lines,
        llm_calls=calls,
        prompt_tokens=ptoks,
        completion_tokens=ctoks,
        cost=0.0 if sandbox else round(cost, 4) if priced and llm_nodes else None,
        wall_s=round(wall, 1),
        concurrency=plan.concurrency,
        cost_free=sandbox,
    )
