"""`llmops deploy-migrated --require-approval`: a migrated flow reaches an environment only when it was
migrated from the configuration approved for it, its Prompt flow source still hashes to the approved one,
and no migrated file was edited since `llmops migrate` wrote it (`--allow-edited` is an override the plan
names). Refusals are one line and exit code 2, and nothing is written."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from test_deploy_migrated import _stop_all, needs_af
from test_deploy_support import APPROVAL_KEY, CANARY, REPO, USE_CASE, all_text, write_approval

from llmops_tui.cli import main

APPROVED = {"ner_llm": "variant_1"}


@pytest.fixture()
def ws(tmp_path, monkeypatch):
    """The bundled use case (its own deployment config: Kubernetes dev takes all traffic), the approval
    key, and no cluster reachable whatever this machine has configured."""
    monkeypatch.setenv("LLMOPS_APPROVAL_KEY", APPROVAL_KEY)
    monkeypatch.setenv("KUBECONFIG", str(tmp_path / "no-kubeconfig"))
    monkeypatch.setattr("llmops_tui.deploy.kubernetes.kubectl_context", lambda: None)
    root = tmp_path / "ws"
    shutil.copytree(
        REPO / "use_cases" / USE_CASE,
        root / "use_cases" / USE_CASE,
        ignore=shutil.ignore_patterns(".promptflow", "approvals"),
    )
    return root


def migrate(ws: Path, capsys, *variants: str) -> Path:
    out = ws / "migrated" / USE_CASE
    args = ["migrate", USE_CASE, "-w", str(ws), "--out", str(out), "--no-verify", "--json"]
    for v in variants:
        args += ["--variant", v]
    assert main(args) == 0
    capsys.readouterr()
    return out


def deploy(ws: Path, folder: Path, *extra: str) -> list[str]:
    return ["deploy-migrated", str(folder), "-t", "kubernetes", "--env", "dev", "-w", str(ws), "--json",
            "--require-approval", "--dry-run", *extra]  # fmt: skip


def refused(ws: Path, capsys, args: list[str]) -> str:
    assert main(args) == 2
    captured = capsys.readouterr()
    err = captured.err.strip()
    assert captured.out == "" and len(err.splitlines()) == 1, err
    assert "Traceback" not in err and not (ws / ".llmops" / "deploy").exists()
    return err


def test_manifest_records_provenance_and_no_secret(ws, capsys, monkeypatch):
    from llmops_tui.core.approval import approved_flow_hash, source_file_hashes
    from llmops_tui.core.hashing import hash_file
    from llmops_tui.core.workspace import load_workspace

    monkeypatch.setenv("AOAI_API_KEY", "sk-canary-7f3e9d1c2b4a")
    out = migrate(ws, capsys, "ner_llm=variant_1")
    text = (out / "llmops-migration.json").read_text()
    assert "sk-canary" not in text
    manifest = json.loads(text)
    assert manifest["use_case"] == USE_CASE and manifest["kind"] == "llmops-tui/migration"
    std = next(f for f in manifest["flows"] if f["role"] == "standard")
    uc = load_workspace(ws).get(USE_CASE)
    assert std["variants"] == APPROVED and std["params"] == {}
    assert std["flow_hash"] == approved_flow_hash(uc, APPROVED, {})
    assert std["source_files"] == source_file_hashes(uc.standard_flow.path)
    on_disk = sorted(
        p.relative_to(out / "standard").as_posix() for p in (out / "standard").rglob("*") if p.is_file()
    )
    assert sorted(std["files"]) == on_disk and "flow.py" in on_disk
    assert std["files"]["flow.py"] == hash_file(out / "standard" / "flow.py")


def test_approved_migration_passes_and_the_plan_names_the_record(ws, capsys):
    record = write_approval(ws, "dev", APPROVED, {})
    folder = migrate(ws, capsys, "ner_llm=variant_1")
    assert main(deploy(ws, folder)) == 0
    plan = json.loads(capsys.readouterr().out)
    approval = plan["configuration"]["approval"]
    assert approval["verified"] is True and approval["approver"] == "Test Lead <lead@example.com>"
    assert plan["configuration"]["variants"] == APPROVED
    assert approval["path"] == record.relative_to(ws).as_posix() and approval["id"].startswith("sha256:")
    first = plan["steps"][0]
    assert first["action"] == "note" and approval["path"] in first["summary"]
    assert "Test Lead" in first["summary"] and approval["decided_at"] in first["summary"]
    assert "migrated files unchanged" in first["summary"] and plan["configuration"]["overrides"] == []
    # the human plan says it too
    assert main([a for a in deploy(ws, folder) if a != "--json"]) == 0
    assert f"approval {approval['path']}" in capsys.readouterr().out
    # and the deployment's own record keeps it (the manifests are written; no cluster is reachable)
    assert main([a for a in deploy(ws, folder) if a != "--dry-run"]) == 0
    capsys.readouterr()
    meta = json.loads(
        (ws / ".llmops/deploy" / USE_CASE / "dev/migrated-kubernetes/llmops-deployment.json").read_text()
    )
    assert meta["approval"]["id"] == approval["id"] and meta["overrides"] == []


def test_other_variants_are_refused(ws, capsys):
    record = write_approval(ws, "dev", APPROVED, {})
    folder = migrate(ws, capsys, "ner_llm=variant_2")
    err = refused(ws, capsys, deploy(ws, folder))
    assert record.name in err and "variants" in err and "ner_llm.variant_2" in err
    assert "llmops migrate named_entity_recognition --variant ner_llm=variant_1" in err
    # default variants are "other variants" too
    folder = migrate(ws, capsys)
    assert "ner_llm.variant_0" in refused(ws, capsys, deploy(ws, folder))


def test_an_edited_migrated_file_is_refused_unless_allowed_and_then_named(ws, capsys):
    write_approval(ws, "dev", APPROVED, {})
    folder = migrate(ws, capsys, "ner_llm=variant_1")
    flow_py = folder / "standard" / "flow.py"
    flow_py.write_text(flow_py.read_text() + "\n# a local tweak\n")
    err = refused(ws, capsys, deploy(ws, folder))
    assert "standard/flow.py" in err and "changed since llmops migrate wrote it" in err
    assert "re-run llmops migrate" in err and "--allow-edited" in err

    assert main(deploy(ws, folder, "--allow-edited")) == 0
    plan = json.loads(capsys.readouterr().out)
    overrides = plan["configuration"]["overrides"]
    assert (
        len(overrides) == 1
        and overrides[0].startswith("--allow-edited")
        and "flow.py (changed)" in overrides[0]
    )
    assert plan["steps"][1] == {"action": "note", "summary": f"override {overrides[0]}", "done": True}
    assert "EDITED" in plan["steps"][0]["summary"]
    assert main([a for a in deploy(ws, folder, "--allow-edited") if a != "--dry-run"]) == 0
    capsys.readouterr()
    meta = json.loads(
        (ws / ".llmops/deploy" / USE_CASE / "dev/migrated-kubernetes/llmops-deployment.json").read_text()
    )
    assert meta["overrides"] == overrides
    shutil.rmtree(ws / ".llmops")

    # an added file is an edit too; a virtual environment made to run the code is not
    flow_py.unlink()
    folder_std = folder / "standard"
    migrate(ws, capsys, "ner_llm=variant_1")
    (folder_std / ".venv" / "bin").mkdir(parents=True)
    (folder_std / ".venv" / "bin" / "python").write_text("")
    assert main(deploy(ws, folder)) == 0
    capsys.readouterr()
    (folder_std / "extra.py").write_text("x = 1\n")
    assert "extra.py" in refused(ws, capsys, deploy(ws, folder))


def test_prompt_flow_source_edited_after_approval_is_refused(ws, capsys):
    write_approval(ws, "dev", APPROVED, {})
    folder = migrate(ws, capsys, "ner_llm=variant_1")
    prompt = ws / "use_cases" / USE_CASE / "flows" / "standard" / "ner_format.jinja2"
    prompt.write_text(prompt.read_text() + "\nBe brief.\n")
    err = refused(ws, capsys, deploy(ws, folder))
    assert "flow edited after approval" in err and "ner_format.jinja2" in err


def test_migrated_from_an_unapproved_source_is_refused(ws, capsys):
    """Source edited, migrated, then the edit reverted: the source verifies again, the code does not."""
    write_approval(ws, "dev", APPROVED, {})
    prompt = ws / "use_cases" / USE_CASE / "flows" / "standard" / "ner_format.jinja2"
    original = prompt.read_text()
    prompt.write_text(original + "\nBe brief.\n")
    folder = migrate(ws, capsys, "ner_llm=variant_1")
    prompt.write_text(original)
    err = refused(ws, capsys, deploy(ws, folder))
    assert "llmops-migration.json" in err and "flow_hash" in err and "not the approved" in err


def test_missing_approval_manifest_and_bad_options(ws, capsys):
    folder = migrate(ws, capsys, "ner_llm=variant_1")
    err = refused(ws, capsys, deploy(ws, folder))
    assert "does not verify" in err and "missing" in err  # deploy's own words
    write_approval(ws, "dev", APPROVED, {})
    (folder / "llmops-migration.json").unlink()
    assert "no migration manifest" in refused(ws, capsys, deploy(ws, folder))
    migrate(ws, capsys, "ner_llm=variant_1")
    no_env = [a for a in deploy(ws, folder) if a not in ("--env", "dev")]
    assert "--require-approval needs --env" in refused(ws, capsys, no_env)
    plain = [a for a in deploy(ws, folder, "--allow-edited") if a != "--require-approval"]
    assert "--allow-edited only applies with --require-approval" in refused(ws, capsys, plain)
    other = deploy(ws, folder, "--use-case", "someone_else")
    assert "--use-case someone_else" in refused(ws, capsys, other)


def test_container_target_checks_the_approval_too(ws, capsys):
    write_approval(ws, "dev", APPROVED, {})
    folder = migrate(ws, capsys, "ner_llm=variant_2")
    args = ["deploy-migrated", str(folder), "-t", "container", "--env", "dev", "--require-approval",
            "--dry-run", "--json", "-w", str(ws)]  # fmt: skip
    assert "variants" in refused(ws, capsys, args)
    migrate(ws, capsys, "ner_llm=variant_1")
    assert main(args) == 0
    plan = json.loads(capsys.readouterr().out)
    assert plan["steps"][0]["action"] == "note" and plan["configuration"]["approval"]["verified"]
    # without --require-approval, --env still means nothing to a container and is refused
    plain = [a for a in args if a != "--require-approval"]
    assert main(plain) == 2


def test_without_require_approval_the_plan_says_whether_it_matches(ws, capsys):
    """As llmops deploy without --require-approval: the record is not enforced, but it is said."""
    write_approval(ws, "dev", APPROVED, {})
    folder = migrate(ws, capsys, "ner_llm=variant_2")
    args = [a for a in deploy(ws, folder) if a != "--require-approval"]
    assert main(args) == 0
    notes = json.loads(capsys.readouterr().out)["notes"]
    assert any(
        n.startswith("not the configuration approved for dev") and "--require-approval" in n for n in notes
    )
    migrate(ws, capsys, "ner_llm=variant_1")
    assert main(args) == 0
    notes = json.loads(capsys.readouterr().out)["notes"]
    assert any(n.startswith("matches the configuration approved for dev") for n in notes)


def test_an_approval_with_parameter_overrides_is_refused(ws, capsys):
    record = write_approval(ws, "dev", APPROVED, {"ner_llm.temperature": 0.3})
    folder = migrate(ws, capsys, "ner_llm=variant_1")
    err = refused(ws, capsys, deploy(ws, folder))
    assert record.name in err and "params" in err and "ner_llm.temperature" in err


def test_local_target_refuses_before_starting_anything(ws, capsys):
    write_approval(ws, "dev", APPROVED, {})
    folder = migrate(ws, capsys, "ner_llm=variant_2")
    args = ["deploy-migrated", str(folder), "--env", "dev", "--require-approval", "--llm-endpoint", "sandbox",
            "-w", str(ws)]  # fmt: skip
    assert "variants" in refused(ws, capsys, args)
    assert not (ws / ".llmops" / "deployments").exists()


@pytest.mark.integration
@needs_af
def test_an_approved_migration_is_served_locally_and_says_what_it_rests_on(ws, capsys, sandbox, monkeypatch):
    monkeypatch.setenv("AOAI_API_BASE", sandbox.url)
    monkeypatch.setenv("AOAI_API_KEY", CANARY)
    write_approval(ws, "dev", APPROVED, {})
    folder = migrate(ws, capsys, "ner_llm=variant_1")
    args = ["deploy-migrated", str(folder), "--env", "dev", "--require-approval", "-w", str(ws), "--json",
            "--timeout", "90"]  # fmt: skip
    try:
        code = main(args)
        result = json.loads(capsys.readouterr().out)
        assert code == 0 and result["test"]["ok"], result
        assert result["steps"][0]["summary"].startswith("approval ") and result["configuration"]["approval"]
        meta = json.loads((Path(result["deployment"]["folder"]) / "llmops-deployment.json").read_text())
        assert meta["approval"]["id"] == result["configuration"]["approval"]["id"]
    finally:
        _stop_all(ws)
    assert CANARY not in all_text(ws / ".llmops")
