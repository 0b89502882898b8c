"""The Codex CLI (``codex exec --json``) as an agent adapter.

Each run gets a config home of its own (``CODEX_HOME``, which must exist) with a
``config.toml`` shoemaker writes: codex then reads nothing of the person's own configuration
and leaves its sessions and databases there, not in ``~/.codex``. When the agent's environment
sets ``OPENAI_BASE_URL`` (which codex itself ignores), that file names it as a Responses-API
provider over plain HTTP streaming. A ``codex login`` (``auth.json`` in ``$CODEX_HOME`` or
``~/.codex``) is copied in (to a cluster's worker it travels with the attempt, sealed, and the
home is made there, in the attempt's temporary directory); an ``OPENAI_API_KEY`` or
``CODEX_API_KEY`` works as it is. The prompt goes on stdin (no prompt argument: ``codex exec``
reads it there). The stream names no model and no cost: the model is the configured one, and
the cost is priced from the tokens.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from pathlib import Path

from shoemaker.agents.claude import resolve_command
from shoemaker.agents.codex_stream import (
    CodexSummaryBuilder,
    apply_usage,
    condense_codex,
    format_codex_summary,
    normalise,
    rollout_usage,
    summarize_codex_file,
)
from shoemaker.agents.protocol import AgentSummary, Launch, LineBuilder, Normalised
from shoemaker.agents.run_dirs import make_run_dir
from shoemaker.agents.streamjson import StreamEvent, TranscriptSummary
from shoemaker.config import AgentConfig
from shoemaker.model import Usage

CONFIG_HOME_ENV = "CODEX_HOME"
KEY_NAMES = ("OPENAI_API_KEY", "CODEX_API_KEY")


def user_codex_home(env: Mapping[str, str]) -> Path:
    """The person's own codex home: ``$CODEX_HOME``, else ``~/.codex``."""
    configured = env.get(CONFIG_HOME_ENV)
    if configured:
        return Path(configured).expanduser()
    return Path(env.get("HOME") or os.path.expanduser("~")) / ".codex"


def _toml(value: str) -> str:
    # A JSON string is a valid TOML basic string for everything json.dumps writes.
    return json.dumps(value)


def config_toml(env: Mapping[str, str]) -> str:
    """The run's ``config.toml``."""
    lines = ["# Written by shoemaker for one run; removed when the run ends."]
    base_url = env.get("OPENAI_BASE_URL", "").strip()
    if base_url:
        key = next((n for n in KEY_NAMES if env.get(n)), KEY_NAMES[0])
        lines += [
            'model_provider = "shoemaker"',
            "",
            "[model_providers.shoemaker]",
            'name = "OpenAI-compatible endpoint (OPENAI_BASE_URL)"',
            f"base_url = {_toml(base_url)}",
            'wire_api = "responses"',
            f"env_key = {_toml(key)}",
            # Else codex first tries a WebSocket five times before it streams over HTTP.
            "supports_websockets = false",
        ]
    return "\n".join(lines) + "\n"


class CodexAdapter:
    """``codex exec --json``: thread/turn/item events (``agents/codex_stream.py``)."""

    kind = "codex"
    credentials: tuple[str, ...] = KEY_NAMES
    package = "npm install -g @openai/codex"
    usage_markers: tuple[bytes, ...] = (b'"usage"',)  # turn.completed; the model is configured

    def launch(
        self,
        agent: AgentConfig,
        env: Mapping[str, str],
        home: Path | None,
        prompt: str,
        scratch: Path | None,
        login: Mapping[str, str] | None = None,
    ) -> Launch:
        argv = [resolve_command(agent.command), *agent.args]
        if agent.model:
            argv += ["-m", agent.model]
        made: tuple[Path, ...] = ()
        if home is not None:
            config_home = home / ".codex"
            config_home.mkdir(parents=True, exist_ok=True)
        elif scratch is not None:
            config_home = make_run_dir(scratch, "codex")
            made = (config_home,)
        else:
            return Launch(argv, prompt)  # its home is made where it runs
        (config_home / "config.toml").write_text(config_toml(env), encoding="utf-8")
        if login is None:
            own = user_codex_home(env).resolve() == config_home.resolve()
            login = {} if own else self.login_files(env)
        for name, content in login.items():
            if not name or Path(name).name != name:
                raise ValueError(f"not a login file's name: {name!r}")
            fd = os.open(config_home / name, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
            with os.fdopen(fd, "w", encoding="utf-8") as out:
                out.write(content)
        return Launch(argv, prompt, {CONFIG_HOME_ENV: str(config_home)}, made)

    def login_files(self, env: Mapping[str, str]) -> dict[str, str]:
        login = user_codex_home(env) / "auth.json"
        return {login.name: login.read_text(encoding="utf-8")} if login.is_file() else {}

    def builder(self, agent: AgentConfig) -> LineBuilder:
        return CodexSummaryBuilder(agent.model or None)

    def condense(self, event: StreamEvent, cwd: str | None) -> str | None:
        return condense_codex(event, cwd)

    def normalise(self, event: StreamEvent) -> list[Normalised]:
        return normalise(event)

    def summarize_file(self, path: Path) -> TranscriptSummary:
        return summarize_codex_file(path)

    def settle(self, launch: Launch, summary: TranscriptSummary) -> None:
        # Usage is on turn.completed only: a run stopped before it (a clock, a cancel, SIGKILL
        # of the agent) was billed for the responses its session file counted.
        if not isinstance(summary, AgentSummary) or summary.message_usage is not None:
            return
        home, thread = launch.env.get(CONFIG_HOME_ENV), summary.session_id
        if not home or not thread:
            return
        raw = rollout_usage(Path(home), thread)
        if raw is not None:
            apply_usage(summary, raw, Usage(), 0)

    def format_summary(self, summary: TranscriptSummary) -> str:
        assert isinstance(summary, AgentSummary)
        return format_codex_summary(summary)
