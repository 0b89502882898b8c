"""Schedules without agents: configuration, cron fire times on fixed clocks (DST included),
`schedule list` and `schedule install`."""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest
import yaml

from shoemaker.config import Config
from shoemaker.engine.cron import fire_times, local_zone, next_fire
from shoemaker.engine.schedule_install import on_calendar
from shoemaker.events import BatchFinished, parse_event
from shoemaker.git import Git

BERLIN = ZoneInfo("Europe/Berlin")


def utc(text: str) -> float:
    return datetime.fromisoformat(text).replace(tzinfo=UTC).timestamp()


def in_utc(moments: list[datetime]) -> list[str]:
    return [m.astimezone(UTC).strftime("%Y-%m-%d %H:%M") for m in moments]


def repo(root: Path, settings: dict[str, Any]) -> Path:
    git = Git.init_repo(root / "repo")
    (git.root / "configuration.yaml").write_text(yaml.safe_dump(settings))
    git.commit_all(git.root, "configuration")
    return git.root


def shoemaker(root: Path, *args: str, **env: str) -> subprocess.CompletedProcess[str]:
    import os

    return subprocess.run(
        [sys.executable, "-m", "shoemaker", "-C", str(root), *args],
        capture_output=True,
        text=True,
        timeout=120,
        env={**os.environ, **env},
    )


# -- fire times -------------------------------------------------------------------------------


def test_a_daily_time_in_berlin_fires_at_its_utc_offset_of_the_season() -> None:
    # Winter (CET, +1) then summer (CEST, +2).
    assert in_utc(fire_times("0 2 * * *", BERLIN, utc("2026-01-10 12:00"), 2)) == [
        "2026-01-11 01:00",
        "2026-01-12 01:00",
    ]
    assert in_utc(fire_times("0 2 * * *", BERLIN, utc("2026-07-10 12:00"), 1)) == [
        "2026-07-11 00:00"
    ]


def test_a_time_the_clock_skips_fires_when_the_clock_jumps() -> None:
    # 29 March 2026: Berlin goes from 02:00 CET straight to 03:00 CEST; 02:30 never happens.
    times = fire_times("30 2 * * *", BERLIN, utc("2026-03-28 12:00"), 2)
    assert [f"{t:%H:%M %Z}" for t in times] == ["03:00 CEST", "02:30 CEST"]
    assert in_utc(times) == ["2026-03-29 01:00", "2026-03-30 00:30"]


def test_a_fixed_time_the_clock_passes_twice_fires_once() -> None:
    # 25 October 2026: 03:00 CEST becomes 02:00 CET; 02:30 happens twice, fires once.
    times = fire_times("30 2 * * *", BERLIN, utc("2026-10-24 12:00"), 2)
    assert in_utc(times) == ["2026-10-25 00:30", "2026-10-26 01:30"]
    # Asked again between the two 02:30s (a daemon after its first batch): not again.
    assert in_utc(fire_times("30 2 * * *", BERLIN, utc("2026-10-25 00:45"), 1)) == [
        "2026-10-26 01:30"
    ]


def test_an_hourly_schedule_fires_every_real_hour_across_the_change() -> None:
    times = fire_times("0 * * * *", BERLIN, utc("2026-10-24 23:30"), 4)
    assert in_utc(times) == [
        "2026-10-25 00:00",  # 02:00 CEST
        "2026-10-25 01:00",  # 02:00 CET, the repeated hour
        "2026-10-25 02:00",
        "2026-10-25 03:00",
    ]


def test_the_zone_comes_from_the_schedule_else_the_configuration_else_the_machine(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("TZ", "Asia/Tokyo")
    assert local_zone().key == "Asia/Tokyo"
    cfg = Config.model_validate(
        {
            "timezone": "America/New_York",
            "schedules": [
                {"name": "own", "cron": "0 9 * * *", "timezone": "Europe/Berlin"},
                {"name": "top", "cron": "0 9 * * *"},
            ],
        }
    )
    after = utc("2026-01-04 12:00")
    own, top = cfg.schedules
    assert in_utc([next_fire(cfg, own, after)]) == ["2026-01-05 08:00"]
    assert in_utc([next_fire(cfg, top, after)]) == ["2026-01-04 14:00"]
    local = Config.model_validate({"schedules": [{"name": "here", "cron": "0 9 * * *"}]})
    assert in_utc([next_fire(local, local.schedules[0], after)]) == ["2026-01-05 00:00"]


# -- configuration ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("schedules", "top", "expected"),
    [
        (
            [{"name": "nightly", "cron": "61 2 * * *"}],
            {},
            "schedules[nightly].cron: not cron",
        ),
        (
            [{"name": "nightly", "cron": "0 2 * * *", "timezone": "Mars/Olympus"}],
            {},
            "schedules[nightly].timezone: is not a known time zone",
        ),
        (
            [{"name": "nightly", "cron": "0 2 * * *"}, {"name": "nightly", "cron": "0 3 * * *"}],
            {},
            "schedules[nightly].name: two schedules are named nightly",
        ),
        (
            [{"name": "nightly", "cron": "0 2 * * *", "max_duration": "soon"}],
            {},
            "schedules[nightly].max_duration: must be a duration",
        ),
        ([], {"timezone": "Nowhere/Land"}, "timezone: is not a known time zone"),
    ],
)
def test_a_bad_schedule_is_refused_in_one_line_naming_it_and_its_field(
    fast_tmp: Path, schedules: list[dict[str, Any]], top: dict[str, Any], expected: str
) -> None:
    root = repo(fast_tmp, {"schedules": schedules, **top})
    result = shoemaker(root, "schedule", "list")
    assert result.returncode == 2, result.stderr
    assert expected in result.stderr
    assert result.stderr.count("\n") == 1
    assert not (root / ".shoemaker").exists()  # nothing was written


