"""What schedules have done and will do, in ``.shoemaker/schedules.json``: the daemon's next
fire times (while it runs) and each schedule's last batch. ``shoemaker schedule list`` and
the dashboard read it; :func:`schedule_rows` is what both show.

The file is rewritten whole (a temporary file renamed over it) under a lock of its own, so a
batch run by hand and the daemon never lose each other's writes.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

from shoemaker.config.models import Config
from shoemaker.events import BatchFinished

STATE_FILE = "schedules.json"


@contextlib.contextmanager
def _locked(state_dir: Path) -> Iterator[Path]:
    path = state_dir / STATE_FILE
    with (state_dir / f"{STATE_FILE}.lock").open("a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield path
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def read_state(state_dir: Path) -> dict[str, Any]:
    """The file's contents (empty when there is none or it cannot be read)."""
    try:
        data = json.loads((state_dir / STATE_FILE).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


def _update(state_dir: Path, change: Callable[[dict[str, Any]], None]) -> None:
    with _locked(state_dir) as path:
        data = read_state(state_dir)
        change(data)
        tmp = path.with_suffix(f".{os.getpid()}.tmp")
        tmp.write_text(json.dumps(data, indent=1, sort_keys=True), encoding="utf-8")
        tmp.replace(path)


def record_daemon(state_dir: Path, pid: int, next_fire: dict[str, float], now: float) -> None:
    """The daemon ``pid`` fires each schedule next at ``next_fire[name]``."""

    def change(data: dict[str, Any]) -> None:
        data["daemon"] = {"pid": pid, "updated": now}
        data["next"] = next_fire

    _update(state_dir, change)


def clear_daemon(state_dir: Path, pid: int) -> None:
    """The daemon ``pid`` ended: nothing fires any more."""

    def change(data: dict[str, Any]) -> None:
        if (data.get("daemon") or {}).get("pid") == pid:
            data["daemon"] = None
            data["next"] = {}

    _update(state_dir, change)


def record_batch(state_dir: Path, event: BatchFinished) -> None:
    """The schedule's last batch, as its event tells it."""

    def change(data: dict[str, Any]) -> None:
        last = data.setdefault("last", {})
        last[event.schedule] = {
            "outcome": event.outcome,
            "reason": event.reason,
            "done": event.tasks_done,
            "failed": event.tasks_failed,
            "generation": event.generation,
            "ended": event.ts,
        }

    _update(state_dir, change)


def daemon_pid(data: dict[str, Any]) -> int | None:
    """The pid of the daemon the file names, when that process is alive."""
    pid = (data.get("daemon") or {}).get("pid")
    if not isinstance(pid, int):
        return None
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return None
    except PermissionError:
        return pid
    return pid


@dataclass(frozen=True, slots=True)
class ScheduleRow:
    """One schedule as people see it."""

    name: str
    cron: str
    zone: str
    next: str
    """The next fire time with its zone; a daemon's when one runs, else when it would fire."""
    firing: bool
    """Whether a running daemon will fire it."""
    last: str
    """The last batch's outcome in words ("" when none ran yet)."""


def _last(entry: dict[str, Any], zone: Any) -> str:
    try:
        ended = datetime.fromtimestamp(float(entry["ended"]), zone)
        return (
            f"{entry['outcome']} {ended:%m-%d %H:%M}: {entry['done']} done, "
            f"{entry['failed']} failed ({entry['reason']})"
        )
    except (KeyError, TypeError, ValueError):
        return ""


def schedule_rows(config: Config, state_dir: Path, now: float) -> list[ScheduleRow]:
    """Every configured schedule with its next fire time and last batch."""
    if not config.schedules:
        return []
    from shoemaker.engine.cron import fire_times, schedule_zone, shown

    data = read_state(state_dir)
    daemon = daemon_pid(data)
    planned = data.get("next") or {} if daemon else {}
    rows = []
    for schedule in config.schedules:
        zone = schedule_zone(config, schedule)
        at = planned.get(schedule.name)
        if isinstance(at, int | float):
            moment = datetime.fromtimestamp(at, zone)
        else:
            moment = fire_times(schedule.cron, zone, now, 1)[0]
        rows.append(
            ScheduleRow(
                name=schedule.name,
                cron=schedule.cron,
                zone=zone.key,
                next=shown(moment),
                firing=daemon is not None,
                last=_last((data.get("last") or {}).get(schedule.name) or {}, zone),
            )
        )
    return rows
