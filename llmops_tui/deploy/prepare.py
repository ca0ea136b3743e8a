"""What gets deployed: the configuration (approved, chosen or default) materialised into a bundle folder.

A bundle is the same for every target::

    <bundle>/flow/                 the standard flow with the chosen variants applied, others removed,
                                   parameter overrides baked in (core.materialize.export_flow)
    <bundle>/connections/<n>.yaml  each connection the flow uses, by name, with its key as an environment
                                   reference (``api_key: ${env:AOAI_API_KEY}``): never a value
    <bundle>/serve_flow.py         the serving entry (a copy of llmops_tui/deploy/serve_flow.py)
    <bundle>/sample-request.json   the endpoint test's request (TEST_FILE_PATH)
    <bundle>/requirements.txt      what the serving image installs (promptflow pinned)

The version of a deployment is the content hash of ``flow/``: the same hash the approval record binds
(core.approval.approved_flow_hash), so a deployed version can be traced to its approval.

Bundles have a ``kind``: ``promptflow`` (above; DAG and flex flows) or ``migrated`` (a flow written by
``llmops migrate --to agent-framework``, served by ``serve_migrated.py``: see llmops_tui.deploy.migrated).
The target writers (container, kubernetes, azureml, webapp) take either; where the two differ (the
image's entry, how Azure ML hands over connection keys, traffic capture) they read ``bundle.kind``.
"""

from __future__ import annotations

import json
import re
import shutil
from dataclasses import dataclass, field
from importlib import metadata
from pathlib import Path
from typing import Any

import yaml

from llmops_tui.core.approval import VerifyResult, use_case_for_env, verify_approval
from llmops_tui.core.errors import LlmopsError
from llmops_tui.core.files import check_name, rel, safe_join
from llmops_tui.core.workspace import UseCase

SERVE_SCRIPT = Path(__file__).with_name("serve_flow.py")
CAPTURE_SCRIPT = Path(__file__).parent.parent / "core" / "capture.py"
SERVING_PORT = 8080
HEALTH_ROUTE = "/health"
SCORE_ROUTE = "/score"


def deployable_use_case(root: Path, name: str, env: str) -> UseCase:
    """``core.approval.use_case_for_env`` for a deploy: an environment nothing declares is refused (unless
    approved), and so are a broken use case and a flow kind that cannot be served."""
    check_name(env, field="--env")
    uc = use_case_for_env(root, name, env, refuse_unknown=True)
    if uc.problems:
        raise LlmopsError.from_problem(uc.problems[0])
    if uc.standard_flow is None or uc.standard_flow.kind not in ("dag", "flex"):
        raise LlmopsError(
            "only DAG flows (flow.dag.yaml) and flex flows (flow.flex.yaml) can be deployed",
            file=uc.config_file,
            field="flow",
        )
    return uc


# ------------------------------------------------------------------------------------- configuration


@dataclass
class Configuration:
    """The variants and parameter overrides that will be deployed, and where they came from."""

    variants: dict[str, str]
    params: dict[str, Any]
    source: str
    approval: dict[str, Any] | None = None
    warnings: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return {
            "variants": self.variants,
            "params": self.params,
            "source": self.source,
            "approval": self.approval,
            "warnings": self.warnings,
        }


def parse_variants(text: str | None, uc: UseCase) -> dict[str, str]:
    """``NODE.variant_id,NODE2.variant_id`` -> {node: variant}; checked against the flow."""
    if not text:
        return {}
    known = uc.standard_flow.variants if uc.standard_flow else {}
    out: dict[str, str] = {}
    for part in [p.strip() for p in text.split(",") if p.strip()]:
        node, _, variant = part.partition(".")
        if not variant:
            raise LlmopsError(f"'{part}' is not NODE.variant_id", field="--variants")
        if variant not in known.get(node, []):
            options = (
                ", ".join(f"{n}.{v}" for n, vs in known.items() for v in vs) or "the flow has no variants"
            )
            raise LlmopsError(
                f"no variant '{part}' in the standard flow", field="--variants", hint=f"known: {options}"
            )
        out[node] = variant
    return out


