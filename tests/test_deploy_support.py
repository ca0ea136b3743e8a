"""Shared helpers of the deploy tests: a workspace holding a copy of a bundled use case, a deployment
config with every target, and a signed approval record. (Imported by the test_deploy_* modules.)"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
USE_CASE = "named_entity_recognition"
CANARY = "sk-canary-7f3e9d1c2b4a"
APPROVAL_KEY = "test-approval-key-0123456789abcdef"

DEPLOYMENT_CONFIG = {
    "azure_managed_endpoint": [
        {
            "ENV_NAME": "dev",
            "TEST_FILE_PATH": "sample-request.json",
            "ENDPOINT_NAME": "ner-endpoint",
            "CURRENT_DEPLOYMENT_NAME": "blue",
            "CURRENT_DEPLOYMENT_TRAFFIC_ALLOCATION": "100",
            "PRIOR_DEPLOYMENT_NAME": "",
            "PRIOR_DEPLOYMENT_TRAFFIC_ALLOCATION": "",
            "DEPLOYMENT_VM_SIZE": "Standard_F4s_v2",
            "DEPLOYMENT_INSTANCE_COUNT": 1,
            "ENVIRONMENT_VARIABLES": {"LOG_LEVEL": "info"},
        },
        {
            "ENV_NAME": "prod",
            "TEST_FILE_PATH": "sample-request.json",
            "ENDPOINT_NAME": "ner-endpoint",
            "CURRENT_DEPLOYMENT_NAME": "green",
            "CURRENT_DEPLOYMENT_TRAFFIC_ALLOCATION": "20",
            "PRIOR_DEPLOYMENT_NAME": "blue",
            "PRIOR_DEPLOYMENT_TRAFFIC_ALLOCATION": "80",
            "DEPLOYMENT_VM_SIZE": "Standard_F4s_v2",
            "DEPLOYMENT_INSTANCE_COUNT": 2,
            "ENVIRONMENT_VARIABLES": {"LOG_LEVEL": "info"},
        },
    ],
    "kubernetes_endpoint": [
        {
            "ENV_NAME": "dev",
            "TEST_FILE_PATH": "sample-request.json",
            "ENDPOINT_NAME": "ner-k8s",
            "CURRENT_DEPLOYMENT_NAME": "green",
            "CURRENT_DEPLOYMENT_TRAFFIC_ALLOCATION": "80",
            "PRIOR_DEPLOYMENT_NAME": "blue",
            "PRIOR_DEPLOYMENT_TRAFFIC_ALLOCATION": "20",
            "COMPUTE_NAME": "k8s-compute",
            "DEPLOYMENT_VM_SIZE": "defaultinstancetype",
            "DEPLOYMENT_INSTANCE_COUNT": 2,
            "CPU_ALLOCATION": "500m",
            "MEMORY_ALLOCATION": "1Gi",
            "ENVIRONMENT_VARIABLES": {"LOG_LEVEL": "info"},
        }
    ],
    "webapp_endpoint": [
        {
            "ENV_NAME": "dev",
            "TEST_FILE_PATH": "sample-request.json",
            "CONNECTION_NAMES": ["aoai"],
            "REGISTRY_NAME": "nerregistry",
            "REGISTRY_RG_NAME": "registry-rg",
            "APP_PLAN_NAME": "ner-plan",
            "WEB_APP_NAME": "ner-webapp",
            "WEB_APP_RG_NAME": "webapp-rg",
            "WEB_APP_SKU": "B3",
            "USER_MANAGED_ID": "ner-identity",
            "KEY_VAULT_NAME": "ner-vault",
        }
    ],
}


def make_workspace(tmp: Path, config: dict | None = None) -> Path:
    """``tmp/ws/use_cases/<USE_CASE>`` copied from the bundled use case, with DEPLOYMENT_CONFIG."""
    root = tmp / "ws"
    dest = root / "use_cases" / USE_CASE
    shutil.copytree(
        REPO / "use_cases" / USE_CASE, dest, ignore=shutil.ignore_patterns(".promptflow", "approvals")
    )
    (dest / "configs" / "deployment_config.json").write_text(
        json.dumps(config or DEPLOYMENT_CONFIG, indent=2)
    )
    return root


def write_approval(root: Path, env: str, variants: dict, params: dict, *, decision: str = "approved") -> Path:
    """A signed approval record for ``env`` (as the Approval screen would write it) using APPROVAL_KEY."""
    from llmops_tui.core import approval as ap
    from llmops_tui.core.hashing import hash_folder
    from llmops_tui.deploy.prepare import deployable_use_case

    uc = deployable_use_case(root, USE_CASE, env)
    flow = uc.standard_flow.path
    fields = dict(
        use_case=uc.name,
        environment=env,
        decision=decision,
        run_id="run-test",
        cell_id="c0000001",
        variants=dict(variants),
        params=dict(params),
        dataset=uc.datasets[0].name,
        dataset_hashes=ap.dataset_hashes(root, uc, uc.datasets[0].name),
        flow_path=ap._posix_rel(flow, root),
        flow_hash=ap.approved_flow_hash(uc, variants, params),
        source_flow_hash=hash_folder(flow),
        source_files=ap.source_file_hashes(flow),
        metrics={"entity_match.f1": 0.9},
        gates=[],
        model_targets={},
        approver="Test Lead <lead@example.com>",
        decided_at=ap._now(),
        comment="fine" if decision == "approved" else "not good enough",
    )
    # Fields the record gains later (evidence, measurements, ...) start empty.
    import dataclasses

    for f in dataclasses.fields(ap.ApprovalRecord):
        no_default = f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING
        if no_default and f.name not in fields:
            fields[f.name] = {}
    record = ap.ApprovalRecord(**fields)
    current, _ = ap.write_record(uc, record, ap.ApprovalKey(APPROVAL_KEY.encode(), "test"))
    return current


def all_text(folder: Path) -> str:
    """Every readable file under ``folder`` concatenated (for secret canaries)."""
    out = []
    for path in sorted(Path(folder).rglob("*")):
        if path.is_file():
            out.append(path.read_bytes().decode("utf-8", errors="replace"))
    return "\n".join(out)
