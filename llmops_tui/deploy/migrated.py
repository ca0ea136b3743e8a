"""``llmops deploy-migrated DIR``: serve a flow written by ``llmops migrate --to agent-framework``.

The migrated folder is copied into a deployment folder beside ``serve_migrated.py`` (standard library
only: the image and the local process need nothing of llmops-tui or Prompt flow):

    <out>/flow/                 the migrated flow folder (flow.py, pf_semantics.py, node code, prompts)
    <out>/serve_migrated.py     GET /health, POST /score: the contract of our Prompt flow deployments
    <out>/requirements.txt      the migrated flow's own
    <out>/sample-request.json   what the endpoint test posts (when migrate wrote one)
    <out>/llmops-deployment.json
    <out>/Dockerfile, .dockerignore, wheels/README.txt      (every target but local)

Targets:

- ``local``: the server runs detached on 127.0.0.1 with a minimal environment plus the endpoint and key
  variables of the connections the flow calls (``--llm-endpoint sandbox`` starts the sandbox model,
  ``--llm-endpoint URL`` points every connection at URL, else ``<NAME>_API_BASE``/``_API_KEY``/
  ``_API_VERSION`` are taken from this process's environment). It is recorded in the local deployments
  registry under the name ``<name>`` and environment ``migrated``: ``llmops deployments`` lists it,
  ``llmops undeploy NAME --env migrated`` stops it. The endpoint test posts the sample request and checks
  the flow's output keys.
- ``container``: the folder is a Docker build context whose command serves on port 8080; nothing runs.
- ``kubernetes``, ``azureml``, ``webapp``: the folder is a bundle (``Bundle(kind="migrated")``) handed to
  ``llmops deploy``'s own pipeline (llmops_tui.deploy.api) and target writers, with the deploy settings of
  the use case it was migrated from (``--use-case``, default the one flow.py names) for ``--env``: names,
  replicas, instance type, environment variables from ``configs/deployment_config.json``, the Azure ML
  workspace from llmops.yaml. Keys stay references (a Kubernetes Secret, Azure ML secret injection from
  the workspace connection, a Key Vault reference): never a value in a file. ``--dry-run`` prints the
  plan and writes nothing. Not built for migrated flows: A/B splits (a traffic allocation below 100 or
  mirrored traffic is refused) and traffic capture (noted in the plan: nothing is recorded).

With ``--require-approval --env E`` (every target; as for ``llmops deploy``, off unless asked) nothing is
deployed unless, checked against the migration manifest ``llmops-migration.json`` that migrate writes
beside the flow folders (llmops_tui.core.migrate):

- the approval of the use case for ``E`` verifies, with deploy's own rule and words
  (``prepare.resolve_configuration`` -> ``core.approval.verify_approval``: signature, policy, history, and
  the Prompt flow source still hashing to the approved ``flow_hash``);
- the migrated variants and parameters are the approved ones, and the source they were migrated from
  hashed to the approved ``flow_hash`` (the manifest's ``flow_hash``);
- every file of the migrated folder still has the sha256 migrate wrote, and no file was added
  (``--allow-edited`` deploys edited code anyway; the plan, the output and ``llmops-deployment.json`` name
  it as an override).

A refusal is one line naming the file and field and the fix, exit code 2. The plan names the approval
record (path, sequence, approver, time, decision id) the deployment rests on.

The flow's facts (inputs, outputs, connections, variants) are read from ``flow.py``'s literals with
``ast``: this process never imports the migrated code (nor Agent Framework).
"""

from __future__ import annotations

import ast
import json
import os
import re
import shutil
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from llmops_tui.core.errors import LlmopsError, RunFailed
from llmops_tui.core.files import check_name, rel, safe_join
from llmops_tui.core.hashing import hash_folder
from llmops_tui.deploy import registry
from llmops_tui.deploy.plan import DeployResult, Step
from llmops_tui.deploy.prepare import Bundle, Configuration, ConnectionRef

if TYPE_CHECKING:
    from llmops_tui.core.workspace import UseCase

SERVE_SCRIPT = Path(__file__).with_name("serve_migrated.py")
SERVE_MARKER = "serve_migrated.py"
ENV_NAME = "migrated"  # the registry's environment for migrated deployments
META_FILE = "llmops-deployment.json"
CLOUD_TARGETS = ("kubernetes", "azureml", "webapp")  # through llmops deploy's pipeline and writers
TARGETS = ("local", "container", *CLOUD_TARGETS)
_LITERALS = ("INPUTS", "OUTPUTS", "CONNECTIONS", "VARIANTS")


