"""Attempts that run elsewhere, seen from home (``executor: dask``).

The stitcher's steps stay as they are; three of them go through :class:`ClusterAttempts`
instead: the worktree (the base is bundled and sent, nothing is checked out yet), the agent
(a :class:`ClusterAgent` is the ``AgentRunner`` of ``call_agent``: the worker's lines are
written to the run's transcript and published as a local agent's, its pid and worker name
recorded), and the gates (run on the worker, recorded here). Once the worker's result is back,
its bundle is fetched into ``task/<generation>-<id>`` and checked out in a worktree of the
pool, where the commit with trailers, review, the merge queue and metrics go on as for any
task.
"""

from __future__ import annotations

import asyncio
import inspect
import os
import tempfile
import uuid
from collections.abc import Awaitable, Callable, Mapping, Sequence
from pathlib import Path

from shoemaker.agents.adapters import adapter_for
from shoemaker.agents.done_signal import FILE_ENV, SIGNAL_ENV
from shoemaker.agents.leftovers import RUN_MARKER
from shoemaker.agents.runner import LineBatch, LineSink, PidSink, RunResult, RunSpec
from shoemaker.agents.streamjson import TranscriptSummary
from shoemaker.cluster.attempt import (
    AttemptEvent,
    AttemptResult,
    AttemptRunner,
    AttemptSpec,
    Lines,
    RunnerFailure,
    Sealed,
    Started,
    Waiting,
    WorkerSandbox,
)
from shoemaker.config import AgentConfig, GateConfig
from shoemaker.config.cluster import task_resources
from shoemaker.engine.attempts import Attempt, carried_over_message, log, set_aside_stale
from shoemaker.engine.gates import Failure, gates_for_title, judge_gate, plan_gates
from shoemaker.engine.project import Project
from shoemaker.engine.worktrees import WorktreePool
from shoemaker.errors import Failed
from shoemaker.model import Generation
from shoemaker.secrets import is_secret_name


class ClusterGone(Failed):
    """The cluster's scheduler cannot be reached: the generation pauses until it is back."""


_PENDING: set[asyncio.Future[None]] = set()


def _later(maybe: Awaitable[None] | None) -> None:
    """A sink that answered with an awaitable: awaited in its own task (events arrive in a
    plain callback)."""
    if inspect.isawaitable(maybe):
        future = asyncio.ensure_future(maybe)
        _PENDING.add(future)
        future.add_done_callback(_PENDING.discard)


def carry_over(project: Project, attempt: Attempt, base: str) -> str:
    """Where a cluster's attempt starts: ``base``, or, when the task branch holds work of an
    earlier attempt that is not merged, that work squashed onto ``base`` as the local path
    does it (``prepare_worktree``), made without a worktree; the branch is moved there, so
    the work is on the branch or in the new commit at every moment. Work that no longer
    applies is kept on attempt/* (the attempt starts from ``base``)."""
    git, task, branch = project.git, attempt.task, attempt.branch
    if not git.ref_exists(f"refs/heads/{branch}") or git.is_ancestor(branch, base):
        return base  # nothing on it that is not merged
    old = git.rev_parse(branch)
    carried = git.squash_onto(
        branch,
        base,
        carried_over_message(git, task),
    )
    if carried.merged:
        git.move_branch(branch, carried.commit, old)
        if carried.commit != base:
            log(project, task, "continuing the work of the earlier attempt")
        return carried.commit
    set_aside_stale(project, task, branch, attempt.number - 1, carried.reason)
    return base


