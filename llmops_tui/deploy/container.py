"""The container build context shared by the web app, Kubernetes and Azure ML targets.

The deploy folder itself is the build context: the bundle (flow/, connections/, serve_flow.py,
requirements.txt) plus a Dockerfile and a .dockerignore. The image serves the flow on port 8080 with the
same entry as local deployments; connection keys come from the container's environment at start-up
(Kubernetes Secret, Key Vault reference, ...), never from the image.

A migrated flow's bundle (``bundle.kind == "migrated"``: the flow written by ``llmops migrate --to
agent-framework`` beside ``serve_migrated.py``) gets the same image shape (port, ``/health``, non-root
user, no secrets) with its own entry: ``serve_migrated.py`` needs no Prompt flow and no connections/.

Offline builds: run ``pip download -r requirements.txt -d wheels`` once where there is a network, then
``docker build --build-arg PIP_ARGS="--no-index --find-links /app/wheels" .``.
"""

from __future__ import annotations

from llmops_tui.deploy.prepare import HEALTH_ROUTE, SERVING_PORT, Bundle

BASE_IMAGE = "python:3.11-slim"


def dockerfile(bundle: Bundle, use_case: str, *, base_image: str = BASE_IMAGE) -> str:
    sample = "COPY sample-request.json ./\n" if bundle.sample_request else ""
    if bundle.migrated:
        names = [n for ref in bundle.connections for n in (ref.base_env_var, ref.key_env_var)]
        keys = ", ".join([*names, *sorted(bundle.plain_env)]) or "none"
        head = (
            f"# Written by `llmops deploy-migrated`: serves {use_case} (migrated to Agent Framework), "
            f"version {bundle.short_version}.\n# No secrets inside: connection endpoints and keys come from the "
            f"environment when the container starts\n# ({keys})."
        )
        env = ""
        copy = "COPY flow/ ./flow/\nCOPY serve_migrated.py ./\n"
        cmd = f'["python", "serve_migrated.py", "--flow", "flow", "--host", "0.0.0.0", "--port", "{SERVING_PORT}"]'
    else:
        head = (
            f"# Written by `llmops deploy`: serves use case {use_case}, flow version {bundle.version}.\n"
            "# No secrets inside: connection keys are read from the environment when the container starts."
        )
        env = """    PF_DISABLE_TELEMETRY=true \\
    PROMPTFLOW_DISABLE_TELEMETRY=true \\
    PF_TRACING_SKIP_LOCAL_SETUP=true \\
    PF_DISABLE_TRACING=true \\
    APPLICATIONINSIGHTS_CONTROLPLANE_DISABLED=true \\
    APPLICATIONINSIGHTS_STATSBEAT_DISABLED_ALL=true \\
"""
        copy = (
            "COPY flow/ ./flow/\nCOPY connections/ ./connections/\nCOPY serve_flow.py llmops_capture.py ./\n"
        )
        cmd = (
            '["python", "serve_flow.py", "--flow", "flow", "--connections", "connections", '
            f'"--host", "0.0.0.0", "--port", "{SERVING_PORT}"]'
        )
    return f"""{head}
ARG BASE_IMAGE={base_image}
FROM ${{BASE_IMAGE}}
ARG PIP_ARGS=""
ENV PYTHONDONTWRITEBYTECODE=1 \\
    PYTHONUNBUFFERED=1 \\
{env}    LLMOPS_FLOW_VERSION={bundle.version}
WORKDIR /app
COPY requirements.txt ./
COPY wheels/ ./wheels/
RUN pip install --no-cache-dir $PIP_ARGS -r requirements.txt && rm -rf ./wheels
{copy}{sample}RUN useradd --create-home --uid 10001 flow && chown -R flow /app
USER 10001
EXPOSE {SERVING_PORT}
HEALTHCHECK --interval=15s --timeout=3s --start-period=20s CMD python -c "import urllib.request,sys; sys.exit(0 if urllib.request.urlopen('http://127.0.0.1:{SERVING_PORT}{HEALTH_ROUTE}').status == 200 else 1)"
CMD {cmd}
"""


DOCKERIGNORE = """# Written by `llmops deploy`
k8s/
azureml/
logs/
commands.sh
llmops-deployment.json
**/.promptflow/
**/__pycache__/
**/.venv/
.env
*.env
"""


def build_context_files(bundle: Bundle, use_case: str, *, base_image: str = BASE_IMAGE) -> dict[str, str]:
    """Relative path -> text of the files a bundle needs to become a build context."""
    return {
        "Dockerfile": dockerfile(bundle, use_case, base_image=base_image),
        ".dockerignore": DOCKERIGNORE,
        "wheels/README.txt": "Optional: wheels for offline image builds (pip download -r requirements.txt -d wheels).\n",
    }
