"""The kubernetes target: manifests for the new version, and weighted routing between versions.

Written to ``<out>/k8s/``:

- ``deployment-<name>.yaml``: a Deployment of the new version (replicas ``DEPLOYMENT_INSTANCE_COUNT``;
  readiness and liveness probes on ``/health``; a migrated flow's
  bundle runs its own image the same way; requests and limits from ``CPU_ALLOCATION`` /
  ``MEMORY_ALLOCATION``; env from ``ENVIRONMENT_VARIABLES``; each connection key only as a
  ``secretKeyRef`` to the Kubernetes Secret ``SECRET_NAME`` (default ``<endpoint>-llm-keys``));
- ``service-<name>.yaml``: a Service per version (the route's backends);
- ``httproute.yaml``: a Gateway API HTTPRoute sending ``CURRENT_DEPLOYMENT_TRAFFIC_ALLOCATION`` % to the new
  version and the rest to ``PRIOR_DEPLOYMENT_NAME``'s Service, in one object, so a rollout is one apply
  and traffic never drops to zero;
- ``all.yaml``: everything above in apply order (Services and Deployment before the route).

They are applied with ``kubectl apply -f`` when ``kubectl`` exists and has a current context, otherwise
only written. The Secret itself is never written: the plan prints the ``kubectl create secret`` command
that reads the key from your environment.
"""

from __future__ import annotations

import hashlib
import re
import shlex
import shutil
import subprocess
from typing import TYPE_CHECKING, Any

import yaml

from llmops_tui.core.errors import LlmopsError, RunFailed
from llmops_tui.deploy.prepare import HEALTH_ROUTE, SERVING_PORT

if TYPE_CHECKING:
    from llmops_tui.deploy.api import DeployContext

GATEWAY_GROUP = "gateway.networking.k8s.io"
SERVICE_PORT = 80
_DNS = re.compile(r"[^a-z0-9-]+")


def dns_name(*parts: str, limit: int = 63) -> str:
    """A DNS-1035 label from ``parts``: lowercase letters, digits and ``-``, starting with a letter, at most
    ``limit`` characters. A name that has to be shortened ends with a hash of the full name, so two long
    names that share a prefix (``<endpoint>-blue`` and ``<endpoint>-green``) never collide."""
    text = _DNS.sub("-", "-".join(p for p in parts if p).lower()).strip("-")
    text = re.sub("-{2,}", "-", text) or "llmops"
    if not text[0].isalpha():  # Service names (DNS-1035) must start with a letter
        text = f"x-{text}"
    if len(text) > limit:
        digest = hashlib.sha256(text.encode("utf-8")).hexdigest()[:8]
        text = f"{text[: limit - 9].rstrip('-')}-{digest}"
    return text


def _check_namespace(ctx: DeployContext) -> None:
    namespace = ctx.entry.NAMESPACE
    if namespace and not re.fullmatch(r"[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?", namespace):
        raise LlmopsError(
            f"'{namespace}' is not a valid Kubernetes namespace",
            file=ctx.config_file,
            field="kubernetes_endpoint[].NAMESPACE",
            hint="up to 63 lowercase letters, digits or '-', starting and ending with a letter or digit",
        )


def _labels(endpoint: str, deployment: str, version: str | None = None) -> dict[str, str]:
    out = {
        "app.kubernetes.io/name": endpoint,
        "app.kubernetes.io/managed-by": "llmops",
        "llmops.io/deployment": deployment,
    }
    if version:
        out["llmops.io/version"] = version[:12]
    return out


def _meta(
    name: str, namespace: str, labels: dict[str, str], annotations: dict[str, str] | None = None
) -> dict[str, Any]:
    meta: dict[str, Any] = {"name": name, "labels": labels}
    if namespace:
        meta["namespace"] = namespace
    if annotations:
        meta["annotations"] = annotations
    return meta


def _resources(cpu: str, memory: str) -> dict[str, Any] | None:
    amounts = {k: v for k, v in (("cpu", cpu.strip()), ("memory", memory.strip())) if v}
    return {"requests": dict(amounts), "limits": dict(amounts)} if amounts else None


def _capture_settings(ctx: DeployContext) -> Any:
    """Capture settings when ``deploy --capture`` or ``capture.enabled`` asks for it; else None (always for
    a migrated flow, whose server does not capture: llmops_tui.deploy.migrated says so in the plan)."""
    from llmops_tui.core.traffic import capture_settings

    if ctx.bundle.migrated:
        return None

    settings = capture_settings(ctx.root, ctx.uc, force=bool(getattr(ctx.opts, "capture", False)), salt=False)
    return settings if settings.enabled else None


