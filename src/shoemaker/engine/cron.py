"""When schedules fire: cron expressions (croniter) read in a time zone, and the clock a
daemon waits on (injected, so tests move time themselves).

Daylight saving time: a fire time the clock skips (02:30 on the night the clocks go forward)
fires when the clock jumps (03:00); a fixed time the clock passes twice (02:30 on the night
they go back) fires once, the first time. An expression whose hour is ``*`` or a step fires
in every real hour, the repeated one included.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import time
from datetime import datetime
from pathlib import Path
from typing import Protocol
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from croniter import croniter

from shoemaker.config.models import Config
from shoemaker.config.schedules import ScheduleConfig

_ZONEINFO_DIRS = ("/usr/share/zoneinfo/", "/usr/lib/zoneinfo/", "/usr/share/lib/zoneinfo/")


class Clock(Protocol):
    """Wall-clock time and waiting for a moment of it."""

    def now(self) -> float:
        """Seconds since the epoch."""
        ...

    async def sleep_until(self, when: float) -> None:
        """Return at ``when`` (at once when it has passed)."""
        ...


class SystemClock:
    """The machine's clock. Waits in short steps, so that a suspended machine or a clock set
    forward fires what is due soon after it wakes."""

    step_s = 30.0

    def now(self) -> float:
        return time.time()

    async def sleep_until(self, when: float) -> None:
        while (left := when - time.time()) > 0:
            await asyncio.sleep(min(left, self.step_s))


def local_zone() -> ZoneInfo:
    """The machine's own time zone: ``TZ``, else what /etc/localtime links to, else
    /etc/timezone, else UTC."""
    candidates = [os.environ.get("TZ", "").removeprefix(":")]
    localtime = Path("/etc/localtime")
    if localtime.is_symlink():
        target = str(localtime.resolve())
        for prefix in _ZONEINFO_DIRS:
            if target.startswith(prefix):
                candidates.append(target.removeprefix(prefix))
    with contextlib.suppress(OSError):
        candidates.append(Path("/etc/timezone").read_text(encoding="utf-8").strip())
    for name in candidates:
        if name and not name.startswith("/"):
            try:
                return ZoneInfo(name)
            except (ZoneInfoNotFoundError, ValueError):
                continue
    return ZoneInfo("UTC")


def schedule_zone(config: Config, schedule: ScheduleConfig) -> ZoneInfo:
    """The zone a schedule's cron expression is read in: its own, the configuration's, or
    the machine's."""
    name = schedule.timezone or config.timezone
    return ZoneInfo(name) if name else local_zone()


def _fixed_hour(cron: str) -> bool:
    fields = cron.split()
    if len(fields) == 1:
        return cron not in ("@hourly",)
    return "*" not in fields[1] and "/" not in fields[1]


def fire_times(cron: str, zone: ZoneInfo, after: float, count: int) -> list[datetime]:
    """The next ``count`` moments ``cron`` fires strictly after ``after`` (seconds since the
    epoch), as aware datetimes in ``zone``."""
    start = datetime.fromtimestamp(after, zone)
    found: list[datetime] = []
    it = croniter(cron, start)
    fixed = _fixed_hour(cron)
    # The wall time just before ``after``: a fixed time passed twice fires once, even when
    # the first of the two lies before ``after``.
    previous = croniter(cron, start).get_prev(datetime)
    while len(found) < count:
        moment = it.get_next(datetime)
        if fixed and moment.replace(tzinfo=None) == previous.replace(tzinfo=None):
            continue
        previous = moment
        found.append(moment)
    return found


def next_fire(config: Config, schedule: ScheduleConfig, after: float) -> datetime:
    """The schedule's next fire time after ``after``, in its zone."""
    return fire_times(schedule.cron, schedule_zone(config, schedule), after, 1)[0]


def shown(moment: datetime) -> str:
    """A fire time for people: date, time and the zone's name and abbreviation."""
    zone = moment.tzinfo
    key = zone.key if isinstance(zone, ZoneInfo) else str(zone)
    return f"{moment:%Y-%m-%d %H:%M} {key} ({moment:%Z})"
