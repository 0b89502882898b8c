"""Preflight: can shoemaker run agents here? A checklist with a fix for each failure.

``shoemaker doctor`` prints it; ``Engine.run`` and ``Engine.measure_once`` run it first and stop
with its message when something fails, before any agent starts.
"""

from __future__ import annotations

import importlib.util
import os
import re
import subprocess
import tempfile
import uuid
from dataclasses import dataclass
from pathlib import Path

from shoemaker.agents.adapters import adapter_for
from shoemaker.agents.claude import resolve_command
from shoemaker.agents.codex import user_codex_home
from shoemaker.agents.sandbox import trial_run
from shoemaker.agents.sandbox_proof import prove
from shoemaker.config import AgentConfig
from shoemaker.engine.gates import gate_problems
from shoemaker.engine.project import Project
from shoemaker.engine.stitch import EngineError
from shoemaker.secrets import token_file

#: git worktree and merge-tree features shoemaker relies on.
MIN_GIT = (2, 38)


@dataclass(frozen=True, slots=True)
class Check:
    name: str
    ok: bool
    detail: str
    fix: str = ""


class DoctorError(EngineError):
    """A preflight check failed; the message lists the failures and their fixes."""


def _git(project: Project) -> Check:
    out = subprocess.run(["git", "--version"], capture_output=True, text=True).stdout.strip()
    found = re.search(r"(\d+)\.(\d+)", out)
    version = (int(found.group(1)), int(found.group(2))) if found else (0, 0)
    if version < MIN_GIT:
        return Check(
            "git",
            False,
            out or "git not found",
            f"install git {MIN_GIT[0]}.{MIN_GIT[1]} or newer",
        )
    return Check("git", True, out)


def _agent(project: Project, agent: AgentConfig | None = None) -> Check:
    cfg = agent or project.config.agent
    program = resolve_command(cfg.command)
    if project.config.sandbox != "none":
        return _agent_in_sandbox(project, program)
    env = {**os.environ, **cfg.env}
    try:
        proc = subprocess.run(
            [program, "--version"], capture_output=True, text=True, timeout=30, env=env
        )
    except FileNotFoundError:
        return Check(
            "agent CLI",
            False,
            f"{cfg.command!r} is not on PATH",
            f"install it ({adapter_for(cfg.kind).package}) or set agent.command",
        )
    except subprocess.TimeoutExpired:
        return Check("agent CLI", False, f"{program} --version took over 30 s", "check the CLI")
    if proc.returncode != 0:
        detail = (proc.stderr or proc.stdout).strip().splitlines()
        return Check(
            "agent CLI",
            False,
            f"{program} --version exited {proc.returncode}: {detail[-1] if detail else ''}",
            "reinstall the CLI or fix agent.command",
        )
    return Check("agent CLI", True, f"{program}: {proc.stdout.strip()}")


def _agent_in_sandbox(project: Project, program: str) -> Check:
    """The CLI the agents will run: the one the sandbox sees (in a container, the image's)."""
    kind = project.config.sandbox
    with tempfile.TemporaryDirectory(prefix="shoemaker-doctor-") as scratch:
        ok, output, fix = trial_run(project.config, Path(scratch), [program, "--version"])
    if ok:
        lines = output.splitlines()
        return Check("agent CLI", True, f"{program} in {kind}: {lines[-1] if lines else ''}")
    if not fix:
        fix = (
            "bwrap shows the host read-only: install the CLI on the host or fix agent.command"
            if kind == "bwrap"
            else f"install the CLI at {program} in podman_image, or mount its directory with "
            "podman_args (-v DIR:DIR:ro)"
        )
    return Check("agent CLI", False, f"{program} --version in {kind}: {output}", fix)


