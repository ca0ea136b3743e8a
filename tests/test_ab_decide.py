"""A/B deployments that decide, for real: two local versions of a bundled use case behind the router with
capture on, a few hundred requests, feedback as ground truth, the use case's evaluator over the captured
lines, an unpaired comparison that picks the better variant, and a live promotion recorded beside the
approvals. Every server binds 127.0.0.1 and is stopped at the end."""

from __future__ import annotations

import json
import shutil
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from pathlib import Path

import httpx
import pytest
from test_deploy_support import APPROVAL_KEY, CANARY, all_text

from llmops_tui.cli import main
from llmops_tui.core.capture import REQUEST_ID_HEADER
from llmops_tui.core.store import RunStore
from llmops_tui.deploy import registry
from llmops_tui.deploy.api import DeployOptions, deploy
from llmops_tui.deploy.local import undeploy

pytestmark = pytest.mark.integration

REPO = Path(__file__).resolve().parent.parent
UC = "support_ticket_classification"


def make_ws(tmp: Path) -> Path:
    root = tmp / "ws"
    shutil.copytree(
        REPO / "use_cases" / UC,
        root / "use_cases" / UC,
        ignore=shutil.ignore_patterns(".promptflow", "approvals"),
    )
    return root


def approve(root: Path, env: str, variants: dict) -> str:
    """A signed approval of ``variants`` for ``env`` (as `llmops approve` writes it); its flow hash."""
    import dataclasses

    from llmops_tui.core import approval as ap
    from llmops_tui.core.hashing import hash_folder

    uc = ap.use_case_for_env(root, UC, env)
    flow = uc.standard_flow.path
    fields = dict(
        use_case=uc.name,
        environment=env,
        decision="approved",
        run_id="run-test",
        cell_id="c0000001",
        variants=dict(variants),
        params={},
        dataset=uc.datasets[0].name,
        dataset_hashes=ap.dataset_hashes(root, uc, uc.datasets[0].name),
        flow_path=ap._posix_rel(flow, root),
        flow_hash=ap.approved_flow_hash(uc, variants, {}),
        source_flow_hash=hash_folder(flow),
        source_files=ap.source_file_hashes(flow),
        metrics={},
        gates=[],
        model_targets={},
        approver="Test Lead <lead@example.com>",
        decided_at=ap._now(),
        comment="variant_2 for dev",
    )
    for f in dataclasses.fields(ap.ApprovalRecord):
        if (
            f.default is dataclasses.MISSING
            and f.default_factory is dataclasses.MISSING
            and f.name not in fields
        ):
            fields[f.name] = {}
    ap.write_record(uc, ap.ApprovalRecord(**fields), ap.ApprovalKey(APPROVAL_KEY.encode(), "test"))
    return str(fields["flow_hash"])


