"""`llmops migrate --to agent-framework`: the written code runs on its own (a subprocess that cannot import
llmops_tui, with no PYTHONPATH) and its outputs and metrics equal Prompt flow's executor's for the same
lines; `--dry-run` lists what does not map with the file and the node."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import textwrap
import threading
from pathlib import Path

import pytest
import yaml

from llmops_tui.core import llmhooks
from llmops_tui.core.backends import BackendOptions, ConnectionSpec, open_backend, prepare_process
from llmops_tui.core.backends.agent_framework import available
from llmops_tui.core.materialize import materialize_flow

REPO = Path(__file__).resolve().parents[1]
UC = "support_ticket_classification"


BUNDLED = sorted(p.name for p in (REPO / "use_cases").iterdir() if (p / "experiment.yaml").is_file())
needs_af = pytest.mark.skipif(
    available() is not None, reason=f"agent_framework is not importable: {available()}"
)


def _llmops(*args: str, cwd: Path, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "llmops_tui.cli", *args],
        capture_output=True,
        text=True,
        cwd=cwd,
        timeout=600,
        env=env,
    )


def _declared_at(ws: Path, name: str, url: str) -> dict[str, str]:
    """The use case's declared connection pointed at ``url`` (the session's sandbox model), and an
    environment holding its key: verification then takes the default path, declared connections."""
    exp = ws / "use_cases" / name / "experiment.yaml"
    text = exp.read_text()
    assert "https://YOUR-RESOURCE.openai.azure.com/" in text
    exp.write_text(text.replace("https://YOUR-RESOURCE.openai.azure.com/", url))
    return {**os.environ, "AOAI_API_KEY": "sandbox-no-key"}


def _pf_lines(flow_dir: Path, rows: list[dict], sandbox_url: str, tmp: Path):
    prepare_process(tmp / ".llmops")
    llmhooks.install()
    conn = ConnectionSpec("aoai", "AzureOpenAIConnection", sandbox_url, "sandbox-no-key", "2024-02-01")
    backend = open_backend(flow_dir, BackendOptions(connections={"aoai": conn}, line_timeout_s=30))
    outs = []
    for i, r in enumerate(rows):
        ctx = llmhooks.LineContext(
            policy=llmhooks.RetryPolicy(),
            cancel=threading.Event(),
            limiter_for=lambda u: llmhooks.RateLimiter(),
        )
        token = llmhooks.current_line.set(ctx)
        try:
            outs.append(backend.run_line(r, i, "ref"))
        finally:
            llmhooks.current_line.reset(token)
    return outs, (backend.run_aggregation(rows, outs) if backend.has_aggregation else {})


@pytest.mark.integration
@pytest.mark.skipif(available() is not None, reason=f"agent_framework is not importable: {available()}")
def test_migrated_code_runs_alone_and_matches_promptflow(tmp_path, sandbox):
    ws = tmp_path / "ws"
    shutil.copytree(REPO / "use_cases" / UC, ws / "use_cases" / UC)
    out = tmp_path / "migrated"
    proc = _llmops(
        "migrate",
        UC,
        "--workspace",
        str(ws),
        "--out",
        str(out),
        "--variant",
        "classify_llm=variant_2",
        "--no-verify",
        cwd=ws,
    )
    assert proc.returncode == 0, proc.stderr
    assert "not verified (--no-verify)" in proc.stdout
    assert (out / "standard" / "README.md").is_file() and (
        out / "evaluator_label_match" / "flow.py"
    ).is_file()
    assert "promptflow" not in (out / "standard" / "prepare_ticket.py").read_text()

    rows = [
        json.loads(x) for x in (ws / "use_cases" / UC / "data" / "tickets.jsonl").read_text().splitlines()[:4]
    ]
    inputs = [{"title": r["title"], "body": r["body"]} for r in rows]
    script = textwrap.dedent(f"""
        import json, sys
        sys.modules["llmops_tui"] = None  # the migrated code must not need it
        sys.modules["promptflow"] = None  # nor Prompt flow
        sys.path.insert(0, {str(out / "standard")!r})
        import flow as standard
        outputs, _ = standard.run_batch({inputs!r})
        sys.path[0] = {str(out / "evaluator_label_match")!r}
        del sys.modules["flow"]
        import flow as evaluation
        eval_rows = [{{"category": o["category"], "ground_truth": r["category"]}} for o, r in zip(outputs, {rows!r})]
        scores, metrics = evaluation.run_batch(eval_rows)
        print("RESULT=" + json.dumps({{"outputs": outputs, "scores": scores, "metrics": metrics}}))
    """)
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    env.update(
        {"AOAI_API_BASE": sandbox.url, "AOAI_API_KEY": "sandbox-no-key", "AOAI_API_VERSION": "2024-02-01"}
    )
    run = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, cwd=tmp_path, env=env, timeout=300
    )
    assert run.returncode == 0, run.stderr[-3000:]
    got = json.loads(run.stdout.split("RESULT=")[1].strip().splitlines()[0])

    flows = ws / "use_cases" / UC / "flows"
    copy = materialize_flow(flows / "standard", tmp_path / "mat", variants={"classify_llm": "variant_2"})
    ref, _ = _pf_lines(copy[0], inputs, sandbox.url, tmp_path)
    assert got["outputs"] == [o.outputs for o in ref]
    eval_rows = [
        {"category": o.outputs["category"], "ground_truth": r["category"]}
        for o, r in zip(ref, rows, strict=True)
    ]
    ref_scores, ref_metrics = _pf_lines(flows / "evaluation", eval_rows, sandbox.url, tmp_path)
    assert got["scores"] == [o.outputs for o in ref_scores]
    assert got["metrics"] == ref_metrics and ref_metrics


def test_dry_run_lists_what_does_not_map(tmp_path):
    from builders import make_flex_use_case

    make_flex_use_case(tmp_path, rows=3)
    proc = _llmops("migrate", "tickets", "--workspace", str(tmp_path), "--dry-run", "--json", cwd=tmp_path)
    assert proc.returncode == 1, proc.stderr
    data = json.loads(proc.stdout)
    assert data["unmapped"] and all(
        u["file"].startswith("use_cases/tickets/flows/") for u in data["unmapped"]
    )
    assert "flex flow" in data["unmapped"][0]["reason"]
    assert not (tmp_path / "migrated").exists()


def test_dry_run_names_the_node_of_a_custom_tool(tmp_path):
    from builders import make_use_case

    uc = make_use_case(tmp_path, rows=3)
    dag = uc / "flows" / "standard" / "flow.dag.yaml"
    data = yaml.safe_load(dag.read_text())
    data["nodes"].append(
        {
            "name": "search",
            "type": "python",
            "source": {"type": "package", "tool": "my_tools.search.run"},
            "inputs": {"q": "${inputs.ticket}"},
        }
    )
    dag.write_text(yaml.safe_dump(data, sort_keys=False))
    proc = _llmops("migrate", "tickets", "--workspace", str(tmp_path), "--dry-run", "--json", cwd=tmp_path)
    data = json.loads(proc.stdout)
    assert proc.returncode == 1
    hit = [u for u in data["unmapped"] if u["node"] == "search"]
    assert hit and hit[0]["file"] == "use_cases/tickets/flows/standard/flow.dag.yaml"
    assert "my_tools.search.run" in hit[0]["reason"]


def test_an_unknown_variant_is_one_line_naming_the_flag(tmp_path):
    shutil.copytree(REPO / "use_cases" / UC, tmp_path / "use_cases" / UC)
    bad = _llmops(
        "migrate", UC, "--workspace", str(tmp_path), "--variant", "classify_llm=variant_9", cwd=tmp_path
    )
    assert bad.returncode == 2
    assert "--variant" in bad.stderr and "variant_9" in bad.stderr and "variant_2" in bad.stderr
    assert not (tmp_path / "migrated").exists()


@pytest.mark.integration
@needs_af
@pytest.mark.parametrize("use_case", BUNDLED)
def test_every_bundled_use_case_migrates_and_is_verified_equivalent(tmp_path, sandbox, use_case):
    from llmops_tui.core.store import RunStore

    ws = tmp_path / "ws"
    shutil.copytree(REPO / "use_cases" / use_case, ws / "use_cases" / use_case)
    env = _declared_at(ws, use_case, sandbox.url)
    out = tmp_path / "migrated"
    proc = _llmops(
        "migrate",
        use_case,
        "-w",
        str(ws),
        "--out",
        str(out),
        "--verify-lines",
        "4",
        "--json",
        cwd=ws,
        env=env,
    )
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    data = json.loads(proc.stdout)
    check = data["verification"]
    assert data["verified"] and check["equivalent"] and check["lines"] == 4
    roles = [f["role"] for f in check["flows"]]
    assert roles[0] == "standard" and len(roles) == 2 and roles[1].startswith("evaluator ")
    for flow in check["flows"]:
        assert flow["verdict"].startswith("equivalent: 4/4 lines identical"), flow
    assert check["flows"][1]["comparison"]["metrics"]  # the evaluator's metrics were compared too

    # On its own: a fresh isolated interpreter, the repository not on its path, llmops_tui never imported;
    # its first line equals Prompt flow's reference line stored by the verification.
    with RunStore.for_workspace(ws) as store:
        (cell,) = store.cells(check["reference_run"])
        first = store.lines(check["reference_run"], cell.cell_id)[0]
    script = textwrap.dedent(f"""
        import json, sys
        sys.path.insert(0, {str(out / "standard")!r})
        import flow
        result = flow.run({first.inputs!r})
        print("RESULT=" + json.dumps({{"outputs": result, "imported": "llmops_tui" in sys.modules,
                                       "repo_on_path": {str(REPO)!r} in sys.path}}))
    """)
    child = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    child.update(
        {"AOAI_API_BASE": sandbox.url, "AOAI_API_KEY": "sandbox-no-key", "AOAI_API_VERSION": "2024-02-01"}
    )
    run = subprocess.run(
        [sys.executable, "-I", "-c", script],
        capture_output=True,
        text=True,
        cwd=tmp_path,
        env=child,
        timeout=300,
    )
    assert run.returncode == 0, run.stderr[-3000:]
    got = json.loads(run.stdout.split("RESULT=")[1].strip().splitlines()[0])
    assert got == {"outputs": first.outputs, "imported": False, "repo_on_path": False}


@pytest.mark.integration
@needs_af
def test_a_difference_is_reported_with_its_first_line(tmp_path, sandbox):
    from llmops_tui.core.migrate import plan_migration, verify_migration, write_migration
    from llmops_tui.core.workspace import load_workspace

    ws_root = tmp_path / "ws"
    shutil.copytree(REPO / "use_cases" / UC, ws_root / "use_cases" / UC)
    _declared_at(ws_root, UC, sandbox.url)
    ws = load_workspace(ws_root)
    uc = ws.get(UC)
    plan = plan_migration(ws.root, uc)
    out = tmp_path / "migrated"
    write_migration(ws.root, uc, out, plan)
    flow_py = out / "standard" / "flow.py"
    line = "            self.line.result = pf.flow_outputs(OUTPUTS, self.line.inputs, self.line.outputs)\n"
    assert line in flow_py.read_text()
    skew = "            self.line.result = {k: str(v).upper() for k, v in self.line.result.items()}\n"
    flow_py.write_text(flow_py.read_text().replace(line, line + skew))
    os.environ["AOAI_API_KEY"] = "sandbox-no-key"
    try:
        seen: list[str] = []
        check = verify_migration(ws.root, uc, out, plan, lines=3, on_progress=seen.append)
    finally:
        del os.environ["AOAI_API_KEY"]
    assert not check.equivalent
    standard, evaluator = check.flows
    assert standard.verdict == "differs on 3 line(s) of 3"
    first = standard.first_difference()
    assert first is not None and first.startswith("line 0: Prompt flow {")
    migrated = json.loads(first.split("| migrated ")[1])
    assert migrated and all(v == v.upper() for v in migrated.values())
    assert evaluator.equivalent  # the evaluator is checked on Prompt flow's own outputs
    assert any(s.startswith("migrated standard: 3 line(s)") for s in seen)


@pytest.mark.integration
@needs_af
def test_migrated_code_that_fails_exits_1_and_says_so(tmp_path, sandbox):
    ws = tmp_path / "ws"
    shutil.copytree(REPO / "use_cases" / UC, ws / "use_cases" / UC)
    env = _declared_at(ws, UC, sandbox.url)
    node = ws / "use_cases" / UC / "flows" / "standard" / "prepare_ticket.py"
    # Code that only works where llmops-tui is installed: its users would not have it.
    node.write_text("import llmops_tui  # noqa\n" + node.read_text())
    proc = _llmops("migrate", UC, "-w", str(ws), "--verify-lines", "2", cwd=ws, env=env)
    assert proc.returncode == 1, proc.stdout + proc.stderr
    assert "standard: not verified: the migrated code failed (exit code 1)" in proc.stdout
    assert "llmops_tui" in proc.stdout
    assert "migration NOT equivalent to Prompt flow on 2 line(s) of tickets" in proc.stdout


def test_verification_without_a_key_is_one_line_and_writes_nothing(tmp_path):
    shutil.copytree(REPO / "use_cases" / UC, tmp_path / "use_cases" / UC)
    env = {k: v for k, v in os.environ.items() if k not in ("AOAI_API_KEY", "LLMOPS_LLM_API_KEY")}
    bad = _llmops("migrate", UC, "-w", str(tmp_path), cwd=tmp_path, env=env)
    assert bad.returncode == 2, bad.stdout + bad.stderr
    assert len(bad.stderr.strip().splitlines()) == 1 and "--no-verify" in bad.stderr
    assert "Traceback" not in bad.stderr
    assert not (tmp_path / "migrated").exists()
