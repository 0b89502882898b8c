"""The Gemini CLI (``gemini -p "" -o stream-json --yolo --skip-trust``) as an agent adapter.

Each run gets a config home of its own (``GEMINI_CLI_HOME``) with a ``.gemini/settings.json``
shoemaker writes: the auth type (an API key, else Vertex AI when the environment selects it —
without it a custom ``GOOGLE_GEMINI_BASE_URL`` makes the CLI pick a gateway auth it then
refuses), trust, telemetry and usage statistics off, no update checks. gemini then reads
nothing of the person's own ``~/.gemini`` and keeps its sessions there. The prompt goes on
stdin (``-p ""`` is appended to it). ``GEMINI_CLI_NO_RELAUNCH`` keeps it one process: the
launcher otherwise restarts itself in a child that outlives a signal to the launcher alone.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from shoemaker.agents.claude import resolve_command
from shoemaker.agents.gemini_stream import (
    GeminiSummaryBuilder,
    condense_gemini,
    format_gemini_summary,
    normalise,
    summarize_gemini_file,
)
from shoemaker.agents.protocol import AgentSummary, Launch, LineBuilder, Normalised
from shoemaker.agents.run_dirs import make_run_dir
from shoemaker.agents.streamjson import StreamEvent, TranscriptSummary
from shoemaker.config import AgentConfig

CONFIG_HOME_ENV = "GEMINI_CLI_HOME"
KEY_NAMES = ("GEMINI_API_KEY", "GOOGLE_API_KEY")


def settings(env: Mapping[str, str]) -> dict[str, Any]:
    """The run's ``settings.json``."""
    vertex = env.get("GOOGLE_GENAI_USE_VERTEXAI", "").lower() in ("1", "true")
    return {
        "security": {
            "auth": {"selectedType": "vertex-ai" if vertex else "gemini-api-key"},
            "folderTrust": {"enabled": False},
        },
        "telemetry": {"enabled": False},
        "privacy": {"usageStatisticsEnabled": False},
        "general": {"enableAutoUpdate": False, "enableAutoUpdateNotification": False},
    }


class GeminiAdapter:
    """``gemini -o stream-json``: init/message/tool_use/tool_result/result events
    (``agents/gemini_stream.py``)."""

    kind = "gemini"
    credentials: tuple[str, ...] = KEY_NAMES
    package = "npm install -g @google/gemini-cli"
    usage_markers: tuple[bytes, ...] = (b'"init"', b'"stats"')  # the model; the result's stats

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
            config_home = home
        elif scratch is not None:
            config_home = make_run_dir(scratch, "gemini")
            made = (config_home,)
        else:
            return Launch(argv, prompt)  # its home is made where it runs
        (config_home / ".gemini").mkdir(parents=True, exist_ok=True)
        (config_home / ".gemini" / "settings.json").write_text(
            json.dumps(settings(env), indent=2) + "\n", encoding="utf-8"
        )
        extra = {CONFIG_HOME_ENV: str(config_home), "GEMINI_CLI_NO_RELAUNCH": "true"}
        return Launch(argv, prompt, extra, made)

    def login_files(self, env: Mapping[str, str]) -> dict[str, str]:
        return {}  # an API key (or Vertex AI's environment) is its login

    def builder(self, agent: AgentConfig) -> LineBuilder:
        return GeminiSummaryBuilder(agent.model or None)

    def condense(self, event: StreamEvent, cwd: str | None) -> str | None:
        return condense_gemini(event, cwd)

    def normalise(self, event: StreamEvent) -> list[Normalised]:
        return normalise(event)

    def summarize_file(self, path: Path) -> TranscriptSummary:
        return summarize_gemini_file(path)

    def settle(self, launch: Launch, summary: TranscriptSummary) -> None:
        pass  # stats come only with the result line; its session file has no usage

    def format_summary(self, summary: TranscriptSummary) -> str:
        assert isinstance(summary, AgentSummary)
        return format_gemini_summary(summary)
