"""The agent CLIs in ``configuration.yaml``: which one runs, with what arguments, and what
each model's tokens cost."""

from __future__ import annotations

from typing import Literal

from pydantic import Field, field_validator, model_validator

from shoemaker.config.base import _Strict
from shoemaker.model import Usage

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


class ModelPrice(_Strict):
    """Dollars per million tokens of one model, for estimates."""

    input: float = Field(ge=0)
    output: float = Field(ge=0)
    cache_read: float = Field(default=0, ge=0)
    cache_write: float = Field(default=0, ge=0)

    def cost(self, usage: Usage) -> float:
        """Dollars for these tokens."""
        return (
            usage.input_tokens * self.input
            + usage.output_tokens * self.output
            + usage.cache_creation_input_tokens * self.cache_write
            + usage.cache_read_input_tokens * self.cache_read
        ) / 1_000_000


#: The model the claude CLI (2.1.197) uses when ``agent.model`` is empty, as its init line and
#: messages name it (the init line adds a context-window suffix such as ``[1m]``).
CLI_DEFAULT_MODEL = "claude-opus-4-8"


def _default_prices() -> dict[str, ModelPrice]:
    # List prices of the CLI's default model: $5 / $25 per million input / output tokens,
    # cache reads 0.1× and cache writes 1.25× of input. Edit them for yours. They price
    # estimates, and the spend of runs whose result line does not say what they cost.
    return {"default": ModelPrice(input=5.0, output=25.0, cache_read=0.5, cache_write=6.25)}