@dataclass
class MigratedFlow:
    """A flow folder written by ``llmops migrate`` (its ``flow.py``'s literals)."""

    folder: Path
    name: str
    inputs: dict[str, Any] = field(default_factory=dict)
    outputs: dict[str, Any] = field(default_factory=dict)
    connections: dict[str, str] = field(default_factory=dict)
    variants: dict[str, str] = field(default_factory=dict)
    version: str = ""
    use_case: str = ""  # the use case it was migrated from (flow.py's docstring names it)

    @property
    def required(self) -> list[str]:
        return [k for k, v in self.inputs.items() if not (isinstance(v, dict) and "default" in v)]


def _bad(folder: Path, message: str, hint: str) -> LlmopsError:
    return LlmopsError(message, file=folder, field="DIR", hint=hint)


def load_migrated(folder: Path) -> MigratedFlow:
    """The migrated flow in ``folder`` (a flow folder with flow.py, or the folder migrate wrote, whose
    ``standard/`` is served). Anything else is one line naming the folder (exit code 2)."""
    folder = Path(folder)
    hint = "give a folder written by llmops migrate (it holds flow.py, or standard/flow.py)"
    if not folder.is_dir():
        raise _bad(folder, "no such folder", hint)
    name = folder.resolve().name
    if not (folder / "flow.py").is_file() and (folder / "standard" / "flow.py").is_file():
        folder = folder / "standard"
    elif folder.resolve().name == "standard":
        name = folder.resolve().parent.name
    flow_py = folder / "flow.py"
    if not flow_py.is_file() or not (folder / "pf_semantics.py").is_file():
        raise _bad(folder, "not a flow written by llmops migrate (no flow.py and pf_semantics.py)", hint)
    try:
        tree = ast.parse(flow_py.read_text(encoding="utf-8"))
    except (SyntaxError, UnicodeDecodeError) as exc:
        raise _bad(flow_py, f"flow.py does not parse: {exc}", "migrate the use case again") from None
    found: dict[str, Any] = {}
    for node in tree.body:
        if not isinstance(node, ast.Assign) or len(node.targets) != 1:
            continue
        target = node.targets[0]
        if isinstance(target, ast.Name) and target.id in _LITERALS:
            try:
                found[target.id] = ast.literal_eval(node.value)
            except ValueError:
                raise _bad(flow_py, f"{target.id} is not a literal", "migrate the use case again") from None
    if "OUTPUTS" not in found or "INPUTS" not in found or "def run_line" not in flow_py.read_text("utf-8"):
        raise _bad(flow_py, "flow.py lacks INPUTS, OUTPUTS or run_line", "migrate the use case again")
    safe = "".join(c if c.isalnum() or c in "-_." else "-" for c in name).strip(".-") or "flow"
    connections = {str(k): str(v) for k, v in (found.get("CONNECTIONS") or {}).items()}
    for conn in connections:  # they become variable names, Secret keys and Azure ML references
        check_name(conn, file=flow_py, field="CONNECTIONS")
    doc = (ast.get_docstring(tree) or "").split(" ", 1)[0]  # "<use case> (standard): ..."
    return MigratedFlow(
        folder=folder,
        name=safe,
        inputs=dict(found.get("INPUTS") or {}),
        outputs=dict(found.get("OUTPUTS") or {}),
        connections=connections,
        variants={str(k): str(v) for k, v in (found.get("VARIANTS") or {}).items()},
        version=hash_folder(folder),
        use_case=doc if re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9_.-]*", doc) else "",
    )


# ---------------------------------------------------------------------------------------------- approval


@dataclass
class ApprovedMigration:
    """What ``--require-approval`` established: the use case, the configuration (its ``approval`` names the
    record), and the overrides people asked for (``--allow-edited``)."""

    uc: UseCase
    configuration: Configuration
    manifest: str  # the manifest's path, for people
    overrides: list[str] = field(default_factory=list)
    checked: str = ""  # one line for the plan: what was compared

    @property
    def approval(self) -> dict[str, Any]:
        return dict(self.configuration.approval or {})

    def step(self) -> Step:
        a = self.approval
        seq = f" #{a['sequence']}" if a.get("sequence") else ""
        who = f"{a.get('decision')} by {a.get('approver')} at {a.get('decided_at')}"
        short_id = str(a.get("id"))[:19]  # "sha256:" and 12 hex digits; --json has it whole
        return Step(
            "note", f"approval {a.get('path')}{seq} ({who}; id {short_id}): {self.checked}", done=True
        )

    def apply(self, result: DeployResult) -> None:
        """Name the approval (and any override) first in the plan."""
        result.steps.insert(0, self.step())
        for i, text in enumerate(self.overrides, 1):
            result.steps.insert(i, Step("note", f"override {text}", done=True))
        result.configuration["overrides"] = list(self.overrides)


