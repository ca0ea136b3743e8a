"""Approval: a lead looks at a candidate cell against the baseline and the gates, sees the exact
configuration that would be approved (variants, params, flow and dataset hashes, model targets, run),
and approves or rejects it for one or more environments. The core writes the signed record.

Approvals are signed with the person's own SSH key (a key file, or a .pub file with ssh-agent): the key
set up once in the app (settings ``signing_key``) or ``LLMOPS_SIGNING_KEY``. On first use, when no key
is set up and the workspace takes SSH-signed approvals (or has no shared key), the key setup dialog
offers ``~/.ssh/id_ed25519`` when present, or makes a new key with ssh-keygen, and can add the public
key to ``allowed_signers``; the approval then goes on, without a restart. A key with a passphrase
asks for it. The right-hand panel says, per environment, which approvals are still needed."""

from __future__ import annotations

import getpass
import math
from pathlib import Path
from typing import Any

from rich.console import Group, RenderableType
from rich.table import Table
from rich.text import Text
from textual import work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical, VerticalScroll
from textual.screen import ModalScreen
from textual.widgets import Button, Checkbox, Input, Label, Select, Static

from llmops_tui.core.compare import short_labels
from llmops_tui.core.errors import LlmopsError
from llmops_tui.tui.messages import DataLoaded
from llmops_tui.tui.screens.base import BaseScreen
from llmops_tui.tui.screens.compare import fmt_delta, fmt_value

DEFAULT_ENVS = ["dev", "prod"]


def _who() -> str:
    try:
        return getpass.getuser()
    except Exception:  # noqa: BLE001
        return ""


class PassphraseScreen(ModalScreen[str | None]):
    """Ask for an SSH key's passphrase (hidden); it is handed to ssh-keygen only, never kept."""

    BINDINGS = [Binding("escape", "cancel", "Cancel", id="cancel_passphrase")]
    DEFAULT_CSS = """
    PassphraseScreen { align: center middle; }
    PassphraseScreen > Vertical { width: 70; max-width: 95%; height: auto; border: thick $warning;
        background: $surface; padding: 1 2; }
    PassphraseScreen Horizontal { height: auto; margin-top: 1; }
    PassphraseScreen Button { margin-right: 2; }
    """

    def __init__(self, key_file: str, wrong: bool = False) -> None:
        super().__init__()
        self.key_file = key_file
        self.wrong = wrong

    def compose(self) -> ComposeResult:
        with Vertical():
            note = " (the last one was wrong)" if self.wrong else ""
            yield Static(f"Passphrase for {self.key_file}{note}", markup=False)
            yield Input(password=True, id="passphrase")
            with Horizontal():
                yield Button("Sign", variant="success", id="ok")
                yield Button("Cancel", id="cancel")

    def on_mount(self) -> None:
        self.query_one("#passphrase", Input).focus()

    def on_input_submitted(self, event: Input.Submitted) -> None:
        event.stop()
        self.dismiss(event.value)

    def on_button_pressed(self, event: Button.Pressed) -> None:
        event.stop()
        self.dismiss(self.query_one("#passphrase", Input).value if event.button.id == "ok" else None)

    def action_cancel(self) -> None:
        self.dismiss(None)


