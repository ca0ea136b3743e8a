"""Adopting llmops-tui in a user's repository: `llmops init` (llmops.yaml, .gitignore, CI workflows checked
against the GitHub and Azure Pipelines schemas), `llmops demo`, `llmops-tui --demo`, `llmops doctor`,
`--version`."""

from __future__ import annotations

import gzip
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import jsonschema
import pytest
import yaml

from llmops_tui import __version__
from llmops_tui.cli import main
from llmops_tui.core.workspace import load_workspace

FIXTURES = Path(__file__).parent / "fixtures"
SCHEMAS = FIXTURES / "schemas"


@pytest.fixture
def template_repo(tmp_path: Path) -> Path:
    root = tmp_path / "repo"
    shutil.copytree(FIXTURES / "template_repo", root)
    return root


def _github_errors(doc: dict) -> list[str]:
    schema = json.loads((SCHEMAS / "github-workflow.json").read_text())
    doc = dict(doc)
    if True in doc:  # YAML 1.1 reads the key `on` as true; GitHub reads it as "on"
        doc["on"] = doc.pop(True)
    return [e.message for e in jsonschema.Draft7Validator(schema).iter_errors(doc)]


def _azure_errors(doc: dict) -> list[str]:
    schema = json.loads(gzip.decompress((SCHEMAS / "azure-pipelines.json.gz").read_bytes()))
    return [e.message for e in jsonschema.Draft7Validator(schema).iter_errors(doc)]


def _steps_text(doc: dict) -> str:
    return yaml.safe_dump(doc)


def _shell_scripts(node) -> list[str]:
    """Every shell script of a workflow: GitHub `run`, Azure `bash` and `inlineScript`."""
    if isinstance(node, dict):
        found = [v for k, v in node.items() if k in ("run", "bash", "inlineScript") and isinstance(v, str)]
        return found + [s for v in node.values() for s in _shell_scripts(v)]
    if isinstance(node, list):
        return [s for v in node for s in _shell_scripts(v)]
    return []


def _assert_scripts_parse(doc: dict) -> None:
    scripts = _shell_scripts(doc)
    assert len(scripts) >= 5
    for script in scripts:
        result = subprocess.run(["bash", "-n"], input=script, text=True, capture_output=True)
        assert result.returncode == 0, (script, result.stderr)


# ------------------------------------------------------------------------------------------------ init


def test_init_writes_llmops_yaml_per_use_case_for_both_layouts_and_ignores_the_store(template_repo, capfd):
    assert main(["init", "-w", str(template_repo)]) == 0
    out = capfd.readouterr().out
    # experiment.yaml (web_classification) and llmops_config.json + configs/ (math_coding)
    for name in ("web_classification", "math_coding"):
        assert f"wrote     {name}/llmops.yaml" in out
    web = (template_repo / "web_classification" / "llmops.yaml").read_text()
    assert "#   classify_with_llm: variant_0, variant_1" in web
    assert "classify_with_llm.temperature: [0.0, 0.7]" in web
    assert '# - "web_classification_eval.accuracy >= 0.8"' in web  # read from the evaluator's log_metric
    math = (template_repo / "math_coding" / "llmops.yaml").read_text()
    assert '# - "math_eval_2.mean_abs_error <= 0.2"' in math  # an error metric gets the right direction
    # The written files are valid llmops.yaml: the workspace loads them with no problem and no warning.
    ws = load_workspace(template_repo)
    for uc in ws.use_cases:
        assert uc.ok and not uc.warnings, (uc.name, uc.problems, uc.warnings)
        assert uc.extras.sweep is not None and uc.extras.gates
    assert main(["list", "-w", str(template_repo), "--strict"]) == 0
    assert (template_repo / ".gitignore").read_text().splitlines()[-1] == ".llmops/"


