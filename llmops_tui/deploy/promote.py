"""Promote an A/B arm (or roll back to the control) by the target's own traffic mechanism.

- ``local``: the running A/B router's weights change live (``POST /admin/weights`` with its token); no
  request is dropped and the shared URL stays the same.
- ``kubernetes``: the deploy folder's ``k8s/httproute.yaml`` backend weights are rewritten (validated like
  at deploy time) and applied with ``kubectl apply`` when a context is available; moving traffic is one
  change to one object.
- ``azureml``: the endpoint's traffic map is set in ONE endpoint update (never a zero-traffic window).

An arm is promoted only when the flow version it serves is approved for the environment: the current
approval record must verify (:func:`llmops_tui.core.approval.verify_approval`, as ``deploy
--require-approval`` does) and name that version; a rollback target must be named by a signed approval of
the environment's history. Every promotion and rollback is appended to ``approvals/promotions.jsonl``
beside the approval records: who, what, the weights before and after, and why.
"""

from __future__ import annotations

import getpass
import json
import time
from pathlib import Path
from typing import Any

from llmops_tui.core.errors import LlmopsError, RunFailed
from llmops_tui.deploy import registry

PROMOTIONS_FILE = "promotions.jsonl"


def _who(by: str | None) -> str:
    if by:
        return by
    try:
        return getpass.getuser()
    except (OSError, KeyError):
        return "unknown"


def check_approved(root: Path, uc: Any, env: str, version: str, *, rollback: bool = False) -> dict[str, Any]:
    """The approval that covers ``version`` for ``env``, or LlmopsError saying why not. A promotion needs
    the current, verified approval to name the version; a rollback accepts a signed approval from the
    environment's history (the control was approved before the candidate)."""
    from llmops_tui.core import approval as ap

    result = ap.verify_approval(root, uc, env)
    record = result.record or {}
    if result.ok and str(record.get("flow_hash", "")).startswith(version):
        return record
    if rollback:
        try:
            key = ap.load_approval_key()
        except LlmopsError:
            key = None
        for _, old in reversed(ap.history_records(uc, env)):
            if (
                key is not None
                and old.get("decision") == "approved"
                and str(old.get("flow_hash", "")).startswith(version)
                and ap.signature_valid(old, key)
            ):
                return old
    why = (
        "; ".join(result.reasons)
        if not result.ok
        else (f"the approved version is {str(record.get('flow_hash', ''))[:12]}, not {version[:12]}")
    )
    raise LlmopsError(
        f"version {version[:12]} is not approved for env '{env}': {why}",
        file=ap.current_path(uc, env),
        field="--arm",
        hint="approve that configuration for this environment first (`llmops approve`)",
    )


def record_promotion(uc: Any, entry: dict[str, Any]) -> Path:
    """Append one promotion record beside the approval records; returns the file."""
    from llmops_tui.core.approval import approvals_dir

    folder = approvals_dir(uc)
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / PROMOTIONS_FILE
    with open(path, "a", encoding="utf-8") as fh:
        fh.write(json.dumps(entry, sort_keys=True) + "\n")
    return path


def read_promotions(uc: Any, env: str | None = None) -> list[dict[str, Any]]:
    from llmops_tui.core.approval import approvals_dir

    path = approvals_dir(uc) / PROMOTIONS_FILE
    if not path.is_file():
        return []
    out = []
    for line in path.read_text(encoding="utf-8").splitlines():
        try:
            item = json.loads(line)
        except ValueError:
            continue
        if env is None or item.get("env") == env:
            out.append(item)
    return out


def _split(names: list[str], arm: str, weight: int) -> dict[str, int]:
    others = [n for n in names if n != arm]
    out = {arm: weight}
    for i, n in enumerate(others):
        out[n] = (100 - weight) if i == 0 else 0
    return out


def _pick(names: list[str], roles: dict[str, str], arm: str) -> str:
    wanted = roles.get(arm.upper(), arm) if arm.upper() in {"A", "B"} else arm
    matches = [n for n in names if n == wanted] or [n for n in names if n.startswith(wanted)]
    if len(matches) != 1:
        known = ", ".join(f"{r}={n}" for r, n in sorted(roles.items())) or ", ".join(names)
        raise LlmopsError(f"no single arm '{arm}'", field="--arm", hint=f"arms: {known}")
    return matches[0]


# --------------------------------------------------------------------------------------------- local