class KeySetupScreen(ModalScreen[str | None]):
    """First use: pick or make the SSH key that signs this person's approvals, and optionally list its
    public key in allowed_signers for the ticked environments. Dismisses with the key path (or None)."""

    BINDINGS = [Binding("escape", "cancel", "Cancel", id="cancel_key_setup")]
    DEFAULT_CSS = """
    KeySetupScreen { align: center middle; }
    KeySetupScreen > VerticalScroll { width: 76; max-width: 98%; height: auto; max-height: 96%;
        border: thick $primary; background: $surface; padding: 0 1; }
    KeySetupScreen .section { text-style: bold; margin-top: 1; }
    KeySetupScreen Checkbox { height: 1; border: none; padding: 0 1; }
    KeySetupScreen Horizontal { height: auto; margin-top: 1; }
    KeySetupScreen Button { margin-right: 1; }
    KeySetupScreen #ks-result { height: auto; }
    """

    def __init__(self, workspace_root: Any, use_case: Any, envs: list[str]) -> None:
        super().__init__()
        from pathlib import Path

        self.root = Path(workspace_root)
        self.use_case = use_case
        self.envs = envs
        self.default_key = Path.home() / ".ssh" / "id_ed25519"

    def compose(self) -> ComposeResult:
        from llmops_tui.core.evidence import run_identity

        exists = self.default_key.is_file()
        with VerticalScroll():
            yield Static(
                "Set up your approval key. Approvals are signed with your own SSH key; the repository "
                "keeps only your public key (allowed_signers).",
                markup=False,
            )
            yield Label("Key file (private key, or .pub when ssh-agent holds it)", classes="section")
            yield Input(
                str(self.default_key if exists else self.default_key.with_name("id_ed25519_llmops")),
                id="ks-key",
            )
            yield Label("Your name in allowed_signers (e-mail)", classes="section")
            yield Input(run_identity(self.root), id="ks-principal")
            yield Checkbox(f"add my public key for: {', '.join(self.envs)}", value=True, id="ks-add")
            with Horizontal():
                yield Button("Use this key" if exists else "Use key", variant="success", id="ks-use")
                yield Button("Generate new key", id="ks-generate")
                yield Button("Cancel", id="ks-cancel")
            yield Static(
                "found ~/.ssh/id_ed25519"
                if exists
                else "no ~/.ssh/id_ed25519: generate one, or give a key file",
                id="ks-result",
                markup=False,
            )

    def on_button_pressed(self, event: Button.Pressed) -> None:
        event.stop()
        if event.button.id == "ks-cancel":
            self.dismiss(None)
        elif event.button.id in ("ks-use", "ks-generate"):
            self._finish(generate=event.button.id == "ks-generate")

    def action_cancel(self) -> None:
        self.dismiss(None)

    def _finish(self, *, generate: bool) -> None:
        from pathlib import Path

        from llmops_tui.core import approval, sshsig

        out = self.query_one("#ks-result", Static)
        key = Path(self.query_one("#ks-key", Input).value.strip()).expanduser()
        try:
            if generate:
                sshsig.generate_key(
                    key, comment=self.query_one("#ks-principal", Input).value.strip() or "llmops"
                )
            signer = approval.SshSigner(key)
            fp = signer.fingerprint()
            note = f"key {fp}"
            if self.query_one("#ks-add", Checkbox).value:
                path = approval.allowed_signers_path(self.root, self.use_case) or (
                    self.root / sshsig.ALLOWED_SIGNERS_FILE
                )
                entries, _ = sshsig.parse_allowed_signers(path) if path.is_file() else ([], [])
                if not any(e.fingerprint == fp for e in entries):
                    pub = key if key.suffix == ".pub" else Path(str(key) + ".pub")
                    approval.add_approver(path, self.query_one("#ks-principal", Input).value, pub, self.envs)
                    note += f", added to {path.name} (commit it)"
        except LlmopsError as exc:
            out.update(Text(str(exc), style="red"))
            return
        self.notify(note)
        self.dismiss(str(key))