def _effective(variants: dict[str, Any], defaults: dict[str, str]) -> dict[str, str]:
    """Every node with variants -> the variant used (a node not named takes its default)."""
    out = {str(k): str(v) for k, v in defaults.items()}
    out.update({str(k): str(v) for k, v in variants.items()})
    return out


def _file_changes(before: dict[str, str], now: dict[str, str]) -> list[tuple[str, str]]:
    out = [(p, "changed") for p in sorted(before) if p in now and now[p] != before[p]]
    out += [(p, "removed") for p in sorted(before) if p not in now]
    out += [(p, "added, not written by llmops migrate") for p in sorted(now) if p not in before]
    return out


def check_approval(
    root: Path, flow: MigratedFlow, env: str, *, use_case: str | None = None, allow_edited: bool = False
) -> ApprovedMigration:
    """``--require-approval`` for a migrated flow (see the module docstring); raises LlmopsError (exit 2)
    naming the file, the field and the fix for anything that does not hold."""
    from llmops_tui.core.approval import decision_id
    from llmops_tui.core.migrate import MANIFEST_FILE, migrated_file_hashes, read_manifest
    from llmops_tui.deploy.prepare import resolve_configuration, use_case_for_env

    root = Path(root).resolve()
    manifest_path = flow.folder.parent / MANIFEST_FILE
    shown_manifest = rel(manifest_path, root)
    manifest = read_manifest(manifest_path)
    entry = next(
        (f for f in manifest["flows"] if isinstance(f, dict) and f.get("folder") == flow.folder.name), None
    )
    if entry is None or entry.get("role") != "standard" or not entry.get("flow_hash"):
        raise LlmopsError(
            f"{flow.folder.name}/ is not the standard flow of this migration: only the standard flow is approved",
            file=shown_manifest,
            field="flows",
            hint="deploy the folder llmops migrate wrote (its standard/)",
        )
    migrated_from = str(manifest.get("use_case") or "")
    if use_case and use_case != migrated_from:
        raise LlmopsError(
            f"--use-case {use_case} with --require-approval, but the code was migrated from {migrated_from}",
            file=shown_manifest,
            field="use_case",
            hint="drop --use-case: the approval checked is that of the use case migrated",
        )
    uc = use_case_for_env(root, migrated_from, env)
    # deploy's own rule and words: signature, policy, history, flow and dataset hashes
    approved = resolve_configuration(root, uc, env, require_approval=True)
    approval = dict(approved.approval or {})
    record_file = str(approval.get("path") or "")
    record = _record(uc, env)
    approval["id"] = decision_id(record)
    flow_def = uc.standard_flow
    defaults = {n.name: n.default_variant for n in (flow_def.nodes if flow_def else []) if n.default_variant}
    want = _effective(approved.variants, defaults)
    have = _effective(dict(entry.get("variants") or {}), defaults)
    migrate_cmd = f"llmops migrate {uc.name}" + "".join(f" --variant {k}={v}" for k, v in want.items())
    shown_dir = rel(flow.folder.parent, root)
    if Path(shown_dir) != Path("migrated") / uc.name:
        migrate_cmd += f" --out {shown_dir}"
    if want != have:
        show = lambda v: ", ".join(f"{k}.{x}" for k, x in v.items()) or "none"  # noqa: E731
        raise LlmopsError(
            f"the migrated variants ({show(have)}, {shown_manifest}) are not the ones approved for {env} ({show(want)})",
            file=record_file,
            field="variants",
            hint=f"migrate the approved configuration: {migrate_cmd}",
        )
    if dict(approved.params) != dict(entry.get("params") or {}):
        raise LlmopsError(
            f"the approval overrides parameters ({', '.join(sorted(approved.params))}), which llmops migrate "
            "does not carry into migrated code",
            file=record_file,
            field="params",
            hint="approve a configuration without parameter overrides, or deploy it with llmops deploy",
        )
    if entry.get("flow_hash") != approval.get("flow_hash"):
        raise LlmopsError(
            f"the code was migrated from a Prompt flow source that hashed to {str(entry.get('flow_hash'))[:12]}, "
            f"not the approved {str(approval.get('flow_hash'))[:12]}",
            file=shown_manifest,
            field="flows[standard].flow_hash",
            hint=f"migrate the approved flow again: {migrate_cmd}",
        )
    changes = _file_changes(dict(entry.get("files") or {}), migrated_file_hashes(flow.folder))
    overrides = []
    if changes:
        listed = ", ".join(f"{p} ({how})" for p, how in changes[:4])
        more = f" and {len(changes) - 4} more" if len(changes) > 4 else ""
        if not allow_edited:
            first, how = changes[0]
            raise LlmopsError(
                f"{how} since llmops migrate wrote it (sha256 in {shown_manifest})"
                + (f"; {len(changes) - 1} more file(s) too" if len(changes) > 1 else ""),
                file=rel(flow.folder / first, root),
                field="",
                hint=f"re-run {migrate_cmd}, or pass --allow-edited to deploy the edited code (recorded as an override)",
            )
        overrides.append(
            f"--allow-edited: deployed code differs from what llmops migrate wrote: {listed}{more}"
        )
    approved.approval = approval
    approved.variants = have  # what is deployed: the migrated variants, equal to the approved ones
    approved.source = f"migrated flow {rel(flow.folder, root)}, {approved.source}"
    checked = f"migrated variants and source {str(entry.get('flow_hash'))[:12]} are the approved ones; " + (
        "migrated files EDITED (--allow-edited)" if changes else "migrated files unchanged"
    )
    return ApprovedMigration(uc, approved, shown_manifest, overrides, checked)


