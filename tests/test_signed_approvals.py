# ruff: noqa: F811  (the helpers take the workspace as ``ws``, the name of the fixture imported below)
"""Approvals signed by people's SSH keys, verified against an allowed-signers file with public keys only.

Every key is a real Ed25519 key made by ``ssh-keygen`` in tmp_path (never ~/.ssh). Signing and
verification go through the system ``ssh-keygen -Y``. The verifying side never has a private key or the
shared HMAC key: ``LLMOPS_APPROVAL_KEY`` is unset and no signing key is configured.
"""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import pytest
from test_approval import GOOD, RUN, WEAK, ws  # noqa: F401  (ws is the fixture: a workspace with one run)

from llmops_tui.cli import main
from llmops_tui.core import approval as core
from llmops_tui.core import sshsig
from llmops_tui.core.errors import LlmopsError
from llmops_tui.core.store import RunStore

pytestmark = pytest.mark.skipif(shutil.which("ssh-keygen") is None, reason="needs ssh-keygen")

HMAC_KEY = "shared-hmac-key-0123456789abcdef"


def make_key(folder: Path, name: str, passphrase: str = "") -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / name
    subprocess.run(
        ["ssh-keygen", "-q", "-t", "ed25519", "-N", passphrase, "-C", name, "-f", str(path)],
        check=True,
        capture_output=True,
    )
    return path


@pytest.fixture()
def keys(tmp_path: Path) -> dict[str, Path]:
    folder = tmp_path / "people-keys"  # outside the workspace: private keys never sit next to the repo
    return {who: make_key(folder, who) for who in ("ada", "bo", "carl", "dora", "eve")}


@pytest.fixture(autouse=True)
def _verifier_env(monkeypatch):
    """The verifier's environment: no shared key, no signing key (what CI holds)."""
    monkeypatch.delenv(core.KEY_ENV_VAR, raising=False)
    monkeypatch.delenv(sshsig.SIGNING_KEY_ENV, raising=False)
    import keyring
    from test_approval import MemoryKeyring

    previous = keyring.get_keyring()
    keyring.set_keyring(MemoryKeyring())
    yield
    keyring.set_keyring(previous)


@pytest.fixture()
def team(ws: Path, keys: dict[str, Path], capsys) -> Path:  # noqa: F811
    """The workspace's allowed_signers: ada and bo for dev+prod, carl dev only, dora expired; eve absent."""
    for who, envs, extra in (
        ("ada", ["dev", "prod"], []),
        ("bo", ["dev", "prod"], []),
        ("carl", ["dev"], []),
        ("dora", ["dev", "prod"], ["--valid-before", "2020-01-01"]),
    ):
        args = ["approvers", "add", f"{who}@example.com", str(keys[who]) + ".pub", "-w", str(ws)]
        for env in envs:
            args += ["--env", env]
        assert main(args + extra) == 0, capsys.readouterr()
    capsys.readouterr()
    return ws


def _uc(ws: Path, env: str = "prod"):
    return core.use_case_for_env(ws, "demo", env)


def _verify(ws: Path, env: str = "prod"):
    return core.verify_approval(ws, _uc(ws, env), env)


def _approve(ws: Path, key: Path, envs=("prod",), cell: str = GOOD):
    return core.approve(ws, RUN, cell, list(envs), by="", comment="fine", signer=core.SshSigner(key))


def _force_record(ws: Path, key: Path, env: str = "prod", principal: str = "someone@example.com") -> None:
    """Write a record signed by ``key`` without the signing-side check (what a forger could do)."""
    record = core.build_record(ws, RUN, GOOD, env, decision="approved", by=principal)
    record.approver = principal
    core.write_record(
        _uc(ws, env), record, None, workspace_root=ws, signer=core.SshSigner(key), principal=principal
    )


def _reason(result, prefix: str) -> str:
    found = [r for r in result.reasons if r.startswith(prefix)]
    assert found, result.reasons
    return found[0]


# --------------------------------------------------------------------------------------------- happy path


