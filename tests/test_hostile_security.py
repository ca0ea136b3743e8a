"""Hostile input against the things that must never escape or leak (issue 12, items 9 and 10).

A table of cases, each run through the real CLI as a separate process (``python -m llmops_tui.cli``):
the workspace is a copy of a bundled use case that the case's ``setup`` damages; the case names the
expected exit code and a fragment of the one-line message, and every case asserts that no traceback is
printed and that nothing was written outside the workspace. Focused tests below the table cover what a
table cannot: the environment of a local deployment's processes (read from /proc/PID/environ), CORS
headers, 400 for a missing input, and the unit-level helpers.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pytest
from test_deploy_support import USE_CASE, make_workspace

from llmops_tui.core import approval as ap
from llmops_tui.core.errors import LlmopsError
from llmops_tui.core.files import copy_confined, safe_join, walk_files
from llmops_tui.core.hashing import hash_folder
from llmops_tui.core.store import CellRecord, LineRecord, RunStore

KEY = "hostile-approval-key-0123456789abcdef"
RUN = "r20250101-hostile"
CELL_A = "c0000aaa"  # ner_llm variant_0
CELL_B = "c0000bbb"  # ner_llm variant_1
UC_DIR = Path("use_cases") / USE_CASE
FLOW = UC_DIR / "flows" / "standard"


# ------------------------------------------------------------------------------------------- helpers


def llmops(*args: str, env: dict[str, str] | None = None, prelude: str = "") -> subprocess.CompletedProcess:
    """The CLI as CI runs it. ``prelude`` is Python run in the same process before the CLI (used to
    make a folder unreadable for root, who ignores permission bits)."""
    base = {**os.environ, ap.KEY_ENV_VAR: KEY, "LLMOPS_CANARY_SECRET": "canary-do-not-leak"}
    base.pop("LLMOPS_DEBUG", None)
    if prelude:
        code = prelude + "\nfrom llmops_tui.cli import main\nsys.exit(main(sys.argv[1:]))\n"
        cmd = [sys.executable, "-c", code, *args]
    else:
        cmd = [sys.executable, "-m", "llmops_tui.cli", *args]
    return subprocess.run(cmd, capture_output=True, text=True, env={**base, **(env or {})}, timeout=300)


def _edit(path: Path, old: str, new: str) -> None:
    text = path.read_text(encoding="utf-8")
    assert old in text, (path, old)
    path.write_text(text.replace(old, new, 1), encoding="utf-8")


def _set_name(ws: Path, name: str) -> None:
    _edit(ws / UC_DIR / "experiment.yaml", f"name: {USE_CASE}", f"name: {json.dumps(name)}")


def _deploy_config(ws: Path, **changes: str) -> None:
    path = ws / UC_DIR / "configs" / "deployment_config.json"
    data = json.loads(path.read_text())
    for entry in data["azure_managed_endpoint"]:
        if entry["ENV_NAME"] == "dev":
            entry.update(changes)
    path.write_text(json.dumps(data, indent=2))


def seed_run(ws: Path) -> None:
    """A finished run of two cells written through the real RunStore (no model needed)."""
    with RunStore.for_workspace(ws) as store:
        store.create_run(RUN, USE_CASE, None, {"baseline": CELL_A, "cell_count": 2})
        store.add_cells(
            RUN,
            [
                CellRecord(RUN, CELL_A, 0, {"ner_llm": "variant_0"}, {}, "ner_news", 0, None, 3, "done"),
                CellRecord(RUN, CELL_B, 1, {"ner_llm": "variant_1"}, {}, "ner_news", 0, None, 3, "done"),
            ],
        )
        for cell in (CELL_A, CELL_B):
            for i in range(3):
                store.record_line(
                    LineRecord(
                        RUN, cell, i, "ok", {"text": "x"}, {"entities": []}, latency_ms=5.0, llm_calls=1
                    )
                )
            store.record_metrics(RUN, cell, "entity_match", {"f1": 0.9, "exact_match": 0.9})
        store.finish_run(RUN, "completed", {"cell_count": 2, "lines_done": 6})


def _decide(ws: Path, decision: str, cell: str = CELL_A, env: str = "dev") -> None:
    kw = {"override_reason": "test"} if decision == "approved" else {}
    ap.decide(ws, RUN, cell, [env], decision=decision, by="Lead <lead@example.com>", comment="why not", **kw)


def _history(ws: Path, env: str = "dev") -> list[Path]:
    files = (ws / UC_DIR / "approvals" / "history").glob(f"{env}-*.json")
    return sorted(files, key=lambda p: json.loads(p.read_text()).get("sequence", 0))


def _current(ws: Path, env: str = "dev") -> Path:
    return ws / UC_DIR / "approvals" / f"{env}.json"


def _git(ws: Path, *args: str) -> None:
    subprocess.run(
        ["git", "-c", "user.name=t", "-c", "user.email=t@example.com", "-c", "commit.gpgsign=false", *args],
        cwd=ws,
        check=True,
        capture_output=True,
    )


# Makes the use case folder unreadable the way `chmod 000` does for anyone but root: the folder itself
# can be stat'ed, but neither listed nor anything inside it opened or stat'ed.
UNREADABLE = r"""
import builtins, errno, io, os, sys
_locked = os.path.abspath(os.environ["LOCKED_DIR"])
def _inside(path, itself=False):
    if isinstance(path, int):
        return False
    p = os.path.abspath(os.fsdecode(os.fspath(path)))
    return p.startswith(_locked + os.sep) or (itself and p == _locked)
