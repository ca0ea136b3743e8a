"""``deploy()``: the one entry point the CLI, the app's Deploy screen and CI share.

1. load the use case for the environment and its ``configs/deployment_config.json`` entry for the target;
2. decide what to deploy (:func:`llmops_tui.deploy.prepare.resolve_configuration`): a verified approval
   with ``require_approval``, else ``--variants``, else the approval record if any, else default variants;
3. materialise it into a bundle whose version is the flow's content hash (with an approval, the hash must
   equal the approved ``flow_hash``, or nothing is deployed);
4. hand over to the target module, which adds every file, command and call to the plan and, unless
   ``dry_run``, carries them out and runs the endpoint test.

A dry run materialises into a temporary folder (to know the version) and removes it: the workspace is
left unchanged.

Another kind of bundle goes through the same steps: ``llmops deploy-migrated`` passes its own
``configuration`` and ``materialise_with`` (a flow written by ``llmops migrate``, see
llmops_tui.deploy.migrated) and the target writers take it from there.
"""

from __future__ import annotations

import json
import shutil
import tempfile
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from llmops_tui.core.errors import LlmopsError
from llmops_tui.core.files import check_name, rel, safe_join
from llmops_tui.core.workspace import UseCase
from llmops_tui.deploy.config import CONFIG_REL, TARGETS, EndpointEntry, entry_for, fill_default_names
from llmops_tui.deploy.plan import DeployResult
from llmops_tui.deploy.prepare import (
    Bundle,
    Configuration,
    deployable_use_case,
    materialise,
    resolve_configuration,
)

META_FILE = "llmops-deployment.json"


@dataclass
class DeployOptions:
    use_case: str
    env: str
    target: str
    require_approval: bool = False
    dry_run: bool = False
    out: Path | None = None
    llm_endpoint: str | None = None
    variants: str | None = None
    image: str | None = None
    traffic: int | None = None
    prior: str | None = None
    port: int | None = None
    mirror: int | None = None
    timeout: float = 60.0
    capture: bool = False  # record requests per arm (local A/B router; Kubernetes and Azure ML manifests)


@dataclass
class DeployContext:
    """Everything a target module needs; ``write`` records (and, unless dry-run, writes) a file."""

    root: Path
    uc: UseCase
    env: str
    target: str
    entry: EndpointEntry | Any
    config: Configuration
    bundle: Bundle
    out: Path
    opts: DeployOptions
    result: DeployResult
    config_file: str
    request: Any = None
    expect_keys: list[str] = field(default_factory=list)
    ml_client: Any = None
    kubectl_context: Callable[[], str | None] | None = None
    az_signed_in: Callable[[], bool] | None = None

    def display(self, path: Path) -> str:
        return rel(path, self.root)

    def write(self, rel_path: str, text: str, *, obj: Any = None) -> None:
        path = safe_join(self.out, rel_path)
        shown = self.display(path)
        if self.opts.dry_run:
            self.result.add("write", f"write {shown}", obj=obj if obj is not None else text)
        else:
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(text, encoding="utf-8")
            self.result.add("write", f"write {shown}", obj=obj, done=True)
        self.result.add_artifact(path, self.root)


def default_out(root: Path, uc: UseCase, env: str, target: str, version: str) -> Path:
    """Where a deployment's files go without ``--out``: always inside ``<workspace>/.llmops``, whatever
    the use-case or environment name says (names are validated when read; this checks again)."""
    check_name(uc.name, file=uc.config_file, field="name")
    check_name(env, field="--env")
    if target == "local":
        return safe_join(root / ".llmops" / "deployments", uc.name, f"{env}-{version[:12]}")
    return safe_join(root / ".llmops" / "deploy", uc.name, env, target)


def _check_out(out: Path, version: str, target: str) -> str:
    """'reuse' when ``out`` already holds this version (a running local deployment), 'replace' when it holds
    an earlier llmops bundle, 'new' when absent or empty. Refuses any other non-empty folder."""
    if not out.exists() or (out.is_dir() and not any(out.iterdir())):
        return "new"
    meta = out / META_FILE
    if not meta.is_file():
        raise LlmopsError(
            "folder exists and was not written by llmops deploy",
            file=out,
            field="--out",
            hint="choose an empty or new folder",
        )
    try:
        same = json.loads(meta.read_text(encoding="utf-8")).get("version") == version
    except ValueError:
        same = False
    return "reuse" if same and target == "local" else "replace"


