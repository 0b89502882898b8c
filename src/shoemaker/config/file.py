"""Loading ``configuration.yaml`` as the configuration's models: one line naming the file,
field and fix for any setting that cannot be. Reading the file, and the limits it must keep,
is ``shoemaker.config_raw``."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml
from pydantic import ValidationError

from shoemaker.config.models import Config
from shoemaker.config_raw import CONFIG_FILE as CONFIG_FILE
from shoemaker.config_raw import MAX_CONFIG_BYTES as MAX_CONFIG_BYTES
from shoemaker.config_raw import MAX_CONFIG_VALUES as MAX_CONFIG_VALUES
from shoemaker.config_raw import ConfigError as ConfigError
from shoemaker.config_raw import read_settings as read_settings
from shoemaker.errors import clip, echo


def load_config(repo: Path) -> Config:
    """Read ``configuration.yaml`` from ``repo`` (defaults when the file does not exist)."""
    path = repo / CONFIG_FILE
    if not path.exists():
        return Config()
    return _validated(path, read_settings(path))


def _validated(path: Path, raw: dict[str, Any]) -> Config:
    try:
        return Config.model_validate(raw)
    except ValidationError as exc:
        raise ConfigError(_explain(path, exc, raw)) from None


def _field_name(loc: tuple[int | str, ...], raw: dict[str, Any]) -> str:
    """The dotted field name of ``loc``; a schedule is named by its name, not its index."""
    parts = [str(p) for p in loc]
    if len(loc) >= 2 and loc[0] == "schedules" and isinstance(loc[1], int):
        schedules = raw.get("schedules")
        entry = schedules[loc[1]] if isinstance(schedules, list) else None
        name = entry.get("name") if isinstance(entry, dict) else None
        label = clip(name, 40) if isinstance(name, str) and name else str(loc[1])
        parts = [f"schedules[{label}]", *parts[2:]]
    return ".".join(parts) or "(top level)"


def _explain(path: Path, exc: ValidationError, raw: dict[str, Any] | None = None) -> str:
    """One line naming the file, each bad field and what to do about it (echoed values are
    clipped: a value may be a YAML alias bomb)."""
    problems = []
    for err in exc.errors(include_url=False, include_context=False):
        field = _field_name(err["loc"], raw or {})
        if err["type"] == "named":
            # The message names its own field (a duplicate schedule name, say).
            problems.append(err["msg"])
            continue
        if err["type"] == "extra_forbidden":
            fix = "unknown setting; check the spelling against `shoemaker init --print`"
        elif err["type"] == "missing":
            fix = "required; add it"
        else:
            msg = clip(err["msg"].removeprefix("Value error, "))
            fix = f"{msg} (got {echo(err.get('input'))})"
        problems.append(f"{field}: {fix}")
    shown = "; ".join(problems[:5]) + (
        f"; and {len(problems) - 5} more" if len(problems) > 5 else ""
    )
    return f"{path}: invalid configuration: {shown}"


def save_config(repo: Path, data: dict[str, Any]) -> Path:
    """Validate ``data`` and write it as the repository's configuration (used by the demo)."""
    Config.model_validate(data)
    path = repo / CONFIG_FILE
    path.write_text(yaml.safe_dump(data, sort_keys=False), encoding="utf-8")
    return path
