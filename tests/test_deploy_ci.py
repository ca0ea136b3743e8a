"""The CI templates are valid YAML and call only commands the headless CLI has."""

from __future__ import annotations

import re

import pytest
import yaml
from test_deploy_support import REPO

from llmops_tui.cli.registry import command_names

TEMPLATES = [REPO / ".github" / "workflows" / "llmops.yml", REPO / ".azure-pipelines" / "llmops.yml"]


@pytest.mark.parametrize("path", TEMPLATES, ids=lambda p: p.parent.name)
def test_ci_template_uses_existing_commands(path):
    text = path.read_text()
    yaml.safe_load(text)
    used = set(re.findall(r"\bllmops ([a-z][a-z-]+)", text))
    assert {"sweep", "gate", "verify-approval", "deploy", "endpoint-test"} <= used
    known = set(command_names())  # tests/test_cli_startup.py checks that the registry and the modules agree
    assert used <= known, used - known
    assert "--require-approval" in text and "make " not in text