def test_init_never_overwrites_without_force_and_says_so(template_repo, capfd):
    mine = template_repo / "web_classification" / "llmops.yaml"
    mine.write_text("gates: []\n")
    (template_repo / ".gitignore").write_text("*.pyc\n.llmops/\n")
    assert main(["init", "-w", str(template_repo), "--ci", "github"]) == 0
    out = capfd.readouterr().out
    assert mine.read_text() == "gates: []\n"
    assert "kept      web_classification/llmops.yaml  (exists; --force to overwrite)" in out
    assert "kept      .gitignore  (.llmops/ is already ignored)" in out
    assert (template_repo / ".gitignore").read_text() == "*.pyc\n.llmops/\n"
    workflow = template_repo / ".github" / "workflows" / "llmops.yml"
    workflow.write_text("# mine\n")
    assert main(["init", "-w", str(template_repo), "--ci", "github"]) == 0
    assert workflow.read_text() == "# mine\n"
    assert main(["init", "-w", str(template_repo), "--ci", "github", "--force"]) == 0
    out = capfd.readouterr().out
    assert "replaced  web_classification/llmops.yaml" in out
    assert "replaced  .github/workflows/llmops.yml" in out
    assert "classify_with_llm" in mine.read_text()


def test_init_github_workflow_installs_the_pinned_tool_and_passes_the_workflow_schema(template_repo, capfd):
    assert main(["init", "-w", str(template_repo), "--ci", "github"]) == 0
    out = capfd.readouterr().out
    assert "CI secrets to set: AOAI_API_KEY, AZURE_CLIENT_ID, AZURE_TENANT_ID, AZURE_SUBSCRIPTION_ID\n" in out
    text = (template_repo / ".github" / "workflows" / "llmops.yml").read_text()
    # CI verifies approvals with the public keys in allowed_signers and holds no approval secret
    assert "secrets.LLMOPS_APPROVAL_KEY" not in text and 'llmops approvers list "$USE_CASE"' in text
    doc = yaml.safe_load(text)
    assert _github_errors(doc) == []
    _assert_scripts_parse(doc)
    # The tool, pinned; never the user's repository.
    assert f'LLMOPS_TUI_VERSION: "{__version__}"' in text
    assert 'pip" install --quiet "llmops-tui==$LLMOPS_TUI_VERSION"' in text
    assert "pip install ." not in text and "-e ." not in text and "constraints.txt" not in text
    evaluate, deploy = doc["jobs"]["evaluate"], doc["jobs"]["deploy"]
    assert [m["use_case"] for m in evaluate["strategy"]["matrix"]["include"]] == [
        "math_coding",
        "web_classification",
    ]
    steps = {s.get("name") or s.get("uses"): s for s in evaluate["steps"]}
    sweep = steps["Sweep"]
    assert (
        sweep["env"]["AOAI_API_KEY"] == "${{ secrets.AOAI_API_KEY }}"
    )  # real connections, keys from secrets
    assert "--llm-endpoint sandbox" not in text  # no sandbox unless asked for
    assert 'llmops runs export "$RUN_ID"' in steps["Report and exported run"]["run"]
    assert steps["Quality gates"]["run"] == 'llmops gate "$RUN_ID"'
    assert deploy["if"] == "github.event_name != 'pull_request'"
    deploy_steps = _steps_text(deploy)
    assert "llmops verify-approval" in deploy_steps and "--require-approval" in deploy_steps
    # deployment_config.json of both use cases has an azure_managed_endpoint block
    assert {m["target"] for m in deploy["strategy"]["matrix"]["include"]} == {"azureml"}
    # the schema check can fail: a misspelt key and a wrong type are refused
    broken = yaml.safe_load(text)
    broken["jobs"]["evaluate"]["runs_on"] = broken["jobs"]["evaluate"].pop("runs-on")
    broken["jobs"]["evaluate"]["steps"][0]["uses"] = 4
    assert len(_github_errors(broken)) >= 1


