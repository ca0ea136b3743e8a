"""The app's approval with a person's SSH key: first use at 80x24 offers to set up a key (generated with
ssh-keygen under a temporary HOME, never ~/.ssh), lists it in allowed_signers, and the approval is signed
without a restart; a passphrase-protected key asks for its passphrase; the screen says what is still
needed. The runs screen imports an exported run file and opens it."""

from __future__ import annotations

import json
import shutil
import subprocess
import time

import pytest
from tui_support import RUN_ID, copy_workspace, seed_store

from llmops_tui.core import approval as core
from llmops_tui.tui.app import LlmopsApp
from llmops_tui.tui.settings import AppSettings

pytestmark = pytest.mark.skipif(shutil.which("ssh-keygen") is None, reason="needs ssh-keygen")
SMALL = (80, 24)


@pytest.fixture(autouse=True)
def _isolated(monkeypatch, tmp_path):
    monkeypatch.setenv("LLMOPS_TUI_CONFIG_DIR", str(tmp_path / "config"))
    monkeypatch.setenv("HOME", str(tmp_path / "home"))  # Path.home(): the key setup looks in ~/.ssh here
    (tmp_path / "home").mkdir()
    monkeypatch.setenv("TZ", "UTC")
    time.tzset()
    monkeypatch.setenv("LLMOPS_USER", "lead@example.com")
    for var in ("AOAI_API_KEY", "LLMOPS_APPROVAL_KEY", "LLMOPS_SIGNING_KEY"):
        monkeypatch.delenv(var, raising=False)
    import keyring
    from test_approval import MemoryKeyring

    previous = keyring.get_keyring()
    keyring.set_keyring(MemoryKeyring())
    yield
    keyring.set_keyring(previous)


def _plain(widget) -> str:
    return str(widget.render())


async def _settle(app, pilot) -> None:
    await pilot.pause()
    await app.workers.wait_for_complete()
    await pilot.pause()


async def test_first_use_approval_sets_up_a_key_and_signs_without_a_restart(tmp_path):
    ws = copy_workspace(tmp_path)
    cells = seed_store(ws)
    settings = AppSettings()
    app = LlmopsApp(ws, settings=settings, debug=True)
    async with app.run_test(size=SMALL) as pilot:
        await pilot.pause()
        app.open_screen("approval", run_id=RUN_ID, cell_id=cells["baseline"])
        await _settle(app, pilot)
        screen = app.screen
        assert type(screen).__name__ == "ApprovalScreen" and screen.record is not None
        assert "dev: 1 approval(s) needed" in _plain(screen.query_one("#ap-needs"))
        assert "no SSH key set up yet" in _plain(screen.query_one("#ap-signing"))
        if screen.failing:
            screen.query_one("#override").value = "sandbox trial"
        await pilot.press("ctrl+a")
        await pilot.pause()
        setup = app.screen
        assert type(setup).__name__ == "KeySetupScreen"
        assert "no ~/.ssh/id_ed25519" in _plain(setup.query_one("#ks-result"))
        assert setup.query_one("#ks-principal").value == "lead@example.com"
        await pilot.click("#ks-generate")
        await _settle(app, pilot)
        assert app.screen is screen, type(app.screen).__name__
        assert "approved" in _plain(screen.query_one("#ap-result")), _plain(screen.query_one("#ap-result"))
        assert "dev: approved (lead@example.com)" in _plain(screen.query_one("#ap-needs"))
        assert "SSH key" in _plain(screen.query_one("#ap-signing"))

    key = tmp_path / "home" / ".ssh" / "id_ed25519_llmops"
    assert key.is_file() and settings.signing_key == str(key)
    saved = json.loads((tmp_path / "config" / "settings.json").read_text())
    assert saved["signing_key"] == str(key)
    signers = (ws / "allowed_signers").read_text()
    assert "lead@example.com" in signers and "PRIVATE" not in signers
    record = json.loads((ws / "use_cases/ner/approvals/dev.json").read_text())
    assert record["signing"] == "ssh" and record["approver"] == "lead@example.com"
    uc = core.use_case_for_env(ws, "ner", "dev")
    result = core.verify_approval(ws, uc, "dev")  # no private key, no shared key in this process's env
    assert result.ok, result.reasons


