"""``worktree_copy``: the untracked files of a person's checkout that each task worktree gets a
copy of (``.env``, local configuration), and the secret-looking values they hold.

Only files git does not track qualify: a tracked one is in every worktree already, and copying
over it would hide the task's own version. A glob whose match lies outside the checkout
(through a symlinked directory) is refused too. Both refusals name the glob and the file.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

from shoemaker.errors import BadInput

MAX_SCANNED = 256 * 1024
"""A copied file larger than this is copied but not searched for secret values."""

_ASSIGNMENT = re.compile(
    r"""^\s*(?:export\s+)?["']?([A-Za-z_][\w.-]*)["']?\s*[=:]\s*(.*?)\s*,?\s*$"""
)
#: The password of a URL with credentials (postgres://user:PASSWORD@host/db).
_URL_PASSWORD = re.compile(r"[a-z][a-z0-9+.-]*://[^\s:/@]+:([^\s@/]+)@", re.IGNORECASE)


class CopyError(BadInput):
    """A ``worktree_copy`` glob matches a file that cannot be copied (tracked, or outside)."""


def copied_files(
    root: Path, globs: Sequence[str], skip: Sequence[str] = ()
) -> dict[str, tuple[Path, str]]:
    """Relative path → (file in ``root``, the glob that matched it) for every file the
    ``globs`` match (a matched directory stands for the files under it); ``skip``: top-level
    directories never looked in (shoemaker's own state). Git is not asked here (see
    :func:`refuse_tracked`)."""
    found: dict[str, tuple[Path, str]] = {}
    real_root = root.resolve()
    for glob in globs:
        for match in sorted(root.glob(glob)):
            rel = match.relative_to(root)
            if rel.parts[0] in (".git", *skip):
                continue
            if not match.parent.resolve().is_relative_to(real_root) or (
                match.is_dir() and not match.resolve().is_relative_to(real_root)
            ):
                raise CopyError(
                    f"configuration.yaml: worktree_copy: {glob!r} matches {rel}, which lies "
                    "outside the repository; narrow the glob"
                )
            files = sorted(p for p in match.rglob("*") if p.is_file()) if match.is_dir() else []
            for file in files or ([match] if match.is_file() else []):
                found.setdefault(file.relative_to(root).as_posix(), (file, glob))
    return found


def refuse_tracked(tracked: Sequence[str], found: dict[str, tuple[Path, str]]) -> None:
    """Raise when git tracks one of the ``found`` files (``tracked``: those git tracks)."""
    if tracked:
        first = tracked[0]
        glob = found[first][1] if first in found else "?"
        raise CopyError(
            f"configuration.yaml: worktree_copy: {glob!r} matches {first}, which git tracks "
            "(every worktree has it already); narrow the glob to untracked files"
        )


def secret_values(text: str, is_secret_name: Any, min_length: int) -> Iterator[tuple[str, str]]:
    """(value, name) of what looks secret in a copied file: the values of secret-named keys
    (``API_KEY=…``, ``"token": "…"``, ``password: …``), in env, YAML, TOML or JSON form, and
    the passwords of URLs with credentials."""
    try:
        data = json.loads(text)
    except ValueError:
        data = None
    if isinstance(data, dict):
        yield from _json_secrets(data, is_secret_name, min_length)
    for line in text.splitlines():
        match = _ASSIGNMENT.match(line)
        if match and is_secret_name(match.group(1).replace(".", "_").replace("-", "_")):
            value = match.group(2).strip().strip("'\"")
            if len(value) >= min_length:
                yield value, match.group(1)
        for url in _URL_PASSWORD.finditer(line):
            if len(url.group(1)) >= min_length:
                yield url.group(1), "URL password"


def _json_secrets(data: Any, is_secret_name: Any, min_length: int) -> Iterator[tuple[str, str]]:
    if isinstance(data, dict):
        for key, value in data.items():
            if isinstance(value, str):
                name = str(key).replace(".", "_").replace("-", "_")
                if is_secret_name(name) and len(value) >= min_length:
                    yield value, str(key)
            else:
                yield from _json_secrets(value, is_secret_name, min_length)
    elif isinstance(data, list):
        for item in data:
            yield from _json_secrets(item, is_secret_name, min_length)
