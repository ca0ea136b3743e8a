"""App settings: a small JSON file in the user's config folder, overridden by environment variables.

Validated with pydantic at the edge. The workspace path and model endpoint come from the command line;
settings only hold preferences (theme, default endpoint, sandbox latency).
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError

APP_NAME = "llmops-tui"
SETTINGS_FILE = "settings.json"
ENV_PREFIX = "LLMOPS_TUI_"


class AppSettings(BaseModel):
    """Preferences of the app. Unknown keys in the file are ignored so older apps read newer files."""

    model_config = ConfigDict(extra="ignore")
    theme: str = Field(default="textual-dark", description="textual-dark, textual-light or any Textual theme")
    llm_endpoint: str | None = Field(default=None, description="default model endpoint: sandbox or a URL")
    sandbox_latency_ms: float = Field(default=0.0, ge=0)
    limit: int | None = Field(default=None, ge=1, description="default 'first N lines' for quick sweeps")
    variants_mode: Literal["all", "one-at-a-time", "defaults", "picked"] = "all"
    signing_key: str | None = Field(
        default=None, description="your SSH key for approvals: a private key file, or a .pub with ssh-agent"
    )


def config_dir() -> Path:
    """Where settings live: ``$LLMOPS_TUI_CONFIG_DIR`` or the platform's user config folder."""
    override = os.environ.get(ENV_PREFIX + "CONFIG_DIR")
    if override:
        return Path(override)
    from platformdirs import user_config_path

    return user_config_path(APP_NAME, appauthor=False)


def log_dir() -> Path:
    """Where the app writes the traceback of an unexpected error (never secrets)."""
    override = os.environ.get(ENV_PREFIX + "CONFIG_DIR")
    if override:
        return Path(override) / "logs"
    from platformdirs import user_log_path

    return user_log_path(APP_NAME, appauthor=False)


def load_settings(path: Path | None = None) -> tuple[AppSettings, str | None]:
    """Read settings; returns (settings, warning). A broken file gives defaults and a one-line warning."""
    path = path or config_dir() / SETTINGS_FILE
    data: dict = {}
    warning = None
    if path.is_file():
        try:
            data = json.loads(path.read_text(encoding="utf-8")) or {}
            if not isinstance(data, dict):
                raise ValueError("must be a JSON object")
        except (OSError, ValueError) as exc:
            warning = f"{path}: {exc} (using default settings)"
            data = {}
    for field_name in AppSettings.model_fields:
        value = os.environ.get(ENV_PREFIX + field_name.upper())
        if value is not None:
            data[field_name] = value or None
    try:
        return AppSettings.model_validate(data), warning
    except ValidationError as exc:
        err = exc.errors()[0]
        loc = ".".join(str(p) for p in err["loc"])
        return AppSettings(), f"{path}: {loc}: {err['msg']} (using default settings)"


def save_settings(settings: AppSettings, path: Path | None = None) -> None:
    path = path or config_dir() / SETTINGS_FILE
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(settings.model_dump(mode="json"), indent=2) + "\n", encoding="utf-8")
    except OSError:
        pass  # preferences are a convenience: an unwritable config folder must not stop the app