async def test_an_existing_key_with_a_passphrase_is_asked_for_it(tmp_path):
    ws = copy_workspace(tmp_path)
    cells = seed_store(ws)
    ssh = tmp_path / "home" / ".ssh"
    ssh.mkdir()
    subprocess.run(
        ["ssh-keygen", "-q", "-t", "ed25519", "-N", "open sesame", "-f", str(ssh / "id_ed25519")], check=True
    )
    app = LlmopsApp(ws, settings=AppSettings(), debug=True)
    async with app.run_test(size=SMALL) as pilot:
        await pilot.pause()
        app.open_screen("approval", run_id=RUN_ID, cell_id=cells["baseline"])
        await _settle(app, pilot)
        screen = app.screen
        if screen.failing:
            screen.query_one("#override").value = "sandbox trial"
        await pilot.press("ctrl+a")
        await pilot.pause()
        setup = app.screen
        assert "found ~/.ssh/id_ed25519" in _plain(setup.query_one("#ks-result"))
        assert setup.query_one("#ks-key").value == str(ssh / "id_ed25519")
        await pilot.click("#ks-use")
        await _settle(app, pilot)
        ask = app.screen
        assert type(ask).__name__ == "PassphraseScreen"
        ask.query_one("#passphrase").value = "wrong"
        await pilot.click("#ok")
        await _settle(app, pilot)
        ask = app.screen
        assert type(ask).__name__ == "PassphraseScreen" and ask.wrong
        ask.query_one("#passphrase").value = "open sesame"
        await pilot.click("#ok")
        await _settle(app, pilot)
        assert app.screen is screen
        assert "approved" in _plain(screen.query_one("#ap-result"))
    assert core.verify_approval(ws, core.use_case_for_env(ws, "ner", "dev"), "dev").ok


async def test_runs_screen_imports_an_exported_run_and_opens_it_and_repicks_columns(tmp_path):
    from tui_support import FIXTURE

    from llmops_tui.core.portable import export_run
    from llmops_tui.core.store import RunStore

    src = copy_workspace(tmp_path)
    seed_store(src)
    file = tmp_path / "from-ci.llmops-run.json.gz"
    with RunStore.for_workspace(src) as store:
        export_run(store, RUN_ID, file)
    dst = tmp_path / "clone"
    shutil.copytree(FIXTURE, dst)  # a fresh clone: no .llmops/ at all
    app = LlmopsApp(dst, settings=AppSettings(), debug=True)
    async with app.run_test(size=SMALL) as pilot:
        await pilot.pause()
        app.open_screen("runs")
        await pilot.pause()
        runs = app.screen
        assert runs.runs == []
        narrow = [str(c.key.value) for c in runs.query_one("DataTable").columns.values()]
        assert "finished" not in narrow
        await pilot.press("i")
        await pilot.pause()
        dialog = app.screen
        assert type(dialog).__name__ == "ImportRunScreen"
        dialog.query_one("#import-path").value = str(file)
        await pilot.click("#do-import")
        await _settle(app, pilot)
        assert type(app.screen).__name__ == "CompareScreen" and app.screen.run_id == RUN_ID
        await pilot.press("escape")
        await pilot.pause()
        assert app.screen is runs and [r.run_id for r in runs.runs] == [RUN_ID]
        await pilot.resize_terminal(160, 40)
        await pilot.pause()
        wide = [str(c.key.value) for c in runs.query_one("DataTable").columns.values()]
        assert "finished" in wide and "endpoint" in wide
        await pilot.resize_terminal(80, 24)
        await pilot.pause()
        assert [str(c.key.value) for c in runs.query_one("DataTable").columns.values()] == narrow
        # an altered or missing file: an error toast, no crash
        await pilot.press("i")
        await pilot.pause()
        app.screen.query_one("#import-path").value = str(tmp_path / "nope.json.gz")
        await pilot.click("#do-import")
        await pilot.pause()
        assert app.screen is runs
