"""``shoemaker schedule install``: the system's own scheduler instead of the daemon. A crontab
line per schedule, and a systemd user timer and service per schedule (its cron expression
as an ``OnCalendar=`` line in its zone), printed; the units are written only when asked, and a
crontab is never edited.
"""

from __future__ import annotations

import hashlib
import os
import re
import shlex
import sys
from dataclasses import dataclass
from pathlib import Path

from shoemaker.config.models import Config
from shoemaker.config.schedules import ScheduleConfig
from shoemaker.engine.cron import local_zone, schedule_zone
from shoemaker.errors import BadInput

_SHORTCUTS = {
    "@hourly": "*-*-* *:00:00",
    "@daily": "*-*-* 00:00:00",
    "@midnight": "*-*-* 00:00:00",
    "@weekly": "Sun *-*-* 00:00:00",
    "@monthly": "*-*-01 00:00:00",
    "@yearly": "*-01-01 00:00:00",
    "@annually": "*-01-01 00:00:00",
}
_DAYS = ["Sun", "Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun"]
_MONTHS = ["jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec"]


class InstallError(BadInput):
    """A schedule the system's scheduler cannot express; the message says which and why."""


def shoemaker_argv() -> list[str]:
    """How the system's scheduler starts this shoemaker: the interpreter running it now."""
    return [sys.executable, "-m", "shoemaker"]


def _names(part: str, names: list[str], offset: int) -> str:
    def number(match: re.Match[str]) -> str:
        return str(names.index(match.group(0).lower()) + offset)

    return re.sub("[A-Za-z]{3}", number, part)


def _field(text: str, what: str, start: int, day: bool = False) -> str:
    """One cron field as systemd calendar syntax (``a-b`` → ``a..b``, ``*/n`` → ``s/n``)."""
    out = []
    for part in text.split(","):
        value, _, step = part.partition("/")
        if day and step:
            raise InstallError(f"a step ({part}) in the weekday field")
        if value == "*":
            value = "*" if not step else str(start)
        elif "-" in value:
            low, high = value.split("-", 1)
            if step:
                raise InstallError(f"a range with a step ({part}) in the {what} field")
            value = f"{_DAYS[int(low)]}..{_DAYS[int(high)]}" if day else f"{low}..{high}"
        elif day:
            value = _DAYS[int(value)]
        out.append(f"{value}/{step}" if step else value)
    return ",".join(out)


def on_calendar(cron: str, zone: str) -> str:
    """The ``OnCalendar=`` value of ``cron`` read in ``zone``."""
    if cron.startswith("@"):
        if cron not in _SHORTCUTS:
            raise InstallError(f"{cron} has no systemd calendar equivalent")
        return f"{_SHORTCUTS[cron]} {zone}"
    minute, hour, dom, month, dow = cron.split()
    if dom != "*" and dow != "*":
        raise InstallError(
            "cron fires when the day of the month OR the weekday matches; a systemd timer "
            "needs both: use the daemon or the crontab line"
        )
    days = _field(_names(dow, [d.lower() for d in _DAYS[:7]], 0), "weekday", 0, day=True)
    when = (
        f"*-{_field(_names(month, _MONTHS, 1), 'month', 1)}-{_field(dom, 'day', 1)} "
        f"{_field(hour, 'hour', 0)}:{_field(minute, 'minute', 0)}:00 {zone}"
    )
    return when if dow == "*" else f"{days} {when}"


def unit_stem(root: Path, schedule: ScheduleConfig) -> str:
    """``shoemaker-REPO-HASH-NAME``: the units' name, distinct per repository."""
    repo = re.sub(r"[^A-Za-z0-9_.-]", "_", root.name)[:40] or "repo"
    digest = hashlib.sha1(str(root).encode()).hexdigest()[:6]
    return f"shoemaker-{repo}-{digest}-{schedule.name}"


@dataclass(frozen=True, slots=True)
class Units:
    """One schedule's systemd user timer and service, by file name."""

    timer_name: str
    timer: str
    service_name: str
    service: str


def systemd_units(root: Path, config: Config, schedule: ScheduleConfig) -> Units:
    """The timer and service that run ``schedule`` of the repository at ``root``."""
    zone = schedule_zone(config, schedule).key
    try:
        calendar = on_calendar(schedule.cron, zone)
    except (InstallError, ValueError, IndexError) as exc:
        raise InstallError(
            f"schedules[{schedule.name}].cron: {schedule.cron!r} cannot be a systemd timer "
            f"({exc}); use `shoemaker schedule daemon` or the crontab line"
        ) from None
    stem = unit_stem(root, schedule)
    argv = [*shoemaker_argv(), "-C", str(root), "schedule", "run", schedule.name]
    exec_start = " ".join(_systemd_quote(a) for a in argv)
    about = f"shoemaker batch {schedule.name} of {root}"
    service = (
        f"[Unit]\nDescription={about}\n\n"
        f"[Service]\nType=oneshot\nWorkingDirectory={_systemd_quote(str(root))}\n"
        f"ExecStart={exec_start}\n"
        # A batch stops its agents on SIGTERM (work kept); give it their grace.
        f"KillMode=mixed\nTimeoutStopSec={int(max(60, schedule.grace + 60))}\n"
    )
    timer = (
        f"[Unit]\nDescription={about} ({schedule.cron}, {zone})\n\n"
        f"[Timer]\nOnCalendar={calendar}\nUnit={stem}.service\n\n"
        f"[Install]\nWantedBy=timers.target\n"
    )
    return Units(f"{stem}.timer", timer, f"{stem}.service", service)


def _systemd_quote(arg: str) -> str:
    if re.fullmatch(r"[A-Za-z0-9_@%+=:,./-]+", arg):
        return arg
    return '"' + arg.replace("\\", "\\\\").replace('"', '\\"').replace("%", "%%") + '"'


def crontab_lines(root: Path, config: Config, schedule: ScheduleConfig) -> list[str]:
    """The crontab lines that run ``schedule``: a ``CRON_TZ=`` line when its zone is not the
    machine's (cronie reads the following lines in it), then the entry."""
    zone = schedule_zone(config, schedule).key
    argv = [*shoemaker_argv(), "-C", str(root), "schedule", "run", schedule.name]
    log = root / config.state_dir / f"schedule-{schedule.name}.log"
    line = f"{schedule.cron} {shlex.join(argv)} >> {shlex.quote(str(log))} 2>&1"
    lines = [f"# shoemaker batch {schedule.name} of {root} ({zone})"]
    if zone != local_zone().key:
        lines.append(f"CRON_TZ={zone}")
    return [*lines, line]


def user_unit_dir() -> Path:
    """Where systemd looks for a user's own units: $XDG_CONFIG_HOME/systemd/user."""
    base = os.environ.get("XDG_CONFIG_HOME") or str(Path.home() / ".config")
    return Path(base) / "systemd" / "user"


def write_units(units: list[Units]) -> list[Path]:
    """Write every unit (each through a temporary file renamed into place); returns them."""
    directory = user_unit_dir()
    directory.mkdir(parents=True, exist_ok=True)
    written = []
    for unit in units:
        for name, text in ((unit.service_name, unit.service), (unit.timer_name, unit.timer)):
            path = directory / name
            tmp = path.with_name(f".{name}.tmp")
            tmp.write_text(text, encoding="utf-8")
            tmp.replace(path)
            written.append(path)
    return written