def _record(uc: UseCase, env: str) -> dict[str, Any]:
    """The current approval record (already verified by the caller)."""
    from llmops_tui.core.approval import current_path

    data = json.loads(current_path(uc, env).read_text(encoding="utf-8"))
    return data if isinstance(data, dict) else {}


def env_prefix(connection: str) -> str:
    """The prefix of a connection's variables in migrated code: ``aoai`` -> ``AOAI``."""
    return "".join(c if c.isalnum() else "_" for c in connection).upper()


def serve_command(folder: Path, port: int, host: str = "127.0.0.1") -> list[str]:
    return [
        sys.executable,
        str(folder / "serve_migrated.py"),
        "--flow",
        str(folder / "flow"),
        "--host",
        host,
        "--port",
        str(port),
    ]


def connection_refs(flow: MigratedFlow, uc: UseCase | None) -> tuple[list[ConnectionRef], dict[str, str]]:
    """The connections the migrated flow calls, named by the variables its code reads
    (``<NAME>_API_BASE``/``_API_KEY``), with the use case's declared endpoint when it has one; and the plain
    settings its server needs (``<NAME>_API_VERSION`` of Azure OpenAI connections)."""
    refs: list[ConnectionRef] = []
    plain: dict[str, str] = {}
    for name, kind in flow.connections.items():
        declared = uc.connection(name) if uc is not None else None
        prefix = env_prefix(name)
        openai = kind.startswith("OpenAI")
        ref = ConnectionRef(
            name=name,
            kind="open_ai" if openai else "azure_open_ai",
            api_base=(declared.api_base if declared else "") or "",
            api_version=declared.api_version if declared else None,
            key_env_var=f"{prefix}_API_KEY",
            base_env_var=f"{prefix}_API_BASE",
        )
        refs.append(ref)
        if not openai:
            plain[f"{prefix}_API_VERSION"] = ref.api_version or "2024-02-01"
    return refs, plain


def _write_files(out: Path, files: dict[str, str]) -> list[Path]:
    written = []
    for rel_path, text in files.items():
        path = safe_join(out, rel_path)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")
        written.append(path)
    return written


def materialise_migrated(
    flow: MigratedFlow,
    dest: Path,
    *,
    target: str,
    uc: UseCase | None = None,
    sample: Path | None = None,
    approved: ApprovedMigration | None = None,
) -> Bundle:
    """Write the migrated flow's bundle into ``dest`` (see the module docstring; no Dockerfile: the target
    writers add theirs) and return it. ``sample``: the endpoint test's request (default: the one migrate
    copied beside flow.py). ``approved``: the approval it rests on, recorded in llmops-deployment.json."""
    from llmops_tui.core.migrate import NOT_SHIPPED_NAMES, NOT_SHIPPED_SUFFIXES

    dest = Path(dest)
    if (dest / "flow").exists():
        shutil.rmtree(dest / "flow")
    dest.mkdir(parents=True, exist_ok=True)
    shutil.copytree(
        flow.folder,
        dest / "flow",
        ignore=shutil.ignore_patterns(*NOT_SHIPPED_NAMES, *(f"*{x}" for x in NOT_SHIPPED_SUFFIXES)),
    )
    refs, plain = connection_refs(flow, uc)
    files: dict[str, str] = {
        "serve_migrated.py": SERVE_SCRIPT.read_text(encoding="utf-8"),
        "requirements.txt": (flow.folder / "requirements.txt").read_text(encoding="utf-8")
        if (flow.folder / "requirements.txt").is_file()
        else "",
        META_FILE: json.dumps(
            {
                "kind": "migrated",
                "name": flow.name,
                "use_case": uc.name if uc is not None else flow.use_case,
                "source": str(flow.folder.resolve()),
                "version": flow.version,
                "target": target,
                "variants": flow.variants,
                "connections": [r.to_dict() for r in refs],
                "approval": approved.approval if approved is not None else None,
                "overrides": approved.overrides if approved is not None else [],
            },
            indent=2,
        ),
    }
    sample = sample if sample is not None and sample.is_file() else flow.folder / "sample-request.json"
    if sample.is_file():
        files["sample-request.json"] = sample.read_text(encoding="utf-8")
    _write_files(dest, files)
    return Bundle(
        folder=dest,
        version=flow.version,
        connections=refs,
        outputs=list(flow.outputs),
        kind="migrated",
        plain_env=plain,
    )