def init_set_params(uc: UseCase, variants: dict[str, str]) -> dict[str, Any]:
    """A flex flow's named init set chosen with ``--variants init.NAME``, as the ``init.X`` values it
    stands for (what a sweep's cell of that set records, so the bundle serves the same init)."""
    from llmops_tui.core.flows import DEFAULT_INIT_SET, INIT_NODE, init_set_overrides

    chosen = variants.get(INIT_NODE)
    flow = uc.standard_flow
    if not chosen or chosen == DEFAULT_INIT_SET or flow is None or flow.kind != "flex":
        return {}
    return init_set_overrides(dict(uc.extras.init_sets.get(chosen) or {}))


def _approval_summary(result: Any) -> dict[str, Any]:
    record = result.record or {}
    keys = ("run_id", "cell_id", "approver", "decided_at", "flow_hash", "decision", "sequence")
    out = {k: record.get(k) for k in keys}
    out["path"] = getattr(result, "path", None)
    out["verified"] = bool(result.ok)
    return out


def resolve_configuration(
    root: Path, uc: UseCase, env: str, *, require_approval: bool, variants_text: str | None = None
) -> Configuration:
    """Pick what to deploy.

    - ``require_approval``: the current approval record for ``env`` must verify (signature, flow and
      dataset hashes); its variants and parameters are deployed. Anything else fails closed.
    - else ``--variants``: exactly those (other nodes at their default variant), no parameter overrides
      except a flex flow's named init set (``init.NAME``), which stands for the init values it names.
    - else the current approval record when one exists (verified if the approval key is at hand; a
      record that does not verify is still used, with a warning);
    - else every node's default variant.
    """
    if require_approval:
        if variants_text:
            raise LlmopsError(
                "--variants cannot be combined with --require-approval",
                field="--variants",
                hint="the approved record decides the variants",
            )
        result = verify_approval(root, uc, env)
        if not result.ok:
            reasons = "; ".join(result.reasons) or "unknown reason"
            raise LlmopsError(
                f"approval for '{uc.name}' env '{env}' does not verify: {reasons}",
                file=result.path or None,
                field="--require-approval",
                hint=f"see `llmops verify-approval {uc.name} --env {env}`",
            )
        record = result.record or {}
        return Configuration(
            variants=dict(record.get("variants") or {}),
            params=dict(record.get("params") or {}),
            source=f"approval record {result.path} (verified)",
            approval=_approval_summary(result),
        )
    chosen = parse_variants(variants_text, uc)
    if chosen:
        return Configuration(variants=chosen, params=init_set_params(uc, chosen), source="--variants")
    record_path = uc.path / "approvals" / f"{env}.json"
    if record_path.is_file():
        found: VerifyResult | None
        try:
            found = verify_approval(root, uc, env)
        except Exception:  # a broken record must not stop an unenforced deploy; it is reported
            found = None
        if found is not None and found.record:
            record = found.record
            config = Configuration(
                variants=dict(record.get("variants") or {}),
                params=dict(record.get("params") or {}),
                source=f"approval record {found.path} ({'verified' if found.ok else 'NOT verified'})",
                approval=_approval_summary(found),
            )
            if not found.ok:
                config.warnings.append(
                    "the approval record does not verify (" + "; ".join(found.reasons) + "); "
                    "use --require-approval to refuse such deployments"
                )
            return config
    return Configuration(
        variants={}, params={}, source="default variants (no approval record, no --variants)"
    )


# -------------------------------------------------------------------------------------------- bundle


