"""`llmops init`: set a repository made from the LLMOps template up for llmops-tui, in one command.

Writes, for each use case, an ``llmops.yaml`` with a sweep section derived from the standard flow's
variants and commented starting gates; adds ``.llmops/`` to ``.gitignore``; with ``--ci github`` or
``--ci azure-pipelines`` writes a workflow that installs the pinned llmops-tui *tool* (never the
repository itself), sweeps with the repository's real connections (keys from CI secrets; the sandbox
only with ``--sandbox-for-forks``, for pull requests from forks, which get no secrets), publishes
reports and exported runs, checks the gates, verifies the approval and deploys with the use case's
``configs/deployment_config.json``. Nothing is overwritten without ``--force``; every file written (or
left alone) is printed.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated, Any

import typer

from llmops_tui import __version__
from llmops_tui.cli.common import JsonOpt, WorkspaceOpt, console, err_console, print_json
from llmops_tui.core.errors import LlmopsError

CI_CHOICES = ("github", "azure-pipelines")
# deploy --target for each block of deployment_config.json, in the order init prefers them.
DEPLOY_BLOCKS = (
    ("azure_managed_endpoint", "azureml"),
    ("kubernetes_endpoint", "kubernetes"),
    ("webapp_endpoint", "webapp"),
)
AZURE_TARGETS = {"azureml", "azureml-kubernetes", "webapp"}
GITIGNORE_LINE = ".llmops/"
_LOG_METRIC = re.compile(r"""log_metric\(\s*(?:key\s*=\s*)?["']([A-Za-z0-9_.\-]+)["']""")


@dataclass
class Plan:
    """What one use case brings to the generated files."""

    name: str
    rel_path: str  # the use case folder, relative to the repository root (posix)
    connections: list[tuple[str, str]] = field(default_factory=list)  # (name, key env var)
    undeclared: list[str] = field(default_factory=list)  # connections with no endpoint in the repo
    deploy_target: str | None = None
    environments: list[str] = field(default_factory=list)

    @property
    def sweep_env(self) -> str:
        """The environment CI sweeps by default: dev when the use case has it, else its first one."""
        if not self.environments or "dev" in self.environments:
            return "dev" if self.environments else ""
        return self.environments[0]


def register(app: typer.Typer) -> None:
    app.command("init")(init_cmd)


def init_cmd(
    workspace: WorkspaceOpt = Path("."),
    use_cases: Annotated[
        list[str] | None,
        typer.Option("--use-case", "-u", help="Use case to set up (repeatable; default: every one)."),
    ] = None,
    ci: Annotated[
        str | None, typer.Option("--ci", help="Also write a CI workflow: github | azure-pipelines.")
    ] = None,
    deploy_target: Annotated[
        str | None,
        typer.Option(
            "--deploy-target",
            help="deploy --target in CI (default: from each use case's deployment_config.json).",
        ),
    ] = None,
    sandbox_for_forks: Annotated[
        bool,
        typer.Option(
            "--sandbox-for-forks",
            help="CI: sweep pull requests from forks (which get no secrets) against the offline sandbox model.",
        ),
    ] = False,
    force: Annotated[bool, typer.Option("--force", help="Overwrite files that already exist.")] = False,
    json_out: JsonOpt = False,
) -> None:
    """Write llmops.yaml for each use case, add .llmops/ to .gitignore and (with --ci) a CI workflow."""
    from llmops_tui.core.workspace import load_workspace
    from llmops_tui.deploy.config import TARGETS

    if ci is not None and ci not in CI_CHOICES:
        raise LlmopsError(f"unknown CI '{ci}'", field="--ci", hint=f"use one of: {', '.join(CI_CHOICES)}")
    if deploy_target is not None and deploy_target not in TARGETS:
        raise LlmopsError(
            f"unknown target '{deploy_target}'",
            field="--deploy-target",
            hint=f"use one of: {', '.join(TARGETS)}",
        )
    root = Path(workspace).resolve()
    ws = load_workspace(root, inspect_datasets=False)
    if not ws.use_cases:
        raise LlmopsError(
            "no use cases found (looked for use_cases/*/experiment.yaml or llmops_config.json)",
            file=root,
            field="--workspace",
            hint="run llmops init at the root of a repository made from the LLMOps template",
        )
    chosen = [ws.get(n) for n in use_cases] if use_cases else list(ws.use_cases)
    broken = [uc for uc in chosen if not uc.ok]
    if broken:
        raise LlmopsError.from_problem(broken[0].problems[0])

    results: list[dict[str, str]] = []
    plans = []
    for uc in chosen:
        plans.append(_plan(uc, root, deploy_target))
        results.append(_write(uc.path / "llmops.yaml", llmops_yaml(uc), force, root))
    results.append(_gitignore(root))
    if ci == "github":
        text = github_workflow(plans, sandbox_for_forks=sandbox_for_forks)
        results.append(_write(root / ".github" / "workflows" / "llmops.yml", text, force, root))
    elif ci == "azure-pipelines":
        text = azure_pipeline(plans, sandbox_for_forks=sandbox_for_forks)
        results.append(_write(root / ".azure-pipelines" / "llmops.yml", text, force, root))
    notes = []
    for p in plans:
        for conn in p.undeclared:
            notes.append(
                f"{p.name}: connection '{conn}' has no endpoint in the repository (the older layout keeps it in "
                f'.env, which CI does not have): commit a .env line {conn}={{"api_base": "https://...", '
                f'"api_type": "azure"}} without the key (CI passes the key as a secret), or sweep in Azure ML '
                f"(llmops sweep --target azureml)"
            )
        if ci and p.deploy_target is None:
            notes.append(
                f"{p.name}: no configs/deployment_config.json block to deploy with: CI only evaluates it"
            )
    if json_out:
        print_json({"workspace": str(root), "files": results, "notes": notes})
        return
    for r in results:
        console.print(
            f"{r['action']:<9} {r['path']}" + (f"  ({r['why']})" if r.get("why") else ""), markup=False
        )
    for note in notes:
        err_console.print(f"note: {note}", markup=False, soft_wrap=True)
    if ci:
        secrets = sorted({env for p in plans for _, env in p.connections})
        console.print(
            "\nCI secrets to set: "
            + ", ".join(secrets)
            + (
                ", AZURE_CLIENT_ID, AZURE_TENANT_ID, AZURE_SUBSCRIPTION_ID"
                if ci == "github" and any(p.deploy_target in AZURE_TARGETS for p in plans)
                else ""
            ),
            markup=False,
        )
    console.print("Next: llmops list --strict, then llmops-tui", markup=False)


# ----------------------------------------------------------------------------------------- writing


def _write(path: Path, text: str, force: bool, root: Path) -> dict[str, str]:
    shown = _rel(path, root)
    if path.exists() and not force:
        return {"path": shown, "action": "kept", "why": "exists; --force to overwrite"}
    action = "replaced" if path.exists() else "wrote"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")
    return {"path": shown, "action": action, "why": ""}


def _gitignore(root: Path) -> dict[str, str]:
    path = root / ".gitignore"
    text = path.read_text(encoding="utf-8") if path.is_file() else ""
    lines = {line.strip() for line in text.splitlines()}
    if lines & {".llmops", ".llmops/", "/.llmops", "/.llmops/", "**/.llmops/"}:
        return {"path": ".gitignore", "action": "kept", "why": ".llmops/ is already ignored"}
    addition = (
        "" if not text or text.endswith("\n") else "\n"
    ) + "# llmops-tui run store and caches\n.llmops/\n"
    with path.open("a", encoding="utf-8") as fh:
        fh.write(addition)
    return {"path": ".gitignore", "action": "updated" if text else "wrote", "why": "added .llmops/"}


def _rel(path: Path, root: Path) -> str:
    try:
        return path.relative_to(root).as_posix()
    except ValueError:
        return str(path)


# ------------------------------------------------------------------------------------- llmops.yaml


def _evaluator_metrics(folder: Path | None) -> list[str]:
    """Metric names an evaluator logs with ``log_metric("name", ...)`` (read, never imported)."""
    if folder is None or not folder.is_dir():
        return []
    names: list[str] = []
    for py in sorted(folder.glob("*.py")):
        try:
            text = py.read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError):
            continue
        names += [m for m in _LOG_METRIC.findall(text) if m not in names]
    return names


def llmops_yaml(uc: Any) -> str:
    """The starting ``llmops.yaml`` of one use case, with comments saying what each part does."""
    flow = uc.standard_flow
    variants: dict[str, list[str]] = flow.variants if flow is not None else {}
    lines = [
        f"# llmops-tui settings for {uc.name}, written by `llmops init` (llmops-tui {__version__}).",
        "# The template's own tooling ignores this file. Reference: docs/workspace.md of llmops-tui;",
        "# `llmops list --strict` checks it.",
        "sweep:",
    ]
    if variants:
        lines.append("  # Node variants of the standard flow, all swept by default:")
        for node, ids in variants.items():
            lines.append(f"  #   {node}: {', '.join(ids)}")
    else:
        lines.append("  # The standard flow has no node variants: each sweep runs its one configuration.")
    lines.append("  variants: all            # all | one-at-a-time | defaults | [NODE.variant_id, ...]")
    temps = [
        n.name
        for n in (flow.nodes if flow is not None else [])
        if n.connection and isinstance(n.inputs, dict) and "temperature" in n.inputs
    ]
    if temps:
        lines.append("  grid:                    # hyperparameters, combined with the variants as a grid")
        for name in temps:
            lines.append(f"    {name}.temperature: [0.0, 0.7]")
    else:
        lines.append("  # grid:                  # hyperparameters of LLM nodes, combined with the variants")
        lines.append("  #   NODE.temperature: [0.0, 0.7]")
    lines += [
        "  repeat: 1                # runs of every cell (more gives tighter confidence intervals)",
        "  concurrency: 8           # lines in flight; mind your model's rate limits",
        "gates:",
        "  # Checked per cell by `llmops gate RUN_ID` (CI) and shown before an approval. Start loose and",
        "  # tighten once you have seen a few runs (`llmops compare RUN_ID`).",
        '  - {metric: error_rate, op: "<=", value: 0.05}',
    ]
    any_metric = False
    for ev in uc.evaluators:
        metrics = _evaluator_metrics(ev.flow.path if ev.flow is not None else None)
        for metric in metrics:
            lower = any(w in metric.lower() for w in ("error", "loss", "latency", "cost", "distance"))
            lines.append(f'  # - "{ev.name}.{metric} {"<= 0.2" if lower else ">= 0.8"}"')
            any_metric = True
    if not any_metric:
        name = uc.evaluators[0].name if uc.evaluators else "EVALUATOR"
        lines.append(f'  # - "{name}.METRIC >= 0.8"       # a metric your evaluation flow logs')
    lines += [
        '  # - "latency_p95_ms <= 5000"',
        "# prices:                   # USD per 1K tokens, by deployment or model name, for cost columns",
        "#   gpt-4o: {prompt: 0.0025, completion: 0.01}",
        "# rate_limits:              # per connection name",
        "#   aoai: {rpm: 600, tpm: 100000}",
        "",
    ]
    return "\n".join(lines)


# ------------------------------------------------------------------------------------------------ CI


def _plan(uc: Any, root: Path, deploy_target: str | None) -> Plan:
    from llmops_tui.core.workspace import Connection

    plan = Plan(name=uc.name, rel_path=_rel(uc.path, root), environments=list(uc.environments))
    declared = {c.name: c for c in uc.connections}
    used = [n.connection for n in (uc.standard_flow.nodes if uc.standard_flow else []) if n.connection]
    for ev in uc.evaluators:
        used += [n.connection for n in (ev.flow.nodes if ev.flow else []) if n.connection]
    for name in list(declared) + [n for n in dict.fromkeys(used) if n not in declared]:
        conn = declared.get(name) or Connection(name=name, connection_type="")
        plan.connections.append((name, conn.key_env_var))
        if conn.api_base is None:
            plan.undeclared.append(name)
    config = uc.path / "configs" / "deployment_config.json"
    if config.is_file():
        try:
            from llmops_tui.core.files import load_json

            data = load_json(config, root, allow_comments=True)
        except LlmopsError:
            data = {}
        blocks = data if isinstance(data, dict) else {}
        if deploy_target is not None:
            from llmops_tui.deploy.config import TARGET_BLOCKS

            plan.deploy_target = deploy_target if blocks.get(TARGET_BLOCKS.get(deploy_target, "")) else None
        else:
            plan.deploy_target = next((t for block, t in DEPLOY_BLOCKS if blocks.get(block)), None)
    return plan


def _header(kind: str, sandbox_for_forks: bool) -> list[str]:
    return [
        f"# Written by `llmops init --ci {kind}` (llmops-tui {__version__}); edit freely, it is yours now.",
        "# Every run installs the pinned llmops-tui tool (not this repository), then for each use case:",
        "# sweep with the repository's real connections (keys from secrets), publish the HTML report and",
        "# the exported run (open it with `llmops runs import FILE`), check the gates of llmops.yaml.",
        "# On main: verify the lead's signed approval and deploy that configuration, then test the endpoint.",
        (
            "# Pull requests from forks get no secrets: they sweep against the offline sandbox model, whose"
            "\n# metrics say nothing about quality (they show the flows still run)."
            if sandbox_for_forks
            else "# Pull requests from forks get no secrets, so their sweeps fail: see --sandbox-for-forks."
        ),
    ]


# The GitHub step that installs the pinned tool in a venv of its own (never the user's repository).
_GH_INSTALL_TOOL = [
    "      - name: Install the llmops-tui tool (pinned)",
    "        run: |",
    '          python -m venv "$RUNNER_TEMP/llmops-tui"',
    '          "$RUNNER_TEMP/llmops-tui/bin/pip" install --quiet "llmops-tui==$LLMOPS_TUI_VERSION"',
    '          echo "$RUNNER_TEMP/llmops-tui/bin" >> "$GITHUB_PATH"',
]


def github_workflow(plans: list[Plan], *, sandbox_for_forks: bool = False) -> str:
    evaluate = [{"use_case": p.name, "path": p.rel_path, "env": p.sweep_env} for p in plans]
    deploy = [
        {"use_case": p.name, "path": p.rel_path, "target": p.deploy_target} for p in plans if p.deploy_target
    ]
    key_env = sorted({env for p in plans for _, env in p.connections})
    lines = _header("github", sandbox_for_forks) + [
        "name: llmops",
        "",
        "on:",
        "  pull_request:",
        "  push:",
        "    branches: [main]",
        "  workflow_dispatch:",
        "    inputs:",
        "      environment:",
        "        description: Environment to sweep and deploy (ENV_NAME in configs/deployment_config.json)",
        "        required: false",
        "        type: string",
        "        default: dev",
        "",
        "permissions:",
        "  contents: read",
        "",
        "env:",
        f'  LLMOPS_TUI_VERSION: "{__version__}"',
        '  PYTHON_VERSION: "3.11"',
        "  LLMOPS_ENV: ${{ github.event.inputs.environment || 'dev' }}",
        "",
        "jobs:",
        "  evaluate:",
        "    runs-on: ubuntu-latest",
        "    strategy:",
        "      fail-fast: false",
        "      matrix:",
        f"        include: {json.dumps(evaluate)}",
        "    env:",
        "      USE_CASE: ${{ matrix.use_case }}",
        "      SWEEP_ENV: ${{ github.event.inputs.environment || matrix.env }}",
        "    steps:",
        "      - uses: actions/checkout@v4",
        "      - uses: actions/setup-python@v5",
        "        with:",
        "          python-version: ${{ env.PYTHON_VERSION }}",
        *_GH_INSTALL_TOOL,
        "      - name: Flow packages (the flows' requirements.txt, into the tool's environment)",
        '        run: llmops deps "$USE_CASE" --install',
        "      - name: Sweep",
        "        id: sweep",
        "        env:",
    ]
    for env in key_env:
        lines.append(f"          {env}: ${{{{ secrets.{env} }}}}")
    if sandbox_for_forks:
        lines.append(
            "          FROM_FORK: ${{ github.event_name == 'pull_request' && "
            "github.event.pull_request.head.repo.full_name != github.repository }}"
        )
    lines += [
        "        run: |",
        "          endpoint=()",
        "          env_opt=()",
        '          if [ -n "$SWEEP_ENV" ]; then env_opt=(--env "$SWEEP_ENV"); fi',
    ]
    if sandbox_for_forks:
        lines += [
            '          if [ "$FROM_FORK" = "true" ]; then',
            "            endpoint=(--llm-endpoint sandbox)",
            '            echo "::notice::pull request from a fork: no secrets, sweeping against the offline sandbox model"',
            "          fi",
        ]
    lines += [
        "          # A failed sweep still hands its run id on: the report and the exported run say why.",
        "          rc=0",
        '          llmops sweep "$USE_CASE" "${env_opt[@]}" "${endpoint[@]}" --json > sweep.json || rc=$?',
        '          run_id=$(python -c \'import json; print(json.load(open("sweep.json"))["run_id"])\' || true)',
        '          echo "run_id=$run_id" >> "$GITHUB_OUTPUT"',
        '          exit "$rc"',
        "      - name: Report and exported run",
        "        if: always() && steps.sweep.outputs.run_id != ''",
        "        env:",
        "          RUN_ID: ${{ steps.sweep.outputs.run_id }}",
        "        run: |",
        '          llmops report "$RUN_ID" --format html --out report.html',
        '          llmops report "$RUN_ID" --format markdown --out report.md',
        '          cat report.md >> "$GITHUB_STEP_SUMMARY"',
        '          llmops runs export "$RUN_ID" --out run.llmops-run.json.gz',
        "      - name: Quality gates",
        "        env:",
        "          RUN_ID: ${{ steps.sweep.outputs.run_id }}",
        '        run: llmops gate "$RUN_ID"',
        "      - uses: actions/upload-artifact@v4",
        "        if: always()",
        "        with:",
        "          name: sweep-${{ matrix.use_case }}",
        "          path: |",
        "            sweep.json",
        "            report.html",
        "            report.md",
        "            run.llmops-run.json.gz",
    ]
    if deploy:
        lines += [
            "",
            "  deploy:",
            "    needs: evaluate",
            "    if: github.event_name != 'pull_request'",
            "    runs-on: ubuntu-latest",
            "    environment: ${{ github.event.inputs.environment || 'dev' }}",
            "    permissions:",
            "      id-token: write   # OpenID Connect login to Azure: no stored Azure password",
            "      contents: read",
            "    strategy:",
            "      fail-fast: false",
            "      matrix:",
            f"        include: {json.dumps(deploy)}",
            "    env:",
            "      USE_CASE: ${{ matrix.use_case }}",
            "    steps:",
            "      - uses: actions/checkout@v4",
            "        with:",
            "          fetch-depth: 0   # verify-approval reads the approvals' git history (rollback protection)",
            "      - uses: actions/setup-python@v5",
            "        with:",
            "          python-version: ${{ env.PYTHON_VERSION }}",
            *_GH_INSTALL_TOOL,
            "      - name: Verify the approval (public keys in allowed_signers only)",
            "        # No approval secret: leads sign with their own SSH keys and CI checks the signatures",
            "        # against the committed allowed_signers. Still on shared-key approvals while moving? Add",
            "        # LLMOPS_APPROVAL_KEY to this step's and the deploy step's env until re-approved.",
            "        run: |",
            '          llmops approvers list "$USE_CASE"',
            '          llmops verify-approval "$USE_CASE" --env "$LLMOPS_ENV"',
            "      - uses: azure/login@v2",
            "        if: matrix.target != 'kubernetes'",
            "        with:",
            "          client-id: ${{ secrets.AZURE_CLIENT_ID }}",
            "          tenant-id: ${{ secrets.AZURE_TENANT_ID }}",
            "          subscription-id: ${{ secrets.AZURE_SUBSCRIPTION_ID }}",
            "      - name: Deploy the approved configuration (configs/deployment_config.json)",
            "        env:",
            "          DEPLOY_TARGET: ${{ matrix.target }}",
            "          SUBSCRIPTION_ID: ${{ secrets.AZURE_SUBSCRIPTION_ID }}",
            "          RESOURCE_GROUP_NAME: ${{ vars.RESOURCE_GROUP_NAME }}",
            "          WORKSPACE_NAME: ${{ vars.WORKSPACE_NAME }}",
            "        run: |",
            '          llmops deploy "$USE_CASE" --env "$LLMOPS_ENV" --target "$DEPLOY_TARGET" \\',
            "            --require-approval --out deploy-out --json > deploy.json",
            '          echo "ENDPOINT_URL=$(python -c \'import json; print(json.load(open("deploy.json")).get("endpoint_url") or "")\')" >> "$GITHUB_ENV"',
            "      - name: Endpoint test",
            "        if: env.ENDPOINT_URL != ''",
            "        env:",
            "          ENDPOINT_KEY: ${{ secrets.ENDPOINT_KEY }}",
            "          REQUEST: ${{ matrix.path }}/sample-request.json",
            "        run: |",
            '          llmops endpoint-test "$ENDPOINT_URL" --request "$REQUEST" --use-case "$USE_CASE" \\',
            '            --timeout 600 --header "Authorization: Bearer $ENDPOINT_KEY"',
            "      - uses: actions/upload-artifact@v4",
            "        if: always()",
            "        with:",
            "          name: deploy-${{ matrix.use_case }}",
            "          path: |",
            "            deploy.json",
            "            deploy-out/commands.sh",
        ]
    return "\n".join(lines) + "\n"


def azure_pipeline(plans: list[Plan], *, sandbox_for_forks: bool = False) -> str:
    key_env = sorted({env for p in plans for _, env in p.connections})
    install = [
        "    - task: UsePythonVersion@0",
        "      inputs:",
        "        versionSpec: $(PYTHON_VERSION)",
        "    - bash: |",
        '        python -m venv "$(Agent.TempDirectory)/llmops-tui"',
        '        "$(Agent.TempDirectory)/llmops-tui/bin/pip" install --quiet "llmops-tui==$(LLMOPS_TUI_VERSION)"',
        '        echo "##vso[task.prependpath]$(Agent.TempDirectory)/llmops-tui/bin"',
        "      displayName: Install the llmops-tui tool (pinned)",
    ]
    lines = _header("azure-pipelines", sandbox_for_forks) + [
        "# Secret pipeline variables are never visible to scripts on their own: each is mapped below.",
        "trigger:",
        "  branches:",
        "    include: [main]",
        "pr:",
        "  branches:",
        "    include: ['*']",
        "",
        "parameters:",
        "- name: environment",
        "  displayName: Environment to sweep and deploy (ENV_NAME in configs/deployment_config.json)",
        "  type: string",
        "  default: dev",
        "- name: azureServiceConnection",
        "  displayName: Azure Resource Manager service connection used to deploy",
        "  type: string",
        "  default: azure-llmops",
        "",
        "variables:",
        f"  LLMOPS_TUI_VERSION: '{__version__}'",
        "  PYTHON_VERSION: '3.11'",
        "  LLMOPS_ENV: ${{ parameters.environment }}",
        "",
        "stages:",
        "- stage: evaluate",
        "  jobs:",
        "  - job: sweep",
        "    pool:",
        "      vmImage: ubuntu-latest",
        "    strategy:",
        "      matrix:",
    ]
    for p in plans:
        lines += [
            f"        {p.name}:",
            f"          USE_CASE: {p.name}",
            f"          SWEEP_ENV: '{p.sweep_env}'",
        ]
    lines += ["    steps:", "    - checkout: self"] + install
    lines += [
        '    - bash: llmops deps "$(USE_CASE)" --install',
        "      displayName: Flow packages",
        "    - bash: |",
        "        set -euo pipefail",
        "        endpoint=()",
        "        env_opt=()",
        '        if [ -n "$(SWEEP_ENV)" ]; then env_opt=(--env "$(SWEEP_ENV)"); fi',
    ]
    if sandbox_for_forks:
        lines += [
            '        if [ "$(System.PullRequest.IsFork)" = "True" ]; then',
            "          endpoint=(--llm-endpoint sandbox)",
            '          echo "##[warning]pull request from a fork: no secrets, sweeping against the offline sandbox model"',
            "        fi",
        ]
    lines += [
        "        rc=0",
        '        llmops sweep "$(USE_CASE)" "${env_opt[@]}" "${endpoint[@]}" --json > sweep.json || rc=$?',
        '        run_id=$(python -c \'import json; print(json.load(open("sweep.json"))["run_id"])\' || true)',
        '        echo "##vso[task.setvariable variable=RUN_ID]$run_id"',
        '        exit "$rc"',
        "      name: sweep",
        "      displayName: Sweep",
        "      env:",
    ]
    for env in key_env:
        lines.append(f"        {env}: $({env})")
    lines += [
        "    - bash: |",
        '        llmops report "$(RUN_ID)" --format html --out "$(Build.ArtifactStagingDirectory)/report.html"',
        '        llmops report "$(RUN_ID)" --format junit --out "$(Build.ArtifactStagingDirectory)/junit.xml"',
        '        llmops runs export "$(RUN_ID)" --out "$(Build.ArtifactStagingDirectory)/run.llmops-run.json.gz"',
        '        cp sweep.json "$(Build.ArtifactStagingDirectory)/"',
        "      displayName: Report and exported run",
        "      condition: and(always(), ne(variables['RUN_ID'], ''))",
        "    - task: PublishTestResults@2",
        "      condition: and(always(), ne(variables['RUN_ID'], ''))",
        "      inputs:",
        "        testResultsFormat: JUnit",
        "        testResultsFiles: $(Build.ArtifactStagingDirectory)/junit.xml",
        "        testRunTitle: llmops $(USE_CASE)",
        '    - bash: llmops gate "$(RUN_ID)"',
        "      displayName: Quality gates",
        "    - publish: $(Build.ArtifactStagingDirectory)",
        "      artifact: sweep-$(USE_CASE)",
        "      condition: always()",
    ]
    deploy = [p for p in plans if p.deploy_target]
    if deploy:
        lines += [
            "",
            "- stage: deploy",
            "  dependsOn: evaluate",
            "  condition: and(succeeded(), ne(variables['Build.Reason'], 'PullRequest'))",
            "  jobs:",
        ]
        for p in deploy:
            job = re.sub(r"[^A-Za-z0-9_]", "_", p.name)
            lines += [
                f"  - deployment: deploy_{job}",
                f"    displayName: Deploy {p.name} ({p.deploy_target})",
                "    pool:",
                "      vmImage: ubuntu-latest",
                "    environment: ${{ parameters.environment }}",
                "    strategy:",
                "      runOnce:",
                "        deploy:",
                "          steps:",
                "          - checkout: self",
                "            fetchDepth: '0'   # verify-approval reads the approvals' git history",
            ]
            lines += ["          " + line[4:] for line in install]
            lines += [
                "          # No approval secret: CI verifies the leads' SSH signatures against allowed_signers",
                "          # (shared-key approvals while moving: map LLMOPS_APPROVAL_KEY into both steps' env).",
                f'          - bash: llmops verify-approval "{p.name}" --env "$(LLMOPS_ENV)"',
                "            displayName: Verify the approval (public keys in allowed_signers only)",
                "          - task: AzureCLI@2",
                "            displayName: Deploy the approved configuration",
                "            env:",
                "              ENDPOINT_KEY: $(ENDPOINT_KEY)",
                "            inputs:",
                "              azureSubscription: ${{ parameters.azureServiceConnection }}",
                "              scriptType: bash",
                "              scriptLocation: inlineScript",
                "              inlineScript: |",
                f'                llmops deploy "{p.name}" --env "$(LLMOPS_ENV)" --target {p.deploy_target} \\',
                "                  --require-approval --out deploy-out --json > deploy.json",
                '                url=$(python -c \'import json; print(json.load(open("deploy.json")).get("endpoint_url") or "")\')',
                '                if [ -n "$url" ]; then',
                f'                  llmops endpoint-test "$url" --request "{p.rel_path}/sample-request.json" \\',
                f'                    --use-case "{p.name}" --timeout 600 --header "Authorization: Bearer $ENDPOINT_KEY"',
                "                fi",
            ]
    return "\n".join(lines) + "\n"