def test_allowed_signer_approval_verifies_with_public_keys_only(team: Path, keys, capsys):
    ws = team
    text = (ws / "allowed_signers").read_text()
    assert "PRIVATE" not in text and 'namespaces="llmops-approval"' in text
    assert "environments=dev,prod" in text and 'valid-before="20200101Z"' in text

    rc = main(["approve", RUN, "--cell", GOOD, "--env", "prod", "--key", str(keys["ada"]), "-w", str(ws)])
    out = capsys.readouterr().out
    assert rc == 0, out
    ada_fp = sshsig.fingerprint((keys["ada"].with_suffix(".pub")).read_text())
    assert "ada@example.com" in out and ada_fp in out

    data = json.loads((ws / "use_cases/demo/approvals/prod.json").read_text())
    assert data["signing"] == "ssh" and data["approver"] == "ada@example.com" and data["key_id"] == ada_fp
    assert [s["fingerprint"] for s in data["signatures"]] == [ada_fp]
    assert data["signatures"][0]["signature"].startswith("-----BEGIN SSH SIGNATURE-----")

    result = _verify(ws)
    assert result.ok, result.reasons
    assert result.mode == "ssh" and [s["principal"] for s in result.signers] == ["ada@example.com"]
    assert not any("shared-key" in w for w in result.warnings)

    # The CLI in CI: no private key, no HMAC key anywhere in its environment.
    rc = main(["verify-approval", "demo", "--env", "prod", "-w", str(ws)])
    out = capsys.readouterr().out
    assert rc == 0 and f"approved by ada@example.com ({ada_fp})" in out, out
    # ssh-keygen itself accepts the file and the signature (git's allowed_signers format).
    payload = core.signing_payload(data)
    assert sshsig.verify_allowed(
        payload, data["signatures"][0]["signature"], "ada@example.com", ws / "allowed_signers"
    ).ok
    assert sshsig.find_principals(data["signatures"][0]["signature"], ws / "allowed_signers") == [
        "ada@example.com"
    ]


# --------------------------------------------------------------------------------------------- refusals


def test_a_key_not_in_the_file_is_refused_when_signing_and_when_verifying(team: Path, keys):
    with pytest.raises(LlmopsError, match="not in allowed_signers"):
        _approve(team, keys["eve"])
    assert not (team / "use_cases/demo/approvals/prod.json").exists()
    _force_record(team, keys["eve"], principal="eve@example.com")
    result = _verify(team)
    assert not result.ok
    eve_fp = sshsig.fingerprint(keys["eve"].with_suffix(".pub").read_text())
    assert _reason(result, core.KEY_NOT_ALLOWED) == (
        f"key not in allowed signers: key {eve_fp} (eve@example.com) is not in allowed_signers"
    )


def test_a_key_allowed_only_for_dev_cannot_approve_prod(team: Path, keys):
    [(_, _)] = _approve(team, keys["carl"], envs=("dev",))
    assert _verify(team, "dev").ok
    with pytest.raises(LlmopsError, match="may approve dev only, not prod"):
        _approve(team, keys["carl"], envs=("prod",))
    _force_record(team, keys["carl"], principal="carl@example.com")
    reason = _reason(_verify(team), core.ENV_NOT_ALLOWED)
    assert "(carl@example.com) may approve dev only, not prod (allowed_signers line" in reason


def test_an_expired_key_is_refused(team: Path, keys):
    with pytest.raises(LlmopsError, match="key expired"):
        _approve(team, keys["dora"])
    _force_record(team, keys["dora"], principal="dora@example.com")
    reason = _reason(_verify(team), core.KEY_EXPIRED)
    assert "(dora@example.com) was valid before 2020-01-01" in reason