def test_durations_read_as_people_write_them() -> None:
    cfg = Config.model_validate(
        {"schedules": [{"name": "n", "cron": "@daily", "max_duration": "1h30m", "grace": "90s"}]}
    )
    assert (cfg.schedules[0].max_duration, cfg.schedules[0].grace) == (5400, 90)


def test_batch_finished_round_trips_through_json() -> None:
    event = BatchFinished(
        generation="g1",
        schedule="nightly",
        outcome="finished",
        reason="max_tasks reached (2 task(s) started)",
        tasks_done=2,
        tasks_failed=1,
        notify=True,
    )
    assert parse_event(event.json_bytes()) == event


# -- schedule list ----------------------------------------------------------------------------


def test_schedule_list_shows_next_fire_times_with_the_zone(fast_tmp: Path) -> None:
    root = repo(
        fast_tmp,
        {
            "schedules": [
                {"name": "nightly", "cron": "30 2 * * *", "timezone": "Europe/Berlin"},
                {"name": "weekdays", "cron": "0 9 * * 1-5"},
            ]
        },
    )
    result = shoemaker(root, "schedule", "list", "--count", "2", TZ="America/New_York")
    assert result.returncode == 0, result.stderr
    assert "nightly  30 2 * * *  in Europe/Berlin" in result.stdout
    assert "weekdays  0 9 * * 1-5  in America/New_York" in result.stdout
    assert (
        len(re.findall(r"next \d{4}-\d\d-\d\d 02:30 Europe/Berlin \(CES?T\)", result.stdout)) == 2
    )
    assert "no schedule daemon runs" in result.stdout
    listed = shoemaker(root, "schedule", "list", "--json", TZ="America/New_York")
    data = yaml.safe_load(listed.stdout)
    assert [d["timezone"] for d in data] == ["Europe/Berlin", "America/New_York"]
    assert all(datetime.fromisoformat(t).hour == 9 for t in data[1]["next"])


# -- schedule install -------------------------------------------------------------------------


def _systemd_times(calendar: str, base: str, count: int) -> list[str]:
    out = subprocess.run(
        [
            "systemd-analyze",
            "calendar",
            f"--iterations={count}",
            f"--base-time={base} UTC",
            calendar,
        ],
        capture_output=True,
        text=True,
        timeout=60,
        env={"TZ": "UTC", "PATH": "/usr/bin:/bin"},
        check=True,
    ).stdout
    return re.findall(r"(\d{4}-\d\d-\d\d \d\d:\d\d):\d\d UTC", out)[:count]


@pytest.mark.skipif(shutil.which("systemd-analyze") is None, reason="no systemd-analyze")
@pytest.mark.parametrize(
    "cron", ["30 2 * * *", "*/20 9-17 * * 1-5", "0 6 1 jan,jul *", "15 7 * * sat,sun", "@weekly"]
)
def test_the_systemd_timer_fires_when_cron_does(cron: str) -> None:
    base = "2026-06-01 12:00:00"
    expected = in_utc(fire_times(cron, BERLIN, utc(base[:16]), 5))
    assert _systemd_times(on_calendar(cron, "Europe/Berlin"), base, 5) == expected


def test_schedule_install_prints_and_writes_only_when_asked(fast_tmp: Path) -> None:
    root = repo(
        fast_tmp,
        {
            "timezone": "UTC",
            "schedules": [
                {"name": "nightly", "cron": "30 2 * * *", "timezone": "Europe/Berlin"},
                {"name": "odd", "cron": "0 9 1 * 1"},
            ],
        },
    )
    units = fast_tmp / "config" / "systemd" / "user"
    env = {"XDG_CONFIG_HOME": str(fast_tmp / "config"), "TZ": "UTC"}
    shown = shoemaker(root, "schedule", "install", **env)
    assert shown.returncode == 0, shown.stderr
    assert "CRON_TZ=Europe/Berlin" in shown.stdout
    assert f"-C {root} schedule run nightly >> " in shown.stdout
    assert "OnCalendar=*-*-* 2:30:00 Europe/Berlin" in shown.stdout
    assert "odd: no systemd timer" in shown.stdout  # cron ORs the two day fields
    assert not units.exists()
    # Writing all of them fails on the one that cannot be a timer: nothing is written.
    refused = shoemaker(root, "schedule", "install", "--write", **env)
    assert refused.returncode == 2
    assert "schedules[odd].cron" in refused.stderr
    assert not units.exists()
    wrote = shoemaker(root, "schedule", "install", "nightly", "--write", **env)
    assert wrote.returncode == 0, wrote.stderr
    written = sorted(p.name for p in units.iterdir())
    assert [Path(n).suffix for n in written] == [".service", ".timer"]
    service = (units / written[0]).read_text()
    assert f"ExecStart={sys.executable} -m shoemaker -C {root} schedule run nightly" in service
    assert "systemctl --user enable --now" in wrote.stdout
