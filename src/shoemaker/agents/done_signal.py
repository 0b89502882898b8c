"""The agent's own completion signal: a small file it writes, which shoemaker reads afterwards.

A stitch run's environment names the task (``SHOEMAKER_TASK``), the file to write
(``SHOEMAKER_DONE_FILE``, in a directory of the run's own that every sandbox leaves writable)
and a command that writes it (``SHOEMAKER``: the host's ``shoemaker`` where the host's files
are visible, else ``done.sh``, a POSIX sh script with the same interface). The agent runs
``"$SHOEMAKER" done [--status completed|blocked] [--reason TEXT]``; the file is::

    shoemaker-done 1
    task: <id>
    status: <completed|blocked>

    <reason, UTF-8, to the end of the file>

The engine reads it as untrusted input: at most :data:`MAX_BYTES`, a regular file (never a
link or a pipe), every header line exactly as above, the task its own. A file that breaks a
rule is a :class:`BadSignal` whose message says which; the reason is text to show, with
control characters removed, never anything to run.
"""

from __future__ import annotations

import contextlib
import os
import re
import stat
import sys
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from shoemaker.errors import BadInput

TASK_ENV = "SHOEMAKER_TASK"
FILE_ENV = "SHOEMAKER_DONE_FILE"
COMMAND_ENV = "SHOEMAKER"
#: Every variable a stitch run gets for the signal (passed by name into containers).
SIGNAL_ENV = (TASK_ENV, FILE_ENV, COMMAND_ENV)

FILE_NAME = "shoemaker-done"
MAGIC = "shoemaker-done 1"
#: The largest signal file read; a larger one is refused, not cut.
MAX_BYTES = 8192
#: The sh twin of ``shoemaker done`` for sandboxes without the host's files (a container).
SCRIPT = Path(__file__).with_name("done.sh")

Status = Literal["completed", "blocked"]
STATUSES: tuple[Status, ...] = ("completed", "blocked")

_CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f-\x9f]")
_TASK_ID = re.compile(r"[1-9][0-9]{0,17}")


class BadSignal(ValueError):
    """A signal file that breaks the format; the message says how (it becomes the reason of
    a failed attempt)."""


class NotInRun(BadInput):
    """``shoemaker done`` outside a run that shoemaker started: there is nowhere to signal."""


@dataclass(frozen=True, slots=True)
class DoneSignal:
    """What the agent said about its task: ``completed``, or ``blocked`` with its reason."""

    status: Status
    reason: str = ""


def format_signal(task_id: str, status: Status, reason: str) -> bytes:
    """The signal file's bytes (what ``done.sh`` writes too)."""
    return f"{MAGIC}\ntask: {task_id}\nstatus: {status}\n\n{reason}".encode()


def clean_reason(text: str) -> str:
    """The reason as it may be shown: no control characters but newlines and tabs."""
    return _CONTROL.sub("", text).strip()


def check_request(status: str, reason: str) -> Status:
    """``status`` if a signal with it and ``reason`` may be written; else :class:`BadInput`."""
    if status not in STATUSES:
        raise BadInput(f"--status {status!r}: use completed or blocked")
    if status == "blocked" and not clean_reason(reason):
        raise BadInput("--status blocked needs --reason TEXT: what a person must do or decide")
    size = len(format_signal("0" * 18, "completed", reason))
    if size > MAX_BYTES:
        raise BadInput(f"--reason is {size} bytes long; keep it under {MAX_BYTES - 64}")
    return "completed" if status == "completed" else "blocked"