def test_a_signature_copied_onto_another_record_is_refused(team: Path, keys):
    _approve(team, keys["ada"], envs=("dev",))
    dev = json.loads((team / "use_cases/demo/approvals/dev.json").read_text())
    # The forger turns ada's dev approval into a prod approval and even recomputes the decision id.
    forged = {**dev, "environment": "prod"}
    forged["signature"] = core.decision_id(forged)
    prod = team / "use_cases/demo/approvals/prod.json"
    prod.write_text(json.dumps(forged))
    result = _verify(team)
    assert not result.ok
    assert _reason(result, "signature does not match this record").endswith("(signer claims ada@example.com)")
    # Copying it onto another cell's record is refused the same way.
    other = {**dev, "cell_id": WEAK}
    other["signature"] = core.decision_id(other)
    (team / "use_cases/demo/approvals/dev.json").write_text(json.dumps(other))
    assert _reason(_verify(team, "dev"), "signature does not match this record")


def test_verify_cli_prints_each_reason_in_one_line(team: Path, keys, capsys):
    _force_record(team, keys["eve"], principal="eve@example.com")
    rc = main(["verify-approval", "demo", "--env", "prod", "-w", str(team)])
    out = capsys.readouterr().out
    assert rc == 1
    assert (
        "demo prod: key not in allowed signers: key SHA256:" in out
        and "\n" not in out.strip().split("demo prod:")[1]
    )


# --------------------------------------------------------------------------------------------- policies


def test_two_approver_policy_needs_two_distinct_allowed_keys(team: Path, keys, capsys):
    (team / "use_cases/demo/llmops.yaml").write_text("gates:\n- acc.accuracy >= 0.8\napprovals:\n  prod: 2\n")
    _approve(team, keys["ada"])
    result = _verify(team)
    assert not result.ok and result.needed == 2
    assert _reason(result, core.NOT_ENOUGH) == (
        "not enough approvers: prod needs 2 distinct approvers, 1 signed (ada@example.com)"
    )
    rc = main(["approvals", "demo", "-w", str(team), "--json"])
    entries = {e["environment"]: e for e in json.loads(capsys.readouterr().out)["approvals"]}
    assert rc == 0 and entries["prod"]["missing"] == [result.missing[0]]
    assert main(["approvals", "demo", "-w", str(team)]) == 0
    table = "".join(capsys.readouterr().out.split())  # the table wraps on a narrow terminal
    assert "Approvals" in table and "ada@" in table

    _approve(team, keys["ada"])  # the same person again does not count twice
    assert len(json.loads((team / "use_cases/demo/approvals/prod.json").read_text())["signatures"]) == 1
    assert not _verify(team).ok
    with pytest.raises(LlmopsError):
        _approve(team, keys["eve"])  # an unlisted key cannot be the second
    _approve(team, keys["bo"])
    result = _verify(team)
    assert result.ok, result.reasons
    assert sorted(s["principal"] for s in result.signers) == ["ada@example.com", "bo@example.com"]
    data = json.loads((team / "use_cases/demo/approvals/prod.json").read_text())
    assert data["sequence"] == 1  # co-signing adds a signature to the same decision
    history = list((team / "use_cases/demo/approvals/history").glob("prod-*.json"))
    assert len(history) == 1 and json.loads(history[0].read_text())["signatures"] == data["signatures"]


def test_the_sweep_runner_may_not_approve_when_the_policy_says_so(team: Path, keys):
    (team / "use_cases/demo/llmops.yaml").write_text(
        "gates:\n- acc.accuracy >= 0.8\napprovals:\n  prod: {approvers: 1, not_by_sweeper: true}\n"
    )
    with RunStore.for_workspace(team) as store:
        run = store.require_run(RUN)
        store._exec(
            "UPDATE runs SET config_json=? WHERE run_id=?",
            (json.dumps({**run.config, "ran_by": "Ada <ADA@example.com>"}), RUN),
        )
    _approve(team, keys["ada"])
    result = _verify(team)
    assert _reason(result, core.SWEEPER_APPROVED).startswith(
        f"approver ran the sweep: ada@example.com ran the sweep (run {RUN}) and does not count"
    )
    _approve(team, keys["bo"])
    assert _verify(team).ok


