"""Reading ``configuration.yaml`` into a mapping: the limits a file must keep, and one line
naming the file and the fix for anything that cannot be a configuration.

Validating the mapping against the configuration's models is ``shoemaker.config.file``'s job.
This module stays outside the ``config`` package and imports no pydantic, so that
``config_glance`` can read a few settings without building the models."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

from shoemaker.errors import BadInput, clip

CONFIG_FILE = "configuration.yaml"


class ConfigError(BadInput):
    """A configuration file that cannot be used. The message names the file, field and fix."""


MAX_CONFIG_BYTES = 1_000_000
"""A configuration is a page of settings; a bigger file is refused before it is parsed."""


MAX_CONFIG_VALUES = 100_000
"""Values (after YAML aliases are expanded) a configuration may hold; more is refused."""


_FIX = "fix it, or write a fresh one with `shoemaker init --force`"


def read_settings(path: Path) -> dict[str, Any]:
    """The mapping in a configuration file, refusing with one line what cannot be a
    configuration: not a file, too big, not UTF-8, not YAML, nested or aliased beyond reason."""
    try:
        if not path.is_file():
            raise ConfigError(f"{path}: is not a regular file; move it away and {_FIX}")
        size = path.stat().st_size
        if size > MAX_CONFIG_BYTES:
            raise ConfigError(
                f"{path}: {size:,} bytes, more than a configuration may hold "
                f"({MAX_CONFIG_BYTES:,}); {_FIX}"
            )
        data = path.read_bytes()[: MAX_CONFIG_BYTES + 1]
    except OSError as exc:
        raise ConfigError(
            f"{path}: cannot be read ({exc.strerror}); check its permissions"
        ) from None
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = data.count(b"\n", 0, exc.start) + 1
        raise ConfigError(
            f"{path}: line {line}: byte 0x{data[exc.start]:02x} is not UTF-8; "
            "save the file as UTF-8"
        ) from None
    try:
        raw = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" line {mark.line + 1}" if mark is not None else ""
        problem = getattr(exc, "problem", None) or str(exc)
        raise ConfigError(f"{path}:{where} is not valid YAML ({clip(problem)}); {_FIX}") from None
    except RecursionError:
        raise ConfigError(f"{path}: nested too deeply to be a configuration; {_FIX}") from None
    if raw is None:
        raw = {}
    if not isinstance(raw, dict):
        raise ConfigError(
            f"{path}: expected a mapping of settings at the top, got {type(raw).__name__}"
        )
    if _too_many_values(raw, MAX_CONFIG_VALUES):
        raise ConfigError(
            f"{path}: holds more than {MAX_CONFIG_VALUES:,} values once its YAML aliases are "
            f"expanded; write the settings out without aliases"
        )
    return raw


def _too_many_values(data: Any, limit: int) -> bool:
    """Whether ``data`` holds more than ``limit`` values, counted without recursion and
    stopping at the limit: an alias bomb expands to billions, a self-reference forever."""
    count = 0
    stack = [data]
    while stack:
        node = stack.pop()
        count += 1
        if count > limit:
            return True
        if isinstance(node, dict):
            stack.extend(node.keys())
            stack.extend(node.values())
        elif isinstance(node, list):
            stack.extend(node)
    return False