def prepare(
    flow: MigratedFlow, out: Path, target: str, approved: ApprovedMigration | None = None
) -> list[Path]:
    """Write the deployment folder (see the module docstring); the files written."""
    out = Path(out)
    meta = out / META_FILE
    if out.exists() and any(out.iterdir()) and not meta.is_file():
        raise LlmopsError(
            "folder exists and was not written by llmops deploy-migrated",
            file=out,
            field="--out",
            hint="choose an empty or new folder",
        )
    bundle = materialise_migrated(flow, out, target=target, approved=approved)
    written = [out / "flow", *(out / p for p in ("serve_migrated.py", "requirements.txt", META_FILE))]
    if bundle.sample_request is not None:
        written.append(bundle.sample_request)
    if target == "container":
        from llmops_tui.deploy.container import build_context_files

        written += _write_files(out, build_context_files(bundle, flow.name))
    return written


def _llm_env(flow: MigratedFlow, base_url: str | None) -> tuple[dict[str, str], list[str]]:
    """The server's connection variables and what to tell people (names, never values)."""
    env: dict[str, str] = {}
    notes: list[str] = []
    for name, kind in flow.connections.items():
        prefix = env_prefix(name)
        if base_url is not None:
            env[f"{prefix}_API_BASE"] = base_url
            env[f"{prefix}_API_KEY"] = os.environ.get("LLMOPS_LLM_API_KEY") or "sandbox-no-key"
            if not kind.startswith("OpenAI"):
                env[f"{prefix}_API_VERSION"] = os.environ.get(f"{prefix}_API_VERSION") or "2024-02-01"
            continue
        if not os.environ.get(f"{prefix}_API_BASE"):
            raise LlmopsError(
                f"connection '{name}' needs {prefix}_API_BASE, which is not set",
                field=f"{prefix}_API_BASE",
                hint=f"export {prefix}_API_BASE and {prefix}_API_KEY, or use --llm-endpoint sandbox",
            )
        for suffix in ("API_BASE", "API_KEY", "API_VERSION"):
            value = os.environ.get(f"{prefix}_{suffix}")
            if value:
                env[f"{prefix}_{suffix}"] = value
        notes.append(f"connection {name}: {prefix}_API_BASE and _API_KEY passed to the server process only")
    return env, notes


def _request(flow: MigratedFlow, request: Path | None) -> tuple[Any, str]:
    from llmops_tui.deploy.endpoint_test import load_request

    if request is not None:
        return load_request(request), str(request)
    sample = flow.folder / "sample-request.json"
    if sample.is_file():
        return load_request(sample), "sample-request.json"
    defaults = {k: v["default"] for k, v in flow.inputs.items() if isinstance(v, dict) and "default" in v}
    if flow.required:
        raise LlmopsError(
            f"no request to test the endpoint with: inputs {', '.join(flow.required)} have no default",
            file=flow.folder,
            field="--request",
            hint="give --request FILE (a JSON object of flow inputs)",
        )
    return defaults, "the inputs' defaults"


def default_out(root: Path, flow: MigratedFlow, target: str) -> Path:
    """``<workspace>/.llmops/deployments/migrated/<name>/<target>-<version>``."""
    base = root / ".llmops" / "deployments" / ENV_NAME / flow.name
    return safe_join(base, f"{target}-{flow.version[:12]}")