def _deny(path):
    raise PermissionError(errno.EACCES, "Permission denied", os.fsdecode(os.fspath(path)))
def _wrap(fn, itself=False):
    def inner(path=".", *a, **k):
        if _inside(path, itself):
            _deny(path)
        return fn(path, *a, **k)
    return inner
os.stat = _wrap(os.stat); os.lstat = _wrap(os.lstat)
os.scandir = _wrap(os.scandir, True); os.listdir = _wrap(os.listdir, True)
builtins.open = _wrap(builtins.open); io.open = _wrap(io.open)
"""


# --------------------------------------------------------------------------------------- the table


@dataclass
class Case:
    id: str
    setup: Callable[[Path], list[str]]  # damages the workspace, returns the CLI arguments
    code: int
    fragment: str
    env: Callable[[Path], dict[str, str]] | None = None
    prelude: str = ""
    stdout_has: str = ""


def _traversal_name(name: str, *args: str) -> Callable[[Path], list[str]]:
    def setup(ws: Path) -> list[str]:
        _set_name(ws, name)
        return list(args)

    return setup


def _symlink(rel: str, target: str, *args: str) -> Callable[[Path], list[str]]:
    def setup(ws: Path) -> list[str]:
        link = ws / FLOW / rel
        link.parent.mkdir(parents=True, exist_ok=True)
        link.symlink_to(target)
        return list(args)

    return setup


DEPLOY_K8S = ("deploy", USE_CASE, "--env", "dev", "--target", "kubernetes")
DEPLOY_DRY = ("deploy", USE_CASE, "--env", "dev", "--dry-run")
VERIFY = ("verify-approval", USE_CASE, "--env", "dev")


def _env_file(name: str) -> Callable[[Path], list[str]]:
    def setup(ws: Path) -> list[str]:
        (ws / UC_DIR / f"experiment.{name}.yaml").write_text("name: named_entity_recognition\n")
        return ["list"]

    return setup


def _extras_env(ws: Path) -> list[str]:
    _edit(ws / UC_DIR / "llmops.yaml", "environments: [dev, prod]", 'environments: [dev, prod, "../../up"]')
    return ["list"]


def _deploy_env_name(ws: Path) -> list[str]:
    _deploy_config(ws, ENV_NAME="../../../escaped")
    return ["list"]


def _connection_name(ws: Path) -> list[str]:
    dag = ws / FLOW / "flow.dag.yaml"
    dag.write_text(dag.read_text().replace("connection: aoai", "connection: ../../../../escaped"))
    return list(DEPLOY_K8S)


def _test_file(path: str) -> Callable[[Path], list[str]]:
    def setup(ws: Path) -> list[str]:
        _deploy_config(ws, TEST_FILE_PATH=path)
        return [*DEPLOY_DRY, "--target", "azureml"]

    return setup


def _unreadable(ws: Path) -> list[str]:
    second = ws / "use_cases" / "zz_locked"
    shutil.copytree(ws / UC_DIR, second)
    _edit(second / "experiment.yaml", f"name: {USE_CASE}", "name: zz_locked")
    if os.geteuid() != 0:
        second.chmod(0)
    return ["list"]


def _unreadable_env(ws: Path) -> dict[str, str]:
    return {"LOCKED_DIR": str(ws / "use_cases" / "zz_locked")}


def _approved(ws: Path) -> list[str]:
    seed_run(ws)
    _decide(ws, "approved")
    return list(VERIFY)


def _rollback_delete_history_file(ws: Path) -> list[str]:
    seed_run(ws)
    _decide(ws, "approved")
    old = _current(ws).read_text()
    _decide(ws, "rejected")
    _current(ws).write_text(old)
    _history(ws)[-1].unlink()  # the rejection's history file
    return list(VERIFY)


def _rollback_delete_all_history(ws: Path) -> list[str]:
    seed_run(ws)
    _decide(ws, "approved")
    old = _current(ws).read_text()
    _decide(ws, "rejected")
    _current(ws).write_text(old)
    shutil.rmtree(ws / UC_DIR / "approvals" / "history")
    return list(VERIFY)


def _rollback_in_git(ws: Path) -> list[str]:
    """A fresh CI checkout (no ledger) of a repo where someone committed the rollback on top of the
    rejection: the rejection is still in git's history."""
    seed_run(ws)
    _git(ws, "init", "-q")
    _decide(ws, "approved")
    old = _current(ws).read_text()
    _git(ws, "add", str(UC_DIR / "approvals"))
    _git(ws, "commit", "-qm", "approve")
    _decide(ws, "rejected")
    _git(ws, "add", str(UC_DIR / "approvals"))
    _git(ws, "commit", "-qm", "reject")
    _current(ws).write_text(old)
    _history(ws)[-1].unlink()
    _git(ws, "add", "-A", str(UC_DIR / "approvals"))
    _git(ws, "commit", "-qm", "innocent-looking change")
    ap.ledger_path(ws).unlink()
    return list(VERIFY)


