"""The settings of ``configuration.yaml`` as pydantic models; each field's docstring is the
comment ``shoemaker init`` writes above it."""

from __future__ import annotations

import fnmatch
import re
from pathlib import Path
from typing import Any, Literal

from pydantic import Field, field_validator, model_validator

from shoemaker.config.agents import AgentConfig
from shoemaker.config.cluster import DaskConfig
from shoemaker.config.notify import NotifyChannel
from shoemaker.config.prices import CLI_DEFAULT_MODEL, ModelPrice, default_prices
from shoemaker.config.schedules import ScheduleConfig, _unique_schedules, check_zone
from shoemaker.config.strict import Strict as _Strict

_MODEL_SUFFIX = re.compile(r"\[[^\]]*\]$")


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


class RateLimitsConfig(_Strict):
    """What a run does when the provider rate-limits its agents."""

    wait_sec: float = Field(default=300, gt=0)
    """How long a rejected generation waits when the agent names no reset time (neither a
    `resetsAt` nor a retry delay), before it starts agents again."""
    warning_parallel: int = Field(default=1, ge=1)
    """Most agents at once while a limit warns (`allowed_warning`), until its reset time."""


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

    schedules: list[ScheduleConfig] = Field(default_factory=list)
    """Batches that fire on a cron schedule: `shoemaker schedule list|run|daemon|install`;
    e.g. `- {name: nightly, cron: '0 2 * * *', max_tasks: 5, max_duration: 2h}`."""
    timezone: str = ""
    """IANA time zone of every schedule without its own, e.g. Europe/Berlin (empty: the
    machine's local zone)."""

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
    rate_limits: RateLimitsConfig = Field(default_factory=RateLimitsConfig)
    """Pausing for the provider's rate limits: the wait when no reset time is named, and the
    parallelism while a limit warns."""
    prices: dict[str, ModelPrice] = Field(default_factory=default_prices)
    """Per model name (agent.model), or ``default`` (priced as the claude CLI's default model,
    claude-opus-4-8): dollars per million tokens, for estimates and for runs whose result line
    does not say what they cost."""
    estimate: EstimateConfig = Field(default_factory=EstimateConfig)
    """Assumptions of estimates made without history."""
    silence_agent: bool = True
    """Headless runs print the condensed agent output only when this is false."""

    # -- notifications ------------------------------------------------------------------------
    notify: list[NotifyChannel] = Field(default_factory=list)
    """Where to tell a person who is away: a list of {url, events} with apprise URLs (README:
    Notifications); `shoemaker notify test` sends to each."""
    notify_timeout_sec: float = Field(default=10, gt=0)
    """How long one notification may take to send before it counts as failed."""

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
    worktree_copy: list[str] = Field(default_factory=list)
    """Globs of untracked files in your checkout copied into each task worktree (.env,
    .env.local, local config); never committed (the worktree's own exclude file lists them),
    and their secret-looking values are redacted like any secret."""
    worktree_setup: list[list[str]] = Field(default_factory=list)
    """Commands (argv lists, no shell) run once in each new worktree before its first agent,
    where the agent runs (e.g. [npm, ci]); a failure fails the attempt with their output."""
    worktree_setup_timeout_sec: float = Field(default=1800, gt=0)
    """A worktree setup command that runs longer than this fails."""
    port_base_start: int = Field(default=20000, ge=1024, le=65000)
    """SHOEMAKER_PORT_BASE: each worktree gets a free block of ports from here on, for the dev
    servers of its setup, agent and gates, so parallel tasks never collide."""
    port_block_size: int = Field(default=100, ge=1, le=1000)
    """Ports in each worktree's block (SHOEMAKER_PORT_BASE up to base + size - 1)."""
    gc_warn_threshold: int = Field(default=20, ge=0)
    """Recovery warns when more worktrees, task/attempt branches and directories than this
    belong to no open generation (`shoemaker gc` removes them; 0: never warn)."""
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

    @field_validator("schedules")
    @classmethod
    def _schedule_names_unique(cls, value: list[ScheduleConfig]) -> list[ScheduleConfig]:
        return _unique_schedules(value)

    @field_validator("timezone")
    @classmethod
    def _zone_known(cls, value: str) -> str:
        return check_zone(value)

    @field_validator("worktree_copy")
    @classmethod
    def _copy_globs_inside(cls, value: list[str]) -> list[str]:
        for glob in value:
            parts = Path(glob).parts
            if not glob.strip() or Path(glob).is_absolute() or ".." in parts or ".git" in parts:
                raise ValueError(f"{glob!r} must stay inside the repository, outside .git")
        return value

    @field_validator("worktree_setup")
    @classmethod
    def _setup_commands(cls, value: list[list[str]]) -> list[list[str]]:
        for argv in value:
            if not argv or not argv[0].strip():
                raise ValueError("each command is an argv list naming a program, e.g. [npm, ci]")
        return value

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