def _local_router(root: Path, uc_name: str, env: str) -> dict[str, Any]:
    routers = [
        d
        for d in registry.load(root)
        if d.get("kind") == "router"
        and d.get("use_case") == uc_name
        and d.get("env") == env
        and d.get("alive")
    ]
    if not routers:
        raise LlmopsError(
            f"no running A/B router for '{uc_name}' env '{env}'",
            field="--env",
            hint="deploy a second version with --traffic N (see `llmops deployments`)",
        )
    return routers[-1]


def _full_version(root: Path, uc_name: str, env: str, short: str) -> str:
    for d in registry.load(root):
        if (
            d.get("kind") == "flow"
            and d.get("use_case") == uc_name
            and str(d.get("version", "")).startswith(short)
        ):
            return str(d["version"])
    return short


def set_router_weights(router: dict[str, Any], weights: dict[str, int]) -> dict[str, int]:
    """Change a running router's weights live; returns the weights it now uses."""
    import httpx

    token = (
        Path(str(router.get("token_file") or "")).read_text(encoding="utf-8").strip()
        if router.get("token_file")
        else ""
    )
    if not token:
        raise RunFailed(
            "this router was started without an admin token; redeploy the A/B split to promote live"
        )
    with httpx.Client(trust_env=False, timeout=10) as client:
        resp = client.post(
            str(router["url"]) + "/admin/weights",
            json={"weights": weights},
            headers={"X-LLMOps-Router-Token": token},
        )
    if resp.status_code != 200:
        raise RunFailed(f"the router refused the new weights: HTTP {resp.status_code} {resp.text[:200]}")
    return dict(resp.json()["weights"])


def promote_local(
    root: Path, uc: Any, env: str, arm: str, weight: int, *, rollback: bool = False
) -> dict[str, Any]:
    router = _local_router(root, uc.name, env)
    names = [str(b["version"]) for b in router.get("backends") or []]
    roles = dict(router.get("roles") or {})
    name = _pick(names, roles, arm)
    version = _full_version(root, uc.name, env, name)
    approval = check_approved(root, uc, env, version, rollback=rollback)
    before = {str(b["version"]): int(b["weight"]) for b in router.get("backends") or []}
    after = set_router_weights(router, _split(names, name, weight))
    updated = dict(router)
    updated["backends"] = [{**b, "weight": after.get(str(b["version"]), 0)} for b in router["backends"]]
    updated["version"] = ",".join(f"{n}={w}" for n, w in after.items())
    updated.pop("alive", None)
    registry.remove(root, {str(router["id"])})
    registry.add(root, updated)
    return {
        "arm": name,
        "version": version,
        "before": before,
        "after": after,
        "approval_sequence": approval.get("sequence"),
        "mechanism": f"router weights at {router['url']} (live)",
        "traffic_run": router.get("capture_run"),
    }


# ---------------------------------------------------------------------------------------- kubernetes


def promote_kubernetes(
    root: Path,
    uc: Any,
    env: str,
    arm: str,
    weight: int,
    *,
    folder: Path | None = None,
    rollback: bool = False,
    kubectl_context: Any = None,
) -> dict[str, Any]:
    import yaml

    from llmops_tui.deploy.kubernetes import manifest_yaml, validate_httproute

    folder = folder or (Path(root) / ".llmops" / "deploy" / uc.name / env / "kubernetes")
    route_file = folder / "k8s" / "httproute.yaml"
    if not route_file.is_file():
        raise LlmopsError(
            "no HTTPRoute", file=route_file, field="--env", hint="deploy --target kubernetes first"
        )
    route = yaml.safe_load(route_file.read_text(encoding="utf-8"))
    refs = route["spec"]["rules"][0]["backendRefs"]
    names = [str(r["name"]) for r in refs]
    roles = {"B": names[0], "A": names[1]} if len(names) > 1 else {"B": names[0]}
    name = _pick(names, roles, arm)
    version = ""
    for path in (folder / "k8s").glob("deployment-*.yaml"):
        dep = yaml.safe_load(path.read_text(encoding="utf-8"))
        if dep.get("metadata", {}).get("name") == name:
            version = str(dep["metadata"].get("labels", {}).get("llmops.io/version", ""))
    if not version:
        raise LlmopsError(
            f"no manifest in {folder / 'k8s'} says which flow version '{name}' serves",
            field="--arm",
            hint="promote an arm deployed by llmops deploy --target kubernetes",
        )
    approval = check_approved(root, uc, env, version, rollback=rollback)
    before = {str(r["name"]): int(r.get("weight", 1)) for r in refs}
    after = _split(names, name, weight)
    for r in refs:
        r["weight"] = after[str(r["name"])]
    validate_httproute(route)
    route_file.write_text(manifest_yaml(route), encoding="utf-8")
    applied = False
    if kubectl_context is not None and kubectl_context():
        import subprocess

        proc = subprocess.run(
            ["kubectl", "apply", "-f", str(route_file)],
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )
        if proc.returncode != 0:
            raise RunFailed(f"kubectl apply failed: {proc.stderr.strip()[:300]}")
        applied = True
    return {
        "arm": name,
        "version": version,
        "before": before,
        "after": after,
        "approval_sequence": approval.get("sequence"),
        "mechanism": f"HTTPRoute weights in {route_file}"
        + (" (applied)" if applied else " (apply with kubectl)"),
    }