def test_init_sandbox_only_for_pull_requests_from_forks_when_asked(template_repo):
    assert main(["init", "-w", str(template_repo), "--ci", "github", "--sandbox-for-forks"]) == 0
    doc = yaml.safe_load((template_repo / ".github" / "workflows" / "llmops.yml").read_text())
    assert _github_errors(doc) == []
    sweep = next(s for s in doc["jobs"]["evaluate"]["steps"] if s.get("name") == "Sweep")
    assert "head.repo.full_name != github.repository" in sweep["env"]["FROM_FORK"]
    assert 'if [ "$FROM_FORK" = "true" ]; then' in sweep["run"]
    assert "endpoint=(--llm-endpoint sandbox)" in sweep["run"]
    _assert_scripts_parse(doc)
    # A failed sweep still hands its run id to the report step, then fails the job.
    assert sweep["run"].rstrip().endswith('exit "$rc"') and "|| rc=$?" in sweep["run"]


def test_init_azure_pipelines_is_valid_and_has_the_expected_stages(template_repo):
    assert main(["init", "-w", str(template_repo), "--ci", "azure-pipelines", "--sandbox-for-forks"]) == 0
    text = (template_repo / ".azure-pipelines" / "llmops.yml").read_text()
    assert "LLMOPS_APPROVAL_KEY: $(LLMOPS_APPROVAL_KEY)" not in text
    doc = yaml.safe_load(text)
    assert _azure_errors(doc) == []
    _assert_scripts_parse(doc)
    assert [s["stage"] for s in doc["stages"]] == ["evaluate", "deploy"]
    sweep_job = doc["stages"][0]["jobs"][0]
    assert set(sweep_job["strategy"]["matrix"]) == {"math_coding", "web_classification"}
    sweep = next(s for s in sweep_job["steps"] if s.get("name") == "sweep")
    assert sweep["env"] == {"AOAI_API_KEY": "$(AOAI_API_KEY)"}
    assert "System.PullRequest.IsFork" in sweep["bash"]
    assert '"llmops-tui==$(LLMOPS_TUI_VERSION)"' in text and f"LLMOPS_TUI_VERSION: '{__version__}'" in text
    assert "pip install ." not in text
    deploy = doc["stages"][1]
    assert "PullRequest" in deploy["condition"]
    assert [j["deployment"] for j in deploy["jobs"]] == ["deploy_math_coding", "deploy_web_classification"]
    assert "--require-approval" in _steps_text(deploy) and "llmops verify-approval" in _steps_text(deploy)
    broken = yaml.safe_load(text)
    broken["stages"][0]["jobs"][0]["steps"][0] = {"bashh": "echo a misspelt step"}
    assert _azure_errors(broken)


def test_init_on_flex_flows_and_bad_input(tmp_path, capfd):
    root = tmp_path / "byo"
    shutil.copytree(FIXTURES / "byo_repo", root)
    assert main(["init", "-w", str(root), "--use-case", "chat_flow", "--ci", "github"]) == 0
    text = (root / "chat_flow" / "llmops.yaml").read_text()
    assert "no node variants" in text
    assert not (root / "chat_dag" / "llmops.yaml").exists()  # only the chosen use case
    doc = yaml.safe_load((root / ".github" / "workflows" / "llmops.yml").read_text())
    assert _github_errors(doc) == []
    assert load_workspace(root).get("chat_flow").warnings == []
    capfd.readouterr()
    assert main(["init", "-w", str(root), "--ci", "gitlab"]) == 2
    assert "--ci: unknown CI 'gitlab' (use one of: github, azure-pipelines)" in capfd.readouterr().err
    empty = tmp_path / "empty"
    empty.mkdir()
    assert main(["init", "-w", str(empty)]) == 2
    assert "no use cases found" in capfd.readouterr().err


# ------------------------------------------------------------------------------------------------ demo


