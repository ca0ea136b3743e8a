"""Approval records: sign, write, verify, and every way a record or the workspace can drift from it.

A tiny workspace is built in tmp_path and a finished run is written through the real RunStore (no
engine needed); comparisons and gates come from the real core.compare.
"""

from __future__ import annotations

import json
from pathlib import Path

import keyring
import pytest
from keyring.backend import KeyringBackend

from llmops_tui.cli import main
from llmops_tui.core import approval as core
from llmops_tui.core.errors import LlmopsError
from llmops_tui.core.secrets import get_secret, set_keyring_secret
from llmops_tui.core.store import CellRecord, LineRecord, RunStore
from llmops_tui.core.workspace import load_workspace

KEY = "canary-KEY-0123456789abcdef-do-not-leak"
OTHER_KEY = "another-key-fedcba9876543210-xyz"
RUN = "r20250101-abc"
GOOD = "cgood01"  # passes the gate
WEAK = "cweak02"  # fails the gate

DAG = """\
inputs:
  text: {type: string}
outputs:
  label: {type: string, reference: "${post.output}"}
nodes:
- name: classify
  use_variants: true
- name: post
  type: python
  source: {type: code, path: post.py}
  inputs: {answer: "${classify.output}"}
node_variants:
  classify:
    default_variant_id: variant_0
    variants:
      variant_0:
        node:
          type: llm
          source: {type: code, path: classify_v0.jinja2}
          connection: aoai
          api: chat
          inputs: {deployment_name: gpt-4o-mini, temperature: 0.0, text: "${inputs.text}"}
      variant_1:
        node:
          type: llm
          source: {type: code, path: classify_v1.jinja2}
          connection: aoai
          api: chat
          inputs: {deployment_name: gpt-4o, temperature: 0.2, text: "${inputs.text}"}
"""

EVAL_DAG = """\
inputs:
  label: {type: string}
  expected: {type: string}
outputs:
  score: {type: int, reference: "${score.output}"}
nodes:
- name: score
  type: python
  source: {type: code, path: score.py}
  inputs: {label: "${inputs.label}", expected: "${inputs.expected}"}
"""

EXPERIMENT = """\
name: demo
flow: flows/standard
connections:
- name: aoai
  connection_type: AzureOpenAIConnection
  api_base: http://127.0.0.1:1
  api_version: "2024-02-01"
  api_key: ${api_key}
datasets:
- name: tickets
  source: data/tickets.jsonl
  mappings: {text: "${data.text}"}
evaluators:
- name: acc
  flow: flows/eval
  datasets:
  - name: tickets_eval
    source: data/tickets.jsonl
    reference: tickets
    mappings: {label: "${run.outputs.label}", expected: "${data.label}"}
"""


