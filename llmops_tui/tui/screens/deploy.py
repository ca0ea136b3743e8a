"""Deploy: ship one use case to an environment and a target through the same ``deploy()`` the CLI and CI
use. The form (environment, target, require approval, LLM endpoint for local) drives a dry-run plan that
updates as you change it, next to the approval status for the environment; ``ctrl+g`` deploys for real in
a background thread. The local deployments of the use case are listed below, with undeploy."""

from __future__ import annotations

import shlex
from typing import Any

from rich.text import Text
from textual import work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical, VerticalScroll
from textual.widgets import Button, DataTable, Input, Label, Select, Static, Switch

from llmops_tui.core.errors import LlmopsError
from llmops_tui.tui.data import any_key_missing
from llmops_tui.tui.messages import DataLoaded, DeployFinished
from llmops_tui.tui.screens.base import BaseScreen

# The same names as llmops_tui.deploy.config.TARGETS (kept here so opening the screen imports nothing heavy).
TARGETS = ("local", "kubernetes", "azureml", "azureml-kubernetes", "webapp")
DEPLOYMENT_COLUMNS = [
    ("env", "Env"),
    ("kind", "Kind"),
    ("version", "Version"),
    ("url", "URL"),
    ("pid", "PID"),
    ("llm", "LLM endpoint"),
    ("state", "State"),
]


def _error_text(exc: BaseException) -> str:
    """One line: an LlmopsError or RunFailed as written, anything else with its type."""
    from llmops_tui.core.errors import RunFailed

    if isinstance(exc, LlmopsError | RunFailed):
        return str(exc)
    return f"{type(exc).__name__}: {exc}"


def plan_text(data: dict[str, Any]) -> Text:
    """The plan (or the result) of ``deploy()`` as the CLI prints it: every step, command and object."""
    from llmops_tui.deploy.kubernetes import manifest_yaml

    dry = data.get("dry_run")
    out = Text()
    head = "plan (dry run: nothing is changed)" if dry else "deployment"
    out.append(f"{head}: {data['use_case']} env {data['env']} -> {data['target']}\n", style="bold")
    out.append(f"version        {str(data['version'])[:12]}\n")
    config = data.get("configuration") or {}
    out.append(f"configuration  {config.get('source', '')}\n")
    picks = [f"{k}.{v}" for k, v in (config.get("variants") or {}).items()]
    picks += [f"{k}={v}" for k, v in (config.get("params") or {}).items()]
    if picks:
        out.append(f"               {', '.join(picks)}\n")
    out.append("\n")
    for i, step in enumerate(data.get("steps") or [], 1):
        mark = "done" if step.get("done") else ("skipped" if step.get("skipped") else "plan" if dry else "-")
        out.append(f"{i:>2}. [{mark}] ", style="dim")
        out.append(f"{step['action']}: ", style="bold")
        out.append(f"{step['summary']}\n")
        if step.get("command"):
            out.append(f"      $ {shlex.join(step['command'])}\n", style="cyan")
        if step.get("skipped"):
            out.append(f"      ({step['skipped']})\n", style="yellow")
        obj = step.get("object")
        if dry and obj is not None:
            body = obj if isinstance(obj, str) else manifest_yaml(obj)
            for line in body.rstrip().splitlines():
                out.append(f"      | {line}\n", style="dim")
    out.append("\n")
    if data.get("endpoint_url"):
        out.append(f"endpoint: {data['endpoint_url']}\n")
    for note in data.get("notes") or []:
        out.append(f"note: {note}\n", style="yellow")
    verb = "would be written" if dry else "written"
    out.append(f"{len(data.get('artifacts') or [])} file(s) {verb}")
    return out


def result_text(data: dict[str, Any]) -> Text:
    """A real deployment's outcome in a few lines: version, endpoint, test, files, notes."""
    out = Text()
    ok = bool(data.get("ok"))
    verdict = "deployed" if ok else "deployment FAILED"
    out.append(
        f"{verdict}: {data['use_case']} env {data['env']} -> {data['target']}, version {str(data['version'])[:12]}\n",
        style="bold green" if ok else "bold red",
    )
    if data.get("endpoint_url"):
        out.append(f"endpoint: {data['endpoint_url']}\n")
    test = data.get("test")
    if test:
        if test.get("ok"):
            keys = ", ".join(test.get("output_keys") or [])
            out.append(f"endpoint test passed (HTTP {test.get('status')}; outputs: {keys})\n", style="green")
        else:
            out.append(f"endpoint test FAILED: {test.get('error')}\n", style="red")
    artifacts = data.get("artifacts") or []
    out.append(f"{len(artifacts)} file(s) written")
    if artifacts:
        out.append(f", e.g. {artifacts[0]}")
    for note in data.get("notes") or []:
        out.append(f"\nnote: {note}", style="yellow")
    return out