class ClusterAgent:
    """The ``AgentRunner`` of one attempt on a cluster: the whole attempt (agent, commit,
    gates) runs there; what ``call_agent`` sees is the agent's part of it."""

    sandboxes_there = True
    """``call_agent`` passes the bare command line: the worker wraps it in the sandbox."""
    launches_there = True
    """``call_agent`` makes no config home for the agent here: the worker makes it (and reads
    back what the run left in it); the person's login files travel sealed in the spec."""

    def __init__(
        self,
        runner: AttemptRunner,
        attempt: Attempt,
        bundle: bytes,
        agent: AgentConfig,
        gates: Sequence[GateConfig],
        batch_sec: float,
        announce: Callable[[str], None] | None = None,
        sandbox: WorkerSandbox | None = None,
        resources: Mapping[str, float] | None = None,
        warn: Callable[[str], None] | None = None,
        start: str = "",
    ) -> None:
        self.runner, self.attempt, self.bundle = runner, attempt, bundle
        self.sandbox = sandbox or WorkerSandbox()
        self.resources = dict(resources or {})
        self.start = start
        """The commit of carried-over work the worker starts from ("": the base)."""
        self.announce = announce
        """Told the worker's name once the agent runs there."""
        self.warn = warn
        """Told why the attempt waits (no worker has its resources)."""
        self.agent, self.gates, self.batch_sec = agent, tuple(gates), batch_sec
        self.key = (
            f"shoemaker-{attempt.task.generation}-{attempt.task.id}-{attempt.number}-"
            f"{uuid.uuid4().hex[:8]}"
        )
        self.where = ""
        """The worker's name, once the agent runs."""
        self.started: Started | None = None
        self.result: AttemptResult | None = None
        self.failure: RunnerFailure | None = None

    @property
    def ran_in(self) -> str:
        """The sandbox the worker runs the agent in, as it said (empty: not started)."""
        return self.started.sandbox if self.started is not None else ""

    def _passed(self, env: dict[str, str]) -> dict[str, str]:
        """What the run brings to the worker: the agent's env, secrets, the run's marker and
        whatever differs from this process's own environment; the worker's own environment
        gives the rest (its PATH, its HOME). The done signal's place is the worker's."""
        return {
            name: value
            for name, value in env.items()
            if name not in SIGNAL_ENV
            and (
                name in self.agent.env
                or is_secret_name(name)
                or name == RUN_MARKER
                or os.environ.get(name) != value
            )
        }

    async def run(
        self, spec: RunSpec, on_lines: LineSink | None = None, on_pid: PidSink | None = None
    ) -> RunResult:
        attempt = self.attempt
        remote = AttemptSpec(
            key=self.key,
            task_id=attempt.task.id,
            attempt=attempt.number,
            base=attempt.base,
            bundle=self.bundle,
            branch=attempt.branch,
            agent=self.agent,
            argv=tuple(spec.argv),
            env=Sealed(self._passed(dict(spec.env))),
            prompt=spec.prompt,
            gates=self.gates,
            max_time_sec=spec.max_time_sec,
            idle_timeout_sec=spec.idle_timeout_sec,
            kill_grace_sec=spec.kill_grace_sec,
            signal=FILE_ENV in spec.env,
            batch_sec=self.batch_sec,
            die_with_worker=True,
            sandbox=self.sandbox,
            resources=self.resources,
            start=self.start,
            login=Sealed(adapter_for(self.agent.kind).login_files(spec.env)),
        )
        spec.transcript_path.parent.mkdir(parents=True, exist_ok=True)
        with spec.transcript_path.open("wb") as transcript:
            written = 0

            def on_event(event: AttemptEvent) -> None:
                nonlocal written
                if isinstance(event, Waiting):
                    if self.warn is not None:
                        self.warn(event.why)
                    return
                if isinstance(event, Started):
                    self.where, self.started = event.worker, event
                    if self.announce is not None:
                        self.announce(event.worker)
                    if on_pid is not None:
                        _later(on_pid(event.pid))
                    return
                assert isinstance(event, Lines)
                for _, lines in event.reads:
                    start = written
                    for line in lines:
                        data = line + b"\n"
                        data = spec.redact(data) if spec.redact is not None else data
                        transcript.write(data)
                        written += len(data)
                    transcript.flush()  # before the event that names these bytes
                    if on_lines is not None:
                        _later(on_lines(LineBatch(lines, start, written)))

            try:
                self.result = await self.runner.run(remote, on_event)
            except RunnerFailure as failure:
                self.failure = failure
                reason = f"{failure.kind}: {failure}"
                return RunResult(None, TranscriptSummary(), False, reason, killed=failure.kind)
        if self.result.signal is not None and FILE_ENV in spec.env:
            Path(spec.env[FILE_ENV]).write_bytes(self.result.signal)
        return self.result.run


