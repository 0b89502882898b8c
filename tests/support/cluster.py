"""A real Dask cluster on loopback for tests: ``dask scheduler`` and ``dask worker`` processes,
each on a port it picks itself (no port is guessed: two runs of the suite share the machine),
ended by pid."""

from __future__ import annotations

import contextlib
import os
import re
import select
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

from agents import new_token, processes_with_token

#: How long a scheduler or worker may take to say it is up, on a loaded machine.
START_TIMEOUT_S = 90.0
#: How long what the workers started (agents, janitors) may take to end once they are gone.
STOP_TIMEOUT_S = 10.0
DASK = str(Path(sys.executable).with_name("dask"))


#: The scheduler's log line that says where it listens.
SCHEDULER_AT = re.compile(r"Scheduler at:\s*tcp://127\.0\.0\.1:(\d+)")


def _wait_for_line(proc: subprocess.Popen[str], needle: str, what: str, seen: list[str]) -> str:
    """Read the process's log (into ``seen``) until a line holds ``needle``, then keep
    draining it on a thread, so that a full pipe never blocks it; returns that line."""
    assert proc.stderr is not None
    found = threading.Event()
    first: list[str] = []

    def read() -> None:
        assert proc.stderr is not None
        for line in proc.stderr:
            seen.append(line)
            if needle in line and not first:
                first.append(line)
                found.set()
        found.set()

    threading.Thread(target=read, daemon=True).start()
    if not found.wait(START_TIMEOUT_S) or proc.poll() is not None or not first:
        raise RuntimeError(f"{what} did not start:\n{''.join(seen[-30:])}")
    return first[0]


@dataclass
class Cluster:
    """One scheduler and its workers (nannies), all ended by pid."""

    env: dict[str, str]
    local_directory: Path
    """Dask's own scratch space (not the workers' TMPDIR, where attempts clone)."""
    port: int = 0
    """The scheduler's port: 0 until its first start, where it picks one itself and says
    which; a restart takes the same one (the projects' settings name it)."""
    scheduler: subprocess.Popen[str] | None = None
    workers: list[subprocess.Popen[str]] = field(default_factory=list)
    log: list[str] = field(default_factory=list)
    """What the scheduler and the workers logged."""

    @property
    def address(self) -> str:
        return f"tcp://127.0.0.1:{self.port}"

    def start_scheduler(self) -> None:
        self.scheduler = subprocess.Popen(
            [
                *(DASK, "scheduler", "--host", "127.0.0.1", "--port", str(self.port)),
                *("--dashboard-address", "127.0.0.1:0", "--no-dashboard", "--no-show"),
            ],
            env=self.env,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            text=True,
        )
        line = _wait_for_line(self.scheduler, "Scheduler at:", "dask scheduler", self.log)
        at = SCHEDULER_AT.search(line)
        if at is None:
            raise RuntimeError(f"dask scheduler said where it listens in a form not known: {line}")
        self.port = int(at[1])

    def start_worker(self, name: str, resources: str = "agent_slot=1") -> subprocess.Popen[str]:
        """A worker named ``name`` holding ``resources`` (``gpu=1,agent_slot=2``)."""
        worker = subprocess.Popen(
            [
                *(DASK, "worker", self.address, "--name", name, "--host", "127.0.0.1"),
                *("--nworkers", "1", "--nthreads", "2", "--resources", resources),
                *("--dashboard-address", "127.0.0.1:0", "--no-dashboard"),
                *("--local-directory", str(self.local_directory)),
            ],
            env=self.env,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            text=True,
        )
        self.workers.append(worker)
        _wait_for_line(worker, "Registered to:", f"dask worker {name}", self.log)
        return worker

    def kill_scheduler(self) -> None:
        if self.scheduler is not None:
            self.scheduler.kill()
            self.scheduler.wait()

    def stop(self) -> None:
        """End the cluster by pid: the scheduler, the nannies and their worker processes are
        killed; what the workers started (agents, janitors) is then waited for, and killed
        only if it outlives the deadline."""
        procs = [*self.workers, *([self.scheduler] if self.scheduler else [])]
        # Frozen first: a nanny restarting a killed worker must not spawn one after the
        # process tree below was read.
        for proc in procs:
            with contextlib.suppress(ProcessLookupError):
                os.kill(proc.pid, signal.SIGSTOP)
        tree = {pid for proc in procs for pid in descendants(proc.pid)}
        direct = {pid for proc in self.workers for pid in children(proc.pid)}
        for pid in [*(proc.pid for proc in procs), *direct]:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        for proc in procs:
            proc.wait()
        for pid in direct:  # a SIGKILLed process is still there until the kernel ends it
            wait_gone(pid, STOP_TIMEOUT_S)
        deadline = time.monotonic() + STOP_TIMEOUT_S
        for pid in tree - direct:
            if not wait_gone(pid, max(0.0, deadline - time.monotonic())):
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGKILL)
                wait_gone(pid, STOP_TIMEOUT_S)


