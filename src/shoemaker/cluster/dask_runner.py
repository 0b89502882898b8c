"""The attempt runner of ``executor: dask``: attempts on the workers of a Dask cluster.

Only this module imports ``distributed`` (``pip install 'shoemaker[dask]'``). Each attempt is
one task submitted with its spec inline (a bundle of a few KB travels faster than a scattered
one that pins the task to where it was scattered), engine-side retries off
(``allowed-failures`` 0, so a lost worker is reported, never silently re-run), and the worker's
events coming back through a ``distributed.Queue`` named after the attempt. The worker watches
its own task: once the scheduler has released it (cancelled here, or this process gone), the
agent is stopped and the clone removed.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Mapping
from typing import Any

import dask
from distributed import Client, LocalCluster, Queue, get_worker
from distributed.client import FutureCancelledError
from distributed.scheduler import KilledWorker

from shoemaker.cluster.attempt import (
    AttemptEvent,
    AttemptResult,
    AttemptSpec,
    EventSink,
    FailureKind,
    Lines,
    RunnerFailure,
    Started,
    Waiting,
)
from shoemaker.config import DaskConfig

#: How often a worker checks that its task is still wanted, and home that the scheduler is up.
WATCH_SEC = 0.5
_END = "end"


def _encode(event: AttemptEvent) -> list[Any]:
    # Queue items travel as msgpack: plain values only, no class of shoemaker's.
    if isinstance(event, Started):
        return ["start", event.worker, event.pid, event.worker_pid, event.sandbox]
    assert isinstance(event, Lines)
    return ["lines", [[when, list(lines)] for when, lines in event.reads]]


def _decode(item: list[Any]) -> AttemptEvent:
    if item[0] == "start":
        return Started(item[1], item[2], item[3], item[4])
    return Lines(tuple((float(when), tuple(lines)) for when, lines in item[1]))


def run_attempt(spec: AttemptSpec, queue_name: str) -> AttemptResult:
    """The task a Dask worker runs: :func:`shoemaker.cluster.worker.execute`, its events put
    on the attempt's queue, stopped when the scheduler no longer wants its result."""
    from shoemaker.cluster.worker import execute

    worker = get_worker()
    queue = Queue(queue_name)
    name = str(worker.name) if worker.name is not None else worker.address

    def send(event: AttemptEvent) -> None:
        queue.put(_encode(event))

    def wanted() -> bool:
        state = worker.state.tasks.get(spec.key)
        return state is not None and state.state in ("executing", "long-running")

    async def watched() -> AttemptResult:
        attempt = asyncio.create_task(execute(spec, send, name))
        while not attempt.done():
            await asyncio.wait([attempt], timeout=WATCH_SEC)
            if not attempt.done() and not wanted():
                attempt.cancel()
        return attempt.result()

    try:
        return asyncio.run(watched())
    finally:
        with contextlib.suppress(Exception):
            queue.put([_END])


def _scheduler_allows_no_failures(dask_scheduler: Any) -> int:
    dask_scheduler.allowed_failures = 0
    return int(dask_scheduler.allowed_failures)