class DeployScreen(BaseScreen):
    TITLE = "Deploy"
    BINDINGS = [
        Binding("ctrl+g", "deploy", "Deploy", id="deploy_now", priority=True),
        Binding("x,delete", "undeploy", "Undeploy selected", id="undeploy"),
    ]
    DEFAULT_CSS = """
    DeployScreen #dp-form { width: 52; padding: 0 1; border-right: solid $primary 30%; }
    DeployScreen #dp-side { width: 1fr; }
    DeployScreen .section { text-style: bold; color: $text-primary; margin-top: 1; }
    DeployScreen Horizontal.switch-row { height: auto; margin-top: 1; }
    DeployScreen Horizontal.switch-row Label { padding: 1 1 0 0; }
    DeployScreen Horizontal.buttons { height: auto; margin-top: 1; }
    DeployScreen Horizontal.buttons Button { margin-right: 1; }
    DeployScreen #dp-approval { height: auto; margin-top: 1; }
    DeployScreen #dp-result { height: auto; margin-top: 1; }
    DeployScreen #dp-plan-box { height: 3fr; padding: 0 1; }
    DeployScreen #dp-side > Label { padding: 0 1; }
    """

    def __init__(self, use_case: str | None = None) -> None:
        super().__init__()
        self.use_case_name = use_case or ""
        self.plan_data: dict[str, Any] | None = None
        self.plan_error: str | None = None
        self.approval: Any = None
        self.last_result: dict[str, Any] | None = None
        self.last_error: str | None = None
        self.deployments: list[dict[str, Any]] = []
        self.busy = False

    def header_title(self) -> str:
        return f"Deploy · {self.use_case_name}"

    # ------------------------------------------------------------------------------------------- form

    def _environments(self) -> list[str]:
        try:
            envs = list(self.llmops.use_case(self.use_case_name).environments)
        except LlmopsError:
            envs = []
        return envs or ["dev"]

    def _default_endpoint(self) -> str:
        app_ep = self.llmops.llm_endpoint
        if app_ep:
            return app_ep
        # Offline by default: without a key for every connection only the sandbox model answers.
        try:
            uc = self.llmops.use_case(self.use_case_name)
        except LlmopsError:
            return "sandbox"
        return "sandbox" if any_key_missing(uc, self.llmops.workspace_root) else ""

    def compose_body(self) -> ComposeResult:
        envs = self._environments()
        with Horizontal(classes="body"):
            with VerticalScroll(id="dp-form"):
                yield Label("Environment", classes="section")
                yield Select(
                    [(e, e) for e in envs],
                    id="env",
                    allow_blank=False,
                    value="dev" if "dev" in envs else envs[0],
                )
                yield Label("Target", classes="section")
                yield Select([(t, t) for t in TARGETS], id="target", allow_blank=False, value="local")
                with Horizontal(classes="switch-row"):
                    yield Label("Require approval")
                    yield Switch(False, id="require")
                with Vertical(id="llm-box"):
                    yield Label("LLM endpoint (local)", classes="section")
                    yield Input(
                        self._default_endpoint(),
                        placeholder="sandbox, a URL, or empty for the connections",
                        id="llm",
                    )
                with Horizontal(classes="buttons"):
                    yield Button("Deploy (ctrl+g)", variant="success", id="deploy")
                    yield Button("Undeploy (x)", variant="error", id="undeploy")
                yield Static("checking the approval…", id="dp-approval", markup=False)
                yield Static(id="dp-result", markup=False)
            with Vertical(id="dp-side"):
                yield Label("Dry-run plan", classes="section")
                with VerticalScroll(id="dp-plan-box"):
                    yield Static("planning…", id="dp-plan", markup=False)
                yield Label("Local deployments", classes="section")
                yield DataTable(id="dp-deployments", cursor_type="row", zebra_stripes=True)

    def on_mount(self) -> None:
        table = self.query_one("#dp-deployments", DataTable)
        for key, label in DEPLOYMENT_COLUMNS:
            table.add_column(label, key=key)
        self._sync_form()
        self.refresh_data()

    def options(self, *, dry_run: bool) -> Any:
        """The form as DeployOptions."""
        from llmops_tui.deploy.api import DeployOptions

        target = str(self.query_one("#target", Select).value)
        llm = self.query_one("#llm", Input).value.strip() or None
        return DeployOptions(
            use_case=self.use_case_name,
            env=str(self.query_one("#env", Select).value),
            target=target,
            require_approval=self.query_one("#require", Switch).value,
            dry_run=dry_run,
            llm_endpoint=llm if target == "local" else None,
        )

    def _form_key(self) -> tuple[Any, ...]:
        o = self.options(dry_run=True)
        return (o.env, o.target, o.require_approval, o.llm_endpoint)

    def _sync_form(self) -> None:
        local = self.query_one("#target", Select).value == "local"
        self.query_one("#llm-box").display = local
        llm = self.query_one("#llm", Input).value.strip()
        self.uses_sandbox = local and llm == "sandbox"
        self.update_sandbox_badge()

    def refresh_data(self) -> None:
        """Plan again and re-read the local deployments (also on ctrl+r)."""
        self.query_one("#dp-plan", Static).update(Text("planning…", style="dim"))
        self.plan_data = None
        self.plan_error = None
        self.make_plan(self.options(dry_run=True), self._form_key())
        self.refresh_deployments()

    # ---------------------------------------------------------------------------------------- workers

    @work(thread=True, exclusive=True, exit_on_error=False, group="deploy-plan", name="deploy plan")
    def make_plan(self, opts: Any, key: tuple[Any, ...]) -> None:
        from llmops_tui.core.approval import VerifyResult, verify_approval
        from llmops_tui.deploy.api import deploy

        root = self.llmops.workspace_root
        try:
            from llmops_tui.deploy.prepare import deployable_use_case

            uc = deployable_use_case(root, opts.use_case, opts.env)
        except LlmopsError:
            uc = None
        approval: VerifyResult | str  # the result, or why it could not be checked
        try:
            approval = verify_approval(root, uc or self.llmops.use_case(opts.use_case), opts.env)
        except Exception as exc:  # noqa: BLE001 - shown as the approval status
            approval = _error_text(exc)
        self.post_message(DataLoaded("approval", (key, approval)))
        try:
            plan: Any = deploy(root, opts).to_dict()
        except Exception as exc:  # noqa: BLE001 - a refused plan is shown, never a crash
            plan = _error_text(exc)
        self.post_message(DataLoaded("plan", (key, plan)))

    @work(thread=True, exclusive=True, exit_on_error=False, group="deploy", name="deploy")
    def run_deploy(self, opts: Any) -> None:
        from llmops_tui.deploy.api import deploy

        try:
            result = deploy(self.llmops.workspace_root, opts)
        except Exception as exc:  # noqa: BLE001 - one clear line on screen, the app keeps running
            self.post_message(DeployFinished(None, _error_text(exc)))
            return
        self.post_message(DeployFinished(result.to_dict(), None))

    @work(thread=True, exclusive=True, exit_on_error=False, group="undeploy", name="undeploy")
    def run_undeploy(self, env: str, version: str | None, all_versions: bool) -> None:
        from llmops_tui.deploy.local import undeploy

        try:
            stopped = undeploy(
                self.llmops.workspace_root,
                self.use_case_name,
                env=env,
                version=version,
                all_versions=all_versions,
            )
        except Exception as exc:  # noqa: BLE001
            self.post_message(DataLoaded("undeploy-error", _error_text(exc)))
            return
        self.post_message(DataLoaded("undeployed", stopped))

    # --------------------------------------------------------------------------------------- messages

    def on_data_loaded(self, message: DataLoaded) -> None:
        if message.key == "approval":
            key, approval = message.payload
            if key == self._form_key():
                self.approval = approval
                self.query_one("#dp-approval", Static).update(
                    self._approval_text(key[0], approval, require=bool(key[2]))
                )
        elif message.key == "plan":
            key, plan = message.payload
            if key != self._form_key():
                return  # the form changed meanwhile: a newer plan is on its way
            box = self.query_one("#dp-plan", Static)
            if isinstance(plan, str):
                self.plan_data, self.plan_error = None, plan
                box.update(Text(f"cannot deploy with these settings: {plan}", style="red"))
            else:
                self.plan_data, self.plan_error = plan, None
                box.update(plan_text(plan))
        elif message.key == "undeployed":
            stopped = message.payload
            lines = [
                f"stopped {d.get('kind')} {str(d.get('version'))[:12]} at {d.get('url')} (pid {d.get('pid')})"
                for d in stopped
            ] or [f"no local deployment of {self.use_case_name} to stop"]
            self._show_result(Text("\n".join(lines), style="yellow"))
            self.refresh_deployments()
        elif message.key == "undeploy-error":
            self._show_result(Text(message.payload, style="red"))
            self.refresh_deployments()

    def on_deploy_finished(self, message: DeployFinished) -> None:
        self.busy = False
        self.query_one("#deploy", Button).disabled = False
        self.last_result, self.last_error = message.result, message.error
        if message.error is not None:
            self._show_result(Text(f"not deployed: {message.error}", style="red"))
        elif message.result is not None:
            self._show_result(result_text(message.result))
            if message.result.get("ok"):
                self.notify(f"deployed {self.use_case_name} to {message.result['target']}")
        self.refresh_data()

    def _show_result(self, text: Text) -> None:
        self.query_one("#dp-result", Static).update(text)

    def _approval_text(self, env: str, approval: Any, *, require: bool = True) -> Text:
        if isinstance(approval, str):
            return Text(f"approval for {env}: cannot check ({approval})", style="red")
        if approval.ok:
            rec = approval.record or {}
            out = Text(f"approval for {env}: ok\n", style="bold green")
            out.append(f"cell {rec.get('cell_id')} of run {rec.get('run_id')}, by {rec.get('approver')}")
            return out
        out = Text(f"approval for {env}: not usable\n", style="bold yellow")
        for reason in approval.reasons:
            out.append(f"  x {reason}\n", style="yellow")
        if require:
            out.append("Require approval is on: nothing is deployed until an approval verifies", style="dim")
        else:
            out.append(
                "Require approval is off: deploying goes ahead without an approval, with the configuration"
                " the plan shows",
                style="yellow",
            )
        return out

    # ------------------------------------------------------------------------------------ deployments

    def refresh_deployments(self) -> None:
        from llmops_tui.deploy import registry

        table = self.query_one("#dp-deployments", DataTable)
        table.clear()
        try:
            items = registry.load(self.llmops.workspace_root)
        except Exception as exc:  # noqa: BLE001 - an unreadable registry is shown, not fatal
            self._show_result(Text(f"cannot read the local deployments: {_error_text(exc)}", style="red"))
            items = []
        self.deployments = [d for d in items if d.get("use_case") == self.use_case_name]
        for d in self.deployments:
            version = str(d.get("version", ""))
            alive = bool(d.get("alive"))
            table.add_row(
                str(d.get("env", "")),
                str(d.get("kind", "")),
                version[:12] if d.get("kind") == "flow" else version,
                str(d.get("url", "")),
                str(d.get("pid", "")),
                str(d.get("llm_endpoint") or ""),
                Text("running", style="green") if alive else Text("stopped", style="red"),
                key=str(d.get("id") or f"{d.get('env')}:{version}"),
            )

    # ---------------------------------------------------------------------------------------- events

    def on_select_changed(self, event: Select.Changed) -> None:
        if not self.is_mounted:
            return
        self._sync_form()
        self.refresh_data()

    def on_switch_changed(self, event: Switch.Changed) -> None:
        self.refresh_data()

    def on_input_changed(self, event: Input.Changed) -> None:
        if event.input.id == "llm" and self.is_mounted:
            self._sync_form()
            self.refresh_data()

    def on_button_pressed(self, event: Button.Pressed) -> None:
        if event.button.id == "deploy":
            self.action_deploy()
        elif event.button.id == "undeploy":
            self.action_undeploy()

    # --------------------------------------------------------------------------------------- actions

    def action_deploy(self) -> None:
        if self.busy:
            self.notify("a deployment is already running", severity="warning")
            return
        opts = self.options(dry_run=False)
        self.busy = True
        self.query_one("#deploy", Button).disabled = True
        self.last_result, self.last_error = None, None
        self._show_result(
            Text(f"deploying {self.use_case_name} env {opts.env} -> {opts.target}…", style="cyan")
        )
        self.run_deploy(opts)

    def action_undeploy(self) -> None:
        table = self.query_one("#dp-deployments", DataTable)
        if not self.deployments or table.cursor_row is None or table.cursor_row >= len(self.deployments):
            self.notify("no local deployment selected", severity="warning")
            return
        d = self.deployments[table.cursor_row]
        env = str(d.get("env", ""))
        flow = d.get("kind") == "flow"
        what = (
            f"version {str(d.get('version'))[:12]} of {env} (and a router in front of it)"
            if flow
            else f"the router of {env} and every version behind it"
        )
        from llmops_tui.tui.screens.dialogs import ConfirmScreen

        def answer(yes: bool | None) -> None:
            if not yes:
                return
            if flow:
                # Stopping a version also stops a router in front of it (and a sandbox started for it).
                self._show_result(Text(f"stopping {str(d.get('version'))[:12]} ({env})…", style="cyan"))
                self.run_undeploy(env, str(d.get("version")), False)
            else:
                self._show_result(
                    Text(f"stopping the router of {env} and the versions behind it…", style="cyan")
                )
                self.run_undeploy(env, None, True)

        self.app.push_screen(ConfirmScreen(f"Stop {what}? Its endpoint stops answering."), answer)
