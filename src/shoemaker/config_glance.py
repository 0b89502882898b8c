"""The few settings a command that only reads the store needs, without the configuration's
models.

Building the pydantic models of the whole configuration was most of what ``shoemaker tasks``
spent before it read anything; it needs only where the store is, how long to wait for it and
which generation is meant. ``glance_config`` reads them from the same file under the same
limits (``config_raw``). When one of them is not a plain value of its type, the whole
configuration is loaded instead, so that the message is the one every command gives; the
other settings are checked by the commands that use them (``run``, ``doctor``, …).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any

from shoemaker.config_raw import CONFIG_FILE, read_settings


@dataclass(frozen=True)
class Glance:
    """The settings that find and open a project's store; the defaults are ``Config``'s."""

    state_dir: str = ".shoemaker"
    secrets_dir: str = ".secrets"
    store_wait_sec: float = 10.0
    generation_branch: str = ""


def glance_config(root: Path) -> Glance:
    """The store's settings from ``root``'s configuration (defaults when it has none)."""
    path = root / CONFIG_FILE
    if not path.exists():
        return Glance()
    raw = read_settings(path)
    found: dict[str, Any] = {}
    for field in fields(Glance):
        if field.name in raw:
            value = raw[field.name]
            if not _plain(field.name, value):
                return _from_config(root)
            found[field.name] = float(value) if field.name == "store_wait_sec" else value
    return Glance(**found)


def _plain(name: str, value: object) -> bool:
    if name == "store_wait_sec":
        return (
            isinstance(value, int | float)
            and not isinstance(value, bool)
            and math.isfinite(value)
            and value > 0
        )
    return isinstance(value, str)


def _from_config(root: Path) -> Glance:
    """The same settings through the whole configuration: its value, or its error."""
    from shoemaker.config import load_config

    config = load_config(root)
    return Glance(
        state_dir=config.state_dir,
        secrets_dir=config.secrets_dir,
        store_wait_sec=config.store_wait_sec,
        generation_branch=config.generation_branch,
    )