def _rollback_keep_history(ws: Path) -> list[str]:
    seed_run(ws)
    _decide(ws, "approved")
    old = _current(ws).read_text()
    _decide(ws, "rejected")
    _current(ws).write_text(old)
    return list(VERIFY)


def _truncated_history(ws: Path) -> list[str]:
    seed_run(ws)
    _decide(ws, "approved", CELL_B)
    _decide(ws, "approved")
    _history(ws)[0].unlink()  # the first decision: the second one points to it
    return list(VERIFY)


def _forged_sequence(ws: Path) -> list[str]:
    seed_run(ws)
    _decide(ws, "approved")
    path = _current(ws)
    data = json.loads(path.read_text())
    data["sequence"] = 99  # a replayed record cannot be made "newer" without the key
    path.write_text(json.dumps(data))
    return list(VERIFY)


def _unchosen_prompt_edited(ws: Path) -> list[str]:
    seed_run(ws)
    _decide(ws, "approved")  # variant_0 (ner_plain.jinja2) is chosen
    prompt = ws / FLOW / "ner_format.jinja2"  # variant_1's prompt: not shipped
    prompt.write_text(prompt.read_text() + "\nAnswer in French.\n")
    return list(VERIFY)


def _unchosen_variant_settings_edited(ws: Path) -> list[str]:
    seed_run(ws)
    _decide(ws, "approved")  # variant_0 is chosen; variant_2's settings in flow.dag.yaml do not ship
    dag = ws / FLOW / "flow.dag.yaml"
    text = dag.read_text()
    head, _, tail = text.partition("      variant_2:")
    dag.write_text(head + "      variant_2:" + tail.replace("max_tokens: 256", "max_tokens: 999", 1))
    return list(VERIFY)