@dataclass
class ConnectionRef:
    """A connection the deployed flow uses: its settings and the *name* of the variable holding its key."""

    name: str
    kind: str  # azure_open_ai | open_ai
    api_base: str
    api_version: str | None
    key_env_var: str
    base_env_var: str

    @property
    def usable_base(self) -> bool:
        return bool(self.api_base) and "YOUR-RESOURCE" not in self.api_base

    def to_yaml_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"name": self.name, "type": self.kind}
        if self.kind == "open_ai":
            out["base_url"] = self.api_base
        else:
            out["api_base"] = self.api_base
            out["api_type"] = "azure"
            out["api_version"] = self.api_version or "2024-02-01"
        out["api_key"] = "${env:" + self.key_env_var + "}"
        return out

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "type": self.kind,
            "api_base": self.api_base,
            "key_env_var": self.key_env_var,
            "base_env_var": self.base_env_var,
        }


def _env_name(name: str, suffix: str) -> str:
    return re.sub(r"[^A-Za-z0-9]", "_", name).upper() + "_" + suffix


def connection_refs(dag: dict[str, Any], uc: UseCase) -> list[ConnectionRef]:
    """Every connection an LLM node of the materialised flow calls, with the use case's declared settings."""
    names: dict[str, str] = {}
    for node in dag.get("nodes") or []:
        if node.get("type") == "llm" and node.get("connection"):
            names.setdefault(str(node["connection"]), str(node.get("provider") or "AzureOpenAI"))
    return _refs(names, uc)


def flex_connection_refs(init: dict[str, Any], uc: UseCase) -> list[ConnectionRef]:
    """The connections a flex flow's model configurations name in ``init``; when none names one, the use
    case's first connection (what model configs without a name, and flows that build their own client
    from the environment, run against)."""
    from llmops_tui.core.flows import is_model_config_value

    names: dict[str, str] = {}
    for value in init.values():
        if is_model_config_value(value) and value.get("connection"):
            declared = uc.connection(str(value["connection"]))
            kind = declared.connection_type if declared else "AzureOpenAIConnection"
            names[str(value["connection"])] = "OpenAI" if kind.startswith("OpenAI") else "AzureOpenAI"
    if not names and uc.connections:
        first = uc.connections[0]
        names[first.name] = "OpenAI" if first.connection_type.startswith("OpenAI") else "AzureOpenAI"
    return _refs(names, uc)


def _refs(names: dict[str, str], uc: UseCase) -> list[ConnectionRef]:
    out = []
    for name, provider in names.items():
        declared = uc.connection(name)
        ctype = declared.connection_type if declared else f"{provider}Connection"
        kind = "open_ai" if ctype.startswith("OpenAI") or provider == "OpenAI" else "azure_open_ai"
        out.append(
            ConnectionRef(
                name=name,
                kind=kind,
                api_base=(declared.api_base if declared else "") or "",
                api_version=declared.api_version if declared else None,
                key_env_var=declared.key_env_var if declared else _env_name(name, "API_KEY"),
                base_env_var=_env_name(name, "API_BASE"),
            )
        )
    return out


@dataclass
class Bundle:
    """A materialised, deployable folder (see the module docstring)."""

    folder: Path
    version: str
    connections: list[ConnectionRef]
    outputs: list[str]
    kind: str = "promptflow"  # promptflow | migrated (see the module docstring)
    # Settings the served process reads that are not secrets (a migrated flow's <NAME>_API_VERSION, ...):
    # the writers pass them as plain environment variables / app settings.
    plain_env: dict[str, str] = field(default_factory=dict)

    @property
    def migrated(self) -> bool:
        return self.kind == "migrated"

    @property
    def sample_request(self) -> Path | None:
        path = self.folder / "sample-request.json"
        return path if path.is_file() else None

    @property
    def flow_dir(self) -> Path:
        return self.folder / "flow"

    @property
    def short_version(self) -> str:
        return self.version[:12]

    def files(self) -> list[Path]:
        return sorted(p for p in self.folder.rglob("*") if p.is_file())


