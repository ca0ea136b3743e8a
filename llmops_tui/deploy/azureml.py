"""The azureml and azureml-kubernetes targets: Azure ML online endpoints with a safe traffic rollout.

The order, which never leaves an endpoint with all traffic at zero:

1. get the endpoint; create it only when it is missing (no traffic yet);
2. create (or update) the new deployment; an endpoint update is not made, so it starts at 0 % traffic;
   wait until it is healthy (``begin_create_or_update(...).result()``);
3. optionally mirror a share of live traffic to it (``MIRROR_TRAFFIC_PERCENT`` / ``--mirror``);
4. test the new deployment directly (``invoke(..., deployment_name=new)``); on failure delete it, traffic
   never moved;
5. set the split (current N %, prior 100 - N %) in ONE endpoint update (mirroring cleared in it);
6. test the endpoint; on failure roll back: restore the previous traffic map in one update, then delete
   the new deployment.

The deployment runs the same container as the other targets (the deploy folder is its build context,
``Environment(build=BuildContext(...))`` with liveness/readiness on ``/health`` and scoring on ``/score``).
Connections are the Azure ML workspace's connections, by name: the container reads them through Prompt
flow's workspace connection provider with the endpoint's managed identity, so no key is in any setting.
A migrated flow's bundle (no Prompt flow in its image) gets them by Azure ML's secret injection instead:
each ``<NAME>_API_KEY`` / ``<NAME>_API_BASE`` variable is a reference
(``${{azureml://connections/<name>/credentials/key}}``, ``.../target``) that Azure ML resolves into the
container with the endpoint's identity (the endpoint enforces access to the default secret stores).

Workspace coordinates come from ``SUBSCRIPTION_ID``, ``RESOURCE_GROUP_NAME``, ``WORKSPACE_NAME`` or the
``azureml`` block of llmops.yaml; credentials from azure-identity's DefaultAzureCredential.
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import yaml

from llmops_tui.core.errors import LlmopsError, RunFailed
from llmops_tui.deploy.endpoint_test import EndpointTestResult, check_response
from llmops_tui.deploy.prepare import HEALTH_ROUTE, SCORE_ROUTE, SERVING_PORT

if TYPE_CHECKING:
    from llmops_tui.deploy.api import DeployContext


# Azure ML online endpoint and deployment names: 3-32 characters, letters, digits and hyphens, starting
# with a letter and not ending with a hyphen. Azure refuses anything else only after the image is built.
_AZUREML_NAME = re.compile(r"^[A-Za-z][A-Za-z0-9-]{1,30}[A-Za-z0-9]$")
# Azure ML mirrors at most 50 % of live traffic to a deployment.
MAX_MIRROR_PERCENT = 50


def check_azureml_name(value: str, *, file: str, field: str) -> None:
    """Raise LlmopsError unless ``value`` is a name Azure ML accepts for an endpoint or deployment."""
    if not _AZUREML_NAME.match(value):
        raise LlmopsError(
            f"'{value}' is not a valid Azure ML name",
            file=file,
            field=field,
            hint="3-32 letters, digits or hyphens, starting with a letter and not ending with a hyphen",
        )


class TrafficError(RuntimeError):
    """A traffic map that would leave the endpoint serving nothing."""


def safe_traffic(traffic: dict[str, int]) -> dict[str, int]:
    """Return ``traffic`` if it routes something (positive total, no negative share, total 100)."""
    clean = {k: int(v) for k, v in traffic.items()}
    if any(v < 0 for v in clean.values()) or sum(clean.values()) <= 0:
        raise TrafficError(f"refusing a traffic map that routes nothing: {clean}")
    if sum(clean.values()) != 100:
        raise TrafficError(f"traffic shares must add up to 100: {clean}")
    return clean


def workspace_coordinates(ctx: DeployContext, *, required: bool) -> dict[str, str]:
    spec = ctx.uc.extras.azureml
    coords = {
        "subscription_id": os.environ.get("SUBSCRIPTION_ID") or spec.subscription_id or "",
        "resource_group_name": os.environ.get("RESOURCE_GROUP_NAME") or spec.resource_group or "",
        "workspace_name": os.environ.get("WORKSPACE_NAME") or spec.workspace_name or "",
    }
    names = {
        "subscription_id": "SUBSCRIPTION_ID",
        "resource_group_name": "RESOURCE_GROUP_NAME",
        "workspace_name": "WORKSPACE_NAME",
    }
    fields = {
        "subscription_id": "subscription_id",
        "resource_group_name": "resource_group",
        "workspace_name": "workspace_name",
    }
    for key, value in coords.items():
        if not value:
            if required:
                raise LlmopsError(
                    "Azure ML workspace not configured",
                    file=ctx.uc.path / "llmops.yaml",
                    field=f"azureml.{fields[key]}",
                    hint=f"set {names[key]} or the azureml block of llmops.yaml",
                )
            coords[key] = f"<{names[key]}>"
    return coords


def build_entities(ctx: DeployContext, coords: dict[str, str]) -> tuple[Any, Any]:
    """The SDK's endpoint and deployment entities for this rollout (nothing is sent)."""
    from azure.ai.ml.entities import (
        BuildContext,
        Environment,
        KubernetesOnlineDeployment,
        KubernetesOnlineEndpoint,
        ManagedOnlineDeployment,
        ManagedOnlineEndpoint,
        OnlineRequestSettings,
        ProbeSettings,
        ResourceRequirementsSettings,
        ResourceSettings,
    )

    e, bundle = ctx.entry, ctx.bundle
    route = {"port": SERVING_PORT}
    environment = Environment(
        name=f"{ctx.uc.name}-{'migrated-' if bundle.migrated else ''}serving".replace("_", "-"),
        description=f"Serves {ctx.uc.name} flow version {bundle.short_version} (built by llmops deploy)",
        build=BuildContext(path=str(ctx.out)),
        inference_config={
            "liveness_route": {"path": HEALTH_ROUTE, **route},
            "readiness_route": {"path": HEALTH_ROUTE, **route},
            "scoring_route": {"path": SCORE_ROUTE, **route},
        },
    )
    provider = (
        f"azureml://subscriptions/{coords['subscription_id']}/resourceGroups/{coords['resource_group_name']}"
        f"/providers/Microsoft.MachineLearningServices/workspaces/{coords['workspace_name']}"
    )
    env_vars = dict(sorted(e.ENVIRONMENT_VARIABLES.items()))
    env_vars["LLMOPS_FLOW_VERSION"] = bundle.version
    if bundle.migrated:
        env_vars.update(secret_injection_env(bundle))
    else:
        env_vars["PROMPTFLOW_CONNECTION_PROVIDER"] = provider
    tags = {"llmops.use_case": ctx.uc.name, "llmops.env": ctx.env, "llmops.version": bundle.version}
    common: dict[str, Any] = {
        "name": e.CURRENT_DEPLOYMENT_NAME,
        "endpoint_name": e.ENDPOINT_NAME,
        "description": e.DEPLOYMENT_DESC or f"{ctx.uc.name} {bundle.short_version}",
        "environment": environment,
        "environment_variables": env_vars,
        "instance_count": e.DEPLOYMENT_INSTANCE_COUNT,
        "tags": tags,
        "request_settings": OnlineRequestSettings(request_timeout_ms=90000),
        "liveness_probe": ProbeSettings(initial_delay=20, period=10, failure_threshold=6),
        "readiness_probe": ProbeSettings(initial_delay=5, period=10, failure_threshold=3),
    }
    endpoint_args: dict[str, Any] = {
        "name": e.ENDPOINT_NAME,
        "description": e.ENDPOINT_DESC or None,
        "auth_mode": "key",
        "tags": {"llmops.use_case": ctx.uc.name},
    }
    if bundle.migrated:  # the endpoint's identity may read the workspace connections it injects
        endpoint_args["properties"] = {"enforce_access_to_default_secret_stores": "enabled"}
    collector = data_collector(ctx)
    if collector is not None:
        common["data_collector"] = collector
    if ctx.target == "azureml-kubernetes":
        if not e.COMPUTE_NAME:
            raise LlmopsError(
                "missing",
                file=ctx.config_file,
                field="kubernetes_endpoint[].COMPUTE_NAME",
                hint="name the Kubernetes compute attached to the workspace",
            )
        endpoint: Any = KubernetesOnlineEndpoint(compute=e.COMPUTE_NAME, **endpoint_args)
        amounts = {k: v for k, v in (("cpu", e.CPU_ALLOCATION), ("memory", e.MEMORY_ALLOCATION)) if v}
        resources = ResourceRequirementsSettings(requests=ResourceSettings(**amounts)) if amounts else None
        deployment: Any = KubernetesOnlineDeployment(
            instance_type=e.DEPLOYMENT_VM_SIZE or None, resources=resources, **common
        )
    else:
        endpoint = ManagedOnlineEndpoint(**endpoint_args)
        deployment = ManagedOnlineDeployment(
            instance_type=e.DEPLOYMENT_VM_SIZE or "Standard_DS3_v2", **common
        )
    return endpoint, deployment


