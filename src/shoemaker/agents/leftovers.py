"""What a run leaves behind: every process it started, found and killed when it ends.

A process group is not enough: ``setsid`` (or a double fork) leaves it, and such a process would
outlive the run. Two nets catch what leaves the group:

- a cgroup v2 of the run's own, where this machine lets shoemaker make one (a child of the
  cgroup shoemaker runs in): the run's process is moved into it as it starts, before it is
  given its prompt (:meth:`Leftovers.adopt`), so all it starts is in it, however it
  detaches, and ``cgroup.kill`` ends them together. Entering it from the child before it
  executes would need a ``preexec_fn``, which makes Python ``fork()`` shoemaker's whole
  process (its page tables copied, 5–30 ms an agent, the event loop stopped meanwhile)
  instead of ``vfork()``; a process started in the instant before the move is still the
  run's by its marker;
- the run's ``SHOEMAKER_RUN`` marker in the environment, which every descendant inherits:
  ``/proc`` is scanned for it (recovery finds the processes of a crashed shoemaker this way).

In a sandbox with a PID namespace everything dies with the namespace anyway; these nets are
for the rest.
"""

from __future__ import annotations

import asyncio
import atexit
import contextlib
import itertools
import os
import signal
from collections.abc import Callable, Collection, Iterator
from pathlib import Path

#: The environment variable every process of a run carries; its value names project and run.
RUN_MARKER = "SHOEMAKER_RUN"

_CGROUP_PREFIX = "shoemaker-"
_GONE_SEC = 10.0
_counter = itertools.count(1)
# Cgroups of runs still going, so that an interpreter exit kills what is in them.
_LIVE: set[Path] = set()
# Cgroups of finished runs whose removal was refused (a process not yet reaped).
_PENDING: set[Path] = set()


def environments() -> Iterator[tuple[int, list[bytes]]]:
    """Each live process (but this one) with its environment, where it may be read."""
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit() or int(entry.name) == os.getpid():
            continue
        try:
            yield int(entry.name), (entry / "environ").read_bytes().split(b"\0")
        except OSError:
            continue  # gone, or another user's


def marked_processes(markers: Collection[str]) -> list[int]:
    """Live processes whose environment carries one of ``markers`` as SHOEMAKER_RUN."""
    wanted = {f"{RUN_MARKER}={m}".encode() for m in markers}
    return [pid for pid, env in environments() if wanted.intersection(env)]


def alive(pid: int) -> bool:
    """Whether ``pid`` runs (a zombie does not)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat.rsplit(")", 1)[-1].split()[0] != "Z"


async def exited(pid: int) -> None:
    """Wait until ``pid`` has exited, without reaping it (any process, not only a child)."""
    try:
        fd = os.pidfd_open(pid)
    except (OSError, AttributeError):
        while alive(pid):  # no pidfd (old kernel): look at /proc now and then
            await asyncio.sleep(0.05)
        return
    loop = asyncio.get_running_loop()
    done = loop.create_future()

    def ready() -> None:
        if not done.done():
            done.set_result(None)

    loop.add_reader(fd, ready)
    try:
        await done
    finally:
        loop.remove_reader(fd)
        os.close(fd)


def _cgroup2_mount() -> Path | None:
    """Where the cgroup v2 hierarchy is mounted (``/sys/fs/cgroup``, or ``…/unified``)."""
    try:
        lines = Path("/proc/self/mountinfo").read_text().splitlines()
    except OSError:
        return None
    for line in lines:
        before, _, after = line.partition(" - ")
        if after.split(" ", 1)[0] == "cgroup2":
            return Path(before.split()[4])
    return None


def _own_cgroup() -> str | None:
    try:
        lines = Path("/proc/self/cgroup").read_text().splitlines()
    except OSError:
        return None
    return next((line[3:] for line in lines if line.startswith("0::")), None)


class RunCgroup:
    """A cgroup v2 made for one run, beside nothing else: what is in it belongs to the run."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._procs = os.fsencode(path / "cgroup.procs")

    @classmethod
    def create(cls) -> RunCgroup | None:
        """A new child of this process's cgroup, or None where that is not allowed."""
        mount, own = _cgroup2_mount(), _own_cgroup()
        if mount is None or own is None:
            return None
        parent = mount / own.lstrip("/")
        _remove_stale(parent)
        for pending in list(_PENDING):
            with contextlib.suppress(OSError):
                pending.rmdir()
                _PENDING.discard(pending)
        path = parent / f"{_CGROUP_PREFIX}{os.getpid()}-{next(_counter)}"
        try:
            path.mkdir()
        except OSError:
            return None
        if not (path / "cgroup.procs").exists():  # not a cgroup after all (a plain tmpfs)
            with contextlib.suppress(OSError):
                path.rmdir()
            return None
        _LIVE.add(path)
        return cls(path)

    def add(self, pid: int) -> None:
        """Move process ``pid`` into the cgroup; a refusal (it is gone already) leaves it
        where it is (the marker still finds what it started)."""
        try:
            fd = os.open(self._procs, os.O_WRONLY)
            try:
                os.write(fd, str(pid).encode())
            finally:
                os.close(fd)
        except OSError:
            pass

    def enter(self) -> None:
        """Move the calling process into the cgroup; called in the child before it executes.
        A refusal leaves the child where it is (the marker still finds it)."""
        try:
            fd = os.open(self._procs, os.O_WRONLY)
            try:
                os.write(fd, b"0")
            finally:
                os.close(fd)
        except OSError:
            pass

    def pids(self) -> list[int]:
        try:
            text = (self.path / "cgroup.procs").read_text()
        except OSError:
            return []
        return [int(p) for p in text.split()]

    def kill(self) -> None:
        """SIGKILL everything in the cgroup (``cgroup.kill`` where the kernel has it)."""
        try:
            (self.path / "cgroup.kill").write_text("1")
        except OSError:
            for pid in self.pids():
                with contextlib.suppress(ProcessLookupError, PermissionError):
                    os.kill(pid, signal.SIGKILL)

    def remove(self) -> None:
        """Remove the cgroup; refused while a killed process is not yet reaped (by its new
        parent), so a refusal is tried again when the next cgroup is made."""
        _LIVE.discard(self.path)
        try:
            self.path.rmdir()
        except FileNotFoundError:
            pass
        except OSError:
            _PENDING.add(self.path)


