"""`llmops deploy`, `llmops deployments`, `llmops undeploy`, `llmops endpoint-test`: thin commands over
llmops_tui.deploy. Output for people here (rich); ``--json`` prints one object for machines."""

from __future__ import annotations

import shlex
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from llmops_tui.cli.common import JsonOpt, WorkspaceOpt, console, print_json
from llmops_tui.core.errors import LlmopsError

if TYPE_CHECKING:
    from llmops_tui.core.workspace import UseCase


def _print_result(result: Any) -> None:
    from llmops_tui.deploy.kubernetes import manifest_yaml

    data = result.to_dict()
    head = "plan (dry run: nothing was changed)" if result.dry_run else "deployment"
    console.print(f"[bold]{head}[/bold]: {data['use_case']} env {data['env']} -> {data['target']}")
    console.print(f"  version        {data['version'][:12]} ({data['version']})")
    console.print(f"  configuration  {data['configuration']['source']}", markup=False)
    variants = data["configuration"]["variants"]
    params = data["configuration"]["params"]
    if variants or params:
        shown = ", ".join([f"{k}.{v}" for k, v in variants.items()] + [f"{k}={v}" for k, v in params.items()])
        console.print(f"                 {shown}")
    console.print()
    for i, step in enumerate(result.steps, 1):
        mark = "done" if step.done else ("skipped" if step.skipped else ("plan" if result.dry_run else "-"))
        console.print(f"{i:>2}. [{mark}] {step.action}: {step.summary}", markup=False)
        if step.command:
            console.print(f"      $ {shlex.join(step.command)}", markup=False, soft_wrap=True)
        if step.skipped:
            console.print(f"      ({step.skipped})", markup=False)
        if result.dry_run and step.obj is not None:
            text = step.obj if isinstance(step.obj, str) else manifest_yaml(step.obj)
            for line in text.rstrip().splitlines():
                console.print(f"      | {line}", markup=False, soft_wrap=True)
    console.print()
    if data["endpoint_url"]:
        console.print(f"endpoint: {data['endpoint_url']}", markup=False)
    if data["test"]:
        test = data["test"]
        verdict = "passed" if test["ok"] else f"FAILED: {test['error']}"
        console.print(f"endpoint test {verdict}", markup=False)
    for note in data["notes"]:
        console.print(f"note: {note}", markup=False)
    console.print(
        f"{len(data['artifacts'])} file(s){' would be' if result.dry_run else ''} written", markup=False
    )