def _chosen_prompt_edited(ws: Path) -> list[str]:
    seed_run(ws)
    _decide(ws, "approved")
    prompt = ws / FLOW / "ner_plain.jinja2"
    prompt.write_text(prompt.read_text() + "\nAnswer in French.\n")
    return list(VERIFY)


def _report_baseline(ws: Path) -> list[str]:
    seed_run(ws)
    return ["report", RUN, "--baseline", "../../../../escaped", "--format", "json"]


CASES = [
    # names that become paths
    Case(
        "name-traversal-deploy", _traversal_name("../../../../escaped", *DEPLOY_K8S), 2, "is not a safe name"
    ),
    Case(
        "name-traversal-list",
        _traversal_name("../../../../escaped", "list"),
        2,
        "name: '../../../../escaped'",
    ),
    Case("name-absolute", _traversal_name("/tmp/llmops-escaped-abs", *DEPLOY_K8S), 2, "is not a safe name"),
    Case("name-dotdot", _traversal_name("..", *DEPLOY_K8S), 2, "is not a safe name"),
    Case("name-backslash", _traversal_name("..\\..\\escaped", *DEPLOY_K8S), 2, "is not a safe name"),
    Case("name-hidden", _traversal_name(".hidden", "show", USE_CASE), 2, "is not a safe name"),
    Case("env-traversal-deploy", lambda ws: ["deploy", USE_CASE, "--env", "../../../escaped"], 2, "--env"),
    Case("env-traversal-verify", lambda ws: ["verify-approval", USE_CASE, "--env", "../../x"], 2, "--env"),
    Case("env-traversal-list", lambda ws: ["list", "--env", "../../../escaped"], 2, "not a safe name"),
    Case(
        "env-overlay-file-dotdot",
        _env_file(".."),
        2,
        "experiment....yaml: (file name): environment name '..'",
    ),
    Case("env-llmops-yaml", _extras_env, 2, "llmops.yaml: environments: environment name '../../up'"),
    Case("env-deployment-config", _deploy_env_name, 2, "deployment_config.json: ENV_NAME: environment name"),
    Case("connection-name-traversal", _connection_name, 2, "nodes[].connection"),
    Case("test-file-outside", _test_file("../../../../../../etc/hostname"), 2, "TEST_FILE_PATH"),
    Case("test-file-absolute", _test_file("/etc/hostname"), 2, "leaves the use case folder"),
    Case("report-baseline-traversal", _report_baseline, 2, "baseline"),
    # symlinks in flows
    Case("symlink-to-etc", _symlink("host.txt", "/etc/hostname", *DEPLOY_DRY), 2, "points outside"),
    Case("symlink-dir-to-etc", _symlink("etc", "/etc", *DEPLOY_DRY), 2, "points outside"),
    Case("symlink-self-loop", _symlink("loop", "loop", *DEPLOY_DRY), 2, "loop: symlink: symlink loop"),
    Case("symlink-ancestor-loop", _symlink("up", "..", *DEPLOY_DRY), 2, "up: symlink: symlink loop"),
    Case("symlink-dangling", _symlink("gone", "/nonexistent/file", *DEPLOY_DRY), 2, "missing file"),
    Case(
        "symlink-loop-verify",
        lambda ws: [*_approved(ws)[:0], *_symlink("loop", "loop", *VERIFY)(ws)],
        1,
        "symlink loop",
    ),
    Case("symlink-inside-ok", _symlink("shared.txt", "../../sample-request.json", *DEPLOY_DRY), 0, "plan"),
    # an unreadable use case folder
    Case(
        "unreadable-folder",
        _unreadable,
        2,
        "cannot read",
        env=_unreadable_env,
        prelude=UNREADABLE if os.geteuid() == 0 else "",
        stdout_has=USE_CASE,
    ),
    # approvals that cannot be rolled back
    Case("approval-ok", _approved, 0, "(decision #1, run"),
    Case("rollback-delete-history-file", _rollback_delete_history_file, 1, "rolled back"),
    Case("rollback-delete-all-history", _rollback_delete_all_history, 1, "rolled back"),
    Case("rollback-in-git-fresh-checkout", _rollback_in_git, 1, "was committed in git"),
    Case("rollback-history-kept", _rollback_keep_history, 1, "superseded by"),
    Case("history-truncated", _truncated_history, 1, "history truncated"),
    Case("forged-sequence", _forged_sequence, 1, "signature invalid"),
    Case("unchosen-variant-prompt-edited", _unchosen_prompt_edited, 0, "(decision #1, run"),
    Case("unchosen-variant-settings-edited", _unchosen_variant_settings_edited, 0, "(decision #1, run"),
    Case(
        "chosen-variant-prompt-edited",
        _chosen_prompt_edited,
        1,
        "flow edited after approval: ner_plain.jinja2",
    ),
]