class ApprovalScreen(BaseScreen):
    TITLE = "Approval"
    BINDINGS = [
        Binding("ctrl+a", "decide('approved')", "Approve", id="approve", priority=True),
        Binding("ctrl+x", "decide('rejected')", "Reject", id="reject", priority=True),
    ]
    DEFAULT_CSS = """
    ApprovalScreen #ap-left { width: 1fr; padding: 0 1; }
    ApprovalScreen #ap-right { width: 56; padding: 0 1; border-left: solid $primary 30%; }
    ApprovalScreen .section { text-style: bold; color: $text-primary; margin-top: 1; }
    ApprovalScreen Checkbox { height: 1; border: none; padding: 0 1; }
    ApprovalScreen #envs { height: auto; }
    ApprovalScreen Horizontal.buttons { height: auto; margin-top: 1; }
    ApprovalScreen Horizontal.buttons Button { margin-right: 1; }
    ApprovalScreen #ap-result { height: auto; margin-top: 1; }
    ApprovalScreen #override-box { height: auto; }
    ApprovalScreen #ap-needs { height: auto; }
    ApprovalScreen #ap-signing { height: auto; color: $text-muted; }
    ApprovalScreen.narrow .body { layout: vertical; }
    ApprovalScreen.narrow #ap-left { width: 100%; height: 1fr; }
    ApprovalScreen.narrow #ap-right { width: 100%; height: 1fr; border-left: none;
        border-top: solid $primary 30%; }
    ApprovalScreen.narrow .section { margin-top: 0; }
    """

    def __init__(self, run_id: str, cell_id: str | None = None, comparison: Any = None) -> None:
        super().__init__()
        self.run_id = run_id
        self.cell_id = cell_id
        self.comparison = comparison
        self.record: Any = None
        self.env_boxes: dict[str, str] = {}
        self.failing: list[dict] = []

    def header_title(self) -> str:
        return f"Approval · run {self.run_id}"

    def compose_body(self) -> ComposeResult:
        store = self.llmops.store()
        run = store.get_run(self.run_id) if store else None
        self.run = run
        envs = DEFAULT_ENVS
        if run is not None:
            self.uses_sandbox = run.uses_sandbox
            try:
                envs = self.llmops.use_case(run.use_case).environments or DEFAULT_ENVS
            except LlmopsError:
                pass
        cells = store.cells(run.run_id) if run and store else []
        with Horizontal(classes="body"):
            with VerticalScroll(id="ap-left"):
                yield Static("loading the evidence…", id="ap-evidence", markup=False)
                yield Static(id="ap-config", markup=False)
            with VerticalScroll(id="ap-right"):
                yield Label("Candidate cell", classes="section")
                labels = short_labels(cells)
                yield Select(
                    [(f"{labels.get(c.cell_id, c.cell_id)} ({c.cell_id})", c.cell_id) for c in cells],
                    id="cell",
                    allow_blank=True,
                    prompt="pick a cell",
                )
                yield Label("Environments", classes="section")
                with Vertical(id="envs"):
                    for i, env in enumerate(envs):
                        self.env_boxes[f"env-{i}"] = env
                        yield Checkbox(env, value=i == 0, id=f"env-{i}")
                yield Label("Still needed", classes="section")
                yield Static("checking…", id="ap-needs", markup=False)
                yield Label("Signing", classes="section")
                yield Static(self._signing_text(), id="ap-signing", markup=False)
                yield Button("Set up / change key", id="setup-key")
                yield Label("Decided by (shared-key mode only)", classes="section")
                yield Input(_who(), id="by")
                yield Label("Comment", classes="section")
                yield Input(placeholder="why (required to reject)", id="comment")
                with Vertical(id="override-box"):
                    yield Label("Override failing gates: reason", classes="section")
                    yield Input(placeholder="required to approve a cell that fails a gate", id="override")
                with Horizontal(classes="buttons"):
                    yield Button("Approve (ctrl+a)", variant="success", id="approve")
                    yield Button("Reject (ctrl+x)", variant="error", id="reject")
                yield Static(id="ap-result", markup=False)

    def on_mount(self) -> None:
        self.update_sandbox_badge()
        if self.run is None:
            self.query_one("#ap-evidence", Static).update(
                Text(f"no run '{self.run_id}' in this workspace", style="red")
            )
            return
        self.load()

    @work(thread=True, exclusive=True, exit_on_error=False, group="approval", name="approval evidence")
    def load(self) -> None:
        from llmops_tui.core import approval
        from llmops_tui.core.compare import build_comparison

        root = self.llmops.workspace_root
        try:
            comparison = self.comparison
            if comparison is None:
                comparison = build_comparison(self.llmops.store(), self.run_id, workspace_root=root)
            cell_id = self.cell_id or comparison.best_cell()
            env = next(iter(self.env_boxes.values()), "dev")
            record = approval.preview(root, self.run_id, cell_id, env, comparison=comparison)
        except LlmopsError as exc:
            self.post_message(DataLoaded("error", str(exc)))
            return
        self.post_message(DataLoaded("evidence", (comparison, cell_id, record)))
        self.app.call_from_thread(self.refresh_needs)  # a worker of its own, started from the UI thread

    def _needs(self) -> str:
        """One line per environment: valid (who signed), or what it still needs. Runs in a worker."""
        from llmops_tui.core import approval

        root = self.llmops.workspace_root
        lines = []
        name = self.run.use_case if self.run is not None else ""
        for env in self.env_boxes.values():
            try:
                uc = approval.use_case_for_env(root, name, env)
                result = approval.verify_approval(root, uc, env)
            except LlmopsError as exc:
                lines.append(f"{env}: {exc}")
                continue
            who = ", ".join(str(s.get("principal")) for s in result.signers)
            if result.ok:
                lines.append(f"{env}: approved ({who})")
            elif result.record is None:
                lines.append(f"{env}: {result.needed} approval(s) needed")
            elif result.missing:
                lines.append(f"{env}: " + "; ".join(m.split(": ", 1)[-1] for m in result.missing))
            else:
                lines.append(f"{env}: not valid: {result.reasons[0]}")
        return "\n".join(lines)

    def _signing_key(self) -> str | None:
        import os

        from llmops_tui.core.sshsig import SIGNING_KEY_ENV

        settings = getattr(self.app, "settings", None)
        return getattr(settings, "signing_key", None) or os.environ.get(SIGNING_KEY_ENV) or None

    def _signing_text(self) -> str:
        key = self._signing_key()
        return f"SSH key {key}" if key else "no SSH key set up yet (approving offers to set one up)"

    def on_data_loaded(self, message: DataLoaded) -> None:
        if message.key == "error":
            self.query_one("#ap-evidence", Static).update(Text(message.payload, style="red"))
            return
        if message.key == "needs":
            self.query_one("#ap-needs", Static).update(message.payload)
            return
        self.comparison, self.cell_id, self.record = message.payload
        select = self.query_one("#cell", Select)
        if select.value != self.cell_id:
            with select.prevent(Select.Changed):
                select.value = self.cell_id
        self.failing = list(self.record.failing_gates)
        self.query_one("#override-box").display = bool(self.failing)
        self.query_one("#ap-evidence", Static).update(self._evidence())
        self.query_one("#ap-config", Static).update(self._config())

    def _evidence(self) -> Group:
        cmp, cid = self.comparison, self.cell_id
        base = cmp.baseline
        label = {c.cell_id: c.label for c in cmp.cells}
        t = Table(
            title=f"{label.get(cid, cid)} vs baseline {label.get(base, base)}",
            title_justify="left",
            header_style="bold",
            expand=True,
        )
        t.add_column("metric")
        t.add_column("baseline", justify="right")
        t.add_column("candidate", justify="right")
        t.add_column("delta", justify="right")
        t.add_column("95% CI", justify="right")
        t.add_column("sig.", justify="center")
        for row in cmp.rows:
            if row.group not in ("metric", "quality", "latency", "cost"):
                continue
            b, c = row.values.get(base), row.values.get(cid)
            delta = (
                ""
                if c is None or c.delta is None or (isinstance(c.delta, float) and math.isnan(c.delta))
                else fmt_delta(c.delta, row.key)
            )
            ci = (
                ""
                if c is None or c.ci_low is None
                else f"[{fmt_value(c.ci_low, row.key)}, {fmt_value(c.ci_high, row.key)}]"
            )
            sig = "" if c is None or c.significant is None else ("yes" if c.significant else "no")
            t.add_row(
                row.label,
                fmt_value(b.value if b else None, row.key, free=bool(b and b.free)),
                fmt_value(c.value if c else None, row.key, free=bool(c and c.free)),
                delta,
                ci,
                sig,
            )
        g = Table(title="gates", title_justify="left", header_style="bold", expand=True)
        g.add_column("gate")
        g.add_column("value", justify="right")
        g.add_column("result")
        for gate in self.record.gates:
            ok = gate.get("passed")
            g.add_row(
                str(gate.get("gate") or gate.get("metric")),
                fmt_value(gate.get("value")),
                Text(
                    "pass" if ok else f"FAIL {gate.get('reason') or ''}".strip(),
                    style="green" if ok else "bold red",
                ),
            )
        if not self.record.gates:
            g.add_row(Text("no gates in llmops.yaml", style="dim"), "", "")
        parts: list[RenderableType] = [t, g]
        if self.failing:
            parts.append(
                Text(
                    f"{len(self.failing)} gate(s) fail: approving needs an override reason", style="bold red"
                )
            )
        return Group(*parts)

    def _config(self) -> Table:
        r = self.record
        t = Table.grid(padding=(0, 1))
        t.add_column(style="bold")
        t.add_column()
        t.add_row("", "")
        t.add_row("configuration", "")
        t.add_row("use case", r.use_case)
        t.add_row("run", f"{r.run_id} cell {r.cell_id}")
        t.add_row("variants", ", ".join(f"{k}={v}" for k, v in r.variants.items()) or "defaults")
        t.add_row("params", ", ".join(f"{k}={v}" for k, v in r.params.items()) or "none")
        t.add_row("flow", f"{r.flow_path} (as deployed: {r.flow_hash[:16]})")
        for name, h in sorted(r.source_files.items()):
            t.add_row("", Text(f"{name}  {h[:16]}", style="dim"))
        t.add_row("dataset", r.dataset)
        for name, h in sorted(r.dataset_hashes.items()):
            t.add_row("", Text(f"{name}  {h[:16]}", style="dim"))
        for node, target in r.model_targets.items():
            desc = ", ".join(f"{k}={v}" for k, v in target.items() if v is not None)
            t.add_row("model", f"{node}: {desc}")
        return t

    def on_select_changed(self, event: Select.Changed) -> None:
        if event.select.id == "cell" and isinstance(event.value, str) and event.value != self.cell_id:
            self.cell_id = event.value
            self.query_one("#ap-evidence", Static).update("loading the evidence…")
            self.load()

    def on_button_pressed(self, event: Button.Pressed) -> None:
        if event.button.id in ("approve", "reject"):
            self.action_decide("approved" if event.button.id == "approve" else "rejected")
        elif event.button.id == "setup-key":
            self._setup_key(None)

    def _envs(self) -> list[str]:
        return [env for box_id, env in self.env_boxes.items() if self.query_one(f"#{box_id}", Checkbox).value]

    def _setup_key(self, then: str | None) -> None:
        """Open the key setup; with ``then`` (a decision), carry on with it once a key is chosen."""
        from llmops_tui.tui.settings import save_settings

        uc = self.llmops.use_case(self.run.use_case) if self.run is not None else None

        def chosen(key: str | None) -> None:
            if not key:
                self.query_one("#ap-result", Static).update(
                    Text("no key set up: nothing signed", style="yellow")
                )
                return
            settings = getattr(self.app, "settings", None)
            if settings is not None:
                settings.signing_key = key
                save_settings(settings)
            self.query_one("#ap-signing", Static).update(self._signing_text())
            if then:
                self.action_decide(then)

        self.app.push_screen(
            KeySetupScreen(self.llmops.workspace_root, uc, self._envs() or list(self.env_boxes.values())),
            chosen,
        )

    def _needs_ssh_setup(self) -> bool:
        """No key set up, and either the use case takes SSH-signed approvals or there is no shared key."""
        from llmops_tui.core import approval

        if self._signing_key() or self.run is None:
            return False
        try:
            uc = self.llmops.use_case(self.run.use_case)
        except LlmopsError:
            return False
        if approval.allowed_signers_path(self.llmops.workspace_root, uc) is not None:
            return True
        try:
            return approval.load_approval_key(required=False) is None
        except LlmopsError:
            return True

    def action_decide(self, decision: str, passphrase: str | None = None) -> None:
        from llmops_tui.core import approval
        from llmops_tui.core.sshsig import PassphraseNeeded

        result = self.query_one("#ap-result", Static)
        if self.record is None or self.cell_id is None:
            result.update(Text("the evidence is still loading", style="yellow"))
            return
        envs = self._envs()
        if not envs:
            result.update(Text("pick at least one environment", style="red"))
            return
        override = self.query_one("#override", Input).value.strip() or None
        if decision == "approved" and self.failing and not override:
            result.update(
                Text("this cell fails a gate: give an override reason to approve it anyway", style="red")
            )
            self.query_one("#override", Input).focus()
            return
        if self._needs_ssh_setup():
            self._setup_key(decision)
            return
        key = self._signing_key()
        signer = approval.SshSigner(Path(key).expanduser(), passphrase) if key else None
        try:
            written = approval.decide(
                self.llmops.workspace_root,
                self.run_id,
                self.cell_id,
                envs,
                decision=decision,
                by=self.query_one("#by", Input).value,
                comment=self.query_one("#comment", Input).value,
                override_reason=override if decision == "approved" else None,
                comparison=self.comparison,
                signer=signer,
            )
        except PassphraseNeeded:
            assert signer is not None

            def got(value: str | None) -> None:
                if value:
                    self.action_decide(decision, value)
                else:
                    result.update(Text("no passphrase: nothing signed", style="yellow"))

            self.app.push_screen(PassphraseScreen(str(signer.key_file), wrong=passphrase is not None), got)
            return
        except LlmopsError as exc:
            result.update(Text(str(exc), style="red"))
            return
        root = self.llmops.workspace_root
        lines = [
            f"{decision} {self.cell_id} for {rec.environment}: {path.relative_to(root) if path.is_relative_to(root) else path}"
            for rec, path in written
        ]
        result.update(Text("\n".join(lines), style="green" if decision == "approved" else "yellow"))
        self.notify(f"{decision}: {', '.join(envs)}")
        self.refresh_needs()

    @work(thread=True, exclusive=True, exit_on_error=False, group="approval-needs", name="approvals needed")
    def refresh_needs(self) -> None:
        try:
            text = self._needs()
        except Exception as exc:  # noqa: BLE001 - shown in the panel, never a crash or a silent blank
            text = f"cannot check the approvals: {type(exc).__name__}: {exc}"
        self.post_message(DataLoaded("needs", text))