def test_demo_copies_the_bundled_use_cases_and_never_overwrites(tmp_path, capfd):
    target = tmp_path / "demo"
    assert main(["demo", str(target)]) == 0
    names = sorted(p.name for p in (target / "use_cases").iterdir())
    assert names == ["document_qa", "named_entity_recognition", "support_ticket_classification"]
    assert not list(target.rglob("__pycache__")) and not (target / "use_cases" / "_tools").exists()
    ws = load_workspace(target)
    assert [uc.name for uc in ws.use_cases if uc.ok] == names
    capfd.readouterr()
    assert main(["demo", str(target)]) == 2
    assert "already holds" in capfd.readouterr().err
    (target / "use_cases" / "document_qa" / "README.md").write_text("changed")
    assert main(["demo", str(target), "--force"]) == 0
    assert (target / "use_cases" / "document_qa" / "README.md").read_text() != "changed"


def test_demo_workspace_is_made_once_in_the_user_data_folder(tmp_path, monkeypatch):
    from llmops_tui.core import demo

    monkeypatch.setenv(demo.DATA_DIR_ENV, str(tmp_path / "data"))
    first = demo.demo_workspace()
    assert first == tmp_path / "data" / f"demo-{__version__}"
    marker = first / "use_cases" / "document_qa" / "mine.txt"
    marker.write_text("kept")
    assert demo.demo_workspace() == first and marker.read_text() == "kept"  # reused, not copied again
    assert [p.name for p in (tmp_path / "data").iterdir()] == [first.name]  # no staging left behind


async def test_tui_demo_opens_the_bundled_use_cases_with_the_sandbox(tmp_path, monkeypatch):
    from llmops_tui.tui import app as app_module

    monkeypatch.setenv("LLMOPS_TUI_DATA_DIR", str(tmp_path / "data"))
    seen: dict = {}

    def run_headless(self, *args, **kwargs):
        seen["app"] = self

    monkeypatch.setattr(app_module.LlmopsApp, "run", run_headless)
    assert app_module.main(["--demo"]) == 0
    app = seen["app"]
    assert app.llm_endpoint == "sandbox" and app.sandbox_active
    assert app.workspace_root == (tmp_path / "data" / f"demo-{__version__}").resolve()
    async with app.run_test(size=(120, 40)) as pilot:
        await pilot.pause()
        assert [r.name for r in app.screen.rows] == [
            "document_qa",
            "named_entity_recognition",
            "support_ticket_classification",
        ]


def test_tui_version_and_demo_with_workspace_refused(capsys):
    from llmops_tui.tui.app import main as tui_main

    with pytest.raises(SystemExit) as exc:
        tui_main(["--version"])
    assert exc.value.code == 0 and capsys.readouterr().out.strip() == f"llmops-tui {__version__}"
    with pytest.raises(SystemExit) as exc:
        tui_main(["--demo", "--workspace", "elsewhere"])
    assert exc.value.code == 2 and "leave out --workspace" in capsys.readouterr().err


def test_cli_version(capfd):
    assert main(["--version"]) == 0
    assert capfd.readouterr().out.strip() == f"llmops {__version__}"


# ---------------------------------------------------------------------------------------------- doctor


def test_doctor_reports_everything_needed_and_exits_0(capfd, monkeypatch):
    monkeypatch.delenv("LLMOPS_APPROVAL_KEY", raising=False)
    assert main(["doctor", "--json"]) == 0
    data = json.loads(capfd.readouterr().out)
    assert data["ok"] is True and data["version"] == __version__
    checks = {c["name"]: c for c in data["checks"]}
    for name in ("python", "package promptflow", "package textual", "Prompt flow home", "keyring backend"):
        assert name in checks
    assert checks["package promptflow"]["detail"].startswith("1.18.")
    assert checks["shared approval key (older mode)"]["needed"] is False
    assert checks["approval signing key"]["needed"] is False
    assert all(c["status"] == "ok" for c in data["checks"] if c["needed"])
    assert "ssh-keygen" in checks and checks["ssh-keygen"]["needed"] is False