@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
def test_hostile_input(case: Case, tmp_path: Path, monkeypatch):
    monkeypatch.setenv(ap.KEY_ENV_VAR, KEY)
    ws = make_workspace(tmp_path)
    before = set(tmp_path.iterdir())
    args = case.setup(ws)
    extra = case.env(ws) if case.env else {}
    try:
        proc = llmops(*args, "--workspace", str(ws), env=extra, prelude=case.prelude)
    finally:
        if (ws / "use_cases" / "zz_locked").exists():
            (ws / "use_cases" / "zz_locked").chmod(0o755)
    output = proc.stdout + proc.stderr
    assert "Traceback" not in output, output
    assert proc.returncode == case.code, (args, output[-3000:])
    assert case.fragment in output, output[-3000:]
    if case.stdout_has:
        assert case.stdout_has in proc.stdout, proc.stdout
    # nothing was written next to the workspace, under /tmp by name, or anywhere the name pointed
    assert set(tmp_path.iterdir()) == before
    assert not Path("/tmp/llmops-escaped-abs").exists()
    for folder in (tmp_path, tmp_path.parent, tmp_path.parent.parent, Path("/tmp")):
        assert not (folder / "escaped").exists(), folder
    assert "canary-do-not-leak" not in output


# ----------------------------------------------------------------------------------- focused tests


def test_safe_join_refuses_every_escape(tmp_path: Path):
    (tmp_path / "out").mkdir()
    (tmp_path / "out" / "link").symlink_to(tmp_path)
    assert safe_join(tmp_path / "out", "a", "b.txt") == (tmp_path / "out" / "a" / "b.txt").resolve()
    for parts in (("..", "x"), ("/etc/passwd",), ("a/../../x",), ("link", "x")):
        with pytest.raises(LlmopsError, match="outside"):
            safe_join(tmp_path / "out", *parts)


def test_walk_names_the_link_of_a_loop_between_two_links(tmp_path: Path):
    (tmp_path / "a").symlink_to("b")
    (tmp_path / "b").symlink_to("a")
    with pytest.raises(LlmopsError, match="symlink loop") as exc:
        walk_files(tmp_path)
    assert exc.value.problem.file.endswith("/a")


def test_walk_follows_links_inside_and_copies_plain_files(tmp_path: Path):
    src = tmp_path / "uc" / "flow"
    (tmp_path / "uc" / "shared").mkdir(parents=True)
    (tmp_path / "uc" / "shared" / "p.jinja2").write_text("hi")
    src.mkdir()
    (src / "prompt.jinja2").symlink_to("../shared/p.jinja2")
    (src / "lib").symlink_to("../shared")
    os.mkfifo(src / "pipe")  # never read (it would block)
    assert [r for r, _ in walk_files(src, confine=tmp_path / "uc")] == ["lib/p.jinja2", "prompt.jinja2"]
    copied = copy_confined(src, tmp_path / "out", confine=tmp_path / "uc")
    assert copied == ["lib/p.jinja2", "prompt.jinja2"]
    assert not (tmp_path / "out" / "prompt.jinja2").is_symlink()
    with pytest.raises(LlmopsError, match="points outside"):
        walk_files(src, confine=src)