def secret_injection_env(bundle: Any) -> dict[str, str]:
    """A migrated flow's connection variables as Azure ML secret-injection references (no value): the key
    and, unless llmops.yaml gives a usable api_base, the endpoint, from the workspace connection of the
    same name; plus the bundle's plain settings (``<NAME>_API_VERSION``)."""
    out = dict(sorted(bundle.plain_env.items()))
    for ref in bundle.connections:
        source = f"azureml://connections/{ref.name}"
        out[ref.base_env_var] = ref.api_base if ref.usable_base else "${{" + source + "/target}}"
        out[ref.key_env_var] = "${{" + source + "/credentials/key}}"
    return out


def data_collector(ctx: DeployContext) -> Any:
    """Azure ML's data collection for the deployment (payload logging: the ``request`` and ``response``
    collections, sampled at the capture sampling rate) when ``deploy --capture`` or ``capture.enabled``
    asks for it; else None. The collected files are read back with ``llmops traffic import``, where the
    drop/hash rules apply (Azure ML stores payloads as sent: see docs/ab-testing.md)."""
    import logging

    from llmops_tui.core.traffic import capture_settings

    if ctx.bundle.migrated:  # its server does not capture (llmops_tui.deploy.migrated says so in the plan)
        return None
    settings = capture_settings(ctx.root, ctx.uc, force=bool(getattr(ctx.opts, "capture", False)), salt=False)
    if not settings.enabled:
        return None
    if settings.drop or settings.hash:
        ctx.result.notes.append(
            "capture: Azure ML's data collector stores request payloads as sent; the drop/hash rules apply "
            "when `llmops traffic import` reads them"
        )
    experimental = logging.getLogger("azure.ai.ml._utils._experimental")
    level = experimental.level
    experimental.setLevel(logging.ERROR)  # the SDK logs "experimental class" for each entity
    try:
        from azure.ai.ml.entities import DataCollector, DeploymentCollection

        return DataCollector(
            collections={
                "request": DeploymentCollection(enabled="true"),
                "response": DeploymentCollection(enabled="true"),
            },
            sampling_rate=settings.sample_rate,
        )
    finally:
        experimental.setLevel(level)


