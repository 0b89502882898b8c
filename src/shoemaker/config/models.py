"""The settings of ``configuration.yaml`` as pydantic models; each field's docstring is the
comment ``shoemaker init`` writes above it."""

from __future__ import annotations

import fnmatch
import re
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from shoemaker.model import Usage

_MODEL_SUFFIX = re.compile(r"\[[^\]]*\]$")

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


class _Strict(BaseModel):
    # Unknown keys are almost always typos; refusing them names the field to fix.
    model_config = ConfigDict(extra="forbid", validate_default=True)


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


class EstimateConfig(_Strict):
    """How `shoemaker estimate` guesses a task's spend when there is no history to go by."""

    turns: int = Field(default=12, ge=1)
    """Agent turns per task: each turn sends the context again."""
    output_tokens: int = Field(default=3000, ge=0)
    """Output tokens per task."""
    similar: int = Field(default=5, ge=1)
    """How many done tasks of similar description length an estimate from history uses."""


class BudgetLimits(_Strict):
    """Limits of one scope; 0 means no limit."""

    tokens: int = Field(default=0, ge=0)
    """Input plus output tokens of the agent runs (cache reads and writes not counted)."""
    usd: float = Field(default=0, ge=0)
    """Dollars, as the agent's result lines report them."""
    wall_sec: float = Field(default=0, ge=0)
    """Seconds of agent wall time, summed over runs."""


class BudgetsConfig(_Strict):
    """What may be spent. Checked before each launch and after each agent result; crossing
    one pauses the generation with an event saying which."""

    task: BudgetLimits = Field(default_factory=BudgetLimits)
    """Per task, over all its attempts."""
    cycle: BudgetLimits = Field(default_factory=BudgetLimits)
    """Per measure+stitch cycle (measure included)."""
    generation: BudgetLimits = Field(default_factory=BudgetLimits)
    """Per generation, over all its runs."""
    day: BudgetLimits = Field(default_factory=BudgetLimits)
    """Per calendar day (local time), over every generation of the repository."""
    on_cross: Literal["finish", "cancel"] = "finish"
    """When a budget is crossed: running agents finish, or are cancelled (work kept)."""


class GateConfig(_Strict):
    """A check shoemaker runs itself after the agent finishes; a failing gate means no merge."""

    name: str
    """Short name shown on screen and stored with the result."""
    command: list[str] | str
    """An argv list, or one shell line written here by you (never text from an agent)."""
    expected_exit: int = 0
    """The exit code that means the gate passed."""
    timeout_sec: float = Field(default=600, gt=0)
    """The gate fails when it runs longer than this."""
    cwd: str = "."
    """Working directory, relative to the worktree."""
    severity: Literal["retry", "fix", "warn"] = "retry"
    """What a failure leads to: ``retry``, a fresh attempt; ``fix``, a targeted fix (the next
    attempt keeps this attempt's work and is asked to fix only this failure); ``warn``, a
    warning is recorded and the task goes on."""
    after_merge: bool = True
    """Run again on the generation branch after the merge; a failure there reverts the merge."""
    tasks: list[str] = Field(default_factory=list)
    """Title globs of the tasks this gate is for (empty: every task): per-task gates."""
    paths: list[str] = Field(default_factory=list)
    """Run only when the task changed a file matching one of these globs (empty: always)."""

    def is_for_title(self, title: str) -> bool:
        """Whether the gate is for a task of this title: a global gate, or one of its
        ``tasks`` globs matches."""
        return not self.tasks or any(fnmatch.fnmatchcase(title, glob) for glob in self.tasks)

    @field_validator("command")
    @classmethod
    def _command_not_empty(cls, value: list[str] | str) -> list[str] | str:
        if (isinstance(value, str) and not value.strip()) or (
            isinstance(value, list) and (not value or not value[0].strip())
        ):
            raise ValueError("a gate must name something to run, e.g. [python, -m, pytest, -q]")
        return value

    @field_validator("cwd")
    @classmethod
    def _cwd_relative(cls, value: str) -> str:
        if Path(value).is_absolute() or ".." in Path(value).parts:
            raise ValueError("must be a directory inside the worktree, e.g. . or tests")
        return value