class DaskRunner:
    """Runs attempts on a Dask cluster: a running scheduler (``tcp://host:port``) or a local
    cluster of N workers (``local:N``) that lives as long as this runner."""

    def __init__(self, config: DaskConfig) -> None:
        self.config = config
        self.client: Client | None = None
        self.cluster: Any = None
        """The ``LocalCluster`` of ``local:N``."""
        self.latencies: list[float] = []
        """Seconds from a line's read on the worker to its arrival here, per line."""

    @property
    def address(self) -> str:
        return self.config.scheduler

    async def connect(self) -> None:
        """Connect (or start the local cluster); :class:`RunnerFailure` ``scheduler-gone``
        when the scheduler cannot be reached in ``connect_timeout_sec``."""
        if self.client is not None:
            return
        timeout = self.config.connect_timeout_sec
        try:
            if self.address.startswith("local:"):
                with dask.config.set({"distributed.scheduler.allowed-failures": 0}):
                    self.cluster = await LocalCluster(
                        n_workers=int(self.address.removeprefix("local:")),
                        threads_per_worker=1,
                        host="127.0.0.1",
                        dashboard_address=None,
                        resources=dict(self.config.resources) or None,
                        asynchronous=True,
                    )
                self.client = Client(self.cluster, asynchronous=True, timeout=timeout)
            else:
                self.client = Client(self.address, asynchronous=True, timeout=timeout)
            await self.client  # kept before it connects, so that a failure closes it too
            # A lost worker must come back to us as such, never as a silent re-run elsewhere.
            await self.client.run_on_scheduler(_scheduler_allows_no_failures)
        except (OSError, TimeoutError) as exc:
            await self.close()
            raise RunnerFailure(
                "scheduler-gone", f"cannot reach the dask scheduler at {self.address}: {exc}"
            ) from exc
        except BaseException:
            # Cancelled, or another error of the cluster: the client made is closed here.
            # Left to its collection, it would close on a loop that has ended and print a
            # traceback ("IOLoop is closed") when the process exits.
            await asyncio.shield(self.close())
            raise

    async def close(self) -> None:
        client, cluster, self.client, self.cluster = self.client, self.cluster, None, None
        if client is not None:
            with contextlib.suppress(Exception):
                await client.close(timeout=5)
            if client.status != "closed":
                # Still reconnecting to a scheduler that went away, it did not close in
                # time; left "closing", its collection would close it again on a loop that
                # has ended (a coroutine never awaited). Nothing of it is used any more.
                client.status = "closed"
        if cluster is not None:
            with contextlib.suppress(Exception):
                await cluster.close(timeout=10)

    def _gone(self) -> bool:
        return self.client is None or self.client.status not in ("running", "newly-created")

    async def run(self, spec: AttemptSpec, on_event: EventSink) -> AttemptResult:
        await self.connect()
        client = self.client
        if client is None or self._gone():
            raise RunnerFailure("scheduler-gone", f"the dask scheduler at {self.address} is gone")
        queue_name = f"shoemaker-{spec.key}"
        try:
            if spec.resources and await self._no_worker_has(spec.resources):
                asked = ", ".join(f"{name}={amount:g}" for name, amount in spec.resources.items())
                on_event(Waiting(f"no dask worker has {asked} now: it waits for one that has"))
            queue = await Queue(queue_name, client=client)  # there before the worker puts
            future = client.submit(
                run_attempt,
                spec,
                queue_name,
                key=spec.key,
                pure=False,
                retries=0,
                resources=dict(spec.resources) or None,
            )
        except Exception as exc:
            kind: FailureKind = "scheduler-gone" if self._gone() else "error"
            raise RunnerFailure(kind, f"cannot submit to {self.address}: {exc}") from exc
        reader = asyncio.create_task(self._forward(queue, on_event))
        try:
            result: AttemptResult = await self._wait(future)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(asyncio.shield(reader), 10)
            return result
        except BaseException:
            with contextlib.suppress(Exception):
                if not self._gone():
                    await asyncio.shield(client.cancel([future], force=True))
            raise
        finally:
            reader.cancel()
            await asyncio.wait([reader])  # its end, never its error; our own cancel still comes
            with contextlib.suppress(Exception):
                if not self._gone():
                    queue.close()

    async def _no_worker_has(self, resources: Mapping[str, float]) -> bool:
        """Whether no worker of the cluster has ``resources`` now (a busy one that has them
        counts: the attempt only waits its turn there). Only said, never decided on: a
        scheduler that does not answer is left to the submission to report."""
        assert self.client is not None and self.client.scheduler is not None
        try:
            identity = await self.client.scheduler.identity()
        except Exception:
            return False
        workers = identity.get("workers", {}).values()
        has = [worker.get("resources") or {} for worker in workers]
        return not any(all(own.get(r, 0) >= need for r, need in resources.items()) for own in has)

    async def _wait(self, future: Any) -> AttemptResult:
        waiting = asyncio.ensure_future(future.result())
        try:
            while True:
                done, _ = await asyncio.wait([waiting], timeout=WATCH_SEC)
                if done:
                    break
                if self._gone():
                    raise RunnerFailure(
                        "scheduler-gone", f"the dask scheduler at {self.address} went away"
                    )
            result: AttemptResult = waiting.result()
            return result
        except KilledWorker as exc:
            raise RunnerFailure("worker-lost", f"its dask worker was lost ({exc})") from exc
        except FutureCancelledError as exc:
            message = f"the cluster cancelled it ({exc.reason})"
            if self._gone() or exc.reason == "scheduler-connection-lost":
                raise RunnerFailure("scheduler-gone", message) from exc
            raise RunnerFailure("cancelled", message) from exc
        except RunnerFailure:
            raise
        except Exception as exc:
            # What the worker function raised (a bundle git refused), or the connection.
            if self._gone():
                raise RunnerFailure(
                    "scheduler-gone", f"the dask scheduler at {self.address} went away: {exc}"
                ) from exc
            raise RunnerFailure("error", f"{type(exc).__name__}: {exc}") from exc
        finally:
            waiting.cancel()

    async def _forward(self, queue: Any, on_event: EventSink) -> None:
        while True:
            item = await queue.get()  # cancelled when the attempt is over, if ever waiting
            if item[0] == _END:
                return
            event = _decode(item)
            if isinstance(event, Lines):
                now = time.time()
                for when, lines in event.reads:
                    self.latencies.extend([now - when] * len(lines))
            on_event(event)


async def check_cluster(config: DaskConfig, *agent_commands: str) -> list[str]:
    """What ``shoemaker doctor`` says of the cluster: problems (empty: all fine). Each worker
    must have git and every agent CLI the run may start (``agent``'s, and those of
    ``agents:``, which tasks may name)."""
    runner = DaskRunner(config)
    try:
        await runner.connect()
    except RunnerFailure as exc:
        return [f"{exc}; start it (dask scheduler) or fix dask.scheduler"]
    assert runner.client is not None
    commands = list(dict.fromkeys(agent_commands))
    try:
        found: dict[str, dict[str, str]] = await runner.client.run(_which, commands, nanny=False)
    finally:
        await runner.close()
    if not found:
        return [f"the dask scheduler at {config.scheduler} has no worker; start `dask worker`"]
    problems = []
    for worker, tools in sorted(found.items()):
        for tool, path in tools.items():
            if not path:
                problems.append(f"dask worker {worker}: {tool!r} is not on its PATH")
    return problems


def _which(agent_commands: list[str]) -> dict[str, str]:
    import shutil

    return {tool: shutil.which(tool) or "" for tool in ["git", *agent_commands]}


__all__ = ["DaskRunner", "check_cluster", "run_attempt"]