def test_a_bad_policy_is_refused_naming_the_field(team: Path, capsys):
    (team / "use_cases/demo/llmops.yaml").write_text("approvals:\n  prod: {approverz: 2}\n")
    assert main(["approvals", "demo", "-w", str(team)]) == 2
    assert "approverz" in capsys.readouterr().err


# --------------------------------------------------------------------------------------------- migration


def test_shared_key_records_keep_verifying_and_are_marked(ws: Path, monkeypatch, capsys):  # noqa: F811
    monkeypatch.setenv(core.KEY_ENV_VAR, HMAC_KEY)
    core.approve(ws, RUN, GOOD, ["prod"], by="Lead <lead@example.com>")
    result = _verify(ws)
    assert result.ok and result.mode == "shared-key"
    assert any(w.startswith("shared-key approval (HMAC)") for w in result.warnings)
    assert main(["verify-approval", "demo", "--env", "prod", "-w", str(ws)]) == 0
    assert "(shared-key approval)" in capsys.readouterr().out
    monkeypatch.delenv(core.KEY_ENV_VAR)
    assert _reason(_verify(ws), "cannot check the signature")


def test_once_there_is_an_allowed_signers_file_approving_needs_an_ssh_key(team: Path, monkeypatch, keys):
    monkeypatch.setenv(core.KEY_ENV_VAR, HMAC_KEY)
    with pytest.raises(LlmopsError, match="signed with people's SSH keys"):
        core.approve(team, RUN, GOOD, ["prod"], by="Lead")
    monkeypatch.setenv(sshsig.SIGNING_KEY_ENV, str(keys["bo"]))
    [(record, _)] = core.approve(team, RUN, GOOD, ["prod"], by="")
    assert record.signing == "ssh" and record.approver == "bo@example.com"


def test_approvers_list_and_remove(team: Path, keys, capsys):
    assert main(["approvers", "list", "-w", str(team), "--json"]) == 0
    (info,) = json.loads(capsys.readouterr().out)["files"]
    by = {s["principal"]: s for s in info["signers"]}
    assert (
        by["carl@example.com"]["environments"] == ["dev"]
        and by["dora@example.com"]["valid_before"] == "20200101Z"
    )
    assert main(["approvers", "add", "x@example.com", str(keys["eve"]), "-w", str(team)]) == 2
    assert "is a private key" in capsys.readouterr().err
    assert main(["approvers", "remove", "carl@example.com", "-w", str(team)]) == 0
    assert "carl@" not in (team / "allowed_signers").read_text()


# --------------------------------------------------------------------------------------------- key handling


def test_a_passphrase_protected_key_asks_and_then_signs(team: Path, tmp_path: Path):
    key = make_key(tmp_path / "locked", "pat", passphrase="correct horse")
    core.add_approver(team / "allowed_signers", "pat@example.com", key.with_suffix(".pub"), ["prod"])
    with pytest.raises(sshsig.PassphraseNeeded):
        _approve(team, key)
    with pytest.raises(sshsig.PassphraseNeeded, match="wrong"):
        core.approve(team, RUN, GOOD, ["prod"], by="", signer=core.SshSigner(key, "nope"))
    core.approve(team, RUN, GOOD, ["prod"], by="", signer=core.SshSigner(key, "correct horse"))
    assert _verify(team).ok


