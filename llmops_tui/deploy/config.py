"""``configs/deployment_config.json``: where and how a use case is deployed, per environment.

The file keeps the LLMOps-with-Prompt-flow template's format: one list per target kind
(``azure_managed_endpoint``, ``kubernetes_endpoint``, ``webapp_endpoint``), each entry naming its
``ENV_NAME``. Our additions are optional and ignored by the template's tooling: a ``local_endpoint`` list,
and extra keys in entries (``IMAGE``, ``NAMESPACE``, ``GATEWAY_NAME``, ``SECRET_NAME``, ``KEY_VAULT_NAME``,
``MIRROR_TRAFFIC_PERCENT``). Traffic allocations may be strings (``"80"``, ``""``) as in the template.

Every problem is one :class:`LlmopsError` naming the file and the field (exit code 2).
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from llmops_tui.core.errors import LlmopsError
from llmops_tui.core.files import ConfigError, load_json, rel

CONFIG_REL = Path("configs") / "deployment_config.json"

# Target -> the list of deployment_config.json that configures it.
TARGET_BLOCKS = {
    "local": "local_endpoint",
    "kubernetes": "kubernetes_endpoint",
    "azureml": "azure_managed_endpoint",
    "azureml-kubernetes": "kubernetes_endpoint",
    "webapp": "webapp_endpoint",
}
TARGETS = tuple(TARGET_BLOCKS)


def _percent(value: Any) -> int | None:
    if value is None or (isinstance(value, str) and not value.strip()):
        return None
    if isinstance(value, bool):  # JSON true/false would otherwise pass as 1/0
        raise ValueError("must be a whole number from 0 to 100")
    try:
        number = float(value)
    except (TypeError, ValueError):
        raise ValueError("must be a whole number from 0 to 100") from None
    if number != int(number) or not 0 <= number <= 100:
        raise ValueError("must be a whole number from 0 to 100")
    return int(number)


class EndpointEntry(BaseModel):
    """One entry of a target list, for one environment. Unknown keys are kept (``extra``)."""

    model_config = ConfigDict(extra="allow")

    ENV_NAME: str
    TEST_FILE_PATH: str = "sample-request.json"
    ENDPOINT_NAME: str = ""
    ENDPOINT_DESC: str = ""
    DEPLOYMENT_DESC: str = ""
    CURRENT_DEPLOYMENT_NAME: str = ""
    CURRENT_DEPLOYMENT_TRAFFIC_ALLOCATION: int | None = None
    PRIOR_DEPLOYMENT_NAME: str = ""
    PRIOR_DEPLOYMENT_TRAFFIC_ALLOCATION: int | None = None
    DEPLOYMENT_VM_SIZE: str = ""
    DEPLOYMENT_INSTANCE_COUNT: int = Field(default=1, ge=1)
    COMPUTE_NAME: str = ""
    CPU_ALLOCATION: str = ""
    MEMORY_ALLOCATION: str = ""
    ENVIRONMENT_VARIABLES: dict[str, str] = Field(default_factory=dict)
    # webapp_endpoint (template)
    CONNECTION_NAMES: list[str] = Field(default_factory=list)
    REGISTRY_NAME: str = ""
    REGISTRY_RG_NAME: str = ""
    APP_PLAN_NAME: str = ""
    WEB_APP_NAME: str = ""
    WEB_APP_RG_NAME: str = ""
    WEB_APP_SKU: str = "B3"
    USER_MANAGED_ID: str = ""
    # our optional additions
    IMAGE: str = ""
    NAMESPACE: str = ""
    GATEWAY_NAME: str = "llmops-gateway"
    SECRET_NAME: str = ""
    KEY_VAULT_NAME: str = ""
    MIRROR_TRAFFIC_PERCENT: int | None = None

    @field_validator(
        "CURRENT_DEPLOYMENT_TRAFFIC_ALLOCATION",
        "PRIOR_DEPLOYMENT_TRAFFIC_ALLOCATION",
        "MIRROR_TRAFFIC_PERCENT",
        mode="before",
    )
    @classmethod
    def _percent(cls, value: Any) -> int | None:
        return _percent(value)

    @field_validator("ENVIRONMENT_VARIABLES", mode="before")
    @classmethod
    def _env(cls, value: Any) -> Any:
        if value is None or value == "":
            return {}
        if isinstance(value, dict):
            return {str(k): "" if v is None else str(v) for k, v in value.items()}
        return value

    @field_validator("CPU_ALLOCATION", "MEMORY_ALLOCATION", "DEPLOYMENT_VM_SIZE", mode="before")
    @classmethod
    def _text(cls, value: Any) -> Any:
        return "" if value is None else str(value)

    @model_validator(mode="after")
    def _traffic(self) -> EndpointEntry:
        current = self.current_traffic
        if self.PRIOR_DEPLOYMENT_NAME:
            prior = self.PRIOR_DEPLOYMENT_TRAFFIC_ALLOCATION
            if prior is not None and prior + current != 100:
                raise ValueError(
                    "CURRENT_DEPLOYMENT_TRAFFIC_ALLOCATION + PRIOR_DEPLOYMENT_TRAFFIC_ALLOCATION must be 100"
                )
            if self.PRIOR_DEPLOYMENT_NAME == self.CURRENT_DEPLOYMENT_NAME:
                raise ValueError("PRIOR_DEPLOYMENT_NAME must differ from CURRENT_DEPLOYMENT_NAME")
        elif current != 100:
            raise ValueError("CURRENT_DEPLOYMENT_TRAFFIC_ALLOCATION below 100 needs a PRIOR_DEPLOYMENT_NAME")
        return self

    @property
    def current_traffic(self) -> int:
        value = self.CURRENT_DEPLOYMENT_TRAFFIC_ALLOCATION
        return 100 if value is None else value

    @property
    def prior_traffic(self) -> int:
        return 100 - self.current_traffic if self.PRIOR_DEPLOYMENT_NAME else 0


def _field_of(block: str, index: int, loc: tuple[Any, ...], entries: list[Any]) -> str:
    env = entries[index].get("ENV_NAME") if isinstance(entries[index], dict) else None
    where = f"{block}[{index}]" if env is None else f"{block}[ENV_NAME={env}]"
    rest = ".".join(str(p) for p in loc)
    return f"{where}.{rest}" if rest else where


def load_deployment_config(path: Path, root: Path | None = None) -> dict[str, Any]:
    """The raw JSON (comments and trailing commas allowed, as in template files)."""
    if not Path(path).is_file():
        raise LlmopsError(
            "file not found",
            file=rel(path, root),
            field="",
            hint="add it (see docs/deploy/) or pick another --target",
        )
    try:
        data = load_json(path, root, allow_comments=True)
    except ConfigError as exc:
        raise LlmopsError.from_problem(exc.problem) from None
    if not isinstance(data, dict):
        raise LlmopsError("must be a JSON object with target lists", file=rel(path, root), field="")
    return data


def entry_for(
    path: Path, target: str, env: str, *, root: Path | None = None, required: bool = True
) -> EndpointEntry | None:
    """The validated entry of ``target``'s list for ``env``; None when not required and absent."""
    if target not in TARGET_BLOCKS:
        raise LlmopsError(
            f"unknown target '{target}'", field="--target", hint=f"use one of: {', '.join(TARGETS)}"
        )
    block = TARGET_BLOCKS[target]
    shown = rel(path, root)
    if not Path(path).is_file():
        if not required:
            return None
        load_deployment_config(path, root)  # raises "file not found"
    data = load_deployment_config(path, root)
    entries = data.get(block)
    if entries is None:
        if not required:
            return None
        raise LlmopsError(
            f"no '{block}' list", file=shown, field=block, hint=f"add one with an entry for ENV_NAME {env}"
        )
    if not isinstance(entries, list):
        raise LlmopsError("must be a list of entries", file=shown, field=block)
    for i, raw in enumerate(entries):
        if not isinstance(raw, dict):
            raise LlmopsError("must be an object", file=shown, field=f"{block}[{i}]")
        if "ENV_NAME" not in raw:
            raise LlmopsError("missing", file=shown, field=f"{block}[{i}].ENV_NAME")
    found = [i for i, raw in enumerate(entries) if str(raw.get("ENV_NAME")) == env]
    if not found:
        if not required:
            return None
        known = ", ".join(str(e.get("ENV_NAME")) for e in entries) or "none"
        raise LlmopsError(
            f"no entry for environment '{env}'",
            file=shown,
            field=f"{block}[].ENV_NAME",
            hint=f"known: {known}",
        )
    index = found[0]
    try:
        return EndpointEntry.model_validate(entries[index])
    except ValidationError as exc:
        err = exc.errors()[0]
        message = str(err["msg"]).removeprefix("Value error, ")
        raise LlmopsError(
            message, file=shown, field=_field_of(block, index, tuple(err["loc"]), entries)
        ) from None