def test_hash_folder_is_unchanged_for_plain_folders_and_stops_at_loops(tmp_path: Path):
    import hashlib

    folder = tmp_path / "f"
    (folder / "sub").mkdir(parents=True)
    (folder / "a.txt").write_text("a")
    (folder / "sub" / "b.py").write_text("b")
    (folder / "__pycache__").mkdir()
    (folder / "__pycache__" / "x.pyc").write_bytes(b"x")
    # the same sha256 the hash has always been (approvals made before this change still verify)
    expected = hashlib.sha256()
    for rel, data in (("a.txt", b"a"), ("sub/b.py", b"b")):
        expected.update(rel.encode() + b"\0" + hashlib.sha256(data).digest())
    assert hash_folder(folder) == expected.hexdigest()
    (folder / "sub" / "back").symlink_to("..")
    with pytest.raises(LlmopsError, match="symlink loop"):
        hash_folder(folder)


def test_unreadable_use_case_is_its_own_error_in_process(tmp_path: Path, monkeypatch):
    from llmops_tui.core.workspace import load_workspace

    ws = make_workspace(tmp_path)
    locked = ws / "use_cases" / "aa_locked"
    shutil.copytree(ws / UC_DIR, locked)
    _edit(locked / "experiment.yaml", f"name: {USE_CASE}", "name: aa_locked")
    real_stat = os.stat

    def stat(path, *a, **k):
        if str(os.fspath(path)).startswith(str(locked) + os.sep):
            raise PermissionError(13, "Permission denied", str(path))
        return real_stat(path, *a, **k)

    monkeypatch.setattr(os, "stat", stat)
    loaded = load_workspace(ws)
    by_name = {u.name: u for u in loaded.use_cases}
    assert by_name[USE_CASE].ok
    assert [str(p) for p in by_name["aa_locked"].problems] == [
        "use_cases/aa_locked/experiment.yaml: cannot read: Permission denied "
        "(check the permissions of the use-case folder and its files)"
    ]


def test_schema_1_records_still_verify_with_a_migration_warning(tmp_path: Path, monkeypatch):
    monkeypatch.setenv(ap.KEY_ENV_VAR, KEY)
    ws = make_workspace(tmp_path)
    seed_run(ws)
    _decide(ws, "approved")
    key = ap.ApprovalKey(KEY.encode(), "test")
    for path in [_current(ws), *_history(ws)]:
        data = json.loads(path.read_text())
        for field in ("sequence", "previous", "signature"):
            data.pop(field)
        data["schema_version"] = 1
        data["signature"] = ap.sign(data, key)
        path.write_text(json.dumps(data))
    ap.ledger_path(ws).unlink()
    uc = ap.use_case_for_env(ws, USE_CASE, "dev")
    result = ap.verify_approval(ws, uc, "dev", key=key)
    assert result.ok, result.reasons
    assert any("predates rollback protection" in w for w in result.warnings)
    # the next decision continues the chain from the old record and is protected
    old = _current(ws).read_text()
    _decide(ws, "rejected")
    record = json.loads(_current(ws).read_text())
    assert record["sequence"] == 1 and record["previous"] == json.loads(old)["signature"]
    _current(ws).write_text(old)
    _history(ws)[-1].unlink()
    result = ap.verify_approval(ws, uc, "dev", key=key)
    assert not result.ok and result.reasons[0].startswith(ap.ROLLED_BACK)