def test_signing_through_ssh_agent_with_the_public_key_file(team: Path, keys, tmp_path: Path):
    agent = shutil.which("ssh-agent")
    if agent is None or shutil.which("ssh-add") is None:
        pytest.skip("needs ssh-agent")
    sock = tmp_path / "agent.sock"
    proc = subprocess.Popen(
        [agent, "-D", "-a", str(sock)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    try:
        for _ in range(100):
            if sock.exists():
                break
            subprocess.run(["sleep", "0.05"])
        env_sock = {"SSH_AUTH_SOCK": str(sock)}
        import os

        subprocess.run(
            ["ssh-add", str(keys["bo"])], check=True, capture_output=True, env={**os.environ, **env_sock}
        )
        public_only = tmp_path / "only-public" / "bo.pub"
        public_only.parent.mkdir()
        shutil.copy(keys["bo"].with_suffix(".pub"), public_only)
        old = os.environ.get("SSH_AUTH_SOCK")
        os.environ["SSH_AUTH_SOCK"] = str(sock)
        try:
            [(record, _)] = core.approve(team, RUN, GOOD, ["prod"], by="", signer=core.SshSigner(public_only))
        finally:
            if old is None:
                os.environ.pop("SSH_AUTH_SOCK", None)
            else:
                os.environ["SSH_AUTH_SOCK"] = old
        assert record.approver == "bo@example.com"
        assert _verify(team).ok
    finally:
        proc.terminate()
        proc.wait(timeout=10)


# --------------------------------------------------------------------------------------------- deploy


def _ssh_approval_for_deploy(root: Path, env: str, key: Path, principal: str) -> None:
    """A signed record of the deploy workspace's use case (like test_deploy_support.write_approval), signed
    with ``key`` instead of the shared key."""
    import dataclasses

    from test_deploy_support import USE_CASE

    from llmops_tui.core.hashing import hash_folder

    uc = core.use_case_for_env(root, USE_CASE, env)
    flow = uc.standard_flow.path
    variants, params = {"ner_llm": "variant_1"}, {"ner_llm.temperature": 0.3}
    fields = dict(
        use_case=uc.name,
        environment=env,
        decision="approved",
        run_id="run-test",
        cell_id="c0000001",
        variants=variants,
        params=params,
        dataset=uc.datasets[0].name,
        dataset_hashes=core.dataset_hashes(root, uc, uc.datasets[0].name),
        flow_path=core._posix_rel(flow, root),
        flow_hash=core.approved_flow_hash(uc, variants, params),
        source_flow_hash=hash_folder(flow),
        source_files=core.source_file_hashes(flow),
        metrics={"entity_match.f1": 0.9},
        gates=[],
        model_targets={},
        approver=principal,
        decided_at=core._now(),
    )
    for f in dataclasses.fields(core.ApprovalRecord):
        if (
            f.default is dataclasses.MISSING
            and f.default_factory is dataclasses.MISSING
            and f.name not in fields
        ):
            fields[f.name] = {}
    record = core.ApprovalRecord(**fields)
    core.write_record(uc, record, None, workspace_root=root, signer=core.SshSigner(key), principal=principal)


def test_deploy_require_approval_follows_the_same_verification(tmp_path: Path, keys, monkeypatch, capsys):
    import os

    from test_deploy_support import USE_CASE, make_workspace

    monkeypatch.setattr("llmops_tui.deploy.webapp.az_signed_in", lambda: False)
    root = make_workspace(tmp_path / "deploy-ws")
    core.add_approver(root / "allowed_signers", "ada@example.com", keys["ada"].with_suffix(".pub"), ["dev"])
    core.add_approver(
        root / "allowed_signers", "carl@example.com", keys["carl"].with_suffix(".pub"), ["prod"]
    )
    args = [
        "deploy",
        USE_CASE,
        "--env",
        "dev",
        "--target",
        "webapp",
        "--require-approval",
        "--json",
        "-w",
        str(root),
    ]

    _ssh_approval_for_deploy(root, "dev", keys["carl"], "carl@example.com")  # carl may approve prod only
    assert main(args) == 2
    err = capsys.readouterr().err
    assert "key not allowed for this environment" in err and "may approve prod only, not dev" in err
    assert not (root / ".llmops" / "deploy").exists()

    _ssh_approval_for_deploy(root, "dev", keys["ada"], "ada@example.com")
    # What the deploying job holds: no private key, no shared key.
    assert core.KEY_ENV_VAR not in os.environ and sshsig.SIGNING_KEY_ENV not in os.environ
    assert not any(
        p.is_file() and "PRIVATE KEY" in p.read_text(errors="replace")
        for p in root.rglob("*")
        if p.stat().st_size < 10_000
    )
    assert main(args) == 0, capsys.readouterr().err
    out = json.loads(capsys.readouterr().out)
    assert out["configuration"]["approval"]["verified"] is True


# --------------------------------------------------------------------------------------------- the team's path


@pytest.mark.integration
def test_export_import_into_a_fresh_copy_compare_and_approve(tmp_path: Path, keys, monkeypatch, capsys):
    """The prompt engineer sweeps and exports; the lead imports into a fresh copy of the workspace,
    compares and approves with their SSH key; CI verifies with public keys. Changed data is refused."""
    from builders import make_use_case

    monkeypatch.setenv("LLMOPS_USER", "pe@example.com")
    src, dst = tmp_path / "laptop", tmp_path / "lead"
    make_use_case(src, rows=4)
    assert main(["sweep", "tickets", "-w", str(src), "--llm-endpoint", "sandbox", "--json"]) == 0
    capsys.readouterr()
    with RunStore.for_workspace(src) as store:
        (run,) = store.list_runs()
    assert run.config["ran_by"] == "pe@example.com"
    assert run.config["dataset_hashes"] and run.config["flow_files"]
    file = tmp_path / "run.llmops-run.json.gz"
    assert main(["runs", "export", run.run_id, "-w", str(src), "--out", str(file)]) == 0

    make_use_case(dst, rows=4)  # a fresh clone: the same files, no .llmops/
    core.add_approver(dst / "allowed_signers", "lead@example.com", keys["ada"].with_suffix(".pub"), ["dev"])
    (dst / "use_cases/tickets/llmops.yaml").write_text(
        "approvals:\n  dev: {approvers: 1, not_by_sweeper: true}\n"
    )
    capsys.readouterr()
    assert main(["runs", "import", str(file), "-w", str(dst)]) == 0
    assert "this workspace's flow and datasets match what the run measured" in capsys.readouterr().out
    assert main(["compare", run.run_id, "-w", str(dst), "--json"]) == 0
    cell = json.loads(capsys.readouterr().out)["cells"][0]["cell_id"]

    # The data changes on the lead's side before approving: refused, naming the file.
    data = dst / "use_cases/tickets/data/tickets.jsonl"
    original = data.read_text()
    data.write_text(original + '{"text": "late", "label": "x"}\n')
    args = ["approve", run.run_id, "--cell", cell, "--env", "dev", "--key", str(keys["ada"]), "-w", str(dst)]
    assert main(args) == 2
    err = capsys.readouterr().err
    assert "data changed after run" in err and "use_cases/tickets/data/tickets.jsonl (changed)" in err
    other = tmp_path / "other"
    make_use_case(other, rows=4)
    (other / "use_cases/tickets/data/tickets.jsonl").write_text(original + "\n")
    with RunStore.for_workspace(other) as store:
        from llmops_tui.core.portable import import_run

        result = import_run(store, file)
    assert (
        result.matches is False
        and "datasets: use_cases/tickets/data/tickets.jsonl (changed)" in result.evidence
    )

    data.write_text(original)
    assert main(args) == 0, capsys.readouterr().err
    capsys.readouterr()
    assert main(["verify-approval", "tickets", "--env", "dev", "-w", str(dst)]) == 0, capsys.readouterr()
    assert "approved by lead@example.com" in capsys.readouterr().out


def test_keys_shows_the_signing_key_by_fingerprint_only(team: Path, keys, monkeypatch, capsys):
    monkeypatch.setenv(sshsig.SIGNING_KEY_ENV, str(keys["ada"]))
    assert main(["keys", "-w", str(team), "--json"]) == 0
    out = capsys.readouterr().out
    status = json.loads(out)["approval_signing_key"]
    assert status["fingerprint"] == sshsig.fingerprint(keys["ada"].with_suffix(".pub").read_text())
    assert "PRIVATE" not in out and keys["ada"].read_text().splitlines()[1] not in out