def _not_found(exc: Exception) -> bool:
    try:
        from azure.core.exceptions import ResourceNotFoundError
    except ImportError:  # pragma: no cover
        return False
    return isinstance(exc, ResourceNotFoundError)


def invoke_test(
    client: Any, endpoint: str, request_file: str, expect_keys: list[str]
) -> Callable[[str | None], EndpointTestResult]:
    """A test function: invoke the endpoint (or one deployment of it) with the sample request, check keys."""

    def test(deployment: str | None) -> EndpointTestResult:
        target = f"{endpoint}/{deployment}" if deployment else endpoint
        result = EndpointTestResult(
            ok=False, url=f"azureml://{target}", expected_keys=list(expect_keys), attempts=1
        )
        try:
            raw = client.online_endpoints.invoke(
                endpoint_name=endpoint, request_file=request_file, deployment_name=deployment
            )
        except Exception as exc:  # the SDK raises many types; only the type and message matter here
            result.error = f"invoke failed: {type(exc).__name__}: {str(exc)[:200]}"
            return result
        try:
            body = json.loads(raw) if isinstance(raw, str | bytes) else raw
        except ValueError:
            result.error = "the response is not JSON"
            result.response = str(raw)[:300]
            return result
        result.status = 200
        return check_response(result, body)

    return test