def test_deploy_meta_and_the_ledger_remember_the_sequence(tmp_path: Path, monkeypatch):
    from llmops_tui.deploy.api import DeployOptions, deploy

    monkeypatch.setenv(ap.KEY_ENV_VAR, KEY)
    ws = make_workspace(tmp_path)
    seed_run(ws)
    _decide(ws, "approved", CELL_B)
    _decide(ws, "approved")
    out = tmp_path / "out"
    result = deploy(
        ws, DeployOptions(USE_CASE, "dev", "kubernetes", require_approval=True, dry_run=True, out=out)
    )
    assert result.configuration["approval"]["sequence"] == 2
    ledger = json.loads(ap.ledger_path(ws).read_text())
    assert ledger[f"{USE_CASE}/dev"]["sequence"] == 2


@pytest.mark.integration
def test_local_deployment_runs_with_a_minimal_environment(tmp_path: Path, monkeypatch):
    """A real local deployment (sandbox model): the served flow and the router hold no approval key and
    no unrelated variables, send no CORS headers, and answer 400 naming a missing required input."""
    import httpx

    from llmops_tui.deploy import registry
    from llmops_tui.deploy.api import DeployOptions, deploy
    from llmops_tui.deploy.local import undeploy

    monkeypatch.setenv(ap.KEY_ENV_VAR, KEY)
    monkeypatch.setenv("LLMOPS_CANARY_SECRET", "canary-0123456789")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "canary-aws-0123456789")
    ws = make_workspace(tmp_path)
    dag = ws / FLOW / "flow.dag.yaml"
    # `text` becomes a required input (no default)
    dag.write_text(
        dag.read_text().replace(
            "    default: Dr. Amara Okafor of the coastal survey met engineers from Kestrel Systems in Port Ellery.\n",
            "",
        )
    )

    def environ(pid: int) -> dict[str, str]:
        raw = Path(f"/proc/{pid}/environ").read_bytes().split(b"\0")
        return dict(item.decode().split("=", 1) for item in raw if b"=" in item)

    try:
        first = deploy(ws, DeployOptions(USE_CASE, "dev", "local", llm_endpoint="sandbox", timeout=120))
        assert first.ok, first.test
        second = deploy(
            ws,
            DeployOptions(
                USE_CASE,
                "dev",
                "local",
                llm_endpoint="sandbox",
                variants="ner_llm.variant_1",
                traffic=50,
                timeout=120,
            ),
        )
        assert second.ok, second.test
        router = second.deployment["router"]
        pids = {
            "flow": first.deployment["pid"],
            "sandbox": first.deployment["sandbox_pid"],
            "router": router["pid"],
        }
        for what, pid in pids.items():
            env = environ(pid)
            assert ap.KEY_ENV_VAR not in env, what
            assert "LLMOPS_CANARY_SECRET" not in env and "AWS_SECRET_ACCESS_KEY" not in env, what
            assert not any("canary" in v for v in env.values()), what
            assert "PATH" in env, what
        flow_env = environ(pids["flow"])
        assert "AOAI_API_KEY" in flow_env  # the one key its connection needs (the sandbox's stand-in)
        assert "AOAI_API_KEY" not in environ(pids["router"])

        request = json.loads((ws / UC_DIR / "sample-request.json").read_text())
        with httpx.Client(trust_env=False, timeout=60) as client:
            for url in (first.endpoint_url, router["url"]):
                ok = client.post(url + "/score", json=request, headers={"Origin": "https://evil.example"})
                assert ok.status_code == 200, ok.text
                assert not any(h.lower().startswith("access-control-") for h in ok.headers), ok.headers
                pre = client.options(
                    url + "/score",
                    headers={"Origin": "https://evil.example", "Access-Control-Request-Method": "POST"},
                )
                assert "access-control-allow-origin" not in {h.lower() for h in pre.headers}
                missing = client.post(url + "/score", json={"entity_type": "person"})
                assert missing.status_code == 400, missing.text
                assert "text" in missing.json()["error"]["message"]
    finally:
        if registry.load(ws):
            undeploy(ws, USE_CASE, all_versions=True)