def secret_command(name: str, keys: list[str], namespace: str | None = None) -> list[str]:
    """The ``kubectl create secret`` command that takes each key's value from the environment variable of
    the same name. Wrapped in ``sh -c`` so that, printed shell-quoted (as every plan command is), the
    shell still expands ``"$KEY"`` when it runs: a bare ``'--from-literal=KEY=${KEY}'`` would store the
    text ``${KEY}`` as the key."""
    for key in keys:
        if not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", key):
            raise ValueError(f"not an environment variable name: {key!r}")
    words = ["kubectl", "create", "secret", "generic", shlex.quote(name)]
    if namespace:
        words += ["--namespace", shlex.quote(namespace)]
    words += [f'--from-literal={key}="${key}"' for key in keys]
    return ["sh", "-c", " ".join(words)]


def build_manifests(ctx: DeployContext, image: str) -> dict[str, dict[str, Any]]:
    """File name -> manifest object (plain dicts), for the current version."""
    entry = ctx.entry
    bundle = ctx.bundle
    endpoint = dns_name(entry.ENDPOINT_NAME or ctx.uc.name)
    current = dns_name(entry.CURRENT_DEPLOYMENT_NAME or f"v-{bundle.short_version}")
    namespace = entry.NAMESPACE
    secret = dns_name(entry.SECRET_NAME or f"{endpoint}-llm-keys", limit=253)
    name = dns_name(endpoint, current)
    labels = _labels(endpoint, current, bundle.version)
    selector = _labels(endpoint, current)
    env: list[dict[str, Any]] = [
        {"name": k, "value": v} for k, v in sorted(entry.ENVIRONMENT_VARIABLES.items())
    ]
    env.append({"name": "LLMOPS_FLOW_VERSION", "value": bundle.version})
    env.extend({"name": k, "value": v} for k, v in sorted(bundle.plain_env.items()))
    for ref in bundle.connections:
        if ref.usable_base:
            env.append({"name": ref.base_env_var, "value": ref.api_base})
        env.append(
            {"name": ref.key_env_var, "valueFrom": {"secretKeyRef": {"name": secret, "key": ref.key_env_var}}}
        )
    capture = _capture_settings(ctx)
    if capture is not None:
        from llmops_tui.core.traffic import capture_env

        # Each request and answer as one JSON line on stdout (`kubectl logs` -> `llmops traffic import`).
        env.extend(capture_env(capture, name, ctx.config.to_dict()))
        if capture.hash:  # the hashing key of redacted fields comes from the same Secret, never a manifest
            env.append(
                {
                    "name": "LLMOPS_CAPTURE_SALT",
                    "valueFrom": {"secretKeyRef": {"name": secret, "key": "LLMOPS_CAPTURE_SALT"}},
                }
            )
    probe = {
        "httpGet": {"path": HEALTH_ROUTE, "port": SERVING_PORT},
        "periodSeconds": 10,
        "timeoutSeconds": 3,
    }
    container: dict[str, Any] = {
        "name": "flow",
        "image": image,
        "imagePullPolicy": "IfNotPresent",
        "ports": [{"name": "http", "containerPort": SERVING_PORT, "protocol": "TCP"}],
        "env": env,
        "readinessProbe": {**probe, "initialDelaySeconds": 5, "failureThreshold": 3},
        "livenessProbe": {**probe, "initialDelaySeconds": 20, "failureThreshold": 6},
        "securityContext": {"runAsNonRoot": True, "allowPrivilegeEscalation": False},
    }
    resources = _resources(entry.CPU_ALLOCATION, entry.MEMORY_ALLOCATION)
    if resources:
        container["resources"] = resources
    annotations = {
        "llmops.io/use-case": ctx.uc.name,
        "llmops.io/env": ctx.env,
        "llmops.io/configuration": ctx.config.source,
    }
    deployment = {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": _meta(name, namespace, labels, annotations),
        "spec": {
            "replicas": entry.DEPLOYMENT_INSTANCE_COUNT,
            "selector": {"matchLabels": selector},
            "template": {"metadata": {"labels": labels}, "spec": {"containers": [container]}},
        },
    }
    service = {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": _meta(name, namespace, labels),
        "spec": {
            "selector": selector,
            "ports": [{"name": "http", "port": SERVICE_PORT, "targetPort": SERVING_PORT, "protocol": "TCP"}],
        },
    }
    backends = [
        {"group": "", "kind": "Service", "name": name, "port": SERVICE_PORT, "weight": entry.current_traffic}
    ]
    if entry.PRIOR_DEPLOYMENT_NAME:
        prior = dns_name(endpoint, dns_name(entry.PRIOR_DEPLOYMENT_NAME))
        backends.append(
            {
                "group": "",
                "kind": "Service",
                "name": prior,
                "port": SERVICE_PORT,
                "weight": entry.prior_traffic,
            }
        )
    parent: dict[str, Any] = {"group": GATEWAY_GROUP, "kind": "Gateway", "name": dns_name(entry.GATEWAY_NAME)}
    route = {
        "apiVersion": f"{GATEWAY_GROUP}/v1",
        "kind": "HTTPRoute",
        "metadata": _meta(
            endpoint,
            namespace,
            {"app.kubernetes.io/name": endpoint, "app.kubernetes.io/managed-by": "llmops"},
        ),
        "spec": {
            "parentRefs": [parent],
            "rules": [{"matches": [{"path": {"type": "PathPrefix", "value": "/"}}], "backendRefs": backends}],
        },
    }
    return {
        f"service-{current}.yaml": service,
        f"deployment-{current}.yaml": deployment,
        "httproute.yaml": route,
    }


