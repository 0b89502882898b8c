"""The agent CLIs in ``configuration.yaml``: which one runs, with what arguments."""

from __future__ import annotations

from typing import Literal

from pydantic import Field, field_validator, model_validator

from shoemaker.config.strict import Strict as _Strict

DEFAULT_AGENT_ARGS = [
    "--dangerously-skip-permissions",
    "-p",
    "--verbose",
    "--output-format",
    "stream-json",
]

#: The agent CLIs shoemaker can drive (``agent.kind``, and a task's ``agent:``).
AGENT_KINDS = ("claude", "codex", "gemini")

#: Per agent kind: the default command and arguments (``codex exec`` reads its prompt from
#: stdin when no prompt argument is given; ``--json`` is its event stream).
KIND_DEFAULTS: dict[str, tuple[str, list[str]]] = {
    "claude": ("claude", DEFAULT_AGENT_ARGS),
    "codex": (
        "codex",
        ["exec", "--json", "--dangerously-bypass-approvals-and-sandbox", "--skip-git-repo-check"],
    ),
    # gemini appends its -p text to what stdin gave; without --yolo and --skip-trust it offers
    # the model no write tools in a headless run and "succeeds" with text only.
    "gemini": ("gemini", ["-p", "", "-o", "stream-json", "--yolo", "--skip-trust"]),
}


class AgentConfig(_Strict):
    """How the coding agent is launched."""

    kind: Literal["claude", "codex", "gemini"] = "claude"
    """Which CLI the agent is: `claude` (also the rehearsal agent), `codex` or `gemini`; command
    and args left at claude's defaults follow the kind."""
    command: str = "claude"
    """The agent executable: `claude`, `shoemaker-rehearsal`, `codex`, `gemini`, or a path."""
    args: list[str] = Field(default_factory=lambda: list(DEFAULT_AGENT_ARGS))
    """Arguments passed before the model flag; the prompt goes on stdin."""
    model: str = ""
    """Model passed as `--model` (codex, gemini: `-m`; empty: the agent's own default)."""
    env: dict[str, str] = Field(default_factory=dict)
    """Extra environment variables for the agent process (names are stored, values never)."""
    max_time_sec: float = Field(default=3600, gt=0)
    """Hard limit on one agent run's wall time; the process group is killed after it."""
    idle_timeout_sec: float = Field(default=600, gt=0)
    """Kill the run when the agent prints nothing on stdout for this many seconds."""
    kill_grace_sec: float = Field(default=5, gt=0)
    """Seconds to wait at each step when a run is stopped: SIGINT (the CLI then prints a last
    result with the run's cost), SIGTERM, SIGKILL."""
    max_turns: int = Field(default=0, ge=0)
    """Passed as the CLI's own `--max-turns` (0: not passed)."""
    max_budget_usd: float = Field(default=0, ge=0)
    """Passed as the CLI's own `--max-budget-usd`, a limit per agent run (0: not passed)."""

    @field_validator("command")
    @classmethod
    def _command_not_empty(cls, value: str) -> str:
        if not value.strip():
            raise ValueError("must name the agent executable, e.g. claude")
        return value

    @model_validator(mode="after")
    def _kind_defaults(self) -> AgentConfig:
        # A file written by `shoemaker init` spells out claude's command and args; with another
        # kind they mean "the default", so they become that kind's.
        command, args = KIND_DEFAULTS[self.kind]
        if self.kind != "claude":
            if self.command == "claude":
                self.command = command
            if self.args == DEFAULT_AGENT_ARGS:
                self.args = list(args)
        return self