def _remove_stale(parent: Path) -> None:
    """Remove the empty cgroups of shoemaker processes that died without removing them."""
    with contextlib.suppress(OSError):
        for path in parent.glob(f"{_CGROUP_PREFIX}*-*"):
            owner = path.name[len(_CGROUP_PREFIX) :].split("-", 1)[0]
            if owner.isdigit() and not Path(f"/proc/{owner}").exists():
                with contextlib.suppress(OSError):
                    path.rmdir()  # refused while anything is in it


def _kill_live_at_exit() -> None:
    for path in list(_LIVE):
        with contextlib.suppress(OSError):
            (path / "cgroup.kill").write_text("1")
    for path in list(_PENDING):
        with contextlib.suppress(OSError):
            path.rmdir()


atexit.register(_kill_live_at_exit)


class Leftovers:
    """The processes of one run, wherever they went: its cgroup (when there is one) and its
    marker. :meth:`adopt` the run's process once it has started (or pass :attr:`preexec` to a
    process that forks anyway); :meth:`reap` at its end."""

    def __init__(self, marker: str | None) -> None:
        self.marker = marker or None
        self.cgroup = RunCgroup.create()

    @property
    def preexec(self) -> Callable[[], None] | None:
        return self.cgroup.enter if self.cgroup is not None else None

    def adopt(self, pid: int) -> None:
        """Move the run's process, just started, into the run's cgroup (where there is one)."""
        if self.cgroup is not None:
            self.cgroup.add(pid)

    def find(self) -> set[int]:
        found = set(self.cgroup.pids()) if self.cgroup is not None else set()
        if self.marker is not None:
            found.update(marked_processes([self.marker]))
        found.discard(os.getpid())
        return {pid for pid in found if alive(pid)}

    def interrupt_inside(self, wrapper: str) -> list[int]:
        """SIGINT every process of the run but the sandbox's own (``wrapper``, e.g. bwrap):
        an agent in a session of its own never gets the group's Ctrl-C, and the sandbox
        process would die of it and take the agent down before it says what it cost.
        Returns the pids signalled."""
        signalled = []
        for pid in sorted(self.find()):
            try:
                if Path(f"/proc/{pid}/comm").read_text().strip() == wrapper:
                    continue
                os.kill(pid, signal.SIGINT)
            except (OSError, ValueError):
                continue  # gone, or not ours to signal
            signalled.append(pid)
        return signalled

    async def reap(self, rounds: int = 20) -> list[int]:
        """Kill every process of the run that is still there and wait until they are gone
        (a process may fork while it is being killed: so in rounds, until none is found).
        Returns the pids killed."""
        killed: list[int] = []
        for _ in range(rounds):
            pids = await asyncio.to_thread(self.find)
            if not pids:
                break
            if self.cgroup is not None:
                self.cgroup.kill()
            signalled = []
            for pid in sorted(pids):
                with contextlib.suppress(ProcessLookupError, PermissionError):
                    os.kill(pid, signal.SIGKILL)
                    signalled.append(pid)
            if not signalled:
                break  # nothing this process may kill
            killed.extend(signalled)
            with contextlib.suppress(TimeoutError):
                # A SIGKILLed process is gone within moments; one stuck in the kernel is not
                # waited for without end.
                await asyncio.wait_for(asyncio.gather(*map(exited, signalled)), _GONE_SEC)
        self.close()
        return killed

    def close(self) -> None:
        """Give the cgroup back (it is removed once it is empty)."""
        if self.cgroup is not None:
            self.cgroup.remove()