# A JSON schema for the parts of Gateway API v1 HTTPRoute we write (from the Gateway API spec:
# backendRef weight 0..1000000, port 1..65535, path match types, at most 16 rules / backendRefs).
_NAME = {"type": "string", "minLength": 1, "maxLength": 253, "pattern": r"^[a-z0-9]([-a-z0-9.]*[a-z0-9])?$"}
HTTPROUTE_SCHEMA: dict[str, Any] = {
    "$schema": "https://json-schema.org/draft/2020-12/schema",
    "type": "object",
    "required": ["apiVersion", "kind", "metadata", "spec"],
    "properties": {
        "apiVersion": {"const": f"{GATEWAY_GROUP}/v1"},
        "kind": {"const": "HTTPRoute"},
        "metadata": {
            "type": "object",
            "required": ["name"],
            "properties": {
                "name": _NAME,
                "namespace": {"type": "string"},
                "labels": {"type": "object", "additionalProperties": {"type": "string"}},
                "annotations": {"type": "object", "additionalProperties": {"type": "string"}},
            },
        },
        "spec": {
            "type": "object",
            "additionalProperties": False,
            "properties": {
                "hostnames": {"type": "array", "items": {"type": "string"}, "maxItems": 16},
                "parentRefs": {
                    "type": "array",
                    "maxItems": 32,
                    "items": {
                        "type": "object",
                        "required": ["name"],
                        "additionalProperties": False,
                        "properties": {
                            "group": {"type": "string"},
                            "kind": {"type": "string"},
                            "name": _NAME,
                            "namespace": {"type": "string"},
                            "sectionName": {"type": "string"},
                            "port": {"type": "integer", "minimum": 1, "maximum": 65535},
                        },
                    },
                },
                "rules": {
                    "type": "array",
                    "maxItems": 16,
                    "items": {
                        "type": "object",
                        "additionalProperties": False,
                        "properties": {
                            "matches": {
                                "type": "array",
                                "maxItems": 64,
                                "items": {
                                    "type": "object",
                                    "properties": {
                                        "path": {
                                            "type": "object",
                                            "additionalProperties": False,
                                            "properties": {
                                                "type": {
                                                    "enum": ["Exact", "PathPrefix", "RegularExpression"]
                                                },
                                                "value": {
                                                    "type": "string",
                                                    "pattern": "^/",
                                                    "maxLength": 1024,
                                                },
                                            },
                                        }
                                    },
                                },
                            },
                            "backendRefs": {
                                "type": "array",
                                "maxItems": 16,
                                "items": {
                                    "type": "object",
                                    "required": ["name"],
                                    "additionalProperties": False,
                                    "properties": {
                                        "group": {"type": "string"},
                                        "kind": {"type": "string"},
                                        "name": _NAME,
                                        "namespace": {"type": "string"},
                                        "port": {"type": "integer", "minimum": 1, "maximum": 65535},
                                        "weight": {"type": "integer", "minimum": 0, "maximum": 1000000},
                                    },
                                },
                            },
                        },
                    },
                },
            },
        },
    },
}


def validate_httproute(route: dict[str, Any]) -> None:
    """Raise ValueError when ``route`` breaks the HTTPRoute schema above, or routes no traffic at all."""
    import jsonschema

    jsonschema.validate(route, HTTPROUTE_SCHEMA)
    for rule in route["spec"].get("rules", []):
        refs = rule.get("backendRefs") or []
        if refs and sum(int(r.get("weight", 1)) for r in refs) <= 0:
            raise ValueError("every backendRef has weight 0: the route would drop all traffic")