def deploy(
    root: Path,
    opts: DeployOptions,
    *,
    ml_client: Any = None,
    kubectl_context: Callable[[], str | None] | None = None,
    az_signed_in: Callable[[], bool] | None = None,
    configuration: Configuration | None = None,
    materialise_with: Callable[[UseCase, Configuration, Path, str | None], Bundle] | None = None,
) -> DeployResult:
    """Deploy ``opts.use_case`` to ``opts.target`` (see the module docstring). Raises LlmopsError for bad
    input (exit 2) and RunFailed when a step or the endpoint test fails (exit 1). ``configuration`` and
    ``materialise_with(uc, configuration, dest, test_file)`` replace steps 2 and 3 for another kind of
    bundle."""
    root = Path(root).resolve()
    if opts.target not in TARGETS:
        raise LlmopsError(
            f"unknown target '{opts.target}'", field="--target", hint=f"use one of: {', '.join(TARGETS)}"
        )
    _check_target_options(opts)
    check_name(opts.env, field="--env")
    uc = deployable_use_case(root, opts.use_case, opts.env)
    config_path = uc.path / CONFIG_REL
    entry = entry_for(config_path, opts.target, opts.env, root=root, required=opts.target != "local")
    config = configuration or resolve_configuration(
        root, uc, opts.env, require_approval=opts.require_approval, variants_text=opts.variants
    )

    tmp = Path(tempfile.mkdtemp(prefix="llmops-deploy-"))
    try:
        test_file = entry.TEST_FILE_PATH if entry else None
        if materialise_with is not None:
            bundle = materialise_with(uc, config, tmp / "bundle", test_file)
        else:
            bundle = materialise(uc, config, tmp / "bundle", test_file=test_file)
        if (
            config.approval
            and config.approval.get("verified")
            and not bundle.migrated  # its version hashes the migrated code; deploy.migrated checked it
            and config.approval.get("flow_hash") != bundle.version
        ):
            raise LlmopsError(
                f"the materialised flow's hash {bundle.version[:12]} differs from the approved {str(config.approval.get('flow_hash'))[:12]}",
                file=config.approval.get("path"),
                field="flow_hash",
                hint="nothing was deployed; approve the configuration again",
            )
        out = (
            Path(opts.out).resolve()
            if opts.out
            else default_out(root, uc, opts.env, opts.target, bundle.version)
        )
        result = DeployResult(
            target=opts.target,
            use_case=uc.name,
            env=opts.env,
            version=bundle.version,
            configuration=config.to_dict(),
            dry_run=opts.dry_run,
        )
        result.notes.extend(config.warnings)
        if entry is not None and opts.target != "local":
            result.notes.extend(fill_default_names(entry, uc.name, opts.env, bundle.version))
        state = _check_out(out, bundle.version, opts.target)
        files = [p.relative_to(bundle.folder) for p in bundle.files()]
        verb = "reuse" if state == "reuse" else "write"
        step = result.add(
            "write",
            f"{verb} the materialised flow ({config.source}; version {bundle.short_version}) in {rel(out, root)}: "
            f"{len(files)} files",
        )
        if not opts.dry_run:
            if state != "reuse":
                if out.exists():
                    shutil.rmtree(out)
                out.parent.mkdir(parents=True, exist_ok=True)
                shutil.move(str(bundle.folder), str(out))
            bundle.folder = out
            step.done = True
        for f in files:
            result.add_artifact(out / f, root)
        request = None
        if bundle.sample_request is not None:
            request = json.loads(bundle.sample_request.read_text(encoding="utf-8"))
        ctx = DeployContext(
            root=root,
            uc=uc,
            env=opts.env,
            target=opts.target,
            entry=entry,
            config=config,
            bundle=bundle,
            out=out,
            opts=opts,
            result=result,
            config_file=rel(config_path, root),
            request=request,
            expect_keys=list(bundle.outputs),
            ml_client=ml_client,
            kubectl_context=kubectl_context,
            az_signed_in=az_signed_in,
        )
        _dispatch(ctx)
        return result
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


# Options that only one kind of target reads: given to another target they would be silently ignored
# (``--traffic 20 --target azureml`` would roll out the config file's share), so they are refused.
_TARGET_OPTIONS = {
    "llm_endpoint": ("--llm-endpoint", {"local"}),
    "traffic": ("--traffic", {"local"}),
    "prior": ("--prior", {"local"}),
    "port": ("--port", {"local"}),
    "image": ("--image", {"kubernetes"}),
    "mirror": ("--mirror", {"azureml", "azureml-kubernetes"}),
}


def _check_target_options(opts: DeployOptions) -> None:
    for attr, (option, targets) in _TARGET_OPTIONS.items():
        if getattr(opts, attr) is not None and opts.target not in targets:
            raise LlmopsError(
                f"{option} only applies to --target {' or '.join(sorted(targets))}",
                field=option,
                hint=f"drop it, or set the target's entry in {CONFIG_REL.as_posix()}",
            )
    if opts.traffic is not None and not 0 < opts.traffic <= 100:
        raise LlmopsError(f"--traffic {opts.traffic} must be from 1 to 100", field="--traffic")
    if opts.port is not None and not 0 < opts.port < 65536:
        raise LlmopsError(f"--port {opts.port} must be from 1 to 65535", field="--port")


def _dispatch(ctx: DeployContext) -> None:
    if ctx.target == "local":
        from llmops_tui.deploy.local import deploy_local

        if ctx.request is None:
            raise LlmopsError(
                "the endpoint test needs a request file",
                file=ctx.uc.path / "sample-request.json",
                field="",
                hint="add sample-request.json with the flow's inputs",
            )
        deploy_local(ctx)
    elif ctx.target == "kubernetes":
        from llmops_tui.deploy.kubernetes import deploy_kubernetes

        deploy_kubernetes(ctx)
    elif ctx.target in {"azureml", "azureml-kubernetes"}:
        from llmops_tui.deploy.azureml import deploy_azureml

        deploy_azureml(ctx)
    else:
        from llmops_tui.deploy.webapp import deploy_webapp

        deploy_webapp(ctx)