def deploy_migrated(
    root: Path,
    folder: Path,
    *,
    target: str = "local",
    out: Path | None = None,
    llm_endpoint: str | None = None,
    port: int | None = None,
    timeout: float = 60.0,
    request: Path | None = None,
    env: str | None = None,
    use_case: str | None = None,
    dry_run: bool = False,
    image: str | None = None,
    require_approval: bool = False,
    allow_edited: bool = False,
    **clients: Any,
) -> DeployResult:
    """Prepare (and for ``local``, start and test) a deployment of a migrated flow; for the cloud targets
    hand it to ``llmops deploy``'s pipeline (``clients``: its ``ml_client``, ``kubectl_context`` and
    ``az_signed_in`` stand-ins, for tests). ``require_approval``: nothing is deployed unless
    :func:`check_approval` holds for ``env``."""
    from llmops_tui.deploy import local
    from llmops_tui.deploy.endpoint_test import run_endpoint_test, wait_healthy

    if target not in TARGETS:
        raise LlmopsError(
            f"unknown target '{target}'", field="--target", hint=f"one of: {', '.join(TARGETS)}"
        )
    if target != "local" and (llm_endpoint or port or request):
        option = "--llm-endpoint" if llm_endpoint else ("--port" if port else "--request")
        raise LlmopsError(
            f"{option} only applies to --target local",
            field=option,
            hint="a deployed container reads its connections from its environment",
        )
    if allow_edited and not require_approval:
        raise LlmopsError(
            "--allow-edited only applies with --require-approval",
            field="--allow-edited",
            hint="without --require-approval the migrated files are not compared with what migrate wrote",
        )
    if require_approval and not env:
        raise LlmopsError(
            "--require-approval needs --env",
            field="--env",
            hint="the environment whose approval the migrated flow must match",
        )
    cloud_only = {"--env": env, "--use-case": use_case}
    for option, value in cloud_only.items():
        if value is not None and target not in CLOUD_TARGETS and not require_approval:
            raise LlmopsError(
                f"{option} only applies to --target {', '.join(CLOUD_TARGETS)}",
                field=option,
                hint="local and container deployments of a migrated flow need no deployment config",
            )
    if image is not None and target != "kubernetes":
        raise LlmopsError("--image only applies to --target kubernetes", field="--image")
    if dry_run and target == "local":
        raise LlmopsError(
            "--dry-run does not apply to --target local",
            field="--dry-run",
            hint="a local deployment starts a server; use --target container --dry-run to see the files",
        )
    if target in CLOUD_TARGETS and not env:
        raise LlmopsError(
            f"--target {target} needs --env",
            field="--env",
            hint="the ENV_NAME of the use case's entry in configs/deployment_config.json",
        )
    if llm_endpoint and llm_endpoint != "sandbox" and not llm_endpoint.startswith(("http://", "https://")):
        raise LlmopsError(
            f"'{llm_endpoint}' is neither 'sandbox' nor an http(s) URL",
            field="--llm-endpoint",
            hint="use --llm-endpoint sandbox, or the base URL of a server",
        )
    root = Path(root).resolve()
    flow = load_migrated(folder)
    approved = None
    if require_approval:  # before anything is written or started
        assert env is not None
        approved = check_approval(root, flow, env, use_case=use_case, allow_edited=allow_edited)
    if target in CLOUD_TARGETS:
        assert env is not None
        return _deploy_cloud(
            root,
            flow,
            target,
            env=env,
            use_case=use_case,
            out=out,
            dry_run=dry_run,
            image=image,
            timeout=timeout,
            clients=clients,
            approved=approved,
        )
    dest = Path(out) if out is not None else default_out(root, flow, target)
    result = DeployResult(
        target=f"migrated-{target}",
        use_case=flow.name,
        env=ENV_NAME,
        version=flow.version,
        configuration={"source": f"migrated flow {flow.folder}", "variants": flow.variants, "params": {}},
        dry_run=False,
    )
    if approved is not None:
        result.configuration = approved.configuration.to_dict()
        approved.apply(result)
    if target == "local":
        running = [
            d
            for d in registry.load(root)
            if d.get("use_case") == flow.name and d.get("env") == ENV_NAME and d.get("alive")
        ]
        same = [d for d in running if d.get("version") == flow.version]
        if same:
            record = same[0]
            result.add(
                "note", f"version {flow.version[:12]} already serves at {record['url']} (pid {record['pid']})"
            )
            result.deployment = {k: v for k, v in record.items() if k not in {"marker", "alive"}}
            result.endpoint_url = record["url"]
            body, _ = _request(flow, request)
            test = run_endpoint_test(record["url"], body, expect_keys=list(flow.outputs), timeout=timeout)
            result.test = test.to_dict()
            result.add("test", test.summary(), done=test.ok)
            result.ok = test.ok
            return result
    body, shown = _request(flow, request) if target == "local" else (None, "")
    if dry_run:  # the files, written to a temporary folder to list them, then removed
        import tempfile

        result.dry_run = True
        tmp = Path(tempfile.mkdtemp(prefix="llmops-migrated-"))
        try:
            prepare(flow, tmp / "ctx", target, approved)
            for path in sorted(p for p in (tmp / "ctx").rglob("*") if p.is_file()):
                shown_path = dest / path.relative_to(tmp / "ctx")
                shown_text = path.name in {"Dockerfile", ".dockerignore", "requirements.txt"}
                text = path.read_text(encoding="utf-8") if shown_text else None
                result.add("write", f"write {shown_path}", obj=text)
                result.add_artifact(shown_path, root)
        finally:
            shutil.rmtree(tmp, ignore_errors=True)
        result.add("note", f"build it: docker build -t {flow.name}:{flow.version[:12]} {dest}")
        return result
    for path in prepare(flow, dest, target, approved):
        result.add("write", f"write {path}", done=True)
        result.add_artifact(path, root)
    if target == "container":
        result.add(
            "note",
            f"build it: docker build -t {flow.name}:{flow.version[:12]} {dest}",
        )
        result.notes.append(
            "connections come from the container's environment: "
            + (", ".join(f"{env_prefix(c)}_API_BASE / _API_KEY" for c in flow.connections) or "none")
        )
        return result
    base_url = llm_endpoint.rstrip("/") if llm_endpoint and llm_endpoint != "sandbox" else None
    logs = dest / "logs"
    sandbox_pid = None
    proc = None
    try:
        if llm_endpoint == "sandbox":
            url_file = logs / "sandbox.url"
            url_file.unlink(missing_ok=True)
            sb = local._spawn(
                local.sandbox_command(), local._base_env(root), dest, logs / "sandbox.log", url_file
            )
            sandbox_pid = sb.pid
            base_url = local._first_line(url_file, sb, 30.0)
            if not base_url:
                raise RunFailed(f"the sandbox model did not start: {local._log_tail(logs / 'sandbox.log')}")
            result.add(
                "start", f"start the sandbox model at {base_url}", command=local.sandbox_command(), done=True
            )
        llm_env, notes = _llm_env(flow, base_url)
        result.notes.extend(notes)
        port = port or local.free_port()
        # The flow's process: the minimal environment of local deployments plus its connections, and not
        # our PYTHONPATH (the migrated flow must not find llmops_tui through it).
        proc_env = {k: v for k, v in local._base_env(root).items() if k != "PYTHONPATH"}
        proc_env.update(llm_env)
        proc_env["LLMOPS_FLOW_VERSION"] = flow.version
        cmd = serve_command(dest, port)
        step = result.add("start", f"serve the migrated flow on http://{local.LOCALHOST}:{port}", command=cmd)
        proc = local._spawn(cmd, proc_env, dest, logs / "serve.log")
        url = f"http://{local.LOCALHOST}:{port}"
        if not wait_healthy(url, timeout=timeout, alive=lambda: proc.poll() is None):
            raise RunFailed(
                f"the migrated flow's server did not become healthy at {url}: {local._log_tail(logs / 'serve.log')}"
            )
        step.done = True
    except BaseException:
        if proc is not None:
            registry.stop_process(proc.pid, SERVE_MARKER)
        if sandbox_pid:
            registry.stop_process(sandbox_pid, local.SANDBOX_MARKER)
        raise
    record = {
        "id": f"{flow.name}:{ENV_NAME}:{flow.version[:12]}",
        "kind": "flow",
        "use_case": flow.name,
        "env": ENV_NAME,
        "version": flow.version,
        "url": url,
        "port": port,
        "pid": proc.pid,
        "marker": SERVE_MARKER,
        "sandbox_pid": sandbox_pid,
        "llm_endpoint": "sandbox" if sandbox_pid else (base_url or "environment"),
        "folder": str(dest),
        "log": str(logs / "serve.log"),
        "configuration": f"migrated flow {flow.folder}",
        "started_at": local._now(),
    }
    registry.add(root, record)
    result.deployment = {k: v for k, v in record.items() if k != "marker"}
    result.endpoint_url = url
    test = run_endpoint_test(url, body, expect_keys=list(flow.outputs), timeout=timeout)
    result.test = test.to_dict()
    result.add("test", f"{test.summary()} (request: {shown})", done=test.ok)
    if not test.ok:
        result.ok = False
        local.undeploy(root, flow.name, env=ENV_NAME, version=flow.version)
        result.notes.append("the migrated flow failed its endpoint test and was stopped")
    return result