def write_signal(env: Mapping[str, str], status: str, reason: str) -> Path:
    """Write the signal of the run whose environment is ``env`` (``shoemaker done``); returns
    the file. Outside a run: :class:`NotInRun`, nothing written."""
    task, target = env.get(TASK_ENV, ""), env.get(FILE_ENV, "")
    if not task or not target:
        missing = TASK_ENV if not task else FILE_ENV
        raise NotInRun(
            f"not inside a shoemaker run ({missing} is not set): only an agent that shoemaker "
            "started for a task can signal it"
        )
    if not _TASK_ID.fullmatch(task):
        raise NotInRun(f"{TASK_ENV}={task[:40]!r} is not a task id; run it as the agent started")
    checked = check_request(status, reason)
    path = Path(target)
    if not path.parent.is_dir():
        raise NotInRun(f"{FILE_ENV}: {path.parent} is not a directory; is the run still going?")
    # Written beside the target and renamed over it: the engine never reads half a file.
    tmp = path.with_name(f".{path.name}.{os.getpid()}")
    try:
        tmp.write_bytes(format_signal(task, checked, reason))
        tmp.replace(path)
    except OSError as exc:
        with contextlib.suppress(OSError):
            tmp.unlink()
        raise BadInput(f"{FILE_ENV}: {path} cannot be written ({exc.strerror})") from None
    return path


def read_signal(path: Path, task_id: int) -> DoneSignal | None:
    """The signal the agent of ``task_id`` left at ``path``; ``None`` when there is none.

    Raises :class:`BadSignal` for anything but a well-formed signal of this task."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK)
    except FileNotFoundError:
        return None
    except OSError as exc:
        raise BadSignal(f"its signal file cannot be opened ({exc.strerror})") from None
    with os.fdopen(fd, "rb") as f:
        if not stat.S_ISREG(os.fstat(f.fileno()).st_mode):
            raise BadSignal("its signal file is not a regular file")
        data = f.read(MAX_BYTES + 1)
    return parse_signal(data, task_id)


def parse_signal(data: bytes, task_id: int) -> DoneSignal:
    """A signal file's bytes, checked strictly (see the module's docstring)."""
    if len(data) > MAX_BYTES:
        raise BadSignal(f"its signal file is over {MAX_BYTES} bytes")
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise BadSignal(f"its signal file is not UTF-8 (byte {exc.start})") from None
    head, sep, body = text.partition("\n\n")
    lines = head.split("\n")
    if not sep or len(lines) != 3 or lines[0] != MAGIC:
        raise BadSignal(
            f"its signal file does not start with {MAGIC!r}, a task line and a status line, "
            "then an empty line; write it with `shoemaker done`"
        )
    if lines[1] != f"task: {task_id}":
        raise BadSignal(f"its signal file names {lines[1][:40]!r}, not task: {task_id}")
    status = lines[2].removeprefix("status: ")
    if not lines[2].startswith("status: ") or status not in STATUSES:
        raise BadSignal(
            f"its signal file says {lines[2][:40]!r}; the status is completed or blocked"
        )
    reason = clean_reason(body)
    if status == "blocked":
        if not reason:
            raise BadSignal("it signalled blocked without a reason")
        return DoneSignal("blocked", reason)
    return DoneSignal("completed", reason)


def signal_command(sandbox: str, directory: Path) -> Path:
    """What the agent runs as ``"$SHOEMAKER" done …``: the host's ``shoemaker`` where the
    host's files are visible (no sandbox, bubblewrap), else a copy of ``done.sh`` in the run's
    ``directory`` (which a container mounts; the copy is executable whatever the package's
    file modes are)."""
    if sandbox in ("none", "bwrap"):
        host = Path(sys.executable).with_name("shoemaker")
        if host.is_file() and os.access(host, os.X_OK):
            return host
    script = directory / ".shoemaker-bin" / "shoemaker"
    script.parent.mkdir(exist_ok=True)
    script.write_bytes(SCRIPT.read_bytes())
    script.chmod(0o555)
    return script


def signal_environment(task_id: int, directory: Path, command: Path) -> dict[str, str]:
    """The variables of a stitch run that let its agent signal (see the module docstring)."""
    return {
        TASK_ENV: str(task_id),
        FILE_ENV: str(directory / FILE_NAME),
        COMMAND_ENV: str(command),
    }


__all__ = [
    "COMMAND_ENV",
    "FILE_ENV",
    "FILE_NAME",
    "MAX_BYTES",
    "SCRIPT",
    "SIGNAL_ENV",
    "STATUSES",
    "TASK_ENV",
    "BadSignal",
    "DoneSignal",
    "NotInRun",
    "check_request",
    "clean_reason",
    "format_signal",
    "parse_signal",
    "read_signal",
    "signal_command",
    "signal_environment",
    "write_signal",
]