def azureml_name(*parts: str) -> str:
    """A valid Azure ML endpoint or deployment name made of ``parts``: lower-case letters, digits and
    hyphens, starting with a letter, 3 to 32 characters, no trailing hyphen."""
    text = re.sub(r"[^a-z0-9]+", "-", "-".join(parts).lower()).strip("-")
    if not text or not text[0].isalpha():
        text = "ep-" + text
    text = text[:32].rstrip("-")
    return text if len(text) >= 3 else (text + "-ep")[:32]


def fill_default_names(entry: EndpointEntry, use_case: str, env: str, version: str) -> list[str]:
    """Empty endpoint and deployment names, as the template ships them, get names derived from the use
    case, the environment and the flow version; returns one note per name given. A name that is present
    is kept as written (and checked where it is used)."""
    notes = []
    if not entry.ENDPOINT_NAME.strip():
        entry.ENDPOINT_NAME = azureml_name(use_case, env)
        notes.append(f"ENDPOINT_NAME is empty in the deployment config: using '{entry.ENDPOINT_NAME}'")
    if not entry.CURRENT_DEPLOYMENT_NAME.strip():
        entry.CURRENT_DEPLOYMENT_NAME = azureml_name(env, version[:8])
        notes.append(
            f"CURRENT_DEPLOYMENT_NAME is empty in the deployment config: using '{entry.CURRENT_DEPLOYMENT_NAME}'"
        )
    return notes