def register(app: typer.Typer) -> None:
    """Add the deploy commands to the CLI."""

    @app.command("deploy")
    def deploy_cmd(
        use_case: Annotated[str, typer.Argument(help="Use case name.")],
        env: Annotated[
            str, typer.Option("--env", "-e", help="Environment (ENV_NAME in deployment_config.json).")
        ],
        target: Annotated[
            str,
            typer.Option("--target", "-t", help="local | kubernetes | azureml | azureml-kubernetes | webapp"),
        ] = "local",
        require_approval: Annotated[
            bool,
            typer.Option(
                "--require-approval", help="Deploy only a verified approval for --env (fail closed)."
            ),
        ] = False,
        dry_run: Annotated[
            bool, typer.Option("--dry-run", help="Print every object and command; change nothing.")
        ] = False,
        out: Annotated[
            Path | None, typer.Option("--out", help="Folder for the bundle, manifests and commands.")
        ] = None,
        llm_endpoint: Annotated[
            str | None,
            typer.Option("--llm-endpoint", help="local only: route LLM calls to URL, or 'sandbox'."),
        ] = None,
        variants: Annotated[
            str | None,
            typer.Option(
                "--variants",
                help="NODE.variant_id,... or, for a flex flow, init.SET (a named init set of llmops.yaml); "
                "without --require-approval.",
            ),
        ] = None,
        image: Annotated[
            str | None, typer.Option("--image", help="kubernetes: container image to run.")
        ] = None,
        traffic: Annotated[
            int | None,
            typer.Option("--traffic", help="local: % of traffic for this version (A/B with the prior)."),
        ] = None,
        prior: Annotated[
            str | None, typer.Option("--prior", help="local: version of the prior deployment.")
        ] = None,
        port: Annotated[
            int | None, typer.Option("--port", help="local: port to serve on (default: a free one).")
        ] = None,
        mirror: Annotated[
            int | None, typer.Option("--mirror", help="azureml: % of live traffic to mirror first.")
        ] = None,
        timeout: Annotated[float, typer.Option("--timeout", help="Seconds to wait for readiness.")] = 60.0,
        capture: Annotated[
            bool,
            typer.Option("--capture", help="Record requests and answers per arm (see docs/ab-testing.md)."),
        ] = False,
        workspace: WorkspaceOpt = Path("."),
        as_json: JsonOpt = False,
    ) -> None:
        """Deploy a use case's approved (or chosen) configuration to a target and test the endpoint."""
        from llmops_tui.deploy.api import DeployOptions, deploy

        opts = DeployOptions(
            use_case=use_case,
            env=env,
            target=target,
            require_approval=require_approval,
            dry_run=dry_run,
            out=out,
            llm_endpoint=llm_endpoint,
            variants=variants,
            image=image,
            traffic=traffic,
            prior=prior,
            port=port,
            mirror=mirror,
            timeout=timeout,
            capture=capture,
        )
        result = deploy(workspace, opts)
        if as_json:
            print_json(result.to_dict())
        else:
            _print_result(result)
        if not result.ok:
            raise typer.Exit(1)

    @app.command("deploy-migrated")
    def deploy_migrated_cmd(
        folder: Annotated[
            Path, typer.Argument(help="A folder written by llmops migrate (its standard/ is served).")
        ],
        target: Annotated[
            str, typer.Option("--target", "-t", help="local | container | kubernetes | azureml | webapp")
        ] = "local",
        env: Annotated[
            str | None,
            typer.Option(
                "--env",
                "-e",
                help="kubernetes, azureml, webapp: ENV_NAME in the deployment config; with"
                " --require-approval (any target): whose approval to match.",
            ),
        ] = None,
        use_case: Annotated[
            str | None,
            typer.Option(
                "--use-case",
                help="Whose deploy settings to use (default: the one flow.py was migrated from).",
            ),
        ] = None,
        require_approval: Annotated[
            bool,
            typer.Option(
                "--require-approval",
                help="Deploy only code migrated from the configuration approved for --env, unedited"
                " (fail closed).",
            ),
        ] = False,
        allow_edited: Annotated[
            bool,
            typer.Option(
                "--allow-edited",
                help="With --require-approval: deploy migrated files edited since migrate (an override"
                " named in the plan).",
            ),
        ] = False,
        dry_run: Annotated[
            bool, typer.Option("--dry-run", help="Print every file, object and command; change nothing.")
        ] = False,
        image: Annotated[
            str | None, typer.Option("--image", help="kubernetes: container image to run.")
        ] = None,
        out: Annotated[
            Path | None, typer.Option("--out", help="Deployment folder (default: under .llmops).")
        ] = None,
        llm_endpoint: Annotated[
            str | None,
            typer.Option("--llm-endpoint", help="local only: route LLM calls to URL, or 'sandbox'."),
        ] = None,
        port: Annotated[
            int | None, typer.Option("--port", help="local: port to serve on (default: a free one).")
        ] = None,
        request: Annotated[
            Path | None,
            typer.Option(
                "--request", "-r", help="JSON request for the endpoint test (default: sample-request.json)."
            ),
        ] = None,
        timeout: Annotated[float, typer.Option("--timeout", help="Seconds to wait for readiness.")] = 60.0,
        workspace: WorkspaceOpt = Path("."),
        as_json: JsonOpt = False,
    ) -> None:
        """Serve a flow migrated to Agent Framework with the /score contract of our Prompt flow deployments
        (local: started on 127.0.0.1 and tested; container: a Docker build context; kubernetes, azureml,
        webapp: as llmops deploy, with --env). Stop a local one with `llmops undeploy NAME --env migrated`.

        --require-approval --env ENV deploys nothing unless the code was migrated from the configuration
        approved for ENV, its Prompt flow source is unchanged since approval and no migrated file was edited
        (see llmops-migration.json, written by llmops migrate)."""
        from llmops_tui.deploy.migrated import deploy_migrated

        result = deploy_migrated(
            Path(workspace),
            folder,
            target=target,
            out=out,
            llm_endpoint=llm_endpoint,
            port=port,
            timeout=timeout,
            request=request,
            env=env,
            use_case=use_case,
            dry_run=dry_run,
            image=image,
            require_approval=require_approval,
            allow_edited=allow_edited,
        )
        if as_json:
            print_json(result.to_dict())
        else:
            _print_result(result)
        if not result.ok:
            raise typer.Exit(1)

    @app.command("deployments")
    def deployments_cmd(workspace: WorkspaceOpt = Path("."), as_json: JsonOpt = False) -> None:
        """List local deployments (and A/B routers) of the workspace."""
        from llmops_tui.deploy import registry

        items = registry.load(Path(workspace).resolve())
        if as_json:
            print_json({"deployments": [{k: v for k, v in d.items() if k != "marker"} for d in items]})
            return
        if not items:
            console.print("no local deployments")
            return
        from rich.table import Table

        table = Table(show_edge=False)
        for col in ("use case", "env", "kind", "version", "url", "pid", "state"):
            table.add_column(col)
        for d in items:
            version = str(d.get("version", ""))
            table.add_row(
                str(d.get("use_case")),
                str(d.get("env")),
                str(d.get("kind")),
                version[:12] if d.get("kind") == "flow" else version,
                str(d.get("url")),
                str(d.get("pid")),
                "running" if d.get("alive") else "stopped",
            )
        console.print(table)

    @app.command("undeploy")
    def undeploy_cmd(
        use_case: Annotated[str, typer.Argument(help="Use case name.")],
        version: Annotated[str | None, typer.Option("--version", help="Version (prefix) to stop.")] = None,
        all_versions: Annotated[
            bool, typer.Option("--all", help="Stop every local version and router.")
        ] = False,
        env: Annotated[str | None, typer.Option("--env", "-e", help="Only this environment.")] = None,
        workspace: WorkspaceOpt = Path("."),
        as_json: JsonOpt = False,
    ) -> None:
        """Stop local deployments of a use case."""
        from llmops_tui.deploy.local import undeploy

        if version and all_versions:
            raise LlmopsError("use --version or --all, not both", field="--all")
        stopped = undeploy(
            Path(workspace).resolve(), use_case, env=env, version=version, all_versions=all_versions
        )
        if as_json:
            print_json({"stopped": stopped})
            return
        if not stopped:
            console.print(f"no local deployment of {use_case} to stop", markup=False)
        for d in stopped:
            console.print(
                f"stopped {d.get('kind')} {str(d.get('version'))[:40]} at {d.get('url')} (pid {d.get('pid')})",
                markup=False,
            )

    @app.command("endpoint-test")
    def endpoint_test_cmd(
        url: Annotated[str, typer.Argument(help="Endpoint URL (/score is appended when it has no path).")],
        request: Annotated[
            Path | None,
            typer.Option(
                "--request",
                "-r",
                help="JSON request body file (default: the --use-case's sample-request.json, else"
                " ./sample-request.json).",
            ),
        ] = None,
        expect_keys: Annotated[
            str | None,
            typer.Option("--expect-keys", help="Comma-separated output keys the response must have."),
        ] = None,
        timeout: Annotated[
            float, typer.Option("--timeout", help="Seconds to keep retrying until ready.")
        ] = 60.0,
        use_case: Annotated[
            str | None,
            typer.Option(
                "--use-case",
                help="Default request (its sample-request.json) and --expect-keys (its flow outputs).",
            ),
        ] = None,
        header: Annotated[
            list[str] | None,
            typer.Option("--header", "-H", help="Extra header 'Name: value' (e.g. authorization)."),
        ] = None,
        workspace: WorkspaceOpt = Path("."),
        as_json: JsonOpt = False,
    ) -> None:
        """POST a request to an endpoint until it is ready; assert 200 and the output keys (exit 1 if not)."""
        from llmops_tui.deploy.endpoint_test import check_url, load_request, request_file, run_endpoint_test

        check_url(url)
        uc = _use_case(Path(workspace), use_case)
        request = request_file(request, uc.path if uc is not None else None)
        body = load_request(request)
        keys = (
            [k.strip() for k in expect_keys.split(",") if k.strip()]
            if expect_keys
            else _default_keys(Path(workspace), uc, request)
        )
        headers = {}
        for item in header or []:
            name, sep, value = item.partition(":")
            if not sep:
                raise LlmopsError(f"--header '{item}' is not 'Name: value'", field="--header")
            headers[name.strip()] = value.strip()
        result = run_endpoint_test(url, body, expect_keys=keys, timeout=timeout, headers=headers)
        if as_json:
            print_json(result.to_dict())
        else:
            console.print(result.summary(), markup=False)
        if not result.ok:
            raise typer.Exit(1)


def _use_case(workspace: Path, use_case: str | None) -> UseCase | None:
    """The use case named by ``--use-case`` (an unknown name is an error), None without one."""
    if not use_case:
        return None
    from llmops_tui.core.workspace import load_workspace

    return load_workspace(workspace, inspect_datasets=False).get(use_case)


def _default_keys(workspace: Path, uc: UseCase | None, request: Path) -> list[str]:
    """The standard flow's outputs of ``uc``, or of the use case whose folder holds ``request``."""
    from llmops_tui.core.workspace import load_workspace

    if uc is None:
        try:
            ws = load_workspace(workspace, inspect_datasets=False)
        except LlmopsError:
            return []
        req = request.resolve()
        uc = next((u for u in ws.use_cases if req.is_relative_to(u.path)), None)
        if uc is None and len(ws.use_cases) == 1:
            uc = ws.use_cases[0]
    if uc is None or uc.standard_flow is None:
        return []
    return uc.standard_flow.response_keys