def parent_of(pid: int) -> int | None:
    """The parent pid of a live process (None: gone)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    return int(stat.rsplit(")", 1)[1].split()[1])


def ancestors(pid: int) -> list[int]:
    chain = []
    while (parent := parent_of(pid)) not in (None, 0, 1):
        assert parent is not None
        chain.append(parent)
        pid = parent
    return chain


def _children_map() -> dict[int, list[int]]:
    below: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit() and (parent := parent_of(int(entry.name))) is not None:
            below.setdefault(parent, []).append(int(entry.name))
    return below


def children(pid: int) -> list[int]:
    """The live processes whose parent is ``pid``."""
    return _children_map().get(pid, [])


def descendants(pid: int) -> list[int]:
    """The live processes below ``pid``."""
    below = _children_map()
    found, todo = [], [pid]
    while todo:
        for child in below.get(todo.pop(), []):
            found.append(child)
            todo.append(child)
    return found


def wait_gone(pid: int, timeout: float) -> bool:
    """Wait (on a pidfd, no polling) until ``pid`` has exited; False if it is still there."""
    try:
        fd = os.pidfd_open(pid)
    except ProcessLookupError:
        return True
    try:
        poller = select.poll()
        poller.register(fd, select.POLLIN)
        return bool(poller.poll(timeout * 1000))
    finally:
        os.close(fd)


@contextlib.contextmanager
def two_workers(root: Path) -> Iterator[Cluster]:
    """A scheduler and workers w1, w2, their temporary files in ``root/worker-tmp`` and their
    environment marked; on the way out, nothing of theirs may be left running and no
    temporary clone left behind."""
    tmp = root / "worker-tmp"
    tmp.mkdir()
    env = {**os.environ, "TMPDIR": str(tmp), "SHOEMAKER_TEST_TOKEN": new_token()}
    env.pop("PYTEST_CURRENT_TEST", None)
    found = Cluster(env, root / "dask-local")
    try:
        found.start_scheduler()
        found.start_worker("w1")
        found.start_worker("w2")
        yield found
    finally:
        found.stop()
    # A worker killed by a test orphans Python's multiprocessing resource tracker, which ends
    # by itself once it reads the end of its pipe: awaited, as an agent left behind would not.
    for pid in processes_with_token(env["SHOEMAKER_TEST_TOKEN"]):
        if b"multiprocessing.resource_tracker" in cmdline(pid):
            wait_gone(pid, STOP_TIMEOUT_S)
    left = processes_with_token(env["SHOEMAKER_TEST_TOKEN"])
    assert left == [], [cmdline(pid) for pid in left]
    left_behind = sorted(str(p.relative_to(tmp)) for p in tmp.glob("shoemaker-*/**/*"))
    assert list(tmp.glob("shoemaker-*")) == [], f"a worker left a temporary clone: {left_behind}"


def cmdline(pid: int) -> bytes:
    """The command line of ``pid`` (empty once it is gone)."""
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return b""
