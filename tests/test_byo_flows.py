"""Bring your own flows: a template-shaped repository with flex flows (a function entry with its own
client and a Jinja prompt; a class entry with init.json, a .prompty and chat_history), a code-only
evaluator and a flex evaluator with ``__aggregate__`` goes list -> show -> sweep (sandbox) -> compare
through the headless CLI, as separate processes. The fixture is ``tests/fixtures/byo_repo`` (its
``template.env`` becomes the copy's ``.env``: connections the template's way, with a placeholder key)."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import threading
from pathlib import Path

import pytest

from llmops_tui.core import llmhooks
from llmops_tui.core.backends import (
    BackendOptions,
    ConnectionSpec,
    FlowLoadError,
    backend_for,
    open_backend,
    prepare_process,
)

pytestmark = pytest.mark.integration


@pytest.fixture(autouse=True)
def _environment_restored():
    """The flex backend sets the usual OpenAI variables for flows that build their own client: keep them
    from leaking into other tests of this process."""
    saved = dict(os.environ)
    yield
    os.environ.clear()
    os.environ.update(saved)


FIXTURE = Path(__file__).resolve().parent / "fixtures" / "byo_repo"


def llmops(*args: str, env: dict[str, str], check: bool = True) -> subprocess.CompletedProcess[str]:
    proc = subprocess.run(
        [sys.executable, "-m", "llmops_tui.cli", *args], capture_output=True, text=True, env=env, timeout=300
    )
    assert "Traceback" not in proc.stderr, proc.stderr
    if check:
        assert proc.returncode == 0, (args, proc.stdout[-2000:], proc.stderr[-2000:])
    return proc


@pytest.fixture
def repo(tmp_path) -> Path:
    ws = tmp_path / "repo"
    shutil.copytree(FIXTURE, ws)
    # .env files are git-ignored: the fixture keeps the template's .env as template.env
    shutil.copyfile(FIXTURE / "template.env", ws / ".env")
    return ws


@pytest.fixture
def env() -> dict[str, str]:
    return {**os.environ, "AOAI_API_KEY": ""}


def test_list_and_show_describe_flex_flows_and_code_evaluators(repo, env):
    listed = json.loads(llmops("list", "--workspace", str(repo), "--json", env=env).stdout)
    assert {u["name"] for u in listed["use_cases"]} >= {"function_flow", "chat_flow"}
    assert listed["errors"] == []

    chat = json.loads(llmops("show", "chat_flow", "--workspace", str(repo), "--json", env=env).stdout)
    flow = chat["flow"]
    assert flow["kind"] == "flex" and flow["entry"] == "flow:ChatFlow" and flow["chat"] is True
    assert list(flow["inputs"]) == ["question", "chat_history", "context"]
    assert (
        flow["init"]["max_total_token"]["value"] == 2048
        and flow["init"]["max_total_token"]["default"] == 1024
    )
    assert flow["init"]["model_config"]["value"] == {"connection": "aoai", "azure_deployment": "gpt-35-turbo"}
    assert flow["prompty_files"] == ["chat.prompty"]
    assert chat["evaluator_flows"][0]["kind"] == "flex"

    fn = json.loads(llmops("show", "function_flow", "--workspace", str(repo), "--json", env=env).stdout)
    assert fn["flow"]["entry"] == "classifier:classify_ticket" and list(fn["flow"]["inputs"]) == ["ticket"]
    code = fn["evaluator_flows"][0]
    assert code["kind"] == "code"
    assert code["functions"] == [
        "known_labels:eval_known_label",
        "match_eval:eval_exact_match",
        "match_eval:eval_answer_length",
    ]
    text = llmops("show", "chat_flow", "--workspace", str(repo), env=env).stdout
    assert "entry: flow:ChatFlow" in text and "prompty: chat.prompty" in text


def test_function_flex_flow_with_code_evaluator_sweeps_and_compares(repo, env, sandbox):
    w = ["--workspace", str(repo)]
    before = sandbox.stats()["requests"]
    sweep = json.loads(
        llmops("sweep", "function_flow", *w, "--llm-endpoint", sandbox.url, "--json", env=env).stdout
    )
    assert sweep["status"] == "completed" and sweep["cell_count"] == 1
    # the flow built its own AzureOpenAI client from the environment variables: it reached the sandbox
    assert sandbox.stats()["requests"] - before == 6
    metrics = sweep["cells"][0]["metrics"]["ticket_scores"]
    assert set(metrics) == {"exact_match", "answer_words", "known_label"}
    assert 0.0 <= metrics["exact_match"] <= 1.0 and metrics["answer_words"] >= 1.0
    compare = json.loads(llmops("compare", sweep["run_id"], *w, "--json", env=env).stdout)
    assert [c["cell_id"] for c in compare["cells"]] == [sweep["cells"][0]["cell_id"]]


def test_class_flex_flow_sweeps_its_init_parameters(repo, env):
    w = ["--workspace", str(repo)]
    sweep = json.loads(
        llmops(
            "sweep",
            "chat_flow",
            *w,
            "--llm-endpoint",
            "sandbox",
            "--grid",
            "init.max_total_token=5,2048",
            "--json",
            env=env,
        ).stdout
    )
    assert sweep["status"] == "completed" and sweep["cell_count"] == 2
    labels = sorted(c["label"] for c in sweep["cells"])
    assert labels[0].startswith("init.max_total_token=2048") and labels[1].startswith(
        "init.max_total_token=5"
    )
    for cell in sweep["cells"]:
        assert set(cell["metrics"]["answer_eval"]) == {"recall", "answer_rate"}
    compare = json.loads(llmops("compare", sweep["run_id"], *w, "--json", env=env).stdout)
    assert len(compare["cells"]) == 2

    bad = llmops(
        "sweep",
        "chat_flow",
        *w,
        "--llm-endpoint",
        "sandbox",
        "--grid",
        "init.temperature=0,1",
        "--dry-run",
        env=env,
        check=False,
    )
    assert bad.returncode == 2
    assert "names no init parameter" in bad.stderr and "model_config, max_total_token" in bad.stderr


# ------------------------------------------------------------------------------ the backend itself


def _options(sandbox, ws: Path) -> BackendOptions:
    conn = ConnectionSpec("aoai", "AzureOpenAIConnection", sandbox.url, "sandbox-no-key", "2024-02-01")
    return BackendOptions(connections={"aoai": conn}, line_timeout_s=30, workspace=ws)


def _line(backend, inputs, index=0):
    ctx = llmhooks.LineContext(
        policy=llmhooks.RetryPolicy(max_retries=1, request_timeout_s=10),
        cancel=threading.Event(),
        limiter_for=lambda url: llmhooks.RateLimiter(),
    )
    token = llmhooks.current_line.set(ctx)
    try:
        return backend.run_line(inputs, index, "byo")
    finally:
        llmhooks.current_line.reset(token)


@pytest.fixture
def prepared(tmp_path):
    prepare_process(tmp_path / ".llmops")
    llmhooks.install()


def test_code_evaluator_scores_and_aggregates_mean_and_rate(repo, sandbox, prepared):
    folder = repo / "function_flow" / "flows" / "evaluation"
    assert backend_for(folder) == "flex"
    backend = open_backend(folder, _options(sandbox, repo))
    rows = [
        ("billing", "billing"),
        ("billing is it", "billing"),
        ("other", "shipping"),
        ("account", "account"),
    ]
    outcomes = [
        _line(backend, {"response": r, "ground_truth": g, "unused": 1}, i) for i, (r, g) in enumerate(rows)
    ]
    assert all(o.ok for o in outcomes)
    assert outcomes[1].outputs == {"known_label": False, "exact_match": False, "answer_words": 3}
    metrics = backend.run_aggregation([{} for _ in rows], outcomes)
    assert metrics == {"known_label": 0.75, "exact_match": 0.5, "answer_words": 1.5}


def test_class_entry_model_config_resolves_to_the_run_connection(repo, sandbox, prepared):
    folder = repo / "chat_flow" / "flows" / "standard"
    backend = open_backend(folder, _options(sandbox, repo))
    before = sandbox.stats()["requests"]
    out = _line(
        backend,
        {
            "question": "Where was she born?",
            "context": "Marie Curie was born in Warsaw.",
            "chat_history": [{"role": "user", "content": "Who?"}, {"role": "assistant", "content": "Curie."}],
        },
    )
    assert out.ok, out.error
    assert set(out.outputs) == {"answer", "turns"} and out.outputs["turns"] == 2
    assert sandbox.stats()["requests"] == before + 1


def test_init_json_problems_are_one_line_naming_the_file(repo, sandbox, prepared):
    folder = repo / "chat_flow" / "flows" / "standard"
    (folder / "init.json").write_text(
        json.dumps({"model_config": {"connection": "nope"}, "max_total_token": 1})
    )
    with pytest.raises(FlowLoadError) as info:
        open_backend(folder, _options(sandbox, repo))
    assert str(info.value).startswith("chat_flow/flows/standard/init.json: model_config: connection 'nope'")
    (folder / "init.json").write_text(json.dumps({"model_config": {}, "temperature": 0}))
    with pytest.raises(FlowLoadError) as info:
        open_backend(folder, _options(sandbox, repo))
    assert "takes no init parameter 'temperature'" in str(info.value) and "\n" not in str(info.value)


def test_flows_with_the_same_module_names_do_not_share_code(tmp_path, sandbox, prepared):
    for tag in ("a", "b"):
        folder = tmp_path / tag
        folder.mkdir()
        (folder / "flow.flex.yaml").write_text("entry: flow:run\n")
        (folder / "helpers.py").write_text(f"TAG = {tag!r}\n")
        (folder / "flow.py").write_text(
            "from helpers import TAG\n\n\ndef run(x: str) -> str:\n    return TAG + x\n"
        )
    a = open_backend(tmp_path / "a", _options(sandbox, tmp_path))
    b = open_backend(tmp_path / "b", _options(sandbox, tmp_path))
    assert _line(a, {"x": "1"}).outputs == {"output": "a1"}
    assert _line(b, {"x": "1"}).outputs == {"output": "b1"}
    assert "helpers" not in sys.modules and "flow" not in sys.modules


# ------------------------------------------------------------------- template semantics and .env


def test_warnings_do_not_fail_list_but_strict_does(repo, env):
    listed = llmops("list", "--workspace", str(repo), "--json", env=env)
    data = json.loads(listed.stdout)
    assert data["errors"] == []
    [warning] = data["warnings"]
    assert warning["use_case"] == "function_flow" and "no input 'customer_id'" in warning["message"]
    strict = llmops("list", "--workspace", str(repo), "--strict", env=env, check=False)
    assert strict.returncode == 2 and "customer_id" in strict.stderr and "--strict" in strict.stderr


def test_older_layout_envs_ignore_mappings_of_flows_they_do_not_use(repo, env):
    for env_name in ("pr", "postprodeval"):
        shown = llmops("show", "chat_dag", "--env", env_name, "--workspace", str(repo), env=env)
        assert "warning" in shown.stderr and "turn_count" in shown.stderr
        assert f"names no evaluation flow of environment {env_name}" in shown.stderr


def test_an_overlay_name_never_renames_the_use_case(repo, env):
    shown = json.loads(
        llmops("show", "chat_flow", "--env", "pr", "--workspace", str(repo), "--json", env=env).stdout
    )
    assert shown["name"] == "chat_flow" and shown["env"] == "pr"
    assert [d["name"] for d in shown["datasets"]] == ["questions_pr"]


def test_dotenv_connections_the_template_way(repo, env):
    shown = json.loads(llmops("show", "chat_dag", "--workspace", str(repo), "--json", env=env).stdout)
    [conn] = shown["connections"]
    assert conn["name"] == "aoai" and conn["connection_type"] == "AzureOpenAIConnection"
    assert conn["api_base"] == "https://example-resource.openai.azure.com/"
    assert conn["api_version"] == "2023-03-15-preview"
    keys = llmops("keys", "chat_dag", "--workspace", str(repo), env=env)
    assert ".env" in keys.stdout
    for out in (keys.stdout + keys.stderr, json.dumps(shown)):
        assert "placeholder-key-not-real" not in out


def test_dotenv_key_resolves_and_deploy_bundles_carry_its_endpoint(repo, tmp_path, monkeypatch):
    from llmops_tui.core.connections import build_connections
    from llmops_tui.core.workspace import load_workspace
    from llmops_tui.deploy.prepare import Configuration, materialise

    monkeypatch.delenv("AOAI_API_KEY", raising=False)
    uc = load_workspace(repo).get("chat_dag")
    conns = build_connections(uc, repo, None)
    assert conns["aoai"].api_key == "placeholder-key-not-real-0000"
    assert conns["aoai"].api_base == "https://example-resource.openai.azure.com/"
    bundle = materialise(uc, Configuration({}, {}, "test"), tmp_path / "bundle")
    text = (bundle.folder / "connections" / "aoai.yaml").read_text()
    assert "https://example-resource.openai.azure.com/" in text and "2023-03-15-preview" in text
    assert "placeholder-key-not-real" not in "".join(
        p.read_text(errors="replace") for p in bundle.folder.rglob("*") if p.is_file()
    )


def test_older_layout_chat_dag_sweeps_in_every_env(repo, env):
    w = ["--workspace", str(repo)]
    dev = json.loads(llmops("sweep", "chat_dag", *w, "--llm-endpoint", "sandbox", "--json", env=env).stdout)
    assert dev["status"] == "completed"
    assert set(dev["cells"][0]["metrics"]) == {"answer_match", "turn_count"}
    assert dev["cells"][0]["metrics"]["turn_count"] == {"turns": round(1 / 3, 4)}
    pr = json.loads(
        llmops("sweep", "chat_dag", *w, "--env", "pr", "--llm-endpoint", "sandbox", "--json", env=env).stdout
    )
    assert pr["status"] == "completed" and set(pr["cells"][0]["metrics"]) == {"answer_match"}


# ----------------------------------------------------- approve, verify, deploy local, test, undeploy


@pytest.mark.parametrize(
    ("use_case", "env_name", "grid"),
    [("chat_flow", "pr", ["--grid", "init.max_total_token=5,2048"]), ("function_flow", "dev", [])],
)
def test_flex_flows_go_from_sweep_to_a_served_approved_version(repo, env, use_case, env_name, grid):
    env = {**env, "LLMOPS_APPROVAL_KEY": "byo-test-key-0123456789abcdef0123"}
    w = ["--workspace", str(repo)]
    sweep = json.loads(
        llmops(
            "sweep", use_case, *w, "--env", env_name, "--llm-endpoint", "sandbox", *grid, "--json", env=env
        ).stdout
    )
    assert sweep["status"] == "completed"
    cell = sweep["cells"][-1]
    llmops(
        "approve",
        sweep["run_id"],
        "--cell",
        cell["cell_id"],
        "--env",
        env_name,
        "--by",
        "lead@example.com",
        "--comment",
        "flex",
        "--override-gates",
        "sandbox sample",
        *w,
        env=env,
    )
    record = json.loads((repo / use_case / "approvals" / f"{env_name}.json").read_text())
    assert record["use_case"] == use_case and cell["cell_id"] in json.dumps(record)
    llmops("verify-approval", use_case, "--env", env_name, *w, env=env)
    out = repo / "deployed"
    try:
        deployed = llmops(
            "deploy",
            use_case,
            "--env",
            env_name,
            "--target",
            "local",
            "--require-approval",
            "--llm-endpoint",
            "sandbox",
            "--out",
            str(out),
            *w,
            env=env,
        )
        assert "endpoint test passed" in deployed.stdout + deployed.stderr
        if grid:  # the approved cell's init values are what is served
            init = json.loads((out / "flow" / "init.json").read_text())
            assert init["max_total_token"] == cell["params"]["init.max_total_token"]
        assert "placeholder-key-not-real" not in "".join(
            p.read_text(errors="replace") for p in out.rglob("*") if p.is_file()
        )
        url = re.search(r"endpoint: (http://127\.0\.0\.1:\d+)", deployed.stdout).group(1)
        request = str(repo / use_case / "sample-request.json")
        llmops("endpoint-test", url, "--request", request, "--use-case", use_case, *w, env=env)
    finally:
        llmops("undeploy", use_case, "--all", *w, env=env, check=False)


def test_named_init_sets_are_swept_like_variants(repo, env):
    (repo / "chat_flow" / "llmops.yaml").write_text(
        "init_sets:\n  tight: {max_total_token: 5}\n  gpt4: {model_config: {azure_deployment: gpt-4o}}\n"
    )
    w = ["--workspace", str(repo)]
    listed = json.loads(llmops("list", *w, "--json", env=env).stdout)
    chat = next(u for u in listed["use_cases"] if u["name"] == "chat_flow")
    assert chat["variants"] == {"init": ["default", "tight", "gpt4"]}
    sweep = json.loads(
        llmops("sweep", "chat_flow", *w, "--llm-endpoint", "sandbox", "--json", env=env).stdout
    )
    assert sweep["status"] == "completed" and sweep["cell_count"] == 3
    by_set = {c["variants"]["init"]: c for c in sweep["cells"]}
    assert by_set["default"]["params"] == {}
    assert by_set["tight"]["params"] == {"init.max_total_token": 5}
    assert by_set["gpt4"]["params"] == {"init.model_config.azure_deployment": "gpt-4o"}
    flows = repo / ".llmops" / "flows"
    inits = [json.loads(p.read_text()) for p in flows.glob("*/init.json")]
    assert {"connection": "aoai", "azure_deployment": "gpt-4o"} in [i["model_config"] for i in inits]

    (repo / "chat_flow" / "llmops.yaml").write_text("init_sets:\n  hot: {temperature: 1}\n")
    bad = llmops("show", "chat_flow", *w, env=env, check=False)
    assert bad.returncode == 2 and "init_sets.hot" in bad.stderr and "'temperature'" in bad.stderr


# ------------------------------------------------------------------------------------------ traces


def _tree(spans):
    return [("  " * s["depth"]) + f"{s['kind']}:{s['name']}" for s in spans]


def test_flex_line_trace_holds_the_entry_traced_functions_and_model_calls(repo, sandbox, prepared):
    backend = open_backend(repo / "function_flow" / "flows" / "standard", _options(sandbox, repo))
    out = _line(backend, {"ticket": "I was charged twice"})
    assert out.ok, out.error
    # the entry is itself @trace-decorated: its record is the entry span, not a duplicate under it
    assert _tree(out.traces) == ["entry:classify_ticket", "  function:call_model", "    llm:openai_chat"]
    entry, call, llm = out.traces
    assert entry["inputs"] == "ticket='I was charged twice'" and entry["output"] == repr(
        out.outputs["output"]
    )
    assert call["inputs"].startswith("prompt='Classify the support ticket") and "tokens)" in llm["output"]
    assert entry["duration_ms"] >= call["duration_ms"] >= llm["duration_ms"] > 0
    assert call["start_ms"] <= llm["start_ms"] and all(s["error"] is None for s in out.traces)

    chat = open_backend(repo / "chat_flow" / "flows" / "standard", _options(sandbox, repo))
    history = [{"role": "user", "content": "Who?"}, {"role": "assistant", "content": "Curie."}]
    out = _line(chat, {"question": "Where?", "context": "Born in Warsaw.", "chat_history": history})
    assert out.ok, out.error
    tree = _tree(out.traces)
    assert tree[0] == "entry:ChatFlow" and "  function:Prompty" in tree and "    llm:openai_chat" in tree
    assert "messages=4" in out.traces[-1]["inputs"]  # system, two history turns, the question
    assert "sandbox-no-key" not in json.dumps(out.traces)


def test_a_failing_flex_line_keeps_its_trace_with_the_error(tmp_path, sandbox, prepared):
    folder = tmp_path / "flow"
    folder.mkdir()
    (folder / "flow.flex.yaml").write_text("entry: flow:run\n")
    (folder / "flow.py").write_text(
        "from promptflow.tracing import trace\n\n\n@trace\ndef check(x):\n"
        "    raise ValueError('bad ' + x)\n\n\ndef run(x: str) -> str:\n    return check(x)\n"
    )
    out = _line(open_backend(folder, _options(sandbox, tmp_path)), {"x": "sandbox-no-key"})
    assert not out.ok and "ValueError: bad ***" in out.error
    # the entry is not decorated: the backend records it, and Prompt flow's record of check sits under it
    assert _tree(out.traces) == ["entry:run", "  function:check"]
    assert out.traces[0]["error"] == "ValueError: bad ***" and out.traces[1]["error"] == "ValueError: bad ***"
    assert "sandbox-no-key" not in json.dumps(out.traces)


# ---------------------------------------------------------------------------------- line timeout
# A flex line's deadline is the line pool's, as for every backend (core/linepool.py): a flex entry that
# never returns, and cancelling while it runs, are tested in tests/test_line_deadline.py.
