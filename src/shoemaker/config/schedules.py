"""Scheduled batches in ``configuration.yaml``: when each fires (cron, time zone) and the
limits of one batch."""

from __future__ import annotations

import re
from typing import Any, Literal

from pydantic import Field, field_validator
from pydantic_core import PydanticCustomError

from shoemaker.config.strict import Strict as _Strict

_DURATION = re.compile(r"^\s*(?:(\d+)\s*h)?\s*(?:(\d+)\s*m)?\s*(?:(\d+)\s*s)?\s*$")


def parse_duration(value: Any) -> float:
    """Seconds of a duration written as a number of seconds or as ``2h``, ``90m``, ``1h30m``,
    ``45s`` (0: no limit)."""
    if isinstance(value, bool):
        raise ValueError("must be a duration such as 90m, 2h or 1h30m (0: no limit)")
    if isinstance(value, int | float):
        seconds = float(value)
    else:
        match = _DURATION.match(str(value))
        if match is None or not any(match.groups()):
            raise ValueError("must be a duration such as 90m, 2h or 1h30m (0: no limit)")
        h, m, s = (int(g or 0) for g in match.groups())
        seconds = float(h * 3600 + m * 60 + s)
    if seconds < 0:
        raise ValueError("must not be negative (0: no limit)")
    return seconds


def check_zone(value: str) -> str:
    """``value`` when it names a time zone of the system's database (empty: the local zone)."""
    if value:
        from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

        try:
            ZoneInfo(value)
        except (ZoneInfoNotFoundError, ValueError):
            raise ValueError(
                "is not a known time zone; use an IANA name such as Europe/Berlin or UTC"
            ) from None
    return value


class ScheduleConfig(_Strict):
    """A batch of work that fires on a cron schedule (`shoemaker schedule daemon`, or the
    system's own scheduler through `shoemaker schedule install`)."""

    name: str
    """Short name of the schedule (letters, digits, '.', '_', '-'): `shoemaker schedule run
    NAME`."""
    cron: str
    """When the batch fires: five cron fields (minute hour day month weekday) or @daily,
    @hourly, @weekly, in the schedule's time zone."""
    timezone: str = ""
    """IANA time zone of the cron expression, e.g. Europe/Berlin (empty: the top-level
    `timezone`, else the machine's local zone)."""
    max_tasks: int = Field(default=0, ge=0)
    """The batch starts no more tasks than this (0: no limit)."""
    max_duration: float = 0
    """After this long (90m, 2h, 1h30m or seconds) the batch starts nothing new, lets running
    agents finish up to `grace`, then stops them with their work kept (0: no limit)."""
    grace: float = 600
    """How long running agents may go on after max_duration before they are stopped."""
    cycles: int = Field(default=1, ge=1)
    """Measure+stitch cycles the batch performs at most."""
    notify_on_complete: bool = False
    """Tell the notification channels when the batch ends (with what it did)."""
    generation: Literal["current", "new"] = "current"
    """current: the batch works on the current generation; new: it starts a new generation
    (from the base branch of the one checked out)."""

    @field_validator("name")
    @classmethod
    def _name_usable(cls, value: str) -> str:
        if not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9._-]{0,63}", value):
            raise ValueError("use letters, digits, '.', '_' or '-' (at most 64), e.g. nightly")
        return value

    @field_validator("cron")
    @classmethod
    def _cron_valid(cls, value: str) -> str:
        from croniter import croniter

        value = " ".join(value.split())
        if len(value.split()) not in (1, 5) or not croniter.is_valid(value):
            raise ValueError("not cron: write minute hour day month weekday, or @daily")
        return value

    @field_validator("timezone")
    @classmethod
    def _zone_known(cls, value: str) -> str:
        return check_zone(value)

    @field_validator("max_duration", "grace", mode="before")
    @classmethod
    def _duration(cls, value: Any) -> float:
        return parse_duration(value)


def _unique_schedules(schedules: list[ScheduleConfig]) -> list[ScheduleConfig]:
    seen: set[str] = set()
    for schedule in schedules:
        if schedule.name in seen:
            raise PydanticCustomError(
                "named",
                "schedules[{name}].name: two schedules are named {name}; give each its own name",
                {"name": schedule.name},
            )
        seen.add(schedule.name)
    return schedules