def _credentials(project: Project, agent: AgentConfig | None = None) -> Check:
    cfg = project.config
    ag = agent or cfg.agent
    if "rehearsal" in Path(ag.command).name or any(
        "shoemaker.agents.rehearsal" in a for a in ag.args
    ):
        return Check("credentials", True, "the rehearsal agent needs none")
    names = adapter_for(ag.kind).credentials
    for name in names:
        if os.environ.get(name) or ag.env.get(name):
            return Check("credentials", True, f"{name} is set (its value is never shown)")
    if ag.kind == "codex":
        return _codex_login(names, {**os.environ, **ag.env})
    if ag.kind == "gemini":
        return Check(
            "credentials",
            False,
            f"none of {', '.join(names)} is set",
            "set GEMINI_API_KEY (a key from Google AI Studio) in the environment or agent.env",
        )
    token = token_file(project.root, cfg)
    if token.is_file():
        return Check("credentials", True, f"token file {token.relative_to(project.root)}")
    home = Path(ag.env.get("HOME") or os.environ.get("HOME", "~")).expanduser()
    if (home / ".claude" / ".credentials.json").is_file():
        return Check("credentials", True, f"{home}/.claude/.credentials.json (claude login)")
    return Check(
        "credentials",
        False,
        f"none of {', '.join(names)}, no {token.relative_to(project.root)}, no claude login",
        "set ANTHROPIC_API_KEY, run `claude login`, or put the credentials file in secrets_dir",
    )


def _codex_login(names: tuple[str, ...], env: dict[str, str]) -> Check:
    login = user_codex_home(env) / "auth.json"
    if login.is_file():
        return Check("credentials", True, f"{login} (codex login; copied into each run)")
    return Check(
        "credentials",
        False,
        f"none of {', '.join(names)} is set, no {login}",
        "set OPENAI_API_KEY (or CODEX_API_KEY), or run `codex login`",
    )


def _writable(project: Project) -> list[Check]:
    checks = []
    for label, directory in (
        ("state directory", project.state_dir),
        ("worktree directory", project.worktree_root),
    ):
        probe = directory / f".doctor-{uuid.uuid4().hex}"
        try:
            directory.mkdir(parents=True, exist_ok=True)
            probe.write_text("ok")
            probe.unlink()
        except OSError as exc:
            checks.append(
                Check(label, False, f"{directory}: {exc.strerror}", "make it writable or move it")
            )
        else:
            checks.append(Check(label, True, str(directory)))
    return checks


def _gates(project: Project) -> Check:
    problems = gate_problems(project.config.gates, project.root)
    if problems:
        return Check("gates", False, "; ".join(problems), "fix the gate commands")
    count = len(project.config.gates)
    return Check("gates", True, f"{count} gate(s) can run" if count else "no gates configured")


def _sandbox(project: Project) -> list[Check]:
    kind = project.config.sandbox
    if kind == "none":
        return [Check("sandbox", True, "none: agents run as this user, in their worktrees")]
    with tempfile.TemporaryDirectory(prefix="shoemaker-doctor-") as scratch:
        ok, output, fix = trial_run(project.config, Path(scratch))
        if not ok:
            return [
                Check("sandbox", False, output, fix or f"see `{kind} --help`; or use sandbox: none")
            ]
        escapes, _ = prove(
            project.config,
            Path(scratch) / "probe",
            _escape_targets(project),
            project.git.common_dir,
        )
    image = f" with {project.config.podman_image}" if kind != "bwrap" else ""
    held = [e for e in escapes if e.escaped]
    summary = (
        Check("sandbox", True, f"{kind}{image}: a trial run worked; {len(escapes)} escapes refused")
        if not held
        else Check(
            "sandbox",
            False,
            f"{kind}{image}: {len(held)} of {len(escapes)} escapes succeeded",
            "see the escapes below",
        )
    )
    lines = [
        Check(
            f"escape {e.title}",
            not e.escaped,
            f"escaped: {e.detail}" if e.escaped else f"refused ({e.detail})",
            e.fix,
        )
        for e in escapes
    ]
    return [summary, *lines]


