"""Secrets: where they come from, and how their values are kept out of everything stored or
shown.

The values are those of the credential files in ``secrets_dir`` (a JSON file contributes each
string in it) and of environment variables whose names say they are secret (a part ``KEY``,
``TOKEN``, ``SECRET``, ``PASSWORD`` or ``CREDENTIALS``, not ending in ``_FILE``, ``_PATH``,
``_SOCK``, ``_DIR`` or ``_URL``) in the agent's configured environment (``agent.env``, and
``-e NAME=VALUE`` in ``podman_args``) and in shoemaker's own. A :class:`Redactor` replaces
every occurrence with ``[redacted NAME]`` in events (before they are stored or delivered),
transcripts, prompts, run records, gate output and history files, in plain text and as JSON
escapes it. With ``agent.kind`` codex or gemini, the files their own logins keep are read too
(codex's ``auth.json``; gemini's ``oauth_creds.json`` and ``.env``), and so are the files
``worktree_copy`` copies into worktrees (their secret-named values, URL passwords).
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from shoemaker.config import Config

#: A name part that says secret (ANTHROPIC_API_KEY, CLAUDE_CODE_OAUTH_TOKEN, DB_PASSWORD)...
SECRET_NAME = re.compile(
    r"(?:^|_)(?:KEY|APIKEY|TOKEN|SECRET|PASSWORD|PASSWD|CREDENTIALS?)(?:$|_)", re.IGNORECASE
)
#: ...unless the name says it holds a place, not a value (SSH_AUTH_SOCK, GOOGLE_CREDENTIALS_FILE).
_PLACE_NAME = re.compile(r"_(?:SOCK|PATH|FILE|DIR|URL)$", re.IGNORECASE)


def is_secret_name(name: str) -> bool:
    return bool(SECRET_NAME.search(name)) and not _PLACE_NAME.search(name)


#: Shorter values are not treated as secrets: redacting "1" or "true" would garble everything.
MIN_LENGTH = 8
#: Up to this many values (with their JSON-escaped forms), text is searched for each before
#: the pattern runs.
_FEW = 32
MAX_FILE = 256 * 1024


def token_file(root: Path, config: Config) -> Path:
    """The credentials file: ``secrets_dir``/(``token_file`` or ``default_token_file``)."""
    return root / config.secrets_dir / (config.token_file or config.default_token_file)


def _strings(value: Any) -> Iterator[str]:
    if isinstance(value, str):
        yield value
    elif isinstance(value, dict):
        for item in value.values():
            yield from _strings(item)
    elif isinstance(value, list):
        for item in value:
            yield from _strings(item)


def collect_secrets(
    root: Path, config: Config, environ: Mapping[str, str] | None = None
) -> dict[str, str]:
    """Secret value → the name shown in its place."""
    from shoemaker.agents.sandbox import podman_args

    found: dict[str, str] = {}
    env = os.environ if environ is None else environ
    others = [a.env for a in config.agents.values()]  # kinds that tasks name
    for source in (env, config.agent.env, *others, podman_args(config)[1]):
        for name, value in source.items():
            if is_secret_name(name) and len(value.strip()) >= MIN_LENGTH:
                found[value.strip()] = name
    kinds = {config.agent.kind: config.agent, **config.agents}
    if "codex" in kinds:
        _codex_login(found, {**env, **kinds["codex"].env})
    if "gemini" in kinds:
        _gemini_files(found, {**env, **kinds["gemini"].env})
    _copied_files(found, root, config)
    directory = root / config.secrets_dir
    if directory.is_dir():
        for path in sorted(p for p in directory.rglob("*") if p.is_file()):
            if path.stat().st_size > MAX_FILE:
                continue
            text = path.read_text(encoding="utf-8", errors="replace")
            label = f"{config.secrets_dir.strip('/')}/{path.relative_to(directory)}"
            try:
                values = list(_strings(json.loads(text)))
            except json.JSONDecodeError:
                values = text.splitlines()
            for value in (text.strip(), *values):
                if len(value.strip()) >= MIN_LENGTH:
                    found.setdefault(value.strip(), label)
    return found


def _copied_files(found: dict[str, str], root: Path, config: Config) -> None:
    """The secret-looking values of the files ``worktree_copy`` copies into each worktree."""
    from shoemaker.copied_files import CopyError, copied_files, secret_values

    if not config.worktree_copy:
        return
    try:
        files = copied_files(root, config.worktree_copy, (config.state_dir.strip("/"),))
    except CopyError:
        return  # refused, with its reason, before any worktree gets a copy
    for rel, (path, _) in files.items():
        try:
            if path.stat().st_size > MAX_FILE:
                continue
            text = path.read_text(encoding="utf-8", errors="replace")
        except OSError:
            continue
        for value, name in secret_values(text, is_secret_name, MIN_LENGTH):
            found.setdefault(value, f"{rel} {name}")


def _codex_login(found: dict[str, str], env: Mapping[str, str]) -> None:
    """The strings of the codex login (``$CODEX_HOME/auth.json`` or ``~/.codex/auth.json``)."""
    from shoemaker.agents.codex import user_codex_home

    login = user_codex_home(env) / "auth.json"
    try:
        if login.stat().st_size > MAX_FILE:
            return
        data = json.loads(login.read_text(encoding="utf-8", errors="replace"))
    except (OSError, json.JSONDecodeError):
        return
    for value in _strings(data):
        if len(value.strip()) >= MIN_LENGTH:
            found.setdefault(value.strip(), "codex auth.json")


def _gemini_files(found: dict[str, str], env: Mapping[str, str]) -> None:
    """The strings of gemini's Google login (``.gemini/oauth_creds.json``) and the secret-named
    values of its ``.gemini/.env``, in ``$GEMINI_CLI_HOME`` or the home directory."""
    root = Path(env.get("GEMINI_CLI_HOME") or env.get("HOME") or os.path.expanduser("~"))
    directory = root.expanduser() / ".gemini"
    try:
        if (directory / "oauth_creds.json").stat().st_size <= MAX_FILE:
            text = (directory / "oauth_creds.json").read_text(encoding="utf-8", errors="replace")
            for value in _strings(json.loads(text)):
                if len(value.strip()) >= MIN_LENGTH:
                    found.setdefault(value.strip(), "gemini oauth_creds.json")
    except (OSError, json.JSONDecodeError):
        pass
    try:
        if (directory / ".env").stat().st_size > MAX_FILE:
            return
        lines = (directory / ".env").read_text(encoding="utf-8", errors="replace").splitlines()
    except OSError:
        return
    for line in lines:
        name, sep, value = line.removeprefix("export ").partition("=")
        value = value.strip().strip("'\"")
        if sep and is_secret_name(name.strip()) and len(value) >= MIN_LENGTH:
            found.setdefault(value, f"gemini .env {name.strip()}")


class Redactor:
    """Replaces secret values in text and bytes. Longer values first, so that a secret that
    contains another is replaced whole."""

    def __init__(self, secrets: Mapping[str, str]) -> None:
        names = dict(secrets)
        # Stored events and transcripts are JSON: a value with quotes, backslashes, newlines
        # or non-ASCII letters appears there escaped, so its escaped forms are secrets too.
        for value, name in secrets.items():
            for escaped in (json.dumps(value)[1:-1], json.dumps(value, ensure_ascii=False)[1:-1]):
                names.setdefault(escaped, name)
        ordered = sorted(names, key=len, reverse=True)
        self._names = names
        self._text = re.compile("|".join(re.escape(s) for s in ordered)) if ordered else None
        self._bytes = (
            re.compile(b"|".join(re.escape(s.encode()) for s in ordered)) if ordered else None
        )
        # Most text holds no secret: a substring search per value says so many times faster
        # than the pattern's scan (memchr against a regex engine), while there are few values.
        few = len(ordered) <= _FEW
        self._probe_text = tuple(ordered) if few else None
        self._probe_bytes = tuple(s.encode() for s in ordered) if few else None

    @property
    def active(self) -> bool:
        return self._text is not None

    def text(self, value: str) -> str:
        if self._text is None or not value:
            return value
        if self._probe_text is not None and not any(s in value for s in self._probe_text):
            return value
        return self._text.sub(lambda m: f"[redacted {self._names[m.group(0)]}]", value)

    def data(self, value: bytes) -> bytes:
        if self._bytes is None or not value:
            return value
        if self._probe_bytes is not None and not any(s in value for s in self._probe_bytes):
            return value
        return self._bytes.sub(
            lambda m: f"[redacted {self._names[m.group(0).decode()]}]".encode(), value
        )


NO_SECRETS = Redactor({})