def test_doctor_names_the_fix_and_exits_1_when_a_needed_package_is_missing(capfd, monkeypatch):
    from importlib import metadata

    real = metadata.version

    def version(name: str) -> str:
        if name == "textual":
            raise metadata.PackageNotFoundError(name)
        if name == "promptflow":
            return "1.17.0"
        return real(name)

    monkeypatch.setattr(metadata, "version", version)
    monkeypatch.setenv("LLMOPS_APPROVAL_KEY", "k" * 40)
    assert main(["doctor"]) == 1
    out = capfd.readouterr().out
    assert "missing            package textual: not installed" in out
    assert "package promptflow: 1.17.0 installed, llmops-tui needs" in out
    assert "what to do: pipx reinstall llmops-tui" in out
    assert "shared approval key (older mode): from env" in out and "k" * 40 not in out
    assert "something needed is missing" in out


def test_doctor_shows_the_signing_key_by_fingerprint_never_its_contents(tmp_path, capfd, monkeypatch):
    import subprocess

    key = tmp_path / "id_ed25519"
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(key)], check=True)
    monkeypatch.setenv("LLMOPS_SIGNING_KEY", str(key))
    assert main(["doctor", "--json"]) == 0
    data = json.loads(capfd.readouterr().out)
    check = {c["name"]: c for c in data["checks"]}["approval signing key"]
    assert check["status"] == "ok" and "SHA256:" in check["detail"] and str(key) in check["detail"]
    private = key.read_text().splitlines()[1]
    assert private not in json.dumps(data)


def test_release_check_workflow_passes_the_workflow_schema_and_runs_the_dist_test():
    path = Path(__file__).parent.parent / ".github" / "workflows" / "release-check.yml"
    doc = yaml.safe_load(path.read_text())
    assert _github_errors(doc) == []
    runs = [s.get("run", "") for s in doc["jobs"]["dist"]["steps"]]
    assert "make dist" in runs and any("-m dist tests/test_dist.py" in r for r in runs)


@pytest.mark.integration
def test_github_workflow_evaluate_steps_run_as_written_on_a_fork_pull_request(template_repo, tmp_path):
    """The evaluate job's shell steps, run as GitHub would run them (bash -e), for a pull request from a
    fork: a real sandbox sweep, the report and exported run, the gates."""
    assert main(["init", "-w", str(template_repo), "--ci", "github", "--sandbox-for-forks"]) == 0
    (template_repo / "web_classification" / "llmops.yaml").write_text(
        'sweep: {variants: all}\ngates:\n  - "web_classification_eval.accuracy >= 0"\n'
    )
    doc = yaml.safe_load((template_repo / ".github" / "workflows" / "llmops.yml").read_text())
    steps = {s.get("name"): s for s in doc["jobs"]["evaluate"]["steps"]}
    outputs, summary = tmp_path / "github_output", tmp_path / "summary.md"
    bin_dir = Path(sys.executable).parent
    env = {
        **os.environ,
        "PATH": f"{bin_dir}{os.pathsep}{os.environ['PATH']}",
        "USE_CASE": "web_classification",
        "SWEEP_ENV": "dev",
        "FROM_FORK": "true",
        "GITHUB_OUTPUT": str(outputs),
        "GITHUB_STEP_SUMMARY": str(summary),
    }

    def step(name: str, **extra: str) -> subprocess.CompletedProcess:
        return subprocess.run(
            ["bash", "-e", "-c", steps[name]["run"]],
            cwd=template_repo,
            env={**env, **extra},
            capture_output=True,
            text=True,
            timeout=600,
        )

    sweep = step("Sweep")
    assert sweep.returncode == 0, sweep.stderr
    assert "sweeping against the offline sandbox model" in sweep.stdout
    run_id = outputs.read_text().strip().removeprefix("run_id=")
    assert run_id and json.loads((template_repo / "sweep.json").read_text())["run_id"] == run_id
    report = step("Report and exported run", RUN_ID=run_id)
    assert report.returncode == 0, report.stderr
    for name in ("report.html", "report.md", "run.llmops-run.json.gz"):
        assert (template_repo / name).is_file()
    assert run_id in summary.read_text()
    gates = step("Quality gates", RUN_ID=run_id)
    assert gates.returncode == 0, gates.stdout + gates.stderr