def _escape_targets(project: Project) -> list[Path]:
    """Host places an agent must not write to: the checkout and its git directory, the
    directory shoemaker runs in, this user's HOME and the shared /tmp."""
    places = [project.root, project.git.common_dir, Path.cwd(), Path.home(), Path("/tmp")]
    targets: list[Path] = []
    for place in places:
        if place.is_dir() and place.resolve() not in targets:
            targets.append(place.resolve())
    return targets


def run_checks(project: Project) -> list[Check]:
    """Every check, in order (blocking: runs processes)."""
    return [
        _git(project),
        _agent(project),
        _credentials(project),
        *_task_kinds(project),
        *_sandbox(project),
        *_writable(project),
        _gates(project),
        *_worktree_files(project),
        *_executor(project),
    ]


def _worktree_files(project: Project) -> list[Check]:
    """What each worktree gets copied and run (only when configured)."""
    from shoemaker.copied_files import CopyError
    from shoemaker.engine.furnish import check_copies

    cfg = project.config
    if not (cfg.worktree_copy or cfg.worktree_setup):
        return []
    try:
        found = check_copies(project)
    except CopyError as exc:
        return [Check("worktree files", False, str(exc), "edit worktree_copy")]
    setup = f", then {len(cfg.worktree_setup)} setup command(s)" if cfg.worktree_setup else ""
    return [Check("worktree files", True, f"{len(found)} file(s) copied into each{setup}")]


def _executor(project: Project) -> list[Check]:
    """executor: dask can be used here (no network: the cluster itself is asked by
    :func:`cluster_checks`, in ``shoemaker doctor`` only)."""
    cfg = project.config
    if cfg.executor == "local":
        return []
    if importlib.util.find_spec("distributed") is None:
        return [
            Check(
                "executor",
                False,
                "executor: dask, but Dask is not installed",
                "pip install 'shoemaker[dask]', or set executor: local",
            )
        ]
    if cfg.sandbox not in ("none", "bwrap"):
        return [
            Check(
                "executor",
                False,
                f"executor: dask runs agents on the workers in bwrap or no sandbox, not "
                f"{cfg.sandbox} (sandbox: {cfg.sandbox})",
                "set sandbox: bwrap (installed on every worker) or none, or executor: local",
            )
        ]
    boxed = ", agents and gates in bwrap on the workers" if cfg.sandbox == "bwrap" else ""
    return [Check("executor", True, f"dask at {cfg.dask.scheduler}{boxed}")]


def cluster_checks(project: Project) -> list[Check]:
    """``executor: dask``: the scheduler answers, has workers, and each has git and the
    agent CLI on its PATH (blocking: connects to the cluster)."""
    cfg = project.config
    if cfg.executor != "dask" or importlib.util.find_spec("distributed") is None:
        return []
    import asyncio

    from shoemaker.cluster.dask_runner import check_cluster

    commands = [cfg.agent.command, *(agent.command for agent in cfg.agents.values())]
    problems = asyncio.run(check_cluster(cfg.dask, *commands))
    if problems:
        fix = "start the scheduler and workers as the README's cluster section says"
        return [Check("dask cluster", False, "; ".join(problems), fix)]
    return [Check("dask cluster", True, f"{cfg.dask.scheduler}: workers have git and the CLIs")]


def _task_kinds(project: Project) -> list[Check]:
    """The CLI and credentials of each kind that tasks may name (``agents:``)."""
    cfg = project.config
    checks = []
    for kind, agent in cfg.agents.items():
        if kind == cfg.agent.kind:
            continue
        for check in (_agent(project, agent), _credentials(project, agent)):
            checks.append(Check(f"{check.name} ({kind})", check.ok, check.detail, check.fix))
    return checks


def preflight(project: Project) -> None:
    """Raise :class:`DoctorError` listing the failed checks (with fixes), if any."""
    failed = [c for c in run_checks(project) if not c.ok]
    if failed:
        raise DoctorError(
            "preflight failed (`shoemaker doctor` shows all checks): "
            + "; ".join(f"{c.name}: {c.detail} — {c.fix}" for c in failed)
        )
