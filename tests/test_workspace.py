"""The workspace model: both config formats, every bad input, and the CLI's list/show."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from builders import make_use_case

from llmops_tui.cli import main as cli_main
from llmops_tui.core.workspace import load_workspace, use_case_to_dict

REPO = Path(__file__).resolve().parent.parent
TEMPLATE = REPO / "tests" / "fixtures" / "template_repo"


def run_cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "llmops_tui.cli", *args], capture_output=True, text=True, timeout=60
    )


def test_bundled_use_cases_load_healthy():
    ws = load_workspace(REPO)
    names = {uc.name for uc in ws.use_cases}
    assert {"named_entity_recognition", "support_ticket_classification", "document_qa"} <= names
    for uc in ws.use_cases:
        assert uc.ok, [str(p) for p in uc.problems]
        assert uc.format == "experiment_yaml"
        assert uc.standard_flow and uc.standard_flow.variants, uc.name
        assert all(d.rows and d.rows >= 50 for d in uc.datasets), uc.name
        assert uc.evaluators and all(e.datasets for e in uc.evaluators)
        assert uc.sample_request.is_file() and uc.deployment_config.is_file()


def test_list_json_is_the_stable_interface():
    proc = run_cli("list", "--workspace", str(REPO), "--json")
    assert proc.returncode == 0, proc.stderr
    data = json.loads(proc.stdout)
    assert set(data) >= {"use_cases", "errors"}
    assert data["errors"] == []
    uc = next(u for u in data["use_cases"] if u["name"] == "support_ticket_classification")
    for key in (
        "name",
        "path",
        "format",
        "standard_flow",
        "evaluation_flows",
        "variants",
        "datasets",
        "errors",
    ):
        assert key in uc
    node, ids = next(iter(uc["variants"].items()))
    assert ids[0] == "variant_0" and len(ids) >= 2
    ds = uc["datasets"][0]
    assert {"name", "path", "rows", "columns"} <= set(ds) and ds["rows"] >= 50


@pytest.mark.skipif(not TEMPLATE.is_dir(), reason="template fixture repo missing")
def test_template_repo_both_formats():
    ws = load_workspace(TEMPLATE)
    assert ws.layout == "template_root"
    by_format = {uc.format: uc for uc in ws.use_cases}
    assert set(by_format) == {"experiment_yaml", "llmops_config"}
    for uc in ws.use_cases:
        assert uc.ok, [str(p) for p in uc.problems]
        assert uc.standard_flow and uc.standard_flow.variants
        assert uc.datasets and uc.evaluators
    old = by_format["llmops_config"]
    assert old.env == "dev" and "pr" in old.environments
    assert len(old.evaluators) >= 2
    for ev in old.evaluators:
        for ds in ev.datasets:
            assert ds.reference in {d.name for d in old.datasets}
    new = by_format["experiment_yaml"]
    assert new.connections and new.connections[0].api_base  # api_endpoint spelling accepted
    pr = load_workspace(TEMPLATE, env="pr")
    assert all(uc.ok for uc in pr.use_cases), [str(p) for uc in pr.use_cases for p in uc.problems]


def test_experiment_overlay_replaces_whole_blocks(tmp_path):
    uc_dir = make_use_case(tmp_path)
    (uc_dir / "data" / "small.jsonl").write_text('{"ticket": "a", "label": "other"}\n')
    (uc_dir / "experiment.dev.yaml").write_text(
        "datasets:\n- name: tickets_train\n  source: data/small.jsonl\n  mappings:\n    ticket: ${data.ticket}\n"
    )
    base = load_workspace(tmp_path).use_cases[0]
    dev = load_workspace(tmp_path, env="dev").use_cases[0]
    assert base.datasets[0].rows == 12 and dev.datasets[0].rows == 1
    assert "dev" in base.environments
    assert dev.evaluators and dev.evaluators[0].name == "label_match"  # untouched blocks stay


def test_show_json_has_nodes_and_variants(tmp_path):
    make_use_case(tmp_path)
    ws = load_workspace(tmp_path)
    data = use_case_to_dict(ws.use_cases[0], ws.root, full=True)
    nodes = {n["name"]: n for n in data["flow"]["nodes"]}
    assert nodes["classify"]["llm"] and nodes["classify"]["connection"] == "aoai"
    assert [v["id"] for v in nodes["classify"]["variants"]] == ["variant_0", "variant_1"]
    assert nodes["classify"]["variants"][0]["prompt_file"] == "prompt_v0.jinja2"
    assert data["connections"][0]["key_env_var"] == "AOAI_API_KEY"


# ----------------------------------------------------------------------------------------- bad input


def _break(uc: Path, case: str) -> tuple[str, str]:
    """Apply one kind of damage; return (file, field) the error must name."""
    flow = uc / "flows" / "standard" / "flow.dag.yaml"
    exp = uc / "experiment.yaml"
    if case == "malformed_yaml":
        exp.write_text("name: x\nflow: [unclosed\n")
        return "experiment.yaml", "line"
    if case == "malformed_json_old_layout":
        exp.unlink()
        (uc / "llmops_config.json").write_text('{"envs": [ {"ENV_NAME": "dev",, } ]}')
        return "llmops_config.json", ""
    if case == "missing_flow":
        shutil.rmtree(uc / "flows" / "standard")
        return "experiment.yaml", "flow"
    if case == "missing_prompt":
        (uc / "flows" / "standard" / "prompt_v1.jinja2").unlink()
        return "flow.dag.yaml", "node_variants.classify.variants.variant_1.node.source.path"
    if case == "unknown_default_variant":
        flow.write_text(
            flow.read_text().replace("default_variant_id: variant_0", "default_variant_id: variant_9")
        )
        return "flow.dag.yaml", "node_variants.classify.default_variant_id"
    if case == "missing_dataset":
        (uc / "data" / "tickets.jsonl").unlink()
        return "experiment.yaml", "datasets[0].source"
    if case == "unknown_column":
        exp.write_text(exp.read_text().replace("ticket: ${data.ticket}", "ticket: ${data.body}"))
        return "experiment.yaml", "datasets[0].mappings.ticket"
    if case == "empty_dataset":
        (uc / "data" / "tickets.jsonl").write_text("")
        return "tickets.jsonl", ""
    if case == "non_utf8_dataset":
        (uc / "data" / "tickets.jsonl").write_bytes(b'{"ticket": "caf\xe9", "label": "x"}\n')
        return "tickets.jsonl", ""
    if case == "bad_gate":
        (uc / "llmops.yaml").write_text("gates:\n  - 'accuracy is high'\n")
        return "llmops.yaml", "gates"
    raise AssertionError(case)


BAD_CASES = [
    "malformed_yaml",
    "malformed_json_old_layout",
    "missing_flow",
    "missing_prompt",
    "unknown_default_variant",
    "missing_dataset",
    "unknown_column",
    "empty_dataset",
    "non_utf8_dataset",
    "bad_gate",
]


@pytest.mark.parametrize("case", BAD_CASES)
def test_bad_input_is_named_and_does_not_hide_healthy(tmp_path, case, capsys):
    make_use_case(tmp_path, "healthy")
    broken = make_use_case(tmp_path, "broken")
    file, field = _break(broken, case)
    ws = load_workspace(tmp_path)
    by_name = {uc.path.name: uc for uc in ws.use_cases}
    assert by_name["healthy"].ok
    problems = by_name["broken"].problems
    assert problems, case
    first = problems[0]
    assert first.file.endswith(file), (case, str(first))
    assert field in first.field, (case, str(first))
    # the CLI: healthy listed, broken reported on one line, exit 2, no traceback
    code = cli_main(["list", "--workspace", str(tmp_path), "--json"])
    out = capsys.readouterr()
    assert code == 2
    data = json.loads(out.out)
    assert [u["name"] for u in data["use_cases"]] == ["healthy"]
    assert data["errors"] and all({"file", "field", "message"} <= set(e) for e in data["errors"])
    assert "Traceback" not in out.err


def test_show_broken_exits_2_with_one_line(tmp_path):
    uc = make_use_case(tmp_path, "broken")
    _break(uc, "missing_prompt")
    proc = run_cli("show", "broken", "--workspace", str(tmp_path))
    assert proc.returncode == 2
    assert "Traceback" not in proc.stderr
    assert "prompt_v1.jinja2" in proc.stderr and "flow.dag.yaml" in proc.stderr


def test_unknown_use_case_and_missing_workspace(tmp_path):
    make_use_case(tmp_path)
    proc = run_cli("show", "nope", "--workspace", str(tmp_path))
    assert (
        proc.returncode == 2 and "no use case named 'nope'" in proc.stderr and "Traceback" not in proc.stderr
    )
    proc = run_cli("list", "--workspace", str(tmp_path / "missing"))
    assert proc.returncode == 2 and "workspace folder not found" in proc.stderr


def test_duplicate_use_case_names(tmp_path):
    a = make_use_case(tmp_path, "one")
    b = make_use_case(tmp_path, "two")
    for uc in (a, b):
        text = (uc / "experiment.yaml").read_text()
        (uc / "experiment.yaml").write_text(text.replace(f"name: {uc.name}", "name: same"))
    ws = load_workspace(tmp_path)
    assert ws.problems and "duplicate use-case name 'same'" in ws.problems[0].message
    assert sum(1 for uc in ws.use_cases if uc.ok) == 1


def test_old_layout_unknown_related_dataset(tmp_path):
    if not TEMPLATE.is_dir():
        pytest.skip("template fixture repo missing")
    shutil.copytree(TEMPLATE, tmp_path / "repo")
    data_config = tmp_path / "repo" / "math_coding" / "configs" / "data_config.json"
    text = data_config.read_text()
    data = json.loads(text)
    for row in data["datasets"]:
        if row.get("RELATED_EXP_DATASET"):
            row["RELATED_EXP_DATASET"] = "nope"
    data_config.write_text(json.dumps(data))
    uc = next(u for u in load_workspace(tmp_path / "repo").use_cases if u.format == "llmops_config")
    assert any(p.field.endswith("RELATED_EXP_DATASET") for p in uc.problems)


def test_version():
    proc = run_cli("--version")
    assert proc.returncode == 0 and proc.stdout.startswith("llmops ")


def test_env_without_overlay_uses_experiment_yaml_when_declared(tmp_path):
    uc_dir = make_use_case(tmp_path)
    (uc_dir / "configs").mkdir()
    (uc_dir / "configs" / "deployment_config.json").write_text(
        json.dumps({"azure_managed_endpoint": [{"ENV_NAME": "prod", "ENDPOINT_NAME": "x"}]})
    )
    uc = load_workspace(tmp_path, env="prod").use_cases[0]
    assert uc.ok and "prod" in uc.environments and uc.datasets[0].rows == 12
    typo = load_workspace(tmp_path, env="prdo").use_cases[0]
    assert not typo.ok and "no overlay experiment.prdo.yaml" in typo.problems[0].message
    assert "prod" in typo.problems[0].hint


def test_usage_errors_exit_2_without_debug_hint(tmp_path):
    for args in (["list", "--bogus"], ["show"]):
        proc = run_cli(*args, "--workspace", str(tmp_path)) if args[0] == "list" else run_cli(*args)
        assert proc.returncode == 2, (args, proc.stderr)
        assert "--debug" not in proc.stderr and "Traceback" not in proc.stderr


def test_llmops_yaml_dataset_missing_under_overlay_names_the_file(tmp_path):
    from llmops_tui.core.errors import LlmopsError
    from llmops_tui.core.sweep import plan_sweep

    uc_dir = make_use_case(tmp_path)
    (uc_dir / "data" / "small.jsonl").write_text('{"ticket": "a", "label": "other"}\n')
    (uc_dir / "experiment.dev.yaml").write_text(
        "datasets:\n- name: small\n  source: data/small.jsonl\n  mappings:\n    ticket: ${data.ticket}\n"
        "evaluators: []\n"
    )
    (uc_dir / "llmops.yaml").write_text("sweep:\n  datasets: [tickets_train]\n")
    uc = load_workspace(tmp_path, env="dev").use_cases[0]
    with pytest.raises(LlmopsError) as err:
        plan_sweep(uc)
    assert (
        "llmops.yaml" in str(err.value)
        and "sweep.datasets" in str(err.value)
        and "under env dev" in str(err.value)
    )


def test_ambiguous_run_prefix(tmp_path):
    from llmops_tui.core.errors import LlmopsError
    from llmops_tui.core.store import RunStore

    with RunStore.for_workspace(tmp_path) as store:
        store.create_run("20260101-000000-aaaaaa", "x", None, {})
        store.create_run("20260101-000000-bbbbbb", "x", None, {})
        assert store.get_run("20260101-000000-a").run_id == "20260101-000000-aaaaaa"
        with pytest.raises(LlmopsError, match="matches 2 runs"):
            store.get_run("20260101")
        assert store.get_run("nope") is None


def test_keys_and_set_key_never_print_the_key(tmp_path, monkeypatch, capsys):
    make_use_case(tmp_path)
    monkeypatch.setenv("AOAI_API_KEY", "sk-canary-keys-cmd")
    assert cli_main(["keys", "--workspace", str(tmp_path), "--json"]) == 0
    out = capsys.readouterr().out
    data = json.loads(out)
    assert data["connections"] == [
        {"use_case": "tickets", "connection": "aoai", "env_var": "AOAI_API_KEY", "found_in": "env"}
    ]
    assert "sk-canary-keys-cmd" not in out
    monkeypatch.delenv("AOAI_API_KEY")
    assert cli_main(["keys", "--workspace", str(tmp_path), "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["connections"][0]["found_in"] is None
    assert cli_main(["set-key", "not a name"]) == 2


def test_delete_run(tmp_path, capsys):
    from llmops_tui.core.store import RunStore

    with RunStore.for_workspace(tmp_path) as store:
        store.create_run("20260101-000000-aaaaaa", "x", None, {})
        store.finish_run("20260101-000000-aaaaaa", "completed", {})
    assert cli_main(["delete-run", "20260101", "--yes", "--workspace", str(tmp_path)]) == 0
    with RunStore.for_workspace(tmp_path) as store:
        assert store.list_runs() == []
    assert cli_main(["delete-run", "nope", "--yes", "--workspace", str(tmp_path)]) == 2


# ------------------------------------------------------------------ plan-time flow checks (issue 12)

FIXTURE_WORKSPACES = [
    REPO,
    TEMPLATE,
    REPO / "tests" / "fixtures" / "tui_workspace",
]


@pytest.mark.parametrize("root", FIXTURE_WORKSPACES, ids=lambda p: p.name)
def test_flow_checks_find_nothing_in_bundled_and_fixture_use_cases(root, tmp_path):
    """No false positives: every bundled use case and fixture (and the builders' use case) is clean,
    without warnings; the TUI fixture's deliberately broken use case keeps only its own problem."""
    for env in (None, "dev") if root == REPO else (None,):
        ws = load_workspace(root, env=env)
        for uc in ws.use_cases:
            if uc.name == "broken_case":
                assert [p.field for p in uc.problems] == ["flow"], [str(p) for p in uc.problems]
                continue
            assert uc.ok, [str(p) for p in uc.problems]
            assert uc.warnings == [], [str(p) for p in uc.warnings]
    make_use_case(tmp_path)
    built = load_workspace(tmp_path).use_cases[0]
    assert built.ok and not built.warnings, [str(p) for p in built.problems + built.warnings]


def _flow_dir(tmp_path: Path) -> tuple[Path, Path]:
    uc = make_use_case(tmp_path)
    return uc, uc / "flows" / "standard"


def _problems(tmp_path: Path) -> tuple[list[str], list[str]]:
    uc = load_workspace(tmp_path).use_cases[0]
    return [str(p) for p in uc.problems], [str(p) for p in uc.warnings]


def test_where_prompt_flow_still_runs_it_is_a_warning(tmp_path):
    uc, flow = _flow_dir(tmp_path)
    ev = uc / "flows" / "evaluation" / "flow.dag.yaml"
    # an output that references an aggregation node: Prompt flow drops it and runs
    ev.write_text(
        ev.read_text().replace("outputs:\n", "outputs:\n  summary:\n    reference: ${aggregate.output}\n")
    )
    # requirement lines we cannot check, and one for another interpreter
    (flow / "requirements.txt").write_text(
        "promptflow\n# a comment\n-r other.txt\n--extra-index-url https://example.org/simple\n"
        'surely-not-installed-pkg; python_version < "3.0"\nPromptFlow-Tools>=1.0  # any case, any separator\n'
    )
    errors, warnings = _problems(tmp_path)
    assert errors == [], errors
    assert any("Prompt flow drops it" in w for w in warnings), warnings
    assert any("'-r other.txt' is not checked" in w for w in warnings), warnings


def test_guarded_and_local_imports_are_not_flagged(tmp_path):
    uc, flow = _flow_dir(tmp_path)
    (flow / "helpers.py").write_text("def clean(x):\n    return x\n")
    (flow / "parse.py").write_text(
        "try:\n    import surely_missing_module\nexcept ImportError:\n    surely_missing_module = None\n"
        "import helpers\nfrom promptflow.core import tool as pf_tool\n\n\n"
        "@pf_tool\ndef parse(answer: str) -> str:\n    import also_missing_but_lazy  # noqa\n"
        "    return helpers.clean(answer)\n"
    )
    errors, warnings = _problems(tmp_path)
    assert errors == [] and warnings == [], (errors, warnings)


def test_additional_includes_count_as_local_modules(tmp_path):
    uc, flow = _flow_dir(tmp_path)
    dag = flow / "flow.dag.yaml"
    dag.write_text("additional_includes:\n- ../shared/common_utils\n" + dag.read_text())
    (flow / "parse.py").write_text(
        "import common_utils\nfrom promptflow.core import tool\n\n\n@tool\ndef parse(answer: str) -> str:\n"
        "    return answer\n"
    )
    errors, _ = _problems(tmp_path)
    assert errors == [], errors


def test_package_tool_from_an_installed_package_is_accepted(tmp_path):
    uc, flow = _flow_dir(tmp_path)
    dag = flow / "flow.dag.yaml"
    dag.write_text(
        dag.read_text().replace(
            "node_variants:\n",
            "- name: embed\n  type: python\n  source:\n    type: package\n"
            "    tool: promptflow.tools.embedding.embedding\n  inputs:\n    input: ${inputs.ticket}\n"
            "node_variants:\n",
        )
    )
    errors, warnings = _problems(tmp_path)
    assert errors == [] and warnings == [], (errors, warnings)


def test_tool_decorated_only_inside_a_condition_is_a_warning(tmp_path):
    uc, flow = _flow_dir(tmp_path)
    (flow / "parse.py").write_text(
        "from promptflow.core import tool\n\nif True:\n\n    @tool\n    def parse(answer: str) -> str:\n"
        "        return answer\n"
    )
    errors, warnings = _problems(tmp_path)
    assert errors == [] and any("not defined at the top level" in w for w in warnings), (errors, warnings)


def test_list_and_show_print_warnings_and_exit_0(tmp_path):
    uc, flow = _flow_dir(tmp_path)
    (flow / "requirements.txt").write_text("-e ./local_pkg\n")
    proc = run_cli("list", "--workspace", str(tmp_path), "--json")
    assert proc.returncode == 0, proc.stderr
    data = json.loads(proc.stdout)
    assert data["errors"] == [] and data["warnings"][0]["field"] == "line 1"
    assert data["use_cases"][0]["warnings"][0]["file"].endswith("requirements.txt")
    proc = run_cli("show", "tickets", "--workspace", str(tmp_path))
    assert proc.returncode == 0 and "warning" in proc.stderr and "not checked" in proc.stderr, proc.stderr


def test_every_flow_problem_is_one_line_naming_file_and_field(tmp_path):
    uc, flow = _flow_dir(tmp_path)
    dag = flow / "flow.dag.yaml"
    dag.write_text(dag.read_text().replace("answer: ${classify.output}", "answer: ${clasify.output}"))
    (flow / "prompt_v1.jinja2").write_text("{% for x in y %}\nno end\n")
    errors, _ = _problems(tmp_path)
    assert len(errors) == 2, errors
    assert all("\n" not in e for e in errors)
    ref = next(e for e in errors if "clasify" in e)
    assert ref.startswith("use_cases/tickets/flows/standard/flow.dag.yaml: nodes.parse.inputs.answer: ")
    assert "did you mean 'classify'?" in ref
    jinja = next(e for e in errors if "Jinja" in e)
    assert jinja.startswith("use_cases/tickets/flows/standard/prompt_v1.jinja2: line ")
    assert "node 'classify' (variant variant_1)" in jinja