class DaskConfig(_Strict):
    """Where agents and gates run when ``executor`` is dask."""

    scheduler: str = "local:2"
    """``tcp://host:port`` of a running ``dask scheduler``, or ``local:N`` for a cluster of N
    workers on this machine that shoemaker starts and stops itself."""
    resources: dict[str, float] = Field(default_factory=dict)
    """What one attempt holds on its worker, e.g. ``{agent_slot: 1}`` with workers started
    with ``--resources agent_slot=2`` (two attempts at once there); empty: any worker takes
    as many as it has threads."""
    connect_timeout_sec: float = Field(default=20, gt=0)
    """How long connecting to the scheduler may take before the run pauses."""
    batch_sec: float = Field(default=0.03, ge=0.005, le=1)
    """How often a worker sends the agent's new output lines home, in seconds."""

    @field_validator("scheduler")
    @classmethod
    def _scheduler_address(cls, value: str) -> str:
        if value.startswith("local:"):
            count = value.removeprefix("local:")
            if not count.isdigit() or int(count) < 1:
                raise ValueError("local:N needs a number of workers, e.g. local:2")
            return value
        if not value.startswith(("tcp://", "tls://")) or ":" not in value.split("://", 1)[1]:
            raise ValueError("must be tcp://host:port (a running scheduler) or local:N")
        return value


class PlanSourceConfig(_Strict):
    """A plan file (or directory of them) that every cycle imports: epics, beads issues or a
    measure proposals file, kept with their own ids."""

    path: str
    """Relative to the repository: a plans root (docs/plans), an epic, .beads/issues.jsonl."""
    format: Literal["auto", "epics", "phases", "beads", "measure"] = "auto"
    """The plan's format (auto: from the file's name and contents)."""

    @field_validator("path")
    @classmethod
    def _path_inside(cls, value: str) -> str:
        if not value.strip() or Path(value).is_absolute() or ".." in Path(value).parts:
            raise ValueError("must be a path inside the repository, e.g. docs/plans")
        return value