# ------------------------------------------------------------------------------------------- azureml


def promote_azureml(
    root: Path,
    uc: Any,
    env: str,
    arm: str,
    weight: int,
    *,
    ml_client: Any,
    endpoint: str,
    rollback: bool = False,
) -> dict[str, Any]:
    from llmops_tui.deploy.azureml import safe_traffic

    ep = ml_client.online_endpoints.get(endpoint)
    before = {k: int(v) for k, v in (ep.traffic or {}).items()}
    names = sorted(before, key=lambda n: -before[n])
    if arm not in before:
        raise LlmopsError(
            f"no deployment '{arm}' takes part in endpoint '{endpoint}' (traffic: {before})",
            field="--arm",
            hint="name an Azure ML deployment of the endpoint",
        )
    dep = ml_client.online_deployments.get(name=arm, endpoint_name=endpoint)
    version = str((dep.tags or {}).get("llmops.version") or "")
    if not version:
        raise LlmopsError(f"deployment '{arm}' has no llmops.version tag", field="--arm")
    approval = check_approved(root, uc, env, version, rollback=rollback)
    after = safe_traffic(_split([arm] + [n for n in names if n != arm], arm, weight))
    ep.traffic = after
    ml_client.online_endpoints.begin_create_or_update(ep).result()  # one update: no zero-traffic window
    return {
        "arm": arm,
        "version": version,
        "before": before,
        "after": after,
        "approval_sequence": approval.get("sequence"),
        "mechanism": f"Azure ML endpoint {endpoint} traffic (one update)",
    }


# --------------------------------------------------------------------------------------------- entry


def promote(
    root: Path,
    use_case: str,
    env: str,
    arm: str,
    *,
    weight: int = 100,
    target: str = "local",
    reason: str = "",
    by: str | None = None,
    rollback: bool = False,
    ml_client: Any = None,
    endpoint: str | None = None,
    folder: Path | None = None,
    kubectl_context: Any = None,
) -> dict[str, Any]:
    """Shift ``weight`` % of traffic to ``arm`` (the rest to the other arm) and record it (see module
    docstring). Returns the promotion record."""
    from llmops_tui.core.approval import use_case_for_env

    if not 0 < weight <= 100:
        raise LlmopsError(f"--weight {weight} must be from 1 to 100", field="--weight")
    root = Path(root).resolve()
    uc = use_case_for_env(root, use_case, env)
    if target == "local":
        done = promote_local(root, uc, env, arm, weight, rollback=rollback)
    elif target == "kubernetes":
        done = promote_kubernetes(
            root, uc, env, arm, weight, folder=folder, rollback=rollback, kubectl_context=kubectl_context
        )
    elif target in {"azureml", "azureml-kubernetes"}:
        if ml_client is None or not endpoint:
            raise LlmopsError("an Azure ML promotion needs the endpoint", field="--endpoint")
        done = promote_azureml(
            root, uc, env, arm, weight, ml_client=ml_client, endpoint=endpoint, rollback=rollback
        )
    else:
        raise LlmopsError(f"unknown target '{target}'", field="--target", hint="local | kubernetes | azureml")
    entry = {
        "action": "rollback" if rollback else "promote",
        "use_case": uc.name,
        "env": env,
        "target": target,
        "by": _who(by),
        "reason": reason,
        "at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "weight": weight,
        **done,
    }
    entry["record"] = str(record_promotion(uc, entry))
    return entry