class _PlainDumper(yaml.SafeDumper):
    """No ``&id001`` anchors or ``*id001`` aliases for shared sub-objects: manifests are read by people."""

    def ignore_aliases(self, data: Any) -> bool:
        return True


def manifest_yaml(obj: dict[str, Any]) -> str:
    return yaml.dump(obj, Dumper=_PlainDumper, sort_keys=False)


def to_yaml(objects: list[dict[str, Any]]) -> str:
    return "---\n".join(manifest_yaml(o) for o in objects)


def kubectl_context() -> str | None:
    """The current kubectl context, or None when kubectl is missing or has none."""
    if not shutil.which("kubectl"):
        return None
    try:
        proc = subprocess.run(
            ["kubectl", "config", "current-context"], capture_output=True, text=True, timeout=10, check=False
        )
    except (OSError, subprocess.TimeoutExpired):
        return None
    return proc.stdout.strip() if proc.returncode == 0 and proc.stdout.strip() else None


def deploy_kubernetes(ctx: DeployContext) -> None:
    """Write (and, with a kubectl context, apply) the manifests. Fills ``ctx.result``."""
    from llmops_tui.deploy.container import build_context_files

    entry, result, bundle = ctx.entry, ctx.result, ctx.bundle
    if not entry.ENDPOINT_NAME:
        raise LlmopsError("missing", file=ctx.config_file, field="kubernetes_endpoint[].ENDPOINT_NAME")
    _check_namespace(ctx)
    registry = entry.REGISTRY_NAME
    default_repo = (
        f"{registry}.azurecr.io/{dns_name(ctx.uc.name)}" if registry else f"llmops/{dns_name(ctx.uc.name)}"
    )
    image = ctx.opts.image or entry.IMAGE or f"{default_repo}:{bundle.short_version}"
    if ":" not in image.rsplit("/", 1)[-1]:
        image = f"{image}:{bundle.short_version}"
    for rel_path, text in build_context_files(bundle, ctx.uc.name).items():
        ctx.write(rel_path, text)
    result.add(
        "run",
        "build and push the image from the deploy folder",
        command=["docker", "build", "-t", image, str(ctx.out)],
    )
    result.add("run", "push the image", command=["docker", "push", image])
    manifests = build_manifests(ctx, image)
    validate_httproute(manifests["httproute.yaml"])
    deployment = manifests[next(k for k in manifests if k.startswith("deployment-"))]
    container_env = deployment["spec"]["template"]["spec"]["containers"][0]["env"]
    secret_refs = [e["valueFrom"]["secretKeyRef"] for e in container_env if "valueFrom" in e]
    if secret_refs:
        result.add(
            "note",
            "create the Secret once, from your environment (the value is never written by llmops)",
            command=secret_command(secret_refs[0]["name"], [r["key"] for r in secret_refs], entry.NAMESPACE),
        )
    for name, obj in manifests.items():
        ctx.write(f"k8s/{name}", manifest_yaml(obj), obj=obj)
    ctx.write("k8s/all.yaml", to_yaml(list(manifests.values())))
    apply_cmd = ["kubectl", "apply", "-f", str(ctx.out / "k8s" / "all.yaml")]
    context = None if ctx.opts.dry_run else (ctx.kubectl_context or kubectl_context)()
    step = result.add(
        "run", "apply the manifests (Services and Deployment, then the route)", command=apply_cmd
    )
    result.deployment = {
        "image": image,
        "objects": [f"{o['kind']}/{o['metadata']['name']}" for o in manifests.values()],
        "traffic": {
            b["name"]: b["weight"] for b in manifests["httproute.yaml"]["spec"]["rules"][0]["backendRefs"]
        },
    }
    if ctx.opts.dry_run:
        return
    if context is None:
        step.skipped = "kubectl has no current context: manifests written only"
        result.notes.append(
            f"manifests written to {ctx.display(ctx.out / 'k8s')}; apply them with: {' '.join(apply_cmd)}"
        )
        return
    proc = subprocess.run(apply_cmd, capture_output=True, text=True, check=False)
    if proc.returncode != 0:
        raise RunFailed(f"kubectl apply failed in context {context}: {proc.stderr.strip()[:400]}")
    step.done = True
    result.notes.append(
        f"applied in kubectl context {context}; test through the gateway with `llmops endpoint-test URL`"
    )