class ClusterAttempts:
    """A stitcher's way to the cluster: the runner (connected on first use, closed with the
    run), and the home side of each attempt."""

    def __init__(self, project: Project, runner: AttemptRunner | None = None) -> None:
        self.project = project
        self._runner = runner
        self._connecting = asyncio.Lock()  # the first attempts start together: one client
        self._bundle: tuple[str, bytes] = ("", b"")
        """The last base bundled: attempts that start before the next merge share it."""
        self._starts: dict[tuple[int, int], str] = {}
        """(task, attempt) → the commit of carried-over work it starts from."""

    async def runner(self) -> AttemptRunner:
        async with self._connecting:
            return await self._connect()

    async def _connect(self) -> AttemptRunner:
        if self._runner is None:
            # Imported only now: the default install has no Dask, and never needs it.
            try:
                from shoemaker.cluster.dask_runner import DaskRunner
            except ImportError as exc:
                raise Failed(
                    "executor: dask needs Dask: pip install 'shoemaker[dask]' "
                    f"(or set executor: local in configuration.yaml) [{exc}]"
                ) from exc
            runner = DaskRunner(self.project.config.dask)
            try:
                await runner.connect()
            except RunnerFailure as failure:
                raise ClusterGone(self.paused_message(failure)) from failure
            self._runner = runner
        return self._runner

    def paused_message(self, failure: RunnerFailure) -> str:
        return (
            f"{failure}; the generation is paused: start the scheduler again "
            f"(dask.scheduler: {self.project.config.dask.scheduler}) and `shoemaker resume`"
        )

    async def close(self) -> None:
        runner, self._runner = self._runner, None
        if runner is not None:
            await runner.close()

    def prepare(self, generation: Generation, attempt: Attempt) -> tuple[str, bytes]:
        """The base (the generation head) and a bundle that holds where the attempt starts.
        Work that an earlier attempt left on the task branch (cut short, or failed in a way
        that asks for a targeted fix) is carried over as at home: squashed onto the base,
        the branch moved there, ``attempt.continuing`` set, and the worker starts from it;
        work that no longer applies is kept on attempt/* and the attempt starts afresh."""
        git = self.project.git
        base = git.rev_parse(generation.branch)
        start = carry_over(self.project, attempt, base)
        attempt.continuing = start != base
        if attempt.continuing:
            self._starts[(attempt.task.id, attempt.number)] = start
            return base, git.bundle(start)
        git.delete_branch(attempt.branch, force=True, missing_ok=True)
        known, bundle = self._bundle
        if known != base:
            bundle = git.bundle(base)
            self._bundle = (base, bundle)
        return base, bundle

    async def agent(self, attempt: Attempt, bundle: bytes, agent: AgentConfig) -> ClusterAgent:
        config, task = self.project.config, attempt.task
        start = self._starts.pop((task.id, attempt.number), "")
        gates = [*gates_for_title(config.gates, task.title), *plan_gates(task)]
        project = self.project

        def announce(worker: str) -> None:
            log(project, task, f"attempt {attempt.number} runs on dask worker {worker}")

        def warn(why: str) -> None:
            log(project, task, f"attempt {attempt.number}: {why}", "warning")

        if config.sandbox not in ("none", "bwrap"):
            raise Failed(
                f"sandbox: {config.sandbox} does not run on a dask worker yet; "
                "set sandbox: bwrap or none, or executor: local"
            )
        sandbox = WorkerSandbox(config.sandbox, config.sandbox_network)
        try:
            asked = task_resources(task.extras.get("resources"))
        except ValueError as exc:
            raise Failed(f"{exc}; fix the task's resources in its plan") from None
        return ClusterAgent(
            await self.runner(),
            attempt,
            bundle,
            agent,
            gates,
            config.dask.batch_sec,
            announce,
            sandbox,
            {**config.dask.resources, **asked},
            warn,
            start,
        )

    def land_work(self, pool: WorktreePool, attempt: Attempt, agent: ClusterAgent) -> None:
        """The worker's work on the task branch, checked out in the attempt's worktree."""
        git, worktree, result = self.project.git, attempt.worktree, agent.result
        assert worktree is not None
        if result is None or result.commit is None:
            pool.prepare(worktree, attempt.branch, attempt.base)
            return
        with tempfile.TemporaryDirectory(prefix="shoemaker-bundle-") as where:
            path = Path(where) / "task.bundle"
            path.write_bytes(result.bundle)
            git.fetch_bundle(path, attempt.branch)
        pool.prepare(worktree, None, result.commit)
        git.checkout_branch(worktree, attempt.branch)

    async def gates(self, attempt: Attempt, agent: ClusterAgent) -> Failure | None:
        """The gates the worker ran, recorded and announced; the first failure, or None."""
        result = agent.result
        for ran in result.gates if result is not None else []:
            failure = await judge_gate(
                self.project, attempt.task, attempt.run_id, "worktree", ran.gate, ran.outcome
            )
            if failure is not None:
                return failure
        return None


__all__ = ["ClusterAgent", "ClusterAttempts", "ClusterGone"]