def test_ab_capture_evaluate_compare_promote(tmp_path, monkeypatch, capsys, sandbox):
    monkeypatch.setenv("AOAI_API_KEY", CANARY)
    monkeypatch.setenv("LLMOPS_APPROVAL_KEY", APPROVAL_KEY)
    ws = make_ws(tmp_path)
    tickets = [
        json.loads(line)
        for line in (ws / "use_cases" / UC / "data" / "tickets.jsonl").read_text().splitlines()
        if line.strip()
    ]
    try:
        # A: the default variant (plain prompt); B: described labels, JSON and examples, at 50 %.
        a = deploy(ws, DeployOptions(UC, "dev", "local", llm_endpoint=sandbox.url, timeout=90))
        assert a.ok, a.test
        b = deploy(
            ws,
            DeployOptions(
                UC,
                "dev",
                "local",
                llm_endpoint=sandbox.url,
                variants="classify_llm.variant_2",
                traffic=50,
                capture=True,
                timeout=90,
            ),
        )
        assert b.ok, b.test
        router = b.deployment["router"]
        assert router["capture_run"] and router["roles"] == {"A": a.version[:12], "B": b.version[:12]}
        url = router["url"]

        # A few hundred requests through the router; the answer names the request for feedback.
        work = tickets * 4

        def send(ticket: dict) -> tuple[str, str, str]:
            with httpx.Client(trust_env=False, timeout=60) as client:
                resp = client.post(url + "/score", json={"title": ticket["title"], "body": ticket["body"]})
            assert resp.status_code == 200 and "category" in resp.json()
            return resp.headers[REQUEST_ID_HEADER], resp.headers["X-LLMOps-Backend"], ticket["category"]

        with ThreadPoolExecutor(8) as pool:
            sent = list(pool.map(send, work))
        arms = {arm for _, arm, _ in sent}
        assert arms == {a.version[:12], b.version[:12]}
        with RunStore.for_workspace(ws) as store:
            counts = store.traffic_count(router["capture_run"])
        assert counts == {a.version[:12]: len(work) // 2, b.version[:12]: len(work) // 2}

        # Feedback: the right queue for each ticket (a person's label), half live, half from a file.
        half = len(sent) // 2
        with httpx.Client(trust_env=False, timeout=30) as client:
            resp = client.post(
                url + "/feedback", json=[{"request_id": r, "label": c} for r, _, c in sent[:half]]
            )
            assert resp.status_code == 200 and resp.json()["joined"] == half
            assert (
                client.post(url + "/feedback", json={"request_id": "nope", "label": "x"}).status_code == 404
            )
            assert client.post(url + "/feedback", json={"label": "x"}).status_code == 400
        fb = tmp_path / "feedback.jsonl"
        fb.write_text("".join(json.dumps({"request_id": r, "label": c}) + "\n" for r, _, c in sent[half:]))
        assert main(["traffic", "feedback", str(fb), "-w", str(ws), "--json"]) == 0
        assert json.loads(capsys.readouterr().out)["joined"] == len(sent) - half

        # Evaluate: label_match needs the true category, which the feedback label supplies.
        assert main(["traffic", "evaluate", UC, "--env", "dev", "-w", str(ws), "--json"]) == 0
        report = json.loads(capsys.readouterr().out)
        per_arm = report["evaluators"]["label_match"]["arms"]
        assert {k: v["lines"] for k, v in per_arm.items()} == counts
        acc_a = per_arm[a.version[:12]]["metrics"]["accuracy"]
        acc_b = per_arm[b.version[:12]]["metrics"]["accuracy"]
        assert acc_b > acc_a

        # Compare: B wins on the per-line score with p < 0.05; the verdict says promote.
        assert main(["traffic", "compare", UC, "--env", "dev", "-w", str(ws), "--json"]) == 0
        cmp = json.loads(capsys.readouterr().out)
        test = next(t for t in cmp["tests"] if t["metric"] == "label_match.correct")
        assert test["b_better"] and test["p_value"] < 0.05, test
        assert cmp["primary"] == "label_match.correct" and cmp["decision"] == "promote", cmp["verdict"]
        assert cmp["verdict"].startswith("B better on label_match.correct")
        by_arm = {x["arm"]: x for x in cmp["arms"]}
        assert (
            by_arm[b.version[:12]]["requests"] == len(work) // 2 and by_arm[a.version[:12]]["error_rate"] == 0
        )
        assert by_arm[b.version[:12]]["latency_ms"]["p95"] is not None
        assert any(g["arm"] == b.version[:12] and g["passed"] for g in cmp["gates"])
        # The human form prints the same verdict.
        assert main(["traffic", "compare", UC, "--env", "dev", "-w", str(ws)]) == 0
        assert "B better on label_match.correct" in capsys.readouterr().out

        # Promote: refused while B is not approved for dev, and for A (never approved); then B at 100 %.
        code = main(["promote", UC, "--env", "dev", "--arm", "B", "-w", str(ws)])
        assert code == 2 and "not approved" in capsys.readouterr().err
        approved = approve(ws, "dev", {"classify_llm": "variant_2"})
        assert approved == b.version
        assert main(["promote", UC, "--env", "dev", "--arm", "A", "-w", str(ws)]) == 2
        capsys.readouterr()
        code = main(
            [
                "promote",
                UC,
                "--env",
                "dev",
                "--arm",
                "B",
                "--reason",
                "B better",
                "--by",
                "lead",
                "-w",
                str(ws),
                "--json",
            ]
        )
        assert code == 0
        done = json.loads(capsys.readouterr().out)
        assert done["after"] == {b.version[:12]: 100, a.version[:12]: 0}
        health = httpx.get(url + "/health", trust_env=False).json()
        assert health["weights"] == {b.version[:12]: 100, a.version[:12]: 0}
        promoted_at = datetime.now(UTC).isoformat()  # the requests below are all after this instant
        with httpx.Client(trust_env=False, timeout=60) as client:
            seen = {
                client.post(url + "/score", json={"title": "x", "body": "refund please"}).headers[
                    "X-LLMOps-Backend"
                ]
                for _ in range(6)
            }
        assert seen == {b.version[:12]}
        records = [
            json.loads(x)
            for x in (ws / "use_cases" / UC / "approvals" / "promotions.jsonl").read_text().splitlines()
        ]
        assert len(records) == 1 and records[0]["by"] == "lead" and records[0]["reason"] == "B better"
        assert records[0]["version"] == b.version and records[0]["action"] == "promote"
        # Rolling back to A is refused too: no approval of the environment ever named A's version.
        assert main(["rollback", UC, "--env", "dev", "-w", str(ws)]) == 2
        assert "not approved" in capsys.readouterr().err
        # Evaluating only what arrived since promotion scores nothing new (no feedback for those requests).
        assert (
            main(["traffic", "evaluate", UC, "--env", "dev", "--since", promoted_at, "-w", str(ws), "--json"])
            == 0
        )
        since = json.loads(capsys.readouterr().out)["evaluators"]["label_match"]["arms"]
        assert all(v["lines"] == 0 for v in since.values()), since
        assert sum(v["skipped"] for v in since.values()) == 6  # the six requests since, none labelled
        listed = {d["id"]: d for d in registry.load(ws)}
        assert listed[f"{UC}:dev:router"]["backends"][0]["weight"] == 100
    finally:
        if registry.load(ws):
            undeploy(ws, UC, all_versions=True)
    assert registry.load(ws) == []
    # The router stopped and closed its traffic run; no key anywhere under .llmops or in the output.
    with RunStore.for_workspace(ws) as store:
        run = store.get_run(router["capture_run"])
        assert run is not None and run.target == "traffic" and run.status == "completed", run
        # Everything captured: the A/B requests, and the six sent to B after the promotion.
        assert run.summary["captured"] == {**counts, b.version[:12]: counts[b.version[:12]] + 6}
    assert CANARY not in all_text(ws / ".llmops")
    captured = capsys.readouterr()
    assert CANARY not in captured.out + captured.err