def pinned_requirements(flow_dir: Path) -> list[str]:
    """The serving image's requirements: promptflow and its tools pinned to the versions here, plus the
    flow's own requirements.txt (minus unpinned promptflow lines, which the pins replace)."""

    def version(dist: str, fallback: str) -> str:
        try:
            return metadata.version(dist)
        except metadata.PackageNotFoundError:
            return fallback

    lines = [
        f"promptflow=={version('promptflow', '1.18.5')}",
        f"promptflow-tools=={version('promptflow-tools', '1.6.1')}",
        f"waitress=={version('waitress', '3.0.2')}",
        "pyyaml>=6",
    ]
    req = Path(flow_dir) / "requirements.txt"
    if req.is_file():
        for line in req.read_text(encoding="utf-8").splitlines():
            text = line.strip()
            base = re.split(r"[<>=!~\[ ;]", text, maxsplit=1)[0].lower() if text else ""
            if (
                not text
                or text.startswith("#")
                or base in {"promptflow", "promptflow-tools", "waitress", "pyyaml"}
            ):
                continue
            lines.append(text)
    return lines


def materialise(uc: UseCase, config: Configuration, dest: Path, *, test_file: str | None = None) -> Bundle:
    """Write the bundle for ``config`` into ``dest`` (replaced if present) and return it."""
    from llmops_tui.core.materialize import export_flow, materialized_dag, materialized_init

    flow = uc.standard_flow
    assert flow is not None
    flow_src = flow.path
    if flow.kind == "flex":
        dag: dict[str, Any] = {"outputs": {k: {} for k in flow.response_keys}}
        refs = flex_connection_refs(materialized_init(flow_src, config.params), uc)
    else:
        dag = materialized_dag(flow_src, config.variants, config.params)
        refs = connection_refs(dag, uc)
    dest = Path(dest)
    if dest.exists():
        shutil.rmtree(dest)
    dest.mkdir(parents=True)
    version = export_flow(flow_src, dest / "flow", config.variants, config.params)
    (dest / "connections").mkdir()
    for ref in refs:
        check_name(ref.name, file=uc.standard_flow.file, field="nodes[].connection")  # type: ignore[union-attr]
        text = yaml.safe_dump(ref.to_yaml_dict(), sort_keys=False)
        safe_join(dest / "connections", f"{ref.name}.yaml").write_text(text, encoding="utf-8")
    shutil.copyfile(SERVE_SCRIPT, dest / "serve_flow.py")
    shutil.copyfile(CAPTURE_SCRIPT, dest / "llmops_capture.py")  # traffic capture in served containers
    (dest / "requirements.txt").write_text(
        "\n".join(pinned_requirements(dest / "flow")) + "\n", encoding="utf-8"
    )
    sample = sample_request_path(uc, test_file)
    if sample.is_file():
        shutil.copyfile(sample, dest / "sample-request.json")
    meta = {
        "use_case": uc.name,
        "version": version,
        "configuration": config.to_dict(),
        "connections": [r.to_dict() for r in refs],
    }
    (dest / "llmops-deployment.json").write_text(
        json.dumps(meta, indent=2, default=str) + "\n", encoding="utf-8"
    )
    outputs = list((dag.get("outputs") or {}).keys())
    return Bundle(folder=dest, version=version, connections=refs, outputs=outputs)


def sample_request_path(uc: UseCase, test_file: str | None) -> Path:
    """The endpoint test's request file (TEST_FILE_PATH, relative to the use case). A path that leaves
    the use case folder (``..``, absolute, or a symlink pointing out) is refused: its bytes would be
    copied into the bundle and shipped."""
    rel_path = test_file or "sample-request.json"
    try:
        return safe_join(uc.path, rel_path, field="TEST_FILE_PATH")
    except LlmopsError:
        raise LlmopsError(
            f"TEST_FILE_PATH '{rel_path}' leaves the use case folder",
            file=uc.path / "configs" / "deployment_config.json",
            field="TEST_FILE_PATH",
            hint="give a path inside the use case, e.g. sample-request.json",
        ) from None


def display(path: Path, root: Path) -> str:
    return rel(path, root)