def rollout(
    client: Any,
    endpoint: Any,
    deployment: Any,
    *,
    traffic: int,
    prior: str | None,
    mirror: int = 0,
    test: Callable[[str | None], EndpointTestResult],
    log: Callable[[str], None] = lambda _msg: None,
) -> dict[str, Any]:
    """Run the rollout (see the module docstring) with ``client`` (an MLClient or a stand-in). Returns a
    summary; raises RunFailed after rolling back when a test fails."""
    name, new = endpoint.name, deployment.name
    try:
        existing = client.online_endpoints.get(name)
    except Exception as exc:
        if not _not_found(exc):
            raise
        existing = None
    created = existing is None
    previous = {} if existing is None else {k: int(v) for k, v in (existing.traffic or {}).items()}
    serving = sum(previous.values()) > 0
    if traffic < 100:  # checked before anything is created
        if not prior:
            raise LlmopsError("a share below 100% needs PRIOR_DEPLOYMENT_NAME", field="PRIOR_DEPLOYMENT_NAME")
        if not serving:
            raise LlmopsError(
                f"endpoint '{name}' serves no traffic yet, so there is no prior deployment to split with",
                field="PRIOR_DEPLOYMENT_NAME",
                hint="deploy the first version with CURRENT_DEPLOYMENT_TRAFFIC_ALLOCATION 100",
            )
        if previous.get(prior, 0) <= 0:
            raise LlmopsError(
                f"prior deployment '{prior}' takes no traffic on endpoint '{name}' (traffic: {previous})",
                field="PRIOR_DEPLOYMENT_NAME",
            )
    if created:
        log(f"create endpoint {name} (missing)")
        client.online_endpoints.begin_create_or_update(endpoint).result()
    else:
        log(f"endpoint {name} exists: left as it is")
    existed = bool(previous.get(new)) or any(getattr(d, "name", None) == new for d in _list(client, name))
    log(f"create deployment {new} at 0% traffic and wait until healthy")
    client.online_deployments.begin_create_or_update(deployment).result()

    def remove_new() -> None:
        if existed:
            log(f"deployment {new} existed before this rollout: not deleted")
            return
        log(f"delete deployment {new}")
        client.online_deployments.begin_delete(name=new, endpoint_name=name).result()

    mirrored = False
    if mirror and serving:
        ep = client.online_endpoints.get(name)
        ep.mirror_traffic = {new: int(mirror)}
        log(f"mirror {mirror}% of live traffic to {new}")
        client.online_endpoints.begin_create_or_update(ep).result()
        mirrored = True
    first = test(new)
    if not first.ok:
        if mirrored:
            ep = client.online_endpoints.get(name)
            ep.mirror_traffic = {}
            client.online_endpoints.begin_create_or_update(ep).result()
        remove_new()
        raise RunFailed(f"deployment {new} failed its test before taking traffic: {first.error}")
    split = {new: traffic} if traffic >= 100 else {new: traffic, prior: 100 - traffic}
    split = safe_traffic(split)
    ep = client.online_endpoints.get(name)
    ep.traffic = split
    ep.mirror_traffic = {}
    log(f"set traffic {split} in one update")
    client.online_endpoints.begin_create_or_update(ep).result()
    second = test(None)
    summary = {
        "endpoint": name,
        "deployment": new,
        "created_endpoint": created,
        "previous_traffic": previous,
        "traffic": split,
        "tests": [first.to_dict(), second.to_dict()],
    }
    if second.ok:
        return summary
    # Roll back: the previous map comes back in one update, then the new deployment goes.
    if serving:
        ep = client.online_endpoints.get(name)
        ep.traffic = safe_traffic(previous)
        log(f"roll back: restore traffic {previous}")
        client.online_endpoints.begin_create_or_update(ep).result()
        remove_new()
        raise RunFailed(
            f"endpoint test failed after the split ({second.error}); traffic restored to {previous}"
        )
    if created:
        log(f"roll back: delete endpoint {name} created by this rollout")
        client.online_endpoints.begin_delete(name=name).result()
        raise RunFailed(
            f"endpoint test failed ({second.error}); the endpoint created by this rollout was deleted"
        )
    raise RunFailed(
        f"endpoint test failed ({second.error}); the endpoint served nothing before, so traffic was left on {new} "
        "rather than set to zero"
    )