class Config(_Strict):
    """Everything in ``configuration.yaml``."""

    # -- sources and docs ---------------------------------------------------------------------
    source_dirs: list[str] = Field(default_factory=lambda: ["src"])
    """Directories holding the project's source code (used for LOC and source reset)."""
    source_globs: list[str] = Field(
        default_factory=lambda: [
            "**/*.py",
            "**/*.go",
            "**/*.rs",
            "**/*.js",
            "**/*.ts",
            "**/*.tsx",
            "**/*.java",
            "**/*.c",
            "**/*.h",
            "**/*.cpp",
            "**/*.rb",
            "**/*.sh",
        ]
    )
    """Files that count as code in LOC statistics."""
    test_globs: list[str] = Field(
        default_factory=lambda: [
            "tests/**",
            "test/**",
            "**/test_*.py",
            "**/*_test.py",
            "**/*_test.go",
            "**/*.test.ts",
            "**/*.spec.ts",
        ]
    )
    """Code files matching these count as test code; the rest as production code."""
    doc_globs: list[str] = Field(
        default_factory=lambda: ["README.md", "VISION.md", "ARCHITECTURE.md", "docs/**/*.md"]
    )
    """Documents that measure reads and includes in its prompt."""
    spec_globs: dict[str, str] = Field(default_factory=dict)
    """Label → glob of specification documents whose words are counted in statistics."""
    max_doc_bytes: int = Field(default=200_000, gt=0)
    """Upper bound on the documents included in one measure prompt (later files are listed only)."""
    version_file: str = ""
    """Path to the project's version file, shown in history records (optional)."""
    seed_files: dict[str, str] = Field(default_factory=dict)
    """Destination → template path: files rendered into the tree when sources are reset."""
    reset_sources: bool = False
    """Delete the source directories at generation start, so the generation rebuilds them."""
    reset_keep: list[str] = Field(default_factory=list)
    """Paths kept when the source directories are reset."""
    cleanup_dirs: list[str] = Field(default_factory=list)
    """Directories removed after a generation is stopped or reset."""

    # -- generations --------------------------------------------------------------------------
    generation_prefix: str = "generation-"
    """Prefix of generation branch names."""
    generation_branch: str = ""
    """Work on this generation branch (empty: the one generation that is active)."""
    cycles: int = Field(default=1, ge=1)
    """Number of measure+stitch cycles one `shoemaker run` performs at most."""
    max_issues: int = Field(default=10, ge=1)
    """Most tasks one measure call may add."""
    estimated_lines_min: int = Field(default=250, ge=0)
    """Smallest task size, in lines of code, that the measure prompt asks for."""
    estimated_lines_max: int = Field(default=350, ge=0)
    """Largest task size, in lines of code, that the measure prompt asks for."""
    user_prompt: str = ""
    """Extra guidance added to the measure prompt."""
    max_parallel: int = Field(default=1, ge=1)
    """Most agents running at once."""
    max_retries: int = Field(default=1, ge=0)
    """Attempts after a task's first failed one before it is failed (attempts cut short because
    shoemaker stopped, by a crash or a signal, do not count). Retrying stops earlier when the
    same failure repeats."""
    require_done_signal: bool = False
    """A stitch run must end with the agent's own signal (`shoemaker done`, as the stitch
    prompt says); one that exits without it is a failed attempt (retried as any other)."""
    max_tasks: int = Field(default=0, ge=0)
    """A run stops once the generation has this many tasks done (0: no limit)."""
    stall_cycles: int = Field(default=2, ge=0)
    """A run stops after this many cycles in a row that changed no line (0: never)."""
    require_approval: bool = False
    """Tasks run only from plans a person approved (`shoemaker plan`, `shoemaker approve`);
    `run` does not measure and refuses while a plan waits for approval."""
    review_globs: list[str] = Field(default_factory=list)
    """Sensitive paths (e.g. migrations/**, **/auth/**): a task whose diff touches one waits
    in needs_review for a person to approve or reject it instead of merging."""

    plan_sources: list[PlanSourceConfig] = Field(default_factory=list)
    """Plans people write (epics, beads issues, measure files), read at the start of every
    cycle: new tasks are added with their ids, edited ones updated while not started."""
    measure: Literal["agent", "off"] = "agent"
    """agent: every cycle asks the agent for new tasks; off: only imported plans run."""

    # -- prompts ------------------------------------------------------------------------------
    measure_prompt: str = ""
    """Path to a custom measure prompt template (empty: the built-in one)."""
    stitch_prompt: str = ""
    """Path to a custom stitch prompt template (empty: the built-in one)."""

    # -- agent and gates ----------------------------------------------------------------------
    agent: AgentConfig = Field(default_factory=AgentConfig)
    """How the coding agent is launched."""
    agents: dict[Literal["claude", "codex", "gemini"], AgentConfig] = Field(default_factory=dict)
    """Per agent kind: how the agent of a task that names that kind (`agent:` in a proposal
    or a plan) is launched; a kind not listed runs with `agent`'s settings and that kind's
    default command, args and model."""
    gates: list[GateConfig] = Field(default_factory=list)
    """Checks run in each task's worktree after the agent, and again after the merge."""
    budgets: BudgetsConfig = Field(default_factory=BudgetsConfig)
    """Spending limits per task, cycle, generation and day."""
    prices: dict[str, ModelPrice] = Field(default_factory=_default_prices)
    """Per model name (agent.model), or ``default`` (priced as the claude CLI's default model,
    claude-opus-4-8): dollars per million tokens, for estimates and for runs whose result line
    does not say what they cost."""
    estimate: EstimateConfig = Field(default_factory=EstimateConfig)
    """Assumptions of estimates made without history."""
    silence_agent: bool = True
    """Headless runs print the condensed agent output only when this is false."""

    # -- places -------------------------------------------------------------------------------
    state_dir: str = ".shoemaker"
    """shoemaker's own directory in the repository (store, history); kept out of git."""
    store_wait_sec: float = Field(default=10, gt=0)
    """How long a command waits for another process that holds the store's write lock
    before it gives up, saying who holds it."""
    worktree_dir: str = ""
    """Where task worktrees go (empty: a directory in the user cache, outside the repo)."""
    reuse_worktrees: bool = True
    """Switch an idle worktree to the next task instead of removing it and adding a new one."""
    secrets_dir: str = ".secrets"
    """Directory holding credential files."""
    default_token_file: str = "claude.json"
    """Credential file used when token_file is empty."""
    token_file: str = ""
    """Credential file name to use instead of default_token_file."""
    sandbox: Literal["none", "bwrap", "podman", "docker"] = "none"
    """Where agents run: directly, or isolated by bubblewrap, podman or docker (the worktree
    writable, the rest read-only, HOME of their own, credentials mounted read-only, no
    capability, its own processes); README's Sandboxes section says what each guarantees."""
    sandbox_network: Literal["host", "none"] = "host"
    """The sandboxed agent's network: the host's, or none at all."""
    sandbox_read_only_root: bool = True
    """podman/docker: the container's own file system read-only (``--read-only``, with a
    tmpfs on /tmp); false for an image whose programs must write outside the worktree, HOME
    and /tmp."""
    podman_image: str = ""
    """Container image with the agent CLI, for podman and docker."""
    podman_args: list[str] = Field(default_factory=list)
    """Extra arguments for `podman run` / `docker run` (mounts, --ulimit, --runtime)."""
    podman_global_args: list[str] = Field(default_factory=list)
    """Arguments before `run` (e.g. --cgroup-manager=cgroupfs)."""

    # -- where attempts run -------------------------------------------------------------------
    executor: Literal["local", "dask"] = "local"
    """local: agents and gates run on this machine; dask: on the workers of a Dask cluster
    (``pip install 'shoemaker[dask]'``), while merges, the store and the dashboard stay here."""
    dask: DaskConfig = Field(default_factory=DaskConfig)
    """The Dask cluster of ``executor: dask``."""

    @field_validator("agents", mode="before")
    @classmethod
    def _agents_are_their_kind(cls, value: Any) -> Any:
        # The key names the kind: an entry need not repeat it (and cannot contradict it).
        if isinstance(value, dict):
            return {
                k: {"kind": k, **v} if isinstance(v, dict) and "kind" not in v else v
                for k, v in value.items()
            }
        return value

    @model_validator(mode="after")
    def _agents_keys_match(self) -> Config:
        for key, agent in self.agents.items():
            if agent.kind != key:
                raise ValueError(
                    f"agents.{key}.kind is {agent.kind!r}: leave it out or make it {key}"
                )
        return self

    def agent_for(self, kind: str | None) -> AgentConfig:
        """How to launch the agent of a task that names ``kind`` (None: the configured one)."""
        if kind is None or kind == self.agent.kind:
            return self.agent
        if kind in self.agents:
            return self.agents[kind]
        return AgentConfig.model_validate(
            {
                **self.agent.model_dump(exclude={"kind", "command", "args", "model"}),
                "kind": kind,
            }
        )

    @field_validator("measure", mode="before")
    @classmethod
    def _measure_off_unquoted(cls, value: Any) -> Any:
        # YAML reads a bare `measure: off` (or on) as a boolean; it means the word.
        if isinstance(value, bool):
            return "agent" if value else "off"
        return value

    @field_validator("generation_prefix")
    @classmethod
    def _prefix_is_ref_safe(cls, value: str) -> str:
        bad = set(" ~^:?*[\\") & set(value)
        if bad or ".." in value:
            raise ValueError("must be usable in a git branch name, e.g. generation-")
        return value

    @field_validator("estimated_lines_max")
    @classmethod
    def _max_not_below_min(cls, value: int, info: Any) -> int:
        low = info.data.get("estimated_lines_min", 0)
        if value < low:
            raise ValueError(f"must be at least estimated_lines_min ({low})")
        return value

    def price(self, model: str | None = None) -> tuple[str, ModelPrice]:
        """The price of ``model`` (default: agent.model) and the name it was found under:
        the model's own entry in ``prices`` (with or without a suffix like ``[1m]``), else
        ``default``."""
        model = model or self.agent.model
        for name in (model, _MODEL_SUFFIX.sub("", model or "")):
            if name and name in self.prices:
                return name, self.prices[name]
        return "default", self.prices.get("default", ModelPrice(input=0, output=0))

    def priced_model(self) -> str:
        """The model an estimate prices: ``agent.model``, else the CLI's default model (named
        for claude; another kind's default is not known here)."""
        if self.agent.model:
            return self.agent.model
        return CLI_DEFAULT_MODEL if self.agent.kind == "claude" else f"{self.agent.kind}'s default"