def test_router_drops_cors_headers_of_any_backend():
    """An older bundle's serving script still sends ``Access-Control-Allow-Origin: *``: the router in
    front of it must not pass that on."""
    import threading
    from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

    import httpx

    from llmops_tui.deploy.router import Backend, start_router

    class Old(BaseHTTPRequestHandler):
        def do_POST(self):
            self.rfile.read(int(self.headers.get("Content-Length") or 0))
            body = b'{"entities": []}'
            self.send_response(200)
            self.send_header("Access-Control-Allow-Origin", "*")
            self.send_header("Access-Control-Allow-Headers", "*")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args):
            return

    backend = ThreadingHTTPServer(("127.0.0.1", 0), Old)
    thread = threading.Thread(target=backend.serve_forever, daemon=True)
    thread.start()
    router = start_router([Backend("old", f"http://127.0.0.1:{backend.server_address[1]}", 1)])
    try:
        with httpx.Client(trust_env=False, timeout=10) as client:
            resp = client.post(
                router.url + "/score", json={"text": "x"}, headers={"Origin": "https://evil.example"}
            )
        assert resp.status_code == 200 and resp.json() == {"entities": []}
        assert not [h for h in resp.headers if h.lower().startswith("access-control-")]
    finally:
        router.stop()
        backend.shutdown()
        backend.server_close()


def test_request_guard_answers_400_naming_missing_inputs_and_strips_cors(tmp_path: Path):
    import io

    from llmops_tui.deploy.serve_flow import RequestGuard, required_inputs

    (tmp_path / "flow.dag.yaml").write_text(
        "inputs:\n  text: {type: string}\n  entity_type: {type: string, default: person}\n"
        "  question: {type: string}\noutputs: {}\nnodes: []\n"
    )
    assert required_inputs(tmp_path) == ["text", "question"]
    calls: list[bytes] = []

    def app(environ, start_response):
        calls.append(environ["wsgi.input"].read())
        start_response("200 OK", [("Content-Type", "application/json"), ("Access-Control-Allow-Origin", "*")])
        return [b"{}"]

    guard = RequestGuard(app, required_inputs(tmp_path))

    def call(body: bytes, path: str = "/score") -> tuple[str, list, bytes]:
        seen: dict = {}

        def start_response(status, headers, exc_info=None):
            seen.update(status=status, headers=headers)

        environ = {
            "REQUEST_METHOD": "POST",
            "PATH_INFO": path,
            "CONTENT_LENGTH": str(len(body)),
            "wsgi.input": io.BytesIO(body),
        }
        out = b"".join(guard(environ, start_response))
        return seen["status"], seen["headers"], out

    status, _, body = call(b'{"entity_type": "person"}')
    assert status.startswith("400") and b"text, question" in body and not calls
    status, headers, _ = call(b'{"text": "a", "question": "b"}')
    assert status.startswith("200") and calls == [b'{"text": "a", "question": "b"}']  # body passed on
    assert all(not k.lower().startswith("access-control-") for k, _ in headers)
    status, _, _ = call(b"plain text body")  # not JSON: left to Prompt flow (single-input flows)
    assert status.startswith("200")


def test_two_decisions_with_the_same_sequence_are_a_conflict(tmp_path: Path, monkeypatch):
    """Two leads decide on two branches at once; when both histories are merged, neither wins."""
    monkeypatch.setenv(ap.KEY_ENV_VAR, KEY)
    ws = make_workspace(tmp_path)
    seed_run(ws)
    _decide(ws, "approved", CELL_B)
    other_branch = _history(ws)[-1].read_bytes(), _history(ws)[-1].name
    shutil.rmtree(ws / UC_DIR / "approvals")
    ap.ledger_path(ws).unlink()
    _decide(ws, "approved")
    (ws / UC_DIR / "approvals" / "history" / other_branch[1]).write_bytes(other_branch[0])
    uc = ap.use_case_for_env(ws, USE_CASE, "dev")
    result = ap.verify_approval(ws, uc, "dev")
    assert not result.ok and result.reasons[0].startswith(ap.CONFLICT), result.reasons
    _decide(ws, "approved")  # a lead decides again: sequence 2 settles it
    assert ap.verify_approval(ws, uc, "dev").ok