def _write(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")


@pytest.fixture()
def ws(tmp_path: Path) -> Path:
    """A workspace with one use case ``demo`` and one finished run of two cells."""
    uc = tmp_path / "use_cases" / "demo"
    _write(uc / "experiment.yaml", EXPERIMENT)
    _write(uc / "experiment.prod.yaml", "name: demo\n")
    _write(uc / "experiment.dev.yaml", "name: demo\n")
    _write(uc / "llmops.yaml", "gates:\n- acc.accuracy >= 0.8\n")
    _write(uc / "flows/standard/flow.dag.yaml", DAG)
    _write(uc / "flows/standard/classify_v0.jinja2", "system:\nClassify: {{text}}\n")
    _write(uc / "flows/standard/classify_v1.jinja2", "system:\nYou label tickets. {{text}}\n")
    tool = "from promptflow.core import tool\n\n\n@tool\n"  # Prompt flow needs one @tool per script
    _write(uc / "flows/standard/post.py", tool + "def post(answer):\n    return answer.strip()\n")
    _write(uc / "flows/eval/flow.dag.yaml", EVAL_DAG)
    _write(
        uc / "flows/eval/score.py", tool + "def score(label, expected):\n    return int(label == expected)\n"
    )
    rows = [{"text": f"ticket {i}", "label": "a" if i % 2 else "b"} for i in range(4)]
    _write(uc / "data/tickets.jsonl", "".join(json.dumps(r) + "\n" for r in rows))

    with RunStore.for_workspace(tmp_path) as store:
        store.create_run(RUN, "demo", None, {"baseline": GOOD, "cell_count": 2})
        cells = [
            CellRecord(RUN, GOOD, 0, {"classify": "variant_0"}, {}, "tickets", 0, None, 4, "done"),
            CellRecord(
                RUN,
                WEAK,
                1,
                {"classify": "variant_1"},
                {"classify.temperature": 0.7},
                "tickets",
                0,
                None,
                4,
                "done",
            ),
        ]
        store.add_cells(RUN, cells)
        for cell, acc in ((GOOD, 0.9), (WEAK, 0.5)):
            for i in range(4):
                store.record_line(
                    LineRecord(
                        RUN,
                        cell,
                        i,
                        "ok",
                        {"text": f"ticket {i}"},
                        {"label": "a"},
                        latency_ms=10.0 + i,
                        llm_calls=1,
                    )
                )
            store.record_metrics(RUN, cell, "acc", {"accuracy": acc})
        store.finish_run(RUN, "completed", {"cell_count": 2, "lines_done": 8})
    return tmp_path


class MemoryKeyring(KeyringBackend):
    priority = 1

    def __init__(self) -> None:
        super().__init__()
        self.data: dict[tuple[str, str], str] = {}

    def get_password(self, service, username):
        return self.data.get((service, username))

    def set_password(self, service, username, password):
        self.data[(service, username)] = password

    def delete_password(self, service, username):
        self.data.pop((service, username), None)


class BrokenKeyring(MemoryKeyring):
    def get_password(self, service, username):
        raise RuntimeError("no dbus session here")

    def set_password(self, service, username, password):
        raise RuntimeError("no dbus session here")


@pytest.fixture(autouse=True)
def _key(monkeypatch):
    """Every test starts with the env key set and an empty in-memory keyring (restored afterwards)."""
    previous = keyring.get_keyring()
    keyring.set_keyring(MemoryKeyring())
    monkeypatch.setenv(core.KEY_ENV_VAR, KEY)
    yield
    keyring.set_keyring(previous)


def _uc(ws: Path, env: str = "prod"):
    return core.use_case_for_env(ws, "demo", env)


def _verify(ws: Path, env: str = "prod"):
    return core.verify_approval(ws, _uc(ws, env), env)


def _approve(ws: Path, cell: str = GOOD, envs=("prod",), **kw):
    return core.approve(ws, RUN, cell, list(envs), by="Lead <lead@example.com>", comment="looks good", **kw)


def _edit_record(ws: Path, env: str, change) -> None:
    path = ws / "use_cases/demo/approvals" / f"{env}.json"
    data = json.loads(path.read_text())
    change(data)
    path.write_text(json.dumps(data, indent=2))


def _has(reasons: list[str], prefix: str) -> bool:
    return any(r.startswith(prefix) for r in reasons)


# ------------------------------------------------------------------------------------------ happy path


def test_approve_then_verify_passes(ws: Path):
    [(record, path)] = _approve(ws)
    assert path == ws / "use_cases/demo/approvals/prod.json"
    data = json.loads(path.read_text())
    assert data["decision"] == "approved" and data["cell_id"] == GOOD and data["run_id"] == RUN
    assert data["variants"] == {"classify": "variant_0"}
    assert data["metrics"] == {"acc.accuracy": 0.9}
    assert [g["passed"] for g in data["gates"]] == [True]
    assert data["model_targets"] == {
        "classify": {"connection": "aoai", "deployment_name": "gpt-4o-mini", "model": None, "api": "chat"}
    }
    assert data["dataset_hashes"].keys() == {"use_cases/demo/data/tickets.jsonl"}
    assert data["flow_hash"] == core.approved_flow_hash(_uc(ws), {"classify": "variant_0"}, {})
    assert data["signature"] and data["key_id"].startswith("hmac-sha256:")
    history = list((ws / "use_cases/demo/approvals/history").glob("prod-*.json"))
    assert len(history) == 1 and json.loads(history[0].read_text()) == data

    result = _verify(ws)
    assert result.ok, result.reasons
    assert result.reasons == []


def test_params_are_baked_into_the_flow_hash(ws: Path):
    uc = _uc(ws)
    plain = core.approved_flow_hash(uc, {"classify": "variant_1"}, {})
    hot = core.approved_flow_hash(uc, {"classify": "variant_1"}, {"classify.temperature": 0.7})
    assert plain != hot
    assert hot == core.approved_flow_hash(uc, {"classify": "variant_1"}, {"classify.temperature": 0.7})


def test_several_envs_get_one_record_each(ws: Path):
    results = _approve(ws, envs=("dev", "prod"))
    assert [r.environment for r, _ in results] == ["dev", "prod"]
    assert _verify(ws, "dev").ok and _verify(ws, "prod").ok


# ------------------------------------------------------------------------------------------ tampering


def test_edited_prompt_file_fails(ws: Path):
    _approve(ws)
    prompt = ws / "use_cases/demo/flows/standard/classify_v0.jinja2"
    prompt.write_text(prompt.read_text() + "Answer in French.\n")
    result = _verify(ws)
    assert not result.ok
    assert result.reasons == [f"{core.FLOW_EDITED}: classify_v0.jinja2 (changed)"]


def test_added_flow_file_fails(ws: Path):
    _approve(ws)
    _write(ws / "use_cases/demo/flows/standard/extra.py", "x = 1\n")
    assert _verify(ws).reasons == [f"{core.FLOW_EDITED}: extra.py (added)"]


def test_edited_dataset_fails(ws: Path):
    _approve(ws)
    with open(ws / "use_cases/demo/data/tickets.jsonl", "a") as fh:
        fh.write(json.dumps({"text": "new", "label": "a"}) + "\n")
    result = _verify(ws)
    assert not result.ok
    assert result.reasons == [f"{core.DATASET_CHANGED}: use_cases/demo/data/tickets.jsonl"]


def test_changed_variant_in_record_fails(ws: Path):
    _approve(ws)
    _edit_record(ws, "prod", lambda d: d["variants"].update(classify="variant_1"))
    result = _verify(ws)
    assert not result.ok
    assert result.reasons[0] == core.SIGNATURE_INVALID
    # the flow it would now deploy is not the one that was hashed either
    assert _has(result.reasons, core.FLOW_EDITED)


def test_edited_metrics_in_record_fails(ws: Path):
    _approve(ws)
    _edit_record(ws, "prod", lambda d: d["metrics"].update({"acc.accuracy": 0.99}))
    assert _verify(ws).reasons == [core.SIGNATURE_INVALID]


def test_wrong_signing_key_fails(ws: Path, monkeypatch):
    _approve(ws)
    monkeypatch.setenv(core.KEY_ENV_VAR, OTHER_KEY)
    result = _verify(ws)
    assert not result.ok
    assert len(result.reasons) == 1 and result.reasons[0].startswith(
        core.SIGNATURE_INVALID + ": signed with key"
    )
    assert KEY not in result.reasons[0] and OTHER_KEY not in result.reasons[0]


def test_rejected_decision_fails(ws: Path):
    core.reject(ws, RUN, GOOD, ["prod"], by="Lead", comment="too slow for prod")
    result = _verify(ws)
    assert result.reasons == [f"{core.REJECTED} by Lead: too slow for prod"]


def test_decision_flipped_in_record_fails(ws: Path):
    core.reject(ws, RUN, GOOD, ["prod"], by="Lead", comment="no")
    _edit_record(ws, "prod", lambda d: d.update(decision="approved"))
    assert _verify(ws).reasons == [core.SIGNATURE_INVALID]


def test_removed_signature_fails(ws: Path):
    _approve(ws)
    _edit_record(ws, "prod", lambda d: d.pop("signature"))
    assert _verify(ws).reasons == [core.SIGNATURE_INVALID]


def test_missing_record(ws: Path):
    result = _verify(ws)
    assert not result.ok and result.reasons == [core.MISSING] and result.record is None


def test_variant_removed_from_flow(ws: Path):
    _approve(ws, cell=WEAK, override_reason="quality is fine for a pilot")
    dag = ws / "use_cases/demo/flows/standard/flow.dag.yaml"
    text = dag.read_text()
    cut = text.index("      variant_1:")
    dag.write_text(text[:cut])
    reasons = _verify(ws).reasons
    assert reasons == [f"{core.VARIANT_GONE}: classify.variant_1"]


def test_newer_decision_supersedes_and_history_is_kept(ws: Path):
    [(first, _)] = _approve(ws)
    old = (ws / "use_cases/demo/approvals/prod.json").read_text()
    core.reject(ws, RUN, GOOD, ["prod"], by="Second lead", comment="found a bug")
    history = sorted((ws / "use_cases/demo/approvals/history").glob("prod-*.json"))
    assert len(history) == 2
    assert _verify(ws).reasons[0].startswith(core.REJECTED)
    # someone restores the older approval (e.g. a revert): the newer rejection in history still wins
    (ws / "use_cases/demo/approvals/prod.json").write_text(old)
    result = _verify(ws)
    assert not result.ok
    assert len(result.reasons) == 1 and result.reasons[0].startswith(
        core.SUPERSEDED + " by use_cases/demo/approvals/history/"
    )
    # a fresh approval is current again
    _approve(ws)
    assert _verify(ws).ok
    listing = core.list_approvals(ws, "demo")
    assert [e["environment"] for e in listing] == ["prod"]
    assert [h["decision"] for h in listing[0]["history"]] == ["approved", "rejected", "approved"]


# ------------------------------------------------------------------------------------------ gates


def test_failing_gate_needs_override(ws: Path):
    with pytest.raises(LlmopsError) as err:
        _approve(ws, cell=WEAK)
    assert "fails 1 gate(s): acc.accuracy >= 0.8 (value 0.5)" in str(err.value)
    assert "--override-gates" in str(err.value)
    assert not (ws / "use_cases/demo/approvals").exists()
    [(record, _)] = _approve(ws, cell=WEAK, override_reason="pilot customer accepts 0.5")
    assert record.override_reason == "pilot customer accepts 0.5"
    assert [g["passed"] for g in record.gates] == [False]
    assert record.params == {"classify.temperature": 0.7}
    assert _verify(ws).ok


def test_rejecting_a_failing_cell_needs_no_override(ws: Path):
    core.reject(ws, RUN, WEAK, ["prod"], by="Lead", comment="below the gate")
    assert _verify(ws).reasons[0].startswith(core.REJECTED)


def test_cell_of_a_cancelled_run_needs_override(ws: Path):
    with RunStore.for_workspace(ws) as store:
        store.finish_run(RUN, "cancelled")
    with pytest.raises(LlmopsError) as err:
        _approve(ws)
    text = str(err.value)
    assert "run completed" in text and f"run {RUN} is cancelled, not completed" in text
    assert f"llmops sweep --resume {RUN}" in text and "--override-gates" in text and "\n" not in text
    assert not (ws / "use_cases/demo/approvals").exists()
    # the preview (Approval screen) shows it as a failing check, so the screen asks for a reason
    assert [g["gate"] for g in core.preview(ws, RUN, GOOD, "prod").failing_gates] == [core.RUN_COMPLETED_GATE]
    [(record, _)] = _approve(ws, override_reason="cancelled after this cell finished")
    assert [g["gate"] for g in record.failing_gates] == [core.RUN_COMPLETED_GATE]
    assert _verify(ws).ok
    core.reject(ws, RUN, GOOD, ["dev"], by="Lead", comment="not from a cancelled run")  # no override needed


def test_partly_run_cell_needs_override(ws: Path):
    with RunStore.for_workspace(ws) as store:
        store._exec("DELETE FROM lines WHERE run_id=? AND cell_id=? AND line>=2", (RUN, GOOD))
        store._exec("UPDATE runs SET status='running', pid=NULL WHERE run_id=?", (RUN,))
    with pytest.raises(LlmopsError, match=f"cell {GOOD} ran 2 of 4 lines"):
        _approve(ws)
    with RunStore.for_workspace(ws) as store:
        store.finish_run(RUN, "completed")  # e.g. a line lost from the store: still not a full measurement
    with pytest.raises(LlmopsError) as err:
        _approve(ws)
    assert f"run completed (cell {GOOD} ran 2 of 4 lines; resume it" in str(err.value)


class FakeGate:
    def __init__(self, passed: bool):
        self.gate, self.cell_id, self.metric, self.op = "latency_p95_ms <= 100", GOOD, "latency_p95_ms", "<="
        self.threshold, self.value, self.passed, self.reason = 100.0, 250.0, passed, "slow"


class FakeComparison:
    """What the Approval screen passes: the Comparison it already shows."""

    rows: list = []

    def __init__(self, passed: bool):
        self._gates = [FakeGate(passed)]

    def gates_for(self, cell_id):
        return [g for g in self._gates if g.cell_id == cell_id]


def test_comparison_from_the_screen_is_used(ws: Path):
    with pytest.raises(LlmopsError, match="latency_p95_ms <= 100"):
        _approve(ws, comparison=FakeComparison(passed=False))
    [(record, _)] = _approve(ws, comparison=FakeComparison(passed=True))
    assert record.gates[0]["gate"] == "latency_p95_ms <= 100"


def test_flow_edited_after_the_run_cannot_be_approved(ws: Path):
    with RunStore.for_workspace(ws) as store:
        store._exec("UPDATE cells SET flow_hash=? WHERE cell_id=?", ("0" * 64, GOOD))
    with pytest.raises(LlmopsError, match="flow changed after run"):
        _approve(ws)


def test_bad_inputs(ws: Path):
    with pytest.raises(LlmopsError, match="no run 'nope'"):
        core.approve(ws, "nope", GOOD, ["prod"], by="x")
    with pytest.raises(LlmopsError, match="is not a cell of the run"):
        core.approve(ws, RUN, "czzz", ["prod"], by="x")
    with pytest.raises(LlmopsError, match="no environment 'staging'"):
        core.approve(ws, RUN, GOOD, ["staging"], by="x")
    with pytest.raises(LlmopsError, match="--by"):
        core.approve(ws, RUN, GOOD, ["prod"], by=" ")
    with pytest.raises(LlmopsError, match="needs a comment"):
        core.reject(ws, RUN, GOOD, ["prod"], by="x", comment="")
    with pytest.raises(LlmopsError, match="not a valid environment"):
        core.approve(ws, RUN, GOOD, ["../x"], by="x")


# ------------------------------------------------------------------------------------------ keys


def test_env_key_wins_over_keyring(ws: Path, monkeypatch):
    set_keyring_secret(core.KEYRING_NAME, OTHER_KEY)
    key = core.load_approval_key()
    assert key.source == f"env:{core.KEY_ENV_VAR}" and key.key_id == core.key_id(KEY.encode())
    [(record, _)] = _approve(ws)
    assert record.key_id == core.key_id(KEY.encode())
    monkeypatch.delenv(core.KEY_ENV_VAR)
    key = core.load_approval_key()
    assert key.source == "keyring:llmops-tui/approval-key"
    assert _has(_verify(ws).reasons, core.SIGNATURE_INVALID)  # signed with the env key, not the keyring's
    _approve(ws)
    assert _verify(ws).ok


def test_no_key_is_a_clear_error_and_writes_nothing(ws: Path, monkeypatch):
    monkeypatch.delenv(core.KEY_ENV_VAR)
    with pytest.raises(LlmopsError) as err:
        _approve(ws)
    assert "no approval key" in str(err.value) and core.KEY_ENV_VAR in str(err.value)
    assert not (ws / "use_cases/demo/approvals").exists()


def test_broken_keyring_is_reported_not_raised(ws: Path, monkeypatch):
    keyring.set_keyring(BrokenKeyring())
    monkeypatch.delenv(core.KEY_ENV_VAR)
    secret, notes = get_secret("approval-key", env_var=core.KEY_ENV_VAR, keyring_name="approval-key")
    assert secret is None and notes == ["no keyring available (RuntimeError)"]
    with pytest.raises(LlmopsError, match="no keyring available"):
        set_keyring_secret("approval-key", OTHER_KEY)
    with pytest.raises(LlmopsError, match="no keyring available"):
        _approve(ws)


def test_short_key_is_refused_without_showing_it(monkeypatch):
    monkeypatch.setenv(core.KEY_ENV_VAR, "shortkey")
    with pytest.raises(LlmopsError) as err:
        core.load_approval_key()
    assert "too short" in str(err.value) and "shortkey" not in str(err.value)


def test_dotenv_source(tmp_path: Path, monkeypatch):
    monkeypatch.delenv("MY_TOKEN", raising=False)
    _write(tmp_path / ".env", "MY_TOKEN=from-dotenv-value\n")
    secret, _ = get_secret("token", env_var="MY_TOKEN", dotenv=tmp_path / ".env")
    assert secret.value == "from-dotenv-value" and secret.source == f".env:{tmp_path / '.env'}"
    assert "from-dotenv-value" not in repr(secret) and "from-dotenv-value" not in str(secret)
    monkeypatch.setenv("MY_TOKEN", "from-env")
    assert get_secret("token", env_var="MY_TOKEN", dotenv=tmp_path / ".env")[0].source == "env:MY_TOKEN"


# ------------------------------------------------------------------------------------------ CLI


def _cli(capsys, *args: str) -> tuple[int, str, str]:
    code = main(list(args))
    out, err = capsys.readouterr()
    return code, out, err


def test_cli_end_to_end_and_the_key_never_leaks(ws: Path, capsys):
    w = ["--workspace", str(ws)]
    outputs = []
    code, out, err = _cli(capsys, "verify-approval", "demo", "--env", "prod", *w)
    assert code == 1 and out.strip() == "demo prod: missing"
    outputs += [out, err]

    code, out, err = _cli(capsys, "approve", RUN, "--cell", WEAK, "--env", "prod", "--by", "Lead", *w)
    assert code == 2 and "fails 1 gate(s)" in err and "--override-gates" in err
    outputs += [out, err]

    code, out, err = _cli(
        capsys,
        "approve",
        RUN,
        "--cell",
        GOOD,
        "--env",
        "prod",
        "--env",
        "dev",
        "--by",
        "Lead",
        "-m",
        "ok",
        *w,
    )
    assert code == 0, err
    assert "approved cell cgood01" in out and "approvals/prod.json" in out and "approvals/dev.json" in out
    outputs += [out, err]

    code, out, err = _cli(capsys, "verify-approval", "demo", "--env", "prod", *w)
    assert code == 0 and out.startswith("ok: demo prod approved by Lead")
    outputs += [out, err]

    code, out, err = _cli(capsys, "verify-approval", "demo", "--env", "prod", "--json", *w)
    assert code == 0 and json.loads(out)["ok"] is True
    outputs += [out, err]

    code, out, err = _cli(capsys, "approvals", "--json", *w)
    data = json.loads(out)
    assert code == 0 and [(e["environment"], e["ok"]) for e in data["approvals"]] == [
        ("dev", True),
        ("prod", True),
    ]
    outputs += [out, err]
    code, out, err = _cli(capsys, "approvals", "demo", *w)
    assert code == 0 and "valid" in out
    outputs += [out, err]

    code, out, err = _cli(capsys, "approval-key")
    assert code == 0 and core.key_id(KEY.encode()) in out
    outputs += [out, err]

    prompt = ws / "use_cases/demo/flows/standard/post.py"
    prompt.write_text(prompt.read_text() + "# tweak\n")
    code, out, err = _cli(capsys, "verify-approval", "demo", "--env", "prod", *w)
    assert code == 1 and out.strip() == f"demo prod: {core.FLOW_EDITED}: post.py (changed)"
    outputs += [out, err]

    code, out, err = _cli(
        capsys, "reject", RUN, "--cell", GOOD, "--env", "dev", "--by", "Lead", "--comment", "no", *w
    )
    assert code == 0 and "rejected" in out
    outputs += [out, err]

    code, out, err = _cli(capsys, "verify-approval", "nope", "--env", "prod", *w)
    assert code == 2 and "no use case named 'nope'" in err
    outputs += [out, err]

    # the canary: the key is in no output and in no file under the workspace
    for text in outputs:
        assert KEY not in text
    for path in ws.rglob("*"):
        if path.is_file():
            assert KEY.encode() not in path.read_bytes(), path


def test_cli_approval_key_generate_without_keyring(capsys):
    keyring.set_keyring(BrokenKeyring())
    code, out, _ = _cli(capsys, "approval-key", "--generate")
    lines = out.strip().splitlines()
    assert code == 0 and "NOT stored" in lines[0] and len(lines[-1]) >= 40


def test_records_are_plain_readable_json(ws: Path):
    _approve(ws)
    text = (ws / "use_cases/demo/approvals/prod.json").read_text()
    assert text.endswith("}\n") and '\n  "approver": "Lead <lead@example.com>",' in text
    ws_model = load_workspace(ws)
    assert ws_model.get("demo").ok  # the approvals folder does not disturb the use case


def test_preview_shows_the_record_without_writing(ws: Path):
    record = core.preview(ws, RUN, WEAK, "prod")
    assert record.failing_gates and record.signature == ""
    assert set(record.source_files) == {
        "flow.dag.yaml",
        "classify_v0.jinja2",
        "classify_v1.jinja2",
        "post.py",
    }
    assert record.model_targets["classify"]["deployment_name"] == "gpt-4o"
    assert not (ws / "use_cases/demo/approvals").exists()


def test_plaintext_keyring_backends_are_not_offered_for_secrets(monkeypatch):
    """A file-based keyring would put the key on disk: storing is refused and the status says so."""
    import keyring
    from keyring.backend import KeyringBackend

    from llmops_tui.core import secrets

    class FileBackend(KeyringBackend):
        priority = 1
        stored: dict = {}

        def get_password(self, service, username):
            return self.stored.get((service, username))

        def set_password(self, service, username, password):
            self.stored[(service, username)] = password

        def delete_password(self, service, username):
            self.stored.pop((service, username), None)

    FileBackend.__module__ = "keyrings.alt.file"
    previous = keyring.get_keyring()
    keyring.set_keyring(FileBackend())
    try:
        assert "no secure keyring" in secrets.keyring_status()
        with pytest.raises(LlmopsError, match="no secure keyring"):
            secrets.set_keyring_secret("AOAI_API_KEY", "sk-canary-plaintext")
        assert FileBackend.stored == {}
    finally:
        keyring.set_keyring(previous)