def _list(client: Any, endpoint: str) -> list[Any]:
    try:
        return list(client.online_deployments.list(endpoint_name=endpoint))
    except Exception:
        return []


def make_client(coords: dict[str, str]) -> Any:
    from azure.ai.ml import MLClient
    from azure.identity import DefaultAzureCredential

    return MLClient(
        DefaultAzureCredential(),
        coords["subscription_id"],
        coords["resource_group_name"],
        coords["workspace_name"],
    )


def _entity_dict(entity: Any) -> dict[str, Any]:
    try:
        return json.loads(json.dumps(entity._to_dict(), default=str))
    except Exception:  # some entity fields only serialise against a workspace
        return {"name": getattr(entity, "name", None), "type": type(entity).__name__}


def deploy_azureml(ctx: DeployContext) -> None:
    """Plan and (unless dry-run) run the Azure ML rollout. Fills ``ctx.result``."""
    from llmops_tui.deploy.container import build_context_files
    from llmops_tui.deploy.prepare import pinned_requirements

    e, result = ctx.entry, ctx.result
    block = "kubernetes_endpoint[]" if ctx.target == "azureml-kubernetes" else "azure_managed_endpoint[]"
    for field in ("ENDPOINT_NAME", "CURRENT_DEPLOYMENT_NAME"):
        if not getattr(e, field):
            raise LlmopsError("missing", file=ctx.config_file, field=f"{block}.{field}")
    for field in ("ENDPOINT_NAME", "CURRENT_DEPLOYMENT_NAME", "PRIOR_DEPLOYMENT_NAME"):
        if getattr(e, field):
            check_azureml_name(getattr(e, field), file=ctx.config_file, field=f"{block}.{field}")
    mirror = ctx.opts.mirror if ctx.opts.mirror is not None else (e.MIRROR_TRAFFIC_PERCENT or 0)
    if not 0 <= mirror <= MAX_MIRROR_PERCENT:
        hint = f"Azure ML mirrors from 0 to {MAX_MIRROR_PERCENT}% of live traffic"
        if ctx.opts.mirror is not None:
            raise LlmopsError(f"--mirror {mirror} is out of range", field="--mirror", hint=hint)
        raise LlmopsError(
            f"{mirror}% is out of range",
            file=ctx.config_file,
            field=f"{block}.MIRROR_TRAFFIC_PERCENT",
            hint=hint,
        )
    coords = workspace_coordinates(ctx, required=not ctx.opts.dry_run and ctx.ml_client is None)
    for rel_path, text in build_context_files(ctx.bundle, ctx.uc.name).items():
        ctx.write(rel_path, text)
    if not ctx.bundle.migrated:
        # On Azure ML the container reads workspace connections: it needs Prompt flow's Azure extras.
        reqs = pinned_requirements(ctx.bundle.flow_dir)
        reqs[0] = reqs[0].replace("promptflow==", "promptflow[azure]==")
        ctx.write("requirements.txt", "\n".join(reqs) + "\n")
    endpoint, deployment = build_entities(ctx, coords)
    ctx.write(
        "azureml/endpoint.yaml",
        yaml.safe_dump(_entity_dict(endpoint), sort_keys=False),
        obj=_entity_dict(endpoint),
    )
    ctx.write(
        "azureml/deployment.yaml",
        yaml.safe_dump(_entity_dict(deployment), sort_keys=False),
        obj=_entity_dict(deployment),
    )
    traffic = e.current_traffic
    prior = e.PRIOR_DEPLOYMENT_NAME or None
    split = {
        e.CURRENT_DEPLOYMENT_NAME: traffic,
        **({prior: 100 - traffic} if prior and traffic < 100 else {}),
    }
    where = f"{coords['subscription_id']}/{coords['resource_group_name']}/{coords['workspace_name']}"
    plan = [
        (
            "call",
            f"online_endpoints.get({e.ENDPOINT_NAME}); begin_create_or_update(endpoint) only if missing",
        ),
        (
            "call",
            f"online_deployments.begin_create_or_update({e.CURRENT_DEPLOYMENT_NAME}).result(): at 0% traffic, wait healthy",
        ),
    ]
    if mirror:
        plan.append(
            (
                "call",
                f"mirror {mirror}% of live traffic to {e.CURRENT_DEPLOYMENT_NAME} (only when the endpoint serves)",
            )
        )
    plan += [
        ("test", f"invoke {e.ENDPOINT_NAME} deployment {e.CURRENT_DEPLOYMENT_NAME} with {e.TEST_FILE_PATH}"),
        ("call", f"one endpoint update: traffic {split}"),
        (
            "test",
            f"invoke {e.ENDPOINT_NAME}; on failure restore the previous traffic map, delete {e.CURRENT_DEPLOYMENT_NAME}",
        ),
    ]
    steps = [result.add(action, summary) for action, summary in plan]
    result.deployment = {
        "workspace": where,
        "endpoint": e.ENDPOINT_NAME,
        "deployment": e.CURRENT_DEPLOYMENT_NAME,
        "traffic": split,
        "kind": type(deployment).__name__,
    }
    if ctx.opts.dry_run:
        return
    if ctx.bundle.sample_request is None:
        raise LlmopsError(
            "the endpoint test needs a request file", file=ctx.config_file, field=f"{block}.TEST_FILE_PATH"
        )
    client = ctx.ml_client or make_client(coords)
    test = invoke_test(client, e.ENDPOINT_NAME, str(ctx.bundle.sample_request), ctx.expect_keys)
    log_lines: list[str] = []
    try:
        summary = rollout(
            client,
            endpoint,
            deployment,
            traffic=traffic,
            prior=prior,
            mirror=mirror,
            test=test,
            log=log_lines.append,
        )
    finally:
        result.notes.extend(log_lines)
    for step in steps:
        step.done = True
    result.test = summary["tests"][-1]
    result.deployment.update(
        {"previous_traffic": summary["previous_traffic"], "created_endpoint": summary["created_endpoint"]}
    )
    try:
        scoring = client.online_endpoints.get(e.ENDPOINT_NAME).scoring_uri
        result.endpoint_url = str(scoring) if scoring else None
    except Exception:
        result.endpoint_url = None