def _refuse_ab(entry: Any, target: str, config_file: str) -> None:
    """A/B splits and mirrored traffic are not built for migrated flows: one line, never ignored."""
    block = {"kubernetes": "kubernetes_endpoint", "azureml": "azure_managed_endpoint"}.get(target)
    if block is None:
        return
    if entry.current_traffic < 100:
        raise LlmopsError(
            f"A/B traffic splits are not supported for migrated flows ({entry.current_traffic}% asked)",
            file=config_file,
            field=f"{block}[ENV_NAME={entry.ENV_NAME}].CURRENT_DEPLOYMENT_TRAFFIC_ALLOCATION",
            hint="set it to 100 for this environment: the migrated flow then takes all traffic",
        )
    if entry.MIRROR_TRAFFIC_PERCENT:
        raise LlmopsError(
            "mirrored traffic is not supported for migrated flows",
            file=config_file,
            field=f"{block}[ENV_NAME={entry.ENV_NAME}].MIRROR_TRAFFIC_PERCENT",
            hint="remove it or set it to 0 for this environment",
        )


def _deploy_cloud(
    root: Path,
    flow: MigratedFlow,
    target: str,
    *,
    env: str,
    use_case: str | None,
    out: Path | None,
    dry_run: bool,
    image: str | None,
    timeout: float,
    clients: dict[str, Any],
    approved: ApprovedMigration | None = None,
) -> DeployResult:
    """The migrated flow as a bundle through llmops deploy's pipeline to ``target`` (with ``approved``:
    the configuration it rests on, already checked by :func:`check_approval`)."""
    from llmops_tui.core.traffic import capture_settings
    from llmops_tui.deploy.api import DeployOptions, deploy
    from llmops_tui.deploy.config import CONFIG_REL, entry_for
    from llmops_tui.deploy.prepare import sample_request_path, use_case_for_env

    name = use_case or flow.use_case
    if not name and approved is None:
        raise LlmopsError(
            "flow.py does not name the use case it was migrated from",
            file=flow.folder / "flow.py",
            field="--use-case",
            hint="give --use-case UC: its configs/deployment_config.json says where to deploy",
        )
    check_name(env, field="--env")
    uc = approved.uc if approved is not None else use_case_for_env(root, name, env)
    config_path = uc.path / CONFIG_REL
    entry = entry_for(config_path, target, env, root=root, required=True)
    assert entry is not None  # required=True raises instead
    config_file = rel(config_path, root)
    _refuse_ab(entry, target, config_file)
    notes = []
    if flow.use_case and flow.use_case != uc.name:
        notes.append(f"flow.py says it was migrated from {flow.use_case}; deployed with {uc.name}'s settings")
    if capture_settings(root, uc, salt=False).enabled:
        notes.append(
            "traffic capture is not supported for migrated flows: this deployment records no requests"
        )
    refs, _plain = connection_refs(flow, uc)
    given = set(entry.ENVIRONMENT_VARIABLES)
    if target != "azureml":  # Azure ML injects the endpoint from the workspace connection
        for ref in refs:
            if not ref.usable_base and ref.base_env_var not in given:
                notes.append(
                    f"connection {ref.name} has no usable api_base in {uc.name}'s configuration: "
                    f"set {ref.base_env_var} in ENVIRONMENT_VARIABLES of {config_file}"
                )
    configuration = (
        approved.configuration
        if approved is not None
        else Configuration(
            variants=dict(flow.variants),
            params={},
            source=f"migrated flow {rel(flow.folder, root)}",
        )
    )

    def materialise_with(uc_: UseCase, _config: Configuration, dest: Path, test_file: str | None) -> Bundle:
        sample = sample_request_path(uc_, test_file)
        return materialise_migrated(flow, dest, target=target, uc=uc_, sample=sample, approved=approved)

    opts = DeployOptions(
        use_case=uc.name,
        env=env,
        target=target,
        dry_run=dry_run,
        out=Path(out)
        if out is not None
        else safe_join(root / ".llmops" / "deploy", uc.name, env, f"{ENV_NAME}-{target}"),
        image=image,
        timeout=timeout,
    )
    result = deploy(root, opts, configuration=configuration, materialise_with=materialise_with, **clients)
    result.target = f"{ENV_NAME}-{target}"
    result.notes.extend(notes)
    if approved is not None:
        approved.apply(result)
    else:
        result.notes.extend(_unenforced_note(root, flow, uc, env))
    return result


def _unenforced_note(root: Path, flow: MigratedFlow, uc: UseCase, env: str) -> list[str]:
    """Without ``--require-approval``, as ``llmops deploy`` does with a record it does not enforce: say
    whether the migrated flow matches the approval for ``env`` (nothing when there is no record)."""
    from llmops_tui.core.approval import current_path

    if not current_path(uc, env).is_file():
        return []
    try:
        check_approval(root, flow, env, use_case=uc.name)
    except LlmopsError as exc:
        return [
            f"not the configuration approved for {env} ({exc}); "
            "use --require-approval to refuse such deployments"
        ]
    return [f"matches the configuration approved for {env} (not enforced: use --require-approval)"]
